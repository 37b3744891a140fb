/* The version every program reports, and the two long options every
 * program takes whatever its own syntax: --help (the usage on stdout) and
 * --version, both exit 0, looked for before any other word is checked. */
#ifndef IPRELAY_VERSION_H
#define IPRELAY_VERSION_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IPRELAY_VERSION	"1.0"

/* Exits 0 after printing when argv (up to a "--") holds --help or
 * --version; usage ends with a newline or gets one. */
static inline void
help_or_version(int argc, char **argv, const char *prog, const char *usage)
{
	size_t len = strlen(usage);
	int index;

	for (index = 1; index < argc && strcmp(argv[index], "--"); index++) {
		if (strcmp(argv[index], "--help") == 0) {
			printf("%s%s", usage, len && usage[len - 1] == '\n' ?
			    "" : "\n");
			exit(fflush(stdout) == 0 ? 0 : 111);
		}
		if (strcmp(argv[index], "--version") == 0) {
			printf("%s %s\n", prog, IPRELAY_VERSION);
			exit(fflush(stdout) == 0 ? 0 : 111);
		}
	}
}

#endif
