/*
 * How an iprelay-conn relay ends: a side failing (the other one reset),
 * a direction half-closed once its sender finished and its pipe is
 * empty, the idle timeout (-i), the graceful stop (SIGUSR1) and, at the
 * end, the cut of every direction whose end of stream was not passed on.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/sockios.h>

#include "conn.h"
#include "log.h"

/* A graceful stop (SIGUSR1) flushes what was read for at most this long;
 * what is left then is cut like on SIGTERM.  Long enough for one quantum
 * at any rate (its release comes within about 2 debt-cap times, 4 s). */
#define DRAIN_DEADLINE_NS	(10ULL * NS_PER_SEC)
/* While bytes wait in a socket's send queue for a slow reader the relay
 * is not idle; it looks again this often, so -i ends a connection at most
 * this much after the last byte was taken. */
#define IDLE_RECHECK_NS		(200ULL * 1000 * 1000)

void
end_relay(struct relay *relay, enum end_reason reason)
{
	if (relay->end == END_NONE)
		relay->end = reason;
}

static void
reset_socket(int fd)
{
	struct linger linger = { .l_onoff = 1, .l_linger = 0 };

	/* The close at exit then sends RST instead of FIN. */
	(void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, sizeof(linger));
}

void
fail_side(struct relay *relay, enum end_reason reason)
{
	if (reason == END_RESET_CLIENT) {
		reset_socket(relay->remote_fd);
	} else {
		reset_socket(relay->client_in);
		if (relay->client_out != relay->client_in)
			reset_socket(relay->client_out);
	}
	end_relay(relay, reason);
}

/* Bytes the kernel holds on a socket: SIOCINQ received and not read,
 * SIOCOUTQ written and not yet acknowledged, SIOCOUTQNSD written and not
 * yet sent.  0 for what is not a socket. */
uint64_t
queued_B(int fd, unsigned long request)
{
	int count = 0;

	if (fd < 0 || ioctl(fd, request, &count) < 0 || count < 0)
		return 0;
	return (uint64_t)count;
}

void
half_close(struct direction *d)
{
	if (d->to_is_socket) {
		if (shutdown(d->to_fd, SHUT_WR) < 0 && errno != ENOTCONN)
			log_warn("unable to shut down the %s side: %s",
			    d->label, strerror(errno));
	} else {
		close(d->to_fd);
		d->to_fd = -1;
	}
	d->shut = 1;
	close(d->pipe_fd[0]);
	close(d->pipe_fd[1]);
	d->pipe_fd[0] = d->pipe_fd[1] = -1;
}

/*
 * At the end of a relay, a direction whose end of stream was not passed
 * on is cut: its receiver gets a reset (SO_LINGER 0), never a FIN, which
 * would pass for the end of the stream.  A clean close after SIGTERM
 * handed a client reading late 3.9 MB of an 8 MiB answer and a normal
 * EOF; for anything delimited by EOF (raw copies, HTTP/1.0 without a
 * length, FTP data, nc) that is silent corruption.  A direction whose
 * sender had finished with nothing left in the pipe is finished here
 * (FIN) instead.  The log line says what was cut and how many bytes were
 * dropped: read and not written, received and not read, written and not
 * yet sent (a reset discards the send queue).
 */
void
cut_unfinished(struct relay *relay)
{
	struct direction *const dirs[2] = { &relay->up, &relay->down };
	struct direction *d;
	uint64_t dropped_B;
	size_t used = 0;
	char byte;
	int i, n, stopped;

	stopped = relay->end == END_SIGNAL || relay->end == END_IDLE ||
	    relay->end == END_DRAINED || relay->end == END_DRAIN_LATE;
	for (i = 0; i < 2; i++) {
		d = dirs[i];
		if (d->shut || d->pipe_fd[0] < 0)
			continue;
		/* After a reset or a failure a socket reads as at its end
		 * once the error was taken: only a stop or an idle end may
		 * find a sender that had finished. */
		if (!d->eof && d->pipe_B == 0 && stopped &&
		    recv(d->from_fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) == 0)
			d->eof = 1;
		if (d->eof && d->pipe_B == 0 && stopped) {
			half_close(d);
			continue;
		}
		dropped_B = d->pipe_B + queued_B(d->from_fd, SIOCINQ) +
		    (d->to_is_socket ? queued_B(d->to_fd, SIOCOUTQNSD) : 0);
		if (d->to_is_socket)
			reset_socket(d->to_fd);
		n = snprintf(relay->cut_detail + used,
		    sizeof(relay->cut_detail) - used, "%s %s (%llu B dropped, "
		    "%s %s)", used ? "," : "; cut", d->label,
		    (unsigned long long)dropped_B,
		    d->dir == DIR_UP ? "remote" : "client",
		    d->to_is_socket ? "reset" : "closed");
		if (n > 0 && (size_t)n < sizeof(relay->cut_detail) - used)
			used += (size_t)n;
	}
}

/* Bytes on their way that the relay or the kernel still holds: in a pipe
 * (waiting for tokens, or for a receiver that does not read) or in a
 * send queue (a slow reader).  The relay is not idle while there are. */
static int
bytes_waiting(const struct relay *relay)
{
	const struct direction *const dirs[2] = { &relay->up, &relay->down };
	int i;

	for (i = 0; i < 2; i++) {
		if (!dirs[i]->shut && dirs[i]->pipe_B > 0)
			return 1;
		if (dirs[i]->to_is_socket &&
		    queued_B(dirs[i]->to_fd, SIOCOUTQ) > 0)
			return 1;
	}
	return 0;
}

/* -i: idle means neither side sent anything and nothing waits to be
 * written.  Bytes waiting for tokens or for a slow reader count as
 * activity, looked at when the timeout would fire and then every
 * IDLE_RECHECK_NS while they wait.  Returns when to look next. */
uint64_t
idle_check(struct relay *relay, uint64_t now_ns)
{
	uint64_t due_ns = relay->last_move_ns + relay->idle_ns;

	if (relay->idle_waiting)
		due_ns = earlier(due_ns, relay->idle_waiting_ns +
		    IDLE_RECHECK_NS);
	if (now_ns < due_ns)
		return due_ns;
	relay->idle_waiting = bytes_waiting(relay);
	if (relay->idle_waiting) {
		relay->last_move_ns = relay->idle_waiting_ns = now_ns;
		return now_ns + IDLE_RECHECK_NS;
	}
	if (now_ns - relay->last_move_ns >= relay->idle_ns)
		end_relay(relay, END_IDLE);
	return relay->last_move_ns + relay->idle_ns;
}

/* A graceful stop (SIGUSR1): read only what the kernel had received
 * when it came (the senders had it acknowledged), flush it all (through
 * the limits, as ever), pass on an end of stream that came right after
 * it, and end once every direction is finished or empty with its send
 * queue delivered, or at the deadline.  What is unfinished then is cut
 * (cut_unfinished()): a sender that had more gets no silent FIN. */
uint64_t
drain_check(struct relay *relay, uint64_t now_ns)
{
	struct direction *const dirs[2] = { &relay->up, &relay->down };
	struct direction *d;
	int i, flushed = 1;
	ssize_t peeked;
	char byte;

	if (!relay->drain_deadline_ns) {
		relay->drain_deadline_ns = now_ns + DRAIN_DEADLINE_NS;
		for (i = 0; i < 2; i++) {
			dirs[i]->draining = 1;
			dirs[i]->drain_left_B = queued_B(dirs[i]->from_fd,
			    SIOCINQ);
		}
		log_line(LOG_INFO, "%s: graceful stop: flushing the %llu B "
		    "up and %llu B down received, reading no more",
		    relay->label, (unsigned long long)(relay->up.pipe_B +
		    relay->up.drain_left_B), (unsigned long long)
		    (relay->down.pipe_B + relay->down.drain_left_B));
	}
	for (i = 0; i < 2; i++) {
		d = dirs[i];
		if (d->shut)
			continue;
		if (d->drain_left_B == 0 && d->pipe_B == 0 && !d->eof) {
			/* A reset is reported once, then reads as an end:
			 * taken here, it must end the relay as a reset. */
			peeked = recv(d->from_fd, &byte, 1,
			    MSG_PEEK | MSG_DONTWAIT);
			if (peeked == 0) {
				d->eof = 1;
			} else if (peeked < 0 && errno != EAGAIN &&
			    errno != EWOULDBLOCK && errno != EINTR) {
				snprintf(relay->end_detail,
				    sizeof(relay->end_detail), "reading %s: %s",
				    d->label, strerror(errno));
				fail_side(relay, d->reset_from);
				return now_ns;
			}
		}
		if (d->eof && d->pipe_B == 0) {
			half_close(d);
			continue;
		}
		if (d->drain_left_B > 0 || d->pipe_B > 0 ||
		    (d->to_is_socket && queued_B(d->to_fd, SIOCOUTQ) > 0))
			flushed = 0;
	}
	if (flushed)
		end_relay(relay, END_DRAINED);
	else if (now_ns >= relay->drain_deadline_ns)
		end_relay(relay, END_DRAIN_LATE);
	/* The send queues are not polled: look again soon. */
	return earlier(relay->drain_deadline_ns, now_ns + IDLE_RECHECK_NS / 4);
}
