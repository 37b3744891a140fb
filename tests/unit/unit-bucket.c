/*
 * The contract of bucket.h checked on simulated clocks: long random
 * timelines (many seeds, each reproducible: a failure prints its seed) of
 * drawers on one bucket and on nested chains, then the edges one by one.
 * No sleeps, no real time.  `unit-bucket SEED` replays one seed verbosely.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bucket.h"
#include "tap.h"

typedef __int128 i128;

static int replay;	/* one seed given: use it as it is for every shape */

/* splitmix64: small, fast, and the same sequence everywhere. */
static uint64_t rng_state;

static uint64_t
rng(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t
rng_below(uint64_t bound)
{
	return bound ? rng() % bound : 0;
}

/* Log-uniform in [low, high]: small and huge values equally often. */
static uint64_t
rng_log(uint64_t low, uint64_t high)
{
	unsigned bits_low = 63 - (unsigned)__builtin_clzll(low);
	unsigned bits_high = 63 - (unsigned)__builtin_clzll(high);
	unsigned bits = bits_low + (unsigned)rng_below(bits_high - bits_low + 1);
	uint64_t value = (1ULL << bits) | rng_below(1ULL << bits);

	if (value < low)
		value = low;
	if (value > high)
		value = high;
	return value;
}

static char *
u128_str(unsigned __int128 value, char *buf)
{
	char tmp[48];
	int len = 0, i;

	do {
		tmp[len++] = (char)('0' + (int)(value % 10));
		value /= 10;
	} while (value);
	for (i = 0; i < len; i++)
		buf[i] = tmp[len - 1 - i];
	buf[len] = '\0';
	return buf;
}

static char *
i128_str(i128 value, char *buf)
{
	if (value < 0) {
		buf[0] = '-';
		u128_str((unsigned __int128)-value, buf + 1);
		return buf;
	}
	return u128_str((unsigned __int128)value, buf);
}

/* ---- the simulation ---------------------------------------------------- */

#define LEVELS_MAX	4
#define DRAWERS_MAX	8
#define GBps		(1000ULL * 1000 * 1000)

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

struct drawer {
	size_t chain[LEVELS_MAX];	/* level indexes, leaf first */
	size_t depth;
	int saturating;			/* redraws the moment it is released */
	uint64_t quantum_max_B;
	uint64_t next_ns;		/* when it draws next */
};

struct sim {
	uint64_t seed;
	size_t nlevels;
	int parent[LEVELS_MAX];		/* -1 = top */
	struct bucket buckets[LEVELS_MAX];
	struct level_log logs[LEVELS_MAX];
	size_t ndrawers;
	struct drawer drawers[DRAWERS_MAX];
	uint64_t start_ns;
	uint64_t largest_draw_B[LEVELS_MAX];
};

/* The event arrays outlive a seed: reused, not freed, so thousands of
 * seeds do not map and unmap memory thousands of times. */
static struct level_log log_pool[LEVELS_MAX];

static void
log_release(struct level_log *log, uint64_t at_ns, uint64_t due_ns,
    uint64_t bytes)
{
	if (log->count == log->alloc) {
		log->alloc = log->alloc ? log->alloc * 2 : 1024;
		log->events = realloc(log->events,
		    log->alloc * sizeof(*log->events));
		if (log->events == NULL) {
			perror("realloc");
			exit(1);
		}
	}
	log->events[log->count].at_ns = at_ns;
	log->events[log->count].due_ns = due_ns;
	log->events[log->count].seq = log->count;
	log->events[log->count].bytes = bytes;
	log->count++;
}

static int
by_time(const void *a, const void *b)
{
	const struct release *x = a, *y = b;

	if (x->at_ns != y->at_ns)
		return (x->at_ns > y->at_ns) - (x->at_ns < y->at_ns);
	return (x->seq > y->seq) - (x->seq < y->seq);
}

static int
by_due(const void *a, const void *b)
{
	const struct release *x = a, *y = b;

	return (x->due_ns > y->due_ns) - (x->due_ns < y->due_ns);
}

/*
 * The largest excess over any closed interval [t0, t1] of
 *     released(t0, t1) - r * (t1 - t0) - held(t0)      (in nanobytes)
 * where released counts bytes by their time (due_ns if by_due, else
 * at_ns), and held(t0), only when counting by at_ns, is the bytes due
 * before t0 but leaving at t0 or later.  One sweep over the events sorted
 * by time: for each end j the best start i <= j maximises
 * r*T_i - S_(i-1) - held(T_i), kept as a running maximum.
 */
static i128
worst_excess_nB(struct level_log *log, uint64_t rate_Bps, int count_by_due,
    uint64_t *at_t0, uint64_t *at_t1)
{
	i128 sum_nB = 0, best_start = 0, excess, worst = 0, held_nB = 0;
	uint64_t best_start_ns = 0, t_ns;
	struct release *dues = NULL;
	size_t j, due_next = 0, left_next = 0;

	*at_t0 = *at_t1 = 0;
	if (log->count == 0)
		return 0;
	qsort(log->events, log->count, sizeof(*log->events),
	    count_by_due ? by_due : by_time);
	if (!count_by_due) {
		/* held(t) = sum(due < t) - sum(at < t): events sorted by
		 * at_ns give the second sum, a copy sorted by due the first. */
		dues = malloc((log->count + 1) * sizeof(*dues));
		if (dues == NULL) {
			perror("malloc");
			exit(1);
		}
		memcpy(dues, log->events, log->count * sizeof(*dues));
		qsort(dues, log->count, sizeof(*dues), by_due);
	}
	*at_t0 = *at_t1 = 0;
	for (j = 0; j < log->count; j++) {
		t_ns = count_by_due ? log->events[j].due_ns :
		    log->events[j].at_ns;
		if (!count_by_due) {
			while (due_next < log->count &&
			    dues[due_next].due_ns < t_ns)
				held_nB += (i128)dues[due_next++].bytes *
				    NS_PER_SEC;
			while (left_next < log->count &&
			    log->events[left_next].at_ns < t_ns)
				held_nB -= (i128)log->events[left_next++].bytes
				    * NS_PER_SEC;
		}
		i128 start = (i128)rate_Bps * t_ns - sum_nB - held_nB;

		if (j == 0 || start > best_start) {
			best_start = start;
			best_start_ns = t_ns;
		}
		sum_nB += (i128)log->events[j].bytes * NS_PER_SEC;
		excess = sum_nB - (i128)rate_Bps * t_ns + best_start;
		if (excess > worst) {
			worst = excess;
			*at_t0 = best_start_ns;
			*at_t1 = t_ns;
		}
	}
	free(dues);
	return worst;
}

enum shape { SHAPE_ONE, SHAPE_TWO, SHAPE_THREE, SHAPE_SIBLINGS, SHAPE_COUNT };
static const char *const shape_name[] = {
	"one bucket", "child in parent", "depth 3", "siblings and depth 3"
};

static void
sim_setup(struct sim *sim, uint64_t seed, enum shape shape, int saturate_all,
    int rates_grow_downward)
{
	size_t level, d, k;
	int cur;

	memset(sim, 0, sizeof(*sim));
	for (level = 0; level < LEVELS_MAX; level++)
		sim->logs[level] = log_pool[level];
	sim->seed = seed;
	rng_state = seed;
	switch (shape) {
	case SHAPE_ONE:
		sim->nlevels = 1;
		sim->parent[0] = -1;
		break;
	case SHAPE_TWO:
		sim->nlevels = 2;
		sim->parent[0] = 1;	/* child */
		sim->parent[1] = -1;	/* parent */
		break;
	case SHAPE_THREE:
		sim->nlevels = 3;
		sim->parent[0] = 1;
		sim->parent[1] = 2;
		sim->parent[2] = -1;
		break;
	default:
		/* 0 grandchild in 1, 1 and 2 siblings in 3. */
		sim->nlevels = 4;
		sim->parent[0] = 1;
		sim->parent[1] = 3;
		sim->parent[2] = 3;
		sim->parent[3] = -1;
		break;
	}
	/* Start far from zero: the clock of a machine up for weeks. */
	sim->start_ns = rng_log(1, 1ULL << 52);
	for (level = sim->nlevels; level-- > 0;) {
		uint64_t rate_Bps = rng_log(1, 40 * GBps), burst_B;

		if (rates_grow_downward && sim->parent[level] >= 0 &&
		    rate_Bps < sim->buckets[sim->parent[level]].rate_Bps)
			rate_Bps = sim->buckets[sim->parent[level]].rate_Bps +
			    rng_below(rate_Bps);
		if (rate_Bps > RATE_MAX)
			rate_Bps = RATE_MAX;
		switch (rng_below(4)) {
		case 0: burst_B = 0; break;	/* the default */
		case 1: burst_B = 1 + rng_below(4); break;
		default: burst_B = rng_log(1, rate_Bps * 2 + 1); break;
		}
		/* The lower bound needs b >= r * 1 ns: releases fall on
		 * whole nanoseconds, and a bucket holding less than one
		 * nanosecond of refill caps the refill of the last one. */
		if (saturate_all && burst_B &&
		    burst_B < (rate_Bps + NS_PER_SEC - 1) / NS_PER_SEC)
			burst_B = (rate_Bps + NS_PER_SEC - 1) / NS_PER_SEC;
		/* ... and a level below the bottleneck room for two draws
		 * of the top (every draw is at most the top's burst), or its
		 * own cap makes it the bottleneck. */
		if (saturate_all && sim->parent[level] >= 0) {
			uint64_t top_burst_B =
			    sim->buckets[sim->nlevels - 1].burst_B;
			uint64_t room_B = 2 * top_burst_B +
			    (rate_Bps + NS_PER_SEC - 1) / NS_PER_SEC;

			if (burst_B < room_B)
				burst_B = room_B;
		}
		if (burst_B > BURST_MAX)
			burst_B = BURST_MAX;
		bucket_init(&sim->buckets[level], rate_Bps, burst_B,
		    sim->start_ns);
	}
	sim->ndrawers = 1 + rng_below(DRAWERS_MAX);
	for (d = 0; d < sim->ndrawers; d++) {
		struct drawer *drawer = &sim->drawers[d];

		/* Leaf first: any level, then its ancestors. */
		cur = (int)rng_below(sim->nlevels);
		for (k = 0; cur >= 0; k++, cur = sim->parent[cur])
			drawer->chain[k] = (size_t)cur;
		drawer->depth = k;
		drawer->saturating = saturate_all || rng_below(2);
		/* Up to twice the smallest burst: draws above it are clamped. */
		drawer->quantum_max_B = rng_log(1, CHUNK_MAX);
		drawer->next_ns = sim->start_ns;
	}
}

/* Run until ndraws draws; returns the time of the last draw. */
static uint64_t
sim_run(struct sim *sim, size_t ndraws, uint64_t *end_ns)
{
	struct bucket *levels[LEVELS_MAX];
	uint64_t now_ns = sim->start_ns, release_ns, want_B, got_B;
	size_t n, d, k, next, bottleneck;

	for (n = 0; n < ndraws; n++) {
		/* The drawer due first: the clock only moves forward. */
		next = 0;
		for (d = 1; d < sim->ndrawers; d++)
			if (sim->drawers[d].next_ns < sim->drawers[next].next_ns)
				next = d;
		struct drawer *drawer = &sim->drawers[next];

		now_ns = drawer->next_ns;
		for (k = 0; k < drawer->depth; k++)
			levels[k] = &sim->buckets[drawer->chain[k]];
		want_B = 1 + rng_below(drawer->quantum_max_B);
		got_B = bucket_draw(levels, drawer->depth, want_B, now_ns,
		    &release_ns);
		if (got_B == 0 || got_B > want_B || release_ns < now_ns) {
			diag("seed %" PRIu64 ": draw of %" PRIu64 " gave %"
			    PRIu64 " at %" PRIu64 " for %" PRIu64, sim->seed,
			    want_B, got_B, release_ns, now_ns);
			return 0;
		}
		/* The bottleneck is the highest level ready at release_ns;
		 * levels above it were ready earlier. */
		bottleneck = 0;
		for (k = 0; k < drawer->depth; k++)
			if (bucket_ready_ns(levels[k]) == release_ns)
				bottleneck = k;
		for (k = 0; k < drawer->depth; k++) {
			uint64_t due_ns = k <= bottleneck ? release_ns :
			    bucket_ready_ns(levels[k]);

			if (due_ns > release_ns) {
				diag("seed %" PRIu64 ": level %zu ready at %"
				    PRIu64 " after the release at %" PRIu64,
				    sim->seed, k, due_ns, release_ns);
				return 0;
			}
			log_release(&sim->logs[drawer->chain[k]], release_ns,
			    due_ns, got_B);
			if (got_B > sim->largest_draw_B[drawer->chain[k]])
				sim->largest_draw_B[drawer->chain[k]] = got_B;
		}
		drawer->next_ns = release_ns;
		if (!drawer->saturating) {
			/* Mostly short pauses, sometimes hours of silence. */
			switch (rng_below(8)) {
			case 0:
				drawer->next_ns += rng_below(4ULL * 3600 *
				    NS_PER_SEC);
				break;
			case 1: case 2:
				drawer->next_ns += rng_below(NS_PER_SEC);
				break;
			default:
				drawer->next_ns += rng_below(1000 * 1000);
				break;
			}
		}
	}
	*end_ns = now_ns;
	return 1;
}

static void
sim_free(struct sim *sim)
{
	size_t level;

	for (level = 0; level < sim->nlevels; level++) {
		log_pool[level] = sim->logs[level];
		log_pool[level].count = 0;
	}
}

/* Upper bound on every level of every shape with random demand. */
static void
test_upper_bound(uint64_t first_seed, unsigned nseeds, size_t ndraws,
    int by_due_time, int verbose)
{
	unsigned shape, s, bad_seeds;
	struct sim sim;
	uint64_t end_ns, t0, t1;
	char b1[48], b2[48];
	size_t level;

	for (shape = 0; shape < SHAPE_COUNT; shape++) {
		bad_seeds = 0;
		for (s = 0; s < nseeds; s++) {
			uint64_t seed = replay ? first_seed :
			    first_seed + s * 7919 + shape;
			int seed_ok = 1;

			sim_setup(&sim, seed, shape, 0, 0);
			if (!sim_run(&sim, ndraws, &end_ns))
				seed_ok = 0;
			for (level = 0; seed_ok && level < sim.nlevels;
			    level++) {
				struct bucket *bucket = &sim.buckets[level];
				i128 worst = worst_excess_nB(&sim.logs[level],
				    bucket->rate_Bps, by_due_time, &t0, &t1);
				/* Releases are whole nanoseconds, rounded
				 * up: the tokens of one released at t0 were
				 * complete up to 1 ns before it. */
				i128 allowed = (i128)bucket->burst_B *
				    NS_PER_SEC + bucket->rate_Bps;

				if (verbose || worst > allowed)
					diag("seed %" PRIu64 " %s level %zu "
					    "rate %" PRIu64 " burst %" PRIu64
					    ": worst excess %s nB over [%"
					    PRIu64 ", %" PRIu64 "], allowed "
					    "%s nB", seed, shape_name[shape],
					    level, bucket->rate_Bps,
					    bucket->burst_B,
					    i128_str(worst, b1), t0, t1,
					    i128_str(allowed, b2));
				if (worst > allowed)
					seed_ok = 0;
			}
			bad_seeds += !seed_ok;
			sim_free(&sim);
		}
		ok(bad_seeds == 0, "upper bound b + r*dt%s on every interval, "
		    "%s: %u seeds x %zu draws (%u failed)",
		    by_due_time ? " by due time" :
		    " + held by a slower child", shape_name[shape], nseeds,
		    ndraws, bad_seeds);
	}
}

/*
 * Lower bound: every drawer saturating, buckets starting empty, and no
 * level below the top faster-limited than its parent, so the top is the
 * bottleneck of every draw.  Just before each release R on the top level,
 *     released(start, R) >= r * (R - start) - q
 * with q the draw released at R.
 */
static void
test_lower_bound(uint64_t first_seed, unsigned nseeds, size_t ndraws,
    int verbose)
{
	unsigned shape, s, bad_seeds;
	struct sim sim;
	uint64_t end_ns;
	char b1[48], b2[48];

	for (shape = 0; shape < SHAPE_COUNT; shape++) {
		bad_seeds = 0;
		for (s = 0; s < nseeds; s++) {
			uint64_t seed = replay ? first_seed :
			    first_seed + s * 104729 + shape;
			size_t top = sim.nlevels, j;
			struct level_log *log;
			i128 released_nB = 0, floor_nB;
			int seed_ok = 1;

			sim_setup(&sim, seed, shape, 1, 1);
			top = sim.nlevels - 1;
			if (!sim_run(&sim, ndraws, &end_ns))
				seed_ok = 0;
			log = &sim.logs[top];
			if (log->count == 0)
				seed_ok = 0;
			else
				qsort(log->events, log->count,
				    sizeof(*log->events), by_time);
			for (j = 0; seed_ok && j < log->count; j++) {
				uint64_t at_ns = log->events[j].at_ns;
				uint64_t q_B = log->events[j].bytes;

				/* Checked strictly before each instant, with
				 * the first draw released then. */
				if (j > 0 && log->events[j - 1].at_ns == at_ns) {
					released_nB += (i128)q_B * NS_PER_SEC;
					continue;
				}
				floor_nB = (i128)sim.buckets[top].rate_Bps *
				    (at_ns - 1 - sim.start_ns) -
				    (i128)q_B * NS_PER_SEC;
				if (released_nB < floor_nB) {
					diag("seed %" PRIu64 " %s: released "
					    "%s nB before %" PRIu64 ", floor %s",
					    seed, shape_name[shape],
					    i128_str(released_nB, b1), at_ns,
					    i128_str(floor_nB, b2));
					seed_ok = 0;
				}
				released_nB += (i128)q_B * NS_PER_SEC;
			}
			if (verbose)
				diag("seed %" PRIu64 " %s: %zu releases on "
				    "the top", seed, shape_name[shape],
				    log->count);
			bad_seeds += !seed_ok;
			sim_free(&sim);
		}
		ok(bad_seeds == 0, "lower bound r*dt - q with saturating "
		    "demand, %s: %u seeds (%u failed)", shape_name[shape],
		    nseeds, bad_seeds);
	}
}

/* ---- the edges, one by one -------------------------------------------- */

/* Tokens and fraction as one number of nanobytes. */
static i128
held_nB(const struct bucket *bucket)
{
	return (i128)bucket->tokens_B * NS_PER_SEC + bucket->frac_nB;
}

static void
test_no_catch_up(void)
{
	static const uint64_t rates[] = { 1, 1000, 1048576, 40 * GBps,
	    RATE_MAX };
	uint64_t start_ns = 123456789, now_ns, release_ns, got_B;
	struct bucket bucket, *levels[1] = { &bucket };
	size_t i;
	int good = 1;

	for (i = 0; i < sizeof(rates) / sizeof(rates[0]); i++) {
		bucket_init(&bucket, rates[i], 0, start_ns);
		/* Ten hours idle: one burst, not ten hours of traffic. */
		now_ns = start_ns + 10ULL * 3600 * NS_PER_SEC;
		got_B = bucket_draw(levels, 1, BURST_MAX, now_ns, &release_ns);
		if (got_B != bucket_default_burst(rates[i]) ||
		    release_ns != now_ns || bucket.tokens_B != 0 ||
		    bucket.frac_nB != 0) {
			diag("rate %" PRIu64 ": after 10 h idle drew %" PRIu64
			    " released at +%" PRIu64 " ns", rates[i], got_B,
			    release_ns - now_ns);
			good = 0;
		}
		/* The next byte waits its own refill time. */
		bucket_draw(levels, 1, 1, now_ns, &release_ns);
		if (release_ns != now_ns + (NS_PER_SEC + rates[i] - 1) /
		    rates[i]) {
			diag("rate %" PRIu64 ": next byte at +%" PRIu64 " ns",
			    rates[i], release_ns - now_ns);
			good = 0;
		}
	}
	ok(good, "no catch-up burst after 10 hours idle: one burst, then "
	    "the rate");
}

static void
test_settle_exact(void)
{
	struct bucket bucket;
	uint64_t rate_Bps, burst_B, start_ns, dt_ns;
	i128 want_nB, cap_nB;
	unsigned n, bad = 0;

	rng_state = 42;
	for (n = 0; n < 100000; n++) {
		rate_Bps = rng_log(1, RATE_MAX);
		burst_B = rng_log(1, BURST_MAX);
		start_ns = rng_log(1, 1ULL << 60);
		dt_ns = rng_log(1, UINT64_MAX - start_ns);
		bucket_init(&bucket, rate_Bps, burst_B, start_ns);
		bucket.tokens_B = -(int64_t)rng_below(burst_B);
		want_nB = held_nB(&bucket) + (i128)rate_Bps * dt_ns;
		cap_nB = (i128)burst_B * NS_PER_SEC;
		if (want_nB > cap_nB)
			want_nB = cap_nB;
		bucket_settle(&bucket, start_ns + dt_ns);
		if (held_nB(&bucket) != want_nB || bucket.frac_nB >= NS_PER_SEC
		    || bucket.stamp_ns != start_ns + dt_ns) {
			if (bad++ < 3)
				diag("rate %" PRIu64 " burst %" PRIu64 " dt %"
				    PRIu64 ": tokens %" PRId64 " frac %" PRIu64,
				    rate_Bps, burst_B, dt_ns, bucket.tokens_B,
				    bucket.frac_nB);
		}
	}
	ok(bad == 0, "settle is exact to the nanobyte for random rates, "
	    "bursts, debts and gaps up to centuries (%u wrong)", bad);
}

static void
test_overflow(void)
{
	struct bucket bucket, *levels[1] = { &bucket };
	uint64_t release_ns, got_B;
	const uint64_t years500_ns = 500ULL * 365 * 24 * 3600 * NS_PER_SEC;

	bucket_init(&bucket, RATE_MAX, BURST_MAX, 0);
	bucket_settle(&bucket, years500_ns);
	ok(bucket.tokens_B == (int64_t)BURST_MAX && bucket.frac_nB == 0,
	    "RATE_MAX for 500 years fills exactly BURST_MAX");
	bucket_init(&bucket, RATE_MAX, BURST_MAX, 7);
	bucket_settle(&bucket, 8);
	ok(bucket.tokens_B == 1099 && bucket.frac_nB == 511627776,
	    "RATE_MAX for 1 ns is 1099.511627776 bytes");
	bucket_init(&bucket, RATE_MAX, BURST_MAX, 1000);
	got_B = bucket_draw(levels, 1, BURST_MAX, 1000, &release_ns);
	ok(got_B == BURST_MAX && release_ns == 1000 + NS_PER_SEC,
	    "BURST_MAX drawn empty at RATE_MAX is released exactly 1 s later");
	bucket_init(&bucket, 1, BURST_MAX, 1000);
	got_B = bucket_draw(levels, 1, BURST_MAX, 1000, &release_ns);
	ok(got_B == BURST_MAX && release_ns == UINT64_MAX,
	    "BURST_MAX owed at 1 B/s (35,000 years) saturates, never wraps");
	bucket_init(&bucket, 1, BURST_MAX, 0);
	bucket.tokens_B = -(int64_t)BURST_MAX;
	bucket_settle(&bucket, years500_ns);
	ok(bucket.tokens_B == -(int64_t)BURST_MAX +
	    (int64_t)(years500_ns / NS_PER_SEC) && bucket.frac_nB == 0,
	    "a BURST_MAX debt at 1 B/s is repaid exactly over 500 years");
	bucket_init(&bucket, 1000, 100, 5000);
	bucket.tokens_B = 40;
	bucket_settle(&bucket, 4000);
	ok(bucket.tokens_B == 40 && bucket.stamp_ns == 4000,
	    "a clock behind the stamp grants nothing and restarts there");
}

static void
test_reconfigure(void)
{
	struct bucket bucket, *levels[1] = { &bucket };
	uint64_t release_ns, got_B;

	/* Raise: the time before the change is paid at the old rate. */
	bucket_init(&bucket, 1000, 1000000, 0);
	bucket_reconfigure(&bucket, 5000, 1000000, 0, 1500000000);
	ok(bucket.tokens_B == 1500 && bucket.rate_Bps == 5000,
	    "raise: 1.5 s at the old 1000 B/s settled before the change");
	bucket_settle(&bucket, 2500000000);
	ok(bucket.tokens_B == 6500, "raise: then 1 s at the new 5000 B/s");
	/* Lower the burst: tokens clamp at once. */
	bucket_reconfigure(&bucket, 5000, 100, 0, 2500000000);
	ok(bucket.tokens_B == 100 && bucket.frac_nB == 0,
	    "lower the burst: tokens clamp to it at once");
	/* Lower the rate with a debt: the time owed is kept, not the bytes
	 * (unit-rate-change checks this with many relays). */
	bucket_init(&bucket, 1000, 1000, 0);
	bucket_draw(levels, 1, 1000, 0, &release_ns);
	bucket_reconfigure(&bucket, 100, 1000, 1000, 500000000);
	ok(bucket.tokens_B == -50, "lower: half the debt repaid at the "
	    "old rate, the other 0.5 s is 50 B at the new one");
	ok(bucket_ready_ns(&bucket) == NS_PER_SEC,
	    "lower: ready when it was before the change (1 s)");
	/* To unlimited: no tokens kept, no waiting, no clamp to a burst. */
	bucket_reconfigure(&bucket, 0, 0, 0, 600000000);
	got_B = bucket_draw(levels, 1, 12345678, 600000000, &release_ns);
	ok(bucket.tokens_B == 0 && got_B == 12345678 &&
	    release_ns == 600000000, "to unlimited: the debt is forgiven, "
	    "draws pass whole and at once");
	/* From unlimited: starts empty at the change, like a new bucket. */
	bucket_reconfigure(&bucket, 2000, 0, 0, 700000000);
	ok(bucket.tokens_B == 0 && bucket.burst_B == 200 &&
	    bucket.stamp_ns == 700000000, "from unlimited: starts empty, "
	    "default burst a tenth of the rate");
	got_B = bucket_draw(levels, 1, 200, 700000000, &release_ns);
	ok(got_B == 200 && release_ns == 800000000,
	    "from unlimited: the first 200 bytes wait 100 ms");
	ok(bucket_default_burst(1) == 1 && bucket_default_burst(9) == 1 &&
	    bucket_default_burst(10240) == 1024,
	    "default burst: a tenth of the rate, at least 1 byte");
}

static void
test_quantum(void)
{
	ok(bucket_quantum(0, 0, 5) == CHUNK_MAX, "quantum: unlimited is "
	    "CHUNK_MAX");
	ok(bucket_quantum(1048576, 0, 1) == 20971,
	    "quantum: 1 MiB/s, 1 relay: 20 ms worth");
	ok(bucket_quantum(1048576, 0, 0) == 20971,
	    "quantum: 0 relays counts as 1");
	ok(bucket_quantum(1048576, 0, 30) == 2097,
	    "quantum: 30 relays: a 60 ms round split 30 ways");
	ok(bucket_quantum(1048576, 0, 75) == 1398,
	    "quantum: 75 relays: the round stops growing at 100 ms");
	ok(bucket_quantum(1048576, 0, 200) == 1048,
	    "quantum: 200 relays: past 100 the round is the ring, N * 1 ms");
	ok(bucket_quantum(1, 0, 1000) == 1, "quantum: at least 1 byte");
	ok(bucket_quantum(1048576, 100, 1) == 100,
	    "quantum: at most the burst");
	ok(bucket_quantum(RATE_MAX, BURST_MAX, 1) == CHUNK_MAX,
	    "quantum: at most CHUNK_MAX");
	ok(bucket_quantum(65536, 6553, 64) == 102,
	    "quantum: at most burst / N, under the 128 B floor (64 relays "
	    "at 64 KiB/s: 102)");
	ok(bucket_quantum(1048576, 1000, 10) == 1000,
	    "quantum: a small burst with 10 relays: the burst, under the "
	    "ring's share (burst / 10 = 100 before: 10,000 draws a second)");
	ok(bucket_quantum(512, 51, 64) == 1,
	    "quantum: a burst under one byte per relay: 1 byte");
	ok(bucket_quantum(8192000, 819200, 100) == 8192,
	    "quantum: 100 relays on 8000 KiB/s: burst / 100, as without the "
	    "ring");
	ok(bucket_quantum(8192000, 819200, 300) == 8192 &&
	    bucket_quantum(8192000, 819200, 1000) == 8192 &&
	    bucket_quantum(8192000, 819200, 2000) == 8192,
	    "quantum: 300, 1000, 2000 relays on 8000 KiB/s: a ring of N * "
	    "1 ms, r / 1000 each (1000 draws a second on the limit, not "
	    "10 * N)");
	ok(bucket_quantum(8192000, 819200, 4000) == 4096,
	    "quantum: 4000 relays: the ring stops growing at 2 s");
	ok(bucket_quantum(1048576, 100, 64) == 100,
	    "quantum: a burst under the ring's share is the quantum");
	ok(bucket_quantum(1048576, 2000, 64) == 1048,
	    "quantum: 64 relays, burst 2000 at 1 MiB/s: the ring's share, "
	    "r * 64 ms / 64 (burst / 64 = 31 before: 33,800 draws a "
	    "second)");
}

/* The debt cap is max(b, min(r * ring, BURST_MAX), N) and one draw per
 * relay fits in it, for any rate, burst and number of relays; past the burst the
 * relays of a limit draw at most N / ring times a second together. */
static void
test_debt_max(void)
{
	uint64_t rate_Bps, burst_B, quantum_B, debt_B, ring_ns, ring_B;
	uint32_t nconns;
	unsigned i, over = 0, small = 0, under = 0;

	ok(bucket_debt_max(8192000, 819200, 50) == 819200 &&
	    bucket_debt_max(8192000, 819200, 100) == 819200,
	    "debt cap: up to 100 relays, the default burst");
	ok(bucket_debt_max(8192000, 819200, 1000) == 8192000,
	    "debt cap: 1000 relays on 8000 KiB/s: the 1 s ring");
	ok(bucket_debt_max(8192000, 819200, 5000) == 16384000,
	    "debt cap: 5000 relays: 2 s of the rate at most");
	ok(bucket_debt_max(512, 51, 64) == 64 &&
	    bucket_debt_max(1, 1, 1000) == 1000,
	    "debt cap: at least a byte per relay");
	ok(bucket_debt_max(RATE_MAX, 1, UINT32_MAX) == BURST_MAX &&
	    bucket_debt_max(RATE_MAX, BURST_MAX, 5000) == BURST_MAX,
	    "debt cap: at most BURST_MAX (2 s at RATE_MAX would pass it)");
	rng_state = 77;
	for (i = 0; i < 200000; i++) {
		rate_Bps = rng_log(1, RATE_MAX);
		burst_B = rng_below(2) ? bucket_default_burst(rate_Bps) :
		    rng_log(1, BURST_MAX);
		nconns = 1 + (uint32_t)rng_log(1, 100000);
		quantum_B = bucket_quantum(rate_Bps, burst_B, nconns);
		debt_B = bucket_debt_max(rate_Bps, burst_B, nconns);
		if (quantum_B < 1 || quantum_B > burst_B ||
		    (unsigned __int128)quantum_B * nconns > debt_B ||
		    debt_B < burst_B)
			over++;
		ring_ns = (uint64_t)nconns * 1000000;
		if (ring_ns > 2 * NS_PER_SEC)
			ring_ns = 2 * NS_PER_SEC;
		ring_B = (uint64_t)((unsigned __int128)rate_Bps * ring_ns /
		    NS_PER_SEC);
		if (ring_B > BURST_MAX)
			ring_B = BURST_MAX;
		if (ring_B > burst_B && quantum_B < burst_B &&
		    quantum_B < CHUNK_MAX && quantum_B < ring_B / nconns)
			small++;
		if (debt_B < ring_B)
			under++;
	}
	ok(over == 0, "debt cap: 1 <= q <= b, N * q <= cap and cap >= b for "
	    "random rates, bursts and 1-100000 relays (%u wrong)", over);
	ok(small == 0, "quantum: past the burst, at least r * ring / N "
	    "unless the burst or CHUNK_MAX is smaller (%u wrong)", small);
	ok(under == 0, "debt cap: at least r * ring (%u wrong)", under);
}

static void
test_ready_exact(void)
{
	struct bucket bucket, later;
	uint64_t ready_ns;
	unsigned n, bad = 0;

	rng_state = 7;
	for (n = 0; n < 100000; n++) {
		bucket_init(&bucket, rng_log(1, RATE_MAX), BURST_MAX,
		    rng_log(1, 1ULL << 50));
		bucket.tokens_B = -(int64_t)rng_log(1, 1ULL << 30);
		bucket.frac_nB = rng_below(NS_PER_SEC);
		ready_ns = bucket_ready_ns(&bucket);
		later = bucket;
		bucket_settle(&later, ready_ns);
		if (later.tokens_B < 0)
			bad++;
		later = bucket;
		bucket_settle(&later, ready_ns - 1);
		if (ready_ns - 1 > bucket.stamp_ns && later.tokens_B >= 0)
			bad++;
	}
	ok(bad == 0, "ready time is the first nanosecond with tokens >= 0, "
	    "exactly (%u wrong)", bad);
	bucket_init(&bucket, 1000, 100, 77);
	bucket.tokens_B = 5;
	ok(bucket_ready_ns(&bucket) == 77, "ready now when no debt");
	bucket_init(&bucket, 0, 100, 77);
	bucket.tokens_B = -5;
	ok(bucket_ready_ns(&bucket) == 77, "ready now when unlimited");
}

static void
test_chain_draw(void)
{
	struct bucket child, parent, free_level, *levels[3];
	uint64_t release_ns, got_B;

	bucket_init(&child, 1000, 500, 0);
	bucket_init(&parent, 100, 50, 0);
	bucket_init(&free_level, 0, 0, 0);
	levels[0] = &child;
	levels[1] = &free_level;
	levels[2] = &parent;
	got_B = bucket_draw(levels, 3, 1000, 10 * NS_PER_SEC, &release_ns);
	ok(got_B == 50, "chain: a draw is clamped to the smallest burst");
	ok(parent.tokens_B == 0 && child.tokens_B == 450 &&
	    free_level.tokens_B == 0, "chain: taken from every rated level, "
	    "an unlimited level skipped");
	got_B = bucket_draw(levels, 3, 50, 10 * NS_PER_SEC, &release_ns);
	ok(got_B == 50 && release_ns == 10 * NS_PER_SEC + NS_PER_SEC / 2,
	    "chain: released when the slowest level is ready");
	/* The child was held 0.5 s by its parent: charged as of the
	 * release it reads 450 then; had it banked that half second of its
	 * own refill it would read 500 and let 550 out at once. */
	bucket_settle(&child, release_ns);
	ok(child.tokens_B == 450, "chain: the held child is charged as of "
	    "the release (full at 500, minus 50)");
	levels[0] = &free_level;
	got_B = bucket_draw(levels, 1, 777, 11 * NS_PER_SEC, &release_ns);
	ok(got_B == 777 && release_ns == 11 * NS_PER_SEC,
	    "chain: all levels unlimited: the whole draw, at once");
}

/*
 * Many relays starting at once on one limit, as bucket_draw_capped() and
 * bucket_quantum() are used by store_reserve(): drawer i registers at a
 * random moment inside the first millisecond (the limit then counts i + 1
 * relays), sizes each draw with bucket_quantum() for the relays registered
 * at that moment, draws again the moment a grant is released, and after a
 * refusal comes back at T plus its slot of bucket_retry_spread_ns().
 * Checked for every seed: the bucket contract over every interval, the
 * debt never past the cap, every grant released within cap / r of its
 * draw, every drawer granted within a bound however many start, and no
 * refusal once every drawer has drawn with the final count.
 */
#define STORM_DRAWERS_MAX	2000
#define STORM_DRAWS_MAX		(4U << 20)

struct storm_drawer {
	uint64_t join_ns;	/* registers (counted from then on) */
	uint64_t next_ns;	/* draws next */
	uint64_t first_grant_ns;
	int settled;		/* has drawn with every drawer counted */
};

static int
storm_one(uint64_t seed, int verbose, unsigned *steady_refusals,
    uint64_t *worst_first_ns, uint64_t *first_bound_ns)
{
	static struct storm_drawer drawers[STORM_DRAWERS_MAX];
	struct bucket bucket, *levels[1] = { &bucket };
	struct level_log *log = &log_pool[0];
	uint64_t rate_Bps, burst_B, cap_B, final_cap_B, start_ns, now_ns;
	uint64_t want_B, got_B, wait_max_ns, t0, t1, draws, refill_ns;
	uint64_t release_ns, wait_ns;
	uint64_t steady_draws;
	uint32_t ndrawers, joined, d, next, settled = 0;
	size_t bottleneck;
	i128 excess;
	char b1[48];
	int good = 1;

	rng_state = seed;
	ndrawers = 1 + (uint32_t)rng_below(STORM_DRAWERS_MAX);
	rate_Bps = rng_log(1, 10 * GBps);
	burst_B = rng_below(3) ? bucket_default_burst(rate_Bps) :
	    rng_log(1, rate_Bps + 1);
	start_ns = rng_log(1, 1ULL << 52);
	bucket_init(&bucket, rate_Bps, burst_B, start_ns);
	/* An idle limit starts full: the whole burst at once. */
	if (rng_below(2))
		bucket_settle(&bucket, start_ns + 10 * NS_PER_SEC);
	start_ns += 10 * NS_PER_SEC;
	/* The cap grows with the relays counted, as store_reserve() sizes
	 * it: the last one's is the largest. */
	final_cap_B = bucket_debt_max(rate_Bps, bucket.burst_B, ndrawers);
	wait_max_ns = (uint64_t)(((unsigned __int128)final_cap_B *
	    NS_PER_SEC + rate_Bps - 1) / rate_Bps) + 1;
	refill_ns = (uint64_t)((unsigned __int128)final_cap_B * NS_PER_SEC /
	    rate_Bps);
	/* Every drawer granted within: the join window, one cap of waiting
	 * behind the draws already made, and one round of the retry spread
	 * per refusal, of which there are at most a few per drawer. */
	*first_bound_ns = 1000000 + 4 * wait_max_ns + 4 * refill_ns;
	for (d = 0; d < ndrawers; d++) {
		drawers[d].join_ns = start_ns + rng_below(1000000);
		drawers[d].next_ns = drawers[d].join_ns;
		drawers[d].first_grant_ns = 0;
		drawers[d].settled = 0;
	}
	log->count = 0;
	*steady_refusals = 0;
	*worst_first_ns = 0;
	/* Until every drawer has drawn with all counted, then five more
	 * rounds; a storm that never settles fails below. */
	steady_draws = 0;
	for (draws = 0; draws < STORM_DRAWS_MAX &&
	    steady_draws < 5 * (uint64_t)ndrawers; draws++) {
		if (settled == ndrawers)
			steady_draws++;
		next = 0;
		for (d = 1; d < ndrawers; d++)
			if (drawers[d].next_ns < drawers[next].next_ns)
				next = d;
		now_ns = drawers[next].next_ns;
		joined = 0;
		for (d = 0; d < ndrawers; d++)
			if (drawers[d].join_ns <= now_ns)
				joined++;
		want_B = bucket_quantum(rate_Bps, bucket.burst_B, joined);
		cap_B = bucket_debt_max(rate_Bps, bucket.burst_B, joined);
		got_B = bucket_draw_capped(levels, &cap_B, 1, want_B, now_ns,
		    &release_ns, &bottleneck);
		if (got_B == 0) {
			if (settled == ndrawers)
				(*steady_refusals)++;
			if (release_ns <= now_ns) {
				diag("storm seed %" PRIu64 ": refused with "
				    "no later time", seed);
				return 0;
			}
			drawers[next].next_ns = release_ns +
			    bucket_retry_spread_ns(rate_Bps, cap_B, joined,
			    next);
			continue;
		}
		/* Released within the cap in force at the draw. */
		wait_ns = (uint64_t)(((unsigned __int128)cap_B * NS_PER_SEC +
		    rate_Bps - 1) / rate_Bps) + 1;
		if (bucket.tokens_B < -(int64_t)cap_B ||
		    release_ns - now_ns > wait_ns) {
			diag("storm seed %" PRIu64 ": owes %s past a cap of %"
			    PRIu64 ", or waits %" PRIu64 " ns past %" PRIu64,
			    seed, i128_str(-(i128)bucket.tokens_B, b1), cap_B,
			    release_ns - now_ns, wait_ns);
			good = 0;
		}
		log_release(log, release_ns, release_ns, got_B);
		if (!drawers[next].first_grant_ns) {
			drawers[next].first_grant_ns = release_ns;
			if (release_ns - start_ns > *worst_first_ns)
				*worst_first_ns = release_ns - start_ns;
		}
		if (!drawers[next].settled && joined == ndrawers) {
			drawers[next].settled = 1;
			settled++;
		}
		drawers[next].next_ns = release_ns;
	}
	if (settled < ndrawers) {
		diag("storm seed %" PRIu64 ": %u of %u drawers never drew "
		    "with all counted in %" PRIu64 " draws", seed,
		    ndrawers - settled, ndrawers, draws);
		good = 0;
	}
	for (d = 0; d < ndrawers; d++)
		if (!drawers[d].first_grant_ns) {
			diag("storm seed %" PRIu64 ": drawer %u of %u never "
			    "granted", seed, d, ndrawers);
			good = 0;
			break;
		}
	excess = worst_excess_nB(log, rate_Bps, 1, &t0, &t1);
	if (excess > (i128)bucket.burst_B * NS_PER_SEC + rate_Bps) {
		diag("storm seed %" PRIu64 ": %s nB over r * dt in [%" PRIu64
		    ", %" PRIu64 "], burst %" PRIu64, seed,
		    i128_str(excess, b1), t0, t1, bucket.burst_B);
		good = 0;
	}
	if (verbose)
		diag("storm seed %" PRIu64 ": %u drawers, %" PRIu64 " B/s, "
		    "burst %" PRIu64 ", cap %" PRIu64 ", last first grant %"
		    PRIu64 " ns (bound %" PRIu64 "), steady refusals %u",
		    seed, ndrawers, rate_Bps, bucket.burst_B, final_cap_B,
		    *worst_first_ns, *first_bound_ns, *steady_refusals);
	return good;
}

static void
test_start_storm(uint64_t first_seed, unsigned nseeds, int verbose)
{
	unsigned s, bad = 0, late = 0, refusing = 0, refusals;
	uint64_t first_ns, bound_ns;

	for (s = 0; s < nseeds; s++) {
		if (!storm_one(first_seed + s, verbose, &refusals, &first_ns,
		    &bound_ns))
			bad++;
		if (first_ns > bound_ns) {
			late++;
			diag("storm seed %" PRIu64 ": last first grant %"
			    PRIu64 " ns after the start, bound %" PRIu64,
			    first_seed + s, first_ns, bound_ns);
		}
		if (refusals)
			refusing++;
	}
	ok(bad == 0, "start storm (1-%u relays at once, capped draws): the "
	    "contract holds, debt never past the cap, every grant released "
	    "within cap / r (%u of %u seeds failed)", STORM_DRAWERS_MAX, bad,
	    nseeds);
	ok(late == 0, "start storm: every relay granted within a bound "
	    "independent of how many start (%u of %u seeds late)", late,
	    nseeds);
	ok(refusing == 0, "start storm: no refusal once every relay drew "
	    "with all counted (%u of %u seeds refused)", refusing, nseeds);
}

static void
test_draw_capped(void)
{
	struct bucket bucket, child, parent, *levels[2];
	uint64_t release_ns, got_B, cap_B[2], before_B;
	size_t bottleneck;

	bucket_init(&bucket, 1000, 100, 0);
	levels[0] = &bucket;
	cap_B[0] = 100;
	got_B = bucket_draw_capped(levels, cap_B, 1, 100, 0, &release_ns,
	    &bottleneck);
	ok(got_B == 100 && release_ns == NS_PER_SEC / 10 &&
	    bucket.tokens_B == -100, "capped: a draw to exactly the cap is "
	    "granted, released when repaid");
	got_B = bucket_draw_capped(levels, cap_B, 1, 1, 0, &release_ns,
	    &bottleneck);
	ok(got_B == 0 && bucket.tokens_B == -100 && bucket.frac_nB == 0 &&
	    release_ns == 1000000, "capped: one byte past the cap is "
	    "refused, nothing taken, fits 1 ms later");
	got_B = bucket_draw_capped(levels, cap_B, 1, 1, release_ns,
	    &release_ns, &bottleneck);
	ok(got_B == 1 && bucket.tokens_B == -100 &&
	    release_ns == NS_PER_SEC / 10 + 1000000,
	    "capped: ... and granted at that time, behind the others");
	cap_B[0] = 30;
	bucket_init(&bucket, 1000, 100, 0);
	got_B = bucket_draw_capped(levels, cap_B, 1, 90, 0, &release_ns,
	    &bottleneck);
	ok(got_B == 90, "capped: a cap under the burst counts as the burst");
	/* Child 1000 B/s under a parent of 100 B/s: the parent sets the
	 * release, so its cap counts; the held child may owe more. */
	bucket_init(&child, 1000, 100, 0);
	bucket_init(&parent, 100, 50, 0);
	levels[0] = &child;
	levels[1] = &parent;
	cap_B[0] = 100;
	cap_B[1] = 50;
	got_B = bucket_draw_capped(levels, cap_B, 2, 50, 0, &release_ns,
	    &bottleneck);
	ok(got_B == 50 && bottleneck == 1 && release_ns == NS_PER_SEC / 2,
	    "capped chain: the slower parent is the bottleneck");
	before_B = (uint64_t)-child.tokens_B;
	got_B = bucket_draw_capped(levels, cap_B, 2, 10, 0, &release_ns,
	    &bottleneck);
	ok(got_B == 0 && bottleneck == 1 && parent.tokens_B == -50 &&
	    (uint64_t)-child.tokens_B == before_B &&
	    release_ns == NS_PER_SEC / 10,
	    "capped chain: refused at the parent's cap, neither level "
	    "charged, fits when the parent has repaid 10 B");
	ok(bucket_retry_spread_ns(1000, 100, 4, 0) == 0 &&
	    bucket_retry_spread_ns(1000, 100, 4, 1) == 25000000 &&
	    bucket_retry_spread_ns(1000, 100, 4, 7) == 75000000 &&
	    bucket_retry_spread_ns(1000, 100, 1, 7) == 0 &&
	    bucket_retry_spread_ns(0, 100, 4, 3) == 0,
	    "retry spread: slot %% N of N slots over cap / r");
	ok(bucket_retry_spread_ns(1, BURST_MAX, 2, 1) == UINT64_MAX / 2,
	    "retry spread: saturates instead of wrapping");
}

/* ---- borrowing up to a ceiling (bucket_draw_ceil) --------------------- */

struct ceil_drawer {
	struct bucket *levels[LEVELS_MAX];
	struct bucket *ceils[LEVELS_MAX];
	size_t depth;
	uint64_t quantum_B;
	uint64_t next_ns;
	uint64_t window_B;	/* released in [from, to) */
	uint64_t borrowed_B;	/* of it, borrowed by its own level */
	unsigned refusals;
	int saturating;		/* draws again the moment it is released */
};

/* More draws than any scene needs (a few hundred thousand): a draw that
 * lets bytes out without the clock moving fails rather than hangs. */
#define CEIL_DRAWS_MAX	(20ULL * 1000 * 1000)

/* Saturating drawers, as relays with always more to send: each draws its
 * quantum again at its release (or, refused, at the time it was told).
 * Counts what each released in [from_ns, to_ns). */
static int
ceil_run(struct ceil_drawer *drawers, size_t ndrawers, uint64_t start_ns,
    uint64_t from_ns, uint64_t to_ns)
{
	struct ceil_drawer *drawer;
	uint64_t now_ns, release_ns, got_B;
	size_t d, next, bottleneck;
	uint64_t draws;
	int borrowed[LEVELS_MAX];

	for (d = 0; d < ndrawers; d++) {
		drawers[d].next_ns = start_ns;
		drawers[d].window_B = drawers[d].borrowed_B = 0;
		drawers[d].refusals = 0;
	}
	for (draws = 0; draws < CEIL_DRAWS_MAX; draws++) {
		next = 0;
		for (d = 1; d < ndrawers; d++)
			if (drawers[d].next_ns < drawers[next].next_ns)
				next = d;
		drawer = &drawers[next];
		now_ns = drawer->next_ns;
		if (now_ns >= to_ns)
			return 1;
		got_B = bucket_draw_ceil(drawer->levels, drawer->ceils, NULL,
		    drawer->depth, drawer->quantum_B, now_ns, &release_ns,
		    &bottleneck, NULL, borrowed);
		if (release_ns < now_ns || (got_B == 0 && release_ns == now_ns)) {
			diag("drawer %zu at %" PRIu64 ": got %" PRIu64
			    " released at %" PRIu64, next, now_ns, got_B,
			    release_ns);
			return 0;
		}
		drawer->next_ns = release_ns;
		if (got_B == 0) {
			drawer->refusals++;
			continue;
		}
		if (release_ns >= from_ns && release_ns < to_ns) {
			drawer->window_B += got_B;
			if (borrowed[0])
				drawer->borrowed_B += got_B;
		}
	}
	diag("%" PRIu64 " draws and the clock at %" PRIu64 " of %" PRIu64,
	    draws, now_ns, to_ns);
	return 0;
}

/* got within pct % of want */
static int
near(uint64_t got, uint64_t want, double pct)
{
	double d = (double)got - (double)want;

	return (d < 0 ? -d : d) <= (double)want * pct / 100.0;
}

static void
test_ceil_scenes(void)
{
	struct bucket parent, child, child_ceil, sibling, sibling_ceil;
	struct bucket middle, middle_ceil, other;
	struct ceil_drawer drawers[4];
	const uint64_t start_ns = 1000 * NS_PER_SEC, secs = 10;
	const uint64_t from_ns = start_ns + NS_PER_SEC;
	const uint64_t to_ns = start_ns + secs * NS_PER_SEC;
	int ran;

	/* Child 100K/s, ceiling 400K/s, alone in an idle parent of 1M/s:
	 * it passes at its ceiling, 300K/s of it borrowed. */
	memset(drawers, 0, sizeof(drawers));
	bucket_init(&parent, 1000000, 0, start_ns);
	bucket_init(&child, 100000, 0, start_ns);
	bucket_init(&child_ceil, 400000, 0, start_ns);
	drawers[0] = (struct ceil_drawer){ .levels = { &child, &parent },
	    .ceils = { &child_ceil, NULL }, .depth = 2, .quantum_B = 4000 };
	ran = ceil_run(drawers, 1, start_ns, from_ns, to_ns);
	ok(ran && near(drawers[0].window_B, 400000 * (secs - 1), 1) &&
	    near(drawers[0].borrowed_B, 300000 * (secs - 1), 3),
	    "ceil: alone in an idle parent a child passes at its ceiling "
	    "(%" PRIu64 " B in %" PRIu64 " s at 400K/s, %" PRIu64
	    " borrowed; rate 100K/s)", drawers[0].window_B, secs - 1,
	    drawers[0].borrowed_B);

	/* Bursts of one quantum: a refused borrower must come back when a
	 * borrow fits (q / c), not when its own rate would (q / r), or the
	 * ceiling's refill meanwhile overflows its burst and is lost. */
	bucket_init(&parent, 1000000, 4000, start_ns);
	bucket_init(&child, 100000, 4000, start_ns);
	bucket_init(&child_ceil, 400000, 4000, start_ns);
	ran = ceil_run(drawers, 1, start_ns, from_ns, to_ns);
	ok(ran && near(drawers[0].window_B, 400000 * (secs - 1), 1) &&
	    drawers[0].refusals > 0,
	    "ceil: with bursts of one quantum too (%" PRIu64 " B in %" PRIu64
	    " s at 400K/s, %u refusals)", drawers[0].window_B, secs - 1,
	    drawers[0].refusals);

	/* The same with no ceiling of its own: the parent's rate. */
	bucket_init(&parent, 1000000, 0, start_ns);
	bucket_init(&child, 100000, 0, start_ns);
	bucket_init(&child_ceil, 0, 0, start_ns);
	ran = ceil_run(drawers, 1, start_ns, from_ns, to_ns);
	ok(ran && near(drawers[0].window_B, 1000000 * (secs - 1), 1),
	    "ceil: an unlimited ceiling lets a child use all its idle "
	    "parent (%" PRIu64 " B in %" PRIu64 " s at 1M/s)",
	    drawers[0].window_B, secs - 1);

	/* No ceiling (today's behaviour): held to its own rate. */
	bucket_init(&parent, 1000000, 0, start_ns);
	bucket_init(&child, 100000, 0, start_ns);
	drawers[0].ceils[0] = NULL;
	ran = ceil_run(drawers, 1, start_ns, from_ns, to_ns);
	ok(ran && near(drawers[0].window_B, 100000 * (secs - 1), 1) &&
	    drawers[0].borrowed_B == 0 && drawers[0].refusals == 0,
	    "ceil: without a ceiling a child is held to its rate (%" PRIu64
	    " B, 0 borrowed, never refused)", drawers[0].window_B);

	/* A busy sibling at its rate (750K/s of the parent's 1M/s): the
	 * child gets its 250K/s, no more, and the sibling all of its rate. */
	bucket_init(&parent, 1000000, 0, start_ns);
	bucket_init(&child, 250000, 0, start_ns);
	bucket_init(&child_ceil, 1000000, 0, start_ns);
	bucket_init(&sibling, 750000, 0, start_ns);
	drawers[0] = (struct ceil_drawer){ .levels = { &child, &parent },
	    .ceils = { &child_ceil, NULL }, .depth = 2, .quantum_B = 4000 };
	drawers[1] = (struct ceil_drawer){ .levels = { &sibling, &parent },
	    .depth = 2, .quantum_B = 4000 };
	drawers[2] = drawers[1];
	ran = ceil_run(drawers, 3, start_ns, from_ns, to_ns);
	ok(ran && near(drawers[0].window_B, 250000 * (secs - 1), 2) &&
	    near(drawers[1].window_B + drawers[2].window_B,
	    750000 * (secs - 1), 2),
	    "ceil: beside a sibling busy at its rate the child gets its own "
	    "rate (%" PRIu64 " B at 250K/s, %" PRIu64 " borrowed), the "
	    "sibling its (%" PRIu64 " B at 750K/s)", drawers[0].window_B,
	    drawers[0].borrowed_B, drawers[1].window_B + drawers[2].window_B);

	/* Both may borrow, both saturate: nothing is idle, each its rate. */
	bucket_init(&parent, 1000000, 0, start_ns);
	bucket_init(&child, 250000, 0, start_ns);
	bucket_init(&child_ceil, 1000000, 0, start_ns);
	bucket_init(&sibling, 750000, 0, start_ns);
	bucket_init(&sibling_ceil, 1000000, 0, start_ns);
	drawers[1].ceils[0] = drawers[2].ceils[0] = &sibling_ceil;
	ran = ceil_run(drawers, 3, start_ns, from_ns, to_ns);
	ok(ran && near(drawers[0].window_B, 250000 * (secs - 1), 2) &&
	    near(drawers[1].window_B + drawers[2].window_B,
	    750000 * (secs - 1), 2),
	    "ceil: two borrowers saturating a parent get their own rates "
	    "(%" PRIu64 " B at 250K/s, %" PRIu64 " B at 750K/s)",
	    drawers[0].window_B, drawers[1].window_B + drawers[2].window_B);

	/* A sibling greedier than the parent (rate 1M/s, three relays)
	 * keeps it reserved ahead: the child borrows nothing and is held
	 * to its guaranteed rate, which the sibling cannot take from it. */
	bucket_init(&parent, 1000000, 0, start_ns);
	bucket_init(&child, 250000, 0, start_ns);
	bucket_init(&child_ceil, 1000000, 0, start_ns);
	bucket_init(&sibling, 1000000, 0, start_ns);
	drawers[1].ceils[0] = drawers[2].ceils[0] = NULL;
	drawers[3] = drawers[1];
	ran = ceil_run(drawers, 4, start_ns, from_ns, to_ns);
	ok(ran && drawers[0].borrowed_B == 0 &&
	    near(drawers[0].window_B, 250000 * (secs - 1), 2),
	    "ceil: a sibling keeping the parent reserved ahead leaves "
	    "nothing idle: the child borrows %" PRIu64 " B and gets its "
	    "rate (%" PRIu64 " B at 250K/s)", drawers[0].borrowed_B,
	    drawers[0].window_B);

	/* Two levels borrowing: a leaf (100K/s, unlimited ceiling) in a
	 * middle limit (500K/s, ceiling 800K/s) in a top of 1M/s whose other
	 * child is idle: the middle's ceiling binds. */
	bucket_init(&parent, 1000000, 0, start_ns);
	bucket_init(&middle, 500000, 0, start_ns);
	bucket_init(&middle_ceil, 800000, 0, start_ns);
	bucket_init(&child, 100000, 0, start_ns);
	bucket_init(&child_ceil, 0, 0, start_ns);
	bucket_init(&other, 500000, 0, start_ns);
	memset(drawers, 0, sizeof(drawers));
	drawers[0] = (struct ceil_drawer){ .levels = { &child, &middle,
	    &parent }, .ceils = { &child_ceil, &middle_ceil, NULL },
	    .depth = 3, .quantum_B = 4000 };
	ran = ceil_run(drawers, 1, start_ns, from_ns, to_ns);
	ok(ran && near(drawers[0].window_B, 800000 * (secs - 1), 1),
	    "ceil: borrowing through two levels, the middle's ceiling binds "
	    "(%" PRIu64 " B at 800K/s)", drawers[0].window_B);
	/* ... and once the middle's sibling saturates its 500K/s, the
	 * middle is back to its own rate. */
	bucket_init(&parent, 1000000, 0, start_ns);
	bucket_init(&middle, 500000, 0, start_ns);
	bucket_init(&middle_ceil, 800000, 0, start_ns);
	bucket_init(&child, 100000, 0, start_ns);
	bucket_init(&child_ceil, 0, 0, start_ns);
	drawers[1] = (struct ceil_drawer){ .levels = { &other, &parent },
	    .depth = 2, .quantum_B = 4000 };
	drawers[2] = drawers[1];
	ran = ceil_run(drawers, 3, start_ns, from_ns, to_ns);
	ok(ran && near(drawers[0].window_B, 500000 * (secs - 1), 2) &&
	    near(drawers[1].window_B + drawers[2].window_B,
	    500000 * (secs - 1), 2),
	    "ceil: ... and beside a busy sibling of the middle, the middle's "
	    "rate (%" PRIu64 " B at 500K/s, the sibling %" PRIu64 " B)",
	    drawers[0].window_B, drawers[1].window_B + drawers[2].window_B);
}

/* Without any ceiling bucket_draw_ceil is bucket_draw_capped exactly. */
static void
test_ceil_none_is_capped(void)
{
	struct bucket a[3], b[3], *la[3], *lb[3];
	uint64_t caps[3], now_ns, ra, rb, ga, gb, want_B;
	size_t level, na, nb, nlevels;
	unsigned n, bad = 0;
	int borrowed[3];

	rng_state = 77;
	for (n = 0; n < 20000; n++) {
		nlevels = 1 + rng_below(3);
		now_ns = rng_log(1, 1ULL << 50);
		for (level = 0; level < nlevels; level++) {
			bucket_init(&a[level], rng_log(1, 1ULL << 30),
			    rng_below(3) ? rng_log(1, 1ULL << 28) : 0, now_ns);
			a[level].tokens_B = (int64_t)a[level].burst_B -
			    (int64_t)rng_below(3 * a[level].burst_B);
			b[level] = a[level];
			la[level] = &a[level];
			lb[level] = &b[level];
			caps[level] = rng_log(1, 1ULL << 30);
		}
		for (; n % 7 && now_ns < (1ULL << 52); n++) {
			want_B = rng_log(1, CHUNK_MAX);
			now_ns += rng_below(NS_PER_SEC / 10);
			ga = bucket_draw_capped(la, caps, nlevels, want_B, now_ns,
			    &ra, &na);
			gb = bucket_draw_ceil(lb, NULL, caps, nlevels, want_B,
			    now_ns, &rb, &nb, NULL, borrowed);
			if (ga != gb || ra != rb || na != nb ||
			    memcmp(a, b, nlevels * sizeof(a[0])) || borrowed[0])
				bad++;
		}
	}
	ok(bad == 0, "ceil: with no ceiling the draw is bucket_draw_capped's "
	    "to the nanobyte (%u differ)", bad);
}

/*
 * The contract on every bucket, rate and ceiling alike: random chains
 * (child in parent, depth 3, siblings) with random ceilings (none,
 * unlimited, or at least the rate) and random demand; each bucket's
 * releases counted by due time as in test_upper_bound.
 */
static void
test_ceil_contract(uint64_t first_seed, unsigned nseeds, size_t ndraws)
{
	struct bucket rates[LEVELS_MAX], ceils[LEVELS_MAX];
	struct bucket *charged[2 * LEVELS_MAX];
	struct level_log logs[2 * LEVELS_MAX];
	struct ceil_drawer drawers[DRAWERS_MAX];
	int parent[LEVELS_MAX], has_ceil[LEVELS_MAX], borrowed[LEVELS_MAX];
	size_t nlevels, ndrawers, d, k, n, j, ncharged, neck, bottleneck;
	uint64_t start_ns, now_ns, release_ns, got_B, t0, t1, ready_ns;
	unsigned s, bad_seeds = 0, borrows = 0, refusals = 0;
	char b1[48], b2[48];
	int shape, cur;

	memset(logs, 0, sizeof(logs));
	for (s = 0; s < nseeds; s++) {
		uint64_t seed = first_seed + s * 6151;
		int seed_ok = 1;

		rng_state = seed;
		shape = (int)(s % 3);
		nlevels = shape == 0 ? 2 : shape == 1 ? 3 : 4;
		for (k = 0; k < nlevels; k++)
			parent[k] = (int)k + 1;
		parent[nlevels - 1] = -1;
		if (shape == 2) {
			/* 0 in 1, 1 and 2 siblings in 3 */
			parent[1] = 3;
			parent[2] = 3;
		}
		start_ns = rng_log(1, 1ULL << 52);
		for (k = 0; k < nlevels; k++) {
			uint64_t rate_Bps = rng_log(1, 4 * GBps), ceil_Bps;
			uint64_t burst_B = rng_below(3) ? rng_log(1,
			    rate_Bps * 2 + 1) : 0;

			bucket_init(&rates[k], rate_Bps, burst_B, start_ns);
			has_ceil[k] = parent[k] >= 0 && rng_below(4) != 0;
			ceil_Bps = rng_below(3) == 0 ? 0 :
			    rate_Bps + rng_log(1, 8 * rate_Bps);
			if (ceil_Bps > RATE_MAX)
				ceil_Bps = RATE_MAX;
			bucket_init(&ceils[k], ceil_Bps, rng_below(2) ?
			    burst_B : rng_log(1, ceil_Bps * 2 + 2), start_ns);
			logs[2 * k].count = logs[2 * k + 1].count = 0;
		}
		ndrawers = 1 + rng_below(DRAWERS_MAX);
		memset(drawers, 0, sizeof(drawers));
		for (d = 0; d < ndrawers; d++) {
			cur = (int)rng_below(nlevels);
			for (k = 0; cur >= 0; k++, cur = parent[cur]) {
				drawers[d].levels[k] = &rates[cur];
				drawers[d].ceils[k] = has_ceil[cur] ?
				    &ceils[cur] : NULL;
			}
			drawers[d].depth = k;
			drawers[d].quantum_B = rng_log(1, CHUNK_MAX);
			drawers[d].next_ns = start_ns;
			drawers[d].saturating = (int)rng_below(2);
		}
		for (n = 0; n < ndraws && seed_ok; n++) {
			struct ceil_drawer *drawer = &drawers[0];

			for (d = 1; d < ndrawers; d++)
				if (drawers[d].next_ns < drawer->next_ns)
					drawer = &drawers[d];
			now_ns = drawer->next_ns;
			got_B = bucket_draw_ceil(drawer->levels, drawer->ceils,
			    NULL, drawer->depth, 1 + rng_below(
			    drawer->quantum_B), now_ns, &release_ns,
			    &bottleneck, NULL, borrowed);
			if (release_ns < now_ns ||
			    (got_B == 0 && release_ns == now_ns)) {
				diag("seed %" PRIu64 ": got %" PRIu64 " at %"
				    PRIu64 " for %" PRIu64, seed, got_B,
				    release_ns, now_ns);
				seed_ok = 0;
				break;
			}
			drawer->next_ns = release_ns;
			if (got_B == 0) {
				refusals++;
				continue;
			}
			/* The buckets charged, in the order the draw
			 * chains them: R_0, C_0, R_1, C_1, ... */
			ncharged = 0;
			for (k = 0; k < drawer->depth; k++) {
				if (!borrowed[k])
					charged[ncharged++] =
					    drawer->levels[k];
				if (drawer->ceils[k] &&
				    drawer->ceils[k]->rate_Bps)
					charged[ncharged++] = drawer->ceils[k];
				borrows += borrowed[k];
			}
			neck = 0;
			for (j = 0; j < ncharged; j++)
				if (charged[j]->rate_Bps &&
				    bucket_ready_ns(charged[j]) == release_ns)
					neck = j;
			for (j = 0; j < ncharged; j++) {
				if (charged[j]->rate_Bps == 0)
					continue;
				ready_ns = bucket_ready_ns(charged[j]);
				if (j > neck && ready_ns > release_ns) {
					diag("seed %" PRIu64 ": a bucket ready "
					    "after the release", seed);
					seed_ok = 0;
				}
				k = (size_t)(charged[j] < &ceils[0] ?
				    2 * (size_t)(charged[j] - rates) :
				    2 * (size_t)(charged[j] - ceils) + 1);
				log_release(&logs[k], release_ns, j <= neck ?
				    release_ns : ready_ns, got_B);
			}
			if (!drawer->saturating)
				drawer->next_ns += rng_below(8) == 0 ?
				    rng_below(NS_PER_SEC) :
				    rng_below(1000 * 1000);
		}
		for (k = 0; seed_ok && k < 2 * nlevels; k++) {
			struct bucket *bucket = k % 2 ? &ceils[k / 2] :
			    &rates[k / 2];
			i128 worst, allowed;

			if (bucket->rate_Bps == 0)
				continue;
			worst = worst_excess_nB(&logs[k], bucket->rate_Bps, 1,
			    &t0, &t1);
			allowed = (i128)bucket->burst_B * NS_PER_SEC +
			    bucket->rate_Bps;
			if (worst > allowed) {
				diag("seed %" PRIu64 " level %zu %s: worst "
				    "excess %s nB over [%" PRIu64 ", %" PRIu64
				    "], allowed %s", seed, k / 2, k % 2 ?
				    "ceiling" : "rate", i128_str(worst, b1),
				    t0, t1, i128_str(allowed, b2));
				seed_ok = 0;
			}
		}
		bad_seeds += !seed_ok;
	}
	for (k = 0; k < 2 * LEVELS_MAX; k++)
		free(logs[k].events);
	ok(bad_seeds == 0 && borrows > 0 && refusals > 0,
	    "ceil: upper bound b + r*dt by due time on every rate and "
	    "ceiling bucket, random chains and demand: %u seeds x %zu draws "
	    "(%u failed; %u borrowing levels, %u refusals seen)", nseeds,
	    ndraws, bad_seeds, borrows, refusals);
}

int
main(int argc, char **argv)
{
	uint64_t seed = 1;
	unsigned nseeds = 200;
	int verbose = 0;

	if (argc > 1) {
		seed = strtoull(argv[1], NULL, 10);
		nseeds = 1;
		verbose = 1;
		replay = 1;
	}
	test_upper_bound(seed, nseeds, 3000, 1, verbose);
	test_upper_bound(seed, nseeds, 3000, 0, verbose);
	test_lower_bound(seed, nseeds, 3000, verbose);
	if (!replay) {
		test_no_catch_up();
		test_settle_exact();
		test_overflow();
		test_reconfigure();
		test_quantum();
		test_debt_max();
		test_ready_exact();
		test_chain_draw();
		test_draw_capped();
		test_start_storm(1, 60, 0);
		test_ceil_none_is_capped();
		test_ceil_scenes();
		test_ceil_contract(1, 300, 3000);
	}
	return done_testing();
}
