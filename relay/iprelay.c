/*
 * iprelay: the classic command (a drop-in for ip_relay.pl 0.71).  It binds
 * its forwarders, spawns one iprelay-conn per accepted connection with the
 * socket on fd 0 and 1 (as inetd does), keeps one limit per instance in the
 * store (shared by every forwarder and connection, per direction), refills
 * the buckets itself while no shaperd does, and offers the original's
 * interactive prompt.  Everything runs from one poll loop: stdin, the
 * listeners, a signalfd and a 100 ms timer, so nothing blocks the prompt.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "iprelay.h"

struct iprelay relay = {
	.signal_fd = -1,
	.timer_fd = -1,
	.limit_fd = -1,
	.log_fds = { -1, -1 },
	.max_conns = 512,
	.set = {
		.local_addrs = "0.0.0.0,::",
		.force_from = "0.0.0.0",
		.debug = 1,
		.idle_out_s = 3000,
		.dead_count = 10,
	},
};

static void
usage(const char *why, const char *word)
{
	char shown[600] = "";

	/* Escaped: a newline in the word must not make two lines. */
	if (word)
		log_escape(shown, sizeof(shown), word);
	if (why)
		fprintf(stderr, "iprelay: %s%s%s\n", why, word ? ": " : "",
		    shown);
	fprintf(stderr, "%s\n", USAGE);
	exit(EXIT_USAGE);
}

/* -a and -A: each a CIDR or a comma-separated list, added to the rest. */
static void
acl_option(int option, const char *word)
{
	struct cidr *list = option == 'a' ? relay.set.allow : relay.set.deny;
	size_t *count = option == 'a' ? &relay.set.nallow : &relay.set.ndeny;
	struct cidr more[ACL_MAX];
	char bad[CIDR_TEXT_MAX + 2];
	size_t nmore;

	if (strcmp(word, "none") == 0 || acl_parse(word, more, &nmore, bad,
	    sizeof(bad)) < 0)
		usage(option == 'a' ? "bad -a address or CIDR range" :
		    "bad -A address or CIDR range", strcmp(word, "none") ?
		    bad : word);
	if (*count + nmore > ACL_MAX) {
		snprintf(bad, sizeof(bad), "%d", ACL_MAX);
		usage(option == 'a' ? "too many -a entries, at most" :
		    "too many -A entries, at most", bad);
	}
	memcpy(list + *count, more, nmore * sizeof(more[0]));
	*count += nmore;
}

static int
executable(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISREG(st.st_mode) &&
	    access(path, X_OK) == 0;
}

/* iprelay-conn: beside this binary, else $IPRELAY_CONN, else ../sbin
 * beside it (the installed layout), else PATH. */
static int
find_conn(void)
{
	char self[PATH_MAX - 32], *slash, *path, *copy, *saveptr, *dir;
	ssize_t len;
	const char *env;

	len = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (len > 0) {
		self[len] = '\0';
		slash = strrchr(self, '/');
		if (slash) {
			*slash = '\0';
			snprintf(relay.conn_path, sizeof(relay.conn_path),
			    "%s/iprelay-conn", self);
			if (executable(relay.conn_path))
				return 0;
		}
	}
	env = getenv("IPRELAY_CONN");
	if (env && *env) {
		snprintf(relay.conn_path, sizeof(relay.conn_path), "%s", env);
		if (executable(relay.conn_path))
			return 0;
	}
	if (len > 0) {
		snprintf(relay.conn_path, sizeof(relay.conn_path),
		    "%s/../sbin/iprelay-conn", self);
		if (executable(relay.conn_path))
			return 0;
	}
	path = getenv("PATH");
	if (path == NULL || (copy = strdup(path)) == NULL)
		return -1;
	for (dir = strtok_r(copy, ":", &saveptr); dir;
	    dir = strtok_r(NULL, ":", &saveptr)) {
		snprintf(relay.conn_path, sizeof(relay.conn_path),
		    "%s/iprelay-conn", dir);
		if (executable(relay.conn_path)) {
			free(copy);
			return 0;
		}
	}
	free(copy);
	return -1;
}

/* The pid file: opened without following a symlink, refused unless it is
 * a regular file of ours with one link (a dir another user may write to
 * can hold anything under that name), locked, and only then truncated and
 * written (write_pid_file()).  The lock is held while we run: a second
 * iprelay given the same file is refused instead of overwriting the first
 * one's pid.  Opened before the store: there root drops to the state
 * dir's owner (statedir.h), who may not write where root keeps its pid
 * files (/run). */
static void
open_pid_file(void)
{
	const char *path = relay.pid_file;
	struct stat file_stat;
	int fd;

	if (path == NULL)
		return;
	fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK |
	    O_CLOEXEC, 0644);
	if (fd < 0 && errno == ELOOP)
		log_fatal(EXIT_USAGE, "unable to write the pid file %s: it is "
		    "a symbolic link (refused: give the file itself)", path);
	if (fd < 0)
		log_fatal(EXIT_SYSTEM, "unable to write the pid file %s: %s",
		    path, strerror(errno));
	if (fstat(fd, &file_stat) < 0)
		log_fatal(EXIT_SYSTEM, "unable to write the pid file %s: %s",
		    path, strerror(errno));
	if (!S_ISREG(file_stat.st_mode))
		log_fatal(EXIT_USAGE, "unable to write the pid file %s: not a "
		    "regular file (refused)", path);
	if (file_stat.st_uid != geteuid())
		log_fatal(EXIT_USAGE, "unable to write the pid file %s: owned "
		    "by uid %lu, not by us (uid %lu; refused)", path,
		    (unsigned long)file_stat.st_uid, (unsigned long)geteuid());
	if (file_stat.st_nlink != 1)
		log_fatal(EXIT_USAGE, "unable to write the pid file %s: it has "
		    "%lu links (refused: a hard link may be another file)",
		    path, (unsigned long)file_stat.st_nlink);
	if (flock(fd, LOCK_EX | LOCK_NB) < 0)
		log_fatal(errno == EWOULDBLOCK ? EXIT_USAGE : EXIT_SYSTEM,
		    "unable to lock the pid file %s: %s", path,
		    errno == EWOULDBLOCK ? "another iprelay holds it" :
		    strerror(errno));
	relay.pid_fd = fd;
}

/* Our pid (the daemon's, after the fork) into the file open_pid_file()
 * opened and locked. */
static void
write_pid_file(void)
{
	char line[32];
	int len;

	if (relay.pid_fd < 0)
		return;
	len = snprintf(line, sizeof(line), "%d\n", (int)getpid());
	if (ftruncate(relay.pid_fd, 0) < 0 ||
	    pwrite(relay.pid_fd, line, (size_t)len, 0) != len)
		log_fatal(EXIT_SYSTEM, "unable to write the pid file %s: %s",
		    relay.pid_file, strerror(errno));
}

/* Removed only while the name is still the file we wrote. */
static void
remove_pid_file(void)
{
	struct stat held, named;

	if (relay.pid_fd < 0)
		return;
	if (fstat(relay.pid_fd, &held) == 0 &&
	    lstat(relay.pid_file, &named) == 0 &&
	    held.st_dev == named.st_dev && held.st_ino == named.st_ino)
		unlink(relay.pid_file);
	close(relay.pid_fd);
	relay.pid_fd = -1;
}

/* The banner and the forwarders set from the command line: printed once
 * everything was checked (bound, store opened, pid file written), so that
 * nothing reads as set before a fatal line. */
static struct {
	const struct proxyspec *specs;
	int nspecs;
	uint64_t bandwidth_Bps;
} startup;

static void
print_startup(void)
{
	int index, number;

	print_version();
	for (index = 0; index < startup.nspecs; index++) {
		number = 99 - index;
		fprintf(stderr, "Using command line parameters:\n"
		    "  local_port\t%s\n  remote_addrs\t%s\n  remote_port\t%s\n"
		    "  bandwidth\t%llu\n  forwarder %d set.\n\n",
		    startup.specs[index].lport,
		    forwarder_find(number)->remote_shown,
		    startup.specs[index].remote.port,
		    (unsigned long long)startup.bandwidth_Bps, number);
	}
	fflush(stderr);
}

/* Fork into the background.  The parent waits until the daemon has its
 * store and pid file (or failed), so every error reaches the terminal and
 * the exit status; the daemon then drops the terminal. */
void
daemonise(uint64_t bandwidth_Bps)
{
	int ready[2], null_fd;
	char status = 0;
	pid_t pid;
	int wstatus;

	if (pipe2(ready, O_CLOEXEC) < 0)
		log_fatal(EXIT_SYSTEM, "unable to create a pipe: %s",
		    strerror(errno));
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		log_fatal(EXIT_SYSTEM, "unable to fork: %s", strerror(errno));
	if (pid > 0) {
		close(ready[1]);
		if (read(ready[0], &status, 1) == 1) {
			print_startup();
			exit(0);
		}
		if (waitpid(pid, &wstatus, 0) == pid && WIFEXITED(wstatus))
			exit(WEXITSTATUS(wstatus));
		exit(EXIT_SYSTEM);
	}
	close(ready[0]);
	if (setsid() < 0)
		log_fatal(EXIT_SYSTEM, "unable to setsid: %s", strerror(errno));
	if (chdir("/") < 0)
		log_fatal(EXIT_SYSTEM, "unable to chdir to /: %s",
		    strerror(errno));
	open_pid_file();
	open_store(bandwidth_Bps);
	write_pid_file();
	setup_signals();
	null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null_fd < 0)
		log_fatal(EXIT_SYSTEM, "unable to open /dev/null: %s",
		    strerror(errno));
	/* From here on every message goes to the journal or syslog. */
	log_open("iprelay", LOG_TO_SYSTEM);
	dup2(null_fd, STDIN_FILENO);
	dup2(null_fd, STDOUT_FILENO);
	dup2(null_fd, STDERR_FILENO);
	close(null_fd);
	if (write(ready[1], &status, 1) < 0)
		log_warn("unable to tell the parent we are ready: %s",
		    strerror(errno));
	close(ready[1]);
}

static void
finish(void)
{
	size_t index;

	/* The limits made for this instance go; one named by -n stays. */
	limits_release();
	for (index = 0; index < relay.nforwarders; index++)
		forwarder_close_listeners(&relay.forwarders[index]);
	refiller_destroy(relay.refiller);
	store_close(relay.store);
	remove_pid_file();
	if (relay.daemonise)
		log_line(LOG_INFO, "stopped");
}

int
main(int argc, char **argv)
{
	struct proxyspec specs[FORWARDERS_MAX];
	const char *state_option = NULL, *name_option = NULL;
	uint64_t bandwidth_Bps = 0;
	char why[512];
	int option, have_bandwidth = 0, nspecs, index;

	log_open("iprelay", LOG_TO_STDERR);
	help_or_version(argc, argv, "iprelay", USAGE);
	relay.pid_fd = -1;
	opterr = 0;
	while ((option = getopt(argc, argv, ":db:hm:n:p:S:a:A:")) != -1) {
		switch (option) {
		case 'h':
			printf("%s\n", USAGE);
			return fflush(stdout) == 0 ? 0 : EXIT_SYSTEM;
		case 'd':
			relay.daemonise = 1;
			break;
		case 'b':
			if (parse_rate(optarg, &bandwidth_Bps) < 0)
				usage("bad bandwidth (bytes/s)", optarg);
			have_bandwidth = 1;
			break;
		case 'm':
			if (parse_uint(optarg, 1, 1000000, &relay.max_conns) < 0)
				usage("bad connection maximum (1-1000000)",
				    optarg);
			break;
		case 'n':
			if (!limit_name_valid(optarg) ||
			    strlen(optarg) > LIMIT_NAME_MAX - 5)
				usage("bad limit name (letters, digits, _.-, "
				    "at most 59)", optarg);
			name_option = optarg;
			break;
		case 'p':
			relay.pid_file = optarg;
			break;
		case 'S':
			state_option = optarg;
			break;
		case 'a':
		case 'A':
			acl_option(option, optarg);
			break;
		case ':':
			snprintf(why, sizeof(why), "-%c", optopt);
			usage("option needs a value", why);
			break;
		default:
			snprintf(why, sizeof(why), "-%c", optopt);
			usage("unknown option", why);
			break;
		}
	}
	nspecs = argc - optind;
	if (nspecs > 100)
		usage("too many proxyspecs (at most 100: forwarders 99 to 0)",
		    NULL);
	if (nspecs == 0 && (relay.daemonise || have_bandwidth))
		usage("-d and -b need a proxyspec "
		    "(local_port:remote_host:remote_port)", NULL);
	for (index = 0; index < nspecs; index++)
		if (parse_proxyspec(argv[optind + index], &specs[index]) < 0)
			usage("bad proxyspec (local_port:remote_host:"
			    "remote_port)", argv[optind + index]);
	if (store_dir_resolve(state_option, relay.state_dir,
	    sizeof(relay.state_dir)) != 0)
		log_fatal(EXIT_USAGE, "unable to find a state dir: set -S DIR "
		    "or IPRELAY_STATE_DIR");
	/* The limit's name is chosen once the store is open (limits.c). */
	relay.name_option = name_option;
	relay.first_port = nspecs ? specs[0].lport : NULL;
	if (find_conn() < 0)
		log_fatal(EXIT_SYSTEM, "unable to find iprelay-conn (beside "
		    "iprelay, $IPRELAY_CONN, ../sbin or PATH)");

	/* Bind before any fork so a busy port fails here, at once. */
	for (index = 0; index < nspecs; index++) {
		int number = 99 - index;

		if (forwarder_set(number, &specs[index], why, sizeof(why)) < 0)
			log_fatal(EXIT_SYSTEM, "forwarder %d: %s", number, why);
	}
	startup.specs = specs;
	startup.nspecs = nspecs;
	startup.bandwidth_Bps = bandwidth_Bps;
	if (relay.daemonise) {
		daemonise(bandwidth_Bps);
		log_line(LOG_INFO, "started: limit %s at %llu bytes/s, %d "
		    "forwarders", relay.limit_name,
		    (unsigned long long)bandwidth_Bps, nspecs);
	} else {
		open_pid_file();
		open_store(bandwidth_Bps);
		write_pid_file();
		print_startup();
		setup_signals();
		relay_log_open();
		relay.prompt = 1;
		relay.stdin_tty = isatty(STDIN_FILENO);
		if (relay.stdin_tty && tcgetpgrp(STDIN_FILENO) == getpgrp())
			editor_start();
		else if (relay.stdin_tty)
			relay.prompt = 0;	/* in the background */
		relay.editor.browse = 0;
		prompt();
	}
	relay.exit_code = run_loop();
	editor_restore();
	finish();
	return relay.exit_code;
}
