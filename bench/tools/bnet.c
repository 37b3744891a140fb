/*
 * bench/tools/bnet: the network ends of the benchmarks (bench/run.sh).
 * Not a test and not shipped.  One program with five modes, so every peer
 * (iprelay, haproxy, nginx, socat, trickle, tc) is measured by the same code:
 *
 *   bnet serve -P PORTFILE [-b ADDR] [-m source|reply]
 *	an origin: "source" sends to every connection as fast as it may until
 *	the connection goes away; "reply" writes 16 bytes and closes.
 *   bnet recv [-n CONNS] [-d SECONDS] [-w A B] [-s SETUP] [-T TIMELINE] [-R RATES]
 *	[-x AT CMD] [-B [-b BYTES]] HOST:PORT
 *	opens CONNS connections and receives on all of them on one clock.
 *	t_first is the first byte of any connection, t0 the first byte of
 *	the last one (at most SETUP s, default 15, after the start); it runs
 *	until t0 + SECONDS.  Prints NAME=VALUE lines:
 *	total (bytes/s of all between the first arrival at or after t0+A and
 *	the last at or before t0+B), total_slots (bytes in [t0+A, t0+B] /
 *	the window, whole 10 ms slots), jain (of per-connection window
 *	rates), first_sec (bytes in
 *	[t_first, t_first+1 s]), t0 (s after t_first), started (connections
 *	that received anything), and with -x (CMD run by sh at t0+AT):
 *	run_start, run_end, before_rate, after_rate, reaction_ms.  -T writes
 *	"seconds-after-t_first bytes/s" every 100 ms, -R one rate per
 *	connection.  -B: one connection with blocking recv() and no epoll,
 *	for LD_PRELOAD shapers (trickle) that wrap recv/poll only; -b BYTES
 *	reads at most BYTES at a time (trickle delays by the size asked).
 *   bnet bulk -s BYTES [-k FILE] HOST:PORT
 *	receives BYTES on one connection; prints seconds and bytes/s.  -k:
 *	then creates FILE and keeps the connection until FILE is removed.
 *   bnet cps -n COUNT [-g MS] HOST:PORT
 *	COUNT short connections one after the other (connect, read to end of
 *	file, close); prints rate, p50_us, p99_us.  -g: MS between one
 *	connection's close and the next connect (the latency a client sees
 *	when connections come apart, not back to back; rate then counts it).
 *   bnet spawn -n COUNT PROGRAM
 *	COUNT posix_spawn + waitpid of PROGRAM: the floor of a launcher.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define SLOT_NS		10000000ULL	/* timeline resolution: 10 ms */
#define SETUP_S		15		/* default longest wait for every first byte */
#define BUF_B		(256 * 1024)

static char buffer[BUF_B];

static void
die(const char *what)
{
	fprintf(stderr, "bnet: fatal: unable to %s: %s\n", what, strerror(errno));
	exit(111);
}

static void
usage(void)
{
	fprintf(stderr, "usage: bnet serve|recv|bulk|cps|spawn ... (see bench/tools/bnet.c)\n");
	exit(100);
}

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void
raise_nofile(void)
{
	struct rlimit lim;

	if (getrlimit(RLIMIT_NOFILE, &lim) == 0) {
		lim.rlim_cur = lim.rlim_max;
		setrlimit(RLIMIT_NOFILE, &lim);
	}
}

static int
connect_to(const char *hostport)
{
	char host[256];
	const char *colon = strrchr(hostport, ':');
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res;
	struct timeval tv = { .tv_sec = 10 };
	int fd, rc;

	if (!colon || colon - hostport >= (long)sizeof(host))
		usage();
	memcpy(host, hostport, colon - hostport);
	host[colon - hostport] = 0;
	if (host[0] == '[') {
		memmove(host, host + 1, strlen(host));
		host[strlen(host) - 1] = 0;
	}
	if ((rc = getaddrinfo(host, colon + 1, &hints, &res))) {
		fprintf(stderr, "bnet: fatal: unable to resolve %s: %s\n",
		    hostport, gai_strerror(rc));
		exit(111);
	}
	fd = socket(res->ai_family, SOCK_STREAM, 0);
	if (fd < 0)
		die("create a socket");
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, res->ai_addr, res->ai_addrlen))
		die("connect");
	freeaddrinfo(res);
	return fd;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void
print_latencies(uint64_t *lat_ns, unsigned count, uint64_t elapsed_ns)
{
	qsort(lat_ns, count, sizeof(*lat_ns), cmp_u64);
	printf("rate=%.1f\np50_us=%.1f\np99_us=%.1f\n",
	    count / (elapsed_ns / 1e9), lat_ns[count / 2] / 1e3,
	    lat_ns[(unsigned)(count * 0.99)] / 1e3);
}

/* ---- serve ---- */

static _Noreturn void
serve(int argc, char **argv)
{
	const char *port_file = NULL, *bind_addr = "127.0.0.1", *mode = "source";
	static const char reply[16] = "bnet reply ok.\r\n";
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);
	struct epoll_event ev, events[256];
	int opt, listen_fd, epoll_fd, one = 1, source;
	FILE *f;
	char tmp[4096];

	while ((opt = getopt(argc, argv, "P:b:m:")) != -1) {
		switch (opt) {
		case 'P': port_file = optarg; break;
		case 'b': bind_addr = optarg; break;
		case 'm': mode = optarg; break;
		default: usage();
		}
	}
	if (!port_file)
		usage();
	source = strcmp(mode, "reply") != 0;
	raise_nofile();
	signal(SIGPIPE, SIG_IGN);
	listen_fd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (inet_pton(AF_INET, bind_addr, &sin.sin_addr) != 1)
		usage();
	if (bind(listen_fd, (struct sockaddr *)&sin, sizeof(sin)) ||
	    listen(listen_fd, 4096))
		die("listen");
	getsockname(listen_fd, (struct sockaddr *)&sin, &len);
	snprintf(tmp, sizeof(tmp), "%s.tmp", port_file);
	if (!(f = fopen(tmp, "w")))
		die("write the port file");
	fprintf(f, "%u\n", ntohs(sin.sin_port));
	fclose(f);
	rename(tmp, port_file);

	if ((epoll_fd = epoll_create1(0)) < 0)
		die("epoll_create1");
	ev.events = EPOLLIN;
	ev.data.fd = listen_fd;
	epoll_ctl(epoll_fd, EPOLL_CTL_ADD, listen_fd, &ev);
	for (;;) {
		int ready = epoll_wait(epoll_fd, events, 256, -1);

		for (int i = 0; i < ready; i++) {
			int fd = events[i].data.fd;

			if (fd == listen_fd) {
				int conn = accept4(listen_fd, NULL, NULL,
				    SOCK_NONBLOCK);
				if (conn < 0)
					continue;
				if (!source) {
					(void)send(conn, reply, sizeof(reply),
					    MSG_NOSIGNAL);
					close(conn);
					continue;
				}
				ev.events = EPOLLIN | EPOLLOUT;
				ev.data.fd = conn;
				epoll_ctl(epoll_fd, EPOLL_CTL_ADD, conn, &ev);
				continue;
			}
			if (events[i].events & (EPOLLERR | EPOLLHUP)) {
				close(fd);
				continue;
			}
			if (events[i].events & EPOLLIN) {
				ssize_t got = read(fd, tmp, sizeof(tmp));
				if (got == 0) {
					/* The client is done sending: stop
					 * watching for input, keep sending. */
					ev.events = EPOLLOUT;
					ev.data.fd = fd;
					epoll_ctl(epoll_fd, EPOLL_CTL_MOD, fd, &ev);
				} else if (got < 0 && errno != EAGAIN) {
					close(fd);
					continue;
				}
			}
			if (events[i].events & EPOLLOUT) {
				ssize_t put = send(fd, buffer, BUF_B, MSG_NOSIGNAL);
				if (put < 0 && errno != EAGAIN)
					close(fd);
			}
		}
	}
}

/* ---- recv ---- */

struct conn {
	int fd;
	uint64_t first_ns;	/* 0 until the first byte */
	uint64_t total_B;
	uint64_t *slot_B;	/* bytes received in each 10 ms slot */
};

static struct conn *conns;
static unsigned conn_count, nslots, started;
static double setup_s = SETUP_S;
static uint64_t start_ns, t_first_ns, t0_ns, first_sec_B;
/* Every arrival on any connection: time and bytes of all so far.  Low
 * rates arrive in quanta, and a window with one quantum more or less is
 * off by a quantum; the rate between two arrivals is not. */
#define EVENTS_MAX	(4U << 20)
static uint64_t *event_ns, *event_cum_B, all_B;
static unsigned event_count;

static void
account(struct conn *c, uint64_t n, uint64_t t)
{
	uint64_t slot = (t - start_ns) / SLOT_NS;

	if (!c->first_ns) {
		c->first_ns = t;
		if (!t_first_ns)
			t_first_ns = t;
		if (++started == conn_count)
			t0_ns = t;
	}
	if (t < t_first_ns + 1000000000ULL)
		first_sec_B += n;
	if (slot < nslots)
		c->slot_B[slot] += n;
	c->total_B += n;
	all_B += n;
	if (event_count < EVENTS_MAX) {
		event_ns[event_count] = t;
		event_cum_B[event_count++] = all_B;
	}
}

/* Bytes/s of all connections between the first arrival at or after from
 * and the last at or before to (bytes that arrived after the first one). */
static double
arrival_rate(uint64_t from_ns, uint64_t to_ns)
{
	unsigned a = 0, b;

	while (a < event_count && event_ns[a] < from_ns)
		a++;
	for (b = a; b + 1 < event_count && event_ns[b + 1] <= to_ns; b++)
		;
	if (a >= event_count || b <= a || event_ns[b] <= event_ns[a])
		return 0;
	return (event_cum_B[b] - event_cum_B[a]) /
	    ((event_ns[b] - event_ns[a]) / 1e9);
}

/* Bytes of one connection (or all, c == NULL) in [from, to) ns. */
static uint64_t
bytes_between(struct conn *c, uint64_t from_ns, uint64_t to_ns)
{
	uint64_t sum = 0, a, b;

	if (from_ns < start_ns)
		from_ns = start_ns;
	a = (from_ns - start_ns) / SLOT_NS;
	b = (to_ns - start_ns) / SLOT_NS;
	if (b > nslots)
		b = nslots;
	for (unsigned k = c ? (unsigned)(c - conns) : 0;
	    k < (c ? (unsigned)(c - conns) + 1 : conn_count); k++)
		for (uint64_t s = a; s < b; s++)
			sum += conns[k].slot_B[s];
	return sum;
}

/* The length covered by bytes_between(from, to): whole slots. */
static double
span_s(uint64_t from_ns, uint64_t to_ns)
{
	uint64_t a = (from_ns - start_ns) / SLOT_NS, b = (to_ns - start_ns) / SLOT_NS;

	if (b > nslots)
		b = nslots;
	return b > a ? (b - a) * (SLOT_NS / 1e9) : 1e-9;
}

/* One epoll_wait (timeout in ms) and a read from every ready connection. */
static void
drain_ready(int epoll_fd, struct epoll_event *events, int max_events,
    int timeout_ms)
{
	int ready = epoll_wait(epoll_fd, events, max_events, timeout_ms);
	uint64_t t = now_ns();

	for (int i = 0; i < ready; i++) {
		struct conn *c = &conns[events[i].data.u32];
		ssize_t got = read(c->fd, buffer, BUF_B);

		if (got > 0)
			account(c, got, t);
		else if (got == 0 || errno != EAGAIN)
			epoll_ctl(epoll_fd, EPOLL_CTL_DEL, c->fd, NULL);
	}
}

static int
recv_main(int argc, char **argv)
{
	unsigned count = 1;
	double duration_s = 5, win_a = 0.5, win_b = 4.5, run_at = -1;
	const char *timeline_path = NULL, *rates_path = NULL, *command = NULL;
	int opt, blocking = 0, epoll_fd = -1;
	size_t read_B = BUF_B;
	pid_t child = 0;
	uint64_t run_start_ns = 0, run_end_ns = 0, end_ns;
	struct epoll_event ev, events[512];

	while ((opt = getopt(argc, argv, "n:d:w:T:R:x:Bb:s:")) != -1) {
		switch (opt) {
		case 's': setup_s = atof(optarg); break;
		case 'b':
			read_B = strtoul(optarg, NULL, 10);
			if (read_B < 1 || read_B > BUF_B)
				usage();
			break;
		case 'n': count = strtoul(optarg, NULL, 10); break;
		case 'd': duration_s = atof(optarg); break;
		case 'w':
			win_a = atof(optarg);
			if (optind >= argc)
				usage();
			win_b = atof(argv[optind++]);
			break;
		case 'T': timeline_path = optarg; break;
		case 'R': rates_path = optarg; break;
		case 'x':
			run_at = atof(optarg);
			if (optind >= argc)
				usage();
			command = argv[optind++];
			break;
		case 'B': blocking = 1; break;
		default: usage();
		}
	}
	if (optind != argc - 1 || count < 1 || (blocking && count != 1))
		usage();
	raise_nofile();
	conn_count = count;
	nslots = (unsigned)((setup_s + duration_s + 1) * 1e9 / SLOT_NS);
	if (!(conns = calloc(count, sizeof(*conns))) ||
	    !(event_ns = malloc(EVENTS_MAX * sizeof(uint64_t))) ||
	    !(event_cum_B = malloc(EVENTS_MAX * sizeof(uint64_t))))
		die("allocate");
	start_ns = now_ns();
	if (!blocking && (epoll_fd = epoll_create1(0)) < 0)
		die("epoll_create1");
	for (unsigned i = 0; i < count; i++) {
		if (!(conns[i].slot_B = calloc(nslots, sizeof(uint64_t))))
			die("allocate");
		conns[i].fd = connect_to(argv[optind]);
		if (blocking)
			continue;
		fcntl(conns[i].fd, F_SETFL, O_NONBLOCK);
		ev.events = EPOLLIN;
		ev.data.u32 = i;
		epoll_ctl(epoll_fd, EPOLL_CTL_ADD, conns[i].fd, &ev);
		/* Read what the relays already connected send while the rest
		 * connect: left in socket buffers until every connect is done
		 * (seconds at 1000), it came out at once and was counted as a
		 * first-second burst of the relays. */
		drain_ready(epoll_fd, events, 512, 0);
	}
	if (blocking) {
		struct timeval tv = { .tv_usec = 50000 };
		setsockopt(conns[0].fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	}
	for (;;) {
		uint64_t t = now_ns();

		end_ns = t0_ns ? t0_ns + (uint64_t)(duration_s * 1e9) :
		    start_ns + (uint64_t)((setup_s + duration_s) * 1e9);
		if (t >= end_ns)
			break;
		if (command && t0_ns && !run_start_ns &&
		    t >= t0_ns + (uint64_t)(run_at * 1e9)) {
			run_start_ns = t;
			if ((child = fork()) == 0) {
				execl("/bin/sh", "sh", "-c", command, (char *)NULL);
				_exit(127);
			}
		}
		if (child && waitpid(child, NULL, WNOHANG) == child) {
			run_end_ns = now_ns();
			child = 0;
		}
		if (blocking) {
			ssize_t got = recv(conns[0].fd, buffer, read_B, 0);
			if (got > 0)
				account(&conns[0], got, now_ns());
			else if (got == 0 || (errno != EAGAIN && errno != EINTR))
				break;
			continue;
		}
		drain_ready(epoll_fd, events, 512, child ? 2 : 10);
	}
	if (child) {
		waitpid(child, NULL, 0);
		run_end_ns = now_ns();
	}

	/* Figures over the window [t0 + A, t0 + B]. */
	uint64_t base_ns = t0_ns ? t0_ns : end_ns;
	uint64_t wa = base_ns + (uint64_t)(win_a * 1e9), wb = base_ns + (uint64_t)(win_b * 1e9);
	double span = span_s(wa, wb), sum = 0, sum_sq = 0;
	FILE *rates = rates_path ? fopen(rates_path, "w") : NULL;

	for (unsigned i = 0; i < count; i++) {
		double r = bytes_between(&conns[i], wa, wb) / span;
		sum += r;
		sum_sq += r * r;
		if (rates)
			fprintf(rates, "%u %.1f\n", i + 1, r);
	}
	if (rates)
		fclose(rates);
	printf("conns=%u\nstarted=%u\ntotal=%.1f\ntotal_slots=%.1f\njain=%.4f\n"
	    "first_sec=%lu\n", count, started, arrival_rate(wa, wb), sum,
	    sum_sq > 0 ? sum * sum / (count * sum_sq) : 0,
	    (unsigned long)first_sec_B);
	printf("t0=%.3f\n", t0_ns && t_first_ns ? (t0_ns - t_first_ns) / 1e9 : -1);
	if (command && run_start_ns) {
		uint64_t before_from = wa, after_from = run_end_ns + 200000000ULL;
		double before = bytes_between(NULL, before_from, run_start_ns) /
		    span_s(before_from, run_start_ns);
		double after = bytes_between(NULL, after_from, end_ns) /
		    span_s(after_from, end_ns);
		double mid = (before + after) / 2, reaction_ms = -1;
		/* The first 20 ms slot after set started whose rate and the
		 * next slot's are both on the new side of the midpoint. */
		for (uint64_t s = run_start_ns; s + 40000000ULL < end_ns;
		    s += 20000000ULL) {
			double r1 = bytes_between(NULL, s, s + 20000000ULL) / 0.02;
			double r2 = bytes_between(NULL, s + 20000000ULL,
			    s + 40000000ULL) / 0.02;
			if ((after > before) ? (r1 > mid && r2 > mid) :
			    (r1 < mid && r2 < mid)) {
				reaction_ms = (s - run_start_ns) / 1e6;
				break;
			}
		}
		printf("run_start=%.3f\nrun_end=%.3f\nbefore_rate=%.1f\n"
		    "after_rate=%.1f\nreaction_ms=%.0f\n",
		    (run_start_ns - t_first_ns) / 1e9,
		    (run_end_ns - t_first_ns) / 1e9, before, after, reaction_ms);
	}
	if (timeline_path && t_first_ns) {
		FILE *tl = fopen(timeline_path, "w");
		if (!tl)
			die("write the timeline");
		for (uint64_t s = t_first_ns; s + 100000000ULL <= end_ns;
		    s += 100000000ULL)
			fprintf(tl, "%.2f %.1f\n", (s - t_first_ns) / 1e9 + 0.1,
			    bytes_between(NULL, s, s + 100000000ULL) /
			    span_s(s, s + 100000000ULL));
		fclose(tl);
	}
	return 0;
}

/* ---- bulk, cps, spawn ---- */

static int
bulk(int argc, char **argv)
{
	uint64_t want_B = 0, got_B = 0, begin_ns, first_ns = 0, t;
	const char *hold_path = NULL;
	int opt, fd;

	while ((opt = getopt(argc, argv, "s:k:")) != -1) {
		if (opt == 's')
			want_B = strtoull(optarg, NULL, 10);
		else if (opt == 'k')
			hold_path = optarg;
		else
			usage();
	}
	if (optind != argc - 1 || !want_B)
		usage();
	begin_ns = now_ns();
	fd = connect_to(argv[optind]);
	while (got_B < want_B) {
		ssize_t got = read(fd, buffer, BUF_B);
		if (got <= 0)
			break;
		if (!first_ns)
			first_ns = now_ns();
		got_B += got;
	}
	t = now_ns();
	printf("bytes=%lu\nseconds=%.4f\nrate=%.1f\nsetup_ms=%.2f\n",
	    (unsigned long)got_B, (t - begin_ns) / 1e9,
	    got_B / ((t - begin_ns) / 1e9), (first_ns - begin_ns) / 1e6);
	fflush(stdout);
	if (hold_path) {
		/* Keep the connection (so the relay process) until the file
		 * is removed: its CPU time is read while it still runs. */
		FILE *hold = fopen(hold_path, "w");
		if (!hold)
			die("create the hold file");
		fclose(hold);
		for (int i = 0; i < 2000 && access(hold_path, F_OK) == 0; i++)
			usleep(5000);
	}
	close(fd);
	return got_B < want_B;
}

static int
cps(int argc, char **argv)
{
	unsigned count = 200, warm = 10, failures = 0, gap_ms = 0;
	uint64_t *lat_ns, begin_ns = 0;
	int opt;

	while ((opt = getopt(argc, argv, "n:g:")) != -1) {
		if (opt == 'n')
			count = strtoul(optarg, NULL, 10);
		else if (opt == 'g')
			gap_ms = strtoul(optarg, NULL, 10);
		else
			usage();
	}
	if (optind != argc - 1 || count < 2)
		usage();
	if (!(lat_ns = calloc(count, sizeof(*lat_ns))))
		die("allocate");
	for (unsigned i = 0; i < count + warm; i++) {
		uint64_t t = now_ns();
		int fd;
		ssize_t got, total = 0;

		if (i == warm)
			begin_ns = t;
		fd = connect_to(argv[optind]);
		while ((got = read(fd, buffer, BUF_B)) > 0)
			total += got;
		close(fd);
		if (total != 16)
			failures++;
		if (i >= warm)
			lat_ns[i - warm] = now_ns() - t;
		if (gap_ms) {
			struct timespec gap = { gap_ms / 1000,
			    (long)(gap_ms % 1000) * 1000000L };

			nanosleep(&gap, NULL);
		}
	}
	print_latencies(lat_ns, count, now_ns() - begin_ns);
	printf("failures=%u\n", failures);
	return 0;
}

static int
spawn_floor(int argc, char **argv)
{
	unsigned count = 200;
	uint64_t *lat_ns, begin_ns;
	int opt, status;

	while ((opt = getopt(argc, argv, "n:")) != -1) {
		if (opt != 'n')
			usage();
		count = strtoul(optarg, NULL, 10);
	}
	if (optind != argc - 1 || count < 2)
		usage();
	if (!(lat_ns = calloc(count, sizeof(*lat_ns))))
		die("allocate");
	char *child_argv[] = { argv[optind], NULL };
	begin_ns = now_ns();
	for (unsigned i = 0; i < count; i++) {
		uint64_t t = now_ns();
		pid_t pid;

		if ((errno = posix_spawn(&pid, argv[optind], NULL, NULL,
		    child_argv, environ)))
			die("spawn");
		waitpid(pid, &status, 0);
		lat_ns[i] = now_ns() - t;
	}
	print_latencies(lat_ns, count, now_ns() - begin_ns);
	return 0;
}

int
main(int argc, char **argv)
{
	if (argc < 2)
		usage();
	argv++, argc--;
	optind = 1;
	if (!strcmp(argv[0], "serve"))
		serve(argc, argv);
	if (!strcmp(argv[0], "recv"))
		return recv_main(argc, argv);
	if (!strcmp(argv[0], "bulk"))
		return bulk(argc, argv);
	if (!strcmp(argv[0], "cps"))
		return cps(argc, argv);
	if (!strcmp(argv[0], "spawn"))
		return spawn_floor(argc, argv);
	usage();
	return 100;
}
