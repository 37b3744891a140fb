/*
 * What the bucket tests (unit-bucket, unit-bucket-edges, unit-bucket-ceil)
 * share to check bucket.h on simulated clocks: a reproducible random
 * source, 128-bit numbers in words, the log of the releases one level saw,
 * and the worst excess over the contract on any interval of such a log.
 * Defined in tests/unit/timeline.c, linked into those three only.
 */
#ifndef IPRELAY_TIMELINE_H
#define IPRELAY_TIMELINE_H

#include <stddef.h>
#include <stdint.h>

typedef __int128 i128;

#define LEVELS_MAX	4
#define DRAWERS_MAX	8
#define GBps		(1000ULL * 1000 * 1000)

/* splitmix64: small, fast, and the same sequence everywhere.  A test sets
 * rng_state to its seed. */
extern uint64_t rng_state;

uint64_t
rng(void);

uint64_t
rng_below(uint64_t bound);

/* Log-uniform in [low, high]: small and huge values equally often. */
uint64_t
rng_log(uint64_t low, uint64_t high);

/* value in decimal, in buf (48 bytes are enough); returns buf. */
char *
i128_str(i128 value, char *buf);

/* One draw as one level saw it: the bytes leave at at_ns; due_ns is when
 * this level alone would have let them go (its ready time), which is
 * earlier only when a slower level below it held them back. */
struct release {
	uint64_t at_ns;
	uint64_t due_ns;
	uint64_t bytes;
	uint64_t seq;		/* draw order, to keep sorts stable */
};

struct level_log {
	struct release *events;
	size_t count, alloc;
};

void
log_release(struct level_log *log, uint64_t at_ns, uint64_t due_ns,
    uint64_t bytes);

/* qsort order of releases: by at_ns, then draw order. */
int
by_time(const void *a, const void *b);

/* The worst excess over the contract on any interval of log (nanobytes),
 * and where: timeline.c says how it is counted. */
i128
worst_excess_nB(struct level_log *log, uint64_t rate_Bps, int count_by_due,
    uint64_t *at_t0, uint64_t *at_t1);

#endif
