/*
 * iprelay-limit's part of global limits (issue 16): writing a global
 * limit's configuration to Redis (set --global), listing its hosts
 * (hosts NAME), and the lines get, list and top show for one.
 */
#ifndef IPRELAY_LIMIT_GLOBAL_H
#define IPRELAY_LIMIT_GLOBAL_H

#include <stdint.h>

#include "redis.h"
#include "store.h"

/* What set --global gives; a field not given keeps Redis's value.
 * need_hosts: refuse (EXIT_NOHOSTS, nothing written) if Redis knows no
 * host count either (this host's floor would have no divisor). */
struct global_set {
	int have_up, have_down, have_burst, have_hosts, need_hosts;
	uint64_t rate_Bps[2], burst_B;
	uint32_t hosts;		/* 0 = none known */
};

/* global_set_in_redis: the host count was needed and is known nowhere. */
#define EXIT_NOHOSTS	(-1)

/* Sets the given fields of NAME's configuration in Redis (one script,
 * the version counted up) or, with nothing given, reads it: a host
 * joining an existing global limit.  On success *result holds Redis's
 * configuration after the change and *version its version.  Exit status
 * style: 0, EXIT_POLICY (nothing in Redis to join), EXIT_SYSTEM (Redis
 * unreachable), with a message printed; or EXIT_NOHOSTS, unprinted. */
int
global_set_in_redis(const struct redis_conf *conf, const char *name,
    const struct global_set *given, struct global_set *result,
    uint64_t *version);

/* hosts NAME: every live host record of NAME in Redis. */
int
global_print_hosts(const struct redis_conf *conf, const char *name,
    int json);

/* get: the lines after the local ones; json: the fields inside the
 * limit's object (each starting with a comma). */
void
global_print_text(const struct limit_info *info);

void
global_print_json(const struct limit_info *info);

/* list and top: the GLOBAL column ("-" for a local limit). */
const char *
global_column(const struct limit_info *info, char *buf, size_t size);

#endif
