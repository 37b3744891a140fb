/*
 * iprelay's children: spawning one iprelay-conn per connection (the socket
 * on fd 0 and 1, as inetd gives it), the relays started ahead, reporting
 * their opens and ends at the prompt, reaping them, and sampling their
 * byte counts for show stats.
 *
 * The open and close lines both name the relay's CONN id: the relay
 * says it over its log pipe as soon as it has registered (relay_log_line),
 * and the open line waits for it, OPEN_WAIT_NS at most (a relay that never
 * registers still gets its line, "no id").
 *
 * Relays started ahead: a forwarder that has had a connection keeps one
 * relay started ahead (iprelay-conn -W): exec, linking and opening the
 * store are then done before the next client connects, which only waits
 * for its socket to be passed over (SCM_RIGHTS).  -m counts it: a
 * forwarder never has more than max iprelay-conn processes.  A command
 * that may change what a relay is started with lets the waiting ones go
 * (end of file on their socket: they exit 0).
 */
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "iprelay.h"

extern char **environ;

#define OPEN_WAIT_NS	(2 * NS_PER_SEC)

static void
say_open(struct child *child)
{
	char id_text[24] = "no id";

	if (child->open_said)
		return;
	child->open_said = 1;
	if (child->conn_id)
		snprintf(id_text, sizeof(id_text), "CONN%06u", child->conn_id);
	say(LOG_INFO, "- Received connect from %s (forwarder %d, %s)",
	    child->peer, child->open_number, id_text);
}

/* Accepted (spawned or handed to a relay started ahead): its open line
 * is due, once its id is known. */
void
child_opened(struct child *child, int number)
{
	/* A daemon's relays log their own open and close lines. */
	child->open_said = !relay.set.debug || relay.daemonise;
	child->open_number = number;
	child->open_due_ns = monotonic_ns() + OPEN_WAIT_NS;
	if (child->conn_id)
		say_open(child);
}

/* Each tick: the open lines whose relays did not say their id in time. */
void
children_open_due(void)
{
	uint64_t now_ns = monotonic_ns();
	size_t index;

	for (index = 0; index < relay.nchildren; index++)
		if (!relay.children[index].open_said &&
		    !relay.children[index].ahead &&
		    now_ns >= relay.children[index].open_due_ns)
			say_open(&relay.children[index]);
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

void
spares_let_go(void)
{
	size_t index;

	for (index = 0; index < relay.nchildren; index++)
		if (relay.children[index].ahead_fd >= 0)
			spare_let_go(&relay.children[index]);
}

/* Our child that registered this record: same pid, and the same start
 * time, so a dead relay's record naming a reused pid is not taken. */
struct child *
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

struct child *
child_add(pid_t pid, int number, const char *peer)
{
	struct child *grown;
	struct forwarder *forwarder;

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
	/* The limit spawn_conn gave it (forwarder_limit_for). */
	forwarder = forwarder_find(number);
	grown->own_limit = forwarder && forwarder->has_own_limit ? number : -1;
	snprintf(grown->peer, sizeof(grown->peer), "%s", peer);
	return grown;
}

/* With ahead, fd is our end's peer of a socketpair and the relay is
 * started with -W, to be passed its client later (hand_to_spare). */
int
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
	 * client: our pipe for its log lines (relay_log_open), else
	 * /dev/null.  Our own descriptors are close-on-exec. */
	if ((rc = posix_spawn_file_actions_adddup2(&actions, client_fd, 0)) ||
	    (rc = posix_spawn_file_actions_adddup2(&actions, client_fd, 1)) ||
	    (rc = relay.log_fds[1] >= 0 ?
	    posix_spawn_file_actions_adddup2(&actions, relay.log_fds[1], 2) :
	    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null",
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
	rc = posix_spawn(pid, relay.conn_path, &actions, &attr, argv,
	    relay.relay_env ? relay.relay_env : environ);
destroy_attr:
	posix_spawnattr_destroy(&attr);
destroy_actions:
	posix_spawn_file_actions_destroy(&actions);
	return rc;
}

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
struct child *
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

size_t
live_connections(void)
{
	size_t index, count = 0;

	for (index = 0; index < relay.nchildren; index++)
		count += !relay.children[index].ahead;
	return count;
}

/* At the prompt, each relay's fd 2 is a pipe to us and its log lines are
 * copied there (IPRELAY_LOG_COPY_FD, common/log.c), besides the journal:
 * a relay's own reason for its end then reaches the prompt even on a
 * machine without a journal or syslog.  A daemon's relays log as before. */
void
relay_log_open(void)
{
	static char copy[] = "IPRELAY_LOG_COPY_FD=2";
	size_t count = 0, index, kept = 0;

	if (pipe2(relay.log_fds, O_CLOEXEC | O_NONBLOCK) < 0) {
		relay.log_fds[0] = relay.log_fds[1] = -1;
		return;
	}
	while (environ[count])
		count++;
	relay.relay_env = calloc(count + 2, sizeof(char *));
	if (relay.relay_env == NULL)
		return;
	for (index = 0; index < count; index++)
		if (strncmp(environ[index], "IPRELAY_LOG_COPY_FD=", 20) != 0)
			relay.relay_env[kept++] = environ[index];
	relay.relay_env[kept++] = copy;
	relay.relay_env[kept] = NULL;
}

/* One line "PID PRIORITY TEXT": the relay's id from its first line that
 * names it, its last warning or error kept as its reason. */
static void
relay_log_line(char *line)
{
	struct child *child;
	char *text;
	long pid, priority;
	unsigned id;

	pid = strtol(line, &text, 10);
	if (*text != ' ')
		return;
	priority = strtol(text + 1, &text, 10);
	if (*text != ' ' || (child = child_find((pid_t)pid)) == NULL)
		return;
	text++;
	if (sscanf(text, "CONN%6u", &id) == 1 && child->conn_id == 0) {
		child->conn_id = id;
		if (!child->ahead)
			say_open(child);
	}
	if (priority > LOG_WARNING)
		return;
	/* The close line names the connection already. */
	if (strncmp(text, "CONN", 4) == 0 && strlen(text) > 12 &&
	    text[10] == ':' && text[11] == ' ')
		text += 12;
	snprintf(child->reason, sizeof(child->reason), "%s", text);
}

void
relay_log_read(void)
{
	char *start, *newline;
	ssize_t got;

	if (relay.log_fds[0] < 0)
		return;
	for (;;) {
		got = read(relay.log_fds[0], relay.log_buf + relay.log_len,
		    sizeof(relay.log_buf) - 1 - relay.log_len);
		if (got <= 0)
			return;
		relay.log_len += (size_t)got;
		start = relay.log_buf;
		while ((newline = memchr(start, '\n', relay.log_len -
		    (size_t)(start - relay.log_buf)))) {
			*newline = '\0';
			relay_log_line(start);
			start = newline + 1;
		}
		relay.log_len -= (size_t)(start - relay.log_buf);
		memmove(relay.log_buf, start, relay.log_len);
		/* A line longer than the buffer is dropped. */
		if (relay.log_len == sizeof(relay.log_buf) - 1)
			relay.log_len = 0;
	}
}

void
reap_children(void)
{
	struct forwarder *forwarder;
	struct child *child;
	char status_text[400] = "", id_text[24];
	pid_t pid;
	int status;

	/* What the relays wrote before they ended, first: read again for
	 * each one reaped, since it may have written its reason and ended
	 * after the read (a CI run printed caps.t's refusal without it). */
	relay_log_read();
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		relay_log_read();
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
		if (WIFEXITED(status) && WEXITSTATUS(status) != 0 &&
		    child->reason[0])
			/* The relay's own reason: refused, unreachable... */
			snprintf(status_text, sizeof(status_text), ", exit %d: %s",
			    WEXITSTATUS(status), child->reason);
		else if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
			snprintf(status_text, sizeof(status_text), ", exit %d%s",
			    WEXITSTATUS(status),
			    WEXITSTATUS(status) == EXIT_TIMEOUT ? ": timeout" :
			    WEXITSTATUS(status) == EXIT_POLICY ?
			    ": refused by allow/deny" :
			    WEXITSTATUS(status) == EXIT_CAPS ?
			    ": refused over a cap on connections" :
			    WEXITSTATUS(status) == EXIT_SYSTEM ?
			    ": no connection to the remote host or system failure" :
			    "");
		else if (WIFSIGNALED(status) && WTERMSIG(status) != SIGTERM)
			snprintf(status_text, sizeof(status_text), ", signal %d",
			    WTERMSIG(status));
		else
			status_text[0] = '\0';
		/* One form, with the id whenever the relay got one (a
		 * client refused by allow/deny never registers). */
		if (!relay.stopping)
			say_open(child);
		if (relay.set.debug && !relay.stopping && !relay.daemonise) {
			if (child->conn_id)
				snprintf(id_text, sizeof(id_text), "CONN%06u",
				    child->conn_id);
			else
				snprintf(id_text, sizeof(id_text), "no id");
			say(LOG_INFO, "- Connection from %s closed (%s%s).",
			    child->peer, id_text, status_text);
		}
		if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL &&
		    child->conn_id)
			(void)store_conn_unregister(relay.store, child->conn_id);
		*child = relay.children[--relay.nchildren];
		/* A deleted forwarder's own limit goes with its last relay. */
		kept_limits_sweep();
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

void
sample_children(void)
{
	if (relay.nchildren == 0)
		return;
	(void)store_conn_foreach(relay.store, sample_visit, NULL);
}

void
kill_children(void)
{
	size_t index;

	for (index = 0; index < relay.nchildren; index++) {
		kill(relay.children[index].pid, SIGTERM);
		relay.children[index].term_sent = 1;
	}
}

/* Milliseconds until a forwarder's relay is due to be started ahead, for
 * poll; -1 when none is. */
int
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

void
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
