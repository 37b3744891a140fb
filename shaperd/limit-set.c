/*
 * iprelay-limit's commands that change a limit: set (every word checked
 * before the store is touched, then only the fields given written, a
 * global limit's rates to Redis first) and del.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iprelay-limit.h"
#include "limit-caps.h"
#include "limit-format.h"
#include "limit-global.h"

/* A rate given to set; a bad one is named, exit 100. */
static uint64_t
rate_given(const char *word)
{
	uint64_t rate_Bps;

	if (parse_rate(word, &rate_Bps))
		bad_word("bad rate: '%s' (bytes/s with optional K, M or G, "
		    "or 0 or unlimited)", word);
	return rate_Bps;
}

/* A ceiling given to set: none, no borrowing; 0 or unlimited, borrow
 * whatever the ancestors have idle; else a rate.  A bad one is named,
 * exit 100. */
static uint64_t
ceil_given(const char *word)
{
	uint64_t rate_Bps;

	if (strcmp(word, "none") == 0)
		return CEIL_NONE;
	if (parse_rate(word, &rate_Bps))
		bad_word("bad ceiling: '%s' (bytes/s with optional K, M or G, "
		    "0 or unlimited, or none)", word);
	return rate_Bps ? rate_Bps : CEIL_UNLIMITED;
}

/* --offline, --grace, --floor and --hosts, checked before the store is
 * touched. */
static void
parse_offline(const struct options *options, struct limit_cfg *cfg,
    unsigned *fields)
{
	uint64_t grace_ns, floor_Bps;

	if (options->offline) {
		if (strcmp(options->offline, "floor") == 0)
			cfg->offline = GLOBAL_FLOOR;
		else if (strcmp(options->offline, "closed") == 0)
			cfg->offline = GLOBAL_CLOSED;
		else if (strcmp(options->offline, "open") == 0)
			cfg->offline = GLOBAL_OPEN;
		else
			bad_word("bad offline policy: '%s' (floor, closed or "
			    "open)", options->offline);
		*fields |= LIMIT_FIELD_OFFLINE;
	}
	if (options->grace) {
		if (parse_duration_ns(options->grace, &grace_ns) ||
		    grace_ns > (uint64_t)GLOBAL_GRACE_MAX_MS * 1000000)
			bad_word("bad grace: '%s' (seconds, 0 to 86400)",
			    options->grace);
		cfg->grace_ms = grace_ns == 0 ? GLOBAL_GRACE_NONE :
		    grace_ns / 1000000 ? (uint32_t)(grace_ns / 1000000) : 1;
		*fields |= LIMIT_FIELD_GRACE;
	}
	if (options->floor) {
		if (strcmp(options->floor, "auto") == 0)
			floor_Bps = 0;
		else if (parse_rate(options->floor, &floor_Bps) ||
		    floor_Bps == 0)
			bad_word("bad floor: '%s' (bytes/s with optional K, M "
			    "or G, or auto for global / hosts)",
			    options->floor);
		cfg->floor_Bps[DIR_UP] = cfg->floor_Bps[DIR_DOWN] = floor_Bps;
		*fields |= LIMIT_FIELD_FLOOR;
	}
	if (options->hosts) {
		char *end;
		unsigned long hosts;

		errno = 0;
		hosts = strtoul(options->hosts, &end, 10);
		if (options->hosts[0] < '1' || options->hosts[0] > '9' ||
		    *end || errno || hosts > GLOBAL_HOSTS_MAX)
			bad_word("bad host count: '%s' (1 to %u)",
			    options->hosts, GLOBAL_HOSTS_MAX);
		cfg->hosts = (uint32_t)hosts;
		*fields |= LIMIT_FIELD_HOSTS;
	}
}

/* The floor's refusal: nothing to divide the global rate by. */
static int
no_host_count(const char *name)
{
	fprintf(stderr, "iprelay-limit: refused: %s: its floor is global / "
	    "hosts and no host count is known: give --hosts N (the relay "
	    "hosts sharing it), --floor RATE, or --offline closed or open\n",
	    name);
	return EXIT_POLICY;
}

/* set --no-create's refusal: a typo or another store than the daemon's
 * reads as what it is. */
static int
no_limit_to_change(const char *name)
{
	fprintf(stderr, "iprelay-limit: refused: no limit %s in %s (%s) to "
	    "change, and --no-create makes none\n", name, used_dir,
	    store_source);
	return EXIT_POLICY;
}

int
command_set(const struct options *options)
{
	const char *name, *refusal;
	struct store *store;
	struct limit_cfg cfg, written;
	uint64_t rate_Bps = 0, up_Bps = 0, down_Bps = 0, burst_B = 0;
	uint64_t ceil_Bps = CEIL_NONE, ceil_up_Bps = CEIL_NONE;
	uint64_t ceil_down_Bps = CEIL_NONE;
	static const char *dir_name[2] = { "up", "down" };
	char ceil_text[32], rate_text[32];
	unsigned fields = 0;
	int rc, dir, created = 0;

	if (options->nwords < 1)
		usage_error("set: missing NAME");
	if (options->nwords > 2)
		usage_error("set: unexpected word '%s'", options->words[2]);
	name = options->words[0];
	check_name("limit name", name);
	if (options->nwords == 1 && !options->up && !options->down &&
	    !options->burst && !options->parent && !options->ceil &&
	    !options->ceil_up && !options->ceil_down && !options->global &&
	    !options->local && !options->offline && !options->grace &&
	    !options->floor && !options->hosts && !options->max_conns &&
	    !options->max_source)
		usage_error("set: missing RATE (or --up, --down, --burst, "
		    "--parent, --ceil, --global, --local, --hosts, "
		    "--max-conns)");
	if (options->global && options->local)
		usage_error("set: --global and --local exclude each other");
	/* Check every word before touching the store. */
	if (options->nwords == 2)
		rate_Bps = rate_given(options->words[1]);
	if (options->up)
		up_Bps = rate_given(options->up);
	if (options->down)
		down_Bps = rate_given(options->down);
	if (options->burst && strcmp(options->burst, "auto") == 0)
		burst_B = 0;
	else if (options->burst && parse_bytes(options->burst, BURST_MAX,
	    &burst_B))
		bad_word("bad burst: '%s' (bytes with optional K, M or G, "
		    "or auto)", options->burst);
	if (options->ceil)
		ceil_Bps = ceil_given(options->ceil);
	if (options->ceil_up)
		ceil_up_Bps = ceil_given(options->ceil_up);
	if (options->ceil_down)
		ceil_down_Bps = ceil_given(options->ceil_down);
	if (options->parent && options->parent[0] &&
	    strcmp(options->parent, "none") != 0)
		check_name("parent name", options->parent);
	if (options->parent && strcmp(options->parent, name) == 0) {
		fprintf(stderr, "iprelay-limit: refused: %s cannot be its own "
		    "parent\n", name);
		return EXIT_POLICY;
	}

	/* Only the fields given are set; the store keeps the others as they
	 * are when it writes (another set may be running beside this one). */
	memset(&cfg, 0, sizeof(cfg));
	if (options->nwords == 2) {
		for (dir = 0; dir < 2; dir++)
			cfg.rate_Bps[dir] = rate_Bps;
		fields |= LIMIT_FIELD_UP | LIMIT_FIELD_DOWN;
	}
	if (options->up) {
		cfg.rate_Bps[DIR_UP] = up_Bps;
		fields |= LIMIT_FIELD_UP;
	}
	if (options->down) {
		cfg.rate_Bps[DIR_DOWN] = down_Bps;
		fields |= LIMIT_FIELD_DOWN;
	}
	if (options->burst) {
		cfg.burst_B = burst_B;
		fields |= LIMIT_FIELD_BURST;
	}
	if (options->parent) {
		if (strcmp(options->parent, "none") != 0)
			snprintf(cfg.parent, sizeof(cfg.parent), "%s",
			    options->parent);
		fields |= LIMIT_FIELD_PARENT;
	}
	if (options->ceil) {
		for (dir = 0; dir < 2; dir++)
			cfg.ceil_Bps[dir] = ceil_Bps;
		fields |= LIMIT_FIELD_CEIL_UP | LIMIT_FIELD_CEIL_DOWN;
	}
	if (options->ceil_up) {
		cfg.ceil_Bps[DIR_UP] = ceil_up_Bps;
		fields |= LIMIT_FIELD_CEIL_UP;
	}
	if (options->ceil_down) {
		cfg.ceil_Bps[DIR_DOWN] = ceil_down_Bps;
		fields |= LIMIT_FIELD_CEIL_DOWN;
	}
	parse_offline(options, &cfg, &fields);
	caps_parse(options->max_conns, options->max_source, &cfg, &fields);
	/* Looked up before anything is written, Redis or a new state file;
	 * store_limit_write checks again under the lock. */
	if (options->no_create) {
		struct store *reading = open_for_reading(options);
		struct limit_info current;

		rc = reading ? store_limit_get(reading, name, &current) :
		    STORE_ENOLIMIT;
		store_close(reading);
		if (rc == STORE_ENOLIMIT)
			return no_limit_to_change(name);
	}
	if (options->global) {
		struct global_set given, redis_cfg;
		struct redis_conf redis;
		uint64_t version;
		struct store *reading;
		struct limit_info current;
		struct limit_cfg merged;

		redis_endpoint(options, &redis, "set --global");
		/* Whether Redis must know the host count: this host's would-be
		 * configuration with none (store_limit_write checks again). */
		reading = open_for_reading(options);
		if (reading == NULL || store_limit_get(reading, name, &current))
			memset(&current, 0, sizeof(current));
		store_close(reading);
		merged = current.cfg;
		merged.global = 1;
		merged.rate_Bps[DIR_UP] = merged.rate_Bps[DIR_DOWN] = 1;
		if (fields & LIMIT_FIELD_OFFLINE)
			merged.offline = cfg.offline;
		if (fields & LIMIT_FIELD_FLOOR)
			merged.floor_Bps[DIR_UP] = merged.floor_Bps[DIR_DOWN] =
			    cfg.floor_Bps[DIR_UP];
		if (fields & LIMIT_FIELD_HOSTS)
			merged.hosts = cfg.hosts;
		memset(&given, 0, sizeof(given));
		given.need_hosts = global_floor_unknown(&merged);
		given.have_hosts = (fields & LIMIT_FIELD_HOSTS) != 0;
		given.hosts = cfg.hosts;
		given.have_up = (fields & LIMIT_FIELD_UP) != 0;
		given.have_down = (fields & LIMIT_FIELD_DOWN) != 0;
		given.have_burst = (fields & LIMIT_FIELD_BURST) != 0;
		given.rate_Bps[DIR_UP] = cfg.rate_Bps[DIR_UP];
		given.rate_Bps[DIR_DOWN] = cfg.rate_Bps[DIR_DOWN];
		given.burst_B = cfg.burst_B;
		/* Redis first: every host's shaperd reads it there within a
		 * renewal; this host caches what Redis now holds. */
		rc = global_set_in_redis(&redis, name, &given, &redis_cfg,
		    &version);
		if (rc == EXIT_NOHOSTS)
			return no_host_count(name);
		if (rc)
			return rc;
		/* Said on another host: kept here too. */
		if (redis_cfg.hosts) {
			cfg.hosts = redis_cfg.hosts;
			fields |= LIMIT_FIELD_HOSTS;
		}
		cfg.rate_Bps[DIR_UP] = redis_cfg.rate_Bps[DIR_UP];
		cfg.rate_Bps[DIR_DOWN] = redis_cfg.rate_Bps[DIR_DOWN];
		cfg.burst_B = redis_cfg.burst_B;
		cfg.global = 1;
		fields |= LIMIT_FIELD_UP | LIMIT_FIELD_DOWN | LIMIT_FIELD_BURST |
		    LIMIT_FIELD_GLOBAL;
	}
	if (options->local) {
		cfg.global = 0;
		fields |= LIMIT_FIELD_GLOBAL;
	}
	store = open_for_writing(options);
	if (!options->global && !options->local &&
	    (fields & (LIMIT_FIELD_UP | LIMIT_FIELD_DOWN | LIMIT_FIELD_BURST))) {
		struct limit_info current;

		if (store_limit_get(store, name, &current) == 0 &&
		    current.cfg.global) {
			fprintf(stderr, "iprelay-limit: refused: %s is a global "
			    "limit: give --global to change its rates for "
			    "every host, or --local to make it this host's "
			    "own\n", name);
			store_close(store);
			return EXIT_POLICY;
		}
	}
	rc = store_limit_write(store, name, &cfg, fields, options->no_create ?
	    STORE_LIMIT_NO_CREATE : 0, &written, &created);
	if (rc == STORE_ENOLIMIT) {
		store_close(store);
		return no_limit_to_change(name);
	}
	if (rc == STORE_ENOHOSTS) {
		store_close(store);
		return no_host_count(name);
	}
	if (rc == STORE_ECEILGLOBAL) {
		fprintf(stderr, "iprelay-limit: refused: %s: a global limit "
		    "cannot have a ceiling (its hosts' shares add up to its "
		    "rate; borrowing past a share would break that); give "
		    "--ceil none too\n", name);
		store_close(store);
		return EXIT_POLICY;
	}
	/* Both refusals name the values as they would have been written:
	 * the one at fault may be stored, not given. */
	for (dir = 0; rc == STORE_ECEILLOW && dir < 2; dir++) {
		if (written.ceil_Bps[dir] == CEIL_NONE ||
		    written.ceil_Bps[dir] == CEIL_UNLIMITED ||
		    (written.rate_Bps[dir] != 0 &&
		    written.ceil_Bps[dir] >= written.rate_Bps[dir]))
			continue;
		fprintf(stderr, "iprelay-limit: refused: %s: ceiling %s (%s) "
		    "is below the rate %s (%s); give a ceiling of at least "
		    "the rate, unlimited, or none\n", name,
		    format_ceil(written.ceil_Bps[dir], ceil_text,
		    sizeof(ceil_text)), dir_name[dir],
		    format_rate(written.rate_Bps[dir], rate_text,
		    sizeof(rate_text)), dir_name[dir]);
		store_close(store);
		return EXIT_POLICY;
	}
	if (rc == STORE_ECEILTOP) {
		if (options->parent)
			fprintf(stderr, "iprelay-limit: refused: %s: a "
			    "top-level limit cannot have a ceiling (up %s, "
			    "down %s): it has no parent to borrow from; "
			    "give --ceil none too\n", name,
			    format_ceil(written.ceil_Bps[DIR_UP], ceil_text,
			    sizeof(ceil_text)),
			    format_ceil(written.ceil_Bps[DIR_DOWN], rate_text,
			    sizeof(rate_text)));
		else
			fprintf(stderr, "iprelay-limit: refused: %s: a "
			    "ceiling needs a parent limit to borrow from "
			    "(give --parent NAME)\n", name);
		store_close(store);
		return EXIT_POLICY;
	}
	if (rc == STORE_ENOPARENT || rc == STORE_ECYCLE) {
		refusal = rc == STORE_ENOPARENT ? "no such parent limit" :
		    "it would make a cycle of limits";
		fprintf(stderr, "iprelay-limit: refused: parent '%s' for %s: "
		    "%s\n", written.parent, name, refusal);
		store_close(store);
		return EXIT_POLICY;
	}
	/* Closed before any fatal line: a failure here is an answer (a full
	 * filesystem), not a crash, and leaves nothing behind. */
	if (rc) {
		store_close(store);
		log_fatal(EXIT_SYSTEM, "unable to set limit %s: %s", name,
		    store_strerror(rc));
	}
	rc = store_sync(store);
	store_close(store);
	if (rc)
		log_fatal(EXIT_SYSTEM, "unable to write the state file to "
		    "disk: %s", store_strerror(rc));
	printf("%s %s in %s (%s)\n", name, created ? "created" : "changed",
	    used_dir, store_source);
	return 0;
}

int
command_del(const struct options *options)
{
	struct store *store;
	const char *name;
	uint32_t nconns;
	int rc;

	need_words(options, 1, "NAME");
	name = options->words[0];
	check_name("limit name", name);
	store = open_for_writing(options);
	rc = store_limit_del(store, name, &nconns);
	if (rc == STORE_ENOLIMIT || rc == STORE_EHASCHILD) {
		fprintf(stderr, "iprelay-limit: refused: %s: %s\n", name,
		    rc == STORE_ENOLIMIT ? "no such limit" :
		    "it has child limits (delete or re-parent them first)");
		store_close(store);
		return EXIT_POLICY;
	}
	if (rc) {
		store_close(store);
		log_fatal(EXIT_SYSTEM, "unable to delete limit %s: %s", name,
		    store_strerror(rc));
	}
	if ((rc = store_sync(store)))
		log_fatal(EXIT_SYSTEM, "unable to write the state file to "
		    "disk: %s", store_strerror(rc));
	store_close(store);
	say_store();
	if (nconns)
		printf("deleted %s; its %" PRIu32 " live relay%s now run%s "
		    "unshaped until a limit named %s exists again\n", name,
		    nconns, nconns == 1 ? "" : "s", nconns == 1 ? "s" : "",
		    name);
	else
		printf("deleted %s; relays started with it run unshaped until "
		    "a limit named %s exists again\n", name, name);
	return 0;
}

