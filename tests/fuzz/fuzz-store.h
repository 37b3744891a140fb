/* What the two whole-file targets share (fuzz-file: the live store's
 * file; fuzz-config: the configuration's): a private state dir, the input
 * written as one of its files, and the store opened read-only and for
 * writing over it, listing what it holds and setting a limit.  Each
 * target says which file the input is and which one starts afresh on
 * every input. */
#ifndef IPRELAY_FUZZ_STORE_H
#define IPRELAY_FUZZ_STORE_H

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"
#include "store.h"

static char fuzz_dir[64];

static void
fuzz_unlink_in_dir(const char *name, const char *suffix)
{
	char path[160];

	snprintf(path, sizeof(path), "%s/%s%s", fuzz_dir, name, suffix);
	unlink(path);
}

static void
fuzz_remove_dir(void)
{
	fuzz_unlink_in_dir(STORE_FILE, "");
	fuzz_unlink_in_dir(STORE_FILE, "-lock");
	fuzz_unlink_in_dir(STORE_CONFIG_FILE, "");
	fuzz_unlink_in_dir(STORE_CONFIG_FILE, "-lock");
	rmdir(fuzz_dir);
}

static void
fuzz_make_dir(const char *prog)
{
	const char *tmp = getenv("TMPDIR");

	if (fuzz_dir[0])
		return;
	/* A crash skips atexit: the tests point TMPDIR at their own dir. */
	if (tmp == NULL || *tmp != '/' || strlen(tmp) > 32)
		tmp = "/tmp";
	snprintf(fuzz_dir, sizeof(fuzz_dir), "%s/iprelay-%s.XXXXXX", tmp,
	    prog);
	if (mkdtemp(fuzz_dir) == NULL) {
		fprintf(stderr, "%s: fatal: unable to make a dir: %s\n", prog,
		    strerror(errno));
		abort();
	}
	atexit(fuzz_remove_dir);
}

static int
fuzz_visit_limit(void *ctx, const struct limit_info *info)
{
	FUZZ_CHECK(limit_name_valid(info->name));
	++*(unsigned *)ctx;
	return 0;
}

static int
fuzz_visit_conn(void *ctx, const struct conn_info *info)
{
	FUZZ_CHECK(info->id != 0);
	++*(unsigned *)ctx;
	return 0;
}

static void
fuzz_use_store(int flags)
{
	struct store *store;
	struct limit_cfg cfg = { .rate_Bps = { 1024, 2048 } };
	unsigned count = 0;

	if (store_open(&store, fuzz_dir, flags))
		return;
	(void)store_limit_foreach(store, fuzz_visit_limit, &count);
	(void)store_conn_foreach(store, fuzz_visit_conn, &count);
	if (!(flags & STORE_RDONLY))
		(void)store_limit_put(store, "fuzz", &cfg);
	store_close(store);
}

/* The input becomes the data file INPUT (its lock file fresh each time:
 * the input is the data file only); FRESH, when given, is removed with
 * its lock file first, so the store makes it again from the input. */
static int
fuzz_store_file(const char *prog, const char *input, const char *fresh,
    const uint8_t *data, size_t size)
{
	char path[160];
	int fd;

	fuzz_make_dir(prog);
	fuzz_unlink_in_dir(input, "-lock");
	if (fresh) {
		fuzz_unlink_in_dir(fresh, "");
		fuzz_unlink_in_dir(fresh, "-lock");
	}
	snprintf(path, sizeof(path), "%s/%s", fuzz_dir, input);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, data, size) != (ssize_t)size || close(fd) < 0)
		abort();
	fuzz_use_store(STORE_RDONLY);
	fuzz_use_store(0);
	return 0;
}

#endif
