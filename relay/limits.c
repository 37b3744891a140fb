/*
 * The limits an iprelay instance uses, and who owns them.  The instance's
 * limit is the one named by -n, or one it makes for itself (iprelay-PORT
 * after its first local port, iprelay-PID without one); a forwarder's own
 * limit (set limit N RATE) is NAME.N.  Who holds a name is told by a lock
 * file per name, owners/NAME in the state dir, held with flock (the kernel
 * lets go however the holder ends):
 *   - a limit an instance made for itself is held exclusively, and deleted
 *     from the store when the instance ends (or, for a forwarder's, once
 *     the forwarder is deleted and its last connection has ended);
 *   - a limit named with -n is held shared: instances given the same name
 *     share it on purpose, and it stays in the store.
 * A second instance whose port-derived name is held takes the next free
 * one (iprelay-PORT-2, ...) and says so; a -n naming a limit another
 * instance made for itself is refused.  So two instances never share or
 * overwrite a limit by accident, and limits do not pile up in the store.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "iprelay.h"

#define OWNERS_DIR	"owners"
#define DERIVED_MAX	99	/* iprelay-PORT, iprelay-PORT-2 .. -99 */

/* A forwarder's own limit kept after the forwarder was deleted, while
 * connections it started still draw from it. */
struct kept_limit {
	int number;
	int fd;
	char name[LIMIT_NAME_MAX + 8];
};

static struct kept_limit kept[FORWARDERS_MAX];
static size_t nkept;

/* The owners dir, opened without following a link (a group member may
 * write the state dir): -1 with errno on failure. */
static int
owners_dir_open(void)
{
	char path[PATH_MAX + 16];
	int fd;

	snprintf(path, sizeof(path), "%s/" OWNERS_DIR, relay.state_dir);
	if (mkdir(path, 0770) == 0)
		(void)chmod(path, 02770);	/* as the state dir: the group's */
	else if (errno != EEXIST)
		return -1;
	fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	return fd;
}

/* Take NAME's lock file, exclusively (and write our pid in it) or shared.
 * The fd, or -1 with *holder the pid of an exclusive holder (0 unknown)
 * and errno EWOULDBLOCK, or -1 with errno for a failure. */
static int
owner_take(const char *name, int exclusive, pid_t *holder)
{
	struct stat held, named;
	char text[24];
	ssize_t got;
	int dir_fd, fd = -1, attempt, len, saved;

	*holder = 0;
	if ((dir_fd = owners_dir_open()) < 0)
		return -1;
	/* A holder that ends unlinks the file: ours must still be the one
	 * named once locked, else it is taken again. */
	for (attempt = 0; attempt < 8; attempt++) {
		fd = openat(dir_fd, name, O_RDWR | O_CREAT | O_NOFOLLOW |
		    O_NOCTTY | O_CLOEXEC, 0660);
		if (fd < 0)
			break;
		if (fstat(fd, &held) == 0 && held.st_uid == geteuid())
			(void)fchmod(fd, 0660);
		if (flock(fd, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) < 0) {
			saved = errno;
			if (saved == EWOULDBLOCK) {
				got = pread(fd, text, sizeof(text) - 1, 0);
				text[got > 0 ? got : 0] = '\0';
				*holder = (pid_t)atoi(text);
			}
			close(fd);
			close(dir_fd);
			errno = saved;
			return -1;
		}
		if (fstatat(dir_fd, name, &named, AT_SYMLINK_NOFOLLOW) == 0 &&
		    held.st_dev == named.st_dev && held.st_ino == named.st_ino)
			break;
		close(fd);
		fd = -1;
		errno = EAGAIN;
	}
	saved = errno;
	close(dir_fd);
	if (fd < 0) {
		errno = saved;
		return -1;
	}
	if (exclusive) {
		len = snprintf(text, sizeof(text), "%d\n", (int)getpid());
		if (ftruncate(fd, 0) < 0 || pwrite(fd, text, (size_t)len, 0) !=
		    len) {
			saved = errno;
			close(fd);
			errno = saved;
			return -1;
		}
	}
	return fd;
}

/* Let go of NAME's lock file; removed when nobody else holds it. */
static void
owner_release(const char *name, int fd)
{
	int dir_fd;

	if (fd < 0)
		return;
	if (flock(fd, LOCK_EX | LOCK_NB) == 0 &&
	    (dir_fd = owners_dir_open()) >= 0) {
		(void)unlinkat(dir_fd, name, 0);
		close(dir_fd);
	}
	close(fd);
}

/* Delete a limit this instance made, and let go of its name. */
static void
made_limit_end(const char *name, int fd)
{
	uint32_t nconns;
	int rc;

	rc = store_limit_del(relay.store, name, &nconns);
	if (rc && rc != STORE_ENOLIMIT)
		say(LOG_WARNING, "** unable to delete limit %s: %s", name,
		    store_strerror(rc));
	owner_release(name, fd);
}

void
limits_choose(const char *name_option, const char *first_port)
{
	char base[32], name[LIMIT_NAME_MAX + 1];	/* iprelay-PORT, iprelay-PID */
	pid_t holder, first_holder = 0;
	int fd, index;

	if (name_option) {
		snprintf(relay.limit_name, sizeof(relay.limit_name), "%s",
		    name_option);
		fd = owner_take(name_option, 0, &holder);
		if (fd < 0 && errno == EWOULDBLOCK)
			log_fatal(EXIT_USAGE, "unable to use limit %s: another "
			    "iprelay (pid %d) made it for itself and deletes it "
			    "when it ends; give -n another name", name_option,
			    (int)holder);
		if (fd < 0)
			log_fatal(EXIT_SYSTEM, "unable to use limit %s: unable "
			    "to lock %s/" OWNERS_DIR "/%s: %s", name_option,
			    relay.state_dir, name_option, strerror(errno));
		relay.limit_fd = fd;
		relay.limit_made = 0;
		return;
	}
	if (first_port)
		snprintf(base, sizeof(base), "iprelay-%s", first_port);
	else
		snprintf(base, sizeof(base), "iprelay-%d", (int)getpid());
	for (index = 1; index <= DERIVED_MAX; index++) {
		if (index == 1)
			snprintf(name, sizeof(name), "%s", base);
		else
			snprintf(name, sizeof(name), "%s-%d", base, index);
		fd = owner_take(name, 1, &holder);
		if (fd >= 0)
			break;
		if (errno != EWOULDBLOCK)
			log_fatal(EXIT_SYSTEM, "unable to lock %s/" OWNERS_DIR
			    "/%s: %s", relay.state_dir, name, strerror(errno));
		if (index == 1)
			first_holder = holder;
	}
	if (fd < 0)
		log_fatal(EXIT_SYSTEM, "unable to find a limit name: %s to "
		    "%s-%d are all used by other instances (give -n NAME)",
		    base, base, DERIVED_MAX);
	if (index > 1)
		fprintf(stderr, "iprelay: limit %s is another iprelay's (pid "
		    "%d): this one's limit is %s\n", base, (int)first_holder,
		    name);
	snprintf(relay.limit_name, sizeof(relay.limit_name), "%s", name);
	relay.limit_fd = fd;
	relay.limit_made = 1;
}

/* set limit N: forwarder N's own limit is this instance's; 0, or -1 with
 * why (held by another instance given the same -n). */
int
forwarder_limit_take(struct forwarder *forwarder, const char *name,
    char *why, size_t why_size)
{
	pid_t holder;
	size_t index;
	int fd;

	if (forwarder->own_limit_fd >= 0)
		return 0;
	/* Kept from a deleted forwarder of that number: ours again. */
	for (index = 0; index < nkept; index++) {
		if (strcmp(kept[index].name, name) != 0)
			continue;
		forwarder->own_limit_fd = kept[index].fd;
		kept[index] = kept[--nkept];
		return 0;
	}
	fd = owner_take(name, 1, &holder);
	if (fd < 0 && errno == EWOULDBLOCK) {
		snprintf(why, why_size, "limit %s is another iprelay's (pid %d)",
		    name, (int)holder);
		return -1;
	}
	if (fd < 0) {
		snprintf(why, why_size, "unable to lock %s/" OWNERS_DIR "/%s: %s",
		    relay.state_dir, name, strerror(errno));
		return -1;
	}
	forwarder->own_limit_fd = fd;
	return 0;
}

/* Whether a relay of ours still draws from forwarder number's own limit. */
static int
own_limit_in_use(int number)
{
	size_t index;

	for (index = 0; index < relay.nchildren; index++)
		if (relay.children[index].own_limit == number)
			return 1;
	return 0;
}

/* Forwarder deleted: its own limit goes now, or once the connections it
 * started have ended (they keep their shaping meanwhile). */
void
forwarder_limit_drop(struct forwarder *forwarder)
{
	char name[LIMIT_NAME_MAX + 8];

	if (!forwarder->has_own_limit || forwarder->own_limit_fd < 0)
		return;
	forwarder_limit_name(forwarder->number, name, sizeof(name));
	if (!own_limit_in_use(forwarder->number) || nkept == FORWARDERS_MAX) {
		made_limit_end(name, forwarder->own_limit_fd);
	} else {
		kept[nkept].number = forwarder->number;
		kept[nkept].fd = forwarder->own_limit_fd;
		snprintf(kept[nkept].name, sizeof(kept[nkept].name), "%s", name);
		nkept++;
	}
	forwarder->own_limit_fd = -1;
	forwarder->has_own_limit = 0;
}

/* After relays ended: the kept limits nobody draws from any more go. */
void
kept_limits_sweep(void)
{
	size_t index = 0;

	while (index < nkept) {
		if (own_limit_in_use(kept[index].number)) {
			index++;
			continue;
		}
		made_limit_end(kept[index].name, kept[index].fd);
		kept[index] = kept[--nkept];
	}
}

/* At the end, every relay gone: the limits made for this instance go;
 * a limit named with -n stays. */
void
limits_release(void)
{
	char name[LIMIT_NAME_MAX + 8];
	size_t index;

	for (index = 0; index < relay.nforwarders; index++) {
		struct forwarder *forwarder = &relay.forwarders[index];

		if (!forwarder->has_own_limit || forwarder->own_limit_fd < 0)
			continue;
		forwarder_limit_name(forwarder->number, name, sizeof(name));
		made_limit_end(name, forwarder->own_limit_fd);
		forwarder->own_limit_fd = -1;
	}
	while (nkept) {
		nkept--;
		made_limit_end(kept[nkept].name, kept[nkept].fd);
	}
	if (relay.limit_made)
		made_limit_end(relay.limit_name, relay.limit_fd);
	else
		owner_release(relay.limit_name, relay.limit_fd);
	relay.limit_fd = -1;
}
