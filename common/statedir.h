/*
 * The state dir as a trust boundary: the one place that decides whether a
 * dir may be used, drops root's privileges to its owner, and opens the
 * files in it.  Whoever may write the dir (its owner, under systemd the
 * `iprelay` user the relays facing the network run as, and the members of
 * its group) can plant anything there: symlinks, hard links, fifos, files
 * of another owner, the dir itself made in advance.  None of it may make
 * a more privileged process create, write, truncate, chmod or chown
 * anything outside the dir.  So:
 *
 *  - A dir is used only when its owner is trusted: root, the caller, or
 *    the service user (IPRELAY_USER, default "iprelay").  A dir of another
 *    user, one every user may write, and one of root's that a group other
 *    than root's may write are refused (STATEDIR_EREFUSED, exit 100).
 *  - root drops to the owner and group of a dir of the service user (for
 *    good: setgroups, setresgid, setresuid) before it opens anything in
 *    it; a dir of root's stays root's.
 *  - Files are opened relative to the dir's fd, held from the check on,
 *    with O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, and refused unless fstat
 *    says a regular file with one link, of the dir's owner, the caller,
 *    root, or the dir's group.  fchmod only, on fds; never chown.
 *  - LMDB opens its data file and NAME-lock itself, by path, following
 *    links: statedir_lmdb_prepare opens and checks both first and hands
 *    back a path that leads to exactly those files (docs/security.md).
 */
#ifndef IPRELAY_STATEDIR_H
#define IPRELAY_STATEDIR_H

#include <limits.h>
#include <stddef.h>
#include <sys/types.h>

#define STATEDIR_EREFUSED	(-30400)	/* why says; exit 100 */
#define STATEDIR_USER		"iprelay"	/* the service user */

struct statedir {
	int fd;			/* the dir (O_PATH), held; -1 = closed */
	uid_t uid;		/* its owner and group */
	gid_t gid;
	char path[4096];
};

/* Check DIR (creating it and its parents when CREATE and it is missing:
 * the dir mode 0770, or, created by root as the system dir with the
 * service user existing, that user's with mode 2770) and, as root, drop
 * to the owner of a dir of the service user.  0, ENOENT (missing and not
 * CREATE), STATEDIR_EREFUSED or an errno value; WHY holds one line
 * naming the dir and what is wrong (and the fix). */
int
statedir_enter(struct statedir *dir, const char *path, int create,
    char *why, size_t why_size);

/* The same for the state dir PATH and the runtime dir RUN_PATH (the
 * volatile live store's; the same path for both is one dir held twice):
 * both checked before root drops, to the one owner both must have; a
 * runtime dir root makes gets the state dir's owner and group. */
int
statedir_enter_pair(struct statedir *dir, const char *path,
    struct statedir *run, const char *run_path, int create, char *why,
    size_t why_size);

void
statedir_close(struct statedir *dir);

/* Open NAME in the dir as open(2) would with FLAGS (O_CREAT with MODE,
 * which is then set with fchmod on a file we created: whatever the umask),
 * adding O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, and refuse
 * (STATEDIR_EREFUSED) a file that is not regular, has other links, or has
 * an owner we do not trust.  *created says whether this call made it. */
int
statedir_openat(const struct statedir *dir, const char *name, int flags,
    mode_t mode, int *fd, int *created, char *why, size_t why_size);

/* LMDB's files: NAME and NAME-lock, opened and checked as above (the data
 * file created only when CREATE; read-write, else read-only when we may
 * not write), and the path to hand to mdb_env_open (MDB_NOSUBDIR) so that
 * it opens exactly those: through the held dir fd when we are the dir's
 * owner (/proc/self/fd/N/NAME), else through a private dir of symlinks to
 * our own fds (/proc/self/fd/M), which no other user can touch. */
struct statedir_lmdb {
	int data_fd, lock_fd;
	int read_only;		/* the data file could only be read */
	int data_created;	/* we made it: empty, LMDB fills it */
	char path[PATH_MAX];	/* for mdb_env_open */
	char check_path[64];	/* the data file, for reading it first */
	char private_dir[PATH_MAX];	/* "" when not used */
};

int
statedir_lmdb_prepare(const struct statedir *dir, const char *name,
    int create, struct statedir_lmdb *lmdb, char *why, size_t why_size);

/* After mdb_env_open: 0 when LMDB's data fd (ENV_FD) is our file, else
 * STATEDIR_EREFUSED.  Removes the private dir. */
int
statedir_lmdb_verify(struct statedir_lmdb *lmdb, int env_fd, char *why,
    size_t why_size);

/* A failed open: removes the data file if this open made it and it is
 * still empty (it would read as a store being made), then ..._done. */
void
statedir_lmdb_abandon(const struct statedir *dir, const char *name,
    struct statedir_lmdb *lmdb);

/* Closes our fds and removes the private dir: only after mdb_env_close.
 * LMDB holds POSIX (fcntl) locks on NAME-lock, and closing any fd of a
 * file drops every such lock the process holds on it. */
void
statedir_lmdb_done(struct statedir_lmdb *lmdb);

/* root, at a service's start (shaperd -O; ExecStartPre=+ in
 * shaperd.service): each of NAMES (NULL-terminated) in the service
 * user's dir PATH that root left there, from before the dir was that
 * user's, is handed to the dir's owner and group, mode 0660, through an
 * fd: never through a link, never a file with other links (refused, the
 * file named); other users' files are left as they are.  GAVE is told of
 * each.  0 when nothing is (left) to do. */
int
statedir_adopt(const char *path, const char *const *names, char *why,
    size_t why_size, void (*gave)(const char *dir, const char *name));

/* The last refusal's line, for store_strerror(STATEDIR_EREFUSED). */
const char *
statedir_last_why(void);

#endif
