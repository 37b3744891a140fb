/*
 * shaperd: the refiller daemon of one state dir.  Runs in the foreground
 * (systemd Type=notify supervises it), holds the shaperd priority lock so
 * an embedded refiller yields to it, and ticks the store: settles buckets,
 * measures rates, reaps dead relays and stale reader slots.  With
 * --metrics (or a listening socket passed by systemd) it also serves
 * Prometheus metrics from the same loop (metrics.c); with -R (or
 * $IPRELAY_REDIS) it leases this host's shares of the global limits
 * (global.c), on the same loop, never blocking on Redis.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "global.h"
#include "log.h"
#include "metrics.h"
#include "parse.h"
#include "redis.h"
#include "refiller.h"
#include "store.h"
#include "version.h"

#define USAGE	"usage: shaperd [-S DIR] [-t TICK_MS] [--metrics ADDR:PORT]\n" \
		"               [-R REDIS] [-H HOST_ID] [-O]\n"
#define HOST_ID_ENV	"IPRELAY_HOST_ID"
#define TICK_MS_MIN	10
#define TICK_MS_MAX	10000
/* STATUS= is sent when it changes, and at least this often. */
#define STATUS_EVERY_NS	(5ULL * NS_PER_SEC)

struct summary {
	unsigned limits;
	unsigned conns;
};

static int
count_limit(void *ctx, const struct limit_info *info)
{
	(void)info;
	((struct summary *)ctx)->limits++;
	return 0;
}

static int
count_conn(void *ctx, const struct conn_info *info)
{
	(void)info;
	((struct summary *)ctx)->conns++;
	return 0;
}

/* The word is escaped: a newline in it must not make two lines. */
static _Noreturn void
usage_error(const char *fmt, const char *word)
{
	char text[300];

	log_escape(text, sizeof(text), word);
	fprintf(stderr, "shaperd: ");
	fprintf(stderr, fmt, text);
	fprintf(stderr, "\n%s", USAGE);
	exit(EXIT_USAGE);
}

/* The refiller watches each live relay's exit through a pidfd while
 * descriptors last (refiller.c): 8192 relays need more than the usual soft
 * limit of 1024.  Best effort: shaperd.service sets LimitNOFILE= and
 * forbids setrlimit. */
static void
raise_files_limit(void)
{
	struct rlimit files;

	if (getrlimit(RLIMIT_NOFILE, &files) == 0 &&
	    files.rlim_cur < files.rlim_max) {
		files.rlim_cur = files.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &files);
	}
}

/* This host's id in Redis: -H, $IPRELAY_HOST_ID, or the host name. */
static void
resolve_host_id(const char *option, char *id, size_t size)
{
	const char *word = option;
	char name[256];
	size_t index;

	if (word == NULL || word[0] == '\0')
		word = getenv(HOST_ID_ENV);
	if (word == NULL || word[0] == '\0') {
		if (gethostname(name, sizeof(name)) < 0)
			log_fatal(EXIT_SYSTEM, "unable to read the host name: "
			    "%s (give -H HOST_ID)", strerror(errno));
		name[sizeof(name) - 1] = '\0';
		word = name;
	}
	for (index = 0; word[index]; index++)
		if (!(word[index] >= 'a' && word[index] <= 'z') &&
		    !(word[index] >= 'A' && word[index] <= 'Z') &&
		    !(word[index] >= '0' && word[index] <= '9') &&
		    !strchr("._:-", word[index]))
			break;
	if (word[index] || index == 0 || index > GLOBAL_HOST_ID_MAX)
		usage_error("bad host id: '%s' (1 to 64 of A-Z a-z 0-9 . _ "
		    ": -)", word);
	if (index >= size)
		usage_error("bad host id: '%s' (too long)", word);
	memcpy(id, word, index + 1);
}

static int
block_signals(void)
{
	sigset_t signals;
	int fd;

	sigemptyset(&signals);
	sigaddset(&signals, SIGTERM);
	sigaddset(&signals, SIGINT);
	sigaddset(&signals, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &signals, NULL) < 0)
		return -1;
	fd = signalfd(-1, &signals, SFD_CLOEXEC | SFD_NONBLOCK);
	/* A broken pipe on the notify socket must not kill us. */
	signal(SIGPIPE, SIG_IGN);
	return fd;
}

/* The exporter, when asked for: on each --metrics address and on the
 * listening sockets systemd passed (iprelay-metrics.socket).  NULL when
 * neither. */
static struct metrics *
metrics_start(struct store *store, const struct metrics_process *process,
    char *const addrs[], size_t naddrs)
{
	struct metrics *metrics;
	size_t i;
	int nfds, rc;

	nfds = sd_listen_fds(1);
	if (nfds < 0)
		log_fatal(EXIT_SYSTEM, "unable to take the sockets passed: %s",
		    strerror(-nfds));
	if (naddrs == 0 && nfds == 0)
		return NULL;
	if ((rc = metrics_create(&metrics, store, process)))
		log_fatal(EXIT_SYSTEM, "unable to serve metrics: %s",
		    strerror(rc));
	for (i = 0; i < (size_t)nfds; i++)
		if ((rc = metrics_adopt(metrics, SD_LISTEN_FDS_START + (int)i)))
			log_fatal(EXIT_USAGE, "unable to serve metrics on "
			    "passed descriptor %d: %s", SD_LISTEN_FDS_START +
			    (int)i, rc == ENOTSOCK ? "not a listening stream "
			    "socket" : rc == ENOSPC ? "too many sockets" :
			    strerror(rc));
	for (i = 0; i < naddrs; i++)
		if ((rc = metrics_listen(metrics, addrs[i])))
			log_fatal(EXIT_SYSTEM, "unable to listen on %s for "
			    "metrics: %s", addrs[i], rc == ENOSPC ?
			    "too many sockets" : strerror(rc));
	for (i = 0; i < naddrs; i++)
		log_line(LOG_INFO, "metrics on http://%s/metrics", addrs[i]);
	if (nfds > 0)
		log_line(LOG_INFO, "metrics on %d socket%s passed by systemd",
		    nfds, nfds == 1 ? "" : "s");
	return metrics;
}

static void
said_given(const char *dir, const char *name)
{
	log_line(LOG_NOTICE, "gave %s/%s, root's, to the dir's owner and "
	    "group", dir, name);
}

/* -O: run as root before the service starts (shaperd.service's
 * ExecStartPre=+), so that files root made in the state dir before it
 * was the service user's do not stop it (statedir_adopt). */
static int
adopt_files(const char *dir)
{
	static const char *const live_names[] = { STORE_FILE,
	    STORE_FILE "-lock", NULL };
	static const char *const names[] = { STORE_FILE, STORE_FILE "-lock",
	    STORE_CONFIG_FILE, STORE_CONFIG_FILE "-lock",
	    "refiller.lock", "shaperd.lock", NULL };
	char why[700], run[4096];
	int rc;

	if (geteuid() != 0)
		log_fatal(EXIT_USAGE, "-O needs root (it hands root's files in "
		    "%s to the dir's owner)", dir);
	rc = statedir_adopt(dir, names, why, sizeof(why), said_given);
	/* The live store's, in the runtime dir (RuntimeDirectory= makes
	 * it the service user's; the files root made there stay root's). */
	if (rc == 0 && store_live_dir(dir, run, sizeof(run)) == 0 &&
	    strcmp(run, dir) != 0 && access(run, F_OK) == 0)
		rc = statedir_adopt(run, live_names, why, sizeof(why),
		    said_given);
	if (rc)
		log_fatal(rc == STATEDIR_EREFUSED ? EXIT_USAGE : EXIT_SYSTEM,
		    "%s", why);
	return 0;
}

int
main(int argc, char **argv)
{
	const char *dir_option = NULL;
	char dir[4096], status[256], last_status[256] = "";
	struct store *store;
	struct refiller *refiller;
	struct summary summary;
	struct signalfd_siginfo signal_info;
	struct pollfd wait_fds[2 + METRICS_POLLFDS_MAX];
	struct metrics *metrics;
	struct metrics_process process = { 0 };
	char *metrics_addrs[METRICS_LISTENERS_MAX];
	size_t nmetrics_addrs = 0, nwait_fds;
	static const struct option long_options[] = {
		{ "metrics", required_argument, NULL, 'M' },
		{ NULL, 0, NULL, 0 },
	};
	struct global *global = NULL;
	struct global_stats global_stats;
	struct redis_conf redis_conf;
	const char *redis_option = NULL, *host_option = NULL, *bad_word;
	char host_id[GLOBAL_HOST_ID_MAX + 1], auth_path[4200];
	uint64_t tick_ms = REFILLER_TICK_NS / 1000000, next_ns, now_ns;
	uint64_t watchdog_usec = 0, next_watchdog_ns = 0, last_status_ns = 0;
	uint64_t last_summary_ns = 0, wake_ns;
	unsigned reaped;
	int opt, rc, signal_fd, active = 0, ready = 0, watchdog, timeout_ms;
	int exit_code = 0, errors = 0, waiting = 0, leasing, adopt = 0;
	char option_name[2] = "", tick_word[300];

	log_open("shaperd", LOG_TO_STDERR);
	help_or_version(argc, argv, "shaperd", USAGE);
	/* getopt's own messages start with argv[0], a path: ours say
	 * "shaperd". */
	opterr = 0;
	process.start_unix_ns = realtime_ns();
	while ((opt = getopt_long(argc, argv, "+:S:t:R:H:hO", long_options,
	    NULL)) != -1) {
		option_name[0] = (char)optopt;
		switch (opt) {
		case 'O':
			adopt = 1;
			break;
		case 'M':
			if (!metrics_addr_valid(optarg))
				usage_error("bad metrics address: '%s' "
				    "(ADDR:PORT, IPv4 or [IPv6])", optarg);
			if (nmetrics_addrs == METRICS_LISTENERS_MAX)
				usage_error("too many metrics addresses: '%s'",
				    optarg);
			metrics_addrs[nmetrics_addrs++] = optarg;
			break;
		case 'S':
			if (optarg[0] == '\0')
				usage_error("bad state dir: '%s'", optarg);
			dir_option = optarg;
			break;
		case 't':
			if (parse_uint(optarg, TICK_MS_MIN, TICK_MS_MAX,
			    &tick_ms)) {
				log_escape(tick_word, sizeof(tick_word),
				    optarg);
				fprintf(stderr, "shaperd: bad tick: '%s' "
				    "(milliseconds, %d to %d)\n", tick_word,
				    TICK_MS_MIN, TICK_MS_MAX);
				return EXIT_USAGE;
			}
			break;
		case 'R':
			redis_option = optarg;
			break;
		case 'H':
			host_option = optarg;
			break;
		case 'h':
			printf("%s", USAGE);
			return 0;
		case ':':
			if (optopt == 'M')
				usage_error("option requires an argument -- "
				    "'%s'", "metrics");
			usage_error("option requires an argument -- '%s'",
			    option_name);
		default:
			if (optopt == 0)
				usage_error("invalid option -- '%s'",
				    argv[optind - 1]);
			usage_error("invalid option -- '%s'", option_name);
		}
	}
	if (optind < argc)
		usage_error("unexpected word: '%s'", argv[optind]);
	if ((rc = store_dir_resolve(dir_option, dir, sizeof(dir))))
		log_fatal(EXIT_USAGE, "unable to find the state dir: %s "
		    "(give -S DIR or set IPRELAY_STATE_DIR)", strerror(rc));
	if (adopt)
		return adopt_files(dir);
	rc = redis_conf_resolve(redis_option, &redis_conf, &bad_word);
	if (rc == EINVAL)
		usage_error("bad Redis endpoint: '%s' (redis://HOST[:PORT][/DB] "
		    "or unix:/PATH; credentials go in the auth file)",
		    bad_word);
	leasing = rc == 0;
	if (leasing) {
		if (!redis_available())
			log_fatal(EXIT_USAGE, "unable to lease global limits "
			    "from %s: built without hiredis (make HIREDIS=no)",
			    redis_conf.text);
		resolve_host_id(host_option, host_id, sizeof(host_id));
		rc = redis_conf_load_auth(&redis_conf, dir, auth_path,
		    sizeof(auth_path));
		if (rc == EPERM)
			log_fatal(EXIT_USAGE, "unable to use the Redis "
			    "credentials in %s: readable by others than its "
			    "owner (chmod 600) or not owned by this user",
			    auth_path);
		if (rc)
			log_fatal(rc == EINVAL ? EXIT_USAGE : EXIT_SYSTEM,
			    "unable to read the Redis credentials in %s: %s",
			    auth_path, rc == EINVAL ? "not \"PASSWORD\" or "
			    "\"USER PASSWORD\" on one line" : strerror(rc));
	} else if (host_option)
		usage_error("-H '%s' without a Redis endpoint (-R or "
		    "IPRELAY_REDIS)", host_option);
	if ((signal_fd = block_signals()) < 0)
		log_fatal(EXIT_SYSTEM, "unable to set up signals: %s",
		    strerror(errno));
	rc = store_open(&store, dir, 0);
	if (rc)
		log_fatal(store_exit_code(rc), "unable to open %s: %s",
		    store_failed_path(), store_strerror(rc));
	raise_files_limit();
	if ((rc = refiller_create(&refiller, store, dir, REFILLER_SHAPERD)))
		log_fatal(rc == STATEDIR_EREFUSED ? EXIT_USAGE : EXIT_SYSTEM,
		    "unable to open the locks in %s: %s", dir,
		    store_strerror(rc));
	rc = refiller_claim_priority(refiller);
	if (rc == EBUSY)
		log_fatal(EXIT_SYSTEM, "unable to start: another shaperd "
		    "serves %s", dir);
	if (rc)
		log_fatal(EXIT_SYSTEM, "unable to lock %s/shaperd.lock: %s",
		    dir, strerror(rc));
	metrics = metrics_start(store, &process, metrics_addrs,
	    nmetrics_addrs);
	watchdog = sd_watchdog_enabled(0, &watchdog_usec) > 0;
	log_line(LOG_INFO, "serving %s, tick %llu ms", dir,
	    (unsigned long long)tick_ms);
	if (leasing) {
		if ((rc = global_create(&global, store, &redis_conf, host_id)))
			log_fatal(EXIT_SYSTEM, "unable to lease global limits: "
			    "%s", strerror(rc));
		log_line(LOG_INFO, "leasing global limits from %s as host %s",
		    redis_conf.text, host_id);
	}

	next_ns = monotonic_ns();
	for (;;) {
		now_ns = monotonic_ns();
		if (now_ns >= next_ns) {
			/* An embedded refiller hands its lock back within its
			 * own tick, so keep asking until we have it. */
			if (!active && refiller_arbitrate(refiller)) {
				active = process.active = 1;
				log_line(LOG_INFO, "refilling %s", dir);
			}
			if (active) {
				rc = refiller_tick(refiller, &reaped);
				process.ticks++;
				if (rc) {
					process.tick_errors++;
					if (errors++ % 100 == 0)
						log_warn("unable to tick the "
						    "store: %s",
						    store_strerror(rc));
				} else
					errors = 0;
				process.reaped += reaped;
				if (global)
					global_tick(global, now_ns);
			}
			if (active && !ready) {
				sd_notify(0, "READY=1");
				ready = 1;
			}
			if (active && ready &&
			    now_ns - last_summary_ns >= NS_PER_SEC) {
				last_summary_ns = now_ns;
				memset(&summary, 0, sizeof(summary));
				(void)store_limit_foreach(store, count_limit,
				    &summary);
				(void)store_conn_foreach(store, count_conn,
				    &summary);
				snprintf(status, sizeof(status),
				    "refilling: %u limit%s, %u live relay%s, "
				    "%u reaped", summary.limits,
				    summary.limits == 1 ? "" : "s",
				    summary.conns, summary.conns == 1 ? "" :
				    "s", (unsigned)process.reaped);
				if (global) {
					global_get_stats(global, &global_stats);
					snprintf(status + strlen(status),
					    sizeof(status) - strlen(status),
					    "; %u of %u global leased, Redis %s",
					    global_stats.leased,
					    global_stats.limits,
					    global_stats.connected ? "up" :
					    "unreachable");
				}
				if (strcmp(status, last_status) != 0 ||
				    now_ns - last_status_ns >= STATUS_EVERY_NS) {
					sd_notifyf(0, "STATUS=%s", status);
					memcpy(last_status, status,
					    sizeof(status));
					last_status_ns = now_ns;
				}
			} else if (!ready && !waiting) {
				sd_notify(0, "STATUS=waiting for the refiller "
				    "lock");
				waiting = 1;
			}
			/* Missed ticks are skipped, not made up: the buckets
			 * settle on elapsed time anyway. */
			next_ns += tick_ms * 1000000;
			if (next_ns <= now_ns)
				next_ns = now_ns + tick_ms * 1000000;
		}
		if (watchdog && now_ns >= next_watchdog_ns) {
			sd_notify(0, "WATCHDOG=1");
			next_watchdog_ns = now_ns + watchdog_usec * 1000 / 2;
		}
		now_ns = monotonic_ns();
		wake_ns = next_ns;
		if (watchdog && next_watchdog_ns < wake_ns)
			wake_ns = next_watchdog_ns;
		if (metrics && metrics_next_deadline_ns(metrics) < wake_ns)
			wake_ns = metrics_next_deadline_ns(metrics);
		timeout_ms = wake_ns > now_ns ?
		    (int)((wake_ns - now_ns + 999999) / 1000000) : 0;
		wait_fds[0].fd = signal_fd;
		wait_fds[0].events = POLLIN;
		wait_fds[0].revents = 0;
		nwait_fds = metrics ? metrics_pollfds(metrics, wait_fds + 1) : 0;
		/* Redis's descriptor last (-1 when none: poll skips it). */
		wait_fds[1 + nwait_fds].fd = -1;
		wait_fds[1 + nwait_fds].revents = 0;
		if (global)
			global_pollfd(global, &wait_fds[1 + nwait_fds]);
		rc = poll(wait_fds, 2 + nwait_fds, timeout_ms);
		if (rc < 0 && errno != EINTR)
			log_fatal(EXIT_SYSTEM, "unable to wait: %s",
			    strerror(errno));
		/* Non-blocking, and bounded work: never late for a tick by
		 * more than one answer's rendering. */
		if (metrics && rc >= 0)
			metrics_serve(metrics, wait_fds + 1, nwait_fds,
			    monotonic_ns());
		if (rc > 0 && global && wait_fds[1 + nwait_fds].revents)
			global_handle(global, wait_fds[1 + nwait_fds].revents);
		if (rc > 0 && (wait_fds[0].revents & POLLIN) &&
		    read(signal_fd, &signal_info,
		    sizeof(signal_info)) == sizeof(signal_info)) {
			if (signal_info.ssi_signo == SIGHUP)
				continue;	/* nothing to reload */
			log_line(LOG_INFO, "stopping on signal %u",
			    signal_info.ssi_signo);
			break;
		}
	}
	sd_notify(0, "STOPPING=1");
	metrics_destroy(metrics);
	global_destroy(global);
	refiller_destroy(refiller);
	store_close(store);
	return exit_code;
}
