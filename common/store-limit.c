/*
 * Limits: setting, reading, deleting and listing the configuration (what
 * `iprelay-limit set` writes) and the live bucket that goes with it.
 */
#include <errno.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "store-impl.h"

static int
would_cycle(MDB_txn *txn, MDB_dbi limits, const char *name,
    const char *parent)
{
	struct limit_rec rec;
	char cursor[LIMIT_NAME_MAX + 1];
	size_t depth;
	int rc;

	snprintf(cursor, sizeof(cursor), "%s", parent);
	for (depth = 1; cursor[0]; depth++) {
		if (strcmp(cursor, name) == 0)
			return STORE_ECYCLE;
		if (depth >= CHAIN_MAX)
			return STORE_ECYCLE;	/* deeper than we follow */
		rc = get_limit_in(txn, limits, cursor, &rec);
		if (rc == STORE_ENOLIMIT)
			return depth == 1 ? STORE_ENOPARENT : 0;
		if (rc)
			return rc;
		strcpy(cursor, rec.cfg.parent);
	}
	return 0;
}

int
store_limit_put(struct store *store, const char *name,
    const struct limit_cfg *cfg)
{
	return store_limit_update(store, name, cfg, LIMIT_FIELD_ALL, NULL);
}

/* The configuration changes first, in one synced commit; then its live
 * copy (config_sync), in the live store's own transaction. */
int
store_limit_update(struct store *store, const char *name,
    const struct limit_cfg *given, unsigned fields, struct limit_cfg *result)
{
	return store_limit_write(store, name, given, fields, 0, result, NULL);
}

int
store_limit_write(struct store *store, const char *name,
    const struct limit_cfg *given, unsigned fields, unsigned how,
    struct limit_cfg *result, int *created)
{
	MDB_txn *txn = NULL;
	struct limit_rec limit = { .magic = LIMIT_MAGIC };
	struct limit_rec old;
	const struct limit_cfg *cfg = &limit.cfg;
	MDB_val key, value;
	int rc;

	if (!limit_name_valid(name) ||
	    ((fields & LIMIT_FIELD_PARENT) && given->parent[0] &&
	    !limit_name_valid(given->parent)) ||
	    ((fields & LIMIT_FIELD_UP) && given->rate_Bps[DIR_UP] > RATE_MAX) ||
	    ((fields & LIMIT_FIELD_DOWN) &&
	    given->rate_Bps[DIR_DOWN] > RATE_MAX) ||
	    ((fields & LIMIT_FIELD_BURST) && given->burst_B > BURST_MAX) ||
	    ((fields & LIMIT_FIELD_CEIL_UP) &&
	    !ceil_valid(given->ceil_Bps[DIR_UP])) ||
	    ((fields & LIMIT_FIELD_CEIL_DOWN) &&
	    !ceil_valid(given->ceil_Bps[DIR_DOWN])) ||
	    ((fields & LIMIT_FIELD_MAX_CONNS) && given->max_conns > CAPS_MAX) ||
	    ((fields & LIMIT_FIELD_MAX_SOURCE) &&
	    given->max_conns_per_source > CAPS_MAX) ||
	    ((fields & LIMIT_FIELD_HOSTS) && given->hosts > GLOBAL_HOSTS_MAX))
		return EINVAL;
	if (fs_nearly_full(store))
		return ENOSPC;
	if ((rc = mdb_txn_begin(store->cfg_env, NULL, 0, &txn)))
		return rc;
	rc = get_limit_in(txn, store->cfg_limits, name, &old);
	if (rc == 0) {
		limit.cfg = old.cfg;
	} else if (rc != STORE_ENOLIMIT || (how & STORE_LIMIT_NO_CREATE)) {
		goto abort;
	}
	if (created)
		*created = rc == STORE_ENOLIMIT;
	/* Merged here, under the write lock, so that nothing written since
	 * the caller last read the limit is lost. */
	if (fields & LIMIT_FIELD_UP)
		limit.cfg.rate_Bps[DIR_UP] = given->rate_Bps[DIR_UP];
	if (fields & LIMIT_FIELD_DOWN)
		limit.cfg.rate_Bps[DIR_DOWN] = given->rate_Bps[DIR_DOWN];
	if (fields & LIMIT_FIELD_BURST)
		limit.cfg.burst_B = given->burst_B;
	if (fields & LIMIT_FIELD_PARENT)
		memcpy(limit.cfg.parent, given->parent, sizeof(limit.cfg.parent));
	if (fields & LIMIT_FIELD_CEIL_UP)
		limit.cfg.ceil_Bps[DIR_UP] = given->ceil_Bps[DIR_UP];
	if (fields & LIMIT_FIELD_CEIL_DOWN)
		limit.cfg.ceil_Bps[DIR_DOWN] = given->ceil_Bps[DIR_DOWN];
	if (fields & LIMIT_FIELD_GLOBAL)
		limit.cfg.global = given->global ? 1 : 0;
	if (fields & LIMIT_FIELD_OFFLINE)
		limit.cfg.offline = given->offline;
	if (fields & LIMIT_FIELD_GRACE)
		limit.cfg.grace_ms = given->grace_ms;
	if (fields & LIMIT_FIELD_FLOOR) {
		limit.cfg.floor_Bps[DIR_UP] = given->floor_Bps[DIR_UP];
		limit.cfg.floor_Bps[DIR_DOWN] = given->floor_Bps[DIR_DOWN];
	}
	if (fields & LIMIT_FIELD_MAX_CONNS)
		limit.cfg.max_conns = given->max_conns;
	if (fields & LIMIT_FIELD_MAX_SOURCE)
		limit.cfg.max_conns_per_source = given->max_conns_per_source;
	if (fields & LIMIT_FIELD_HOSTS)
		limit.cfg.hosts = given->hosts;
	if (result)
		*result = limit.cfg;
	if ((rc = limit_cfg_check(cfg)))
		goto abort;
	/* Only when the global side is being set: a limit restored from an
	 * older backup keeps working (closed while no count is known). */
	if ((fields & (LIMIT_FIELD_GLOBAL | LIMIT_FIELD_OFFLINE |
	    LIMIT_FIELD_FLOOR | LIMIT_FIELD_HOSTS)) &&
	    global_floor_unknown(cfg)) {
		rc = STORE_ENOHOSTS;
		goto abort;
	}
	if (cfg->parent[0] && (rc = would_cycle(txn, store->cfg_limits, name,
	    cfg->parent)))
		goto abort;
	key = name_key(name);
	value.mv_size = limit_rec_size(&limit);
	value.mv_data = &limit;
	if ((rc = mdb_put(txn, store->cfg_limits, &key, &value, 0)))
		goto abort;
	return config_commit(store, txn);
abort:
	mdb_txn_abort(txn);
	return rc;
}

int
limit_cfg_check(const struct limit_cfg *cfg)
{
	int dir;

	/* Checked on the limit as merged: a rate raised past a ceiling set
	 * earlier is refused as surely as a ceiling set below the rate. */
	for (dir = 0; dir < 2; dir++) {
		if (cfg->ceil_Bps[dir] == CEIL_NONE)
			continue;
		if (cfg->global)
			return STORE_ECEILGLOBAL;
		if (cfg->ceil_Bps[dir] != CEIL_UNLIMITED &&
		    (cfg->rate_Bps[dir] == 0 ||
		    cfg->ceil_Bps[dir] < cfg->rate_Bps[dir]))
			return STORE_ECEILLOW;
		if (!cfg->parent[0])
			return STORE_ECEILTOP;
	}
	return 0;
}

int
limit_apply(struct store *store, MDB_txn *txn, const char *name,
    const MDB_val *record, uint64_t now_ns, int *reparented)
{
	struct limit_rec limit, old;
	struct bucket_rec bucket;
	const struct limit_cfg *cfg = &limit.cfg;
	MDB_val key;
	uint64_t debt_max_B;
	int rc, dir;

	if ((rc = decode_limit(record, &limit)))
		return rc;
	rc = get_limit(store, txn, name, &old);
	*reparented = rc != 0 || strcmp(old.cfg.parent, cfg->parent) != 0;
	rc = get_bucket(store, txn, name, &bucket);
	if (rc == STORE_ENOLIMIT) {
		memset(&bucket, 0, sizeof(bucket));
		bucket.magic = BUCKET_MAGIC;
		for (dir = 0; dir < 2; dir++)
			bucket_init(&bucket.bucket[dir], 0, 0, now_ns);
	} else if (rc)
		return rc;
	/* A global limit's bucket runs at its share or its offline policy
	 * (store-global.c): first the switch a lapsed lease made. */
	global_settle(&bucket, now_ns);
	global_copy_cfg(&bucket, cfg);
	if (!cfg->global)
		memset(&bucket.global, 0, sizeof(bucket.global));
	/* A changed rate or burst applies to the live bucket at once; a
	 * debt keeps its time, at most the level's cap at the new setting
	 * (the cap draws on both buckets use, level_debt_max()). */
	for (dir = 0; dir < 2; dir++) {
		debt_max_B = bucket_debt_max(cfg->rate_Bps[dir], cfg->burst_B ?
		    cfg->burst_B : bucket_default_burst(cfg->rate_Bps[dir]),
		    bucket.nconns);
		if (!cfg->global)
			bucket_reconfigure(&bucket.bucket[dir],
			    cfg->rate_Bps[dir], cfg->burst_B, debt_max_B,
			    now_ns);
		/* The ceiling bucket: rate 0 when there is none or it is
		 * unlimited (ceil_Bps tells which). */
		bucket_reconfigure(&bucket.ceil[dir],
		    cfg->ceil_Bps[dir] == CEIL_UNLIMITED ? 0 : cfg->ceil_Bps[dir],
		    cfg->burst_B, debt_max_B, now_ns);
		bucket.ceil_Bps[dir] = cfg->ceil_Bps[dir];
	}
	global_settle(&bucket, now_ns);
	memcpy(bucket.parent, cfg->parent, sizeof(bucket.parent));
	/* The record as the configuration has it, whole: fields this code
	 * does not know yet are copied all the same. */
	key = name_key(name);
	if ((rc = mdb_put(txn, store->limits, &key, (MDB_val *)record, 0)))
		return rc;
	return put_bucket(store, txn, name, &bucket);
}

void
fill_info(struct limit_info *info, const char *name,
    const struct limit_rec *limit, const struct bucket_rec *bucket)
{
	int dir;

	memset(info, 0, sizeof(*info));
	snprintf(info->name, sizeof(info->name), "%s", name);
	info->cfg = limit->cfg;
	info->nconns = bucket->nconns;
	info->stats_unix_ns = bucket->stats_unix_ns;
	info->global = bucket->global;
	info->refused[0] = bucket->refused[0];
	info->refused[1] = bucket->refused[1];
	for (dir = 0; dir < 2; dir++) {
		info->bucket[dir] = bucket->bucket[dir];
		info->ceil_bucket[dir] = bucket->ceil[dir];
		info->borrowed_B[dir] = bucket->borrowed_B[dir];
		info->total_B[dir] = bucket->total_B[dir];
		info->rate_1s_Bps[dir] = bucket->rate_1s_Bps[dir];
		info->rate_5s_Bps[dir] = bucket->rate_5s_Bps[dir];
		info->rate_60s_Bps[dir] = bucket->rate_60s_Bps[dir];
	}
}

int
store_limit_get(struct store *store, const char *name,
    struct limit_info *info)
{
	MDB_txn *txn = NULL;
	struct limit_rec limit;
	struct bucket_rec bucket;
	int rc;

	if (!limit_name_valid(name))
		return STORE_ENOLIMIT;
	if ((rc = mdb_txn_begin(store->env, NULL, MDB_RDONLY, &txn)))
		return rc;
	if ((rc = get_limit(store, txn, name, &limit)))
		goto out;
	if ((rc = get_bucket(store, txn, name, &bucket)))
		goto out;
	fill_info(info, name, &limit, &bucket);
out:
	mdb_txn_abort(txn);
	return rc;
}

int
store_limit_del(struct store *store, const char *name, uint32_t *nconns)
{
	MDB_txn *txn = NULL;
	MDB_cursor *cursor = NULL;
	struct limit_rec limit;
	struct limit_info info;
	MDB_val key, value;
	int rc;

	*nconns = 0;
	if (!limit_name_valid(name))
		return STORE_ENOLIMIT;
	if (fs_nearly_full(store))
		return ENOSPC;
	if ((rc = mdb_txn_begin(store->cfg_env, NULL, 0, &txn)))
		return rc;
	if ((rc = get_limit_in(txn, store->cfg_limits, name, &limit)))
		goto abort;
	if ((rc = mdb_cursor_open(txn, store->cfg_limits, &cursor)))
		goto abort;
	for (rc = mdb_cursor_get(cursor, &key, &value, MDB_FIRST); rc == 0;
	    rc = mdb_cursor_get(cursor, &key, &value, MDB_NEXT)) {
		if ((rc = decode_limit(&value, &limit)))
			goto abort;
		if (strcmp(limit.cfg.parent, name) == 0) {
			rc = STORE_EHASCHILD;
			goto abort;
		}
	}
	if (rc != MDB_NOTFOUND)
		goto abort;
	mdb_cursor_close(cursor);
	cursor = NULL;
	if (store_limit_get(store, name, &info) == 0)
		*nconns = info.nconns;
	key = name_key(name);
	if ((rc = mdb_del(txn, store->cfg_limits, &key, NULL)))
		goto abort;
	return config_commit(store, txn);
abort:
	if (cursor)
		mdb_cursor_close(cursor);
	mdb_txn_abort(txn);
	return rc;
}

/* Copied out a batch at a time and visited with no transaction open, as
 * store_conn_foreach does (see there why). */
int
store_limit_foreach(struct store *store, limit_visit_fn visit, void *ctx)
{
	MDB_txn *txn = NULL;
	MDB_cursor *cursor = NULL;
	struct limit_rec limit;
	struct bucket_rec bucket;
	struct limit_info *batch;
	char name[LIMIT_NAME_MAX + 1], last[LIMIT_NAME_MAX + 1] = "";
	MDB_val key, value;
	size_t count, index;
	int rc, more;

	batch = malloc(FOREACH_BATCH * sizeof(*batch));
	if (batch == NULL)
		return ENOMEM;
	do {
		count = 0;
		if ((rc = mdb_txn_begin(store->env, NULL, MDB_RDONLY, &txn)))
			break;
		if ((rc = mdb_cursor_open(txn, store->limits, &cursor))) {
			mdb_txn_abort(txn);
			break;
		}
		/* From the first name past the last one visited. */
		if (last[0]) {
			key = name_key(last);
			rc = mdb_cursor_get(cursor, &key, &value,
			    MDB_SET_RANGE);
			if (rc == 0 && key.mv_size == strlen(last) &&
			    memcmp(key.mv_data, last, key.mv_size) == 0)
				rc = mdb_cursor_get(cursor, &key, &value,
				    MDB_NEXT);
		} else
			rc = mdb_cursor_get(cursor, &key, &value, MDB_FIRST);
		for (; rc == 0 && count < FOREACH_BATCH;
		    rc = mdb_cursor_get(cursor, &key, &value, MDB_NEXT)) {
			if ((rc = name_from_key(&key, name)) ||
			    (rc = decode_limit(&value, &limit)) ||
			    (rc = get_bucket(store, txn, name, &bucket)))
				break;
			fill_info(&batch[count++], name, &limit, &bucket);
			memcpy(last, name, sizeof(last));
		}
		more = rc == 0;
		if (rc == MDB_NOTFOUND)
			rc = 0;
		mdb_cursor_close(cursor);
		mdb_txn_abort(txn);
		for (index = 0; index < count && rc == 0; index++)
			rc = visit(ctx, &batch[index]);
	} while (rc == 0 && more);
	free(batch);
	return rc;
}
