/*
 * What the parts of iprelay-conn (one relayed connection, one process)
 * share: the relay's state (struct relay, one struct direction each way),
 * why it ended, the signals it was sent, and the functions each part
 * offers the others.  The parts, linked into iprelay-conn only:
 *   iprelay-conn.c  options, errors, signals, the store's registration,
 *                   start-up and the close line (main)
 *   conn-peers.c    the client socket from the launcher (systemd, inetd,
 *                   UCSPI, iprelay -W), the -a/-A check, the remote's
 *                   connect
 *   conn-shape.c    shaping a direction: counting unshaped bytes, drawing
 *                   tokens, socket buffers and pipes sized by the quantum
 *   conn-loop.c     the splice/poll loop moving bytes both ways
 *   conn-end.c      how a relay ends: a failing side, half-closes, the
 *                   idle timeout, the graceful stop, the cut at the end
 */
#ifndef IPRELAY_CONN_H
#define IPRELAY_CONN_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "bucket.h"
#include "parse.h"
#include "store.h"

/* Pipes count against pipe-user-pages-soft (16384 pages per user; past
 * it new pipes get two pages): 1000 relays with two default pipes (16
 * pages each) would pass it.  Every pipe starts at 4 pages, which covers
 * a shaped direction's quantum at most rates, and an unshaped one grows
 * once it fills, i.e. only for bulk transfers. */
#define PIPE_START_B		(16U * 1024U)
#define PIPE_BULK_B		(256U * 1024U)
#define CIDRS_MAX		256	/* -a or -A entries, each */

enum end_reason {
	END_NONE,
	END_DONE,
	END_RESET_CLIENT,
	END_RESET_REMOTE,
	END_SIGNAL,
	END_IDLE,
	END_DRAINED,
	END_DRAIN_LATE,
	END_ERROR,
};

struct direction {
	const char *label;		/* "up" (client->remote) or "down" */
	int dir;			/* DIR_UP or DIR_DOWN */
	int from_fd, to_fd;
	int to_is_socket;
	uint64_t bufs_quantum_B;	/* socket buffers last sized for */
	uint64_t lowat_B;		/* TCP_NOTSENT_LOWAT of to_fd; 0 = none */
	int rcvbuf_B;			/* SO_RCVBUF of from_fd set; 0 = not */
	int sndbuf_set;			/* SO_SNDBUF of to_fd ever set */
	struct sparse_credit sparse;	/* for draws the sparse lane may take */
	uint64_t share_Bps;		/* the fair share, said by the store */
	enum end_reason reset_from;	/* what a failure reading means */
	enum end_reason reset_to;	/* what a failure writing means */
	int pipe_fd[2];
	size_t pipe_cap_B;		/* what the kernel gave the pipe */
	size_t pipe_B;			/* bytes read but not yet written */
	int pipe_full;			/* splice in said EAGAIN with data in */
	int pipe_grown;
	int shaped;
	uint64_t quantum_B;		/* the next read when shaped */
	uint64_t covered_B;		/* bytes of the pipe paid for */
	uint64_t release_ns;		/* covered bytes go no earlier */
	uint64_t prepaid_B;		/* counted by a draw, written unshaped */
	int to_blocked;			/* writing said EAGAIN: wait POLLOUT */
	int draining;			/* a graceful stop: read no more than */
	uint64_t drain_left_B;		/* ... this, received before it */
	int eof, shut;
	uint64_t moved_B;		/* bytes written to the other side */
	uint64_t unaccounted_B;		/* unshaped bytes not yet in the store */
};

struct relay {
	/* options */
	const char *limit;		/* "" = unshaped */
	const char *state_option;
	uint64_t connect_timeout_ns;	/* 0 = the kernel's */
	uint64_t idle_ns;		/* 0 = off */
	struct sockaddr_storage source;
	socklen_t source_len;
	uint64_t chunk_max_B;
	struct hostport remote_hp;
	const char *remote_word;
	struct cidr allow[CIDRS_MAX], deny[CIDRS_MAX];
	size_t nallow, ndeny;
	int started_ahead;		/* -W: the client comes later, on fd 0 */

	int client_in, client_out;
	const char *launcher;
	int remote_fd;
	char peer[PEER_MAX + 1];
	char remote_addr[PEER_MAX + 1];
	char label[32];

	struct store *store;
	int store_rc;			/* of opening it; 0 = open */
	char store_dir[4096];
	struct conn_info conn;
	int registered;
	int start_shaped[2];		/* per direction, said by register */
	int remote_rcvbuf_B;		/* SO_RCVBUF set before connecting */
	size_t start_levels;		/* limits on the chain; 0 = none found */
	uint64_t start_quantum_B[2];	/* the first read when shaped */
	uint64_t last_account_ns;
	uint64_t last_store_warn_ns;
	uint64_t start_ns;
	uint64_t last_move_ns;		/* last read, write or byte waiting */
	int idle_waiting;		/* the last look found bytes queued */
	uint64_t idle_waiting_ns;	/* when it looked */
	uint64_t drain_deadline_ns;	/* 0 = no graceful stop asked */
	struct direction up, down;
	enum end_reason end;
	char end_detail[96];		/* the failing call, for the log */
	char cut_detail[160];		/* directions cut at the end */
};

/* Set by the signal handler (iprelay-conn.c), delivered only inside
 * ppoll with run_mask. */
extern volatile sig_atomic_t stop_signal;
extern volatile sig_atomic_t drain_signal;
extern sigset_t run_mask;	/* the mask ppoll waits with */
extern int stdin_was_closed;	/* fd 0 was not open at start */

static inline uint64_t
earlier(uint64_t a_ns, uint64_t b_ns)
{
	return a_ns < b_ns ? a_ns : b_ns;
}

/* relay/iprelay-conn.c */
/* How we were started is wrong: one line, no usage, exit 100. */
_Noreturn void
config_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

/* relay/conn-peers.c */
int
fd_is_socket(int fd);

void
find_client(struct relay *relay);

void
wait_for_client(void);

void
check_access(const struct relay *relay);

int
connect_remote(struct relay *relay);

/* relay/conn-shape.c */
void
pipe_resize(struct direction *d, size_t want_B);

int
sockbuf_B(uint64_t quantum_B);

void
become_shaped(struct direction *d, uint64_t quantum_B);

void
account(struct relay *relay, uint64_t now_ns);

void
reserve(struct relay *relay, struct direction *d, uint64_t now_ns);

/* relay/conn-loop.c */
void
init_direction(struct relay *relay, struct direction *d, int dir);

void
relay_loop(struct relay *relay);

/* relay/conn-end.c */
void
end_relay(struct relay *relay, enum end_reason reason);

void
fail_side(struct relay *relay, enum end_reason reason);

uint64_t
queued_B(int fd, unsigned long request);

void
half_close(struct direction *d);

void
cut_unfinished(struct relay *relay);

uint64_t
idle_check(struct relay *relay, uint64_t now_ns);

uint64_t
drain_check(struct relay *relay, uint64_t now_ns);

#endif
