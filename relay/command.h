/*
 * The language of iprelay's interactive prompt, parsed apart from what the
 * commands do, so that it can be fuzzed (tests/fuzz/fuzz-command.c) and read
 * in one place.  command_parse() turns one line into either a command whose
 * words are all valid, or the text the prompt answers with (help, or one
 * line naming what is wrong).  Only what depends on the running instance is
 * left to iprelay: whether a forwarder exists, the store, resolving names.
 */
#ifndef IPRELAY_COMMAND_H
#define IPRELAY_COMMAND_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>

#include "parse.h"

#define COMMAND_LINE_MAX	1024	/* bytes in one line, with its NUL */
#define COMMAND_WORDS_MAX	8
#define ADDRS_MAX		4	/* addresses in local_addrs */
#define LOCAL_ADDRS_MAX_B	(ADDRS_MAX * (INET6_ADDRSTRLEN + 1))
#define ACL_MAX			32	/* entries in allow, and in deny */
#define FORWARDER_NUM_MAX	9999
#define IDLE_OUT_MAX_S		100000000
#define DEAD_COUNT_MAX		1000000

/* The variables of "show VAR" and "set VAR VALUE", in "show all" order. */
enum variable {
	VAR_LOCAL_ADDRS, VAR_FORCE_FROM, VAR_DEBUG, VAR_DUMP_TRAFF,
	VAR_IDLE_OUT, VAR_DEAD_COUNT, VAR_DATA_SIZE, VAR_BANDWIDTH,
	VAR_ALLOW, VAR_DENY,
	NVARIABLES
};

extern const char *const variable_names[NVARIABLES];

enum command_kind {
	CMD_EMPTY,		/* a blank line: nothing to do or say */
	CMD_REPLY,		/* nothing to do; print reply */
	CMD_SHOW_ALL,
	CMD_SHOW_STATS,
	CMD_SHOW_VERSION,
	CMD_SHOW_VARIABLE,	/* variable */
	CMD_SET_VARIABLE,	/* variable and its value */
	CMD_SET_FORWARDER,	/* forwarder, spec */
	CMD_DELETE_FORWARDER,	/* forwarder */
	CMD_SET_LIMIT,		/* forwarder, value (bytes/s), word */
	CMD_KILL_ALL,
	CMD_KILL_CONN,		/* conn_id, word */
	CMD_QUIT,
	NCOMMAND_KINDS
};

struct command {
	enum command_kind kind;
	/* CMD_REPLY: whole lines, as the prompt prints them. */
	char reply[COMMAND_LINE_MAX + 256];
	enum variable variable;
	int forwarder;			/* 0..FORWARDER_NUM_MAX */
	struct proxyspec spec;
	/* The number a variable is set to (bandwidth in bytes/s, data_size
	 * in bytes, idle_out in seconds), or set limit's rate in bytes/s. */
	uint64_t value;
	uint32_t conn_id;		/* 1.. : CONNnnnnnn */
	/* The value of local_addrs or force_from, checked. */
	char text[LOCAL_ADDRS_MAX_B];
	struct cidr acl[ACL_MAX];	/* allow or deny: the new list */
	size_t nacl;
	/* The word the user typed for what iprelay must still look up (the
	 * forwarder of set limit, the connection of kill), for its messages. */
	char word[COMMAND_LINE_MAX];
};

void
command_parse(const char *line, struct command *command);

/* An IPv4 or IPv6 literal. */
int
address_valid(const char *word);

/* "a,b,c": 1 to ADDRS_MAX addresses, each an IPv4 or IPv6 literal. */
int
local_addrs_valid(const char *word);

/* Two entries of a valid local_addrs that would bind a port twice (the
 * same address, or one and its family's wildcard): 1 and the two in first
 * and second, else 0. */
int
local_addrs_overlap(const char *word, char *first, char *second,
    size_t size);

/* Comma-separated CIDRs, or "none" for an empty list; -1 with bad_text
 * naming the first bad entry when any is wrong (list left alone). */
int
acl_parse(const char *word, struct cidr list[ACL_MAX], size_t *count,
    char *bad_text, size_t bad_size);

#endif
