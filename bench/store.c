/*
 * bench/store: draws per second through the real store, from one process
 * and from several at once, all on one limit.  Not a test: it prints
 * figures (see bench/README.md).
 *
 * usage: store [-S DIR] [-t SECONDS] [-l LIMIT] [PROCS...]
 * Default: a fresh temporary state dir, 2 s per run, PROCS 1 16.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "parse.h"
#include "store.h"

#define PROCS_MAX	256

/* One drawer: open the store in this process (never across fork), draw
 * one quantum after another without sleeping, write the count to fd. */
static void
draw_loop(const char *dir, const char *limit, uint64_t end_ns, int fd)
{
	struct store *store;
	struct grant grant;
	uint64_t draws = 0, want_B = 1500;
	int rc;

	if ((rc = store_open(&store, dir, 0)))
		log_fatal(EXIT_SYSTEM, "unable to open the store: %s",
		    store_strerror(rc));
	while (monotonic_ns() < end_ns) {
		/* Check the clock once per 64 draws: it costs about as much
		 * as a draw on this path. */
		for (int batch = 0; batch < 64; batch++) {
			if ((rc = store_reserve(store, 0, limit, DIR_DOWN,
			    want_B, &grant)))
				log_fatal(EXIT_SYSTEM, "unable to draw: %s",
				    store_strerror(rc));
			draws++;
		}
	}
	store_close(store);
	if (write(fd, &draws, sizeof(draws)) != sizeof(draws))
		_exit(EXIT_SYSTEM);
}

static double
run(const char *dir, const char *limit, unsigned procs, uint64_t duration_ns)
{
	pid_t pids[PROCS_MAX];
	uint64_t start_ns, end_ns, total = 0, draws;
	int pipe_fd[2], status;
	unsigned index;

	if (pipe(pipe_fd) < 0)
		log_fatal(EXIT_SYSTEM, "unable to make a pipe: %s",
		    strerror(errno));
	/* Start together a little later, so the forks do not count. */
	start_ns = monotonic_ns() + 200000000ULL;
	end_ns = start_ns + duration_ns;
	for (index = 0; index < procs; index++) {
		pids[index] = fork();
		if (pids[index] < 0)
			log_fatal(EXIT_SYSTEM, "unable to fork: %s",
			    strerror(errno));
		if (pids[index] == 0) {
			close(pipe_fd[0]);
			while (monotonic_ns() < start_ns)
				usleep(1000);
			draw_loop(dir, limit, end_ns, pipe_fd[1]);
			_exit(0);
		}
	}
	close(pipe_fd[1]);
	for (index = 0; index < procs; index++) {
		if (read(pipe_fd[0], &draws, sizeof(draws)) == sizeof(draws))
			total += draws;
	}
	close(pipe_fd[0]);
	for (index = 0; index < procs; index++) {
		waitpid(pids[index], &status, 0);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			log_fatal(EXIT_SYSTEM, "a drawer failed");
	}
	return (double)total * NS_PER_SEC / (double)duration_ns;
}

int
main(int argc, char **argv)
{
	const char *dir_option = NULL, *limit = "bench";
	char dir[4096], tmp_dir[] = "/tmp/iprelay-bench.XXXXXX";
	struct store *store;
	struct limit_cfg cfg;
	uint64_t duration_ns = 2 * NS_PER_SEC, procs;
	int opt, rc, index, made_tmp = 0;
	unsigned default_procs[] = { 1, 16 };

	log_open("bench-store", LOG_TO_STDERR);
	while ((opt = getopt(argc, argv, "S:t:l:")) != -1) {
		switch (opt) {
		case 'S': dir_option = optarg; break;
		case 'l': limit = optarg; break;
		case 't':
			if (parse_duration_ns(optarg, &duration_ns) ||
			    duration_ns == 0)
				log_fatal(EXIT_USAGE, "bad seconds: '%s'",
				    optarg);
			break;
		default:
			fprintf(stderr, "usage: store [-S DIR] [-t SECONDS] "
			    "[-l LIMIT] [PROCS...]\n");
			return EXIT_USAGE;
		}
	}
	if (dir_option == NULL) {
		if (mkdtemp(tmp_dir) == NULL)
			log_fatal(EXIT_SYSTEM, "unable to make a state dir: %s",
			    strerror(errno));
		dir_option = tmp_dir;
		made_tmp = 1;
	}
	snprintf(dir, sizeof(dir), "%s", dir_option);
	if (!limit_name_valid(limit))
		log_fatal(EXIT_USAGE, "bad limit name: '%s'", limit);
	/* The limit exists with a rate far above what is drawn, so every
	 * draw does the full work (settle, reserve on each level, commit)
	 * and none is clipped to nothing. */
	if ((rc = store_open(&store, dir, 0)))
		log_fatal(EXIT_SYSTEM, "unable to open the store: %s",
		    store_strerror(rc));
	memset(&cfg, 0, sizeof(cfg));
	cfg.rate_Bps[0] = cfg.rate_Bps[1] = 1ULL << 34;
	if ((rc = store_limit_put(store, limit, &cfg)))
		log_fatal(EXIT_SYSTEM, "unable to set the limit: %s",
		    store_strerror(rc));
	/* Keep one opener holding the environment, as shaperd would. */
	printf("# store draws/s on one limit, %.1f s per run, state dir %s\n",
	    (double)duration_ns / NS_PER_SEC, dir);
	if (optind == argc) {
		for (index = 0; index < 2; index++)
			printf("procs %3u: %10.0f draws/s\n",
			    default_procs[index], run(dir, limit,
			    default_procs[index], duration_ns));
	}
	for (index = optind; index < argc; index++) {
		if (parse_uint(argv[index], 1, PROCS_MAX, &procs))
			log_fatal(EXIT_USAGE, "bad process count: '%s'",
			    argv[index]);
		printf("procs %3u: %10.0f draws/s\n", (unsigned)procs,
		    run(dir, limit, (unsigned)procs, duration_ns));
		fflush(stdout);
	}
	store_close(store);
	if (made_tmp) {
		char path[4200];

		snprintf(path, sizeof(path), "%s/%s", dir, STORE_FILE);
		unlink(path);
		snprintf(path, sizeof(path), "%s/%s-lock", dir, STORE_FILE);
		unlink(path);
		snprintf(path, sizeof(path), "%s/%s", dir, STORE_CONFIG_FILE);
		unlink(path);
		snprintf(path, sizeof(path), "%s/%s-lock", dir,
		    STORE_CONFIG_FILE);
		unlink(path);
		rmdir(dir);
	}
	return 0;
}
