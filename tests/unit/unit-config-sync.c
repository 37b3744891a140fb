/*
 * config_sync under two writers: the live store must end at the latest
 * configuration whatever order the copies take the live write lock in.
 *
 * The interleaving that lost a change: one copy takes its snapshot of the
 * configuration, a writer commits a newer one and copies it to the live
 * store, then the first copy gets the lock and writes its older snapshot
 * over it (a cap just set was gone until the next copy).  This test makes
 * that interleaving happen every time: mdb_txn_begin is wrapped, and a
 * child's live write transaction waits on a pipe before it begins while
 * the parent commits and copies a newer configuration.
 */
#include <dlfcn.h>
#include <errno.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store-fixture.h"
#include "store-impl.h"

/* In the child only: the next write transaction waits for the parent. */
static int pause_next_write;
static int at_lock_fd = -1, go_fd = -1;

/* Every mdb_txn_begin of the program, the store's included, comes here:
 * the store's objects are linked into it and liblmdb is a shared
 * library, so this definition is the one they bind to. */
int
mdb_txn_begin(MDB_env *env, MDB_txn *parent, unsigned int flags,
    MDB_txn **txn)
{
	static int (*real_begin)(MDB_env *, MDB_txn *, unsigned int,
	    MDB_txn **);
	char byte = 'w';

	if (real_begin == NULL)
		*(void **)&real_begin = dlsym(RTLD_NEXT, "mdb_txn_begin");
	if (pause_next_write && !(flags & MDB_RDONLY)) {
		pause_next_write = 0;
		if (write(at_lock_fd, &byte, 1) != 1 ||
		    read(go_fd, &byte, 1) != 1)
			_exit(3);
	}
	return real_begin(env, parent, flags, txn);
}

static void
set_cap(const char *dir, uint32_t cap, int *copied_after)
{
	struct limit_cfg cfg = { .max_conns = cap };
	struct store *store;
	int rc;

	if ((rc = store_open(&store, dir, 0)))
		bail("store_open", rc);
	if ((rc = store_limit_update(store, "web", &cfg,
	    LIMIT_FIELD_MAX_CONNS, NULL)))
		bail("store_limit_update", rc);
	if (copied_after && (rc = config_sync(store, 0, copied_after)))
		bail("config_sync", rc);
	store_close(store);
}

/* The child: a store opened before the parent's change, whose next copy
 * stops before its live write transaction until the parent says go.
 * After it, the child reads what its live store holds, without copying:
 * exit 0 when the cap is there, 5 when it is not. */
static void
run_late_copy(const char *dir, int opened_fd)
{
	struct limit_info info;
	struct store *store;
	char byte = 'o';
	int rc;

	if ((rc = store_open(&store, dir, 0)))
		_exit(2);
	if (write(opened_fd, &byte, 1) != 1)
		_exit(3);
	pause_next_write = 1;
	if ((rc = config_sync(store, 0, NULL)))
		_exit(4);
	rc = store_limit_get(store, "web", &info) == 0 &&
	    info.cfg.max_conns == 3 ? 0 : 5;
	store_close(store);
	_exit(rc);
}

int
main(void)
{
	int at_lock[2], go[2], opened[2], status = 0, copied = -1;
	char *dir, byte;
	struct limit_info info;
	struct store *store;
	pid_t child;
	int rc;

	fixture_start("unit-config-sync");
	dir = dir_for("state");
	/* The live store beside the configuration, not in the user's. */
	unsetenv("XDG_RUNTIME_DIR");
	set_cap(dir, 0, NULL);

	if (pipe(at_lock) || pipe(go) || pipe(opened))
		bail("pipe", errno);
	child = fork();
	if (child < 0)
		bail("fork", errno);
	if (child == 0) {
		at_lock_fd = at_lock[1];
		go_fd = go[0];
		run_late_copy(dir, opened[1]);
	}
	ok(read(opened[0], &byte, 1) == 1 && read(at_lock[0], &byte, 1) == 1,
	    "the child's copy stops before its live write transaction");
	/* Cap 3 committed and copied to the live store while the child's
	 * copy waits; then the child's copy runs. */
	set_cap(dir, 3, NULL);
	ok(write(go[1], "g", 1) == 1, "the child's copy goes on");
	if (waitpid(child, &status, 0) != child)
		bail("waitpid", errno);
	ok(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the cap set "
	    "while an older copy waited for the live store is there after "
	    "that copy (child's exit %d: 5 = not there)",
	    WIFEXITED(status) ? WEXITSTATUS(status) : -1);

	/* And one more copy finds nothing to do. */
	if ((rc = store_open(&store, dir, STORE_RDONLY)))
		bail("store_open", rc);
	rc = config_sync(store, 0, &copied);
	ok(rc == 0 && copied == 0, "the live store is at the latest "
	    "configuration (rc %d, copied %d)", rc, copied);
	memset(&info, 0, sizeof(info));
	rc = store_limit_get(store, "web", &info);
	ok(rc == 0 && info.cfg.max_conns == 3, "the cap holds (rc %d, "
	    "max_conns %u)", rc, info.cfg.max_conns);
	store_close(store);

	remove_tree();
	return done_testing();
}
