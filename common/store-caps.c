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
#include <stdio.h>
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

/* A record whose relay is gone (killed with no shaperd yet to reap it)
 * must not hold a slot: a cap would then stay full for ever.  A pid
 * reused since is taken as live, which errs towards refusing. */
static int
relay_alive(const struct conn_info *conn)
{
	if (conn->pid <= 0)
		return 1;
	return kill(conn->pid, 0) == 0 || errno != ESRCH;
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
};

/* Counts the live relays in each level's subtree (when totals) and those
 * from source (when have_key), one pass over the registry: a relay's
 * record says its limit and peer, not its ancestors. */
static int
count_relays(struct store *store, MDB_txn *txn, const struct chain *chain,
    struct caps_scan *scan, int totals, int have_key,
    const struct source_key *key)
{
	MDB_cursor *cursor = NULL;
	MDB_val mkey, value;
	struct conn_rec conn;
	struct source_key other;
	size_t level;
	int rc, from_source;

	if ((rc = mdb_cursor_open(txn, store->conns, &cursor)))
		return rc;
	for (rc = mdb_cursor_get(cursor, &mkey, &value, MDB_FIRST); rc == 0;
	    rc = mdb_cursor_get(cursor, &mkey, &value, MDB_NEXT)) {
		/* A damaged record is store_reap's to remove. */
		if (decode_conn(&value, &conn) || conn.info.limit[0] == '\0')
			continue;
		from_source = have_key &&
		    source_key_of(conn.info.peer, &other) == 0 &&
		    same_source(key, &other);
		if (!totals && !from_source)
			continue;
		if ((rc = level_of(store, txn, chain, &scan->cache,
		    conn.info.limit, &level)))
			break;
		if (level == chain->depth || !relay_alive(&conn.info))
			continue;
		scan->total[level]++;
		if (from_source)
			scan->from_source[level]++;
	}
	mdb_cursor_close(cursor);
	if (rc != MDB_NOTFOUND)
		return rc;
	/* Counted at the lowest level; each level holds those below it. */
	for (level = 1; level < chain->depth; level++) {
		scan->total[level] += scan->total[level - 1];
		scan->from_source[level] += scan->from_source[level - 1];
	}
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
