/*
 * The refiller: exactly one process per state dir settles every bucket on
 * a tick, applies what changed, measures rates and reaps the records of
 * dead relays.  Who it is, is decided by two OFD locks in the state dir:
 *   refiller.lock  held by whoever refills now;
 *   shaperd.lock   held by a running shaperd, which has priority: an
 *                  embedded refiller (inside iprelay) that sees it held
 *                  hands refiller.lock back.
 * The kernel drops both locks when their holder dies, so a successor takes
 * over within one tick.  Buckets are settled lazily by every draw as well,
 * so relays keep their rates exactly when no refiller runs at all.
 */
#ifndef IPRELAY_REFILLER_H
#define IPRELAY_REFILLER_H

#include <stdint.h>
#include <sys/types.h>

#include "store.h"

#define REFILLER_TICK_NS	(100ULL * 1000 * 1000)

enum refiller_kind {
	REFILLER_SHAPERD,	/* has priority */
	REFILLER_EMBEDDED,	/* iprelay: yields to a shaperd */
};

struct refiller;

int
refiller_create(struct refiller **refiller, struct store *store,
    const char *dir, enum refiller_kind kind);

void
refiller_destroy(struct refiller *refiller);

/* shaperd only: claim the shaperd lock; EBUSY if another shaperd runs. */
int
refiller_claim_priority(struct refiller *refiller);

/* Take or hand back the refiller lock as the rules above say; returns 1
 * while this process is the refiller. */
int
refiller_arbitrate(struct refiller *refiller);

/* One tick of work; call every REFILLER_TICK_NS while arbitrate says 1.
 * Stale reader slots are cleared on every tick, and the records of relays
 * whose exit was seen since the last (a pidfd each) are dropped.  Every
 * pid is checked, and connection rates measured, once a second by the
 * clock, whatever the tick.  *reaped: records removed. */
int
refiller_tick(struct refiller *refiller, unsigned *reaped);

int
refiller_is_active(const struct refiller *refiller);

/* /proc/PID/stat starttime in clock ticks (0 if unknown): relays record
 * their own at registration so a recycled pid is never taken for them. */
uint64_t
refiller_proc_start(pid_t pid);

#endif
