/*
 * Every form the parsers accept, and every kind they refuse: rates, byte
 * counts, numbers, durations, limit names, HOST:PORT, proxyspecs and
 * CIDRs, and the allow/deny matcher.  A refused word must leave the output
 * untouched.
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "bucket.h"
#include "parse.h"
#include "tap.h"


/* A word as a TAP line can show it: control and non-ASCII bytes escaped. */
static const char *
shown(const char *word)
{
	static char buf[4][512];
	static int next;
	char *out = buf[next++ % 4];
	size_t len = 0;

	for (; *word && len < sizeof(buf[0]) - 5; word++) {
		unsigned char byte = (unsigned char)*word;

		if (byte < 0x20 || byte >= 0x7f)
			len += (size_t)sprintf(out + len, "\\x%02x", byte);
		else
			out[len++] = (char)byte;
	}
	out[len] = '\0';
	return out;
}

#define UNTOUCHED	0x5eed5eed5eed5eedULL

struct number_case {
	const char *word;
	int accepted;
	uint64_t value;
};

static void
check_rates(void)
{
	static const struct number_case cases[] = {
		{ "1024", 1, 1024 },
		{ "64K", 1, 65536 },
		{ "64k", 1, 65536 },
		{ "1m", 1, 1048576 },
		{ "1M", 1, 1048576 },
		{ "2G", 1, 2147483648ULL },
		{ "2g", 1, 2147483648ULL },
		{ "0", 1, 0 },
		{ "0K", 1, 0 },
		{ "unlimited", 1, 0 },
		{ "UNLIMITED", 1, 0 },
		{ "Unlimited", 1, 0 },
		{ "1", 1, 1 },
		{ "007", 1, 7 },
		{ "1024G", 1, 1ULL << 40 },		/* RATE_MAX */
		{ "1099511627776", 1, 1ULL << 40 },
		{ "1073741824K", 1, 1ULL << 40 },
		{ "1048576M", 1, 1ULL << 40 },
		{ "1099511627777", 0, 0 },		/* past RATE_MAX */
		{ "1025G", 0, 0 },
		{ "1073741825K", 0, 0 },
		{ "18446744073709551615", 0, 0 },
		{ "99999999999999999999999999", 0, 0 },
		{ "-1", 0, 0 },
		{ "+1", 0, 0 },
		{ "1.5K", 0, 0 },
		{ "1.5", 0, 0 },
		{ "10KB", 0, 0 },
		{ "10KiB", 0, 0 },
		{ "10T", 0, 0 },
		{ "10b", 0, 0 },
		{ "KK", 0, 0 },
		{ "1KK", 0, 0 },
		{ "K", 0, 0 },
		{ "M", 0, 0 },
		{ "", 0, 0 },
		{ " ", 0, 0 },
		{ " 1K", 0, 0 },
		{ "1K ", 0, 0 },
		{ "1 K", 0, 0 },
		{ "1\t", 0, 0 },
		{ "0x10", 0, 0 },
		{ "1e3", 0, 0 },
		{ "unlimit", 0, 0 },
		{ "unlimitedK", 0, 0 },
		{ "none", 0, 0 },
		{ "K1", 0, 0 },
	};
	size_t i;
	uint64_t rate;
	int rc;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		rate = UNTOUCHED;
		rc = parse_rate(cases[i].word, &rate);
		if (cases[i].accepted)
			ok(rc == 0 && rate == cases[i].value,
			    "rate '%s' is %" PRIu64 " B/s (got rc %d, %" PRIu64
			    ")", cases[i].word, cases[i].value, rc, rate);
		else
			ok(rc == -1 && rate == UNTOUCHED,
			    "rate '%s' refused, output untouched",
			    shown(cases[i].word));
	}
	rate = UNTOUCHED;
	ok(parse_rate(NULL, &rate) == -1 && rate == UNTOUCHED,
	    "rate NULL refused");
}

static void
check_bytes_and_uints(void)
{
	uint64_t value = UNTOUCHED;

	ok(parse_bytes("4K", 4096, &value) == 0 && value == 4096,
	    "bytes '4K' within a max of 4096");
	value = UNTOUCHED;
	ok(parse_bytes("5K", 4096, &value) == -1 && value == UNTOUCHED,
	    "bytes '5K' past a max of 4096 refused");
	ok(parse_bytes("1G", BURST_MAX, &value) == 0 && value == 1ULL << 30,
	    "bytes '1G' is 2^30");
	value = UNTOUCHED;
	ok(parse_bytes("123456789012345678901234567890123", UINT64_MAX,
	    &value) == -1 && value == UNTOUCHED,
	    "bytes: a word longer than any number refused");
	ok(parse_uint("18446744073709551615", 0, UINT64_MAX, &value) == 0 &&
	    value == UINT64_MAX, "uint: UINT64_MAX itself accepted");
	value = UNTOUCHED;
	ok(parse_uint("18446744073709551616", 0, UINT64_MAX, &value) == -1 &&
	    value == UNTOUCHED, "uint: UINT64_MAX + 1 refused");
	ok(parse_uint("184467440737095516150", 0, UINT64_MAX, &value) == -1,
	    "uint: ten times UINT64_MAX refused");
	ok(parse_uint("5", 1, 10, &value) == 0 && value == 5,
	    "uint: 5 in [1, 10]");
	ok(parse_uint("0", 1, 10, &value) == -1, "uint: 0 below a min of 1 "
	    "refused");
	ok(parse_uint("11", 1, 10, &value) == -1, "uint: 11 above a max of "
	    "10 refused");
	ok(parse_uint("", 0, 10, &value) == -1, "uint: empty refused");
	ok(parse_uint("1-", 0, 10, &value) == -1, "uint: trailing junk "
	    "refused");
}

static void
check_durations(void)
{
	static const struct number_case cases[] = {
		{ "10", 1, 10 * NS_PER_SEC },
		{ "0", 1, 0 },
		{ "0.25", 1, 250000000 },
		{ "1.5", 1, 1500000000 },
		{ "0.000000001", 1, 1 },
		{ "3000", 1, 3000 * NS_PER_SEC },
		{ "1000000000", 1, 1000000000 * NS_PER_SEC },
		{ "1000000001", 0, 0 },
		{ "0.0000000001", 0, 0 },		/* past ns */
		{ ".5", 0, 0 },
		{ "5.", 0, 0 },
		{ "1.2.3", 0, 0 },
		{ "-1", 0, 0 },
		{ "1e3", 0, 0 },
		{ "10s", 0, 0 },
		{ "1m", 0, 0 },
		{ "", 0, 0 },
		{ " 1", 0, 0 },
		{ "1 ", 0, 0 },
		{ "0.5 ", 0, 0 },
		{ "99999999999999999999999", 0, 0 },
	};
	size_t i;
	uint64_t duration;
	int rc;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		duration = UNTOUCHED;
		rc = parse_duration_ns(cases[i].word, &duration);
		if (cases[i].accepted)
			ok(rc == 0 && duration == cases[i].value,
			    "duration '%s' is %" PRIu64 " ns (got rc %d, %"
			    PRIu64 ")", cases[i].word, cases[i].value, rc,
			    duration);
		else
			ok(rc == -1 && duration == UNTOUCHED,
			    "duration '%s' refused, output untouched",
			    cases[i].word);
	}
}

static void
check_names(void)
{
	static const struct {
		const char *name;
		int valid;
	} cases[] = {
		{ "pop3", 1 }, { "a", 1 }, { "Total_2.bulk-x", 1 },
		{ "0", 1 }, { "under_score", 1 },
		{ "", 0 }, { "a b", 0 }, { "a/b", 0 }, { "a:b", 0 },
		{ "a\tb", 0 }, { "a\n", 0 }, { "caf\xc3\xa9", 0 },
		{ "semi;colon", 0 }, { "star*", 0 }, { "[x]", 0 },
		{ "quote\"", 0 }, { "back\\slash", 0 }, { "a,b", 0 },
	};
	char name[LIMIT_NAME_MAX + 2];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		ok(limit_name_valid(cases[i].name) == cases[i].valid,
		    "name '%s' %s", shown(cases[i].name),
		    cases[i].valid ? "valid" : "refused");
	memset(name, 'n', LIMIT_NAME_MAX);
	name[LIMIT_NAME_MAX] = '\0';
	ok(limit_name_valid(name), "name of %d characters valid",
	    LIMIT_NAME_MAX);
	name[LIMIT_NAME_MAX] = 'n';
	name[LIMIT_NAME_MAX + 1] = '\0';
	ok(!limit_name_valid(name), "name of %d characters refused",
	    LIMIT_NAME_MAX + 1);
	ok(!limit_name_valid(NULL), "name NULL refused");
}

static void
check_hostports(void)
{
	static const struct {
		const char *word;
		const char *host;	/* NULL: refused */
		const char *port;
	} cases[] = {
		{ "example.com:80", "example.com", "80" },
		{ "127.0.0.1:8080", "127.0.0.1", "8080" },
		{ "localhost:1", "localhost", "1" },
		{ "h:65535", "h", "65535" },
		{ "my-host_1.lan:110", "my-host_1.lan", "110" },
		{ "[::1]:80", "::1", "80" },
		{ "[2001:db8::1]:443", "2001:db8::1", "443" },
		{ "[::ffff:127.0.0.1]:25", "::ffff:127.0.0.1", "25" },
		{ "[FE80::1]:22", "FE80::1", "22" },
		{ "::1:80", NULL, NULL },		/* bare IPv6 */
		{ "2001:db8::1:443", NULL, NULL },
		{ "[::1]", NULL, NULL },
		{ "[::1]80", NULL, NULL },
		{ "[::1:80", NULL, NULL },
		{ "[]:80", NULL, NULL },
		{ "[host.name]:80", NULL, NULL },	/* a name in brackets */
		{ "[1.2.3.4]:80", NULL, NULL },		/* IPv4 in brackets */
		{ "[fe80::1%eth0]:80", NULL, NULL },
		{ "[::1]:80]", NULL, NULL },
		{ "host", NULL, NULL },
		{ "host:", NULL, NULL },
		{ ":80", NULL, NULL },
		{ "host:0", NULL, NULL },
		{ "host:65536", NULL, NULL },
		{ "host:100000", NULL, NULL },
		{ "host:-1", NULL, NULL },
		{ "host:http", NULL, NULL },
		{ "host:80 ", NULL, NULL },
		{ " host:80", NULL, NULL },
		{ "ho st:80", NULL, NULL },
		{ "host:8 0", NULL, NULL },
		{ "a/b:80", NULL, NULL },
		{ "", NULL, NULL },
	};
	struct hostport parsed, untouched;
	char longname[HOST_MAX + 8];
	size_t i;
	int rc;

	memset(&untouched, 'x', sizeof(untouched));
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		parsed = untouched;
		rc = parse_hostport(cases[i].word, &parsed);
		if (cases[i].host)
			ok(rc == 0 && strcmp(parsed.host, cases[i].host) == 0
			    && strcmp(parsed.port, cases[i].port) == 0,
			    "hostport '%s' is host '%s' port '%s'",
			    cases[i].word, cases[i].host, cases[i].port);
		else
			ok(rc == -1 && memcmp(&parsed, &untouched,
			    sizeof(parsed)) == 0,
			    "hostport '%s' refused, output untouched",
			    cases[i].word);
	}
	memset(longname, 'h', HOST_MAX);
	strcpy(longname + HOST_MAX, ":80");
	ok(parse_hostport(longname, &parsed) == 0 &&
	    strlen(parsed.host) == HOST_MAX, "hostport: a %d-character name",
	    HOST_MAX);
	memset(longname, 'h', HOST_MAX + 1);
	strcpy(longname + HOST_MAX + 1, ":80");
	ok(parse_hostport(longname, &parsed) == -1,
	    "hostport: a %d-character name refused", HOST_MAX + 1);
	ok(parse_hostport(NULL, &parsed) == -1, "hostport NULL refused");
}

static void
check_proxyspecs(void)
{
	static const struct {
		const char *word;
		const char *lport;	/* NULL: refused */
		const char *host;
		const char *port;
	} cases[] = {
		{ "8080:example.com:80", "8080", "example.com", "80" },
		{ "110:pop.example.net:110", "110", "pop.example.net", "110" },
		{ "8080:[::1]:80", "8080", "::1", "80" },
		{ "1:127.0.0.1:65535", "1", "127.0.0.1", "65535" },
		{ "65535:h:1", "65535", "h", "1" },
		{ "0:h:80", NULL, NULL, NULL },
		{ "65536:h:80", NULL, NULL, NULL },
		{ "8080:h:0", NULL, NULL, NULL },
		{ "8080:h:65536", NULL, NULL, NULL },
		{ "8080:h", NULL, NULL, NULL },
		{ "8080:h:", NULL, NULL, NULL },
		{ "8080::80", NULL, NULL, NULL },
		{ ":h:80", NULL, NULL, NULL },
		{ "8080", NULL, NULL, NULL },
		{ "8080:", NULL, NULL, NULL },
		{ "8080:::1:80", NULL, NULL, NULL },	/* bare IPv6 */
		{ "8080:2001:db8::1:80", NULL, NULL, NULL },
		{ "[::1]:8080:h:80", NULL, NULL, NULL },
		{ "x:h:80", NULL, NULL, NULL },
		{ "-1:h:80", NULL, NULL, NULL },
		{ "1234567:h:80", NULL, NULL, NULL },
		{ "8080:h:80:9", NULL, NULL, NULL },
		{ " 8080:h:80", NULL, NULL, NULL },
		{ "8080:h:80 ", NULL, NULL, NULL },
		{ "", NULL, NULL, NULL },
	};
	struct proxyspec spec, untouched;
	size_t i;
	int rc;

	memset(&untouched, 'x', sizeof(untouched));
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		spec = untouched;
		rc = parse_proxyspec(cases[i].word, &spec);
		if (cases[i].lport)
			ok(rc == 0 && strcmp(spec.lport, cases[i].lport) == 0
			    && strcmp(spec.remote.host, cases[i].host) == 0 &&
			    strcmp(spec.remote.port, cases[i].port) == 0,
			    "proxyspec '%s' is %s -> %s port %s",
			    cases[i].word, cases[i].lport, cases[i].host,
			    cases[i].port);
		else
			ok(rc == -1 && memcmp(&spec, &untouched,
			    sizeof(spec)) == 0,
			    "proxyspec '%s' refused, output untouched",
			    cases[i].word);
	}
	ok(parse_proxyspec(NULL, &spec) == -1, "proxyspec NULL refused");
}

static void
check_cidrs(void)
{
	static const struct {
		const char *word;
		const char *canonical;	/* NULL: refused */
	} cases[] = {
		{ "10.0.0.0/8", "10.0.0.0/8" },
		{ "10.1.2.3/8", "10.0.0.0/8" },		/* host bits dropped */
		{ "127.0.0.1", "127.0.0.1/32" },
		{ "127.0.0.1/32", "127.0.0.1/32" },
		{ "0.0.0.0/0", "0.0.0.0/0" },
		{ "192.168.1.255/23", "192.168.0.0/23" },
		{ "::1", "::1/128" },
		{ "::1/128", "::1/128" },
		{ "::/0", "::/0" },
		{ "2001:db8::1/32", "2001:db8::/32" },
		{ "2001:DB8::/33", "2001:db8::/33" },
		{ "fe80::1/10", "fe80::/10" },
		{ "::ffff:127.0.0.1", "127.0.0.1/32" },	/* mapped: IPv4 */
		{ "::ffff:10.0.0.0/104", "10.0.0.0/8" },
		{ "::ffff:0.0.0.0/96", "0.0.0.0/0" },
		{ "::ffff:0:0/95", "::fffe:0:0/95" },	/* wider: stays IPv6 */
		{ "1.2.3.4/33", NULL },
		{ "1.2.3.4/99", NULL },
		{ "::1/129", NULL },
		{ "::/200", NULL },
		{ "1.2.3.4/", NULL },
		{ "1.2.3.4/-1", NULL },
		{ "1.2.3.4/+8", NULL },
		{ "1.2.3.4/ 8", NULL },
		{ "1.2.3.4/8 ", NULL },
		{ "1.2.3.4/0008", NULL },
		{ "1.2.3.4/8/8", NULL },
		{ "1.2.3.4/0x8", NULL },
		{ "/8", NULL },
		{ "/", NULL },
		{ "", NULL },
		{ " 1.2.3.4", NULL },
		{ "1.2.3", NULL },
		{ "1.2.3.4.5", NULL },
		{ "256.0.0.0", NULL },
		{ "01.2.3.4", NULL },
		{ "10.0.0.0/8,11.0.0.0/8", NULL },
		{ "localhost", NULL },
		{ "[::1]", NULL },
		{ "[::1]/128", NULL },
		{ ":::1", NULL },
		{ "1::2::3", NULL },
		{ "fe80::1%lo", NULL },
		{ "junk", NULL },
		{ "2001:db8::g/32", NULL },
	};
	struct cidr cidr, untouched;
	char text[CIDR_TEXT_MAX + 1];
	size_t i;
	int rc;

	memset(&untouched, 'x', sizeof(untouched));
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cidr = untouched;
		rc = parse_cidr(cases[i].word, &cidr);
		if (cases[i].canonical) {
			text[0] = '\0';
			if (rc == 0)
				cidr_format(&cidr, text, sizeof(text));
			ok(rc == 0 && strcmp(text, cases[i].canonical) == 0,
			    "cidr '%s' is %s (got %s)", cases[i].word,
			    cases[i].canonical, rc == 0 ? text : "refused");
		} else {
			ok(rc == -1 && memcmp(&cidr, &untouched,
			    sizeof(cidr)) == 0,
			    "cidr '%s' refused, output untouched",
			    shown(cases[i].word));
		}
	}
	ok(parse_cidr(NULL, &cidr) == -1, "cidr NULL refused");
	cidr = untouched;
	ok(parse_cidr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128", &cidr)
	    == 0, "the longest IPv6 form parses");
	cidr_format(&cidr, text, sizeof(text));
	ok(strcmp(text, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128") == 0,
	    "and formats within CIDR_TEXT_MAX");
}

/* family 4 or 6 and an address in text, for the matcher. */
static int
address(const char *text, int *family, unsigned char addr[16])
{
	memset(addr, 0, 16);
	if (inet_pton(AF_INET, text, addr) == 1) {
		*family = CIDR_V4;
		return 0;
	}
	if (inet_pton(AF_INET6, text, addr) == 1) {
		*family = CIDR_V6;
		return 0;
	}
	return -1;
}

static void
check_matcher(void)
{
	static const struct {
		const char *range, *peer;
		int matches;
	} cases[] = {
		{ "10.0.0.0/8", "10.255.1.2", 1 },
		{ "10.0.0.0/8", "11.0.0.0", 0 },
		{ "10.0.0.0/8", "9.255.255.255", 0 },
		{ "127.0.0.1", "127.0.0.1", 1 },
		{ "127.0.0.1", "127.0.0.2", 0 },
		{ "192.168.0.0/23", "192.168.1.200", 1 },
		{ "192.168.0.0/23", "192.168.2.0", 0 },
		{ "0.0.0.0/0", "203.0.113.9", 1 },
		{ "0.0.0.0/0", "::1", 0 },		/* families apart */
		{ "::/0", "2001:db8::1", 1 },
		{ "::1", "::1", 1 },
		{ "::1", "::2", 0 },
		{ "2001:db8::/33", "2001:db8:7fff::1", 1 },
		{ "2001:db8::/33", "2001:db8:8000::1", 0 },
		{ "fe80::/10", "febf::1", 1 },
		{ "fe80::/10", "fec0::1", 0 },
		{ "127.0.0.0/8", "::ffff:127.0.0.1", 1 },	/* mapped peer */
		{ "127.0.0.1", "::ffff:127.0.0.2", 0 },
		{ "::ffff:127.0.0.1", "127.0.0.1", 1 },	/* mapped range */
		{ "::ffff:127.0.0.1", "::ffff:127.0.0.1", 1 },
		{ "::1", "127.0.0.1", 0 },
		/* An IPv6 range under /96 covering ::ffff:0:0/96 holds
		 * IPv4 clients, mapped or not (issue 12: -A ::/0 let them
		 * in); one that does not cover it holds none. */
		{ "::/0", "::ffff:127.0.0.1", 1 },
		{ "::/0", "127.0.0.1", 1 },
		{ "::ffff:0:0/95", "10.1.2.3", 1 },
		{ "::/64", "::ffff:10.1.2.3", 1 },
		{ "2001:db8::/32", "127.0.0.1", 0 },
		{ "::/96", "::ffff:127.0.0.1", 0 },
		{ "::/96", "127.0.0.1", 0 },
		{ "::/96", "::127.0.0.1", 1 },		/* compatible: IPv6 */
	};
	struct cidr range;
	unsigned char addr[16];
	size_t i;
	int family = 0;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (parse_cidr(cases[i].range, &range) < 0 ||
		    address(cases[i].peer, &family, addr) < 0) {
			ok(0, "matcher case %s ~ %s is well formed",
			    cases[i].range, cases[i].peer);
			continue;
		}
		ok(cidr_match(&range, family, addr) == cases[i].matches,
		    "%s %s %s", cases[i].peer, cases[i].matches ? "in" :
		    "not in", cases[i].range);
	}
}

static void
check_acl(void)
{
	static const struct {
		const char *allow[3], *deny[3];
		const char *peer;
		int refused;
		const char *rule;	/* the deny entry named, or NULL */
	} cases[] = {
		{ { NULL }, { NULL }, "10.0.0.1", 0, NULL },
		{ { NULL }, { NULL }, "::1", 0, NULL },
		{ { "127.0.0.0/8" }, { NULL }, "127.0.0.1", 0, NULL },
		{ { "127.0.0.0/8" }, { NULL }, "10.0.0.1", 1, NULL },
		{ { "127.0.0.0/8" }, { NULL }, "::1", 1, NULL },
		{ { "127.0.0.0/8" }, { NULL }, "::ffff:127.0.0.1", 0, NULL },
		{ { "10.0.0.0/8", "::1" }, { NULL }, "::1", 0, NULL },
		{ { NULL }, { "127.0.0.1" }, "127.0.0.1", 1, "127.0.0.1/32" },
		{ { NULL }, { "127.0.0.1" }, "127.0.0.2", 0, NULL },
		{ { NULL }, { "127.0.0.1" }, "::ffff:127.0.0.1", 1,
		    "127.0.0.1/32" },
		{ { NULL }, { "::1" }, "127.0.0.1", 0, NULL },
		/* deny wins over allow */
		{ { "127.0.0.0/8" }, { "127.0.0.2" }, "127.0.0.2", 1,
		    "127.0.0.2/32" },
		{ { "127.0.0.0/8" }, { "127.0.0.2" }, "127.0.0.3", 0, NULL },
		{ { "0.0.0.0/0", "::/0" }, { "10.0.0.0/8", "::1" }, "::1", 1,
		    "::1/128" },
		{ { "0.0.0.0/0", "::/0" }, { "10.0.0.0/8", "::1" },
		    "2001:db8::1", 0, NULL },
		{ { "::1" }, { "::1" }, "::1", 1, "::1/128" },
		/* -A ::/0 refuses IPv4 clients too, mapped or not; -a ::/0
		 * lets them in */
		{ { NULL }, { "::/0" }, "127.0.0.1", 1, "::/0" },
		{ { NULL }, { "::/0" }, "::ffff:127.0.0.1", 1, "::/0" },
		{ { "::/0" }, { NULL }, "::ffff:192.0.2.7", 0, NULL },
		{ { "::/0" }, { NULL }, "192.0.2.7", 0, NULL },
		{ { "2001:db8::/32" }, { NULL }, "192.0.2.7", 1, NULL },
	};
	struct cidr allow[3], deny[3];
	const struct cidr *rule;
	char text[CIDR_TEXT_MAX + 1];
	unsigned char addr[16];
	size_t i, nallow, ndeny;
	int family = 0, refused, formed;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		formed = address(cases[i].peer, &family, addr) == 0;
		for (nallow = 0; nallow < 3 && cases[i].allow[nallow];
		    nallow++)
			formed &= parse_cidr(cases[i].allow[nallow],
			    &allow[nallow]) == 0;
		for (ndeny = 0; ndeny < 3 && cases[i].deny[ndeny]; ndeny++)
			formed &= parse_cidr(cases[i].deny[ndeny],
			    &deny[ndeny]) == 0;
		if (!formed) {
			ok(0, "acl case %zu is well formed", i);
			continue;
		}
		rule = &allow[0];	/* must be overwritten */
		refused = acl_refuses(allow, nallow, deny, ndeny, family, addr,
		    &rule);
		text[0] = '\0';
		if (rule)
			cidr_format(rule, text, sizeof(text));
		ok(refused == cases[i].refused && (cases[i].rule ?
		    rule && strcmp(text, cases[i].rule) == 0 : rule == NULL),
		    "acl case %zu: %s %s%s%s", i, cases[i].peer,
		    cases[i].refused ? "refused" : "let in",
		    cases[i].rule ? " by deny " : "",
		    cases[i].rule ? cases[i].rule : "");
	}
}

int
main(void)
{
	check_rates();
	check_bytes_and_uints();
	check_durations();
	check_names();
	check_hostports();
	check_proxyspecs();
	check_cidrs();
	check_matcher();
	check_acl();
	return done_testing();
}
