/* Parsers for everything a user types: rates, sizes, names, durations,
 * HOST:PORT and proxyspecs.  Each returns 0 when the whole word was valid
 * and -1 otherwise, leaving the output untouched; callers name the word. */
#ifndef IPRELAY_PARSE_H
#define IPRELAY_PARSE_H

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

#endif
