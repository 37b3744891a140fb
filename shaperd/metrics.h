/*
 * shaperd's metrics: the Prometheus text exposition format 0.0.4
 * (exposition.c) served over HTTP/1.x from inside shaperd's own poll loop
 * (metrics.c).  Nothing
 * in it blocks: sockets are non-blocking, a scrape's figures are copied
 * out of the store in short read transactions that end before the first
 * byte is written, and a client that stops reading only keeps its own
 * buffer until its deadline.
 */
#ifndef IPRELAY_METRICS_H
#define IPRELAY_METRICS_H

#include <poll.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

#define METRICS_LISTENERS_MAX	8	/* --metrics given, plus sockets passed */
#define METRICS_CLIENTS_MAX	8	/* scrapes served at once */
#define METRICS_POLLFDS_MAX	(METRICS_LISTENERS_MAX + METRICS_CLIENTS_MAX)

/* What shaperd itself knows, read at every scrape (shaperd keeps it). */
struct metrics_process {
	int active;			/* holds the refiller lock */
	uint64_t ticks;			/* refiller ticks run */
	uint64_t tick_errors;		/* ticks that failed */
	uint64_t reaped;		/* relay records reaped */
	uint64_t start_unix_ns;		/* CLOCK_REALTIME at start */
};

struct metrics;

/* The exporter on the store, reading process figures from *process. */
int
metrics_create(struct metrics **metrics, struct store *store,
    const struct metrics_process *process);

void
metrics_destroy(struct metrics *metrics);

/* Whether ADDR:PORT is a word metrics_listen takes (checked with the
 * other options, before anything is opened). */
int
metrics_addr_valid(const char *addr_port);

/* Listen on ADDR:PORT (a numeric IPv4 address, or an IPv6 address in
 * brackets).  0, EINVAL for a bad word, ENOSPC past
 * METRICS_LISTENERS_MAX, else the errno of socket/bind/listen. */
int
metrics_listen(struct metrics *metrics, const char *addr_port);

/* Take over a listening stream socket passed by systemd (sd_listen_fds):
 * 0, ENOTSOCK when fd is not one, ENOSPC when there are too many. */
int
metrics_adopt(struct metrics *metrics, int fd);

/* The descriptors to poll now, into fds (room for METRICS_POLLFDS_MAX);
 * returns how many. */
size_t
metrics_pollfds(struct metrics *metrics, struct pollfd *fds);

/* After poll(): serve what fds (as filled above, revents set) say is
 * ready, and drop clients past their deadline. */
void
metrics_serve(struct metrics *metrics, const struct pollfd *fds, size_t nfds,
    uint64_t now_ns);

/* The next client deadline (CLOCK_MONOTONIC ns), UINT64_MAX for none. */
uint64_t
metrics_next_deadline_ns(const struct metrics *metrics);

/* exposition.c: the text of one scrape into a malloc'd buffer, 0 or
 * ENOMEM.  A store that cannot be read gives iprelay_store_up 0 and no
 * limit or store figures, not an error. */
int
metrics_render(struct store *store, const struct metrics_process *process,
    char **text, size_t *len);

#endif
