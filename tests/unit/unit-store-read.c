/*
 * Reading the store without pinning it (issue 11, item 3): the foreach
 * functions visit every record, in order, across their batches, and call
 * each visitor with no snapshot held, so that a visitor blocked on its
 * output keeps no page from reuse; store_readers names a reader that does
 * hold one.
 */
#include <inttypes.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store.h"
#include "store-fixture.h"
#include "tap.h"


struct visits {
	struct store *store;
	unsigned count;
	unsigned pinned;	/* visits made with a snapshot of ours held */
	unsigned out_of_order;
	uint32_t last_id;
	char last_name[LIMIT_NAME_MAX + 1];
	int writes_failed;
};

/* Whether this process holds a snapshot now. */
static int
snapshot_held(struct store *store)
{
	struct store_reader readers[64];
	uint64_t last_txnid;
	size_t count, index;

	if (store_readers(store, readers, 64, &count, &last_txnid))
		return 1;
	for (index = 0; index < count; index++)
		if (readers[index].pid == getpid())
			return 1;
	return 0;
}

static int
visit_conn(void *ctx, const struct conn_info *info)
{
	struct visits *visits = ctx;
	uint64_t moved_B[2] = { 1, 0 }, quantum_B[2];
	int shaped[2];

	visits->count++;
	visits->pinned += snapshot_held(visits->store);
	visits->out_of_order += info->id <= visits->last_id;
	visits->last_id = info->id;
	/* A visitor may even write: there is no transaction of ours open. */
	if (info->id % 100 == 0 && store_account(visits->store, info->id,
	    info->limit, moved_B, shaped, quantum_B))
		visits->writes_failed++;
	return 0;
}

static int
visit_limit(void *ctx, const struct limit_info *info)
{
	struct visits *visits = ctx;

	visits->count++;
	visits->pinned += snapshot_held(visits->store);
	visits->out_of_order += strcmp(info->name, visits->last_name) <= 0;
	snprintf(visits->last_name, sizeof(visits->last_name), "%s",
	    info->name);
	return 0;
}

static int
stop_at_300(void *ctx, const struct conn_info *info)
{
	struct visits *visits = ctx;

	(void)info;
	return ++visits->count == 300 ? 42 : 0;
}

int
main(void)
{
	struct store *store;
	struct limit_cfg cfg;
	struct conn_info info;
	struct visits visits;
	struct store_reader readers[64];
	uint64_t last_txnid;
	size_t count;
	char name[32];
	unsigned index;
	int rc;

	fixture_start("unit-store-read");
	if ((rc = store_open(&store, top_dir, 0)))
		bail("open", rc);
	memset(&cfg, 0, sizeof(cfg));
	cfg.rate_Bps[DIR_UP] = cfg.rate_Bps[DIR_DOWN] = 1048576;
	/* Past two batches of each kind, and not a multiple of one. */
	for (index = 0; index < 700; index++) {
		snprintf(name, sizeof(name), "limit-%04u", index);
		if ((rc = store_limit_put(store, name, &cfg)))
			break;
	}
	ok(rc == 0, "700 limits set");
	for (index = 0; index < 1000 && rc == 0; index++) {
		memset(&info, 0, sizeof(info));
		info.pid = getpid();
		snprintf(info.limit, sizeof(info.limit), "limit-%04u",
		    index % 700);
		rc = store_conn_register(store, &info);
	}
	ok(rc == 0, "1000 connections registered");
	/* Unregister a few, so the ids have holes at batch edges. */
	store_conn_unregister(store, 256);
	store_conn_unregister(store, 257);
	store_conn_unregister(store, 512);

	memset(&visits, 0, sizeof(visits));
	visits.store = store;
	rc = store_conn_foreach(store, visit_conn, &visits);
	ok(rc == 0, "store_conn_foreach over 997 records");
	ok(visits.count == 997, "every connection visited once (%u)",
	    visits.count);
	ok(visits.out_of_order == 0, "in order of id");
	ok(visits.pinned == 0, "no visit made with a snapshot held (%u)",
	    visits.pinned);
	ok(visits.writes_failed == 0, "a visitor may write to the store");

	memset(&visits, 0, sizeof(visits));
	visits.store = store;
	rc = store_limit_foreach(store, visit_limit, &visits);
	ok(rc == 0, "store_limit_foreach over 700 limits");
	ok(visits.count == 700, "every limit visited once (%u)",
	    visits.count);
	ok(visits.out_of_order == 0, "in order of name");
	ok(visits.pinned == 0, "no visit made with a snapshot held (%u)",
	    visits.pinned);

	memset(&visits, 0, sizeof(visits));
	rc = store_conn_foreach(store, stop_at_300, &visits);
	ok(rc == 42 && visits.count == 300,
	    "a visitor's non-zero answer stops the walk and is returned");

	rc = store_readers(store, readers, 64, &count, &last_txnid);
	ok(rc == 0 && count == 0 && last_txnid > 1000,
	    "store_readers: no snapshot held now, %" PRIu64 " commits",
	    last_txnid);

	store_close(store);
	remove_tree();
	return done_testing();
}
