/*
 * iprelay's forwarders: binding a local port on every local_addrs address,
 * resolving the remote (at once at start-up, through getaddrinfo_a at the
 * prompt), adding, replacing and deleting forwarders, the limit names they
 * use, and accepting their clients (each handed to a relay started ahead,
 * or to a relay spawned for it: relay/spawn.c).
 *
 * force_from and the remotes' address families: a relay given a source
 * address resolves its remote in that family only, so a source of a family
 * a remote does not have fails every connection ("no connection to the
 * remote host").  Both orders are refused at once: set force_from when no
 * forwarder can use it (a warning names those that cannot when others
 * can), set forwarder when its remote cannot use the force_from set.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "iprelay.h"

int
address_is_any(const char *word)
{
	return strcmp(word, "0.0.0.0") == 0 || strcmp(word, "::") == 0;
}

struct forwarder *
forwarder_find(int number)
{
	size_t index;

	for (index = 0; index < relay.nforwarders; index++)
		if (relay.forwarders[index].number == number)
			return &relay.forwarders[index];
	return NULL;
}

void
forwarder_limit_name(int number, char *name, size_t size)
{
	snprintf(name, size, "%s.%d", relay.limit_name, number);
}

const char *
forwarder_limit_for(int number)
{
	static char name[LIMIT_NAME_MAX + 8];
	struct forwarder *forwarder = forwarder_find(number);

	if (forwarder && forwarder->has_own_limit) {
		forwarder_limit_name(number, name, sizeof(name));
		return name;
	}
	return relay.limit_name;
}

void
forwarder_close_listeners(struct forwarder *forwarder)
{
	size_t index;

	for (index = 0; index < forwarder->nlisten; index++)
		close(forwarder->listen_fds[index]);
	forwarder->nlisten = 0;
}

/* Bind lport on every local_addrs address.  An IPv6 address the machine
 * cannot use is skipped when another address is bound; every other
 * failure is reported at once (no retry loop as the original had). */
static int
forwarder_bind(struct forwarder *forwarder, char *why, size_t why_size)
{
	char copy[sizeof(relay.set.local_addrs)], *saveptr, *token;
	struct addrinfo hints = {
		.ai_socktype = SOCK_STREAM,
		.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE,
	}, *result;
	int fd = -1, one = 1, rc, skipped_v6 = 0;

	forwarder->nlisten = 0;
	snprintf(copy, sizeof(copy), "%s", relay.set.local_addrs);
	for (token = strtok_r(copy, ",", &saveptr); token;
	    token = strtok_r(NULL, ",", &saveptr)) {
		rc = getaddrinfo(token, forwarder->spec.lport, &hints, &result);
		if (rc) {
			snprintf(why, why_size, "unable to use local address %s: %s",
			    token, gai_strerror(rc));
			goto fail;
		}
		fd = socket(result->ai_family, result->ai_socktype |
		    SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0 && result->ai_family == AF_INET6 &&
		    errno == EAFNOSUPPORT) {
			freeaddrinfo(result);
			skipped_v6 = 1;
			continue;
		}
		if (fd < 0) {
			snprintf(why, why_size, "unable to create a socket: %s",
			    strerror(errno));
			freeaddrinfo(result);
			goto fail;
		}
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (result->ai_family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one,
			    sizeof(one));
		if (bind(fd, result->ai_addr, result->ai_addrlen) < 0) {
			if (result->ai_family == AF_INET6 &&
			    errno == EADDRNOTAVAIL) {
				close(fd);
				freeaddrinfo(result);
				skipped_v6 = 1;
				continue;
			}
			snprintf(why, why_size, "unable to bind %s port %s: %s",
			    token, forwarder->spec.lport, strerror(errno));
			close(fd);
			freeaddrinfo(result);
			goto fail;
		}
		freeaddrinfo(result);
		/* The kernel's own cap (somaxconn, 4096 on Debian 12): a
		 * burst of connections past a short queue loses the client's
		 * last handshake ACK and waits for retransmits, seconds.
		 * The command line's forwarders listen once the store is open
		 * (forwarders_listen). */
		if (relay.store && listen(fd, SOMAXCONN) < 0) {
			snprintf(why, why_size, "unable to listen on %s port %s: %s",
			    token, forwarder->spec.lport, strerror(errno));
			close(fd);
			goto fail;
		}
		forwarder->listen_fds[forwarder->nlisten++] = fd;
	}
	if (forwarder->nlisten == 0) {
		snprintf(why, why_size, "unable to bind port %s: %s",
		    forwarder->spec.lport, skipped_v6 ?
		    "IPv6 is not available here" : "no local address");
		return -1;
	}
	return 0;
fail:
	forwarder_close_listeners(forwarder);
	return -1;
}

/* The command line's forwarders are bound before the store is open (a
 * port in use is a fatal error before anything is printed), and listen
 * only once the instance's limit has its rate (open_store): a client that
 * waited for the port and then changed that limit had its change undone
 * by the start-up's own rate. */
int
forwarders_listen(char *why, size_t why_size)
{
	struct forwarder *forwarder;
	size_t index, fd_index;

	for (index = 0; index < relay.nforwarders; index++) {
		forwarder = &relay.forwarders[index];
		for (fd_index = 0; fd_index < forwarder->nlisten; fd_index++)
			if (listen(forwarder->listen_fds[fd_index],
			    SOMAXCONN) < 0) {
				snprintf(why, why_size, "unable to listen on "
				    "port %s: %s", forwarder->spec.lport,
				    strerror(errno));
				return -1;
			}
	}
	return 0;
}

static unsigned
family_of(const char *address)
{
	unsigned char addr[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, address, addr) == 1 ? FAMILY_V4 :
	    FAMILY_V6;
}

static const char *
family_name(unsigned families)
{
	return families == FAMILY_V4 ? "IPv4" : families == FAMILY_V6 ?
	    "IPv6" : families ? "IPv4 and IPv6" : "none";
}

int
force_from_refused(const char *source)
{
	unsigned in_use = 0, want;
	size_t index;

	if (address_is_any(source))
		return 0;
	want = family_of(source);
	for (index = 0; index < relay.nforwarders; index++)
		in_use |= relay.forwarders[index].families;
	if (relay.nforwarders && !(in_use & want)) {
		out("  Bad force_from: %s is an %s address and the forwarders' "
		    "remotes are %s only: every connection would fail "
		    "(0.0.0.0 = any)\n", source, family_name(want),
		    family_name(in_use));
		return 1;
	}
	for (index = 0; index < relay.nforwarders; index++)
		if (!(relay.forwarders[index].families & want))
			out("  Warning: forwarder %d's remote %s has no %s "
			    "address: its connections will fail from %s.\n",
			    relay.forwarders[index].number,
			    relay.forwarders[index].spec.remote.host,
			    family_name(want), source);
	return 0;
}

/* The outcome of resolving remote: its first address in shown and the
 * families of all in *families, or why not.  Frees result. */
static int
resolved(const struct hostport *remote, int rc, struct addrinfo *result,
    char *shown, size_t size, unsigned *families, char *why,
    size_t why_size)
{
	struct addrinfo *each;

	if (rc) {
		snprintf(why, why_size, "unable to resolve %s: %s", remote->host,
		    rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
		return -1;
	}
	*families = 0;
	for (each = result; each; each = each->ai_next)
		*families |= each->ai_family == AF_INET ? FAMILY_V4 :
		    each->ai_family == AF_INET6 ? FAMILY_V6 : 0;
	if (result->ai_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)(void *)
		    result->ai_addr)->sin_addr, shown, (socklen_t)size);
	else
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)(void *)
		    result->ai_addr)->sin6_addr, shown, (socklen_t)size);
	freeaddrinfo(result);
	return 0;
}

/* Resolve the remote host now, as the original did, to show the address
 * and to refuse a name that does not resolve.  iprelay-conn resolves it
 * again per connection and tries every address. */
static int
resolve_remote(const struct hostport *remote, char *shown, size_t size,
    unsigned *families, char *why, size_t why_size)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *result;
	int rc;

	rc = getaddrinfo(remote->host, remote->port, &hints, &result);
	return resolved(remote, rc, result, shown, size, families, why,
	    why_size);
}

/* Add or replace forwarder number, its remote already resolved to shown.
 * On failure the old one (if any) is kept when it can still listen. */
static int
forwarder_install(int number, const struct proxyspec *spec,
    const char *shown, unsigned families, char *why, size_t why_size)
{
	struct forwarder fresh = { .number = number, .spec = *spec,
	    .own_limit_fd = -1, .families = families };
	struct forwarder *old = forwarder_find(number);
	char old_why[256];

	if (!address_is_any(relay.set.force_from) &&
	    !(families & family_of(relay.set.force_from))) {
		snprintf(why, why_size, "its remote %s has no %s address, and "
		    "force_from is %s: every connection would fail (set "
		    "force_from 0.0.0.0 first)", spec->remote.host,
		    family_name(family_of(relay.set.force_from)),
		    relay.set.force_from);
		return -1;
	}
	snprintf(fresh.remote_shown, sizeof(fresh.remote_shown), "%s", shown);
	if (old == NULL && relay.nforwarders == FORWARDERS_MAX) {
		snprintf(why, why_size, "too many forwarders (at most %d)",
		    FORWARDERS_MAX);
		return -1;
	}
	/* The same port may be bound by the forwarder being replaced. */
	if (old)
		forwarder_close_listeners(old);
	if (forwarder_bind(&fresh, why, why_size) < 0) {
		if (old && forwarder_bind(old, old_why, sizeof(old_why)) < 0) {
			snprintf(why + strlen(why), why_size - strlen(why),
			    "; the old forwarder %d is gone too: %s", number,
			    old_why);
			forwarder_limit_drop(old);
			*old = relay.forwarders[--relay.nforwarders];
		}
		return -1;
	}
	spares_let_go();
	if (old) {
		fresh.nconns = old->nconns;
		fresh.own_rate_Bps = old->own_rate_Bps;
		fresh.has_own_limit = old->has_own_limit;
		fresh.own_limit_fd = old->own_limit_fd;
		*old = fresh;
	} else {
		relay.forwarders[relay.nforwarders++] = fresh;
	}
	return 0;
}

/* set forwarder with a name: resolved by getaddrinfo_a so the loop goes
 * on; the outcome is announced when the signal comes (resolve_done). */
int
resolve_start(int number, const struct proxyspec *spec)
{
	struct gaicb *list[1] = { &relay.resolving.request };
	struct sigevent event = {
		.sigev_notify = SIGEV_SIGNAL,
		.sigev_signo = SIGRTMIN,
	};
	int rc;

	memset(&relay.resolving, 0, sizeof(relay.resolving));
	relay.resolving.number = number;
	relay.resolving.spec = *spec;
	relay.resolving.hints.ai_socktype = SOCK_STREAM;
	relay.resolving.request.ar_name = relay.resolving.spec.remote.host;
	relay.resolving.request.ar_service = relay.resolving.spec.remote.port;
	relay.resolving.request.ar_request = &relay.resolving.hints;
	rc = getaddrinfo_a(GAI_NOWAIT, list, 1, &event);
	if (rc == 0)
		relay.resolving.active = 1;
	return rc;
}

void
resolve_done(void)
{
	char shown[INET6_ADDRSTRLEN], why[512];
	unsigned families;
	int rc, number = relay.resolving.number;

	if (!relay.resolving.active)
		return;
	rc = gai_error(&relay.resolving.request);
	if (rc == EAI_INPROGRESS)
		return;
	relay.resolving.active = 0;
	if (resolved(&relay.resolving.spec.remote, rc,
	    relay.resolving.request.ar_result, shown, sizeof(shown),
	    &families, why, sizeof(why)) < 0 || forwarder_install(number,
	    &relay.resolving.spec, shown, families, why, sizeof(why)) < 0)
		say(LOG_WARNING, "  forwarder %d not set: %s", number, why);
	else
		say(LOG_INFO, "  .... determined as: %s\n  forwarder %d set.",
		    shown, number);
}

/* At start-up, before the loop: resolving may block here. */
int
forwarder_set(int number, const struct proxyspec *spec, char *why,
    size_t why_size)
{
	char shown[INET6_ADDRSTRLEN];
	unsigned families;

	if (resolve_remote(&spec->remote, shown, sizeof(shown), &families,
	    why, why_size) < 0)
		return -1;
	return forwarder_install(number, spec, shown, families, why,
	    why_size);
}

int
forwarder_delete(int number)
{
	struct forwarder *forwarder = forwarder_find(number);
	size_t index;

	if (forwarder == NULL)
		return -1;
	forwarder_close_listeners(forwarder);
	spares_let_go();
	forwarder_limit_drop(forwarder);
	/* Its open connections go on, counted against nothing. */
	for (index = 0; index < relay.nchildren; index++)
		if (relay.children[index].forwarder == number)
			relay.children[index].forwarder = -1;
	*forwarder = relay.forwarders[--relay.nforwarders];
	return 0;
}

void
accept_on(struct forwarder *forwarder, int listen_fd)
{
	struct sockaddr_storage addr;
	socklen_t addr_len;
	char peer[PEER_MAX + 1];
	struct child *child;
	pid_t pid;
	int fd, count, rc, number = forwarder->number;

	for (count = 0; count < ACCEPTS_PER_WAKE; count++) {
		addr_len = sizeof(addr);
		fd = accept4(listen_fd, (struct sockaddr *)&addr, &addr_len,
		    SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM) {
				say(LOG_WARNING, "** forwarder %d: unable to "
				    "accept: %s", number, strerror(errno));
				forwarder->paused = 1;
			}
			break;
		}
		format_sockaddr((struct sockaddr *)&addr, peer, sizeof(peer));
		if (forwarder->nconns >= relay.max_conns) {
			say(LOG_WARNING, "** forwarder %d: %u connections "
			    "already (-m), closing the one from %s", number,
			    forwarder->nconns, peer);
			close(fd);
			continue;
		}
		child = hand_to_spare(forwarder, fd, peer);
		rc = child ? 0 : spawn_conn(forwarder, fd, 0, &pid);
		close(fd);
		if (rc) {
			say(LOG_ERR, "** forwarder %d: unable to spawn %s for "
			    "%s: %s", number, relay.conn_path, peer,
			    strerror(rc));
			continue;
		}
		if (!child && (child = child_add(pid, number, peer)) == NULL) {
			/* Untracked, it would escape -m and kill all. */
			kill(pid, SIGTERM);
			say(LOG_ERR, "** forwarder %d: out of memory, closing "
			    "the connection from %s", number, peer);
			continue;
		}
		forwarder->nconns++;
		child_opened(child, number);
	}
	if (count > 0 && forwarder->spare_due_ns == 0)
		forwarder->spare_due_ns = monotonic_ns() + SPARE_DELAY_NS;
}
