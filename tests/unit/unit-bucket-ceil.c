/*
 * Borrowing up to a ceiling (bucket_draw_ceil) checked on simulated
 * clocks: no ceiling is exactly a capped draw, the shares in fixed scenes,
 * and the contract on every rate and ceiling bucket over random chains
 * and demand.  No sleeps, no real time.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bucket.h"
#include "tap.h"
#include "timeline.h"

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
main(void)
{
	test_ceil_none_is_capped();
	test_ceil_scenes();
	test_ceil_contract(1, 300, 3000);
	return done_testing();
}
