/*
 * The tools the bucket tests share (timeline.h): the random source, the
 * printing of 128-bit numbers, the release logs and the O(n) sweep that
 * finds the worst excess over the bucket contract on any interval.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bucket.h"
#include "timeline.h"

uint64_t rng_state;

uint64_t
rng(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

uint64_t
rng_below(uint64_t bound)
{
	return bound ? rng() % bound : 0;
}

/* Log-uniform in [low, high]: small and huge values equally often. */
uint64_t
rng_log(uint64_t low, uint64_t high)
{
	unsigned bits_low = 63 - (unsigned)__builtin_clzll(low);
	unsigned bits_high = 63 - (unsigned)__builtin_clzll(high);
	unsigned bits = bits_low + (unsigned)rng_below(bits_high - bits_low + 1);
	uint64_t value = (1ULL << bits) | rng_below(1ULL << bits);

	if (value < low)
		value = low;
	if (value > high)
		value = high;
	return value;
}

static char *
u128_str(unsigned __int128 value, char *buf)
{
	char tmp[48];
	int len = 0, i;

	do {
		tmp[len++] = (char)('0' + (int)(value % 10));
		value /= 10;
	} while (value);
	for (i = 0; i < len; i++)
		buf[i] = tmp[len - 1 - i];
	buf[len] = '\0';
	return buf;
}

char *
i128_str(i128 value, char *buf)
{
	if (value < 0) {
		buf[0] = '-';
		u128_str((unsigned __int128)-value, buf + 1);
		return buf;
	}
	return u128_str((unsigned __int128)value, buf);
}

void
log_release(struct level_log *log, uint64_t at_ns, uint64_t due_ns,
    uint64_t bytes)
{
	if (log->count == log->alloc) {
		log->alloc = log->alloc ? log->alloc * 2 : 1024;
		log->events = realloc(log->events,
		    log->alloc * sizeof(*log->events));
		if (log->events == NULL) {
			perror("realloc");
			exit(1);
		}
	}
	log->events[log->count].at_ns = at_ns;
	log->events[log->count].due_ns = due_ns;
	log->events[log->count].seq = log->count;
	log->events[log->count].bytes = bytes;
	log->count++;
}

int
by_time(const void *a, const void *b)
{
	const struct release *x = a, *y = b;

	if (x->at_ns != y->at_ns)
		return (x->at_ns > y->at_ns) - (x->at_ns < y->at_ns);
	return (x->seq > y->seq) - (x->seq < y->seq);
}

static int
by_due(const void *a, const void *b)
{
	const struct release *x = a, *y = b;

	return (x->due_ns > y->due_ns) - (x->due_ns < y->due_ns);
}

/*
 * The largest excess over any closed interval [t0, t1] of
 *     released(t0, t1) - r * (t1 - t0) - held(t0)      (in nanobytes)
 * where released counts bytes by their time (due_ns if by_due, else
 * at_ns), and held(t0), only when counting by at_ns, is the bytes due
 * before t0 but leaving at t0 or later.  One sweep over the events sorted
 * by time: for each end j the best start i <= j maximises
 * r*T_i - S_(i-1) - held(T_i), kept as a running maximum.
 */
i128
worst_excess_nB(struct level_log *log, uint64_t rate_Bps, int count_by_due,
    uint64_t *at_t0, uint64_t *at_t1)
{
	i128 sum_nB = 0, best_start = 0, excess, worst = 0, held_nB = 0;
	uint64_t best_start_ns = 0, t_ns;
	struct release *dues = NULL;
	size_t j, due_next = 0, left_next = 0;

	*at_t0 = *at_t1 = 0;
	if (log->count == 0)
		return 0;
	qsort(log->events, log->count, sizeof(*log->events),
	    count_by_due ? by_due : by_time);
	if (!count_by_due) {
		/* held(t) = sum(due < t) - sum(at < t): events sorted by
		 * at_ns give the second sum, a copy sorted by due the first. */
		dues = malloc((log->count + 1) * sizeof(*dues));
		if (dues == NULL) {
			perror("malloc");
			exit(1);
		}
		memcpy(dues, log->events, log->count * sizeof(*dues));
		qsort(dues, log->count, sizeof(*dues), by_due);
	}
	*at_t0 = *at_t1 = 0;
	for (j = 0; j < log->count; j++) {
		t_ns = count_by_due ? log->events[j].due_ns :
		    log->events[j].at_ns;
		if (!count_by_due) {
			while (due_next < log->count &&
			    dues[due_next].due_ns < t_ns)
				held_nB += (i128)dues[due_next++].bytes *
				    NS_PER_SEC;
			while (left_next < log->count &&
			    log->events[left_next].at_ns < t_ns)
				held_nB -= (i128)log->events[left_next++].bytes
				    * NS_PER_SEC;
		}
		i128 start = (i128)rate_Bps * t_ns - sum_nB - held_nB;

		if (j == 0 || start > best_start) {
			best_start = start;
			best_start_ns = t_ns;
		}
		sum_nB += (i128)log->events[j].bytes * NS_PER_SEC;
		excess = sum_nB - (i128)rate_Bps * t_ns + best_start;
		if (excess > worst) {
			worst = excess;
			*at_t0 = best_start_ns;
			*at_t1 = t_ns;
		}
	}
	free(dues);
	return worst;
}
