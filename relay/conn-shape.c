/*
 * Shaping one direction of iprelay-conn: counting unshaped bytes in the
 * store and learning there whether a limit now applies (account), drawing
 * the tokens for a pipeful (reserve), and what being shaped means for a
 * direction's socket buffers, unsent low-water mark and pipe, all sized
 * from its quantum, i.e. from its share of the rate.
 */
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <sys/socket.h>

#include "conn.h"
#include "log.h"

#define ZERO_GRANT_RETRY_NS	(10ULL * 1000 * 1000)
#define STORE_WARN_PERIOD_NS	(10ULL * NS_PER_SEC)
/* A shaped direction's socket buffers hold this many quanta (one quantum
 * is 20-100 ms of the relay's share up to 100 relays, see design.md):
 * enough to keep the bytes flowing, small enough that a slower hop
 * downstream pushes back within a fraction of a second instead of
 * letting a full share park in buffers between hops.  Past SOCKBUF_MAX_B
 * the kernel's own autotuning is kept. */
#define SOCKBUF_QUANTA		16U
/* What a shaped direction leaves unsent in its socket while the next hop's
 * window is shut: two quanta (drawing stops at half the mark), which then
 * leave together.  One quantum parked less but sent one small segment per
 * grant, and a slow client's kernel, filled with small segments, grew its
 * receive buffer and took ever more (64 KiB/s shared with a client reading
 * 8 KiB/s: the fast one got 50 KiB/s with 1 quantum, 57.5 with 2 x 2,
 * the 57.3 it should). */
#define LOWAT_QUANTA		4U
#define SOCKBUF_MAX_B		(256U * 1024U)
#define SOCKBUF_MIN_B		(2U * 1024U)

static void
store_warn(struct relay *relay, const char *what, int rc)
{
	uint64_t now_ns = monotonic_ns();

	/* A sick store must not flood the log from every relay. */
	if (relay->last_store_warn_ns &&
	    now_ns - relay->last_store_warn_ns < STORE_WARN_PERIOD_NS)
		return;
	relay->last_store_warn_ns = now_ns;
	log_warn("%s: unable to %s: %s", relay->label, what,
	    store_strerror(rc));
}

static void
set_tcp_option(int fd, int option, int value)
{
	/* Best effort: a launcher may hand over a socket that is not TCP. */
	(void)setsockopt(fd, IPPROTO_TCP, option, &value, sizeof(value));
}

void
pipe_resize(struct direction *d, size_t want_B)
{
	int got;

	if (d->pipe_fd[0] < 0 || want_B == d->pipe_cap_B || want_B < d->pipe_B)
		return;
	/* Refused past pipe-user-pages-soft: keep what the kernel gave. */
	got = fcntl(d->pipe_fd[1], F_SETPIPE_SZ, (int)want_B);
	if (got > 0)
		d->pipe_cap_B = (size_t)got;
}

/* The socket buffers a shaped direction moving quantum_B at a time
 * should have, or 0 to keep the kernel's autotuning. */
int
sockbuf_B(uint64_t quantum_B)
{
	uint64_t want_B = quantum_B * SOCKBUF_QUANTA;

	if (want_B >= SOCKBUF_MAX_B)
		return 0;
	return want_B < SOCKBUF_MIN_B ? (int)SOCKBUF_MIN_B : (int)want_B;
}

/* Size a shaped direction's socket buffers from its quantum, i.e. from
 * its share of the rate: bytes drawn but parked in kernel buffers between
 * two hops are tokens the other relays of the limit lose until those
 * buffers fill (the manual's chained instances: the 3072 B/s one gave the
 * 1024 B/s one a full half for minutes, 512 B/s parked in a 128 KiB
 * receive buffer).  The unsent low-water mark (and next_hop_full()) bound
 * what we park in our socket while the next hop's window is shut, the
 * send buffer what we keep in flight.  The receive buffer bounds what a
 * faster sender upstream (another relay, another instance of iprelay)
 * parks in ours: it is set before connecting to the remote
 * (connect_remote()), so the first window offered is small too, and only
 * ever grown here, since a buffer shrunk under a window already offered
 * drops what the peer sends into it (a relay at 32 KiB/s lost a fifth of
 * its rate to retransmission timeouts that way).  A client's socket,
 * accepted with the launcher's window, keeps its receive buffer.  Set
 * only when the size changes by half or more (a syscall per draw
 * otherwise); the kernel rounds a small size up to what it needs. */
static void
size_buffers(struct direction *d, uint64_t quantum_B)
{
	int want_B = sockbuf_B(quantum_B);

	if (d->bufs_quantum_B && quantum_B * 2 > d->bufs_quantum_B &&
	    quantum_B < d->bufs_quantum_B * 2)
		return;
	d->bufs_quantum_B = quantum_B;
	if (d->rcvbuf_B && (want_B == 0 || want_B > d->rcvbuf_B)) {
		/* Past SOCKBUF_MAX_B: as large as the kernel allows. */
		d->rcvbuf_B = want_B ? want_B : INT_MAX;
		(void)setsockopt(d->from_fd, SOL_SOCKET, SO_RCVBUF,
		    &d->rcvbuf_B, sizeof(d->rcvbuf_B));
	}
	if (!d->to_is_socket)
		return;
	d->lowat_B = quantum_B * LOWAT_QUANTA;
	set_tcp_option(d->to_fd, TCP_NOTSENT_LOWAT, (int)d->lowat_B);
	if (want_B == 0) {
		if (!d->sndbuf_set)
			return;
		/* Once set, the kernel no longer autotunes the send buffer:
		 * a rate raised past SOCKBUF_MAX_B needs it as large as the
		 * kernel allows, or a relay sized at 1 KiB/s stays held to
		 * a few KiB per round trip (16 relays raised back to
		 * 100 MiB/s moved 25 MB/s). */
		want_B = INT_MAX;
	}
	d->sndbuf_set = 1;
	(void)setsockopt(d->to_fd, SOL_SOCKET, SO_SNDBUF, &want_B,
	    sizeof(want_B));
}

void
become_shaped(struct direction *d, uint64_t quantum_B)
{
	d->shaped = 1;
	d->quantum_B = quantum_B;
	d->covered_B = 0;
	d->prepaid_B = 0;
	/* No credit of its own: its first draw asks the limit's pool of
	 * new relays' credit (bucket.h), which relays starting together
	 * share, instead (each with a quantum, 40 starting at once pushed
	 * conn-burst's limit past its cap for seconds). */
	sparse_credit_start(&d->sparse, 0, monotonic_ns());
	/* Small quanta must not wait on Nagle. */
	if (d->to_is_socket)
		set_tcp_option(d->to_fd, TCP_NODELAY, 1);
	size_buffers(d, quantum_B);
	if (d->pipe_B == 0)
		pipe_resize(d, quantum_B > PIPE_START_B ? quantum_B :
		    PIPE_START_B);
}

static void
become_unshaped(struct direction *d)
{
	d->shaped = 0;
	/* Bytes already drawn were counted by the draw. */
	d->prepaid_B = d->covered_B;
	d->covered_B = 0;
}

/* Count unshaped bytes in the store and learn whether a limit now applies
 * to each direction. */
void
account(struct relay *relay, uint64_t now_ns)
{
	uint64_t moved_B[2], quantum_B[2];
	int shaped[2] = { 0, 0 }, rc, dir;
	struct direction *d;

	relay->last_account_ns = now_ns;
	if (relay->store == NULL)
		return;
	moved_B[DIR_UP] = relay->up.unaccounted_B;
	moved_B[DIR_DOWN] = relay->down.unaccounted_B;
	rc = store_account(relay->store, relay->conn.id, relay->limit, moved_B,
	    shaped, quantum_B);
	if (rc) {
		store_warn(relay, "count bytes", rc);
		return;
	}
	relay->up.unaccounted_B = relay->down.unaccounted_B = 0;
	for (dir = 0; dir < 2; dir++) {
		d = dir == DIR_UP ? &relay->up : &relay->down;
		if (d->shut || !shaped[dir])
			continue;
		if (!d->shaped)
			become_shaped(d, quantum_B[dir]);
		else
			d->quantum_B = quantum_B[dir];
		size_buffers(d, quantum_B[dir]);
	}
}

void
reserve(struct relay *relay, struct direction *d, uint64_t now_ns)
{
	struct grant grant;
	uint64_t want_B;
	int rc, sparse;

	/* After a refusal the quantum may have shrunk: draw that much of the
	 * pipe, and the rest after it. */
	want_B = d->pipe_B < d->quantum_B ? d->pipe_B : d->quantum_B;
	/* Well under its fair share lately: the sparse lane may release it
	 * at once instead of behind the bulk relays' reservations. */
	sparse = sparse_credit_allows(&d->sparse, d->share_Bps, d->quantum_B,
	    want_B, now_ns);
	rc = store_reserve_lane(relay->store, relay->conn.id, relay->limit,
	    d->dir, want_B, sparse, &grant);
	if (rc) {
		/* Never wedge on a sick store: pass the bytes on. */
		store_warn(relay, "draw tokens", rc);
		d->covered_B = d->pipe_B;
		d->release_ns = now_ns;
		return;
	}
	if (!grant.shaped) {
		d->covered_B = grant.bytes;
		become_unshaped(d);
		return;
	}
	d->quantum_B = grant.quantum_B;
	d->share_Bps = grant.share_Bps;
	/* Refused at the cap: contending, not sparse. */
	sparse_credit_spend(&d->sparse, grant.bytes ? grant.bytes :
	    UINT64_MAX / NS_PER_SEC);
	size_buffers(d, grant.quantum_B);
	if (grant.bytes == 0) {
		/* Refused past the limit's debt cap, or a borrow that does
		 * not fit yet: the store says when to come back (no polling
		 * meanwhile). */
		d->release_ns = grant.release_ns > now_ns ? grant.release_ns :
		    now_ns + ZERO_GRANT_RETRY_NS;
		return;
	}
	d->covered_B = grant.bytes;
	d->release_ns = grant.release_ns;
}
