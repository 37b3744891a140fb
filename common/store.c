/* The LMDB state store; its layout and rules are in store.h. */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "store.h"

/* Every opener must ask for the same reader table: the first opener of the
 * lock file fixes its size.  Relays take no reader slot (they only write),
 * so this bounds concurrent readers (iprelay-limit, the refiller), not
 * relays; it is still sized past the 8192-relay target. */
#define STORE_MAXREADERS	8448
#define STORE_MAPSIZE		(256ULL * 1024 * 1024)
#define STORE_MAXDBS		8
#define STORE_FORMAT_TAG	"iprelay-store"
#define CHAIN_MAX		64	/* levels of nesting */
#define CONN_ID_MAX		999999

#define LIMIT_MAGIC	0x4c505249U	/* "IRPL" */
#define BUCKET_MAGIC	0x42505249U	/* "IRPB" */
#define CONN_MAGIC	0x43505249U	/* "IRPC" */

struct chain;

struct store {
	MDB_env *env;
	MDB_dbi limits, buckets, conns, meta;
	struct chain *chain;	/* scratch for one transaction at a time */
};

struct limit_rec {
	uint32_t magic;
	uint32_t reserved;
	struct limit_cfg cfg;
};

/* The first layout of the records, before ceilings: what this version
 * still reads (as CEIL_NONE, zero borrowed), and still writes while a
 * limit has no ceiling, so a state dir keeps working with the programs of
 * either version until a ceiling is set. */
struct limit_cfg_v1 {
	uint64_t rate_Bps[2];
	uint64_t burst_B;
	char parent[LIMIT_NAME_MAX + 1];
};

struct limit_rec_v1 {
	uint32_t magic;
	uint32_t reserved;
	struct limit_cfg_v1 cfg;
};

#define LIMIT_REC_V1_SIZE \
	(offsetof(struct limit_rec, cfg) + offsetof(struct limit_cfg, ceil_Bps))
_Static_assert(LIMIT_REC_V1_SIZE == sizeof(struct limit_rec_v1),
    "the ceiling fields follow the first layout of a limit record");

struct bucket_rec {
	uint32_t magic;
	uint32_t nconns;			/* live relays in the subtree */
	char parent[LIMIT_NAME_MAX + 1];	/* copy of the limit's */
	struct bucket bucket[2];
	uint64_t total_B[2];
	uint64_t rate_1s_Bps[2];
	uint64_t rate_5s_Bps[2];
	uint64_t rate_60s_Bps[2];
	uint64_t stats_unix_ns;
	/* Absent from records of the first layout (read as zero). */
	uint64_t ceil_Bps[2];			/* copy of the limit's */
	struct bucket ceil[2];			/* at the ceiling, if any */
	uint64_t borrowed_B[2];			/* bytes passed past its rate */
};

#define BUCKET_REC_V1_SIZE	offsetof(struct bucket_rec, ceil_Bps)

_Static_assert(CHAIN_MAX <= BUCKET_LEVELS_MAX,
    "bucket_draw_ceil takes a whole chain");

struct conn_rec {
	uint32_t magic;
	uint32_t reserved;
	struct conn_info info;
};

const char *
store_strerror(int rc)
{
	switch (rc) {
	case STORE_ENOLIMIT: return "no such limit";
	case STORE_ENOPARENT: return "no such parent limit";
	case STORE_ECYCLE: return "parent would make a cycle of limits";
	case STORE_EHASCHILD: return "limit has child limits";
	case STORE_ENOCONN: return "no such connection";
	case STORE_EFOREIGN: return "not an iprelay state file";
	case STORE_EVERSION: return "state file of another format version";
	case STORE_EDAMAGED: return "state file is damaged";
	case STORE_ENOSTORE: return "no state file yet";
	case STORE_EFULL: return "no free connection id";
	case STORE_ECEILLOW: return "ceiling below the rate";
	case STORE_ECEILTOP: return "a ceiling needs a parent limit to borrow from";
	case MDB_MAP_FULL: return "state file is full";
	case MDB_INVALID: return "not an LMDB file (damaged or foreign)";
	case MDB_CORRUPTED: return "state file is damaged";
	case MDB_PAGE_NOTFOUND: return "state file is damaged (page not found)";
	case MDB_VERSION_MISMATCH: return "state file of another LMDB version";
	case MDB_INCOMPATIBLE: return "not an iprelay state file";
	case MDB_READERS_FULL: return "too many concurrent readers";
	default: return mdb_strerror(rc);
	}
}

int
store_exit_code(int rc)
{
	if (rc == STORE_EFOREIGN || rc == STORE_EVERSION ||
	    rc == STORE_EDAMAGED)
		return EXIT_USAGE;
	return EXIT_SYSTEM;
}

uint64_t
monotonic_ns(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (uint64_t)now.tv_sec * NS_PER_SEC + (uint64_t)now.tv_nsec;
}

uint64_t
realtime_ns(void)
{
	struct timespec now;

	clock_gettime(CLOCK_REALTIME, &now);
	return (uint64_t)now.tv_sec * NS_PER_SEC + (uint64_t)now.tv_nsec;
}

int
store_dir_resolve(const char *option, char *dir, size_t dir_size)
{
	const char *from_env, *base;
	int len;

	if (option && *option)
		len = snprintf(dir, dir_size, "%s", option);
	else if ((from_env = getenv("IPRELAY_STATE_DIR")) && *from_env)
		len = snprintf(dir, dir_size, "%s", from_env);
	else if (geteuid() == 0)
		len = snprintf(dir, dir_size, "/var/lib/iprelay");
	else if ((base = getenv("XDG_STATE_HOME")) && *base == '/')
		len = snprintf(dir, dir_size, "%s/iprelay", base);
	else if ((base = getenv("HOME")) && *base == '/')
		len = snprintf(dir, dir_size, "%s/.local/state/iprelay", base);
	else
		return ENOENT;
	if (len < 0 || (size_t)len >= dir_size)
		return ENAMETOOLONG;
	return 0;
}

/* Record decoding: a value of the wrong size or with a bad field is damage,
 * never something to read as if it were right. */
static int
string_in(const char *field, size_t size)
{
	return memchr(field, '\0', size) != NULL;
}

static int
ceil_valid(uint64_t ceil_Bps)
{
	return ceil_Bps == CEIL_UNLIMITED || ceil_Bps <= RATE_MAX;
}

static int
decode_limit(const MDB_val *value, struct limit_rec *rec)
{
	if (value->mv_size != sizeof(*rec) &&
	    value->mv_size != LIMIT_REC_V1_SIZE)
		return STORE_EDAMAGED;
	memset(rec, 0, sizeof(*rec));
	memcpy(rec, value->mv_data, value->mv_size);
	if (rec->magic != LIMIT_MAGIC ||
	    !string_in(rec->cfg.parent, sizeof(rec->cfg.parent)) ||
	    (rec->cfg.parent[0] && !limit_name_valid(rec->cfg.parent)) ||
	    rec->cfg.rate_Bps[0] > RATE_MAX || rec->cfg.rate_Bps[1] > RATE_MAX ||
	    rec->cfg.burst_B > BURST_MAX ||
	    !ceil_valid(rec->cfg.ceil_Bps[0]) ||
	    !ceil_valid(rec->cfg.ceil_Bps[1]))
		return STORE_EDAMAGED;
	return 0;
}

static size_t
limit_rec_size(const struct limit_rec *rec)
{
	return rec->cfg.ceil_Bps[0] == CEIL_NONE &&
	    rec->cfg.ceil_Bps[1] == CEIL_NONE ? LIMIT_REC_V1_SIZE :
	    sizeof(*rec);
}

static int
bucket_valid(const struct bucket *bucket)
{
	return bucket->rate_Bps <= RATE_MAX && bucket->burst_B <= BURST_MAX &&
	    bucket->frac_nB < NS_PER_SEC &&
	    bucket->tokens_B <= (int64_t)BURST_MAX &&
	    bucket->tokens_B >= -(int64_t)BURST_MAX;
}

static int
decode_bucket(const MDB_val *value, struct bucket_rec *rec)
{
	int dir;

	if (value->mv_size != sizeof(*rec) &&
	    value->mv_size != BUCKET_REC_V1_SIZE)
		return STORE_EDAMAGED;
	memset(rec, 0, sizeof(*rec));
	memcpy(rec, value->mv_data, value->mv_size);
	if (rec->magic != BUCKET_MAGIC ||
	    !string_in(rec->parent, sizeof(rec->parent)) ||
	    (rec->parent[0] && !limit_name_valid(rec->parent)))
		return STORE_EDAMAGED;
	for (dir = 0; dir < 2; dir++)
		if (!bucket_valid(&rec->bucket[dir]) ||
		    !bucket_valid(&rec->ceil[dir]) ||
		    !ceil_valid(rec->ceil_Bps[dir]))
			return STORE_EDAMAGED;
	return 0;
}

/* The first layout while the limit has no ceiling and never borrowed. */
static size_t
bucket_rec_size(const struct bucket_rec *rec)
{
	return rec->ceil_Bps[0] == CEIL_NONE && rec->ceil_Bps[1] == CEIL_NONE &&
	    rec->borrowed_B[0] == 0 && rec->borrowed_B[1] == 0 ?
	    BUCKET_REC_V1_SIZE : sizeof(*rec);
}

static int
decode_conn(const MDB_val *value, struct conn_rec *rec)
{
	if (value->mv_size != sizeof(*rec))
		return STORE_EDAMAGED;
	memcpy(rec, value->mv_data, sizeof(*rec));
	if (rec->magic != CONN_MAGIC ||
	    rec->info.id == 0 || rec->info.id > CONN_ID_MAX ||
	    !string_in(rec->info.limit, sizeof(rec->info.limit)) ||
	    !string_in(rec->info.peer, sizeof(rec->info.peer)) ||
	    !string_in(rec->info.remote, sizeof(rec->info.remote)) ||
	    (rec->info.limit[0] && !limit_name_valid(rec->info.limit)))
		return STORE_EDAMAGED;
	return 0;
}

int
store_decode_record(int kind, const void *data, size_t size)
{
	/* For the fuzzer and the tests: 0 limit, 1 bucket, 2 conn. */
	MDB_val value = { size, (void *)data };
	union {
		struct limit_rec limit;
		struct bucket_rec bucket;
		struct conn_rec conn;
	} rec;

	switch (kind) {
	case 0: return decode_limit(&value, &rec.limit);
	case 1: return decode_bucket(&value, &rec.bucket);
	case 2: return decode_conn(&value, &rec.conn);
	default: return EINVAL;
	}
}

static MDB_val
name_key(const char *name)
{
	MDB_val key = { strlen(name), (void *)name };

	return key;
}

static int
name_from_key(const MDB_val *key, char name[LIMIT_NAME_MAX + 1])
{
	if (key->mv_size == 0 || key->mv_size > LIMIT_NAME_MAX)
		return STORE_EDAMAGED;
	memcpy(name, key->mv_data, key->mv_size);
	name[key->mv_size] = '\0';
	return limit_name_valid(name) ? 0 : STORE_EDAMAGED;
}

static int
get_bucket(struct store *store, MDB_txn *txn, const char *name,
    struct bucket_rec *rec)
{
	MDB_val key = name_key(name), value;
	int rc;

	rc = mdb_get(txn, store->buckets, &key, &value);
	if (rc == MDB_NOTFOUND)
		return STORE_ENOLIMIT;
	if (rc)
		return rc;
	return decode_bucket(&value, rec);
}

static int
put_bucket(struct store *store, MDB_txn *txn, const char *name,
    const struct bucket_rec *rec)
{
	MDB_val key = name_key(name);
	MDB_val value = { bucket_rec_size(rec), (void *)rec };

	return mdb_put(txn, store->buckets, &key, &value, 0);
}

static int
get_limit(struct store *store, MDB_txn *txn, const char *name,
    struct limit_rec *rec)
{
	MDB_val key = name_key(name), value;
	int rc;

	rc = mdb_get(txn, store->limits, &key, &value);
	if (rc == MDB_NOTFOUND)
		return STORE_ENOLIMIT;
	if (rc)
		return rc;
	return decode_limit(&value, rec);
}

static MDB_val
conn_key(uint32_t id, unsigned char buf[4])
{
	MDB_val key = { 4, buf };

	buf[0] = (unsigned char)(id >> 24);
	buf[1] = (unsigned char)(id >> 16);
	buf[2] = (unsigned char)(id >> 8);
	buf[3] = (unsigned char)id;
	return key;
}

static uint32_t
conn_id_of(const MDB_val *key)
{
	const unsigned char *buf = key->mv_data;

	if (key->mv_size != 4)
		return 0;
	return (uint32_t)buf[0] << 24 | (uint32_t)buf[1] << 16 |
	    (uint32_t)buf[2] << 8 | buf[3];
}

static int
get_conn(struct store *store, MDB_txn *txn, uint32_t id, struct conn_rec *rec)
{
	unsigned char buf[4];
	MDB_val key = conn_key(id, buf), value;
	int rc;

	rc = mdb_get(txn, store->conns, &key, &value);
	if (rc == MDB_NOTFOUND)
		return STORE_ENOCONN;
	if (rc)
		return rc;
	return decode_conn(&value, rec);
}

static int
put_conn(struct store *store, MDB_txn *txn, const struct conn_rec *rec)
{
	unsigned char buf[4];
	MDB_val key = conn_key(rec->info.id, buf);
	MDB_val value = { sizeof(*rec), (void *)rec };

	return mdb_put(txn, store->conns, &key, &value, 0);
}

/* The chain of a limit: the limit itself, then each ancestor.  A missing
 * limit gives an empty chain; a missing ancestor ends it. */
struct chain {
	size_t depth;
	char names[CHAIN_MAX][LIMIT_NAME_MAX + 1];
	struct bucket_rec recs[CHAIN_MAX];
};

static int
load_chain(struct store *store, MDB_txn *txn, const char *limit,
    struct chain *chain)
{
	const char *name = limit;
	int rc;

	chain->depth = 0;
	while (name && *name && chain->depth < CHAIN_MAX) {
		rc = get_bucket(store, txn, name, &chain->recs[chain->depth]);
		if (rc == STORE_ENOLIMIT)
			break;
		if (rc)
			return rc;
		strcpy(chain->names[chain->depth], name);
		name = chain->recs[chain->depth].parent;
		chain->depth++;
	}
	return 0;
}

static int
save_chain(struct store *store, MDB_txn *txn, const struct chain *chain)
{
	size_t level;
	int rc;

	for (level = 0; level < chain->depth; level++) {
		rc = put_bucket(store, txn, chain->names[level],
		    &chain->recs[level]);
		if (rc)
			return rc;
	}
	return 0;
}

/* A ceiling counts where the level has a parent to borrow from. */
static int
may_borrow(const struct chain *chain, size_t level, int dir)
{
	return chain->recs[level].ceil_Bps[dir] != CEIL_NONE &&
	    level + 1 < chain->depth;
}

static uint64_t
chain_quantum(const struct chain *chain, int dir, int *shaped)
{
	uint64_t quantum_B = CHUNK_MAX, level_B;
	const struct bucket *bucket;
	size_t level;

	*shaped = 0;
	for (level = 0; level < chain->depth; level++) {
		bucket = &chain->recs[level].bucket[dir];
		if (bucket->rate_Bps == 0)
			continue;
		*shaped = 1;
		/* A level that may borrow passes up to its ceiling: quanta
		 * sized for that, or the wake-ups grow with c / r. */
		if (may_borrow(chain, level, dir)) {
			bucket = &chain->recs[level].ceil[dir];
			if (bucket->rate_Bps == 0)
				continue;
		}
		level_B = bucket_quantum(bucket->rate_Bps, bucket->burst_B,
		    chain->recs[level].nconns);
		if (level_B < quantum_B)
			quantum_B = level_B;
	}
	return quantum_B;
}

/* The most a level may owe (bytes), for the live relays in its subtree:
 * with quanta of at most that / N, N relays each holding a draw stay
 * inside it (bucket.h). */
static uint64_t
level_debt_max(const struct bucket_rec *rec, int dir)
{
	return bucket_debt_max(rec->bucket[dir].rate_Bps,
	    rec->bucket[dir].burst_B, rec->nconns);
}

/* A refused relay's slot in the retry spread: its id, turned by T where
 * the chain may borrow.  Borrowers refused together all come back for the
 * same idle tokens, and the first slot takes them: with fixed slots the
 * same relay would win every round (measured: 32 relays borrowing on one
 * limit, the best got 24 times the mean).  Turned by T, which every relay
 * refused in one round shares, the slots stay distinct and the winner
 * changes from round to round. */
static uint32_t
retry_slot(const struct chain *chain, int dir, uint32_t id, uint64_t at_ns)
{
	size_t level;

	for (level = 0; level < chain->depth; level++)
		if (may_borrow(chain, level, dir))
			return id + (uint32_t)((at_ns >> 16) * 0x9e3779b1U >> 7);
	return id;
}

static uint64_t
saturating_add(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* Zero every bucket's nconns and count the live relays again, each on its
 * limit and every ancestor: the only way counts change besides register
 * and unregister, so drift after a kill -9 or a re-parenting heals. */
static int
recount(struct store *store, MDB_txn *txn)
{
	MDB_cursor *cursor = NULL;
	MDB_val key, value;
	struct bucket_rec rec;
	struct conn_rec conn;
	struct chain *chain;
	size_t level;
	int rc;

	chain = store->chain;
	rc = mdb_cursor_open(txn, store->buckets, &cursor);
	if (rc)
		goto out;
	for (rc = mdb_cursor_get(cursor, &key, &value, MDB_FIRST); rc == 0;
	    rc = mdb_cursor_get(cursor, &key, &value, MDB_NEXT)) {
		if ((rc = decode_bucket(&value, &rec)))
			goto out;
		if (rec.nconns == 0)
			continue;
		rec.nconns = 0;
		value.mv_size = bucket_rec_size(&rec);
		value.mv_data = &rec;
		if ((rc = mdb_cursor_put(cursor, &key, &value, MDB_CURRENT)))
			goto out;
	}
	if (rc != MDB_NOTFOUND)
		goto out;
	mdb_cursor_close(cursor);
	cursor = NULL;
	rc = mdb_cursor_open(txn, store->conns, &cursor);
	if (rc)
		goto out;
	for (rc = mdb_cursor_get(cursor, &key, &value, MDB_FIRST); rc == 0;
	    rc = mdb_cursor_get(cursor, &key, &value, MDB_NEXT)) {
		if ((rc = decode_conn(&value, &conn)))
			goto out;
		if ((rc = load_chain(store, txn, conn.info.limit, chain)))
			goto out;
		for (level = 0; level < chain->depth; level++)
			chain->recs[level].nconns++;
		if ((rc = save_chain(store, txn, chain)))
			goto out;
	}
	if (rc == MDB_NOTFOUND)
		rc = 0;
out:
	if (cursor)
		mdb_cursor_close(cursor);
	return rc;
}

static int
check_format(struct store *store, MDB_txn *txn)
{
	MDB_val key = { 6, "format" }, value;
	char tag[64];
	int rc;

	rc = mdb_get(txn, store->meta, &key, &value);
	if (rc == MDB_NOTFOUND)
		return STORE_EFOREIGN;
	if (rc)
		return rc;
	snprintf(tag, sizeof(tag), "%s %d", STORE_FORMAT_TAG, STORE_FORMAT);
	if (value.mv_size == strlen(tag) &&
	    memcmp(value.mv_data, tag, value.mv_size) == 0)
		return 0;
	if (value.mv_size > strlen(STORE_FORMAT_TAG) &&
	    memcmp(value.mv_data, STORE_FORMAT_TAG,
	    strlen(STORE_FORMAT_TAG)) == 0)
		return STORE_EVERSION;
	return STORE_EFOREIGN;
}

/* LMDB reports a short write as EIO ("Input/output error"); on a full
 * filesystem that is the usual cause, and saying so tells the admin what
 * to fix.  Only a filesystem with no block left turns EIO into ENOSPC. */
static int
txn_commit(struct store *store, MDB_txn *txn)
{
	struct statvfs fs;
	int fd, rc;

	rc = mdb_txn_commit(txn);
	if (rc == EIO && mdb_env_get_fd(store->env, &fd) == 0 &&
	    fstatvfs(fd, &fs) == 0 && fs.f_bavail == 0)
		rc = ENOSPC;
	return rc;
}

/* A limit change needs a few pages; refused on a filesystem about to be
 * full, so that the state file's headroom is left to the relays' draws. */
static int
fs_nearly_full(struct store *store)
{
	struct statvfs fs;
	int fd;

	return mdb_env_get_fd(store->env, &fd) == 0 && fstatvfs(fd, &fs) == 0 &&
	    (uint64_t)fs.f_bavail * fs.f_frsize < STORE_FS_FREE_MIN_B;
}

static int
open_dbs(struct store *store, int create)
{
	MDB_txn *txn = NULL;
	MDB_dbi main_dbi;
	MDB_stat main_stat;
	unsigned open_flags = create ? MDB_CREATE : 0;
	char tag[64];
	MDB_val key, value;
	int rc, fresh = 0;

	rc = mdb_txn_begin(store->env, NULL, create ? 0 : MDB_RDONLY, &txn);
	if (rc)
		return rc;
	rc = mdb_dbi_open(txn, NULL, 0, &main_dbi);
	if (rc)
		goto abort;
	rc = mdb_stat(txn, main_dbi, &main_stat);
	if (rc)
		goto abort;
	rc = mdb_dbi_open(txn, "meta", 0, &store->meta);
	if (rc == MDB_NOTFOUND) {
		if (main_stat.ms_entries > 0) {
			rc = STORE_EFOREIGN;
			goto abort;
		}
		if (!create) {
			rc = STORE_ENOSTORE;
			goto abort;
		}
		fresh = 1;
		rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &store->meta);
	}
	if (rc == MDB_INCOMPATIBLE)
		rc = STORE_EFOREIGN;
	if (rc)
		goto abort;
	if (fresh) {
		snprintf(tag, sizeof(tag), "%s %d", STORE_FORMAT_TAG,
		    STORE_FORMAT);
		key.mv_size = 6;
		key.mv_data = "format";
		value.mv_size = strlen(tag);
		value.mv_data = tag;
		rc = mdb_put(txn, store->meta, &key, &value, 0);
		if (rc)
			goto abort;
	} else if ((rc = check_format(store, txn)))
		goto abort;
	if ((rc = mdb_dbi_open(txn, "limits", open_flags, &store->limits)) ||
	    (rc = mdb_dbi_open(txn, "buckets", open_flags, &store->buckets)) ||
	    (rc = mdb_dbi_open(txn, "conns", open_flags,
	    &store->conns))) {
		if (rc == MDB_NOTFOUND || rc == MDB_INCOMPATIBLE)
			rc = STORE_EFOREIGN;
		goto abort;
	}
	return txn_commit(store, txn);
abort:
	mdb_txn_abort(txn);
	return rc;
}

static int
make_dir(const char *dir)
{
	char path[4096];
	size_t len;
	char *slash;

	len = strlen(dir);
	if (len == 0 || len >= sizeof(path))
		return ENAMETOOLONG;
	memcpy(path, dir, len + 1);
	for (slash = path + 1; (slash = strchr(slash, '/')); slash++) {
		*slash = '\0';
		if (mkdir(path, 0755) < 0 && errno != EEXIST)
			return errno;
		*slash = '/';
	}
	/* The state dir itself: owner and group only. */
	if (mkdir(path, 0770) == 0)
		(void)chmod(path, 0770);	/* whatever the umask */
	else if (errno != EEXIST)
		return errno;
	return 0;
}

void
store_give_to_dir_owner(const char *dir, const char *file)
{
	/* root creating a file for a service user (iprelay-limit or iprelay
	 * run by an admin first) hands it to the state dir's owner, so the
	 * unprivileged relays and shaperd can still open it. */
	struct stat dir_stat;
	char path[4200];

	if (geteuid() != 0 || stat(dir, &dir_stat) < 0 || dir_stat.st_uid == 0)
		return;
	snprintf(path, sizeof(path), "%s/%s", dir, file);
	if (chown(path, dir_stat.st_uid, dir_stat.st_gid) < 0)
		return;
}

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
		last_pg = load_le(meta + LMDB_PAGEHDRSZ + LMDB_META_LAST_PG, 8);
		meta_txnid = load_le(meta + LMDB_PAGEHDRSZ + LMDB_META_TXNID,
		    8);
		if (last_pg < 1)
			continue;
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
	if (found)
		return 0;
	return magic ? STORE_EDAMAGED : EINVAL;
}

static int
check_file(const char *path)
{
	struct file_walk walk = { .fd = -1 };
	unsigned char head[LMDB_PAGEHDRSZ + LMDB_META_DBS + 8];
	struct stat file_stat;
	uint64_t txnid = 0, again = 0, damaged_txnid = 0, roots[2], last_pg;
	int rc = 0, tries, waits, damaged = 0, meta_page = 0, again_page;
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

int
store_open(struct store **out, const char *dir, int flags)
{
	struct store *store;
	char path[4200];
	unsigned env_flags = MDB_NOSUBDIR | MDB_NOSYNC | MDB_NORDAHEAD |
	    MDB_NOTLS;
	mode_t old_umask;
	int rc, create = !(flags & STORE_RDONLY);

	*out = NULL;
	if (snprintf(path, sizeof(path), "%s/%s", dir, STORE_FILE) >=
	    (int)sizeof(path))
		return ENAMETOOLONG;
	if (!create && access(path, F_OK) < 0)
		return errno == ENOENT ? STORE_ENOSTORE : errno;
	if ((rc = check_file(path)))
		return rc;
	if (create && (rc = make_dir(dir)))
		return rc;
	store = calloc(1, sizeof(*store));
	if (store == NULL)
		return ENOMEM;
	store->chain = malloc(sizeof(*store->chain));
	if (store->chain == NULL) {
		free(store);
		return ENOMEM;
	}
	if ((rc = mdb_env_create(&store->env)))
		goto free_store;
	if ((rc = mdb_env_set_maxreaders(store->env, STORE_MAXREADERS)) ||
	    (rc = mdb_env_set_maxdbs(store->env, STORE_MAXDBS)) ||
	    (rc = mdb_env_set_mapsize(store->env, STORE_MAPSIZE)))
		goto close_env;
	old_umask = umask(007);
	rc = mdb_env_open(store->env, path, env_flags, 0660);
	umask(old_umask);
	if (rc == EACCES && !create) {
		/* A reader without write access to the data file. */
		mdb_env_close(store->env);
		if ((rc = mdb_env_create(&store->env)))
			goto free_store;
		mdb_env_set_maxreaders(store->env, STORE_MAXREADERS);
		mdb_env_set_maxdbs(store->env, STORE_MAXDBS);
		rc = mdb_env_open(store->env, path, env_flags | MDB_RDONLY,
		    0660);
	}
	if (rc)
		goto close_env;
	if ((rc = open_dbs(store, create)))
		goto close_env;
	if (create) {
		store_give_to_dir_owner(dir, STORE_FILE);
		store_give_to_dir_owner(dir, STORE_FILE "-lock");
	}
	*out = store;
	return 0;
close_env:
	mdb_env_close(store->env);
free_store:
	free(store->chain);
	free(store);
	return rc;
}

void
store_close(struct store *store)
{
	if (store == NULL)
		return;
	mdb_env_close(store->env);
	free(store->chain);
	free(store);
}

int
store_is_current(struct store *store, const char *dir)
{
	struct stat open_stat, path_stat;
	char path[4200];
	int fd;

	if (snprintf(path, sizeof(path), "%s/%s", dir, STORE_FILE) >=
	    (int)sizeof(path))
		return 0;
	if (mdb_env_get_fd(store->env, &fd) || fstat(fd, &open_stat) < 0 ||
	    stat(path, &path_stat) < 0)
		return 0;
	return open_stat.st_dev == path_stat.st_dev &&
	    open_stat.st_ino == path_stat.st_ino && check_file(path) == 0;
}

int
store_sync(struct store *store)
{
	return mdb_env_sync(store->env, 1);
}

static int
would_cycle(struct store *store, MDB_txn *txn, const char *name,
    const char *parent)
{
	struct limit_rec rec;
	char cursor[LIMIT_NAME_MAX + 1];
	size_t depth;
	int rc;

	snprintf(cursor, sizeof(cursor), "%s", parent);
	for (depth = 1; cursor[0]; depth++) {
		if (strcmp(cursor, name) == 0)
			return STORE_ECYCLE;
		if (depth >= CHAIN_MAX)
			return STORE_ECYCLE;	/* deeper than we follow */
		rc = get_limit(store, txn, cursor, &rec);
		if (rc == STORE_ENOLIMIT)
			return depth == 1 ? STORE_ENOPARENT : 0;
		if (rc)
			return rc;
		strcpy(cursor, rec.cfg.parent);
	}
	return 0;
}

int
store_limit_put(struct store *store, const char *name,
    const struct limit_cfg *cfg)
{
	return store_limit_update(store, name, cfg, LIMIT_FIELD_ALL, NULL);
}

int
store_limit_update(struct store *store, const char *name,
    const struct limit_cfg *given, unsigned fields, struct limit_cfg *result)
{
	MDB_txn *txn = NULL;
	struct limit_rec limit = { .magic = LIMIT_MAGIC };
	struct limit_rec old;
	struct bucket_rec bucket;
	const struct limit_cfg *cfg = &limit.cfg;
	MDB_val key, value;
	uint64_t now_ns;
	int rc, dir, reparent = 1;

	if (!limit_name_valid(name) ||
	    ((fields & LIMIT_FIELD_PARENT) && given->parent[0] &&
	    !limit_name_valid(given->parent)) ||
	    ((fields & LIMIT_FIELD_UP) && given->rate_Bps[DIR_UP] > RATE_MAX) ||
	    ((fields & LIMIT_FIELD_DOWN) &&
	    given->rate_Bps[DIR_DOWN] > RATE_MAX) ||
	    ((fields & LIMIT_FIELD_BURST) && given->burst_B > BURST_MAX) ||
	    ((fields & LIMIT_FIELD_CEIL_UP) &&
	    !ceil_valid(given->ceil_Bps[DIR_UP])) ||
	    ((fields & LIMIT_FIELD_CEIL_DOWN) &&
	    !ceil_valid(given->ceil_Bps[DIR_DOWN])))
		return EINVAL;
	if (fs_nearly_full(store))
		return ENOSPC;
	if ((rc = mdb_txn_begin(store->env, NULL, 0, &txn)))
		return rc;
	/* The clock under the write lock (see store_reserve). */
	now_ns = monotonic_ns();
	rc = get_limit(store, txn, name, &old);
	if (rc == 0) {
		limit.cfg = old.cfg;
	} else if (rc != STORE_ENOLIMIT) {
		goto abort;
	}
	/* Merged here, under the write lock, so that nothing written since
	 * the caller last read the limit is lost. */
	if (fields & LIMIT_FIELD_UP)
		limit.cfg.rate_Bps[DIR_UP] = given->rate_Bps[DIR_UP];
	if (fields & LIMIT_FIELD_DOWN)
		limit.cfg.rate_Bps[DIR_DOWN] = given->rate_Bps[DIR_DOWN];
	if (fields & LIMIT_FIELD_BURST)
		limit.cfg.burst_B = given->burst_B;
	if (fields & LIMIT_FIELD_PARENT)
		memcpy(limit.cfg.parent, given->parent, sizeof(limit.cfg.parent));
	if (fields & LIMIT_FIELD_CEIL_UP)
		limit.cfg.ceil_Bps[DIR_UP] = given->ceil_Bps[DIR_UP];
	if (fields & LIMIT_FIELD_CEIL_DOWN)
		limit.cfg.ceil_Bps[DIR_DOWN] = given->ceil_Bps[DIR_DOWN];
	if (result)
		*result = limit.cfg;
	if (rc == 0)
		reparent = strcmp(old.cfg.parent, cfg->parent) != 0;
	/* Checked on the limit as merged: a rate raised past a ceiling set
	 * earlier is refused as surely as a ceiling set below the rate. */
	for (dir = 0; dir < 2; dir++) {
		if (cfg->ceil_Bps[dir] == CEIL_NONE)
			continue;
		if (cfg->ceil_Bps[dir] != CEIL_UNLIMITED &&
		    (cfg->rate_Bps[dir] == 0 ||
		    cfg->ceil_Bps[dir] < cfg->rate_Bps[dir])) {
			rc = STORE_ECEILLOW;
			goto abort;
		}
		if (!cfg->parent[0]) {
			rc = STORE_ECEILTOP;
			goto abort;
		}
	}
	if (cfg->parent[0] && (rc = would_cycle(store, txn, name, cfg->parent)))
		goto abort;
	rc = get_bucket(store, txn, name, &bucket);
	if (rc == STORE_ENOLIMIT) {
		memset(&bucket, 0, sizeof(bucket));
		bucket.magic = BUCKET_MAGIC;
		for (dir = 0; dir < 2; dir++)
			bucket_init(&bucket.bucket[dir], 0, 0, now_ns);
	} else if (rc)
		goto abort;
	/* A lowered rate or burst applies to the live bucket at once. */
	for (dir = 0; dir < 2; dir++) {
		bucket_reconfigure(&bucket.bucket[dir], cfg->rate_Bps[dir],
		    cfg->burst_B, now_ns);
		/* The ceiling bucket: rate 0 when there is none or it is
		 * unlimited (ceil_Bps tells which). */
		bucket_reconfigure(&bucket.ceil[dir],
		    cfg->ceil_Bps[dir] == CEIL_UNLIMITED ? 0 : cfg->ceil_Bps[dir],
		    cfg->burst_B, now_ns);
		bucket.ceil_Bps[dir] = cfg->ceil_Bps[dir];
	}
	memcpy(bucket.parent, cfg->parent, sizeof(bucket.parent));
	key = name_key(name);
	value.mv_size = limit_rec_size(&limit);
	value.mv_data = &limit;
	if ((rc = mdb_put(txn, store->limits, &key, &value, 0)))
		goto abort;
	if ((rc = put_bucket(store, txn, name, &bucket)))
		goto abort;
	if (reparent && (rc = recount(store, txn)))
		goto abort;
	return txn_commit(store, txn);
abort:
	mdb_txn_abort(txn);
	return rc;
}

static void
fill_info(struct limit_info *info, const char *name,
    const struct limit_rec *limit, const struct bucket_rec *bucket)
{
	int dir;

	memset(info, 0, sizeof(*info));
	snprintf(info->name, sizeof(info->name), "%s", name);
	info->cfg = limit->cfg;
	info->nconns = bucket->nconns;
	info->stats_unix_ns = bucket->stats_unix_ns;
	for (dir = 0; dir < 2; dir++) {
		info->bucket[dir] = bucket->bucket[dir];
		info->ceil_bucket[dir] = bucket->ceil[dir];
		info->borrowed_B[dir] = bucket->borrowed_B[dir];
		info->total_B[dir] = bucket->total_B[dir];
		info->rate_1s_Bps[dir] = bucket->rate_1s_Bps[dir];
		info->rate_5s_Bps[dir] = bucket->rate_5s_Bps[dir];
		info->rate_60s_Bps[dir] = bucket->rate_60s_Bps[dir];
	}
}

static void
store_info_back(struct bucket_rec *bucket, const struct limit_info *info)
{
	int dir;

	bucket->stats_unix_ns = info->stats_unix_ns;
	for (dir = 0; dir < 2; dir++) {
		bucket->rate_1s_Bps[dir] = info->rate_1s_Bps[dir];
		bucket->rate_5s_Bps[dir] = info->rate_5s_Bps[dir];
		bucket->rate_60s_Bps[dir] = info->rate_60s_Bps[dir];
	}
}

int
store_limit_get(struct store *store, const char *name,
    struct limit_info *info)
{
	MDB_txn *txn = NULL;
	struct limit_rec limit;
	struct bucket_rec bucket;
	int rc;

	if (!limit_name_valid(name))
		return STORE_ENOLIMIT;
	if ((rc = mdb_txn_begin(store->env, NULL, MDB_RDONLY, &txn)))
		return rc;
	if ((rc = get_limit(store, txn, name, &limit)))
		goto out;
	if ((rc = get_bucket(store, txn, name, &bucket)))
		goto out;
	fill_info(info, name, &limit, &bucket);
out:
	mdb_txn_abort(txn);
	return rc;
}

int
store_limit_del(struct store *store, const char *name, uint32_t *nconns)
{
	MDB_txn *txn = NULL;
	MDB_cursor *cursor = NULL;
	struct limit_rec limit;
	struct bucket_rec bucket;
	MDB_val key, value;
	int rc;

	*nconns = 0;
	if (!limit_name_valid(name))
		return STORE_ENOLIMIT;
	if (fs_nearly_full(store))
		return ENOSPC;
	if ((rc = mdb_txn_begin(store->env, NULL, 0, &txn)))
		return rc;
	if ((rc = get_limit(store, txn, name, &limit)))
		goto abort;
	if ((rc = mdb_cursor_open(txn, store->limits, &cursor)))
		goto abort;
	for (rc = mdb_cursor_get(cursor, &key, &value, MDB_FIRST); rc == 0;
	    rc = mdb_cursor_get(cursor, &key, &value, MDB_NEXT)) {
		if ((rc = decode_limit(&value, &limit)))
			goto abort;
		if (strcmp(limit.cfg.parent, name) == 0) {
			rc = STORE_EHASCHILD;
			goto abort;
		}
	}
	if (rc != MDB_NOTFOUND)
		goto abort;
	mdb_cursor_close(cursor);
	cursor = NULL;
	if (get_bucket(store, txn, name, &bucket) == 0)
		*nconns = bucket.nconns;
	key = name_key(name);
	if ((rc = mdb_del(txn, store->limits, &key, NULL)))
		goto abort;
	rc = mdb_del(txn, store->buckets, &key, NULL);
	if (rc && rc != MDB_NOTFOUND)
		goto abort;
	return txn_commit(store, txn);
abort:
	if (cursor)
		mdb_cursor_close(cursor);
	mdb_txn_abort(txn);
	return rc;
}

int
store_limit_foreach(struct store *store, limit_visit_fn visit, void *ctx)
{
	MDB_txn *txn = NULL;
	MDB_cursor *cursor = NULL;
	struct limit_rec limit;
	struct bucket_rec bucket;
	struct limit_info info;
	char name[LIMIT_NAME_MAX + 1];
	MDB_val key, value;
	int rc;

	if ((rc = mdb_txn_begin(store->env, NULL, MDB_RDONLY, &txn)))
		return rc;
	if ((rc = mdb_cursor_open(txn, store->limits, &cursor)))
		goto out;
	for (rc = mdb_cursor_get(cursor, &key, &value, MDB_FIRST); rc == 0;
	    rc = mdb_cursor_get(cursor, &key, &value, MDB_NEXT)) {
		if ((rc = name_from_key(&key, name)) ||
		    (rc = decode_limit(&value, &limit)) ||
		    (rc = get_bucket(store, txn, name, &bucket)))
			break;
		fill_info(&info, name, &limit, &bucket);
		if ((rc = visit(ctx, &info)))
			break;
	}
	if (rc == MDB_NOTFOUND)
		rc = 0;
	mdb_cursor_close(cursor);
out:
	mdb_txn_abort(txn);
	return rc;
}

static int
meta_get_txn(struct store *store, MDB_txn *txn, const char *key_name,
    void *buf, size_t size, size_t *got)
{
	MDB_val key = name_key(key_name), value;
	int rc;

	rc = mdb_get(txn, store->meta, &key, &value);
	if (rc)
		return rc;
	*got = value.mv_size < size ? value.mv_size : size;
	memcpy(buf, value.mv_data, *got);
	return 0;
}

/* The id the next registration tries first (1 in a new store). */
static int
next_conn_get(struct store *store, MDB_txn *txn, uint32_t *next_id)
{
	size_t got;
	int rc;

	rc = meta_get_txn(store, txn, "next_conn", next_id, sizeof(*next_id),
	    &got);
	if (rc == MDB_NOTFOUND || (rc == 0 && got != sizeof(*next_id))) {
		*next_id = 1;
		return 0;
	}
	return rc;
}

int
store_conn_register(struct store *store, struct conn_info *info)
{
	int shaped[2];
	uint64_t quantum_B[2];
	size_t levels;

	return store_conn_register_shaped(store, info, shaped, quantum_B,
	    &levels);
}

int
store_conn_register_shaped(struct store *store, struct conn_info *info,
    int shaped[2], uint64_t quantum_B[2], size_t *levels)
{
	MDB_txn *txn = NULL;
	struct conn_rec rec = { .magic = CONN_MAGIC };
	struct conn_rec existing;
	struct chain *chain;
	MDB_val key = { 9, "next_conn" }, value;
	uint32_t next_id = 1, tries;
	size_t level;
	int rc, dir;

	shaped[DIR_UP] = shaped[DIR_DOWN] = 0;
	*levels = 0;
	if (!limit_name_valid(info->limit) && info->limit[0])
		return EINVAL;
	chain = store->chain;
	if ((rc = mdb_txn_begin(store->env, NULL, 0, &txn)))
		goto out;
	if ((rc = next_conn_get(store, txn, &next_id)))
		goto abort;
	for (tries = 0; tries < CONN_ID_MAX; tries++) {
		if (next_id == 0 || next_id > CONN_ID_MAX)
			next_id = 1;
		rc = get_conn(store, txn, next_id, &existing);
		if (rc == STORE_ENOCONN)
			break;
		if (rc && rc != STORE_EDAMAGED)
			goto abort;
		next_id++;
	}
	if (tries == CONN_ID_MAX) {
		rc = STORE_EFULL;
		goto abort;
	}
	info->id = next_id;
	info->start_unix_ns = info->last_unix_ns = realtime_ns();
	rec.info = *info;
	if ((rc = put_conn(store, txn, &rec)))
		goto abort;
	next_id++;
	value.mv_size = sizeof(next_id);
	value.mv_data = &next_id;
	if ((rc = mdb_put(txn, store->meta, &key, &value, 0)))
		goto abort;
	if ((rc = load_chain(store, txn, info->limit, chain)))
		goto abort;
	for (level = 0; level < chain->depth; level++)
		chain->recs[level].nconns++;
	/* Counting this relay first sizes its first quantum for everyone
	 * on the limit including itself. */
	for (dir = 0; dir < 2; dir++)
		quantum_B[dir] = chain_quantum(chain, dir, &shaped[dir]);
	if ((rc = save_chain(store, txn, chain)))
		goto abort;
	*levels = chain->depth;
	rc = txn_commit(store, txn);
	goto out;
abort:
	mdb_txn_abort(txn);
out:
	return rc;
}

/* Remove conn's record and take it off its chain's relay counts, inside
 * the caller's write transaction. */
static int
drop_conn(struct store *store, MDB_txn *txn, const struct conn_rec *rec)
{
	struct chain *chain = store->chain;
	unsigned char buf[4];
	MDB_val key = conn_key(rec->info.id, buf);
	size_t level;
	int rc;

	if ((rc = mdb_del(txn, store->conns, &key, NULL)))
		return rc;
	if ((rc = load_chain(store, txn, rec->info.limit, chain)))
		return rc;
	for (level = 0; level < chain->depth; level++)
		if (chain->recs[level].nconns)
			chain->recs[level].nconns--;
	return save_chain(store, txn, chain);
}

int
store_conn_unregister(struct store *store, uint32_t id)
{
	MDB_txn *txn = NULL;
	struct conn_rec rec;
	int rc;

	if ((rc = mdb_txn_begin(store->env, NULL, 0, &txn)))
		return rc;
	if ((rc = get_conn(store, txn, id, &rec)) ||
	    (rc = drop_conn(store, txn, &rec))) {
		mdb_txn_abort(txn);
		return rc;
	}
	return txn_commit(store, txn);
}

/* Whether exits[] names a record still there: the common case, a relay
 * that unregistered itself before it exited, costs a read transaction and
 * not a turn at the write lock the relays draw under. */
static int
any_exited_listed(struct store *store, const struct conn_exit *exits,
    size_t nexits, int *listed)
{
	MDB_txn *txn = NULL;
	struct conn_rec rec;
	size_t index;
	int rc = 0;

	*listed = 0;
	if ((rc = mdb_txn_begin(store->env, NULL, MDB_RDONLY, &txn)))
		return rc;
	for (index = 0; index < nexits && !*listed; index++) {
		rc = get_conn(store, txn, exits[index].id, &rec);
		if (rc == STORE_ENOCONN)
			rc = 0;
		else if (rc)
			break;
		else
			*listed = rec.info.pid == exits[index].pid;
	}
	mdb_txn_abort(txn);
	return rc;
}

int
store_conn_drop_exited(struct store *store, const struct conn_exit *exits,
    size_t nexits, unsigned *dropped)
{
	MDB_txn *txn = NULL;
	struct conn_rec rec;
	size_t index;
	int rc, listed;

	*dropped = 0;
	if ((rc = any_exited_listed(store, exits, nexits, &listed)) || !listed)
		return rc;
	if ((rc = mdb_txn_begin(store->env, NULL, 0, &txn)))
		return rc;
	for (index = 0; index < nexits; index++) {
		rc = get_conn(store, txn, exits[index].id, &rec);
		if (rc == STORE_ENOCONN)
			continue;
		/* A damaged record is left to store_reap. */
		if (rc == STORE_EDAMAGED)
			continue;
		if (rc)
			goto abort;
		/* The id went to a newer relay after the old one's record
		 * was removed: not ours to drop. */
		if (rec.info.pid != exits[index].pid)
			continue;
		if ((rc = drop_conn(store, txn, &rec)))
			goto abort;
		(*dropped)++;
	}
	if (*dropped == 0) {
		mdb_txn_abort(txn);
		return 0;
	}
	return txn_commit(store, txn);
abort:
	mdb_txn_abort(txn);
	*dropped = 0;
	return rc;
}

int
store_conn_get(struct store *store, uint32_t id, struct conn_info *info)
{
	MDB_txn *txn = NULL;
	struct conn_rec rec;
	int rc;

	if ((rc = mdb_txn_begin(store->env, NULL, MDB_RDONLY, &txn)))
		return rc;
	rc = get_conn(store, txn, id, &rec);
	if (rc == 0)
		*info = rec.info;
	mdb_txn_abort(txn);
	return rc;
}

int
store_conn_foreach_new(struct store *store, uint32_t *since,
    conn_visit_fn visit, void *ctx)
{
	MDB_txn *txn = NULL;
	MDB_cursor *cursor = NULL;
	struct conn_rec rec;
	unsigned char buf[4];
	MDB_val key, value;
	uint32_t next_id = 1, end_id;
	int rc, wrap_to_first;

	if ((rc = mdb_txn_begin(store->env, NULL, MDB_RDONLY, &txn)))
		return rc;
	if ((rc = next_conn_get(store, txn, &next_id)))
		goto out;
	if (*since == next_id) {
		rc = 0;
		goto out;
	}
	if ((rc = mdb_cursor_open(txn, store->conns, &cursor)))
		goto out;
	/* Ids are handed out in rising order from next_conn and wrap past
	 * CONN_ID_MAX: the new ones are [since, next_id), perhaps wrapped
	 * round.  since 0 asks for every record. */
	wrap_to_first = *since > next_id;
	if (*since == 0) {
		end_id = UINT32_MAX;
		rc = mdb_cursor_get(cursor, &key, &value, MDB_FIRST);
	} else {
		end_id = wrap_to_first ? UINT32_MAX : next_id;
		key = conn_key(*since, buf);
		rc = mdb_cursor_get(cursor, &key, &value, MDB_SET_RANGE);
	}
	for (;; rc = mdb_cursor_get(cursor, &key, &value, MDB_NEXT)) {
		if (rc == MDB_NOTFOUND && wrap_to_first) {
			wrap_to_first = 0;
			end_id = next_id;
			rc = mdb_cursor_get(cursor, &key, &value, MDB_FIRST);
		}
		if (rc)
			break;
		if (conn_id_of(&key) >= end_id) {
			rc = MDB_NOTFOUND;
			break;
		}
		/* A damaged record is store_reap's to remove. */
		if (decode_conn(&value, &rec) == 0 &&
		    (rc = visit(ctx, &rec.info)))
			break;
	}
	mdb_cursor_close(cursor);
	if (rc == MDB_NOTFOUND) {
		rc = 0;
		*since = next_id;
	}
out:
	mdb_txn_abort(txn);
	return rc;
}

int
store_conn_foreach(struct store *store, conn_visit_fn visit, void *ctx)
{
	MDB_txn *txn = NULL;
	MDB_cursor *cursor = NULL;
	struct conn_rec rec;
	MDB_val key, value;
	int rc;

	if ((rc = mdb_txn_begin(store->env, NULL, MDB_RDONLY, &txn)))
		return rc;
	if ((rc = mdb_cursor_open(txn, store->conns, &cursor)))
		goto out;
	for (rc = mdb_cursor_get(cursor, &key, &value, MDB_FIRST); rc == 0;
	    rc = mdb_cursor_get(cursor, &key, &value, MDB_NEXT)) {
		if ((rc = decode_conn(&value, &rec)))
			break;
		if ((rc = visit(ctx, &rec.info)))
			break;
	}
	if (rc == MDB_NOTFOUND)
		rc = 0;
	mdb_cursor_close(cursor);
out:
	mdb_txn_abort(txn);
	return rc;
}

static int
count_on_conn(struct store *store, MDB_txn *txn, uint32_t id,
    const uint64_t moved_B[2])
{
	struct conn_rec rec;
	int rc;

	if (id == 0 || (moved_B[0] == 0 && moved_B[1] == 0))
		return 0;
	rc = get_conn(store, txn, id, &rec);
	if (rc == STORE_ENOCONN)
		return 0;	/* reaped while we ran: count nothing */
	if (rc)
		return rc;
	rec.info.bytes[0] += moved_B[0];
	rec.info.bytes[1] += moved_B[1];
	rec.info.last_unix_ns = realtime_ns();
	return put_conn(store, txn, &rec);
}

int
store_reserve(struct store *store, uint32_t id, const char *limit, int dir,
    uint64_t want_B, struct grant *grant)
{
	MDB_txn *txn = NULL;
	struct chain *chain;
	struct bucket *levels[CHAIN_MAX], *ceils[CHAIN_MAX];
	const struct bucket *neck = NULL;
	uint64_t debt_max_B[CHAIN_MAX];
	uint64_t moved_B[2] = { 0, 0 };
	uint64_t now_ns;
	size_t level, bottleneck = 0;
	int rc, borrowed[CHAIN_MAX];

	chain = store->chain;
	if ((rc = mdb_txn_begin(store->env, NULL, 0, &txn)))
		goto out;
	/* Read the clock holding the write lock: a time read before
	 * waiting for it could be older than a stamp another writer just
	 * set, and settling backwards would grant that time twice. */
	now_ns = monotonic_ns();
	if ((rc = load_chain(store, txn, limit, chain)))
		goto abort;
	for (level = 0; level < chain->depth; level++) {
		levels[level] = &chain->recs[level].bucket[dir];
		ceils[level] = chain->recs[level].ceil_Bps[dir] != CEIL_NONE ?
		    &chain->recs[level].ceil[dir] : NULL;
		debt_max_B[level] = level_debt_max(&chain->recs[level], dir);
		borrowed[level] = 0;
	}
	grant->quantum_B = chain_quantum(chain, dir, &grant->shaped);
	if (grant->shaped) {
		grant->bytes = bucket_draw_ceil(levels, ceils, debt_max_B,
		    chain->depth, want_B, now_ns, &grant->release_ns,
		    &bottleneck, &neck, borrowed);
		/* Refused past the debt cap: come back in this relay's own
		 * slot after T, not with every other refused relay at T. */
		if (grant->bytes == 0 && want_B > 0)
			grant->release_ns = saturating_add(grant->release_ns,
			    bucket_retry_spread_ns(neck->rate_Bps,
			    debt_max_B[bottleneck],
			    chain->recs[bottleneck].nconns,
			    retry_slot(chain, dir, id, grant->release_ns)));
	} else {
		grant->bytes = want_B;
		grant->release_ns = now_ns;
	}
	for (level = 0; level < chain->depth; level++) {
		chain->recs[level].total_B[dir] += grant->bytes;
		if (borrowed[level])
			chain->recs[level].borrowed_B[dir] += grant->bytes;
	}
	if ((rc = save_chain(store, txn, chain)))
		goto abort;
	moved_B[dir] = grant->bytes;
	if ((rc = count_on_conn(store, txn, id, moved_B)))
		goto abort;
	rc = txn_commit(store, txn);
	goto out;
abort:
	mdb_txn_abort(txn);
out:
	return rc;
}

int
store_account(struct store *store, uint32_t id, const char *limit,
    const uint64_t moved_B[2], int shaped[2], uint64_t quantum_B[2])
{
	MDB_txn *txn = NULL;
	struct chain *chain;
	size_t level;
	int rc, dir;

	chain = store->chain;
	if ((rc = mdb_txn_begin(store->env, NULL, 0, &txn)))
		goto out;
	if ((rc = load_chain(store, txn, limit, chain)))
		goto abort;
	for (dir = 0; dir < 2; dir++) {
		quantum_B[dir] = chain_quantum(chain, dir, &shaped[dir]);
		for (level = 0; level < chain->depth; level++)
			chain->recs[level].total_B[dir] += moved_B[dir];
	}
	if ((moved_B[0] || moved_B[1]) &&
	    (rc = save_chain(store, txn, chain)))
		goto abort;
	if ((rc = count_on_conn(store, txn, id, moved_B)))
		goto abort;
	rc = txn_commit(store, txn);
	goto out;
abort:
	mdb_txn_abort(txn);
out:
	return rc;
}

int
store_tick(struct store *store, bucket_tick_fn bucket_tick,
    conn_tick_fn conn_tick, void *ctx)
{
	MDB_txn *txn = NULL;
	MDB_cursor *cursor = NULL;
	struct bucket_rec bucket;
	struct limit_rec limit;
	struct conn_rec conn;
	struct limit_info info;
	char name[LIMIT_NAME_MAX + 1];
	MDB_val key, value;
	uint64_t now_ns;
	int rc, dir;

	if ((rc = mdb_txn_begin(store->env, NULL, 0, &txn)))
		return rc;
	/* The clock under the write lock (see store_reserve). */
	now_ns = monotonic_ns();
	if ((rc = mdb_cursor_open(txn, store->buckets, &cursor)))
		goto abort;
	for (rc = mdb_cursor_get(cursor, &key, &value, MDB_FIRST); rc == 0;
	    rc = mdb_cursor_get(cursor, &key, &value, MDB_NEXT)) {
		if ((rc = name_from_key(&key, name)) ||
		    (rc = decode_bucket(&value, &bucket)))
			goto abort;
		if ((rc = get_limit(store, txn, name, &limit)))
			goto abort;
		for (dir = 0; dir < 2; dir++) {
			bucket_settle(&bucket.bucket[dir], now_ns);
			bucket_settle(&bucket.ceil[dir], now_ns);
		}
		if (bucket_tick) {
			fill_info(&info, name, &limit, &bucket);
			bucket_tick(ctx, &info);
			store_info_back(&bucket, &info);
		}
		value.mv_size = bucket_rec_size(&bucket);
		value.mv_data = &bucket;
		if ((rc = mdb_cursor_put(cursor, &key, &value, MDB_CURRENT)))
			goto abort;
	}
	if (rc != MDB_NOTFOUND)
		goto abort;
	mdb_cursor_close(cursor);
	cursor = NULL;
	if (conn_tick) {
		if ((rc = mdb_cursor_open(txn, store->conns, &cursor)))
			goto abort;
		for (rc = mdb_cursor_get(cursor, &key, &value, MDB_FIRST);
		    rc == 0;
		    rc = mdb_cursor_get(cursor, &key, &value, MDB_NEXT)) {
			if ((rc = decode_conn(&value, &conn)))
				goto abort;
			uint64_t before[2] = { conn.info.rate_5s_Bps[0],
			    conn.info.rate_5s_Bps[1] };
			conn_tick(ctx, &conn.info);
			if (before[0] == conn.info.rate_5s_Bps[0] &&
			    before[1] == conn.info.rate_5s_Bps[1])
				continue;
			value.mv_size = sizeof(conn);
			value.mv_data = &conn;
			if ((rc = mdb_cursor_put(cursor, &key, &value,
			    MDB_CURRENT)))
				goto abort;
		}
		if (rc != MDB_NOTFOUND)
			goto abort;
		mdb_cursor_close(cursor);
		cursor = NULL;
	}
	return txn_commit(store, txn);
abort:
	if (cursor)
		mdb_cursor_close(cursor);
	mdb_txn_abort(txn);
	return rc;
}

int
store_reap(struct store *store, conn_alive_fn alive, void *ctx,
    unsigned *reaped)
{
	MDB_txn *txn = NULL;
	MDB_cursor *cursor = NULL;
	struct conn_rec conn;
	MDB_val key, value;
	int rc;

	*reaped = 0;
	if ((rc = mdb_txn_begin(store->env, NULL, 0, &txn)))
		return rc;
	if ((rc = mdb_cursor_open(txn, store->conns, &cursor)))
		goto abort;
	for (rc = mdb_cursor_get(cursor, &key, &value, MDB_FIRST); rc == 0;
	    rc = mdb_cursor_get(cursor, &key, &value, MDB_NEXT)) {
		/* A damaged record is reaped too: it can belong to no one. */
		if (decode_conn(&value, &conn) == 0 && alive(ctx, &conn.info))
			continue;
		if ((rc = mdb_cursor_del(cursor, 0)))
			goto abort;
		(*reaped)++;
	}
	if (rc != MDB_NOTFOUND)
		goto abort;
	mdb_cursor_close(cursor);
	cursor = NULL;
	if (*reaped == 0) {
		mdb_txn_abort(txn);
		return 0;
	}
	if ((rc = recount(store, txn)))
		goto abort;
	return txn_commit(store, txn);
abort:
	if (cursor)
		mdb_cursor_close(cursor);
	mdb_txn_abort(txn);
	return rc;
}

int
store_keep_headroom(struct store *store)
{
	MDB_envinfo info;
	MDB_stat stat;
	struct stat file_stat;
	uint64_t used_B, want_B, have_B;
	int fd, rc;

	if ((rc = mdb_env_info(store->env, &info)) ||
	    (rc = mdb_env_stat(store->env, &stat)) ||
	    (rc = mdb_env_get_fd(store->env, &fd)))
		return rc;
	used_B = ((uint64_t)info.me_last_pgno + 1) * stat.ms_psize;
	want_B = used_B + STORE_HEADROOM_B;
	if (want_B > info.me_mapsize)
		want_B = info.me_mapsize;
	if (fstat(fd, &file_stat) < 0)
		return errno;
	have_B = (uint64_t)file_stat.st_blocks * 512;
	if ((uint64_t)file_stat.st_size < have_B)
		have_B = (uint64_t)file_stat.st_size;
	if (have_B >= want_B)
		return 0;
	/* fallocate(2), not posix_fallocate(3): where the filesystem cannot
	 * preallocate, glibc's fallback writes a zero into every block it
	 * thinks is a hole, racing the relays' commits. */
	if (fallocate(fd, 0, 0, (off_t)want_B) == 0)
		return 0;
	/* Topped up a little short of the mark is no trouble yet. */
	if (have_B >= used_B + STORE_HEADROOM_B / 2)
		return 0;
	return errno;
}

int
store_reader_check(struct store *store, int *cleared)
{
	return mdb_reader_check(store->env, cleared);
}

int
store_boot_reset(struct store *store, int *was_reset)
{
	MDB_txn *txn = NULL;
	MDB_cursor *cursor = NULL;
	MDB_val key = { 7, "boot_id" }, value;
	struct bucket_rec bucket;
	char boot_id[64] = "", stored[64];
	uint64_t now_ns;
	size_t got = 0;
	ssize_t len;
	int fd, rc, dir;

	*was_reset = 0;
	fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		len = read(fd, boot_id, sizeof(boot_id) - 1);
		close(fd);
		if (len > 0)
			boot_id[len] = '\0';
	}
	if ((rc = mdb_txn_begin(store->env, NULL, 0, &txn)))
		return rc;
	/* The clock under the write lock (see store_reserve). */
	now_ns = monotonic_ns();
	rc = meta_get_txn(store, txn, "boot_id", stored, sizeof(stored), &got);
	if (rc && rc != MDB_NOTFOUND)
		goto abort;
	if (rc == 0 && got == strlen(boot_id) && memcmp(stored, boot_id, got) == 0) {
		mdb_txn_abort(txn);
		return 0;
	}
	/* A new boot: no relay of the old one lives, and its clock is gone. */
	if ((rc = mdb_drop(txn, store->conns, 0)))
		goto abort;
	if ((rc = mdb_cursor_open(txn, store->buckets, &cursor)))
		goto abort;
	for (rc = mdb_cursor_get(cursor, &key, &value, MDB_FIRST); rc == 0;
	    rc = mdb_cursor_get(cursor, &key, &value, MDB_NEXT)) {
		if ((rc = decode_bucket(&value, &bucket)))
			goto abort;
		bucket.nconns = 0;
		for (dir = 0; dir < 2; dir++) {
			bucket_init(&bucket.bucket[dir],
			    bucket.bucket[dir].rate_Bps,
			    bucket.bucket[dir].burst_B, now_ns);
			bucket_init(&bucket.ceil[dir],
			    bucket.ceil[dir].rate_Bps,
			    bucket.ceil[dir].burst_B, now_ns);
		}
		value.mv_size = bucket_rec_size(&bucket);
		value.mv_data = &bucket;
		if ((rc = mdb_cursor_put(cursor, &key, &value, MDB_CURRENT)))
			goto abort;
	}
	if (rc != MDB_NOTFOUND)
		goto abort;
	mdb_cursor_close(cursor);
	cursor = NULL;
	key.mv_size = 7;
	key.mv_data = "boot_id";
	value.mv_size = strlen(boot_id);
	value.mv_data = boot_id;
	if ((rc = mdb_put(txn, store->meta, &key, &value, 0)))
		goto abort;
	*was_reset = 1;
	return txn_commit(store, txn);
abort:
	if (cursor)
		mdb_cursor_close(cursor);
	mdb_txn_abort(txn);
	return rc;
}

int
store_meta_put(struct store *store, const char *key_name, const void *data,
    size_t size)
{
	MDB_txn *txn = NULL;
	MDB_val key = name_key(key_name), value = { size, (void *)data };
	int rc;

	if ((rc = mdb_txn_begin(store->env, NULL, 0, &txn)))
		return rc;
	if ((rc = mdb_put(txn, store->meta, &key, &value, 0))) {
		mdb_txn_abort(txn);
		return rc;
	}
	return txn_commit(store, txn);
}

int
store_meta_get(struct store *store, const char *key_name, void *data,
    size_t size, size_t *got)
{
	MDB_txn *txn = NULL;
	int rc;

	if ((rc = mdb_txn_begin(store->env, NULL, MDB_RDONLY, &txn)))
		return rc;
	rc = meta_get_txn(store, txn, key_name, data, size, got);
	mdb_txn_abort(txn);
	return rc;
}
