/*
 * The store's live relays in a temporary state dir: connections
 * registered and counted on their chain, draws on a chain, many relays
 * starting at once, records of dead relays reaped and reset at boot, the
 * new and exited relays a refiller learns of, and the file's headroom.
 * One process; children only to have a pid that is dead.
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
	/* stat first: ok's arguments may be read before its first. */
	if (stat(dir_for("headroom/" STORE_FILE), &st) < 0)
		memset(&st, 0, sizeof(st));
	ok(st.st_size > 0 &&
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
	uint64_t made_ns, before_ns, after_ns;
	uint32_t id;
	struct limit_cfg cfg;
	int rc;

	if ((rc = store_open(&store, dir_for("reserve"), 0)))
		bail("store_open", rc);
	made_ns = monotonic_ns();
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
	 * makes the 500 bytes wait until half a second after its bucket
	 * was made (what it gained since counts), whatever the synced
	 * commits of the two limits took on a busy machine. */
	ok(grant.release_ns >= made_ns + 490000000 &&
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

	/* A live store made now is this boot's (store_boot_stamp at its
	 * making): the first refiller to run keeps the relays registered
	 * before it.  It took them for a past boot's and dropped them all
	 * (caps.t: a cap over by the relays iprelay's refiller wiped). */
	store_reserve(store, live_id, "total", DIR_UP, 100, &grant);
	rc = store_boot_reset(store, &was_reset);
	ok(rc == 0 && was_reset == 0, "a store made in this boot: the first "
	    "refiller's boot check resets nothing (rc %d, reset %d)", rc,
	    was_reset);
	ok(store_conn_get(store, live_id, &info) == 0 &&
	    nconns_of(store, "total") == 1,
	    "the relay registered before it keeps its record and count");
	is_rc(store_meta_put(store, "boot_id", "another-boot", 12), 0,
	    "pretend the store was last used in another boot");
	rc = store_boot_reset(store, &was_reset);
	ok(rc == 0 && was_reset == 1, "another boot: reset");
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
	    "another boot again");
	rc = store_boot_reset(store, &was_reset);
	ok(rc == 0 && was_reset == 1 && nconns_of(store, "total") == 0,
	    "another boot: reset again, connections dropped");
	store_close(store);
}

/* A live store kept on disk (-S DIR) across a reboot: the first process of
 * the new boot to open it resets it before registering, so the records of
 * relays that start before the first refiller are not dropped by that
 * refiller's boot check (it took them for the past boot's). */
static void
test_boot_follow_at_open(void)
{
	struct store *store;
	struct conn_info info;
	uint32_t old_id, new_id;
	int64_t far_at_s = 1;	/* a boot in 1970 */
	char boot_id[64] = "";
	FILE *file;
	int rc, was_reset;

	file = fopen("/proc/sys/kernel/random/boot_id", "r");
	if (file == NULL || fgets(boot_id, sizeof(boot_id), file) == NULL) {
		/* The open decides by boot ids only (store.h): without one
		 * there is nothing to check here. */
		ok(1, "# SKIP no kernel boot id readable here");
		if (file)
			fclose(file);
		return;
	}
	fclose(file);
	store = open_at("boot-follow");
	put(store, "total", 1000, "");
	old_id = register_conn(store, "total", getpid());
	is_rc(store_meta_put(store, "boot_id", "another-boot", 12), 0,
	    "the live store is left as a past boot's");
	store_close(store);

	store = open_at("boot-follow");
	ok(store_conn_get(store, old_id, &info) == STORE_ENOCONN &&
	    nconns_of(store, "total") == 0,
	    "the first open of this boot dropped the past boot's records");
	new_id = register_conn(store, "total", getpid());
	rc = store_boot_reset(store, &was_reset);
	ok(rc == 0 && was_reset == 0, "the first refiller then finds the "
	    "store this boot's (rc %d, reset %d)", rc, was_reset);
	ok(store_conn_get(store, new_id, &info) == 0 &&
	    nconns_of(store, "total") == 1,
	    "the relay registered before that refiller keeps its record");
	store_close(store);

	/* Without a boot id (stamped by a process that could not read one)
	 * only the boot instant tells, and an NTP step moves that: an open
	 * leaves the store as it is, the refiller decides once. */
	store = open_at("boot-follow");
	is_rc(store_meta_put(store, "boot_id", "", 0), 0,
	    "the boot id made empty");
	is_rc(store_meta_put(store, "boot_at", &far_at_s, sizeof(far_at_s)),
	    0, "the boot instant made another boot's");
	store_close(store);
	store = open_at("boot-follow");
	ok(store_conn_get(store, new_id, &info) == 0,
	    "an open does not reset a store known by its instant alone");
	rc = store_boot_reset(store, &was_reset);
	ok(rc == 0 && was_reset == 1 &&
	    store_conn_get(store, new_id, &info) == STORE_ENOCONN,
	    "the refiller's check does (rc %d, reset %d)", rc, was_reset);
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

int
main(void)
{
	fixture_start("unit-store-conn");
	test_headroom();
	test_conns();
	test_reserve();
	test_start_many();
	test_reap_and_boot();
	test_boot_follow_at_open();
	test_new_and_exited();
	remove_tree();
	return done_testing();
}
