/*
 * shaperd's lease client for global limits (global.h): demand estimation,
 * the renewal batch per tick, and the non-blocking hiredis connection with
 * its own event hooks on shaperd's poll loop.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#ifndef IPRELAY_NO_HIREDIS
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#endif

#include "global.h"
#include "log.h"
#include "resolve.h"

#ifdef IPRELAY_NO_HIREDIS
int
global_create(struct global **global, struct store *store,
    const struct redis_conf *conf, const char *host_id)
{
	(void)store;
	(void)conf;
	(void)host_id;
	*global = NULL;
	return ENOTSUP;
}

void
global_destroy(struct global *global)
{
	(void)global;
}

void
global_tick(struct global *global, uint64_t now_ns)
{
	(void)global;
	(void)now_ns;
}

void
global_pollfd(struct global *global, struct pollfd *pfd)
{
	(void)global;
	pfd->fd = -1;
	pfd->events = 0;
}

void
global_handle(struct global *global, short revents)
{
	(void)global;
	(void)revents;
}

void
global_get_stats(const struct global *global, struct global_stats *stats)
{
	(void)global;
	memset(stats, 0, sizeof(*stats));
}
#else

/* The lease script, shaperd/lease.lua as a C string (Makefile). */
#include "lease-lua.h"

#define BACKOFF_MIN_NS	(100ULL * 1000 * 1000)
/* Short: a Redis restarted empty must be leased from again within a
 * fraction of the 1.2 s the hosts have to reach fair shares (issue 16
 * aim 7), and a refused connect costs a few microseconds. */
#define BACKOFF_MAX_NS	(250ULL * 1000 * 1000)
#define LOG_EVERY	100	/* repeated errors: one line in this many */
/* Demand: a limit is backlogged when at least a quarter of what it passed
 * in a tick waited on it as the bottleneck; otherwise it wants what it
 * passed (the larger of the last tick and an average over about three,
 * which follows a fall below a quarter when relays went, see
 * observe_limit), 5% more, and a little: enough to notice growth, little
 * enough that an idle host's unused share stays near 1% of the global
 * rate. */
#define WANT_PERCENT	105
#define WANT_MIN_B	4096
#define WANT_GLOBAL_DIV	200

struct glimit {
	char name[LIMIT_NAME_MAX + 1];
	int seen;			/* in the store at the last tick */
	int pending;			/* a call is out */
	int sent_evalsha;
	int have_result;
	uint64_t total_B[2], waited_B[2], at_ns;
	uint64_t avg_Bps[2];
	int low[2];			/* the last tick was a collapse not
					 * yet believed */
	uint32_t nconns;		/* relays at the last tick */
	int fell;			/* ticks left in which a collapse
					 * is believed: relays went */
	int64_t want_Bps[2];		/* -1 = backlogged */
	uint64_t have_Bps[2];
	uint32_t weight;
	uint32_t nhosts;		/* counted at this host's last lease */
	uint32_t hosts_set;		/* set --hosts, as configured here */
	uint64_t version, rate_Bps[2], burst_B;	/* cached configuration */
	struct global_lease result;
	uint64_t lease_ms;
	unsigned errors;
};

struct global {
	struct store *store;
	struct redis_conf conf;
	char host_id[GLOBAL_HOST_ID_MAX + 1];
	char nonce[17];
	redisAsyncContext *ac;
	int fd;
	short events;
	int ready;			/* connected, AUTH/SELECT done */
	uint64_t connect_at_ns, backoff_ns;
	uint64_t connect_started_ns;	/* of the connection being set up */
	struct resolve resolve;		/* the TCP host's address */
	uint64_t batch_sent_ns;
	unsigned inflight;
	uint64_t last_success_ns;	/* CLOCK_MONOTONIC; 0 = never */
	uint64_t lease_ns;		/* longest lease seen */
	unsigned connect_errors;
	struct glimit *limits;
	size_t nlimits, cap;
	struct global_stats stats;
};

/* hiredis event hooks: remember what it waits for; shaperd's loop polls. */
static void
ev_add_read(void *data)
{
	((struct global *)data)->events |= POLLIN;
}

static void
ev_del_read(void *data)
{
	((struct global *)data)->events &= ~POLLIN;
}

static void
ev_add_write(void *data)
{
	((struct global *)data)->events |= POLLOUT;
}

static void
ev_del_write(void *data)
{
	((struct global *)data)->events &= ~POLLOUT;
}

/* hiredis frees the context itself after an I/O error or EOF: this is the
 * one hook every path to that free passes. */
static void
ev_cleanup(void *data)
{
	struct global *global = data;

	global->ac = NULL;
	global->fd = -1;
	global->events = 0;
	global->ready = 0;
	global->stats.connected = 0;
}

static void
schedule_reconnect(struct global *global, uint64_t now_ns)
{
	global->backoff_ns = global->backoff_ns ?
	    global->backoff_ns * 2 : BACKOFF_MIN_NS;
	if (global->backoff_ns > BACKOFF_MAX_NS)
		global->backoff_ns = BACKOFF_MAX_NS;
	global->connect_at_ns = now_ns + global->backoff_ns;
}

static void
drop_connection(struct global *global, uint64_t now_ns, const char *why)
{
	if (global->connect_errors++ % LOG_EVERY == 0)
		log_warn("global limits: dropping the connection to %s: %s",
		    global->conf.text, why);
	if (global->ac)
		redisAsyncFree(global->ac);	/* pending calls fail */
	global->ac = NULL;
	global->fd = -1;
	global->events = 0;
	global->ready = 0;
	global->stats.connected = 0;
	schedule_reconnect(global, now_ns);
}

static void
on_setup(redisAsyncContext *ac, void *reply_ptr, void *privdata)
{
	struct global *global = ac->data;
	redisReply *reply = reply_ptr;

	(void)privdata;
	if (reply == NULL)
		return;
	if (reply->type == REDIS_REPLY_ERROR) {
		if (global->connect_errors++ % LOG_EVERY == 0)
			log_warn("global limits: %s refused the setup: %s",
			    global->conf.text, reply->str);
		redisAsyncDisconnect(ac);
		return;
	}
	/* Replies come in order: the last setup command's is the one. */
	if (privdata != NULL) {
		global->ready = 1;
		global->stats.connected = 1;
		global->backoff_ns = 0;
		if (global->connect_errors) {
			log_line(LOG_INFO, "global limits: connected to %s",
			    global->conf.text);
			global->connect_errors = 0;
		}
	}
}

static void
on_connect(const redisAsyncContext *ac, int status)
{
	struct global *global = ac->data;
	redisAsyncContext *context = (redisAsyncContext *)ac;
	char db[16];

	if (status != REDIS_OK) {
		if (global->connect_errors++ % LOG_EVERY == 0)
			log_warn("global limits: unable to connect to %s: %s",
			    global->conf.text, ac->errstr);
		resolve_stale(&global->resolve);
		schedule_reconnect(global, monotonic_ns());
		return;
	}
	if (global->conf.password[0]) {
		const char *argv[3] = { "AUTH", global->conf.user,
		    global->conf.password };

		if (global->conf.user[0])
			redisAsyncCommandArgv(context, on_setup, NULL, 3, argv,
			    NULL);
		else {
			argv[1] = global->conf.password;
			redisAsyncCommandArgv(context, on_setup, NULL, 2, argv,
			    NULL);
		}
	}
	snprintf(db, sizeof(db), "%u", global->conf.db);
	{
		const char *argv[2] = { "SELECT", db };

		/* The last setup command: its reply makes us ready. */
		redisAsyncCommandArgv(context, on_setup, global, 2, argv, NULL);
	}
}

static void
on_disconnect(const redisAsyncContext *ac, int status)
{
	struct global *global = ac->data;

	if (status != REDIS_OK && global->connect_errors++ % LOG_EVERY == 0)
		log_warn("global limits: lost %s: %s", global->conf.text,
		    ac->errstr);
	schedule_reconnect(global, monotonic_ns());
}

static void
start_connect(struct global *global, uint64_t now_ns)
{
	redisAsyncContext *ac;
	const char *addr;
	int rc;

	if (global->conf.path[0])
		ac = redisAsyncConnectUnix(global->conf.path);
	else {
		/* hiredis would look a name up with a blocking getaddrinfo():
		 * it gets the address found without blocking instead. */
		rc = resolve_address(&global->resolve, now_ns, &addr);
		if (rc == EINPROGRESS) {
			global->connect_at_ns = now_ns;	/* next tick */
			return;
		}
		if (rc) {
			if (global->connect_errors++ % LOG_EVERY == 0)
				log_warn("global limits: unable to look up "
				    "%s: %s", global->conf.host,
				    resolve_error(&global->resolve));
			schedule_reconnect(global, now_ns);
			return;
		}
		ac = redisAsyncConnect(addr, global->conf.port);
	}
	if (ac == NULL || ac->err) {
		if (global->connect_errors++ % LOG_EVERY == 0)
			log_warn("global limits: unable to connect to %s: %s",
			    global->conf.text, ac ? ac->errstr :
			    "out of memory");
		if (ac)
			redisAsyncFree(ac);
		resolve_stale(&global->resolve);
		schedule_reconnect(global, now_ns);
		return;
	}
	ac->data = global;
	ac->ev.data = global;
	ac->ev.addRead = ev_add_read;
	ac->ev.delRead = ev_del_read;
	ac->ev.addWrite = ev_add_write;
	ac->ev.delWrite = ev_del_write;
	ac->ev.cleanup = ev_cleanup;
	global->ac = ac;
	global->connect_started_ns = now_ns;
	global->fd = ac->c.fd;
	global->events = POLLOUT;	/* the connect completes writable */
	redisAsyncSetConnectCallback(ac, on_connect);
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
}

static void send_lease(struct global *global, size_t index, int evalsha,
    int leave);

static int
reply_int(const redisReply *reply, size_t index, uint64_t *value)
{
	if (index >= reply->elements ||
	    reply->element[index]->type != REDIS_REPLY_INTEGER ||
	    reply->element[index]->integer < 0)
		return -1;
	*value = (uint64_t)reply->element[index]->integer;
	return 0;
}

static void
apply_batch(struct global *global)
{
	struct global_lease *leases;
	size_t index, n = 0;
	uint64_t now_ns = monotonic_ns();
	int rc;

	leases = calloc(global->nlimits ? global->nlimits : 1,
	    sizeof(*leases));
	if (leases == NULL)
		return;
	for (index = 0; index < global->nlimits; index++)
		if (global->limits[index].have_result) {
			leases[n++] = global->limits[index].result;
			global->limits[index].have_result = 0;
		}
	if (n) {
		global->stats.last_rtt_ns = now_ns - global->batch_sent_ns;
		if (global->stats.last_rtt_ns > global->stats.max_rtt_ns)
			global->stats.max_rtt_ns = global->stats.last_rtt_ns;
		global->last_success_ns = now_ns;
		global->stats.last_ok_unix_ns = realtime_ns();
		rc = store_global_lease(global->store, leases, n);
		if (rc)
			log_warn("global limits: unable to store the leases: "
			    "%s", store_strerror(rc));
	}
	free(leases);
}

static void
on_lease(redisAsyncContext *ac, void *reply_ptr, void *privdata)
{
	struct global *global = ac->data;
	redisReply *reply = reply_ptr;
	size_t index = (size_t)(uintptr_t)privdata - 1;
	struct glimit *limit;
	struct global_lease *lease;
	uint64_t values[12];
	size_t i;

	if (index >= global->nlimits)
		return;
	limit = &global->limits[index];
	limit->pending = 0;
	global->inflight--;
	if (reply == NULL) {
		global->stats.failures++;
	} else if (reply->type == REDIS_REPLY_ERROR &&
	    strncmp(reply->str, "NOSCRIPT", 8) == 0 && limit->sent_evalsha) {
		/* Redis restarted or failed over: its script cache is
		 * empty.  EVAL caches the script again. */
		send_lease(global, index, 0, 0);
	} else if (reply->type == REDIS_REPLY_ERROR) {
		global->stats.failures++;
		if (limit->errors++ % LOG_EVERY == 0)
			log_warn("global limits: unable to lease %s: %s",
			    limit->name, reply->str);
	} else if (reply->type == REDIS_REPLY_ARRAY && reply->elements >= 11) {
		for (i = 0; i < 11; i++)
			if (reply_int(reply, i, &values[i]))
				break;
		if (i < 11) {
			global->stats.failures++;
		} else {
			lease = &limit->result;
			memset(lease, 0, sizeof(*lease));
			memcpy(lease->name, limit->name, sizeof(lease->name));
			lease->share_Bps[DIR_UP] = values[0];
			lease->share_Bps[DIR_DOWN] = values[1];
			limit->lease_ms = values[2];
			/* Measured from before the call was sent: the lease
			 * ends here before it ends in Redis. */
			lease->lease_until_ns = global->batch_sent_ns +
			    values[2] * 1000000 > GLOBAL_LEASE_MARGIN_NS ?
			    global->batch_sent_ns + values[2] * 1000000 -
			    GLOBAL_LEASE_MARGIN_NS : 0;
			if (values[2] * 1000000 > global->lease_ns)
				global->lease_ns = values[2] * 1000000;
			lease->nhosts = (uint32_t)values[3];
			lease->rate_Bps[DIR_UP] = values[4];
			lease->rate_Bps[DIR_DOWN] = values[5];
			lease->version = values[6];
			lease->burst_B = values[7];
			/* Set with --hosts on any host: kept here as the
			 * rates are. */
			lease->hosts_set = reply->elements >= 12 &&
			    reply_int(reply, 11, &values[11]) == 0 &&
			    values[11] <= GLOBAL_HOSTS_MAX ?
			    (uint32_t)values[11] : 0;
			limit->have_result = 1;
			global->stats.renewals++;
			if (limit->errors) {
				log_line(LOG_INFO, "global limits: %s leased "
				    "again", limit->name);
				limit->errors = 0;
			}
		}
	} else {
		global->stats.failures++;
	}
	if (global->inflight == 0)
		apply_batch(global);
}

static void
on_leave(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct global *global = ac->data;

	(void)reply;
	(void)privdata;
	global->inflight--;
}

static void
send_lease(struct global *global, size_t index, int evalsha, int leave)
{
	struct glimit *limit = &global->limits[index];
	char cfg_key[REDIS_KEY_MAX + 1], hosts_key[REDIS_KEY_MAX + 1];
	char numbers[11][24];
	const char *argv[19];
	size_t lengths[19];
	int i, argc = 0, rc;

	redis_key_cfg(cfg_key, limit->name);
	redis_key_hosts(hosts_key, limit->name);
	argv[argc++] = evalsha ? "EVALSHA" : "EVAL";
	argv[argc++] = evalsha ? LEASE_LUA_SHA1 : LEASE_LUA;
	argv[argc++] = "2";
	argv[argc++] = cfg_key;
	argv[argc++] = hosts_key;
	argv[argc++] = global->host_id;
	argv[argc++] = global->nonce;
	snprintf(numbers[0], sizeof(numbers[0]), "%u", limit->weight);
	snprintf(numbers[1], sizeof(numbers[1]), "%lld",
	    (long long)limit->want_Bps[DIR_UP]);
	snprintf(numbers[2], sizeof(numbers[2]), "%lld",
	    (long long)limit->want_Bps[DIR_DOWN]);
	snprintf(numbers[3], sizeof(numbers[3]), "%llu",
	    (unsigned long long)limit->have_Bps[DIR_UP]);
	snprintf(numbers[4], sizeof(numbers[4]), "%llu",
	    (unsigned long long)limit->have_Bps[DIR_DOWN]);
	snprintf(numbers[5], sizeof(numbers[5]), "%llu",
	    (unsigned long long)limit->version);
	snprintf(numbers[6], sizeof(numbers[6]), "%llu",
	    (unsigned long long)limit->rate_Bps[DIR_UP]);
	snprintf(numbers[7], sizeof(numbers[7]), "%llu",
	    (unsigned long long)limit->rate_Bps[DIR_DOWN]);
	snprintf(numbers[8], sizeof(numbers[8]), "%llu",
	    (unsigned long long)limit->burst_B);
	for (i = 0; i < 9; i++)
		argv[argc++] = numbers[i];
	argv[argc++] = leave ? "leave" : "lease";
	snprintf(numbers[9], sizeof(numbers[9]), "%u", limit->nhosts);
	argv[argc++] = numbers[9];
	snprintf(numbers[10], sizeof(numbers[10]), "%u", limit->hosts_set);
	argv[argc++] = numbers[10];
	for (i = 0; i < argc; i++)
		lengths[i] = strlen(argv[i]);
	rc = redisAsyncCommandArgv(global->ac, leave ? on_leave : on_lease,
	    (void *)(uintptr_t)(index + 1), argc, argv, lengths);
	if (rc != REDIS_OK)
		return;
	global->inflight++;
	limit->pending = !leave;
	limit->sent_evalsha = evalsha;
}

static struct glimit *
find_limit(struct global *global, const char *name)
{
	struct glimit *grown;
	size_t index;

	for (index = 0; index < global->nlimits; index++)
		if (strcmp(global->limits[index].name, name) == 0)
			return &global->limits[index];
	if (global->nlimits == global->cap) {
		grown = realloc(global->limits, (global->cap ?
		    global->cap * 2 : 8) * sizeof(*grown));
		if (grown == NULL)
			return NULL;
		global->limits = grown;
		global->cap = global->cap ? global->cap * 2 : 8;
	}
	memset(&global->limits[global->nlimits], 0, sizeof(*grown));
	snprintf(global->limits[global->nlimits].name, LIMIT_NAME_MAX + 1,
	    "%s", name);
	return &global->limits[global->nlimits++];
}

struct tick_ctx {
	struct global *global;
	uint64_t now_ns;
};

/* Demand and what is enforced now, per global limit (global.h). */
static int
observe_limit(void *ctx_ptr, const struct limit_info *info)
{
	struct tick_ctx *ctx = ctx_ptr;
	struct glimit *limit;
	uint64_t passed_B, waited_B, dt_ns, now_Bps, want_B;
	enum global_state state;
	int dir, fresh;

	if (!info->cfg.global)
		return 0;
	limit = find_limit(ctx->global, info->name);
	if (limit == NULL)
		return 0;
	fresh = !limit->seen && limit->at_ns == 0;
	limit->seen = 1;
	ctx->global->stats.limits++;
	dt_ns = ctx->now_ns - limit->at_ns;
	/* Relays going usually shows in the count a tick before it shows
	 * in the bytes (the tick they went in still passed some). */
	if (info->nconns < limit->nconns)
		limit->fell = 2;
	else if (limit->fell)
		limit->fell--;
	limit->weight = info->nconns ? info->nconns : 1;
	limit->version = info->global.version;
	limit->nhosts = info->global.nhosts;
	limit->hosts_set = info->cfg.hosts;
	limit->burst_B = info->cfg.burst_B;
	for (dir = 0; dir < 2; dir++) {
		limit->rate_Bps[dir] = info->cfg.rate_Bps[dir];
		limit->have_Bps[dir] = global_rate_at(&info->cfg,
		    &info->global, dir, ctx->now_ns, &state);
		if (state == GLOBAL_IS_OPEN)
			limit->have_Bps[dir] = info->cfg.rate_Bps[dir];
		if (dir == 0 && (state == GLOBAL_LEASED || state == GLOBAL_HELD))
			ctx->global->stats.leased++;
		passed_B = info->total_B[dir] - limit->total_B[dir];
		waited_B = info->global.waited_B[dir] - limit->waited_B[dir];
		limit->total_B[dir] = info->total_B[dir];
		limit->waited_B[dir] = info->global.waited_B[dir];
		if (fresh || dt_ns == 0) {
			limit->want_Bps[dir] = -1;	/* until measured */
			continue;
		}
		now_Bps = (uint64_t)((unsigned __int128)passed_B * NS_PER_SEC /
		    dt_ns);
		/* A collapse is believed at once when relays went (the clients
		 * stopped), so the share goes to the others at the next
		 * renewal; otherwise at its second tick: one tick in which a
		 * paced relay was not scheduled (load) cut such a host's share
		 * to a quarter, and the relay, catching up afterwards, pushed
		 * the aggregate past the rate (bench/global.sh aim 7, 102.4%).
		 * Smaller dips (a paced relay's bytes per tick vary by a
		 * quantum) are averaged. */
		if (info->nconns == 0) {
			/* No relay left: whatever passed this tick went with
			 * them, and a newcomer has the margin below. */
			limit->avg_Bps[dir] = now_Bps = 0;
			limit->low[dir] = 0;
			waited_B = 0;
		} else if (now_Bps < limit->avg_Bps[dir] / 4) {
			if (limit->fell || limit->low[dir]) {
				limit->avg_Bps[dir] = now_Bps;
				limit->low[dir] = 0;
			} else
				limit->low[dir] = 1;
		} else {
			limit->low[dir] = 0;
			limit->avg_Bps[dir] = (limit->avg_Bps[dir] * 2 +
			    now_Bps) / 3;
		}
		if (passed_B > 0 && waited_B * 4 >= passed_B) {
			limit->want_Bps[dir] = -1;
			continue;
		}
		want_B = now_Bps > limit->avg_Bps[dir] ? now_Bps :
		    limit->avg_Bps[dir];
		want_B = want_B / 100 * WANT_PERCENT +
		    (info->cfg.rate_Bps[dir] / WANT_GLOBAL_DIV > WANT_MIN_B ?
		    info->cfg.rate_Bps[dir] / WANT_GLOBAL_DIV : WANT_MIN_B);
		limit->want_Bps[dir] = (int64_t)(want_B > RATE_MAX ? RATE_MAX :
		    want_B);
	}
	limit->at_ns = ctx->now_ns;
	limit->nconns = info->nconns;
	return 0;
}

void
global_tick(struct global *global, uint64_t now_ns)
{
	struct tick_ctx ctx = { global, now_ns };
	size_t index, kept;
	int rc;

	global->stats.limits = 0;
	global->stats.leased = 0;
	for (index = 0; index < global->nlimits; index++)
		global->limits[index].seen = 0;
	rc = store_limit_foreach(global->store, observe_limit, &ctx);
	if (rc)
		return;
	/* Forget limits no longer global, while no call refers to them. */
	if (global->inflight == 0) {
		for (index = kept = 0; index < global->nlimits; index++)
			if (global->limits[index].seen)
				global->limits[kept++] = global->limits[index];
		global->nlimits = kept;
	}
	/* Redis unreachable: hold the shares for their grace (the store
	 * bounds it), one lease at a time, so that a shaperd that dies now
	 * keeps nothing past one lease. */
	if (global->stats.limits &&
	    now_ns - global->last_success_ns > GLOBAL_HOLD_AFTER_NS &&
	    (rc = store_global_hold(global->store, now_ns +
	    (global->lease_ns ? global->lease_ns : NS_PER_SEC) -
	    GLOBAL_LEASE_MARGIN_NS)))
		log_warn("global limits: unable to hold the shares: %s",
		    store_strerror(rc));
	if (global->ac && global->inflight &&
	    now_ns - global->batch_sent_ns > GLOBAL_DEAD_NS) {
		global->stats.failures += global->inflight;
		drop_connection(global, now_ns, "no answer for 2 s");
	}
	/* A setup that hangs (a peer that accepts and then says nothing, or
	 * a path that lost the connection without a reset) would otherwise
	 * wait for the kernel's retransmissions, many minutes. */
	if (global->ac && !global->ready &&
	    now_ns - global->connect_started_ns > GLOBAL_DEAD_NS)
		drop_connection(global, now_ns, "no answer to the connection "
		    "setup for 2 s");
	if (global->ac == NULL && global->stats.limits &&
	    now_ns >= global->connect_at_ns)
		start_connect(global, now_ns);
	if (global->ac == NULL || !global->ready || global->inflight)
		return;
	global->batch_sent_ns = now_ns;
	for (index = 0; index < global->nlimits; index++)
		if (global->limits[index].seen)
			send_lease(global, index, 1, 0);
}

void
global_pollfd(struct global *global, struct pollfd *pfd)
{
	pfd->fd = global->ac ? global->fd : -1;
	pfd->events = global->ac ? global->events : 0;
	pfd->revents = 0;
}

void
global_handle(struct global *global, short revents)
{
	if (global->ac == NULL)
		return;
	if (revents & (POLLERR | POLLHUP | POLLNVAL))
		revents |= POLLIN;	/* the read sees the error */
	if ((revents & POLLOUT) && global->ac)
		redisAsyncHandleWrite(global->ac);
	if ((revents & POLLIN) && global->ac)
		redisAsyncHandleRead(global->ac);
}

/* The nonce tells this state dir's records from another's that was given
 * the same host id by mistake; kept in the store, so a restarted shaperd
 * takes over its own records at once. */
static int
load_nonce(struct store *store, char nonce[17])
{
	unsigned char raw[8];
	size_t got = 0;
	int rc, i;

	rc = store_meta_get(store, "global_nonce", nonce, 16, &got);
	if (rc == 0 && got == 16) {
		nonce[16] = '\0';
		return 0;
	}
	if (getrandom(raw, sizeof(raw), 0) != sizeof(raw))
		return errno ? errno : EIO;
	for (i = 0; i < 8; i++)
		snprintf(nonce + 2 * i, 3, "%02x", raw[i]);
	return store_meta_put(store, "global_nonce", nonce, 16);
}

int
global_create(struct global **out, struct store *store,
    const struct redis_conf *conf, const char *host_id)
{
	struct global *global;
	int rc;

	global = calloc(1, sizeof(*global));
	if (global == NULL)
		return ENOMEM;
	global->store = store;
	global->conf = *conf;
	global->fd = -1;
	resolve_init(&global->resolve, conf->host);
	snprintf(global->host_id, sizeof(global->host_id), "%s", host_id);
	if ((rc = load_nonce(store, global->nonce))) {
		free(global);
		return rc;
	}
	*out = global;
	return 0;
}

void
global_destroy(struct global *global)
{
	struct pollfd pfd;
	uint64_t until_ns;
	size_t index;

	if (global == NULL)
		return;
	/* Free this host's shares at once rather than at lease end: the
	 * relays here fall to their floor as they would anyway. */
	if (global->ac && global->ready && global->inflight == 0) {
		/* Here first: no relay may run on a share Redis gave back. */
		if (store_global_release(global->store))
			goto out;
		for (index = 0; index < global->nlimits; index++)
			send_lease(global, index, 1, 1);
		until_ns = monotonic_ns() + 100 * 1000 * 1000;
		while (global->ac && global->inflight &&
		    monotonic_ns() < until_ns) {
			global_pollfd(global, &pfd);
			if (poll(&pfd, 1, 10) > 0)
				global_handle(global, pfd.revents);
		}
	}
out:
	if (global->ac)
		redisAsyncFree(global->ac);
	free(global->limits);
	memset(&global->conf, 0, sizeof(global->conf));
	/* A lookup still running writes into global: leave it be (shaperd
	 * is stopping anyway). */
	if (resolve_cancel(&global->resolve) == 0)
		free(global);
}

void
global_get_stats(const struct global *global, struct global_stats *stats)
{
	*stats = global->stats;
}
#endif
