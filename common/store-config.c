/*
 * The configuration store: the limits as `iprelay-limit set` writes them
 * (whole struct limit_cfg records), in their own small LMDB environment,
 * STORE_CONFIG_FILE in the state dir, synced on every commit.  The live
 * store (STORE_FILE in the runtime dir, MDB_NOSYNC) holds a copy of them
 * beside the buckets and connections, so that a draw stays one write
 * transaction in one environment.  A change commits here first, then is
 * copied; a live store whose copy is not of this configuration's
 * generation (a writer killed between the two commits, a live store
 * remade, another configuration restored) is brought up to date when it
 * is next opened or written.  Here: opening the configuration, its
 * generation, the copy, and taking the limits of a store of one file
 * (before this split) as the configuration.
 */
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "log.h"
#include "store.h"
#include "store-impl.h"

#define CONFIG_MAPSIZE	(64ULL * 1024 * 1024)
#define CONFIG_TAG	"iprelay-config"
#define GEN_CONFIG_KEY	"generation"	/* in the configuration */
#define GEN_LIVE_KEY	"config"	/* in the live store: its copy's */

int
config_gen_read(MDB_txn *txn, MDB_dbi meta, const char *key_name,
    struct config_gen *gen)
{
	MDB_val key = name_key(key_name), value;
	int rc;

	memset(gen, 0, sizeof(*gen));
	rc = mdb_get(txn, meta, &key, &value);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc)
		return rc;
	if (value.mv_size != sizeof(*gen))
		return STORE_EDAMAGED;
	memcpy(gen, value.mv_data, sizeof(*gen));
	return 0;
}

static int
gen_put(MDB_txn *txn, MDB_dbi meta, const char *key_name,
    const struct config_gen *gen)
{
	MDB_val key = name_key(key_name), value = { sizeof(*gen),
	    (void *)gen };

	return mdb_put(txn, meta, &key, &value, 0);
}

/* One more commit of the configuration, in its transaction. */
static int
config_gen_bump(struct store *store, MDB_txn *txn)
{
	struct config_gen gen;
	int rc;

	if ((rc = config_gen_read(txn, store->cfg_meta, GEN_CONFIG_KEY, &gen)))
		return rc;
	if (gen.id[0] == 0 && gen.id[1] == 0 &&
	    getrandom(gen.id, sizeof(gen.id), 0) != (ssize_t)sizeof(gen.id)) {
		gen.id[0] = realtime_ns();
		gen.id[1] = (uint64_t)getpid();
	}
	gen.count++;
	return gen_put(txn, store->cfg_meta, GEN_CONFIG_KEY, &gen);
}

int
config_commit(struct store *store, MDB_txn *txn)
{
	int rc;

	if ((rc = config_gen_bump(store, txn))) {
		mdb_txn_abort(txn);
		return rc;
	}
	if ((rc = env_commit(store->cfg_env, txn)))
		return rc;
	return config_sync(store, 0, NULL);
}

static int
config_damaged(int rc)
{
	return rc == STORE_EDAMAGED || rc == MDB_INVALID ||
	    rc == MDB_CORRUPTED || rc == MDB_PAGE_NOTFOUND;
}

/* The limits of a store of one file, from before the configuration had
 * its own (that file, ENV's database LIMITS): taken as the configuration
 * when it has none yet, in one synced commit; *taken says how many. */
int
config_adopt_live(struct store *store, MDB_env *env, MDB_dbi limits,
    size_t *taken_out)
{
	MDB_txn *from = NULL, *txn = NULL;
	MDB_cursor *cursor = NULL;
	MDB_stat stat;
	struct config_gen gen;
	struct limit_rec rec;
	MDB_val key, value;
	size_t taken = 0;
	int rc;

	*taken_out = 0;
	if ((rc = mdb_txn_begin(store->cfg_env, NULL, 0, &txn)))
		return rc;
	if ((rc = mdb_stat(txn, store->cfg_limits, &stat)) ||
	    stat.ms_entries > 0)
		goto abort;
	if ((rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &from)))
		goto abort;
	/* A live store copied from a configuration is no store of one file. */
	if (env == store->env && (rc = config_gen_read(from, store->meta,
	    GEN_LIVE_KEY, &gen)) == 0 && gen.count > 0)
		goto abort;
	if ((rc = mdb_cursor_open(from, limits, &cursor)))
		goto abort;
	for (rc = mdb_cursor_get(cursor, &key, &value, MDB_FIRST); rc == 0;
	    rc = mdb_cursor_get(cursor, &key, &value, MDB_NEXT)) {
		if (decode_limit(&value, &rec))
			continue;	/* a damaged record is no limit */
		if ((rc = mdb_put(txn, store->cfg_limits, &key, &value, 0)))
			goto abort;
		taken++;
	}
	if (rc != MDB_NOTFOUND)
		goto abort;
	mdb_cursor_close(cursor);
	cursor = NULL;
	mdb_txn_abort(from);
	from = NULL;
	if (taken == 0) {
		mdb_txn_abort(txn);
		return 0;
	}
	if ((rc = config_gen_bump(store, txn)) ||
	    (rc = env_commit(store->cfg_env, txn)))
		return rc;
	*taken_out = taken;
	return 0;
abort:
	if (cursor)
		mdb_cursor_close(cursor);
	if (from)
		mdb_txn_abort(from);
	mdb_txn_abort(txn);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/* A configuration never committed to, where a store of one file still
 * lies in the state dir (the live store now has its own dir): its limits
 * are taken, and the old file is renamed STORE_OLD_FILE, kept for the
 * admin, so that nothing reads it again (a configuration removed later
 * must not bring its limits back).  One line says so.  A file that
 * cannot be read is left where it is, and the configuration empty. */
static void
adopt_old_file(struct store *store)
{
	static const char *const names[] = { "limits", NULL };
	struct statedir_lmdb files;
	MDB_env *env;
	MDB_dbi meta, limits;
	size_t taken = 0;
	int created, rc;

	if (strcmp(store->dir.path, store->run.path) == 0)
		return;
	rc = env_open(&store->dir, STORE_FILE, 0, MDB_NOSUBDIR | MDB_RDONLY |
	    MDB_NORDAHEAD | MDB_NOTLS | MDB_NOLOCK, STORE_MAPSIZE, &env,
	    &files, &created);
	store_failed_at(&store->dir, STORE_CONFIG_FILE);
	if (rc == STORE_ENOSTORE)
		return;
	if (rc == 0) {
		rc = open_dbs(env, STORE_FORMAT_TAG, 0, &meta, names, &limits);
		if (rc == 0)
			rc = config_adopt_live(store, env, limits, &taken);
		mdb_env_close(env);
		statedir_lmdb_done(&files);
	}
	if (rc) {
		log_warn("unable to take the limits of %s/%s, a state file of "
		    "an older version: %s; it is left as it is, and the "
		    "configuration %s/%s holds none", store->dir.path,
		    STORE_FILE, store_strerror(rc), store->dir.path,
		    STORE_CONFIG_FILE);
		return;
	}
	/* Never over an older one kept already. */
	if (renameat2(store->dir.fd, STORE_FILE, store->dir.fd,
	    STORE_OLD_FILE, RENAME_NOREPLACE) < 0) {
		log_warn("took the %zu limits of %s/%s, a state file of an "
		    "older version, as the configuration %s/%s; unable to "
		    "rename it %s: %s (it is no longer used)", taken,
		    store->dir.path, STORE_FILE, store->dir.path,
		    STORE_CONFIG_FILE, STORE_OLD_FILE, strerror(errno));
		return;
	}
	log_line(LOG_NOTICE, "took the %zu limits of %s/%s, a state file of "
	    "an older version, as the configuration %s/%s; the old file is "
	    "kept as %s/%s, no longer used (the live state is now in %s)",
	    taken, store->dir.path, STORE_FILE, store->dir.path,
	    STORE_CONFIG_FILE, store->dir.path, STORE_OLD_FILE,
	    store->run.path);
}

/* Whether the configuration was never committed to (no generation yet):
 * made now, or made by a process that died before it took the limits of
 * a store of one file. */
static int
config_unborn(struct store *store)
{
	MDB_txn *txn = NULL;
	struct config_gen gen;
	int rc;

	if (mdb_txn_begin(store->cfg_env, NULL, MDB_RDONLY, &txn))
		return 0;
	rc = config_gen_read(txn, store->cfg_meta, GEN_CONFIG_KEY, &gen);
	mdb_txn_abort(txn);
	return rc == 0 && gen.count == 0;
}

int
config_open(struct store *store, int create, int read_only, int *unborn)
{
	static const char *const names[] = { "limits", NULL };
	int rc, created;

	*unborn = 0;
	/* One that only reads takes the configuration as it is, and where
	 * there is none yet, opens it as everyone else does (and makes it). */
	if (read_only) {
		rc = env_open(&store->dir, STORE_CONFIG_FILE, 0, MDB_NOSUBDIR |
		    MDB_NORDAHEAD | MDB_NOTLS | MDB_RDONLY, CONFIG_MAPSIZE,
		    &store->cfg_env, &store->cfg_files, &created);
		if (rc == 0)
			rc = open_dbs(store->cfg_env, CONFIG_TAG, 0,
			    &store->cfg_meta, names, &store->cfg_limits);
		if (rc == 0)
			return 0;
		if (store->cfg_env) {
			mdb_env_close(store->cfg_env);
			store->cfg_env = NULL;
			statedir_lmdb_done(&store->cfg_files);
			store->cfg_files.data_fd = store->cfg_files.lock_fd = -1;
		}
		if (rc != STORE_ENOSTORE)
			return config_damaged(rc) ? STORE_ECONFIG : rc;
	}
	rc = env_open(&store->dir, STORE_CONFIG_FILE, create, MDB_NOSUBDIR |
	    MDB_NORDAHEAD | MDB_NOTLS, CONFIG_MAPSIZE, &store->cfg_env,
	    &store->cfg_files, &created);
	if (rc == 0)
		rc = open_dbs(store->cfg_env, CONFIG_TAG, create,
		    &store->cfg_meta, names, &store->cfg_limits);
	if (config_damaged(rc))
		return STORE_ECONFIG;
	if (rc)
		return rc;
	if ((*unborn = created || config_unborn(store)))
		adopt_old_file(store);
	return 0;
}

/* The live copy of the configuration brought up to date, in one live
 * write transaction over one snapshot of the configuration: two copies
 * run one after the other under the live store's write lock, and the
 * later one reads the later snapshot, so the live store ends at the last
 * configuration whatever the order of the writers. */
int
config_sync(struct store *store, int force, int *copied)
{
	MDB_txn *cfg = NULL, *txn = NULL;
	MDB_cursor *cursor = NULL;
	struct config_gen want, have;
	struct limit_rec rec;
	MDB_val key, value, live;
	char name[LIMIT_NAME_MAX + 1];
	uint64_t now_ns;
	int rc, reparented, any_reparented = 0;

	if (copied)
		*copied = 0;
	/* The live write lock first, then the snapshot: a snapshot taken
	 * before waiting for the lock could be older than one a writer
	 * that got the lock first has copied, and copying it after would
	 * take the live store back a generation (a cap just set gone
	 * until the next copy). */
	if ((rc = mdb_txn_begin(store->env, NULL, 0, &txn)))
		return rc;
	if ((rc = mdb_txn_begin(store->cfg_env, NULL, MDB_RDONLY, &cfg)))
		goto abort;
	if ((rc = config_gen_read(cfg, store->cfg_meta, GEN_CONFIG_KEY,
	    &want)))
		goto abort;
	now_ns = monotonic_ns();	/* under the write lock */
	if ((rc = config_gen_read(txn, store->meta, GEN_LIVE_KEY, &have)))
		have.count = UINT64_MAX;	/* unreadable: copy */
	if (!force && memcmp(&want, &have, sizeof(want)) == 0)
		goto abort;
	if ((rc = mdb_cursor_open(cfg, store->cfg_limits, &cursor)))
		goto abort;
	for (rc = mdb_cursor_get(cursor, &key, &value, MDB_FIRST); rc == 0;
	    rc = mdb_cursor_get(cursor, &key, &value, MDB_NEXT)) {
		if (decode_limit(&value, &rec) || key.mv_size == 0 ||
		    key.mv_size > LIMIT_NAME_MAX) {
			rc = STORE_ECONFIG;
			goto abort;
		}
		if (mdb_get(txn, store->limits, &key, &live) == 0 &&
		    live.mv_size == value.mv_size &&
		    memcmp(live.mv_data, value.mv_data, value.mv_size) == 0)
			continue;
		memcpy(name, key.mv_data, key.mv_size);
		name[key.mv_size] = '\0';
		if ((rc = limit_apply(store, txn, name, &value, now_ns,
		    &reparented)))
			goto abort;
		any_reparented |= reparented;
	}
	if (rc != MDB_NOTFOUND)
		goto abort;
	mdb_cursor_close(cursor);
	/* Limits the configuration no longer has. */
	if ((rc = mdb_cursor_open(txn, store->limits, &cursor)))
		goto abort;
	for (rc = mdb_cursor_get(cursor, &key, &value, MDB_FIRST); rc == 0;
	    rc = mdb_cursor_get(cursor, &key, &value, MDB_NEXT)) {
		if (mdb_get(cfg, store->cfg_limits, &key, &live) == 0)
			continue;
		if ((rc = mdb_del(txn, store->buckets, &key, NULL)) &&
		    rc != MDB_NOTFOUND)
			goto abort;
		if ((rc = mdb_cursor_del(cursor, 0)))
			goto abort;
		any_reparented = 1;
	}
	if (rc != MDB_NOTFOUND)
		goto abort;
	mdb_cursor_close(cursor);
	cursor = NULL;
	if (any_reparented && (rc = recount(store, txn)))
		goto abort;
	if ((rc = gen_put(txn, store->meta, GEN_LIVE_KEY, &want)))
		goto abort;
	mdb_txn_abort(cfg);
	if ((rc = txn_commit(store, txn)) == 0 && copied)
		*copied = 1;
	return rc;
abort:
	if (cursor)
		mdb_cursor_close(cursor);
	if (cfg)
		mdb_txn_abort(cfg);
	mdb_txn_abort(txn);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

int
store_follow_config(struct store *store)
{
	return config_sync(store, 0, NULL);
}

int
store_config_read(struct store *store, struct limit_entry **entries,
    size_t *count)
{
	MDB_txn *txn = NULL;
	MDB_cursor *cursor = NULL;
	MDB_stat stat;
	MDB_val key, value;
	struct limit_rec rec;
	struct limit_entry *list = NULL;
	size_t n = 0;
	int rc;

	*entries = NULL;
	*count = 0;
	if ((rc = mdb_txn_begin(store->cfg_env, NULL, MDB_RDONLY, &txn)))
		return rc;
	if ((rc = mdb_stat(txn, store->cfg_limits, &stat)))
		goto out;
	list = calloc(stat.ms_entries + 1, sizeof(*list));
	if (list == NULL) {
		rc = ENOMEM;
		goto out;
	}
	if ((rc = mdb_cursor_open(txn, store->cfg_limits, &cursor)))
		goto out;
	for (rc = mdb_cursor_get(cursor, &key, &value, MDB_FIRST);
	    rc == 0 && n < stat.ms_entries;
	    rc = mdb_cursor_get(cursor, &key, &value, MDB_NEXT)) {
		if (name_from_key(&key, list[n].name) ||
		    decode_limit(&value, &rec)) {
			rc = STORE_ECONFIG;
			break;
		}
		list[n++].cfg = rec.cfg;
	}
	if (rc == MDB_NOTFOUND || (rc == 0 && n == stat.ms_entries))
		rc = 0;
	mdb_cursor_close(cursor);
out:
	mdb_txn_abort(txn);
	if (rc) {
		free(list);
		return rc;
	}
	*entries = list;
	*count = n;
	return 0;
}

static const struct limit_entry *
entry_named(const struct limit_entry *entries, size_t count, const char *name)
{
	size_t index;

	for (index = 0; index < count; index++)
		if (strcmp(entries[index].name, name) == 0)
			return &entries[index];
	return NULL;
}

/* One entry checked as the store would check it set by itself, and
 * against the others: unique, its parent among them, no cycle. */
static int
entry_check(const struct limit_entry *entries, size_t count, size_t index)
{
	const struct limit_entry *entry = &entries[index], *up;
	struct limit_rec rec = { .magic = LIMIT_MAGIC }, decoded;
	MDB_val value;
	size_t depth;
	int rc;

	if (!limit_name_valid(entry->name))
		return EINVAL;
	if (entry_named(entries, index, entry->name))
		return EEXIST;
	rec.cfg = entry->cfg;
	value.mv_size = sizeof(rec);
	value.mv_data = &rec;
	if (decode_limit(&value, &decoded))
		return EINVAL;
	if ((rc = limit_cfg_check(&entry->cfg)))
		return rc;
	for (up = entry, depth = 0; up->cfg.parent[0]; depth++) {
		if (depth >= CHAIN_MAX)
			return STORE_ECYCLE;
		up = entry_named(entries, count, up->cfg.parent);
		if (up == NULL)
			return STORE_ENOPARENT;
		if (up == entry)
			return STORE_ECYCLE;
	}
	return 0;
}

int
store_config_replace(struct store *store, const struct limit_entry *entries,
    size_t count, size_t *bad)
{
	MDB_txn *txn = NULL;
	struct limit_rec rec = { .magic = LIMIT_MAGIC };
	MDB_val key, value;
	size_t index;
	int rc;

	*bad = count;
	for (index = 0; index < count; index++)
		if ((rc = entry_check(entries, count, index))) {
			*bad = index;
			return rc;
		}
	if (fs_nearly_full(store))
		return ENOSPC;
	if ((rc = mdb_txn_begin(store->cfg_env, NULL, 0, &txn)))
		return rc;
	if ((rc = mdb_drop(txn, store->cfg_limits, 0)))
		goto abort;
	for (index = 0; index < count; index++) {
		rec.cfg = entries[index].cfg;
		key = name_key(entries[index].name);
		value.mv_size = limit_rec_size(&rec);
		value.mv_data = &rec;
		if ((rc = mdb_put(txn, store->cfg_limits, &key, &value, 0)))
			goto abort;
	}
	return config_commit(store, txn);
abort:
	mdb_txn_abort(txn);
	return rc;
}
