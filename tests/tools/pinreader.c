/*
 * pinreader: holds one read transaction on a state file, as a reader that
 * stalls inside it would (a program stopped in a debugger; iprelay-limit
 * before it copied its listings out of the transaction).  It opens the
 * file with LMDB directly, not through the store, so nothing here ends the
 * transaction early.
 *
 * usage: pinreader DIR SECONDS
 * Prints "pinned TXNID" once the snapshot is held, then sleeps SECONDS (or
 * until SIGTERM) with it held, and exits 0.
 */
#include <errno.h>
#include <lmdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "parse.h"
#include "store.h"

static volatile sig_atomic_t stopping;

static void
on_term(int signo)
{
	(void)signo;
	stopping = 1;
}

int
main(int argc, char **argv)
{
	MDB_env *env;
	MDB_txn *txn;
	char path[4200];
	uint64_t seconds, until_ns;
	struct timespec pause = { 0, 50 * 1000 * 1000 };
	int rc;

	log_open("pinreader", LOG_TO_STDERR);
	if (argc != 3 || parse_uint(argv[2], 0, 86400, &seconds) < 0) {
		fprintf(stderr, "usage: pinreader DIR SECONDS\n");
		return EXIT_USAGE;
	}
	signal(SIGTERM, on_term);
	snprintf(path, sizeof(path), "%s/%s", argv[1], STORE_FILE);
	if ((rc = mdb_env_create(&env)) ||
	    (rc = mdb_env_set_maxdbs(env, 8)) ||
	    (rc = mdb_env_open(env, path, MDB_NOSUBDIR | MDB_RDONLY |
	    MDB_NOTLS, 0660)) ||
	    (rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn)))
		log_fatal(EXIT_SYSTEM, "unable to pin %s: %s", path,
		    mdb_strerror(rc));
	printf("pinned %zu\n", (size_t)mdb_txn_id(txn));
	fflush(stdout);
	until_ns = monotonic_ns() + seconds * NS_PER_SEC;
	while (!stopping && monotonic_ns() < until_ns)
		nanosleep(&pause, NULL);
	mdb_txn_abort(txn);
	mdb_env_close(env);
	return 0;
}
