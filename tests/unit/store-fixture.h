/*
 * The state store's test fixture, shared by the unit programs of the
 * store (unit-store.c, unit-store-conn.c, unit-store-records.c,
 * unit-store-env.c, unit-store-read.c, unit-caps.c, unit-config-sync.c):
 * a temporary dir of state dirs (one a test, by name),
 * removed at the end; bail and is_rc; limits and relays made the short
 * way.  Header only, as tap.h: each unit program is one .c file.
 */
#ifndef IPRELAY_STORE_FIXTURE_H
#define IPRELAY_STORE_FIXTURE_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "store.h"
#include "tap.h"

/* Not every program uses every helper. */
#define FIXTURE_HELPER	static __attribute__((unused))

static char top_dir[64];

FIXTURE_HELPER void
bail(const char *what, int rc)
{
	printf("Bail out! %s: %s\n", what, store_strerror(rc));
	exit(1);
}

/* The top dir, /tmp/PROGRAM.XXXXXX, made; and no IPRELAY_STATE_DIR or
 * IPRELAY_RUNTIME_DIR of the caller's leaks in. */
FIXTURE_HELPER void
fixture_start(const char *program)
{
	snprintf(top_dir, sizeof(top_dir), "/tmp/%s.XXXXXX", program);
	if (mkdtemp(top_dir) == NULL)
		bail("mkdtemp", errno);
	unsetenv("IPRELAY_STATE_DIR");
	unsetenv("IPRELAY_RUNTIME_DIR");
}

FIXTURE_HELPER void
remove_tree(void)
{
	char command[600];

	/* The temp dir is ours alone: mkdtemp made it. */
	snprintf(command, sizeof(command), "rm -rf '%s'", top_dir);
	if (system(command) != 0)
		printf("# could not remove %s\n", top_dir);
}

/* is_rc: the call gave the result wanted; shows both by name if not. */
FIXTURE_HELPER void
is_rc(int got, int want, const char *what)
{
	ok(got == want, "%s", what);
	if (got != want)
		printf("# got %d (%s), want %d (%s)\n", got,
		    store_strerror(got), want, store_strerror(want));
}

/* The state dir NAME under the top dir (the last four stay valid). */
FIXTURE_HELPER char *
dir_for(const char *name)
{
	static char path[4][512];
	static int next;
	char *out = path[next++ % 4];

	snprintf(out, sizeof(path[0]), "%s/%s", top_dir, name);
	return out;
}

/* The store of state dir NAME, opened (made) for writing, or bail. */
FIXTURE_HELPER struct store *
open_at(const char *name)
{
	struct store *store;
	int rc;

	if ((rc = store_open(&store, dir_for(name), 0)))
		bail("store_open", rc);
	return store;
}

FIXTURE_HELPER struct limit_cfg
cfg_of(uint64_t up_Bps, uint64_t down_Bps, uint64_t burst_B,
    const char *parent)
{
	struct limit_cfg cfg;

	memset(&cfg, 0, sizeof(cfg));
	cfg.rate_Bps[DIR_UP] = up_Bps;
	cfg.rate_Bps[DIR_DOWN] = down_Bps;
	cfg.burst_B = burst_B;
	snprintf(cfg.parent, sizeof(cfg.parent), "%s", parent);
	return cfg;
}

FIXTURE_HELPER int
put(struct store *store, const char *name, uint64_t rate_Bps,
    const char *parent)
{
	struct limit_cfg cfg = cfg_of(rate_Bps, rate_Bps, 0, parent);

	return store_limit_put(store, name, &cfg);
}

FIXTURE_HELPER uint32_t
nconns_of(struct store *store, const char *name)
{
	struct limit_info info;

	if (store_limit_get(store, name, &info))
		return 0xffffffff;
	return info.nconns;
}

FIXTURE_HELPER uint32_t
register_conn(struct store *store, const char *limit, pid_t pid)
{
	struct conn_info info;
	int rc;

	memset(&info, 0, sizeof(info));
	info.pid = pid;
	snprintf(info.limit, sizeof(info.limit), "%s", limit);
	snprintf(info.peer, sizeof(info.peer), "127.0.0.1:40000");
	snprintf(info.remote, sizeof(info.remote), "127.0.0.1:80");
	if ((rc = store_conn_register(store, &info)))
		bail("register", rc);
	return info.id;
}

#endif
