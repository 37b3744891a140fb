/*
 * iprelay-limit: create, change, show and delete limits; list and kill
 * live relays; a refreshing view.  One store transaction per command, so
 * it can run while relays draw and shaperd refills.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "limit-caps.h"
#include "limit-export.h"
#include "limit-global.h"
#include "log.h"
#include "parse.h"
#include "redis.h"
#include "refiller.h"
#include "store.h"
#include "version.h"

#define USAGE \
"usage: iprelay-limit [-S DIR] set NAME [RATE] [--up RATE] [--down RATE]\n" \
"                     [--burst BYTES] [--parent NAME] [--ceil RATE]\n" \
"                     [--ceil-up RATE] [--ceil-down RATE]\n" \
"                     [--global | --local] [--offline floor | closed | open]\n" \
"                     [--grace SECONDS] [--floor RATE] [--hosts N]\n" \
"                     [-R REDIS]\n" \
"                     [--no-create]\n" \
"                     [--max-conns N] [--max-conns-per-source N]\n" \
"       iprelay-limit [-S DIR] [--json] get NAME\n" \
"       iprelay-limit [-S DIR] [--json] list\n" \
"       iprelay-limit [-S DIR] del NAME\n" \
"       iprelay-limit [-S DIR] [--json] conns\n" \
"       iprelay-limit [-S DIR] kill [--drain] ID | all\n" \
"       iprelay-limit [-S DIR] [--json] top [-n COUNT] [-d SECONDS]\n" \
"       iprelay-limit [-R REDIS] [--json] hosts NAME\n" \
"       iprelay-limit [-S DIR] export\n" \
"       iprelay-limit [-S DIR] import FILE | -\n"

/* Rates measured longer ago than this are shown as unknown: no refiller
 * has run lately. */
#define STATS_STALE_NS	(3ULL * NS_PER_SEC)
#define ARGS_MAX	16

struct options {
	const char *state_dir;
	int json;
	const char *command;
	const char *words[ARGS_MAX];	/* positional words after the command */
	int nwords;
	const char *up, *down, *burst, *parent;
	const char *ceil, *ceil_up, *ceil_down;
	const char *count, *delay;
	int drain;		/* kill --drain: SIGUSR1, a graceful stop */
	int no_create;		/* set --no-create: change, never make */
	int global, local;		/* --global, --local */
	const char *offline, *grace, *floor, *hosts, *redis;
	const char *max_conns, *max_source;	/* --max-conns* */
};

struct listing {
	int json;
	int first;
	uint64_t now_unix_ns;
};

static _Noreturn void
usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static _Noreturn void
usage_error(const char *fmt, ...)
{
	char raw[600], text[600];
	va_list args;

	va_start(args, fmt);
	vsnprintf(raw, sizeof(raw), fmt, args);
	va_end(args);
	log_escape(text, sizeof(text), raw);
	fprintf(stderr, "iprelay-limit: %s\n%s", text, USAGE);
	exit(EXIT_USAGE);
}

/* Configured values print exactly, in a form `set` reads back: the largest
 * of G, M, K (powers of 1024) that divides the value, else plain bytes. */
static const char *
format_exact(uint64_t value, char *buf, size_t size)
{
	static const char suffix[] = "GMK";
	unsigned shift, index;

	for (index = 0, shift = 30; index < 3; index++, shift -= 10)
		if (value && value % (1ULL << shift) == 0) {
			snprintf(buf, size, "%" PRIu64 "%c", value >> shift,
			    suffix[index]);
			return buf;
		}
	snprintf(buf, size, "%" PRIu64, value);
	return buf;
}

static const char *
format_rate(uint64_t rate_Bps, char *buf, size_t size)
{
	if (rate_Bps == 0) {
		snprintf(buf, size, "unlimited");
		return buf;
	}
	return format_exact(rate_Bps, buf, size);
}

/* A ceiling as set reads it back: none, unlimited or a rate. */
static const char *
format_ceil(uint64_t ceil_Bps, char *buf, size_t size)
{
	if (ceil_Bps == CEIL_NONE) {
		snprintf(buf, size, "none");
		return buf;
	}
	if (ceil_Bps == CEIL_UNLIMITED)
		return format_rate(0, buf, size);
	return format_exact(ceil_Bps, buf, size);
}

/* The list column: one value when both directions agree, else up/down. */
static const char *
format_ceil_pair(const uint64_t ceil_Bps[2], char *buf, size_t size)
{
	char up[32], down[32];

	if (ceil_Bps[DIR_UP] == ceil_Bps[DIR_DOWN])
		return format_ceil(ceil_Bps[DIR_UP], buf, size);
	snprintf(buf, size, "%s/%s", format_ceil(ceil_Bps[DIR_UP], up,
	    sizeof(up)), format_ceil(ceil_Bps[DIR_DOWN], down, sizeof(down)));
	return buf;
}

/* none: no borrowing; 0 or unlimited: borrow whatever the ancestors have
 * idle; else a rate.  -1 for a bad word. */
static int
parse_ceil(const char *word, uint64_t *ceil_Bps)
{
	uint64_t rate_Bps;

	if (strcmp(word, "none") == 0) {
		*ceil_Bps = CEIL_NONE;
		return 0;
	}
	if (parse_rate(word, &rate_Bps))
		return -1;
	*ceil_Bps = rate_Bps ? rate_Bps : CEIL_UNLIMITED;
	return 0;
}

/* Measured values are approximate: three significant digits at most, with
 * the same K/M/G powers of 1024 ("63.9K", "1.50M", "512"). */
static const char *
format_measured(uint64_t value, char *buf, size_t size)
{
	static const char suffix[] = "KMG";
	double scaled = (double)value;
	int index = -1;

	while (scaled >= 1000.0 && index < 2) {
		scaled /= 1024.0;
		index++;
	}
	if (index < 0)
		snprintf(buf, size, "%" PRIu64, value);
	else if (scaled < 10.0)
		snprintf(buf, size, "%.2f%c", scaled, suffix[index]);
	else if (scaled < 100.0)
		snprintf(buf, size, "%.1f%c", scaled, suffix[index]);
	else
		snprintf(buf, size, "%.0f%c", scaled, suffix[index]);
	return buf;
}

static const char *
format_age(uint64_t seconds, char *buf, size_t size)
{
	if (seconds < 60)
		snprintf(buf, size, "%" PRIu64 "s", seconds);
	else if (seconds < 3600)
		snprintf(buf, size, "%" PRIu64 "m%02" PRIu64 "s",
		    seconds / 60, seconds % 60);
	else if (seconds < 86400)
		snprintf(buf, size, "%" PRIu64 "h%02" PRIu64 "m",
		    seconds / 3600, seconds % 3600 / 60);
	else
		snprintf(buf, size, "%" PRIu64 "d%02" PRIu64 "h",
		    seconds / 86400, seconds % 86400 / 3600);
	return buf;
}

static void
json_string(const char *text)
{
	const unsigned char *cursor;

	putchar('"');
	for (cursor = (const unsigned char *)text; *cursor; cursor++) {
		if (*cursor == '"' || *cursor == '\\')
			printf("\\%c", *cursor);
		else if (*cursor < 0x20 || *cursor >= 0x7f)
			printf("\\u%04x", *cursor);
		else
			putchar(*cursor);
	}
	putchar('"');
}

static int
stats_fresh(const struct limit_info *info, uint64_t now_unix_ns)
{
	return info->stats_unix_ns &&
	    info->stats_unix_ns + STATS_STALE_NS >= now_unix_ns;
}

static uint64_t
effective_burst(const struct limit_info *info, int dir)
{
	if (info->cfg.rate_Bps[dir] == 0)
		return 0;
	return info->cfg.burst_B ? info->cfg.burst_B :
	    bucket_default_burst(info->cfg.rate_Bps[dir]);
}

/* A bad word gets one line naming it, and no usage dump. */
static _Noreturn void
bad_word(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static _Noreturn void
bad_word(const char *fmt, ...)
{
	char raw[600], text[600];
	va_list args;

	va_start(args, fmt);
	vsnprintf(raw, sizeof(raw), fmt, args);
	va_end(args);
	log_escape(text, sizeof(text), raw);
	fprintf(stderr, "iprelay-limit: %s\n", text);
	exit(EXIT_USAGE);
}

/* The store a command uses, and why that one: every command says it
 * (the first line of the tables, "store" in JSON), so that nobody writes
 * to their own store believing it the system's. */
static char used_dir[4096];
static const char *store_source = "";

static const char *
store_path(const struct options *options)
{
	int rc;

	if (used_dir[0])
		return used_dir;
	if ((rc = store_dir_resolve(options->state_dir, used_dir,
	    sizeof(used_dir))))
		log_fatal(EXIT_USAGE, "unable to find the state dir: %s "
		    "(give -S DIR or set IPRELAY_STATE_DIR)", strerror(rc));
	store_source = store_dir_source(options->state_dir);
	return used_dir;
}

static void
say_store(void)
{
	printf("store: %s (%s)\n", used_dir, store_source);
}

/* For the tables' header line, after the column names: a line above it
 * would shift every row that scripts count or skip. */
static const char *
store_said(void)
{
	static char said[4096 + 200];

	snprintf(said, sizeof(said), "store %s, %s", used_dir, store_source);
	return said;
}

static void
json_store_field(void)
{
	printf(",\"store\":");
	json_string(used_dir);
}

/* Open for a command that changes something: a user who may not write the
 * state file is refused by policy (exit 1), said plainly. */
static struct store *
open_for_writing(const struct options *options)
{
	const char *dir = store_path(options);
	struct store *store;
	int rc;

	rc = store_open(&store, dir, 0);
	if (rc == EACCES || rc == EPERM || rc == EROFS)
		log_fatal(EXIT_POLICY, "unable to change limits in %s: %s "
		    "(changing limits needs write access to the state dir "
		    "and %s)", dir, strerror(rc), STORE_CONFIG_FILE);
	if (rc)
		log_fatal(store_exit_code(rc), "unable to open %s: %s",
		    store_failed_path(), store_strerror(rc));
	return store;
}

/* Open for reading: NULL when there is no state file yet (nothing to show,
 * and reading must not create one). */
static struct store *
open_for_reading(const struct options *options)
{
	const char *dir = store_path(options);
	struct store *store;
	int rc;

	rc = store_open(&store, dir, STORE_RDONLY);
	if (rc == STORE_ENOSTORE)
		return NULL;
	if (rc == EACCES || rc == EPERM)
		log_fatal(EXIT_POLICY, "unable to read %s: %s",
		    store_failed_path(), strerror(rc));
	if (rc)
		log_fatal(store_exit_code(rc), "unable to open %s: %s",
		    store_failed_path(), store_strerror(rc));
	return store;
}

static void
check_name(const char *what, const char *name)
{
	if (!limit_name_valid(name))
		bad_word("bad %s: '%s' (1-%d characters of A-Z a-z 0-9 _ . -)",
		    what, name, LIMIT_NAME_MAX);
}

static void
need_words(const struct options *options, int want, const char *what)
{
	if (options->nwords < want)
		usage_error("%s: missing %s", options->command, what);
	if (options->nwords > want)
		usage_error("%s: unexpected word '%s'", options->command,
		    options->words[want]);
}

static void
refuse_options(const struct options *options, int allow_set, int allow_top,
    int allow_json)
{
	if (!allow_set && (options->up || options->down || options->burst ||
	    options->parent || options->ceil || options->ceil_up ||
	    options->ceil_down || options->global || options->local ||
	    options->offline || options->grace || options->floor ||
	    options->hosts || options->max_conns || options->max_source))
		usage_error("%s: option %s is only for set", options->command,
		    options->up ? "--up" : options->down ? "--down" :
		    options->burst ? "--burst" : options->parent ? "--parent" :
		    options->ceil ? "--ceil" : options->ceil_up ? "--ceil-up" :
		    options->ceil_down ? "--ceil-down" : options->global ?
		    "--global" : options->local ? "--local" : options->offline ?
		    "--offline" : options->grace ? "--grace" : options->floor ?
		    "--floor" : options->hosts ? "--hosts" :
		    options->max_conns ? "--max-conns" :
		    "--max-conns-per-source");
	if (!allow_top && (options->count || options->delay))
		usage_error("%s: option %s is only for top", options->command,
		    options->count ? "-n" : "-d");
	if (!allow_json && options->json)
		usage_error("%s: option --json is only for the read commands",
		    options->command);
	if (options->no_create && !allow_set)
		usage_error("%s: option --no-create is only for set",
		    options->command);
	if (options->drain && strcmp(options->command, "kill") != 0)
		usage_error("%s: option --drain is only for kill",
		    options->command);
}

static void
print_limit_json(const struct limit_info *info, uint64_t now_unix_ns)
{
	int fresh = stats_fresh(info, now_unix_ns), dir;
	static const char *dir_name[2] = { "up", "down" };

	printf("{\"name\":");
	json_string(info->name);
	json_store_field();
	printf(",\"parent\":");
	if (info->cfg.parent[0])
		json_string(info->cfg.parent);
	else
		printf("null");
	printf(",\"up\":%" PRIu64 ",\"down\":%" PRIu64 ",\"burst\":%" PRIu64
	    ",\"conns\":%" PRIu32, info->cfg.rate_Bps[DIR_UP],
	    info->cfg.rate_Bps[DIR_DOWN], info->cfg.burst_B, info->nconns);
	/* Ceilings: null = none (no borrowing), 0 = unlimited, as rates. */
	for (dir = 0; dir < 2; dir++) {
		if (info->cfg.ceil_Bps[dir] == CEIL_NONE)
			printf(",\"ceil_%s\":null", dir_name[dir]);
		else
			printf(",\"ceil_%s\":%" PRIu64, dir_name[dir],
			    info->cfg.ceil_Bps[dir] == CEIL_UNLIMITED ? 0 :
			    info->cfg.ceil_Bps[dir]);
		printf(",\"%s_borrowed\":%" PRIu64, dir_name[dir],
		    info->borrowed_B[dir]);
	}
	for (dir = 0; dir < 2; dir++) {
		printf(",\"%s_burst\":%" PRIu64 ",\"%s_total\":%" PRIu64
		    ",\"%s_tokens\":%" PRId64, dir_name[dir],
		    effective_burst(info, dir), dir_name[dir],
		    info->total_B[dir], dir_name[dir],
		    info->bucket[dir].tokens_B);
		if (fresh)
			printf(",\"%s_1s\":%" PRIu64 ",\"%s_5s\":%" PRIu64
			    ",\"%s_60s\":%" PRIu64, dir_name[dir],
			    info->rate_1s_Bps[dir], dir_name[dir],
			    info->rate_5s_Bps[dir], dir_name[dir],
			    info->rate_60s_Bps[dir]);
		else
			printf(",\"%s_1s\":null,\"%s_5s\":null,\"%s_60s\":null",
			    dir_name[dir], dir_name[dir], dir_name[dir]);
	}
	global_print_json(info);
	caps_print_json(info);
	printf("}");
}

#define LIST_HEAD "%-20s %-20s %9s %9s %9s %9s %5s %11s %7s %8s %8s %s  [%s]\n"

static int
print_list_row(void *ctx, const struct limit_info *info)
{
	struct listing *listing = ctx;
	char up[32], down[32], ceil[72], burst[32], up_5s[32], down_5s[32];
	char global[96], caps[32], refused[24];
	int fresh = stats_fresh(info, listing->now_unix_ns);

	if (listing->json) {
		printf("%s", listing->first ? "" : ",");
		print_limit_json(info, listing->now_unix_ns);
		listing->first = 0;
		return 0;
	}
	printf("%-20s %-20s %9s %9s %9s %9s %5" PRIu32 " %11s %7s %8s %8s "
	    "%s\n",
	    info->name, info->cfg.parent[0] ? info->cfg.parent : "-",
	    format_rate(info->cfg.rate_Bps[DIR_UP], up, sizeof(up)),
	    format_rate(info->cfg.rate_Bps[DIR_DOWN], down, sizeof(down)),
	    format_ceil_pair(info->cfg.ceil_Bps, ceil, sizeof(ceil)),
	    info->cfg.burst_B ? format_exact(info->cfg.burst_B, burst,
	    sizeof(burst)) : "auto", info->nconns,
	    caps_column(info, caps, sizeof(caps)),
	    refused_column(info, refused, sizeof(refused)),
	    fresh ? format_measured(info->rate_5s_Bps[DIR_UP], up_5s,
	    sizeof(up_5s)) : "-",
	    fresh ? format_measured(info->rate_5s_Bps[DIR_DOWN], down_5s,
	    sizeof(down_5s)) : "-", global_column(info, global,
	    sizeof(global)));
	return 0;
}

static void
show_limits(struct store *store, int json)
{
	struct listing listing = { json, 1, realtime_ns() };
	int rc;

	if (json)
		printf("[");
	else
		printf(LIST_HEAD, "NAME", "PARENT", "UP", "DOWN", "CEIL",
		    "BURST", "CONNS", "CAPS", "REFUSED", "UP/5s", "DOWN/5s", "GLOBAL",
		    store_said());
	if (store && (rc = store_limit_foreach(store, print_list_row,
	    &listing)))
		log_fatal(EXIT_SYSTEM, "unable to list limits: %s",
		    store_strerror(rc));
	if (json)
		printf("]");
}

static void
print_conn_json(const struct conn_info *info, uint64_t now_unix_ns)
{
	printf("{\"id\":\"CONN%06" PRIu32 "\"", info->id);
	json_store_field();
	printf(",\"pid\":%d,\"limit\":", (int)info->pid);
	if (info->limit[0])
		json_string(info->limit);
	else
		printf("null");
	printf(",\"peer\":");
	json_string(info->peer);
	printf(",\"remote\":");
	json_string(info->remote);
	printf(",\"age\":%" PRIu64 ",\"idle\":%" PRIu64
	    ",\"up_bytes\":%" PRIu64 ",\"down_bytes\":%" PRIu64
	    ",\"up_5s\":%" PRIu64 ",\"down_5s\":%" PRIu64 "}",
	    (uint64_t)(now_unix_ns > info->start_unix_ns ?
	    (now_unix_ns - info->start_unix_ns) / NS_PER_SEC : 0),
	    (uint64_t)(now_unix_ns > info->last_unix_ns ?
	    (now_unix_ns - info->last_unix_ns) / NS_PER_SEC : 0),
	    info->bytes[DIR_UP], info->bytes[DIR_DOWN],
	    info->rate_5s_Bps[DIR_UP], info->rate_5s_Bps[DIR_DOWN]);
}

#define CONNS_HEAD "%-10s %7s %-16s %-22s %-22s %7s %8s %8s %8s %8s  [%s]\n"

static int
print_conn_row(void *ctx, const struct conn_info *info)
{
	struct listing *listing = ctx;
	char age[32], up[32], down[32], up_5s[32], down_5s[32], id[16];
	char peer[4 * sizeof(info->peer)], remote[4 * sizeof(info->remote)];

	if (listing->json) {
		printf("%s", listing->first ? "" : ",");
		print_conn_json(info, listing->now_unix_ns);
		listing->first = 0;
		return 0;
	}
	/* The relay wrote peer and remote: never raw to a terminal. */
	log_escape_field(peer, sizeof(peer), info->peer);
	log_escape_field(remote, sizeof(remote), info->remote);
	snprintf(id, sizeof(id), "CONN%06" PRIu32, info->id);
	printf("%-10s %7d %-16s %-22s %-22s %7s %8s %8s %8s %8s\n", id,
	    (int)info->pid, info->limit[0] ? info->limit : "-", peer, remote,
	    format_age(listing->now_unix_ns > info->start_unix_ns ?
	    (listing->now_unix_ns - info->start_unix_ns) / NS_PER_SEC : 0,
	    age, sizeof(age)),
	    format_measured(info->bytes[DIR_UP], up, sizeof(up)),
	    format_measured(info->bytes[DIR_DOWN], down, sizeof(down)),
	    format_measured(info->rate_5s_Bps[DIR_UP], up_5s, sizeof(up_5s)),
	    format_measured(info->rate_5s_Bps[DIR_DOWN], down_5s,
	    sizeof(down_5s)));
	return 0;
}

static void
show_conns(struct store *store, int json)
{
	struct listing listing = { json, 1, realtime_ns() };
	int rc;

	if (json)
		printf("[");
	else
		printf(CONNS_HEAD, "ID", "PID", "LIMIT", "PEER", "REMOTE", "AGE",
		    "UP", "DOWN", "UP/5s", "DOWN/5s", store_said());
	if (store && (rc = store_conn_foreach(store, print_conn_row,
	    &listing)))
		log_fatal(EXIT_SYSTEM, "unable to list connections: %s",
		    store_strerror(rc));
	if (json)
		printf("]");
}

/* The Redis of global limits: -R, else $IPRELAY_REDIS; a command that
 * needs it and has neither is a usage error. */
static void
redis_endpoint(const struct options *options, struct redis_conf *conf,
    const char *what)
{
	const char *bad = NULL;
	int rc;

	rc = redis_conf_resolve(options->redis, conf, &bad);
	if (rc == EINVAL)
		bad_word("bad Redis endpoint: '%s' (redis://HOST[:PORT][/DB] "
		    "or unix:/PATH)", bad);
	if (rc)
		usage_error("%s needs the Redis of global limits: give -R "
		    "REDIS or set %s", what, REDIS_ENV);
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

static int
command_set(const struct options *options)
{
	const char *name, *refusal;
	struct store *store;
	struct limit_cfg cfg, written;
	uint64_t rate_Bps, up_Bps, down_Bps, burst_B;
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
	if (options->nwords == 2 && parse_rate(options->words[1], &rate_Bps))
		bad_word("bad rate: '%s' (bytes/s with optional K, M or G, "
		    "or 0 or unlimited)", options->words[1]);
	if (options->up && parse_rate(options->up, &up_Bps))
		bad_word("bad rate: '%s' (bytes/s with optional K, M or G, "
		    "or 0 or unlimited)", options->up);
	if (options->down && parse_rate(options->down, &down_Bps))
		bad_word("bad rate: '%s' (bytes/s with optional K, M or G, "
		    "or 0 or unlimited)", options->down);
	if (options->burst && strcmp(options->burst, "auto") == 0)
		burst_B = 0;
	else if (options->burst && parse_bytes(options->burst, BURST_MAX,
	    &burst_B))
		bad_word("bad burst: '%s' (bytes with optional K, M or G, "
		    "or auto)", options->burst);
	if (options->ceil && parse_ceil(options->ceil, &ceil_Bps))
		bad_word("bad ceiling: '%s' (bytes/s with optional K, M or G, "
		    "0 or unlimited, or none)", options->ceil);
	if (options->ceil_up && parse_ceil(options->ceil_up, &ceil_up_Bps))
		bad_word("bad ceiling: '%s' (bytes/s with optional K, M or G, "
		    "0 or unlimited, or none)", options->ceil_up);
	if (options->ceil_down && parse_ceil(options->ceil_down,
	    &ceil_down_Bps))
		bad_word("bad ceiling: '%s' (bytes/s with optional K, M or G, "
		    "0 or unlimited, or none)", options->ceil_down);
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

static int
command_get(const struct options *options)
{
	struct store *store;
	struct limit_info info;
	char up[32], down[32], burst[32], measured[2][3][32];
	char ceil_up[32], ceil_down[32];
	static const char *span[3] = { "1s", "5s", "60s" };
	int rc, dir, index, fresh;

	need_words(options, 1, "NAME");
	check_name("limit name", options->words[0]);
	store = open_for_reading(options);
	rc = store ? store_limit_get(store, options->words[0], &info) :
	    STORE_ENOLIMIT;
	if (rc == STORE_ENOLIMIT) {
		fprintf(stderr, "iprelay-limit: no such limit: %s\n",
		    options->words[0]);
		store_close(store);
		return EXIT_POLICY;
	}
	if (rc)
		log_fatal(EXIT_SYSTEM, "unable to read limit %s: %s",
		    options->words[0], store_strerror(rc));
	store_close(store);
	if (options->json) {
		print_limit_json(&info, realtime_ns());
		printf("\n");
		return 0;
	}
	fresh = stats_fresh(&info, realtime_ns());
	for (dir = 0; dir < 2; dir++) {
		const uint64_t *rates[3] = { info.rate_1s_Bps,
		    info.rate_5s_Bps, info.rate_60s_Bps };

		for (index = 0; index < 3; index++)
			if (fresh)
				format_measured(rates[index][dir],
				    measured[dir][index], 32);
			else
				snprintf(measured[dir][index], 32, "-");
	}
	printf("store:   %s (%s)\n", used_dir, store_source);
	printf("name:    %s\n", info.name);
	printf("parent:  %s\n", info.cfg.parent[0] ? info.cfg.parent : "-");
	printf("up:      %s\n", format_rate(info.cfg.rate_Bps[DIR_UP], up,
	    sizeof(up)));
	printf("down:    %s\n", format_rate(info.cfg.rate_Bps[DIR_DOWN], down,
	    sizeof(down)));
	printf("ceil:    up %s down %s\n", format_ceil(info.cfg.ceil_Bps[DIR_UP],
	    ceil_up, sizeof(ceil_up)), format_ceil(info.cfg.ceil_Bps[DIR_DOWN],
	    ceil_down, sizeof(ceil_down)));
	printf("burst:   %s\n", info.cfg.burst_B ? format_exact(info.cfg.burst_B,
	    burst, sizeof(burst)) : "auto");
	printf("conns:   %" PRIu32 "\n", info.nconns);
	for (index = 0; index < 3; index++)
		printf("rate %-3s up %s down %s\n", span[index],
		    measured[DIR_UP][index], measured[DIR_DOWN][index]);
	printf("total:   up %" PRIu64 " down %" PRIu64 "\n",
	    info.total_B[DIR_UP], info.total_B[DIR_DOWN]);
	printf("borrowed: up %" PRIu64 " down %" PRIu64 "\n",
	    info.borrowed_B[DIR_UP], info.borrowed_B[DIR_DOWN]);
	global_print_text(&info);
	caps_print_text(&info);
	return 0;
}

static int
command_list(const struct options *options)
{
	struct store *store;

	need_words(options, 0, "");
	store = open_for_reading(options);
	show_limits(store, options->json);
	if (options->json)
		printf("\n");
	store_close(store);
	return 0;
}

static int
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

static int
command_conns(const struct options *options)
{
	struct store *store;

	need_words(options, 0, "");
	store = open_for_reading(options);
	show_conns(store, options->json);
	if (options->json)
		printf("\n");
	store_close(store);
	return 0;
}

struct kill_all {
	uint32_t ids[8192];
	size_t count;
};

static int
collect_conn(void *ctx, const struct conn_info *info)
{
	struct kill_all *all = ctx;

	if (all->count < sizeof(all->ids) / sizeof(all->ids[0]))
		all->ids[all->count++] = info->id;
	return 0;
}

/*
 * Which processes are relays.  A connection record names a pid, and the
 * store is written by its owner (the relays' user, under systemd the
 * `iprelay` user facing the network): a record may name any process.  So
 * a process is signalled only when it is a relay of this store: it runs
 * as the store's owner (real and effective uid), and its executable is an
 * iprelay-conn, the very file one of the places iprelay looks for it
 * names ($IPRELAY_CONN, beside this program, ../sbin from it, PATH, the
 * install dirs), or that path with " (deleted)" after an upgrade replaced
 * it.  The pid is held as a pidfd from before the checks to the signal:
 * a pid reused meanwhile gets nothing (the pidfd's process is gone).
 */
#define CONN_PLACES_MAX	64

struct conn_places {
	char path[CONN_PLACES_MAX][4096];
	dev_t dev[CONN_PLACES_MAX];
	ino_t ino[CONN_PLACES_MAX];
	int found[CONN_PLACES_MAX];
	size_t count;
	uid_t owner;		/* the state dir's owner */
};

static void
conn_place_add(struct conn_places *places, const char *dir, const char *name)
{
	char path[4096], real[PATH_MAX];
	struct stat file_stat;
	size_t index;

	if (places->count == CONN_PLACES_MAX || dir == NULL || *dir != '/')
		return;
	if (snprintf(path, sizeof(path), "%s%s%s", dir, name ? "/" : "",
	    name ? name : "") >= (int)sizeof(path))
		return;
	/* The path the kernel shows for it: symlinks and .. resolved. */
	if (realpath(path, real) == NULL)
		return;
	for (index = 0; index < places->count; index++)
		if (strcmp(places->path[index], real) == 0)
			return;
	index = places->count++;
	snprintf(places->path[index], sizeof(places->path[index]), "%s", real);
	places->found[index] = stat(real, &file_stat) == 0 &&
	    S_ISREG(file_stat.st_mode);
	places->dev[index] = file_stat.st_dev;
	places->ino[index] = file_stat.st_ino;
}

static void
conn_places_find(struct conn_places *places, uid_t owner)
{
	char self[PATH_MAX], *slash, *path, *dir, *save;
	ssize_t len;

	memset(places, 0, sizeof(*places));
	places->owner = owner;
	conn_place_add(places, getenv("IPRELAY_CONN"), NULL);
	len = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (len > 0) {
		self[len] = '\0';
		if ((slash = strrchr(self, '/'))) {
			*slash = '\0';
			conn_place_add(places, self, "iprelay-conn");
			conn_place_add(places, self, "../sbin/iprelay-conn");
		}
	}
	if ((path = getenv("PATH")) && (path = strdup(path))) {
		for (dir = strtok_r(path, ":", &save); dir;
		    dir = strtok_r(NULL, ":", &save))
			conn_place_add(places, dir, "iprelay-conn");
		free(path);
	}
	conn_place_add(places, "/usr/sbin", "iprelay-conn");
	conn_place_add(places, "/usr/local/sbin", "iprelay-conn");
}

/* The ids in /proc/PID/status: "Uid:\treal\teffective\tsaved\tfs". */
static int
proc_uids(pid_t pid, uid_t *real, uid_t *effective)
{
	char path[64], line[256];
	unsigned long values[2];
	FILE *file;
	int found = 0;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if ((file = fopen(path, "re")) == NULL)
		return errno;
	while (fgets(line, sizeof(line), file))
		if (sscanf(line, "Uid: %lu %lu", &values[0], &values[1]) == 2) {
			found = 1;
			break;
		}
	fclose(file);
	if (!found)
		return ESRCH;
	*real = (uid_t)values[0];
	*effective = (uid_t)values[1];
	return 0;
}

enum kill_outcome {
	KILL_DONE,		/* SIGTERM (--drain: SIGUSR1) sent */
	KILL_GONE,		/* no such process (any more) */
	KILL_NOT_RELAY,		/* a process that is not a relay of ours */
	KILL_NOT_PERMITTED,	/* the kernel says we may not signal it */
	KILL_FAILED,		/* why says */
};

/* Checks the process the pidfd holds and signals it; why says what it is
 * when it is not ours to signal. */
static enum kill_outcome
signal_relay(const struct conn_places *places, const struct conn_info *info,
    int pidfd, int signo, char *why, size_t why_size)
{
	char path[64], exe[PATH_MAX + 16], shown[512];
	const char *deleted = " (deleted)";
	struct stat exe_stat;
	uid_t real = (uid_t)-1, effective = (uid_t)-1;
	uint64_t start;
	ssize_t len;
	size_t index, tail = strlen(deleted);
	int rc, is_relay = 0, have_stat;

	/* A recycled pid runs something else: never signal it. */
	start = refiller_proc_start(info->pid);
	if (start == 0 || (info->pid_start && start != info->pid_start))
		return KILL_GONE;
	snprintf(path, sizeof(path), "/proc/%d/exe", (int)info->pid);
	len = readlink(path, exe, sizeof(exe) - 1);
	if (len < 0) {
		rc = errno;
		if (rc == ENOENT || rc == ESRCH)
			return KILL_GONE;
		if (rc == EACCES || rc == EPERM)
			return KILL_NOT_PERMITTED;	/* another user's */
		snprintf(why, why_size, "unable to read %s: %s", path,
		    strerror(rc));
		return KILL_FAILED;
	}
	exe[len] = '\0';
	have_stat = stat(path, &exe_stat) == 0;
	for (index = 0; index < places->count && !is_relay; index++) {
		if (!places->found[index])
			continue;
		if (have_stat && exe_stat.st_dev == places->dev[index] &&
		    exe_stat.st_ino == places->ino[index])
			is_relay = 1;
		/* Replaced by an upgrade while it ran. */
		else if ((size_t)len > tail &&
		    strcmp(exe + len - tail, deleted) == 0 &&
		    strlen(places->path[index]) == (size_t)len - tail &&
		    strncmp(exe, places->path[index], (size_t)len - tail) == 0)
			is_relay = 1;
	}
	if ((rc = proc_uids(info->pid, &real, &effective)))
		return rc == ENOENT || rc == ESRCH ? KILL_GONE :
		    KILL_NOT_PERMITTED;
	log_escape_field(shown, sizeof(shown), exe);
	if (!is_relay) {
		snprintf(why, why_size, "pid %d runs %s, not iprelay-conn",
		    (int)info->pid, shown);
		return KILL_NOT_RELAY;
	}
	if (real != places->owner || effective != places->owner) {
		snprintf(why, why_size, "pid %d runs as uid %lu, not as the "
		    "state dir's owner (uid %lu)", (int)info->pid,
		    (unsigned long)effective, (unsigned long)places->owner);
		return KILL_NOT_RELAY;
	}
	if (syscall(SYS_pidfd_send_signal, pidfd, signo, NULL, 0) < 0) {
		rc = errno;
		if (rc == ESRCH)
			return KILL_GONE;
		if (rc == EPERM)
			return KILL_NOT_PERMITTED;
		snprintf(why, why_size, "unable to signal pid %d: %s",
		    (int)info->pid, strerror(rc));
		return KILL_FAILED;
	}
	return KILL_DONE;
}

static enum kill_outcome
kill_conn(struct store *store, const struct conn_places *places, uint32_t id,
    int signo, pid_t *pid, char *why, size_t why_size)
{
	struct conn_info info;
	enum kill_outcome outcome;
	int rc, pidfd;

	*pid = 0;
	if ((rc = store_conn_get(store, id, &info))) {
		if (rc == STORE_ENOCONN)
			return KILL_GONE;
		snprintf(why, why_size, "unable to read its record: %s",
		    store_strerror(rc));
		return KILL_FAILED;
	}
	*pid = info.pid;
	if (info.pid <= 1) {
		snprintf(why, why_size, "pid %d is never a relay",
		    (int)info.pid);
		return KILL_NOT_RELAY;
	}
	pidfd = (int)syscall(SYS_pidfd_open, info.pid, 0);
	if (pidfd < 0) {
		rc = errno;
		if (rc == ESRCH)
			return KILL_GONE;
		snprintf(why, why_size, "unable to hold pid %d: %s",
		    (int)info.pid, strerror(rc));
		return KILL_FAILED;
	}
	outcome = signal_relay(places, &info, pidfd, signo, why, why_size);
	close(pidfd);
	return outcome;
}

static int
parse_conn_id(const char *word, uint32_t *id)
{
	uint64_t value;

	if (strncmp(word, "CONN", 4) == 0)
		word += 4;
	if (parse_uint(word, 1, 999999, &value))
		return -1;
	*id = (uint32_t)value;
	return 0;
}

static void
say_not_permitted(uint32_t id, pid_t pid, uid_t owner)
{
	struct passwd *user = getpwuid(owner);

	fprintf(stderr, "iprelay-limit: not permitted: CONN%06" PRIu32
	    " (pid %d) runs as %s%s%lu; only root or that user may signal "
	    "it\n", id, (int)pid, user ? user->pw_name : "",
	    user ? ", uid " : "uid ", (unsigned long)owner);
}

static int
command_kill(const struct options *options)
{
	struct store *store;
	struct kill_all *all;
	struct conn_places *places;
	char why[PATH_MAX + 256];
	uint32_t id = 0;
	size_t index, killed = 0, skipped = 0, refused = 0, failed = 0;
	enum kill_outcome outcome;
	pid_t pid;
	int rc, single;

	need_words(options, 1, "ID or all");
	single = strcmp(options->words[0], "all") != 0;
	if (single && parse_conn_id(options->words[0], &id))
		bad_word("bad connection id: '%s' (CONNnnnnnn, a number, or "
		    "all)", options->words[0]);
	store = open_for_reading(options);
	say_store();
	if (store == NULL && single) {
		fprintf(stderr, "iprelay-limit: no such connection: %s\n",
		    options->words[0]);
		return EXIT_POLICY;
	}
	if (store == NULL) {
		printf("0 connections %s\n", options->drain ?
		    "stopping gracefully" : "terminated");
		return 0;
	}
	all = calloc(1, sizeof(*all));
	places = malloc(sizeof(*places));
	if (all == NULL || places == NULL)
		log_fatal(EXIT_SYSTEM, "unable to allocate: %s",
		    strerror(ENOMEM));
	conn_places_find(places, store_dir(store)->uid);
	if (single) {
		struct conn_info probe;

		if ((rc = store_conn_get(store, id, &probe)) == STORE_ENOCONN) {
			fprintf(stderr, "iprelay-limit: no such connection: "
			    "%s\n", options->words[0]);
			store_close(store);
			return EXIT_POLICY;
		}
		all->ids[all->count++] = id;
	} else if ((rc = store_conn_foreach(store, collect_conn, all)))
		log_fatal(EXIT_SYSTEM, "unable to list connections: %s",
		    store_strerror(rc));
	for (index = 0; index < all->count; index++) {
		id = all->ids[index];
		why[0] = '\0';
		outcome = kill_conn(store, places, id, options->drain ?
		    SIGUSR1 : SIGTERM, &pid, why, sizeof(why));
		switch (outcome) {
		case KILL_DONE:
			killed++;
			if (single)
				printf("CONN%06" PRIu32 " %s\n", id,
				    options->drain ? "stopping gracefully" :
				    "terminated");
			break;
		case KILL_GONE:
			if (single)
				printf("CONN%06" PRIu32 " is gone already\n",
				    id);
			break;
		case KILL_NOT_RELAY:
			skipped++;
			fprintf(stderr, "iprelay-limit: skipped CONN%06" PRIu32
			    ": not a relay of this store: %s\n", id, why);
			break;
		case KILL_NOT_PERMITTED:
			refused++;
			say_not_permitted(id, pid, places->owner);
			break;
		case KILL_FAILED:
			failed++;
			fprintf(stderr, "iprelay-limit: unable to kill CONN%06"
			    PRIu32 ": %s\n", id, why);
			break;
		}
	}
	store_close(store);
	free(all);
	free(places);
	if (!single)
		printf("%zu connection%s %s%s\n", killed,
		    killed == 1 ? "" : "s", options->drain ?
		    "stopping gracefully" : "terminated", skipped + refused +
		    failed ?
		    " (the others: see above)" : "");
	/* Not permitted is the caller's to fix (who runs it): 100, as for
	 * usage; a record naming something else is refused by policy. */
	return failed ? EXIT_SYSTEM : refused ? EXIT_USAGE : skipped ?
	    EXIT_POLICY : 0;
}

static int
command_hosts(const struct options *options)
{
	struct redis_conf redis;

	need_words(options, 1, "NAME");
	check_name("limit name", options->words[0]);
	redis_endpoint(options, &redis, "hosts");
	return global_print_hosts(&redis, options->words[0], options->json);
}

static int
command_top(const struct options *options)
{
	struct store *store = NULL;
	uint64_t count = 0, delay_ns = NS_PER_SEC, round;
	char who[96], who_shown[4 * sizeof(who)];
	size_t got;
	struct timespec pause;
	int tty = isatty(STDOUT_FILENO);

	need_words(options, 0, "");
	if (options->count && parse_uint(options->count, 1, UINT32_MAX, &count))
		bad_word("bad count: '%s' (a number of refreshes, 1 or more)",
		    options->count);
	if (options->delay && (parse_duration_ns(options->delay, &delay_ns) ||
	    delay_ns < NS_PER_SEC / 100))
		bad_word("bad interval: '%s' (seconds, at least 0.01)",
		    options->delay);
	for (round = 0; count == 0 || round < count; round++) {
		if (round) {
			pause.tv_sec = (time_t)(delay_ns / NS_PER_SEC);
			pause.tv_nsec = (long)(delay_ns % NS_PER_SEC);
			nanosleep(&pause, NULL);
		}
		/* Reopen while there is no state file yet, so the view comes
		 * alive when the first limit is set. */
		if (store == NULL)
			store = open_for_reading(options);
		if (store == NULL || store_meta_get(store, "refiller", who,
		    sizeof(who) - 1, &got))
			got = 0;
		who[got] = '\0';
		if (options->json) {
			printf("{\"time\":%" PRIu64,
			    (uint64_t)(realtime_ns() / NS_PER_SEC));
			json_store_field();
			printf(",\"refiller\":");
			if (got)
				json_string(who);
			else
				printf("null");
			printf(",\"limits\":");
			show_limits(store, 1);
			printf(",\"conns\":");
			show_conns(store, 1);
			printf("}\n");
		} else {
			if (tty)
				printf("\033[H\033[2J");
			log_escape_field(who_shown, sizeof(who_shown), who);
			printf("iprelay-limit top: store %s (%s), refiller "
			    "%s\n\n", store_path(options), store_source,
			    got ? who_shown : "none yet");
			show_limits(store, 0);
			printf("\n");
			show_conns(store, 0);
			if (!tty)
				printf("\n");
		}
		fflush(stdout);
	}
	store_close(store);
	return 0;
}

/* export: the configuration as JSON (limit-export.c). */
static int
command_export(const struct options *options)
{
	struct store *store;
	int rc;

	need_words(options, 0, "");
	store = open_for_reading(options);
	rc = limit_export(store, stdout);
	store_close(store);
	if (rc == 0 && fflush(stdout) != 0)
		rc = errno;
	if (rc)
		log_fatal(EXIT_SYSTEM, "unable to export the limits of %s: %s",
		    store_path(options), store_strerror(rc));
	return 0;
}

/* import FILE: all of it checked before one commit, or nothing. */
static int
command_import(const struct options *options)
{
	struct import import;
	struct store *store;
	char why[600];
	int rc;

	need_words(options, 1, "FILE");
	if (limit_import_parse(options->words[0], &import, why, sizeof(why)))
		log_fatal(EXIT_USAGE, "%s; nothing imported", why);
	store = open_for_writing(options);
	rc = limit_import_apply(store, options->words[0], &import, why,
	    sizeof(why));
	if (rc == 0)
		rc = store_sync(store);
	store_close(store);
	if (rc)
		log_fatal(rc == ENOSPC || rc == EIO || rc == ENOMEM ?
		    EXIT_SYSTEM : EXIT_USAGE, "%s; nothing imported", why);
	say_store();
	printf("imported %zu limit%s from %s; every other limit is gone\n",
	    import.count, import.count == 1 ? "" : "s",
	    strcmp(options->words[0], "-") ? options->words[0] : "stdin");
	limit_import_free(&import);
	return 0;
}

static const char *
option_value(int argc, char **argv, int *index, const char *option)
{
	const char *equals = strchr(argv[*index], '=');

	if (equals && strncmp(argv[*index], "--", 2) == 0)
		return equals + 1;
	if (*index + 1 >= argc)
		usage_error("option %s needs a value", option);
	return argv[++*index];
}

static void
parse_args(int argc, char **argv, struct options *options)
{
	const char *arg;
	size_t len;
	int index;

	memset(options, 0, sizeof(*options));
	for (index = 1; index < argc; index++) {
		arg = argv[index];
		len = strcspn(arg, "=");
#define IS(name) (strlen(name) == len && strncmp(arg, name, len) == 0)
		if (strcmp(arg, "--") == 0) {
			for (index++; index < argc; index++) {
				if (!options->command)
					options->command = argv[index];
				else if (options->nwords < ARGS_MAX)
					options->words[options->nwords++] =
					    argv[index];
			}
			break;
		} else if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
			printf("%s", USAGE);
			exit(0);
		} else if (strcmp(arg, "-S") == 0) {
			options->state_dir = option_value(argc, argv, &index,
			    "-S");
		} else if (strcmp(arg, "--json") == 0) {
			options->json = 1;
		} else if (strcmp(arg, "--no-create") == 0) {
			options->no_create = 1;
		} else if (strcmp(arg, "--drain") == 0) {
			options->drain = 1;
		} else if (IS("--up")) {
			options->up = option_value(argc, argv, &index, "--up");
		} else if (IS("--down")) {
			options->down = option_value(argc, argv, &index,
			    "--down");
		} else if (IS("--burst")) {
			options->burst = option_value(argc, argv, &index,
			    "--burst");
		} else if (IS("--ceil")) {
			options->ceil = option_value(argc, argv, &index,
			    "--ceil");
		} else if (IS("--ceil-up")) {
			options->ceil_up = option_value(argc, argv, &index,
			    "--ceil-up");
		} else if (IS("--ceil-down")) {
			options->ceil_down = option_value(argc, argv, &index,
			    "--ceil-down");
		} else if (IS("--parent")) {
			options->parent = option_value(argc, argv, &index,
			    "--parent");
		} else if (strcmp(arg, "--global") == 0) {
			options->global = 1;
		} else if (strcmp(arg, "--local") == 0) {
			options->local = 1;
		} else if (IS("--offline")) {
			options->offline = option_value(argc, argv, &index,
			    "--offline");
		} else if (IS("--grace")) {
			options->grace = option_value(argc, argv, &index,
			    "--grace");
		} else if (IS("--floor")) {
			options->floor = option_value(argc, argv, &index,
			    "--floor");
		} else if (IS("--hosts")) {
			options->hosts = option_value(argc, argv, &index,
			    "--hosts");
		} else if (IS("--max-conns")) {
			options->max_conns = option_value(argc, argv, &index,
			    "--max-conns");
		} else if (IS("--max-conns-per-source")) {
			options->max_source = option_value(argc, argv, &index,
			    "--max-conns-per-source");
		} else if (strcmp(arg, "-R") == 0) {
			options->redis = option_value(argc, argv, &index, "-R");
		} else if (strcmp(arg, "-n") == 0) {
			options->count = option_value(argc, argv, &index, "-n");
		} else if (strcmp(arg, "-d") == 0) {
			options->delay = option_value(argc, argv, &index, "-d");
		} else if (arg[0] == '-' && arg[1] != '\0' &&
		    !(options->command && strcmp(options->command, "set") == 0 &&
		    options->nwords == 1 && arg[1] >= '0' && arg[1] <= '9')) {
			usage_error("unknown option: '%s'", arg);
		} else if (!options->command) {
			options->command = arg;
		} else if (options->nwords < ARGS_MAX) {
			options->words[options->nwords++] = arg;
		} else {
			usage_error("too many words: '%s'", arg);
		}
#undef IS
	}
	if (options->state_dir && options->state_dir[0] == '\0')
		bad_word("bad state dir: '' (give a directory)");
}

/* Each command and the options it takes besides -S. */
static const struct command {
	const char *name;
	int (*run)(const struct options *options);
	int allow_set;		/* --up --down --burst --parent --ceil* */
	int allow_top;		/* -n -d */
	int allow_json;
} commands[] = {
	{ "set", command_set, 1, 0, 0 },
	{ "get", command_get, 0, 0, 1 },
	{ "list", command_list, 0, 0, 1 },
	{ "del", command_del, 0, 0, 0 },
	{ "conns", command_conns, 0, 0, 1 },
	{ "kill", command_kill, 0, 0, 0 },
	{ "top", command_top, 0, 1, 1 },
	{ "hosts", command_hosts, 0, 0, 1 },
	{ "export", command_export, 0, 0, 0 },
	{ "import", command_import, 0, 0, 0 },
	{ NULL, NULL, 0, 0, 0 },
};

int
main(int argc, char **argv)
{
	const struct command *command;
	struct options options;

	log_open("iprelay-limit", LOG_TO_STDERR);
	help_or_version(argc, argv, "iprelay-limit", USAGE);
	parse_args(argc, argv, &options);
	if (options.parent && options.parent[0] == '\0')
		options.parent = "none";
	if (!options.command)
		usage_error("missing command");
	for (command = commands; command->name; command++) {
		if (strcmp(options.command, command->name) != 0)
			continue;
		refuse_options(&options, command->allow_set,
		    command->allow_top, command->allow_json);
		return command->run(&options);
	}
	usage_error("unknown command: '%s'", options.command);
}
