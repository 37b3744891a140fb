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
 * No libsystemd: the socket-activation protocol is two environment
 * variables and fd 3, and spawn cost is paid on every connection.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bucket.h"
#include "log.h"
#include "parse.h"
#include "refiller.h"
#include "store.h"
#include "version.h"

#define PROG		"iprelay-conn"
#define USAGE		"usage: iprelay-conn [-W] [-l LIMIT] [-S DIR] " \
			"[-c SECONDS] [-i SECONDS] [-s ADDRESS] [-z BYTES] " \
			"[-a CIDR] [-A CIDR] HOST:PORT"

#define CONNECT_TIMEOUT_NS	(10ULL * NS_PER_SEC)
#define ACCOUNT_PERIOD_NS	(50ULL * 1000 * 1000)
#define ZERO_GRANT_RETRY_NS	(10ULL * 1000 * 1000)
#define STORE_WARN_PERIOD_NS	(10ULL * NS_PER_SEC)
/* Pipes count against pipe-user-pages-soft (16384 pages per user; past
 * it new pipes get two pages): 1000 relays with two default pipes (16
 * pages each) would pass it.  Every pipe starts at 4 pages, which covers
 * a shaped direction's quantum at most rates, and an unshaped one grows
 * once it fills, i.e. only for bulk transfers. */
#define PIPE_START_B		(16U * 1024U)
#define PIPE_BULK_B		(256U * 1024U)
/* A shaped direction's socket buffers hold this many quanta (one quantum
 * is 20-100 ms of the relay's share up to 100 relays, see design.md):
 * enough to keep the bytes flowing, small enough that a slower hop
 * downstream pushes back within a fraction of a second instead of
 * letting a full share park in buffers between hops.  Past SOCKBUF_MAX_B
 * the kernel's own autotuning is kept. */
#define SOCKBUF_QUANTA		16U
/* What a shaped direction leaves unsent in its socket while the next hop's
 * window is shut: two quanta (drawing stops at half the mark), which then
 * leave together.  One quantum parked less but sent one small segment per
 * grant, and a slow client's kernel, filled with small segments, grew its
 * receive buffer and took ever more (64 KiB/s shared with a client reading
 * 8 KiB/s: the fast one got 50 KiB/s with 1 quantum, 57.5 with 2 x 2,
 * the 57.3 it should). */
#define LOWAT_QUANTA		4U
#define SOCKBUF_MAX_B		(256U * 1024U)
#define SOCKBUF_MIN_B		(2U * 1024U)
#define CIDRS_MAX		256	/* -a or -A entries, each */
/* A graceful stop (SIGUSR1) flushes what was read for at most this long;
 * what is left then is cut like on SIGTERM.  Long enough for one quantum
 * at any rate (its release comes within about 2 debt-cap times, 4 s). */
#define DRAIN_DEADLINE_NS	(10ULL * NS_PER_SEC)
/* While bytes wait in a socket's send queue for a slow reader the relay
 * is not idle; it looks again this often, so -i ends a connection at most
 * this much after the last byte was taken. */
#define IDLE_RECHECK_NS		(200ULL * 1000 * 1000)

enum end_reason {
	END_NONE,
	END_DONE,
	END_RESET_CLIENT,
	END_RESET_REMOTE,
	END_SIGNAL,
	END_IDLE,
	END_DRAINED,
	END_DRAIN_LATE,
	END_ERROR,
};

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

struct direction {
	const char *label;		/* "up" (client->remote) or "down" */
	int dir;			/* DIR_UP or DIR_DOWN */
	int from_fd, to_fd;
	int to_is_socket;
	uint64_t bufs_quantum_B;	/* socket buffers last sized for */
	uint64_t lowat_B;		/* TCP_NOTSENT_LOWAT of to_fd; 0 = none */
	int rcvbuf_B;			/* SO_RCVBUF of from_fd set; 0 = not */
	int sndbuf_set;			/* SO_SNDBUF of to_fd ever set */
	struct sparse_credit sparse;	/* for draws the sparse lane may take */
	uint64_t share_Bps;		/* the fair share, said by the store */
	enum end_reason reset_from;	/* what a failure reading means */
	enum end_reason reset_to;	/* what a failure writing means */
	int pipe_fd[2];
	size_t pipe_cap_B;		/* what the kernel gave the pipe */
	size_t pipe_B;			/* bytes read but not yet written */
	int pipe_full;			/* splice in said EAGAIN with data in */
	int pipe_grown;
	int shaped;
	uint64_t quantum_B;		/* the next read when shaped */
	uint64_t covered_B;		/* bytes of the pipe paid for */
	uint64_t release_ns;		/* covered bytes go no earlier */
	uint64_t prepaid_B;		/* counted by a draw, written unshaped */
	int to_blocked;			/* writing said EAGAIN: wait POLLOUT */
	int draining;			/* a graceful stop: read no more than */
	uint64_t drain_left_B;		/* ... this, received before it */
	int eof, shut;
	uint64_t moved_B;		/* bytes written to the other side */
	uint64_t unaccounted_B;		/* unshaped bytes not yet in the store */
};

struct relay {
	/* options */
	const char *limit;		/* "" = unshaped */
	const char *state_option;
	uint64_t connect_timeout_ns;	/* 0 = the kernel's */
	uint64_t idle_ns;		/* 0 = off */
	struct sockaddr_storage source;
	socklen_t source_len;
	uint64_t chunk_max_B;
	struct hostport remote_hp;
	const char *remote_word;
	struct cidr allow[CIDRS_MAX], deny[CIDRS_MAX];
	size_t nallow, ndeny;
	int started_ahead;		/* -W: the client comes later, on fd 0 */

	int client_in, client_out;
	const char *launcher;
	int remote_fd;
	char peer[PEER_MAX + 1];
	char remote_addr[PEER_MAX + 1];
	char label[32];

	struct store *store;
	int store_rc;			/* of opening it; 0 = open */
	char store_dir[4096];
	struct conn_info conn;
	int registered;
	int start_shaped[2];		/* per direction, said by register */
	int remote_rcvbuf_B;		/* SO_RCVBUF set before connecting */
	size_t start_levels;		/* limits on the chain; 0 = none found */
	uint64_t start_quantum_B[2];	/* the first read when shaped */
	uint64_t last_account_ns;
	uint64_t last_store_warn_ns;
	uint64_t start_ns;
	uint64_t last_move_ns;		/* last read, write or byte waiting */
	int idle_waiting;		/* the last look found bytes queued */
	uint64_t idle_waiting_ns;	/* when it looked */
	uint64_t drain_deadline_ns;	/* 0 = no graceful stop asked */
	struct direction up, down;
	enum end_reason end;
	char end_detail[96];		/* the failing call, for the log */
	char cut_detail[160];		/* directions cut at the end */
};

static volatile sig_atomic_t stop_signal;
static volatile sig_atomic_t drain_signal;
static int stdin_was_closed;
static sigset_t run_mask;	/* the mask ppoll waits with */
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
static _Noreturn void
config_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

static _Noreturn void
config_error(const char *fmt, ...)
{
	va_list args;

	va_start(args, fmt);
	refuse(0, fmt, args);
}

static int
fd_is_socket(int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
}

/* 0: a connected stream socket; else a word saying what fd is instead. */
static const char *
client_socket_problem(int fd)
{
	struct stat st;
	int type = 0, listening = 0;
	socklen_t len;

	if ((fd == 0 && stdin_was_closed) || fstat(fd, &st) < 0)
		return "not open";
	if (S_ISCHR(st.st_mode))
		return isatty(fd) ? "a terminal" : "a character device";
	if (S_ISFIFO(st.st_mode))
		return "a pipe";
	if (S_ISREG(st.st_mode))
		return "a file";
	if (!S_ISSOCK(st.st_mode))
		return "not a socket";
	len = sizeof(type);
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 ||
	    type != SOCK_STREAM)
		return "not a stream socket";
	len = sizeof(listening);
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) == 0 &&
	    listening)
		return "a listening socket";
	return NULL;
}

static void
format_address(const struct sockaddr *sa, char *out, size_t out_size)
{
	char host[INET6_ADDRSTRLEN];
	const struct sockaddr_in6 *sin6;
	const struct sockaddr_in *sin;
	struct in_addr mapped;

	if (sa->sa_family == AF_INET) {
		sin = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
		snprintf(out, out_size, "%s:%u", host, ntohs(sin->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		sin6 = (const struct sockaddr_in6 *)sa;
		/* A dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d:
		 * show them as the IPv4 addresses they are. */
		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
			memcpy(&mapped, &sin6->sin6_addr.s6_addr[12], 4);
			inet_ntop(AF_INET, &mapped, host, sizeof(host));
			snprintf(out, out_size, "%s:%u", host,
			    ntohs(sin6->sin6_port));
		} else {
			inet_ntop(AF_INET6, &sin6->sin6_addr, host,
			    sizeof(host));
			snprintf(out, out_size, "[%s]:%u", host,
			    ntohs(sin6->sin6_port));
		}
	} else if (sa->sa_family == AF_UNIX) {
		snprintf(out, out_size, "unix");
	} else {
		snprintf(out, out_size, "unknown");
	}
}

/* A peer named by the launcher's environment, checked before it is
 * believed: it goes into logs and the store. */
static int
peer_from_env(const char *ip_var, const char *port_var, char *out,
    size_t out_size)
{
	const char *ip = getenv(ip_var), *port = getenv(port_var);
	unsigned char addr[sizeof(struct in6_addr)];
	uint64_t port_number;

	if (ip == NULL || port == NULL ||
	    parse_uint(port, 0, 65535, &port_number) < 0)
		return -1;
	if (inet_pton(AF_INET, ip, addr) == 1)
		snprintf(out, out_size, "%s:%u", ip, (unsigned)port_number);
	else if (inet_pton(AF_INET6, ip, addr) == 1)
		snprintf(out, out_size, "[%s]:%u", ip, (unsigned)port_number);
	else
		return -1;
	return 0;
}

static void
find_client(struct relay *relay)
{
	const char *listen_pid = getenv("LISTEN_PID");
	const char *listen_fds = getenv("LISTEN_FDS");
	const char *problem, *proto;
	struct sockaddr_storage peer;
	socklen_t peer_len = sizeof(peer);
	uint64_t pid, nfds;
	int found = -1;

	if (listen_pid && listen_fds &&
	    parse_uint(listen_pid, 1, INT_MAX, &pid) == 0 &&
	    (pid_t)pid == getpid()) {
		if (parse_uint(listen_fds, 0, INT_MAX - 3, &nfds) < 0 ||
		    nfds < 1)
			config_error("LISTEN_FDS=%s: no socket passed",
			    listen_fds);
		if ((problem = client_socket_problem(3)) != NULL)
			config_error("socket activation: fd 3 is %s%s", problem,
			    strcmp(problem, "a listening socket") ? "" :
			    " (the socket unit needs Accept=yes)");
		relay->client_in = relay->client_out = 3;
		relay->launcher = "systemd";
		fcntl(3, F_SETFD, FD_CLOEXEC);
		if (peer_from_env("REMOTE_ADDR", "REMOTE_PORT", relay->peer,
		    sizeof(relay->peer)) == 0)
			return;
		found = 3;
	} else {
		if ((problem = client_socket_problem(0)) != NULL)
			config_error("no client socket: standard input is %s%s",
			    problem, strcmp(problem, "a listening socket") ?
			    " (run me from systemd with Accept=yes, inetd "
			    "with nowait, tcpserver or iprelay)" :
			    " (inetd.conf needs nowait)");
		if (!fd_is_socket(1)) {
			struct stat st;

			if (fstat(1, &st) < 0 || !S_ISFIFO(st.st_mode))
				config_error("no client socket: standard "
				    "output is neither a socket nor a pipe");
		}
		relay->client_in = 0;
		relay->client_out = 1;
		proto = getenv("PROTO");
		if (proto && strcmp(proto, "TCP") == 0) {
			relay->launcher = "ucspi";
			if (peer_from_env("TCPREMOTEIP", "TCPREMOTEPORT",
			    relay->peer, sizeof(relay->peer)) == 0)
				return;
		} else if (proto && strcmp(proto, "TCP6") == 0) {
			relay->launcher = "ucspi";
			if (peer_from_env("TCP6REMOTEIP", "TCP6REMOTEPORT",
			    relay->peer, sizeof(relay->peer)) == 0)
				return;
		} else {
			relay->launcher = "inetd";
		}
		found = 0;
	}
	if (getpeername(found, (struct sockaddr *)&peer, &peer_len) == 0)
		format_address((struct sockaddr *)&peer, relay->peer,
		    sizeof(relay->peer));
	else
		snprintf(relay->peer, sizeof(relay->peer), "unknown");
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

/* -a and -A: a refused client is closed before anything else is done
 * for it (no store record, no connection to the remote).  The address is
 * the socket's own, not the launcher's environment. */
static void
check_access(const struct relay *relay)
{
	struct sockaddr_storage peer;
	socklen_t peer_len = sizeof(peer);
	const struct sockaddr_in *sin = (const struct sockaddr_in *)&peer;
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&peer;
	const struct cidr *rule;
	char rule_text[CIDR_TEXT_MAX + 1];
	int refused;

	if (relay->nallow == 0 && relay->ndeny == 0)
		return;
	if (getpeername(relay->client_in, (struct sockaddr *)&peer,
	    &peer_len) < 0 || (peer.ss_family != AF_INET &&
	    peer.ss_family != AF_INET6)) {
		log_line(LOG_WARNING, "peer %s refused: its IP address is "
		    "unknown and -a/-A are set", relay->peer);
		exit(EXIT_POLICY);
	}
	if (peer.ss_family == AF_INET)
		refused = acl_refuses(relay->allow, relay->nallow, relay->deny,
		    relay->ndeny, CIDR_V4,
		    (const unsigned char *)&sin->sin_addr, &rule);
	else
		refused = acl_refuses(relay->allow, relay->nallow, relay->deny,
		    relay->ndeny, CIDR_V6, sin6->sin6_addr.s6_addr, &rule);
	if (!refused)
		return;
	if (rule) {
		cidr_format(rule, rule_text, sizeof(rule_text));
		log_line(LOG_WARNING, "peer %s refused: denied by -A %s, "
		    "remote %s not contacted", relay->peer, rule_text,
		    relay->remote_word);
	} else {
		log_line(LOG_WARNING, "peer %s refused: in no -a range, "
		    "remote %s not contacted", relay->peer, relay->remote_word);
	}
	exit(EXIT_POLICY);
}

static void
store_warn(struct relay *relay, const char *what, int rc)
{
	uint64_t now_ns = monotonic_ns();

	/* A sick store must not flood the log from every relay. */
	if (relay->last_store_warn_ns &&
	    now_ns - relay->last_store_warn_ns < STORE_WARN_PERIOD_NS)
		return;
	relay->last_store_warn_ns = now_ns;
	log_warn("%s: unable to %s: %s", relay->label, what,
	    store_strerror(rc));
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

/* -W: iprelay starts a relay before its client connects, so that exec and
 * start-up are not on the client's path.  fd 0 (and 1) is then a unix
 * socket on which iprelay passes the client's socket (SCM_RIGHTS) once
 * one connects; end of file there means iprelay no longer needs us. */
static void
wait_for_client(void)
{
	char byte, control[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { &byte, 1 };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = control, .msg_controllen = sizeof(control),
	};
	struct cmsghdr *cmsg;
	ssize_t got;
	int client_fd = -1;

	do
		got = recvmsg(0, &msg, MSG_CMSG_CLOEXEC);
	while (got < 0 && errno == EINTR);
	if (got < 0)
		log_fatal(EXIT_SYSTEM, "-W: unable to receive the client "
		    "socket on standard input: %s", strerror(errno));
	if (got == 0)
		exit(0);
	for (cmsg = CMSG_FIRSTHDR(&msg); cmsg; cmsg = CMSG_NXTHDR(&msg, cmsg))
		if (cmsg->cmsg_level == SOL_SOCKET &&
		    cmsg->cmsg_type == SCM_RIGHTS &&
		    cmsg->cmsg_len == CMSG_LEN(sizeof(int)))
			memcpy(&client_fd, CMSG_DATA(cmsg), sizeof(int));
	if (client_fd < 0)
		log_fatal(EXIT_SYSTEM, "-W: unable to receive the client "
		    "socket: the message on standard input carried none");
	/* The unix socket goes with the second dup2: iprelay sees it close. */
	if (dup2(client_fd, 0) < 0 || dup2(client_fd, 1) < 0)
		log_fatal(EXIT_SYSTEM, "unable to move the client socket to "
		    "fds 0 and 1: %s", strerror(errno));
	close(client_fd);
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
set_tcp_option(int fd, int option, int value)
{
	/* Best effort: a launcher may hand over a socket that is not TCP. */
	(void)setsockopt(fd, IPPROTO_TCP, option, &value, sizeof(value));
}

static void
pipe_resize(struct direction *d, size_t want_B)
{
	int got;

	if (d->pipe_fd[0] < 0 || want_B == d->pipe_cap_B || want_B < d->pipe_B)
		return;
	/* Refused past pipe-user-pages-soft: keep what the kernel gave. */
	got = fcntl(d->pipe_fd[1], F_SETPIPE_SZ, (int)want_B);
	if (got > 0)
		d->pipe_cap_B = (size_t)got;
}

/* The socket buffers a shaped direction moving quantum_B at a time
 * should have, or 0 to keep the kernel's autotuning. */
static int
sockbuf_B(uint64_t quantum_B)
{
	uint64_t want_B = quantum_B * SOCKBUF_QUANTA;

	if (want_B >= SOCKBUF_MAX_B)
		return 0;
	return want_B < SOCKBUF_MIN_B ? (int)SOCKBUF_MIN_B : (int)want_B;
}

/* Size a shaped direction's socket buffers from its quantum, i.e. from
 * its share of the rate: bytes drawn but parked in kernel buffers between
 * two hops are tokens the other relays of the limit lose until those
 * buffers fill (the manual's chained instances: the 3072 B/s one gave the
 * 1024 B/s one a full half for minutes, 512 B/s parked in a 128 KiB
 * receive buffer).  The unsent low-water mark (and next_hop_full()) bound
 * what we park in our socket while the next hop's window is shut, the
 * send buffer what we keep in flight.  The receive buffer bounds what a
 * faster sender upstream (another relay, another instance of iprelay)
 * parks in ours: it is set before connecting to the remote
 * (connect_remote()), so the first window offered is small too, and only
 * ever grown here, since a buffer shrunk under a window already offered
 * drops what the peer sends into it (a relay at 32 KiB/s lost a fifth of
 * its rate to retransmission timeouts that way).  A client's socket,
 * accepted with the launcher's window, keeps its receive buffer.  Set
 * only when the size changes by half or more (a syscall per draw
 * otherwise); the kernel rounds a small size up to what it needs. */
static void
size_buffers(struct direction *d, uint64_t quantum_B)
{
	int want_B = sockbuf_B(quantum_B);

	if (d->bufs_quantum_B && quantum_B * 2 > d->bufs_quantum_B &&
	    quantum_B < d->bufs_quantum_B * 2)
		return;
	d->bufs_quantum_B = quantum_B;
	if (d->rcvbuf_B && (want_B == 0 || want_B > d->rcvbuf_B)) {
		/* Past SOCKBUF_MAX_B: as large as the kernel allows. */
		d->rcvbuf_B = want_B ? want_B : INT_MAX;
		(void)setsockopt(d->from_fd, SOL_SOCKET, SO_RCVBUF,
		    &d->rcvbuf_B, sizeof(d->rcvbuf_B));
	}
	if (!d->to_is_socket)
		return;
	d->lowat_B = quantum_B * LOWAT_QUANTA;
	set_tcp_option(d->to_fd, TCP_NOTSENT_LOWAT, (int)d->lowat_B);
	if (want_B == 0) {
		if (!d->sndbuf_set)
			return;
		/* Once set, the kernel no longer autotunes the send buffer:
		 * a rate raised past SOCKBUF_MAX_B needs it as large as the
		 * kernel allows, or a relay sized at 1 KiB/s stays held to
		 * a few KiB per round trip (16 relays raised back to
		 * 100 MiB/s moved 25 MB/s). */
		want_B = INT_MAX;
	}
	d->sndbuf_set = 1;
	(void)setsockopt(d->to_fd, SOL_SOCKET, SO_SNDBUF, &want_B,
	    sizeof(want_B));
}

static void
become_shaped(struct direction *d, uint64_t quantum_B)
{
	d->shaped = 1;
	d->quantum_B = quantum_B;
	d->covered_B = 0;
	d->prepaid_B = 0;
	/* No credit of its own: its first draw asks the limit's pool of
	 * new relays' credit (bucket.h), which relays starting together
	 * share, instead (each with a quantum, 40 starting at once pushed
	 * conn-burst's limit past its cap for seconds). */
	sparse_credit_start(&d->sparse, 0, monotonic_ns());
	/* Small quanta must not wait on Nagle. */
	if (d->to_is_socket)
		set_tcp_option(d->to_fd, TCP_NODELAY, 1);
	size_buffers(d, quantum_B);
	if (d->pipe_B == 0)
		pipe_resize(d, quantum_B > PIPE_START_B ? quantum_B :
		    PIPE_START_B);
}

static void
become_unshaped(struct direction *d)
{
	d->shaped = 0;
	/* Bytes already drawn were counted by the draw. */
	d->prepaid_B = d->covered_B;
	d->covered_B = 0;
}

/* Count unshaped bytes in the store and learn whether a limit now applies
 * to each direction. */
static void
account(struct relay *relay, uint64_t now_ns)
{
	uint64_t moved_B[2], quantum_B[2];
	int shaped[2] = { 0, 0 }, rc, dir;
	struct direction *d;

	relay->last_account_ns = now_ns;
	if (relay->store == NULL)
		return;
	moved_B[DIR_UP] = relay->up.unaccounted_B;
	moved_B[DIR_DOWN] = relay->down.unaccounted_B;
	rc = store_account(relay->store, relay->conn.id, relay->limit, moved_B,
	    shaped, quantum_B);
	if (rc) {
		store_warn(relay, "count bytes", rc);
		return;
	}
	relay->up.unaccounted_B = relay->down.unaccounted_B = 0;
	for (dir = 0; dir < 2; dir++) {
		d = dir == DIR_UP ? &relay->up : &relay->down;
		if (d->shut || !shaped[dir])
			continue;
		if (!d->shaped)
			become_shaped(d, quantum_B[dir]);
		else
			d->quantum_B = quantum_B[dir];
		size_buffers(d, quantum_B[dir]);
	}
}

static void
reserve(struct relay *relay, struct direction *d, uint64_t now_ns)
{
	struct grant grant;
	uint64_t want_B;
	int rc, sparse;

	/* After a refusal the quantum may have shrunk: draw that much of the
	 * pipe, and the rest after it. */
	want_B = d->pipe_B < d->quantum_B ? d->pipe_B : d->quantum_B;
	/* Well under its fair share lately: the sparse lane may release it
	 * at once instead of behind the bulk relays' reservations. */
	sparse = sparse_credit_allows(&d->sparse, d->share_Bps, d->quantum_B,
	    want_B, now_ns);
	rc = store_reserve_lane(relay->store, relay->conn.id, relay->limit,
	    d->dir, want_B, sparse, &grant);
	if (rc) {
		/* Never wedge on a sick store: pass the bytes on. */
		store_warn(relay, "draw tokens", rc);
		d->covered_B = d->pipe_B;
		d->release_ns = now_ns;
		return;
	}
	if (!grant.shaped) {
		d->covered_B = grant.bytes;
		become_unshaped(d);
		return;
	}
	d->quantum_B = grant.quantum_B;
	d->share_Bps = grant.share_Bps;
	/* Refused at the cap: contending, not sparse. */
	sparse_credit_spend(&d->sparse, grant.bytes ? grant.bytes :
	    UINT64_MAX / NS_PER_SEC);
	size_buffers(d, grant.quantum_B);
	if (grant.bytes == 0) {
		/* Refused past the limit's debt cap, or a borrow that does
		 * not fit yet: the store says when to come back (no polling
		 * meanwhile). */
		d->release_ns = grant.release_ns > now_ns ? grant.release_ns :
		    now_ns + ZERO_GRANT_RETRY_NS;
		return;
	}
	d->covered_B = grant.bytes;
	d->release_ns = grant.release_ns;
}

static void
end_relay(struct relay *relay, enum end_reason reason)
{
	if (relay->end == END_NONE)
		relay->end = reason;
}

static void
reset_socket(int fd)
{
	struct linger linger = { .l_onoff = 1, .l_linger = 0 };

	/* The close at exit then sends RST instead of FIN. */
	(void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, sizeof(linger));
}

static void
fail_side(struct relay *relay, enum end_reason reason)
{
	if (reason == END_RESET_CLIENT) {
		reset_socket(relay->remote_fd);
	} else {
		reset_socket(relay->client_in);
		if (relay->client_out != relay->client_in)
			reset_socket(relay->client_out);
	}
	end_relay(relay, reason);
}

/* Bytes the kernel holds on a socket: SIOCINQ received and not read,
 * SIOCOUTQ written and not yet acknowledged, SIOCOUTQNSD written and not
 * yet sent.  0 for what is not a socket. */
static uint64_t
queued_B(int fd, unsigned long request)
{
	int count = 0;

	if (fd < 0 || ioctl(fd, request, &count) < 0 || count < 0)
		return 0;
	return (uint64_t)count;
}

static void
half_close(struct direction *d)
{
	if (d->to_is_socket) {
		if (shutdown(d->to_fd, SHUT_WR) < 0 && errno != ENOTCONN)
			log_warn("unable to shut down the %s side: %s",
			    d->label, strerror(errno));
	} else {
		close(d->to_fd);
		d->to_fd = -1;
	}
	d->shut = 1;
	close(d->pipe_fd[0]);
	close(d->pipe_fd[1]);
	d->pipe_fd[0] = d->pipe_fd[1] = -1;
}

/*
 * At the end of a relay, a direction whose end of stream was not passed
 * on is cut: its receiver gets a reset (SO_LINGER 0), never a FIN, which
 * would pass for the end of the stream.  A clean close after SIGTERM
 * handed a client reading late 3.9 MB of an 8 MiB answer and a normal
 * EOF; for anything delimited by EOF (raw copies, HTTP/1.0 without a
 * length, FTP data, nc) that is silent corruption.  A direction whose
 * sender had finished with nothing left in the pipe is finished here
 * (FIN) instead.  The log line says what was cut and how many bytes were
 * dropped: read and not written, received and not read, written and not
 * yet sent (a reset discards the send queue).
 */
static void
cut_unfinished(struct relay *relay)
{
	struct direction *const dirs[2] = { &relay->up, &relay->down };
	struct direction *d;
	uint64_t dropped_B;
	size_t used = 0;
	char byte;
	int i, n, stopped;

	stopped = relay->end == END_SIGNAL || relay->end == END_IDLE ||
	    relay->end == END_DRAINED || relay->end == END_DRAIN_LATE;
	for (i = 0; i < 2; i++) {
		d = dirs[i];
		if (d->shut || d->pipe_fd[0] < 0)
			continue;
		/* After a reset or a failure a socket reads as at its end
		 * once the error was taken: only a stop or an idle end may
		 * find a sender that had finished. */
		if (!d->eof && d->pipe_B == 0 && stopped &&
		    recv(d->from_fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) == 0)
			d->eof = 1;
		if (d->eof && d->pipe_B == 0 && stopped) {
			half_close(d);
			continue;
		}
		dropped_B = d->pipe_B + queued_B(d->from_fd, SIOCINQ) +
		    (d->to_is_socket ? queued_B(d->to_fd, SIOCOUTQNSD) : 0);
		if (d->to_is_socket)
			reset_socket(d->to_fd);
		n = snprintf(relay->cut_detail + used,
		    sizeof(relay->cut_detail) - used, "%s %s (%llu B dropped, "
		    "%s %s)", used ? "," : "; cut", d->label,
		    (unsigned long long)dropped_B,
		    d->dir == DIR_UP ? "remote" : "client",
		    d->to_is_socket ? "reset" : "closed");
		if (n > 0 && (size_t)n < sizeof(relay->cut_detail) - used)
			used += (size_t)n;
	}
}

static int
wants_read(const struct direction *d)
{
	if (d->eof || d->pipe_full || d->shut ||
	    (d->draining && d->drain_left_B == 0))
		return 0;
	return d->shaped ? d->pipe_B == 0 : d->pipe_B < d->pipe_cap_B;
}

static void
splice_in(struct relay *relay, struct direction *d, uint64_t now_ns)
{
	size_t len;
	ssize_t n;

	if (d->shaped) {
		len = d->quantum_B < relay->chunk_max_B ? d->quantum_B :
		    relay->chunk_max_B;
		if (len > d->pipe_cap_B)
			pipe_resize(d, len);
		if (len > d->pipe_cap_B)
			len = d->pipe_cap_B;
	} else {
		len = d->pipe_cap_B - d->pipe_B;
	}
	if (d->draining && len > d->drain_left_B)
		len = (size_t)d->drain_left_B;
	n = splice(d->from_fd, NULL, d->pipe_fd[1], NULL, len,
	    SPLICE_F_NONBLOCK);
	if (n > 0) {
		d->pipe_B += (size_t)n;
		if (d->draining)
			d->drain_left_B -= (uint64_t)n;
		relay->last_move_ns = now_ns;
		if (!d->shaped && d->pipe_B >= d->pipe_cap_B && !d->pipe_grown) {
			d->pipe_grown = 1;
			pipe_resize(d, PIPE_BULK_B);
		}
	} else if (n == 0) {
		d->eof = 1;
	} else if (errno == EAGAIN || errno == EINTR) {
		/* Pipe slots, not bytes, ran out: wait for it to drain. */
		if (errno == EAGAIN && d->pipe_B > 0) {
			d->pipe_full = 1;
			if (!d->shaped && !d->pipe_grown) {
				d->pipe_grown = 1;
				pipe_resize(d, PIPE_BULK_B);
			}
		}
	} else {
		snprintf(relay->end_detail, sizeof(relay->end_detail),
		    "reading %s: %s", d->label, strerror(errno));
		fail_side(relay, d->reset_from);
	}
}

static void
splice_out(struct relay *relay, struct direction *d, uint64_t now_ns)
{
	size_t len;
	ssize_t n;

	for (;;) {
		len = d->shaped ? d->covered_B : d->pipe_B;
		if (len == 0)
			return;
		n = splice(d->pipe_fd[0], NULL, d->to_fd, NULL, len,
		    SPLICE_F_NONBLOCK);
		if (n > 0) {
			d->pipe_B -= (size_t)n;
			d->pipe_full = 0;
			d->moved_B += (uint64_t)n;
			relay->last_move_ns = now_ns;
			if (d->shaped) {
				d->covered_B -= (uint64_t)n;
			} else if (d->prepaid_B >= (uint64_t)n) {
				d->prepaid_B -= (uint64_t)n;
			} else {
				d->unaccounted_B += (uint64_t)n - d->prepaid_B;
				d->prepaid_B = 0;
			}
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			d->to_blocked = 1;
			return;
		}
		snprintf(relay->end_detail, sizeof(relay->end_detail),
		    "writing %s: %s", d->label, n < 0 ? strerror(errno) :
		    "nothing written");
		fail_side(relay, d->reset_to);
		return;
	}
}

/* Whether the last grant still waits in the socket, the next hop's window
 * shut: then drawing more would only park the bytes (and the other
 * relays' tokens) in kernel buffers.  The unsent low-water mark alone
 * does not hold them back: small writes are appended to the unsent tail
 * of the queue without that check.  POLLOUT comes when less than half
 * of the mark (one quantum) is unsent, which is when this says no. */
static int
next_hop_full(const struct direction *d)
{
	if (!d->to_is_socket || d->lowat_B == 0)
		return 0;
	return queued_B(d->to_fd, SIOCOUTQNSD) * 2 >= d->lowat_B;
}

/* Move what can be moved in direction d now.  When the pipe drains, read
 * again at once (a few rounds) instead of asking poll: a busy sender
 * usually has more, and every syscall saved counts at low rates. */
static void
step(struct relay *relay, struct direction *d, int readable, uint64_t now_ns)
{
	uint64_t moved_B;
	size_t before_B;
	int round;

	for (round = 0; round < 4 && !d->shut; round++) {
		before_B = d->pipe_B;
		if (readable && wants_read(d)) {
			/* Learn a new limit before moving a pipeful unshaped. */
			if (!d->shaped && relay->limit[0] &&
			    now_ns - relay->last_account_ns >= ACCOUNT_PERIOD_NS)
				account(relay, now_ns);
			if (wants_read(d))
				splice_in(relay, d, now_ns);
			if (relay->end)
				return;
		}
		moved_B = d->moved_B;
		while (d->pipe_B > 0 && !d->to_blocked &&
		    relay->end == END_NONE) {
			if (!d->shaped) {
				splice_out(relay, d, now_ns);
				break;
			}
			/* One draw outstanding at a time, for what is in the
			 * pipe. */
			if (d->covered_B == 0 && now_ns >= d->release_ns) {
				if (next_hop_full(d)) {
					d->to_blocked = 1;
					break;
				}
				reserve(relay, d, now_ns);
				now_ns = monotonic_ns();
			}
			if (d->shaped && (d->covered_B == 0 ||
			    now_ns < d->release_ns))
				break;
			splice_out(relay, d, now_ns);
		}
		if (relay->end)
			return;
		if (d->eof && d->pipe_B == 0) {
			half_close(d);
			return;
		}
		/* Go round only when this round emptied the pipe. */
		if (d->pipe_B > 0 || (d->moved_B == moved_B &&
		    d->pipe_B == before_B))
			break;
		readable = 1;
	}
}

struct poll_set {
	struct pollfd fds[4];
	nfds_t count;
};

static void
poll_want(struct poll_set *set, int fd, short events)
{
	nfds_t slot;

	if (events == 0 || fd < 0)
		return;
	for (slot = 0; slot < set->count; slot++)
		if (set->fds[slot].fd == fd) {
			set->fds[slot].events |= events;
			return;
		}
	set->fds[set->count].fd = fd;
	set->fds[set->count].events = events;
	set->fds[set->count].revents = 0;
	set->count++;
}

static short
poll_got(const struct poll_set *set, int fd)
{
	nfds_t slot;

	for (slot = 0; slot < set->count; slot++)
		if (set->fds[slot].fd == fd)
			return set->fds[slot].revents;
	return 0;
}

static uint64_t
earlier(uint64_t a_ns, uint64_t b_ns)
{
	return a_ns < b_ns ? a_ns : b_ns;
}

static void
direction_wants(const struct direction *d, struct poll_set *set,
    uint64_t now_ns, uint64_t *deadline_ns)
{
	if (d->shut)
		return;
	if (wants_read(d))
		poll_want(set, d->from_fd, POLLIN);
	if (d->pipe_B == 0)
		return;
	if (d->shaped && now_ns < d->release_ns)
		*deadline_ns = earlier(*deadline_ns, d->release_ns);
	else if (d->to_blocked)
		poll_want(set, d->to_fd, POLLOUT);
	else if (d->shaped)
		/* The release passed after step() looked (the store reads
		 * its own, later clock): step again at once rather than
		 * wait on nothing. */
		*deadline_ns = now_ns;
}

/* Bytes on their way that the relay or the kernel still holds: in a pipe
 * (waiting for tokens, or for a receiver that does not read) or in a
 * send queue (a slow reader).  The relay is not idle while there are. */
static int
bytes_waiting(const struct relay *relay)
{
	const struct direction *const dirs[2] = { &relay->up, &relay->down };
	int i;

	for (i = 0; i < 2; i++) {
		if (!dirs[i]->shut && dirs[i]->pipe_B > 0)
			return 1;
		if (dirs[i]->to_is_socket &&
		    queued_B(dirs[i]->to_fd, SIOCOUTQ) > 0)
			return 1;
	}
	return 0;
}

/* -i: idle means neither side sent anything and nothing waits to be
 * written.  Bytes waiting for tokens or for a slow reader count as
 * activity, looked at when the timeout would fire and then every
 * IDLE_RECHECK_NS while they wait.  Returns when to look next. */
static uint64_t
idle_check(struct relay *relay, uint64_t now_ns)
{
	uint64_t due_ns = relay->last_move_ns + relay->idle_ns;

	if (relay->idle_waiting)
		due_ns = earlier(due_ns, relay->idle_waiting_ns +
		    IDLE_RECHECK_NS);
	if (now_ns < due_ns)
		return due_ns;
	relay->idle_waiting = bytes_waiting(relay);
	if (relay->idle_waiting) {
		relay->last_move_ns = relay->idle_waiting_ns = now_ns;
		return now_ns + IDLE_RECHECK_NS;
	}
	if (now_ns - relay->last_move_ns >= relay->idle_ns)
		end_relay(relay, END_IDLE);
	return relay->last_move_ns + relay->idle_ns;
}

/* A graceful stop (SIGUSR1): read only what the kernel had received
 * when it came (the senders had it acknowledged), flush it all (through
 * the limits, as ever), pass on an end of stream that came right after
 * it, and end once every direction is finished or empty with its send
 * queue delivered, or at the deadline.  What is unfinished then is cut
 * (cut_unfinished()): a sender that had more gets no silent FIN. */
static uint64_t
drain_check(struct relay *relay, uint64_t now_ns)
{
	struct direction *const dirs[2] = { &relay->up, &relay->down };
	struct direction *d;
	int i, flushed = 1;
	ssize_t peeked;
	char byte;

	if (!relay->drain_deadline_ns) {
		relay->drain_deadline_ns = now_ns + DRAIN_DEADLINE_NS;
		for (i = 0; i < 2; i++) {
			dirs[i]->draining = 1;
			dirs[i]->drain_left_B = queued_B(dirs[i]->from_fd,
			    SIOCINQ);
		}
		log_line(LOG_INFO, "%s: graceful stop: flushing the %llu B "
		    "up and %llu B down received, reading no more",
		    relay->label, (unsigned long long)(relay->up.pipe_B +
		    relay->up.drain_left_B), (unsigned long long)
		    (relay->down.pipe_B + relay->down.drain_left_B));
	}
	for (i = 0; i < 2; i++) {
		d = dirs[i];
		if (d->shut)
			continue;
		if (d->drain_left_B == 0 && d->pipe_B == 0 && !d->eof) {
			/* A reset is reported once, then reads as an end:
			 * taken here, it must end the relay as a reset. */
			peeked = recv(d->from_fd, &byte, 1,
			    MSG_PEEK | MSG_DONTWAIT);
			if (peeked == 0) {
				d->eof = 1;
			} else if (peeked < 0 && errno != EAGAIN &&
			    errno != EWOULDBLOCK && errno != EINTR) {
				snprintf(relay->end_detail,
				    sizeof(relay->end_detail), "reading %s: %s",
				    d->label, strerror(errno));
				fail_side(relay, d->reset_from);
				return now_ns;
			}
		}
		if (d->eof && d->pipe_B == 0) {
			half_close(d);
			continue;
		}
		if (d->drain_left_B > 0 || d->pipe_B > 0 ||
		    (d->to_is_socket && queued_B(d->to_fd, SIOCOUTQ) > 0))
			flushed = 0;
	}
	if (flushed)
		end_relay(relay, END_DRAINED);
	else if (now_ns >= relay->drain_deadline_ns)
		end_relay(relay, END_DRAIN_LATE);
	/* The send queues are not polled: look again soon. */
	return earlier(relay->drain_deadline_ns, now_ns + IDLE_RECHECK_NS / 4);
}

static void
relay_loop(struct relay *relay)
{
	struct direction *const dirs[2] = { &relay->up, &relay->down };
	struct poll_set set;
	struct timespec timeout, *timeout_p;
	uint64_t now_ns, deadline_ns, wait_ns;
	short got;
	int rc, i;

	relay->last_move_ns = monotonic_ns();
	while (relay->end == END_NONE) {
		if (stop_signal) {
			end_relay(relay, END_SIGNAL);
			break;
		}
		if (relay->up.shut && relay->down.shut) {
			end_relay(relay, relay->drain_deadline_ns ?
			    END_DRAINED : END_DONE);
			break;
		}
		now_ns = monotonic_ns();
		if (relay->store && (relay->up.unaccounted_B ||
		    relay->down.unaccounted_B) &&
		    now_ns - relay->last_account_ns >= ACCOUNT_PERIOD_NS)
			account(relay, now_ns);
		set.count = 0;
		deadline_ns = UINT64_MAX;
		for (i = 0; i < 2; i++)
			direction_wants(dirs[i], &set, now_ns, &deadline_ns);
		if (drain_signal) {
			deadline_ns = earlier(deadline_ns,
			    drain_check(relay, now_ns));
			if (relay->end)
				break;
		}
		if (relay->idle_ns) {
			deadline_ns = earlier(deadline_ns,
			    idle_check(relay, now_ns));
			if (relay->end)
				break;
		}
		if (relay->store && (relay->up.unaccounted_B ||
		    relay->down.unaccounted_B))
			deadline_ns = earlier(deadline_ns,
			    relay->last_account_ns + ACCOUNT_PERIOD_NS);
		timeout_p = NULL;
		if (deadline_ns != UINT64_MAX) {
			wait_ns = deadline_ns > now_ns ? deadline_ns - now_ns :
			    0;
			timeout.tv_sec = (time_t)(wait_ns / NS_PER_SEC);
			timeout.tv_nsec = (long)(wait_ns % NS_PER_SEC);
			timeout_p = &timeout;
		}
		rc = ppoll(set.fds, set.count, timeout_p, &run_mask);
		if (rc < 0 && errno != EINTR) {
			log_line(LOG_ERR, "%s: unable to poll: %s",
			    relay->label, strerror(errno));
			end_relay(relay, END_ERROR);
			break;
		}
		if (rc < 0)
			continue;
		now_ns = monotonic_ns();
		if (relay->idle_ns) {
			idle_check(relay, now_ns);
			if (relay->end)
				break;
		}
		for (i = 0; i < 2 && relay->end == END_NONE; i++) {
			if (dirs[i]->shut)
				continue;
			got = poll_got(&set, dirs[i]->to_fd);
			if (got & (POLLOUT | POLLERR | POLLHUP))
				dirs[i]->to_blocked = 0;
			got = poll_got(&set, dirs[i]->from_fd);
			step(relay, dirs[i], (got & (POLLIN | POLLERR |
			    POLLHUP)) != 0, now_ns);
		}
	}
}

/* Wait for a non-blocking connect; 0 connected, else an errno value
 * (ETIMEDOUT at the deadline, EINTR on a stop signal). */
static int
connect_wait(int fd, uint64_t deadline_ns)
{
	struct pollfd pfd = { .fd = fd, .events = POLLOUT };
	struct timespec timeout, *timeout_p;
	uint64_t now_ns, wait_ns;
	socklen_t len;
	int rc, err;

	for (;;) {
		if (stop_signal || drain_signal)
			return EINTR;
		timeout_p = NULL;
		if (deadline_ns) {
			now_ns = monotonic_ns();
			if (now_ns >= deadline_ns)
				return ETIMEDOUT;
			wait_ns = deadline_ns - now_ns;
			timeout.tv_sec = (time_t)(wait_ns / NS_PER_SEC);
			timeout.tv_nsec = (long)(wait_ns % NS_PER_SEC);
			timeout_p = &timeout;
		}
		rc = ppoll(&pfd, 1, timeout_p, &run_mask);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc < 0)
			return errno;
		if (rc == 0)
			continue;
		err = 0;
		len = sizeof(err);
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			return errno;
		return err;
	}
}

/* Returns 0, or the exit code after logging why. */
static int
connect_remote(struct relay *relay)
{
	struct addrinfo hints = { 0 }, *list, *ai;
	uint64_t deadline_ns = 0;
	char tried[PEER_MAX + 1] = "";
	int fd, rc, err = 0, one = 1;

	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	hints.ai_flags = AI_NUMERICSERV;
	hints.ai_family = relay->source_len ? relay->source.ss_family :
	    AF_UNSPEC;
	rc = getaddrinfo(relay->remote_hp.host, relay->remote_hp.port, &hints,
	    &list);
	if (rc) {
		log_line(LOG_ERR, "%s: peer %s: unable to resolve %s: %s",
		    relay->label, relay->peer, relay->remote_hp.host,
		    rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
		return EXIT_SYSTEM;
	}
	if (relay->connect_timeout_ns)
		deadline_ns = monotonic_ns() + relay->connect_timeout_ns;
	for (ai = list; ai; ai = ai->ai_next) {
		format_address(ai->ai_addr, tried, sizeof(tried));
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0) {
			err = errno;
			continue;
		}
		if (relay->source_len) {
			/* Pick the port at connect time, by 4-tuple, so many
			 * relays from one source address do not run out. */
			(void)setsockopt(fd, IPPROTO_IP,
			    IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
			if (bind(fd, (struct sockaddr *)&relay->source,
			    relay->source_len) < 0) {
				err = errno;
				close(fd);
				continue;
			}
		}
		if (relay->remote_rcvbuf_B)
			(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF,
			    &relay->remote_rcvbuf_B,
			    sizeof(relay->remote_rcvbuf_B));
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			err = 0;
		else if (errno == EINPROGRESS)
			err = connect_wait(fd, deadline_ns);
		else
			err = errno;
		if (err == 0) {
			relay->remote_fd = fd;
			snprintf(relay->remote_addr,
			    sizeof(relay->remote_addr), "%s", tried);
			freeaddrinfo(list);
			return 0;
		}
		close(fd);
		if (err == ETIMEDOUT || err == EINTR)
			break;
	}
	freeaddrinfo(list);
	if (err == EINTR) {
		log_line(LOG_INFO, "%s: peer %s: terminated by signal while "
		    "connecting to %s", relay->label, relay->peer,
		    relay->remote_word);
		return 0;
	}
	log_line(LOG_ERR, "%s: peer %s: unable to connect to %s (%s): %s",
	    relay->label, relay->peer, relay->remote_word, tried[0] ? tried :
	    "no address", err == ETIMEDOUT ? "timed out" : strerror(err));
	return err == ETIMEDOUT ? EXIT_TIMEOUT : EXIT_SYSTEM;
}

static void
init_direction(struct relay *relay, struct direction *d, int dir)
{
	int fds[2], got;

	d->dir = dir;
	d->label = dir == DIR_UP ? "up" : "down";
	if (dir == DIR_UP) {
		d->from_fd = relay->client_in;
		d->to_fd = relay->remote_fd;
		d->reset_from = END_RESET_CLIENT;
		d->reset_to = END_RESET_REMOTE;
	} else {
		d->from_fd = relay->remote_fd;
		d->to_fd = relay->client_out;
		d->reset_from = END_RESET_REMOTE;
		d->reset_to = END_RESET_CLIENT;
	}
	d->to_is_socket = fd_is_socket(d->to_fd);
	if (dir == DIR_DOWN)
		d->rcvbuf_B = relay->remote_rcvbuf_B;
	if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0)
		log_fatal(EXIT_SYSTEM, "%s: unable to create a pipe: %s",
		    relay->label, strerror(errno));
	d->pipe_fd[0] = fds[0];
	d->pipe_fd[1] = fds[1];
	got = fcntl(fds[1], F_SETPIPE_SZ, (int)PIPE_START_B);
	if (got <= 0)
		got = fcntl(fds[1], F_GETPIPE_SZ);
	d->pipe_cap_B = got > 0 ? (size_t)got : 4096;
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
