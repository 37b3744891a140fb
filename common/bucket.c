/* Token-bucket arithmetic; the contract is stated in bucket.h. */
#include "bucket.h"

typedef unsigned __int128 u128;

/* Quantum period: how much of a second one round of draws by every relay on
 * a limit covers.  Short keeps low rates smooth; it grows with the number of
 * relays so that each wakes at most 10-50 times a second (design-notes.md). */
#define QUANTUM_PERIOD_MIN_NS	(20ULL * 1000 * 1000)
#define QUANTUM_PERIOD_MAX_NS	(100ULL * 1000 * 1000)
#define QUANTUM_PERIOD_PER_CONN_NS	(2ULL * 1000 * 1000)
/* Smallest quantum at low rates (never above a second of the limit's rate
 * nor its burst).  A relay pays about 0.1-0.3 ms of CPU per wake-up here
 * (timer, draw, two splices): 20 ms quanta at 1 KiB/s (20 B, 50 wake-ups a
 * second) cost about 16 ms of CPU a second, over the 5 ms a second the
 * issue allows.  128 B still moves in smaller pieces than the original's
 * data_size (500 B); -z lowers it for interactive traffic. */
#define QUANTUM_MIN_B	128ULL
/* The ring: the time one round of draws by every relay on a limit may
 * cover, N * 1 ms up to 2 s, so that the relays of one limit make at most
 * about 1000 draws (LMDB write transactions) a second together.  Every
 * draw takes the store's one write lock, and glibc's mutex is not fair: a
 * waiter it wakes loses the lock to any relay that arrives first and goes
 * back to the end of the queue.  On a loaded 2-core machine a queue on
 * it, once formed, starved some relays for seconds while others drew at
 * once: at 10 draws a second per relay (1000 relays, 10,000 a second)
 * from 1.7 to 28 draws a second per relay, Jain 0.16-0.69; at 2000 a
 * second 0.59-0.97; at 1000 a second 0.996-0.998 in every run
 * (bench/README.md, "Scale").  Past 2000 relays the ring stops growing,
 * so a relay still waits at most about 2 s for a grant. */
#define QUANTUM_RING_PER_CONN_NS	(1000ULL * 1000)
#define QUANTUM_RING_MAX_NS	(2000ULL * 1000 * 1000)

uint64_t
bucket_default_burst(uint64_t rate_Bps)
{
	/* A tenth of a second of traffic: enough to cover one quantum at any
	 * relay count, small enough that an idle link resumes gently. */
	uint64_t burst_B = rate_Bps / 10;

	return burst_B ? burst_B : 1;
}

void
bucket_init(struct bucket *bucket, uint64_t rate_Bps, uint64_t burst_B,
    uint64_t now_ns)
{
	/* New buckets start empty so the first second does not burst. */
	bucket->rate_Bps = rate_Bps;
	bucket->burst_B = burst_B ? burst_B : bucket_default_burst(rate_Bps);
	bucket->tokens_B = 0;
	bucket->frac_nB = 0;
	bucket->stamp_ns = now_ns;
}

void
bucket_settle(struct bucket *bucket, uint64_t now_ns)
{
	u128 added_nB, whole_B, room_B;

	if (bucket->rate_Bps == 0) {
		bucket->tokens_B = 0;
		bucket->frac_nB = 0;
		bucket->stamp_ns = now_ns;
		return;
	}
	if (now_ns <= bucket->stamp_ns) {
		/* A stamp in the future comes from before a reboot: restart
		 * the clock there, granting nothing for the unknown gap. */
		bucket->stamp_ns = now_ns;
		return;
	}
	if (bucket->tokens_B >= (int64_t)bucket->burst_B) {
		bucket->tokens_B = (int64_t)bucket->burst_B;
		bucket->frac_nB = 0;
		bucket->stamp_ns = now_ns;
		return;
	}
	added_nB = (u128)bucket->rate_Bps * (now_ns - bucket->stamp_ns) +
	    bucket->frac_nB;
	whole_B = added_nB / NS_PER_SEC;
	room_B = (u128)((__int128)bucket->burst_B - bucket->tokens_B);
	if (whole_B >= room_B) {
		bucket->tokens_B = (int64_t)bucket->burst_B;
		bucket->frac_nB = 0;
	} else {
		bucket->tokens_B += (int64_t)whole_B;
		bucket->frac_nB = (uint64_t)(added_nB % NS_PER_SEC);
	}
	bucket->stamp_ns = now_ns;
}

/*
 * A changed rate keeps the time owed, not the bytes: a debt of D bytes at
 * rate r is D / r seconds of reservations already handed out, and those
 * relays were told release times in that span.  Kept in bytes, a cut from
 * 100 MB/s to 1 KiB/s turned the 0.1 s owed by 100 relays into 2.7 hours
 * during which nothing on the limit (or below it) could move.  Scaled by
 * new / old, the next draw still queues behind exactly those reservations,
 * at the moment they end; clamped to the level's debt cap at the new
 * setting, so that a change never leaves a level owing more than a draw
 * at the new setting could.
 */
static void
rescale_debt(struct bucket *bucket, uint64_t old_rate_Bps,
    uint64_t debt_max_B)
{
	u128 debt_nB, cap_nB;

	if (bucket->tokens_B >= 0)
		return;
	if (debt_max_B < bucket->burst_B)
		debt_max_B = bucket->burst_B;
	if (debt_max_B > BURST_MAX)
		debt_max_B = BURST_MAX;
	cap_nB = (u128)debt_max_B * NS_PER_SEC;
	debt_nB = (u128)(uint64_t)-bucket->tokens_B * NS_PER_SEC -
	    bucket->frac_nB;
	/* Rounded up: no draw may come before the reservations already
	 * made.  Past the cap anyway, skip the product (128 bits hold it
	 * only below about 2^40 bytes * 1e9 * 2^40 B/s). */
	if (debt_nB / old_rate_Bps > cap_nB / bucket->rate_Bps)
		debt_nB = cap_nB;
	else
		debt_nB = (debt_nB * bucket->rate_Bps + old_rate_Bps - 1) /
		    old_rate_Bps;
	if (debt_nB > cap_nB)
		debt_nB = cap_nB;
	/* tokens * 1e9 + frac = -debt, frac in [0, 1e9). */
	bucket->tokens_B = -(int64_t)((debt_nB + NS_PER_SEC - 1) / NS_PER_SEC);
	bucket->frac_nB = (uint64_t)((u128)(uint64_t)-bucket->tokens_B *
	    NS_PER_SEC - debt_nB);
}

void
bucket_reconfigure(struct bucket *bucket, uint64_t rate_Bps,
    uint64_t burst_B, uint64_t debt_max_B, uint64_t now_ns)
{
	uint64_t old_rate_Bps = bucket->rate_Bps;

	/* Settle at the old rate first, so the time before the change is
	 * paid for at the rate that was in force then. */
	if (bucket->rate_Bps == 0)
		bucket_init(bucket, rate_Bps, burst_B, now_ns);
	else
		bucket_settle(bucket, now_ns);
	bucket->rate_Bps = rate_Bps;
	bucket->burst_B = burst_B ? burst_B : bucket_default_burst(rate_Bps);
	if (rate_Bps == 0) {
		bucket->tokens_B = 0;
		bucket->frac_nB = 0;
	} else if (bucket->tokens_B > (int64_t)bucket->burst_B) {
		bucket->tokens_B = (int64_t)bucket->burst_B;
		bucket->frac_nB = 0;
	} else if (old_rate_Bps != 0) {
		rescale_debt(bucket, old_rate_Bps, debt_max_B);
	}
	bucket->stamp_ns = now_ns;
}

uint64_t
bucket_ready_ns(const struct bucket *bucket)
{
	u128 deficit_nB, wait_ns;

	if (bucket->rate_Bps == 0 || bucket->tokens_B >= 0)
		return bucket->stamp_ns;
	deficit_nB = (u128)(uint64_t)-bucket->tokens_B * NS_PER_SEC -
	    bucket->frac_nB;
	wait_ns = (deficit_nB + bucket->rate_Bps - 1) / bucket->rate_Bps;
	/* A terabyte owed at 1 B/s is 35,000 years away: say "never" rather
	 * than wrap around to an early release. */
	if (wait_ns > UINT64_MAX - bucket->stamp_ns)
		return UINT64_MAX;
	return bucket->stamp_ns + (uint64_t)wait_ns;
}

static uint64_t
ring_ns(uint32_t nconns)
{
	uint64_t span_ns = (uint64_t)nconns * QUANTUM_RING_PER_CONN_NS;

	return span_ns < QUANTUM_RING_MAX_NS ? span_ns : QUANTUM_RING_MAX_NS;
}

uint64_t
bucket_debt_max(uint64_t rate_Bps, uint64_t burst_B, uint32_t nconns)
{
	uint64_t debt_B = (uint64_t)((u128)rate_Bps * ring_ns(nconns) /
	    NS_PER_SEC);

	/* A stored bucket owes at most BURST_MAX. */
	if (debt_B > BURST_MAX)
		debt_B = BURST_MAX;
	if (debt_B < burst_B)
		debt_B = burst_B;
	/* bucket_quantum() never goes below one byte. */
	if (debt_B < nconns)
		debt_B = nconns;
	return debt_B;
}

uint64_t
bucket_quantum(uint64_t rate_Bps, uint64_t burst_B, uint32_t nconns)
{
	uint64_t period_ns, quantum_B, share_B;

	if (rate_Bps == 0)
		return CHUNK_MAX;
	if (nconns == 0)
		nconns = 1;
	period_ns = (uint64_t)nconns * QUANTUM_PERIOD_PER_CONN_NS;
	if (period_ns < QUANTUM_PERIOD_MIN_NS)
		period_ns = QUANTUM_PERIOD_MIN_NS;
	if (period_ns > QUANTUM_PERIOD_MAX_NS)
		period_ns = QUANTUM_PERIOD_MAX_NS;
	/* Many relays: fewer, larger draws, a round as long as the ring. */
	if (period_ns < ring_ns(nconns))
		period_ns = ring_ns(nconns);
	quantum_B = (uint64_t)((u128)rate_Bps * period_ns / NS_PER_SEC /
	    nconns);
	if (quantum_B < QUANTUM_MIN_B)
		quantum_B = rate_Bps < QUANTUM_MIN_B ? rate_Bps : QUANTUM_MIN_B;
	if (burst_B && quantum_B > burst_B)
		quantum_B = burst_B;
	/* One draw per relay fits in the debt cap, max(b, r * ring, N), so
	 * N relays waiting at once owe at most that: a new relay waits at
	 * most about max(b, r * ring) / r for its first grant, and no draw
	 * meets the debt cap of bucket_draw_capped().  With the default
	 * burst (r / 10) the ring counts only past 100 relays, and then
	 * this term is r * ring / N = r / 1000.  Below 128 B this beats
	 * the wake-up floor above: a relay then wakes r / (N * q) >= 10
	 * times a second only while it is alone on a limit of under
	 * 1280 B/s. */
	if (burst_B) {
		share_B = bucket_debt_max(rate_Bps, burst_B, nconns) / nconns;
		if (quantum_B > share_B)
			quantum_B = share_B;
	}
	if (quantum_B > CHUNK_MAX)
		quantum_B = CHUNK_MAX;
	return quantum_B;
}

/*
 * A level below the draw's bottleneck (the highest level whose ready time
 * is the release time) sees the bytes leave only at release_ns: account
 * them there, as if the level had been settled at release_ns (tokens
 * capped at the burst then) and drawn from at that moment.  Otherwise a
 * child held back by a busy parent would bank its own refill meanwhile and
 * let it all out at once when the parent frees the queue.  This costs the
 * level nothing: every later draw on it passes the bottleneck, whose ready
 * time only grows, so none could leave before release_ns anyway.
 */
static void
hold_until(struct bucket *bucket, uint64_t want_B, uint64_t now_ns,
    uint64_t release_ns)
{
	__int128 tokens_nB, ceiling_nB, floor_nB;

	tokens_nB = (__int128)bucket->tokens_B * NS_PER_SEC +
	    bucket->frac_nB;
	ceiling_nB = ((__int128)bucket->burst_B - (__int128)want_B) *
	    NS_PER_SEC - (__int128)bucket->rate_Bps * (release_ns - now_ns);
	if (tokens_nB <= ceiling_nB)
		return;
	/* Stay inside what a stored bucket may hold; past it the level is
	 * so much faster than its bottleneck that it cannot overrun. */
	floor_nB = -(__int128)BURST_MAX * NS_PER_SEC;
	if (ceiling_nB < floor_nB)
		ceiling_nB = floor_nB;
	if (tokens_nB <= ceiling_nB)
		return;
	/* Floor division: frac stays in [0, 1e9) for negative tokens. */
	bucket->tokens_B = (int64_t)(ceiling_nB / (__int128)NS_PER_SEC);
	if (ceiling_nB % (__int128)NS_PER_SEC < 0)
		bucket->tokens_B--;
	bucket->frac_nB = (uint64_t)(ceiling_nB -
	    (__int128)bucket->tokens_B * NS_PER_SEC);
}

/* The first whole nanosecond at which the settled bucket holds at least
 * need_B tokens (need_B <= burst, so settling can get there). */
static uint64_t
tokens_ready_ns(const struct bucket *bucket, int64_t need_B)
{
	__int128 short_nB;
	u128 wait_ns;

	short_nB = ((__int128)need_B - bucket->tokens_B) * (__int128)NS_PER_SEC -
	    (__int128)bucket->frac_nB;
	if (bucket->rate_Bps == 0 || short_nB <= 0)
		return bucket->stamp_ns;
	wait_ns = ((u128)short_nB + bucket->rate_Bps - 1) / bucket->rate_Bps;
	if (wait_ns > UINT64_MAX - bucket->stamp_ns)
		return UINT64_MAX;
	return bucket->stamp_ns + (uint64_t)wait_ns;
}

/* Settled at now: X may give q bytes at once, leaving k >= 0. */
static int
covers(const struct bucket *bucket, uint64_t want_B)
{
	return bucket->rate_Bps == 0 || bucket->tokens_B >= (int64_t)want_B;
}

/* Settled at now: a draw is waiting on it (k < 0). */
static int
queued(const struct bucket *bucket)
{
	return bucket->rate_Bps != 0 && bucket->tokens_B < 0;
}

static uint64_t
clamp_to_burst(uint64_t want_B, const struct bucket *bucket)
{
	if (bucket && bucket->rate_Bps != 0 && want_B > bucket->burst_B)
		return bucket->burst_B;
	return want_B;
}

static uint64_t
later(uint64_t a_ns, uint64_t b_ns)
{
	return a_ns > b_ns ? a_ns : b_ns;
}

uint64_t
bucket_draw_ceil(struct bucket *const levels[], struct bucket *const ceils[],
    const uint64_t debt_max_B[], size_t nlevels, uint64_t want_B,
    uint64_t now_ns, uint64_t *release_ns, size_t *bottleneck_out,
    const struct bucket **neck_out, int borrowed[])
{
	struct bucket *all[2 * BUCKET_LEVELS_MAX];
	uint64_t all_debt_B[2 * BUCKET_LEVELS_MAX];
	size_t owner[2 * BUCKET_LEVELS_MAX];
	struct bucket *rate, *ceil;
	uint64_t guaranteed_B = want_B, lend_B = want_B, got_B;
	uint64_t guaranteed_ns = now_ns, borrow_ns = now_ns, level_ns;
	size_t level, index, count = 0, neck = 0, borrow_neck = 0;
	int may_borrow, any_borrower = 0, all_cover = 1, lends = 1;
	int ancestors_idle = 1;

	if (nlevels > BUCKET_LEVELS_MAX)
		nlevels = BUCKET_LEVELS_MAX;
	for (level = 0; level < nlevels; level++) {
		if (borrowed)
			borrowed[level] = 0;
		all[count] = levels[level];
		owner[count++] = level;
		ceil = ceils ? ceils[level] : NULL;
		if (ceil && ceil->rate_Bps != 0) {
			all[count] = ceil;
			owner[count++] = level;
		}
		if (ceil && level + 1 < nlevels)
			any_borrower = 1;
	}
	for (index = 0; index < count; index++)
		all_debt_B[index] = debt_max_B ? debt_max_B[owner[index]] : 0;
	if (!any_borrower)
		goto guaranteed;
	for (index = 0; index < count; index++) {
		if (all[index]->rate_Bps != 0)
			bucket_settle(all[index], now_ns);
		guaranteed_B = clamp_to_burst(guaranteed_B, all[index]);
	}
	for (level = 0; level < nlevels; level++) {
		ceil = ceils[level];
		may_borrow = ceil && level + 1 < nlevels;
		if (!may_borrow)
			lend_B = clamp_to_burst(lend_B, levels[level]);
		lend_B = clamp_to_burst(lend_B, ceil);
	}
	if (guaranteed_B == 0 || lend_B == 0)
		goto guaranteed;
	for (index = 0; index < count; index++)
		if (!covers(all[index], guaranteed_B))
			all_cover = 0;
	if (all_cover)
		goto guaranteed;	/* released at once, nobody delayed */
	for (level = 0; level < nlevels && lends; level++) {
		rate = levels[level];
		ceil = ceils[level];
		may_borrow = ceil && level + 1 < nlevels;
		if (covers(rate, lend_B) && (!ceil || covers(ceil, lend_B)))
			continue;
		lends = may_borrow && covers(ceil, lend_B);
	}
	if (lends) {
		for (level = 0; level < nlevels; level++) {
			rate = levels[level];
			ceil = ceils[level];
			may_borrow = ceil && level + 1 < nlevels;
			if (!may_borrow || covers(rate, lend_B)) {
				if (rate->rate_Bps != 0)
					rate->tokens_B -= (int64_t)lend_B;
			} else if (borrowed) {
				borrowed[level] = 1;
			}
			if (ceil && ceil->rate_Bps != 0)
				ceil->tokens_B -= (int64_t)lend_B;
		}
		*release_ns = now_ns;
		*bottleneck_out = 0;
		if (neck_out)
			*neck_out = levels[0];
		return lend_B;
	}
	/* Neither fits now: queue the guaranteed draw unless a borrow could
	 * fit sooner, if nobody else drew meanwhile, and no ancestor has a
	 * draw queued.  A queued draw up there is guaranteed traffic that
	 * will draw again; coming back for its leftovers would cost this
	 * draw its place in the queue, and the guarantee with it (measured
	 * through real relays: 10% of a child's rate beside a busy sibling). */
	for (index = 0; index < count; index++)
		guaranteed_ns = later(guaranteed_ns,
		    tokens_ready_ns(all[index], (int64_t)guaranteed_B));
	for (level = 0; level < nlevels; level++) {
		rate = levels[level];
		ceil = ceils[level];
		may_borrow = ceil && level + 1 < nlevels;
		level_ns = ceil ? tokens_ready_ns(ceil, (int64_t)lend_B) : now_ns;
		if (!may_borrow)
			level_ns = later(level_ns,
			    tokens_ready_ns(rate, (int64_t)lend_B));
		if (level_ns > borrow_ns) {
			borrow_ns = level_ns;
			borrow_neck = level;
		}
		if (level > 0 && (may_borrow ? queued(ceil) :
		    queued(rate) || (ceil && queued(ceil))))
			ancestors_idle = 0;
	}
	if (ancestors_idle && borrow_ns < guaranteed_ns) {
		*release_ns = borrow_ns;
		*bottleneck_out = borrow_neck;
		if (neck_out)
			*neck_out = ceils[borrow_neck] &&
			    ceils[borrow_neck]->rate_Bps != 0 &&
			    borrow_neck + 1 < nlevels ? ceils[borrow_neck] :
			    levels[borrow_neck];
		return 0;
	}
guaranteed:
	got_B = bucket_draw_capped(all, debt_max_B ? all_debt_B : NULL, count,
	    want_B, now_ns, release_ns, &neck);
	*bottleneck_out = owner[neck];
	if (neck_out)
		*neck_out = all[neck];
	return got_B;
}

uint64_t
bucket_draw(struct bucket *const levels[], size_t nlevels, uint64_t want_B,
    uint64_t now_ns, uint64_t *release_ns)
{
	size_t bottleneck;

	return bucket_draw_capped(levels, NULL, nlevels, want_B, now_ns,
	    release_ns, &bottleneck);
}

uint64_t
bucket_draw_capped(struct bucket *const levels[], const uint64_t debt_max_B[],
    size_t nlevels, uint64_t want_B, uint64_t now_ns, uint64_t *release_ns,
    size_t *bottleneck_out)
{
	uint64_t ready_ns, cap_B;
	size_t level, bottleneck = 0;
	struct bucket *neck;

	*release_ns = now_ns;
	*bottleneck_out = 0;
	for (level = 0; level < nlevels; level++) {
		if (levels[level]->rate_Bps == 0)
			continue;
		bucket_settle(levels[level], now_ns);
		/* A draw above a level's burst could never be covered. */
		if (want_B > levels[level]->burst_B)
			want_B = levels[level]->burst_B;
	}
	if (want_B == 0)
		return 0;
	for (level = 0; level < nlevels; level++) {
		if (levels[level]->rate_Bps == 0)
			continue;
		levels[level]->tokens_B -= (int64_t)want_B;
		ready_ns = bucket_ready_ns(levels[level]);
		if (ready_ns >= *release_ns) {
			*release_ns = ready_ns;
			bottleneck = level;
		}
	}
	*bottleneck_out = bottleneck;
	neck = levels[bottleneck];
	if (debt_max_B && neck->rate_Bps != 0) {
		/* Only the bottleneck's debt delays this draw; a level below
		 * it may owe more, but only what hold_until() charged it for
		 * waiting on the bottleneck. */
		cap_B = debt_max_B[bottleneck] > neck->burst_B ?
		    debt_max_B[bottleneck] : neck->burst_B;
		if (cap_B > BURST_MAX)
			cap_B = BURST_MAX;
		if (neck->tokens_B < -(int64_t)cap_B) {
			/* Refused: give every level its bytes back (settled,
			 * so nothing else changed) and say when it fits. */
			for (level = 0; level < nlevels; level++)
				if (levels[level]->rate_Bps != 0)
					levels[level]->tokens_B +=
					    (int64_t)want_B;
			*release_ns = tokens_ready_ns(neck,
			    (int64_t)want_B - (int64_t)cap_B);
			return 0;
		}
	}
	for (level = 0; level < bottleneck; level++)
		if (levels[level]->rate_Bps != 0)
			hold_until(levels[level], want_B, now_ns, *release_ns);
	return want_B;
}

uint64_t
bucket_retry_spread_ns(uint64_t rate_Bps, uint64_t debt_max_B, uint32_t nconns,
    uint32_t slot)
{
	u128 slot_ns;

	if (rate_Bps == 0 || nconns <= 1)
		return 0;
	slot_ns = (u128)debt_max_B * NS_PER_SEC / rate_Bps / nconns;
	slot_ns *= slot % nconns;
	/* A cap of a terabyte at 1 B/s: "much later" is enough. */
	return slot_ns > UINT64_MAX / 2 ? UINT64_MAX / 2 : (uint64_t)slot_ns;
}

uint64_t
bucket_sparse_reserve_B(uint64_t burst_B)
{
	return burst_B >= SPARSE_BURST_DIV ? burst_B / SPARSE_BURST_DIV : 1;
}

uint64_t
bucket_draw_sparse(struct bucket *const levels[], const uint64_t debt_max_B[],
    size_t nlevels, uint64_t want_B, uint64_t now_ns)
{
	uint64_t floor_B;
	size_t level;

	if (want_B == 0 || want_B > BURST_MAX)
		return 0;
	for (level = 0; level < nlevels; level++)
		if (levels[level]->rate_Bps != 0)
			bucket_settle(levels[level], now_ns);
	for (level = 0; level < nlevels; level++) {
		if (levels[level]->rate_Bps == 0)
			continue;
		floor_B = debt_max_B[level] +
		    bucket_sparse_reserve_B(levels[level]->burst_B);
		if (floor_B > 2 * BURST_MAX)
			floor_B = 2 * BURST_MAX;
		if (levels[level]->tokens_B - (int64_t)want_B <
		    -(int64_t)floor_B)
			return 0;
	}
	for (level = 0; level < nlevels; level++)
		if (levels[level]->rate_Bps != 0)
			levels[level]->tokens_B -= (int64_t)want_B;
	return want_B;
}

void
sparse_credit_start(struct sparse_credit *credit, uint64_t quantum_B,
    uint64_t now_ns)
{
	credit->credit_nB = (u128)quantum_B * NS_PER_SEC > UINT64_MAX ?
	    UINT64_MAX : quantum_B * NS_PER_SEC;
	credit->stamp_ns = now_ns;
	credit->fresh = 1;
}

int
sparse_credit_allows(struct sparse_credit *credit, uint64_t share_Bps,
    uint64_t quantum_B, uint64_t want_B, uint64_t now_ns)
{
	u128 credit_nB, max_nB;
	uint64_t dt_ns;

	dt_ns = now_ns > credit->stamp_ns ? now_ns - credit->stamp_ns : 0;
	credit->stamp_ns = now_ns > credit->stamp_ns ? now_ns :
	    credit->stamp_ns;
	/* Bytes per second times ns is nanobytes. */
	credit_nB = (u128)credit->credit_nB +
	    (u128)(share_Bps / SPARSE_SHARE_DIV) * dt_ns;
	max_nB = (u128)quantum_B * NS_PER_SEC;
	if (credit_nB > max_nB)
		credit_nB = max_nB;
	credit->credit_nB = credit_nB > UINT64_MAX ? UINT64_MAX :
	    (uint64_t)credit_nB;
	if (want_B == 0)
		return LANE_NONE;
	if ((u128)want_B * NS_PER_SEC <= credit_nB)
		return LANE_SPARSE;
	return credit->fresh ? LANE_FRESH : LANE_NONE;
}

void
sparse_credit_spend(struct sparse_credit *credit, uint64_t bytes)
{
	u128 spend_nB = (u128)bytes * NS_PER_SEC;

	if (bytes)
		credit->fresh = 0;
	credit->credit_nB = spend_nB >= credit->credit_nB ? 0 :
	    credit->credit_nB - (uint64_t)spend_nB;
}

int
fresh_pool_take(struct fresh_pool *pool, uint64_t rate_Bps, uint64_t burst_B,
    uint64_t want_B, uint64_t now_ns)
{
	u128 regrown_B, step_ns;
	uint64_t size_B = bucket_sparse_reserve_B(burst_B);

	if (rate_Bps == 0 || want_B == 0)
		return 0;
	/* A stamp ahead of the clock is another boot's: forget it. */
	if (pool->used_B && now_ns < pool->stamp_ns)
		pool->used_B = 0;
	if (pool->used_B) {
		regrown_B = (u128)rate_Bps * (now_ns - pool->stamp_ns) /
		    ((u128)FRESH_REGROW_DIV * NS_PER_SEC);
		if (regrown_B >= pool->used_B) {
			pool->used_B = 0;
		} else {
			/* Advance by the whole bytes regrown only: the rest
			 * of the time counts at the next look. */
			step_ns = regrown_B * FRESH_REGROW_DIV * NS_PER_SEC /
			    rate_Bps;
			pool->used_B -= (uint64_t)regrown_B;
			pool->stamp_ns += (uint64_t)step_ns;
		}
	}
	if (pool->used_B == 0)
		pool->stamp_ns = 0;
	/* A lowered burst: what was taken may be over the new size. */
	if (pool->used_B > size_B || want_B > size_B - pool->used_B)
		return 0;
	if (pool->used_B == 0)
		pool->stamp_ns = now_ns;
	pool->used_B += want_B;
	return 1;
}

void
fresh_pool_give_back(struct fresh_pool *pool, uint64_t want_B)
{
	pool->used_B = want_B >= pool->used_B ? 0 : pool->used_B - want_B;
	if (pool->used_B == 0)
		pool->stamp_ns = 0;
}

uint64_t
bucket_draw_lane(struct bucket *const levels[], struct fresh_pool *const pools[],
    const uint64_t debt_max_B[], size_t nlevels, uint64_t want_B,
    uint64_t now_ns, int lane)
{
	size_t level, taken;
	int covered = 1;

	if (lane == LANE_SPARSE)
		return bucket_draw_sparse(levels, debt_max_B, nlevels, want_B,
		    now_ns);
	if (lane != LANE_FRESH || pools == NULL || want_B == 0)
		return 0;
	for (level = 0; level < nlevels; level++) {
		if (levels[level]->rate_Bps == 0)
			continue;
		bucket_settle(levels[level], now_ns);
		if (levels[level]->tokens_B < (int64_t)want_B)
			covered = 0;
	}
	/* Released at once by the queue anyway: keep the pool. */
	if (covered)
		return 0;
	for (taken = 0; taken < nlevels; taken++)
		if (levels[taken]->rate_Bps != 0 &&
		    !fresh_pool_take(pools[taken], levels[taken]->rate_Bps,
		    levels[taken]->burst_B, want_B, now_ns))
			break;
	if (taken == nlevels && bucket_draw_sparse(levels, debt_max_B,
	    nlevels, want_B, now_ns) == want_B)
		return want_B;
	for (level = 0; level < taken; level++)
		if (levels[level]->rate_Bps != 0)
			fresh_pool_give_back(pools[level], want_B);
	return 0;
}
