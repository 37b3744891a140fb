/*
 * Caps on live relays (store-caps.c): max_conns over a limit's subtree,
 * max_conns_per_source by source (IPv4 address, IPv4-mapped as IPv4,
 * IPv6 /64), every ancestor's caps, refusals counted on the refusing
 * limit, records of dead relays not counted, and what a registration
 * costs with a thousand records in the store.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "store.h"
#include "store-fixture.h"
#include "tap.h"

static void
put_caps(struct store *store, const char *name, const char *parent,
    uint32_t max_conns, uint32_t max_source)
{
	struct limit_cfg cfg;
	int rc;

	memset(&cfg, 0, sizeof(cfg));
	cfg.rate_Bps[DIR_UP] = cfg.rate_Bps[DIR_DOWN] = 1000000;
	snprintf(cfg.parent, sizeof(cfg.parent), "%s", parent);
	cfg.max_conns = max_conns;
	cfg.max_conns_per_source = max_source;
	if ((rc = store_limit_put(store, name, &cfg)))
		bail("store_limit_put", rc);
}

/* 0 and the id, or the store's refusal. */
static int
reg(struct store *store, const char *limit, const char *peer, pid_t pid,
    uint32_t *id, struct cap_refusal *why)
{
	struct conn_info info;
	int shaped[2];
	uint64_t quantum_B[2];
	size_t levels;
	int rc;

	memset(&info, 0, sizeof(info));
	info.pid = pid;
	snprintf(info.limit, sizeof(info.limit), "%s", limit);
	snprintf(info.peer, sizeof(info.peer), "%s", peer);
	snprintf(info.remote, sizeof(info.remote), "127.0.0.1:80");
	rc = store_conn_register_capped(store, &info, shaped, quantum_B,
	    &levels, why);
	if (id)
		*id = info.id;
	return rc;
}

static uint64_t
refused_of(struct store *store, const char *name, int which)
{
	struct limit_info info;

	if (store_limit_get(store, name, &info))
		return UINT64_MAX;
	return info.refused[which];
}

static void
test_source_keys(void)
{
	struct source_key a, b;
	char text[PEER_MAX + 1];

	ok(source_key_of("192.0.2.1:1000", &a) == 0 && a.family == 4,
	    "source: IPv4 peer is family 4");
	ok(source_key_of("[::ffff:192.0.2.1]:2000", &b) == 0 &&
	    b.family == 4 && memcmp(&a, &b, sizeof(a)) == 0,
	    "source: an IPv4-mapped IPv6 peer is the same IPv4 source");
	ok(source_key_of("[2001:db8:1:2:aaaa::1]:1", &a) == 0 &&
	    source_key_of("[2001:db8:1:2:ffff:1:2:3]:2", &b) == 0 &&
	    memcmp(&a, &b, sizeof(a)) == 0,
	    "source: IPv6 peers in one /64 are one source");
	ok(source_key_of("[2001:db8:1:3::1]:1", &b) == 0 &&
	    memcmp(&a, &b, sizeof(a)) != 0,
	    "source: the next /64 is another source");
	source_key_format(&a, text, sizeof(text));
	ok(strcmp(text, "2001:db8:1:2::/64") == 0,
	    "source: an IPv6 source is shown as its /64 (%s)", text);
	ok(source_key_of("unix", &a) < 0 && source_key_of("unknown", &a) < 0 &&
	    source_key_of("[::1", &a) < 0 && source_key_of("1.2.3:4", &a) < 0,
	    "source: a peer that is no address has no source");
}

static void
test_per_source(void)
{
	struct store *store = open_at("source");
	struct cap_refusal why;
	uint32_t ids[4];
	int i, rc;

	put_caps(store, "web", "", 0, 3);
	for (i = 0; i < 3; i++)
		if ((rc = reg(store, "web", "10.0.0.1:1000", getpid(), &ids[i],
		    NULL)))
			bail("register", rc);
	rc = reg(store, "web", "10.0.0.1:2000", getpid(), NULL, &why);
	is_rc(rc, STORE_ECAPSRC, "per source: the 4th from 10.0.0.1 "
	    "against 3 is refused");
	ok(strcmp(why.limit, "web") == 0 && why.cap == 3 && why.live == 3 &&
	    strcmp(why.source, "10.0.0.1") == 0,
	    "per source: the refusal names web, cap 3, 3 live, 10.0.0.1 "
	    "(%s %u %u %s)", why.limit, why.cap, why.live, why.source);
	is_rc(reg(store, "web", "[::ffff:10.0.0.1]:3000", getpid(), NULL,
	    NULL), STORE_ECAPSRC, "per source: the same address mapped to "
	    "IPv6 is refused too");
	is_rc(reg(store, "web", "10.0.0.2:1000", getpid(), &ids[3], NULL), 0,
	    "per source: another address is served");
	ok(refused_of(store, "web", 1) == 2 && refused_of(store, "web", 0) == 0,
	    "per source: 2 refusals counted on web, by source");
	store_conn_unregister(store, ids[0]);
	is_rc(reg(store, "web", "10.0.0.1:4000", getpid(), NULL, NULL), 0,
	    "per source: a slot freed by an ending relay is taken again");
	/* IPv6 by /64 */
	for (i = 0; i < 3; i++)
		if ((rc = reg(store, "web", i == 2 ? "[2001:db8:0:1::99]:1" :
		    "[2001:db8:0:1::1]:1", getpid(), NULL, NULL)))
			bail("register v6", rc);
	is_rc(reg(store, "web", "[2001:db8:0:1:ffff::7]:9", getpid(), NULL,
	    &why), STORE_ECAPSRC, "per source: a 4th from one IPv6 /64 is "
	    "refused");
	ok(strcmp(why.source, "2001:db8:0:1::/64") == 0,
	    "per source: named as the /64 (%s)", why.source);
	is_rc(reg(store, "web", "[2001:db8:0:2::1]:9", getpid(), NULL, NULL),
	    0, "per source: the next /64 is served");
	/* Records of the address in IPv6 forms count for an IPv4 client,
	 * and an address that only starts like it does not. */
	put_caps(store, "mapped", "", 0, 3);
	if ((rc = reg(store, "mapped", "[::ffff:10.9.9.9]:1", getpid(), NULL,
	    NULL)) || (rc = reg(store, "mapped", "[0:0:0:0:0:FFFF:a09:909]:2",
	    getpid(), NULL, NULL)) || (rc = reg(store, "mapped",
	    "10.9.9.99:3", getpid(), NULL, NULL)) || (rc = reg(store, "mapped",
	    "10.9.9.9:4", getpid(), NULL, NULL)))
		bail("register mapped", rc);
	is_rc(reg(store, "mapped", "10.9.9.9:5", getpid(), NULL, &why),
	    STORE_ECAPSRC, "per source: IPv4-mapped records in any form count "
	    "for the IPv4 client, 10.9.9.99 does not");
	ok(why.live == 3, "per source: 3 counted (%u)", why.live);
	/* Unshaped relays and a limit not set have no caps. */
	is_rc(reg(store, "", "10.0.0.1:1", getpid(), NULL, NULL), 0,
	    "per source: an unshaped relay has no cap");
	store_close(store);
}

static void
test_subtree(void)
{
	struct store *store = open_at("subtree");
	struct cap_refusal why;
	uint32_t id;
	int i, rc;

	/* top caps 5 over its subtree; a caps 3 per source; b no caps. */
	put_caps(store, "top", "", 5, 0);
	put_caps(store, "a", "top", 0, 3);
	put_caps(store, "b", "top", 0, 0);
	for (i = 0; i < 3; i++)
		if ((rc = reg(store, "a", "10.0.0.1:1", getpid(), NULL, NULL)))
			bail("register a", rc);
	is_rc(reg(store, "a", "10.0.0.1:1", getpid(), NULL, &why),
	    STORE_ECAPSRC, "subtree: a's own per-source cap refuses first");
	ok(strcmp(why.limit, "a") == 0, "subtree: named a (%s)", why.limit);
	if ((rc = reg(store, "b", "10.0.0.1:1", getpid(), NULL, NULL)) ||
	    (rc = reg(store, "b", "10.0.0.9:1", getpid(), &id, NULL)))
		bail("register b", rc);
	is_rc(reg(store, "b", "10.0.0.3:1", getpid(), NULL, &why),
	    STORE_ECAPS, "subtree: top's cap of 5 counts a's 3 and b's 2");
	ok(strcmp(why.limit, "top") == 0 && why.cap == 5 && why.live == 5,
	    "subtree: named top, cap 5, 5 live (%s %u %u)", why.limit, why.cap,
	    why.live);
	ok(refused_of(store, "top", 0) == 1 && refused_of(store, "b", 0) == 0 &&
	    refused_of(store, "a", 1) == 1,
	    "subtree: counted on the limit whose cap refused");
	is_rc(reg(store, "top", "10.0.0.4:1", getpid(), NULL, NULL),
	    STORE_ECAPS, "subtree: a relay on top itself is refused as well");
	store_conn_unregister(store, id);
	is_rc(reg(store, "b", "10.0.0.3:1", getpid(), NULL, NULL), 0,
	    "subtree: one ending frees top's slot");
	store_close(store);
}

/* A killed relay's record, not yet reaped, holds no slot. */
static void
test_dead_records(void)
{
	struct store *store = open_at("dead");
	char who[64];
	pid_t dead;
	int i, rc;

	dead = fork();
	if (dead == 0)
		_exit(0);
	waitpid(dead, NULL, 0);
	put_caps(store, "web", "", 2, 2);
	for (i = 0; i < 2; i++)
		if ((rc = reg(store, "web", "10.0.0.1:1", dead, NULL, NULL)))
			bail("register dead", rc);
	is_rc(reg(store, "web", "10.0.0.1:1", getpid(), NULL, NULL), 0,
	    "dead: records of exited relays hold no slot");
	is_rc(reg(store, "web", "10.0.0.1:1", getpid(), NULL, NULL), 0,
	    "dead: a second live one fits under 2 too");
	is_rc(reg(store, "web", "10.0.0.1:1", getpid(), NULL, NULL),
	    STORE_ECAPS, "dead: a third live one is refused");
	store_close(store);

	/* With a live refiller named in the store (it drops a dead relay's
	 * record within a tick) the records are trusted as they are. */
	store = open_at("trusted");
	snprintf(who, sizeof(who), "%d shaperd", (int)getpid());
	if ((rc = store_meta_put(store, "refiller", who, strlen(who))))
		bail("meta put", rc);
	put_caps(store, "web", "", 2, 0);
	for (i = 0; i < 2; i++)
		if ((rc = reg(store, "web", "10.0.0.1:1", dead, NULL, NULL)))
			bail("register dead", rc);
	is_rc(reg(store, "web", "10.0.0.1:1", getpid(), NULL, NULL),
	    STORE_ECAPS, "dead: with a live refiller, records are not asked "
	    "about (it reaps them)");
	snprintf(who, sizeof(who), "%d shaperd", (int)dead);
	if ((rc = store_meta_put(store, "refiller", who, strlen(who))))
		bail("meta put", rc);
	is_rc(reg(store, "web", "10.0.0.1:1", getpid(), NULL, NULL), 0,
	    "dead: with the named refiller gone, each record's process is");
	store_close(store);
}

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* A thousand relays on other limits and sources, and the caps at their
 * fullest: what one registration costs, said and bounded loosely (the
 * machine may be busy and under ASan). */
static void
test_many(void)
{
	struct store *store = open_at("many");
	char peer[64];
	uint64_t start_ns, plain_ns, capped_ns, refused_ns, full_ns;
	uint64_t trusted_ns;
	char who[64];
	uint32_t id;
	int i, rc, rounds = 200;

	put_caps(store, "web", "", 1100, 4);
	put_caps(store, "other", "", 0, 0);
	put_caps(store, "plain", "", 0, 0);
	for (i = 0; i < 1000; i++) {
		snprintf(peer, sizeof(peer), "10.%d.%d.1:%d", i / 250,
		    i % 250, 1000 + i);
		if ((rc = reg(store, i % 2 ? "web" : "other", peer, getpid(),
		    NULL, NULL)))
			bail("register many", rc);
	}
	for (i = 0; i < 3; i++)
		if ((rc = reg(store, "web", "192.0.2.7:1", getpid(), NULL,
		    NULL)))
			bail("register 3", rc);
	start_ns = now_ns();
	for (i = 0; i < rounds; i++) {
		if ((rc = reg(store, "plain", "192.0.2.8:1", getpid(), &id,
		    NULL)))
			bail("register plain", rc);
		store_conn_unregister(store, id);
	}
	plain_ns = (now_ns() - start_ns) / (uint64_t)rounds;
	start_ns = now_ns();
	for (i = 0; i < rounds; i++) {
		if ((rc = reg(store, "web", "192.0.2.7:1", getpid(), &id,
		    NULL)))
			bail("register capped", rc);
		store_conn_unregister(store, id);
	}
	capped_ns = (now_ns() - start_ns) / (uint64_t)rounds;
	if ((rc = reg(store, "web", "192.0.2.7:1", getpid(), NULL, NULL)))
		bail("register 4th", rc);
	start_ns = now_ns();
	for (i = 0; i < rounds; i++)
		if (reg(store, "web", "192.0.2.7:1", getpid(), NULL, NULL) !=
		    STORE_ECAPSRC)
			break;
	refused_ns = (now_ns() - start_ns) / (uint64_t)rounds;
	ok(i == rounds, "many: every registration past the cap among 1004 "
	    "relays refused");
	ok(refused_of(store, "web", 1) == (uint64_t)rounds,
	    "many: %d refusals counted", rounds);
	/* A subtree at its max-conns: every registration counts its live
	 * relays again, one pass over every record. */
	put_caps(store, "other", "", 500, 0);
	start_ns = now_ns();
	for (i = 0; i < rounds; i++)
		if (reg(store, "other", "192.0.2.9:1", getpid(), NULL, NULL) !=
		    STORE_ECAPS)
			break;
	full_ns = (now_ns() - start_ns) / (uint64_t)rounds;
	ok(i == rounds, "many: a subtree at its max-conns of 500 refuses");
	/* As deployed: a refiller runs, and the records are trusted. */
	snprintf(who, sizeof(who), "%d shaperd", (int)getpid());
	if ((rc = store_meta_put(store, "refiller", who, strlen(who))))
		bail("meta put", rc);
	start_ns = now_ns();
	for (i = 0; i < rounds; i++)
		if (reg(store, "other", "192.0.2.9:1", getpid(), NULL, NULL) !=
		    STORE_ECAPS)
			break;
	trusted_ns = (now_ns() - start_ns) / (uint64_t)rounds;
	ok(i == rounds, "many: and refuses with a refiller running");
	diag("1004 records; registration + unregistration: no cap "
	    "%" PRIu64 " us, per-source cap %" PRIu64 " us; refusal by "
	    "source %" PRIu64 " us; refusal by max-conns 500 %" PRIu64 " us "
	    "with a refiller running, %" PRIu64 " us with none (each "
	    "relay's process asked)", plain_ns / 1000, capped_ns / 1000,
	    refused_ns / 1000, trusted_ns / 1000, full_ns / 1000);
	ok(capped_ns < 20 * 1000 * 1000 && refused_ns < 20 * 1000 * 1000 &&
	    full_ns < 20 * 1000 * 1000 && trusted_ns < 20 * 1000 * 1000,
	    "many: a capped registration costs under 20 ms");
	store_close(store);
}

int
main(void)
{
	fixture_start("unit-caps");
	test_source_keys();
	test_per_source();
	test_subtree();
	test_dead_records();
	test_many();
	remove_tree();
	return done_testing();
}
