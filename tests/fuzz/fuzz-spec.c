/* libFuzzer target: the address words (parse_hostport, parse_proxyspec)
 * and limit names.  An accepted word must give fields within their
 * bounds, and the fields put back together must parse to the same. */
#include <string.h>

#include "fuzz.h"
#include "parse.h"

static void
check_port(const char *port)
{
	uint64_t number;

	FUZZ_CHECK(strlen(port) >= 1 && strlen(port) <= 5);
	FUZZ_CHECK(parse_uint(port, 1, 65535, &number) == 0);
}

static void
check_host(const char *host)
{
	size_t len = strlen(host);

	FUZZ_CHECK(len >= 1 && len <= HOST_MAX);
	FUZZ_CHECK(strchr(host, '[') == NULL && strchr(host, ']') == NULL);
}

static void
rebuild(const struct hostport *hostport, char *out, size_t out_size)
{
	if (strchr(hostport->host, ':'))
		snprintf(out, out_size, "[%s]:%s", hostport->host,
		    hostport->port);
	else
		snprintf(out, out_size, "%s:%s", hostport->host,
		    hostport->port);
}

static void
check_hostport(const char *word)
{
	struct hostport parsed, again;
	char rebuilt[HOST_MAX + 16];

	memset(&parsed, 0x5a, sizeof(parsed));
	if (parse_hostport(word, &parsed) < 0) {
		FUZZ_CHECK(parsed.host[0] == 0x5a);	/* untouched */
		return;
	}
	check_host(parsed.host);
	check_port(parsed.port);
	rebuild(&parsed, rebuilt, sizeof(rebuilt));
	FUZZ_CHECK(parse_hostport(rebuilt, &again) == 0);
	FUZZ_CHECK(strcmp(again.host, parsed.host) == 0 &&
	    strcmp(again.port, parsed.port) == 0);
}

static void
check_proxyspec(const char *word)
{
	struct proxyspec parsed, again;
	char rebuilt[HOST_MAX + 24], remote[HOST_MAX + 16];

	memset(&parsed, 0x5a, sizeof(parsed));
	if (parse_proxyspec(word, &parsed) < 0) {
		FUZZ_CHECK(parsed.lport[0] == 0x5a);
		return;
	}
	check_port(parsed.lport);
	check_host(parsed.remote.host);
	check_port(parsed.remote.port);
	rebuild(&parsed.remote, remote, sizeof(remote));
	snprintf(rebuilt, sizeof(rebuilt), "%s:%s", parsed.lport, remote);
	FUZZ_CHECK(parse_proxyspec(rebuilt, &again) == 0);
	FUZZ_CHECK(strcmp(again.lport, parsed.lport) == 0 &&
	    strcmp(again.remote.host, parsed.remote.host) == 0 &&
	    strcmp(again.remote.port, parsed.remote.port) == 0);
}

static void
check_name(const char *word)
{
	size_t len = strlen(word);

	if (!limit_name_valid(word))
		return;
	FUZZ_CHECK(len >= 1 && len <= LIMIT_NAME_MAX);
	/* Names go into paths, log lines and JSON unquoted: none of
	 * these may pass. */
	FUZZ_CHECK(strpbrk(word, "/ \t\n\"\\:%") == NULL);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *word = fuzz_string(data, size);

	check_hostport(word);
	check_proxyspec(word);
	check_name(word);
	free(word);
	return 0;
}
