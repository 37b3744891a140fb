/*
 * drawer: a relay-like process for the store tests.  It registers as a
 * connection, waits for a common start time, then draws one quantum at a
 * time from a limit through the real store, sleeping until each grant's
 * release time as a relay would before sending.  At the end it writes one
 * JSON line: bytes granted in all, and bytes whose release time fell in
 * the window [start, start + seconds), which is what the bucket contract
 * bounds.
 *
 * usage: drawer [-S DIR] [-l LIMIT] [-d up|down] [-a START_NS] [-t SECONDS]
 *               [-o REPORT] [-s]
 *   -a   CLOCK_MONOTONIC ns to start at (default now)
 *   -s   spin: draw again at once without sleeping (many transactions, so a
 *        kill -9 often lands inside one)
 *   -w FILE  wait until FILE holds the start (CLOCK_MONOTONIC ns), so a
 *        test can set it once every drawer has registered
 *   -r RATE  an application that wants no more than RATE bytes/s: draws
 *        no sooner than its own pace allows (tests/t/global.t)
 * SIGTERM ends the window early: the report is written all the same, with
 * the window's length in "seconds".
 * drawer -p SECONDS prints CLOCK_MONOTONIC ns SECONDS from now (a common
 * start time for -a; shells cannot read that clock) and exits.
 */
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "parse.h"
#include "refiller.h"
#include "store.h"

static volatile sig_atomic_t stopping;

static void
on_term(int signo)
{
	(void)signo;
	stopping = 1;
}

static void
sleep_until(uint64_t when_ns)
{
	struct timespec until = {
		.tv_sec = (time_t)(when_ns / NS_PER_SEC),
		.tv_nsec = (long)(when_ns % NS_PER_SEC),
	};

	while (!stopping && clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME,
	    &until, NULL) == EINTR)
		;
}

static uint64_t
wait_start_file(const char *path)
{
	char text[32];
	uint64_t start_ns;
	ssize_t len;
	int fd;

	for (;;) {
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			len = read(fd, text, sizeof(text) - 1);
			close(fd);
			if (len > 0) {
				text[len] = '\0';
				text[strcspn(text, "\n")] = '\0';
				if (parse_uint(text, 1, UINT64_MAX, &start_ns) == 0)
					return start_ns;
			}
		}
		if (stopping)
			return monotonic_ns();
		usleep(10000);
	}
}

int
main(int argc, char **argv)
{
	const char *dir_option = NULL, *limit = "", *report = NULL;
	const char *start_file = NULL;
	struct sigaction action = { .sa_handler = on_term };
	char dir[4096], line[512];
	struct store *store;
	struct conn_info conn;
	struct grant grant;
	uint64_t start_ns = 0, duration_ns = 3 * NS_PER_SEC, end_ns;
	uint64_t granted_B = 0, window_B = 0, draws = 0, want_B;
	uint64_t moved_B[2] = { 0, 0 }, quantum_B[2], pace_Bps = 0, paced_ns;
	int opt, rc, dir_index = DIR_DOWN, spin = 0, shaped[2], fd, len;

	log_open("drawer", LOG_TO_STDERR);
	while ((opt = getopt(argc, argv, "S:l:d:a:t:o:sp:w:r:")) != -1) {
		switch (opt) {
		case 'p':
			if (parse_duration_ns(optarg, &start_ns))
				log_fatal(EXIT_USAGE, "bad seconds: '%s'",
				    optarg);
			printf("%" PRIu64 "\n", monotonic_ns() + start_ns);
			return 0;
		case 'S': dir_option = optarg; break;
		case 'l': limit = optarg; break;
		case 'd':
			if (strcmp(optarg, "up") == 0)
				dir_index = DIR_UP;
			else if (strcmp(optarg, "down") == 0)
				dir_index = DIR_DOWN;
			else
				log_fatal(EXIT_USAGE, "bad direction: '%s'",
				    optarg);
			break;
		case 'a':
			if (parse_uint(optarg, 0, UINT64_MAX, &start_ns))
				log_fatal(EXIT_USAGE, "bad start: '%s'", optarg);
			break;
		case 't':
			if (parse_duration_ns(optarg, &duration_ns))
				log_fatal(EXIT_USAGE, "bad seconds: '%s'",
				    optarg);
			break;
		case 'o': report = optarg; break;
		case 's': spin = 1; break;
		case 'w': start_file = optarg; break;
		case 'r':
			if (parse_rate(optarg, &pace_Bps) || pace_Bps == 0)
				log_fatal(EXIT_USAGE, "bad rate: '%s'", optarg);
			break;
		default:
			fprintf(stderr, "usage: drawer [-S DIR] [-l LIMIT] "
			    "[-d up|down] [-a START_NS] [-t SECONDS] "
			    "[-o REPORT] [-s]\n");
			return EXIT_USAGE;
		}
	}
	sigaction(SIGTERM, &action, NULL);
	if ((rc = store_dir_resolve(dir_option, dir, sizeof(dir))))
		log_fatal(EXIT_USAGE, "unable to find the state dir: %s",
		    strerror(rc));
	if ((rc = store_open(&store, dir, 0)))
		log_fatal(EXIT_SYSTEM, "unable to open the store: %s",
		    store_strerror(rc));
	memset(&conn, 0, sizeof(conn));
	conn.pid = getpid();
	conn.pid_start = refiller_proc_start(conn.pid);
	snprintf(conn.limit, sizeof(conn.limit), "%s", limit);
	snprintf(conn.peer, sizeof(conn.peer), "drawer:%d", (int)conn.pid);
	snprintf(conn.remote, sizeof(conn.remote), "nowhere:0");
	if ((rc = store_conn_register(store, &conn)))
		log_fatal(EXIT_SYSTEM, "unable to register: %s",
		    store_strerror(rc));
	if (start_file)
		start_ns = wait_start_file(start_file);
	if (start_ns == 0)
		start_ns = monotonic_ns();
	end_ns = start_ns + duration_ns;
	sleep_until(start_ns);
	/* The first quantum as a relay learns it: from the store, for the
	 * number of relays now on the limit. */
	if ((rc = store_account(store, conn.id, limit, moved_B, shaped,
	    quantum_B)))
		log_fatal(EXIT_SYSTEM, "unable to account: %s",
		    store_strerror(rc));
	want_B = quantum_B[dir_index];
	for (;;) {
		if ((rc = store_reserve(store, conn.id, limit, dir_index,
		    want_B, &grant)))
			log_fatal(EXIT_SYSTEM, "unable to draw: %s",
			    store_strerror(rc));
		draws++;
		granted_B += grant.bytes;
		if (grant.release_ns >= start_ns && grant.release_ns < end_ns)
			window_B += grant.bytes;
		if (grant.release_ns >= end_ns)
			break;
		if (!spin)
			sleep_until(grant.release_ns);
		if (pace_Bps) {
			/* Its own pace: the next draw when what it had so
			 * far would take this long at pace_Bps. */
			paced_ns = start_ns + (uint64_t)((unsigned __int128)
			    granted_B * NS_PER_SEC / pace_Bps);
			if (paced_ns >= end_ns)
				break;
			sleep_until(paced_ns);
		}
		else if (monotonic_ns() >= end_ns)
			break;
		if (stopping) {
			/* Bytes released after now are not in the window. */
			end_ns = monotonic_ns();
			if (grant.release_ns > end_ns)
				window_B -= grant.bytes;
			break;
		}
		want_B = grant.quantum_B;
	}
	store_conn_unregister(store, conn.id);
	store_close(store);
	len = snprintf(line, sizeof(line), "{\"pid\":%d,\"id\":%" PRIu32
	    ",\"granted\":%" PRIu64 ",\"window\":%" PRIu64 ",\"draws\":%"
	    PRIu64 ",\"last_quantum\":%" PRIu64 ",\"seconds\":%.3f}\n",
	    (int)conn.pid, conn.id, granted_B, window_B, draws, want_B,
	    (double)(end_ns - start_ns) / NS_PER_SEC);
	if (report == NULL) {
		fputs(line, stdout);
		return 0;
	}
	/* Many drawers append to one report: one write each, O_APPEND. */
	fd = open(report, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, line, (size_t)len) != len)
		log_fatal(EXIT_SYSTEM, "unable to write %s: %s", report,
		    strerror(errno));
	close(fd);
	return 0;
}
