/*
 * The live store (STORE_FILE, MDB_NOSYNC, in the runtime dir): which dir
 * it lives in, opening it, and making it again from the configuration
 * when it is missing, damaged, of another version or foreign (one log
 * line, never a refusal), in place while it is used (store_recover), or
 * when another process made it again (store_follow_live).  The
 * configuration and its copy into the live store are in store-config.c;
 * the environment both go through (env_open, open_dbs) in store.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "store.h"
#include "store-impl.h"

/* Whether paths A and B name one dir: the same text, or the same dir
 * (only looked at with stat, never opened). */
static int
same_dir(const char *a, const char *b)
{
	struct stat a_stat, b_stat;

	return strcmp(a, b) == 0 || (stat(a, &a_stat) == 0 &&
	    stat(b, &b_stat) == 0 && S_ISDIR(a_stat.st_mode) &&
	    a_stat.st_dev == b_stat.st_dev && a_stat.st_ino == b_stat.st_ino);
}

int
store_live_dir(const char *dir, char *run, size_t run_size)
{
	const char *base, *home, *override, *bound;
	char user_dir[4096] = "";
	int len;

	/* IPRELAY_RUNTIME_DIR is the runtime dir of one state dir, the one
	 * the environment names (IPRELAY_STATE_DIR, else the system's), so
	 * that a -S DIR of another store never shares its live store. */
	override = getenv("IPRELAY_RUNTIME_DIR");
	bound = getenv("IPRELAY_STATE_DIR");
	if (bound == NULL || *bound == '\0')
		bound = STORE_SYSTEM_DIR;
	if (override && *override && same_dir(dir, bound)) {
		if (*override != '/')
			return STORE_ERUNTIME;
		len = snprintf(run, run_size, "%s", override);
		return len < 0 || (size_t)len >= run_size ? ENAMETOOLONG : 0;
	}
	if ((base = getenv("XDG_STATE_HOME")) && *base == '/')
		snprintf(user_dir, sizeof(user_dir), "%s/iprelay", base);
	else if ((home = getenv("HOME")) && *home == '/')
		snprintf(user_dir, sizeof(user_dir), "%s/.local/state/iprelay",
		    home);
	base = getenv("XDG_RUNTIME_DIR");
	if (strcmp(dir, STORE_SYSTEM_DIR) == 0)
		len = snprintf(run, run_size, "%s", STORE_RUNTIME_DIR);
	else if (user_dir[0] && strcmp(dir, user_dir) == 0 && base &&
	    *base == '/')
		len = snprintf(run, run_size, "%s/iprelay", base);
	else
		len = snprintf(run, run_size, "%s", dir);
	if (len < 0 || (size_t)len >= run_size)
		return ENAMETOOLONG;
	return 0;
}

/* What a live file that fails to open is: damage (or another version's,
 * or another program's file under our name), to be thrown away and made
 * again from the configuration; anything else is a failure to report. */
static int
live_unusable(int rc)
{
	return rc == STORE_EDAMAGED || rc == STORE_EFOREIGN ||
	    rc == STORE_EVERSION || rc == MDB_INVALID ||
	    rc == MDB_CORRUPTED || rc == MDB_PAGE_NOTFOUND ||
	    rc == MDB_VERSION_MISMATCH || rc == MDB_INCOMPATIBLE ||
	    rc == MDB_BAD_TXN;
}

static int
live_open(struct store *store, int *created)
{
	static const char *const names[] = { "limits", "buckets", "conns",
	    NULL };
	MDB_dbi dbis[3];
	int rc;

	rc = env_open(&store->run, STORE_FILE, 1, MDB_NOSUBDIR | MDB_NOSYNC |
	    MDB_NORDAHEAD | MDB_NOTLS, STORE_MAPSIZE, &store->env,
	    &store->files, created);
	if (rc)
		return rc;
	if ((rc = open_dbs(store->env, STORE_FORMAT_TAG, 1, &store->meta,
	    names, dbis))) {
		mdb_env_close(store->env);
		store->env = NULL;
		statedir_lmdb_done(&store->files);
		store->files.data_fd = store->files.lock_fd = -1;
		return rc;
	}
	store->limits = dbis[0];
	store->buckets = dbis[1];
	store->conns = dbis[2];
	return 0;
}

/* Remove the live files so that they are made again, unless the name
 * is no longer the file OURS (another process remade it already): under
 * the exclusive flock. */
static int
live_remove(struct store *store, const struct stat *ours, int why_rc)
{
	struct stat named;

	if (ours && (fstatat(store->run.fd, STORE_FILE, &named,
	    AT_SYMLINK_NOFOLLOW) < 0 || named.st_dev != ours->st_dev ||
	    named.st_ino != ours->st_ino))
		return 0;
	log_warn("the live state %s/%s is unusable (%s): made again from the "
	    "configuration %s/%s", store->run.path, STORE_FILE,
	    store_strerror(why_rc), store->dir.path, STORE_CONFIG_FILE);
	if ((unlinkat(store->run.fd, STORE_FILE, 0) < 0 && errno != ENOENT) ||
	    (unlinkat(store->run.fd, STORE_FILE "-lock", 0) < 0 &&
	    errno != ENOENT))
		return errno;
	return 0;
}

/* The live store, opened, or made again from the configuration when it
 * is damaged: one line says so.  Under the configuration file's flock,
 * shared for an open, exclusive to remove and remake the files, so that
 * two processes never remake it over each other; a process that has the
 * old file open goes on with it (see store_is_current) until it reopens.
 * OURS: the file this process had open and found damaged inside (records
 * the file check cannot see), to be remade unless someone did already. */
int
live_open_or_rebuild(struct store *store, const struct stat *ours,
    int ours_rc, int *fresh)
{
	int rc, lock_fd = store->cfg_files.data_fd;

	*fresh = 0;
	if (ours == NULL) {
		flock(lock_fd, LOCK_SH);
		rc = live_open(store, fresh);
		if (rc == 0 || !live_unusable(rc)) {
			flock(lock_fd, LOCK_UN);
			return rc;
		}
	}
	flock(lock_fd, LOCK_EX);
	if (ours && (rc = live_remove(store, ours, ours_rc)))
		goto out;
	/* Another process may have remade it while we waited. */
	rc = live_open(store, fresh);
	if (rc && live_unusable(rc)) {
		if ((rc = live_remove(store, NULL, rc)) == 0)
			rc = live_open(store, fresh);
		*fresh = 1;
	}
	if (ours)
		*fresh = 1;
out:
	flock(lock_fd, LOCK_UN);
	return rc;
}

/* An error a damaged live store gives while it is used. */
static int
live_damage(int rc)
{
	return live_unusable(rc) || rc == MDB_PANIC || rc == MDB_BAD_TXN;
}

#define RECOVER_PERIOD_NS	NS_PER_SEC

/* Reopen the live store (made again when OURS is given) in place; the old
 * environment is closed only once the new one is open, so a failure
 * leaves the store usable as it was.  The new file is never the old one
 * (removed, or already remade by another process), so both are never
 * open at once on one file. */
static int
live_reopen(struct store *store, const struct stat *ours, int ours_rc)
{
	MDB_env *old_env = store->env;
	struct statedir_lmdb old_files = store->files;
	MDB_dbi old_dbis[4] = { store->limits, store->buckets, store->conns,
	    store->meta };
	int fresh, rc;

	store->env = NULL;
	rc = live_open_or_rebuild(store, ours, ours_rc, &fresh);
	if (rc) {
		store->env = old_env;
		store->files = old_files;
		store->limits = old_dbis[0];
		store->buckets = old_dbis[1];
		store->conns = old_dbis[2];
		store->meta = old_dbis[3];
		return rc;
	}
	mdb_env_close(old_env);
	statedir_lmdb_done(&old_files);
	if ((rc = config_sync(store, fresh, NULL)) == 0 && fresh)
		(void)store_boot_stamp(store);	/* as store_open does */
	return rc;
}

int
store_recover(struct store *store, int rc)
{
	struct stat ours;
	uint64_t now_ns = monotonic_ns();

	if (!live_damage(rc))
		return rc;
	/* A fault that remaking does not cure must not remake it in a
	 * loop: once a second at most. */
	if (store->recovered_ns && now_ns - store->recovered_ns <
	    RECOVER_PERIOD_NS)
		return rc;
	store->recovered_ns = now_ns;
	if (fstat(store->files.data_fd, &ours) < 0)
		return rc;
	return live_reopen(store, &ours, rc);
}

int
store_follow_live(struct store *store)
{
	struct stat open_stat, path_stat;
	MDB_envinfo info;
	MDB_stat env_stat;

	/* Cut short under us (the pages past the end would be SIGBUS on the
	 * next read of them): made again now, before the tick reads.  The
	 * newest commit first, then the size: a commit writes its pages
	 * before its meta page, so the file is at least as long as any meta
	 * read before it says.  Read the other way round, a relay's commit
	 * between the two that grew a file with no room allocated ahead
	 * (before the first store_keep_headroom) made a sound file look
	 * cut short, and remaking it lost every relay's record. */
	if (mdb_env_info(store->env, &info) == 0 &&
	    mdb_env_stat(store->env, &env_stat) == 0 &&
	    fstat(store->files.data_fd, &open_stat) == 0 &&
	    (uint64_t)open_stat.st_size < ((uint64_t)info.me_last_pgno + 1) *
	    env_stat.ms_psize)
		return store_recover(store, STORE_EDAMAGED);
	if (fstat(store->files.data_fd, &open_stat) == 0 &&
	    fstatat(store->run.fd, STORE_FILE, &path_stat,
	    AT_SYMLINK_NOFOLLOW) == 0 && open_stat.st_dev == path_stat.st_dev &&
	    open_stat.st_ino == path_stat.st_ino)
		return 0;
	return live_reopen(store, NULL, 0);
}

int
store_is_current(struct store *store, const char *dir)
{
	struct stat open_stat, path_stat;
	char path[4200];
	int fd;

	(void)dir;
	if (snprintf(path, sizeof(path), "%s/%s", store->run.path,
	    STORE_FILE) >= (int)sizeof(path))
		return 0;
	if (mdb_env_get_fd(store->env, &fd) || fstat(fd, &open_stat) < 0 ||
	    stat(path, &path_stat) < 0)
		return 0;
	return open_stat.st_dev == path_stat.st_dev &&
	    open_stat.st_ino == path_stat.st_ino && check_file(path) == 0;
}
