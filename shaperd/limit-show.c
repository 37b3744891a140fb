/*
 * iprelay-limit's read commands: get, list, conns, hosts and top, as
 * tables or --json.  Measured rates older than STATS_STALE_NS show as
 * unknown.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "iprelay-limit.h"
#include "limit-caps.h"
#include "limit-format.h"
#include "limit-global.h"

/* Rates measured longer ago than this are shown as unknown: no refiller
 * has run lately. */
#define STATS_STALE_NS	(3ULL * NS_PER_SEC)

struct listing {
	int json;
	int first;
	uint64_t now_unix_ns;
};

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

int
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

/* list and conns: the table, or its JSON array on a line. */
static int
show_table(const struct options *options,
    void (*show)(struct store *store, int json))
{
	struct store *store;

	need_words(options, 0, "");
	store = open_for_reading(options);
	show(store, options->json);
	if (options->json)
		printf("\n");
	store_close(store);
	return 0;
}

int
command_list(const struct options *options)
{
	return show_table(options, show_limits);
}

int
command_conns(const struct options *options)
{
	return show_table(options, show_conns);
}

int
command_hosts(const struct options *options)
{
	struct redis_conf redis;

	need_words(options, 1, "NAME");
	check_name("limit name", options->words[0]);
	redis_endpoint(options, &redis, "hosts");
	return global_print_hosts(&redis, options->words[0], options->json);
}

int
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

