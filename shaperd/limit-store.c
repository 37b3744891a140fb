/*
 * Which store an iprelay-limit command uses, and saying so: finding the
 * state dir (-S, $IPRELAY_STATE_DIR, the system's), opening it to read or
 * to write, and the line or field that names it in every answer.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "iprelay-limit.h"
#include "limit-format.h"

/* Which store, and why that one (iprelay-limit.h says why it is said). */
char used_dir[4096];
const char *store_source = "";

const char *
store_path(const struct options *options)
{
	int rc;

	if (used_dir[0])
		return used_dir;
	if ((rc = store_dir_resolve(options->state_dir, used_dir,
	    sizeof(used_dir))))
		log_fatal(EXIT_USAGE, "unable to find the state dir: %s "
		    "(give -S DIR or set IPRELAY_STATE_DIR)", strerror(rc));
	store_source = store_dir_source(options->state_dir);
	return used_dir;
}

void
say_store(void)
{
	printf("store: %s (%s)\n", used_dir, store_source);
}

/* For the tables' header line, after the column names: a line above it
 * would shift every row that scripts count or skip. */
const char *
store_said(void)
{
	static char said[4096 + 200];

	snprintf(said, sizeof(said), "store %s, %s", used_dir, store_source);
	return said;
}

void
json_store_field(void)
{
	printf(",\"store\":");
	json_string(used_dir);
}

/* Open for a command that changes something: a user who may not write the
 * state file is refused by policy (exit 1), said plainly. */
struct store *
open_for_writing(const struct options *options)
{
	const char *dir = store_path(options);
	struct store *store;
	int rc;

	rc = store_open(&store, dir, 0);
	if (rc == EACCES || rc == EPERM || rc == EROFS)
		log_fatal(EXIT_POLICY, "unable to change limits in %s: %s "
		    "(changing limits needs write access to the state dir "
		    "and %s)", dir, strerror(rc), STORE_CONFIG_FILE);
	if (rc)
		log_fatal(store_exit_code(rc), "unable to open %s: %s",
		    store_failed_path(), store_strerror(rc));
	return store;
}

/* Open for reading: NULL when there is no state file yet (nothing to show,
 * and reading must not create one). */
struct store *
open_for_reading(const struct options *options)
{
	const char *dir = store_path(options);
	struct store *store;
	int rc;

	rc = store_open(&store, dir, STORE_RDONLY);
	if (rc == STORE_ENOSTORE)
		return NULL;
	if (rc == EACCES || rc == EPERM)
		log_fatal(EXIT_POLICY, "unable to read %s: %s",
		    store_failed_path(), strerror(rc));
	if (rc)
		log_fatal(store_exit_code(rc), "unable to open %s: %s",
		    store_failed_path(), store_strerror(rc));
	return store;
}
