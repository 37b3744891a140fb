/*
 * The edges of bucket.h one by one, on simulated clocks: no catching up
 * after idling, exact settling, overflow, reconfiguring, the quantum, the
 * debt cap, exact ready times, chains, capped draws, and many relays
 * starting at once (the start storm).  No sleeps, no real time.  The
 * random timelines are in unit-bucket, the ceilings in unit-bucket-ceil.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bucket.h"
#include "tap.h"
#include "timeline.h"

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

/* The release log outlives a seed: reused, not freed. */
static struct level_log storm_log;

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
	struct level_log *log = &storm_log;
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
int
main(void)
{
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
	return done_testing();
}
