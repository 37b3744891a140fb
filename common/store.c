/*
 * The state store's LMDB environments: opening one (env_open, open_dbs,
 * the format tag), opening and closing the store as a whole, the state
 * dir, errors and exit codes, clocks, the meta records, commits, the
 * file's headroom and the environment's figures (for shaperd's metrics).
 * The layout and rules are in store.h; the records in store-impl.h; the
 * live store's dir, open and remaking in store-live.c, the configuration
 * in store-config.c, the file check before LMDB maps the file in
 * store-file.c, limits in store-limit.c, connections in store-conn.c,
 * draws and the tick in store-draw.c.
 */
#include <errno.h>
#include <fcntl.h>
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
#include "store-impl.h"

/* Every opener must ask for the same reader table: the first opener of the
 * lock file fixes its size.  Relays take no reader slot (they only write),
 * so this bounds concurrent readers (iprelay-limit, the refiller), not
 * relays; it is still sized past the 8192-relay target. */
#define STORE_MAXREADERS	8448
#define STORE_MAXDBS		8

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
	case STORE_ECEILGLOBAL: return "a global limit cannot have a ceiling";
	case STORE_ECAPS: return "over the limit's cap on connections";
	case STORE_ECAPSRC:
		return "over the limit's cap on connections from one source";
	case STORE_ECONFIG: return "the configuration file is damaged: move "
	    "it aside and restore the limits from a backup with "
	    "'iprelay-limit import FILE' (of 'iprelay-limit export'), or "
	    "set them again";
	case STORE_ENOHOSTS: return "a global limit's floor of global / hosts "
	    "needs the host count";
	case STORE_ERUNTIME: return "not an absolute path";
	case STORE_EUPGRADE: return "a state dir of an older version (no "
	    STORE_CONFIG_FILE " yet), which only a user who may write it can "
	    "upgrade: run 'iprelay-limit list' once as its owner or root, or "
	    "start shaperd";
	case MDB_MAP_FULL: return "state file is full";
	case MDB_INVALID: return "not an LMDB file (damaged or foreign)";
	case MDB_CORRUPTED: return "state file is damaged";
	case MDB_PAGE_NOTFOUND: return "state file is damaged (page not found)";
	case MDB_VERSION_MISMATCH: return "state file of another LMDB version";
	case MDB_INCOMPATIBLE: return "not an iprelay state file";
	case MDB_READERS_FULL: return "too many concurrent readers";
	case STATEDIR_EREFUSED: return statedir_last_why();
	default: return mdb_strerror(rc);
	}
}

int
store_exit_code(int rc)
{
	if (rc == STORE_EFOREIGN || rc == STORE_EVERSION ||
	    rc == STORE_EDAMAGED || rc == STATEDIR_EREFUSED ||
	    rc == STORE_ECONFIG || rc == STORE_EUPGRADE ||
	    rc == STORE_ERUNTIME)
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

/* The system store serves root, and a user who may use it (a member of
 * its group): one who may read its state file, or write the dir. */
static int
system_store_usable(void)
{
	return geteuid() == 0 ||
	    access(STORE_SYSTEM_DIR "/" STORE_CONFIG_FILE, R_OK) == 0 ||
	    access(STORE_SYSTEM_DIR "/" STORE_FILE, R_OK) == 0 ||
	    access(STORE_SYSTEM_DIR, W_OK | X_OK) == 0;
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
	else if (system_store_usable())
		len = snprintf(dir, dir_size, STORE_SYSTEM_DIR);
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

const char *
store_dir_source(const char *option)
{
	const char *from_env = getenv("IPRELAY_STATE_DIR");

	if (option && *option)
		return "given with -S";
	if (from_env && *from_env)
		return "from IPRELAY_STATE_DIR";
	if (system_store_usable())
		return "the system store";
	if (access(STORE_SYSTEM_DIR, F_OK) == 0)
		return "your own store: the system store " STORE_SYSTEM_DIR
		    " is not open to you (ask to join its group, or use -S)";
	return "your own store";
}

static int
check_format(MDB_txn *txn, MDB_dbi meta, const char *tag_name)
{
	MDB_val key = { 6, "format" }, value;
	char tag[64];
	int rc;

	rc = mdb_get(txn, meta, &key, &value);
	if (rc == MDB_NOTFOUND)
		return STORE_EFOREIGN;
	if (rc)
		return rc;
	snprintf(tag, sizeof(tag), "%s %d", tag_name, STORE_FORMAT);
	if (value.mv_size == strlen(tag) &&
	    memcmp(value.mv_data, tag, value.mv_size) == 0)
		return 0;
	if (value.mv_size > strlen(tag_name) &&
	    memcmp(value.mv_data, tag_name, strlen(tag_name)) == 0)
		return STORE_EVERSION;
	return STORE_EFOREIGN;
}

/* LMDB reports a short write as EIO ("Input/output error"); on a full
 * filesystem that is the usual cause, and saying so tells the admin what
 * to fix.  Only a filesystem with no block left turns EIO into ENOSPC. */
int
env_commit(MDB_env *env, MDB_txn *txn)
{
	struct statvfs fs;
	int fd, rc;

	rc = mdb_txn_commit(txn);
	if (rc == EIO && mdb_env_get_fd(env, &fd) == 0 &&
	    fstatvfs(fd, &fs) == 0 && fs.f_bavail == 0)
		rc = ENOSPC;
	return rc;
}

int
txn_commit(struct store *store, MDB_txn *txn)
{
	return env_commit(store->env, txn);
}

/* A limit change needs a few pages; refused on a filesystem about to be
 * full, so that the state file's headroom is left to the relays' draws. */
int
fs_nearly_full(struct store *store)
{
	struct statvfs fs;
	int fd;

	return mdb_env_get_fd(store->env, &fd) == 0 && fstatvfs(fd, &fs) == 0 &&
	    (uint64_t)fs.f_bavail * fs.f_frsize < STORE_FS_FREE_MIN_B;
}

/* The meta database (tagged TAG_NAME: a fresh file gets the tag) and
 * the named databases NAMES (NULL-terminated). */
int
open_dbs(MDB_env *env, const char *tag_name, int create, MDB_dbi *meta,
    const char *const *names, MDB_dbi *dbis)
{
	MDB_txn *txn = NULL;
	MDB_dbi main_dbi;
	MDB_stat main_stat;
	unsigned open_flags = create ? MDB_CREATE : 0;
	char tag[64];
	MDB_val key, value;
	size_t index;
	int rc, fresh = 0;

	rc = mdb_txn_begin(env, NULL, create ? 0 : MDB_RDONLY, &txn);
	if (rc)
		return rc;
	rc = mdb_dbi_open(txn, NULL, 0, &main_dbi);
	if (rc)
		goto abort;
	rc = mdb_stat(txn, main_dbi, &main_stat);
	if (rc)
		goto abort;
	rc = mdb_dbi_open(txn, "meta", 0, meta);
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
		rc = mdb_dbi_open(txn, "meta", MDB_CREATE, meta);
	}
	if (rc == MDB_INCOMPATIBLE)
		rc = STORE_EFOREIGN;
	if (rc)
		goto abort;
	if (fresh) {
		snprintf(tag, sizeof(tag), "%s %d", tag_name, STORE_FORMAT);
		key.mv_size = 6;
		key.mv_data = "format";
		value.mv_size = strlen(tag);
		value.mv_data = tag;
		rc = mdb_put(txn, *meta, &key, &value, 0);
		if (rc)
			goto abort;
	} else if ((rc = check_format(txn, *meta, tag_name)))
		goto abort;
	for (index = 0; names[index]; index++)
		if ((rc = mdb_dbi_open(txn, names[index], open_flags,
		    &dbis[index]))) {
			if (rc == MDB_NOTFOUND || rc == MDB_INCOMPATIBLE)
				rc = STORE_EFOREIGN;
			goto abort;
		}
	return mdb_txn_commit(txn);
abort:
	mdb_txn_abort(txn);
	return rc;
}

static char failed_path[4200];

void
store_failed_at(const struct statedir *dir, const char *name)
{
	snprintf(failed_path, sizeof(failed_path), "%s/%s", dir->path, name);
}

const char *
store_failed_path(void)
{
	return failed_path;
}

/* One LMDB environment NAME in DIR: its files opened and checked first
 * (statedir.h), the data file checked for damage before LMDB maps it,
 * then mapped.  *created says whether this call made the data file. */
int
env_open(struct statedir *dir, const char *name, int create,
    unsigned env_flags, size_t map_B, MDB_env **env,
    struct statedir_lmdb *files, int *created)
{
	mode_t old_umask;
	int rc, env_fd;

	*env = NULL;
	*created = 0;
	files->data_fd = files->lock_fd = -1;
	store_failed_at(dir, name);
	old_umask = umask(007);
	rc = statedir_lmdb_prepare(dir, name, create, files, NULL, 0);
	umask(old_umask);
	if (rc == ENOENT && !create)
		return STORE_ENOSTORE;
	if (rc)
		return rc;
	*created = files->data_created;
	/* A file we just made is empty until LMDB writes it. */
	if (!files->data_created && (rc = check_file(files->check_path)))
		goto abandon;
	if (files->read_only)
		env_flags |= MDB_RDONLY;
	if ((rc = mdb_env_create(env)))
		goto abandon;
	if ((rc = mdb_env_set_maxreaders(*env, STORE_MAXREADERS)) ||
	    (rc = mdb_env_set_maxdbs(*env, STORE_MAXDBS)) ||
	    (rc = mdb_env_set_mapsize(*env, map_B)))
		goto close_env;
	old_umask = umask(007);
	rc = mdb_env_open(*env, files->path, env_flags, 0660);
	umask(old_umask);
	if (rc == EACCES && !create && !(env_flags & MDB_RDONLY)) {
		/* A reader without write access to the lock file. */
		mdb_env_close(*env);
		if ((rc = mdb_env_create(env)))
			goto abandon;
		mdb_env_set_maxreaders(*env, STORE_MAXREADERS);
		mdb_env_set_maxdbs(*env, STORE_MAXDBS);
		mdb_env_set_mapsize(*env, map_B);
		rc = mdb_env_open(*env, files->path, env_flags | MDB_RDONLY,
		    0660);
	}
	if (rc == 0 && (rc = mdb_env_get_fd(*env, &env_fd)) == 0)
		rc = statedir_lmdb_verify(files, env_fd, NULL, 0);
	if (rc == 0)
		return 0;
close_env:
	mdb_env_close(*env);
	*env = NULL;
abandon:
	statedir_lmdb_abandon(dir, name, files);
	files->data_fd = files->lock_fd = -1;
	return rc;
}

/* A store of one file, from before the configuration had its own: its
 * state file in DIR and no configuration beside it.  Only looked at
 * (lstat), never opened: the open that follows checks the dir. */
static int
old_store_waits(const char *dir)
{
	char path[4200];
	struct stat st;

	if (snprintf(path, sizeof(path), "%s/%s", dir, STORE_CONFIG_FILE) >=
	    (int)sizeof(path) || lstat(path, &st) == 0 || errno != ENOENT)
		return 0;
	snprintf(path, sizeof(path), "%s/%s", dir, STORE_FILE);
	return lstat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int
store_open(struct store **out, const char *dir, int flags)
{
	struct store *store;
	char run_dir[4096];
	size_t taken;
	int rc, cfg_unborn = 0, live_fresh = 0, boot_reset = 0;
	int create = !(flags & STORE_RDONLY), upgrading = 0;

	*out = NULL;
	/* A reader opening a store of an older version upgrades it, as a
	 * writer would (its limits become the configuration): else it
	 * would find no configuration and show no limits at all.  One who
	 * may not write there is told so. */
	if (!create && old_store_waits(dir))
		create = upgrading = 1;
	snprintf(failed_path, sizeof(failed_path), "%s", dir);
	if ((rc = store_live_dir(dir, run_dir, sizeof(run_dir)))) {
		if (rc == STORE_ERUNTIME)
			snprintf(failed_path, sizeof(failed_path),
			    "IPRELAY_RUNTIME_DIR=%s",
			    getenv("IPRELAY_RUNTIME_DIR"));
		return rc;
	}
	store = calloc(1, sizeof(*store));
	if (store == NULL)
		return ENOMEM;
	store->files.data_fd = store->files.lock_fd = -1;
	store->cfg_files.data_fd = store->cfg_files.lock_fd = -1;
	store->dir.fd = store->run.fd = -1;
	store->chain = malloc(sizeof(*store->chain));
	if (store->chain == NULL) {
		free(store);
		return ENOMEM;
	}
	/* Both dirs checked (root: dropped to their owner) and LMDB's files
	 * opened without following links and checked, before LMDB opens
	 * them by a path that leads to exactly those (statedir.h).  A
	 * reader makes the live store too: it is made from the
	 * configuration, which it only reads. */
	rc = statedir_enter_pair(&store->dir, dir, &store->run, run_dir,
	    create, NULL, 0);
	if (rc == ENOENT && !create)
		rc = STORE_ENOSTORE;
	if (rc == 0)
		rc = config_open(store, create, flags & STORE_CONFIG_READ,
		    &cfg_unborn);
	if (rc)
		goto fail;
	if ((rc = live_open_or_rebuild(store, NULL, 0, &live_fresh)))
		goto fail;
	/* The first open by this version of a store of one file in the
	 * dir the live store stays in (-S DIR): its limits become the
	 * configuration's, and the file goes on as the live store. */
	if (cfg_unborn && !live_fresh) {
		if ((rc = config_adopt_live(store, store->env, store->limits,
		    &taken)))
			goto fail;
		if (taken)
			log_line(LOG_NOTICE, "took the %zu limits of %s/%s, a "
			    "state file of an older version, as the "
			    "configuration %s/%s; that file goes on as the "
			    "live state", taken, store->run.path, STORE_FILE,
			    store->dir.path, STORE_CONFIG_FILE);
	}
	/* A live store made now is filled from the configuration.  A relay
	 * (STORE_CONFIG_READ) takes an existing copy as it is: comparing
	 * generations costs it a read of the configuration and a live write
	 * transaction on every start, and a copy left a generation behind
	 * (a writer killed between its two commits) is brought up to date
	 * by the refiller within a second (store_follow_config), or by the
	 * next writer's open.  A reader who may not write the live store
	 * reads its copy as it is. */
	if (live_fresh || !(flags & STORE_CONFIG_READ))
		rc = config_sync(store, live_fresh, NULL);
	/* Unstamped, it would be a past boot's to the first refiller.  A
	 * stamp that cannot be written leaves it so (the records of relays
	 * registered before that refiller are then dropped, as before). */
	if (rc == 0 && live_fresh)
		(void)store_boot_stamp(store);
	/* One of a past boot (on disk): its records are dead relays', reset
	 * before this process registers.  A reader who may not write it
	 * leaves that to the next writer. */
	if (rc == 0 && !live_fresh)
		(void)store_boot_follow(store, &boot_reset);
	if (rc && !(create == 0 && (rc == EACCES || rc == EPERM ||
	    rc == EROFS)))
		goto fail;
	*out = store;
	return 0;
fail:
	store_close(store);
	if (upgrading && (rc == EACCES || rc == EPERM || rc == EROFS ||
	    rc == ENOENT))
		rc = STORE_EUPGRADE;
	return rc;
}

const struct statedir *
store_dir(const struct store *store)
{
	return &store->dir;
}

void
store_close(struct store *store)
{
	if (store == NULL)
		return;
	if (store->env)
		mdb_env_close(store->env);
	if (store->cfg_env)
		mdb_env_close(store->cfg_env);
	/* Only now: closing our fd of the lock file would drop LMDB's
	 * fcntl locks on it. */
	if (store->files.data_fd >= 0 || store->files.lock_fd >= 0)
		statedir_lmdb_done(&store->files);
	if (store->cfg_files.data_fd >= 0 || store->cfg_files.lock_fd >= 0)
		statedir_lmdb_done(&store->cfg_files);
	statedir_close(&store->run);
	statedir_close(&store->dir);
	free(store->chain);
	free(store);
}

int
store_sync(struct store *store)
{
	int rc;

	if ((rc = mdb_env_sync(store->env, 1)))
		return rc;
	return mdb_env_sync(store->cfg_env, 1);
}

int
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

struct reader_list {
	struct store_reader *readers;
	size_t cap, count;
};

/* One line of mdb_reader_list: "PID THREAD TXNID", TXNID "-" when the
 * slot holds no snapshot now (it is kept for the process's next one). */
static int
reader_line(const char *line, void *ctx)
{
	struct reader_list *list = ctx;
	unsigned long long txnid;
	size_t thread;
	int pid;

	if (sscanf(line, "%d %zx %llu", &pid, &thread, &txnid) != 3)
		return 0;
	if (list->count < list->cap) {
		list->readers[list->count].pid = (pid_t)pid;
		list->readers[list->count].txnid = txnid;
	}
	list->count++;
	return 0;
}

int
store_readers(struct store *store, struct store_reader *readers, size_t cap,
    size_t *count, uint64_t *last_txnid)
{
	struct reader_list list = { readers, cap, 0 };
	MDB_envinfo info;
	int rc;

	*count = 0;
	if ((rc = mdb_env_info(store->env, &info)))
		return rc;
	*last_txnid = info.me_last_txnid;
	if (mdb_reader_list(store->env, reader_line, &list) < 0)
		return EIO;
	*count = list.count < cap ? list.count : cap;
	return 0;
}

int
store_reader_check(struct store *store, int *cleared)
{
	int cfg_cleared = 0, rc;

	/* Relays read the configuration's generation when they open. */
	(void)mdb_reader_check(store->cfg_env, &cfg_cleared);
	rc = mdb_reader_check(store->env, cleared);
	if (rc == 0 && cleared)
		*cleared += cfg_cleared;
	return rc;
}

/* mdb_reader_list's lines, "%10d %zx %s\n" (pid, thread, txnid or "-"),
 * after a header line: the oldest snapshot still read and how many. */
struct reader_scan {
	uint64_t oldest_txnid;	/* UINT64_MAX: nobody reads */
	uint32_t readers;
};

static int
scan_reader(const char *line, void *ctx)
{
	struct reader_scan *scan = ctx;
	unsigned long long txnid;
	int pid;

	if (sscanf(line, "%d %*x %llu", &pid, &txnid) != 2)
		return 0;	/* the header, or a slot not in a txn */
	scan->readers++;
	if (txnid < scan->oldest_txnid)
		scan->oldest_txnid = txnid;
	return 0;
}

int
store_env_stats(struct store *store, struct store_env_stats *stats)
{
	MDB_envinfo info;
	MDB_stat stat;
	MDB_txn *txn = NULL;
	MDB_cursor *cursor = NULL;
	MDB_val key, value;
	struct reader_scan scan = { UINT64_MAX, 0 };
	struct stat file;
	uint64_t free_pages = 0;
	size_t pages;
	int rc, fd;

	memset(stats, 0, sizeof(*stats));
	if ((rc = mdb_txn_begin(store->env, NULL, MDB_RDONLY, &txn)))
		return rc;
	/* LMDB's free list (database 0): each record a count of pages and
	 * their numbers, as mdb_stat -f reads it. */
	if ((rc = mdb_cursor_open(txn, 0, &cursor)))
		goto out;
	for (rc = mdb_cursor_get(cursor, &key, &value, MDB_FIRST); rc == 0;
	    rc = mdb_cursor_get(cursor, &key, &value, MDB_NEXT)) {
		if (value.mv_size < sizeof(size_t))
			continue;
		memcpy(&pages, value.mv_data, sizeof(pages));
		free_pages += pages;
	}
	mdb_cursor_close(cursor);
	if (rc != MDB_NOTFOUND)
		goto out;
	if ((rc = mdb_stat(txn, store->limits, &stat)))
		goto out;
	stats->limits = stat.ms_entries;
	if ((rc = mdb_stat(txn, store->conns, &stat)))
		goto out;
	stats->conns = stat.ms_entries;
	rc = mdb_env_stat(store->env, &stat);
out:
	mdb_txn_abort(txn);
	if (rc)
		return rc;
	/* After the txn: our own slot then holds no snapshot. */
	if ((rc = mdb_env_info(store->env, &info)))
		return rc;
	stats->page_B = stat.ms_psize;
	stats->map_B = info.me_mapsize;
	stats->used_B = ((uint64_t)info.me_last_pgno + 1) * stat.ms_psize;
	stats->free_B = free_pages * stat.ms_psize;
	stats->last_txnid = info.me_last_txnid;
	if (mdb_reader_list(store->env, scan_reader, &scan) < 0)
		return EIO;
	stats->readers = scan.readers;
	stats->reader_lag_txns = scan.oldest_txnid == UINT64_MAX ||
	    scan.oldest_txnid > info.me_last_txnid ? 0 :
	    info.me_last_txnid - scan.oldest_txnid;
	if (mdb_env_get_fd(store->env, &fd) == 0 && fstat(fd, &file) == 0)
		stats->file_B = (uint64_t)file.st_size;
	return 0;
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
