/*
 * The store API in a temporary state dir: limits and their tree, live
 * connections, draws on a chain, and every way a state file can be wrong
 * (foreign, another format version, random bytes, missing, damaged
 * records).  One process; children only to have a pid that is dead.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <lmdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store.h"
#include "tap.h"

static char top_dir[] = "/tmp/unit-store.XXXXXX";

/* is_rc: the call gave the result wanted; shows both by name if not. */
static void
is_rc(int got, int want, const char *what)
{
	ok(got == want, "%s", what);
	if (got != want)
		printf("# got %d (%s), want %d (%s)\n", got,
		    store_strerror(got), want, store_strerror(want));
}

static void
bail(const char *what, int rc)
{
	printf("Bail out! %s: %s\n", what, store_strerror(rc));
	exit(1);
}

static char *
dir_for(const char *name)
{
	static char path[4][512];
	static int next;
	char *out = path[next++ % 4];

	snprintf(out, sizeof(path[0]), "%s/%s", top_dir, name);
	return out;
}

static struct limit_cfg
cfg_of(uint64_t up_Bps, uint64_t down_Bps, uint64_t burst_B,
    const char *parent)
{
	struct limit_cfg cfg;

	memset(&cfg, 0, sizeof(cfg));
	cfg.rate_Bps[DIR_UP] = up_Bps;
	cfg.rate_Bps[DIR_DOWN] = down_Bps;
	cfg.burst_B = burst_B;
	snprintf(cfg.parent, sizeof(cfg.parent), "%s", parent);
	return cfg;
}

static int
put(struct store *store, const char *name, uint64_t rate_Bps,
    const char *parent)
{
	struct limit_cfg cfg = cfg_of(rate_Bps, rate_Bps, 0, parent);

	return store_limit_put(store, name, &cfg);
}

static uint32_t
nconns_of(struct store *store, const char *name)
{
	struct limit_info info;

	if (store_limit_get(store, name, &info))
		return 0xffffffff;
	return info.nconns;
}

static uint32_t
register_conn(struct store *store, const char *limit, pid_t pid)
{
	struct conn_info info;
	int rc;

	memset(&info, 0, sizeof(info));
	info.pid = pid;
	snprintf(info.limit, sizeof(info.limit), "%s", limit);
	snprintf(info.peer, sizeof(info.peer), "127.0.0.1:40000");
	snprintf(info.remote, sizeof(info.remote), "127.0.0.1:80");
	if ((rc = store_conn_register(store, &info)))
		bail("register", rc);
	return info.id;
}

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
	ok(stat(dir_for("limits"), &st) == 0 && (st.st_mode & 07777) == 0770,
	    "state dir created 0770 (mode %o)", st.st_mode & 07777);
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

/* The refiller's headroom: blocks allocated ahead in the file, which LMDB
 * and the store's own checks take as they are. */
static void
test_headroom(void)
{
	struct store *store;
	struct limit_info info;
	struct stat st;
	int rc;

	if ((rc = store_open(&store, dir_for("headroom"), 0)))
		bail("store_open", rc);
	is_rc(put(store, "h", 1000, ""), 0, "put h");
	rc = store_keep_headroom(store);
	ok(rc == 0 || rc == EOPNOTSUPP, "store_keep_headroom: %s",
	    store_strerror(rc));
	ok(stat(dir_for("headroom/" STORE_FILE), &st) == 0 &&
	    (rc == EOPNOTSUPP || ((uint64_t)st.st_size >= STORE_HEADROOM_B &&
	    (uint64_t)st.st_blocks * 512 >= STORE_HEADROOM_B)),
	    "the file has the headroom allocated (%lld bytes, %lld blocks)",
	    (long long)st.st_size, (long long)st.st_blocks);
	is_rc(store_keep_headroom(store), rc, "a second call: the same");
	is_rc(put(store, "h2", 2000, "h"), 0, "writes go on in the file");
	store_close(store);
	if ((rc = store_open(&store, dir_for("headroom"), STORE_RDONLY)))
		bail("store_open read-only", rc);
	rc = store_limit_get(store, "h2", &info);
	ok(rc == 0 && info.cfg.rate_Bps[DIR_UP] == 2000 &&
	    strcmp(info.cfg.parent, "h") == 0,
	    "reopened (the file checked again): h2 inside h at 2000");
	store_close(store);
}

static void
test_conns(void)
{
	struct store *store;
	struct conn_info info;
	uint32_t first, second, third, fourth, wrapped, next, nconns;
	uint32_t at_max = 999999;
	int rc;

	if ((rc = store_open(&store, dir_for("conns"), 0)))
		bail("store_open", rc);
	put(store, "total", 3072, "");
	put(store, "pop3", 1024, "total");
	put(store, "other", 1024, "total");
	first = register_conn(store, "pop3", getpid());
	second = register_conn(store, "pop3", getpid());
	third = register_conn(store, "", getpid());
	ok(first == 1 && second == 2 && third == 3,
	    "conn ids count from 1 (%u %u %u)", first, second, third);
	ok(nconns_of(store, "pop3") == 2 && nconns_of(store, "total") == 2 &&
	    nconns_of(store, "other") == 0,
	    "nconns counted on the limit and each ancestor, not siblings");
	rc = store_conn_get(store, second, &info);
	ok(rc == 0 && info.id == second && info.pid == getpid() &&
	    strcmp(info.limit, "pop3") == 0 && info.start_unix_ns > 0 &&
	    strcmp(info.peer, "127.0.0.1:40000") == 0,
	    "conn_get gives the registered record");
	is_rc(store_conn_unregister(store, second), 0, "unregister");
	is_rc(store_conn_get(store, second, &info), STORE_ENOCONN,
	    "an unregistered conn is gone");
	is_rc(store_conn_unregister(store, second), STORE_ENOCONN,
	    "unregister twice");
	ok(nconns_of(store, "pop3") == 1 && nconns_of(store, "total") == 1,
	    "nconns down again on the whole chain");
	fourth = register_conn(store, "pop3", getpid());
	ok(fourth == 4, "ids are not reused at once (got %u)", fourth);

	/* Moving a limit to another parent moves its relays' counts. */
	put(store, "total2", 5000, "");
	is_rc(put(store, "pop3", 1024, "total2"), 0, "reparent pop3");
	ok(nconns_of(store, "total") == 0 && nconns_of(store, "total2") == 2,
	    "reparenting recounts: total 0, total2 2");

	/* Ids wrap after CONN999999 to the first free one. */
	is_rc(store_meta_put(store, "next_conn", &at_max, sizeof(at_max)), 0,
	    "next id set to 999999");
	wrapped = register_conn(store, "", getpid());
	next = register_conn(store, "", getpid());
	ok(wrapped == 999999 && next == 2,
	    "CONN999999, then the first free id from 1 (2; got %u, %u)",
	    wrapped, next);

	/* A limit deleted under live relays: they run unshaped. */
	is_rc(store_limit_del(store, "other", &nconns), 0, "del other");
	store_close(store);
}

static void
test_reserve(void)
{
	struct store *store;
	struct limit_info parent_info, child_info;
	struct grant grant;
	uint64_t before_ns, after_ns;
	uint32_t id;
	struct limit_cfg cfg;
	int rc;

	if ((rc = store_open(&store, dir_for("reserve"), 0)))
		bail("store_open", rc);
	cfg = cfg_of(1000, 0, 1000, "");
	store_limit_put(store, "parent", &cfg);
	cfg = cfg_of(1000000, 0, 100000, "parent");
	store_limit_put(store, "child", &cfg);
	id = register_conn(store, "child", getpid());

	before_ns = monotonic_ns();
	rc = store_reserve(store, id, "child", DIR_UP, 500, &grant);
	after_ns = monotonic_ns();
	ok(rc == 0 && grant.shaped && grant.bytes == 500,
	    "reserve 500 up on child: granted 500, shaped");
	/* Both buckets started empty moments ago: the parent's 1000 B/s
	 * makes the 500 bytes wait half a second. */
	ok(grant.release_ns >= before_ns + 490000000 &&
	    grant.release_ns <= after_ns + 500000000,
	    "released half a second later, by the parent's rate");
	store_limit_get(store, "parent", &parent_info);
	store_limit_get(store, "child", &child_info);
	ok(parent_info.bucket[DIR_UP].tokens_B < 0 &&
	    parent_info.bucket[DIR_UP].tokens_B >= -500 &&
	    child_info.bucket[DIR_UP].tokens_B < 0,
	    "taken from both levels in the one transaction (%" PRId64 ", %"
	    PRId64 ")", parent_info.bucket[DIR_UP].tokens_B,
	    child_info.bucket[DIR_UP].tokens_B);
	ok(parent_info.total_B[DIR_UP] == 500 &&
	    child_info.total_B[DIR_UP] == 500 &&
	    parent_info.total_B[DIR_DOWN] == 0,
	    "500 bytes counted up on both levels, none down");
	ok(grant.quantum_B > 0 && grant.quantum_B <= 1000,
	    "the quantum fits the smallest burst (%" PRIu64 ")",
	    grant.quantum_B);
	/* The parent owes 500 of its 1000-byte cap: a draw of 5000, cut to
	 * the smallest burst (1000), would leave it owing 1500. */
	before_ns = monotonic_ns();
	rc = store_reserve(store, id, "child", DIR_UP, 5000, &grant);
	after_ns = monotonic_ns();
	store_limit_get(store, "parent", &parent_info);
	ok(rc == 0 && grant.shaped && grant.bytes == 0 &&
	    parent_info.bucket[DIR_UP].tokens_B >= -500 &&
	    parent_info.total_B[DIR_UP] == 500,
	    "a draw past the parent's debt cap is refused, nothing taken");
	/* It fits once the parent has repaid its 500: half a second after
	 * the first draw; one relay, so no retry spread. */
	ok(grant.release_ns > after_ns &&
	    grant.release_ns <= before_ns + 500000000,
	    "... and says when it fits: when the parent's debt is repaid");
	{
		struct limit_cfg wide = cfg_of(1000, 0, 1000, "");

		store_limit_put(store, "wide", &wide);
		rc = store_reserve(store, id, "wide", DIR_UP, 5000, &grant);
		ok(rc == 0 && grant.bytes == 1000,
		    "a draw past the smallest burst is cut to it");
	}

	rc = store_reserve(store, id, "child", DIR_DOWN, 70000, &grant);
	ok(rc == 0 && grant.bytes == 70000 && !grant.shaped &&
	    grant.release_ns <= monotonic_ns(),
	    "down has no rate on any level: unshaped, whole, at once");

	rc = store_reserve(store, id, "gone", DIR_UP, 4000, &grant);
	ok(rc == 0 && !grant.shaped && grant.bytes == 4000,
	    "a missing (deleted) limit reads as unshaped");
	{
		struct conn_info info;

		store_conn_get(store, id, &info);
		ok(info.bytes[DIR_UP] == 500 + 0 + 1000 + 4000 &&
		    info.bytes[DIR_DOWN] == 70000,
		    "the connection counts every granted byte (%" PRIu64
		    " up, %" PRIu64 " down)", info.bytes[DIR_UP],
		    info.bytes[DIR_DOWN]);
	}
	{
		uint64_t moved_B[2] = { 10, 20 }, quantum_B[2];
		int shaped[2];

		rc = store_account(store, id, "child", moved_B, shaped,
		    quantum_B);
		store_limit_get(store, "parent", &parent_info);
		ok(rc == 0 && shaped[DIR_UP] && !shaped[DIR_DOWN] &&
		    parent_info.total_B[DIR_DOWN] == 70000 + 20,
		    "account: says which way is shaped, counts on the chain");
	}
	store_close(store);
}

static int
make_foreign(const char *dir, int with_meta)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val key = { 5, "hello" }, value = { 5, "world" };
	char path[600];
	int rc;

	mkdir(dir, 0700);
	snprintf(path, sizeof(path), "%s/%s", dir, STORE_CONFIG_FILE);
	if ((rc = mdb_env_create(&env)))
		return rc;
	mdb_env_set_maxdbs(env, 4);
	if ((rc = mdb_env_open(env, path, MDB_NOSUBDIR, 0600)))
		goto close;
	if ((rc = mdb_txn_begin(env, NULL, 0, &txn)))
		goto close;
	/* Someone else's named databases, one called "meta" too. */
	if ((rc = mdb_dbi_open(txn, with_meta ? "meta" : "accounts",
	    MDB_CREATE, &dbi)) ||
	    (rc = mdb_put(txn, dbi, &key, &value, 0))) {
		mdb_txn_abort(txn);
		goto close;
	}
	rc = mdb_txn_commit(txn);
close:
	mdb_env_close(env);
	return rc;
}

static int
make_plain_lmdb(const char *dir)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val key = { 3, "key" }, value = { 5, "value" };
	char path[600];
	int rc;

	mkdir(dir, 0700);
	snprintf(path, sizeof(path), "%s/%s", dir, STORE_CONFIG_FILE);
	if ((rc = mdb_env_create(&env)))
		return rc;
	if ((rc = mdb_env_open(env, path, MDB_NOSUBDIR, 0600)))
		goto close;
	if ((rc = mdb_txn_begin(env, NULL, 0, &txn)))
		goto close;
	if ((rc = mdb_dbi_open(txn, NULL, 0, &dbi)) ||
	    (rc = mdb_put(txn, dbi, &key, &value, 0))) {
		mdb_txn_abort(txn);
		goto close;
	}
	rc = mdb_txn_commit(txn);
close:
	mdb_env_close(env);
	return rc;
}

static int
limit_exists(struct store *store, const char *name)
{
	struct limit_info info;

	return store_limit_get(store, name, &info) == 0;
}

static void
test_bad_files(void)
{
	struct store *store = NULL;
	unsigned char noise[65536];
	char path[600];
	const char tag[] = "iprelay-store 2";
	size_t i;
	int rc, fd, pass;

	is_rc(store_open(&store, dir_for("missing"), STORE_RDONLY),
	    STORE_ENOSTORE, "read-only open of a missing store");
	ok(access(dir_for("missing"), F_OK) < 0,
	    "... which creates nothing");

	is_rc(make_foreign(dir_for("foreign"), 0), 0,
	    "made an LMDB file with other named databases");
	is_rc(store_open(&store, dir_for("foreign"), 0), STORE_EFOREIGN,
	    "foreign LMDB file refused");
	is_rc(store_open(&store, dir_for("foreign"), STORE_RDONLY),
	    STORE_EFOREIGN, "foreign LMDB file refused read-only too");
	is_rc(make_foreign(dir_for("foreign-meta"), 1), 0,
	    "made an LMDB file with a \"meta\" of its own");
	is_rc(store_open(&store, dir_for("foreign-meta"), 0), STORE_EFOREIGN,
	    "a \"meta\" without our format refused");
	is_rc(make_plain_lmdb(dir_for("plain")), 0,
	    "made an LMDB file with keys in its main database");
	is_rc(store_open(&store, dir_for("plain"), 0), STORE_EFOREIGN,
	    "LMDB file with plain keys refused");

	/* The live store of another format version: made again from the
	 * configuration, its limits kept. */
	if ((rc = store_open(&store, dir_for("version"), 0)))
		bail("store_open", rc);
	put(store, "kept", 1000, "");
	is_rc(store_meta_put(store, "format", tag, strlen(tag)), 0,
	    "live format rewritten to version 2");
	store_close(store);
	store = NULL;
	is_rc(store_open(&store, dir_for("version"), 0), 0,
	    "a live store of another format version is made again");
	ok(store && limit_exists(store, "kept"), "... with the limits kept");
	store_close(store);
	store = NULL;

	/* Random bytes where a file should be: the configuration is
	 * refused, the live store made again. */
	srandom(12345);
	for (i = 0; i < sizeof(noise); i++)
		noise[i] = (unsigned char)random();
	for (pass = 0; pass < 2; pass++) {
		const char *name = pass ? STORE_FILE : STORE_CONFIG_FILE;

		mkdir(dir_for("noise"), 0700);
		if ((rc = store_open(&store, dir_for("noise"), 0)))
			bail("store_open", rc);
		put(store, "a", 1000, "");
		store_close(store);
		store = NULL;
		snprintf(path, sizeof(path), "%s/%s", dir_for("noise"), name);
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd < 0 || write(fd, noise, sizeof(noise)) !=
		    (ssize_t)sizeof(noise))
			bail("write noise", errno);
		close(fd);
		rc = store_open(&store, dir_for("noise"), 0);
		if (pass == 0) {
			is_rc(rc, STORE_ECONFIG, "a configuration of random "
			    "bytes refused without a crash");
			ok(strstr(store_failed_path(), STORE_CONFIG_FILE) &&
			    strstr(store_strerror(rc), "import"),
			    "... naming the file (%s) and the way back",
			    store_failed_path());
			rc = store_open(&store, dir_for("noise"), STORE_RDONLY);
			is_rc(rc, STORE_ECONFIG, "... read-only too");
			unlink(path);
		} else {
			is_rc(rc, 0, "a live store of random bytes made again");
			ok(store && limit_exists(store, "a"),
			    "... with the limits kept");
		}
		store_close(store);
		store = NULL;
	}
	/* A file cut short after a valid header. */
	for (pass = 0; pass < 2; pass++) {
		const char *name = pass ? STORE_FILE : STORE_CONFIG_FILE;

		mkdir(dir_for("short"), 0700);
		if ((rc = store_open(&store, dir_for("short"), 0)))
			bail("store_open", rc);
		put(store, "a", 1000, "");
		store_close(store);
		store = NULL;
		snprintf(path, sizeof(path), "%s/%s", dir_for("short"), name);
		ok(truncate(path, 4096) == 0, "cut %s to one page", name);
		rc = store_open(&store, dir_for("short"), 0);
		if (pass == 0) {
			is_rc(rc, STORE_ECONFIG,
			    "a truncated configuration is refused");
			unlink(path);
		} else {
			is_rc(rc, 0, "a truncated live store is made again");
			ok(store && limit_exists(store, "a"),
			    "... with the limits kept");
		}
		store_close(store);
		store = NULL;
	}
}

/* Copies of the record layouts in store-impl.h, to build damaged records;
 * the valid-record checks below fail first if store-impl.h changes them. */
struct test_limit_rec {
	uint32_t magic, reserved;
	struct limit_cfg cfg;
};

struct test_bucket_rec {
	uint32_t magic, nconns;
	char parent[LIMIT_NAME_MAX + 1];
	struct bucket bucket[2];
	uint64_t total_B[2];
	uint64_t rate_1s_Bps[2], rate_5s_Bps[2], rate_60s_Bps[2];
	uint64_t stats_unix_ns;
};

struct test_conn_rec {
	uint32_t magic, reserved;
	struct conn_info info;
};

/* A bucket record of the second layout: the first, then the ceilings. */
struct test_bucket_rec2 {
	struct test_bucket_rec v1;
	uint64_t ceil_Bps[2];
	struct bucket ceil[2];
	uint64_t borrowed_B[2];
};

/* The first layout of a limit record: up to the ceilings. */
#define TEST_LIMIT_V1_SIZE	offsetof(struct test_limit_rec, cfg.ceil_Bps)
/* The second: up to the global fields. */
#define TEST_LIMIT_V2_SIZE	offsetof(struct test_limit_rec, cfg.global)

static void
test_decode(void)
{
	struct test_limit_rec limit, bad_limit;
	struct test_bucket_rec bucket, bad_bucket;
	struct test_conn_rec conn, bad_conn;
	unsigned char big[sizeof(bucket) + 16];

	memset(&limit, 0, sizeof(limit));
	limit.magic = 0x4c505249U;
	limit.cfg = cfg_of(1000, 2000, 100, "parent");
	memset(&bucket, 0, sizeof(bucket));
	bucket.magic = 0x42505249U;
	strcpy(bucket.parent, "parent");
	bucket_init(&bucket.bucket[0], 1000, 100, 5);
	bucket_init(&bucket.bucket[1], 0, 0, 5);
	memset(&conn, 0, sizeof(conn));
	conn.magic = 0x43505249U;
	conn.info.id = 7;
	strcpy(conn.info.limit, "pop3");

	is_rc(store_decode_record(0, &limit, sizeof(limit)), 0,
	    "decode: a valid limit record");
	is_rc(store_decode_record(1, &bucket, sizeof(bucket)), 0,
	    "decode: a valid bucket record");
	is_rc(store_decode_record(2, &conn, sizeof(conn)), 0,
	    "decode: a valid conn record");

	is_rc(store_decode_record(0, &limit, sizeof(limit) - 1),
	    STORE_EDAMAGED, "decode: limit one byte short");
	memset(big, 0, sizeof(big));
	memcpy(big, &limit, sizeof(limit));
	is_rc(store_decode_record(0, big, sizeof(limit) + 1),
	    STORE_EDAMAGED, "decode: limit one byte long");
	is_rc(store_decode_record(0, &limit, 0), STORE_EDAMAGED,
	    "decode: empty limit");
	bad_limit = limit;
	bad_limit.magic ^= 1;
	is_rc(store_decode_record(0, &bad_limit, sizeof(bad_limit)),
	    STORE_EDAMAGED, "decode: limit with a wrong magic");
	is_rc(store_decode_record(1, &limit, sizeof(limit)), STORE_EDAMAGED,
	    "decode: a limit record read as a bucket");
	bad_limit = limit;
	memset(bad_limit.cfg.parent, 'p', sizeof(bad_limit.cfg.parent));
	is_rc(store_decode_record(0, &bad_limit, sizeof(bad_limit)),
	    STORE_EDAMAGED, "decode: limit parent without its NUL");
	bad_limit = limit;
	strcpy(bad_limit.cfg.parent, "bad name");
	is_rc(store_decode_record(0, &bad_limit, sizeof(bad_limit)),
	    STORE_EDAMAGED, "decode: limit parent with a bad name");
	bad_limit = limit;
	bad_limit.cfg.rate_Bps[1] = RATE_MAX + 1;
	is_rc(store_decode_record(0, &bad_limit, sizeof(bad_limit)),
	    STORE_EDAMAGED, "decode: limit rate past RATE_MAX");
	bad_limit = limit;
	bad_limit.cfg.burst_B = BURST_MAX + 1;
	is_rc(store_decode_record(0, &bad_limit, sizeof(bad_limit)),
	    STORE_EDAMAGED, "decode: limit burst past BURST_MAX");

	is_rc(store_decode_record(1, &bucket, sizeof(bucket) - 8),
	    STORE_EDAMAGED, "decode: bucket 8 bytes short");
	bad_bucket = bucket;
	bad_bucket.magic = 0;
	is_rc(store_decode_record(1, &bad_bucket, sizeof(bad_bucket)),
	    STORE_EDAMAGED, "decode: bucket with a wrong magic");
	bad_bucket = bucket;
	strcpy(bad_bucket.parent, "a/b");
	is_rc(store_decode_record(1, &bad_bucket, sizeof(bad_bucket)),
	    STORE_EDAMAGED, "decode: bucket parent with a bad name");
	bad_bucket = bucket;
	bad_bucket.bucket[0].frac_nB = NS_PER_SEC;
	is_rc(store_decode_record(1, &bad_bucket, sizeof(bad_bucket)),
	    STORE_EDAMAGED, "decode: bucket fraction of a whole byte");
	bad_bucket = bucket;
	bad_bucket.bucket[1].tokens_B = (int64_t)BURST_MAX + 1;
	is_rc(store_decode_record(1, &bad_bucket, sizeof(bad_bucket)),
	    STORE_EDAMAGED, "decode: bucket tokens past BURST_MAX");
	bad_bucket = bucket;
	bad_bucket.bucket[0].tokens_B = -(int64_t)BURST_MAX - 1;
	is_rc(store_decode_record(1, &bad_bucket, sizeof(bad_bucket)),
	    STORE_EDAMAGED, "decode: bucket debt past BURST_MAX");
	bad_bucket = bucket;
	bad_bucket.bucket[0].rate_Bps = RATE_MAX + 1;
	is_rc(store_decode_record(1, &bad_bucket, sizeof(bad_bucket)),
	    STORE_EDAMAGED, "decode: bucket rate past RATE_MAX");

	is_rc(store_decode_record(2, &conn, sizeof(conn) + 0 - 4),
	    STORE_EDAMAGED, "decode: conn 4 bytes short");
	bad_conn = conn;
	bad_conn.magic = 0x4c505249U;
	is_rc(store_decode_record(2, &bad_conn, sizeof(bad_conn)),
	    STORE_EDAMAGED, "decode: conn with a limit's magic");
	bad_conn = conn;
	bad_conn.info.id = 0;
	is_rc(store_decode_record(2, &bad_conn, sizeof(bad_conn)),
	    STORE_EDAMAGED, "decode: conn id 0");
	bad_conn = conn;
	bad_conn.info.id = 1000000;
	is_rc(store_decode_record(2, &bad_conn, sizeof(bad_conn)),
	    STORE_EDAMAGED, "decode: conn id past 999999");
	bad_conn = conn;
	strcpy(bad_conn.info.limit, "x y");
	is_rc(store_decode_record(2, &bad_conn, sizeof(bad_conn)),
	    STORE_EDAMAGED, "decode: conn limit with a bad name");
	bad_conn = conn;
	memset(bad_conn.info.peer, 'x', sizeof(bad_conn.info.peer));
	is_rc(store_decode_record(2, &bad_conn, sizeof(bad_conn)),
	    STORE_EDAMAGED, "decode: conn peer without its NUL");
	bad_conn = conn;
	memset(bad_conn.info.remote, 'x', sizeof(bad_conn.info.remote));
	is_rc(store_decode_record(2, &bad_conn, sizeof(bad_conn)),
	    STORE_EDAMAGED, "decode: conn remote without its NUL");
	is_rc(store_decode_record(3, &conn, sizeof(conn)), EINVAL,
	    "decode: an unknown kind");

	/* Both layouts of limits and buckets: the first (no ceilings, as
	 * state dirs made before them hold) and the second. */
	ok(TEST_LIMIT_V1_SIZE == 104 || sizeof(void *) != 8,
	    "decode: the first layout of a limit record is 104 bytes");
	is_rc(store_decode_record(0, &limit, TEST_LIMIT_V1_SIZE), 0,
	    "decode: a limit record of the first layout (no ceilings)");
	is_rc(store_decode_record(0, &limit, TEST_LIMIT_V1_SIZE + 8),
	    STORE_EDAMAGED, "decode: a limit record between the layouts");
	bad_limit = limit;
	bad_limit.cfg.ceil_Bps[1] = CEIL_UNLIMITED;
	bad_limit.cfg.ceil_Bps[0] = 5000;
	is_rc(store_decode_record(0, &bad_limit, sizeof(bad_limit)), 0,
	    "decode: a limit with ceilings (unlimited, 5000)");
	bad_limit.cfg.ceil_Bps[0] = RATE_MAX + 1;
	is_rc(store_decode_record(0, &bad_limit, sizeof(bad_limit)),
	    STORE_EDAMAGED, "decode: a limit ceiling past RATE_MAX");
	{
		struct test_bucket_rec2 two, bad_two;

		memset(&two, 0, sizeof(two));
		two.v1 = bucket;
		two.ceil_Bps[0] = 5000;
		two.ceil_Bps[1] = CEIL_UNLIMITED;
		bucket_init(&two.ceil[0], 5000, 100, 5);
		is_rc(store_decode_record(1, &two, sizeof(two)), 0,
		    "decode: a bucket record of the second layout");
		is_rc(store_decode_record(1, &two, sizeof(two) - 8),
		    STORE_EDAMAGED, "decode: a bucket record between the "
		    "layouts");
		bad_two = two;
		bad_two.ceil[0].frac_nB = NS_PER_SEC;
		is_rc(store_decode_record(1, &bad_two, sizeof(bad_two)),
		    STORE_EDAMAGED, "decode: a ceiling bucket with a whole "
		    "byte of fraction");
		bad_two = two;
		bad_two.ceil_Bps[1] = RATE_MAX + 1;
		is_rc(store_decode_record(1, &bad_two, sizeof(bad_two)),
		    STORE_EDAMAGED, "decode: a bucket's ceiling past RATE_MAX");
	}
}

/* The size of the value NAME in database DB of the store in DIR, read
 * with LMDB itself while no store is open; 0 if there is none. */
static size_t
raw_size(const char *dir, const char *db, const char *name)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val key = { strlen(name), (void *)name }, value;
	char path[600];
	size_t size = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, STORE_FILE);
	if (mdb_env_create(&env))
		return 0;
	mdb_env_set_maxdbs(env, 8);
	mdb_env_set_maxreaders(env, 8448);
	if (mdb_env_open(env, path, MDB_NOSUBDIR | MDB_RDONLY, 0600) == 0 &&
	    mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) == 0) {
		if (mdb_dbi_open(txn, db, 0, &dbi) == 0 &&
		    mdb_get(txn, dbi, &key, &value) == 0)
			size = value.mv_size;
		mdb_txn_abort(txn);
	}
	mdb_env_close(env);
	return size;
}

/* Ceilings: what store_limit_update refuses, the records' layouts on
 * disk, and a borrow through a real chain. */
static void
test_ceil(void)
{
	struct store *store;
	struct limit_info info, top_info;
	struct limit_cfg given, written;
	struct grant grant;
	const char *dir = dir_for("ceil");
	uint64_t before_ns, put_ns, after_ns;
	uint32_t id;
	int rc;

	if ((rc = store_open(&store, dir, 0)))
		bail("store_open", rc);
	is_rc(put(store, "top", 1000000, ""), 0, "ceil: put top");
	given = cfg_of(1000, 1000, 100000, "top");
	is_rc(store_limit_put(store, "plain", &given), 0,
	    "ceil: put plain (no ceiling)");
	store_close(store);
	ok(raw_size(dir, "limits", "plain") == TEST_LIMIT_V1_SIZE &&
	    raw_size(dir, "buckets", "plain") == sizeof(struct test_bucket_rec),
	    "ceil: a limit without a ceiling is written in the first layout "
	    "(%zu and %zu bytes), which programs before ceilings read",
	    raw_size(dir, "limits", "plain"),
	    raw_size(dir, "buckets", "plain"));
	if ((rc = store_open(&store, dir, 0)))
		bail("store_open", rc);

	given = cfg_of(0, 0, 0, "");
	given.ceil_Bps[DIR_UP] = 500;
	is_rc(store_limit_update(store, "plain", &given, LIMIT_FIELD_CEIL_UP,
	    &written), STORE_ECEILLOW, "ceil: a ceiling below the rate is "
	    "refused");
	ok(written.ceil_Bps[DIR_UP] == 500 && written.rate_Bps[DIR_UP] == 1000,
	    "ceil: ... reporting both values as they would have been");
	given.ceil_Bps[DIR_UP] = RATE_MAX + 1;
	is_rc(store_limit_update(store, "plain", &given, LIMIT_FIELD_CEIL_UP,
	    NULL), EINVAL, "ceil: a ceiling past RATE_MAX is bad input");
	given.ceil_Bps[DIR_UP] = 2000000;
	is_rc(store_limit_update(store, "top", &given, LIMIT_FIELD_CEIL_UP,
	    NULL), STORE_ECEILTOP, "ceil: a ceiling on a top-level limit is "
	    "refused");
	given.ceil_Bps[DIR_UP] = CEIL_UNLIMITED;
	is_rc(store_limit_update(store, "top", &given, LIMIT_FIELD_CEIL_UP,
	    NULL), STORE_ECEILTOP, "ceil: ... an unlimited one too");
	given.ceil_Bps[DIR_UP] = CEIL_NONE;
	is_rc(store_limit_update(store, "top", &given, LIMIT_FIELD_CEIL_UP,
	    NULL), 0, "ceil: ... and none is fine there");

	given = cfg_of(0, 0, 0, "top");
	given.ceil_Bps[DIR_UP] = 4000;
	given.ceil_Bps[DIR_DOWN] = CEIL_UNLIMITED;
	is_rc(store_limit_update(store, "plain", &given,
	    LIMIT_FIELD_CEIL_UP | LIMIT_FIELD_CEIL_DOWN, NULL), 0,
	    "ceil: ceilings 4000 up, unlimited down on plain");
	rc = store_limit_get(store, "plain", &info);
	ok(rc == 0 && info.cfg.ceil_Bps[DIR_UP] == 4000 &&
	    info.cfg.ceil_Bps[DIR_DOWN] == CEIL_UNLIMITED &&
	    info.ceil_bucket[DIR_UP].rate_Bps == 4000 &&
	    info.ceil_bucket[DIR_UP].burst_B == 100000 &&
	    info.ceil_bucket[DIR_DOWN].rate_Bps == 0 &&
	    info.cfg.rate_Bps[DIR_UP] == 1000,
	    "ceil: stored, with a ceiling bucket at 4000 B/s (the limit's "
	    "burst), none for unlimited, the rate kept");
	given = cfg_of(8000, 8000, 0, "");
	is_rc(store_limit_update(store, "plain", &given,
	    LIMIT_FIELD_UP | LIMIT_FIELD_DOWN, &written), STORE_ECEILLOW,
	    "ceil: a rate raised past the stored ceiling is refused");
	given = cfg_of(0, 0, 0, "");
	is_rc(store_limit_update(store, "plain", &given, LIMIT_FIELD_PARENT,
	    NULL), STORE_ECEILTOP, "ceil: making a limit with a ceiling "
	    "top-level is refused");
	given.ceil_Bps[DIR_UP] = given.ceil_Bps[DIR_DOWN] = CEIL_NONE;
	is_rc(store_limit_update(store, "plain", &given, LIMIT_FIELD_PARENT |
	    LIMIT_FIELD_CEIL_UP | LIMIT_FIELD_CEIL_DOWN, NULL), 0,
	    "ceil: ... unless the ceilings go too");
	given = cfg_of(0, 0, 0, "");
	given.ceil_Bps[DIR_UP] = 2000;
	is_rc(store_limit_update(store, "unrated", &given, LIMIT_FIELD_CEIL_UP,
	    NULL), STORE_ECEILLOW, "ceil: a ceiling under an unlimited rate "
	    "is refused");
	rc = store_limit_get(store, "unrated", &info);
	is_rc(rc, STORE_ENOLIMIT, "ceil: refused creations create nothing");

	/* A borrow through the store: the child (1000 B/s, ceiling 1M/s)
	 * under an idle top draws 10000 B released at once, counted as
	 * borrowed; without the ceiling the same draw waits ~10 s. */
	given = cfg_of(1000, 1000, 100000, "top");
	given.ceil_Bps[DIR_UP] = given.ceil_Bps[DIR_DOWN] = 1000000;
	put_ns = monotonic_ns();
	is_rc(store_limit_put(store, "child", &given), 0,
	    "ceil: put child 1000 B/s, ceiling 1M/s, in top");
	id = register_conn(store, "child", getpid());
	usleep(50000);
	before_ns = monotonic_ns();
	rc = store_reserve(store, id, "child", DIR_UP, 10000, &grant);
	after_ns = monotonic_ns();
	ok(rc == 0 && grant.bytes == 10000 && grant.release_ns <= after_ns
	    && grant.release_ns >= before_ns,
	    "ceil: 10000 B drawn past the child's rate are released at once");
	store_limit_get(store, "child", &info);
	store_limit_get(store, "top", &top_info);
	ok(info.borrowed_B[DIR_UP] == 10000 && info.total_B[DIR_UP] == 10000 &&
	    top_info.borrowed_B[DIR_UP] == 0 &&
	    top_info.total_B[DIR_UP] == 10000 &&
	    info.bucket[DIR_UP].tokens_B >= 0 &&
	    info.ceil_bucket[DIR_UP].tokens_B + 10000 <=
	    (int64_t)((after_ns - put_ns) / 1000) + 1,
	    "ceil: counted as borrowed on the child, charged to its ceiling "
	    "and the top, not to its rate (tokens %" PRId64 ", at the "
	    "ceiling %" PRId64 " after %" PRIu64 " us)",
	    info.bucket[DIR_UP].tokens_B, info.ceil_bucket[DIR_UP].tokens_B,
	    (after_ns - put_ns) / 1000);
	ok(grant.quantum_B > 1000 / 10,
	    "ceil: its quantum is sized for the ceiling, not the rate (%"
	    PRIu64 ")", grant.quantum_B);
	store_conn_unregister(store, id);
	store_close(store);
	ok(raw_size(dir, "limits", "child") == TEST_LIMIT_V2_SIZE &&
	    raw_size(dir, "buckets", "child") ==
	    sizeof(struct test_bucket_rec2),
	    "ceil: a limit with a ceiling is written in the second layout");
	if ((rc = store_open(&store, dir, 0)))
		bail("store_open", rc);
	given = cfg_of(1000, 1000, 100000, "top");
	is_rc(store_limit_put(store, "child", &given), 0,
	    "ceil: child's ceiling removed");
	id = register_conn(store, "child", getpid());
	before_ns = monotonic_ns();
	rc = store_reserve(store, id, "child", DIR_UP, 10000, &grant);
	ok(rc == 0 && grant.bytes == 10000 &&
	    grant.release_ns >= before_ns + 9 * NS_PER_SEC,
	    "ceil: without it the same draw waits for the child's rate");
	store_limit_get(store, "child", &info);
	ok(info.borrowed_B[DIR_UP] == 10000,
	    "ceil: the borrowed count is kept (10000)");
	store_conn_unregister(store, id);
	store_close(store);
}

static int
alive_by_kill(void *ctx, const struct conn_info *info)
{
	(void)ctx;
	return kill(info->pid, 0) == 0 || errno == EPERM;
}

static void
test_reap_and_boot(void)
{
	struct store *store;
	struct conn_info info;
	struct limit_info limit_info;
	struct grant grant;
	uint32_t dead_id, live_id;
	unsigned reaped;
	pid_t child;
	int rc, was_reset, cleared;

	/* A pid that is surely dead: a child that exited and was waited
	 * for, before the store is opened (never use one across fork). */
	child = fork();
	if (child < 0)
		bail("fork", errno);
	if (child == 0)
		_exit(0);
	waitpid(child, NULL, 0);

	if ((rc = store_open(&store, dir_for("reap"), 0)))
		bail("store_open", rc);
	put(store, "total", 1000, "");
	dead_id = register_conn(store, "total", child);
	live_id = register_conn(store, "total", getpid());
	ok(nconns_of(store, "total") == 2, "two relays registered");
	rc = store_reap(store, alive_by_kill, NULL, &reaped);
	ok(rc == 0 && reaped == 1, "reap removes the one whose pid is gone "
	    "(%u)", reaped);
	ok(store_conn_get(store, dead_id, &info) == STORE_ENOCONN &&
	    store_conn_get(store, live_id, &info) == 0,
	    "the dead relay's record is gone, the live one stays");
	ok(nconns_of(store, "total") == 1, "nconns recounted after the reap");
	rc = store_reap(store, alive_by_kill, NULL, &reaped);
	ok(rc == 0 && reaped == 0, "a second reap finds nothing");
	is_rc(store_reader_check(store, &cleared), 0, "reader check runs");

	/* Boot reset: first call ever records the boot and resets. */
	store_reserve(store, live_id, "total", DIR_UP, 100, &grant);
	rc = store_boot_reset(store, &was_reset);
	ok(rc == 0 && was_reset == 1, "first boot reset resets");
	ok(store_conn_get(store, live_id, &info) == STORE_ENOCONN &&
	    nconns_of(store, "total") == 0,
	    "boot reset clears every connection and count");
	store_limit_get(store, "total", &limit_info);
	ok(limit_info.bucket[DIR_UP].tokens_B == 0 &&
	    limit_info.bucket[DIR_UP].rate_Bps == 1000 &&
	    limit_info.cfg.rate_Bps[DIR_UP] == 1000,
	    "boot reset empties the buckets and keeps the limit");
	rc = store_boot_reset(store, &was_reset);
	ok(rc == 0 && was_reset == 0, "same boot: no second reset");
	register_conn(store, "total", getpid());
	is_rc(store_meta_put(store, "boot_id", "another-boot", 12), 0,
	    "pretend the store was last used in another boot");
	rc = store_boot_reset(store, &was_reset);
	ok(rc == 0 && was_reset == 1 && nconns_of(store, "total") == 0,
	    "another boot: reset again, connections dropped");
	store_close(store);
}

struct seen_ids {
	uint32_t list[8];
	int count;
};

static int
collect_id(void *ctx, const struct conn_info *info)
{
	struct seen_ids *seen = ctx;

	if (seen->count < 8)
		seen->list[seen->count] = info->id;
	seen->count++;
	return 0;
}

/* What a refiller watching relays' exits relies on: it learns of each new
 * relay once, across the id wrap, and drops only the record of the
 * process it saw exit. */
static void
test_new_and_exited(void)
{
	struct store *store;
	struct seen_ids seen = { { 0 }, 0 };
	struct conn_exit exits[3];
	struct conn_info info;
	uint32_t since = 0, first, second, third, ten, near_max = 999998;
	unsigned dropped;
	int rc;

	if ((rc = store_open(&store, dir_for("new"), 0)))
		bail("store_open", rc);
	put(store, "total", 3072, "");
	put(store, "pop3", 1024, "total");
	first = register_conn(store, "pop3", 1000001);
	second = register_conn(store, "pop3", 1000002);
	rc = store_conn_foreach_new(store, &since, collect_id, &seen);
	ok(rc == 0 && seen.count == 2 && seen.list[0] == first &&
	    seen.list[1] == second && since == second + 1,
	    "from 0: every relay, and the counter (%d seen, since %u)",
	    seen.count, since);
	seen.count = 0;
	rc = store_conn_foreach_new(store, &since, collect_id, &seen);
	ok(rc == 0 && seen.count == 0, "nothing new: nothing visited");
	third = register_conn(store, "", 1000003);
	rc = store_conn_foreach_new(store, &since, collect_id, &seen);
	ok(rc == 0 && seen.count == 1 && seen.list[0] == third,
	    "one registered since: that one only (%d seen)", seen.count);

	/* Round the wrap: 999998 and 999999, then the first free from 1
	 * (4).  Ids the counter stepped over on the way (1 to 3, live) may
	 * be visited again; one outside the range (10) is not. */
	ten = 10;
	is_rc(store_meta_put(store, "next_conn", &ten, sizeof(ten)), 0,
	    "next id set to 10");
	register_conn(store, "", 1000010);
	is_rc(store_meta_put(store, "next_conn", &near_max, sizeof(near_max)),
	    0, "next id set to 999998");
	since = near_max;
	register_conn(store, "", 1000004);
	register_conn(store, "", 1000005);
	register_conn(store, "", 1000006);
	seen.count = 0;
	rc = store_conn_foreach_new(store, &since, collect_id, &seen);
	ok(rc == 0 && seen.count == 6 && seen.list[0] == 999998 &&
	    seen.list[1] == 999999 && seen.list[5] == 4 && since == 5,
	    "across the wrap: 999998, 999999, then 1 to 4, not 10 "
	    "(%d: %u %u .. %u)", seen.count, seen.list[0], seen.list[1],
	    seen.list[5]);

	exits[0] = (struct conn_exit){ first, 1000001 };
	exits[1] = (struct conn_exit){ second, 4242 };	/* another pid */
	exits[2] = (struct conn_exit){ 777, 1000007 };	/* no such record */
	rc = store_conn_drop_exited(store, exits, 3, &dropped);
	ok(rc == 0 && dropped == 1, "drop the exited: one matches (%u)",
	    dropped);
	ok(store_conn_get(store, first, &info) == STORE_ENOCONN &&
	    store_conn_get(store, second, &info) == 0,
	    "the exited relay's record is gone; one of another pid stays");
	ok(nconns_of(store, "pop3") == 1 && nconns_of(store, "total") == 1,
	    "the chain's relay counts are down by one");
	rc = store_conn_drop_exited(store, exits, 1, &dropped);
	ok(rc == 0 && dropped == 0, "dropping it again finds nothing");
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

static void
remove_tree(void)
{
	char command[600];

	/* The temp dir is ours alone: mkdtemp made it. */
	snprintf(command, sizeof(command), "rm -rf '%s'", top_dir);
	if (system(command) != 0)
		printf("# could not remove %s\n", top_dir);
}

/* Registering says how each direction is shaped and sizes the first
 * quantum with the new relay counted; many relays starting at once owe
 * the limit at most its cap, and a refused one is told to come back in
 * its own slot after the time its draw fits. */
static void
test_start_many(void)
{
	struct store *store;
	struct limit_cfg cfg;
	struct conn_info info;
	struct limit_info limit_info;
	struct grant grant;
	uint64_t quantum_B[2], before_ns, after_ns, slot_ns, first_fit_ns = 0;
	uint32_t ids[10];
	size_t levels;
	int shaped[2], rc, i, granted = 0, refused = 0, spread_ok = 1;

	if ((rc = store_open(&store, dir_for("start"), 0)))
		bail("store_open", rc);
	/* A limit named that does not exist: registered, unshaped, and
	 * told so (iprelay-conn logs it). */
	memset(&info, 0, sizeof(info));
	info.pid = getpid();
	snprintf(info.limit, sizeof(info.limit), "misspelt");
	rc = store_conn_register_shaped(store, &info, shaped, quantum_B,
	    &levels);
	ok(rc == 0 && levels == 0 && !shaped[DIR_UP] && !shaped[DIR_DOWN],
	    "register on a missing limit: 0 levels, nothing shaped (%s)",
	    store_strerror(rc));
	if (rc == 0)
		store_conn_unregister(store, info.id);
	/* 100 B/s down only, burst 100: slow enough that the draws below
	 * come long before the bucket refills on a loaded machine. */
	cfg = cfg_of(0, 100, 100, "");
	before_ns = monotonic_ns();
	store_limit_put(store, "storm", &cfg);
	after_ns = monotonic_ns();
	for (i = 0; i < 10; i++) {
		memset(&info, 0, sizeof(info));
		info.pid = getpid();
		snprintf(info.limit, sizeof(info.limit), "storm");
		rc = store_conn_register_shaped(store, &info, shaped,
		    quantum_B, &levels);
		if (rc)
			bail("register", rc);
		ids[i] = info.id;
		if (i == 0)
			ok(levels == 1, "register on storm: 1 level");
		if (i == 0)
			ok(!shaped[DIR_UP] && shaped[DIR_DOWN] &&
			    quantum_B[DIR_DOWN] == 100,
			    "register: up unshaped, down shaped, first "
			    "quantum for 1 relay: the burst (%" PRIu64 ")",
			    quantum_B[DIR_DOWN]);
	}
	ok(shaped[DIR_DOWN] && quantum_B[DIR_DOWN] == 10,
	    "register: the tenth relay's first quantum counts all ten: "
	    "burst / 10 (%" PRIu64 ")", quantum_B[DIR_DOWN]);
	/* Ten relays drawing quanta sized for one, at once: the debt stops
	 * at the cap (the burst, 100) and the rest are refused. */
	for (i = 0; i < 10; i++) {
		rc = store_reserve(store, ids[i], "storm", DIR_DOWN, 50,
		    &grant);
		if (rc)
			bail("reserve", rc);
		if (grant.bytes) {
			granted++;
			continue;
		}
		refused++;
		/* T is when 50 more fit under the cap: when the bucket,
		 * empty when the limit was set, has refilled 50 of the
		 * 100 B drawn (500 ms after the set); then this relay's
		 * slot of ten over cap / r = 1 s. */
		slot_ns = (ids[i] % 10) * 100000000ULL;
		if (!first_fit_ns)
			first_fit_ns = grant.release_ns - slot_ns;
		if (grant.release_ns - slot_ns != first_fit_ns)
			spread_ok = 0;
	}
	store_limit_get(store, "storm", &limit_info);
	ok(granted == 2 && refused == 8 &&
	    limit_info.bucket[DIR_DOWN].tokens_B >= -100 &&
	    limit_info.total_B[DIR_DOWN] == 100,
	    "ten draws of 50 at once: two granted (owing the cap, 100), "
	    "eight refused and not counted (%d, %d)", granted, refused);
	ok(spread_ok && first_fit_ns >= before_ns + 500000000 &&
	    first_fit_ns <= after_ns + 500000000,
	    "refused draws: the same fit time T (when 50 B fit under the "
	    "cap), each offset by its own slot of cap / r / N");
	store_close(store);
}

int
main(void)
{
	if (mkdtemp(top_dir) == NULL)
		bail("mkdtemp", errno);
	unsetenv("IPRELAY_STATE_DIR");
	test_limits();
	test_chain_depth();
	test_update_fields();
	test_write_created();
	test_headroom();
	test_conns();
	test_reserve();
	test_start_many();
	test_bad_files();
	test_decode();
	test_ceil();
	test_reap_and_boot();
	test_new_and_exited();
	test_dir_resolve();
	test_config_behind();
	remove_tree();
	return done_testing();
}
