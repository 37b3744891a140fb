/* libFuzzer target: the prompt's command parser (command_parse, in
 * relay/command.c), fed one line as iprelay reads it.  Beyond not
 * crashing: every line gets a kind; an answer is whole lines and never cut
 * short; a command carries only values inside their bounds, which read back
 * the same; and the parse depends on the words alone, not on how they are
 * spaced. */
#include <string.h>

#include "bucket.h"
#include "command.h"
#include "fuzz.h"

static void
check_acl(const struct command *command)
{
	char text[CIDR_TEXT_MAX + 1];
	struct cidr again;

	FUZZ_CHECK(command->nacl <= ACL_MAX);
	for (size_t index = 0; index < command->nacl; index++) {
		cidr_format(&command->acl[index], text, sizeof(text));
		FUZZ_CHECK(parse_cidr(text, &again) == 0);
		FUZZ_CHECK(memcmp(&again, &command->acl[index],
		    sizeof(again)) == 0);
	}
}

static void
check_value(const struct command *command)
{
	switch (command->variable) {
	case VAR_LOCAL_ADDRS:
		FUZZ_CHECK(local_addrs_valid(command->text));
		{
			char first[INET6_ADDRSTRLEN], second[INET6_ADDRSTRLEN];

			FUZZ_CHECK(!local_addrs_overlap(command->text, first,
			    second, sizeof(first)));
		}
		break;
	case VAR_FORCE_FROM:
		FUZZ_CHECK(address_valid(command->text));
		FUZZ_CHECK(strlen(command->text) < INET6_ADDRSTRLEN);
		break;
	case VAR_DEBUG:
		FUZZ_CHECK(command->value <= 1);
		break;
	case VAR_DUMP_TRAFF:
		/* 1 is refused: the data never passes through iprelay. */
		FUZZ_CHECK(command->value == 0);
		break;
	case VAR_IDLE_OUT:
		FUZZ_CHECK(command->value <= IDLE_OUT_MAX_S);
		break;
	case VAR_DEAD_COUNT:
		FUZZ_CHECK(command->value <= DEAD_COUNT_MAX);
		break;
	case VAR_DATA_SIZE:
		FUZZ_CHECK(command->value <= CHUNK_MAX);
		break;
	case VAR_BANDWIDTH:
		FUZZ_CHECK(command->value <= RATE_MAX);
		break;
	case VAR_ALLOW:
	case VAR_DENY:
		check_acl(command);
		break;
	case NVARIABLES:
		FUZZ_CHECK(!"a variable past the last");
	}
}

static void
check_command(const struct command *command)
{
	uint64_t number;
	size_t len;

	FUZZ_CHECK(command->kind < NCOMMAND_KINDS);
	switch (command->kind) {
	case CMD_REPLY:
		len = strlen(command->reply);
		FUZZ_CHECK(len > 0 && command->reply[len - 1] == '\n');
		FUZZ_CHECK(len < sizeof(command->reply) - 1);	/* not cut */
		break;
	case CMD_SHOW_VARIABLE:
		FUZZ_CHECK(command->variable < NVARIABLES);
		break;
	case CMD_SET_VARIABLE:
		FUZZ_CHECK(command->variable < NVARIABLES);
		check_value(command);
		break;
	case CMD_SET_FORWARDER:
		FUZZ_CHECK(command->spec.lport[0] && command->spec.remote.host[0]
		    && command->spec.remote.port[0]);
		/* fall through */
	case CMD_DELETE_FORWARDER:
		FUZZ_CHECK(command->forwarder >= 0 &&
		    command->forwarder <= FORWARDER_NUM_MAX);
		break;
	case CMD_SET_LIMIT:
		FUZZ_CHECK(command->forwarder >= 0 &&
		    command->forwarder <= FORWARDER_NUM_MAX);
		FUZZ_CHECK(parse_uint(command->word, 0, FORWARDER_NUM_MAX,
		    &number) == 0 && number == (uint64_t)command->forwarder);
		FUZZ_CHECK(command->value <= RATE_MAX);
		break;
	case CMD_KILL_CONN:
		FUZZ_CHECK(command->conn_id >= 1);
		FUZZ_CHECK(strncmp(command->word, "CONN", 4) == 0);
		FUZZ_CHECK(parse_uint(command->word + 4, 1, UINT32_MAX,
		    &number) == 0 && number == command->conn_id);
		break;
	default:
		break;
	}
}

static int
same_command(const struct command *a, const struct command *b)
{
	return a->kind == b->kind && strcmp(a->reply, b->reply) == 0 &&
	    (a->kind != CMD_SHOW_VARIABLE || a->variable == b->variable) &&
	    (a->kind != CMD_SET_VARIABLE || (a->variable == b->variable &&
	    a->value == b->value && strcmp(a->text, b->text) == 0 &&
	    a->nacl == b->nacl && memcmp(a->acl, b->acl,
	    a->nacl * sizeof(a->acl[0])) == 0)) &&
	    a->forwarder == b->forwarder && a->conn_id == b->conn_id &&
	    strcmp(a->word, b->word) == 0 &&
	    strcmp(a->spec.lport, b->spec.lport) == 0 &&
	    strcmp(a->spec.remote.host, b->spec.remote.host) == 0 &&
	    strcmp(a->spec.remote.port, b->spec.remote.port) == 0;
}

/* The words of line joined by one space: what the parser must see alike. */
static void
respace(const char *line, char *out, size_t out_size)
{
	size_t len = 0;
	int in_word = 0;

	for (; *line && len + 2 < out_size; line++) {
		if (strchr(" \t\r\n", *line)) {
			in_word = 0;
			continue;
		}
		if (!in_word && len > 0)
			out[len++] = ' ';
		in_word = 1;
		out[len++] = *line;
	}
	out[len] = '\0';
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct command first, second;
	char *line = fuzz_string(data, size);
	char spaced[COMMAND_LINE_MAX];

	command_parse(line, &first);
	check_command(&first);
	if (strlen(line) < COMMAND_LINE_MAX) {
		respace(line, spaced, sizeof(spaced));
		command_parse(spaced, &second);
		check_command(&second);
		FUZZ_CHECK(same_command(&first, &second));
	}
	free(line);
	return 0;
}
