/*
 * The prompt's command language: words matched by prefix as the original
 * did ("sh al" is "show all"), every value checked here, and the answers
 * that need nothing but the line written here too.  See command.h.
 */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "bucket.h"
#include "command.h"

const char *const variable_names[NVARIABLES] = {
	"local_addrs", "force_from", "debug", "dump_traff", "idle_out",
	"dead_count", "data_size", "bandwidth", "allow", "deny",
};

static const char *const commands[] = {
	"?", "help", "show", "set", "kill", "quit", "exit",
};

/* After "?", "all", "stats" and "version", the variables in order. */
static const char *const show_words[] = {
	"?", "all", "stats", "version",
	"local_addrs", "force_from", "debug", "dump_traff", "idle_out",
	"dead_count", "data_size", "bandwidth", "allow", "deny",
};
#define SHOW_FIRST_VARIABLE	4

/* After "?", "forwarder" and "limit", the variables in order. */
static const char *const set_words[] = {
	"?", "forwarder", "limit",
	"local_addrs", "force_from", "debug", "dump_traff", "idle_out",
	"dead_count", "data_size", "bandwidth", "allow", "deny",
};
#define SET_FIRST_VARIABLE	3

#define COUNT(array)	(sizeof(array) / sizeof((array)[0]))

static void
reply(struct command *command, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
reply(struct command *command, const char *fmt, ...)
{
	va_list ap;

	command->kind = CMD_REPLY;
	va_start(ap, fmt);
	vsnprintf(command->reply, sizeof(command->reply), fmt, ap);
	va_end(ap);
}

/* Match word against the names by prefix: an exact name wins; else the
 * one name it begins; -1 none, -2 more than one. */
static int
match_word(const char *word, const char *const names[], size_t count)
{
	size_t index, len = strlen(word);
	int found = -1;

	if (len == 0)
		return -1;
	for (index = 0; index < count; index++)
		if (strcmp(word, names[index]) == 0)
			return (int)index;
	for (index = 0; index < count; index++) {
		if (strncmp(word, names[index], len) == 0) {
			if (found >= 0)
				return -2;
			found = (int)index;
		}
	}
	return found;
}

int
address_valid(const char *word)
{
	unsigned char addr[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, word, addr) == 1 ||
	    inet_pton(AF_INET6, word, addr) == 1;
}

static int
address_is_wildcard(const char *word)
{
	unsigned char addr[sizeof(struct in6_addr)];
	static const unsigned char zero[sizeof(struct in6_addr)];

	if (inet_pton(AF_INET, word, addr) == 1)
		return memcmp(addr, zero, 4) == 0;
	return inet_pton(AF_INET6, word, addr) == 1 &&
	    memcmp(addr, zero, 16) == 0;
}

int
local_addrs_valid(const char *word)
{
	char copy[LOCAL_ADDRS_MAX_B], *saveptr, *token;
	size_t count = 0;

	if (strlen(word) >= sizeof(copy) || *word == '\0' ||
	    word[strlen(word) - 1] == ',')
		return 0;
	strcpy(copy, word);
	for (token = strtok_r(copy, ",", &saveptr); token;
	    token = strtok_r(NULL, ",", &saveptr)) {
		if (++count > ADDRS_MAX || !address_valid(token))
			return 0;
	}
	return count > 0;
}

/* Two local_addrs entries that would bind the same port twice: the same
 * address, or an address and its family's wildcard (0.0.0.0, ::), whose
 * socket already holds the port for every address of that family.  The
 * first such pair copied to first and second; 0 if none. */
int
local_addrs_overlap(const char *word, char *first, char *second,
    size_t size)
{
	char copy[LOCAL_ADDRS_MAX_B], *saveptr, *token;
	unsigned char addrs[ADDRS_MAX][sizeof(struct in6_addr)];
	static const unsigned char zero[sizeof(struct in6_addr)];
	const char *texts[ADDRS_MAX];
	int families[ADDRS_MAX];
	size_t count = 0, index, other, len;

	if (strlen(word) >= sizeof(copy))
		return 0;
	strcpy(copy, word);
	for (token = strtok_r(copy, ",", &saveptr); token && count < ADDRS_MAX;
	    token = strtok_r(NULL, ",", &saveptr)) {
		memset(addrs[count], 0, sizeof(addrs[count]));
		if (inet_pton(AF_INET, token, addrs[count]) == 1)
			families[count] = AF_INET;
		else if (inet_pton(AF_INET6, token, addrs[count]) == 1)
			families[count] = AF_INET6;
		else
			continue;
		texts[count++] = token;
	}
	for (index = 0; index < count; index++) {
		len = families[index] == AF_INET ? 4 : 16;
		for (other = 0; other < index; other++) {
			if (families[other] != families[index])
				continue;
			if (memcmp(addrs[other], addrs[index], len) != 0 &&
			    memcmp(addrs[other], zero, len) != 0 &&
			    memcmp(addrs[index], zero, len) != 0)
				continue;
			snprintf(first, size, "%s", texts[other]);
			snprintf(second, size, "%s", texts[index]);
			return 1;
		}
	}
	return 0;
}

int
acl_parse(const char *word, struct cidr list[ACL_MAX], size_t *count,
    char *bad_text, size_t bad_size)
{
	struct cidr parsed[ACL_MAX];
	const char *entry = word, *comma;
	char one[CIDR_TEXT_MAX + 2];
	size_t nparsed = 0, len;

	if (strcmp(word, "none") == 0) {
		*count = 0;
		return 0;
	}
	for (;;) {
		comma = strchr(entry, ',');
		len = comma ? (size_t)(comma - entry) : strlen(entry);
		snprintf(bad_text, bad_size, "%.*s", (int)len, entry);
		if (nparsed == ACL_MAX || len >= sizeof(one))
			return -1;
		memcpy(one, entry, len);
		one[len] = '\0';
		if (parse_cidr(one, &parsed[nparsed]) < 0)
			return -1;
		nparsed++;
		if (comma == NULL)
			break;
		entry = comma + 1;
	}
	memcpy(list, parsed, nparsed * sizeof(parsed[0]));
	*count = nparsed;
	return 0;
}

static int
parse_forwarder_number(const char *word, int *number)
{
	uint64_t value;

	if (parse_uint(word, 0, FORWARDER_NUM_MAX, &value) < 0)
		return -1;
	*number = (int)value;
	return 0;
}

/* "local_addrs, force_from, ...": the variables, for the answers to an
 * unknown one and to "show ?" and "set ?". */
static const char *
variable_list(void)
{
	static char list[256];
	size_t index, len = 0;

	if (list[0])
		return list;
	for (index = 0; index < NVARIABLES; index++)
		len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%s",
		    index ? ", " : "", variable_names[index]);
	return list;
}

static void
parse_show(char **words, int nwords, struct command *command)
{
	int index;

	if (nwords < 2) {
		reply(command, "  Incomplete or incorrect command, try: "
		    "show ?\n");
		return;
	}
	if (nwords > 2) {
		reply(command, "  Too many words after show %s\n", words[1]);
		return;
	}
	/* "show a", "show al": all, as before allow was added. */
	if (strncmp(words[1], "all", strlen(words[1])) == 0)
		index = 1;
	else
		index = match_word(words[1], show_words, COUNT(show_words));
	switch (index) {
	case -2:
		reply(command, "  Ambiguous: show %s, try: show ?\n", words[1]);
		return;
	case -1:
		reply(command, "  Unknown variable %s, try: show all, stats, "
		    "ver, or one of: %s\n", words[1], variable_list());
		return;
	case 0:
		reply(command, "  all\tShow all variables.\n"
		    "  stats\tShow stats on connections.\n"
		    "  ver\tShow current version.\n"
		    "  <var>\tShow specific variable: %s.\n",
		    variable_list());
		return;
	case 1: command->kind = CMD_SHOW_ALL; return;
	case 2: command->kind = CMD_SHOW_STATS; return;
	case 3: command->kind = CMD_SHOW_VERSION; return;
	default:
		command->kind = CMD_SHOW_VARIABLE;
		command->variable = (enum variable)(index - SHOW_FIRST_VARIABLE);
		return;
	}
}

static void
parse_set_forwarder(char **words, int nwords, struct command *command)
{
	if (nwords < 3 || strcmp(words[2], "?") == 0) {
		reply(command, "  set forwarder <n> "
		    "<local_port>:<remote_host>:<remote_port>\n"
		    "  set forwarder <n>\tdelete forwarder <n>\n");
		return;
	}
	if (parse_forwarder_number(words[2], &command->forwarder) < 0) {
		reply(command, "  Bad forwarder: %s (0-%d), try: set "
		    "forwarder ?\n", words[2], FORWARDER_NUM_MAX);
		return;
	}
	if (nwords == 3) {
		command->kind = CMD_DELETE_FORWARDER;
		return;
	}
	if (nwords > 4) {
		reply(command, "  Too many words: set forwarder <n> <spec>\n");
		return;
	}
	if (parse_proxyspec(words[3], &command->spec) < 0) {
		reply(command, "  Bad proxyspec: %s (local_port:remote_host:"
		    "remote_port), forwarder %d not set.\n", words[3],
		    command->forwarder);
		return;
	}
	command->kind = CMD_SET_FORWARDER;
}

static void
parse_set_limit(char **words, int nwords, struct command *command)
{
	if (nwords != 4 || strcmp(words[2], "?") == 0) {
		reply(command, "  set limit <n> <rate>\tgive forwarder <n> its "
		    "own limit (bytes/s) inside bandwidth\n");
		return;
	}
	if (parse_forwarder_number(words[2], &command->forwarder) < 0) {
		reply(command, "  No such forwarder: %s\n", words[2]);
		return;
	}
	if (parse_rate(words[3], &command->value) < 0) {
		reply(command, "  Bad rate: %s (bytes/s, K/M/G suffixes, "
		    "0 = unlimited)\n", words[3]);
		return;
	}
	snprintf(command->word, sizeof(command->word), "%s", words[2]);
	command->kind = CMD_SET_LIMIT;
}

/* The value of one variable: checked, and kept in the form iprelay
 * stores it in. */
static void
parse_value(enum variable variable, const char *value,
    struct command *command)
{
	char bad[CIDR_TEXT_MAX + 2];
	char first[INET6_ADDRSTRLEN], second[INET6_ADDRSTRLEN];
	uint64_t *number = &command->value;

	switch (variable) {
	case VAR_LOCAL_ADDRS:
		if (!local_addrs_valid(value)) {
			reply(command, "  Bad local_addrs: %s (1-%d IP "
			    "addresses, comma-separated)\n", value, ADDRS_MAX);
			return;
		}
		if (local_addrs_overlap(value, first, second, sizeof(first))) {
			reply(command, "  Bad local_addrs: %s overlaps %s (%s "
			    "holds the port on every address of its family; "
			    "give each address once)\n", second, first,
			    strcmp(first, second) == 0 ? "the first" :
			    address_is_wildcard(first) ? first : second);
			return;
		}
		snprintf(command->text, sizeof(command->text), "%s", value);
		break;
	case VAR_FORCE_FROM:
		if (!address_valid(value)) {
			reply(command, "  Bad force_from: %s (an IP address; "
			    "0.0.0.0 = any)\n", value);
			return;
		}
		snprintf(command->text, sizeof(command->text), "%s", value);
		break;
	case VAR_DEBUG:
		if (parse_uint(value, 0, 1, number) < 0) {
			reply(command, "  Bad debug: %s (0 or 1)\n", value);
			return;
		}
		break;
	case VAR_DUMP_TRAFF:
		if (parse_uint(value, 0, 1, number) < 0) {
			reply(command, "  Bad dump_traff: %s (0 or 1)\n", value);
			return;
		}
		if (*number) {
			reply(command, "  dump_traff 1 is not supported: "
			    "relayed data never passes through iprelay (use "
			    "tcpdump).\n");
			return;
		}
		break;
	case VAR_IDLE_OUT:
		if (parse_uint(value, 0, IDLE_OUT_MAX_S, number) < 0) {
			reply(command, "  Bad idle_out: %s (seconds, 0 = "
			    "never)\n", value);
			return;
		}
		break;
	case VAR_DEAD_COUNT:
		if (parse_uint(value, 0, DEAD_COUNT_MAX, number) < 0) {
			reply(command, "  Bad dead_count: %s (a count; "
			    "ignored)\n", value);
			return;
		}
		break;
	case VAR_DATA_SIZE:
		if (parse_bytes(value, CHUNK_MAX, number) < 0) {
			reply(command, "  Bad data_size: %s (bytes, 0 = "
			    "automatic, at most %u)\n", value, CHUNK_MAX);
			return;
		}
		break;
	case VAR_BANDWIDTH:
		if (parse_rate(value, number) < 0) {
			reply(command, "  Bad bandwidth: %s (bytes/s, K/M/G "
			    "suffixes, 0 = unlimited)\n", value);
			return;
		}
		break;
	case VAR_ALLOW:
	case VAR_DENY:
		if (acl_parse(value, command->acl, &command->nacl, bad,
		    sizeof(bad)) < 0) {
			reply(command, "  Bad %s: %s (at most %d addresses or "
			    "CIDR ranges, comma-separated, or none)\n",
			    variable_names[variable], bad, ACL_MAX);
			return;
		}
		break;
	case NVARIABLES:
		return;
	}
	command->kind = CMD_SET_VARIABLE;
	command->variable = variable;
}

static void
parse_set(char **words, int nwords, struct command *command)
{
	int index;

	if (nwords < 2) {
		reply(command, "  Incomplete or incorrect command, try: set ?\n");
		return;
	}
	index = match_word(words[1], set_words, COUNT(set_words));
	switch (index) {
	case -2:
		reply(command, "  Ambiguous: set %s, try: set ?\n", words[1]);
		return;
	case -1:
		reply(command, "  Unknown variable %s, try: set forwarder, "
		    "limit, or one of: %s\n", words[1], variable_list());
		return;
	case 0:
		reply(command, "  <var> <val>\tSet specific variable to a "
		    "value: %s.\n"
		    "  forwarder\tSet up forwarders.\n"
		    "  limit\t\tGive a forwarder its own limit.\n",
		    variable_list());
		return;
	case 1: parse_set_forwarder(words, nwords, command); return;
	case 2: parse_set_limit(words, nwords, command); return;
	default:
		break;
	}
	if (nwords != 3) {
		reply(command, "  Incomplete or incorrect command: set %s "
		    "<value>\n", set_words[index]);
		return;
	}
	parse_value((enum variable)(index - SET_FIRST_VARIABLE), words[2],
	    command);
}

static void
parse_kill(char **words, int nwords, struct command *command)
{
	uint64_t id;

	if (nwords < 2 || strcmp(words[1], "?") == 0) {
		reply(command, "  all\t\tKill all connections.\n"
		    "  <conn>\tKill specified connection.\n");
		return;
	}
	if (nwords > 2) {
		reply(command, "  Too many words: kill <conn>\n");
		return;
	}
	if (strcmp(words[1], "all") == 0) {
		command->kind = CMD_KILL_ALL;
		return;
	}
	if (strncmp(words[1], "CONN", 4) != 0 ||
	    parse_uint(words[1] + 4, 1, UINT32_MAX, &id) < 0) {
		reply(command, "  No such connection: %s\n", words[1]);
		return;
	}
	command->conn_id = (uint32_t)id;
	snprintf(command->word, sizeof(command->word), "%s", words[1]);
	command->kind = CMD_KILL_CONN;
}

void
command_parse(const char *line, struct command *command)
{
	char copy[COMMAND_LINE_MAX], *words[COMMAND_WORDS_MAX];
	char *saveptr, *token;
	int nwords = 0;

	memset(command, 0, sizeof(*command));
	command->kind = CMD_EMPTY;
	if (strlen(line) >= sizeof(copy)) {
		reply(command, "  Line too long: at most %zu bytes.\n",
		    sizeof(copy) - 1);
		return;
	}
	strcpy(copy, line);
	for (token = strtok_r(copy, " \t\r\n", &saveptr); token;
	    token = strtok_r(NULL, " \t\r\n", &saveptr)) {
		if (nwords == COMMAND_WORDS_MAX) {
			reply(command, "  Too many words.\n");
			return;
		}
		words[nwords++] = token;
	}
	if (nwords == 0)
		return;
	switch (match_word(words[0], commands, COUNT(commands))) {
	case 0: case 1:
		reply(command, "Commands are:\n"
		    "    ?, help           - Show these commands.\n"
		    "    show              - Display variable(s): show ?\n"
		    "    set               - Set a variable: set ?\n"
		    "    kill              - Kill a connection: kill ?\n"
		    "    quit, exit        - Close every connection and "
		    "leave.\n");
		break;
	case 2: parse_show(words, nwords, command); break;
	case 3: parse_set(words, nwords, command); break;
	case 4: parse_kill(words, nwords, command); break;
	case 5: case 6: command->kind = CMD_QUIT; break;
	case -2:
		reply(command, "  Ambiguous command: %s, try: ?\n", words[0]);
		break;
	default:
		reply(command, "  Unknown command: %s, try: ?\n", words[0]);
		break;
	}
}
