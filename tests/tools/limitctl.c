/*
 * limitctl: sets and reads limits through the store API, for tests that
 * must not depend on iprelay-limit.  Its "set" takes the same words as
 * iprelay-limit's, so a test can use either.
 *
 *   limitctl [-S DIR] set NAME RATE [--up RATE] [--down RATE]
 *            [--burst BYTES] [--parent NAME]
 *   limitctl [-S DIR] total NAME	bytes ever passed: "UP DOWN"
 *   limitctl [-S DIR] nconns NAME	live relays in the subtree
 *   limitctl [-S DIR] hammer NAME up|down|burst N [whole]
 *	sets that one field to 1, 2, ... N with store_limit_update, and
 *	before each checks it still holds the last value written: run two at
 *	once on different fields and any update the other one lost is found
 *	(exit 1).  "whole" reads the limit and writes it all back in two
 *	transactions instead, the race store_limit_update closes.
 *   limitctl [-S DIR] plant PID PEER REMOTE [LIMIT]
 *	registers a connection record naming PID (with its real start
 *	time, as anyone can read it) and the raw PEER and REMOTE bytes, and
 *	prints its id: what the state dir's owner can write into a record.
 *   limitctl [-S DIR] many PREFIX N RATE
 *	sets limits PREFIX1 .. PREFIXN to RATE in one process (a test that
 *	needs hundreds of limits, quickly).
 *   limitctl [-S DIR] register NAME N PID
 *	registers N connection records on limit NAME for process PID (a
 *	live process, so that a refiller does not reap them), each with a
 *	peer and remote as wide as a relay's: a long `conns` listing.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "parse.h"
#include "refiller.h"
#include "store.h"

static const char usage_line[] =
    "usage: limitctl [-S DIR] set NAME RATE [--up RATE] [--down RATE] "
    "[--burst BYTES] [--parent NAME] | total NAME | nconns NAME | "
    "hammer NAME up|down|burst N [whole] | plant PID PEER REMOTE [LIMIT] | "
    "many PREFIX N RATE | register NAME N PID";

static _Noreturn void
usage(void)
{
	fprintf(stderr, "%s\n", usage_line);
	exit(EXIT_USAGE);
}

static uint64_t
rate_or_die(const char *word)
{
	uint64_t rate_Bps;

	if (parse_rate(word, &rate_Bps) < 0)
		log_fatal(EXIT_USAGE, "bad rate: %s", word);
	return rate_Bps;
}

static void
set_limit(struct store *store, int argc, char **argv)
{
	struct limit_cfg cfg;
	const char *name;
	int i, rc;

	if (argc < 2)
		usage();
	memset(&cfg, 0, sizeof(cfg));
	name = argv[0];
	if (!limit_name_valid(name))
		log_fatal(EXIT_USAGE, "bad limit name: %s", name);
	cfg.rate_Bps[DIR_UP] = cfg.rate_Bps[DIR_DOWN] = rate_or_die(argv[1]);
	for (i = 2; i < argc; i += 2) {
		if (i + 1 >= argc)
			usage();
		if (strcmp(argv[i], "--up") == 0)
			cfg.rate_Bps[DIR_UP] = rate_or_die(argv[i + 1]);
		else if (strcmp(argv[i], "--down") == 0)
			cfg.rate_Bps[DIR_DOWN] = rate_or_die(argv[i + 1]);
		else if (strcmp(argv[i], "--burst") == 0) {
			if (parse_bytes(argv[i + 1], BURST_MAX, &cfg.burst_B) < 0)
				log_fatal(EXIT_USAGE, "bad burst: %s",
				    argv[i + 1]);
		} else if (strcmp(argv[i], "--parent") == 0) {
			if (!limit_name_valid(argv[i + 1]))
				log_fatal(EXIT_USAGE, "bad parent name: %s",
				    argv[i + 1]);
			strcpy(cfg.parent, argv[i + 1]);
		} else
			log_fatal(EXIT_USAGE, "bad option: %s", argv[i]);
	}
	rc = store_limit_put(store, name, &cfg);
	if (rc)
		log_fatal(EXIT_SYSTEM, "unable to set limit %s: %s", name,
		    store_strerror(rc));
}

static void
show_limit(struct store *store, const char *what, const char *name)
{
	struct limit_info info;
	int rc;

	rc = store_limit_get(store, name, &info);
	if (rc)
		log_fatal(EXIT_SYSTEM, "unable to read limit %s: %s", name,
		    store_strerror(rc));
	if (strcmp(what, "total") == 0)
		printf("%llu %llu\n",
		    (unsigned long long)info.total_B[DIR_UP],
		    (unsigned long long)info.total_B[DIR_DOWN]);
	else
		printf("%u\n", info.nconns);
}

static uint64_t *
field_of(struct limit_cfg *cfg, unsigned field)
{
	switch (field) {
	case LIMIT_FIELD_UP: return &cfg->rate_Bps[DIR_UP];
	case LIMIT_FIELD_DOWN: return &cfg->rate_Bps[DIR_DOWN];
	default: return &cfg->burst_B;
	}
}

static void
hammer(struct store *store, int argc, char **argv)
{
	struct limit_info info;
	struct limit_cfg cfg;
	unsigned field;
	uint64_t count, value;
	int whole, rc;

	if (argc < 3 || argc > 4 || (argc == 4 && strcmp(argv[3], "whole")))
		usage();
	whole = argc == 4;
	field = strcmp(argv[1], "up") == 0 ? LIMIT_FIELD_UP :
	    strcmp(argv[1], "down") == 0 ? LIMIT_FIELD_DOWN :
	    strcmp(argv[1], "burst") == 0 ? LIMIT_FIELD_BURST : 0;
	if (field == 0 || parse_uint(argv[2], 1, 1000000, &count) < 0)
		usage();
	for (value = 1; value <= count; value++) {
		if ((rc = store_limit_get(store, argv[0], &info)))
			log_fatal(EXIT_SYSTEM, "unable to read limit %s: %s",
			    argv[0], store_strerror(rc));
		if (value > 1 && *field_of(&info.cfg, field) != value - 1) {
			printf("lost update: %s is %llu after writing %llu\n",
			    argv[1], (unsigned long long)*field_of(&info.cfg,
			    field), (unsigned long long)(value - 1));
			exit(1);
		}
		cfg = info.cfg;
		*field_of(&cfg, field) = value;
		rc = whole ? store_limit_put(store, argv[0], &cfg) :
		    store_limit_update(store, argv[0], &cfg, field, NULL);
		if (rc)
			log_fatal(EXIT_SYSTEM, "unable to set limit %s: %s",
			    argv[0], store_strerror(rc));
	}
	printf("%llu updates\n", (unsigned long long)count);
}

static void
plant(struct store *store, int argc, char **argv)
{
	struct conn_info conn;
	uint64_t pid;
	int rc;

	if (argc < 3 || argc > 4 || parse_uint(argv[0], 1, INT32_MAX, &pid))
		usage();
	memset(&conn, 0, sizeof(conn));
	conn.pid = (pid_t)pid;
	conn.pid_start = refiller_proc_start(conn.pid);
	snprintf(conn.peer, sizeof(conn.peer), "%s", argv[1]);
	snprintf(conn.remote, sizeof(conn.remote), "%s", argv[2]);
	if (argc == 4)
		snprintf(conn.limit, sizeof(conn.limit), "%s", argv[3]);
	if ((rc = store_conn_register(store, &conn)))
		log_fatal(EXIT_SYSTEM, "unable to register: %s",
		    store_strerror(rc));
	printf("CONN%06u\n", (unsigned)conn.id);
}

static void
many(struct store *store, int argc, char **argv)
{
	struct limit_cfg cfg;
	char name[LIMIT_NAME_MAX + 1];
	uint64_t count, i;
	int rc;

	if (argc != 3 || parse_uint(argv[1], 1, 100000, &count) < 0)
		usage();
	memset(&cfg, 0, sizeof(cfg));
	cfg.rate_Bps[DIR_UP] = cfg.rate_Bps[DIR_DOWN] = rate_or_die(argv[2]);
	for (i = 1; i <= count; i++) {
		snprintf(name, sizeof(name), "%.40s%llu", argv[0],
		    (unsigned long long)i);
		if (!limit_name_valid(name))
			log_fatal(EXIT_USAGE, "bad limit name: %s", name);
		if ((rc = store_limit_put(store, name, &cfg)))
			log_fatal(EXIT_SYSTEM, "unable to set limit %s: %s",
			    name, store_strerror(rc));
	}
}

static void
register_conns(struct store *store, int argc, char **argv)
{
	struct conn_info info;
	uint64_t count, pid, index;
	int rc;

	if (argc != 3 || parse_uint(argv[1], 1, 999999, &count) < 0 ||
	    parse_uint(argv[2], 1, INT32_MAX, &pid) < 0)
		usage();
	for (index = 0; index < count; index++) {
		memset(&info, 0, sizeof(info));
		info.pid = (pid_t)pid;
		info.pid_start = refiller_proc_start((pid_t)pid);
		snprintf(info.limit, sizeof(info.limit), "%s", argv[0]);
		snprintf(info.peer, sizeof(info.peer), "[2001:db8::%llx]:%llu",
		    (unsigned long long)index,
		    (unsigned long long)(10000 + index));
		snprintf(info.remote, sizeof(info.remote),
		    "origin-%llu.example.org:443", (unsigned long long)index);
		if ((rc = store_conn_register(store, &info)))
			log_fatal(EXIT_SYSTEM, "unable to register: %s",
			    store_strerror(rc));
	}
}

int
main(int argc, char **argv)
{
	struct store *store;
	const char *dir_option = NULL;
	char dir[4096];
	int rc;

	log_open("limitctl", LOG_TO_STDERR);
	if (argc >= 3 && strcmp(argv[1], "-S") == 0) {
		dir_option = argv[2];
		argc -= 2;
		argv += 2;
	}
	if (argc < 3)
		usage();
	if ((rc = store_dir_resolve(dir_option, dir, sizeof(dir))))
		log_fatal(EXIT_USAGE, "unable to find the state dir: %s",
		    store_strerror(rc));
	if ((rc = store_open(&store, dir, 0)))
		log_fatal(EXIT_SYSTEM, "unable to open the store in %s: %s",
		    dir, store_strerror(rc));
	if (strcmp(argv[1], "set") == 0)
		set_limit(store, argc - 2, argv + 2);
	else if (strcmp(argv[1], "plant") == 0)
		plant(store, argc - 2, argv + 2);
	else if (strcmp(argv[1], "many") == 0)
		many(store, argc - 2, argv + 2);
	else if (strcmp(argv[1], "hammer") == 0)
		hammer(store, argc - 2, argv + 2);
	else if (strcmp(argv[1], "register") == 0)
		register_conns(store, argc - 2, argv + 2);
	else if (argc == 3 && (strcmp(argv[1], "total") == 0 ||
	    strcmp(argv[1], "nconns") == 0))
		show_limit(store, argv[1], argv[2]);
	else
		usage();
	if ((rc = store_sync(store)))
		log_fatal(EXIT_SYSTEM, "unable to sync the store: %s",
		    store_strerror(rc));
	store_close(store);
	return 0;
}
