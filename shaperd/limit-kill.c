/*
 * iprelay-limit kill: signalling live relays, one or all, and only
 * processes that are relays of this store (why below, at conn_places).
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "iprelay-limit.h"
#include "refiller.h"

struct kill_all {
	uint32_t ids[8192];
	size_t count;
};

static int
collect_conn(void *ctx, const struct conn_info *info)
{
	struct kill_all *all = ctx;

	if (all->count < sizeof(all->ids) / sizeof(all->ids[0]))
		all->ids[all->count++] = info->id;
	return 0;
}

/*
 * Which processes are relays.  A connection record names a pid, and the
 * store is written by its owner (the relays' user, under systemd the
 * `iprelay` user facing the network): a record may name any process.  So
 * a process is signalled only when it is a relay of this store: it runs
 * as the store's owner (real and effective uid), and its executable is an
 * iprelay-conn, the very file one of the places iprelay looks for it
 * names ($IPRELAY_CONN, beside this program, ../sbin from it, PATH, the
 * install dirs), or that path with " (deleted)" after an upgrade replaced
 * it.  The pid is held as a pidfd from before the checks to the signal:
 * a pid reused meanwhile gets nothing (the pidfd's process is gone).
 */
#define CONN_PLACES_MAX	64

struct conn_places {
	char path[CONN_PLACES_MAX][4096];
	dev_t dev[CONN_PLACES_MAX];
	ino_t ino[CONN_PLACES_MAX];
	int found[CONN_PLACES_MAX];
	size_t count;
	uid_t owner;		/* the state dir's owner */
};

static void
conn_place_add(struct conn_places *places, const char *dir, const char *name)
{
	char path[4096], real[PATH_MAX];
	struct stat file_stat;
	size_t index;

	if (places->count == CONN_PLACES_MAX || dir == NULL || *dir != '/')
		return;
	if (snprintf(path, sizeof(path), "%s%s%s", dir, name ? "/" : "",
	    name ? name : "") >= (int)sizeof(path))
		return;
	/* The path the kernel shows for it: symlinks and .. resolved. */
	if (realpath(path, real) == NULL)
		return;
	for (index = 0; index < places->count; index++)
		if (strcmp(places->path[index], real) == 0)
			return;
	index = places->count++;
	snprintf(places->path[index], sizeof(places->path[index]), "%s", real);
	places->found[index] = stat(real, &file_stat) == 0 &&
	    S_ISREG(file_stat.st_mode);
	places->dev[index] = file_stat.st_dev;
	places->ino[index] = file_stat.st_ino;
}

static void
conn_places_find(struct conn_places *places, uid_t owner)
{
	char self[PATH_MAX], *slash, *path, *dir, *save;
	ssize_t len;

	memset(places, 0, sizeof(*places));
	places->owner = owner;
	conn_place_add(places, getenv("IPRELAY_CONN"), NULL);
	len = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (len > 0) {
		self[len] = '\0';
		if ((slash = strrchr(self, '/'))) {
			*slash = '\0';
			conn_place_add(places, self, "iprelay-conn");
			conn_place_add(places, self, "../sbin/iprelay-conn");
		}
	}
	if ((path = getenv("PATH")) && (path = strdup(path))) {
		for (dir = strtok_r(path, ":", &save); dir;
		    dir = strtok_r(NULL, ":", &save))
			conn_place_add(places, dir, "iprelay-conn");
		free(path);
	}
	conn_place_add(places, "/usr/sbin", "iprelay-conn");
	conn_place_add(places, "/usr/local/sbin", "iprelay-conn");
}

/* The ids in /proc/PID/status: "Uid:\treal\teffective\tsaved\tfs". */
static int
proc_uids(pid_t pid, uid_t *real, uid_t *effective)
{
	char path[64], line[256];
	unsigned long values[2];
	FILE *file;
	int found = 0;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if ((file = fopen(path, "re")) == NULL)
		return errno;
	while (fgets(line, sizeof(line), file))
		if (sscanf(line, "Uid: %lu %lu", &values[0], &values[1]) == 2) {
			found = 1;
			break;
		}
	fclose(file);
	if (!found)
		return ESRCH;
	*real = (uid_t)values[0];
	*effective = (uid_t)values[1];
	return 0;
}

enum kill_outcome {
	KILL_DONE,		/* SIGTERM (--drain: SIGUSR1) sent */
	KILL_GONE,		/* no such process (any more) */
	KILL_NOT_RELAY,		/* a process that is not a relay of ours */
	KILL_NOT_PERMITTED,	/* the kernel says we may not signal it */
	KILL_FAILED,		/* why says */
};

/* Checks the process the pidfd holds and signals it; why says what it is
 * when it is not ours to signal. */
static enum kill_outcome
signal_relay(const struct conn_places *places, const struct conn_info *info,
    int pidfd, int signo, char *why, size_t why_size)
{
	char path[64], exe[PATH_MAX + 16], shown[512];
	const char *deleted = " (deleted)";
	struct stat exe_stat;
	uid_t real = (uid_t)-1, effective = (uid_t)-1;
	uint64_t start;
	ssize_t len;
	size_t index, tail = strlen(deleted);
	int rc, is_relay = 0, have_stat;

	/* A recycled pid runs something else: never signal it. */
	start = refiller_proc_start(info->pid);
	if (start == 0 || (info->pid_start && start != info->pid_start))
		return KILL_GONE;
	snprintf(path, sizeof(path), "/proc/%d/exe", (int)info->pid);
	len = readlink(path, exe, sizeof(exe) - 1);
	if (len < 0) {
		rc = errno;
		if (rc == ENOENT || rc == ESRCH)
			return KILL_GONE;
		if (rc == EACCES || rc == EPERM)
			return KILL_NOT_PERMITTED;	/* another user's */
		snprintf(why, why_size, "unable to read %s: %s", path,
		    strerror(rc));
		return KILL_FAILED;
	}
	exe[len] = '\0';
	have_stat = stat(path, &exe_stat) == 0;
	for (index = 0; index < places->count && !is_relay; index++) {
		if (!places->found[index])
			continue;
		if (have_stat && exe_stat.st_dev == places->dev[index] &&
		    exe_stat.st_ino == places->ino[index])
			is_relay = 1;
		/* Replaced by an upgrade while it ran. */
		else if ((size_t)len > tail &&
		    strcmp(exe + len - tail, deleted) == 0 &&
		    strlen(places->path[index]) == (size_t)len - tail &&
		    strncmp(exe, places->path[index], (size_t)len - tail) == 0)
			is_relay = 1;
	}
	if ((rc = proc_uids(info->pid, &real, &effective)))
		return rc == ENOENT || rc == ESRCH ? KILL_GONE :
		    KILL_NOT_PERMITTED;
	log_escape_field(shown, sizeof(shown), exe);
	if (!is_relay) {
		snprintf(why, why_size, "pid %d runs %s, not iprelay-conn",
		    (int)info->pid, shown);
		return KILL_NOT_RELAY;
	}
	if (real != places->owner || effective != places->owner) {
		snprintf(why, why_size, "pid %d runs as uid %lu, not as the "
		    "state dir's owner (uid %lu)", (int)info->pid,
		    (unsigned long)effective, (unsigned long)places->owner);
		return KILL_NOT_RELAY;
	}
	if (syscall(SYS_pidfd_send_signal, pidfd, signo, NULL, 0) < 0) {
		rc = errno;
		if (rc == ESRCH)
			return KILL_GONE;
		if (rc == EPERM)
			return KILL_NOT_PERMITTED;
		snprintf(why, why_size, "unable to signal pid %d: %s",
		    (int)info->pid, strerror(rc));
		return KILL_FAILED;
	}
	return KILL_DONE;
}

static enum kill_outcome
kill_conn(struct store *store, const struct conn_places *places, uint32_t id,
    int signo, pid_t *pid, char *why, size_t why_size)
{
	struct conn_info info;
	enum kill_outcome outcome;
	int rc, pidfd;

	*pid = 0;
	if ((rc = store_conn_get(store, id, &info))) {
		if (rc == STORE_ENOCONN)
			return KILL_GONE;
		snprintf(why, why_size, "unable to read its record: %s",
		    store_strerror(rc));
		return KILL_FAILED;
	}
	*pid = info.pid;
	if (info.pid <= 1) {
		snprintf(why, why_size, "pid %d is never a relay",
		    (int)info.pid);
		return KILL_NOT_RELAY;
	}
	pidfd = (int)syscall(SYS_pidfd_open, info.pid, 0);
	if (pidfd < 0) {
		rc = errno;
		if (rc == ESRCH)
			return KILL_GONE;
		snprintf(why, why_size, "unable to hold pid %d: %s",
		    (int)info.pid, strerror(rc));
		return KILL_FAILED;
	}
	outcome = signal_relay(places, &info, pidfd, signo, why, why_size);
	close(pidfd);
	return outcome;
}

static int
parse_conn_id(const char *word, uint32_t *id)
{
	uint64_t value;

	if (strncmp(word, "CONN", 4) == 0)
		word += 4;
	if (parse_uint(word, 1, 999999, &value))
		return -1;
	*id = (uint32_t)value;
	return 0;
}

static void
say_not_permitted(uint32_t id, pid_t pid, uid_t owner)
{
	struct passwd *user = getpwuid(owner);

	fprintf(stderr, "iprelay-limit: not permitted: CONN%06" PRIu32
	    " (pid %d) runs as %s%s%lu; only root or that user may signal "
	    "it\n", id, (int)pid, user ? user->pw_name : "",
	    user ? ", uid " : "uid ", (unsigned long)owner);
}

int
command_kill(const struct options *options)
{
	struct store *store;
	struct kill_all *all;
	struct conn_places *places;
	char why[PATH_MAX + 256];
	uint32_t id = 0;
	size_t index, killed = 0, skipped = 0, refused = 0, failed = 0;
	enum kill_outcome outcome;
	pid_t pid;
	int rc, single;

	need_words(options, 1, "ID or all");
	single = strcmp(options->words[0], "all") != 0;
	if (single && parse_conn_id(options->words[0], &id))
		bad_word("bad connection id: '%s' (CONNnnnnnn, a number, or "
		    "all)", options->words[0]);
	store = open_for_reading(options);
	say_store();
	if (store == NULL && single) {
		fprintf(stderr, "iprelay-limit: no such connection: %s\n",
		    options->words[0]);
		return EXIT_POLICY;
	}
	if (store == NULL) {
		printf("0 connections %s\n", options->drain ?
		    "stopping gracefully" : "terminated");
		return 0;
	}
	all = calloc(1, sizeof(*all));
	places = malloc(sizeof(*places));
	if (all == NULL || places == NULL)
		log_fatal(EXIT_SYSTEM, "unable to allocate: %s",
		    strerror(ENOMEM));
	conn_places_find(places, store_dir(store)->uid);
	if (single) {
		struct conn_info probe;

		if ((rc = store_conn_get(store, id, &probe)) == STORE_ENOCONN) {
			fprintf(stderr, "iprelay-limit: no such connection: "
			    "%s\n", options->words[0]);
			store_close(store);
			free(all);
			free(places);
			return EXIT_POLICY;
		}
		all->ids[all->count++] = id;
	} else if ((rc = store_conn_foreach(store, collect_conn, all)))
		log_fatal(EXIT_SYSTEM, "unable to list connections: %s",
		    store_strerror(rc));
	for (index = 0; index < all->count; index++) {
		id = all->ids[index];
		why[0] = '\0';
		outcome = kill_conn(store, places, id, options->drain ?
		    SIGUSR1 : SIGTERM, &pid, why, sizeof(why));
		switch (outcome) {
		case KILL_DONE:
			killed++;
			if (single)
				printf("CONN%06" PRIu32 " %s\n", id,
				    options->drain ? "stopping gracefully" :
				    "terminated");
			break;
		case KILL_GONE:
			if (single)
				printf("CONN%06" PRIu32 " is gone already\n",
				    id);
			break;
		case KILL_NOT_RELAY:
			skipped++;
			fprintf(stderr, "iprelay-limit: skipped CONN%06" PRIu32
			    ": not a relay of this store: %s\n", id, why);
			break;
		case KILL_NOT_PERMITTED:
			refused++;
			say_not_permitted(id, pid, places->owner);
			break;
		case KILL_FAILED:
			failed++;
			fprintf(stderr, "iprelay-limit: unable to kill CONN%06"
			    PRIu32 ": %s\n", id, why);
			break;
		}
	}
	store_close(store);
	free(all);
	free(places);
	if (!single)
		printf("%zu connection%s %s%s\n", killed,
		    killed == 1 ? "" : "s", options->drain ?
		    "stopping gracefully" : "terminated", skipped + refused +
		    failed ?
		    " (the others: see above)" : "");
	/* Not permitted is the caller's to fix (who runs it): 100, as for
	 * usage; a record naming something else is refused by policy. */
	return failed ? EXIT_SYSTEM : refused ? EXIT_USAGE : skipped ?
	    EXIT_POLICY : 0;
}

