/*
 * iprelay-limit: create, change, show and delete limits; list and kill
 * live relays; a refreshing view.  One store transaction per command, so
 * it can run while relays draw and shaperd refills.  This file owns the
 * options, the command table, the usage errors and main; each command is
 * in a part of its own (iprelay-limit.h lists them).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iprelay-limit.h"
#include "version.h"

#define USAGE \
"usage: iprelay-limit [-S DIR] set NAME [RATE] [--up RATE] [--down RATE]\n" \
"                     [--burst BYTES] [--parent NAME] [--ceil RATE]\n" \
"                     [--ceil-up RATE] [--ceil-down RATE]\n" \
"                     [--global | --local] [--offline floor | closed | open]\n" \
"                     [--grace SECONDS] [--floor RATE] [--hosts N]\n" \
"                     [-R REDIS]\n" \
"                     [--no-create]\n" \
"                     [--max-conns N] [--max-conns-per-source N]\n" \
"       iprelay-limit [-S DIR] [--json] get NAME\n" \
"       iprelay-limit [-S DIR] [--json] list\n" \
"       iprelay-limit [-S DIR] del NAME\n" \
"       iprelay-limit [-S DIR] [--json] conns\n" \
"       iprelay-limit [-S DIR] kill [--drain] ID | all\n" \
"       iprelay-limit [-S DIR] [--json] top [-n COUNT] [-d SECONDS]\n" \
"       iprelay-limit [-R REDIS] [--json] hosts NAME\n" \
"       iprelay-limit [-S DIR] export\n" \
"       iprelay-limit [-S DIR] import FILE | -\n"

/* The message escaped (it may quote any word given), then AFTER. */
static void
say_usage_error(const char *after, const char *fmt, va_list args)
{
	char raw[600], text[600];

	vsnprintf(raw, sizeof(raw), fmt, args);
	log_escape(text, sizeof(text), raw);
	fprintf(stderr, "iprelay-limit: %s\n%s", text, after);
}

_Noreturn void
usage_error(const char *fmt, ...)
{
	va_list args;

	va_start(args, fmt);
	say_usage_error(USAGE, fmt, args);
	va_end(args);
	exit(EXIT_USAGE);
}

/* A bad word gets one line naming it, and no usage dump. */
_Noreturn void
bad_word(const char *fmt, ...)
{
	va_list args;

	va_start(args, fmt);
	say_usage_error("", fmt, args);
	va_end(args);
	exit(EXIT_USAGE);
}

void
check_name(const char *what, const char *name)
{
	if (!limit_name_valid(name))
		bad_word("bad %s: '%s' (1-%d characters of A-Z a-z 0-9 _ . -)",
		    what, name, LIMIT_NAME_MAX);
}

void
need_words(const struct options *options, int want, const char *what)
{
	if (options->nwords < want)
		usage_error("%s: missing %s", options->command, what);
	if (options->nwords > want)
		usage_error("%s: unexpected word '%s'", options->command,
		    options->words[want]);
}

static void
refuse_options(const struct options *options, int allow_set, int allow_top,
    int allow_json)
{
	if (!allow_set && (options->up || options->down || options->burst ||
	    options->parent || options->ceil || options->ceil_up ||
	    options->ceil_down || options->global || options->local ||
	    options->offline || options->grace || options->floor ||
	    options->hosts || options->max_conns || options->max_source))
		usage_error("%s: option %s is only for set", options->command,
		    options->up ? "--up" : options->down ? "--down" :
		    options->burst ? "--burst" : options->parent ? "--parent" :
		    options->ceil ? "--ceil" : options->ceil_up ? "--ceil-up" :
		    options->ceil_down ? "--ceil-down" : options->global ?
		    "--global" : options->local ? "--local" : options->offline ?
		    "--offline" : options->grace ? "--grace" : options->floor ?
		    "--floor" : options->hosts ? "--hosts" :
		    options->max_conns ? "--max-conns" :
		    "--max-conns-per-source");
	if (!allow_top && (options->count || options->delay))
		usage_error("%s: option %s is only for top", options->command,
		    options->count ? "-n" : "-d");
	if (!allow_json && options->json)
		usage_error("%s: option --json is only for the read commands",
		    options->command);
	if (options->no_create && !allow_set)
		usage_error("%s: option --no-create is only for set",
		    options->command);
	if (options->drain && strcmp(options->command, "kill") != 0)
		usage_error("%s: option --drain is only for kill",
		    options->command);
}

/* The Redis of global limits: -R, else $IPRELAY_REDIS; a command that
 * needs it and has neither is a usage error. */
void
redis_endpoint(const struct options *options, struct redis_conf *conf,
    const char *what)
{
	const char *bad = NULL;
	int rc;

	rc = redis_conf_resolve(options->redis, conf, &bad);
	if (rc == EINVAL)
		bad_word("bad Redis endpoint: '%s' (redis://HOST[:PORT][/DB] "
		    "or unix:/PATH)", bad);
	if (rc)
		usage_error("%s needs the Redis of global limits: give -R "
		    "REDIS or set %s", what, REDIS_ENV);
}

static const char *
option_value(int argc, char **argv, int *index, const char *option)
{
	const char *equals = strchr(argv[*index], '=');

	if (equals && strncmp(argv[*index], "--", 2) == 0)
		return equals + 1;
	if (*index + 1 >= argc)
		usage_error("option %s needs a value", option);
	return argv[++*index];
}

static void
parse_args(int argc, char **argv, struct options *options)
{
	const char *arg;
	size_t len;
	int index;

	memset(options, 0, sizeof(*options));
	for (index = 1; index < argc; index++) {
		arg = argv[index];
		len = strcspn(arg, "=");
#define IS(name) (strlen(name) == len && strncmp(arg, name, len) == 0)
		if (strcmp(arg, "--") == 0) {
			for (index++; index < argc; index++) {
				if (!options->command)
					options->command = argv[index];
				else if (options->nwords < ARGS_MAX)
					options->words[options->nwords++] =
					    argv[index];
			}
			break;
		} else if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
			printf("%s", USAGE);
			exit(0);
		} else if (strcmp(arg, "-S") == 0) {
			options->state_dir = option_value(argc, argv, &index,
			    "-S");
		} else if (strcmp(arg, "--json") == 0) {
			options->json = 1;
		} else if (strcmp(arg, "--no-create") == 0) {
			options->no_create = 1;
		} else if (strcmp(arg, "--drain") == 0) {
			options->drain = 1;
		} else if (IS("--up")) {
			options->up = option_value(argc, argv, &index, "--up");
		} else if (IS("--down")) {
			options->down = option_value(argc, argv, &index,
			    "--down");
		} else if (IS("--burst")) {
			options->burst = option_value(argc, argv, &index,
			    "--burst");
		} else if (IS("--ceil")) {
			options->ceil = option_value(argc, argv, &index,
			    "--ceil");
		} else if (IS("--ceil-up")) {
			options->ceil_up = option_value(argc, argv, &index,
			    "--ceil-up");
		} else if (IS("--ceil-down")) {
			options->ceil_down = option_value(argc, argv, &index,
			    "--ceil-down");
		} else if (IS("--parent")) {
			options->parent = option_value(argc, argv, &index,
			    "--parent");
		} else if (strcmp(arg, "--global") == 0) {
			options->global = 1;
		} else if (strcmp(arg, "--local") == 0) {
			options->local = 1;
		} else if (IS("--offline")) {
			options->offline = option_value(argc, argv, &index,
			    "--offline");
		} else if (IS("--grace")) {
			options->grace = option_value(argc, argv, &index,
			    "--grace");
		} else if (IS("--floor")) {
			options->floor = option_value(argc, argv, &index,
			    "--floor");
		} else if (IS("--hosts")) {
			options->hosts = option_value(argc, argv, &index,
			    "--hosts");
		} else if (IS("--max-conns")) {
			options->max_conns = option_value(argc, argv, &index,
			    "--max-conns");
		} else if (IS("--max-conns-per-source")) {
			options->max_source = option_value(argc, argv, &index,
			    "--max-conns-per-source");
		} else if (strcmp(arg, "-R") == 0) {
			options->redis = option_value(argc, argv, &index, "-R");
		} else if (strcmp(arg, "-n") == 0) {
			options->count = option_value(argc, argv, &index, "-n");
		} else if (strcmp(arg, "-d") == 0) {
			options->delay = option_value(argc, argv, &index, "-d");
		} else if (arg[0] == '-' && arg[1] != '\0' &&
		    !(options->command && strcmp(options->command, "set") == 0 &&
		    options->nwords == 1 && arg[1] >= '0' && arg[1] <= '9')) {
			usage_error("unknown option: '%s'", arg);
		} else if (!options->command) {
			options->command = arg;
		} else if (options->nwords < ARGS_MAX) {
			options->words[options->nwords++] = arg;
		} else {
			usage_error("too many words: '%s'", arg);
		}
#undef IS
	}
	if (options->state_dir && options->state_dir[0] == '\0')
		bad_word("bad state dir: '' (give a directory)");
}

/* Each command and the options it takes besides -S. */
static const struct command {
	const char *name;
	int (*run)(const struct options *options);
	int allow_set;		/* --up --down --burst --parent --ceil* */
	int allow_top;		/* -n -d */
	int allow_json;
} commands[] = {
	{ "set", command_set, 1, 0, 0 },
	{ "get", command_get, 0, 0, 1 },
	{ "list", command_list, 0, 0, 1 },
	{ "del", command_del, 0, 0, 0 },
	{ "conns", command_conns, 0, 0, 1 },
	{ "kill", command_kill, 0, 0, 0 },
	{ "top", command_top, 0, 1, 1 },
	{ "hosts", command_hosts, 0, 0, 1 },
	{ "export", command_export, 0, 0, 0 },
	{ "import", command_import, 0, 0, 0 },
	{ NULL, NULL, 0, 0, 0 },
};

int
main(int argc, char **argv)
{
	const struct command *command;
	struct options options;

	log_open("iprelay-limit", LOG_TO_STDERR);
	help_or_version(argc, argv, "iprelay-limit", USAGE);
	parse_args(argc, argv, &options);
	if (options.parent && options.parent[0] == '\0')
		options.parent = "none";
	if (!options.command)
		usage_error("missing command");
	for (command = commands; command->name; command++) {
		if (strcmp(options.command, command->name) != 0)
			continue;
		refuse_options(&options, command->allow_set,
		    command->allow_top, command->allow_json);
		return command->run(&options);
	}
	usage_error("unknown command: '%s'", options.command);
}
