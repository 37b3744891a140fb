/* The state dir as a trust boundary; the rules are in statedir.h. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "statedir.h"

#define STATEDIR_SYSTEM	"/var/lib/iprelay"

static char last_why[600];

const char *
statedir_last_why(void)
{
	return last_why[0] ? last_why : "refused by the state dir's checks";
}

static int
refuse(char *why, size_t why_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
refuse(char *why, size_t why_size, const char *fmt, ...)
{
	va_list args;

	va_start(args, fmt);
	vsnprintf(last_why, sizeof(last_why), fmt, args);
	va_end(args);
	if (why && why_size)
		snprintf(why, why_size, "%s", last_why);
	return STATEDIR_EREFUSED;
}

static int
failed(int rc, char *why, size_t why_size, const char *what, const char *path)
{
	if (why && why_size)
		snprintf(why, why_size, "unable to %s %s: %s", what, path,
		    strerror(rc));
	return rc;
}

/* The service user, looked up only when a dir's owner is neither root
 * nor us (never on a relay's path, which runs as the owner). */
static const struct passwd *
service_user(void)
{
	const char *name = getenv("IPRELAY_USER");

	return getpwnam(name && *name ? name : STATEDIR_USER);
}

static const char *
user_name(uid_t uid, char *buf, size_t size)
{
	const struct passwd *user = getpwuid(uid);

	if (user)
		snprintf(buf, size, "%s (uid %lu)", user->pw_name,
		    (unsigned long)uid);
	else
		snprintf(buf, size, "uid %lu", (unsigned long)uid);
	return buf;
}

/* mkdir -p: the parents 0755, the dir itself 0700 until it is checked and
 * given its mode (and owner) through its own fd. */
static int
make_dir(const char *path, const struct statedir *like, char *why,
    size_t why_size)
{
	const struct passwd *user;
	char parent[4096];
	struct stat dir_stat;
	size_t len = strlen(path);
	char *slash;
	int fd, rc;
	mode_t mode = 0770;

	if (len == 0 || len >= sizeof(parent))
		return failed(ENAMETOOLONG, why, why_size, "create", path);
	memcpy(parent, path, len + 1);
	for (slash = parent + 1; (slash = strchr(slash, '/')); slash++) {
		*slash = '\0';
		if (mkdir(parent, 0755) < 0 && errno != EEXIST)
			return failed(errno, why, why_size, "create", parent);
		*slash = '/';
	}
	if (mkdir(path, 0700) < 0)
		return errno == EEXIST ? 0 : failed(errno, why, why_size,
		    "create", path);
	/* Ours and 0700 since the mkdir: whoever may write the parent can
	 * have renamed it away, but cannot have put their own in its place
	 * unnoticed (O_NOFOLLOW, then the owner). */
	fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return failed(errno, why, why_size, "open", path);
	if (fstat(fd, &dir_stat) < 0 || dir_stat.st_uid != geteuid()) {
		close(fd);
		return refuse(why, why_size, "refused: %s was replaced while "
		    "it was being created", path);
	}
	/* root making the system dir for a packaged service: the service
	 * user's, as tmpfiles.d/iprelay.conf and StateDirectory= make it, so
	 * that what root writes there next is the service's too. */
	rc = 0;
	if (geteuid() == 0 && like && like->uid != 0) {
		/* root making the runtime dir beside a state dir of another
		 * owner: that owner's, so that root then drops to one owner
		 * for both (statedir_enter_pair). */
		mode = 02770;
		if (fchown(fd, like->uid, like->gid) < 0)
			rc = failed(errno, why, why_size, "chown", path);
	} else if (geteuid() == 0 && like == NULL &&
	    strcmp(path, STATEDIR_SYSTEM) == 0 &&
	    (user = service_user()) && user->pw_uid != 0) {
		mode = 02770;
		if (fchown(fd, user->pw_uid, user->pw_gid) < 0)
			rc = failed(errno, why, why_size, "chown", path);
	}
	if (rc == 0 && fchmod(fd, mode) < 0)
		rc = failed(errno, why, why_size, "chmod", path);
	close(fd);
	return rc;
}

/* root: become the dir's owner and group for good, with no supplementary
 * group, before anything in it is opened. */
static int
drop_to(const struct statedir *dir, char *why, size_t why_size)
{
	if (setgroups(0, NULL) < 0 || setresgid(dir->gid, dir->gid,
	    dir->gid) < 0 || setresuid(dir->uid, dir->uid, dir->uid) < 0)
		return failed(errno, why, why_size,
		    "drop privileges to the owner of", dir->path);
	if (geteuid() != dir->uid || getegid() != dir->gid)
		return failed(EPERM, why, why_size,
		    "drop privileges to the owner of", dir->path);
	return 0;
}

/* The checks of statedir_enter, without the drop: LIKE (or NULL) is the
 * dir whose owner a dir made here gets. */
static int
enter_checked(struct statedir *dir, const char *path, int create,
    const struct statedir *like, char *why, size_t why_size)
{
	const struct passwd *user;
	struct stat dir_stat;
	struct group *group;
	char owner[96], group_text[96];
	uid_t me = geteuid();
	int rc;

	dir->fd = -1;
	if (snprintf(dir->path, sizeof(dir->path), "%s", path) >=
	    (int)sizeof(dir->path) || *path == '\0')
		return failed(ENAMETOOLONG, why, why_size, "use", path);
	dir->fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dir->fd < 0 && errno == ENOENT && create) {
		if ((rc = make_dir(path, like, why, why_size)))
			return rc;
		dir->fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	}
	if (dir->fd < 0) {
		rc = errno;
		if (rc == ENOENT && why && why_size)
			snprintf(why, why_size, "%s does not exist", path);
		else
			failed(rc, why, why_size, "open", path);
		return rc;
	}
	if (fstat(dir->fd, &dir_stat) < 0) {
		rc = failed(errno, why, why_size, "read", path);
		goto close;
	}
	dir->uid = dir_stat.st_uid;
	dir->gid = dir_stat.st_gid;
	rc = STATEDIR_EREFUSED;
	if (dir_stat.st_mode & S_IWOTH) {
		refuse(why, why_size, "refused: the state dir %s may be "
		    "written by every user (mode %04o): give a dir only its "
		    "owner and group may write (chmod o-w)", path,
		    (unsigned)(dir_stat.st_mode & 07777));
		goto close;
	}
	if (dir->uid != me && dir->uid != 0 && ((user = service_user()) ==
	    NULL || user->pw_uid != dir->uid)) {
		refuse(why, why_size, "refused: the state dir %s belongs to "
		    "user %s, not to you, root or the service user %s: run as "
		    "that user, or give a dir of your own", path,
		    user_name(dir->uid, owner, sizeof(owner)),
		    getenv("IPRELAY_USER") && *getenv("IPRELAY_USER") ?
		    getenv("IPRELAY_USER") : STATEDIR_USER);
		goto close;
	}
	if (me == 0 && dir->uid == 0 && dir->gid != 0 &&
	    (dir_stat.st_mode & S_IWGRP)) {
		group = getgrgid(dir->gid);
		if (group)
			snprintf(group_text, sizeof(group_text), "%s",
			    group->gr_name);
		else
			snprintf(group_text, sizeof(group_text), "%lu",
			    (unsigned long)dir->gid);
		refuse(why, why_size, "refused: the state dir %s is root's "
		    "but group %s may write it: root would act there for "
		    "that group (chown it to the service user, or chmod g-w)",
		    path, group_text);
		goto close;
	}
	return 0;
close:
	close(dir->fd);
	dir->fd = -1;
	return rc;
}

int
statedir_enter(struct statedir *dir, const char *path, int create,
    char *why, size_t why_size)
{
	int rc;

	if ((rc = enter_checked(dir, path, create, NULL, why, why_size)))
		return rc;
	if (geteuid() == 0 && dir->uid != 0 &&
	    (rc = drop_to(dir, why, why_size))) {
		statedir_close(dir);
		return rc;
	}
	return 0;
}

int
statedir_enter_pair(struct statedir *dir, const char *path,
    struct statedir *run, const char *run_path, int create, char *why,
    size_t why_size)
{
	int rc;

	run->fd = -1;
	if ((rc = enter_checked(dir, path, create, NULL, why, why_size)))
		return rc;
	if (strcmp(path, run_path) == 0) {
		*run = *dir;
		if ((run->fd = fcntl(dir->fd, F_DUPFD_CLOEXEC, 0)) < 0) {
			rc = failed(errno, why, why_size, "use", path);
			goto close;
		}
	} else if ((rc = enter_checked(run, run_path, create, dir, why,
	    why_size)))
		goto close;
	/* root drops to one owner for both: a runtime dir of another owner
	 * than the state dir's would be written by root for that owner. */
	if (geteuid() == 0 && run->uid != dir->uid) {
		rc = refuse(why, why_size, "refused: the runtime dir %s "
		    "belongs to uid %lu, the state dir %s to uid %lu: give "
		    "both one owner (chown)", run_path,
		    (unsigned long)run->uid, path, (unsigned long)dir->uid);
		goto close;
	}
	if (geteuid() == 0 && dir->uid != 0 &&
	    (rc = drop_to(dir, why, why_size)))
		goto close;
	return 0;
close:
	statedir_close(run);
	statedir_close(dir);
	return rc;
}

void
statedir_close(struct statedir *dir)
{
	if (dir->fd >= 0)
		close(dir->fd);
	dir->fd = -1;
}

static int
check_stat(const struct statedir *dir, const char *name,
    const struct stat *file_stat, char *why, size_t why_size)
{
	if (S_ISLNK(file_stat->st_mode))
		return refuse(why, why_size, "refused: %s/%s is a symbolic "
		    "link: remove it", dir->path, name);
	if (!S_ISREG(file_stat->st_mode))
		return refuse(why, why_size, "refused: %s/%s is not a regular "
		    "file: remove it", dir->path, name);
	if (file_stat->st_nlink != 1)
		return refuse(why, why_size, "refused: %s/%s has %lu links (a "
		    "hard link may be another file): remove it", dir->path,
		    name, (unsigned long)file_stat->st_nlink);
	if (file_stat->st_uid != dir->uid && file_stat->st_uid != geteuid() &&
	    file_stat->st_uid != 0 && file_stat->st_gid != dir->gid)
		return refuse(why, why_size, "refused: %s/%s belongs to uid "
		    "%lu, not to the dir's owner or group: remove it",
		    dir->path, name, (unsigned long)file_stat->st_uid);
	return 0;
}

/* The file opened is checked again: the name may have been replaced
 * between the look and the open. */
static int
check_fd(const struct statedir *dir, const char *name, int fd, char *why,
    size_t why_size)
{
	struct stat file_stat;

	if (fstat(fd, &file_stat) < 0)
		return failed(errno, why, why_size, "read", name);
	return check_stat(dir, name, &file_stat, why, why_size);
}

int
statedir_openat(const struct statedir *dir, const char *name, int flags,
    mode_t mode, int *fd, int *created, char *why, size_t why_size)
{
	int safe = O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, rc;
	struct stat named;

	*created = 0;
	*fd = -1;
	/* Looked at before it is opened: a fifo, a device or a link to a
	 * file we may not open is refused as what it is, unopened. */
	if (fstatat(dir->fd, name, &named, AT_SYMLINK_NOFOLLOW) == 0 &&
	    (rc = check_stat(dir, name, &named, why, why_size)))
		return rc;
	*fd = openat(dir->fd, name, (flags & ~(O_CREAT | O_EXCL)) | safe);
	if (*fd < 0 && errno == ENOENT && (flags & O_CREAT)) {
		*fd = openat(dir->fd, name, flags | O_CREAT | O_EXCL | safe,
		    mode);
		if (*fd >= 0)
			*created = 1;
		else if (errno == EEXIST)	/* made meanwhile */
			*fd = openat(dir->fd, name,
			    (flags & ~(O_CREAT | O_EXCL)) | safe);
	}
	if (*fd < 0) {
		rc = errno;
		if (rc == ELOOP)
			return refuse(why, why_size, "refused: %s/%s is a "
			    "symbolic link: remove it", dir->path, name);
		/* What root left in a dir before it became the service
		 * user's (iprelay-limit run as root before the package made
		 * the user): name it and the way out. */
		if (rc == EACCES && dir->uid != 0 && geteuid() != 0 &&
		    fstatat(dir->fd, name, &named, AT_SYMLINK_NOFOLLOW) == 0 &&
		    named.st_uid == 0)
			return refuse(why, why_size, "unable to open %s/%s: "
			    "it belongs to root, the dir to uid %lu: as root, "
			    "run 'shaperd -O -S %s' (shaperd.service does at "
			    "start), or chown it to the dir's owner and group",
			    dir->path, name, (unsigned long)dir->uid,
			    dir->path);
		if (why && why_size)
			snprintf(why, why_size, "unable to open %s/%s: %s",
			    dir->path, name, strerror(rc));
		return rc;
	}
	if ((rc = check_fd(dir, name, *fd, why, why_size)) ||
	    (*created && fchmod(*fd, mode) < 0 && (rc = errno)) ||
	    (fcntl(*fd, F_SETFL, fcntl(*fd, F_GETFL) & ~O_NONBLOCK) < 0 &&
	    (rc = errno))) {
		if (rc != STATEDIR_EREFUSED)
			failed(rc, why, why_size, "open", name);
		close(*fd);
		*fd = -1;
		return rc;
	}
	return 0;
}

/* A dir only we can write, holding symlinks to our own fds, so that a
 * path LMDB opens leads to the files we checked whatever happens in the
 * state dir meanwhile. */
static int
private_links(struct statedir_lmdb *lmdb, const char *name, char *why,
    size_t why_size)
{
	const char *tmp = getenv("TMPDIR");
	char target[64], link_path[PATH_MAX + 8];

	if (tmp == NULL || *tmp != '/')
		tmp = "/tmp";
	if (snprintf(lmdb->private_dir, sizeof(lmdb->private_dir),
	    "%s/iprelay-open.XXXXXX", tmp) >= (int)sizeof(lmdb->private_dir))
		return failed(ENAMETOOLONG, why, why_size, "create", tmp);
	if (mkdtemp(lmdb->private_dir) == NULL) {
		lmdb->private_dir[0] = '\0';
		return failed(errno, why, why_size, "create a dir in", tmp);
	}
	snprintf(target, sizeof(target), "/proc/self/fd/%d", lmdb->data_fd);
	if (snprintf(lmdb->path, sizeof(lmdb->path), "%s/%s",
	    lmdb->private_dir, name) >= (int)sizeof(lmdb->path))
		return failed(ENAMETOOLONG, why, why_size, "create", name);
	if (symlink(target, lmdb->path) < 0)
		return failed(errno, why, why_size, "create", lmdb->path);
	snprintf(target, sizeof(target), "/proc/self/fd/%d", lmdb->lock_fd);
	snprintf(link_path, sizeof(link_path), "%s-lock", lmdb->path);
	if (symlink(target, link_path) < 0)
		return failed(errno, why, why_size, "create", link_path);
	return 0;
}

static void
private_links_remove(struct statedir_lmdb *lmdb)
{
	char link_path[PATH_MAX + 8];

	if (lmdb->private_dir[0] == '\0')
		return;
	snprintf(link_path, sizeof(link_path), "%s-lock", lmdb->path);
	unlink(link_path);
	unlink(lmdb->path);
	rmdir(lmdb->private_dir);
	lmdb->private_dir[0] = '\0';
}

static int
open_lock_file(const struct statedir *dir, const char *lock_name,
    struct statedir_lmdb *lmdb, char *why, size_t why_size)
{
	int rc, created;

	rc = statedir_openat(dir, lock_name, O_RDWR | O_CREAT, 0660,
	    &lmdb->lock_fd, &created, why, why_size);
	if (rc == EACCES)
		rc = statedir_openat(dir, lock_name, O_RDONLY, 0,
		    &lmdb->lock_fd, &created, why, why_size);
	return rc;
}

void
statedir_lmdb_abandon(const struct statedir *dir, const char *name,
    struct statedir_lmdb *lmdb)
{
	struct stat ours, named;

	if (lmdb->data_created && lmdb->data_fd >= 0 &&
	    fstat(lmdb->data_fd, &ours) == 0 && ours.st_size == 0 &&
	    fstatat(dir->fd, name, &named, AT_SYMLINK_NOFOLLOW) == 0 &&
	    ours.st_dev == named.st_dev && ours.st_ino == named.st_ino)
		unlinkat(dir->fd, name, 0);
	statedir_lmdb_done(lmdb);
}

int
statedir_lmdb_prepare(const struct statedir *dir, const char *name,
    int create, struct statedir_lmdb *lmdb, char *why, size_t why_size)
{
	char lock_name[300];
	int rc, created;

	memset(lmdb, 0, sizeof(*lmdb));
	lmdb->data_fd = lmdb->lock_fd = -1;
	if (snprintf(lock_name, sizeof(lock_name), "%s-lock", name) >=
	    (int)sizeof(lock_name))
		return failed(ENAMETOOLONG, why, why_size, "open", name);
	/* Creating: the lock file first, so that a refusal leaves no empty
	 * data file behind (one would read as a store being made).  Not
	 * creating: the data file first, so that a dir without a store gets
	 * no lock file either. */
	if (create && (rc = open_lock_file(dir, lock_name, lmdb, why,
	    why_size)))
		goto fail;
	rc = statedir_openat(dir, name, O_RDWR | (create ? O_CREAT : 0),
	    0660, &lmdb->data_fd, &lmdb->data_created, why, why_size);
	if (rc == EACCES && !create) {
		lmdb->read_only = 1;
		rc = statedir_openat(dir, name, O_RDONLY, 0, &lmdb->data_fd,
		    &created, why, why_size);
	}
	if (rc)
		goto fail;
	if (!create && (rc = open_lock_file(dir, lock_name, lmdb, why,
	    why_size)))
		goto fail;
	snprintf(lmdb->check_path, sizeof(lmdb->check_path),
	    "/proc/self/fd/%d", lmdb->data_fd);
	if (geteuid() == dir->uid) {
		/* The owner: only the owner and its group may write the dir
		 * (statedir_enter), and the held fd pins the dir itself. */
		if (snprintf(lmdb->path, sizeof(lmdb->path),
		    "/proc/self/fd/%d/%s", dir->fd, name) <
		    (int)sizeof(lmdb->path) && access(lmdb->path, F_OK) == 0)
			return 0;
		/* No /proc: the dir's path, which only the owner and its
		 * group may change. */
		if (snprintf(lmdb->path, sizeof(lmdb->path), "%s/%s",
		    dir->path, name) < (int)sizeof(lmdb->path))
			return 0;
		rc = failed(ENAMETOOLONG, why, why_size, "open", name);
		goto fail;
	}
	if ((rc = private_links(lmdb, name, why, why_size)) == 0)
		return 0;
fail:
	statedir_lmdb_abandon(dir, name, lmdb);
	return rc;
}

int
statedir_lmdb_verify(struct statedir_lmdb *lmdb, int env_fd, char *why,
    size_t why_size)
{
	struct stat ours, theirs;

	private_links_remove(lmdb);
	if (fstat(lmdb->data_fd, &ours) < 0 || fstat(env_fd, &theirs) < 0 ||
	    ours.st_dev != theirs.st_dev || ours.st_ino != theirs.st_ino)
		return refuse(why, why_size, "refused: the state file in %s "
		    "was replaced while it was being opened", lmdb->path);
	return 0;
}

void
statedir_lmdb_done(struct statedir_lmdb *lmdb)
{
	private_links_remove(lmdb);
	if (lmdb->data_fd >= 0)
		close(lmdb->data_fd);
	if (lmdb->lock_fd >= 0)
		close(lmdb->lock_fd);
	lmdb->data_fd = lmdb->lock_fd = -1;
}

int
statedir_adopt(const char *path, const char *const *names, char *why,
    size_t why_size, void (*gave)(const char *dir, const char *name))
{
	const struct passwd *user;
	struct stat dir_stat, named, opened;
	int dir_fd, fd, rc = 0;

	if (geteuid() != 0)
		return failed(EPERM, why, why_size, "adopt the files in", path);
	dir_fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dir_fd < 0)
		return errno == ENOENT ? 0 : failed(errno, why, why_size,
		    "open", path);
	if (fstat(dir_fd, &dir_stat) < 0) {
		rc = failed(errno, why, why_size, "read", path);
		goto out;
	}
	if (dir_stat.st_uid == 0)
		goto out;	/* root's dir: root's files are right */
	if ((dir_stat.st_mode & S_IWOTH) || (user = service_user()) == NULL ||
	    user->pw_uid != dir_stat.st_uid) {
		rc = refuse(why, why_size, "refused: %s is not the service "
		    "user's dir (or every user may write it): nothing handed "
		    "over", path);
		goto out;
	}
	for (; *names; names++) {
		if (fstatat(dir_fd, *names, &named, AT_SYMLINK_NOFOLLOW) < 0)
			continue;	/* missing: the service makes it */
		if (named.st_uid != 0)
			continue;	/* the owner's, or a member's */
		if (!S_ISREG(named.st_mode) || named.st_nlink != 1) {
			rc = refuse(why, why_size, "refused: %s/%s is root's "
			    "but not a regular file with one link: remove it",
			    path, *names);
			goto out;
		}
		fd = openat(dir_fd, *names, O_RDONLY | O_NOFOLLOW | O_NOCTTY |
		    O_NONBLOCK | O_CLOEXEC);
		if (fd < 0) {
			rc = failed(errno, why, why_size, "open", *names);
			goto out;
		}
		if (fstat(fd, &opened) < 0 || opened.st_dev != named.st_dev ||
		    opened.st_ino != named.st_ino || opened.st_uid != 0 ||
		    opened.st_nlink != 1) {
			close(fd);
			rc = refuse(why, why_size, "refused: %s/%s changed "
			    "while it was being handed over", path, *names);
			goto out;
		}
		if (fchown(fd, dir_stat.st_uid, dir_stat.st_gid) < 0 ||
		    fchmod(fd, 0660) < 0) {
			rc = failed(errno, why, why_size, "hand over", *names);
			close(fd);
			goto out;
		}
		close(fd);
		if (gave)
			gave(path, *names);
	}
out:
	close(dir_fd);
	return rc;
}
