/*
 * bench/tools/borigin: the origins of bench/contend.sh, in C so that the rig
 * can move far more than the fastest limit it measures (100 MiB/s over 64
 * sockets; tests/tools/origins.py, one Python select loop, could not).  Not
 * a test and not shipped.  The same ports and stats as origins.py:
 *
 *   borigin -P PORTFILE [-S STATSPORTFILE]
 *
 * listens on four free ports of 127.0.0.1 and writes "ECHO SEND SINK REPLY"
 * to PORTFILE: an echo server (every byte sent back at once), a source
 * sending without end, a sink reading and discarding, and a reply server
 * answering 16 bytes with 1 KiB and closing; every accepted socket has
 * TCP_NODELAY.  With -S, a fifth port (written to STATSPORTFILE) answers
 * every connection with one JSON line and closes it:
 * {"sinks": [[[T, BYTES], ...], ...]}, for each sink connection opened since
 * the last answer, its cumulative bytes at CLOCK_MONOTONIC seconds T (one
 * sample per 10 ms at most); a closed sink is reported once more, then
 * forgotten, and the open ones' samples start again.
 *
 * Three processes, one per kind of work, so an echo never waits behind a
 * sender's loop: echo and reply; source; sink and stats.  The first process
 * only waits; the others die with it (PR_SET_PDEATHSIG), so killing the pid
 * the shell started ends them all.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define IO_B		(1024 * 1024)	/* one send or recv at most */
#define REPLY_B		1024		/* the reply server's answer */
#define ASKED_B		16		/* what the reply server waits for */
#define MARK_NS		10000000ULL	/* a sink's samples at least 10 ms apart */
#define EVENTS_MAX	256

enum kind { ECHO, SEND, SINK, REPLY, STATS, KINDS };

/* What one accepted socket is and, for a sink, what it has received. */
struct peer {
	int fd;			/* -1 once closed */
	enum kind kind;
	uint64_t asked_B;	/* reply: bytes of the request so far */
	uint64_t total_B;	/* sink: bytes received in all */
	uint64_t *mark_ns;	/* sink: sample times ... */
	uint64_t *mark_B;	/* ... and totals then */
	size_t marks, marks_cap;
	struct peer *next_sink;	/* sink: the list the stats answer walks */
};

static char io_buf[IO_B];
static struct peer *sinks;	/* newest first */

static void
die(const char *what, const char *detail)
{
	fprintf(stderr, "borigin: fatal: unable to %s%s%s: %s\n", what,
	    detail ? " " : "", detail ? detail : "", strerror(errno));
	exit(111);
}

static void
usage(void)
{
	fprintf(stderr, "usage: borigin -P PORTFILE [-S STATSPORTFILE]\n");
	exit(100);
}

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static int
listen_any(unsigned *port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);
	int fd, one = 1;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0)) < 0)
		die("create a socket", NULL);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) || listen(fd, 4096))
		die("listen on", "127.0.0.1");
	if (getsockname(fd, (struct sockaddr *)&sin, &len))
		die("read the port of a socket", NULL);
	*port = ntohs(sin.sin_port);
	return fd;
}

/* Writes text to path through path.tmp and a rename: a reader polling
 * for the file never sees half of it. */
static void
write_atomically(const char *path, const char *text)
{
	char tmp[4096];
	FILE *f;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp)) {
		fprintf(stderr, "borigin: fatal: path too long: %s\n", path);
		exit(100);
	}
	if (!(f = fopen(tmp, "w")) || fputs(text, f) == EOF || fclose(f))
		die("write", tmp);
	if (rename(tmp, path))
		die("rename to", path);
}

static void
add_mark(struct peer *p, uint64_t t)
{
	/* As origins.py: overwrite the last sample while it is within 10 ms
	 * of the one before, so the series keeps a sample per 10 ms. */
	if (p->marks > 1 && p->mark_ns[p->marks - 1] - p->mark_ns[p->marks - 2] < MARK_NS) {
		p->mark_ns[p->marks - 1] = t;
		p->mark_B[p->marks - 1] = p->total_B;
		return;
	}
	if (p->marks == p->marks_cap) {
		p->marks_cap = p->marks_cap ? p->marks_cap * 2 : 1024;
		p->mark_ns = realloc(p->mark_ns, p->marks_cap * sizeof(*p->mark_ns));
		p->mark_B = realloc(p->mark_B, p->marks_cap * sizeof(*p->mark_B));
		if (!p->mark_ns || !p->mark_B)
			die("allocate a sink's samples", NULL);
	}
	p->mark_ns[p->marks] = t;
	p->mark_B[p->marks++] = p->total_B;
}

/* Answers one stats connection (blocking: the reader is contend.sh's
 * Python, on loopback), then forgets the closed sinks and the samples. */
static void
answer_stats(int fd)
{
	struct peer **link = &sinks, *p;
	FILE *f;
	int flags = fcntl(fd, F_GETFL);

	if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) ||
	    !(f = fdopen(fd, "w"))) {
		close(fd);
		return;
	}
	fputs("{\"sinks\": [", f);
	for (p = sinks; p; p = p->next_sink) {
		fputs(p == sinks ? "[" : ", [", f);
		for (size_t i = 0; i < p->marks; i++)
			fprintf(f, "%s[%.6f, %llu]", i ? ", " : "",
			    p->mark_ns[i] / 1e9, (unsigned long long)p->mark_B[i]);
		fputs("]", f);
	}
	fputs("]}\n", f);
	fclose(f);
	while ((p = *link)) {
		if (p->fd < 0) {
			*link = p->next_sink;
			free(p->mark_ns);
			free(p->mark_B);
			free(p);
			continue;
		}
		p->marks = 0;
		link = &p->next_sink;
	}
}

static void
drop(int epoll_fd, struct peer *p)
{
	epoll_ctl(epoll_fd, EPOLL_CTL_DEL, p->fd, NULL);
	close(p->fd);
	p->fd = -1;
	if (p->kind != SINK)
		free(p);
}

static void
accept_peer(int epoll_fd, int listen_fd, enum kind kind)
{
	struct epoll_event ev = { .events = kind == SEND ? EPOLLOUT : EPOLLIN };
	struct peer *p;
	int fd, one = 1;

	if ((fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK)) < 0)
		return;
	if (kind == STATS) {
		answer_stats(fd);
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (!(p = calloc(1, sizeof(*p))))
		die("allocate a connection", NULL);
	p->fd = fd;
	p->kind = kind;
	if (kind == SINK) {
		p->next_sink = sinks;
		sinks = p;
	}
	ev.data.ptr = p;
	if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &ev))
		die("watch a connection", NULL);
}

/* Serves one connection that epoll says is ready. */
static void
serve_peer(int epoll_fd, struct peer *p)
{
	ssize_t n;

	if (p->kind == SEND) {
		n = send(p->fd, io_buf, IO_B, MSG_NOSIGNAL);
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			drop(epoll_fd, p);
		return;
	}
	n = recv(p->fd, io_buf, IO_B, 0);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		drop(epoll_fd, p);
		return;
	}
	switch (p->kind) {
	case ECHO:
		/* A few bytes at a time: the socket's buffer takes them. */
		if (send(p->fd, io_buf, n, MSG_NOSIGNAL) != n)
			drop(epoll_fd, p);
		break;
	case SINK:
		p->total_B += n;
		add_mark(p, now_ns());
		break;
	case REPLY:
		p->asked_B += n;
		if (p->asked_B >= ASKED_B) {
			(void)send(p->fd, io_buf, REPLY_B, MSG_NOSIGNAL);
			drop(epoll_fd, p);
		}
		break;
	default:
		break;
	}
}

/* One worker process: serves the listeners it is given (-1: not its own)
 * until the first process goes. */
static _Noreturn void
work(const int listen_fd[KINDS])
{
	struct epoll_event ev, events[EVENTS_MAX];
	int epoll_fd, k;

	if ((epoll_fd = epoll_create1(0)) < 0)
		die("create an epoll", NULL);
	for (k = 0; k < KINDS; k++) {
		if (listen_fd[k] < 0)
			continue;
		ev.events = EPOLLIN;
		/* Listeners are told apart by a small number, not a peer. */
		ev.data.u64 = (uint64_t)k;
		if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, listen_fd[k], &ev))
			die("watch a listener", NULL);
	}
	for (;;) {
		int ready = epoll_wait(epoll_fd, events, EVENTS_MAX, -1);

		if (ready < 0 && errno != EINTR)
			die("wait for connections", NULL);
		for (int i = 0; i < ready; i++) {
			if (events[i].data.u64 < KINDS) {
				k = (int)events[i].data.u64;
				accept_peer(epoll_fd, listen_fd[k], (enum kind)k);
			} else {
				serve_peer(epoll_fd, events[i].data.ptr);
			}
		}
	}
}

static void
start_worker(const int all_fd[KINDS], int first, int second)
{
	int mine[KINDS];
	pid_t parent = getpid(), pid;

	for (int k = 0; k < KINDS; k++)
		mine[k] = k == first || k == second ? all_fd[k] : -1;
	if ((pid = fork()) < 0)
		die("fork", NULL);
	if (pid)
		return;
	/* Go with the first process, even if it went before this line. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) || getppid() != parent)
		_exit(0);
	work(mine);
}

int
main(int argc, char **argv)
{
	const char *port_file = NULL, *stats_file = NULL;
	int listen_fd[KINDS], opt;
	unsigned port[KINDS];
	char text[128];
	struct rlimit lim;

	while ((opt = getopt(argc, argv, "P:S:")) != -1) {
		switch (opt) {
		case 'P': port_file = optarg; break;
		case 'S': stats_file = optarg; break;
		default: usage();
		}
	}
	if (!port_file || optind != argc)
		usage();
	if (getrlimit(RLIMIT_NOFILE, &lim) == 0) {
		lim.rlim_cur = lim.rlim_max;
		setrlimit(RLIMIT_NOFILE, &lim);
	}
	signal(SIGPIPE, SIG_IGN);
	/* Random bytes, as origins.py sends: nothing on the path compresses. */
	srandom((unsigned)now_ns());
	for (size_t i = 0; i < IO_B; i++)
		io_buf[i] = (char)random();
	for (int k = 0; k < KINDS; k++)
		listen_fd[k] = k == STATS && !stats_file ? -1 : listen_any(&port[k]);
	start_worker(listen_fd, ECHO, REPLY);
	start_worker(listen_fd, SEND, -1);
	start_worker(listen_fd, SINK, STATS);
	if (stats_file) {
		snprintf(text, sizeof(text), "%u\n", port[STATS]);
		write_atomically(stats_file, text);
	}
	snprintf(text, sizeof(text), "%u %u %u %u\n", port[ECHO], port[SEND],
	    port[SINK], port[REPLY]);
	write_atomically(port_file, text);
	/* Wait for the workers; one that ends ends the origins. */
	if (wait(NULL) < 0)
		die("wait for the workers", NULL);
	fprintf(stderr, "borigin: fatal: a worker ended\n");
	return 111;
}
