/*
 * store_follow_live on a live store another process commits to: a sound
 * file must never be taken for one cut short (and made again, every
 * relay's record lost), however the refiller's reads of the newest
 * commit and of the file's size interleave with another commit.
 *
 * The interleaving that remade it: the size read, then a relay's commit
 * grows the file, then the newest commit read, whose last page is now
 * past the size read.  This test puts a child's commits, enough to grow
 * a file with no room allocated ahead (store_keep_headroom has not run),
 * once just before the newest commit is read (mdb_env_info) and once
 * just after it (in mdb_env_stat, the next call), every time: both are
 * wrapped.  Either way round the reads must agree.
 */
#include <dlfcn.h>
#include <errno.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store-fixture.h"

#define GROW_RECORDS	300

enum { COMMIT_NONE, COMMIT_IN_INFO, COMMIT_IN_STAT };

static int commit_in = COMMIT_NONE;
static int go_fd[2] = { -1, -1 }, done_fd[2] = { -1, -1 };
static int round_now;
static const char *state_dir;
static off_t grown_to = -1;	/* the file's size once the child committed */

static const char *
live_path(void)
{
	static char path[600];

	snprintf(path, sizeof(path), "%s/iprelay.mdb", state_dir);
	return path;
}

static off_t
file_size(void)
{
	struct stat st;

	return stat(live_path(), &st) == 0 ? st.st_size : -1;
}

/* The child of this round commits now, and the size it left is noted. */
static void
let_child_commit(int where)
{
	char byte = 'g';

	if (commit_in != where)
		return;
	commit_in = COMMIT_NONE;
	if (write(go_fd[round_now], &byte, 1) != 1 ||
	    read(done_fd[round_now], &byte, 1) != 1)
		bail("the child's commits", EIO);
	grown_to = file_size();
}

/* Every mdb_env_info and mdb_env_stat of the program comes here (liblmdb
 * is a shared library). */
int
mdb_env_info(MDB_env *env, MDB_envinfo *info)
{
	static int (*real_info)(MDB_env *, MDB_envinfo *);

	if (real_info == NULL)
		*(void **)&real_info = dlsym(RTLD_NEXT, "mdb_env_info");
	let_child_commit(COMMIT_IN_INFO);
	return real_info(env, info);
}

int
mdb_env_stat(MDB_env *env, MDB_stat *stat)
{
	static int (*real_stat)(MDB_env *, MDB_stat *);

	if (real_stat == NULL)
		*(void **)&real_stat = dlsym(RTLD_NEXT, "mdb_env_stat");
	let_child_commit(COMMIT_IN_STAT);
	return real_stat(env, stat);
}

/* A child: once told, registers GROW_RECORDS relays (its own pid) in its
 * own environment, and says so. */
static pid_t
start_grower(const char *dir, int round)
{
	struct store *store;
	int go[2], done[2], index;
	char byte;
	pid_t child;

	if (pipe(go) || pipe(done))
		bail("pipe", errno);
	child = fork();
	if (child < 0)
		bail("fork", errno);
	if (child > 0) {
		go_fd[round] = go[1];
		done_fd[round] = done[0];
		return child;
	}
	if (read(go[0], &byte, 1) != 1)
		_exit(2);
	if (store_open(&store, dir, 0))
		_exit(3);
	for (index = 0; index < GROW_RECORDS; index++)
		register_conn(store, "total", getpid());
	store_close(store);
	if (write(done[1], "d", 1) != 1)
		_exit(4);
	_exit(0);
}

static void
follow_round(struct store *store, int round, pid_t child, int where,
    const char *when, uint32_t first_id)
{
	struct conn_info info;
	off_t before = file_size();
	int status = 0, rc;

	round_now = round;
	commit_in = where;
	rc = store_follow_live(store);
	if (waitpid(child, &status, 0) != child)
		bail("waitpid", errno);
	ok(WIFEXITED(status) && WEXITSTATUS(status) == 0 && grown_to > before,
	    "%s: another process's commits grew the file (%lld -> %lld "
	    "bytes)", when, (long long)before, (long long)grown_to);
	is_rc(rc, 0, "store_follow_live");
	ok(store_conn_get(store, first_id, &info) == 0 &&
	    nconns_of(store, "total") == (uint32_t)(round + 1) *
	    GROW_RECORDS + 1, "%s: the live store was not made again, every "
	    "record is there (%u)", when, nconns_of(store, "total"));
}

int
main(void)
{
	struct store *store;
	pid_t children[2];
	uint32_t id;
	char *dir;

	fixture_start("unit-follow-live");
	dir = dir_for("state");
	state_dir = dir;
	/* The live store beside the configuration, not in the user's. */
	unsetenv("XDG_RUNTIME_DIR");
	/* Forked before this process opens the store. */
	children[0] = start_grower(dir, 0);
	children[1] = start_grower(dir, 1);

	store = open_at("state");
	put(store, "total", 1000, "");
	id = register_conn(store, "total", getpid());
	follow_round(store, 0, children[0], COMMIT_IN_INFO,
	    "a commit before the newest commit is read", id);
	follow_round(store, 1, children[1], COMMIT_IN_STAT,
	    "a commit after the newest commit is read", id);
	/* And a file cut short for real (its two meta pages left) is still
	 * made again, empty. */
	if (truncate(live_path(), 8192) < 0)
		bail("truncate", errno);
	is_rc(store_follow_live(store), 0, "store_follow_live on a file cut "
	    "short to its meta pages");
	ok(file_size() != 8192 && nconns_of(store, "total") == 0,
	    "that file is made again, without the records it lost");
	store_close(store);
	remove_tree();
	return done_testing();
}
