/*
 * shaperd's metrics over HTTP/1.x (shaperd --metrics ADDR:PORT, or a
 * listening socket passed by systemd): GET or HEAD /metrics answers the
 * text of exposition.c, every other path 404.
 *
 * It runs inside shaperd's poll loop, so nothing here may block or take
 * long: every socket is non-blocking; a request is read into a bounded
 * buffer; its answer is made at once, from figures copied out of the store
 * before the first byte is written, and then written as the client takes
 * it.  A client that stops reading or sending keeps only its own buffer,
 * until its deadline.  At most METRICS_CLIENTS_MAX clients are served at
 * once; more wait in the listen backlog.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"
#include "parse.h"

#define REQUEST_MAX	8192		/* bytes of request line and headers */
#define REQUEST_NS	(5ULL * NS_PER_SEC)	/* to send the whole request */
#define STALL_NS	(10ULL * NS_PER_SEC)	/* answer: no byte taken */
#define CLIENT_NS	(60ULL * NS_PER_SEC)	/* any client, in all */
#define LINGER_NS	(1ULL * NS_PER_SEC)	/* for the client's close */
#define BACKLOG		16
/* The kernel's send buffer per client, fixed (it doubles the figure):
 * autotuned, it grew to take a whole answer a stuck client never read,
 * up to 4 MiB a client.  Past it an answer waits in our own buffer. */
#define CLIENT_SNDBUF_B	(64 * 1024)

enum client_state { CLIENT_FREE, CLIENT_READING, CLIENT_WRITING,
	CLIENT_CLOSING };

struct client {
	enum client_state state;
	int fd;
	uint64_t accepted_ns;
	uint64_t deadline_ns;
	char request[REQUEST_MAX];
	size_t request_len;
	char *answer;		/* malloc'd: head and body */
	size_t answer_len, answer_sent;
};

struct metrics {
	struct store *store;
	const struct metrics_process *process;
	int listeners[METRICS_LISTENERS_MAX];
	size_t nlisteners;
	struct client clients[METRICS_CLIENTS_MAX];
	/* What each pollfd of the last metrics_pollfds() stands for:
	 * -1 - i for listener i, else client i. */
	int poll_owner[METRICS_POLLFDS_MAX];
};

int
metrics_create(struct metrics **out, struct store *store,
    const struct metrics_process *process)
{
	struct metrics *metrics;
	size_t i;

	if ((metrics = calloc(1, sizeof(*metrics))) == NULL)
		return ENOMEM;
	metrics->store = store;
	metrics->process = process;
	for (i = 0; i < METRICS_CLIENTS_MAX; i++)
		metrics->clients[i].fd = -1;
	*out = metrics;
	return 0;
}

static void
client_close(struct client *client)
{
	if (client->fd >= 0)
		close(client->fd);
	free(client->answer);
	client->answer = NULL;
	client->fd = -1;
	client->state = CLIENT_FREE;
}

void
metrics_destroy(struct metrics *metrics)
{
	size_t i;

	if (metrics == NULL)
		return;
	for (i = 0; i < METRICS_CLIENTS_MAX; i++)
		client_close(&metrics->clients[i]);
	for (i = 0; i < metrics->nlisteners; i++)
		close(metrics->listeners[i]);
	free(metrics);
}

/* ADDR:PORT: a numeric IPv4 address, or an IPv6 one in brackets. */
static int
listen_addr(const char *addr_port, struct sockaddr_storage *addr,
    socklen_t *addr_len)
{
	struct hostport where;
	struct sockaddr_in6 *addr6 = (struct sockaddr_in6 *)addr;
	struct sockaddr_in *addr4 = (struct sockaddr_in *)addr;
	uint64_t port;

	if (parse_hostport(addr_port, &where) < 0 ||
	    parse_uint(where.port, 1, 65535, &port) < 0)
		return EINVAL;
	memset(addr, 0, sizeof(*addr));
	if (addr_port[0] != '[' &&
	    inet_pton(AF_INET, where.host, &addr4->sin_addr) == 1) {
		addr4->sin_family = AF_INET;
		addr4->sin_port = htons((uint16_t)port);
		*addr_len = sizeof(*addr4);
	} else if (addr_port[0] == '[' &&
	    inet_pton(AF_INET6, where.host, &addr6->sin6_addr) == 1) {
		addr6->sin6_family = AF_INET6;
		addr6->sin6_port = htons((uint16_t)port);
		*addr_len = sizeof(*addr6);
	} else
		return EINVAL;
	return 0;
}

int
metrics_addr_valid(const char *addr_port)
{
	struct sockaddr_storage addr;
	socklen_t addr_len;

	return listen_addr(addr_port, &addr, &addr_len) == 0;
}

int
metrics_listen(struct metrics *metrics, const char *addr_port)
{
	struct sockaddr_storage addr;
	socklen_t addr_len;
	int fd, one = 1, rc;

	if ((rc = listen_addr(addr_port, &addr, &addr_len)))
		return rc;
	if (metrics->nlisteners == METRICS_LISTENERS_MAX)
		return ENOSPC;
	fd = socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd < 0)
		return errno;
	/* [::]:PORT is for IPv6 only, whatever the host's bindv6only: give
	 * 0.0.0.0:PORT as well for both. */
	if ((addr.ss_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6,
	    IPV6_V6ONLY, &one, sizeof(one)) < 0) ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&addr, addr_len) < 0 ||
	    listen(fd, BACKLOG) < 0) {
		rc = errno;
		close(fd);
		return rc;
	}
	metrics->listeners[metrics->nlisteners++] = fd;
	return 0;
}

int
metrics_adopt(struct metrics *metrics, int fd)
{
	int type, listening, flags;
	socklen_t len = sizeof(type);

	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 ||
	    type != SOCK_STREAM)
		return ENOTSOCK;
	len = sizeof(listening);
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0 ||
	    !listening)
		return ENOTSOCK;
	if (metrics->nlisteners == METRICS_LISTENERS_MAX)
		return ENOSPC;
	/* Passed blocking (systemd-socket-activate does), the accept loop
	 * would wait in accept4() for the next client, and the tick with it.
	 * systemd's own sockets are non-blocking already. */
	if ((flags = fcntl(fd, F_GETFL)) < 0 ||
	    fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
		return errno;
	if ((flags = fcntl(fd, F_GETFD)) >= 0)
		(void)fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
	metrics->listeners[metrics->nlisteners++] = fd;
	return 0;
}

static int
clients_free(const struct metrics *metrics)
{
	size_t i;

	for (i = 0; i < METRICS_CLIENTS_MAX; i++)
		if (metrics->clients[i].state == CLIENT_FREE)
			return 1;
	return 0;
}

size_t
metrics_pollfds(struct metrics *metrics, struct pollfd *fds)
{
	struct client *client;
	size_t n = 0, i;

	for (i = 0; i < METRICS_CLIENTS_MAX; i++) {
		client = &metrics->clients[i];
		if (client->state == CLIENT_FREE)
			continue;
		fds[n].fd = client->fd;
		fds[n].events = client->state == CLIENT_WRITING ? POLLOUT :
		    POLLIN;
		fds[n].revents = 0;
		metrics->poll_owner[n++] = (int)i;
	}
	/* With every client slot taken, new ones wait in the backlog. */
	if (clients_free(metrics))
		for (i = 0; i < metrics->nlisteners; i++) {
			fds[n].fd = metrics->listeners[i];
			fds[n].events = POLLIN;
			fds[n].revents = 0;
			metrics->poll_owner[n++] = -1 - (int)i;
		}
	return n;
}

uint64_t
metrics_next_deadline_ns(const struct metrics *metrics)
{
	uint64_t next_ns = UINT64_MAX;
	size_t i;

	for (i = 0; i < METRICS_CLIENTS_MAX; i++)
		if (metrics->clients[i].state != CLIENT_FREE &&
		    metrics->clients[i].deadline_ns < next_ns)
			next_ns = metrics->clients[i].deadline_ns;
	return next_ns;
}

static uint64_t
min_ns(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static void
client_answer(struct client *client, const char *status, const char *extra,
    const char *body, size_t body_len, int head_only, uint64_t now_ns)
{
	char head[512];
	int head_len;

	head_len = snprintf(head, sizeof(head), "HTTP/1.1 %s\r\n"
	    "Content-Type: %s\r\n"
	    "Content-Length: %zu\r\n"
	    "Cache-Control: no-store\r\n"
	    "Connection: close\r\n"
	    "%s\r\n", status, strncmp(status, "200", 3) == 0 ?
	    "text/plain; version=0.0.4; charset=utf-8" :
	    "text/plain; charset=utf-8", body_len, extra);
	if (head_only)
		body_len = 0;
	client->answer = malloc((size_t)head_len + body_len);
	if (client->answer == NULL) {
		client_close(client);
		return;
	}
	memcpy(client->answer, head, (size_t)head_len);
	memcpy(client->answer + head_len, body, body_len);
	client->answer_len = (size_t)head_len + body_len;
	client->answer_sent = 0;
	client->state = CLIENT_WRITING;
	client->deadline_ns = min_ns(now_ns + STALL_NS,
	    client->accepted_ns + CLIENT_NS);
}

static void
client_error(struct client *client, const char *status, const char *extra,
    int head_only, uint64_t now_ns)
{
	char body[128];
	int n;

	n = snprintf(body, sizeof(body), "%s\n", status);
	client_answer(client, status, extra, body, (size_t)n, head_only,
	    now_ns);
}

/* A whole request is in: its line decides the answer.  The headers are
 * not needed (the answer is the same for every Accept). */
static void
client_request(struct metrics *metrics, struct client *client,
    uint64_t now_ns)
{
	char *line = client->request, *end, *method, *target, *version;
	char *body = NULL;
	size_t body_len = 0, path_len;
	int head_only, rc;

	end = strpbrk(line, "\r\n");
	*end = '\0';
	method = line;
	target = strchr(method, ' ');
	version = target ? strchr(target + 1, ' ') : NULL;
	if (target == NULL || version == NULL || strchr(version + 1, ' ')) {
		client_error(client, "400 Bad Request", "", 0, now_ns);
		return;
	}
	*target++ = '\0';
	*version++ = '\0';
	head_only = strcmp(method, "HEAD") == 0;
	if (strncmp(version, "HTTP/1.", 7) != 0 || version[7] < '0' ||
	    version[7] > '9' || version[8] != '\0') {
		client_error(client, "505 HTTP Version Not Supported", "", 0,
		    now_ns);
		return;
	}
	if (strcmp(method, "GET") != 0 && !head_only) {
		client_error(client, "405 Method Not Allowed",
		    "Allow: GET, HEAD\r\n", 0, now_ns);
		return;
	}
	path_len = strcspn(target, "?");
	if (path_len != 8 || strncmp(target, "/metrics", 8) != 0) {
		client_error(client, "404 Not Found", "", head_only, now_ns);
		return;
	}
	if ((rc = metrics_render(metrics->store, metrics->process, &body,
	    &body_len))) {
		client_error(client, "500 Internal Server Error", "",
		    head_only, now_ns);
		return;
	}
	client_answer(client, "200 OK", "", body, body_len, head_only,
	    now_ns);
	free(body);
}

/* The end of the headers: an empty line, CRLF or bare LF. */
static int
request_complete(const struct client *client)
{
	const char *request = client->request;
	size_t i;

	for (i = 1; i < client->request_len; i++)
		if (request[i] == '\n' && (request[i - 1] == '\n' ||
		    (i >= 2 && request[i - 1] == '\r' &&
		    request[i - 2] == '\n')))
			return 1;
	return 0;
}

static void
client_read(struct metrics *metrics, struct client *client, uint64_t now_ns)
{
	char discard[4096];
	ssize_t n;
	int reads = 16;

	if (client->state == CLIENT_CLOSING) {
		/* Taken and dropped until the client closes: closing with
		 * unread bytes would send a reset, which may cost the
		 * client the answer it has not read yet.  At most 64 KiB a
		 * wake-up: a client sending without end must not hold the
		 * loop (its deadline ends it). */
		while ((n = read(client->fd, discard, sizeof(discard))) > 0 &&
		    --reads > 0)
			;
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			client_close(client);
		return;
	}
	n = read(client->fd, client->request + client->request_len,
	    REQUEST_MAX - 1 - client->request_len);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		client_close(client);
		return;
	}
	if (n < 0)
		return;
	client->request_len += (size_t)n;
	client->request[client->request_len] = '\0';
	if (memchr(client->request, '\0', client->request_len)) {
		client_error(client, "400 Bad Request", "", 0, now_ns);
		return;
	}
	if (request_complete(client))
		client_request(metrics, client, now_ns);
	else if (client->request_len == REQUEST_MAX - 1)
		client_error(client, "431 Request Header Fields Too Large",
		    "", 0, now_ns);
}

static void
client_write(struct client *client, uint64_t now_ns)
{
	ssize_t n;

	while (client->answer_sent < client->answer_len) {
		n = send(client->fd, client->answer + client->answer_sent,
		    client->answer_len - client->answer_sent,
		    MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			client_close(client);
			return;
		}
		client->answer_sent += (size_t)n;
		client->deadline_ns = min_ns(now_ns + STALL_NS,
		    client->accepted_ns + CLIENT_NS);
	}
	free(client->answer);
	client->answer = NULL;
	shutdown(client->fd, SHUT_WR);
	client->state = CLIENT_CLOSING;
	client->deadline_ns = now_ns + LINGER_NS;
}

static void
accept_clients(struct metrics *metrics, int listener, uint64_t now_ns)
{
	struct client *client;
	size_t i;
	int fd, sndbuf = CLIENT_SNDBUF_B;

	for (i = 0; i < METRICS_CLIENTS_MAX; i++) {
		client = &metrics->clients[i];
		if (client->state != CLIENT_FREE)
			continue;
		fd = accept4(listener, NULL, NULL,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			/* EMFILE and the like: the listener stays readable
			 * and is tried again on the next wake-up; a client
			 * deadline or the tick bounds how soon. */
			if (errno != EAGAIN && errno != EINTR &&
			    errno != ECONNABORTED)
				log_warn("unable to accept a metrics "
				    "client: %s", strerror(errno));
			return;
		}
		(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf,
		    sizeof(sndbuf));
		memset(client, 0, sizeof(*client));
		client->fd = fd;
		client->state = CLIENT_READING;
		client->accepted_ns = now_ns;
		client->deadline_ns = now_ns + REQUEST_NS;
	}
}

void
metrics_serve(struct metrics *metrics, const struct pollfd *fds, size_t nfds,
    uint64_t now_ns)
{
	static const struct linger reset = { 1, 0 };
	struct client *client;
	size_t i;
	int owner;

	for (i = 0; i < nfds; i++) {
		owner = metrics->poll_owner[i];
		if (owner < 0 || fds[i].revents == 0)
			continue;
		client = &metrics->clients[owner];
		if (client->state == CLIENT_WRITING) {
			client_write(client, now_ns);
			continue;
		}
		if (client->state != CLIENT_FREE)
			client_read(metrics, client, now_ns);
		/* An answer built on this read is sent at once. */
		if (client->state == CLIENT_WRITING)
			client_write(client, now_ns);
	}
	for (i = 0; i < METRICS_CLIENTS_MAX; i++) {
		client = &metrics->clients[i];
		if (client->state == CLIENT_FREE || now_ns < client->deadline_ns)
			continue;
		/* Past its deadline with the answer unsent: a reset, so the
		 * kernel drops what it still holds for the client too. */
		if (client->state != CLIENT_CLOSING)
			(void)setsockopt(client->fd, SOL_SOCKET, SO_LINGER,
			    &reset, sizeof(reset));
		client_close(client);
	}
	for (i = 0; i < nfds; i++)
		if (metrics->poll_owner[i] < 0 && fds[i].revents)
			accept_clients(metrics, fds[i].fd, now_ns);
}
