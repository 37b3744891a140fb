/*
 * The connection registry: registering and unregistering relays, looking
 * them up and listing them, dropping the records of relays seen to exit,
 * reaping dead ones, and recounting the relays on every limit.
 */
#include <errno.h>
#include <lmdb.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "store-impl.h"

/* Zero every bucket's nconns and count the live relays again, each on its
 * limit and every ancestor: the only way counts change besides register
 * and unregister, so drift after a kill -9 or a re-parenting heals. */
int
recount(struct store *store, MDB_txn *txn)
{
	MDB_cursor *cursor = NULL;
	MDB_val key, value;
	struct bucket_rec rec;
	struct conn_rec conn;
	struct chain *chain;
	size_t level;
	int rc;

	chain = store->chain;
	rc = mdb_cursor_open(txn, store->buckets, &cursor);
	if (rc)
		goto out;
	for (rc = mdb_cursor_get(cursor, &key, &value, MDB_FIRST); rc == 0;
	    rc = mdb_cursor_get(cursor, &key, &value, MDB_NEXT)) {
		if ((rc = decode_bucket(&value, &rec)))
			goto out;
		if (rec.nconns == 0)
			continue;
		rec.nconns = 0;
		value.mv_size = bucket_rec_size(&rec);
		value.mv_data = &rec;
		if ((rc = mdb_cursor_put(cursor, &key, &value, MDB_CURRENT)))
			goto out;
	}
	if (rc != MDB_NOTFOUND)
		goto out;
	mdb_cursor_close(cursor);
	cursor = NULL;
	rc = mdb_cursor_open(txn, store->conns, &cursor);
	if (rc)
		goto out;
	for (rc = mdb_cursor_get(cursor, &key, &value, MDB_FIRST); rc == 0;
	    rc = mdb_cursor_get(cursor, &key, &value, MDB_NEXT)) {
		if ((rc = decode_conn(&value, &conn)))
			goto out;
		if ((rc = load_chain(store, txn, conn.info.limit, chain)))
			goto out;
		for (level = 0; level < chain->depth; level++)
			chain->recs[level].nconns++;
		if ((rc = save_chain(store, txn, chain)))
			goto out;
	}
	if (rc == MDB_NOTFOUND)
		rc = 0;
out:
	if (cursor)
		mdb_cursor_close(cursor);
	return rc;
}

/* The id the next registration tries first (1 in a new store). */
static int
next_conn_get(struct store *store, MDB_txn *txn, uint32_t *next_id)
{
	size_t got;
	int rc;

	rc = meta_get_txn(store, txn, "next_conn", next_id, sizeof(*next_id),
	    &got);
	if (rc == MDB_NOTFOUND || (rc == 0 && got != sizeof(*next_id))) {
		*next_id = 1;
		return 0;
	}
	return rc;
}

int
store_conn_register(struct store *store, struct conn_info *info)
{
	int shaped[2];
	uint64_t quantum_B[2];
	size_t levels;

	return store_conn_register_shaped(store, info, shaped, quantum_B,
	    &levels);
}

static int
register_capped_once(struct store *store, struct conn_info *info,
    int shaped[2], uint64_t quantum_B[2], size_t *levels,
    struct cap_refusal *refusal)
{
	MDB_txn *txn = NULL;
	struct conn_rec rec = { .magic = CONN_MAGIC };
	struct conn_rec existing;
	struct chain *chain;
	MDB_val key = { 9, "next_conn" }, value;
	uint32_t next_id = 1, tries;
	size_t level;
	int rc, dir;

	shaped[DIR_UP] = shaped[DIR_DOWN] = 0;
	*levels = 0;
	if (!limit_name_valid(info->limit) && info->limit[0])
		return EINVAL;
	chain = store->chain;
	if ((rc = mdb_txn_begin(store->env, NULL, 0, &txn)))
		goto out;
	/* Caps first, in this transaction: no other registration can come
	 * between the count and this relay's record.  A refusal commits
	 * only the refusing limit's count of refusals, and stands even when
	 * that count cannot be written (a full filesystem). */
	if ((rc = load_chain(store, txn, info->limit, chain)))
		goto abort;
	rc = caps_check(store, txn, chain, info, refusal);
	if (rc == STORE_ECAPS || rc == STORE_ECAPSRC) {
		(void)txn_commit(store, txn);
		return rc;
	}
	if (rc)
		goto abort;
	if ((rc = next_conn_get(store, txn, &next_id)))
		goto abort;
	for (tries = 0; tries < CONN_ID_MAX; tries++) {
		if (next_id == 0 || next_id > CONN_ID_MAX)
			next_id = 1;
		rc = get_conn(store, txn, next_id, &existing);
		if (rc == STORE_ENOCONN)
			break;
		if (rc && rc != STORE_EDAMAGED)
			goto abort;
		next_id++;
	}
	if (tries == CONN_ID_MAX) {
		rc = STORE_EFULL;
		goto abort;
	}
	info->id = next_id;
	info->start_unix_ns = info->last_unix_ns = realtime_ns();
	rec.info = *info;
	if ((rc = put_conn(store, txn, &rec)))
		goto abort;
	next_id++;
	value.mv_size = sizeof(next_id);
	value.mv_data = &next_id;
	if ((rc = mdb_put(txn, store->meta, &key, &value, 0)))
		goto abort;
	chain_global_settle(chain, monotonic_ns());
	for (level = 0; level < chain->depth; level++)
		chain->recs[level].nconns++;
	/* Counting this relay first sizes its first quantum for everyone
	 * on the limit including itself. */
	for (dir = 0; dir < 2; dir++)
		quantum_B[dir] = chain_quantum(chain, dir, &shaped[dir]);
	if ((rc = save_chain(store, txn, chain)))
		goto abort;
	*levels = chain->depth;
	rc = txn_commit(store, txn);
	goto out;
abort:
	mdb_txn_abort(txn);
out:
	return rc;
}

/* A live store found damaged is made again (store_recover) and the
 * registration tried once more. */
int
store_conn_register_capped(struct store *store, struct conn_info *info,
    int shaped[2], uint64_t quantum_B[2], size_t *levels,
    struct cap_refusal *refusal)
{
	int rc;

	rc = register_capped_once(store, info, shaped, quantum_B, levels,
	    refusal);
	if (rc && store_recover(store, rc) == 0)
		rc = register_capped_once(store, info, shaped, quantum_B,
		    levels, refusal);
	return rc;
}

int
store_conn_register_shaped(struct store *store, struct conn_info *info,
    int shaped[2], uint64_t quantum_B[2], size_t *levels)
{
	return store_conn_register_capped(store, info, shaped, quantum_B,
	    levels, NULL);
}

/* Remove conn's record and take it off its chain's relay counts, inside
 * the caller's write transaction. */
static int
drop_conn(struct store *store, MDB_txn *txn, const struct conn_rec *rec)
{
	struct chain *chain = store->chain;
	unsigned char buf[4];
	MDB_val key = conn_key(rec->info.id, buf);
	size_t level;
	int rc;

	if ((rc = mdb_del(txn, store->conns, &key, NULL)))
		return rc;
	if ((rc = load_chain(store, txn, rec->info.limit, chain)))
		return rc;
	for (level = 0; level < chain->depth; level++)
		if (chain->recs[level].nconns)
			chain->recs[level].nconns--;
	return save_chain(store, txn, chain);
}

int
store_conn_unregister(struct store *store, uint32_t id)
{
	MDB_txn *txn = NULL;
	struct conn_rec rec;
	int rc;

	if ((rc = mdb_txn_begin(store->env, NULL, 0, &txn)))
		return rc;
	if ((rc = get_conn(store, txn, id, &rec)) ||
	    (rc = drop_conn(store, txn, &rec))) {
		mdb_txn_abort(txn);
		return rc;
	}
	return txn_commit(store, txn);
}

/* Whether exits[] names a record still there: the common case, a relay
 * that unregistered itself before it exited, costs a read transaction and
 * not a turn at the write lock the relays draw under. */
static int
any_exited_listed(struct store *store, const struct conn_exit *exits,
    size_t nexits, int *listed)
{
	MDB_txn *txn = NULL;
	struct conn_rec rec;
	size_t index;
	int rc = 0;

	*listed = 0;
	if ((rc = mdb_txn_begin(store->env, NULL, MDB_RDONLY, &txn)))
		return rc;
	for (index = 0; index < nexits && !*listed; index++) {
		rc = get_conn(store, txn, exits[index].id, &rec);
		if (rc == STORE_ENOCONN)
			rc = 0;
		else if (rc)
			break;
		else
			*listed = rec.info.pid == exits[index].pid;
	}
	mdb_txn_abort(txn);
	return rc;
}

int
store_conn_drop_exited(struct store *store, const struct conn_exit *exits,
    size_t nexits, unsigned *dropped)
{
	MDB_txn *txn = NULL;
	struct conn_rec rec;
	size_t index;
	int rc, listed;

	*dropped = 0;
	if ((rc = any_exited_listed(store, exits, nexits, &listed)) || !listed)
		return rc;
	if ((rc = mdb_txn_begin(store->env, NULL, 0, &txn)))
		return rc;
	for (index = 0; index < nexits; index++) {
		rc = get_conn(store, txn, exits[index].id, &rec);
		if (rc == STORE_ENOCONN)
			continue;
		/* A damaged record is left to store_reap. */
		if (rc == STORE_EDAMAGED)
			continue;
		if (rc)
			goto abort;
		/* The id went to a newer relay after the old one's record
		 * was removed: not ours to drop. */
		if (rec.info.pid != exits[index].pid)
			continue;
		if ((rc = drop_conn(store, txn, &rec)))
			goto abort;
		(*dropped)++;
	}
	if (*dropped == 0) {
		mdb_txn_abort(txn);
		return 0;
	}
	return txn_commit(store, txn);
abort:
	mdb_txn_abort(txn);
	*dropped = 0;
	return rc;
}

int
store_conn_get(struct store *store, uint32_t id, struct conn_info *info)
{
	MDB_txn *txn = NULL;
	struct conn_rec rec;
	int rc;

	if ((rc = mdb_txn_begin(store->env, NULL, MDB_RDONLY, &txn)))
		return rc;
	rc = get_conn(store, txn, id, &rec);
	if (rc == 0)
		*info = rec.info;
	mdb_txn_abort(txn);
	return rc;
}

int
store_conn_foreach_new(struct store *store, uint32_t *since,
    conn_visit_fn visit, void *ctx)
{
	MDB_txn *txn = NULL;
	MDB_cursor *cursor = NULL;
	struct conn_rec rec;
	unsigned char buf[4];
	MDB_val key, value;
	uint32_t next_id = 1, end_id;
	int rc, wrap_to_first;

	if ((rc = mdb_txn_begin(store->env, NULL, MDB_RDONLY, &txn)))
		return rc;
	if ((rc = next_conn_get(store, txn, &next_id)))
		goto out;
	if (*since == next_id) {
		rc = 0;
		goto out;
	}
	if ((rc = mdb_cursor_open(txn, store->conns, &cursor)))
		goto out;
	/* Ids are handed out in rising order from next_conn and wrap past
	 * CONN_ID_MAX: the new ones are [since, next_id), perhaps wrapped
	 * round.  since 0 asks for every record. */
	wrap_to_first = *since > next_id;
	if (*since == 0) {
		end_id = UINT32_MAX;
		rc = mdb_cursor_get(cursor, &key, &value, MDB_FIRST);
	} else {
		end_id = wrap_to_first ? UINT32_MAX : next_id;
		key = conn_key(*since, buf);
		rc = mdb_cursor_get(cursor, &key, &value, MDB_SET_RANGE);
	}
	for (;; rc = mdb_cursor_get(cursor, &key, &value, MDB_NEXT)) {
		if (rc == MDB_NOTFOUND && wrap_to_first) {
			wrap_to_first = 0;
			end_id = next_id;
			rc = mdb_cursor_get(cursor, &key, &value, MDB_FIRST);
		}
		if (rc)
			break;
		if (conn_id_of(&key) >= end_id) {
			rc = MDB_NOTFOUND;
			break;
		}
		/* A damaged record is store_reap's to remove. */
		if (decode_conn(&value, &rec) == 0 &&
		    (rc = visit(ctx, &rec.info)))
			break;
	}
	mdb_cursor_close(cursor);
	if (rc == MDB_NOTFOUND) {
		rc = 0;
		*since = next_id;
	}
out:
	mdb_txn_abort(txn);
	return rc;
}

/* Up to FOREACH_BATCH records copied out in one short read transaction,
 * then visited with no transaction open: a visitor that writes to a pipe
 * nobody reads (`iprelay-limit conns | less`) or to a slow client
 * (`show stats`) holds no snapshot, so the relays' draws keep reusing
 * pages.  A snapshot held open makes every draw take fresh pages: 3000
 * records and one stalled pager filled the 256 MiB map in 9278 draws. */
int
store_conn_foreach(struct store *store, conn_visit_fn visit, void *ctx)
{
	MDB_txn *txn = NULL;
	MDB_cursor *cursor = NULL;
	struct conn_rec rec;
	struct conn_info *batch;
	unsigned char buf[4];
	MDB_val key, value;
	uint64_t next_id = 0;
	size_t count, index;
	int rc, more;

	batch = malloc(FOREACH_BATCH * sizeof(*batch));
	if (batch == NULL)
		return ENOMEM;
	do {
		count = 0;
		if ((rc = mdb_txn_begin(store->env, NULL, MDB_RDONLY, &txn)))
			break;
		if ((rc = mdb_cursor_open(txn, store->conns, &cursor))) {
			mdb_txn_abort(txn);
			break;
		}
		key = conn_key((uint32_t)next_id, buf);
		for (rc = mdb_cursor_get(cursor, &key, &value, MDB_SET_RANGE);
		    rc == 0 && count < FOREACH_BATCH;
		    rc = mdb_cursor_get(cursor, &key, &value, MDB_NEXT)) {
			/* The next batch starts past this key. */
			if (key.mv_size != 4) {
				rc = STORE_EDAMAGED;
				break;
			}
			if ((rc = decode_conn(&value, &rec)))
				break;
			batch[count++] = rec.info;
			next_id = (uint64_t)conn_id_of(&key) + 1;
		}
		/* Stopped with a record in hand: more may follow. */
		more = rc == 0 && next_id <= UINT32_MAX;
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

int
store_reap(struct store *store, conn_alive_fn alive, void *ctx,
    unsigned *reaped)
{
	MDB_txn *txn = NULL;
	MDB_cursor *cursor = NULL;
	struct conn_rec conn;
	MDB_val key, value;
	int rc;

	*reaped = 0;
	if ((rc = mdb_txn_begin(store->env, NULL, 0, &txn)))
		return rc;
	if ((rc = mdb_cursor_open(txn, store->conns, &cursor)))
		goto abort;
	for (rc = mdb_cursor_get(cursor, &key, &value, MDB_FIRST); rc == 0;
	    rc = mdb_cursor_get(cursor, &key, &value, MDB_NEXT)) {
		/* A damaged record is reaped too: it can belong to no one. */
		if (decode_conn(&value, &conn) == 0 && alive(ctx, &conn.info))
			continue;
		if ((rc = mdb_cursor_del(cursor, 0)))
			goto abort;
		(*reaped)++;
	}
	if (rc != MDB_NOTFOUND)
		goto abort;
	mdb_cursor_close(cursor);
	cursor = NULL;
	if (*reaped == 0) {
		mdb_txn_abort(txn);
		return 0;
	}
	if ((rc = recount(store, txn)))
		goto abort;
	return txn_commit(store, txn);
abort:
	if (cursor)
		mdb_cursor_close(cursor);
	mdb_txn_abort(txn);
	return rc;
}
