/*
 * A rate change keeps the time owed, not the bytes (bucket_reconfigure,
 * bucket.h): checked on simulated clocks with many relays in debt, both
 * ways by a factor of 10^5, on one level, on an ancestor of the relays'
 * limit and on a ceiling; then once through the store (the case of
 * issue 12: 100 relays at 100 MB/s, then `iprelay-limit set web 1K`).
 *
 * After a cut, a new relay's first grant is released within one second
 * or one quantum at the new rate, whichever is longer (plus, when a debt
 * of more than that was owed, the time owed: at most the new debt cap's);
 * after a raise, no window of one second passes more than r' + b'.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bucket.h"
#include "store.h"
#include "tap.h"

#define DRAWERS_MAX	128
#define RELEASES_MAX	(4U * 1000 * 1000)

/* Relays on a chain (level 0 = their own limit, 1 = its parent), each
 * drawing its quantum again at its release, or when refused at the time
 * it was told plus its retry slot, as iprelay-conn does. */
struct scene {
	struct bucket levels[2];
	struct bucket ceil;	/* level 0's ceiling, when ceiled */
	size_t depth;
	int ceiled;
	uint32_t nconns;	/* live relays, counted on every level */
	uint64_t next_ns[DRAWERS_MAX + 1];
	uint32_t ndrawers;
	/* what was released, in order of draw (not of release) */
	uint64_t *at_ns, *bytes_B;
	size_t nreleases;
};

static uint64_t
scene_debt_max(const struct scene *scene, size_t level)
{
	const struct bucket *bucket = &scene->levels[level];

	return bucket_debt_max(bucket->rate_Bps, bucket->burst_B,
	    scene->nconns);
}

static uint64_t
scene_quantum(const struct scene *scene)
{
	uint64_t quantum_B = CHUNK_MAX, level_B;
	size_t level;

	for (level = 0; level < scene->depth; level++) {
		level_B = bucket_quantum(scene->levels[level].rate_Bps,
		    scene->levels[level].burst_B, scene->nconns);
		if (level_B < quantum_B)
			quantum_B = level_B;
	}
	if (scene->ceiled) {
		level_B = bucket_quantum(scene->ceil.rate_Bps,
		    scene->ceil.burst_B, scene->nconns);
		if (level_B < quantum_B)
			quantum_B = level_B;
	}
	return quantum_B;
}

/* One draw by drawer `who` at now_ns: returns the bytes granted (0:
 * refused) and sets *next_ns to when it draws again. */
static uint64_t
scene_draw(struct scene *scene, uint32_t who, uint64_t now_ns,
    uint64_t *release_ns)
{
	struct bucket *levels[2] = { &scene->levels[0], &scene->levels[1] };
	struct bucket *ceils[2] = { scene->ceiled ? &scene->ceil : NULL, NULL };
	uint64_t debt_max_B[2], got_B;
	const struct bucket *neck;
	size_t level, bottleneck;

	for (level = 0; level < scene->depth; level++)
		debt_max_B[level] = scene_debt_max(scene, level);
	got_B = bucket_draw_ceil(levels, ceils, debt_max_B, scene->depth,
	    scene_quantum(scene), now_ns, release_ns, &bottleneck, &neck,
	    NULL);
	if (got_B == 0)
		*release_ns += bucket_retry_spread_ns(neck->rate_Bps,
		    debt_max_B[bottleneck], scene->nconns, who);
	else if (scene->nreleases < RELEASES_MAX) {
		scene->at_ns[scene->nreleases] = *release_ns;
		scene->bytes_B[scene->nreleases++] = got_B;
	}
	return got_B;
}

/* Run every drawer whose next draw is before until_ns. */
static void
scene_run(struct scene *scene, uint64_t until_ns)
{
	uint64_t release_ns, soonest_ns;
	uint32_t who, first;

	for (;;) {
		first = 0;
		soonest_ns = UINT64_MAX;
		for (who = 0; who < scene->ndrawers; who++)
			if (scene->next_ns[who] < soonest_ns) {
				soonest_ns = scene->next_ns[who];
				first = who;
			}
		if (soonest_ns >= until_ns)
			return;
		scene_draw(scene, first, soonest_ns, &release_ns);
		scene->next_ns[first] = release_ns > soonest_ns ?
		    release_ns : soonest_ns + 1;
	}
}

static void
scene_setup(struct scene *scene, size_t depth, int ceiled,
    uint64_t rate_Bps, uint32_t ndrawers)
{
	uint32_t who;

	free(scene->at_ns);
	free(scene->bytes_B);
	memset(scene, 0, sizeof(*scene));
	scene->at_ns = calloc(RELEASES_MAX, sizeof(uint64_t));
	scene->bytes_B = calloc(RELEASES_MAX, sizeof(uint64_t));
	if (!scene->at_ns || !scene->bytes_B) {
		perror("calloc");
		exit(1);
	}
	scene->depth = depth;
	scene->ceiled = ceiled;
	/* The limit whose rate changes is the top one; the relays' own
	 * limit below it (when depth 2) never binds. */
	bucket_init(&scene->levels[depth - 1], rate_Bps, 0, 0);
	if (depth == 2)
		bucket_init(&scene->levels[0], RATE_MAX, 0, 0);
	if (ceiled) {
		/* One level, rate r, its ceiling the one that changes: a
		 * parent above it that never binds. */
		bucket_init(&scene->levels[0], rate_Bps / 2, 0, 0);
		bucket_init(&scene->levels[1], RATE_MAX, 0, 0);
		bucket_init(&scene->ceil, rate_Bps, 0, 0);
	}
	scene->ndrawers = ndrawers;
	scene->nconns = ndrawers;
	for (who = 0; who < ndrawers; who++)
		scene->next_ns[who] = 1 + who;
}

static struct bucket *
scene_changing(struct scene *scene)
{
	return scene->ceiled ? &scene->ceil : &scene->levels[scene->depth - 1];
}

static uint64_t
owed_ns(const struct bucket *bucket, uint64_t now_ns)
{
	uint64_t ready_ns = bucket_ready_ns(bucket);

	return ready_ns > now_ns ? ready_ns - now_ns : 0;
}

/* Set the changing limit to new_Bps at at_ns, as store_limit_update()
 * does: a ceiled level has its rate cut or raised with its ceiling (by
 * the same factor) and both buckets take the level's cap, the one its
 * rate bucket sets.  Returns that cap's time at the watched bucket's
 * new rate. */
static uint64_t
change(struct scene *scene, uint64_t new_Bps, uint64_t at_ns)
{
	struct bucket *bucket = scene_changing(scene), *rate;
	uint64_t rate_Bps = new_Bps, old_Bps = bucket->rate_Bps, debt_max_B;

	rate = scene->ceiled ? &scene->levels[0] : bucket;
	if (scene->ceiled)
		rate_Bps = (uint64_t)((unsigned __int128)rate->rate_Bps *
		    new_Bps / old_Bps);
	debt_max_B = bucket_debt_max(rate_Bps, bucket_default_burst(rate_Bps),
	    scene->nconns);
	bucket_reconfigure(rate, rate_Bps, 0, debt_max_B, at_ns);
	if (scene->ceiled)
		bucket_reconfigure(bucket, new_Bps, 0, debt_max_B, at_ns);
	return (uint64_t)((unsigned __int128)debt_max_B * NS_PER_SEC /
	    new_Bps);
}

static const char *
scene_name(const struct scene *scene)
{
	if (scene->ceiled)
		return "a ceiling";
	return scene->depth == 2 ? "the parent" : "one level";
}

/* Cut by 10^5 with every drawer in debt; a new relay then starts.  With
 * stay, the old drawers go on drawing beside it; without, they end at
 * the cut (their grants already made still count, as in the store). */
static void
test_cut(size_t depth, int ceiled, uint64_t old_Bps, uint32_t ndrawers,
    int stay)
{
	struct scene scene_, *scene = &scene_;
	uint64_t cut_ns = 3 * NS_PER_SEC, new_Bps = old_Bps / 100000;
	uint64_t owed_before_ns, owed_after_ns, quantum_B, bound_ns;
	uint64_t now_ns, release_ns = 0, first_ns = 0, cap_ns;
	uint32_t newcomer = ndrawers, who;
	unsigned tries = 0;

	memset(scene, 0, sizeof(*scene));
	scene_setup(scene, depth, ceiled, old_Bps, ndrawers);
	scene_run(scene, cut_ns);
	owed_before_ns = owed_ns(scene_changing(scene), cut_ns);
	cap_ns = change(scene, new_Bps, cut_ns);
	owed_after_ns = owed_ns(scene_changing(scene), cut_ns);
	ok(owed_after_ns <= owed_before_ns + 2 &&
	    (owed_after_ns + 2 >= owed_before_ns || owed_after_ns + 2 >= cap_ns),
	    "cut %s by 1e5, %u relays in debt: time owed kept (%.3f s before,"
	    " %.3f s after, new cap %.3f s)", scene_name(scene), ndrawers,
	    owed_before_ns / 1e9, owed_after_ns / 1e9, cap_ns / 1e9);
	if (!stay) {
		for (who = 0; who < ndrawers; who++)
			scene->next_ns[who] = UINT64_MAX;
		scene->nconns = 1;
	} else {
		scene->nconns = ndrawers + 1;
	}
	scene->ndrawers = ndrawers + 1;
	scene->next_ns[newcomer] = UINT64_MAX;
	now_ns = cut_ns;
	quantum_B = scene_quantum(scene);
	/* The newcomer draws at the cut and again when told; the others
	 * (if they stay) draw in between, as they would. */
	while (tries < 100000) {
		scene_run(scene, now_ns);
		tries++;
		if (scene_draw(scene, newcomer, now_ns, &release_ns)) {
			first_ns = release_ns;
			break;
		}
		now_ns = release_ns > now_ns ? release_ns : now_ns + 1;
	}
	bound_ns = NS_PER_SEC;
	if (quantum_B * NS_PER_SEC / new_Bps > bound_ns)
		bound_ns = quantum_B * NS_PER_SEC / new_Bps;
	ok(first_ns && first_ns - cut_ns <= bound_ns,
	    "cut %s by 1e5 (%" PRIu64 " -> %" PRIu64 " B/s), %u relays in debt"
	    "%s: a new relay's first %" PRIu64 " B released %.3f s after the "
	    "cut (at most %.3f s)", scene_name(scene), old_Bps, new_Bps,
	    ndrawers, stay ? " drawing on" : " ended", quantum_B,
	    first_ns ? (first_ns - cut_ns) / 1e9 : -1.0, bound_ns / 1e9);
	free(scene->at_ns);
	free(scene->bytes_B);
}

/* Raise by 10^5 with every drawer in debt; they go on drawing.  Every
 * window of one second starting at a release after the raise passes at
 * most r' + b' (the bytes granted before the raise included); and the
 * new rate is reached: the second after the first one passes r' within
 * a quantum per relay. */
static void
test_raise(size_t depth, int ceiled, uint64_t old_Bps, uint32_t ndrawers)
{
	struct scene scene_, *scene = &scene_;
	uint64_t raise_ns = 3 * NS_PER_SEC, new_Bps = old_Bps * 100000;
	uint64_t *at_ns, *bytes_B, window_B, worst_B = 0, second_B = 0;
	uint64_t burst_B = bucket_default_burst(new_Bps), quantum_B;
	uint64_t guaranteed_Bps;
	size_t count, from, i, j, first_after;

	memset(scene, 0, sizeof(*scene));
	scene_setup(scene, depth, ceiled, old_Bps, ndrawers);
	scene_run(scene, raise_ns);
	first_after = scene->nreleases;
	change(scene, new_Bps, raise_ns);
	scene_run(scene, raise_ns + 4 * NS_PER_SEC);
	quantum_B = scene_quantum(scene);
	/* Sort by release time (insertion: draws come nearly in order). */
	at_ns = scene->at_ns;
	bytes_B = scene->bytes_B;
	count = scene->nreleases;
	for (i = 1; i < count; i++)
		for (j = i; j > 0 && at_ns[j - 1] > at_ns[j]; j--) {
			uint64_t t = at_ns[j]; at_ns[j] = at_ns[j - 1];
			at_ns[j - 1] = t;
			t = bytes_B[j]; bytes_B[j] = bytes_B[j - 1];
			bytes_B[j - 1] = t;
		}
	/* Windows [at_ns[from], at_ns[from] + 1 s] from every release at or
	 * after the raise (any window's worst case starts on a release). */
	window_B = 0;
	j = 0;
	for (from = 0; from < count; from++) {
		if (at_ns[from] < raise_ns) {
			continue;
		}
		if (j < from) {
			j = from;
			window_B = 0;
		}
		while (j < count && at_ns[j] <= at_ns[from] + NS_PER_SEC)
			window_B += bytes_B[j++];
		if (window_B > worst_B)
			worst_B = window_B;
		window_B -= bytes_B[from];
	}
	for (i = 0; i < count; i++)
		if (at_ns[i] >= raise_ns + NS_PER_SEC &&
		    at_ns[i] < raise_ns + 2 * NS_PER_SEC)
			second_B += bytes_B[i];
	ok(worst_B <= new_Bps + burst_B + 1,
	    "raise %s by 1e5 (%" PRIu64 " -> %" PRIu64 " B/s), %u relays in "
	    "debt: at most %" PRIu64 " B in any second (%" PRIu64 ")",
	    scene_name(scene), old_Bps, new_Bps, ndrawers,
	    new_Bps + burst_B, worst_B);
	/* A ceiled level is guaranteed its rate (what it borrows past it
	 * is checked in unit-bucket-ceil); everything else its limit's
	 * rate. */
	guaranteed_Bps = scene->ceiled ? scene->levels[0].rate_Bps : new_Bps;
	ok(second_B + (uint64_t)ndrawers * quantum_B >= guaranteed_Bps,
	    "raise %s by 1e5: the second after the first passes the new rate "
	    "(%" PRIu64 " of %" PRIu64 " B)", scene_name(scene), second_B,
	    guaranteed_Bps);
	(void)first_after;
	free(scene->at_ns);
	free(scene->bytes_B);
}

static void
test_edges(void)
{
	struct bucket bucket, *levels[1] = { &bucket };
	uint64_t release_ns;

	/* 1000 B owed at 1000 B/s (1 s), cut to 10 B/s: 10 B (1 s). */
	bucket_init(&bucket, 1000, 1000, 0);
	bucket_draw(levels, 1, 1000, 0, &release_ns);
	bucket_reconfigure(&bucket, 10, 0, 1000, 0);
	ok(bucket.tokens_B == -10 && bucket.frac_nB == 0 &&
	    bucket_ready_ns(&bucket) == NS_PER_SEC,
	    "cut: the debt is scaled, ready at the same time");
	/* ... a cap of 5 B at 10 B/s: 0.5 s. */
	bucket_init(&bucket, 1000, 1000, 0);
	bucket_draw(levels, 1, 1000, 0, &release_ns);
	bucket_reconfigure(&bucket, 10, 1, 5, 0);
	ok(bucket.tokens_B == -5 && bucket_ready_ns(&bucket) == NS_PER_SEC / 2,
	    "cut: clamped to the new debt cap");
	/* 3 B owed at 7 B/s, raised to 1e12 B/s: a fraction kept exact. */
	bucket_init(&bucket, 7, 7, 0);
	bucket_draw(levels, 1, 3, 0, &release_ns);
	bucket_reconfigure(&bucket, 1000000000000ULL, 0, BURST_MAX, 0);
	ok(bucket_ready_ns(&bucket) == release_ns &&
	    bucket.frac_nB < NS_PER_SEC,
	    "raise: ready at the same nanosecond (%" PRIu64 " vs %" PRIu64 ")",
	    bucket_ready_ns(&bucket), release_ns);
	/* BURST_MAX owed at RATE_MAX (1 s), cut to 1 B/s: 1 B. */
	bucket_init(&bucket, RATE_MAX, BURST_MAX, 0);
	bucket_draw(levels, 1, BURST_MAX, 0, &release_ns);
	bucket_reconfigure(&bucket, 1, 0, 100, 0);
	ok(bucket.tokens_B == -1 && bucket_ready_ns(&bucket) == NS_PER_SEC,
	    "cut from RATE_MAX to 1 B/s: 1 s owed stays 1 s");
	bucket_init(&bucket, 1, 1, 0);
	bucket.tokens_B = -(int64_t)BURST_MAX;
	bucket_reconfigure(&bucket, RATE_MAX, 0, BURST_MAX, 0);
	ok(bucket.tokens_B == -(int64_t)BURST_MAX,
	    "raise from 1 B/s owing BURST_MAX: clamped to the cap");
	/* An uncapped debt of 2^62 B (bucket_draw without caps): its
	 * product with RATE_MAX would not fit 128 bits. */
	bucket_init(&bucket, 1, 1, 0);
	bucket.tokens_B = -(int64_t)(1ULL << 62);
	bucket_reconfigure(&bucket, RATE_MAX, 0, 1000, 0);
	ok(bucket.tokens_B == -(int64_t)bucket.burst_B && bucket.frac_nB == 0,
	    "raise owing 2^62 B: clamped (to the burst, over the cap given), "
	    "no overflow");
	/* Tokens in hand are not scaled, only clamped to the burst. */
	bucket_init(&bucket, 1000, 100, 0);
	bucket_settle(&bucket, NS_PER_SEC);
	bucket_reconfigure(&bucket, 100000, 1000, 1000, NS_PER_SEC);
	ok(bucket.tokens_B == 100, "raise: tokens in hand kept as they were");
}

/* issue 12's reproducer: 100 relays drawing on web at 100 MB/s, then
 * `iprelay-limit set web 1K`; a new relay's first grant (it was 2.7 h). */
static void
test_store(void)
{
	char dir[] = "/tmp/unit-rate-change.XXXXXX";
	struct conn_info info[101];
	struct limit_cfg cfg;
	struct store *store;
	struct grant grant;
	uint64_t quantum_B[2], cut_ns, first_ns = 0;
	size_t nlevels;
	int shaped[2], i, rc;
	char cmd[128];

	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		exit(1);
	}
	if ((rc = store_open(&store, dir, 0))) {
		printf("Bail out! store_open: %s\n", store_strerror(rc));
		exit(1);
	}
	memset(&cfg, 0, sizeof(cfg));
	cfg.rate_Bps[DIR_UP] = cfg.rate_Bps[DIR_DOWN] = 100000000;
	cfg.ceil_Bps[DIR_UP] = cfg.ceil_Bps[DIR_DOWN] = CEIL_NONE;
	store_limit_put(store, "web", &cfg);
	for (i = 0; i < 100; i++) {
		memset(&info[i], 0, sizeof(info[i]));
		info[i].pid = getpid();
		strcpy(info[i].limit, "web");
		store_conn_register_shaped(store, &info[i], shaped, quantum_B,
		    &nlevels);
	}
	for (i = 0; i < 100; i++)
		store_reserve(store, info[i].id, "web", DIR_DOWN,
		    quantum_B[DIR_DOWN], &grant);
	cfg.rate_Bps[DIR_UP] = cfg.rate_Bps[DIR_DOWN] = 1024;
	cut_ns = monotonic_ns();
	store_limit_put(store, "web", &cfg);
	for (i = 0; i < 100; i++)
		store_conn_unregister(store, info[i].id);
	memset(&info[100], 0, sizeof(info[100]));
	info[100].pid = getpid();
	strcpy(info[100].limit, "web");
	store_conn_register_shaped(store, &info[100], shaped, quantum_B,
	    &nlevels);
	/* Draw as a relay does: refused, come back when told. */
	for (i = 0; i < 1000 && !first_ns; i++) {
		rc = store_reserve(store, info[100].id, "web", DIR_DOWN,
		    quantum_B[DIR_DOWN], &grant);
		if (rc)
			break;
		if (grant.bytes)
			first_ns = grant.release_ns;
		else if (grant.release_ns - cut_ns > 5 * NS_PER_SEC)
			break;	/* old code: hours; don't wait for it */
		else
			while (monotonic_ns() < grant.release_ns)
				usleep(1000);
	}
	ok(rc == 0 && first_ns && first_ns - cut_ns <= NS_PER_SEC,
	    "store: 100 relays at 100 MB/s, set 1K: a new relay's first grant "
	    "released %.3f s after the change (at most 1 s; told %.1f s)",
	    first_ns ? (first_ns - cut_ns) / 1e9 : -1.0,
	    (grant.release_ns - cut_ns) / 1e9);
	store_close(store);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		diag("could not remove %s", dir);
}

int
main(void)
{
	static const uint32_t counts[] = { 16, 100 };
	size_t i;

	test_edges();
	for (i = 0; i < 2; i++) {
		test_cut(1, 0, 100000000, counts[i], 1);
		test_cut(1, 0, 100000000, counts[i], 0);
		test_cut(1, 0, 10000000000ULL, counts[i], 1);
		test_cut(2, 0, 100000000, counts[i], 1);
		test_cut(2, 0, 100000000, counts[i], 0);
		test_cut(1, 1, 100000000, counts[i], 1);
		test_raise(1, 0, 1000, counts[i]);
		test_raise(1, 0, 100000, counts[i]);
		test_raise(2, 0, 1000, counts[i]);
		test_raise(1, 1, 1000, counts[i]);
	}
	test_cut(1, 0, 1000000, 16, 0);
	test_store();
	return done_testing();
}
