/*
 * What the parts of iprelay-limit share: the options as parsed, the
 * store a command uses, the messages a bad word gets, and each command.
 * The parts:
 *   iprelay-limit.c  main, the options, the command table, usage errors
 *   limit-store.c    which store a command uses, opening it, saying so
 *   limit-set.c      set and del
 *   limit-show.c     get, list, conns, hosts and top
 *   limit-kill.c     kill: signalling relays of this store, and no others
 *   limit-export.c   export and import
 *   limit-format.c   how values are written (also limit-global.c's)
 *   limit-global.c   global limits: Redis, hosts, their lines in get/list
 *   limit-caps.c     caps on live relays: set's options, their lines
 */
#ifndef IPRELAY_LIMIT_H
#define IPRELAY_LIMIT_H

#include "log.h"
#include "parse.h"
#include "redis.h"
#include "store.h"

#define ARGS_MAX	16

struct options {
	const char *state_dir;
	int json;
	const char *command;
	const char *words[ARGS_MAX];	/* positional words after the command */
	int nwords;
	const char *up, *down, *burst, *parent;
	const char *ceil, *ceil_up, *ceil_down;
	const char *count, *delay;
	int drain;		/* kill --drain: SIGUSR1, a graceful stop */
	int no_create;		/* set --no-create: change, never make */
	int global, local;		/* --global, --local */
	const char *offline, *grace, *floor, *hosts, *redis;
	const char *max_conns, *max_source;	/* --max-conns* */
};

/* iprelay-limit.c.  A usage error: the message, then the usage, exit
 * 100. */
_Noreturn void
usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A bad word gets one line naming it, and no usage dump; exit 100. */
_Noreturn void
bad_word(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A bad limit name, named with WHAT it was meant to be, is a bad word. */
void
check_name(const char *what, const char *name);

/* The command takes exactly WANT words; WHAT names the missing ones. */
void
need_words(const struct options *options, int want, const char *what);

/* The Redis of global limits: -R, else $IPRELAY_REDIS; a command that
 * needs it and has neither is a usage error. */
void
redis_endpoint(const struct options *options, struct redis_conf *conf,
    const char *what);

/* limit-store.c.  The store a command uses, and why that one (-S, the
 * environment, the system's): every command says it (the first line of
 * the tables, "store" in JSON), so that nobody writes to their own store
 * believing it the system's.  Set by store_path. */
extern char used_dir[4096];
extern const char *store_source;

const char *
store_path(const struct options *options);

/* "store: DIR (SOURCE)", a line of its own. */
void
say_store(void);

/* "store DIR, SOURCE", for the tables' header line. */
const char *
store_said(void);

/* ,"store":"DIR" inside a JSON object. */
void
json_store_field(void);

/* For a command that changes something: a user who may not write is
 * refused by policy (exit 1); any other failure is fatal. */
struct store *
open_for_writing(const struct options *options);

/* For reading: NULL when there is no state file yet. */
struct store *
open_for_reading(const struct options *options);

/* The commands, each an exit status (limit-set.c, limit-show.c,
 * limit-kill.c, limit-export.c). */
int
command_set(const struct options *options);

int
command_del(const struct options *options);

int
command_get(const struct options *options);

int
command_list(const struct options *options);

int
command_conns(const struct options *options);

int
command_hosts(const struct options *options);

int
command_top(const struct options *options);

int
command_kill(const struct options *options);

int
command_export(const struct options *options);

int
command_import(const struct options *options);

#endif
