/*
 * iprelay-limit's part of the caps on live relays (limit-caps.h): the
 * options of set, and the lines and fields get, list and --json show.
 * The caps are enforced by the relays as they register (store-caps.c).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "limit-caps.h"
#include "log.h"
#include "parse.h"

/* 0 or none clears a cap; else 1 to CAPS_MAX.  -1 for a bad word. */
static int
parse_cap(const char *word, uint32_t *cap)
{
	uint64_t value;

	if (strcmp(word, "none") == 0) {
		*cap = 0;
		return 0;
	}
	if (parse_uint(word, 0, CAPS_MAX, &value) < 0)
		return -1;
	*cap = (uint32_t)value;
	return 0;
}

void
caps_parse(const char *max_conns, const char *max_source,
    struct limit_cfg *cfg, unsigned *fields)
{
	char raw[600], text[600];
	int bad_total, bad_source;

	bad_total = max_conns && parse_cap(max_conns, &cfg->max_conns);
	bad_source = max_source &&
	    parse_cap(max_source, &cfg->max_conns_per_source);
	if (bad_total || bad_source) {
		/* Both named when both are bad: one line, one fix. */
		snprintf(raw, sizeof(raw), "bad %s: '%s'%s%s%s%s (a number "
		    "of connections from 1 to %u, or 0 or none to clear it)",
		    bad_total ? "--max-conns" : "--max-conns-per-source",
		    bad_total ? max_conns : max_source,
		    bad_total && bad_source ? ", bad " : "",
		    bad_total && bad_source ? "--max-conns-per-source: '" : "",
		    bad_total && bad_source ? max_source : "",
		    bad_total && bad_source ? "'" : "", CAPS_MAX);
		log_escape(text, sizeof(text), raw);
		fprintf(stderr, "iprelay-limit: %s\n", text);
		exit(EXIT_USAGE);
	}
	if (max_conns)
		*fields |= LIMIT_FIELD_MAX_CONNS;
	if (max_source)
		*fields |= LIMIT_FIELD_MAX_SOURCE;
}

static const char *
format_cap(uint32_t cap, char *buf, size_t size)
{
	if (cap == 0)
		return "none";
	snprintf(buf, size, "%" PRIu32, cap);
	return buf;
}

void
caps_print_text(const struct limit_info *info)
{
	char total[16], source[16];

	printf("caps:    conns %s per source %s\n",
	    format_cap(info->cfg.max_conns, total, sizeof(total)),
	    format_cap(info->cfg.max_conns_per_source, source,
	    sizeof(source)));
	printf("refused: conns %" PRIu64 " per source %" PRIu64 "\n",
	    info->refused[0], info->refused[1]);
}

void
caps_print_json(const struct limit_info *info)
{
	/* null = no cap, as for ceilings. */
	if (info->cfg.max_conns)
		printf(",\"max_conns\":%" PRIu32, info->cfg.max_conns);
	else
		printf(",\"max_conns\":null");
	if (info->cfg.max_conns_per_source)
		printf(",\"max_conns_per_source\":%" PRIu32,
		    info->cfg.max_conns_per_source);
	else
		printf(",\"max_conns_per_source\":null");
	printf(",\"refused_max_conns\":%" PRIu64
	    ",\"refused_max_conns_per_source\":%" PRIu64,
	    info->refused[0], info->refused[1]);
}

const char *
caps_column(const struct limit_info *info, char *buf, size_t size)
{
	char total[16], source[16];

	if (!info->cfg.max_conns && !info->cfg.max_conns_per_source)
		return "-";
	snprintf(buf, size, "%s/%s", info->cfg.max_conns ?
	    format_cap(info->cfg.max_conns, total, sizeof(total)) : "-",
	    info->cfg.max_conns_per_source ?
	    format_cap(info->cfg.max_conns_per_source, source,
	    sizeof(source)) : "-");
	return buf;
}

const char *
refused_column(const struct limit_info *info, char *buf, size_t size)
{
	snprintf(buf, size, "%" PRIu64, info->refused[0] + info->refused[1]);
	return buf;
}
