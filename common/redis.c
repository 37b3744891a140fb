/*
 * The Redis endpoint of global limits: parsing, credentials, key names
 * and iprelay-limit's blocking connection (redis.h).  shaperd's own,
 * non-blocking connection is in shaperd/global.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef IPRELAY_NO_HIREDIS
#include <hiredis/hiredis.h>
#endif

#include "redis.h"

int
redis_available(void)
{
#ifdef IPRELAY_NO_HIREDIS
	return 0;
#else
	return 1;
#endif
}

int
redis_conf_parse(const char *word, struct redis_conf *conf)
{
	struct redis_conf parsed;
	const char *rest, *end, *slash;
	uint64_t number;
	char port[8];
	size_t length;

	memset(&parsed, 0, sizeof(parsed));
	if (strncmp(word, "unix:", 5) == 0) {
		rest = word + 5;
		length = strlen(rest);
		if (rest[0] != '/' || length > REDIS_PATH_MAX)
			return -1;
		memcpy(parsed.path, rest, length + 1);
		snprintf(parsed.text, sizeof(parsed.text), "unix:%s",
		    parsed.path);
		*conf = parsed;
		return 0;
	}
	if (strncmp(word, "redis://", 8) != 0)
		return -1;
	rest = word + 8;
	if (strchr(rest, '@'))
		return -1;	/* credentials belong in the auth file */
	slash = strchr(rest, '/');
	end = slash ? slash : rest + strlen(rest);
	parsed.port = 6379;
	if (rest[0] == '[') {
		const char *close = memchr(rest, ']', (size_t)(end - rest));

		if (close == NULL || close - rest - 1 > HOST_MAX ||
		    close == rest + 1)
			return -1;
		memcpy(parsed.host, rest + 1, (size_t)(close - rest - 1));
		rest = close + 1;
		if (rest != end && *rest != ':')
			return -1;
	} else {
		const char *colon = memchr(rest, ':', (size_t)(end - rest));
		const char *host_end = colon ? colon : end;

		if (host_end == rest || host_end - rest > HOST_MAX)
			return -1;
		memcpy(parsed.host, rest, (size_t)(host_end - rest));
		rest = host_end;
	}
	if (*rest == ':') {
		rest++;
		if (end - rest < 1 || end - rest > 5)
			return -1;
		memcpy(port, rest, (size_t)(end - rest));
		port[end - rest] = '\0';
		if (parse_uint(port, 1, 65535, &number))
			return -1;
		parsed.port = (int)number;
	}
	if (slash && slash[1] != '\0') {
		if (parse_uint(slash + 1, 0, 100000, &number))
			return -1;
		parsed.db = (unsigned)number;
	}
	snprintf(parsed.text, sizeof(parsed.text), "redis://%s%s%s:%d/%u",
	    strchr(parsed.host, ':') ? "[" : "", parsed.host,
	    strchr(parsed.host, ':') ? "]" : "", parsed.port, parsed.db);
	*conf = parsed;
	return 0;
}

int
redis_conf_resolve(const char *option, struct redis_conf *conf,
    const char **bad)
{
	const char *word = option;

	if (word == NULL || word[0] == '\0')
		word = getenv(REDIS_ENV);
	if (word == NULL || word[0] == '\0')
		return ENOENT;
	if (redis_conf_parse(word, conf)) {
		*bad = word;
		return EINVAL;
	}
	return 0;
}

/* One line "PASSWORD" or "USER PASSWORD"; a file others may read is
 * refused before a byte of it is used.  A systemd credential may belong
 * to root with an ACL for the service user: there only "others" count. */
static int
read_auth(const char *path, struct redis_conf *conf, int credential)
{
	char line[2 * REDIS_SECRET_MAX + 4], *space, *newline;
	struct stat st;
	ssize_t got;
	int fd, rc = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return errno;
	if (fstat(fd, &st) < 0) {
		rc = errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode) || (st.st_mode & (credential ? 007 : 077)) ||
	    (!credential && st.st_uid != geteuid())) {
		rc = EPERM;
		goto out;
	}
	got = read(fd, line, sizeof(line) - 1);
	if (got < 0) {
		rc = errno;
		goto out;
	}
	line[got] = '\0';
	if ((newline = strchr(line, '\n')))
		*newline = '\0';
	if (line[0] == '\0' || strchr(line, '\r')) {
		rc = EINVAL;
		goto out;
	}
	space = strchr(line, ' ');
	if (space) {
		*space = '\0';
		if (strlen(line) > REDIS_SECRET_MAX ||
		    strlen(space + 1) > REDIS_SECRET_MAX ||
		    space[1] == '\0' || strchr(space + 1, ' ')) {
			rc = EINVAL;
			goto out;
		}
		strcpy(conf->user, line);
		strcpy(conf->password, space + 1);
	} else {
		if (strlen(line) > REDIS_SECRET_MAX) {
			rc = EINVAL;
			goto out;
		}
		strcpy(conf->password, line);
	}
out:
	memset(line, 0, sizeof(line));
	close(fd);
	return rc;
}

int
redis_conf_load_auth(struct redis_conf *conf, const char *state_dir,
    char *path, size_t path_size)
{
	const char *env = getenv(REDIS_AUTH_ENV), *creds;
	int rc;

	if (env && env[0]) {
		/* Named explicitly: it must be there. */
		snprintf(path, path_size, "%s", env);
		return read_auth(path, conf, 0);
	}
	creds = getenv("CREDENTIALS_DIRECTORY");
	if (creds && creds[0]) {
		snprintf(path, path_size, "%s/%s", creds, REDIS_AUTH_FILE);
		rc = read_auth(path, conf, 1);
		if (rc != ENOENT)
			return rc;
	}
	if (state_dir == NULL) {
		path[0] = '\0';
		return 0;
	}
	snprintf(path, path_size, "%s/%s", state_dir, REDIS_AUTH_FILE);
	rc = read_auth(path, conf, 0);
	if (rc == ENOENT) {
		path[0] = '\0';
		return 0;
	}
	return rc;
}

void
redis_key_cfg(char out[REDIS_KEY_MAX + 1], const char *name)
{
	snprintf(out, REDIS_KEY_MAX + 1, "iprelay:{%s}:cfg", name);
}

void
redis_key_hosts(char out[REDIS_KEY_MAX + 1], const char *name)
{
	snprintf(out, REDIS_KEY_MAX + 1, "iprelay:{%s}:hosts", name);
}

#ifdef IPRELAY_NO_HIREDIS
int
redis_connect_blocking(const struct redis_conf *conf, unsigned timeout_ms,
    struct redisContext **out, char *err, size_t err_size)
{
	(void)conf;
	(void)timeout_ms;
	*out = NULL;
	snprintf(err, err_size, "built without hiredis (make HIREDIS=no)");
	return ENOTSUP;
}
#else
int
redis_connect_blocking(const struct redis_conf *conf, unsigned timeout_ms,
    struct redisContext **out, char *err, size_t err_size)
{
	struct timeval timeout = { .tv_sec = timeout_ms / 1000,
	    .tv_usec = (timeout_ms % 1000) * 1000 };
	redisContext *context;
	redisReply *reply;
	char db[16];

	*out = NULL;
	if (conf->path[0])
		context = redisConnectUnixWithTimeout(conf->path, timeout);
	else
		context = redisConnectWithTimeout(conf->host, conf->port,
		    timeout);
	if (context == NULL) {
		snprintf(err, err_size, "out of memory");
		return ENOMEM;
	}
	if (context->err) {
		snprintf(err, err_size, "%s", context->errstr);
		redisFree(context);
		return ECONNREFUSED;
	}
	if (redisSetTimeout(context, timeout) != REDIS_OK) {
		snprintf(err, err_size, "%s", context->errstr);
		redisFree(context);
		return EIO;
	}
	if (conf->password[0]) {
		const char *argv[3] = { "AUTH", conf->user, conf->password };

		if (conf->user[0])
			reply = redisCommandArgv(context, 3, argv, NULL);
		else {
			argv[1] = conf->password;
			reply = redisCommandArgv(context, 2, argv, NULL);
		}
		if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
			snprintf(err, err_size, "AUTH: %s", reply ?
			    reply->str : context->errstr);
			if (reply)
				freeReplyObject(reply);
			redisFree(context);
			return EACCES;
		}
		freeReplyObject(reply);
	}
	if (conf->db) {
		snprintf(db, sizeof(db), "%u", conf->db);
		reply = redisCommand(context, "SELECT %s", db);
		if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
			snprintf(err, err_size, "SELECT %s: %s", db, reply ?
			    reply->str : context->errstr);
			if (reply)
				freeReplyObject(reply);
			redisFree(context);
			return EINVAL;
		}
		freeReplyObject(reply);
	}
	*out = context;
	return 0;
}
#endif
