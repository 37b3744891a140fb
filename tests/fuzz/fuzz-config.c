/* libFuzzer target: a whole configuration file.  The input becomes
 * limits.mdb in a private directory (no live store yet: it is made from
 * the input); the store opens it read-only and for writing, lists what it
 * holds and sets a limit.  Any of these must refuse a damaged file with an
 * error code (STORE_ECONFIG and the like): a crash here is the finding
 * damaged-state.t looks for with a handful of hand-made files.  The live
 * store's own file is fuzz-file's. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"
#include "store.h"

static char dir[64];
static char path[128];
static char lock_path[128];
static char live_path[128];
static char live_lock_path[128];

static void
remove_dir(void)
{
	unlink(path);
	unlink(lock_path);
	unlink(live_path);
	unlink(live_lock_path);
	rmdir(dir);
}

static void
make_dir(void)
{
	const char *tmp = getenv("TMPDIR");

	if (dir[0])
		return;
	/* A crash skips atexit: the tests point TMPDIR at their own dir. */
	if (tmp == NULL || *tmp != '/' || strlen(tmp) > 32)
		tmp = "/tmp";
	snprintf(dir, sizeof(dir), "%s/iprelay-fuzz-config.XXXXXX", tmp);
	if (mkdtemp(dir) == NULL) {
		fprintf(stderr, "fuzz-config: fatal: unable to make a dir: %s\n",
		    strerror(errno));
		abort();
	}
	snprintf(path, sizeof(path), "%s/%s", dir, STORE_CONFIG_FILE);
	snprintf(lock_path, sizeof(lock_path), "%s/%s-lock", dir,
	    STORE_CONFIG_FILE);
	snprintf(live_path, sizeof(live_path), "%s/%s", dir, STORE_FILE);
	snprintf(live_lock_path, sizeof(live_lock_path), "%s/%s-lock", dir,
	    STORE_FILE);
	atexit(remove_dir);
}

static int
visit_limit(void *ctx, const struct limit_info *info)
{
	FUZZ_CHECK(limit_name_valid(info->name));
	++*(unsigned *)ctx;
	return 0;
}

static int
visit_conn(void *ctx, const struct conn_info *info)
{
	FUZZ_CHECK(info->id != 0);
	++*(unsigned *)ctx;
	return 0;
}

static void
use_store(int flags)
{
	struct store *store;
	struct limit_cfg cfg = { .rate_Bps = { 1024, 2048 } };
	unsigned count = 0;

	if (store_open(&store, dir, flags))
		return;
	(void)store_limit_foreach(store, visit_limit, &count);
	(void)store_conn_foreach(store, visit_conn, &count);
	if (!(flags & STORE_RDONLY))
		(void)store_limit_put(store, "fuzz", &cfg);
	store_close(store);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int fd;

	make_dir();
	/* Fresh lock files and no live store each time: the input is the
	 * configuration's data file only. */
	unlink(lock_path);
	unlink(live_path);
	unlink(live_lock_path);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, data, size) != (ssize_t)size || close(fd) < 0)
		abort();
	use_store(STORE_RDONLY);
	use_store(0);
	return 0;
}
