/*
 * iprelay-conn: relay one accepted TCP connection to HOST:PORT, shaped by a
 * named limit and every ancestor of it.  One process per connection,
 * spawned by systemd (Accept=yes), inetd (nowait), a UCSPI launcher such
 * as tcpserver, or iprelay.
 *
 * Each direction moves bytes socket -> pipe -> socket with splice(2).
 * Unshaped, the pipe is kept as full as the sockets allow.  Shaped, the
 * relay reads at most one quantum into an empty pipe, draws exactly those
 * bytes from the store, waits for the release time and only then writes:
 * the sender is never read further ahead than the grant covers, so
 * back-pressure reaches it through TCP.
 *
 * This file: the options, the errors they raise, the signals, the store's
 * registration (and the caps' refusal), start-up and the close line;
 * relay/conn.h says which file owns the rest.
 *
 * No libsystemd: the socket-activation protocol is two environment
 * variables and fd 3, and spawn cost is paid on every connection.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "conn.h"
#include "log.h"
#include "refiller.h"
#include "version.h"

#define PROG		"iprelay-conn"
#define USAGE		"usage: iprelay-conn [-W] [-l LIMIT] [-S DIR] " \
			"[-c SECONDS] [-i SECONDS] [-s ADDRESS] [-z BYTES] " \
			"[-a CIDR] [-A CIDR] HOST:PORT"

#define CONNECT_TIMEOUT_NS	(10ULL * NS_PER_SEC)

static const char *const end_words[] = {
	[END_NONE] = "still running",
	[END_DONE] = "both sides finished",
	[END_RESET_CLIENT] = "client reset the connection",
	[END_RESET_REMOTE] = "remote reset the connection",
	[END_SIGNAL] = "terminated by signal",
	[END_IDLE] = "idle timeout",
	[END_DRAINED] = "stopped gracefully, what was read flushed",
	[END_DRAIN_LATE] = "stopped gracefully, flush deadline passed",
	[END_ERROR] = "system failure",
};

volatile sig_atomic_t stop_signal;
volatile sig_atomic_t drain_signal;
int stdin_was_closed;
sigset_t run_mask;
static struct relay *the_relay;	/* for the exit handler */
static int stderr_is_client;

static void
on_signal(int signo)
{
	if (signo == SIGUSR1)
		drain_signal = 1;
	else
		stop_signal = signo;
}

/* A closed fd 0, 1 or 2 would be taken by the next open (the log file,
 * the store): fill it with /dev/null first, remembering that stdin was
 * not there. */
static void
fill_standard_fds(void)
{
	int fd;

	for (fd = 0; fd < 3; fd++) {
		if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
			continue;
		if (fd == 0)
			stdin_was_closed = 1;
		if (open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY) != fd)
			exit(EXIT_SYSTEM);
	}
}

/* Usage and configuration errors: the one line goes to the log, and to
 * stderr unless stderr may be the client's socket. */
static _Noreturn void
refuse(int with_usage, const char *fmt, va_list args)
{
	char raw[512], text[512];

	vsnprintf(raw, sizeof(raw), fmt, args);
	log_escape(text, sizeof(text), raw);
	if (!stderr_is_client)
		fprintf(stderr, "%s: %s\n%s%s", PROG, text,
		    with_usage ? USAGE : "", with_usage ? "\n" : "");
	log_line(LOG_ERR, "%s", text);
	exit(EXIT_USAGE);
}

static _Noreturn void
usage_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

static _Noreturn void
usage_error(const char *fmt, ...)
{
	va_list args;

	va_start(args, fmt);
	refuse(1, fmt, args);
}

/* How we were started is wrong: one line, no usage. */
_Noreturn void
config_error(const char *fmt, ...)
{
	va_list args;

	va_start(args, fmt);
	refuse(0, fmt, args);
}

static void
parse_source(struct relay *relay, const char *word)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)&relay->source;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&relay->source;
	char host[INET6_ADDRSTRLEN + 2];
	size_t len = strlen(word);

	memset(&relay->source, 0, sizeof(relay->source));
	if (len >= 2 && len < sizeof(host) && word[0] == '[' &&
	    word[len - 1] == ']') {
		memcpy(host, word + 1, len - 2);
		host[len - 2] = '\0';
	} else if (len < sizeof(host)) {
		memcpy(host, word, len + 1);
	} else {
		usage_error("source address '%s' is not an IP address", word);
	}
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		relay->source_len = sizeof(*sin);
	} else if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		relay->source_len = sizeof(*sin6);
	} else {
		usage_error("source address '%s' is not an IP address", word);
	}
}

static void
add_cidr(struct cidr *list, size_t *count, int option, const char *word)
{
	if (parse_cidr(word, &list[*count]) < 0)
		usage_error("-%c '%s' is not an address or CIDR range", option,
		    word);
	if (*count == CIDRS_MAX)
		usage_error("-%c '%s': at most %d -%c entries", option, word,
		    CIDRS_MAX, option);
	(*count)++;
}

static void
parse_options(struct relay *relay, int argc, char **argv)
{
	uint64_t value;
	int option;

	relay->limit = "";
	relay->connect_timeout_ns = CONNECT_TIMEOUT_NS;
	relay->chunk_max_B = CHUNK_MAX;
	opterr = 0;
	while ((option = getopt(argc, argv, ":hWl:S:c:i:s:z:a:A:")) != -1) {
		switch (option) {
		case 'h':
			printf("%s\n", USAGE);
			exit(fflush(stdout) == 0 ? 0 : EXIT_SYSTEM);
		case 'W':
			relay->started_ahead = 1;
			break;
		case 'l':
			if (!limit_name_valid(optarg))
				usage_error("limit name '%s' is not valid",
				    optarg);
			relay->limit = optarg;
			break;
		case 'S':
			if (*optarg == '\0')
				usage_error("state dir '' is not valid");
			relay->state_option = optarg;
			break;
		case 'c':
			if (parse_duration_ns(optarg,
			    &relay->connect_timeout_ns) < 0)
				usage_error("connect timeout '%s' is not a "
				    "number of seconds", optarg);
			break;
		case 'i':
			if (parse_duration_ns(optarg, &relay->idle_ns) < 0)
				usage_error("idle timeout '%s' is not a "
				    "number of seconds", optarg);
			break;
		case 's':
			parse_source(relay, optarg);
			break;
		case 'z':
			if (parse_bytes(optarg, CHUNK_MAX, &value) < 0 ||
			    value == 0)
				usage_error("chunk size '%s' is not a number "
				    "of bytes from 1 to %u", optarg,
				    CHUNK_MAX);
			relay->chunk_max_B = value;
			break;
		case 'a':
			add_cidr(relay->allow, &relay->nallow, 'a', optarg);
			break;
		case 'A':
			add_cidr(relay->deny, &relay->ndeny, 'A', optarg);
			break;
		case ':':
			usage_error("option -%c needs a value", optopt);
		default:
			usage_error("unknown option -%c", optopt);
		}
	}
	if (optind == argc)
		usage_error("HOST:PORT is missing");
	if (optind != argc - 1)
		usage_error("one HOST:PORT only ('%s' is extra)",
		    argv[argc - 1]);
	relay->remote_word = argv[optind];
	if (parse_hostport(relay->remote_word, &relay->remote_hp) < 0)
		usage_error("'%s' is not HOST:PORT", relay->remote_word);
}

/* Opening is apart from registering so that a relay started ahead (-W)
 * has it done before its client exists. */
static void
open_store(struct relay *relay)
{
	relay->store_rc = store_dir_resolve(relay->state_option,
	    relay->store_dir, sizeof(relay->store_dir));
	if (relay->store_rc == 0)
		relay->store_rc = store_open(&relay->store, relay->store_dir,
		    STORE_CONFIG_READ);
}

/* Over a cap: the client is reset at once (SO_LINGER 0: no FIN, so it
 * cannot take the refusal for an empty answer), nothing is sent to the
 * remote, and one line says which cap. */
static _Noreturn void
refuse_over_cap(struct relay *relay, int rc, const struct cap_refusal *why)
{
	struct linger linger = { 1, 0 };

	(void)setsockopt(relay->client_in, SOL_SOCKET, SO_LINGER, &linger,
	    sizeof(linger));
	(void)setsockopt(relay->client_out, SOL_SOCKET, SO_LINGER, &linger,
	    sizeof(linger));
	close(relay->client_in);
	if (relay->client_out != relay->client_in)
		close(relay->client_out);
	if (stderr_is_client)
		close(2);
	log_line(LOG_WARNING, "peer %s refused: limit %s has %" PRIu32
	    " live connection%s%s%s, its cap --max-conns%s %" PRIu32 "; "
	    "client reset, remote %s not contacted", relay->peer, why->limit,
	    why->live, why->live == 1 ? "" : "s",
	    rc == STORE_ECAPSRC ? " from " : "",
	    rc == STORE_ECAPSRC ? why->source : "",
	    rc == STORE_ECAPSRC ? "-per-source" : "", why->cap,
	    relay->remote_word);
	exit(EXIT_CAPS);
}

static void
register_conn(struct relay *relay)
{
	/* A failed open says which file failed (the configuration or the
	 * live store), else the dir. */
	const char *dir = relay->store_rc && store_failed_path()[0] ?
	    store_failed_path() : relay->store_dir;
	struct cap_refusal refusal;
	int rc = relay->store_rc;

	relay->conn.pid = getpid();
	relay->conn.pid_start = refiller_proc_start(getpid());
	snprintf(relay->conn.limit, sizeof(relay->conn.limit), "%s",
	    relay->limit);
	snprintf(relay->conn.peer, sizeof(relay->conn.peer), "%s",
	    relay->peer);
	snprintf(relay->conn.remote, sizeof(relay->conn.remote), "%s",
	    relay->remote_word);
	if (rc == 0) {
		rc = store_conn_register_capped(relay->store, &relay->conn,
		    relay->start_shaped, relay->start_quantum_B,
		    &relay->start_levels, &refusal);
		if (rc == 0) {
			relay->registered = 1;
			return;
		}
		if (rc == STORE_ECAPS || rc == STORE_ECAPSRC)
			refuse_over_cap(relay, rc, &refusal);
		store_close(relay->store);
		relay->store = NULL;
	}
	if (relay->limit[0])
		log_fatal(EXIT_SYSTEM, "peer %s: unable to use the state "
		    "store%s%s for limit %s: %s", relay->peer, rc == ENOENT ?
		    "" : " in ", rc == ENOENT ? "" : dir, relay->limit,
		    store_strerror(rc));
	log_warn("peer %s: unable to use the state store%s%s: %s; relaying "
	    "unregistered", relay->peer, rc == ENOENT ? "" : " in ",
	    rc == ENOENT ? "" : dir, store_strerror(rc));
}

static void
close_store_at_exit(void)
{
	struct relay *relay = the_relay;
	int rc;

	if (relay == NULL || relay->store == NULL)
		return;
	if (relay->registered) {
		rc = store_conn_unregister(relay->store, relay->conn.id);
		if (rc && rc != STORE_ENOCONN)
			log_warn("%s: unable to unregister: %s", relay->label,
			    store_strerror(rc));
		relay->registered = 0;
	}
	store_close(relay->store);
	relay->store = NULL;
}

static void
set_nonblocking(int fd)
{
	int flags = fcntl(fd, F_GETFL);

	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
		log_fatal(EXIT_SYSTEM, "unable to make fd %d non-blocking: %s",
		    fd, strerror(errno));
}

static void
setup_signals(void)
{
	struct sigaction action = { .sa_handler = on_signal };
	sigset_t stop_set;

	sigemptyset(&action.sa_mask);
	sigaction(SIGTERM, &action, NULL);
	sigaction(SIGINT, &action, NULL);
	sigaction(SIGHUP, &action, NULL);
	sigaction(SIGUSR1, &action, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* Delivered only inside ppoll: no check-then-sleep race. */
	sigemptyset(&stop_set);
	sigaddset(&stop_set, SIGTERM);
	sigaddset(&stop_set, SIGINT);
	sigaddset(&stop_set, SIGHUP);
	sigaddset(&stop_set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &stop_set, &run_mask);
	sigdelset(&run_mask, SIGTERM);
	sigdelset(&run_mask, SIGINT);
	sigdelset(&run_mask, SIGHUP);
	sigdelset(&run_mask, SIGUSR1);
}

int
main(int argc, char **argv)
{
	static struct relay relay = { .remote_fd = -1 };
	uint64_t duration_ns;
	int code;

	help_or_version(argc, argv, PROG, USAGE);
	fill_standard_fds();
	stderr_is_client = fd_is_socket(2);
	log_open(PROG, LOG_TO_SYSTEM);
	parse_options(&relay, argc, argv);
	if (relay.started_ahead) {
		open_store(&relay);
		tzset();	/* the log's time zone file, read now */
		wait_for_client();
	}
	find_client(&relay);
	if (relay.started_ahead)
		relay.launcher = "iprelay";
	check_access(&relay);
	setup_signals();
	relay.start_ns = monotonic_ns();
	the_relay = &relay;
	atexit(close_store_at_exit);
	/* Opened ahead, it may have waited while the file was replaced or
	 * damaged: reopened, it says why it cannot be used. */
	if (relay.store && !store_is_current(relay.store, relay.store_dir)) {
		store_close(relay.store);
		relay.store = NULL;
	}
	if (relay.store == NULL)
		open_store(&relay);
	register_conn(&relay);
	if (relay.registered) {
		snprintf(relay.label, sizeof(relay.label), "CONN%06u",
		    relay.conn.id);
		/* iprelay's open line names it: before a long connect. */
		log_copy_only("%s registered", relay.label);
	} else
		snprintf(relay.label, sizeof(relay.label), "pid %d",
		    (int)getpid());
	/* A shaped download reads the remote slowly: a small receive
	 * buffer, from the first window offered (size_buffers()).  Under
	 * 64 KiB it also means no window scaling on that connection: grown
	 * later, its window stays under 64 KiB. */
	if (relay.start_shaped[DIR_DOWN])
		relay.remote_rcvbuf_B =
		    sockbuf_B(relay.start_quantum_B[DIR_DOWN]);
	code = connect_remote(&relay);
	if (relay.remote_fd < 0)
		exit(code);
	set_nonblocking(relay.client_in);
	set_nonblocking(relay.client_out);
	init_direction(&relay, &relay.up, DIR_UP);
	init_direction(&relay, &relay.down, DIR_DOWN);
	log_line(LOG_INFO, "%s open: peer %s via %s, remote %s (%s), limit %s",
	    relay.label, relay.peer, relay.launcher, relay.remote_word,
	    relay.remote_addr, relay.limit[0] ? relay.limit : "none");
	/* Never a silently wrong limit: a misspelt -l, or a limit not made
	 * yet, is said; the relay takes it up once it exists. */
	if (relay.limit[0] && relay.registered && relay.start_levels == 0)
		log_line(LOG_WARNING, "%s: no limit named %s: relaying "
		    "unshaped until one is set (iprelay-limit set %s RATE)",
		    relay.label, relay.limit, relay.limit);
	/* Unshaped bytes are counted at most every ACCOUNT_PERIOD_NS: a
	 * short connection then costs one count, at its end.  A shaped
	 * direction is shaped from its first byte: registering said so, in
	 * the same transaction. */
	relay.last_account_ns = monotonic_ns();
	if (relay.start_shaped[DIR_UP])
		become_shaped(&relay.up, relay.start_quantum_B[DIR_UP]);
	if (relay.start_shaped[DIR_DOWN])
		become_shaped(&relay.down, relay.start_quantum_B[DIR_DOWN]);
	relay_loop(&relay);
	cut_unfinished(&relay);
	if (relay.up.unaccounted_B || relay.down.unaccounted_B)
		account(&relay, monotonic_ns());
	duration_ns = monotonic_ns() - relay.start_ns;
	log_line(LOG_INFO, "%s close: up %llu B, down %llu B, %llu.%03llu s, "
	    "%s%s%s%s%s", relay.label, (unsigned long long)relay.up.moved_B,
	    (unsigned long long)relay.down.moved_B,
	    (unsigned long long)(duration_ns / NS_PER_SEC),
	    (unsigned long long)(duration_ns % NS_PER_SEC / 1000000),
	    end_words[relay.end], relay.end_detail[0] ? " (" : "",
	    relay.end_detail, relay.end_detail[0] ? ")" : "",
	    relay.cut_detail);
	switch (relay.end) {
	case END_IDLE:
	case END_DRAIN_LATE:
		return EXIT_TIMEOUT;
	case END_ERROR:
		return EXIT_SYSTEM;
	default:
		return 0;
	}
}
