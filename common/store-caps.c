/*
 * Caps on live relays (issue 12 item 4): a limit's max_conns bounds the
 * relays in its subtree (itself and every limit nested in it), its
 * max_conns_per_source those of them from one source; every ancestor's
 * caps apply too.  Checked inside the registration's write transaction,
 * so two relays registering at once cannot both take the last slot, in
 * every launch mode (systemd, inetd, UCSPI, iprelay), since each relay
 * registers itself.  Also what a source is: an IPv4 address (an
 * IPv4-mapped IPv6 address is its IPv4 address), or an IPv6 /64, the
 * block one site or one customer is usually given.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <lmdb.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "store-impl.h"

/* Distinct limit names of counted relays whose place in the chain is
 * remembered during one check; past it a name's chain is walked again. */
#define LEVEL_CACHE	16

int
source_key_of(const char *peer, struct source_key *key)
{
	char text[PEER_MAX + 1];
	const char *end;
	unsigned char addr[16];
	size_t len;

	memset(key, 0, sizeof(*key));
	if (peer[0] == '[') {
		end = strchr(peer, ']');
		if (end == NULL)
			return -1;
		peer++;
	} else {
		end = strrchr(peer, ':');
		if (end == NULL)
			return -1;
	}
	len = (size_t)(end - peer);
	if (len >= sizeof(text))
		return -1;
	memcpy(text, peer, len);
	text[len] = '\0';
	if (inet_pton(AF_INET, text, addr) == 1) {
		key->family = 4;
		memcpy(key->bytes, addr, 4);
		return 0;
	}
	if (inet_pton(AF_INET6, text, addr) != 1)
		return -1;
	if (IN6_IS_ADDR_V4MAPPED((struct in6_addr *)addr)) {
		key->family = 4;
		memcpy(key->bytes, addr + 12, 4);
		return 0;
	}
	key->family = 6;
	memcpy(key->bytes, addr, SOURCE_V6_PREFIX / 8);
	return 0;
}

void
source_key_format(const struct source_key *key, char *out, size_t size)
{
	unsigned char addr[16] = { 0 };
	char text[INET6_ADDRSTRLEN];

	if (key->family == 4) {
		inet_ntop(AF_INET, key->bytes, text, sizeof(text));
		snprintf(out, size, "%s", text);
	} else if (key->family == 6) {
		memcpy(addr, key->bytes, SOURCE_V6_PREFIX / 8);
		inet_ntop(AF_INET6, addr, text, sizeof(text));
		snprintf(out, size, "%s/%d", text, SOURCE_V6_PREFIX);
	} else {
		snprintf(out, size, "unknown");
	}
}

static int
same_source(const struct source_key *a, const struct source_key *b)
{
	return a->family == b->family &&
	    memcmp(a->bytes, b->bytes, sizeof(a->bytes)) == 0;
}

/* A record whose relay is gone (killed, and no refiller to reap it)
 * must not hold a slot: a cap would then stay full for ever.  A pid
 * reused since is taken as live, which errs towards refusing. */
static int
relay_alive(pid_t pid)
{
	if (pid <= 0)
		return 1;
	return kill(pid, 0) == 0 || errno != ESRCH;
}

/* Whether the refiller the store names ("PID shaperd") still runs: it
 * drops a dead relay's record within a tick (pidfd), so the records can
 * be trusted.  Asking each record's process instead costs a system call
 * a record (4 us here: 2 ms for a cap of 500), inside the write lock. */
static int
refiller_alive(struct store *store, MDB_txn *txn)
{
	char who[96];
	size_t got;
	long pid;

	if (meta_get_txn(store, txn, "refiller", who, sizeof(who) - 1, &got))
		return 0;
	who[got] = '\0';
	pid = strtol(who, NULL, 10);
	return pid > 0 && pid <= INT32_MAX && relay_alive((pid_t)pid);
}

/* The fields of a record a count reads, taken in place: a scan reads
 * every record, and decode_conn copies and checks all of one.  -1 for a
 * record that is not one (store_reap's to remove). */
struct conn_peek {
	pid_t pid;
	char limit[LIMIT_NAME_MAX + 1];
	char peer[PEER_MAX + 1];
};

static int
peek_conn(const MDB_val *value, struct conn_peek *peek)
{
	const char *data = value->mv_data;
	uint32_t magic;

	if (value->mv_size != sizeof(struct conn_rec))
		return -1;
	memcpy(&magic, data + offsetof(struct conn_rec, magic), sizeof(magic));
	memcpy(&peek->pid, data + offsetof(struct conn_rec, info.pid),
	    sizeof(peek->pid));
	memcpy(peek->limit, data + offsetof(struct conn_rec, info.limit),
	    sizeof(peek->limit));
	memcpy(peek->peer, data + offsetof(struct conn_rec, info.peer),
	    sizeof(peek->peer));
	if (magic != CONN_MAGIC ||
	    memchr(peek->limit, '\0', sizeof(peek->limit)) == NULL ||
	    memchr(peek->peer, '\0', sizeof(peek->peer)) == NULL)
		return -1;
	return 0;
}

struct level_cache {
	size_t n;
	char names[LEVEL_CACHE][LIMIT_NAME_MAX + 1];
	size_t levels[LEVEL_CACHE];
};

/* The lowest level of chain that limit is in the subtree of (then every
 * level above it too), or chain->depth for none. */
static int
level_of(struct store *store, MDB_txn *txn, const struct chain *chain,
    struct level_cache *cache, const char *limit, size_t *level)
{
	struct bucket_rec rec;
	char name[LIMIT_NAME_MAX + 1];
	size_t index, walked;
	int rc;

	for (index = 0; index < cache->n; index++)
		if (strcmp(cache->names[index], limit) == 0) {
			*level = cache->levels[index];
			return 0;
		}
	*level = chain->depth;
	snprintf(name, sizeof(name), "%s", limit);
	for (walked = 0; name[0] && walked < CHAIN_MAX && *level ==
	    chain->depth; walked++) {
		for (index = 0; index < chain->depth; index++)
			if (strcmp(chain->names[index], name) == 0) {
				*level = index;
				break;
			}
		rc = get_bucket(store, txn, name, &rec);
		if (rc == STORE_ENOLIMIT)
			break;
		if (rc)
			return rc;
		memcpy(name, rec.parent, sizeof(name));
	}
	if (cache->n < LEVEL_CACHE) {
		strcpy(cache->names[cache->n], limit);
		cache->levels[cache->n++] = *level;
	}
	return 0;
}

struct caps_scan {
	uint32_t max[CHAIN_MAX], max_source[CHAIN_MAX];
	uint32_t total[CHAIN_MAX], from_source[CHAIN_MAX];
	struct level_cache cache;
	/* An IPv4 source as its peers start ("192.0.2.1:"); "" for IPv6. */
	char v4_prefix[24];
	int check_alive;	/* no refiller: ask each relay's process */
};

/* Whether a record may be from the source, read in place: a scan reads
 * every record, and decoding one copies and checks all of it.  An IPv4
 * peer is written as inet_ntop writes it (the only form inet_pton takes),
 * so only its prefix is compared; a bracketed peer may be IPv6 or a
 * mapped IPv4 in any of its forms, and is parsed. */
static int
may_be_from(const MDB_val *value, const struct caps_scan *scan)
{
	const char *peer;

	if (value->mv_size != sizeof(struct conn_rec))
		return 0;	/* not a record: never counted */
	peer = (const char *)value->mv_data +
	    offsetof(struct conn_rec, info.peer);
	if (peer[0] == '[')
		return 1;
	return scan->v4_prefix[0] && strncmp(peer, scan->v4_prefix,
	    strlen(scan->v4_prefix)) == 0;
}

/* Counts the live relays in each level's subtree (when totals) and those
 * from source (when have_key), one pass over the registry: a relay's
 * record says its limit and peer, not its ancestors.  It stops once a
 * cap is reached: a refusal then costs at most the cap's number of
 * liveness checks, not one per record. */
static int
count_relays(struct store *store, MDB_txn *txn, const struct chain *chain,
    struct caps_scan *scan, int totals, int have_key,
    const struct source_key *key)
{
	MDB_cursor *cursor = NULL;
	MDB_val mkey, value;
	struct conn_peek conn;
	struct source_key other;
	size_t level;
	int rc, from_source, reached = 0;

	if ((rc = mdb_cursor_open(txn, store->conns, &cursor)))
		return rc;
	for (rc = mdb_cursor_get(cursor, &mkey, &value, MDB_FIRST); rc == 0;
	    rc = mdb_cursor_get(cursor, &mkey, &value, MDB_NEXT)) {
		if (!totals && !may_be_from(&value, scan))
			continue;
		if (peek_conn(&value, &conn) || conn.limit[0] == '\0')
			continue;
		from_source = have_key &&
		    source_key_of(conn.peer, &other) == 0 &&
		    same_source(key, &other);
		if (!totals && !from_source)
			continue;
		/* A name that is no limit's is found on no level. */
		if ((rc = level_of(store, txn, chain, &scan->cache,
		    conn.limit, &level)))
			break;
		if (level == chain->depth ||
		    (scan->check_alive && !relay_alive(conn.pid)))
			continue;
		/* In the subtree of this level and of every one above it. */
		for (; level < chain->depth; level++) {
			scan->total[level]++;
			if (from_source)
				scan->from_source[level]++;
			if ((totals && scan->max[level] &&
			    scan->total[level] >= scan->max[level]) ||
			    (from_source && scan->max_source[level] &&
			    scan->from_source[level] >= scan->max_source[level]))
				reached = 1;
		}
		if (reached)
			break;
	}
	mdb_cursor_close(cursor);
	if (rc && rc != MDB_NOTFOUND)
		return rc;
	return 0;
}

static int
refuse(struct store *store, MDB_txn *txn, struct chain *chain, size_t level,
    int by_source, uint32_t cap, uint32_t live, const struct source_key *key,
    struct cap_refusal *refusal)
{
	struct bucket_rec *rec = &chain->recs[level];

	/* Counted if it can be; the refusal stands either way. */
	rec->refused[by_source]++;
	(void)put_bucket(store, txn, chain->names[level], rec);
	if (refusal) {
		memset(refusal, 0, sizeof(*refusal));
		strcpy(refusal->limit, chain->names[level]);
		refusal->cap = cap;
		refusal->live = live;
		source_key_format(key, refusal->source,
		    sizeof(refusal->source));
	}
	return by_source ? STORE_ECAPSRC : STORE_ECAPS;
}

int
caps_check(struct store *store, MDB_txn *txn, struct chain *chain,
    const struct conn_info *info, struct cap_refusal *refusal)
{
	struct caps_scan scan;
	struct limit_rec limit;
	struct source_key key;
	size_t level;
	int rc, any_source = 0, totals = 0, have_key;

	if (chain->depth == 0)
		return 0;
	memset(&scan, 0, sizeof(scan));
	for (level = 0; level < chain->depth; level++) {
		rc = get_limit(store, txn, chain->names[level], &limit);
		if (rc == STORE_ENOLIMIT)
			continue;
		if (rc)
			return rc;
		scan.max[level] = limit.cfg.max_conns;
		scan.max_source[level] = limit.cfg.max_conns_per_source;
		any_source |= scan.max_source[level] != 0;
		/* The subtree's count is kept on its bucket; only a cap it
		 * reaches is counted again, live relays only (a record of a
		 * killed relay may not have been reaped yet). */
		if (scan.max[level] &&
		    chain->recs[level].nconns >= scan.max[level])
			totals = 1;
	}
	have_key = source_key_of(info->peer, &key) == 0;
	if (!totals && !(any_source && have_key))
		return 0;
	scan.check_alive = !refiller_alive(store, txn);
	if (have_key && key.family == 4) {
		source_key_format(&key, scan.v4_prefix, sizeof(scan.v4_prefix));
		strcat(scan.v4_prefix, ":");
	}
	if ((rc = count_relays(store, txn, chain, &scan, totals,
	    any_source && have_key, &key)))
		return rc;
	for (level = 0; level < chain->depth; level++) {
		if (totals && scan.max[level] &&
		    scan.total[level] >= scan.max[level])
			return refuse(store, txn, chain, level, 0,
			    scan.max[level], scan.total[level], &key, refusal);
		if (have_key && scan.max_source[level] &&
		    scan.from_source[level] >= scan.max_source[level])
			return refuse(store, txn, chain, level, 1,
			    scan.max_source[level], scan.from_source[level],
			    &key, refusal);
	}
	return 0;
}
