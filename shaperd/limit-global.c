/*
 * iprelay-limit's part of global limits (limit-global.h): the Redis side
 * of set --global and hosts, and how a global limit's lease is shown.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef IPRELAY_NO_HIREDIS
#include <hiredis/hiredis.h>
#endif

#include "limit-format.h"
#include "limit-global.h"
#include "log.h"

#define REDIS_TIMEOUT_MS	2000

/* What the bucket runs at, per direction, and the lease time left. */
static void
lease_now(const struct limit_info *info, uint64_t rate_Bps[2],
    enum global_state *state, uint64_t *left_ns)
{
	uint64_t now_ns = monotonic_ns(), end_ns;
	int dir;

	for (dir = 0; dir < 2; dir++)
		rate_Bps[dir] = global_rate_at(&info->cfg, &info->global, dir,
		    now_ns, state);
	end_ns = *state == GLOBAL_HELD ? info->global.hold_until_ns :
	    info->global.lease_until_ns;
	*left_ns = end_ns > now_ns ? end_ns - now_ns : 0;
}

static const char *
offline_name(uint32_t offline)
{
	return offline == GLOBAL_CLOSED ? "closed" :
	    offline == GLOBAL_OPEN ? "open" : "floor";
}

void
global_print_text(const struct limit_info *info)
{
	uint64_t rate_Bps[2], left_ns;
	enum global_state state;
	char up[32], down[32];
	uint32_t floor_hosts;

	if (!info->cfg.global) {
		printf("global:  no\n");
		return;
	}
	lease_now(info, rate_Bps, &state, &left_ns);
	printf("global:  yes (up and down above are the global rates; "
	    "version %" PRIu64 ")\n", info->global.version);
	printf("share:   up %s down %s (this host runs at)\n",
	    rate_Bps[DIR_UP] ? format_measured(rate_Bps[DIR_UP], up,
	    sizeof(up)) : "unlimited", rate_Bps[DIR_DOWN] ?
	    format_measured(rate_Bps[DIR_DOWN], down, sizeof(down)) :
	    "unlimited");
	printf("state:   %s, %.2f s left, %" PRIu32 " host%s\n",
	    global_state_name(state), (double)left_ns / 1e9,
	    info->global.nhosts, info->global.nhosts == 1 ? "" : "s");
	floor_hosts = global_floor_hosts(&info->cfg, &info->global);
	printf("hosts:   %" PRIu32 " for the floor (%" PRIu32 " set with "
	    "--hosts, %" PRIu32 " at the last lease kept)\n", floor_hosts,
	    info->cfg.hosts, info->cfg.hosts_seen);
	printf("offline: %s", offline_name(info->cfg.offline));
	if (info->cfg.offline == GLOBAL_FLOOR) {
		if (info->cfg.floor_Bps[DIR_UP] || info->cfg.floor_Bps[DIR_DOWN])
			printf(" up %s down %s",
			    format_measured(info->cfg.floor_Bps[DIR_UP], up,
			    sizeof(up)),
			    format_measured(info->cfg.floor_Bps[DIR_DOWN],
			    down, sizeof(down)));
		else if (floor_hosts)
			printf(" (global / %" PRIu32 " hosts)", floor_hosts);
		else
			printf(" (global / hosts, no host count known: as "
			    "closed)");
	}
	if (info->cfg.grace_ms == GLOBAL_GRACE_NONE)
		printf(", no grace\n");
	else
		printf(", grace %.1f s\n", (double)(info->cfg.grace_ms ?
		    info->cfg.grace_ms : GLOBAL_GRACE_DEFAULT_MS) / 1000);
}

void
global_print_json(const struct limit_info *info)
{
	uint64_t rate_Bps[2], left_ns;
	enum global_state state;

	if (!info->cfg.global) {
		printf(",\"global\":false");
		return;
	}
	lease_now(info, rate_Bps, &state, &left_ns);
	printf(",\"global\":true,\"share_up\":%" PRIu64 ",\"share_down\":%"
	    PRIu64 ",\"global_state\":\"%s\",\"lease_left_ms\":%" PRIu64
	    ",\"lease_end_ns\":%" PRIu64 ",\"leased_unix_ns\":%" PRIu64
	    ",\"hosts\":%" PRIu32 ",\"floor_hosts\":%" PRIu32
	    ",\"hosts_set\":%" PRIu32 ",\"hosts_seen\":%" PRIu32
	    ",\"global_version\":%" PRIu64
	    ",\"offline\":\"%s\",\"floor_up\":%" PRIu64 ",\"floor_down\":%"
	    PRIu64 ",\"grace_ms\":%" PRIu64, rate_Bps[DIR_UP],
	    rate_Bps[DIR_DOWN], global_state_name(state), left_ns / 1000000,
	    info->global.hold_until_ns > info->global.lease_until_ns ?
	    info->global.hold_until_ns : info->global.lease_until_ns,
	    info->global.leased_unix_ns, info->global.nhosts,
	    global_floor_hosts(&info->cfg, &info->global), info->cfg.hosts,
	    info->cfg.hosts_seen, info->global.version,
	    offline_name(info->cfg.offline), info->cfg.floor_Bps[DIR_UP],
	    info->cfg.floor_Bps[DIR_DOWN],
	    info->cfg.grace_ms == GLOBAL_GRACE_NONE ? (uint64_t)0 :
	    (uint64_t)(info->cfg.grace_ms ? info->cfg.grace_ms :
	    GLOBAL_GRACE_DEFAULT_MS));
}

const char *
global_column(const struct limit_info *info, char *buf, size_t size)
{
	uint64_t rate_Bps[2], left_ns;
	enum global_state state;
	char up[32], down[32];

	if (!info->cfg.global) {
		snprintf(buf, size, "-");
		return buf;
	}
	lease_now(info, rate_Bps, &state, &left_ns);
	snprintf(buf, size, "%s %s/%s %.1fs %" PRIu32 "h",
	    global_state_name(state), rate_Bps[DIR_UP] ? format_measured(
	    rate_Bps[DIR_UP], up, sizeof(up)) : "unlimited",
	    rate_Bps[DIR_DOWN] ? format_measured(rate_Bps[DIR_DOWN], down,
	    sizeof(down)) : "unlimited", (double)left_ns / 1e9,
	    info->global.nhosts);
	return buf;
}

#ifdef IPRELAY_NO_HIREDIS
int
global_set_in_redis(const struct redis_conf *conf, const char *name,
    const struct global_set *given, struct global_set *result,
    uint64_t *version)
{
	(void)conf;
	(void)given;
	(void)result;
	(void)version;
	fprintf(stderr, "iprelay-limit: fatal: unable to make %s global: "
	    "built without hiredis (make HIREDIS=no)\n", name);
	return EXIT_USAGE;
}

int
global_print_hosts(const struct redis_conf *conf, const char *name,
    int json)
{
	(void)conf;
	(void)json;
	fprintf(stderr, "iprelay-limit: fatal: unable to list the hosts of "
	    "%s: built without hiredis (make HIREDIS=no)\n", name);
	return EXIT_USAGE;
}
#else

/* Sets the fields given (a flag and a value each) and counts the version
 * up, or only reads; either way answers the configuration.  The host
 * count (ARGV 7, 8) is kept beside it for the next host to join, outside
 * the version: the lease does not carry it.  ARGV 9 = '1': refuse before
 * writing anything when no host count is known. */
static const char SET_LUA[] =
"local stored = redis.call('HMGET', KEYS[1], 'rate_up', 'hosts')\n"
"if not stored[1] and ARGV[1] ~= '1' and ARGV[3] ~= '1' and"
" ARGV[5] ~= '1' then\n"
"  return redis.error_reply('NOLIMIT no such global limit')\n"
"end\n"
"local hosts = tonumber(stored[2]) or 0\n"
"if ARGV[7] == '1' then hosts = tonumber(ARGV[8]) end\n"
"if hosts == 0 and ARGV[9] == '1' then\n"
"  return redis.error_reply('NOHOSTS no host count')\n"
"end\n"
"local given = false\n"
"for i, f in ipairs({ 'rate_up', 'rate_down', 'burst' }) do\n"
"  if ARGV[2 * i - 1] == '1' then\n"
"    redis.call('HSET', KEYS[1], f, ARGV[2 * i]); given = true\n"
"  end\n"
"end\n"
"if given then\n"
"  redis.call('HSETNX', KEYS[1], 'rate_up', 0)\n"
"  redis.call('HSETNX', KEYS[1], 'rate_down', 0)\n"
"  redis.call('HSETNX', KEYS[1], 'burst', 0)\n"
"  redis.call('HINCRBY', KEYS[1], 'version', 1)\n"
"end\n"
"local c = redis.call('HMGET', KEYS[1], 'rate_up', 'rate_down', 'burst',"
" 'version')\n"
"if not c[1] then return redis.error_reply('NOLIMIT no such global limit')"
" end\n"
"if ARGV[7] == '1' then redis.call('HSET', KEYS[1], 'hosts', hosts) end\n"
"return { tonumber(c[1]), tonumber(c[2]), tonumber(c[3]) or 0,"
" tonumber(c[4]) or 0, hosts }\n";

/* Redis's clock and every host record, in one atomic read. */
static const char HOSTS_LUA[] =
"local t = redis.call('TIME')\n"
"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
"local c = redis.call('HMGET', KEYS[1], 'rate_up', 'rate_down')\n"
"return { now, tonumber(c[1]) or -1, tonumber(c[2]) or -1,"
" redis.call('HGETALL', KEYS[2]) }\n";

static redisContext *
connect_or_die(const struct redis_conf *conf, const char *what,
    const char *name)
{
	struct redis_conf with_auth = *conf;
	redisContext *context;
	char err[300], auth_path[4200];
	int rc;

	rc = redis_conf_load_auth(&with_auth, NULL, auth_path,
	    sizeof(auth_path));
	if (rc)
		log_fatal(rc == EPERM || rc == EINVAL ? EXIT_USAGE :
		    EXIT_SYSTEM, "unable to read the Redis credentials in %s: "
		    "%s", auth_path, rc == EPERM ? "readable by others than "
		    "its owner (chmod 600), or not owned by this user" :
		    rc == EINVAL ? "not \"PASSWORD\" or \"USER PASSWORD\"" :
		    strerror(rc));
	rc = redis_connect_blocking(&with_auth, REDIS_TIMEOUT_MS, &context,
	    err, sizeof(err));
	memset(&with_auth, 0, sizeof(with_auth));
	if (rc)
		log_fatal(EXIT_SYSTEM, "unable to %s %s: %s: %s", what, name,
		    conf->text, err);
	return context;
}

int
global_set_in_redis(const struct redis_conf *conf, const char *name,
    const struct global_set *given, struct global_set *result,
    uint64_t *version)
{
	redisContext *context;
	redisReply *reply;
	char key[REDIS_KEY_MAX + 1], values[4][24];
	const char *argv[13];
	int i;

	context = connect_or_die(conf, "make global", name);
	redis_key_cfg(key, name);
	snprintf(values[0], sizeof(values[0]), "%" PRIu64,
	    given->rate_Bps[DIR_UP]);
	snprintf(values[1], sizeof(values[1]), "%" PRIu64,
	    given->rate_Bps[DIR_DOWN]);
	snprintf(values[2], sizeof(values[2]), "%" PRIu64, given->burst_B);
	argv[0] = "EVAL";
	argv[1] = SET_LUA;
	argv[2] = "1";
	argv[3] = key;
	argv[4] = given->have_up ? "1" : "0";
	argv[5] = values[0];
	argv[6] = given->have_down ? "1" : "0";
	argv[7] = values[1];
	argv[8] = given->have_burst ? "1" : "0";
	argv[9] = values[2];
	snprintf(values[3], sizeof(values[3]), "%" PRIu32, given->hosts);
	argv[10] = given->have_hosts ? "1" : "0";
	argv[11] = values[3];
	argv[12] = given->need_hosts ? "1" : "0";
	reply = redisCommandArgv(context, 13, argv, NULL);
	if (reply == NULL) {
		fprintf(stderr, "iprelay-limit: fatal: unable to make %s "
		    "global: %s: %s\n", name, conf->text, context->errstr);
		redisFree(context);
		return EXIT_SYSTEM;
	}
	if (reply->type == REDIS_REPLY_ERROR &&
	    strncmp(reply->str, "NOLIMIT", 7) == 0) {
		fprintf(stderr, "iprelay-limit: refused: %s is not a global "
		    "limit in %s yet: give its rate to create it\n", name,
		    conf->text);
		freeReplyObject(reply);
		redisFree(context);
		return EXIT_POLICY;
	}
	if (reply->type == REDIS_REPLY_ERROR &&
	    strncmp(reply->str, "NOHOSTS", 7) == 0) {
		freeReplyObject(reply);
		redisFree(context);
		return EXIT_NOHOSTS;
	}
	if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 5) {
		fprintf(stderr, "iprelay-limit: fatal: unable to make %s "
		    "global: %s answered %s\n", name, conf->text,
		    reply->type == REDIS_REPLY_ERROR ? reply->str :
		    "something else");
		freeReplyObject(reply);
		redisFree(context);
		return EXIT_SYSTEM;
	}
	for (i = 0; i < 5; i++)
		if (reply->element[i]->type != REDIS_REPLY_INTEGER ||
		    reply->element[i]->integer < 0)
			break;
	if (i < 5 || reply->element[4]->integer > GLOBAL_HOSTS_MAX) {
		fprintf(stderr, "iprelay-limit: fatal: unable to make %s "
		    "global: a damaged configuration in %s (key %s)\n", name,
		    conf->text, key);
		freeReplyObject(reply);
		redisFree(context);
		return EXIT_SYSTEM;
	}
	memset(result, 0, sizeof(*result));
	result->have_up = result->have_down = result->have_burst = 1;
	result->rate_Bps[DIR_UP] = (uint64_t)reply->element[0]->integer;
	result->rate_Bps[DIR_DOWN] = (uint64_t)reply->element[1]->integer;
	result->burst_B = (uint64_t)reply->element[2]->integer;
	*version = (uint64_t)reply->element[3]->integer;
	result->hosts = (uint32_t)reply->element[4]->integer;
	freeReplyObject(reply);
	redisFree(context);
	if (result->rate_Bps[0] > RATE_MAX || result->rate_Bps[1] > RATE_MAX ||
	    result->burst_B > BURST_MAX) {
		fprintf(stderr, "iprelay-limit: fatal: unable to make %s "
		    "global: rates out of range in %s\n", name, conf->text);
		return EXIT_SYSTEM;
	}
	return 0;
}

static long long
reply_integer(const redisReply *reply)
{
	return reply->type == REDIS_REPLY_INTEGER ? reply->integer : -1;
}

int
global_print_hosts(const struct redis_conf *conf, const char *name,
    int json)
{
	redisContext *context;
	redisReply *reply, *records;
	char cfg_key[REDIS_KEY_MAX + 1], hosts_key[REDIS_KEY_MAX + 1];
	char want[2][32], share[2][32];
	const char *argv[5];
	long long now_ms;
	size_t index;
	int dir, first = 1, shown = 0;

	context = connect_or_die(conf, "list the hosts of", name);
	redis_key_cfg(cfg_key, name);
	redis_key_hosts(hosts_key, name);
	argv[0] = "EVAL";
	argv[1] = HOSTS_LUA;
	argv[2] = "2";
	argv[3] = cfg_key;
	argv[4] = hosts_key;
	reply = redisCommandArgv(context, 5, argv, NULL);
	if (reply == NULL || reply->type != REDIS_REPLY_ARRAY ||
	    reply->elements != 4 ||
	    reply->element[3]->type != REDIS_REPLY_ARRAY) {
		fprintf(stderr, "iprelay-limit: fatal: unable to list the "
		    "hosts of %s: %s: %s\n", name, conf->text, reply == NULL ?
		    context->errstr : reply->type == REDIS_REPLY_ERROR ?
		    reply->str : "an unexpected answer");
		if (reply)
			freeReplyObject(reply);
		redisFree(context);
		return EXIT_SYSTEM;
	}
	if (reply_integer(reply->element[1]) < 0) {
		fprintf(stderr, "iprelay-limit: no such global limit in %s: "
		    "%s\n", conf->text, name);
		freeReplyObject(reply);
		redisFree(context);
		return EXIT_POLICY;
	}
	now_ms = reply_integer(reply->element[0]);
	records = reply->element[3];
	if (json)
		printf("[");
	else
		printf("%-24s %6s %9s %9s %9s %9s %7s\n", "HOST", "WEIGHT",
		    "WANT_UP", "WANT_DOWN", "SHARE_UP", "SHARE_DOWN",
		    "LEASE");
	for (index = 0; index + 1 < records->elements; index += 2) {
		const redisReply *id = records->element[index];
		const redisReply *value = records->element[index + 1];
		long long weight, wants[2], shares[2], exp_ms;
		char nonce[32];

		if (id->type != REDIS_REPLY_STRING ||
		    value->type != REDIS_REPLY_STRING ||
		    sscanf(value->str, "%lld %lld %lld %lld %lld %lld %31s",
		    &weight, &wants[0], &wants[1], &shares[0], &shares[1],
		    &exp_ms, nonce) != 7 || exp_ms <= now_ms)
			continue;	/* a dead host's, not yet swept */
		shown++;
		if (json) {
			printf("%s{\"host\":", first ? "" : ",");
			first = 0;
			putchar('"');
			for (const char *c = id->str; *c; c++)
				if (*c == '"' || *c == '\\' ||
				    (unsigned char)*c < 0x20)
					printf("\\u%04x", (unsigned char)*c);
				else
					putchar(*c);
			printf("\",\"weight\":%lld,\"want_up\":%lld,"
			    "\"want_down\":%lld,\"share_up\":%lld,"
			    "\"share_down\":%lld,\"lease_left_ms\":%lld}",
			    weight, wants[0], wants[1], shares[0], shares[1],
			    exp_ms - now_ms);
			continue;
		}
		for (dir = 0; dir < 2; dir++) {
			if (wants[dir] < 0)
				snprintf(want[dir], sizeof(want[dir]), "all");
			else
				format_measured((uint64_t)wants[dir],
				    want[dir], sizeof(want[dir]));
			format_measured((uint64_t)shares[dir], share[dir],
			    sizeof(share[dir]));
		}
		printf("%-24s %6lld %9s %9s %9s %9s %6.2fs\n", id->str, weight,
		    want[0], want[1], share[0], share[1],
		    (double)(exp_ms - now_ms) / 1000);
	}
	if (json)
		printf("]\n");
	freeReplyObject(reply);
	redisFree(context);
	(void)shown;
	return 0;
}
#endif
