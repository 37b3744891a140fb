/* Messages.  Command-line programs write "prog: fatal: unable to X: why"
 * to stderr; relays, whose fd 2 may be the client, write to the journal
 * (native protocol) or, without one, to syslog.  IPRELAY_LOG_FILE=PATH
 * sends the system lines to a file instead (tests, debugging). */
#ifndef IPRELAY_LOG_H
#define IPRELAY_LOG_H

#include <stddef.h>
#include <syslog.h>

#define EXIT_POLICY	1	/* refused by policy */
#define EXIT_CAPS	98	/* a relay over a limit's cap on connections */
#define EXIT_TIMEOUT	99
#define EXIT_USAGE	100	/* usage or configuration error */
#define EXIT_SYSTEM	111	/* temporary or system failure */

enum log_target {
	LOG_TO_STDERR,
	LOG_TO_SYSTEM,
};

void
log_open(const char *prog, enum log_target target);

const char *
log_prog(void);

void
log_line(int priority, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

void
log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A line for IPRELAY_LOG_COPY_FD's reader only (iprelay at its prompt),
 * never the journal or syslog: news that is no event to log. */
void
log_copy_only(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

_Noreturn void
log_fatal(int exit_code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* TEXT into OUT (cut to SIZE) with control characters written as \n, \t,
 * \r or \xNN: a bad word from the command line stays on its one line.
 * Every log line goes through it. */
void
log_escape(char *out, size_t size, const char *text);

/* TEXT into OUT (cut to SIZE, never half an escape) as printable ASCII:
 * the backslash as \\, every byte outside 0x20-0x7e as \xNN.  For fields
 * that another user wrote (a relay's peer and remote, the refiller's
 * name in the store) before a terminal shows them: no escape sequence,
 * no C1 control, no line break gets through.  OUT needs 4 * strlen + 1. */
void
log_escape_field(char *out, size_t size, const char *text);

#endif
