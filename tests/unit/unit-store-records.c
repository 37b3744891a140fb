/*
 * The store's files and records: every way a state file can be wrong
 * (foreign, another format version, random bytes, missing, damaged
 * records), each record decoded as the store would, and the layouts on
 * disk of limits with and without ceilings, with a borrow through a real
 * chain.
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

/* Another program's LMDB file as the configuration: one record in the
 * database DB_NAME ("meta" is also one of ours), or in the main database
 * when DB_NAME is NULL. */
static int
make_lmdb(const char *dir, const char *db_name)
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
	if ((rc = mdb_dbi_open(txn, db_name, db_name ? MDB_CREATE : 0,
	    &dbi)) || (rc = mdb_put(txn, dbi, &key, &value, 0))) {
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

	is_rc(make_lmdb(dir_for("foreign"), "accounts"), 0,
	    "made an LMDB file with other named databases");
	is_rc(store_open(&store, dir_for("foreign"), 0), STORE_EFOREIGN,
	    "foreign LMDB file refused");
	is_rc(store_open(&store, dir_for("foreign"), STORE_RDONLY),
	    STORE_EFOREIGN, "foreign LMDB file refused read-only too");
	is_rc(make_lmdb(dir_for("foreign-meta"), "meta"), 0,
	    "made an LMDB file with a \"meta\" of its own");
	is_rc(store_open(&store, dir_for("foreign-meta"), 0), STORE_EFOREIGN,
	    "a \"meta\" without our format refused");
	is_rc(make_lmdb(dir_for("plain"), NULL), 0,
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

int
main(void)
{
	fixture_start("unit-store-records");
	test_bad_files();
	test_decode();
	test_ceil();
	remove_tree();
	return done_testing();
}
