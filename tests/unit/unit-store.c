/*
 * The store's limits in a temporary state dir: the tree of limits and its
 * depth, fields set one by one, creation said, a live copy left behind the
 * configuration, and which state dir is used.  Connections and draws are
 * in unit-store-conn.c, files and records in unit-store-records.c, caps
 * in unit-caps.c; the fixture in store-fixture.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <lmdb.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store.h"
#include "store-fixture.h"
#include "tap.h"

struct names {
	char list[8][LIMIT_NAME_MAX + 1];
	int count;
};

static int
collect_name(void *ctx, const struct limit_info *info)
{
	struct names *names = ctx;

	if (names->count < 8)
		strcpy(names->list[names->count], info->name);
	names->count++;
	return 0;
}

static void
test_limits(void)
{
	struct store *store;
	struct limit_info info;
	struct limit_cfg cfg;
	struct names names = { .count = 0 };
	struct stat st;
	uint32_t nconns;
	int rc;

	if ((rc = store_open(&store, dir_for("limits"), 0)))
		bail("store_open", rc);
	/* stat first: ok's arguments may be read before its first. */
	if (stat(dir_for("limits"), &st) < 0)
		memset(&st, 0, sizeof(st));
	ok((st.st_mode & 07777) == 0770, "state dir created 0770 (mode %o)",
	    st.st_mode & 07777);
	ok(stat(dir_for("limits/" STORE_FILE), &st) == 0 &&
	    (st.st_mode & 0002) == 0 && (st.st_mode & 0600) == 0600,
	    "state file owner read-write, not world-writable (mode %o)",
	    st.st_mode & 07777);

	cfg = cfg_of(3072, 2048, 500, "");
	is_rc(store_limit_put(store, "total", &cfg), 0, "put total");
	rc = store_limit_get(store, "total", &info);
	ok(rc == 0 && info.cfg.rate_Bps[DIR_UP] == 3072 &&
	    info.cfg.rate_Bps[DIR_DOWN] == 2048 && info.cfg.burst_B == 500 &&
	    info.cfg.parent[0] == '\0' && strcmp(info.name, "total") == 0,
	    "get total: both rates, burst, no parent");
	ok(rc == 0 && info.bucket[DIR_UP].tokens_B == 0 &&
	    info.bucket[DIR_UP].rate_Bps == 3072 &&
	    info.bucket[DIR_DOWN].burst_B == 500,
	    "a new limit's buckets start empty with its rate and burst");
	is_rc(put(store, "pop3", 1024, "total"), 0, "put pop3 inside total");
	is_rc(put(store, "orphan", 1024, "nosuch"), STORE_ENOPARENT,
	    "put with a parent that does not exist refused");
	is_rc(store_limit_get(store, "orphan", &info), STORE_ENOLIMIT,
	    "the refused limit was not created");
	is_rc(put(store, "bad name", 1, ""), EINVAL, "put a bad name refused");
	is_rc(put(store, "x", RATE_MAX + 1, ""), EINVAL,
	    "put a rate past RATE_MAX refused");
	cfg = cfg_of(1, 1, BURST_MAX + 1, "");
	is_rc(store_limit_put(store, "x", &cfg), EINVAL,
	    "put a burst past BURST_MAX refused");
	is_rc(store_limit_get(store, "nosuch", &info), STORE_ENOLIMIT,
	    "get a missing limit");
	is_rc(store_limit_get(store, "bad/name", &info), STORE_ENOLIMIT,
	    "get a bad name");
	is_rc(store_limit_foreach(store, collect_name, &names), 0, "list");
	ok(names.count == 2 && strcmp(names.list[0], "pop3") == 0 &&
	    strcmp(names.list[1], "total") == 0,
	    "list gives pop3 and total, in name order");

	/* Cycles, direct and long. */
	is_rc(put(store, "total", 3072, "total"), STORE_ECYCLE,
	    "a limit as its own parent refused");
	is_rc(put(store, "total", 3072, "pop3"), STORE_ECYCLE,
	    "total inside its own child refused");
	is_rc(put(store, "l1", 100, "pop3"), 0, "l1 inside pop3");
	is_rc(put(store, "l2", 100, "l1"), 0, "l2 inside l1");
	is_rc(put(store, "l3", 100, "l2"), 0, "l3 inside l2");
	is_rc(put(store, "l4", 100, "l3"), 0, "l4 inside l3");
	is_rc(put(store, "total", 3072, "l4"), STORE_ECYCLE,
	    "total inside its great-great-great-grandchild refused");
	rc = store_limit_get(store, "total", &info);
	ok(rc == 0 && info.cfg.parent[0] == '\0',
	    "after the refusals total is still top level");

	/* Deleting. */
	is_rc(store_limit_del(store, "l3", &nconns), STORE_EHASCHILD,
	    "del of a limit with a child refused");
	is_rc(store_limit_del(store, "l4", &nconns), 0, "del a leaf");
	is_rc(store_limit_get(store, "l4", &info), STORE_ENOLIMIT,
	    "the deleted leaf is gone");
	is_rc(store_limit_del(store, "l4", &nconns), STORE_ENOLIMIT,
	    "del of a missing limit");
	is_rc(store_limit_del(store, "l3", &nconns), 0,
	    "del its parent once childless");
	store_close(store);

	/* Reopen keeps limits. */
	if ((rc = store_open(&store, dir_for("limits"), STORE_RDONLY)))
		bail("store_open again", rc);
	rc = store_limit_get(store, "pop3", &info);
	ok(rc == 0 && info.cfg.rate_Bps[DIR_UP] == 1024 &&
	    strcmp(info.cfg.parent, "total") == 0,
	    "reopened read-only: pop3 still inside total at 1024");
	store_close(store);
}

static void
test_chain_depth(void)
{
	struct store *store;
	char name[16], parent[16] = "";
	int rc, depth, refused_at = 0, refused_rc = 0;

	if ((rc = store_open(&store, dir_for("depth"), 0)))
		bail("store_open", rc);
	/* A chain as deep as a draw follows (CHAIN_MAX 64) is accepted. */
	for (depth = 1; depth <= 70 && !refused_at; depth++) {
		snprintf(name, sizeof(name), "d%d", depth);
		if ((refused_rc = put(store, name, 1000, parent)))
			refused_at = depth;
		snprintf(parent, sizeof(parent), "%s", name);
	}
	ok(refused_at > 64, "a chain 64 levels deep accepted (the %dth "
	    "level refused: %s)", refused_at, store_strerror(refused_rc));
	store_close(store);
}

/* store_limit_update sets only the fields it is given, merged under the
 * write lock: what another command wrote in between is kept. */
static void
test_update_fields(void)
{
	struct store *store;
	struct limit_info info;
	struct limit_cfg given, written;
	int rc;

	if ((rc = store_open(&store, dir_for("update"), 0)))
		bail("store_open", rc);
	given = cfg_of(0, 0, 0, "");
	given.burst_B = 4096;
	is_rc(store_limit_update(store, "new", &given, LIMIT_FIELD_BURST,
	    &written), 0, "update a missing limit: created");
	ok(written.burst_B == 4096 && written.rate_Bps[DIR_UP] == 0 &&
	    written.rate_Bps[DIR_DOWN] == 0 && written.parent[0] == '\0',
	    "a new limit's fields not given are zero");
	is_rc(put(store, "top", 9000, ""), 0, "put top");
	given = cfg_of(1000, 0, 0, "");
	is_rc(store_limit_update(store, "new", &given, LIMIT_FIELD_UP, NULL), 0,
	    "update up only");
	given = cfg_of(0, 0, 0, "top");
	is_rc(store_limit_update(store, "new", &given, LIMIT_FIELD_PARENT,
	    NULL), 0, "update parent only");
	given = cfg_of(0, 2000, 0, "");
	is_rc(store_limit_update(store, "new", &given, LIMIT_FIELD_DOWN,
	    &written), 0, "update down only");
	rc = store_limit_get(store, "new", &info);
	ok(rc == 0 && info.cfg.rate_Bps[DIR_UP] == 1000 &&
	    info.cfg.rate_Bps[DIR_DOWN] == 2000 && info.cfg.burst_B == 4096 &&
	    strcmp(info.cfg.parent, "top") == 0 &&
	    memcmp(&written, &info.cfg, sizeof(written)) == 0,
	    "each update kept what the others set (up 1000, down 2000, burst "
	    "4096, parent top)");
	ok(rc == 0 && info.bucket[DIR_DOWN].rate_Bps == 2000 &&
	    info.bucket[DIR_UP].burst_B == 4096,
	    "and the live buckets follow the merged limit");
	given = cfg_of(RATE_MAX + 1, 0, 0, "");
	is_rc(store_limit_update(store, "new", &given, LIMIT_FIELD_DOWN, NULL),
	    0, "a bad value in a field not given is not looked at");
	is_rc(store_limit_update(store, "new", &given, LIMIT_FIELD_UP, NULL),
	    EINVAL, "a bad value in a field given is refused");
	given = cfg_of(0, 0, 0, "new");
	is_rc(store_limit_update(store, "top", &given, LIMIT_FIELD_PARENT,
	    &written), STORE_ECYCLE, "a parent making a cycle refused");
	ok(strcmp(written.parent, "new") == 0 &&
	    written.rate_Bps[DIR_UP] == 9000,
	    "the refused result is reported (parent new, rate 9000 kept)");
	rc = store_limit_get(store, "top", &info);
	ok(rc == 0 && info.cfg.parent[0] == '\0',
	    "and nothing of it was written");
	store_close(store);
}

/* store_limit_write says whether it made the limit, and with
 * STORE_LIMIT_NO_CREATE makes none (iprelay-limit set --no-create). */
static void
test_write_created(void)
{
	struct store *store;
	struct limit_info info;
	struct limit_cfg given = cfg_of(1000, 1000, 0, "");
	int rc, created = -1;

	if ((rc = store_open(&store, dir_for("created"), 0)))
		bail("store_open", rc);
	is_rc(store_limit_write(store, "typo", &given, LIMIT_FIELD_UP,
	    STORE_LIMIT_NO_CREATE, NULL, &created), STORE_ENOLIMIT,
	    "NO_CREATE on a missing limit: STORE_ENOLIMIT");
	is_rc(store_limit_get(store, "typo", &info), STORE_ENOLIMIT,
	    "and it was not made");
	is_rc(store_limit_write(store, "web", &given, LIMIT_FIELD_UP, 0, NULL,
	    &created), 0, "write a missing limit");
	ok(created == 1, "created: 1");
	given.rate_Bps[DIR_UP] = 2000;
	is_rc(store_limit_write(store, "web", &given, LIMIT_FIELD_UP,
	    STORE_LIMIT_NO_CREATE, NULL, &created), 0,
	    "NO_CREATE on one that exists: written");
	ok(created == 0, "created: 0");
	rc = store_limit_get(store, "web", &info);
	ok(rc == 0 && info.cfg.rate_Bps[DIR_UP] == 2000, "the change is there");
	store_close(store);
}

/* What a writer killed between its two commits leaves: the limit NAME
 * copied as AS into the configuration of DIR, and its generation counted
 * up, with LMDB itself (in a child: the store is open in the parent);
 * the live copy is not touched.  0 when done. */
static int
commit_config_alone(const char *dir, const char *name, const char *as)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi limits, meta;
	MDB_val key = { strlen(name), (void *)name }, value;
	MDB_val as_key = { strlen(as), (void *)as };
	MDB_val gen_key = { 10, "generation" };
	unsigned char record[512], gen[24];
	uint64_t count;
	char path[600];
	int rc;

	snprintf(path, sizeof(path), "%s/%s", dir, STORE_CONFIG_FILE);
	if (mdb_env_create(&env))
		return 1;
	mdb_env_set_maxdbs(env, 8);
	mdb_env_set_maxreaders(env, 8448);
	mdb_env_set_mapsize(env, 64ULL * 1024 * 1024);
	if ((rc = mdb_env_open(env, path, MDB_NOSUBDIR, 0600)) ||
	    (rc = mdb_txn_begin(env, NULL, 0, &txn)))
		return 2;
	if (mdb_dbi_open(txn, "limits", 0, &limits) ||
	    mdb_dbi_open(txn, "meta", 0, &meta) ||
	    mdb_get(txn, limits, &key, &value) ||
	    value.mv_size > sizeof(record))
		return 3;
	memcpy(record, value.mv_data, value.mv_size);
	value.mv_data = record;
	if (mdb_put(txn, limits, &as_key, &value, 0) ||
	    mdb_get(txn, meta, &gen_key, &value) ||
	    value.mv_size != sizeof(gen))
		return 4;
	/* struct config_gen: a random id (two uint64_t), then the count. */
	memcpy(gen, value.mv_data, sizeof(gen));
	memcpy(&count, gen + 16, sizeof(count));
	count++;
	memcpy(gen + 16, &count, sizeof(count));
	value.mv_size = sizeof(gen);
	value.mv_data = gen;
	if (mdb_put(txn, meta, &gen_key, &value, 0) || mdb_txn_commit(txn))
		return 5;
	mdb_env_close(env);
	return 0;
}

/* A live copy a generation behind the configuration: a relay's open
 * (STORE_CONFIG_READ) takes it as it is, as it no longer compares; the
 * refiller's store_follow_config (once a second) brings it up to date,
 * and the relay's open store sees the limit then. */
static void
test_config_behind(void)
{
	const char *dir = dir_for("behind");
	struct store *writer, *relay;
	struct limit_info info;
	pid_t pid;
	int status = -1, rc;

	if ((rc = store_open(&writer, dir, 0)))
		bail("open behind", rc);
	if ((rc = put(writer, "web", 125000, "")))
		bail("put web", rc);
	pid = fork();
	if (pid == 0)
		_exit(commit_config_alone(dir, "web", "late"));
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		bail("fork", errno);
	ok(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "behind: a limit committed to the configuration alone");
	is_rc(store_open(&relay, dir, STORE_CONFIG_READ), 0,
	    "behind: a relay opens the store");
	is_rc(store_limit_get(relay, "late", &info), STORE_ENOLIMIT,
	    "behind: a relay's open takes the live copy as it is");
	is_rc(store_follow_config(writer), 0,
	    "behind: store_follow_config copies the configuration");
	is_rc(store_limit_get(relay, "late", &info), 0,
	    "behind: the relay's store sees the limit then");
	ok(info.cfg.rate_Bps[DIR_UP] == 125000 &&
	    info.cfg.rate_Bps[DIR_DOWN] == 125000,
	    "behind: with the configuration's rates");
	is_rc(store_follow_config(relay), 0,
	    "behind: store_follow_config when both agree");
	store_close(relay);
	store_close(writer);
}

static void
test_dir_resolve(void)
{
	char dir[256];

	ok(store_dir_resolve("/x/y", dir, sizeof(dir)) == 0 &&
	    strcmp(dir, "/x/y") == 0, "dir: -S wins");
	setenv("IPRELAY_STATE_DIR", "/from/env", 1);
	ok(store_dir_resolve(NULL, dir, sizeof(dir)) == 0 &&
	    strcmp(dir, "/from/env") == 0, "dir: then IPRELAY_STATE_DIR");
	unsetenv("IPRELAY_STATE_DIR");
	setenv("XDG_STATE_HOME", "/xdg", 1);
	setenv("HOME", "/home/u", 1);
	store_dir_resolve(NULL, dir, sizeof(dir));
	ok(strcmp(dir, geteuid() == 0 ? "/var/lib/iprelay" :
	    "/xdg/iprelay") == 0, "dir: then /var/lib/iprelay for root, "
	    "$XDG_STATE_HOME/iprelay for others (%s)", dir);
	unsetenv("XDG_STATE_HOME");
	store_dir_resolve(NULL, dir, sizeof(dir));
	ok(strcmp(dir, geteuid() == 0 ? "/var/lib/iprelay" :
	    "/home/u/.local/state/iprelay") == 0,
	    "dir: ~/.local/state/iprelay without XDG_STATE_HOME (%s)", dir);
	ok(store_dir_resolve("/a/very/long/dir/name", dir, 8) ==
	    ENAMETOOLONG, "dir: too long for the buffer");
}

int
main(void)
{
	fixture_start("unit-store");
	test_limits();
	test_chain_depth();
	test_update_fields();
	test_write_created();
	test_dir_resolve();
	test_config_behind();
	remove_tree();
	return done_testing();
}
