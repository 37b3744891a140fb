/*
 * The store's records: decoding (a value of the wrong size or with a bad
 * field is damage), the sizes they are written at, their keys, the
 * get and put of each kind inside a caller's transaction, and the chain
 * of a limit and its ancestors.
 */
#include <errno.h>
#include <lmdb.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "store.h"
#include "store-impl.h"

/* Record decoding: a value of the wrong size or with a bad field is damage,
 * never something to read as if it were right. */
static int
string_in(const char *field, size_t size)
{
	return memchr(field, '\0', size) != NULL;
}

int
ceil_valid(uint64_t ceil_Bps)
{
	return ceil_Bps == CEIL_UNLIMITED || ceil_Bps <= RATE_MAX;
}

int
decode_limit(const MDB_val *value, struct limit_rec *rec)
{
	if (value->mv_size != sizeof(*rec) &&
	    value->mv_size != LIMIT_REC_V4_SIZE &&
	    value->mv_size != LIMIT_REC_V3_SIZE &&
	    value->mv_size != LIMIT_REC_V2_SIZE &&
	    value->mv_size != LIMIT_REC_V1_SIZE)
		return STORE_EDAMAGED;
	memset(rec, 0, sizeof(*rec));
	memcpy(rec, value->mv_data, value->mv_size);
	if (rec->magic != LIMIT_MAGIC ||
	    !string_in(rec->cfg.parent, sizeof(rec->cfg.parent)) ||
	    (rec->cfg.parent[0] && !limit_name_valid(rec->cfg.parent)) ||
	    rec->cfg.rate_Bps[0] > RATE_MAX || rec->cfg.rate_Bps[1] > RATE_MAX ||
	    rec->cfg.burst_B > BURST_MAX ||
	    !ceil_valid(rec->cfg.ceil_Bps[0]) ||
	    !ceil_valid(rec->cfg.ceil_Bps[1]) || rec->cfg.global > 1 ||
	    rec->cfg.offline > GLOBAL_OPEN ||
	    (rec->cfg.grace_ms > GLOBAL_GRACE_MAX_MS &&
	    rec->cfg.grace_ms != GLOBAL_GRACE_NONE) ||
	    rec->cfg.floor_Bps[0] > RATE_MAX || rec->cfg.floor_Bps[1] > RATE_MAX ||
	    rec->cfg.max_conns > CAPS_MAX ||
	    rec->cfg.max_conns_per_source > CAPS_MAX ||
	    rec->cfg.hosts > GLOBAL_HOSTS_MAX ||
	    rec->cfg.hosts_seen > GLOBAL_HOSTS_MAX)
		return STORE_EDAMAGED;
	return 0;
}

/* The oldest layout that holds what is set, so that older programs keep
 * reading a state dir until a newer field is used. */
size_t
limit_rec_size(const struct limit_rec *rec)
{
	if (rec->cfg.hosts_seen)
		return sizeof(*rec);
	if (rec->cfg.max_conns_per_source || rec->cfg.hosts)
		return LIMIT_REC_V4_SIZE;
	if (rec->cfg.global || rec->cfg.offline || rec->cfg.grace_ms ||
	    rec->cfg.floor_Bps[0] || rec->cfg.floor_Bps[1] ||
	    rec->cfg.max_conns)
		return LIMIT_REC_V3_SIZE;
	return rec->cfg.ceil_Bps[0] == CEIL_NONE &&
	    rec->cfg.ceil_Bps[1] == CEIL_NONE ? LIMIT_REC_V1_SIZE :
	    LIMIT_REC_V2_SIZE;
}

static int
bucket_valid(const struct bucket *bucket)
{
	return bucket->rate_Bps <= RATE_MAX && bucket->burst_B <= BURST_MAX &&
	    bucket->frac_nB < NS_PER_SEC &&
	    bucket->tokens_B <= (int64_t)BURST_MAX &&
	    bucket->tokens_B >= -(int64_t)BURST_MAX;
}

int
decode_bucket(const MDB_val *value, struct bucket_rec *rec)
{
	int dir;

	if (value->mv_size != sizeof(*rec) &&
	    value->mv_size != BUCKET_REC_V5_SIZE &&
	    value->mv_size != BUCKET_REC_V4_SIZE &&
	    value->mv_size != BUCKET_REC_V3_SIZE &&
	    value->mv_size != BUCKET_REC_V2_SIZE &&
	    value->mv_size != BUCKET_REC_V1_SIZE)
		return STORE_EDAMAGED;
	memset(rec, 0, sizeof(*rec));
	memcpy(rec, value->mv_data, value->mv_size);
	if (rec->magic != BUCKET_MAGIC ||
	    !string_in(rec->parent, sizeof(rec->parent)) ||
	    (rec->parent[0] && !limit_name_valid(rec->parent)))
		return STORE_EDAMAGED;
	for (dir = 0; dir < 2; dir++)
		if (!bucket_valid(&rec->bucket[dir]) ||
		    !bucket_valid(&rec->ceil[dir]) ||
		    !ceil_valid(rec->ceil_Bps[dir]) ||
		    rec->gcopy.rate_Bps[dir] > RATE_MAX ||
		    rec->gcopy.floor_Bps[dir] > RATE_MAX ||
		    rec->global.share_Bps[dir] > RATE_MAX ||
		    rec->fresh[dir].used_B > BURST_MAX)
			return STORE_EDAMAGED;
	if (rec->gcopy.global > 1 || rec->gcopy.offline > GLOBAL_OPEN ||
	    rec->gcopy.burst_B > BURST_MAX || rec->hosts > GLOBAL_HOSTS_MAX)
		return STORE_EDAMAGED;
	return 0;
}

/* The first layout while the limit has no ceiling and never borrowed. */
size_t
bucket_rec_size(const struct bucket_rec *rec)
{
	if (rec->hosts)
		return sizeof(*rec);
	if (rec->refused[0] || rec->refused[1])
		return BUCKET_REC_V5_SIZE;
	if (rec->fresh[0].used_B || rec->fresh[1].used_B)
		return BUCKET_REC_V4_SIZE;
	if (rec->gcopy.global || rec->global.lease_until_ns)
		return BUCKET_REC_V3_SIZE;
	return rec->ceil_Bps[0] == CEIL_NONE && rec->ceil_Bps[1] == CEIL_NONE &&
	    rec->borrowed_B[0] == 0 && rec->borrowed_B[1] == 0 ?
	    BUCKET_REC_V1_SIZE : BUCKET_REC_V2_SIZE;
}

int
decode_conn(const MDB_val *value, struct conn_rec *rec)
{
	if (value->mv_size != sizeof(*rec))
		return STORE_EDAMAGED;
	memcpy(rec, value->mv_data, sizeof(*rec));
	if (rec->magic != CONN_MAGIC ||
	    rec->info.id == 0 || rec->info.id > CONN_ID_MAX ||
	    !string_in(rec->info.limit, sizeof(rec->info.limit)) ||
	    !string_in(rec->info.peer, sizeof(rec->info.peer)) ||
	    !string_in(rec->info.remote, sizeof(rec->info.remote)) ||
	    (rec->info.limit[0] && !limit_name_valid(rec->info.limit)))
		return STORE_EDAMAGED;
	return 0;
}

int
store_decode_record(int kind, const void *data, size_t size)
{
	/* For the fuzzer and the tests: 0 limit, 1 bucket, 2 conn. */
	MDB_val value = { size, (void *)data };
	union {
		struct limit_rec limit;
		struct bucket_rec bucket;
		struct conn_rec conn;
	} rec;

	switch (kind) {
	case 0: return decode_limit(&value, &rec.limit);
	case 1: return decode_bucket(&value, &rec.bucket);
	case 2: return decode_conn(&value, &rec.conn);
	default: return EINVAL;
	}
}

MDB_val
name_key(const char *name)
{
	MDB_val key = { strlen(name), (void *)name };

	return key;
}

int
name_from_key(const MDB_val *key, char name[LIMIT_NAME_MAX + 1])
{
	if (key->mv_size == 0 || key->mv_size > LIMIT_NAME_MAX)
		return STORE_EDAMAGED;
	memcpy(name, key->mv_data, key->mv_size);
	name[key->mv_size] = '\0';
	return limit_name_valid(name) ? 0 : STORE_EDAMAGED;
}

int
get_bucket(struct store *store, MDB_txn *txn, const char *name,
    struct bucket_rec *rec)
{
	MDB_val key = name_key(name), value;
	int rc;

	rc = mdb_get(txn, store->buckets, &key, &value);
	if (rc == MDB_NOTFOUND)
		return STORE_ENOLIMIT;
	if (rc)
		return rc;
	return decode_bucket(&value, rec);
}

int
put_bucket(struct store *store, MDB_txn *txn, const char *name,
    const struct bucket_rec *rec)
{
	MDB_val key = name_key(name);
	MDB_val value = { bucket_rec_size(rec), (void *)rec };

	return mdb_put(txn, store->buckets, &key, &value, 0);
}

int
get_limit(struct store *store, MDB_txn *txn, const char *name,
    struct limit_rec *rec)
{
	return get_limit_in(txn, store->limits, name, rec);
}

int
get_limit_in(MDB_txn *txn, MDB_dbi dbi, const char *name,
    struct limit_rec *rec)
{
	MDB_val key = name_key(name), value;
	int rc;

	rc = mdb_get(txn, dbi, &key, &value);
	if (rc == MDB_NOTFOUND)
		return STORE_ENOLIMIT;
	if (rc)
		return rc;
	return decode_limit(&value, rec);
}

MDB_val
conn_key(uint32_t id, unsigned char buf[4])
{
	MDB_val key = { 4, buf };

	buf[0] = (unsigned char)(id >> 24);
	buf[1] = (unsigned char)(id >> 16);
	buf[2] = (unsigned char)(id >> 8);
	buf[3] = (unsigned char)id;
	return key;
}

uint32_t
conn_id_of(const MDB_val *key)
{
	const unsigned char *buf = key->mv_data;

	if (key->mv_size != 4)
		return 0;
	return (uint32_t)buf[0] << 24 | (uint32_t)buf[1] << 16 |
	    (uint32_t)buf[2] << 8 | buf[3];
}

int
get_conn(struct store *store, MDB_txn *txn, uint32_t id, struct conn_rec *rec)
{
	unsigned char buf[4];
	MDB_val key = conn_key(id, buf), value;
	int rc;

	rc = mdb_get(txn, store->conns, &key, &value);
	if (rc == MDB_NOTFOUND)
		return STORE_ENOCONN;
	if (rc)
		return rc;
	return decode_conn(&value, rec);
}

int
put_conn(struct store *store, MDB_txn *txn, const struct conn_rec *rec)
{
	unsigned char buf[4];
	MDB_val key = conn_key(rec->info.id, buf);
	MDB_val value = { sizeof(*rec), (void *)rec };

	return mdb_put(txn, store->conns, &key, &value, 0);
}

int
load_chain(struct store *store, MDB_txn *txn, const char *limit,
    struct chain *chain)
{
	const char *name = limit;
	int rc;

	chain->depth = 0;
	while (name && *name && chain->depth < CHAIN_MAX) {
		rc = get_bucket(store, txn, name, &chain->recs[chain->depth]);
		if (rc == STORE_ENOLIMIT)
			break;
		if (rc)
			return rc;
		strcpy(chain->names[chain->depth], name);
		name = chain->recs[chain->depth].parent;
		chain->depth++;
	}
	return 0;
}

int
save_chain(struct store *store, MDB_txn *txn, const struct chain *chain)
{
	size_t level;
	int rc;

	for (level = 0; level < chain->depth; level++) {
		rc = put_bucket(store, txn, chain->names[level],
		    &chain->recs[level]);
		if (rc)
			return rc;
	}
	return 0;
}
