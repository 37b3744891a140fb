/* store_open cost: the pre-open file check walks every page of the store,
 * and every relay spawn pays it.  Fills a store in DIR with N connection
 * records (default 8000), then times ROUNDS store_open+store_close pairs
 * and prints the median and the mean wall time per open, and the mean CPU
 * time (less swayed by a loaded machine).  "relay" after ROUNDS opens as a
 * relay does (STORE_CONFIG_READ: the configuration read-only). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store.h"

static uint64_t
now_ns(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int
by_value(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

int
main(int argc, char **argv)
{
	struct store *store;
	struct conn_info info;
	uint64_t *open_ns, total_ns = 0, start_ns, cpu_start_ns, cpu_ns;
	long conns, rounds, index;
	int rc, open_flags;

	if (argc < 2) {
		fprintf(stderr, "usage: store-open DIR [CONNS [ROUNDS [relay]]]\n");
		return 100;
	}
	conns = argc > 2 ? atol(argv[2]) : 8000;
	rounds = argc > 3 ? atol(argv[3]) : 200;
	open_flags = argc > 4 && strcmp(argv[4], "relay") == 0 ?
	    STORE_CONFIG_READ : 0;
	open_ns = calloc((size_t)rounds, sizeof(*open_ns));
	if (open_ns == NULL || rounds < 1)
		return 111;
	if ((rc = store_open(&store, argv[1], 0))) {
		fprintf(stderr, "store-open: fatal: unable to open: %s\n",
		    store_strerror(rc));
		return 111;
	}
	for (index = 0; index < conns; index++) {
		memset(&info, 0, sizeof(info));
		info.pid = getpid();
		snprintf(info.peer, sizeof(info.peer), "127.0.0.1:%ld",
		    10000 + index % 50000);
		snprintf(info.remote, sizeof(info.remote), "127.0.0.1:80");
		if ((rc = store_conn_register(store, &info))) {
			fprintf(stderr, "store-open: fatal: unable to "
			    "register: %s\n", store_strerror(rc));
			return 111;
		}
	}
	store_close(store);
	cpu_start_ns = now_ns(CLOCK_PROCESS_CPUTIME_ID);
	for (index = 0; index < rounds; index++) {
		start_ns = now_ns(CLOCK_MONOTONIC);
		if ((rc = store_open(&store, argv[1], open_flags))) {
			fprintf(stderr, "store-open: fatal: unable to open: "
			    "%s\n", store_strerror(rc));
			return 111;
		}
		store_close(store);
		open_ns[index] = now_ns(CLOCK_MONOTONIC) - start_ns;
		total_ns += open_ns[index];
	}
	cpu_ns = now_ns(CLOCK_PROCESS_CPUTIME_ID) - cpu_start_ns;
	qsort(open_ns, (size_t)rounds, sizeof(*open_ns), by_value);
	printf("conns %ld rounds %ld median_us %.1f mean_us %.1f cpu_us %.1f\n",
	    conns, rounds, open_ns[rounds / 2] / 1e3, total_ns / 1e3 / rounds,
	    cpu_ns / 1e3 / rounds);
	return 0;
}
