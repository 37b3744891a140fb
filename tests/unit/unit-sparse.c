/*
 * unit-sparse: the sparse lane (bucket.h, docs/design.md "Interactive
 * connections") on simulated clocks.  N bulk drawers each hold one draw
 * of a quantum on one limit, drawing again the moment a grant is released
 * (store_reserve()'s maths: bucket_draw_capped() with the debt cap and
 * quantum for N + 1 relays), beside one interactive drawer sending a byte
 * every 100 ms with its sparse credit.  Checked: the interactive draws
 * are released at once; the limit's releases stay within b + S + r * dt
 * over every window and within 1% of the rate over the run; the bulk
 * drawers share evenly (Jain); a drawer that turns bulk loses the lane at
 * once and gets no more than the others; one drawing a byte at a time as
 * fast as it can gets no more than its share plus share / 4.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bucket.h"
#include "tap.h"

#define SIM_NS		(10ULL * NS_PER_SEC)
#define DRAWERS_MAX	65
#define EVENTS_MAX	(4U * 1024U * 1024U)

enum kind { BULK, ECHO, TURNS_BULK, CHEATER };

struct drawer {
	enum kind kind;
	uint64_t next_ns;	/* when it draws next */
	uint64_t released_B;	/* in the measured span */
	uint64_t late_B;	/* released from 1 s after the turn */
	struct sparse_credit credit;
	uint64_t sparse_n;
};

struct event {
	uint64_t at_ns, bytes;
};

static struct event *events;
static size_t nevents;

struct scene {
	uint64_t rate_Bps;
	unsigned nbulk;
	enum kind special;	/* the one more drawer */
};

struct outcome {
	uint64_t echo_wait_max_ns;
	uint64_t echo_n, echo_sparse_n;
	double aggregate, jain, special_share, worst_excess;
	uint64_t sparse_after_turn_n;
};

static void
record(uint64_t at_ns, uint64_t bytes)
{
	if (nevents < EVENTS_MAX) {
		events[nevents].at_ns = at_ns;
		events[nevents].bytes = bytes;
		nevents++;
	}
}

static int
by_time(const void *a, const void *b)
{
	const struct event *x = a, *y = b;

	return x->at_ns < y->at_ns ? -1 : x->at_ns > y->at_ns;
}

/* The largest (released in [t, t + w]) - (b + S + r * w) over every t
 * that is a release, in bytes (<= 0 when the bound holds). */
static double
worst_window_excess(uint64_t rate_Bps, uint64_t burst_B, uint64_t w_ns)
{
	double worst = -1e300, bound, sum = 0;
	size_t i, j = 0;

	bound = (double)burst_B + (double)bucket_sparse_reserve_B(burst_B) +
	    (double)rate_Bps * (double)(w_ns + 1) / 1e9;
	for (i = 0; i < nevents; i++) {
		while (j < nevents && events[j].at_ns <= events[i].at_ns + w_ns)
			sum += (double)events[j++].bytes;
		if (sum - bound > worst)
			worst = sum - bound;
		sum -= (double)events[i].bytes;
	}
	return worst;
}

static void
run(const struct scene *scene, struct outcome *out)
{
	struct drawer d[DRAWERS_MAX];
	struct bucket bucket, *levels[1] = { &bucket };
	uint64_t burst_B = bucket_default_burst(scene->rate_Bps);
	unsigned n = scene->nbulk + 1, i, best;
	uint64_t quantum_B = bucket_quantum(scene->rate_Bps, burst_B, n);
	uint64_t debt_B = bucket_debt_max(scene->rate_Bps, burst_B, n);
	uint64_t share_Bps = scene->rate_Bps / n, now_ns, release_ns, got_B;
	uint64_t want_B, start_ns = NS_PER_SEC, turn_ns = 5 * NS_PER_SEC;
	uint64_t echo_req_ns = 0, sum = 0;
	double sq = 0;
	size_t neck;
	int sparse;

	memset(out, 0, sizeof(*out));
	memset(d, 0, sizeof(d));
	nevents = 0;
	bucket_init(&bucket, scene->rate_Bps, burst_B, 0);
	for (i = 0; i < n; i++) {
		d[i].kind = i == scene->nbulk ? scene->special : BULK;
		/* Started a little apart, as relays are. */
		d[i].next_ns = (uint64_t)i * 1000;
		/* As iprelay-conn: no credit to start with. */
		sparse_credit_start(&d[i].credit, 0, 0);
	}
	for (;;) {
		best = 0;
		for (i = 1; i < n; i++)
			if (d[i].next_ns < d[best].next_ns)
				best = i;
		now_ns = d[best].next_ns;
		if (now_ns >= SIM_NS)
			break;
		want_B = quantum_B;
		if (d[best].kind == CHEATER ||
		    (d[best].kind == ECHO) ||
		    (d[best].kind == TURNS_BULK && now_ns < turn_ns))
			want_B = 1;
		sparse = sparse_credit_allows(&d[best].credit, share_Bps,
		    quantum_B, want_B, now_ns);
		got_B = 0;
		release_ns = now_ns;
		if (sparse == LANE_SPARSE && bucket_draw_sparse(levels,
		    &debt_B, 1, want_B, now_ns) == want_B) {
			got_B = want_B;
			d[best].sparse_n++;
			if (d[best].kind == TURNS_BULK &&
			    now_ns >= turn_ns + NS_PER_SEC)
				out->sparse_after_turn_n++;
		} else {
			got_B = bucket_draw_capped(levels, &debt_B, 1, want_B,
			    now_ns, &release_ns, &neck);
		}
		if (got_B == 0) {
			/* Refused past the cap: back when it fits, and no
			 * credit (as iprelay-conn). */
			sparse_credit_spend(&d[best].credit,
			    UINT64_MAX / NS_PER_SEC);
			d[best].next_ns = release_ns > now_ns ? release_ns :
			    now_ns + 1;
			continue;
		}
		sparse_credit_spend(&d[best].credit, got_B);
		record(release_ns, got_B);
		if (release_ns >= start_ns)
			d[best].released_B += got_B;
		if (release_ns >= turn_ns + NS_PER_SEC)
			d[best].late_B += got_B;
		if (d[best].kind == ECHO ||
		    (d[best].kind == TURNS_BULK && now_ns < turn_ns)) {
			/* Interactive: a byte every 100 ms, the wait timed from
			 * when it asked. */
			if (now_ns >= start_ns) {
				out->echo_n++;
				if (release_ns - echo_req_ns >
				    out->echo_wait_max_ns)
					out->echo_wait_max_ns =
					    release_ns - echo_req_ns;
				if (release_ns == now_ns)
					out->echo_sparse_n++;
			}
			echo_req_ns = now_ns + NS_PER_SEC / 10;
			d[best].next_ns = release_ns > echo_req_ns ?
			    release_ns : echo_req_ns;
		} else if (d[best].kind == CHEATER) {
			/* A byte at a time, as fast as a draw goes (a store
			 * transaction takes 10 us or more). */
			d[best].next_ns = (release_ns > now_ns ? release_ns :
			    now_ns) + 10000;
		} else {
			/* Bulk: again as soon as released. */
			d[best].next_ns = release_ns + 1;
		}
	}
	qsort(events, nevents, sizeof(events[0]), by_time);
	for (i = 0; i < nevents; i++)
		if (events[i].at_ns >= start_ns && events[i].at_ns < SIM_NS)
			sum += events[i].bytes;
	out->aggregate = (double)sum / ((double)scene->rate_Bps *
	    (double)(SIM_NS - start_ns) / 1e9);
	out->worst_excess = worst_window_excess(scene->rate_Bps, burst_B,
	    NS_PER_SEC / 10);
	if (worst_window_excess(scene->rate_Bps, burst_B, NS_PER_SEC) >
	    out->worst_excess)
		out->worst_excess = worst_window_excess(scene->rate_Bps,
		    burst_B, NS_PER_SEC);
	sum = 0;
	for (i = 0; i < scene->nbulk; i++) {
		sum += d[i].released_B;
		sq += (double)d[i].released_B * (double)d[i].released_B;
	}
	out->jain = sq > 0 ? (double)sum * (double)sum /
	    ((double)scene->nbulk * sq) : 0;
	/* The special drawer's bytes against a bulk drawer's mean. */
	out->special_share = sum ? (double)d[scene->nbulk].released_B /
	    ((double)sum / scene->nbulk) : 0;
	if (scene->special == TURNS_BULK) {
		/* Its bytes once bulk against a bulk drawer's, same span. */
		sum = 0;
		for (i = 0; i < scene->nbulk; i++)
			sum += d[i].late_B;
		out->special_share = sum ? (double)d[scene->nbulk].late_B /
		    ((double)sum / scene->nbulk) : 0;
	}
}

/*
 * New relays beside nbulk drawers saturating one limit (store_reserve()'s
 * maths as above, the pool as in the store): nnew relays start at once
 * at 3 s, each asking for want_B (its first draw, no credit of its own),
 * then drawing like bulk; or, with nnew == 1, one new relay every 200 ms
 * asking want_B once (a short request).  Out: the longest wait of a
 * first draw that the pool took, how many took it, the bytes it took,
 * the aggregate and the worst window over b + S + r * dt.
 */
struct fresh_outcome {
	uint64_t lane_wait_max_ns, first_wait_max_ns;
	unsigned firsts, lane_n;
	uint64_t lane_B;
	double aggregate, worst_excess;
};

static void
run_fresh(uint64_t rate_Bps, unsigned nbulk, unsigned nnew, uint64_t ask_B,
    struct fresh_outcome *out)
{
	struct drawer d[DRAWERS_MAX + 40];
	struct bucket bucket, *levels[1] = { &bucket };
	struct fresh_pool pool = { 0, 0 }, *pools[1] = { &pool };
	uint64_t burst_B = bucket_default_burst(rate_Bps), sum = 0;
	unsigned n = nbulk + nnew, i, best, alive;
	uint64_t now_ns, release_ns, got_B, want_B, quantum_B, debt_B;
	uint64_t asked_ns[DRAWERS_MAX + 40], new_at_ns = 3 * NS_PER_SEC;
	size_t neck;
	int lane, first[DRAWERS_MAX + 40];

	memset(out, 0, sizeof(*out));
	memset(d, 0, sizeof(d));
	nevents = 0;
	bucket_init(&bucket, rate_Bps, burst_B, 0);
	for (i = 0; i < n; i++) {
		d[i].kind = i < nbulk ? BULK : ECHO;
		d[i].next_ns = i < nbulk ? (uint64_t)i * 1000 : new_at_ns;
		sparse_credit_start(&d[i].credit, 0, d[i].next_ns);
		first[i] = 1;
		asked_ns[i] = d[i].next_ns;
	}
	for (;;) {
		best = 0;
		for (i = 1; i < n; i++)
			if (d[i].next_ns < d[best].next_ns)
				best = i;
		now_ns = d[best].next_ns;
		if (now_ns >= SIM_NS)
			break;
		/* The relays counted as the store counts them: live ones. */
		alive = nbulk + (now_ns >= new_at_ns ? nnew : 0);
		quantum_B = bucket_quantum(rate_Bps, burst_B, alive);
		debt_B = bucket_debt_max(rate_Bps, burst_B, alive);
		want_B = first[best] && d[best].kind == ECHO ? ask_B :
		    quantum_B;
		if (want_B > quantum_B)
			want_B = quantum_B;
		lane = sparse_credit_allows(&d[best].credit, rate_Bps / alive,
		    quantum_B, want_B, now_ns);
		release_ns = now_ns;
		got_B = bucket_draw_lane(levels, pools, &debt_B, 1, want_B,
		    now_ns, lane);
		if (got_B && lane == LANE_FRESH && d[best].kind == ECHO) {
			out->lane_n++;
			out->lane_B += got_B;
			if (now_ns - asked_ns[best] > out->lane_wait_max_ns)
				out->lane_wait_max_ns = now_ns - asked_ns[best];
		}
		if (got_B == 0)
			got_B = bucket_draw_capped(levels, &debt_B, 1, want_B,
			    now_ns, &release_ns, &neck);
		if (got_B == 0) {
			sparse_credit_spend(&d[best].credit,
			    UINT64_MAX / NS_PER_SEC);
			d[best].next_ns = release_ns > now_ns ? release_ns :
			    now_ns + 1;
			continue;
		}
		sparse_credit_spend(&d[best].credit, got_B);
		record(release_ns, got_B);
		if (first[best] && d[best].kind == ECHO) {
			out->firsts++;
			if (release_ns - asked_ns[best] >
			    out->first_wait_max_ns)
				out->first_wait_max_ns = release_ns -
				    asked_ns[best];
		}
		if (nnew == 1 && d[best].kind == ECHO) {
			/* A short request answered: the next one is a new
			 * relay 200 ms later. */
			sparse_credit_start(&d[best].credit, 0,
			    release_ns + NS_PER_SEC / 5);
			d[best].next_ns = release_ns + NS_PER_SEC / 5;
			asked_ns[best] = d[best].next_ns;
			continue;
		}
		first[best] = 0;
		d[best].next_ns = release_ns + 1;
	}
	qsort(events, nevents, sizeof(events[0]), by_time);
	for (i = 0; i < nevents; i++)
		if (events[i].at_ns >= NS_PER_SEC && events[i].at_ns < SIM_NS)
			sum += events[i].bytes;
	out->aggregate = (double)sum / ((double)rate_Bps *
	    (double)(SIM_NS - NS_PER_SEC) / 1e9);
	out->worst_excess = worst_window_excess(rate_Bps, burst_B,
	    NS_PER_SEC / 10);
	if (worst_window_excess(rate_Bps, burst_B, NS_PER_SEC) >
	    out->worst_excess)
		out->worst_excess = worst_window_excess(rate_Bps, burst_B,
		    NS_PER_SEC);
}

static void
fresh_pool_checks(void)
{
	struct fresh_pool pool = { 0, 0 };
	uint64_t size_B = bucket_sparse_reserve_B(100000);

	ok(fresh_pool_take(&pool, 1000000, 100000, size_B, 5) &&
	    !fresh_pool_take(&pool, 1000000, 100000, 1, 5),
	    "pool: holds S = burst / 4 (%llu B), no byte more",
	    (unsigned long long)size_B);
	/* 1 MB/s regrows 62500 B/s: 16 us a byte. */
	ok(!fresh_pool_take(&pool, 1000000, 100000, 1, 5 + 15999) &&
	    fresh_pool_take(&pool, 1000000, 100000, 1, 5 + 16000) &&
	    fresh_pool_take(&pool, 1000000, 100000, 3, 5 + 64000) &&
	    !fresh_pool_take(&pool, 1000000, 100000, 1, 5 + 64000),
	    "pool: regrows at rate / 16, no fraction lost");
	ok(fresh_pool_take(&pool, 1000000, 100000, size_B, 5 + NS_PER_SEC) &&
	    pool.used_B == size_B, "pool: full again after S / (r / 16)");
	fresh_pool_give_back(&pool, size_B);
	ok(pool.used_B == 0 && pool.stamp_ns == 0,
	    "pool: given back, full (stamp 0: the older record holds it)");
	pool.used_B = 10;
	pool.stamp_ns = 10 * NS_PER_SEC;
	ok(fresh_pool_take(&pool, 1000, 100000, size_B, NS_PER_SEC),
	    "pool: a stamp ahead of the clock (another boot) is forgotten");
	pool.used_B = size_B;
	pool.stamp_ns = NS_PER_SEC;
	ok(!fresh_pool_take(&pool, 1000000, 4000, 1, NS_PER_SEC),
	    "pool: a lowered burst leaves what was taken over the new size");
}

int
main(void)
{
	static const uint64_t rates[] = { 4096, 65536, 1048576, 104857600 };
	static const unsigned counts[] = { 4, 16, 64 };
	struct outcome out;
	struct scene scene;
	size_t r, c;

	events = malloc(sizeof(*events) * EVENTS_MAX);
	if (events == NULL)
		return 1;
	for (r = 0; r < sizeof(rates) / sizeof(rates[0]); r++) {
		for (c = 0; c < sizeof(counts) / sizeof(counts[0]); c++) {
			scene.rate_Bps = rates[r];
			scene.nbulk = counts[c];
			scene.special = ECHO;
			run(&scene, &out);
			ok(out.echo_n > 80 && out.echo_sparse_n == out.echo_n &&
			    out.echo_wait_max_ns == 0,
			    "%llu B/s, %u bulk: every interactive byte released "
			    "at once (%llu of %llu, longest wait %llu ns)",
			    (unsigned long long)scene.rate_Bps, scene.nbulk,
			    (unsigned long long)out.echo_sparse_n,
			    (unsigned long long)out.echo_n,
			    (unsigned long long)out.echo_wait_max_ns);
			ok(out.aggregate > 0.99 && out.aggregate < 1.01,
			    "%llu B/s, %u bulk: aggregate within 1%% (%.4f)",
			    (unsigned long long)scene.rate_Bps, scene.nbulk,
			    out.aggregate);
			ok(out.worst_excess <= 0,
			    "%llu B/s, %u bulk: every 0.1 s and 1 s window "
			    "within b + S + r * dt (worst %.1f B over)",
			    (unsigned long long)scene.rate_Bps, scene.nbulk,
			    out.worst_excess);
			ok(out.jain >= 0.99, "%llu B/s, %u bulk: Jain among "
			    "the bulk drawers %.4f",
			    (unsigned long long)scene.rate_Bps, scene.nbulk,
			    out.jain);
		}
	}
	for (r = 0; r < sizeof(rates) / sizeof(rates[0]); r++) {
		scene.rate_Bps = rates[r];
		scene.nbulk = 16;
		scene.special = CHEATER;
		run(&scene, &out);
		ok(out.special_share <= 1.25 + 0.02,
		    "%llu B/s: one drawing a byte at a time as fast as it can "
		    "gets %.3f of a bulk drawer's bytes (at most 1 + 1/4)",
		    (unsigned long long)scene.rate_Bps, out.special_share);
		ok(out.worst_excess <= 0 && out.aggregate > 0.99 &&
		    out.aggregate < 1.01, "%llu B/s, a cheater: the limit "
		    "holds (aggregate %.4f, worst window %.1f B over)",
		    (unsigned long long)scene.rate_Bps, out.aggregate,
		    out.worst_excess);
		scene.special = TURNS_BULK;
		run(&scene, &out);
		ok(out.sparse_after_turn_n == 0 && out.special_share < 1.05,
		    "%llu B/s: a drawer that turns bulk at 5 s takes the "
		    "lane %llu times after 6 s and gets %.3f of a bulk "
		    "drawer's bytes", (unsigned long long)scene.rate_Bps,
		    (unsigned long long)out.sparse_after_turn_n,
		    out.special_share);
	}
	fresh_pool_checks();
	for (r = 0; r < sizeof(rates) / sizeof(rates[0]); r++) {
		struct fresh_outcome fo;

		/* A short request's answer (1 KiB, or a quantum) beside 64
		 * bulk drawers: a new relay every 200 ms. */
		run_fresh(rates[r], 64, 1, 1024, &fo);
		ok(fo.firsts >= 30 && fo.lane_n == fo.firsts &&
		    fo.first_wait_max_ns == 0, "%llu B/s, 64 bulk: every new "
		    "relay's first draw released at once (%u of %u, longest "
		    "wait %llu ns)", (unsigned long long)rates[r], fo.lane_n,
		    fo.firsts, (unsigned long long)fo.first_wait_max_ns);
		ok(fo.worst_excess <= 0 && fo.aggregate > 0.99 &&
		    fo.aggregate < 1.01, "%llu B/s, 64 bulk, new relays: the "
		    "limit holds (aggregate %.4f, worst window %.1f B over)",
		    (unsigned long long)rates[r], fo.aggregate,
		    fo.worst_excess);
		/* 40 relays starting at once beside 16 bulk: together they
		 * take no more than the pool, S. */
		run_fresh(rates[r], 16, 40, UINT64_MAX, &fo);
		ok(fo.lane_B <= bucket_sparse_reserve_B(
		    bucket_default_burst(rates[r])) && fo.firsts == 40 &&
		    fo.first_wait_max_ns < NS_PER_SEC, "%llu B/s: 40 relays "
		    "starting at once take %llu B through the pool (%u of "
		    "them; at most S = %llu), every first grant within 1 s "
		    "(%.3f s)", (unsigned long long)rates[r],
		    (unsigned long long)fo.lane_B, fo.lane_n,
		    (unsigned long long)bucket_sparse_reserve_B(
		    bucket_default_burst(rates[r])),
		    (double)fo.first_wait_max_ns / 1e9);
		ok(fo.worst_excess <= 0 && fo.aggregate > 0.99 &&
		    fo.aggregate < 1.01, "%llu B/s, 40 starting at once: the "
		    "limit holds (aggregate %.4f, worst window %.1f B over)",
		    (unsigned long long)rates[r], fo.aggregate,
		    fo.worst_excess);
	}
	free(events);
	return done_testing();
}
