#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "bucket.h"
#include "parse.h"

int
parse_uint(const char *word, uint64_t min, uint64_t max, uint64_t *value)
{
	uint64_t accum = 0, digit;
	const char *cursor;

	if (word == NULL || *word == '\0')
		return -1;
	for (cursor = word; *cursor; cursor++) {
		if (!isdigit((unsigned char)*cursor))
			return -1;
		digit = (uint64_t)(*cursor - '0');
		if (accum > (UINT64_MAX - digit) / 10)
			return -1;
		accum = accum * 10 + digit;
	}
	if (accum < min || accum > max)
		return -1;
	*value = accum;
	return 0;
}

int
parse_bytes(const char *word, uint64_t max, uint64_t *bytes)
{
	char digits[32];
	size_t len;
	unsigned shift = 0;
	uint64_t count;

	if (word == NULL)
		return -1;
	len = strlen(word);
	if (len == 0 || len >= sizeof(digits))
		return -1;
	memcpy(digits, word, len + 1);
	switch (digits[len - 1]) {
	case 'K': case 'k': shift = 10; break;
	case 'M': case 'm': shift = 20; break;
	case 'G': case 'g': shift = 30; break;
	default: break;
	}
	if (shift)
		digits[--len] = '\0';
	if (parse_uint(digits, 0, max >> shift, &count) < 0)
		return -1;
	*bytes = count << shift;
	return 0;
}

int
parse_rate(const char *word, uint64_t *rate_Bps)
{
	if (word && strcasecmp(word, "unlimited") == 0) {
		*rate_Bps = 0;
		return 0;
	}
	return parse_bytes(word, RATE_MAX, rate_Bps);
}

int
parse_duration_ns(const char *word, uint64_t *duration_ns)
{
	/* Seconds with up to nine decimals: "10", "0.25". */
	uint64_t whole_s, frac_ns = 0, scale = 100000000ULL;
	char whole[24];
	const char *dot, *cursor;
	size_t len;

	if (word == NULL || *word == '\0')
		return -1;
	dot = strchr(word, '.');
	len = dot ? (size_t)(dot - word) : strlen(word);
	if (len == 0 || len >= sizeof(whole))
		return -1;
	memcpy(whole, word, len);
	whole[len] = '\0';
	if (parse_uint(whole, 0, 1000ULL * 1000 * 1000, &whole_s) < 0)
		return -1;
	if (dot) {
		if (dot[1] == '\0')
			return -1;
		for (cursor = dot + 1; *cursor; cursor++) {
			if (!isdigit((unsigned char)*cursor) || scale == 0)
				return -1;
			frac_ns += (uint64_t)(*cursor - '0') * scale;
			scale /= 10;
		}
	}
	*duration_ns = whole_s * NS_PER_SEC + frac_ns;
	return 0;
}

int
limit_name_valid(const char *name)
{
	size_t len;

	if (name == NULL)
		return 0;
	len = strlen(name);
	if (len == 0 || len > LIMIT_NAME_MAX)
		return 0;
	return strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789_.-") == len;
}

static int
port_valid(const char *word, char out[6])
{
	uint64_t port;

	if (strlen(word) > 5 || parse_uint(word, 1, 65535, &port) < 0)
		return 0;
	strcpy(out, word);
	return 1;
}

int
parse_hostport(const char *word, struct hostport *hostport)
{
	struct hostport parsed;
	const char *host, *colon, *close;
	size_t host_len;

	if (word == NULL)
		return -1;
	if (word[0] == '[') {
		close = strchr(word, ']');
		if (close == NULL || close[1] != ':')
			return -1;
		host = word + 1;
		host_len = (size_t)(close - host);
		colon = close + 1;
		/* A bracketed host must hold an IPv6 address, not a name
		 * nor a bare IPv4 address. */
		if (host_len == 0 || strspn(host, "0123456789abcdefABCDEF:.") <
		    host_len || memchr(host, ':', host_len) == NULL)
			return -1;
	} else {
		colon = strrchr(word, ':');
		if (colon == NULL)
			return -1;
		host = word;
		host_len = (size_t)(colon - word);
		if (memchr(host, ':', host_len) != NULL)
			return -1;	/* bare IPv6: must be bracketed */
		if (host_len == 0 || strspn(host, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
		    "abcdefghijklmnopqrstuvwxyz0123456789.-_") < host_len)
			return -1;
	}
	if (host_len > HOST_MAX)
		return -1;
	memcpy(parsed.host, host, host_len);
	parsed.host[host_len] = '\0';
	if (!port_valid(colon + 1, parsed.port))
		return -1;
	*hostport = parsed;
	return 0;
}

int
parse_proxyspec(const char *word, struct proxyspec *spec)
{
	struct proxyspec parsed;
	const char *colon;
	char lport[8];
	size_t len;

	if (word == NULL || (colon = strchr(word, ':')) == NULL)
		return -1;
	len = (size_t)(colon - word);
	if (len == 0 || len >= sizeof(lport))
		return -1;
	memcpy(lport, word, len);
	lport[len] = '\0';
	if (!port_valid(lport, parsed.lport))
		return -1;
	if (parse_hostport(colon + 1, &parsed.remote) < 0)
		return -1;
	*spec = parsed;
	return 0;
}

/* A mapped IPv4 address (::ffff:a.b.c.d): the 4 bytes at its end, else
 * NULL. */
static const unsigned char *
mapped_v4(const unsigned char addr[16])
{
	static const unsigned char prefix[12] = {
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff,
	};

	return memcmp(addr, prefix, sizeof(prefix)) == 0 ? addr + 12 : NULL;
}

/* Do the first bits of a and b agree? */
static int
prefix_equal(const unsigned char *a, const unsigned char *b, unsigned bits)
{
	unsigned whole = bits / 8, rest = bits % 8;
	unsigned char mask;

	if (memcmp(a, b, whole) != 0)
		return 0;
	if (rest == 0)
		return 1;
	mask = (unsigned char)(0xff << (8 - rest));
	return ((a[whole] ^ b[whole]) & mask) == 0;
}

int
parse_cidr(const char *word, struct cidr *cidr)
{
	struct cidr parsed;
	char host[INET6_ADDRSTRLEN];
	const char *slash, *v4;
	unsigned max_bits, bit;
	uint64_t bits;
	size_t len;

	if (word == NULL)
		return -1;
	slash = strchr(word, '/');
	len = slash ? (size_t)(slash - word) : strlen(word);
	if (len == 0 || len >= sizeof(host))
		return -1;
	memcpy(host, word, len);
	host[len] = '\0';
	memset(&parsed, 0, sizeof(parsed));
	if (inet_pton(AF_INET, host, parsed.addr) == 1) {
		parsed.family = CIDR_V4;
		max_bits = 32;
	} else if (strchr(host, ':') &&
	    inet_pton(AF_INET6, host, parsed.addr) == 1) {
		parsed.family = CIDR_V6;
		max_bits = 128;
	} else {
		return -1;
	}
	bits = max_bits;
	/* Digits only, at most three: no sign, space or "0x". */
	if (slash && (strlen(slash + 1) > 3 ||
	    parse_uint(slash + 1, 0, max_bits, &bits) < 0))
		return -1;
	parsed.prefix_bits = (unsigned char)bits;
	if (parsed.family == CIDR_V6 && bits >= 96 &&
	    (v4 = (const char *)mapped_v4(parsed.addr)) != NULL) {
		memmove(parsed.addr, v4, 4);
		memset(parsed.addr + 4, 0, 12);
		parsed.family = CIDR_V4;
		parsed.prefix_bits = (unsigned char)(bits - 96);
		max_bits = 32;
	}
	/* Host bits are dropped: 10.1.2.3/8 is 10.0.0.0/8. */
	for (bit = parsed.prefix_bits; bit < max_bits; bit++)
		parsed.addr[bit / 8] &= (unsigned char)~(0x80 >> (bit % 8));
	*cidr = parsed;
	return 0;
}

void
cidr_format(const struct cidr *cidr, char *out, size_t out_size)
{
	char host[INET6_ADDRSTRLEN];

	if (inet_ntop(cidr->family == CIDR_V4 ? AF_INET : AF_INET6,
	    cidr->addr, host, sizeof(host)) == NULL)
		snprintf(host, sizeof(host), "?");
	snprintf(out, out_size, "%s/%u", host, cidr->prefix_bits);
}

/*
 * An IPv4 client is matched against IPv4 ranges as itself, and against
 * IPv6 ranges in the form a dual-stack socket shows it, ::ffff:a.b.c.d:
 * so a range under /96 that covers ::ffff:0:0/96 (::/0, ::/64, ...)
 * holds every IPv4 client, whichever socket it came in on (-A ::/0
 * refuses everyone).  Ranges of /96 and longer inside it were made IPv4
 * by parse_cidr().
 */
int
cidr_match(const struct cidr *cidr, int family, const unsigned char *addr)
{
	static const unsigned char prefix[12] = {
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff,
	};
	unsigned char mapped[16];
	const unsigned char *v4;

	if (family == CIDR_V6 && (v4 = mapped_v4(addr)) != NULL) {
		family = CIDR_V4;
		addr = v4;
	}
	if (cidr->family == CIDR_V4)
		return family == CIDR_V4 &&
		    prefix_equal(addr, cidr->addr, cidr->prefix_bits);
	if (family == CIDR_V4) {
		memcpy(mapped, prefix, sizeof(prefix));
		memcpy(mapped + 12, addr, 4);
		addr = mapped;
	}
	return prefix_equal(addr, cidr->addr, cidr->prefix_bits);
}

int
acl_refuses(const struct cidr *allow, size_t nallow, const struct cidr *deny,
    size_t ndeny, int family, const unsigned char *addr,
    const struct cidr **rule)
{
	size_t index;

	*rule = NULL;
	for (index = 0; index < ndeny; index++)
		if (cidr_match(&deny[index], family, addr)) {
			*rule = &deny[index];
			return 1;
		}
	if (nallow == 0)
		return 0;
	for (index = 0; index < nallow; index++)
		if (cidr_match(&allow[index], family, addr))
			return 0;
	return 1;
}
