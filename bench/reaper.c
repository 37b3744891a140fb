/* shaperd's cost per live relay and how fast it reaps the dead.  Starts
 * SHAPERD on a fresh state store in DIR, registers CONNS connection
 * records (default 8192) from one child process that then sleeps, and
 * prints shaperd's CPU time over SECONDS (default 15) as a share of one
 * core; then kills the child and prints how long until conns is empty. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "store.h"

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void
pause_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* utime + stime of pid, in clock ticks; -1 if gone. */
static long long
cpu_ticks(pid_t pid)
{
	char path[64], line[1024], *field;
	unsigned long long user, sys;
	FILE *file;
	int index;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((file = fopen(path, "r")) == NULL)
		return -1;
	field = fgets(line, sizeof(line), file);
	fclose(file);
	if (field == NULL || (field = strrchr(line, ')')) == NULL)
		return -1;
	/* Fields 14 and 15, counted after the ")" that ends comm (3). */
	for (index = 2; index < 13 && field; index++)
		field = strchr(field + 1, ' ');
	if (field == NULL || sscanf(field, " %llu %llu", &user, &sys) != 2)
		return -1;
	return (long long)(user + sys);
}

static int
count_conn(void *ctx, const struct conn_info *info)
{
	(void)info;
	(*(long *)ctx)++;
	return 0;
}

static long
live_conns(const char *dir)
{
	struct store *store;
	long count = 0;

	if (store_open(&store, dir, 0))
		return -1;
	if (store_conn_foreach(store, count_conn, &count))
		count = -1;
	store_close(store);
	return count;
}

/* The child: its own store (never across fork), CONNS records with its
 * pid, then sleep until killed. */
static void
hold(const char *dir, long conns, int ready_fd)
{
	struct store *store;
	struct conn_info info;
	long index;

	if (store_open(&store, dir, 0))
		_exit(111);
	for (index = 0; index < conns; index++) {
		memset(&info, 0, sizeof(info));
		info.pid = getpid();
		snprintf(info.peer, sizeof(info.peer), "127.0.0.1:%ld",
		    10000 + index % 50000);
		snprintf(info.remote, sizeof(info.remote), "127.0.0.1:80");
		if (store_conn_register(store, &info))
			_exit(111);
	}
	if (write(ready_fd, "", 1) != 1)
		_exit(111);
	for (;;)
		pause();
}

int
main(int argc, char **argv)
{
	long conns, seconds, left, ticks_per_s = sysconf(_SC_CLK_TCK);
	long long cpu_start, cpu_end;
	char byte, refiller[64];
	pid_t shaperd, holder;
	uint64_t killed_ns;
	int ready[2], status;
	size_t got;
	struct store *store;

	if (argc < 3) {
		fprintf(stderr, "usage: reaper SHAPERD DIR [CONNS [SECONDS]]\n");
		return 100;
	}
	conns = argc > 3 ? atol(argv[3]) : 8192;
	seconds = argc > 4 ? atol(argv[4]) : 15;
	if ((shaperd = fork()) == 0) {
		/* Its start and stop lines would only interleave with ours. */
		if (freopen("/dev/null", "w", stderr) == NULL)
			_exit(111);
		execl(argv[1], "shaperd", "-S", argv[2], (char *)NULL);
		_exit(111);
	}
	/* Refilling once it has published itself: its first tick empties
	 * the connections of a store it has not seen this boot. */
	for (got = 0; got == 0; pause_ms(100)) {
		if (waitpid(shaperd, &status, WNOHANG) == shaperd) {
			fprintf(stderr, "reaper: fatal: shaperd exited\n");
			return 111;
		}
		if (store_open(&store, argv[2], 0) == 0) {
			if (store_meta_get(store, "refiller", refiller,
			    sizeof(refiller), &got))
				got = 0;
			store_close(store);
		}
	}
	if (pipe(ready) < 0 || (holder = fork()) < 0)
		return 111;
	if (holder == 0)
		hold(argv[2], conns, ready[1]);
	if (read(ready[0], &byte, 1) != 1) {
		fprintf(stderr, "reaper: fatal: unable to register %ld "
		    "connections\n", conns);
		kill(shaperd, SIGTERM);
		return 111;
	}
	pause_ms(3000);		/* every relay seen and watched */
	cpu_start = cpu_ticks(shaperd);
	pause_ms(seconds * 1000);
	cpu_end = cpu_ticks(shaperd);
	printf("conns %ld live %ld shaperd_cpu %.4f of a core over %ld s\n",
	    conns, live_conns(argv[2]),
	    (double)(cpu_end - cpu_start) / ticks_per_s / seconds, seconds);
	kill(holder, SIGKILL);
	waitpid(holder, &status, 0);
	killed_ns = now_ns();
	for (left = live_conns(argv[2]); left > 0 &&
	    now_ns() - killed_ns < 10000000000u; left = live_conns(argv[2]))
		pause_ms(10);
	printf("reaped_all_s %.3f (left %ld)\n",
	    (now_ns() - killed_ns) / 1e9, left);
	kill(shaperd, SIGTERM);
	waitpid(shaperd, &status, 0);
	return left != 0;
}
