/* Token-bucket arithmetic; the contract is stated in bucket.h. */
#include "bucket.h"

typedef unsigned __int128 u128;

/* Quantum period: how much of a second one round of draws by every relay on
 * a limit covers.  Short keeps low rates smooth; it grows with the number of
 * relays so that each wakes at most 10-50 times a second (design-notes.md). */
#define QUANTUM_PERIOD_MIN_NS	(20ULL * 1000 * 1000)
#define QUANTUM_PERIOD_MAX_NS	(100ULL * 1000 * 1000)
#define QUANTUM_PERIOD_PER_CONN_NS	(2ULL * 1000 * 1000)

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

void
bucket_reconfigure(struct bucket *bucket, uint64_t rate_Bps,
    uint64_t burst_B, uint64_t now_ns)
{
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
	return bucket->stamp_ns + (uint64_t)wait_ns;
}

uint64_t
bucket_quantum(uint64_t rate_Bps, uint64_t burst_B, uint32_t nconns)
{
	uint64_t period_ns, quantum_B;

	if (rate_Bps == 0)
		return CHUNK_MAX;
	if (nconns == 0)
		nconns = 1;
	period_ns = (uint64_t)nconns * QUANTUM_PERIOD_PER_CONN_NS;
	if (period_ns < QUANTUM_PERIOD_MIN_NS)
		period_ns = QUANTUM_PERIOD_MIN_NS;
	if (period_ns > QUANTUM_PERIOD_MAX_NS)
		period_ns = QUANTUM_PERIOD_MAX_NS;
	quantum_B = (uint64_t)((u128)rate_Bps * period_ns / NS_PER_SEC /
	    nconns);
	if (quantum_B == 0)
		quantum_B = 1;
	if (burst_B && quantum_B > burst_B)
		quantum_B = burst_B;
	if (quantum_B > CHUNK_MAX)
		quantum_B = CHUNK_MAX;
	return quantum_B;
}

uint64_t
bucket_draw(struct bucket *const levels[], size_t nlevels, uint64_t want_B,
    uint64_t now_ns, uint64_t *release_ns)
{
	uint64_t ready_ns;
	size_t level;

	*release_ns = now_ns;
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
		if (ready_ns > *release_ns)
			*release_ns = ready_ns;
	}
	return want_B;
}
