#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "log.h"
#include "refiller.h"

#define LIMIT_RING	601	/* 60 s of 100 ms ticks, and the newest */
#define CONN_RING	6	/* 5 s of whole seconds, and the newest */
#define HOUSEKEEP_NS	NS_PER_SEC	/* reap, reader check, conn rates */
#define EXITS_PER_TICK	256	/* pidfd events taken per epoll_wait */
/* A reader is said to lag when it has held one snapshot this long while
 * this many commits went by: every page those commits wrote stays
 * unreusable until it lets go, and the file grows by them. */
#define READER_LAG_NS		(2 * NS_PER_SEC)
#define READER_LAG_COMMITS	100
#define READERS_WATCHED		64

/* Cumulative byte counters sampled on every tick with the time of the
 * sample; a rate over N seconds is the difference between the newest
 * sample and the newest one at least N seconds older, divided by the time
 * between them, so late or uneven ticks (a loaded machine, shaperd -t)
 * measure right.  A short history uses what it has. */
struct limit_history {
	char name[LIMIT_NAME_MAX + 1];
	uint64_t total_B[LIMIT_RING][2];
	uint64_t at_ns[LIMIT_RING];
	unsigned filled;	/* samples taken, up to LIMIT_RING */
	unsigned head;		/* index of the newest */
	int seen;		/* still in the store at the last tick */
};

struct conn_history {
	uint32_t id;
	int pidfd;		/* readable once pid exits; -1: not watched */
	pid_t pid;		/* whose exit pidfd tells */
	uint64_t bytes[CONN_RING][2];
	uint64_t at_ns[CONN_RING];
	unsigned filled, head;
	int seen;
};

/* A snapshot seen held at a housekeeping tick, and since when. */
struct reader_watch {
	pid_t pid;
	uint64_t txnid;
	uint64_t since_ns;	/* CLOCK_MONOTONIC, first seen */
	int logged;
};

struct refiller {
	struct store *store;
	enum refiller_kind kind;
	int refill_fd;		/* refiller.lock */
	int priority_fd;	/* shaperd.lock */
	int active;		/* we hold refiller.lock */
	uint64_t tick_ns;	/* CLOCK_MONOTONIC of the tick under way */
	uint64_t housekept_ns;	/* of the last reap; 0 = never */
	int headroom_rc;	/* store_keep_headroom's last answer */
	int config_rc;		/* store_follow_config's last answer */
	/* Relays' exits seen as they happen, so the dead are reaped on the
	 * next tick and not only by the once-a-second check of every pid,
	 * which a loaded machine can delay past 2 s.  Every relay gets a
	 * pidfd in exit_epoll_fd while descriptors last (below half the
	 * soft limit: an embedded refiller shares iprelay's descriptors
	 * with its clients); the others wait for the check. */
	int exit_epoll_fd;	/* -1: no pidfds (old kernel, no epoll) */
	int pidfd_max;		/* a pidfd numbered this or above is closed */
	uint32_t watched_since;	/* store_conn_foreach_new's counter */
	struct conn_exit *exits;	/* seen this tick, to drop */
	size_t nexits, exits_cap;
	struct limit_history *limits;
	size_t nlimits, limits_cap;
	struct conn_history *conns;
	size_t nconns, conns_cap;
	struct reader_watch readers[READERS_WATCHED];
	size_t nreaders;
};

/* The lock files, as every file in the state dir (statedir.h): no link
 * followed, a regular file of the dir's owner or group, mode 0660 when we
 * make it, whatever the umask; never chowned (root has dropped to the
 * dir's owner, who then makes it). */
static int
open_lock(const struct statedir *dir, const char *name, int *fd)
{
	int created;

	return statedir_openat(dir, name, O_RDWR | O_CREAT, 0660, fd,
	    &created, NULL, 0);
}

static int
ofd_lock(int fd, short type)
{
	struct flock lock = { .l_type = type, .l_whence = SEEK_SET };

	return fcntl(fd, F_OFD_SETLK, &lock);
}

static int
ofd_held_elsewhere(int fd)
{
	struct flock lock = { .l_type = F_WRLCK, .l_whence = SEEK_SET };

	if (fcntl(fd, F_OFD_GETLK, &lock) < 0)
		return 0;
	return lock.l_type != F_UNLCK;
}

int
refiller_create(struct refiller **out, struct store *store, const char *dir,
    enum refiller_kind kind)
{
	struct refiller *refiller;
	struct rlimit files;
	int rc;

	refiller = calloc(1, sizeof(*refiller));
	if (refiller == NULL)
		return ENOMEM;
	refiller->store = store;
	refiller->kind = kind;
	refiller->exit_epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	refiller->pidfd_max = getrlimit(RLIMIT_NOFILE, &files) == 0 &&
	    files.rlim_cur != RLIM_INFINITY && files.rlim_cur / 2 < INT_MAX ?
	    (int)(files.rlim_cur / 2) : INT_MAX;
	refiller->refill_fd = refiller->priority_fd = -1;
	(void)dir;
	if ((rc = open_lock(store_dir(store), "refiller.lock",
	    &refiller->refill_fd)) || (rc = open_lock(store_dir(store),
	    "shaperd.lock", &refiller->priority_fd))) {
		refiller_destroy(refiller);
		return rc;
	}
	*out = refiller;
	return 0;
}

static void
unwatch_all(struct refiller *refiller)
{
	size_t index;

	for (index = 0; index < refiller->nconns; index++)
		if (refiller->conns[index].pidfd >= 0) {
			close(refiller->conns[index].pidfd);
			refiller->conns[index].pidfd = -1;
		}
}

void
refiller_destroy(struct refiller *refiller)
{
	if (refiller == NULL)
		return;
	if (refiller->refill_fd >= 0)
		close(refiller->refill_fd);
	if (refiller->priority_fd >= 0)
		close(refiller->priority_fd);
	unwatch_all(refiller);
	if (refiller->exit_epoll_fd >= 0)
		close(refiller->exit_epoll_fd);
	free(refiller->limits);
	free(refiller->conns);
	free(refiller->exits);
	free(refiller);
}

int
refiller_claim_priority(struct refiller *refiller)
{
	if (ofd_lock(refiller->priority_fd, F_WRLCK) < 0)
		return errno == EAGAIN || errno == EACCES ? EBUSY : errno;
	return 0;
}

static void
publish_refiller(struct refiller *refiller)
{
	char who[96];

	snprintf(who, sizeof(who), "%d %s", (int)getpid(),
	    refiller->kind == REFILLER_SHAPERD ? "shaperd" : "iprelay");
	/* Best effort: a full disk must not stop the refilling itself. */
	(void)store_meta_put(refiller->store, "refiller", who, strlen(who));
}

int
refiller_arbitrate(struct refiller *refiller)
{
	int was_reset;

	if (refiller->active) {
		if (refiller->kind == REFILLER_EMBEDDED &&
		    ofd_held_elsewhere(refiller->priority_fd)) {
			ofd_lock(refiller->refill_fd, F_UNLCK);
			refiller->active = 0;
			/* shaperd watches them now; ours would only hold
			 * descriptors iprelay's clients need. */
			unwatch_all(refiller);
		}
		return refiller->active;
	}
	if (refiller->kind == REFILLER_EMBEDDED &&
	    ofd_held_elsewhere(refiller->priority_fd))
		return 0;
	if (ofd_lock(refiller->refill_fd, F_WRLCK) < 0)
		return 0;
	refiller->active = 1;
	refiller->housekept_ns = 0;
	/* Relays came and went while another refilled: look at them all. */
	refiller->watched_since = 0;
	(void)store_boot_reset(refiller->store, &was_reset);
	publish_refiller(refiller);
	return 1;
}

int
refiller_is_active(const struct refiller *refiller)
{
	return refiller->active;
}

static uint64_t
ring_rate(const uint64_t (*ring)[2], const uint64_t *at_ns,
    unsigned ring_size, unsigned filled, unsigned head, uint64_t span_ns,
    int dir)
{
	unsigned back, older = head;
	uint64_t elapsed_ns;

	if (filled < 2)
		return 0;
	for (back = 1; back < filled; back++) {
		older = (head + ring_size - back) % ring_size;
		if (at_ns[head] - at_ns[older] >= span_ns)
			break;
	}
	elapsed_ns = at_ns[head] - at_ns[older];
	if (elapsed_ns == 0 || ring[head][dir] < ring[older][dir])
		return 0;
	return (uint64_t)((unsigned __int128)(ring[head][dir] -
	    ring[older][dir]) * NS_PER_SEC / elapsed_ns);
}

static struct limit_history *
limit_history_for(struct refiller *refiller, const char *name)
{
	struct limit_history *grown;
	size_t index;

	for (index = 0; index < refiller->nlimits; index++)
		if (strcmp(refiller->limits[index].name, name) == 0)
			return &refiller->limits[index];
	if (refiller->nlimits == refiller->limits_cap) {
		size_t cap = refiller->limits_cap ? refiller->limits_cap * 2 : 8;

		grown = realloc(refiller->limits, cap * sizeof(*grown));
		if (grown == NULL)
			return NULL;
		refiller->limits = grown;
		refiller->limits_cap = cap;
	}
	grown = &refiller->limits[refiller->nlimits++];
	memset(grown, 0, sizeof(*grown));
	snprintf(grown->name, sizeof(grown->name), "%s", name);
	return grown;
}

static void
bucket_tick(void *ctx, struct limit_info *info)
{
	struct refiller *refiller = ctx;
	struct limit_history *history;
	int dir;

	history = limit_history_for(refiller, info->name);
	if (history == NULL)
		return;
	history->seen = 1;
	if (history->filled)
		history->head = (history->head + 1) % LIMIT_RING;
	if (history->filled < LIMIT_RING)
		history->filled++;
	history->at_ns[history->head] = refiller->tick_ns;
	for (dir = 0; dir < 2; dir++) {
		history->total_B[history->head][dir] = info->total_B[dir];
		info->rate_1s_Bps[dir] = ring_rate(history->total_B,
		    history->at_ns, LIMIT_RING, history->filled, history->head,
		    NS_PER_SEC, dir);
		info->rate_5s_Bps[dir] = ring_rate(history->total_B,
		    history->at_ns, LIMIT_RING, history->filled, history->head,
		    5 * NS_PER_SEC, dir);
		info->rate_60s_Bps[dir] = ring_rate(history->total_B,
		    history->at_ns, LIMIT_RING, history->filled, history->head,
		    60 * NS_PER_SEC, dir);
	}
	info->stats_unix_ns = realtime_ns();
}

/* Where id's history is or would go: conns[] is kept in id order, so a
 * lookup is a binary search (the refiller looks every relay up once a
 * second, and 8192 of them searched in turn would be 33 million steps). */
static size_t
conn_history_slot(const struct refiller *refiller, uint32_t id)
{
	size_t low = 0, high = refiller->nconns, middle;

	while (low < high) {
		middle = low + (high - low) / 2;
		if (refiller->conns[middle].id < id)
			low = middle + 1;
		else
			high = middle;
	}
	return low;
}

static struct conn_history *
conn_history_find(struct refiller *refiller, uint32_t id)
{
	size_t slot = conn_history_slot(refiller, id);

	if (slot < refiller->nconns && refiller->conns[slot].id == id)
		return &refiller->conns[slot];
	return NULL;
}

/* Found or added; any earlier pointer into conns[] is stale after. */
static struct conn_history *
conn_history_for(struct refiller *refiller, uint32_t id)
{
	struct conn_history *grown;
	size_t slot = conn_history_slot(refiller, id);

	if (slot < refiller->nconns && refiller->conns[slot].id == id)
		return &refiller->conns[slot];
	if (refiller->nconns == refiller->conns_cap) {
		size_t cap = refiller->conns_cap ? refiller->conns_cap * 2 : 64;

		grown = realloc(refiller->conns, cap * sizeof(*grown));
		if (grown == NULL)
			return NULL;
		refiller->conns = grown;
		refiller->conns_cap = cap;
	}
	/* New ids are mostly the highest: the move is mostly empty. */
	memmove(&refiller->conns[slot + 1], &refiller->conns[slot],
	    (refiller->nconns - slot) * sizeof(*grown));
	refiller->nconns++;
	grown = &refiller->conns[slot];
	memset(grown, 0, sizeof(*grown));
	grown->id = id;
	grown->pidfd = -1;
	return grown;
}

static void
conn_tick(void *ctx, struct conn_info *info)
{
	struct refiller *refiller = ctx;
	struct conn_history *history;
	int dir;

	history = conn_history_for(refiller, info->id);
	if (history == NULL)
		return;
	history->seen = 1;
	if (history->filled)
		history->head = (history->head + 1) % CONN_RING;
	if (history->filled < CONN_RING)
		history->filled++;
	history->at_ns[history->head] = refiller->tick_ns;
	for (dir = 0; dir < 2; dir++) {
		history->bytes[history->head][dir] = info->bytes[dir];
		info->rate_5s_Bps[dir] = ring_rate(history->bytes,
		    history->at_ns, CONN_RING, history->filled, history->head,
		    5 * NS_PER_SEC, dir);
	}
}

/* /proc/PID/stat starttime; 0 if unknown.  *state gets the state letter
 * (Z for a zombie: dead, only not yet waited for by its parent). */
static unsigned long long
proc_stat(pid_t pid, char *state)
{
	char path[64], stat_line[1024], *field;
	unsigned long long start = 0;
	ssize_t len;
	int fd, index;

	*state = '?';

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	len = read(fd, stat_line, sizeof(stat_line) - 1);
	close(fd);
	if (len <= 0)
		return 0;
	stat_line[len] = '\0';
	/* Field 22 (starttime) counted after the ")" that ends comm. */
	field = strrchr(stat_line, ')');
	if (field == NULL)
		return 0;
	if (field[1] == ' ' && field[2])
		*state = field[2];
	for (index = 2; index < 22 && field; index++)
		field = strchr(field + 1, ' ');
	if (field)
		start = strtoull(field + 1, NULL, 10);
	return start;
}

static int
conn_alive(void *ctx, const struct conn_info *info)
{
	struct refiller *refiller = ctx;
	struct conn_history *history;
	unsigned long long start;
	char state;

	if (info->pid <= 0)
		return 0;
	/* Its pidfd has not fired (reap_exited took every exit so far this
	 * tick): alive, and /proc is not read for it.  Reading it for 8192
	 * relays a second was most of shaperd's time (bench/reaper.c). */
	history = conn_history_find(refiller, info->id);
	if (history && history->pidfd >= 0 && history->pid == info->pid)
		return 1;
	if (kill(info->pid, 0) < 0 && errno == ESRCH)
		return 0;
	start = proc_stat(info->pid, &state);
	/* A zombie relay is dead; its launcher has not waited for it yet. */
	if (state == 'Z' || state == 'X')
		return 0;
	/* A recycled pid runs something else: its start time differs. */
	if (info->pid_start && start && start != info->pid_start)
		return 0;
	return 1;
}

static void
forget_unseen(struct refiller *refiller)
{
	size_t index, kept = 0;

	for (index = 0; index < refiller->nconns; index++)
		if (refiller->conns[index].seen) {
			refiller->conns[index].seen = 0;
			refiller->conns[kept++] = refiller->conns[index];
		} else if (refiller->conns[index].pidfd >= 0)
			close(refiller->conns[index].pidfd);
	refiller->nconns = kept;
	kept = 0;
	for (index = 0; index < refiller->nlimits; index++)
		if (refiller->limits[index].seen) {
			refiller->limits[index].seen = 0;
			refiller->limits[kept++] = refiller->limits[index];
		}
	refiller->nlimits = kept;
}

static void
exit_seen(struct refiller *refiller, uint32_t id, pid_t pid)
{
	struct conn_exit *grown;

	if (refiller->nexits == refiller->exits_cap) {
		size_t cap = refiller->exits_cap ? refiller->exits_cap * 2 : 64;

		grown = realloc(refiller->exits, cap * sizeof(*grown));
		if (grown == NULL)
			return;	/* the once-a-second check reaps it */
		refiller->exits = grown;
		refiller->exits_cap = cap;
	}
	refiller->exits[refiller->nexits].id = id;
	refiller->exits[refiller->nexits].pid = pid;
	refiller->nexits++;
}

/* store_conn_foreach_new's visitor: a pidfd for each new relay. */
static int
watch_conn(void *ctx, const struct conn_info *info)
{
	struct refiller *refiller = ctx;
	struct conn_history *history;
	struct epoll_event event = { .events = EPOLLIN };
	unsigned long long start;
	char state;
	int pidfd;

	if (info->pid <= 0 || refiller->exit_epoll_fd < 0)
		return 0;
	history = conn_history_for(refiller, info->id);
	if (history == NULL)
		return 0;
	if (history->pidfd >= 0) {
		if (history->pid == info->pid)
			return 0;
		/* The id went round to a new relay before the old one's
		 * history was forgotten: watch the new one. */
		close(history->pidfd);
		history->pidfd = -1;
	}
	pidfd = (int)syscall(SYS_pidfd_open, info->pid, 0);
	if (pidfd < 0) {
		if (errno == ESRCH)
			exit_seen(refiller, info->id, info->pid);
		else if (errno == ENOSYS) {
			close(refiller->exit_epoll_fd);
			refiller->exit_epoll_fd = -1;
		}
		return 0;
	}
	if (pidfd >= refiller->pidfd_max) {
		close(pidfd);
		return 0;
	}
	/* The pid may have been another process's by the time we opened
	 * it: then ours is gone. */
	start = proc_stat(info->pid, &state);
	if (info->pid_start && start && start != info->pid_start) {
		close(pidfd);
		exit_seen(refiller, info->id, info->pid);
		return 0;
	}
	event.data.u64 = (uint64_t)info->id << 32 | (uint32_t)info->pid;
	if (epoll_ctl(refiller->exit_epoll_fd, EPOLL_CTL_ADD, pidfd,
	    &event) < 0) {
		close(pidfd);
		return 0;
	}
	history->pidfd = pidfd;
	history->pid = info->pid;
	return 0;
}

/* Drop the records of relays that exited since the last tick without
 * unregistering (kill -9, a crash).  Best effort: whatever fails here the
 * once-a-second check of every pid reaps. */
static void
reap_exited(struct refiller *refiller, unsigned *reaped)
{
	struct epoll_event events[EXITS_PER_TICK];
	struct conn_history *history;
	uint32_t id;
	int nevents, index;

	if (refiller->exit_epoll_fd < 0)
		return;
	refiller->nexits = 0;
	(void)store_conn_foreach_new(refiller->store,
	    &refiller->watched_since, watch_conn, refiller);
	if (refiller->exit_epoll_fd < 0)
		return;
	/* Every exit so far, so that a pidfd still open means alive. */
	do {
		nevents = epoll_wait(refiller->exit_epoll_fd, events,
		    EXITS_PER_TICK, 0);
		for (index = 0; index < nevents; index++) {
			id = (uint32_t)(events[index].data.u64 >> 32);
			/* Closing it takes it out of the epoll set. */
			history = conn_history_find(refiller, id);
			if (history && history->pidfd >= 0) {
				close(history->pidfd);
				history->pidfd = -1;
			}
			exit_seen(refiller, id,
			    (pid_t)(uint32_t)events[index].data.u64);
		}
	} while (nevents == EXITS_PER_TICK);
	if (refiller->nexits)
		(void)store_conn_drop_exited(refiller->store, refiller->exits,
		    refiller->nexits, reaped);
}

/* Say once which process holds a snapshot far behind the newest commit,
 * and for how long: while it does, draws cannot reuse pages and the state
 * file grows toward its map size (then relays pass bytes unshaped).  The
 * store's own readers never hold one across I/O; this finds the others (a
 * stopped debugger, an old iprelay-limit in a pager, a foreign tool). */
static void
watch_readers(struct refiller *refiller, uint64_t now_ns)
{
	struct store_reader now[READERS_WATCHED];
	struct reader_watch kept[READERS_WATCHED], *old;
	uint64_t last_txnid;
	size_t count, index, seen, nkept = 0;

	if (store_readers(refiller->store, now, READERS_WATCHED, &count,
	    &last_txnid))
		return;
	for (index = 0; index < count; index++) {
		old = NULL;
		for (seen = 0; seen < refiller->nreaders; seen++)
			if (refiller->readers[seen].pid == now[index].pid &&
			    refiller->readers[seen].txnid == now[index].txnid)
				old = &refiller->readers[seen];
		kept[nkept] = old ? *old : (struct reader_watch){
		    now[index].pid, now[index].txnid, now_ns, 0 };
		old = &kept[nkept++];
		if (!old->logged && now_ns - old->since_ns >= READER_LAG_NS &&
		    last_txnid >= old->txnid + READER_LAG_COMMITS) {
			log_warn("reader pid %d has held a snapshot of the "
			    "state for %llu s, %llu commits behind: the state "
			    "file grows until it lets go", (int)old->pid,
			    (unsigned long long)((now_ns - old->since_ns) /
			    NS_PER_SEC),
			    (unsigned long long)(last_txnid - old->txnid));
			old->logged = 1;
		}
	}
	memcpy(refiller->readers, kept, nkept * sizeof(kept[0]));
	refiller->nreaders = nkept;
}

int
refiller_tick(struct refiller *refiller, unsigned *reaped)
{
	/* Housekeeping goes by the clock, not by counting ticks, so a dead
	 * relay is reaped within 2 s whatever the tick and however late. */
	uint64_t now_ns = monotonic_ns();
	int housekeep = refiller->housekept_ns == 0 ||
	    now_ns - refiller->housekept_ns >= HOUSEKEEP_NS;
	unsigned swept;
	int cleared, rc;

	*reaped = 0;
	refiller->tick_ns = now_ns;
	/* The live store made again by another process (it found it
	 * damaged): refill the new one, not the old file nobody else uses. */
	if ((rc = store_follow_live(refiller->store)))
		return rc;
	/* A reader killed inside its transaction pins the pages of its
	 * snapshot: every draw until its slot is cleared takes fresh pages,
	 * and at tens of thousands of draws a second that fills the map in
	 * seconds.  So clear stale slots on every tick (cheap: one lock test
	 * per reader process). */
	if ((rc = store_reader_check(refiller->store, &cleared)))
		return rc;
	/* Before the tick's writes, which fail once a lagging reader has let
	 * the file fill the map. */
	if (housekeep)
		watch_readers(refiller, now_ns);
	/* Relays take the live copy of the limits as they find it; one left
	 * behind the configuration is brought up to date here.  A failure
	 * (the configuration damaged under us) is said when it starts and
	 * ends, and the refill goes on with the copy as it is. */
	if (housekeep && (rc = store_follow_config(refiller->store)) !=
	    refiller->config_rc) {
		if (rc)
			log_warn("unable to bring the live copy of the limits "
			    "up to date: %s", store_strerror(rc));
		else
			log_line(LOG_INFO, "the live copy of the limits "
			    "follows the configuration again");
		refiller->config_rc = rc;
	}
	reap_exited(refiller, reaped);
	rc = store_tick(refiller->store, bucket_tick,
	    housekeep ? conn_tick : NULL, refiller);
	if (rc)
		return rc;
	if (!housekeep)
		return 0;
	refiller->housekept_ns = now_ns;
	forget_unseen(refiller);
	/* Said when it starts and when it ends, not every second. */
	rc = store_keep_headroom(refiller->store);
	if (rc != refiller->headroom_rc) {
		if (rc)
			log_warn("unable to keep %llu MiB allocated ahead in "
			    "the state file: %s; relays may pass bytes "
			    "unshaped if it must grow",
			    STORE_HEADROOM_B >> 20, store_strerror(rc));
		else
			log_line(LOG_INFO, "the state file has %llu MiB "
			    "allocated ahead again", STORE_HEADROOM_B >> 20);
		refiller->headroom_rc = rc;
	}
	rc = store_reap(refiller->store, conn_alive, refiller, &swept);
	*reaped += swept;
	return rc;
}

uint64_t
refiller_proc_start(pid_t pid)
{
	char state;

	return proc_stat(pid, &state);
}
