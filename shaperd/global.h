/*
 * shaperd's side of global limits (issue 16): every tick, one lease
 * renewal per global limit of the state dir, sent to Redis with one
 * EVALSHA of shaperd/lease.lua each (EVAL after NOSCRIPT), on a
 * non-blocking hiredis connection driven by shaperd's own poll loop, so a
 * hung Redis delays neither the tick, nor reaping, nor statistics.  The
 * shares that come back are written to the store (store_global_lease);
 * while Redis cannot be reached the last shares are held for each limit's
 * grace (store_global_hold), never longer, and never past one lease
 * without a live shaperd.
 */
#ifndef IPRELAY_GLOBAL_H
#define IPRELAY_GLOBAL_H

#include <poll.h>
#include <stdint.h>

#include "redis.h"
#include "store.h"

/* A renewal, or a connection's setup, that heard nothing for this long
 * drops the connection (a peer gone without a reset); then reconnects
 * back off from 100 ms, doubling, to 250 ms. */
#define GLOBAL_DEAD_NS		(2ULL * NS_PER_SEC)
/* Renewals missing this long: Redis counts as unreachable, hold. */
#define GLOBAL_HOLD_AFTER_NS	(300ULL * 1000 * 1000)
/* A lease ends this much earlier on the host than in Redis. */
#define GLOBAL_LEASE_MARGIN_NS	(10ULL * 1000 * 1000)

struct global;

struct global_stats {
	unsigned limits;		/* global limits in the state dir */
	unsigned leased;		/* of them, in a lease now */
	int connected;			/* to Redis, script loaded */
	uint64_t renewals;		/* answered lease calls */
	uint64_t failures;		/* calls that failed or timed out */
	uint64_t last_rtt_ns;		/* of the last answered batch */
	uint64_t max_rtt_ns;		/* since start */
	uint64_t last_ok_unix_ns;	/* CLOCK_REALTIME; 0 = never */
};

/* host_id: this host's name in Redis (unique per state dir). */
int
global_create(struct global **global, struct store *store,
    const struct redis_conf *conf, const char *host_id);

/* Drops this host's records (best effort, 100 ms at most) and frees. */
void
global_destroy(struct global *global);

/* Once per shaperd tick, while shaperd is the refiller. */
void
global_tick(struct global *global, uint64_t now_ns);

/* The descriptor to poll and its events; fd -1 when none. */
void
global_pollfd(struct global *global, struct pollfd *pfd);

/* After poll: the events seen on that descriptor. */
void
global_handle(struct global *global, short revents);

void
global_get_stats(const struct global *global, struct global_stats *stats);

#endif
