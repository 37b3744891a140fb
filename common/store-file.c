/*
 * The check of a state file before LMDB maps it: a walk of LMDB 0.9's
 * page format with pread(), so that a truncated or garbled file is
 * refused (STORE_EDAMAGED) instead of crashing the program that maps it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store.h"
#include "store-impl.h"

/*
 * Checking the file before LMDB maps it.  LMDB trusts its file: a page
 * number past the end of a file cut short makes it read unmapped memory
 * (SIGBUS, the program dies), and an empty file is taken for a new store.
 * So before opening, read the newest meta page and walk every tree from it
 * with pread(), checking that each page it names lies inside the file and
 * looks like a page of its kind.  The layout is LMDB 0.9's (mdb.c), for
 * 64-bit builds: pages start with a 16-byte header, branch nodes hold a
 * 48-bit child page number, leaf nodes with F_BIGDATA an overflow page
 * number, with F_SUBDATA a named database's root.
 *
 * Writers commit while we read.  A meta page is read until two reads
 * agree (a read racing the write of a meta can see half of each); the
 * file's size is taken after the meta, so it covers every page the meta
 * names; and the pages of the newest snapshot are not reused before two
 * more commits, so a walk counts only if the newest meta is the same after
 * it as before.  Damage is found by two such walks in a row; a file that
 * never holds still for one is left to LMDB rather than refused.
 *
 * Which meta LMDB 0.9.24 reads: mdb_env_read_header and
 * mdb_env_pick_meta take the meta with the larger txnid (meta 0 on a tie),
 * and mdb_env_share_locks stores that txnid in the lock file; every
 * transaction then reads me_metas[txnid & 1], not the meta it was picked
 * from.  LMDB writes the meta of txn t to page t & 1 (so a tie only occurs
 * at txnid 0, on page 0), hence a newest meta on the other page makes LMDB
 * read the older meta's tree, which we do not walk (and which may be
 * half reused, so walking it would refuse sound files): refuse it.
 * It also takes its page size from that meta and finds meta page 1 at
 * it, so both meta pages must carry the file's page size (meta page 0's),
 * and the newest must name at least the two meta pages.
 *
 * Every page the walk reaches is marked in a bitmap: in one snapshot each
 * page belongs to one tree, once, and a page on the free list belongs to
 * none.  A page reached twice, or a free-list page that is live or listed
 * twice, would be handed out by LMDB while in use (an assertion abort in
 * mdb_page_touch, or worse).  The bitmap costs npages / 8 bytes.
 */
#define LMDB_MAGIC		0xBEEFC0DEU
#define LMDB_PAGEHDRSZ		16
#define LMDB_NODESIZE		8
#define LMDB_META_DBS		24	/* offset of mm_dbs in the meta */
#define LMDB_DB_SIZE		48
#define LMDB_DB_ROOT		40	/* offset of md_root in an MDB_db */
#define LMDB_META_LAST_PG	(LMDB_META_DBS + 2 * LMDB_DB_SIZE)
#define LMDB_META_TXNID		(LMDB_META_LAST_PG + 8)
#define LMDB_P_BRANCH		0x01
#define LMDB_P_LEAF		0x02
#define LMDB_P_OVERFLOW		0x04
#define LMDB_P_LEAF2		0x20
#define LMDB_F_BIGDATA		0x01
#define LMDB_F_SUBDATA		0x02
#define LMDB_P_INVALID		(~(uint64_t)0)
#define WALK_DEPTH_MAX		32
#define WALK_TRIES		50
#define WALK_CONFIRM		2

enum walk_db { WALK_FREE, WALK_MAIN, WALK_NAMED };

struct file_walk {
	int fd;
	uint64_t size, psize, npages;
	uint64_t last_pg;		/* of the newest meta */
	unsigned char *seen;		/* one bit per page, set once reached */
	size_t seen_size;
	unsigned char *page;		/* one page per depth level */
	unsigned char *idl;		/* a free-list record being checked */
	size_t idl_size;
};

static uint64_t
load_le(const unsigned char *bytes, size_t width)
{
	uint64_t value = 0;

	while (width--)
		value = value << 8 | bytes[width];
	return value;
}

/* Claim a page for one use; a second claim is damage.  A free-list page at
 * or past the end of the file is not in the bitmap: no tree page lies
 * there (the walk refuses them), and LMDB can leave such a page unwritten
 * (a loose page) yet free. */
static int
claim_page(struct file_walk *walk, uint64_t pgno)
{
	unsigned char bit;

	if (pgno >= walk->npages)
		return 0;
	bit = (unsigned char)(1u << (pgno & 7));
	if (walk->seen[pgno >> 3] & bit)
		return STORE_EDAMAGED;
	walk->seen[pgno >> 3] |= bit;
	return 0;
}

/* A free-list record is a list of page numbers: a count, then that many
 * numbers, each a page LMDB may hand out again.  A wrong count sends
 * LMDB's list merging far past the record (SIGSEGV), a wrong number hands
 * out a page that is not there. */
static int
check_free_record(struct file_walk *walk, const unsigned char *inline_data,
    uint64_t overflow_pgno, uint64_t size)
{
	const unsigned char *data = inline_data;
	uint64_t count, index, pgno;
	unsigned char *grown;

	if (size < 8 || size % 8 || size > walk->size)
		return STORE_EDAMAGED;
	if (data == NULL) {
		if (walk->idl_size < size) {
			grown = realloc(walk->idl, size);
			if (grown == NULL)
				return ENOMEM;
			walk->idl = grown;
			walk->idl_size = size;
		}
		if (pread(walk->fd, walk->idl, size, (off_t)(overflow_pgno *
		    walk->psize + LMDB_PAGEHDRSZ)) != (ssize_t)size)
			return STORE_EDAMAGED;
		data = walk->idl;
	}
	count = load_le(data, 8);
	if (count != size / 8 - 1)
		return STORE_EDAMAGED;
	for (index = 1; index <= count; index++) {
		pgno = load_le(data + 8 * index, 8);
		if (pgno < 2 || pgno > walk->last_pg ||
		    claim_page(walk, pgno))
			return STORE_EDAMAGED;
	}
	return 0;
}

static int
walk_tree(struct file_walk *walk, uint64_t pgno, unsigned depth,
    enum walk_db db)
{
	unsigned char *page = walk->page + depth * walk->psize;
	unsigned char over[LMDB_PAGEHDRSZ];
	uint64_t lower, upper, page_flags, node_flags, nkeys, index, offset;
	uint64_t child = 0, ksize, dsize, pages;
	int rc;

	if (depth >= WALK_DEPTH_MAX || pgno < 2 || pgno >= walk->npages ||
	    claim_page(walk, pgno))
		return STORE_EDAMAGED;
	if (pread(walk->fd, page, walk->psize, (off_t)(pgno * walk->psize)) !=
	    (ssize_t)walk->psize)
		return STORE_EDAMAGED;
	page_flags = load_le(page + 10, 2);
	lower = load_le(page + 12, 2);
	upper = load_le(page + 14, 2);
	if (load_le(page, 8) != pgno ||
	    !(page_flags & (LMDB_P_BRANCH | LMDB_P_LEAF)) ||
	    (page_flags & LMDB_P_LEAF2) ||
	    lower < LMDB_PAGEHDRSZ || lower > upper || upper > walk->psize ||
	    (lower - LMDB_PAGEHDRSZ) % 2)
		return STORE_EDAMAGED;
	nkeys = (lower - LMDB_PAGEHDRSZ) / 2;
	for (index = 0; index < nkeys; index++) {
		offset = load_le(page + LMDB_PAGEHDRSZ + 2 * index, 2);
		if (offset < upper || offset + LMDB_NODESIZE > walk->psize)
			return STORE_EDAMAGED;
		ksize = load_le(page + offset + 6, 2);
		if (offset + LMDB_NODESIZE + ksize > walk->psize)
			return STORE_EDAMAGED;
		if (page_flags & LMDB_P_BRANCH) {
			child = load_le(page + offset, 2) |
			    load_le(page + offset + 2, 2) << 16 |
			    load_le(page + offset + 4, 2) << 32;
			/* Deeper levels read into their own buffers. */
			if ((rc = walk_tree(walk, child, depth + 1, db)))
				return rc;
			continue;
		}
		dsize = load_le(page + offset, 2) |
		    load_le(page + offset + 2, 2) << 16;
		node_flags = load_le(page + offset + 4, 2);
		/* iprelay never uses DUPSORT: F_DUPDATA or any other flag
		 * sends LMDB into sub-page code on a plain value. */
		if (node_flags & ~(uint64_t)(db == WALK_MAIN ?
		    LMDB_F_BIGDATA | LMDB_F_SUBDATA : LMDB_F_BIGDATA))
			return STORE_EDAMAGED;
		if (node_flags & LMDB_F_BIGDATA) {
			if (offset + LMDB_NODESIZE + ksize + 8 > walk->psize)
				return STORE_EDAMAGED;
			child = load_le(page + offset + LMDB_NODESIZE + ksize,
			    8);
			if (child < 2 || child >= walk->npages ||
			    pread(walk->fd, over, sizeof(over),
			    (off_t)(child * walk->psize)) != sizeof(over))
				return STORE_EDAMAGED;
			pages = load_le(over + 12, 4);
			if (load_le(over, 8) != child ||
			    !(load_le(over + 10, 2) & LMDB_P_OVERFLOW) ||
			    pages == 0 || child + pages > walk->npages ||
			    dsize + LMDB_PAGEHDRSZ > pages * walk->psize)
				return STORE_EDAMAGED;
			while (pages--)
				if (claim_page(walk, child + pages))
					return STORE_EDAMAGED;
		} else if (offset + LMDB_NODESIZE + ksize + dsize >
		    walk->psize) {
			return STORE_EDAMAGED;
		}
		if (db == WALK_FREE) {
			if (ksize != 8)
				return STORE_EDAMAGED;
			rc = check_free_record(walk,
			    (node_flags & LMDB_F_BIGDATA) ? NULL :
			    page + offset + LMDB_NODESIZE + ksize, child, dsize);
			if (rc)
				return rc;
		}
		if (db == WALK_MAIN && (node_flags & LMDB_F_SUBDATA)) {
			if (dsize != LMDB_DB_SIZE ||
			    (node_flags & LMDB_F_BIGDATA))
				return STORE_EDAMAGED;
			child = load_le(page + offset + LMDB_NODESIZE + ksize +
			    LMDB_DB_ROOT, 8);
			if (child != LMDB_P_INVALID &&
			    (rc = walk_tree(walk, child, depth + 1,
			    WALK_NAMED)))
				return rc;
		}
	}
	return 0;
}

/* The newest valid meta page: its txnid and the roots of the free and
 * main databases; STORE_EDAMAGED if neither is valid but one has LMDB's
 * magic (a damaged store), EINVAL if neither looks like LMDB's (left to
 * LMDB to name as foreign). */
static int
newest_meta(struct file_walk *walk, uint64_t *txnid, uint64_t roots[2],
    uint64_t *newest_last_pg, int *newest_page)
{
	unsigned char meta[LMDB_PAGEHDRSZ + LMDB_META_TXNID + 8];
	unsigned char check[sizeof(meta)];
	uint64_t meta_txnid, last_pg;
	int index, found = 0, magic = 0, reads, whole = 0;

	for (index = 0; index < 2; index++) {
		for (reads = 0; reads < 100; reads++) {
			whole = pread(walk->fd, meta, sizeof(meta),
			    (off_t)(index * walk->psize)) == sizeof(meta) &&
			    pread(walk->fd, check, sizeof(check),
			    (off_t)(index * walk->psize)) == sizeof(check);
			if (!whole || memcmp(meta, check, sizeof(meta)) == 0)
				break;
		}
		if (reads == 100)
			return EAGAIN;	/* never still */
		if (!whole)
			continue;
		if (load_le(meta + LMDB_PAGEHDRSZ, 4) != LMDB_MAGIC)
			continue;
		magic = 1;
		/* LMDB takes the page size of the newer meta page and finds
		 * the second one at it: another size than the file's made it
		 * read past the end of the file (SIGBUS in mdb_env_open;
		 * fuzz-config).  Both pages of a sound file carry it. */
		if (load_le(meta + LMDB_PAGEHDRSZ + LMDB_META_DBS, 4) !=
		    walk->psize)
			return STORE_EDAMAGED;
		last_pg = load_le(meta + LMDB_PAGEHDRSZ + LMDB_META_LAST_PG, 8);
		meta_txnid = load_le(meta + LMDB_PAGEHDRSZ + LMDB_META_TXNID,
		    8);
		/* The newer by txnid is LMDB's, whatever else it holds. */
		if (found && meta_txnid <= *txnid)
			continue;
		*txnid = meta_txnid;
		*newest_last_pg = last_pg;
		*newest_page = index;
		roots[0] = load_le(meta + LMDB_PAGEHDRSZ + LMDB_META_DBS +
		    LMDB_DB_ROOT, 8);
		roots[1] = load_le(meta + LMDB_PAGEHDRSZ + LMDB_META_DBS +
		    LMDB_DB_SIZE + LMDB_DB_ROOT, 8);
		found = 1;
	}
	/* No meta page names fewer pages than the two it is made of. */
	if (found && *newest_last_pg < 1)
		return STORE_EDAMAGED;
	if (found)
		return 0;
	return magic ? STORE_EDAMAGED : EINVAL;
}

int
check_file(const char *path)
{
	struct file_walk walk = { .fd = -1 };
	unsigned char head[LMDB_PAGEHDRSZ + LMDB_META_DBS + 8];
	struct stat file_stat;
	uint64_t txnid = 0, again = 0, damaged_txnid = 0, roots[2], last_pg;
	int rc = 0, tries, waits, damaged = 0, meta_page = 0, again_page;
	int meta_damaged = 0;
	size_t seen_size;

	walk.fd = open(path, O_RDONLY | O_CLOEXEC);
	if (walk.fd < 0)
		return 0;	/* missing, or no access: LMDB will say */
	/* An empty file is a store being created this instant by another
	 * process (LMDB writes its first pages at once), or damage. */
	for (waits = 0; ; waits++) {
		if (fstat(walk.fd, &file_stat) < 0) {
			rc = errno;
			goto out;
		}
		if (file_stat.st_size > 0)
			break;
		if (waits == 50) {
			rc = STORE_EDAMAGED;
			goto out;
		}
		usleep(10000);
	}
	walk.size = (uint64_t)file_stat.st_size;
	if (pread(walk.fd, head, sizeof(head), 0) != sizeof(head) ||
	    load_le(head + LMDB_PAGEHDRSZ, 4) != LMDB_MAGIC)
		goto out;	/* not LMDB's at all: LMDB says so */
	walk.psize = load_le(head + LMDB_PAGEHDRSZ + LMDB_META_DBS, 4);
	if (walk.psize < 512 || walk.psize > 65536 ||
	    (walk.psize & (walk.psize - 1)) || walk.size < 2 * walk.psize) {
		rc = STORE_EDAMAGED;
		goto out;
	}
	walk.page = malloc(walk.psize * WALK_DEPTH_MAX);
	if (walk.page == NULL) {
		rc = ENOMEM;
		goto out;
	}
	for (tries = 0; tries < WALK_TRIES; tries++) {
		rc = newest_meta(&walk, &txnid, roots, &walk.last_pg,
		    &meta_page);
		if (rc == EINVAL || rc == EAGAIN) {
			rc = 0;		/* LMDB names it */
			goto out;
		}
		/* The meta pages themselves: no commit rewrites a page size
		 * and a torn read is read again (newest_meta), so what is
		 * wrong in reads 1 ms apart is damage.  (Taken for a commit
		 * moving pages before, it was left to LMDB: SIGBUS.) */
		if (rc == STORE_EDAMAGED) {
			if (++meta_damaged == WALK_CONFIRM)
				goto out;
			usleep(1000);
			continue;
		}
		meta_damaged = 0;
		/* The size after the meta: it covers every page it names. */
		if (fstat(walk.fd, &file_stat) < 0) {
			rc = errno;
			goto out;
		}
		walk.size = (uint64_t)file_stat.st_size;
		walk.npages = walk.size / walk.psize;
		seen_size = (size_t)(walk.npages / 8 + 1);
		if (seen_size > walk.seen_size) {
			free(walk.seen);
			walk.seen = malloc(seen_size);
			if (walk.seen == NULL) {
				rc = ENOMEM;
				goto out;
			}
			walk.seen_size = seen_size;
		}
		memset(walk.seen, 0, walk.seen_size);
		if (rc == 0 && (uint64_t)meta_page != (txnid & 1))
			rc = STORE_EDAMAGED;	/* LMDB reads the other meta */
		if (rc == 0 && roots[0] != LMDB_P_INVALID)
			rc = walk_tree(&walk, roots[0], 0, WALK_FREE);
		if (rc == 0 && roots[1] != LMDB_P_INVALID)
			rc = walk_tree(&walk, roots[1], 0, WALK_MAIN);
		if (rc != STORE_EDAMAGED)
			goto out;
		/* Damage, or a commit moved the pages under the walk. */
		if (newest_meta(&walk, &again, roots, &last_pg,
		    &again_page) != 0 || again != txnid) {
			damaged = 0;
			continue;
		}
		if (damaged && damaged_txnid != txnid)
			damaged = 0;
		damaged_txnid = txnid;
		if (++damaged == WALK_CONFIRM)
			goto out;
	}
	rc = 0;		/* never still: let LMDB try */
out:
	free(walk.page);
	free(walk.idl);
	free(walk.seen);
	close(walk.fd);
	return rc;
}
