/*
 * What the parts of iprelay (the classic command) share: its limits, the
 * forwarder, child and editor records, the one instance state `relay`
 * (defined in relay/iprelay.c), and the functions each part offers the
 * others.  The parts:
 *   iprelay.c    the program's main, options, start-up, daemon mode, end
 *   loop.c       the poll loop, signals, the embedded refiller's glue
 *   forwarder.c  forwarders, their sockets and limits; accepting clients
 *   spawn.c      spawning relays, the relays started ahead, reaping
 *   execute.c    what the prompt's commands do (parsed in command.c)
 *   output.c     answers, events, the prompt, the show commands
 *   editor.c     the terminal's line editor and piped input
 */
#ifndef IPRELAY_IPRELAY_H
#define IPRELAY_IPRELAY_H

#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <termios.h>

#include "command.h"
#include "log.h"
#include "parse.h"
#include "refiller.h"
#include "store.h"
#include "version.h"

#define VERSION		IPRELAY_VERSION
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

struct forwarder {
	int number;			/* 99 for the first spec, as before */
	struct proxyspec spec;
	char remote_shown[INET6_ADDRSTRLEN];	/* resolved, for show all */
	unsigned families;		/* FAMILY_V4 | FAMILY_V6 it resolved to */
	int listen_fds[ADDRS_MAX];
	size_t nlisten;
	unsigned nconns;		/* live children */
	uint64_t own_rate_Bps;		/* set limit N RATE; 0 = none set */
	int has_own_limit;
	int own_limit_fd;		/* its lock (relay/limits.c); -1 none */
	int paused;			/* accept failed with EMFILE: wait a tick */
	uint64_t spare_due_ns;		/* CLOCK_MONOTONIC: start one ahead; 0 = no */
};

#define FAMILY_V4	0x1u
#define FAMILY_V6	0x2u

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
	int own_limit;			/* drawing from forwarder N's own limit,
					 * N; -1 not */
	char reason[256];		/* its last warning or error line */
	int open_number;		/* its forwarder, for the open line */
	int open_said;			/* the open line printed, or none due */
	uint64_t open_due_ns;		/* printed then without its id */
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
	char escape[16];		/* a key's, or a cursor report's */
	size_t escape_len;
	char *history[HISTORY_MAX];
	size_t nhistory;
	size_t browse;			/* == nhistory: editing a new line */
	size_t width;			/* the terminal's columns */
	size_t scroll;			/* the first character shown */
	size_t column;			/* the cursor's, as last drawn */
	size_t drawn;			/* the columns the row took then */
	size_t asked_column;		/* that, when the width shrank past it */
	int asked;			/* its position asked for (resized) */
};

struct iprelay {
	int daemonise;
	int prompt;			/* reading commands from stdin */
	int stdin_tty;
	char limit_name[LIMIT_NAME_MAX + 1];
	const char *name_option;	/* -n; NULL: a name made for us */
	const char *first_port;		/* the first proxyspec's; NULL none */
	int limit_fd;			/* its lock file (relay/limits.c) */
	int limit_made;			/* made for us: deleted at the end */
	int log_fds[2];			/* the relays' log lines; -1 none */
	char log_buf[4096];
	size_t log_len;
	char **relay_env;		/* environ + IPRELAY_LOG_COPY_FD */
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
	int pending_nul, pending_long;	/* that line is refused at its end */
	struct editor editor;
	struct {			/* set forwarder, resolving meanwhile */
		int active;
		int number;
		struct proxyspec spec;
		struct addrinfo hints;
		struct gaicb request;
	} resolving;
};

extern struct iprelay relay;

/* relay/iprelay.c */
void
daemonise(uint64_t bandwidth_Bps);

/* relay/limits.c */
void
limits_choose(const char *name_option, const char *first_port);

int
forwarder_limit_take(struct forwarder *forwarder, const char *name,
    char *why, size_t why_size);

void
forwarder_limit_drop(struct forwarder *forwarder);

void
kept_limits_sweep(void);

void
limits_release(void);

/* relay/loop.c */
int
run_loop(void);

void
setup_signals(void);

void
open_store(uint64_t bandwidth_Bps);

/* relay/forwarder.c */
int
address_is_any(const char *word);

struct forwarder *
forwarder_find(int number);

void
forwarder_limit_name(int number, char *name, size_t size);

const char *
forwarder_limit_for(int number);

void
forwarder_close_listeners(struct forwarder *forwarder);

int
forwarders_listen(char *why, size_t why_size);

int
resolve_start(int number, const struct proxyspec *spec);

void
resolve_done(void);

/* set force_from SOURCE: refused (1, the line said) when no forwarder's
 * remote has an address of SOURCE's family; a warning for each forwarder
 * that has none, when others have. */
int
force_from_refused(const char *source);

int
forwarder_set(int number, const struct proxyspec *spec, char *why,
    size_t why_size);

int
forwarder_delete(int number);

void
accept_on(struct forwarder *forwarder, int listen_fd);

/* relay/spawn.c */
void
spares_let_go(void);

struct child *
child_of(const struct conn_info *info);

struct child *
child_add(pid_t pid, int number, const char *peer);

int
spawn_conn(struct forwarder *forwarder, int client_fd, int ahead, pid_t *pid);

struct child *
hand_to_spare(struct forwarder *forwarder, int client_fd, const char *peer);

size_t
live_connections(void);

void
reap_children(void);

void
child_opened(struct child *child, int number);

void
children_open_due(void);

void
sample_children(void);

void
kill_children(void);

int
spare_wait_ms(void);

void
spares_due(void);

void
relay_log_open(void);

void
relay_log_read(void);

/* relay/execute.c */
int
limit_set_rate(const char *name, const char *parent, uint64_t rate_Bps);

void
begin_stop(const char *why);

void
run_command(const char *line);

/* relay/output.c */
/* Command output: stdout. */
void
out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* An event: the terminal when interactive, the log otherwise. */
void
say(int priority, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void
prompt(void);

void
print_version(void);

void
format_sockaddr(const struct sockaddr *addr, char *buf, size_t size);

void
format_remote(const struct hostport *remote, char *buf, size_t size);

void
show_variable(enum variable variable);

void
show_all(void);

void
show_stats(void);

/* relay/editor.c */
void
editor_redraw(void);

void
editor_restore(void);

int
editor_raw(void);

void
editor_start(void);

void
editor_resize(void);

void
editor_resized(void);

void
read_input(void);

#endif
