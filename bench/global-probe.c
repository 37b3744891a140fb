/*
 * global-probe: samples one limit in several state dirs (the "hosts" of
 * bench/global.sh) every PERIOD_MS, for SECONDS, and prints one line per
 * sample and host:
 *     t_ns host total_down share_down state nconns stats_unix_ns
 * t_ns is CLOCK_MONOTONIC (the relays' clock).  Read-only: one read
 * transaction per host per sample, nothing written.
 *
 * usage: global-probe LIMIT PERIOD_MS SECONDS DIR...
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "parse.h"
#include "store.h"

#define HOSTS_MAX	16

int
main(int argc, char **argv)
{
	struct store *stores[HOSTS_MAX];
	struct limit_info info;
	struct timespec pause;
	enum global_state state;
	uint64_t period_ms, seconds, end_ns, now_ns, next_ns, share_Bps;
	int nhosts, host, rc;

	log_open("global-probe", LOG_TO_STDERR);
	if (argc < 5 || argc - 4 > HOSTS_MAX ||
	    parse_uint(argv[2], 1, 10000, &period_ms) ||
	    parse_uint(argv[3], 1, 100000, &seconds)) {
		fprintf(stderr, "usage: global-probe LIMIT PERIOD_MS SECONDS "
		    "DIR...\n");
		return EXIT_USAGE;
	}
	nhosts = argc - 4;
	for (host = 0; host < nhosts; host++)
		if ((rc = store_open(&stores[host], argv[4 + host],
		    STORE_RDONLY)))
			log_fatal(EXIT_SYSTEM, "unable to open %s: %s",
			    argv[4 + host], store_strerror(rc));
	now_ns = monotonic_ns();
	end_ns = now_ns + seconds * NS_PER_SEC;
	for (next_ns = now_ns; next_ns < end_ns;
	    next_ns += period_ms * 1000000) {
		now_ns = monotonic_ns();
		if (next_ns > now_ns) {
			pause.tv_sec = (time_t)((next_ns - now_ns) / NS_PER_SEC);
			pause.tv_nsec = (long)((next_ns - now_ns) % NS_PER_SEC);
			nanosleep(&pause, NULL);
		}
		for (host = 0; host < nhosts; host++) {
			if (store_limit_get(stores[host], argv[1], &info))
				continue;
			now_ns = monotonic_ns();
			share_Bps = global_rate_at(&info.cfg, &info.global,
			    DIR_DOWN, now_ns, &state);
			printf("%" PRIu64 " %d %" PRIu64 " %" PRIu64 " %s %"
			    PRIu32 " %" PRIu64 "\n", now_ns, host + 1,
			    info.total_B[DIR_DOWN], share_Bps,
			    global_state_name(state), info.nconns,
			    info.stats_unix_ns);
		}
		fflush(stdout);
	}
	for (host = 0; host < nhosts; host++)
		store_close(stores[host]);
	return 0;
}
