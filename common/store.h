/*
 * The state store: two LMDB environments, shared by every relay, the
 * refiller and iprelay-limit.
 *  - The configuration, "limits.mdb" (and "limits.mdb-lock") in the state
 *    dir: the limits as `iprelay-limit set` writes them, whole struct
 *    limit_cfg records, synced on every commit (no MDB_NOSYNC), so that a
 *    crash or a power loss keeps every change that was said to be done.
 *    Named databases: limits (name -> struct limit_cfg), meta ("format",
 *    "generation").
 *  - The live store, "iprelay.mdb" (and "iprelay.mdb-lock") in the
 *    runtime dir (store_live_dir: /run/iprelay for the system's, tmpfs),
 *    MDB_NOSYNC: it may be lost or damaged at any time, and is then made
 *    again from the configuration (one log line, never a refusal).
 *    Named databases:
 *      limits  name -> struct limit_cfg  (a copy of the configuration's,
 *                                         so a draw is one transaction)
 *      buckets name -> live tokens, counters, stats for both directions
 *      conns   id (uint32 big-endian) -> struct conn_info
 *      meta    "format", "boot_id", "boot_at", "next_conn", "refiller",
 *              "config" (the configuration's generation it was copied from)
 * A limit change commits to the configuration first, then to the live
 * copy (store-config.c).
 * Every function is one short transaction; none sleeps inside one, and
 * the foreach functions copy a batch out, end the transaction, then call
 * their visitor: no caller's output, sleep or network I/O ever happens
 * with a snapshot held (a held snapshot makes the file grow).  Relays
 * use write transactions only in the live store, so a relay killed at
 * any instant holds no reader slot there (one read transaction on the
 * configuration at open; the refiller clears a dead reader's slot); LMDB's
 * robust mutex recovers a writer killed mid-commit.
 * Never use a store across fork(): open it in the process that uses it.
 *
 * The code: store.c (environments, errors, meta), store-live.c (the live
 * store's dir, its open and remaking), store-config.c (the
 * configuration and its live copy), store-file.c (the file check before
 * LMDB maps it), store-rec.c (record codecs), store-limit.c (limits),
 * store-conn.c (connection registry), store-draw.c (draws, the tick, the
 * reset at boot); store-impl.h holds what they share.
 */
#ifndef IPRELAY_STORE_H
#define IPRELAY_STORE_H

#include <stdint.h>
#include <sys/types.h>

#include "bucket.h"
#include "parse.h"
#include "statedir.h"

#define STORE_FORMAT	1
#define STORE_FILE	"iprelay.mdb"	/* the live store, runtime dir */
#define STORE_CONFIG_FILE	"limits.mdb"	/* the configuration */
/* A store of one file (the version before the configuration had its own
 * file) left in the state dir, once its limits are the configuration's:
 * kept for the admin, never read. */
#define STORE_OLD_FILE	"iprelay.mdb.old"
#define PEER_MAX	63	/* "[v6addr]:port" fits */
#define REMOTE_MAX	(HOST_MAX + 8)

enum { DIR_UP = 0, DIR_DOWN = 1 };	/* up = client->remote */

/* Store-specific errors; every other non-zero result is an errno value or
 * an LMDB code.  store_strerror() names them all. */
enum {
	STORE_ENOLIMIT = -30500,	/* no such limit */
	STORE_ENOPARENT,		/* the parent named does not exist */
	STORE_ECYCLE,			/* the parent would make a cycle */
	STORE_EHASCHILD,		/* limit has children */
	STORE_ENOCONN,			/* no such connection */
	STORE_EFOREIGN,			/* file is not an iprelay store */
	STORE_EVERSION,			/* store of another format version */
	STORE_EDAMAGED,			/* a record of the wrong size */
	STORE_ENOSTORE,			/* read-only open and no file yet */
	STORE_EFULL,			/* no free connection id */
	STORE_ECEILLOW,			/* a ceiling below the rate */
	STORE_ECEILTOP,			/* a ceiling with no parent */
	STORE_ECEILGLOBAL,		/* a ceiling on a global limit */
	STORE_ECAPS,			/* over a limit's --max-conns */
	STORE_ECAPSRC,			/* over its --max-conns-per-source */
	STORE_ECONFIG,			/* the configuration file is damaged */
	STORE_ENOHOSTS,			/* a floor of global / hosts, no
					 * host count known */
	STORE_EUPGRADE,			/* a store of an older version that a
					 * reader may not upgrade */
	STORE_ERUNTIME,			/* IPRELAY_RUNTIME_DIR not absolute */
};

#define STORE_RDONLY	0x1	/* open for reading: never create */
/* Only reads the configuration (a relay): an existing limits.mdb is
 * opened read-only, which spares LMDB's write buffers and the write
 * transaction of a writable environment: 1.3 ms of CPU an open here, where
 * the whole open of both stores is then 0.5 ms (bench/README.md).  Nor
 * does it compare the live copy's generation with the configuration's
 * (store_follow_config does, in the refiller): an existing live store is
 * taken as it is, one made now is filled. */
#define STORE_CONFIG_READ	0x2

/* A ceiling (limit_cfg.ceil_Bps): how far past its rate a limit may
 * borrow what its ancestors have idle (bucket.h).  CEIL_NONE (0, also what
 * a record of the first layout reads as) = not at all, held to its own
 * rate; CEIL_UNLIMITED = as far as the ancestors let it; else bytes/s, at
 * least the rate.  Only a limit with a parent may have one. */
#define CEIL_NONE	0ULL
#define CEIL_UNLIMITED	UINT64_MAX

/* Global limits (issue 16, docs/design.md "Global limits"): one budget
 * across the hosts whose shaperds share a Redis.  The limit's rate_Bps and
 * burst_B are the global ones; this host's bucket runs at the share leased
 * to it (shaperd/global.c) until the lease ends, then, while shaperd says
 * Redis cannot be reached, at that share for the grace, then by its
 * offline policy.  Relays apply the switch themselves at the instant the
 * lease or hold ends, so a dead shaperd keeps no share. */
enum global_offline {
	GLOBAL_FLOOR = 0,	/* floor_Bps, or global / hosts (default) */
	GLOBAL_CLOSED,		/* 1 byte/s: no unleased traffic */
	GLOBAL_OPEN,		/* unlimited at this level */
};
#define GLOBAL_GRACE_DEFAULT_MS	10000	/* grace_ms 0 */
#define GLOBAL_GRACE_NONE	UINT32_MAX	/* no hold: policy at lease end */
#define GLOBAL_GRACE_MAX_MS	86400000

struct limit_cfg {
	uint64_t rate_Bps[2];		/* bytes/s per direction; 0 = none */
	uint64_t burst_B;		/* bytes; 0 = a tenth of the rate */
	char parent[LIMIT_NAME_MAX + 1];	/* "" = top level */
	uint64_t ceil_Bps[2];		/* per direction, CEIL_* or bytes/s */
	/* Global limits (configuration; records without them read 0). */
	uint32_t global;		/* 1: a global limit */
	uint32_t offline;		/* enum global_offline */
	uint32_t grace_ms;		/* 0 = default, GLOBAL_GRACE_NONE */
	/* Caps on live relays (store-caps.c; 0 = none): in the limit's
	 * subtree, and in it from one source (SOURCE_V6_PREFIX). */
	uint32_t max_conns;
	uint64_t floor_Bps[2];		/* 0 = global / hosts */
	/* Records before it read 0. */
	uint32_t max_conns_per_source;
	/* The hosts a global limit's floor divides by (global_floor_hosts):
	 * as the operator said (set --hosts N, shared through Redis); 0 =
	 * not said.  In the word records before it left reserved (0). */
	uint32_t hosts;
	/* As Redis counted them at this host's last lease, kept here so that
	 * a host restarted without Redis still knows (shaperd writes it when
	 * it changes); 0 = never leased.  Records before it read 0. */
	uint32_t hosts_seen;
	uint32_t reserved;
};

/* Most hosts on one global limit (the lease script's HOSTS_MAX). */
#define GLOBAL_HOSTS_MAX	1000U

#define CAPS_MAX	1000000U	/* most a cap may be */

/* What a global limit's bucket runs at (live state, per host). */
enum global_state {
	GLOBAL_LEASED = 0,	/* the share, lease unexpired */
	GLOBAL_HELD,		/* the last share, Redis unreachable */
	GLOBAL_AT_FLOOR,
	GLOBAL_IS_CLOSED,
	GLOBAL_IS_OPEN,
};

struct global_live {
	uint64_t share_Bps[2];		/* leased; 0 where no global rate */
	uint64_t lease_until_ns;	/* CLOCK_MONOTONIC; 0 = never */
	uint64_t hold_until_ns;		/* CLOCK_MONOTONIC; 0 = no hold */
	uint64_t waited_B[2];		/* bytes held back with this level
					 * the bottleneck (demand) */
	uint64_t version;		/* of the configuration in Redis */
	uint64_t leased_unix_ns;	/* CLOCK_REALTIME of the last lease */
	uint32_t nhosts;		/* hosts at the last lease */
	uint32_t state;			/* enum global_state of the bucket */
};

struct limit_info {
	char name[LIMIT_NAME_MAX + 1];
	struct limit_cfg cfg;
	struct bucket bucket[2];	/* live state per direction */
	struct bucket ceil_bucket[2];	/* at the ceiling; rate 0 if none */
	uint64_t borrowed_B[2];		/* bytes passed past its rate */
	uint32_t nconns;		/* live relays in this subtree */
	uint64_t total_B[2];		/* bytes ever passed per direction */
	uint64_t rate_1s_Bps[2];	/* measured by the refiller */
	uint64_t rate_5s_Bps[2];
	uint64_t rate_60s_Bps[2];
	uint64_t stats_unix_ns;		/* when the rates were measured; 0 = never */
	struct global_live global;	/* a global limit's lease */
	/* Relays this limit's caps refused (live state, not configuration):
	 * [0] by max_conns, [1] by max_conns_per_source. */
	uint64_t refused[2];
};

struct conn_info {
	uint32_t id;			/* shown as CONN%06u */
	pid_t pid;
	uint64_t pid_start;		/* /proc/PID/stat starttime, clock ticks */
	char limit[LIMIT_NAME_MAX + 1];	/* "" = unshaped */
	char peer[PEER_MAX + 1];	/* client address:port */
	char remote[REMOTE_MAX + 1];	/* remote address:port */
	uint64_t start_unix_ns;		/* CLOCK_REALTIME at registration */
	uint64_t last_unix_ns;		/* CLOCK_REALTIME of the last bytes */
	uint64_t bytes[2];		/* bytes relayed per direction */
	uint64_t rate_5s_Bps[2];	/* measured by the refiller */
};

struct grant {
	uint64_t bytes;		/* bytes that may be sent (<= want) */
	uint64_t release_ns;	/* CLOCK_MONOTONIC: not before this */
	uint64_t quantum_B;	/* the chunk to read next in this direction */
	int shaped;		/* 0: no level of the chain has a rate */
	int sparse;		/* released at once by the sparse lane */
	uint64_t share_Bps;	/* the fair share: least rate / relays */
};

struct store;

typedef int (*limit_visit_fn)(void *ctx, const struct limit_info *info);
typedef int (*conn_visit_fn)(void *ctx, const struct conn_info *info);
typedef int (*conn_alive_fn)(void *ctx, const struct conn_info *info);

const char *
store_strerror(int rc);

/* The exit status an open failure deserves: a state file that is foreign,
 * of another version or damaged is for the admin to fix (100, usage or
 * configuration); anything else is a system failure (111). */
int
store_exit_code(int rc);

#define STORE_SYSTEM_DIR	"/var/lib/iprelay"
#define STORE_RUNTIME_DIR	"/run/iprelay"

/* The runtime dir that goes with state dir DIR, where the live store is:
 * $IPRELAY_RUNTIME_DIR when set and DIR is the state dir the environment
 * names ($IPRELAY_STATE_DIR, else the system's; not absolute:
 * STORE_ERUNTIME), else /run/iprelay for the system's,
 * $XDG_RUNTIME_DIR/iprelay for a user's own default one (when set), else
 * DIR itself (-S DIR holds both).  The dir is then trusted as the state
 * dir is (statedir_enter_pair). */
int
store_live_dir(const char *dir, char *run, size_t run_size);

/* The file (or dir) the last failed store_open() was at, for its error
 * line: the configuration, the live store or the dir. */
const char *
store_failed_path(void);

/* The state dir: -S DIR if given, else $IPRELAY_STATE_DIR, else
 * /var/lib/iprelay for root and for a user who may use it (may read its
 * state file or write the dir: a member of its group), else
 * $XDG_STATE_HOME/iprelay or ~/.local/state/iprelay. */
int
store_dir_resolve(const char *option, char *dir, size_t dir_size);

/* Why store_dir_resolve chose the dir it did, for the user to read:
 * "given with -S", "the system store", "your own store" (with why not
 * the system one when it exists)... */
const char *
store_dir_source(const char *option);

/* Opens the store of state dir DIR: the configuration there (created
 * unless STORE_RDONLY; damaged: STORE_ECONFIG, refused) and the live
 * store in store_live_dir(DIR) (created, or made again from the
 * configuration when damaged or of another version; its copy of the
 * limits brought up to date when not of the configuration's generation,
 * except with STORE_CONFIG_READ).  The dirs and their files go through
 * statedir.h first: a dir nobody we trust owns is refused
 * (STATEDIR_EREFUSED: store_strerror says why, exit 100), and root drops
 * to the owner of a dir of the service user, for good, before it opens
 * anything there.  On failure store_failed_path() names the file. */
int
store_open(struct store **store, const char *dir, int flags);

/* The state dir the store was opened in, checked and held: for the other
 * files there (statedir_openat) and its owner. */
const struct statedir *
store_dir(const struct store *store);

void
store_close(struct store *store);

/* Whether DIR's state file is still the file this store has open, and
 * still passes the damage check store_open() makes: a relay that opened
 * it ahead of its client may have waited while it was replaced or
 * damaged.  1 = fit to use, 0 = not (reopen it to learn why). */
int
store_is_current(struct store *store, const char *dir);

/* After an error RC from a live store function: when it says the live
 * store is damaged (a record or page the file check could not see), the
 * store is made again from the configuration and reopened in place (at
 * most once a second), and 0 says to try again; else RC.  The draw and
 * registration functions do this themselves. */
int
store_recover(struct store *store, int rc);

/* The live store's file replaced (made again by another process): reopen
 * the new one; cut short: make it again.  The refiller calls it on every
 * tick (a few system calls). */
int
store_follow_live(struct store *store);

/* The live copy of the limits brought up to the configuration when it
 * is of another generation (a writer killed between its two commits, a
 * configuration file put back from a backup): one read of the
 * configuration and a live write transaction that aborts when they
 * agree.  The refiller calls it once a second, since relays do not
 * compare at open (STORE_CONFIG_READ). */
int
store_follow_config(struct store *store);

uint64_t
monotonic_ns(void);

uint64_t
realtime_ns(void);

/* Limits. */
int
store_limit_put(struct store *store, const char *name,
    const struct limit_cfg *cfg);

/* The fields of a limit_cfg that store_limit_update sets. */
#define LIMIT_FIELD_UP		0x1u	/* rate_Bps[DIR_UP] */
#define LIMIT_FIELD_DOWN	0x2u	/* rate_Bps[DIR_DOWN] */
#define LIMIT_FIELD_BURST	0x4u
#define LIMIT_FIELD_PARENT	0x8u
#define LIMIT_FIELD_CEIL_UP	0x10u	/* ceil_Bps[DIR_UP] */
#define LIMIT_FIELD_CEIL_DOWN	0x20u	/* ceil_Bps[DIR_DOWN] */
#define LIMIT_FIELD_GLOBAL	0x40u	/* global */
#define LIMIT_FIELD_OFFLINE	0x80u	/* offline */
#define LIMIT_FIELD_GRACE	0x100u	/* grace_ms */
#define LIMIT_FIELD_FLOOR	0x200u	/* floor_Bps, both directions */
#define LIMIT_FIELD_MAX_CONNS	0x400u	/* max_conns */
#define LIMIT_FIELD_MAX_SOURCE	0x800u	/* max_conns_per_source */
#define LIMIT_FIELD_HOSTS	0x1000u	/* hosts */
#define LIMIT_FIELD_ALL		0x1fffu

/* Sets only the given fields of a limit, keeping the others as stored (zero
 * for a new limit), in one write transaction: two commands changing
 * different fields at once both take effect.  store_limit_put is this with
 * LIMIT_FIELD_ALL.  On return *result (when not NULL) is the limit as
 * written, or as it would have been when refused.  Refused when the
 * limit as merged would have a ceiling below its rate (STORE_ECEILLOW; an
 * unlimited rate is above every number) or a ceiling and no parent
 * (STORE_ECEILTOP). */
int
store_limit_update(struct store *store, const char *name,
    const struct limit_cfg *given, unsigned fields, struct limit_cfg *result);

/* store_limit_update that tells whether it made the limit (*created, when
 * not NULL) and, with STORE_LIMIT_NO_CREATE, refuses one that does not
 * exist (STORE_ENOLIMIT): both decided under the write lock, so a limit
 * made by another command at the same instant is "changed", never lost. */
#define STORE_LIMIT_NO_CREATE	0x1u
int
store_limit_write(struct store *store, const char *name,
    const struct limit_cfg *given, unsigned fields, unsigned how,
    struct limit_cfg *result, int *created);

int
store_limit_get(struct store *store, const char *name,
    struct limit_info *info);

int
store_limit_del(struct store *store, const char *name, uint32_t *nconns);

int
store_limit_foreach(struct store *store, limit_visit_fn visit, void *ctx);

/* The configuration as a whole (export and import): every limit's name
 * and configuration, as the configuration store holds them. */
struct limit_entry {
	char name[LIMIT_NAME_MAX + 1];
	struct limit_cfg cfg;
};

/* Every limit, read in one transaction into *entries (malloc'd, name
 * order; free it). */
int
store_config_read(struct store *store, struct limit_entry **entries,
    size_t *count);

/* Replace every limit with ENTRIES, all or nothing: each is checked as a
 * set would check it, and against the others (a name twice: EEXIST; a
 * parent not among them: STORE_ENOPARENT; a cycle), before one synced
 * commit; a refusal sets *bad to the index of the entry refused and
 * changes nothing.  The live copy follows. */
int
store_config_replace(struct store *store, const struct limit_entry *entries,
    size_t count, size_t *bad);

/* Connections. */
int
store_conn_register(struct store *store, struct conn_info *info);

/* The same, and in the same transaction say whether each direction is
 * shaped and its first quantum, sized with this relay counted: a relay
 * then shapes from its first byte without a second transaction.  *levels
 * is how many limits the relay's chain holds: 0 for a limit named that
 * does not exist (yet). */
int
store_conn_register_shaped(struct store *store, struct conn_info *info,
    int shaped[2], uint64_t quantum_B[2], size_t *levels);

/* What refused a registration over a cap (STORE_ECAPS, STORE_ECAPSRC). */
struct cap_refusal {
	char limit[LIMIT_NAME_MAX + 1];	/* the limit whose cap it was */
	uint32_t cap;			/* its value */
	uint32_t live;			/* live relays it counted */
	char source[PEER_MAX + 1];	/* the source as counted: an IPv4
					 * address or an IPv6 /64 */
};

/* store_conn_register_shaped(), refused when the relay would take a
 * limit of its chain past a cap (store-caps.c): STORE_ECAPS for
 * max_conns, STORE_ECAPSRC for max_conns_per_source, *refusal (when not
 * NULL) says which, and the refusing limit's refused count rises in the
 * same transaction.  No record is left. */
int
store_conn_register_capped(struct store *store, struct conn_info *info,
    int shaped[2], uint64_t quantum_B[2], size_t *levels,
    struct cap_refusal *refusal);

/* The source a peer string ("A.B.C.D:PORT", "[V6]:PORT") is counted as
 * for max_conns_per_source: IPv4 by its address (an IPv4-mapped IPv6
 * address too), IPv6 by its /64.  0 and the key (family 4 or 6, then
 * the address bytes that count), or -1 for a peer that is no address
 * (never counted per source). */
#define SOURCE_V6_PREFIX	64
struct source_key {
	int family;
	unsigned char bytes[8];
};

int
source_key_of(const char *peer, struct source_key *key);

void
source_key_format(const struct source_key *key, char *out, size_t size);

int
store_conn_unregister(struct store *store, uint32_t id);

int
store_conn_get(struct store *store, uint32_t id, struct conn_info *info);

int
store_conn_foreach(struct store *store, conn_visit_fn visit, void *ctx);

/* Visit the connections registered since the registration counter read
 * *since (0: every connection), then set *since to the counter now: a
 * refiller learns of new relays on every tick in one read transaction,
 * without walking them all.  After the ids wrap, live ones the counter
 * stepped over are visited again. */
int
store_conn_foreach_new(struct store *store, uint32_t *since,
    conn_visit_fn visit, void *ctx);

/* A relay process seen to exit (refiller: pidfd). */
struct conn_exit {
	uint32_t id;
	pid_t pid;
};

/* Remove the record of each exits[i].id that still names exits[i].pid
 * and take it off its chain's relay counts, as the relay's own
 * unregister would have.  *dropped says how many were there. */
int
store_conn_drop_exited(struct store *store, const struct conn_exit *exits,
    size_t nexits, unsigned *dropped);

/* Draw want_B bytes for connection id in direction dir from its limit and
 * every ancestor at once.  Counts the bytes on the connection and on every
 * level.  A missing limit (deleted) is unshaped.  A draw that would take
 * its bottleneck past the debt cap (bucket_debt_max() for the relays on
 * it: at least its burst; bucket.h) is refused: grant->bytes is 0 and
 * release_ns says when to try again (the time it fits plus this
 * connection's slot of the retry spread).  So is a draw past the rate of a
 * limit with a ceiling whose borrow does not fit yet but would sooner than
 * its rate lets it queue (bucket_draw_ceil). */
int
store_reserve(struct store *store, uint32_t id, const char *limit, int dir,
    uint64_t want_B, struct grant *grant);

/* store_reserve(), trying the sparse lane first when sparse is
 * LANE_SPARSE or LANE_FRESH (bucket_draw_lane(); not on a chain with a
 * ceiling): then the grant says sparse and is released at once. */
int
store_reserve_lane(struct store *store, uint32_t id, const char *limit,
    int dir, uint64_t want_B, int sparse, struct grant *grant);

/* For relays moving bytes unshaped: count moved_B on the connection and
 * its chain, and say whether each direction is shaped now. */
int
store_account(struct store *store, uint32_t id, const char *limit,
    const uint64_t moved_B[2], int shaped[2], uint64_t quantum_B[2]);

/* Global limits, shaperd's side (shaperd/global.c). */
struct global_lease {
	char name[LIMIT_NAME_MAX + 1];
	uint64_t share_Bps[2];
	uint64_t lease_until_ns;	/* CLOCK_MONOTONIC */
	uint32_t nhosts;
	uint64_t version;		/* configuration in Redis ... */
	uint64_t rate_Bps[2];		/* ... its global rates */
	uint64_t burst_B;
	uint32_t hosts_set;		/* ... its set --hosts; 0 = none */
};

/* Apply leases in one write transaction: each named global limit runs at
 * its share from now until lease_until_ns, and a newer configuration
 * version is cached as the limit's rates and burst; a changed host count
 * (nhosts, hosts_set when not 0) as its hosts_seen and hosts.  A limit no longer
 * global, or gone, is skipped. */
int
store_global_lease(struct store *store, const struct global_lease *leases,
    size_t nleases);

/* Redis cannot be reached: every global limit holds its share until
 * until_ns, but never past its lease end plus its grace. */
int
store_global_hold(struct store *store, uint64_t until_ns);

/* shaperd stopping: every lease and hold ends now (its relays go to
 * their offline policy), before its records are dropped from Redis. */
int
store_global_release(struct store *store);

/* The rate a global limit's bucket runs at in direction dir, in state
 * *state, at now_ns, from its configuration and live state. */
uint64_t
global_rate_at(const struct limit_cfg *cfg, const struct global_live *live,
    int dir, uint64_t now_ns, enum global_state *state);

const char *
global_state_name(enum global_state state);

/* The hosts a global limit's floor of global / hosts divides by: the
 * largest of the count configured (--hosts), the count Redis gave at
 * this host's last lease as kept in the configuration, and the one in
 * live (NULL: none); 0 = none known, and such a floor runs at 1 byte/s. */
uint32_t
global_floor_hosts(const struct limit_cfg *cfg, const struct global_live *live);

/* 1 when cfg is a global limit on the floor policy whose floor is global /
 * hosts on a rated direction and no host count is configured or kept:
 * set refuses to make one (STORE_ENOHOSTS). */
int
global_floor_unknown(const struct limit_cfg *cfg);

/* Refiller side. */
typedef void (*bucket_tick_fn)(void *ctx, struct limit_info *info);
typedef void (*conn_tick_fn)(void *ctx, struct conn_info *info);

int
store_tick(struct store *store, bucket_tick_fn bucket_tick,
    conn_tick_fn conn_tick, void *ctx);

int
store_reap(struct store *store, conn_alive_fn alive, void *ctx,
    unsigned *reaped);

/* Disk blocks kept allocated in the state file past the last page LMDB
 * uses.  LMDB grows the file when no freed page can be reused yet (a
 * reader holds an old snapshot, many relays start at once); on a full
 * filesystem that growth fails, and a relay that cannot draw passes bytes
 * on unshaped.  The refiller keeps this much allocated ahead, and a limit
 * change is refused (ENOSPC) while the filesystem has less than
 * STORE_FS_FREE_MIN_B free, so that the room left is the relays'. */
#define STORE_HEADROOM_B	(8ULL * 1024 * 1024)
#define STORE_FS_FREE_MIN_B	(1ULL * 1024 * 1024)

/* Allocates the state file's blocks up to STORE_HEADROOM_B past its last
 * used page (fallocate; nothing written).  0 while at least half of that
 * is allocated, else an errno value: ENOSPC when the filesystem cannot
 * give it, EOPNOTSUPP when it cannot preallocate at all. */
int
store_keep_headroom(struct store *store);

int
store_reader_check(struct store *store, int *cleared);

/* A process holding a snapshot of the store (a read transaction). */
struct store_reader {
	pid_t pid;
	uint64_t txnid;		/* the commit it reads */
};

/* The readers holding a snapshot now (up to cap of them in readers[],
 * *count of them), and the newest commit: a reader far behind keeps
 * every page written since from reuse, and the file grows. */
int
store_readers(struct store *store, struct store_reader *readers, size_t cap,
    size_t *count, uint64_t *last_txnid);

int
store_boot_reset(struct store *store, int *was_reset);

/* A live store of a past boot (kept on disk, -S DIR) is reset by the first
 * process of this boot to open it, before that process registers: else a
 * relay that registered after the reboot would be taken for the past
 * boot's by the first refiller, and its record dropped.  Decided by boot
 * ids only (both known and different); cheap when the store is this
 * boot's (a read transaction). */
int
store_boot_follow(struct store *store, int *was_reset);

/* A live store made now holds this boot's records: stamped with the boot
 * (as store_boot_reset leaves it), unless it is already, so that the first
 * refiller to run does not take the relays that registered before it for
 * a past boot's and drop their records (caps, counts and kill lost them). */
int
store_boot_stamp(struct store *store);

int
store_meta_put(struct store *store, const char *key, const void *value,
    size_t size);

int
store_meta_get(struct store *store, const char *key, void *value,
    size_t size, size_t *got);

int
store_sync(struct store *store);

/* The store as a whole, for shaperd's metrics: one short read
 * transaction, then LMDB's reader table. */
struct store_env_stats {
	uint64_t file_B;	/* the state file's size on disk */
	uint64_t map_B;		/* the map: the most the file may grow to */
	uint64_t used_B;	/* pages up to the last one in use */
	uint64_t free_B;	/* pages on LMDB's free list, to be reused */
	uint64_t page_B;	/* the page size */
	uint64_t last_txnid;	/* write transactions committed so far */
	uint64_t limits;	/* limit records */
	uint64_t conns;		/* connection records (live relays) */
	uint32_t readers;	/* reader slots inside a read transaction */
	uint64_t reader_lag_txns;	/* write txns since the oldest reader's
					 * snapshot: its pages cannot be reused */
};

int
store_env_stats(struct store *store, struct store_env_stats *stats);

/* Decode one record as the store would (0 limit, 1 bucket, 2 conn): 0 if
 * valid, STORE_EDAMAGED otherwise.  For the fuzzer and the tests. */
int
store_decode_record(int kind, const void *data, size_t size);

#endif
