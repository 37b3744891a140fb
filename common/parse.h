/* Parsers for everything a user types: rates, sizes, names, durations,
 * HOST:PORT, proxyspecs and CIDR address ranges.  Each returns 0 when the whole word was valid
 * and -1 otherwise, leaving the output untouched; callers name the word. */
#ifndef IPRELAY_PARSE_H
#define IPRELAY_PARSE_H

#include <stddef.h>
#include <stdint.h>

#define LIMIT_NAME_MAX	64	/* characters, not counting the NUL */
#define HOST_MAX	255	/* characters of a name or address */

struct hostport {
	char host[HOST_MAX + 1];	/* name or address, brackets removed */
	char port[6];			/* decimal 1-65535 */
};

struct proxyspec {
	char lport[6];			/* decimal 1-65535 */
	struct hostport remote;
};

int
parse_uint(const char *word, uint64_t min, uint64_t max, uint64_t *value);

int
parse_bytes(const char *word, uint64_t max, uint64_t *bytes);

int
parse_rate(const char *word, uint64_t *rate_Bps);

int
parse_duration_ns(const char *word, uint64_t *duration_ns);

int
limit_name_valid(const char *name);

int
parse_hostport(const char *word, struct hostport *hostport);

int
parse_proxyspec(const char *word, struct proxyspec *spec);

/* An address range: "10.0.0.0/8", "::1/128", a bare address (/32 or
 * /128).  An IPv4-mapped IPv6 range of prefix 96 or more is kept as the
 * IPv4 range it is, so it matches the same peers. */
#define CIDR_V4		4
#define CIDR_V6		6
#define CIDR_TEXT_MAX	49	/* "ffff:...:ffff/128", not counting the NUL */

struct cidr {
	unsigned char family;		/* CIDR_V4 or CIDR_V6 */
	unsigned char prefix_bits;	/* 0-32 or 0-128 */
	unsigned char addr[16];		/* network order, bits past the
					 * prefix zero; IPv4 in the first 4 */
};

int
parse_cidr(const char *word, struct cidr *cidr);

/* The canonical text ("10.0.0.0/8"); out_size at least CIDR_TEXT_MAX+1. */
void
cidr_format(const struct cidr *cidr, char *out, size_t out_size);

/* Whether the address addr of family (CIDR_V4: 4 bytes, CIDR_V6: 16)
 * lies in cidr.  An IPv4-mapped IPv6 address is compared as IPv4; an IPv4
 * client also lies in an IPv6 range covering its mapped form ::ffff:a.b.c.d
 * (::/0 holds every client). */
int
cidr_match(const struct cidr *cidr, int family, const unsigned char *addr);

/* The allow/deny decision for one peer: 0 to let it in, 1 to refuse it.
 * A deny entry that matches wins; else, when there are allow entries,
 * one must match.  On refusal *rule is the deny entry that matched, or
 * NULL when no allow entry did. */
int
acl_refuses(const struct cidr *allow, size_t nallow, const struct cidr *deny,
    size_t ndeny, int family, const unsigned char *addr,
    const struct cidr **rule);

#endif
