/*
 * iprelay-conn's relay loop: each direction moves bytes socket -> pipe ->
 * socket with splice(2), reading while its pipe has room (unshaped) or one
 * quantum into an empty pipe (shaped: written only once drawn and
 * released); one ppoll waits for the sockets, the next release, the idle
 * and graceful-stop checks and the next count of unshaped bytes.  Also the
 * directions' set-up: their fds and pipes.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/sockios.h>

#include "conn.h"
#include "log.h"

#define ACCOUNT_PERIOD_NS	(50ULL * 1000 * 1000)

static int
wants_read(const struct direction *d)
{
	if (d->eof || d->pipe_full || d->shut ||
	    (d->draining && d->drain_left_B == 0))
		return 0;
	return d->shaped ? d->pipe_B == 0 : d->pipe_B < d->pipe_cap_B;
}

static void
splice_in(struct relay *relay, struct direction *d, uint64_t now_ns)
{
	size_t len;
	ssize_t n;

	if (d->shaped) {
		len = d->quantum_B < relay->chunk_max_B ? d->quantum_B :
		    relay->chunk_max_B;
		if (len > d->pipe_cap_B)
			pipe_resize(d, len);
		if (len > d->pipe_cap_B)
			len = d->pipe_cap_B;
	} else {
		len = d->pipe_cap_B - d->pipe_B;
	}
	if (d->draining && len > d->drain_left_B)
		len = (size_t)d->drain_left_B;
	n = splice(d->from_fd, NULL, d->pipe_fd[1], NULL, len,
	    SPLICE_F_NONBLOCK);
	if (n > 0) {
		d->pipe_B += (size_t)n;
		if (d->draining)
			d->drain_left_B -= (uint64_t)n;
		relay->last_move_ns = now_ns;
		if (!d->shaped && d->pipe_B >= d->pipe_cap_B && !d->pipe_grown) {
			d->pipe_grown = 1;
			pipe_resize(d, PIPE_BULK_B);
		}
	} else if (n == 0) {
		d->eof = 1;
	} else if (errno == EAGAIN || errno == EINTR) {
		/* Pipe slots, not bytes, ran out: wait for it to drain. */
		if (errno == EAGAIN && d->pipe_B > 0) {
			d->pipe_full = 1;
			if (!d->shaped && !d->pipe_grown) {
				d->pipe_grown = 1;
				pipe_resize(d, PIPE_BULK_B);
			}
		}
	} else {
		snprintf(relay->end_detail, sizeof(relay->end_detail),
		    "reading %s: %s", d->label, strerror(errno));
		fail_side(relay, d->reset_from);
	}
}

static void
splice_out(struct relay *relay, struct direction *d, uint64_t now_ns)
{
	size_t len;
	ssize_t n;

	for (;;) {
		len = d->shaped ? d->covered_B : d->pipe_B;
		if (len == 0)
			return;
		n = splice(d->pipe_fd[0], NULL, d->to_fd, NULL, len,
		    SPLICE_F_NONBLOCK);
		if (n > 0) {
			d->pipe_B -= (size_t)n;
			d->pipe_full = 0;
			d->moved_B += (uint64_t)n;
			relay->last_move_ns = now_ns;
			if (d->shaped) {
				d->covered_B -= (uint64_t)n;
			} else if (d->prepaid_B >= (uint64_t)n) {
				d->prepaid_B -= (uint64_t)n;
			} else {
				d->unaccounted_B += (uint64_t)n - d->prepaid_B;
				d->prepaid_B = 0;
			}
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			d->to_blocked = 1;
			return;
		}
		snprintf(relay->end_detail, sizeof(relay->end_detail),
		    "writing %s: %s", d->label, n < 0 ? strerror(errno) :
		    "nothing written");
		fail_side(relay, d->reset_to);
		return;
	}
}

/* Whether the last grant still waits in the socket, the next hop's window
 * shut: then drawing more would only park the bytes (and the other
 * relays' tokens) in kernel buffers.  The unsent low-water mark alone
 * does not hold them back: small writes are appended to the unsent tail
 * of the queue without that check.  POLLOUT comes when less than half
 * of the mark (one quantum) is unsent, which is when this says no. */
static int
next_hop_full(const struct direction *d)
{
	if (!d->to_is_socket || d->lowat_B == 0)
		return 0;
	return queued_B(d->to_fd, SIOCOUTQNSD) * 2 >= d->lowat_B;
}

/* Move what can be moved in direction d now.  When the pipe drains, read
 * again at once (a few rounds) instead of asking poll: a busy sender
 * usually has more, and every syscall saved counts at low rates. */
static void
step(struct relay *relay, struct direction *d, int readable, uint64_t now_ns)
{
	uint64_t moved_B;
	size_t before_B;
	int round;

	for (round = 0; round < 4 && !d->shut; round++) {
		before_B = d->pipe_B;
		if (readable && wants_read(d)) {
			/* Learn a new limit before moving a pipeful unshaped. */
			if (!d->shaped && relay->limit[0] &&
			    now_ns - relay->last_account_ns >= ACCOUNT_PERIOD_NS)
				account(relay, now_ns);
			if (wants_read(d))
				splice_in(relay, d, now_ns);
			if (relay->end)
				return;
		}
		moved_B = d->moved_B;
		while (d->pipe_B > 0 && !d->to_blocked &&
		    relay->end == END_NONE) {
			if (!d->shaped) {
				splice_out(relay, d, now_ns);
				break;
			}
			/* One draw outstanding at a time, for what is in the
			 * pipe. */
			if (d->covered_B == 0 && now_ns >= d->release_ns) {
				if (next_hop_full(d)) {
					d->to_blocked = 1;
					break;
				}
				reserve(relay, d, now_ns);
				now_ns = monotonic_ns();
			}
			if (d->shaped && (d->covered_B == 0 ||
			    now_ns < d->release_ns))
				break;
			splice_out(relay, d, now_ns);
		}
		if (relay->end)
			return;
		if (d->eof && d->pipe_B == 0) {
			half_close(d);
			return;
		}
		/* Go round only when this round emptied the pipe. */
		if (d->pipe_B > 0 || (d->moved_B == moved_B &&
		    d->pipe_B == before_B))
			break;
		readable = 1;
	}
}

struct poll_set {
	struct pollfd fds[4];
	nfds_t count;
};

static void
poll_want(struct poll_set *set, int fd, short events)
{
	nfds_t slot;

	if (events == 0 || fd < 0)
		return;
	for (slot = 0; slot < set->count; slot++)
		if (set->fds[slot].fd == fd) {
			set->fds[slot].events |= events;
			return;
		}
	set->fds[set->count].fd = fd;
	set->fds[set->count].events = events;
	set->fds[set->count].revents = 0;
	set->count++;
}

static short
poll_got(const struct poll_set *set, int fd)
{
	nfds_t slot;

	for (slot = 0; slot < set->count; slot++)
		if (set->fds[slot].fd == fd)
			return set->fds[slot].revents;
	return 0;
}

static void
direction_wants(const struct direction *d, struct poll_set *set,
    uint64_t now_ns, uint64_t *deadline_ns)
{
	if (d->shut)
		return;
	if (wants_read(d))
		poll_want(set, d->from_fd, POLLIN);
	if (d->pipe_B == 0)
		return;
	if (d->shaped && now_ns < d->release_ns)
		*deadline_ns = earlier(*deadline_ns, d->release_ns);
	else if (d->to_blocked)
		poll_want(set, d->to_fd, POLLOUT);
	else if (d->shaped)
		/* The release passed after step() looked (the store reads
		 * its own, later clock): step again at once rather than
		 * wait on nothing. */
		*deadline_ns = now_ns;
}

void
relay_loop(struct relay *relay)
{
	struct direction *const dirs[2] = { &relay->up, &relay->down };
	struct poll_set set;
	struct timespec timeout, *timeout_p;
	uint64_t now_ns, deadline_ns, wait_ns;
	short got;
	int rc, i;

	relay->last_move_ns = monotonic_ns();
	while (relay->end == END_NONE) {
		if (stop_signal) {
			end_relay(relay, END_SIGNAL);
			break;
		}
		if (relay->up.shut && relay->down.shut) {
			end_relay(relay, relay->drain_deadline_ns ?
			    END_DRAINED : END_DONE);
			break;
		}
		now_ns = monotonic_ns();
		if (relay->store && (relay->up.unaccounted_B ||
		    relay->down.unaccounted_B) &&
		    now_ns - relay->last_account_ns >= ACCOUNT_PERIOD_NS)
			account(relay, now_ns);
		set.count = 0;
		deadline_ns = UINT64_MAX;
		for (i = 0; i < 2; i++)
			direction_wants(dirs[i], &set, now_ns, &deadline_ns);
		if (drain_signal) {
			deadline_ns = earlier(deadline_ns,
			    drain_check(relay, now_ns));
			if (relay->end)
				break;
		}
		if (relay->idle_ns) {
			deadline_ns = earlier(deadline_ns,
			    idle_check(relay, now_ns));
			if (relay->end)
				break;
		}
		if (relay->store && (relay->up.unaccounted_B ||
		    relay->down.unaccounted_B))
			deadline_ns = earlier(deadline_ns,
			    relay->last_account_ns + ACCOUNT_PERIOD_NS);
		timeout_p = NULL;
		if (deadline_ns != UINT64_MAX) {
			wait_ns = deadline_ns > now_ns ? deadline_ns - now_ns :
			    0;
			timeout.tv_sec = (time_t)(wait_ns / NS_PER_SEC);
			timeout.tv_nsec = (long)(wait_ns % NS_PER_SEC);
			timeout_p = &timeout;
		}
		rc = ppoll(set.fds, set.count, timeout_p, &run_mask);
		if (rc < 0 && errno != EINTR) {
			log_line(LOG_ERR, "%s: unable to poll: %s",
			    relay->label, strerror(errno));
			end_relay(relay, END_ERROR);
			break;
		}
		if (rc < 0)
			continue;
		now_ns = monotonic_ns();
		if (relay->idle_ns) {
			idle_check(relay, now_ns);
			if (relay->end)
				break;
		}
		for (i = 0; i < 2 && relay->end == END_NONE; i++) {
			if (dirs[i]->shut)
				continue;
			got = poll_got(&set, dirs[i]->to_fd);
			if (got & (POLLOUT | POLLERR | POLLHUP))
				dirs[i]->to_blocked = 0;
			got = poll_got(&set, dirs[i]->from_fd);
			step(relay, dirs[i], (got & (POLLIN | POLLERR |
			    POLLHUP)) != 0, now_ns);
		}
	}
}

void
init_direction(struct relay *relay, struct direction *d, int dir)
{
	int fds[2], got;

	d->dir = dir;
	d->label = dir == DIR_UP ? "up" : "down";
	if (dir == DIR_UP) {
		d->from_fd = relay->client_in;
		d->to_fd = relay->remote_fd;
		d->reset_from = END_RESET_CLIENT;
		d->reset_to = END_RESET_REMOTE;
	} else {
		d->from_fd = relay->remote_fd;
		d->to_fd = relay->client_out;
		d->reset_from = END_RESET_REMOTE;
		d->reset_to = END_RESET_CLIENT;
	}
	d->to_is_socket = fd_is_socket(d->to_fd);
	if (dir == DIR_DOWN)
		d->rcvbuf_B = relay->remote_rcvbuf_B;
	if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0)
		log_fatal(EXIT_SYSTEM, "%s: unable to create a pipe: %s",
		    relay->label, strerror(errno));
	d->pipe_fd[0] = fds[0];
	d->pipe_fd[1] = fds[1];
	got = fcntl(fds[1], F_SETPIPE_SZ, (int)PIPE_START_B);
	if (got <= 0)
		got = fcntl(fds[1], F_GETPIPE_SZ);
	d->pipe_cap_B = got > 0 ? (size_t)got : 4096;
}
