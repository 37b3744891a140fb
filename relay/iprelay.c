/*
 * iprelay: the classic command (a drop-in for ip_relay.pl 0.71).  It binds
 * its forwarders, spawns one iprelay-conn per accepted connection with the
 * socket on fd 0 and 1 (as inetd does), keeps one limit per instance in the
 * store (shared by every forwarder and connection, per direction), refills
 * the buckets itself while no shaperd does, and offers the original's
 * interactive prompt.  Everything runs from one poll loop: stdin, the
 * listeners, a signalfd and a 100 ms timer, so nothing blocks the prompt.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "command.h"
#include "log.h"
#include "parse.h"
#include "refiller.h"
#include "store.h"

#define VERSION		"1.0"
#define USAGE		"usage: iprelay [-d] [-b rate] [-m max] [-n name] " \
			"[-p pidfile] [-S dir] [-a cidr] [-A cidr] " \
			"[proxyspec ...]"
#define FORWARDERS_MAX	128
#define LINE_MAX_B	COMMAND_LINE_MAX	/* one command line */
#define HISTORY_MAX	100
#define SAMPLES		61	/* one a second: a minute of history */
#define ACCEPTS_PER_WAKE	64
#define STOP_GRACE_NS	(3ULL * NS_PER_SEC)
/* A relay started ahead is started this long after the one before it took
 * a client: started at once, its exec and start-up ran beside that
 * client's first steps (store, connect, first bytes) on the same cores, and
 * doubled the latency a client saw (bench/README.md). */
#define SPARE_DELAY_NS	(5ULL * 1000 * 1000)

extern char **environ;

struct forwarder {
	int number;			/* 99 for the first spec, as before */
	struct proxyspec spec;
	char remote_shown[INET6_ADDRSTRLEN];	/* resolved, for show all */
	int listen_fds[ADDRS_MAX];
	size_t nlisten;
	unsigned nconns;		/* live children */
	uint64_t own_rate_Bps;		/* set limit N RATE; 0 = none set */
	int has_own_limit;
	int paused;			/* accept failed with EMFILE: wait a tick */
	uint64_t spare_due_ns;		/* CLOCK_MONOTONIC: start one ahead; 0 = no */
};

struct child {
	pid_t pid;
	int forwarder;			/* number; -1 once the forwarder is gone */
	uint64_t start_ticks;		/* /proc starttime: tells a reused pid */
	uint32_t conn_id;		/* 0 until seen in the store */
	char peer[PEER_MAX + 1];
	uint64_t bytes[SAMPLES][2];	/* per second, for the averages */
	unsigned filled, head;
	int term_sent;
	int ahead;			/* started ahead: no client yet */
	int ahead_fd;			/* our end of its -W socket; -1 = none */
};

struct settings {
	char local_addrs[LOCAL_ADDRS_MAX_B];
	char force_from[INET6_ADDRSTRLEN];
	uint64_t debug;
	uint64_t dump_traff;
	uint64_t idle_out_s;
	uint64_t dead_count;
	uint64_t data_size_B;
	/* Passed to every new relay as -a and -A. */
	struct cidr allow[ACL_MAX], deny[ACL_MAX];
	size_t nallow, ndeny;
};

/* The line editor, used when stdin is a terminal. */
struct editor {
	int active;
	struct termios saved;
	char line[LINE_MAX_B];
	size_t len, cursor;
	char escape[8];
	size_t escape_len;
	char *history[HISTORY_MAX];
	size_t nhistory;
	size_t browse;			/* == nhistory: editing a new line */
};

static struct {
	int daemonise;
	int prompt;			/* reading commands from stdin */
	int stdin_tty;
	char limit_name[LIMIT_NAME_MAX + 1];
	char state_dir[PATH_MAX];
	char conn_path[PATH_MAX];
	const char *pid_file;
	int pid_fd;		/* held, locked, while we run; -1 none */
	uint64_t max_conns;
	struct settings set;
	struct forwarder forwarders[FORWARDERS_MAX];
	size_t nforwarders;
	struct child *children;
	size_t nchildren, children_cap;
	struct store *store;
	struct refiller *refiller;
	int signal_fd, timer_fd;
	unsigned ticks;
	int stopping;
	uint64_t stop_deadline_ns;
	int exit_code;
	char pending[LINE_MAX_B];	/* piped input not yet a whole line */
	size_t pending_len;
	struct editor editor;
	struct {			/* set forwarder, resolving meanwhile */
		int active;
		int number;
		struct proxyspec spec;
		struct addrinfo hints;
		struct gaicb request;
	} resolving;
} relay = {
	.signal_fd = -1,
	.timer_fd = -1,
	.max_conns = 512,
	.set = {
		.local_addrs = "0.0.0.0,::",
		.force_from = "0.0.0.0",
		.debug = 1,
		.idle_out_s = 3000,
		.dead_count = 10,
	},
};

/* ---- output ---------------------------------------------------------- */

static void
editor_redraw(void)
{
	struct editor *editor = &relay.editor;
	char buf[LINE_MAX_B + 64];
	int len;

	len = snprintf(buf, sizeof(buf), "\r\033[K> %.*s", (int)editor->len,
	    editor->line);
	if (editor->cursor < editor->len)
		len += snprintf(buf + len, sizeof(buf) - (size_t)len, "\033[%zuD",
		    editor->len - editor->cursor);
	fflush(stdout);
	if (write(STDOUT_FILENO, buf, (size_t)len) < 0)
		return;
}

/* Command output: stdout. */
static void
out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
out(const char *fmt, ...)
{
	va_list args;

	va_start(args, fmt);
	vfprintf(stdout, fmt, args);
	va_end(args);
}

/* An event (a connection opened or closed, a refusal): the terminal when
 * interactive, without tearing the line being typed; the log otherwise. */
static void
say(int priority, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
say(int priority, const char *fmt, ...)
{
	char text[1024];
	va_list args;

	va_start(args, fmt);
	vsnprintf(text, sizeof(text), fmt, args);
	va_end(args);
	if (relay.daemonise) {
		log_line(priority, "%s", text);
		return;
	}
	fflush(stdout);
	if (relay.editor.active) {
		fprintf(stderr, "\r\033[K%s\n", text);
		fflush(stderr);
		editor_redraw();
		return;
	}
	fprintf(stderr, "%s\n", text);
	fflush(stderr);
}

static void
prompt(void)
{
	if (!relay.prompt)
		return;
	if (relay.editor.active) {
		editor_redraw();
		return;
	}
	fputs("> ", stdout);
	fflush(stdout);
}

static void
print_version(void)
{
	fprintf(stderr, "\niprelay Version: %s\n"
	    "A C rebuild of ip_relay.pl 0.71 by Gavin Stewart\n\n", VERSION);
	fflush(stderr);
}

/* ---- small helpers --------------------------------------------------- */

static void
format_sockaddr(const struct sockaddr *addr, char *buf, size_t size)
{
	char host[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	if (addr->sa_family == AF_INET) {
		const struct sockaddr_in *in4 = (const void *)addr;

		inet_ntop(AF_INET, &in4->sin_addr, host, sizeof(host));
		port = ntohs(in4->sin_port);
		snprintf(buf, size, "%s:%u", host, port);
	} else if (addr->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)addr;

		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		port = ntohs(in6->sin6_port);
		snprintf(buf, size, "[%s]:%u", host, port);
	} else {
		snprintf(buf, size, "?");
	}
}

static int
address_is_any(const char *word)
{
	return strcmp(word, "0.0.0.0") == 0 || strcmp(word, "::") == 0;
}

static struct forwarder *
forwarder_find(int number)
{
	size_t index;

	for (index = 0; index < relay.nforwarders; index++)
		if (relay.forwarders[index].number == number)
			return &relay.forwarders[index];
	return NULL;
}

static void
forwarder_limit_name(int number, char *name, size_t size)
{
	snprintf(name, size, "%s.%d", relay.limit_name, number);
}

static const char *
forwarder_limit_for(int number)
{
	static char name[LIMIT_NAME_MAX + 8];
	struct forwarder *forwarder = forwarder_find(number);

	if (forwarder && forwarder->has_own_limit) {
		forwarder_limit_name(number, name, sizeof(name));
		return name;
	}
	return relay.limit_name;
}

static void
format_remote(const struct hostport *remote, char *buf, size_t size)
{
	if (strchr(remote->host, ':'))
		snprintf(buf, size, "[%s]:%s", remote->host, remote->port);
	else
		snprintf(buf, size, "%s:%s", remote->host, remote->port);
}

/* ---- limits ---------------------------------------------------------- */

/* Set a limit's rate in both directions, keeping its burst (and its
 * parent, unless one is given) as iprelay-limit may have set them. */
static int
limit_set_rate(const char *name, const char *parent, uint64_t rate_Bps)
{
	struct limit_cfg cfg = { .rate_Bps = { rate_Bps, rate_Bps } };
	unsigned fields = LIMIT_FIELD_UP | LIMIT_FIELD_DOWN;

	if (parent) {
		snprintf(cfg.parent, sizeof(cfg.parent), "%s", parent);
		fields |= LIMIT_FIELD_PARENT;
	}
	return store_limit_update(relay.store, name, &cfg, fields, NULL);
}

static void
format_rate(const char *name, char *buf, size_t size)
{
	struct limit_info info;
	int rc;

	rc = store_limit_get(relay.store, name, &info);
	if (rc) {
		snprintf(buf, size, "unknown (%s)", store_strerror(rc));
		return;
	}
	if (info.cfg.rate_Bps[DIR_UP] == info.cfg.rate_Bps[DIR_DOWN])
		snprintf(buf, size, "%llu",
		    (unsigned long long)info.cfg.rate_Bps[DIR_UP]);
	else
		snprintf(buf, size, "%llu up, %llu down",
		    (unsigned long long)info.cfg.rate_Bps[DIR_UP],
		    (unsigned long long)info.cfg.rate_Bps[DIR_DOWN]);
}

/* ---- forwarders ------------------------------------------------------ */

static void
forwarder_close_listeners(struct forwarder *forwarder)
{
	size_t index;

	for (index = 0; index < forwarder->nlisten; index++)
		close(forwarder->listen_fds[index]);
	forwarder->nlisten = 0;
}

/* Bind lport on every local_addrs address.  An IPv6 address the machine
 * cannot use is skipped when another address is bound; every other
 * failure is reported at once (no retry loop as the original had). */
static int
forwarder_bind(struct forwarder *forwarder, char *why, size_t why_size)
{
	char copy[sizeof(relay.set.local_addrs)], *saveptr, *token;
	struct addrinfo hints = {
		.ai_socktype = SOCK_STREAM,
		.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE,
	}, *result;
	int fd = -1, one = 1, rc, skipped_v6 = 0;

	forwarder->nlisten = 0;
	snprintf(copy, sizeof(copy), "%s", relay.set.local_addrs);
	for (token = strtok_r(copy, ",", &saveptr); token;
	    token = strtok_r(NULL, ",", &saveptr)) {
		rc = getaddrinfo(token, forwarder->spec.lport, &hints, &result);
		if (rc) {
			snprintf(why, why_size, "unable to use local address %s: %s",
			    token, gai_strerror(rc));
			goto fail;
		}
		fd = socket(result->ai_family, result->ai_socktype |
		    SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0 && result->ai_family == AF_INET6 &&
		    errno == EAFNOSUPPORT) {
			freeaddrinfo(result);
			skipped_v6 = 1;
			continue;
		}
		if (fd < 0) {
			snprintf(why, why_size, "unable to create a socket: %s",
			    strerror(errno));
			freeaddrinfo(result);
			goto fail;
		}
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (result->ai_family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one,
			    sizeof(one));
		if (bind(fd, result->ai_addr, result->ai_addrlen) < 0) {
			if (result->ai_family == AF_INET6 &&
			    errno == EADDRNOTAVAIL) {
				close(fd);
				freeaddrinfo(result);
				skipped_v6 = 1;
				continue;
			}
			snprintf(why, why_size, "unable to bind %s port %s: %s",
			    token, forwarder->spec.lport, strerror(errno));
			close(fd);
			freeaddrinfo(result);
			goto fail;
		}
		freeaddrinfo(result);
		/* The kernel's own cap (somaxconn, 4096 on Debian 12): a
		 * burst of connections past a short queue loses the client's
		 * last handshake ACK and waits for retransmits, seconds. */
		if (listen(fd, SOMAXCONN) < 0) {
			snprintf(why, why_size, "unable to listen on %s port %s: %s",
			    token, forwarder->spec.lport, strerror(errno));
			close(fd);
			goto fail;
		}
		forwarder->listen_fds[forwarder->nlisten++] = fd;
	}
	if (forwarder->nlisten == 0) {
		snprintf(why, why_size, "unable to bind port %s: %s",
		    forwarder->spec.lport, skipped_v6 ?
		    "IPv6 is not available here" : "no local address");
		return -1;
	}
	return 0;
fail:
	forwarder_close_listeners(forwarder);
	return -1;
}

/* The outcome of resolving remote: its first address in shown, or why
 * not.  Frees result. */
static int
resolved(const struct hostport *remote, int rc, struct addrinfo *result,
    char *shown, size_t size, char *why, size_t why_size)
{
	if (rc) {
		snprintf(why, why_size, "unable to resolve %s: %s", remote->host,
		    rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
		return -1;
	}
	if (result->ai_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)(void *)
		    result->ai_addr)->sin_addr, shown, (socklen_t)size);
	else
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)(void *)
		    result->ai_addr)->sin6_addr, shown, (socklen_t)size);
	freeaddrinfo(result);
	return 0;
}

/* Resolve the remote host now, as the original did, to show the address
 * and to refuse a name that does not resolve.  iprelay-conn resolves it
 * again per connection and tries every address. */
static int
resolve_remote(const struct hostport *remote, char *shown, size_t size,
    char *why, size_t why_size)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *result;
	int rc;

	rc = getaddrinfo(remote->host, remote->port, &hints, &result);
	return resolved(remote, rc, result, shown, size, why, why_size);
}

/* A relay started ahead (see spare_start) waits with the settings of its
 * start: a change lets it go, end of file on its socket, and it exits. */
static void
spare_let_go(struct child *child)
{
	close(child->ahead_fd);
	child->ahead_fd = -1;
	child->forwarder = -1;
}

static void
spares_let_go(void)
{
	size_t index;

	for (index = 0; index < relay.nchildren; index++)
		if (relay.children[index].ahead_fd >= 0)
			spare_let_go(&relay.children[index]);
}

/* Add or replace forwarder number, its remote already resolved to shown.
 * On failure the old one (if any) is kept when it can still listen. */
static int
forwarder_install(int number, const struct proxyspec *spec,
    const char *shown, char *why, size_t why_size)
{
	struct forwarder fresh = { .number = number, .spec = *spec };
	struct forwarder *old = forwarder_find(number);
	char old_why[256];

	snprintf(fresh.remote_shown, sizeof(fresh.remote_shown), "%s", shown);
	if (old == NULL && relay.nforwarders == FORWARDERS_MAX) {
		snprintf(why, why_size, "too many forwarders (at most %d)",
		    FORWARDERS_MAX);
		return -1;
	}
	/* The same port may be bound by the forwarder being replaced. */
	if (old)
		forwarder_close_listeners(old);
	if (forwarder_bind(&fresh, why, why_size) < 0) {
		if (old && forwarder_bind(old, old_why, sizeof(old_why)) < 0) {
			snprintf(why + strlen(why), why_size - strlen(why),
			    "; the old forwarder %d is gone too: %s", number,
			    old_why);
			*old = relay.forwarders[--relay.nforwarders];
		}
		return -1;
	}
	spares_let_go();
	if (old) {
		fresh.nconns = old->nconns;
		fresh.own_rate_Bps = old->own_rate_Bps;
		fresh.has_own_limit = old->has_own_limit;
		*old = fresh;
	} else {
		relay.forwarders[relay.nforwarders++] = fresh;
	}
	return 0;
}

/* set forwarder with a name: resolved by getaddrinfo_a so the loop goes
 * on; the outcome is announced when the signal comes (resolve_done). */
static int
resolve_start(int number, const struct proxyspec *spec)
{
	struct gaicb *list[1] = { &relay.resolving.request };
	struct sigevent event = {
		.sigev_notify = SIGEV_SIGNAL,
		.sigev_signo = SIGRTMIN,
	};
	int rc;

	memset(&relay.resolving, 0, sizeof(relay.resolving));
	relay.resolving.number = number;
	relay.resolving.spec = *spec;
	relay.resolving.hints.ai_socktype = SOCK_STREAM;
	relay.resolving.request.ar_name = relay.resolving.spec.remote.host;
	relay.resolving.request.ar_service = relay.resolving.spec.remote.port;
	relay.resolving.request.ar_request = &relay.resolving.hints;
	rc = getaddrinfo_a(GAI_NOWAIT, list, 1, &event);
	if (rc == 0)
		relay.resolving.active = 1;
	return rc;
}

static void
resolve_done(void)
{
	char shown[INET6_ADDRSTRLEN], why[512];
	int rc, number = relay.resolving.number;

	if (!relay.resolving.active)
		return;
	rc = gai_error(&relay.resolving.request);
	if (rc == EAI_INPROGRESS)
		return;
	relay.resolving.active = 0;
	if (resolved(&relay.resolving.spec.remote, rc,
	    relay.resolving.request.ar_result, shown, sizeof(shown), why,
	    sizeof(why)) < 0 || forwarder_install(number,
	    &relay.resolving.spec, shown, why, sizeof(why)) < 0)
		say(LOG_WARNING, "  forwarder %d not set: %s", number, why);
	else
		say(LOG_INFO, "  .... determined as: %s\n  forwarder %d set.",
		    shown, number);
}

/* At start-up, before the loop: resolving may block here. */
static int
forwarder_set(int number, const struct proxyspec *spec, char *why,
    size_t why_size)
{
	char shown[INET6_ADDRSTRLEN];

	if (resolve_remote(&spec->remote, shown, sizeof(shown), why,
	    why_size) < 0)
		return -1;
	return forwarder_install(number, spec, shown, why, why_size);
}

static int
forwarder_delete(int number)
{
	struct forwarder *forwarder = forwarder_find(number);
	size_t index;

	if (forwarder == NULL)
		return -1;
	forwarder_close_listeners(forwarder);
	spares_let_go();
	/* Its open connections go on, counted against nothing. */
	for (index = 0; index < relay.nchildren; index++)
		if (relay.children[index].forwarder == number)
			relay.children[index].forwarder = -1;
	*forwarder = relay.forwarders[--relay.nforwarders];
	return 0;
}

/* ---- children -------------------------------------------------------- */

/* Our child that registered this record: same pid, and the same start
 * time, so a dead relay's record naming a reused pid is not taken. */
static struct child *
child_of(const struct conn_info *info)
{
	size_t index;

	for (index = 0; index < relay.nchildren; index++) {
		struct child *child = &relay.children[index];

		if (child->pid != info->pid)
			continue;
		if (info->pid_start && child->start_ticks &&
		    info->pid_start != child->start_ticks)
			return NULL;
		return child;
	}
	return NULL;
}

static struct child *
child_find(pid_t pid)
{
	size_t index;

	for (index = 0; index < relay.nchildren; index++)
		if (relay.children[index].pid == pid)
			return &relay.children[index];
	return NULL;
}

static struct child *
child_add(pid_t pid, int number, const char *peer)
{
	struct child *grown;

	if (relay.nchildren == relay.children_cap) {
		size_t cap = relay.children_cap ? relay.children_cap * 2 : 16;

		grown = realloc(relay.children, cap * sizeof(*grown));
		if (grown == NULL)
			return NULL;
		relay.children = grown;
		relay.children_cap = cap;
	}
	grown = &relay.children[relay.nchildren++];
	memset(grown, 0, sizeof(*grown));
	grown->pid = pid;
	grown->ahead_fd = -1;
	grown->start_ticks = refiller_proc_start(pid);
	grown->forwarder = number;
	snprintf(grown->peer, sizeof(grown->peer), "%s", peer);
	return grown;
}

/* With ahead, fd is our end's peer of a socketpair and the relay is
 * started with -W, to be passed its client later (hand_to_spare). */
static int
spawn_conn(struct forwarder *forwarder, int client_fd, int ahead, pid_t *pid)
{
	posix_spawn_file_actions_t actions;
	posix_spawnattr_t attr;
	sigset_t none, defaults;
	char remote[REMOTE_MAX + 1], idle[24], chunk[24];
	char limit[LIMIT_NAME_MAX + 8];
	char acl_text[2 * ACL_MAX][CIDR_TEXT_MAX + 1];
	char *argv[16 + 4 * ACL_MAX];
	size_t index, ntext = 0;
	int argc = 0, rc;

	snprintf(limit, sizeof(limit), "%s", forwarder_limit_for(forwarder->number));
	format_remote(&forwarder->spec.remote, remote, sizeof(remote));
	argv[argc++] = "iprelay-conn";
	if (ahead)
		argv[argc++] = "-W";
	argv[argc++] = "-S";
	argv[argc++] = relay.state_dir;
	argv[argc++] = "-l";
	argv[argc++] = limit;
	if (relay.set.data_size_B) {
		snprintf(chunk, sizeof(chunk), "%llu",
		    (unsigned long long)relay.set.data_size_B);
		argv[argc++] = "-z";
		argv[argc++] = chunk;
	}
	if (relay.set.idle_out_s) {
		snprintf(idle, sizeof(idle), "%llu",
		    (unsigned long long)relay.set.idle_out_s);
		argv[argc++] = "-i";
		argv[argc++] = idle;
	}
	if (!address_is_any(relay.set.force_from)) {
		argv[argc++] = "-s";
		argv[argc++] = relay.set.force_from;
	}
	for (index = 0; index < relay.set.nallow; index++) {
		cidr_format(&relay.set.allow[index], acl_text[ntext],
		    sizeof(acl_text[0]));
		argv[argc++] = "-a";
		argv[argc++] = acl_text[ntext++];
	}
	for (index = 0; index < relay.set.ndeny; index++) {
		cidr_format(&relay.set.deny[index], acl_text[ntext],
		    sizeof(acl_text[0]));
		argv[argc++] = "-A";
		argv[argc++] = acl_text[ntext++];
	}
	argv[argc++] = remote;
	argv[argc] = NULL;

	if ((rc = posix_spawn_file_actions_init(&actions)))
		return rc;
	if ((rc = posix_spawnattr_init(&attr)))
		goto destroy_actions;
	/* The socket on 0 and 1 as inetd gives it; fd 2 may never be the
	 * client, so /dev/null.  Our own descriptors are close-on-exec. */
	if ((rc = posix_spawn_file_actions_adddup2(&actions, client_fd, 0)) ||
	    (rc = posix_spawn_file_actions_adddup2(&actions, client_fd, 1)) ||
	    (rc = posix_spawn_file_actions_addopen(&actions, 2, "/dev/null",
	    O_WRONLY, 0)))
		goto destroy_attr;
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 34)
	/* And whatever our own parent left open without close-on-exec. */
	if ((rc = posix_spawn_file_actions_addclosefrom_np(&actions, 3)))
		goto destroy_attr;
#endif
	/* Our blocked signals (signalfd) and ignored SIGPIPE must not leak
	 * into the relay; its own process group keeps a ctrl-c at the
	 * terminal for iprelay, which then ends every relay cleanly. */
	sigemptyset(&none);
	sigemptyset(&defaults);
	sigaddset(&defaults, SIGPIPE);
	sigaddset(&defaults, SIGINT);
	sigaddset(&defaults, SIGTERM);
	sigaddset(&defaults, SIGHUP);
	sigaddset(&defaults, SIGCHLD);
	sigaddset(&defaults, SIGCONT);
	if ((rc = posix_spawnattr_setsigmask(&attr, &none)) ||
	    (rc = posix_spawnattr_setsigdefault(&attr, &defaults)) ||
	    (rc = posix_spawnattr_setpgroup(&attr, 0)) ||
	    (rc = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK |
	    POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP)))
		goto destroy_attr;
	rc = posix_spawn(pid, relay.conn_path, &actions, &attr, argv, environ);
destroy_attr:
	posix_spawnattr_destroy(&attr);
destroy_actions:
	posix_spawn_file_actions_destroy(&actions);
	return rc;
}

/* ---- relays started ahead --------------------------------------------
 * A forwarder that has had a connection keeps one relay started ahead
 * (iprelay-conn -W): exec, linking and opening the store are then done
 * before the next client connects, which only waits for its socket to be
 * passed over (SCM_RIGHTS).  -m counts it: a forwarder never has more
 * than max iprelay-conn processes.  A command that may change what a
 * relay is started with lets the waiting ones go (end of file on their
 * socket: they exit 0). */

static struct child *
spare_of(int number)
{
	size_t index;

	for (index = 0; index < relay.nchildren; index++)
		if (relay.children[index].ahead_fd >= 0 &&
		    relay.children[index].forwarder == number)
			return &relay.children[index];
	return NULL;
}

static void
spare_start(struct forwarder *forwarder)
{
	struct child *child;
	pid_t pid;
	int pair[2];

	if (relay.stopping || forwarder->nlisten == 0 ||
	    spare_of(forwarder->number) ||
	    forwarder->nconns + 1 > relay.max_conns)
		return;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0)
		return;		/* the next client is spawned for, as before */
	if (spawn_conn(forwarder, pair[1], 1, &pid)) {
		close(pair[0]);
		close(pair[1]);
		return;
	}
	close(pair[1]);
	if ((child = child_add(pid, forwarder->number, "")) == NULL) {
		kill(pid, SIGTERM);
		close(pair[0]);
		return;
	}
	child->ahead = 1;
	child->ahead_fd = pair[0];
}

/* The forwarder's relay started ahead takes this client: NULL when there
 * is none or it is gone (then it is spawned for, as before). */
static struct child *
hand_to_spare(struct forwarder *forwarder, int client_fd, const char *peer)
{
	struct child *child = spare_of(forwarder->number);
	char byte = 0, control[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { &byte, 1 };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = control, .msg_controllen = sizeof(control),
	};
	struct cmsghdr *cmsg;

	if (child == NULL)
		return NULL;
	memset(control, 0, sizeof(control));
	cmsg = CMSG_FIRSTHDR(&msg);
	cmsg->cmsg_level = SOL_SOCKET;
	cmsg->cmsg_type = SCM_RIGHTS;
	cmsg->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cmsg), &client_fd, sizeof(int));
	if (sendmsg(child->ahead_fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT) != 1) {
		spare_let_go(child);	/* dead or wedged: reaped later */
		return NULL;
	}
	close(child->ahead_fd);
	child->ahead_fd = -1;
	child->ahead = 0;
	snprintf(child->peer, sizeof(child->peer), "%s", peer);
	return child;
}

static size_t
live_connections(void)
{
	size_t index, count = 0;

	for (index = 0; index < relay.nchildren; index++)
		count += !relay.children[index].ahead;
	return count;
}

static void
accept_on(struct forwarder *forwarder, int listen_fd)
{
	struct sockaddr_storage addr;
	socklen_t addr_len;
	char peer[PEER_MAX + 1];
	pid_t pid;
	int fd, count, rc, handed, number = forwarder->number;

	for (count = 0; count < ACCEPTS_PER_WAKE; count++) {
		addr_len = sizeof(addr);
		fd = accept4(listen_fd, (struct sockaddr *)&addr, &addr_len,
		    SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM) {
				say(LOG_WARNING, "** forwarder %d: unable to "
				    "accept: %s", number, strerror(errno));
				forwarder->paused = 1;
			}
			break;
		}
		format_sockaddr((struct sockaddr *)&addr, peer, sizeof(peer));
		if (forwarder->nconns >= relay.max_conns) {
			say(LOG_WARNING, "** forwarder %d: %u connections "
			    "already (-m), closing the one from %s", number,
			    forwarder->nconns, peer);
			close(fd);
			continue;
		}
		handed = hand_to_spare(forwarder, fd, peer) != NULL;
		rc = handed ? 0 : spawn_conn(forwarder, fd, 0, &pid);
		close(fd);
		if (rc) {
			say(LOG_ERR, "** forwarder %d: unable to spawn %s for "
			    "%s: %s", number, relay.conn_path, peer,
			    strerror(rc));
			continue;
		}
		if (!handed && child_add(pid, number, peer) == NULL) {
			/* Untracked, it would escape -m and kill all. */
			kill(pid, SIGTERM);
			say(LOG_ERR, "** forwarder %d: out of memory, closing "
			    "the connection from %s", number, peer);
			continue;
		}
		forwarder->nconns++;
		/* A daemon's relays log their own open and close lines. */
		if (relay.set.debug && !relay.daemonise)
			say(LOG_INFO, "- Received connect from %s (forwarder %d)",
			    peer, number);
	}
	if (count > 0 && forwarder->spare_due_ns == 0)
		forwarder->spare_due_ns = monotonic_ns() + SPARE_DELAY_NS;
}

static void
reap_children(void)
{
	struct forwarder *forwarder;
	struct child *child;
	char status_text[96] = "";
	pid_t pid;
	int status;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		child = child_find(pid);
		if (child == NULL)
			continue;
		if (child->ahead) {
			/* Never had a client: nothing to say or count. */
			if (child->ahead_fd >= 0)
				close(child->ahead_fd);
			*child = relay.children[--relay.nchildren];
			continue;
		}
		forwarder = child->forwarder >= 0 ?
		    forwarder_find(child->forwarder) : NULL;
		if (forwarder && forwarder->nconns)
			forwarder->nconns--;
		if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
			snprintf(status_text, sizeof(status_text), " (exit %d%s)",
			    WEXITSTATUS(status),
			    WEXITSTATUS(status) == EXIT_TIMEOUT ? ": timeout" :
			    WEXITSTATUS(status) == EXIT_POLICY ?
			    ": refused by allow/deny" :
			    WEXITSTATUS(status) == EXIT_SYSTEM ?
			    ": no connection to the remote host or system failure" :
			    "");
		else if (WIFSIGNALED(status) && WTERMSIG(status) != SIGTERM)
			snprintf(status_text, sizeof(status_text), " (signal %d)",
			    WTERMSIG(status));
		else
			status_text[0] = '\0';
		if (relay.set.debug && !relay.stopping && !relay.daemonise) {
			if (child->conn_id)
				say(LOG_INFO, "CONN%06u: Connection closed%s.",
				    child->conn_id, status_text);
			else
				say(LOG_INFO, "- Connection from %s closed%s.",
				    child->peer, status_text);
		}
		if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL &&
		    child->conn_id)
			(void)store_conn_unregister(relay.store, child->conn_id);
		*child = relay.children[--relay.nchildren];
		/* Below -m again: one may be started ahead now. */
		if (forwarder)
			spare_start(forwarder);
	}
}

/* Once a second: learn our children's connection ids and sample their
 * byte counts for the 5 s and 1 min averages of show stats. */
static int
sample_visit(void *ctx, const struct conn_info *info)
{
	struct child *child = child_of(info);
	int dir;

	(void)ctx;
	if (child == NULL)
		return 0;
	child->conn_id = info->id;
	if (child->filled)
		child->head = (child->head + 1) % SAMPLES;
	if (child->filled < SAMPLES)
		child->filled++;
	for (dir = 0; dir < 2; dir++)
		child->bytes[child->head][dir] = info->bytes[dir];
	return 0;
}

static void
sample_children(void)
{
	if (relay.nchildren == 0)
		return;
	(void)store_conn_foreach(relay.store, sample_visit, NULL);
}

static double
child_rate_kBps(const struct child *child, unsigned span_s, int dir)
{
	unsigned older;

	if (child->filled < 2)
		return 0.0;
	if (span_s > child->filled - 1)
		span_s = child->filled - 1;
	older = (child->head + SAMPLES - span_s) % SAMPLES;
	return (double)(child->bytes[child->head][dir] -
	    child->bytes[older][dir]) / 1024.0 / span_s;
}

static void
kill_children(void)
{
	size_t index;

	for (index = 0; index < relay.nchildren; index++) {
		kill(relay.children[index].pid, SIGTERM);
		relay.children[index].term_sent = 1;
	}
}

/* ---- the prompt's commands ------------------------------------------- */

/* "10.0.0.0/8,::1/128", or "none". */
static void
format_acl(const struct cidr *list, size_t count, char *out_text,
    size_t out_size)
{
	char text[CIDR_TEXT_MAX + 1];
	size_t index, len = 0;

	snprintf(out_text, out_size, "none");
	for (index = 0; index < count && len < out_size; index++) {
		cidr_format(&list[index], text, sizeof(text));
		len += (size_t)snprintf(out_text + len, out_size - len, "%s%s",
		    index ? "," : "", text);
	}
}

static void
show_variable(enum variable variable)
{
	char rate[64], acl[ACL_MAX * (CIDR_TEXT_MAX + 1) + 8];
	const char *name = variable_names[variable];

	switch (variable) {
	case VAR_LOCAL_ADDRS: out("%s\t%s\n", name, relay.set.local_addrs); break;
	case VAR_FORCE_FROM: out("%s\t%s\n", name, relay.set.force_from); break;
	case VAR_DEBUG: out("%s\t%llu\n", name,
	    (unsigned long long)relay.set.debug); break;
	case VAR_DUMP_TRAFF: out("%s\t%llu\n", name,
	    (unsigned long long)relay.set.dump_traff); break;
	case VAR_IDLE_OUT: out("%s\t%llu\n", name,
	    (unsigned long long)relay.set.idle_out_s); break;
	case VAR_DEAD_COUNT: out("%s\t%llu\n", name,
	    (unsigned long long)relay.set.dead_count); break;
	case VAR_DATA_SIZE: out("%s\t%llu\n", name,
	    (unsigned long long)relay.set.data_size_B); break;
	case VAR_BANDWIDTH:
		format_rate(relay.limit_name, rate, sizeof(rate));
		out("%s\t%s\n", name, rate);
		break;
	case VAR_ALLOW:
		format_acl(relay.set.allow, relay.set.nallow, acl, sizeof(acl));
		out("%s\t%s\n", name, acl);
		break;
	case VAR_DENY:
		format_acl(relay.set.deny, relay.set.ndeny, acl, sizeof(acl));
		out("%s\t%s\n", name, acl);
		break;
	case NVARIABLES:
		break;
	}
}

static int
compare_forwarders(const void *a, const void *b)
{
	const struct forwarder *left = a, *right = b;

	return (left->number > right->number) - (left->number < right->number);
}

static void
show_all(void)
{
	struct forwarder sorted[FORWARDERS_MAX];
	char name[LIMIT_NAME_MAX + 8], rate[64];
	size_t index;

	for (index = 0; index < NVARIABLES; index++)
		show_variable((enum variable)index);
	out("forwarders:\n");
	memcpy(sorted, relay.forwarders, relay.nforwarders * sizeof(sorted[0]));
	qsort(sorted, relay.nforwarders, sizeof(sorted[0]), compare_forwarders);
	for (index = 0; index < relay.nforwarders; index++) {
		out("  forwarder %d %s:%s:%s", sorted[index].number,
		    sorted[index].spec.lport, sorted[index].remote_shown,
		    sorted[index].spec.remote.port);
		if (sorted[index].has_own_limit) {
			forwarder_limit_name(sorted[index].number, name,
			    sizeof(name));
			format_rate(name, rate, sizeof(rate));
			out(" (limit %s: %s)", name, rate);
		}
		out("\n");
	}
}

static void
nice_time(uint64_t seconds, char *buf, size_t size)
{
	uint64_t days = seconds / 86400, hours = seconds / 3600 % 24;
	uint64_t mins = seconds / 60 % 60, secs = seconds % 60;
	int len = 0;

	buf[0] = '\0';
	if (days)
		len += snprintf(buf + len, size - (size_t)len, "%llu days, ",
		    (unsigned long long)days);
	if (days || hours)
		len += snprintf(buf + len, size - (size_t)len, "%llu hours, ",
		    (unsigned long long)hours);
	if (days || hours || mins)
		len += snprintf(buf + len, size - (size_t)len, "%llu mins, ",
		    (unsigned long long)mins);
	snprintf(buf + len, size - (size_t)len, "%llu secs.",
	    (unsigned long long)secs);
}

static int
show_conn_visit(void *ctx, const struct conn_info *info)
{
	struct child *child = child_of(info);
	uint64_t now_ns = realtime_ns(), up_ns, idle_ns;
	char up[64], idle[64];
	char peer[4 * sizeof(info->peer)], remote[4 * sizeof(info->remote)];
	double up_s;

	(void)ctx;
	if (child == NULL)
		return 0;
	child->conn_id = info->id;
	up_ns = now_ns > info->start_unix_ns ? now_ns - info->start_unix_ns : 0;
	idle_ns = now_ns > info->last_unix_ns ? now_ns - info->last_unix_ns : 0;
	nice_time(up_ns / NS_PER_SEC, up, sizeof(up));
	nice_time(idle_ns / NS_PER_SEC, idle, sizeof(idle));
	/* The original divided by whole seconds up and crashed in the
	 * first one; a fraction of a second is a fine divisor. */
	up_s = (double)up_ns / 1e9;
	if (up_s < 0.001)
		up_s = 0.001;
	/* The relay wrote peer and remote: never raw to a terminal. */
	log_escape_field(peer, sizeof(peer), info->peer);
	log_escape_field(remote, sizeof(remote), info->remote);
	out("    %s -> %s (CONN%06u)\n", peer, remote, info->id);
	out("        Connection Up: %s Idle: %s\n", up, idle);
	out("        Bytes transferred: %llu in, %llu out.\n",
	    (unsigned long long)info->bytes[DIR_DOWN],
	    (unsigned long long)info->bytes[DIR_UP]);
	out("        Data rate       : %0.2f kB/s in, %0.2f kB/s out.\n",
	    (double)info->bytes[DIR_DOWN] / 1024.0 / up_s,
	    (double)info->bytes[DIR_UP] / 1024.0 / up_s);
	out("            (5 sec avg.): %0.2f kB/s in, %0.2f kB/s out.\n",
	    child_rate_kBps(child, 5, DIR_DOWN),
	    child_rate_kBps(child, 5, DIR_UP));
	out("            (1 min avg.): %0.2f kB/s in, %0.2f kB/s out.\n",
	    child_rate_kBps(child, 60, DIR_DOWN),
	    child_rate_kBps(child, 60, DIR_UP));
	return 0;
}

static void
show_stats(void)
{
	struct limit_info info;
	int rc;

	out("  Total connections: %zu\n", live_connections());
	rc = store_limit_get(relay.store, relay.limit_name, &info);
	if (rc)
		out("  Bandwidth: unknown (%s)\n", store_strerror(rc));
	else if (info.cfg.rate_Bps[DIR_UP] == 0 && info.cfg.rate_Bps[DIR_DOWN] == 0)
		out("  Bandwidth is not set.\n");
	else if (info.cfg.rate_Bps[DIR_UP] == info.cfg.rate_Bps[DIR_DOWN])
		out("  Bandwidth set to: %llu bytes / sec.\n",
		    (unsigned long long)info.cfg.rate_Bps[DIR_UP]);
	else
		out("  Bandwidth set to: %llu bytes / sec up, %llu down.\n",
		    (unsigned long long)info.cfg.rate_Bps[DIR_UP],
		    (unsigned long long)info.cfg.rate_Bps[DIR_DOWN]);
	out("  Limit: %s\n", relay.limit_name);
	out("  Forwarding connections for:\n");
	rc = store_conn_foreach(relay.store, show_conn_visit, NULL);
	if (rc)
		out("  unable to read the connections: %s\n", store_strerror(rc));
}

/* The prompt's commands, parsed by command_parse() (relay/command.c):
 * here only what depends on the running instance. */

static void
do_set_forwarder(const struct command *command)
{
	char why[512];
	int rc;

	if (!address_valid(command->spec.remote.host)) {
		if (relay.resolving.active) {
			out("  Still resolving for forwarder %d; forwarder %d not "
			    "set, try again.\n", relay.resolving.number,
			    command->forwarder);
			return;
		}
		rc = resolve_start(command->forwarder, &command->spec);
		if (rc) {
			out("  forwarder %d not set: unable to resolve %s: %s\n",
			    command->forwarder, command->spec.remote.host,
			    gai_strerror(rc));
			return;
		}
		out("  Resolving address (%s).....\n",
		    command->spec.remote.host);
		return;
	}
	if (forwarder_set(command->forwarder, &command->spec, why,
	    sizeof(why)) < 0) {
		out("  forwarder %d not set: %s\n", command->forwarder, why);
		return;
	}
	out("  forwarder %d set.\n", command->forwarder);
}

static void
do_set_limit(const struct command *command)
{
	struct forwarder *forwarder = forwarder_find(command->forwarder);
	char name[LIMIT_NAME_MAX + 8];
	int rc;

	if (forwarder == NULL) {
		out("  No such forwarder: %s\n", command->word);
		return;
	}
	forwarder_limit_name(command->forwarder, name, sizeof(name));
	if (!limit_name_valid(name)) {
		out("  Limit name too long: %s\n", name);
		return;
	}
	rc = limit_set_rate(name, relay.limit_name, command->value);
	if (rc) {
		out("  unable to set limit %s: %s\n", name, store_strerror(rc));
		return;
	}
	forwarder->has_own_limit = 1;
	forwarder->own_rate_Bps = command->value;
	out("  forwarder %d limit %s set to %llu bytes / sec (new connections).\n",
	    command->forwarder, name, (unsigned long long)command->value);
}

static void
do_set_variable(const struct command *command)
{
	int rc;

	switch (command->variable) {
	case VAR_LOCAL_ADDRS:
		snprintf(relay.set.local_addrs, sizeof(relay.set.local_addrs),
		    "%s", command->text);
		break;
	case VAR_FORCE_FROM:
		/* An address literal: always fits. */
		snprintf(relay.set.force_from, sizeof(relay.set.force_from),
		    "%.*s", (int)sizeof(relay.set.force_from) - 1,
		    command->text);
		break;
	case VAR_DEBUG: relay.set.debug = command->value; break;
	case VAR_DUMP_TRAFF: relay.set.dump_traff = command->value; break;
	case VAR_IDLE_OUT: relay.set.idle_out_s = command->value; break;
	case VAR_DEAD_COUNT: relay.set.dead_count = command->value; break;
	case VAR_DATA_SIZE: relay.set.data_size_B = command->value; break;
	case VAR_BANDWIDTH:
		rc = limit_set_rate(relay.limit_name, NULL, command->value);
		if (rc) {
			out("  unable to set bandwidth: %s\n",
			    store_strerror(rc));
			return;
		}
		break;
	case VAR_ALLOW:
		memcpy(relay.set.allow, command->acl,
		    command->nacl * sizeof(command->acl[0]));
		relay.set.nallow = command->nacl;
		break;
	case VAR_DENY:
		memcpy(relay.set.deny, command->acl,
		    command->nacl * sizeof(command->acl[0]));
		relay.set.ndeny = command->nacl;
		break;
	case NVARIABLES:
		return;
	}
	show_variable(command->variable);
}

static int
kill_visit(void *ctx, const struct conn_info *info)
{
	uint32_t *wanted = ctx;
	struct child *child;

	if (info->id != *wanted)
		return 0;
	child = child_of(info);
	if (child == NULL)
		return 0;
	child->conn_id = info->id;
	kill(child->pid, SIGTERM);
	child->term_sent = 1;
	*wanted = 0;
	return 1;
}

static void
do_kill_conn(const struct command *command)
{
	uint32_t wanted = command->conn_id;

	(void)store_conn_foreach(relay.store, kill_visit, &wanted);
	if (wanted)
		out("  No such connection: %s\n", command->word);
	else
		out("  %s: closing.\n", command->word);
}

static void
begin_stop(const char *why)
{
	if (relay.stopping)
		return;
	say(LOG_INFO, "%s, closing all connections.", why);
	relay.stopping = 1;
	relay.stop_deadline_ns = monotonic_ns() + STOP_GRACE_NS;
	kill_children();
}

static void
run_command(const char *line)
{
	struct command command;

	command_parse(line, &command);
	switch (command.kind) {
	case CMD_EMPTY: break;
	case CMD_REPLY: out("%s", command.reply); break;
	case CMD_SHOW_ALL: show_all(); break;
	case CMD_SHOW_STATS: show_stats(); break;
	case CMD_SHOW_VERSION: print_version(); break;
	case CMD_SHOW_VARIABLE: show_variable(command.variable); break;
	case CMD_SET_VARIABLE:
		do_set_variable(&command);
		spares_let_go();
		break;
	case CMD_SET_FORWARDER: do_set_forwarder(&command); break;
	case CMD_DELETE_FORWARDER:
		if (forwarder_delete(command.forwarder) < 0)
			out("  No such forwarder: %d\n", command.forwarder);
		else
			out("  forwarder %d deleted.\n", command.forwarder);
		break;
	case CMD_SET_LIMIT:
		do_set_limit(&command);
		spares_let_go();
		break;
	case CMD_KILL_ALL:
		out("  Closing %zu connections.\n", live_connections());
		kill_children();
		break;
	case CMD_KILL_CONN: do_kill_conn(&command); break;
	case CMD_QUIT: begin_stop("Quit"); break;
	case NCOMMAND_KINDS: break;
	}
}

/* ---- input ----------------------------------------------------------- */

static void
editor_restore(void)
{
	if (relay.editor.active) {
		tcsetattr(STDIN_FILENO, TCSANOW, &relay.editor.saved);
		relay.editor.active = 0;
	}
}

static int
editor_raw(void)
{
	struct termios raw = relay.editor.saved;

	/* Keys one by one, echoed by us; ISIG stays so ctrl-c is SIGINT. */
	raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
	raw.c_iflag &= ~(tcflag_t)(IXON | ICRNL);
	raw.c_cc[VMIN] = 1;
	raw.c_cc[VTIME] = 0;
	return tcsetattr(STDIN_FILENO, TCSANOW, &raw);
}

static void
editor_start(void)
{
	if (tcgetattr(STDIN_FILENO, &relay.editor.saved) < 0)
		return;
	if (editor_raw() < 0)
		return;
	relay.editor.active = 1;
	atexit(editor_restore);
}

static void
history_add(const char *line)
{
	struct editor *editor = &relay.editor;
	char *copy;

	if (*line == '\0' || (editor->nhistory &&
	    strcmp(editor->history[editor->nhistory - 1], line) == 0))
		return;
	copy = strdup(line);
	if (copy == NULL)
		return;
	if (editor->nhistory == HISTORY_MAX) {
		free(editor->history[0]);
		memmove(editor->history, editor->history + 1,
		    (HISTORY_MAX - 1) * sizeof(editor->history[0]));
		editor->nhistory--;
	}
	editor->history[editor->nhistory++] = copy;
}

static void
editor_load(const char *text)
{
	struct editor *editor = &relay.editor;

	snprintf(editor->line, sizeof(editor->line), "%s", text);
	editor->len = editor->cursor = strlen(editor->line);
}

static void
editor_enter(void)
{
	struct editor *editor = &relay.editor;
	char line[LINE_MAX_B];

	memcpy(line, editor->line, editor->len);
	line[editor->len] = '\0';
	editor->len = editor->cursor = 0;
	if (write(STDOUT_FILENO, "\r\n", 2) < 0)
		return;
	history_add(line);
	editor->browse = editor->nhistory;
	run_command(line);
	fflush(stdout);
}

static void
editor_escape(const char *sequence)
{
	struct editor *editor = &relay.editor;

	if (strcmp(sequence, "[A") == 0 || strcmp(sequence, "OA") == 0) {
		if (editor->browse > 0) {
			editor->browse--;
			editor_load(editor->history[editor->browse]);
		}
	} else if (strcmp(sequence, "[B") == 0 || strcmp(sequence, "OB") == 0) {
		if (editor->browse < editor->nhistory) {
			editor->browse++;
			editor_load(editor->browse < editor->nhistory ?
			    editor->history[editor->browse] : "");
		}
	} else if (strcmp(sequence, "[C") == 0 || strcmp(sequence, "OC") == 0) {
		if (editor->cursor < editor->len)
			editor->cursor++;
	} else if (strcmp(sequence, "[D") == 0 || strcmp(sequence, "OD") == 0) {
		if (editor->cursor > 0)
			editor->cursor--;
	} else if (strcmp(sequence, "[H") == 0 || strcmp(sequence, "OH") == 0 ||
	    strcmp(sequence, "[1~") == 0) {
		editor->cursor = 0;
	} else if (strcmp(sequence, "[F") == 0 || strcmp(sequence, "OF") == 0 ||
	    strcmp(sequence, "[4~") == 0) {
		editor->cursor = editor->len;
	} else if (strcmp(sequence, "[3~") == 0) {
		if (editor->cursor < editor->len) {
			memmove(editor->line + editor->cursor,
			    editor->line + editor->cursor + 1,
			    editor->len - editor->cursor - 1);
			editor->len--;
		}
	}
}

static void
editor_key(unsigned char key)
{
	struct editor *editor = &relay.editor;
	size_t start;

	if (editor->escape_len) {
		editor->escape[editor->escape_len - 1] = (char)key;
		editor->escape[editor->escape_len] = '\0';
		editor->escape_len++;
		/* A sequence ends with a letter or '~' after "[" or "O". */
		if (editor->escape_len > 2 && ((key >= 'A' && key <= 'Z') ||
		    (key >= 'a' && key <= 'z') || key == '~')) {
			editor_escape(editor->escape);
			editor->escape_len = 0;
		} else if (editor->escape_len >= sizeof(editor->escape) - 1) {
			editor->escape_len = 0;
		}
		return;
	}
	switch (key) {
	case '\r': case '\n':
		editor_enter();
		return;
	case 27:
		editor->escape_len = 1;
		return;
	case 1: editor->cursor = 0; break;			/* ^A */
	case 5: editor->cursor = editor->len; break;		/* ^E */
	case 2: if (editor->cursor) editor->cursor--; break;	/* ^B */
	case 6: if (editor->cursor < editor->len) editor->cursor++; break;
	case 4:							/* ^D */
		if (editor->len == 0) {
			if (write(STDOUT_FILENO, "\r\n", 2) < 0)
				break;
			begin_stop("End of input");
			return;
		}
		editor_escape("[3~");
		break;
	case 11: editor->len = editor->cursor; break;		/* ^K */
	case 21:						/* ^U */
		memmove(editor->line, editor->line + editor->cursor,
		    editor->len - editor->cursor);
		editor->len -= editor->cursor;
		editor->cursor = 0;
		break;
	case 23:						/* ^W */
		start = editor->cursor;
		while (start > 0 && editor->line[start - 1] == ' ')
			start--;
		while (start > 0 && editor->line[start - 1] != ' ')
			start--;
		memmove(editor->line + start, editor->line + editor->cursor,
		    editor->len - editor->cursor);
		editor->len -= editor->cursor - start;
		editor->cursor = start;
		break;
	case 12: break;						/* ^L */
	case 127: case 8:
		if (editor->cursor == 0)
			break;
		memmove(editor->line + editor->cursor - 1,
		    editor->line + editor->cursor, editor->len - editor->cursor);
		editor->cursor--;
		editor->len--;
		break;
	default:
		if (key < 32 || editor->len >= sizeof(editor->line) - 1)
			break;
		memmove(editor->line + editor->cursor + 1,
		    editor->line + editor->cursor, editor->len - editor->cursor);
		editor->line[editor->cursor++] = (char)key;
		editor->len++;
		break;
	}
}

static void
read_input(void)
{
	char buf[512], *newline;
	ssize_t got, index;

	got = read(STDIN_FILENO, buf, sizeof(buf));
	if (got < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (got <= 0) {
		/* End of input ends the prompt, not the forwarders: the
		 * original kept relaying (and `iprelay ... </dev/null &`
		 * is a way to run it). */
		relay.prompt = 0;
		if (relay.editor.active)
			begin_stop("End of input");
		return;
	}
	if (relay.editor.active) {
		/* One redraw for what arrived together (a paste, a test). */
		for (index = 0; index < got && relay.prompt && !relay.stopping;
		    index++)
			editor_key((unsigned char)buf[index]);
		if (relay.prompt && !relay.stopping)
			editor_redraw();
		return;
	}
	for (index = 0; index < got; index++) {
		if (relay.pending_len < sizeof(relay.pending) - 1)
			relay.pending[relay.pending_len++] = buf[index];
		if (buf[index] != '\n')
			continue;
		relay.pending[relay.pending_len] = '\0';
		newline = strchr(relay.pending, '\n');
		if (newline)
			*newline = '\0';
		relay.pending_len = 0;
		run_command(relay.pending);
		if (relay.stopping)
			return;
		prompt();
	}
}

/* ---- the loop -------------------------------------------------------- */

static void
on_tick(void)
{
	unsigned reaped;
	size_t index;
	int rc;

	relay.ticks++;
	for (index = 0; index < relay.nforwarders; index++)
		relay.forwarders[index].paused = 0;
	if (refiller_arbitrate(relay.refiller)) {
		rc = refiller_tick(relay.refiller, &reaped);
		if (rc && relay.ticks % 100 == 0)
			say(LOG_WARNING, "** refiller: %s", store_strerror(rc));
	}
	if (relay.ticks % 10 == 0)
		sample_children();
}

static void
on_signal(void)
{
	struct signalfd_siginfo info;

	while (read(relay.signal_fd, &info, sizeof(info)) == sizeof(info)) {
		switch (info.ssi_signo) {
		case SIGCHLD:
			reap_children();
			break;
		case SIGINT:
			begin_stop("Caught sig (INT)");
			break;
		case SIGTERM:
			begin_stop("Caught sig (TERM)");
			break;
		case SIGHUP:
			begin_stop("Caught sig (HUP)");
			break;
		case SIGCONT:
			/* Back from ctrl-z: the shell restored its own modes. */
			if (relay.editor.active && editor_raw() == 0)
				editor_redraw();
			break;
		default:
			if ((int)info.ssi_signo == SIGRTMIN)
				resolve_done();
			break;
		}
	}
}

/* Milliseconds until a forwarder's relay is due to be started ahead, for
 * poll; -1 when none is. */
static int
spare_wait_ms(void)
{
	uint64_t now_ns = monotonic_ns(), soonest_ns = UINT64_MAX;
	size_t index;

	for (index = 0; index < relay.nforwarders; index++)
		if (relay.forwarders[index].spare_due_ns &&
		    relay.forwarders[index].spare_due_ns < soonest_ns)
			soonest_ns = relay.forwarders[index].spare_due_ns;
	if (soonest_ns == UINT64_MAX)
		return -1;
	if (soonest_ns <= now_ns)
		return 0;
	return (int)((soonest_ns - now_ns + 999999) / 1000000);
}

static void
spares_due(void)
{
	uint64_t now_ns = monotonic_ns();
	size_t index;

	for (index = 0; index < relay.nforwarders; index++)
		if (relay.forwarders[index].spare_due_ns &&
		    relay.forwarders[index].spare_due_ns <= now_ns) {
			relay.forwarders[index].spare_due_ns = 0;
			spare_start(&relay.forwarders[index]);
		}
}

static int
run_loop(void)
{
	struct pollfd fds[3 + FORWARDERS_MAX * ADDRS_MAX];
	struct forwarder *owners[3 + FORWARDERS_MAX * ADDRS_MAX];
	uint64_t expirations;
	size_t nfds, index, slot;
	int ready;

	for (;;) {
		if (relay.stopping) {
			if (relay.nchildren == 0)
				return 0;
			if (monotonic_ns() >= relay.stop_deadline_ns) {
				/* Past the grace: a relay that did not end
				 * on TERM is killed and its record dropped. */
				for (index = 0; index < relay.nchildren; index++)
					kill(relay.children[index].pid, SIGKILL);
				relay.stop_deadline_ns = UINT64_MAX;
			}
		}
		nfds = 0;
		fds[nfds].fd = relay.signal_fd;
		fds[nfds++].events = POLLIN;
		fds[nfds].fd = relay.timer_fd;
		fds[nfds++].events = POLLIN;
		if (relay.prompt && !relay.stopping) {
			fds[nfds].fd = STDIN_FILENO;
			fds[nfds++].events = POLLIN;
		}
		if (!relay.stopping) {
			for (index = 0; index < relay.nforwarders; index++) {
				struct forwarder *forwarder = &relay.forwarders[index];

				if (forwarder->paused)
					continue;
				for (slot = 0; slot < forwarder->nlisten; slot++) {
					owners[nfds] = forwarder;
					fds[nfds].fd = forwarder->listen_fds[slot];
					fds[nfds++].events = POLLIN;
				}
			}
		}
		ready = poll(fds, nfds, spare_wait_ms());
		if (ready < 0) {
			if (errno == EINTR)
				continue;
			log_fatal(EXIT_SYSTEM, "unable to poll: %s",
			    strerror(errno));
		}
		spares_due();
		if (fds[0].revents)
			on_signal();
		if (fds[1].revents) {
			if (read(relay.timer_fd, &expirations,
			    sizeof(expirations)) > 0)
				on_tick();
		}
		/* A forwarder deleted by a command moves others in the
		 * array: take no listener events after one. */
		for (index = 2; index < nfds; index++) {
			if (!fds[index].revents)
				continue;
			if (fds[index].fd == STDIN_FILENO) {
				read_input();
				break;
			}
			if (!relay.stopping)
				accept_on(owners[index], fds[index].fd);
		}
	}
}

/* ---- start-up -------------------------------------------------------- */

static void
usage(const char *why, const char *word)
{
	char shown[600] = "";

	/* Escaped: a newline in the word must not make two lines. */
	if (word)
		log_escape(shown, sizeof(shown), word);
	if (why)
		fprintf(stderr, "iprelay: %s%s%s\n", why, word ? ": " : "",
		    shown);
	fprintf(stderr, "%s\n", USAGE);
	exit(EXIT_USAGE);
}

/* -a and -A: each a CIDR or a comma-separated list, added to the rest. */
static void
acl_option(int option, const char *word)
{
	struct cidr *list = option == 'a' ? relay.set.allow : relay.set.deny;
	size_t *count = option == 'a' ? &relay.set.nallow : &relay.set.ndeny;
	struct cidr more[ACL_MAX];
	char bad[CIDR_TEXT_MAX + 2];
	size_t nmore;

	if (strcmp(word, "none") == 0 || acl_parse(word, more, &nmore, bad,
	    sizeof(bad)) < 0)
		usage(option == 'a' ? "bad -a address or CIDR range" :
		    "bad -A address or CIDR range", strcmp(word, "none") ?
		    bad : word);
	if (*count + nmore > ACL_MAX) {
		snprintf(bad, sizeof(bad), "%d", ACL_MAX);
		usage(option == 'a' ? "too many -a entries, at most" :
		    "too many -A entries, at most", bad);
	}
	memcpy(list + *count, more, nmore * sizeof(more[0]));
	*count += nmore;
}

static int
executable(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISREG(st.st_mode) &&
	    access(path, X_OK) == 0;
}

/* iprelay-conn: beside this binary, else $IPRELAY_CONN, else ../sbin
 * beside it (the installed layout), else PATH. */
static int
find_conn(void)
{
	char self[PATH_MAX - 32], *slash, *path, *copy, *saveptr, *dir;
	ssize_t len;
	const char *env;

	len = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (len > 0) {
		self[len] = '\0';
		slash = strrchr(self, '/');
		if (slash) {
			*slash = '\0';
			snprintf(relay.conn_path, sizeof(relay.conn_path),
			    "%s/iprelay-conn", self);
			if (executable(relay.conn_path))
				return 0;
		}
	}
	env = getenv("IPRELAY_CONN");
	if (env && *env) {
		snprintf(relay.conn_path, sizeof(relay.conn_path), "%s", env);
		if (executable(relay.conn_path))
			return 0;
	}
	if (len > 0) {
		snprintf(relay.conn_path, sizeof(relay.conn_path),
		    "%s/../sbin/iprelay-conn", self);
		if (executable(relay.conn_path))
			return 0;
	}
	path = getenv("PATH");
	if (path == NULL || (copy = strdup(path)) == NULL)
		return -1;
	for (dir = strtok_r(copy, ":", &saveptr); dir;
	    dir = strtok_r(NULL, ":", &saveptr)) {
		snprintf(relay.conn_path, sizeof(relay.conn_path),
		    "%s/iprelay-conn", dir);
		if (executable(relay.conn_path)) {
			free(copy);
			return 0;
		}
	}
	free(copy);
	return -1;
}

static void
setup_signals(void)
{
	struct itimerspec every = {
		.it_interval = { 0, (long)REFILLER_TICK_NS },
		.it_value = { 0, (long)REFILLER_TICK_NS },
	};
	sigset_t mask;

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGRTMIN);	/* a set forwarder name resolved */
	sigaddset(&mask, SIGCONT);	/* still continues the process */
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
		log_fatal(EXIT_SYSTEM, "unable to block signals: %s",
		    strerror(errno));
	relay.signal_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (relay.signal_fd < 0)
		log_fatal(EXIT_SYSTEM, "unable to create a signalfd: %s",
		    strerror(errno));
	relay.timer_fd = timerfd_create(CLOCK_MONOTONIC,
	    TFD_NONBLOCK | TFD_CLOEXEC);
	if (relay.timer_fd < 0 ||
	    timerfd_settime(relay.timer_fd, 0, &every, NULL) < 0)
		log_fatal(EXIT_SYSTEM, "unable to create a timer: %s",
		    strerror(errno));
}

/* The store and the refiller: opened in the process that uses them,
 * after any fork. */
static void
open_store(uint64_t bandwidth_Bps)
{
	char resolved[PATH_MAX];
	int rc;

	rc = store_open(&relay.store, relay.state_dir, 0);
	if (rc)
		log_fatal(store_exit_code(rc),
		    "unable to open the store in %s: %s", relay.state_dir,
		    store_strerror(rc));
	/* Relays get an absolute path: a daemon runs from /. */
	if (realpath(relay.state_dir, resolved))
		snprintf(relay.state_dir, sizeof(relay.state_dir), "%s",
		    resolved);
	rc = limit_set_rate(relay.limit_name, NULL, bandwidth_Bps);
	if (rc)
		log_fatal(rc == EINVAL ? EXIT_USAGE : EXIT_SYSTEM,
		    "unable to set limit %s: %s", relay.limit_name,
		    store_strerror(rc));
	rc = refiller_create(&relay.refiller, relay.store, relay.state_dir,
	    REFILLER_EMBEDDED);
	if (rc)
		log_fatal(rc == STATEDIR_EREFUSED ? EXIT_USAGE : EXIT_SYSTEM,
		    "unable to open the refiller locks in %s: %s",
		    relay.state_dir, store_strerror(rc));
}

/* The pid file: opened without following a symlink, refused unless it is
 * a regular file of ours with one link (a dir another user may write to
 * can hold anything under that name), locked, and only then truncated and
 * written.  The lock is held while we run: a second iprelay given the
 * same file is refused instead of overwriting the first one's pid. */
static void
write_pid_file(void)
{
	const char *path = relay.pid_file;
	struct stat file_stat;
	char line[32];
	int fd, len;

	if (path == NULL)
		return;
	fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK |
	    O_CLOEXEC, 0644);
	if (fd < 0 && errno == ELOOP)
		log_fatal(EXIT_USAGE, "unable to write the pid file %s: it is "
		    "a symbolic link (refused: give the file itself)", path);
	if (fd < 0)
		log_fatal(EXIT_SYSTEM, "unable to write the pid file %s: %s",
		    path, strerror(errno));
	if (fstat(fd, &file_stat) < 0)
		log_fatal(EXIT_SYSTEM, "unable to write the pid file %s: %s",
		    path, strerror(errno));
	if (!S_ISREG(file_stat.st_mode))
		log_fatal(EXIT_USAGE, "unable to write the pid file %s: not a "
		    "regular file (refused)", path);
	if (file_stat.st_uid != geteuid())
		log_fatal(EXIT_USAGE, "unable to write the pid file %s: owned "
		    "by uid %lu, not by us (uid %lu; refused)", path,
		    (unsigned long)file_stat.st_uid, (unsigned long)geteuid());
	if (file_stat.st_nlink != 1)
		log_fatal(EXIT_USAGE, "unable to write the pid file %s: it has "
		    "%lu links (refused: a hard link may be another file)",
		    path, (unsigned long)file_stat.st_nlink);
	if (flock(fd, LOCK_EX | LOCK_NB) < 0)
		log_fatal(errno == EWOULDBLOCK ? EXIT_USAGE : EXIT_SYSTEM,
		    "unable to lock the pid file %s: %s", path,
		    errno == EWOULDBLOCK ? "another iprelay holds it" :
		    strerror(errno));
	len = snprintf(line, sizeof(line), "%d\n", (int)getpid());
	if (ftruncate(fd, 0) < 0 || pwrite(fd, line, (size_t)len, 0) != len)
		log_fatal(EXIT_SYSTEM, "unable to write the pid file %s: %s",
		    path, strerror(errno));
	relay.pid_fd = fd;
}

/* Removed only while the name is still the file we wrote. */
static void
remove_pid_file(void)
{
	struct stat held, named;

	if (relay.pid_fd < 0)
		return;
	if (fstat(relay.pid_fd, &held) == 0 &&
	    lstat(relay.pid_file, &named) == 0 &&
	    held.st_dev == named.st_dev && held.st_ino == named.st_ino)
		unlink(relay.pid_file);
	close(relay.pid_fd);
	relay.pid_fd = -1;
}

/* Fork into the background.  The parent waits until the daemon has its
 * store and pid file (or failed), so every error reaches the terminal and
 * the exit status; the daemon then drops the terminal. */
static void
daemonise(uint64_t bandwidth_Bps)
{
	int ready[2], null_fd;
	char status = 0;
	pid_t pid;
	int wstatus;

	if (pipe2(ready, O_CLOEXEC) < 0)
		log_fatal(EXIT_SYSTEM, "unable to create a pipe: %s",
		    strerror(errno));
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		log_fatal(EXIT_SYSTEM, "unable to fork: %s", strerror(errno));
	if (pid > 0) {
		close(ready[1]);
		if (read(ready[0], &status, 1) == 1)
			exit(0);
		if (waitpid(pid, &wstatus, 0) == pid && WIFEXITED(wstatus))
			exit(WEXITSTATUS(wstatus));
		exit(EXIT_SYSTEM);
	}
	close(ready[0]);
	if (setsid() < 0)
		log_fatal(EXIT_SYSTEM, "unable to setsid: %s", strerror(errno));
	if (chdir("/") < 0)
		log_fatal(EXIT_SYSTEM, "unable to chdir to /: %s",
		    strerror(errno));
	open_store(bandwidth_Bps);
	write_pid_file();
	setup_signals();
	null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null_fd < 0)
		log_fatal(EXIT_SYSTEM, "unable to open /dev/null: %s",
		    strerror(errno));
	/* From here on every message goes to the journal or syslog. */
	log_open("iprelay", LOG_TO_SYSTEM);
	dup2(null_fd, STDIN_FILENO);
	dup2(null_fd, STDOUT_FILENO);
	dup2(null_fd, STDERR_FILENO);
	close(null_fd);
	if (write(ready[1], &status, 1) < 0)
		log_warn("unable to tell the parent we are ready: %s",
		    strerror(errno));
	close(ready[1]);
}

static void
finish(void)
{
	char name[LIMIT_NAME_MAX + 8];
	uint32_t nconns;
	size_t index;

	/* Per-forwarder limits belong to this session; the instance limit
	 * stays (iprelay-limit may have given it a parent or a burst). */
	for (index = 0; index < relay.nforwarders; index++) {
		if (!relay.forwarders[index].has_own_limit)
			continue;
		forwarder_limit_name(relay.forwarders[index].number, name,
		    sizeof(name));
		(void)store_limit_del(relay.store, name, &nconns);
	}
	for (index = 0; index < relay.nforwarders; index++)
		forwarder_close_listeners(&relay.forwarders[index]);
	refiller_destroy(relay.refiller);
	store_close(relay.store);
	remove_pid_file();
	if (relay.daemonise)
		log_line(LOG_INFO, "stopped");
}

int
main(int argc, char **argv)
{
	struct proxyspec specs[FORWARDERS_MAX];
	const char *state_option = NULL, *name_option = NULL;
	uint64_t bandwidth_Bps = 0;
	char why[512];
	int option, have_bandwidth = 0, nspecs, index;

	log_open("iprelay", LOG_TO_STDERR);
	relay.pid_fd = -1;
	opterr = 0;
	while ((option = getopt(argc, argv, ":db:hm:n:p:S:a:A:")) != -1) {
		switch (option) {
		case 'h':
			printf("%s\n", USAGE);
			return 0;
		case 'd':
			relay.daemonise = 1;
			break;
		case 'b':
			if (parse_rate(optarg, &bandwidth_Bps) < 0)
				usage("bad bandwidth (bytes/s)", optarg);
			have_bandwidth = 1;
			break;
		case 'm':
			if (parse_uint(optarg, 1, 1000000, &relay.max_conns) < 0)
				usage("bad connection maximum (1-1000000)",
				    optarg);
			break;
		case 'n':
			if (!limit_name_valid(optarg) ||
			    strlen(optarg) > LIMIT_NAME_MAX - 5)
				usage("bad limit name (letters, digits, _.-, "
				    "at most 59)", optarg);
			name_option = optarg;
			break;
		case 'p':
			relay.pid_file = optarg;
			break;
		case 'S':
			state_option = optarg;
			break;
		case 'a':
		case 'A':
			acl_option(option, optarg);
			break;
		case ':':
			snprintf(why, sizeof(why), "-%c", optopt);
			usage("option needs a value", why);
			break;
		default:
			snprintf(why, sizeof(why), "-%c", optopt);
			usage("unknown option", why);
			break;
		}
	}
	nspecs = argc - optind;
	if (nspecs > 100)
		usage("too many proxyspecs (at most 100: forwarders 99 to 0)",
		    NULL);
	if (nspecs == 0 && (relay.daemonise || have_bandwidth))
		usage("-d and -b need a proxyspec "
		    "(local_port:remote_host:remote_port)", NULL);
	for (index = 0; index < nspecs; index++)
		if (parse_proxyspec(argv[optind + index], &specs[index]) < 0)
			usage("bad proxyspec (local_port:remote_host:"
			    "remote_port)", argv[optind + index]);
	if (store_dir_resolve(state_option, relay.state_dir,
	    sizeof(relay.state_dir)) != 0)
		log_fatal(EXIT_USAGE, "unable to find a state dir: set -S DIR "
		    "or IPRELAY_STATE_DIR");
	if (name_option)
		snprintf(relay.limit_name, sizeof(relay.limit_name), "%s",
		    name_option);
	else if (nspecs)
		snprintf(relay.limit_name, sizeof(relay.limit_name),
		    "iprelay-%s", specs[0].lport);
	else
		snprintf(relay.limit_name, sizeof(relay.limit_name),
		    "iprelay-%d", (int)getpid());
	if (find_conn() < 0)
		log_fatal(EXIT_SYSTEM, "unable to find iprelay-conn (beside "
		    "iprelay, $IPRELAY_CONN, ../sbin or PATH)");

	print_version();
	/* Bind before any fork so a busy port fails here, at once. */
	for (index = 0; index < nspecs; index++) {
		int number = 99 - index;

		if (forwarder_set(number, &specs[index], why, sizeof(why)) < 0)
			log_fatal(EXIT_SYSTEM, "forwarder %d: %s", number, why);
		fprintf(stderr, "Using command line parameters:\n"
		    "  local_port\t%s\n  remote_addrs\t%s\n  remote_port\t%s\n"
		    "  bandwidth\t%llu\n  forwarder %d set.\n\n",
		    specs[index].lport, forwarder_find(number)->remote_shown,
		    specs[index].remote.port,
		    (unsigned long long)bandwidth_Bps, number);
	}
	if (relay.daemonise) {
		daemonise(bandwidth_Bps);
		log_line(LOG_INFO, "started: limit %s at %llu bytes/s, %d "
		    "forwarders", relay.limit_name,
		    (unsigned long long)bandwidth_Bps, nspecs);
	} else {
		open_store(bandwidth_Bps);
		write_pid_file();
		setup_signals();
		relay.prompt = 1;
		relay.stdin_tty = isatty(STDIN_FILENO);
		if (relay.stdin_tty && tcgetpgrp(STDIN_FILENO) == getpgrp())
			editor_start();
		else if (relay.stdin_tty)
			relay.prompt = 0;	/* in the background */
		relay.editor.browse = 0;
		prompt();
	}
	relay.exit_code = run_loop();
	editor_restore();
	finish();
	return relay.exit_code;
}
