/*
 * Token bucket with reservations, one per limit and direction.
 *
 * State (all integers): rate r in bytes/s, burst b in bytes, tokens k in
 * bytes (k < 0 means bytes already reserved ahead of the refill), a fraction
 * f of a byte in nanobytes (0 <= f < 1e9) and the settle time s in ns of
 * CLOCK_MONOTONIC.
 *
 * Settling at time t >= s:  k' = min(b, k + (r * (t - s) + f) / 1e9),
 *                            f' = remainder (0 when capped),  s' = t.
 * A draw of q bytes at time t settles, then k -= q on every rated level,
 * and releases the bytes at  R = max(t, max over levels of ready(level)),
 * where ready is the first time at which that level's k would be >= 0.
 *
 * A level below the draw's bottleneck (the highest level whose ready time
 * is R) is charged as of R: its tokens become min(k, b - r * (R - t)) - q,
 * so refill it could not use while held back is not let out later.
 *
 * Contract: for any interval [t0, t1] the bytes released on a bucket are
 *     released(t0, t1) <= b + r * (t1 - t0 + 1 ns)
 * (the 1 ns: release times are whole nanoseconds, rounded up).  On a level
 * above a slower level of the chain, add held(t0): the bytes it granted
 * before t0 that a slower level below holds back past t0 (at most one
 * draw per relay waiting there).  With a drawer always waiting with q <= b
 * bytes, the bucket starting empty and b >= r * 1 ns,
 *     released(t0, t1) >= r * (t1 - t0 - 1 ns) - q.
 * Tokens never exceed b however long the bucket idles: no catch-up burst.
 * r <= RATE_MAX and b <= BURST_MAX keep r * dt inside 128 bits for any dt
 * and k inside int64_t.
 */
#ifndef IPRELAY_BUCKET_H
#define IPRELAY_BUCKET_H

#include <stddef.h>
#include <stdint.h>

#define NS_PER_SEC	1000000000ULL
#define RATE_MAX	(1ULL << 40)	/* bytes/s, about 1.1 TB/s */
#define BURST_MAX	(1ULL << 40)	/* bytes */
#define CHUNK_MAX	(256U * 1024U)	/* bytes: the largest quantum ever drawn */

struct bucket {
	uint64_t rate_Bps;	/* bytes per second; 0 = unlimited */
	uint64_t burst_B;	/* bytes: most tokens the bucket can hold */
	int64_t tokens_B;	/* bytes; negative = reserved ahead of refill */
	uint64_t frac_nB;	/* nanobytes of a partly refilled byte, < 1e9 */
	uint64_t stamp_ns;	/* CLOCK_MONOTONIC ns of the last settle */
};

uint64_t
bucket_default_burst(uint64_t rate_Bps);

void
bucket_init(struct bucket *bucket, uint64_t rate_Bps, uint64_t burst_B,
    uint64_t now_ns);

void
bucket_settle(struct bucket *bucket, uint64_t now_ns);

void
bucket_reconfigure(struct bucket *bucket, uint64_t rate_Bps,
    uint64_t burst_B, uint64_t now_ns);

uint64_t
bucket_ready_ns(const struct bucket *bucket);

uint64_t
bucket_quantum(uint64_t rate_Bps, uint64_t burst_B, uint32_t nconns);

uint64_t
bucket_draw(struct bucket *const levels[], size_t nlevels, uint64_t want_B,
    uint64_t now_ns, uint64_t *release_ns);

#endif
