/*
 * Live draws: a relay's draw from its limit and every ancestor in one
 * write transaction (store_reserve), unshaped accounting, the refiller's
 * tick, and the reset of the live state at a new boot.
 */
#include <fcntl.h>
#include <errno.h>
#include <lmdb.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "store.h"
#include "store-impl.h"

/* A ceiling counts where the level has a parent to borrow from. */
static int
may_borrow(const struct chain *chain, size_t level, int dir)
{
	return chain->recs[level].ceil_Bps[dir] != CEIL_NONE &&
	    level + 1 < chain->depth;
}

uint64_t
chain_quantum(const struct chain *chain, int dir, int *shaped)
{
	uint64_t quantum_B = CHUNK_MAX, level_B;
	const struct bucket *bucket;
	size_t level;

	*shaped = 0;
	for (level = 0; level < chain->depth; level++) {
		bucket = &chain->recs[level].bucket[dir];
		if (bucket->rate_Bps == 0)
			continue;
		*shaped = 1;
		/* A level that may borrow passes up to its ceiling: quanta
		 * sized for that, or the wake-ups grow with c / r. */
		if (may_borrow(chain, level, dir)) {
			bucket = &chain->recs[level].ceil[dir];
			if (bucket->rate_Bps == 0)
				continue;
		}
		level_B = bucket_quantum(bucket->rate_Bps, bucket->burst_B,
		    chain->recs[level].nconns);
		if (level_B < quantum_B)
			quantum_B = level_B;
	}
	return quantum_B;
}

/* The most a level may owe (bytes), for the live relays in its subtree:
 * with quanta of at most that / N, N relays each holding a draw stay
 * inside it (bucket.h). */
static uint64_t
level_debt_max(const struct bucket_rec *rec, int dir)
{
	return bucket_debt_max(rec->bucket[dir].rate_Bps,
	    rec->bucket[dir].burst_B, rec->nconns);
}

/* A refused relay's slot in the retry spread: its id, turned by T where
 * the chain may borrow.  Borrowers refused together all come back for the
 * same idle tokens, and the first slot takes them: with fixed slots the
 * same relay would win every round (measured: 32 relays borrowing on one
 * limit, the best got 24 times the mean).  Turned by T, which every relay
 * refused in one round shares, the slots stay distinct and the winner
 * changes from round to round. */
static uint32_t
retry_slot(const struct chain *chain, int dir, uint32_t id, uint64_t at_ns)
{
	size_t level;

	for (level = 0; level < chain->depth; level++)
		if (may_borrow(chain, level, dir))
			return id + (uint32_t)((at_ns >> 16) * 0x9e3779b1U >> 7);
	return id;
}

static uint64_t
saturating_add(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static void
store_info_back(struct bucket_rec *bucket, const struct limit_info *info)
{
	int dir;

	bucket->stats_unix_ns = info->stats_unix_ns;
	for (dir = 0; dir < 2; dir++) {
		bucket->rate_1s_Bps[dir] = info->rate_1s_Bps[dir];
		bucket->rate_5s_Bps[dir] = info->rate_5s_Bps[dir];
		bucket->rate_60s_Bps[dir] = info->rate_60s_Bps[dir];
	}
}

static int
count_on_conn(struct store *store, MDB_txn *txn, uint32_t id,
    const uint64_t moved_B[2])
{
	struct conn_rec rec;
	int rc;

	if (id == 0 || (moved_B[0] == 0 && moved_B[1] == 0))
		return 0;
	rc = get_conn(store, txn, id, &rec);
	if (rc == STORE_ENOCONN)
		return 0;	/* reaped while we ran: count nothing */
	if (rc)
		return rc;
	rec.info.bytes[0] += moved_B[0];
	rec.info.bytes[1] += moved_B[1];
	rec.info.last_unix_ns = realtime_ns();
	return put_conn(store, txn, &rec);
}

/* The fair share of the chain: the least over its rated levels of rate /
 * relays (the relay's sparse credit refills from it). */
static uint64_t
chain_share(const struct chain *chain, int dir)
{
	uint64_t share_Bps = 0, level_Bps;
	size_t level;

	for (level = 0; level < chain->depth; level++) {
		if (chain->recs[level].bucket[dir].rate_Bps == 0)
			continue;
		level_Bps = chain->recs[level].bucket[dir].rate_Bps /
		    (chain->recs[level].nconns ? chain->recs[level].nconns : 1);
		if (share_Bps == 0 || level_Bps < share_Bps)
			share_Bps = level_Bps ? level_Bps : 1;
	}
	return share_Bps;
}

int
store_reserve(struct store *store, uint32_t id, const char *limit, int dir,
    uint64_t want_B, struct grant *grant)
{
	return store_reserve_lane(store, id, limit, dir, want_B, 0, grant);
}

static int
store_reserve_lane_once(struct store *store, uint32_t id, const char *limit,
    int dir, uint64_t want_B, int sparse, struct grant *grant)
{
	MDB_txn *txn = NULL;
	struct chain *chain;
	struct bucket *levels[CHAIN_MAX], *ceils[CHAIN_MAX];
	struct fresh_pool *pools[CHAIN_MAX];
	const struct bucket *neck = NULL;
	uint64_t debt_max_B[CHAIN_MAX];
	uint64_t moved_B[2] = { 0, 0 };
	uint64_t now_ns;
	size_t level, bottleneck = 0;
	int rc, borrowed[CHAIN_MAX];

	chain = store->chain;
	if ((rc = mdb_txn_begin(store->env, NULL, 0, &txn)))
		goto out;
	/* Read the clock holding the write lock: a time read before
	 * waiting for it could be older than a stamp another writer just
	 * set, and settling backwards would grant that time twice. */
	now_ns = monotonic_ns();
	if ((rc = load_chain(store, txn, limit, chain)))
		goto abort;
	chain_global_settle(chain, now_ns);
	for (level = 0; level < chain->depth; level++) {
		levels[level] = &chain->recs[level].bucket[dir];
		ceils[level] = chain->recs[level].ceil_Bps[dir] != CEIL_NONE ?
		    &chain->recs[level].ceil[dir] : NULL;
		pools[level] = &chain->recs[level].fresh[dir];
		debt_max_B[level] = level_debt_max(&chain->recs[level], dir);
		borrowed[level] = 0;
	}
	grant->quantum_B = chain_quantum(chain, dir, &grant->shaped);
	grant->share_Bps = chain_share(chain, dir);
	grant->sparse = 0;
	for (level = 0; sparse && level < chain->depth; level++)
		if (ceils[level])
			sparse = LANE_NONE;
	if (grant->shaped && sparse && bucket_draw_lane(levels, pools,
	    debt_max_B, chain->depth, want_B, now_ns, sparse) == want_B) {
		grant->bytes = want_B;
		grant->release_ns = now_ns;
		grant->sparse = 1;
	} else if (grant->shaped) {
		grant->bytes = bucket_draw_ceil(levels, ceils, debt_max_B,
		    chain->depth, want_B, now_ns, &grant->release_ns,
		    &bottleneck, &neck, borrowed);
		/* Refused past the debt cap: come back in this relay's own
		 * slot after T, not with every other refused relay at T. */
		if (grant->bytes == 0 && want_B > 0)
			grant->release_ns = saturating_add(grant->release_ns,
			    bucket_retry_spread_ns(neck->rate_Bps,
			    debt_max_B[bottleneck],
			    chain->recs[bottleneck].nconns,
			    retry_slot(chain, dir, id, grant->release_ns)));
	} else {
		grant->bytes = want_B;
		grant->release_ns = now_ns;
	}
	/* Demand for a global level: what it held back as the bottleneck. */
	if (grant->shaped && grant->bytes && grant->release_ns > now_ns &&
	    chain->recs[bottleneck].gcopy.global)
		chain->recs[bottleneck].global.waited_B[dir] += grant->bytes;
	for (level = 0; level < chain->depth; level++) {
		chain->recs[level].total_B[dir] += grant->bytes;
		if (borrowed[level])
			chain->recs[level].borrowed_B[dir] += grant->bytes;
	}
	if ((rc = save_chain(store, txn, chain)))
		goto abort;
	moved_B[dir] = grant->bytes;
	if ((rc = count_on_conn(store, txn, id, moved_B)))
		goto abort;
	rc = txn_commit(store, txn);
	goto out;
abort:
	mdb_txn_abort(txn);
out:
	return rc;
}

int
store_reserve_lane(struct store *store, uint32_t id, const char *limit,
    int dir, uint64_t want_B, int sparse, struct grant *grant)
{
	int rc;

	rc = store_reserve_lane_once(store, id, limit, dir, want_B,
	    sparse, grant);
	if (rc && store_recover(store, rc) == 0)
		rc = store_reserve_lane_once(store, id, limit, dir, want_B,
	    sparse, grant);
	return rc;
}

static int
store_account_once(struct store *store, uint32_t id, const char *limit,
    const uint64_t moved_B[2], int shaped[2], uint64_t quantum_B[2])
{
	MDB_txn *txn = NULL;
	struct chain *chain;
	size_t level;
	int rc, dir;

	chain = store->chain;
	if ((rc = mdb_txn_begin(store->env, NULL, 0, &txn)))
		goto out;
	if ((rc = load_chain(store, txn, limit, chain)))
		goto abort;
	chain_global_settle(chain, monotonic_ns());
	for (dir = 0; dir < 2; dir++) {
		quantum_B[dir] = chain_quantum(chain, dir, &shaped[dir]);
		for (level = 0; level < chain->depth; level++)
			chain->recs[level].total_B[dir] += moved_B[dir];
	}
	if ((moved_B[0] || moved_B[1]) &&
	    (rc = save_chain(store, txn, chain)))
		goto abort;
	if ((rc = count_on_conn(store, txn, id, moved_B)))
		goto abort;
	rc = txn_commit(store, txn);
	goto out;
abort:
	mdb_txn_abort(txn);
out:
	return rc;
}

int
store_account(struct store *store, uint32_t id, const char *limit,
    const uint64_t moved_B[2], int shaped[2], uint64_t quantum_B[2])
{
	int rc;

	rc = store_account_once(store, id, limit, moved_B,
	    shaped, quantum_B);
	if (rc && store_recover(store, rc) == 0)
		rc = store_account_once(store, id, limit, moved_B,
	    shaped, quantum_B);
	return rc;
}

static int
store_tick_once(struct store *store, bucket_tick_fn bucket_tick,
    conn_tick_fn conn_tick, void *ctx)
{
	MDB_txn *txn = NULL;
	MDB_cursor *cursor = NULL;
	struct bucket_rec bucket;
	struct limit_rec limit;
	struct conn_rec conn;
	struct limit_info info;
	char name[LIMIT_NAME_MAX + 1];
	MDB_val key, value;
	uint64_t now_ns;
	int rc, dir;

	if ((rc = mdb_txn_begin(store->env, NULL, 0, &txn)))
		return rc;
	/* The clock under the write lock (see store_reserve). */
	now_ns = monotonic_ns();
	if ((rc = mdb_cursor_open(txn, store->buckets, &cursor)))
		goto abort;
	for (rc = mdb_cursor_get(cursor, &key, &value, MDB_FIRST); rc == 0;
	    rc = mdb_cursor_get(cursor, &key, &value, MDB_NEXT)) {
		if ((rc = name_from_key(&key, name)) ||
		    (rc = decode_bucket(&value, &bucket)))
			goto abort;
		if ((rc = get_limit(store, txn, name, &limit)))
			goto abort;
		global_settle(&bucket, now_ns);
		for (dir = 0; dir < 2; dir++) {
			bucket_settle(&bucket.bucket[dir], now_ns);
			bucket_settle(&bucket.ceil[dir], now_ns);
		}
		if (bucket_tick) {
			fill_info(&info, name, &limit, &bucket);
			bucket_tick(ctx, &info);
			store_info_back(&bucket, &info);
		}
		value.mv_size = bucket_rec_size(&bucket);
		value.mv_data = &bucket;
		if ((rc = mdb_cursor_put(cursor, &key, &value, MDB_CURRENT)))
			goto abort;
	}
	if (rc != MDB_NOTFOUND)
		goto abort;
	mdb_cursor_close(cursor);
	cursor = NULL;
	if (conn_tick) {
		if ((rc = mdb_cursor_open(txn, store->conns, &cursor)))
			goto abort;
		for (rc = mdb_cursor_get(cursor, &key, &value, MDB_FIRST);
		    rc == 0;
		    rc = mdb_cursor_get(cursor, &key, &value, MDB_NEXT)) {
			if ((rc = decode_conn(&value, &conn)))
				goto abort;
			uint64_t before[2] = { conn.info.rate_5s_Bps[0],
			    conn.info.rate_5s_Bps[1] };
			conn_tick(ctx, &conn.info);
			if (before[0] == conn.info.rate_5s_Bps[0] &&
			    before[1] == conn.info.rate_5s_Bps[1])
				continue;
			value.mv_size = sizeof(conn);
			value.mv_data = &conn;
			if ((rc = mdb_cursor_put(cursor, &key, &value,
			    MDB_CURRENT)))
				goto abort;
		}
		if (rc != MDB_NOTFOUND)
			goto abort;
		mdb_cursor_close(cursor);
		cursor = NULL;
	}
	return txn_commit(store, txn);
abort:
	if (cursor)
		mdb_cursor_close(cursor);
	mdb_txn_abort(txn);
	return rc;
}

int
store_tick(struct store *store, bucket_tick_fn bucket_tick,
    conn_tick_fn conn_tick, void *ctx)
{
	int rc;

	rc = store_tick_once(store, bucket_tick, conn_tick,
	    ctx);
	if (rc && store_recover(store, rc) == 0)
		rc = store_tick_once(store, bucket_tick, conn_tick,
	    ctx);
	return rc;
}

/* Seconds two readings of the boot instant (CLOCK_REALTIME less
 * CLOCK_BOOTTIME) of one boot may differ by: the clock slewed or stepped
 * by NTP a little since.  A boot that lasted less than this is taken for
 * the same boot when no boot id can be read (then /run, tmpfs, is gone
 * anyway after a reboot for the system's live store). */
#define BOOT_AT_SLACK_S	120

/* The kernel's boot id, "" when it cannot be read: systemd's ProcSubset=pid
 * hides /proc/sys (shaperd.service). */
static void
read_boot_id(char *boot_id, size_t size)
{
	ssize_t len;
	int fd;

	boot_id[0] = '\0';
	fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	len = read(fd, boot_id, size - 1);
	close(fd);
	if (len < 0)
		len = 0;
	boot_id[len] = '\0';
	boot_id[strcspn(boot_id, "\n")] = '\0';
}

/* The instant this boot began, whole seconds of the realtime clock: what
 * tells boots apart where no boot id can be read. */
static int64_t
boot_at_s(void)
{
	struct timespec real, boot;

	clock_gettime(CLOCK_REALTIME, &real);
	clock_gettime(CLOCK_BOOTTIME, &boot);
	return (int64_t)real.tv_sec - (int64_t)boot.tv_sec;
}

/* Whether the store's records were written in this boot: by the boot ids
 * when both are known, else by the boot instants.  Neither known (a store
 * of a version that stored an empty id): not this boot. */
static int
same_boot(struct store *store, MDB_txn *txn, const char *boot_id,
    int64_t at_s)
{
	char stored[64];
	int64_t stored_at;
	size_t got = 0;

	if (boot_id[0] && meta_get_txn(store, txn, "boot_id", stored,
	    sizeof(stored), &got) == 0 && got > 0)
		return got == strlen(boot_id) &&
		    memcmp(stored, boot_id, got) == 0;
	if (meta_get_txn(store, txn, "boot_at", &stored_at, sizeof(stored_at),
	    &got) || got != sizeof(stored_at))
		return 0;
	return stored_at - at_s <= BOOT_AT_SLACK_S &&
	    at_s - stored_at <= BOOT_AT_SLACK_S;
}

/* The store's records are this boot's, in the caller's write transaction.
 * Never an empty id: one that cannot be read is not stored (an empty one
 * would match every later boot that cannot read it either); the instant
 * always is. */
static int
boot_stamp(struct store *store, MDB_txn *txn, const char *boot_id,
    int64_t at_s)
{
	MDB_val key = name_key("boot_id"), value;
	int rc;

	if (boot_id[0]) {
		value.mv_size = strlen(boot_id);
		value.mv_data = (void *)boot_id;
		rc = mdb_put(txn, store->meta, &key, &value, 0);
	} else {
		rc = mdb_del(txn, store->meta, &key, NULL);
		if (rc == MDB_NOTFOUND)
			rc = 0;
	}
	if (rc)
		return rc;
	key = name_key("boot_at");
	value.mv_size = sizeof(at_s);
	value.mv_data = &at_s;
	return mdb_put(txn, store->meta, &key, &value, 0);
}

int
store_boot_stamp(struct store *store)
{
	MDB_txn *txn = NULL;
	char boot_id[64];
	int64_t stored_at;
	size_t got = 0;
	int rc;

	read_boot_id(boot_id, sizeof(boot_id));
	if ((rc = mdb_txn_begin(store->env, NULL, 0, &txn)))
		return rc;
	/* Stamped already (by another process that made it with us, or
	 * by a refiller): that stamp stands. */
	if (meta_get_txn(store, txn, "boot_at", &stored_at,
	    sizeof(stored_at), &got) == 0 && got == sizeof(stored_at)) {
		mdb_txn_abort(txn);
		return 0;
	}
	if ((rc = boot_stamp(store, txn, boot_id, boot_at_s()))) {
		mdb_txn_abort(txn);
		return rc;
	}
	return txn_commit(store, txn);
}

/* Only boot ids decide here, never the boot instants: a relay of a unit
 * that cannot read its boot id (ProcSubset=pid) would take an NTP step of
 * a few minutes for a reboot and drop the records of every relay running.
 * The refiller, once, still decides by the instant where it must.  A read
 * transaction sees that the store is this boot's, as it is for every open
 * but the first after a reboot: relays pay no write lock for it. */
int
store_boot_follow(struct store *store, int *was_reset)
{
	MDB_txn *txn = NULL;
	char boot_id[64], stored[64];
	size_t got = 0;
	int rc, other;

	*was_reset = 0;
	read_boot_id(boot_id, sizeof(boot_id));
	if (!boot_id[0])
		return 0;
	if ((rc = mdb_txn_begin(store->env, NULL, MDB_RDONLY, &txn)))
		return rc;
	other = meta_get_txn(store, txn, "boot_id", stored, sizeof(stored),
	    &got) == 0 && got > 0 && (got != strlen(boot_id) ||
	    memcmp(stored, boot_id, got) != 0);
	mdb_txn_abort(txn);
	return other ? store_boot_reset(store, was_reset) : 0;
}

int
store_boot_reset(struct store *store, int *was_reset)
{
	MDB_txn *txn = NULL;
	MDB_cursor *cursor = NULL;
	MDB_val key, value;
	struct bucket_rec bucket;
	char boot_id[64];
	int64_t at_s;
	uint64_t now_ns;
	int rc, dir;

	*was_reset = 0;
	read_boot_id(boot_id, sizeof(boot_id));
	at_s = boot_at_s();
	if ((rc = mdb_txn_begin(store->env, NULL, 0, &txn)))
		return rc;
	/* The clock under the write lock (see store_reserve). */
	now_ns = monotonic_ns();
	if (same_boot(store, txn, boot_id, at_s)) {
		mdb_txn_abort(txn);
		return 0;
	}
	/* A new boot: no relay of the old one lives, and its clock is gone. */
	if ((rc = mdb_drop(txn, store->conns, 0)))
		goto abort;
	if ((rc = mdb_cursor_open(txn, store->buckets, &cursor)))
		goto abort;
	for (rc = mdb_cursor_get(cursor, &key, &value, MDB_FIRST); rc == 0;
	    rc = mdb_cursor_get(cursor, &key, &value, MDB_NEXT)) {
		if ((rc = decode_bucket(&value, &bucket)))
			goto abort;
		bucket.nconns = 0;
		for (dir = 0; dir < 2; dir++) {
			bucket_init(&bucket.bucket[dir],
			    bucket.bucket[dir].rate_Bps,
			    bucket.bucket[dir].burst_B, now_ns);
			bucket_init(&bucket.ceil[dir],
			    bucket.ceil[dir].rate_Bps,
			    bucket.ceil[dir].burst_B, now_ns);
		}
		value.mv_size = bucket_rec_size(&bucket);
		value.mv_data = &bucket;
		if ((rc = mdb_cursor_put(cursor, &key, &value, MDB_CURRENT)))
			goto abort;
	}
	if (rc != MDB_NOTFOUND)
		goto abort;
	mdb_cursor_close(cursor);
	cursor = NULL;
	if ((rc = boot_stamp(store, txn, boot_id, at_s)))
		goto abort;
	if ((rc = txn_commit(store, txn)))
		return rc;
	*was_reset = 1;
	log_line(LOG_NOTICE, "the live state %s/%s was of a past boot: its "
	    "buckets emptied and its connection records dropped",
	    store->run.path, STORE_FILE);
	return 0;
abort:
	if (cursor)
		mdb_cursor_close(cursor);
	mdb_txn_abort(txn);
	return rc;
}
