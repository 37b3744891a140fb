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
 * A change of rate (bucket_reconfigure) keeps the time owed, not the bytes:
 * a debt D at rate r becomes D * r' / r at r', at most the level's debt
 * cap at the new setting.  Draws granted before the change keep their
 * release times, and the next draw queues right behind them: after a cut
 * it waits no longer than they do (at most the new cap's time, d' / r');
 * after a raise the new rate starts when they are out, so every window
 * still passes at most b' + r' * dt.
 * r <= RATE_MAX and b <= BURST_MAX keep r * dt inside 128 bits for any dt
 * and k inside int64_t.
 *
 * Bounded debt (bucket_draw_capped): each level has a debt cap
 * d >= max(b, q).  A draw is refused when it would leave its bottleneck
 * owing more than that level's cap, k - q < -d: nothing is taken from any
 * level, and the draw would fit from
 *     T = the first whole nanosecond at which the bottleneck's k >= q - d.
 * So a level that sets release times never owes more than d, and a draw it
 * grants is released at most (d + 1 ns * r) / r after it was made, however
 * many relays draw at once.  The cap for N relays on a level
 * (bucket_debt_max) is
 *     ring = min(N * 1 ms, 2 s)
 *     d = max(b, min(r * ring, BURST_MAX), N)
 * and with the quantum below, N relays each holding one draw owe at most
 * N * q <= d bytes, so in steady state no draw is refused; refusals cover
 * only quanta sized before N grew.
 *
 * Quantum for N relays on a level (bucket_quantum):
 *     period = max(clamp(N * 2 ms, 20 ms, 100 ms), ring)
 *     q = min(max(r * period / N, min(r, 128)), b, d / N, CHUNK_MAX)
 * The d / N term lets every relay hold one draw inside the cap.  While
 * r * ring <= b (up to 100 relays with the default burst b = r / 10) that
 * is one burst; past it, a round of the ring: the limit's relays then draw
 * r / q = N / ring = 1000 times a second together instead of 10 * N (each
 * draw is a write transaction under the store's one lock), unless b or
 * CHUNK_MAX makes q smaller.
 *
 * Borrowing up to a ceiling (bucket_draw_ceil), HTB-like.  A level i of a
 * chain (0 = the relay's own limit, n - 1 = the top) has its rate bucket
 * R_i and may have a ceiling bucket C_i (rate c_i >= r_i, or c_i = 0 for
 * no bound of its own); a level with C_i and a parent above it in the
 * chain may borrow.  "X covers q at t": X settled at t holds k >= q, i.e.
 * X is ready at t even after q is taken (a bucket of rate 0 always
 * covers).  A draw of q bytes at time t is, in this order:
 *   guaranteed now:  every R_i and C_i covers q.  Charge them all;
 *                    release at t.
 *   borrowed:        every level either owns (R_i and C_i cover q: charge
 *                    both) or borrows (it may borrow, R_i does not cover q
 *                    and C_i does: charge C_i alone).  Release at t.  So a
 *                    borrow takes only tokens idle now on every level
 *                    above it: it never reserves ahead, and never delays a
 *                    guaranteed draw queued on an ancestor (nobody is
 *                    queued there when it is taken).
 *   guaranteed, queued: bucket_draw_capped() on [R_0, C_0, R_1, C_1, ...]
 *                    (every R_i and C_i charged, reserving ahead), when
 *                        Tg = max over those buckets of first(X, q)
 *                    is no later than
 *                        Tb = max over levels of first(C_i, q) if level i
 *                             may borrow, else max(first(R_i, q),
 *                             first(C_i, q)),
 *                    with first(X, q) the first whole ns at which X
 *                    covers q, or when an ancestor has a draw queued:
 *                    on some level i > 0 a bucket the borrow needs
 *                    (C_i if it may borrow, else R_i and C_i) holds
 *                    k < 0.  Otherwise refused (0 bytes, nothing
 *                    charged), to come back at Tb > t, the soonest a
 *                    borrow could fit if nobody else drew.  (Refusing
 *                    beside a queue of guaranteed draws would cost this
 *                    draw its place in it, and so its guarantee.)
 * q is clamped to the bursts of the buckets each choice charges (and Tg,
 * Tb use the q of their choice): for the guaranteed draws every R_i and
 * C_i, for the borrow every C_i and the R_i of levels that may not
 * borrow.  Every bucket, R_i and C_i alike, is
 * charged only by draws released no earlier than its own ready time after
 * the charge (a borrow: at t, with k - q >= 0), so the contract above,
 *     released(t0, t1) <= b + r * (t1 - t0 + 1 ns) (+ held(t0)),
 * holds on each, with C_i counting every byte of level i's subtree (c_i
 * * t bounds it: the ceiling) and R_i the bytes it passed within its rate
 * (r_i * t bounds them: the guarantee the ancestors' rates reserve).
 * Without any C_i this is bucket_draw_capped() exactly.
 */
#ifndef IPRELAY_BUCKET_H
#define IPRELAY_BUCKET_H

#include <stddef.h>
#include <stdint.h>

#define NS_PER_SEC	1000000000ULL
#define RATE_MAX	(1ULL << 40)	/* bytes/s, about 1.1 TB/s */
#define BURST_MAX	(1ULL << 40)	/* bytes */
#define CHUNK_MAX	(256U * 1024U)	/* bytes: the largest quantum ever drawn */
#define BUCKET_LEVELS_MAX	64	/* levels of a chain bucket_draw_ceil takes */

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

/* A change of rate or burst at now_ns: settled at the old rate, then a
 * debt is rescaled to the same time at the new rate (debt * new / old,
 * rounded up) and clamped to debt_max_B (at least the new burst: pass the
 * level's bucket_debt_max() at the new setting); tokens clamp to a lower
 * burst.  To unlimited forgives the debt; from unlimited starts empty. */
void
bucket_reconfigure(struct bucket *bucket, uint64_t rate_Bps,
    uint64_t burst_B, uint64_t debt_max_B, uint64_t now_ns);

uint64_t
bucket_ready_ns(const struct bucket *bucket);

uint64_t
bucket_quantum(uint64_t rate_Bps, uint64_t burst_B, uint32_t nconns);

/* The most a level with N relays may owe, d above (bytes, >= burst_B). */
uint64_t
bucket_debt_max(uint64_t rate_Bps, uint64_t burst_B, uint32_t nconns);

uint64_t
bucket_draw(struct bucket *const levels[], size_t nlevels, uint64_t want_B,
    uint64_t now_ns, uint64_t *release_ns);

/* bucket_draw() with a debt cap per level (debt_max_B[level], bytes, at
 * least that level's burst).  Returns the bytes granted; 0 with want_B > 0
 * means refused, and then *release_ns is the time T at which the draw
 * would fit.  *bottleneck is the level that set *release_ns. */
uint64_t
bucket_draw_capped(struct bucket *const levels[], const uint64_t debt_max_B[],
    size_t nlevels, uint64_t want_B, uint64_t now_ns, uint64_t *release_ns,
    size_t *bottleneck);

/* bucket_draw_capped() on a chain whose levels may borrow up to a ceiling
 * (contract above).  ceils[level]: NULL for a level with no ceiling, else
 * its ceiling bucket (rate 0: no bound of its own); ceils may be NULL.  A
 * ceiling on the last level has nothing above it to borrow from: it is
 * charged, never borrowed through.  borrowed[level] (out, may be NULL) is
 * 1 where the level borrowed (its rate bucket was not charged).  *neck
 * (may be NULL) is the bucket that set *release_ns, *bottleneck its level.
 * nlevels <= BUCKET_LEVELS_MAX. */
uint64_t
bucket_draw_ceil(struct bucket *const levels[], struct bucket *const ceils[],
    const uint64_t debt_max_B[], size_t nlevels, uint64_t want_B,
    uint64_t now_ns, uint64_t *release_ns, size_t *bottleneck,
    const struct bucket **neck, int borrowed[]);

/* A refused drawer's place in the retry spread: slot (0 .. nconns - 1) of
 * nconns equal slots covering the time the level takes to refill its debt
 * cap, debt_max_B / rate_Bps.  Returns the ns to add to T, so refused
 * relays come back one by one instead of all at T. */
uint64_t
bucket_retry_spread_ns(uint64_t rate_Bps, uint64_t debt_max_B, uint32_t nconns,
    uint32_t slot);

/*
 * The sparse lane (docs/design.md, "Interactive connections"): a draw a
 * relay marks sparse is released at once, charged to every rated level
 * like any draw (the bulk relays' later reservations start later), as
 * long as no level would then owe more than its debt cap plus its sparse
 * reserve, S = burst / SPARSE_BURST_DIV (at least 1 byte); otherwise it
 * queues as usual.  A relay marks a draw sparse while its own credit
 * (struct sparse_credit), refilled at share / SPARSE_SHARE_DIV up to one
 * quantum and spent by every byte it draws, covers it: a relay drawing at
 * its fair share or more never has one quantum of credit.
 */
#define SPARSE_BURST_DIV	4
#define SPARSE_SHARE_DIV	4
/* What sparse_credit_allows() asks of the store: nothing, the lane (the
 * credit covers the draw), or a new relay's pool (below). */
#define LANE_NONE		0
#define LANE_SPARSE		1
#define LANE_FRESH		2

struct sparse_credit {
	uint64_t credit_nB;	/* nanobytes, at most one quantum */
	uint64_t stamp_ns;	/* CLOCK_MONOTONIC ns of the last refill */
	int fresh;		/* nothing drawn yet: may ask the pool */
};

/*
 * A level's pool of new relays' credit (docs/design.md, "New
 * connections"), per direction, in the store: a relay's first draw, which
 * has no credit of its own, may take the lane when every rated level's
 * pool holds it.  The pool holds S (bucket_sparse_reserve_B()) and regrows
 * at rate / FRESH_REGROW_DIV, so relays starting together share S, and a
 * stream of them at most S + rate / FRESH_REGROW_DIV * dt.  used_B == 0
 * is a full pool (stamp_ns then 0: the record's older layout holds it).
 */
#define FRESH_REGROW_DIV	16

struct fresh_pool {
	uint64_t used_B;	/* taken and not yet regrown */
	uint64_t stamp_ns;	/* CLOCK_MONOTONIC ns used_B is as of */
};

/* The lane's part of a draw (store_reserve_lane()): LANE_SPARSE is
 * bucket_draw_sparse(); LANE_FRESH the same, for a draw every rated level
 * would not release at once anyway, when every rated level's pool
 * (pools[level], NULL for none: no fresh lane) holds want_B, which it
 * takes.  Returns want_B, released at now_ns, or 0: nothing taken, queue
 * it (bucket_draw_ceil()). */
uint64_t
bucket_draw_lane(struct bucket *const levels[], struct fresh_pool *const pools[],
    const uint64_t debt_max_B[], size_t nlevels, uint64_t want_B,
    uint64_t now_ns, int lane);

/* Regrow to now_ns; then, when the pool holds want_B, take it (1). */
int
fresh_pool_take(struct fresh_pool *pool, uint64_t rate_Bps, uint64_t burst_B,
    uint64_t want_B, uint64_t now_ns);

/* Give back what fresh_pool_take() took (the lane then refused it). */
void
fresh_pool_give_back(struct fresh_pool *pool, uint64_t want_B);

/* S: what sparse draws may owe past a level's debt cap (bytes). */
uint64_t
bucket_sparse_reserve_B(uint64_t burst_B);

/* Release want_B at now_ns, charged to every rated level, if no level
 * then owes more than debt_max_B[level] + S; returns want_B, or 0 (nothing
 * taken: queue it with bucket_draw_ceil()). */
uint64_t
bucket_draw_sparse(struct bucket *const levels[], const uint64_t debt_max_B[],
    size_t nlevels, uint64_t want_B, uint64_t now_ns);

/* Start with quantum_B of credit (the relay starts with none: see
 * become_shaped() in relay/conn-shape.c), as a relay that has drawn
 * nothing yet. */
void
sparse_credit_start(struct sparse_credit *credit, uint64_t quantum_B,
    uint64_t now_ns);

/* Refill to now_ns at share_Bps / SPARSE_SHARE_DIV, up to quantum_B; then
 * LANE_SPARSE when the credit covers want_B, else LANE_FRESH while
 * nothing was drawn yet, else LANE_NONE. */
int
sparse_credit_allows(struct sparse_credit *credit, uint64_t share_Bps,
    uint64_t quantum_B, uint64_t want_B, uint64_t now_ns);

/* Every byte drawn, sparse or queued, spends credit (down to 0); any
 * draw (or refusal) ends the relay's freshness. */
void
sparse_credit_spend(struct sparse_credit *credit, uint64_t bytes);

#endif
