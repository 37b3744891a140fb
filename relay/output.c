/*
 * iprelay's output: command answers on stdout (out), events on the
 * terminal without tearing the line being typed or in the log (say), the
 * prompt and the banner, and what the show commands print (show all,
 * show stats, show VARIABLE).
 */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iprelay.h"

/* Command output: stdout. */
void
out(const char *fmt, ...)
{
	va_list args;

	va_start(args, fmt);
	vfprintf(stdout, fmt, args);
	va_end(args);
}

/* An event (a connection opened or closed, a refusal): the terminal when
 * interactive, without tearing the line being typed; the log otherwise. */
void
say(int priority, const char *fmt, ...)
{
	char text[1024];
	va_list args;

	va_start(args, fmt);
	vsnprintf(text, sizeof(text), fmt, args);
	va_end(args);
	if (relay.daemonise) {
		log_line(priority, "%s", text);
		return;
	}
	fflush(stdout);
	if (relay.editor.active) {
		fprintf(stderr, "\r\033[K%s\n", text);
		fflush(stderr);
		/* Stopping, the last line stays the last: no prompt after
		 * it for the shell's output to join. */
		if (!relay.stopping)
			editor_redraw();
		return;
	}
	fprintf(stderr, "%s\n", text);
	fflush(stderr);
}

void
prompt(void)
{
	if (!relay.prompt)
		return;
	if (relay.editor.active) {
		editor_redraw();
		return;
	}
	fputs("> ", stdout);
	fflush(stdout);
}

void
print_version(void)
{
	fprintf(stderr, "\niprelay Version: %s\n"
	    "A C rebuild of ip_relay.pl 0.71 by Gavin Stewart\n\n", VERSION);
	fflush(stderr);
}

void
format_sockaddr(const struct sockaddr *addr, char *buf, size_t size)
{
	char host[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	if (addr->sa_family == AF_INET) {
		const struct sockaddr_in *in4 = (const void *)addr;

		inet_ntop(AF_INET, &in4->sin_addr, host, sizeof(host));
		port = ntohs(in4->sin_port);
		snprintf(buf, size, "%s:%u", host, port);
	} else if (addr->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)addr;

		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		port = ntohs(in6->sin6_port);
		snprintf(buf, size, "[%s]:%u", host, port);
	} else {
		snprintf(buf, size, "?");
	}
}

void
format_remote(const struct hostport *remote, char *buf, size_t size)
{
	if (strchr(remote->host, ':'))
		snprintf(buf, size, "[%s]:%s", remote->host, remote->port);
	else
		snprintf(buf, size, "%s:%s", remote->host, remote->port);
}

static void
format_rate(const char *name, char *buf, size_t size)
{
	struct limit_info info;
	int rc;

	rc = store_limit_get(relay.store, name, &info);
	if (rc) {
		snprintf(buf, size, "unknown (%s)", store_strerror(rc));
		return;
	}
	if (info.cfg.rate_Bps[DIR_UP] == info.cfg.rate_Bps[DIR_DOWN])
		snprintf(buf, size, "%llu",
		    (unsigned long long)info.cfg.rate_Bps[DIR_UP]);
	else
		snprintf(buf, size, "%llu up, %llu down",
		    (unsigned long long)info.cfg.rate_Bps[DIR_UP],
		    (unsigned long long)info.cfg.rate_Bps[DIR_DOWN]);
}

/* The average over the last span_s seconds; over the connection's whole
 * life while it is younger than that (or not sampled twice yet), not 0. */
static double
child_rate_kBps(const struct child *child, const struct conn_info *info,
    double up_s, unsigned span_s, int dir)
{
	unsigned older;

	if (up_s < span_s || child->filled < 2)
		return (double)info->bytes[dir] / 1024.0 / up_s;
	if (span_s > child->filled - 1)
		span_s = child->filled - 1;
	older = (child->head + SAMPLES - span_s) % SAMPLES;
	return (double)(child->bytes[child->head][dir] -
	    child->bytes[older][dir]) / 1024.0 / span_s;
}

/* "10.0.0.0/8,::1/128", or "none". */
static void
format_acl(const struct cidr *list, size_t count, char *out_text,
    size_t out_size)
{
	char text[CIDR_TEXT_MAX + 1];
	size_t index, len = 0;

	snprintf(out_text, out_size, "none");
	for (index = 0; index < count && len < out_size; index++) {
		cidr_format(&list[index], text, sizeof(text));
		len += (size_t)snprintf(out_text + len, out_size - len, "%s%s",
		    index ? "," : "", text);
	}
}

void
show_variable(enum variable variable)
{
	char rate[64], acl[ACL_MAX * (CIDR_TEXT_MAX + 1) + 8];
	const char *name = variable_names[variable];

	switch (variable) {
	case VAR_LOCAL_ADDRS: out("%s\t%s\n", name, relay.set.local_addrs); break;
	case VAR_FORCE_FROM: out("%s\t%s\n", name, relay.set.force_from); break;
	case VAR_DEBUG: out("%s\t%llu\n", name,
	    (unsigned long long)relay.set.debug); break;
	case VAR_DUMP_TRAFF: out("%s\t%llu\n", name,
	    (unsigned long long)relay.set.dump_traff); break;
	case VAR_IDLE_OUT: out("%s\t%llu\n", name,
	    (unsigned long long)relay.set.idle_out_s); break;
	case VAR_DEAD_COUNT: out("%s\t%llu\n", name,
	    (unsigned long long)relay.set.dead_count); break;
	case VAR_DATA_SIZE: out("%s\t%llu\n", name,
	    (unsigned long long)relay.set.data_size_B); break;
	case VAR_BANDWIDTH:
		format_rate(relay.limit_name, rate, sizeof(rate));
		out("%s\t%s\n", name, rate);
		break;
	case VAR_ALLOW:
		format_acl(relay.set.allow, relay.set.nallow, acl, sizeof(acl));
		out("%s\t%s\n", name, acl);
		break;
	case VAR_DENY:
		format_acl(relay.set.deny, relay.set.ndeny, acl, sizeof(acl));
		out("%s\t%s\n", name, acl);
		break;
	case NVARIABLES:
		break;
	}
}

static int
compare_forwarders(const void *a, const void *b)
{
	const struct forwarder *left = a, *right = b;

	return (left->number > right->number) - (left->number < right->number);
}

void
show_all(void)
{
	struct forwarder sorted[FORWARDERS_MAX];
	char name[LIMIT_NAME_MAX + 8], rate[64];
	size_t index;

	for (index = 0; index < NVARIABLES; index++)
		show_variable((enum variable)index);
	out("forwarders:\n");
	memcpy(sorted, relay.forwarders, relay.nforwarders * sizeof(sorted[0]));
	qsort(sorted, relay.nforwarders, sizeof(sorted[0]), compare_forwarders);
	for (index = 0; index < relay.nforwarders; index++) {
		/* As a proxyspec reads: an IPv6 address in brackets. */
		out(strchr(sorted[index].remote_shown, ':') ?
		    "  forwarder %d %s:[%s]:%s" : "  forwarder %d %s:%s:%s",
		    sorted[index].number, sorted[index].spec.lport,
		    sorted[index].remote_shown, sorted[index].spec.remote.port);
		if (sorted[index].has_own_limit) {
			forwarder_limit_name(sorted[index].number, name,
			    sizeof(name));
			format_rate(name, rate, sizeof(rate));
			out(" (limit %s: %s)", name, rate);
		}
		out("\n");
	}
}

static void
nice_time(uint64_t seconds, char *buf, size_t size)
{
	uint64_t days = seconds / 86400, hours = seconds / 3600 % 24;
	uint64_t mins = seconds / 60 % 60, secs = seconds % 60;
	int len = 0;

	buf[0] = '\0';
	if (days)
		len += snprintf(buf + len, size - (size_t)len, "%llu days, ",
		    (unsigned long long)days);
	if (days || hours)
		len += snprintf(buf + len, size - (size_t)len, "%llu hours, ",
		    (unsigned long long)hours);
	if (days || hours || mins)
		len += snprintf(buf + len, size - (size_t)len, "%llu mins, ",
		    (unsigned long long)mins);
	snprintf(buf + len, size - (size_t)len, "%llu secs.",
	    (unsigned long long)secs);
}

static int
show_conn_visit(void *ctx, const struct conn_info *info)
{
	struct child *child = child_of(info);
	uint64_t now_ns = realtime_ns(), up_ns, idle_ns;
	char up[64], idle[64];
	char peer[4 * sizeof(info->peer)], remote[4 * sizeof(info->remote)];
	double up_s;

	(void)ctx;
	if (child == NULL)
		return 0;
	child->conn_id = info->id;
	up_ns = now_ns > info->start_unix_ns ? now_ns - info->start_unix_ns : 0;
	idle_ns = now_ns > info->last_unix_ns ? now_ns - info->last_unix_ns : 0;
	nice_time(up_ns / NS_PER_SEC, up, sizeof(up));
	nice_time(idle_ns / NS_PER_SEC, idle, sizeof(idle));
	/* The original divided by whole seconds up and crashed in the
	 * first one; a fraction of a second is a fine divisor. */
	up_s = (double)up_ns / 1e9;
	if (up_s < 0.001)
		up_s = 0.001;
	/* The relay wrote peer and remote: never raw to a terminal. */
	log_escape_field(peer, sizeof(peer), info->peer);
	log_escape_field(remote, sizeof(remote), info->remote);
	out("    %s -> %s (CONN%06u)\n", peer, remote, info->id);
	out("        Connection Up: %s Idle: %s\n", up, idle);
	out("        Bytes transferred: %llu in, %llu out.\n",
	    (unsigned long long)info->bytes[DIR_DOWN],
	    (unsigned long long)info->bytes[DIR_UP]);
	out("        Data rate       : %0.2f kB/s in, %0.2f kB/s out.\n",
	    (double)info->bytes[DIR_DOWN] / 1024.0 / up_s,
	    (double)info->bytes[DIR_UP] / 1024.0 / up_s);
	out("            (5 sec avg.): %0.2f kB/s in, %0.2f kB/s out.\n",
	    child_rate_kBps(child, info, up_s, 5, DIR_DOWN),
	    child_rate_kBps(child, info, up_s, 5, DIR_UP));
	out("            (1 min avg.): %0.2f kB/s in, %0.2f kB/s out.\n",
	    child_rate_kBps(child, info, up_s, 60, DIR_DOWN),
	    child_rate_kBps(child, info, up_s, 60, DIR_UP));
	return 0;
}

void
show_stats(void)
{
	struct limit_info info;
	int rc;

	out("  Total connections: %zu\n", live_connections());
	rc = store_limit_get(relay.store, relay.limit_name, &info);
	if (rc)
		out("  Bandwidth: unknown (%s)\n", store_strerror(rc));
	else if (info.cfg.rate_Bps[DIR_UP] == 0 && info.cfg.rate_Bps[DIR_DOWN] == 0)
		out("  Bandwidth is not set.\n");
	else if (info.cfg.rate_Bps[DIR_UP] == info.cfg.rate_Bps[DIR_DOWN])
		out("  Bandwidth set to: %llu bytes / sec.\n",
		    (unsigned long long)info.cfg.rate_Bps[DIR_UP]);
	else
		out("  Bandwidth set to: %llu bytes / sec up, %llu down.\n",
		    (unsigned long long)info.cfg.rate_Bps[DIR_UP],
		    (unsigned long long)info.cfg.rate_Bps[DIR_DOWN]);
	out("  Limit: %s\n", relay.limit_name);
	out("  Forwarding connections for:\n");
	rc = store_conn_foreach(relay.store, show_conn_visit, NULL);
	if (rc)
		out("  unable to read the connections: %s\n", store_strerror(rc));
}
