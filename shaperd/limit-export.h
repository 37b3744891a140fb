/*
 * iprelay-limit export and import (limit-export.c): the configuration as
 * JSON and back, all or nothing.
 */
#ifndef IPRELAY_LIMIT_EXPORT_H
#define IPRELAY_LIMIT_EXPORT_H

#include <stdio.h>

#include "store.h"

struct import {
	struct limit_entry *entries;
	unsigned *lines;	/* the line each limit starts on */
	size_t count;
};

/* Every limit of the configuration (STORE may be NULL: none yet) as JSON
 * on OUT: {"format":"iprelay-limits 1","limits":[ one object a line ]}. */
int
limit_export(struct store *store, FILE *out);

/* Parse FILE ("-": stdin) into *import; EINVAL with WHY naming the file,
 * the line and the field when it is not a sound export. */
int
limit_import_parse(const char *file, struct import *import, char *why,
    size_t why_size);

/* Replace the configuration with the import, all or nothing; WHY names
 * the file, line and limit refused. */
int
limit_import_apply(struct store *store, const char *file,
    const struct import *import, char *why, size_t why_size);

void
limit_import_free(struct import *import);

#endif
