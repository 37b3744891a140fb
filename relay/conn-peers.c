/*
 * iprelay-conn's two peers: the client socket, found from how we were
 * launched (systemd's fd 3, inetd's or a UCSPI launcher's fds 0 and 1,
 * or passed by iprelay to a relay started ahead with -W) and its peer's
 * name; the -a/-A access check on it; and the connect to the remote,
 * bounded by -c and by a stop signal.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "conn.h"
#include "log.h"

int
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

void
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

/* -W: iprelay starts a relay before its client connects, so that exec and
 * start-up are not on the client's path.  fd 0 (and 1) is then a unix
 * socket on which iprelay passes the client's socket (SCM_RIGHTS) once
 * one connects; end of file there means iprelay no longer needs us. */
void
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

/* -a and -A: a refused client is closed before anything else is done
 * for it (no store record, no connection to the remote).  The address is
 * the socket's own, not the launcher's environment. */
void
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
int
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
