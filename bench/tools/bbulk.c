/*
 * bench/tools/bbulk: the bulk connections of bench/contend.sh, in C so the
 * rig can take far more than the fastest limit it measures (100 MiB/s over
 * 64 sockets; tests/tools/contend.py's one Python loop could not).  Not a
 * test and not shipped.  The echo and direct probes stay in contend.py (one
 * process, the same code for both); this runs beside it on the same t0.
 *
 *   bbulk [-n CONNS] [-d SECONDS] [-t T0] [-w A B]... [-u] HOST:PORT
 *   bbulk -N [SECONDS]
 *
 * At T0 (CLOCK_MONOTONIC seconds, as Python's time.monotonic() and
 * contend.py --t0; default: now) opens CONNS connections (default 1,
 * TCP_NODELAY as contend.py's) and receives on all of them as fast as they
 * give, or with -u sends on all of them as fast as they take, one epoll
 * loop, up to 1 MiB a call, until T0 + SECONDS (default 10).  Prints
 * NAME=VALUE lines for sh:
 *   t0        T0 in CLOCK_MONOTONIC seconds
 *   conns     connections asked for; started: those that connected;
 *   closed    those the other end closed before the end
 *   late_ms   how late after T0 the last connection was open
 *   recv      bytes per connection in total (sent, with -u)
 *   rates0    per --window (rates1 for the second...), bytes/s per
 *             connection over [T0 + A, T0 + B], counted at the last call
 *             at or before each end (contend.py's rule); sum0: their sum
 * -N prints CLOCK_MONOTONIC now + SECONDS (default 0): a T0 for both
 * programs.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define IO_B		(1024 * 1024)	/* one send or recv at most */
#define WINDOWS_MAX	8
#define EVENTS_MAX	256

/* One bulk connection and its byte count at each window's ends. */
struct flow {
	int fd;			/* -1 when not open */
	uint64_t total_B;
	uint64_t at_B[WINDOWS_MAX][2];	/* total at the last call <= each end */
};

static char io_buf[IO_B];

static void
die(const char *what, const char *detail)
{
	fprintf(stderr, "bbulk: fatal: unable to %s%s%s: %s\n", what,
	    detail ? " " : "", detail ? detail : "", strerror(errno));
	exit(111);
}

static void
usage(void)
{
	fprintf(stderr, "usage: bbulk [-n CONNS] [-d SECONDS] [-t T0] [-w A B]... [-u] HOST:PORT\n"
	    "       bbulk -N [SECONDS]\n");
	exit(100);
}

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* A non-negative number of seconds (or a count), or exit 100 naming it. */
static double
parse_number(const char *what, const char *text)
{
	char *end;
	double value;

	errno = 0;
	value = strtod(text, &end);
	if (errno || end == text || *end || value < 0) {
		fprintf(stderr, "bbulk: fatal: bad %s: '%s'\n", what, text);
		exit(100);
	}
	return value;
}

static struct addrinfo *
resolve(const char *hostport)
{
	char host[256];
	const char *colon = strrchr(hostport, ':');
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res;
	size_t len;
	int rc;

	if (!colon || (len = (size_t)(colon - hostport)) >= sizeof(host)) {
		fprintf(stderr, "bbulk: fatal: bad HOST:PORT: '%s'\n", hostport);
		exit(100);
	}
	memcpy(host, hostport, len);
	host[len] = 0;
	if (host[0] == '[' && len > 1 && host[len - 1] == ']') {
		memmove(host, host + 1, len - 2);
		host[len - 2] = 0;
	}
	if ((rc = getaddrinfo(host, colon + 1, &hints, &res))) {
		fprintf(stderr, "bbulk: fatal: unable to resolve %s: %s\n",
		    hostport, gai_strerror(rc));
		exit(111);
	}
	return res;
}

/* A blocking connect (10 s at most), then non-blocking for the loop. */
static int
open_flow(const struct addrinfo *to, const char *hostport)
{
	struct timeval tv = { .tv_sec = 10 };
	int fd, one = 1;

	if ((fd = socket(to->ai_family, SOCK_STREAM, 0)) < 0)
		die("create a socket", NULL);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, to->ai_addr, to->ai_addrlen)) {
		fprintf(stderr, "bbulk: unable to connect to %s: %s\n", hostport,
		    strerror(errno));
		close(fd);
		return -1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	tv.tv_sec = 0;
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK))
		die("make a socket non-blocking", NULL);
	return fd;
}

/* Counts n more bytes of f, moved at t, at every window end t has not
 * passed: each end keeps the total of the last call at or before it. */
static void
account(struct flow *f, uint64_t n, uint64_t t, const uint64_t end_ns[][2],
    unsigned windows)
{
	f->total_B += n;
	for (unsigned w = 0; w < windows; w++)
		for (int e = 0; e < 2; e++)
			if (t <= end_ns[w][e])
				f->at_B[w][e] = f->total_B;
}

static void
print_list(const char *name, const struct flow *flows, unsigned count,
    double (*value)(const struct flow *, unsigned), unsigned arg)
{
	printf("%s=\"", name);
	for (unsigned i = 0; i < count; i++)
		printf("%s%.0f", i ? " " : "", value(&flows[i], arg));
	printf("\"\n");
}

static double window_s[WINDOWS_MAX];

static double
flow_total(const struct flow *f, unsigned unused)
{
	(void)unused;
	return (double)f->total_B;
}

static double
flow_rate(const struct flow *f, unsigned w)
{
	return (double)(f->at_B[w][1] - f->at_B[w][0]) / window_s[w];
}

int
main(int argc, char **argv)
{
	struct epoll_event ev, events[EVENTS_MAX];
	double window[WINDOWS_MAX][2], duration_s = 10, t0_s = -1;
	uint64_t end_ns[WINDOWS_MAX][2], t0_ns, stop_ns, open_ns;
	unsigned count = 1, windows = 0, started = 0, closed = 0;
	int opt, upload = 0, epoll_fd;
	struct addrinfo *to;
	struct flow *flows;
	struct rlimit lim;

	if (argc >= 2 && strcmp(argv[1], "-N") == 0) {
		if (argc > 3)
			usage();
		printf("%.6f\n", now_ns() / 1e9 +
		    (argc == 3 ? parse_number("seconds", argv[2]) : 0));
		return 0;
	}
	while ((opt = getopt(argc, argv, "+n:d:t:w:u")) != -1) {
		switch (opt) {
		case 'n': count = (unsigned)parse_number("count", optarg); break;
		case 'd': duration_s = parse_number("duration", optarg); break;
		case 't': t0_s = parse_number("t0", optarg); break;
		case 'w':
			/* -w A B: the second number is the next word. */
			if (windows == WINDOWS_MAX || optind >= argc)
				usage();
			window[windows][0] = parse_number("window start", optarg);
			window[windows][1] = parse_number("window end", argv[optind++]);
			if (window[windows][1] <= window[windows][0]) {
				fprintf(stderr, "bbulk: fatal: bad window: %s %s\n",
				    optarg, argv[optind - 1]);
				exit(100);
			}
			windows++;
			break;
		case 'u': upload = 1; break;
		default: usage();
		}
	}
	if (optind != argc - 1 || count == 0)
		usage();
	if (!windows) {
		window[0][0] = 0;
		window[0][1] = duration_s;
		windows = 1;
	}
	to = resolve(argv[optind]);
	if (!(flows = calloc(count, sizeof(*flows))))
		die("allocate the connections", NULL);
	if (getrlimit(RLIMIT_NOFILE, &lim) == 0) {
		lim.rlim_cur = lim.rlim_max;
		setrlimit(RLIMIT_NOFILE, &lim);
	}
	signal(SIGPIPE, SIG_IGN);
	for (size_t i = 0; i < IO_B; i++)
		io_buf[i] = (char)(i * 2654435761U >> 24);
	t0_ns = t0_s < 0 ? now_ns() : (uint64_t)(t0_s * 1e9);
	stop_ns = t0_ns + (uint64_t)(duration_s * 1e9);
	for (unsigned w = 0; w < windows; w++) {
		window_s[w] = window[w][1] - window[w][0];
		for (int e = 0; e < 2; e++)
			end_ns[w][e] = t0_ns + (uint64_t)(window[w][e] * 1e9);
	}
	if ((epoll_fd = epoll_create1(0)) < 0)
		die("create an epoll", NULL);
	{
		struct timespec at = { .tv_sec = t0_ns / 1000000000ULL,
		    .tv_nsec = t0_ns % 1000000000ULL };

		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &at, NULL) == EINTR)
			;
	}
	for (unsigned i = 0; i < count; i++) {
		if ((flows[i].fd = open_flow(to, argv[optind])) < 0)
			continue;
		started++;
		ev.events = upload ? EPOLLOUT : EPOLLIN;
		ev.data.ptr = &flows[i];
		if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, flows[i].fd, &ev))
			die("watch a connection", NULL);
	}
	open_ns = now_ns();
	freeaddrinfo(to);
	if (!started) {
		fprintf(stderr, "bbulk: fatal: no connection to %s\n", argv[optind]);
		exit(111);
	}
	for (;;) {
		uint64_t t = now_ns();
		int ready;

		if (t >= stop_ns)
			break;
		ready = epoll_wait(epoll_fd, events, EVENTS_MAX,
		    (int)((stop_ns - t + 999999) / 1000000));
		if (ready < 0 && errno != EINTR)
			die("wait for the connections", NULL);
		for (int i = 0; i < ready; i++) {
			struct flow *f = events[i].data.ptr;
			ssize_t n = upload ?
			    send(f->fd, io_buf, IO_B, MSG_NOSIGNAL) :
			    recv(f->fd, io_buf, IO_B, 0);

			if (n < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			if (n <= 0) {
				epoll_ctl(epoll_fd, EPOLL_CTL_DEL, f->fd, NULL);
				close(f->fd);
				f->fd = -1;
				closed++;
				continue;
			}
			account(f, (uint64_t)n, now_ns(), (const uint64_t (*)[2])end_ns, windows);
		}
	}
	printf("t0=%.6f\nconns=%u\nstarted=%u\nclosed=%u\nlate_ms=%.1f\n",
	    t0_ns / 1e9, count, started, closed,
	    open_ns > t0_ns ? (open_ns - t0_ns) / 1e6 : 0.0);
	print_list("recv", flows, count, flow_total, 0);
	for (unsigned w = 0; w < windows; w++) {
		char name[16];
		double sum = 0;

		snprintf(name, sizeof(name), "rates%u", w);
		print_list(name, flows, count, flow_rate, w);
		for (unsigned i = 0; i < count; i++)
			sum += flow_rate(&flows[i], w);
		printf("sum%u=%.0f\n", w, sum);
	}
	free(flows);
	return 0;
}
