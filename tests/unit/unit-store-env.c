/*
 * store_env_stats, what shaperd's metrics report of the store as a whole:
 * records counted, the file's size, used and free pages, and the readers
 * and how far the oldest trails, with a real reader held in a child
 * process (which opens the store itself: never one across fork).
 */
#include <errno.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store.h"
#include "store-fixture.h"
#include "tap.h"

static void
put_or_bail(struct store *store, const char *name, uint64_t rate_Bps)
{
	struct limit_cfg cfg;
	int rc;

	memset(&cfg, 0, sizeof(cfg));
	cfg.rate_Bps[DIR_UP] = cfg.rate_Bps[DIR_DOWN] = rate_Bps;
	if ((rc = store_limit_put(store, name, &cfg)))
		bail("store_limit_put", rc);
}

/* The child: hold a read transaction on the state file, opened with LMDB
 * directly (the store's own readers never hold one while they wait: their
 * visitors run after the transaction ends), say "inside" on one pipe,
 * then wait on the other. */
static void
run_reader(const char *dir, int inside_fd, int release_fd)
{
	MDB_env *env;
	MDB_txn *txn;
	char path[600], byte = 'r';

	snprintf(path, sizeof(path), "%s/%s", dir, STORE_FILE);
	if (mdb_env_create(&env) || mdb_env_set_maxdbs(env, 8) ||
	    mdb_env_open(env, path, MDB_NOSUBDIR | MDB_RDONLY | MDB_NOTLS,
	    0660) || mdb_txn_begin(env, NULL, MDB_RDONLY, &txn))
		_exit(2);
	if (write(inside_fd, &byte, 1) != 1 || read(release_fd, &byte, 1) < 0)
		_exit(3);
	mdb_txn_abort(txn);
	mdb_env_close(env);
	_exit(0);
}

int
main(void)
{
	struct store *store;
	struct store_env_stats stats, later;
	struct conn_info conn;
	struct stat file;
	char path[600], byte;
	int inside[2], release[2], rc, i;
	pid_t child;

	fixture_start("unit-store-env");
	if ((rc = store_open(&store, top_dir, 0)))
		bail("store_open", rc);
	put_or_bail(store, "a", 1000);
	put_or_bail(store, "b", 2000);
	memset(&conn, 0, sizeof(conn));
	conn.pid = getpid();
	snprintf(conn.limit, sizeof(conn.limit), "a");
	if ((rc = store_conn_register(store, &conn)))
		bail("store_conn_register", rc);

	rc = store_env_stats(store, &stats);
	ok(rc == 0, "store_env_stats answers (%s)", store_strerror(rc));
	ok(stats.limits == 2 && stats.conns == 1,
	    "counts the records: %llu limits, %llu connections",
	    (unsigned long long)stats.limits, (unsigned long long)stats.conns);
	snprintf(path, sizeof(path), "%s/%s", top_dir, STORE_FILE);
	ok(stat(path, &file) == 0 && stats.file_B == (uint64_t)file.st_size,
	    "file size is the state file's (%llu)",
	    (unsigned long long)stats.file_B);
	ok(stats.page_B == (uint64_t)sysconf(_SC_PAGESIZE),
	    "page size %llu", (unsigned long long)stats.page_B);
	ok(stats.used_B > 0 && stats.used_B % stats.page_B == 0 &&
	    stats.used_B <= stats.map_B && stats.free_B < stats.used_B,
	    "used %llu and free %llu bytes are whole pages inside the map",
	    (unsigned long long)stats.used_B, (unsigned long long)stats.free_B);
	ok(stats.last_txnid >= 3, "transactions counted (%llu)",
	    (unsigned long long)stats.last_txnid);
	ok(stats.readers == 0 && stats.reader_lag_txns == 0,
	    "no reader, no lag (our own finished read does not count)");

	/* Commits free pages that a later commit can take back: with many
	 * rewrites of one record the free list is not empty. */
	for (i = 0; i < 20; i++)
		put_or_bail(store, "a", 1000 + (uint64_t)i);
	store_env_stats(store, &later);
	ok(later.last_txnid == stats.last_txnid + 20,
	    "20 commits later: 20 more transactions");

	if (pipe(inside) < 0 || pipe(release) < 0)
		bail("pipe", errno);
	fflush(stdout);
	if ((child = fork()) < 0)
		bail("fork", errno);
	if (child == 0) {
		close(inside[0]);
		close(release[1]);
		run_reader(top_dir, inside[1], release[0]);
	}
	close(inside[1]);
	close(release[0]);
	ok(read(inside[0], &byte, 1) == 1, "a reader holds a snapshot");
	for (i = 0; i < 7; i++)
		put_or_bail(store, "b", 3000 + (uint64_t)i);
	rc = store_env_stats(store, &later);
	ok(rc == 0 && later.readers == 1, "one reader seen (%u)",
	    later.readers);
	ok(later.reader_lag_txns == 7,
	    "it trails by the 7 commits since its snapshot (%llu)",
	    (unsigned long long)later.reader_lag_txns);
	byte = 'g';
	if (write(release[1], &byte, 1) != 1)
		bail("write", errno);
	waitpid(child, &rc, 0);
	ok(WIFEXITED(rc) && WEXITSTATUS(rc) == 0, "the reader finished");
	store_env_stats(store, &later);
	ok(later.readers == 0 && later.reader_lag_txns == 0,
	    "then no reader and no lag");

	store_close(store);
	remove_tree();
	return done_testing();
}
