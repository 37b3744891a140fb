/*
 * The contract of bucket.h checked on simulated clocks: long random
 * timelines (many seeds, each reproducible: a failure prints its seed) of
 * drawers on one bucket and on nested chains, every interval of every
 * level against its upper and lower bound.  The edges one by one are in
 * unit-bucket-edges, borrowing up to a ceiling in unit-bucket-ceil.
 * No sleeps, no real time.  `unit-bucket SEED` replays one seed verbosely.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bucket.h"
#include "tap.h"
#include "timeline.h"

static int replay;	/* one seed given: use it as it is for every shape */

/* ---- the simulation ---------------------------------------------------- */

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
	return done_testing();
}
