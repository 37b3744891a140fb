/*
 * iprelay-limit's part of the caps on live relays (issue 12 item 4):
 * reading --max-conns and --max-conns-per-source, and how get, list and
 * --json show the caps and the relays they refused.
 */
#ifndef IPRELAY_LIMIT_CAPS_H
#define IPRELAY_LIMIT_CAPS_H

#include <stddef.h>

#include "store.h"

/* The words given (NULL: not given) into cfg and fields; a bad one is
 * named in one line, exit 100. */
void
caps_parse(const char *max_conns, const char *max_source,
    struct limit_cfg *cfg, unsigned *fields);

/* get: the lines after the local ones. */
void
caps_print_text(const struct limit_info *info);

/* --json: the fields inside the limit's object, each after a comma. */
void
caps_print_json(const struct limit_info *info);

/* list: the CAPS column ("-" for none, else TOTAL/PER-SOURCE with "-"
 * for the one not set) and the REFUSED column. */
const char *
caps_column(const struct limit_info *info, char *buf, size_t size);

const char *
refused_column(const struct limit_info *info, char *buf, size_t size);

#endif
