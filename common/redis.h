/*
 * Where the Redis of global limits is, and how to reach it (issue 16):
 * the endpoint (shaperd -R, iprelay-limit -R, or $IPRELAY_REDIS), the
 * credentials file (readable by its owner only), the key names of one
 * global limit, and a blocking connection with a timeout for
 * iprelay-limit.  Linked into shaperd and iprelay-limit only: relays
 * never talk to Redis (docs/design.md, "Global limits").  Without hiredis
 * (make HIREDIS=no) the parsing stays and connecting fails with ENOTSUP.
 */
#ifndef IPRELAY_REDIS_H
#define IPRELAY_REDIS_H

#include <stddef.h>
#include <stdint.h>

#include "parse.h"

#define REDIS_ENV		"IPRELAY_REDIS"
#define REDIS_AUTH_ENV		"IPRELAY_REDIS_AUTH"
#define REDIS_AUTH_FILE		"redis-auth"	/* in the state dir, or a
						 * systemd credential */
#define REDIS_PATH_MAX		107		/* sun_path less the NUL */
#define REDIS_SECRET_MAX	255
#define REDIS_KEY_MAX		(LIMIT_NAME_MAX + 24)
#define GLOBAL_HOST_ID_MAX	64

struct redis_conf {
	char host[HOST_MAX + 1];	/* "" for a unix socket */
	int port;
	char path[REDIS_PATH_MAX + 1];	/* unix socket, or "" */
	unsigned db;
	char user[REDIS_SECRET_MAX + 1];	/* "" = default user */
	char password[REDIS_SECRET_MAX + 1];	/* "" = no AUTH */
	char text[HOST_MAX + REDIS_PATH_MAX + 32];	/* for messages */
};

/* "redis://HOST[:PORT][/DB]" (port 6379, db 0; an IPv6 address in
 * brackets) or "unix:/PATH".  No credentials in the URL: a command line
 * is readable by every user.  0, or -1 when the word is not one. */
int
redis_conf_parse(const char *word, struct redis_conf *conf);

/* The endpoint: OPTION (-R) if given, else $IPRELAY_REDIS.  0 = found,
 * ENOENT = neither set, EINVAL = a bad word (*bad says which). */
int
redis_conf_resolve(const char *option, struct redis_conf *conf,
    const char **bad);

/* Credentials, "PASSWORD" or "USER PASSWORD" on the first line, from
 * $IPRELAY_REDIS_AUTH, else $CREDENTIALS_DIRECTORY/redis-auth (systemd
 * LoadCredential=), else STATE_DIR/redis-auth; none of them existing is
 * no credentials.  A file that others than its owner may read is refused
 * (EPERM), as is a bad one (EINVAL).  *path says which file was used. */
int
redis_conf_load_auth(struct redis_conf *conf, const char *state_dir,
    char *path, size_t path_size);

/* The keys of global limit NAME (a hash tag keeps both in one Redis
 * Cluster slot). */
void
redis_key_cfg(char out[REDIS_KEY_MAX + 1], const char *name);

void
redis_key_hosts(char out[REDIS_KEY_MAX + 1], const char *name);

/* Whether this build can talk to Redis at all. */
int
redis_available(void);

struct redisContext;

/* A blocking connection (iprelay-limit): TIMEOUT_MS for the connect and
 * for every reply; AUTH and SELECT done.  0, or an errno value with the
 * reason in err (ENOTSUP: built without hiredis). */
int
redis_connect_blocking(const struct redis_conf *conf, unsigned timeout_ms,
    struct redisContext **out, char *err, size_t err_size);

#endif
