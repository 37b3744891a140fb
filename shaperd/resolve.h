/*
 * The address of shaperd's Redis by name without blocking its loop
 * (issue 16: a hung Redis, or a DNS server that does not answer, must
 * delay no tick).  hiredis resolves a name with a blocking getaddrinfo()
 * on every connect; shaperd hands it a numeric address instead, looked
 * up with glibc's getaddrinfo_a() and polled once a tick.
 */
#ifndef IPRELAY_RESOLVE_H
#define IPRELAY_RESOLVE_H

#include <netdb.h>
#include <stdint.h>

#include "parse.h"

/* An address found is used for this long, then looked up again (the old
 * one is used until the new one is there). */
#define RESOLVE_TTL_NS	(30ULL * 1000 * 1000 * 1000)

struct resolve {
	char host[HOST_MAX + 1];
	char addr[64];			/* numeric; "" = none yet */
	uint64_t found_ns;		/* CLOCK_MONOTONIC of addr */
	int running;			/* a lookup is out */
	int numeric;			/* host is an address already */
	int stale;			/* look it up again at the next call */
	int error;			/* of the last lookup (EAI_*), 0 */
	struct addrinfo hints;
	struct gaicb request;
	struct gaicb *list[1];
};

/* host: a name or a numeric IPv4 or IPv6 address (no brackets). */
void
resolve_init(struct resolve *resolve, const char *host);

/* 0 and *addr when there is an address to connect to (a lookup may run
 * meanwhile for a fresher one); EINPROGRESS while the first lookup runs;
 * EHOSTUNREACH when it failed (resolve_error() says why; the next call
 * starts another). */
int
resolve_address(struct resolve *resolve, uint64_t now_ns, const char **addr);

/* A connect to the address failed: look the name up again next time. */
void
resolve_stale(struct resolve *resolve);

const char *
resolve_error(const struct resolve *resolve);

/* Cancels a lookup; waits for it up to 100 ms (its thread writes into
 * *resolve): 0, or -1 when it still runs and *resolve must not be freed. */
int
resolve_cancel(struct resolve *resolve);

#endif
