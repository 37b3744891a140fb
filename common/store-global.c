/*
 * Global limits in the store (store.h, "Global limits"): the rate a
 * global limit's bucket runs at (share while leased or held, then the
 * offline policy), the switch between them applied by whoever touches the
 * bucket first (a relay's draw, the refiller's tick), at the exact instant
 * the lease or hold ended, and shaperd's writes of leases and holds.
 */
#include <string.h>

#include "store-impl.h"

const char *
global_state_name(enum global_state state)
{
	switch (state) {
	case GLOBAL_LEASED: return "leased";
	case GLOBAL_HELD: return "held";
	case GLOBAL_AT_FLOOR: return "floor";
	case GLOBAL_IS_CLOSED: return "closed";
	case GLOBAL_IS_OPEN: return "open";
	}
	return "?";
}

static enum global_state
state_at(uint32_t offline, const struct global_live *live, uint64_t now_ns)
{
	if (live->lease_until_ns > now_ns)
		return GLOBAL_LEASED;
	if (live->hold_until_ns > now_ns)
		return GLOBAL_HELD;
	switch (offline) {
	case GLOBAL_CLOSED: return GLOBAL_IS_CLOSED;
	case GLOBAL_OPEN: return GLOBAL_IS_OPEN;
	default: return GLOBAL_AT_FLOOR;
	}
}

/* A share of 0 on a rated direction is "nothing", but a bucket of rate 0
 * is unlimited: the least a rated bucket can do is 1 byte/s.  hosts is
 * what the floor divides by (global_floor_hosts); with none known the
 * floor cannot be had without risking the whole global rate on every
 * host, so the host admits nothing unleased, as closed would. */
static uint64_t
rate_of(const struct global_copy *copy, const struct global_live *live,
    int dir, enum global_state state, uint32_t hosts)
{
	uint64_t global_Bps = copy->rate_Bps[dir], rate_Bps;

	if (global_Bps == 0)
		return 0;	/* no global rate this way */
	switch (state) {
	case GLOBAL_LEASED:
	case GLOBAL_HELD:
		rate_Bps = live->share_Bps[dir];
		break;
	case GLOBAL_AT_FLOOR:
		rate_Bps = copy->floor_Bps[dir] ? copy->floor_Bps[dir] :
		    hosts ? global_Bps / hosts : 1;
		break;
	case GLOBAL_IS_OPEN:
		return 0;
	default:
		rate_Bps = 1;
		break;
	}
	if (rate_Bps > global_Bps)
		rate_Bps = global_Bps;
	return rate_Bps ? rate_Bps : 1;
}

static uint32_t
max_hosts(uint32_t a, uint32_t b)
{
	return a > b ? a : b;
}

/* The larger count is the smaller floor: every host at its floor stays
 * within the global rate as long as no more hosts run than counted. */
uint32_t
global_floor_hosts(const struct limit_cfg *cfg, const struct global_live *live)
{
	return max_hosts(max_hosts(cfg->hosts, cfg->hosts_seen),
	    live ? live->nhosts : 0);
}

int
global_floor_unknown(const struct limit_cfg *cfg)
{
	int dir;

	if (!cfg->global || cfg->offline != GLOBAL_FLOOR ||
	    cfg->hosts || cfg->hosts_seen)
		return 0;
	for (dir = 0; dir < 2; dir++)
		if (cfg->rate_Bps[dir] && cfg->floor_Bps[dir] == 0)
			return 1;
	return 0;
}

/* The burst scales with the share, so the hosts' bursts add up to the
 * global one; 0 (the default, a tenth of the rate) stays 0. */
static uint64_t
burst_of(const struct global_copy *copy, int dir, uint64_t rate_Bps)
{
	unsigned __int128 scaled;

	if (copy->burst_B == 0 || rate_Bps == 0 || copy->rate_Bps[dir] == 0)
		return 0;
	scaled = (unsigned __int128)copy->burst_B * rate_Bps /
	    copy->rate_Bps[dir];
	return scaled == 0 ? 1 : scaled > BURST_MAX ? BURST_MAX :
	    (uint64_t)scaled;
}

static void
copy_cfg(struct global_copy *copy, const struct limit_cfg *cfg)
{
	memset(copy, 0, sizeof(*copy));
	if (!cfg->global)
		return;
	copy->global = 1;
	copy->offline = cfg->offline;
	copy->rate_Bps[0] = cfg->rate_Bps[0];
	copy->rate_Bps[1] = cfg->rate_Bps[1];
	copy->burst_B = cfg->burst_B;
	copy->floor_Bps[0] = cfg->floor_Bps[0];
	copy->floor_Bps[1] = cfg->floor_Bps[1];
}

void
global_copy_cfg(struct bucket_rec *rec, const struct limit_cfg *cfg)
{
	copy_cfg(&rec->gcopy, cfg);
	rec->hosts = cfg->global ? global_floor_hosts(cfg, NULL) : 0;
}

uint64_t
global_rate_at(const struct limit_cfg *cfg, const struct global_live *live,
    int dir, uint64_t now_ns, enum global_state *state)
{
	struct global_copy copy;

	copy_cfg(&copy, cfg);
	*state = state_at(copy.offline, live, now_ns);
	return rate_of(&copy, live, dir, *state,
	    global_floor_hosts(cfg, live));
}

void
global_settle(struct bucket_rec *rec, uint64_t now_ns)
{
	const struct global_live *live = &rec->global;
	enum global_state state;
	struct bucket *bucket;
	uint64_t rate_Bps, burst_B, end_ns, at_ns;
	int dir;

	if (!rec->gcopy.global)
		return;
	state = state_at(rec->gcopy.offline, live, now_ns);
	end_ns = live->lease_until_ns > live->hold_until_ns ?
	    live->lease_until_ns : live->hold_until_ns;
	for (dir = 0; dir < 2; dir++) {
		bucket = &rec->bucket[dir];
		rate_Bps = rate_of(&rec->gcopy, live, dir, state,
		    max_hosts(rec->hosts, live->nhosts));
		burst_B = burst_of(&rec->gcopy, dir, rate_Bps);
		if (bucket->rate_Bps == rate_Bps &&
		    bucket->burst_B == (burst_B ? burst_B :
		    bucket_default_burst(rate_Bps)))
			continue;
		/* The share ran until the lease (or hold) ended: the
		 * bucket refilled at it until then, at the policy's rate
		 * after. */
		at_ns = now_ns;
		if (state >= GLOBAL_AT_FLOOR && end_ns <= now_ns)
			at_ns = end_ns > bucket->stamp_ns ? end_ns :
			    bucket->stamp_ns;
		if (at_ns < bucket->stamp_ns)
			at_ns = bucket->stamp_ns;
		bucket_reconfigure(bucket, rate_Bps, burst_B,
		    bucket_debt_max(rate_Bps, burst_B ? burst_B :
		    bucket_default_burst(rate_Bps), rec->nconns), at_ns);
	}
	rec->global.state = state;
}

void
chain_global_settle(struct chain *chain, uint64_t now_ns)
{
	size_t level;

	for (level = 0; level < chain->depth; level++)
		global_settle(&chain->recs[level], now_ns);
}

/* The host counts Redis gave, kept in the configuration when they
 * changed (rare: a host came or went, set --hosts on some host). */
static int
lease_hosts_changed(struct limit_cfg *cfg, const struct global_lease *lease)
{
	int changed = 0;

	if (lease->nhosts && lease->nhosts <= GLOBAL_HOSTS_MAX &&
	    lease->nhosts != cfg->hosts_seen) {
		cfg->hosts_seen = lease->nhosts;
		changed = 1;
	}
	if (lease->hosts_set && lease->hosts_set <= GLOBAL_HOSTS_MAX &&
	    lease->hosts_set != cfg->hosts) {
		cfg->hosts = lease->hosts_set;
		changed = 1;
	}
	return changed;
}

/* Rates and burst set on another host, cached in the configuration too
 * (synced): the live copy is made from it again after a crash, and the
 * next copy of the configuration would undo a change made in the live
 * store alone.  Rare: only when Redis's version changes. */
static int
lease_cache_config(struct store *store, const struct global_lease *leases,
    size_t nleases)
{
	MDB_txn *txn = NULL;
	const struct global_lease *lease;
	struct limit_rec limit;
	MDB_val key, value;
	size_t index, changed = 0;
	int rc, dir, this_changed;

	if ((rc = mdb_txn_begin(store->cfg_env, NULL, 0, &txn)))
		return rc;
	for (index = 0; index < nleases; index++) {
		lease = &leases[index];
		if (!limit_name_valid(lease->name) ||
		    get_limit_in(txn, store->cfg_limits, lease->name, &limit) ||
		    !limit.cfg.global)
			continue;
		this_changed = 0;
		for (dir = 0; dir < 2; dir++)
			if (lease->rate_Bps[dir] <= RATE_MAX &&
			    lease->rate_Bps[dir] != limit.cfg.rate_Bps[dir]) {
				limit.cfg.rate_Bps[dir] = lease->rate_Bps[dir];
				this_changed = 1;
			}
		if (lease->burst_B <= BURST_MAX &&
		    lease->burst_B != limit.cfg.burst_B) {
			limit.cfg.burst_B = lease->burst_B;
			this_changed = 1;
		}
		if (lease_hosts_changed(&limit.cfg, lease))
			this_changed = 1;
		if (!this_changed)
			continue;
		key = name_key(lease->name);
		value.mv_size = limit_rec_size(&limit);
		value.mv_data = &limit;
		if ((rc = mdb_put(txn, store->cfg_limits, &key, &value, 0)))
			goto abort;
		changed++;
	}
	if (changed == 0) {
		mdb_txn_abort(txn);
		return 0;
	}
	return config_commit(store, txn);
abort:
	mdb_txn_abort(txn);
	return rc;
}

int
store_global_lease(struct store *store, const struct global_lease *leases,
    size_t nleases)
{
	MDB_txn *txn = NULL;
	struct limit_rec limit;
	struct bucket_rec bucket;
	const struct global_lease *lease;
	MDB_val key, value;
	uint64_t now_ns;
	size_t index;
	int rc, dir, cfg_changed, any_changed = 0;

	if ((rc = mdb_txn_begin(store->env, NULL, 0, &txn)))
		return rc;
	now_ns = monotonic_ns();	/* under the write lock */
	for (index = 0; index < nleases; index++) {
		lease = &leases[index];
		if (!limit_name_valid(lease->name))
			continue;
		rc = get_limit(store, txn, lease->name, &limit);
		if (rc == STORE_ENOLIMIT)
			continue;
		if (rc)
			goto abort;
		if (!limit.cfg.global)
			continue;
		if ((rc = get_bucket(store, txn, lease->name, &bucket)))
			goto abort;
		/* First the switch a lapsed lease made, at its instant. */
		global_settle(&bucket, now_ns);
		cfg_changed = 0;
		for (dir = 0; dir < 2; dir++)
			if (lease->rate_Bps[dir] <= RATE_MAX &&
			    lease->rate_Bps[dir] != limit.cfg.rate_Bps[dir]) {
				limit.cfg.rate_Bps[dir] = lease->rate_Bps[dir];
				cfg_changed = 1;
			}
		if (lease->burst_B <= BURST_MAX &&
		    lease->burst_B != limit.cfg.burst_B) {
			limit.cfg.burst_B = lease->burst_B;
			cfg_changed = 1;
		}
		if (lease_hosts_changed(&limit.cfg, lease))
			cfg_changed = 1;
		if (cfg_changed) {
			/* Set on another host: cached here, so that this
			 * host can restore Redis's copy if Redis loses it;
			 * the host count so that a floor is known after a
			 * restart without Redis. */
			key = name_key(lease->name);
			value.mv_size = limit_rec_size(&limit);
			value.mv_data = &limit;
			if ((rc = mdb_put(txn, store->limits, &key, &value,
			    0)))
				goto abort;
			global_copy_cfg(&bucket, &limit.cfg);
			any_changed = 1;
		}
		for (dir = 0; dir < 2; dir++)
			bucket.global.share_Bps[dir] =
			    lease->share_Bps[dir] > RATE_MAX ? RATE_MAX :
			    lease->share_Bps[dir];
		bucket.global.lease_until_ns = lease->lease_until_ns;
		bucket.global.hold_until_ns = 0;
		bucket.global.nhosts = lease->nhosts;
		bucket.global.version = lease->version;
		bucket.global.leased_unix_ns = realtime_ns();
		global_settle(&bucket, now_ns);
		if ((rc = put_bucket(store, txn, lease->name, &bucket)))
			goto abort;
	}
	if ((rc = txn_commit(store, txn)))
		return rc;
	return any_changed ? lease_cache_config(store, leases, nleases) : 0;
abort:
	mdb_txn_abort(txn);
	return rc;
}

/* Every global limit's bucket: visit(rec, limit) may change the live
 * state; the bucket is settled through it and written back. */
static int
foreach_global(struct store *store, uint64_t until_ns, int release)
{
	MDB_txn *txn = NULL;
	MDB_cursor *cursor = NULL;
	struct bucket_rec bucket;
	struct limit_rec limit;
	char name[LIMIT_NAME_MAX + 1];
	MDB_val key, value;
	uint64_t now_ns, grace_ns, hold_ns;
	int rc;

	if ((rc = mdb_txn_begin(store->env, NULL, 0, &txn)))
		return rc;
	now_ns = monotonic_ns();
	if ((rc = mdb_cursor_open(txn, store->buckets, &cursor)))
		goto abort;
	for (rc = mdb_cursor_get(cursor, &key, &value, MDB_FIRST); rc == 0;
	    rc = mdb_cursor_get(cursor, &key, &value, MDB_NEXT)) {
		if ((rc = name_from_key(&key, name)) ||
		    (rc = decode_bucket(&value, &bucket)))
			goto abort;
		if (!bucket.gcopy.global || bucket.global.lease_until_ns == 0)
			continue;
		if ((rc = get_limit(store, txn, name, &limit)))
			goto abort;
		global_settle(&bucket, now_ns);
		if (release) {
			if (bucket.global.lease_until_ns > now_ns)
				bucket.global.lease_until_ns = now_ns;
			bucket.global.hold_until_ns = 0;
		} else {
			if (limit.cfg.grace_ms == GLOBAL_GRACE_NONE)
				continue;
			grace_ns = (uint64_t)(limit.cfg.grace_ms ?
			    limit.cfg.grace_ms : GLOBAL_GRACE_DEFAULT_MS) *
			    1000000;
			hold_ns = bucket.global.lease_until_ns + grace_ns;
			if (hold_ns > until_ns)
				hold_ns = until_ns;
			if (hold_ns <= bucket.global.hold_until_ns ||
			    hold_ns <= now_ns)
				continue;
			bucket.global.hold_until_ns = hold_ns;
		}
		global_settle(&bucket, now_ns);
		value.mv_size = bucket_rec_size(&bucket);
		value.mv_data = &bucket;
		if ((rc = mdb_cursor_put(cursor, &key, &value, MDB_CURRENT)))
			goto abort;
	}
	if (rc != MDB_NOTFOUND)
		goto abort;
	mdb_cursor_close(cursor);
	return txn_commit(store, txn);
abort:
	if (cursor)
		mdb_cursor_close(cursor);
	mdb_txn_abort(txn);
	return rc;
}

int
store_global_hold(struct store *store, uint64_t until_ns)
{
	return foreach_global(store, until_ns, 0);
}

int
store_global_release(struct store *store)
{
	return foreach_global(store, 0, 1);
}
