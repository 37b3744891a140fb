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
		if (sparse && bucket_draw_sparse(levels, &debt_B, 1, want_B,
		    now_ns) == want_B) {
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
	free(events);
	return done_testing();
}
