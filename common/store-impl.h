/*
 * Inside the state store: the handle, the record layouts and the helpers
 * the store's files share (store.c, store-live.c, store-config.c,
 * store-file.c, store-rec.c, store-limit.c, store-conn.c, store-caps.c,
 * store-draw.c, store-global.c).  Only those include it; everyone else
 * uses store.h.
 */
#ifndef IPRELAY_STORE_IMPL_H
#define IPRELAY_STORE_IMPL_H

#include <lmdb.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "bucket.h"
#include "statedir.h"
#include "store.h"

#define CHAIN_MAX		64	/* levels of nesting */
#define CONN_ID_MAX		999999
/* Records the foreach functions copy out per read transaction. */
#define FOREACH_BATCH		256

/* The live store's map and format tag ("iprelay-store 1", also the tag
 * of the store of one file before the configuration had its own). */
#define STORE_MAPSIZE		(256ULL * 1024 * 1024)
#define STORE_FORMAT_TAG	"iprelay-store"

#define LIMIT_MAGIC	0x4c505249U	/* "IRPL" */
#define BUCKET_MAGIC	0x42505249U	/* "IRPB" */
#define CONN_MAGIC	0x43505249U	/* "IRPC" */

struct chain;

struct store {
	MDB_env *env;		/* the live store: NOSYNC, may be thrown away */
	MDB_dbi limits, buckets, conns, meta;	/* limits: a copy */
	MDB_env *cfg_env;	/* the configuration: synced on every commit */
	MDB_dbi cfg_limits, cfg_meta;
	struct chain *chain;	/* scratch for one transaction at a time */
	struct statedir dir;	/* the state dir, checked and held */
	struct statedir run;	/* the runtime dir (the live store's) */
	struct statedir_lmdb files;	/* our fds of the live files */
	struct statedir_lmdb cfg_files;	/* ... and the configuration's */
	uint64_t recovered_ns;	/* the live store last made again */
};

/* The configuration's generation, in both stores' meta ("generation" in
 * the configuration, "config" in the live store: which configuration it
 * was copied from): a random id made with the configuration, and a count
 * of its commits.  The live copy is current when the two are equal. */
struct config_gen {
	uint64_t id[2];
	uint64_t count;
};

struct limit_rec {
	uint32_t magic;
	uint32_t reserved;
	struct limit_cfg cfg;
};

/* The first layout of the records, before ceilings: what this version
 * still reads (as CEIL_NONE, zero borrowed), and still writes while a
 * limit has no ceiling, so a state dir keeps working with the programs of
 * either version until a ceiling is set. */
struct limit_cfg_v1 {
	uint64_t rate_Bps[2];
	uint64_t burst_B;
	char parent[LIMIT_NAME_MAX + 1];
};

struct limit_rec_v1 {
	uint32_t magic;
	uint32_t reserved;
	struct limit_cfg_v1 cfg;
};

#define LIMIT_REC_V1_SIZE \
	(offsetof(struct limit_rec, cfg) + offsetof(struct limit_cfg, ceil_Bps))
_Static_assert(LIMIT_REC_V1_SIZE == sizeof(struct limit_rec_v1),
    "the ceiling fields follow the first layout of a limit record");

/* What relays need of a global limit's configuration, copied into its
 * bucket record as the parent and ceilings are (store-global.c). */
struct global_copy {
	uint32_t global;		/* 1: a global limit */
	uint32_t offline;		/* enum global_offline */
	uint64_t rate_Bps[2];		/* the global rates */
	uint64_t burst_B;		/* the global burst */
	uint64_t floor_Bps[2];
};

struct bucket_rec {
	uint32_t magic;
	uint32_t nconns;			/* live relays in the subtree */
	char parent[LIMIT_NAME_MAX + 1];	/* copy of the limit's */
	struct bucket bucket[2];
	uint64_t total_B[2];
	uint64_t rate_1s_Bps[2];
	uint64_t rate_5s_Bps[2];
	uint64_t rate_60s_Bps[2];
	uint64_t stats_unix_ns;
	/* Absent from records of the first layout (read as zero). */
	uint64_t ceil_Bps[2];			/* copy of the limit's */
	struct bucket ceil[2];			/* at the ceiling, if any */
	uint64_t borrowed_B[2];			/* bytes passed past its rate */
	/* Absent from records before global limits (read as zero). */
	struct global_copy gcopy;		/* copy of the limit's */
	struct global_live global;		/* this host's lease */
	/* Absent from records before new relays' credit (read as zero, a
	 * full pool; written only while a pool is not full). */
	struct fresh_pool fresh[2];		/* bucket.h */
	/* Absent from records before caps (read as zero). */
	uint64_t refused[2];			/* by max_conns, per source */
	/* Absent from records before host counts (read as zero): the
	 * limit's configured or last seen host count, copied as gcopy is
	 * (global_floor_hosts of the limit's configuration). */
	uint32_t hosts;
	uint32_t reserved;
};

#define BUCKET_REC_V1_SIZE	offsetof(struct bucket_rec, ceil_Bps)
#define BUCKET_REC_V2_SIZE	offsetof(struct bucket_rec, gcopy)
#define BUCKET_REC_V3_SIZE	offsetof(struct bucket_rec, fresh)
#define BUCKET_REC_V4_SIZE	offsetof(struct bucket_rec, refused)
#define BUCKET_REC_V5_SIZE	offsetof(struct bucket_rec, hosts)
#define LIMIT_REC_V2_SIZE \
	(offsetof(struct limit_rec, cfg) + offsetof(struct limit_cfg, global))
#define LIMIT_REC_V3_SIZE (offsetof(struct limit_rec, cfg) + \
	offsetof(struct limit_cfg, max_conns_per_source))
#define LIMIT_REC_V4_SIZE (offsetof(struct limit_rec, cfg) + \
	offsetof(struct limit_cfg, hosts_seen))

_Static_assert(CHAIN_MAX <= BUCKET_LEVELS_MAX,
    "bucket_draw_ceil takes a whole chain");

struct conn_rec {
	uint32_t magic;
	uint32_t reserved;
	struct conn_info info;
};

/* The chain of a limit: the limit itself, then each ancestor.  A missing
 * limit gives an empty chain; a missing ancestor ends it. */
struct chain {
	size_t depth;
	char names[CHAIN_MAX][LIMIT_NAME_MAX + 1];
	struct bucket_rec recs[CHAIN_MAX];
};

/* store-rec.c: records, keys, chains.  Every get and put runs inside the
 * caller's transaction. */
int
ceil_valid(uint64_t ceil_Bps);

int
decode_limit(const MDB_val *value, struct limit_rec *rec);

size_t
limit_rec_size(const struct limit_rec *rec);

int
decode_bucket(const MDB_val *value, struct bucket_rec *rec);

size_t
bucket_rec_size(const struct bucket_rec *rec);

int
decode_conn(const MDB_val *value, struct conn_rec *rec);

MDB_val
name_key(const char *name);

int
name_from_key(const MDB_val *key, char name[LIMIT_NAME_MAX + 1]);

int
get_bucket(struct store *store, MDB_txn *txn, const char *name,
    struct bucket_rec *rec);

int
put_bucket(struct store *store, MDB_txn *txn, const char *name,
    const struct bucket_rec *rec);

int
get_limit(struct store *store, MDB_txn *txn, const char *name,
    struct limit_rec *rec);

int
get_limit_in(MDB_txn *txn, MDB_dbi dbi, const char *name,
    struct limit_rec *rec);

MDB_val
conn_key(uint32_t id, unsigned char buf[4]);

uint32_t
conn_id_of(const MDB_val *key);

int
get_conn(struct store *store, MDB_txn *txn, uint32_t id, struct conn_rec *rec);

int
put_conn(struct store *store, MDB_txn *txn, const struct conn_rec *rec);

int
load_chain(struct store *store, MDB_txn *txn, const char *limit,
    struct chain *chain);

int
save_chain(struct store *store, MDB_txn *txn, const struct chain *chain);

/* store.c: the environment.  A commit of TXN in ENV (the live store's
 * for txn_commit), ENOSPC for a short write on a full filesystem. */
int
env_commit(MDB_env *env, MDB_txn *txn);

int
txn_commit(struct store *store, MDB_txn *txn);

int
fs_nearly_full(struct store *store);

int
meta_get_txn(struct store *store, MDB_txn *txn, const char *key_name,
    void *buf, size_t size, size_t *got);

/* store-file.c: 0 if PATH is missing, not LMDB's or sound; STORE_EDAMAGED
 * (or an errno value) if LMDB must not map it. */
int
check_file(const char *path);

/* store-config.c: the configuration store and the live copy of it. */
/* *unborn: a configuration never committed to (made now, or its maker
 * died first), whose limits may still be in a store of one file; one in
 * the state dir apart from the live store's was taken already. */
int
config_open(struct store *store, int create, int read_only, int *unborn);

/* Copy the configuration into the live store when its copy is not of the
 * configuration's generation (FORCE: whatever it says), in one live write
 * transaction; *copied (may be NULL) says whether anything was done. */
int
config_sync(struct store *store, int force, int *copied);

/* A live store of an older layout holding limits and no configuration's
 * generation: its limits become the new configuration's (once);
 * *taken says how many. */
int
config_adopt_live(struct store *store, MDB_env *env, MDB_dbi limits,
    size_t *taken);

/* A change to the configuration made in its write transaction TXN,
 * committed: one more generation, the synced commit, then the live copy
 * (config_sync).  TXN is ended whatever the result. */
int
config_commit(struct store *store, MDB_txn *txn);

int
config_gen_read(MDB_txn *txn, MDB_dbi meta, const char *key,
    struct config_gen *gen);

/* Apply one limit's configuration (a record as stored) to its live copy
 * and bucket; *reparented says whether its parent changed. */
int
limit_apply(struct store *store, MDB_txn *txn, const char *name,
    const MDB_val *record, uint64_t now_ns, int *reparented);

/* store.c */
int
env_open(struct statedir *dir, const char *name, int create,
    unsigned env_flags, size_t map_B, MDB_env **env,
    struct statedir_lmdb *files, int *created);

int
open_dbs(MDB_env *env, const char *tag, int create, MDB_dbi *meta,
    const char *const *names, MDB_dbi *dbis);

void
store_failed_at(const struct statedir *dir, const char *name);

/* store-live.c: the live store opened (*fresh: made now, empty), or made
 * again from the configuration when it is unusable; OURS (may be NULL):
 * the file this process had open and found damaged (OURS_RC). */
int
live_open_or_rebuild(struct store *store, const struct stat *ours,
    int ours_rc, int *fresh);

/* store-limit.c */
int
limit_cfg_check(const struct limit_cfg *cfg);

void
fill_info(struct limit_info *info, const char *name,
    const struct limit_rec *limit, const struct bucket_rec *bucket);

/* store-conn.c */
int
recount(struct store *store, MDB_txn *txn);

/* store-global.c: a global level switches to its offline policy when
 * its lease or hold ran out, at that instant. */
void
global_copy_cfg(struct bucket_rec *rec, const struct limit_cfg *cfg);

void
global_settle(struct bucket_rec *rec, uint64_t now_ns);

void
chain_global_settle(struct chain *chain, uint64_t now_ns);

/* store-caps.c: inside the registration's write transaction, with
 * chain loaded for info's limit and info not yet counted: 0 when no cap
 * of the chain refuses it, else STORE_ECAPS or STORE_ECAPSRC with the
 * refusing level's count raised in chain->recs (the caller saves the
 * chain and commits) and *refusal filled when not NULL. */
int
caps_check(struct store *store, MDB_txn *txn, struct chain *chain,
    const struct conn_info *info, struct cap_refusal *refusal);

/* store-draw.c */
uint64_t
chain_quantum(const struct chain *chain, int dir, int *shaped);

#endif
