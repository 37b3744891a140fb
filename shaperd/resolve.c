/*
 * shaperd's non-blocking lookup of its Redis host's address (resolve.h):
 * getaddrinfo_a() started on demand, polled by the caller once a tick,
 * its answer kept for RESOLVE_TTL_NS.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "resolve.h"

void
resolve_init(struct resolve *resolve, const char *host)
{
	struct in6_addr any;

	memset(resolve, 0, sizeof(*resolve));
	snprintf(resolve->host, sizeof(resolve->host), "%s", host);
	if (inet_pton(AF_INET, host, &any) == 1 ||
	    inet_pton(AF_INET6, host, &any) == 1) {
		resolve->numeric = 1;
		snprintf(resolve->addr, sizeof(resolve->addr), "%s", host);
	}
}

static void
start(struct resolve *resolve)
{
	memset(&resolve->hints, 0, sizeof(resolve->hints));
	resolve->hints.ai_family = AF_UNSPEC;
	resolve->hints.ai_socktype = SOCK_STREAM;
	memset(&resolve->request, 0, sizeof(resolve->request));
	resolve->request.ar_name = resolve->host;
	resolve->request.ar_request = &resolve->hints;
	resolve->list[0] = &resolve->request;
	resolve->error = getaddrinfo_a(GAI_NOWAIT, resolve->list, 1, NULL);
	resolve->running = resolve->error == 0;
}

/* The lookup ended: keep its first IPv4 address, else its first one, as
 * hiredis itself would (it asks for IPv4 first). */
static void
finish(struct resolve *resolve, uint64_t now_ns)
{
	struct addrinfo *all = resolve->request.ar_result, *found, *next;
	char text[sizeof(resolve->addr)];

	found = all;
	for (next = all; next; next = next->ai_next)
		if (next->ai_family == AF_INET) {
			found = next;
			break;
		}

	resolve->running = 0;
	resolve->error = gai_error(&resolve->request);
	if (resolve->error == 0 && found == NULL)
		resolve->error = EAI_NONAME;
	if (resolve->error == 0 &&
	    (resolve->error = getnameinfo(found->ai_addr, found->ai_addrlen,
	    text, sizeof(text), NULL, 0, NI_NUMERICHOST)) == 0) {
		memcpy(resolve->addr, text, sizeof(text));
		resolve->found_ns = now_ns;
	}
	if (all)
		freeaddrinfo(all);
	resolve->request.ar_result = NULL;
}

int
resolve_address(struct resolve *resolve, uint64_t now_ns, const char **addr)
{
	if (resolve->numeric) {
		*addr = resolve->addr;
		return 0;
	}
	if (resolve->running &&
	    gai_error(&resolve->request) != EAI_INPROGRESS) {
		finish(resolve, now_ns);
		/* Reported once; the next call starts another lookup. */
		if (resolve->error && resolve->addr[0] == '\0')
			return EHOSTUNREACH;
	}
	if (!resolve->running && (resolve->addr[0] == '\0' || resolve->stale ||
	    now_ns - resolve->found_ns >= RESOLVE_TTL_NS)) {
		resolve->stale = 0;
		start(resolve);
	}
	if (resolve->addr[0] != '\0') {
		*addr = resolve->addr;
		return 0;
	}
	return resolve->running ? EINPROGRESS : EHOSTUNREACH;
}

void
resolve_stale(struct resolve *resolve)
{
	resolve->stale = 1;
}

const char *
resolve_error(const struct resolve *resolve)
{
	return resolve->error == EAI_SYSTEM ? strerror(errno) :
	    gai_strerror(resolve->error);
}

int
resolve_cancel(struct resolve *resolve)
{
	const struct gaicb *list[1] = { &resolve->request };
	struct timespec wait = { 0, 100 * 1000 * 1000 };

	if (!resolve->running)
		return 0;
	if (gai_cancel(&resolve->request) == EAI_NOTCANCELED)
		(void)gai_suspend(list, 1, &wait);
	if (gai_error(&resolve->request) == EAI_INPROGRESS)
		return -1;
	finish(resolve, 0);
	return 0;
}
