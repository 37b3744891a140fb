#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define JOURNAL_SOCKET	"/run/systemd/journal/socket"

static const char *log_name = "iprelay";
static enum log_target log_target = LOG_TO_STDERR;
static int journal_fd = -1;
static int file_fd = -1;
static int copy_fd = -1;
static int syslog_opened;
static int stderr_journal;

/* Is fd 2 the journal's stream (a service's stderr under systemd)?
 * systemd sets JOURNAL_STREAM to that stream's device:inode. */
static int
stderr_is_journal(void)
{
	const char *stream = getenv("JOURNAL_STREAM");
	unsigned long long device, inode;
	struct stat st;

	if (!stream || sscanf(stream, "%llu:%llu", &device, &inode) != 2 ||
	    fstat(STDERR_FILENO, &st) != 0)
		return 0;
	return (unsigned long long)st.st_dev == device &&
	    (unsigned long long)st.st_ino == inode;
}

/* IPRELAY_LOG_COPY_FD=N (iprelay sets it for its relays, N a pipe): each
 * system line is also written there as "PID PRIORITY TEXT", so the prompt
 * can show a relay's own reason for its end on a machine without a
 * journal or syslog.  Never a socket: that would be the client. */
static void
copy_open(void)
{
	const char *word = getenv("IPRELAY_LOG_COPY_FD");
	struct stat st;
	int fd;

	if (word == NULL || *word < '0' || *word > '9')
		return;
	fd = atoi(word);
	if (fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode))
		copy_fd = fd;
}

void
log_open(const char *prog, enum log_target target)
{
	const char *path;

	log_name = prog;
	log_target = target;
	if (target != LOG_TO_SYSTEM) {
		stderr_journal = stderr_is_journal();
		return;
	}
	copy_open();
	path = getenv("IPRELAY_LOG_FILE");
	if (path && *path) {
		file_fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
		    0640);
		if (file_fd >= 0)
			return;
	}
	if (access(JOURNAL_SOCKET, W_OK) == 0)
		journal_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
}

const char *
log_prog(void)
{
	return log_name;
}

static int
journal_send(int priority, const char *text)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	char datagram[2048];
	int len;

	if (journal_fd < 0)
		return -1;
	/* The native protocol: KEY=value lines, one datagram per entry. */
	len = snprintf(datagram, sizeof(datagram),
	    "PRIORITY=%d\nSYSLOG_IDENTIFIER=%s\nMESSAGE=%s\n", priority,
	    log_name, text);
	if (len < 0)
		return -1;
	if ((size_t)len >= sizeof(datagram))
		len = sizeof(datagram) - 1;
	/* MESSAGE must not contain a newline in this simple form. */
	for (char *cursor = strstr(datagram, "MESSAGE=") + 8;
	    cursor < datagram + len - 1; cursor++)
		if (*cursor == '\n')
			*cursor = ' ';
	datagram[len - 1] = '\n';
	strcpy(addr.sun_path, JOURNAL_SOCKET);
	return sendto(journal_fd, datagram, (size_t)len, MSG_NOSIGNAL,
	    (struct sockaddr *)&addr, sizeof(addr)) < 0 ? -1 : 0;
}

/* One escaper for both forms: a log line escapes only control bytes (with
 * \n, \t, \r spelled out); a field shown on a terminal also escapes
 * bytes past 0x7e and doubles the backslash, so what it shows reads back
 * unambiguously. */
static void
escape(char *out, size_t size, const char *text, int field)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *at = (const unsigned char *)text;
	char seq[5];
	size_t used = 0, seq_len;

	if (size == 0)
		return;
	for (; *at; at++) {
		seq[0] = (char)*at;
		seq_len = 1;
		if (field && *at == '\\') {
			seq[1] = '\\';
			seq_len = 2;
		} else if (*at < 0x20 || *at == 0x7f || (field && *at > 0x7e)) {
			seq[0] = '\\';
			seq[1] = field ? 'x' : *at == '\n' ? 'n' :
			    *at == '\t' ? 't' : *at == '\r' ? 'r' : 'x';
			seq[2] = hex[*at >> 4];
			seq[3] = hex[*at & 15];
			seq_len = seq[1] == 'x' ? 4 : 2;
		}
		/* Never half an escape. */
		if (used + seq_len >= size)
			break;
		memcpy(out + used, seq, seq_len);
		used += seq_len;
	}
	out[used] = '\0';
}

void
log_escape(char *out, size_t size, const char *text)
{
	escape(out, size, text, 0);
}

void
log_escape_field(char *out, size_t size, const char *text)
{
	escape(out, size, text, 1);
}

void
log_copy_only(const char *fmt, ...)
{
	char raw[256], line[300];
	va_list args;
	int len;

	if (copy_fd < 0)
		return;
	va_start(args, fmt);
	vsnprintf(raw, sizeof(raw), fmt, args);
	va_end(args);
	len = snprintf(line, sizeof(line), "%d %d %s\n", (int)getpid(),
	    LOG_DEBUG, raw);
	if (len > 0 && write(copy_fd, line, (size_t)len) < 0)
		copy_fd = -1;
}

static void
emit(int priority, const char *prefix, const char *fmt, va_list args)
{
	char raw[1024];
	char text[1024];
	char line[1200];
	struct timespec now;
	struct tm local;
	int len;

	vsnprintf(raw, sizeof(raw), fmt, args);
	log_escape(text, sizeof(text), raw);
	if (log_target == LOG_TO_STDERR) {
		/* To the journal, a line starts with its priority ("<3>"):
		 * journald takes it as the entry's PRIORITY, where a bare
		 * line, a fatal one included, would be logged as "info".
		 * The journal names the program itself. */
		if (stderr_journal)
			fprintf(stderr, "<%d>%s%s\n", priority, prefix, text);
		else
			fprintf(stderr, "%s: %s%s\n", log_name, prefix, text);
		return;
	}
	if (copy_fd >= 0) {
		/* One write, under PIPE_BUF: lines of relays never mix. */
		len = snprintf(line, sizeof(line), "%d %d %s%s\n",
		    (int)getpid(), priority, prefix, text);
		if (len > 0 && write(copy_fd, line, (size_t)len) < 0)
			copy_fd = -1;
	}
	if (file_fd >= 0) {
		clock_gettime(CLOCK_REALTIME, &now);
		localtime_r(&now.tv_sec, &local);
		len = snprintf(line, sizeof(line),
		    "%04d-%02d-%02d %02d:%02d:%02d %s[%d]: %s%s\n",
		    local.tm_year + 1900, local.tm_mon + 1, local.tm_mday,
		    local.tm_hour, local.tm_min, local.tm_sec, log_name,
		    (int)getpid(), prefix, text);
		if (len > 0 && write(file_fd, line, (size_t)len) < 0)
			return;
		return;
	}
	snprintf(line, sizeof(line), "%s%s", prefix, text);
	if (journal_send(priority, line) == 0)
		return;
	if (!syslog_opened) {
		openlog(log_name, LOG_PID | LOG_NDELAY, LOG_DAEMON);
		syslog_opened = 1;
	}
	syslog(priority, "%s", line);
}

void
log_line(int priority, const char *fmt, ...)
{
	va_list args;
	int saved = errno;

	va_start(args, fmt);
	emit(priority, "", fmt, args);
	va_end(args);
	errno = saved;
}

void
log_warn(const char *fmt, ...)
{
	va_list args;
	int saved = errno;

	va_start(args, fmt);
	emit(LOG_WARNING, "warning: ", fmt, args);
	va_end(args);
	errno = saved;
}

void
log_fatal(int exit_code, const char *fmt, ...)
{
	va_list args;

	va_start(args, fmt);
	emit(LOG_ERR, "fatal: ", fmt, args);
	va_end(args);
	exit(exit_code);
}
