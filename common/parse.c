#include <ctype.h>
#include <string.h>
#include <strings.h>

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
