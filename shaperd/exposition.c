/*
 * The figures shaperd's metrics serve (metrics.h), in the Prometheus text
 * exposition format 0.0.4: copied out of the store in short read
 * transactions (store_limit_foreach into an array, store_env_stats), then
 * written, so no transaction is open while the text is made or sent.
 *
 * The families are one table (families[] below): a name, a type, a help
 * line, a scope (the process, a limit, a limit and direction), an
 * optional extra label and a function giving each sample's value.  Adding
 * one is adding a row (and its line in docs/shaperd.8).  Figures that are
 * not in struct limit_info or store_env_stats: a field in struct snapshot,
 * filled by snapshot_take() in its own short read (copied, the transaction
 * ended), and a value function reading it from row->snap.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

/* A growing text buffer; a failed allocation is remembered, not fatal. */
struct text {
	char *data;
	size_t len, cap;
	int failed;
};

static void
text_reserve(struct text *text, size_t more)
{
	size_t cap;
	char *data;

	if (text->failed || text->len + more + 1 <= text->cap)
		return;
	cap = text->cap ? text->cap : 16384;
	while (cap < text->len + more + 1)
		cap *= 2;
	if ((data = realloc(text->data, cap)) == NULL) {
		text->failed = 1;
		return;
	}
	text->data = data;
	text->cap = cap;
}

static void __attribute__((format(printf, 2, 3)))
text_printf(struct text *text, const char *fmt, ...)
{
	va_list args;
	int n;

	text_reserve(text, 256);
	if (text->failed)
		return;
	va_start(args, fmt);
	n = vsnprintf(text->data + text->len, text->cap - text->len, fmt,
	    args);
	va_end(args);
	if (n < 0) {
		text->failed = 1;
		return;
	}
	if ((size_t)n >= text->cap - text->len) {
		text_reserve(text, (size_t)n);
		if (text->failed)
			return;
		va_start(args, fmt);
		vsnprintf(text->data + text->len, text->cap - text->len, fmt,
		    args);
		va_end(args);
	}
	text->len += (size_t)n;
}

/* Plain bytes: most of a scrape, kept clear of printf (1150 limits took
 * 100 ms to render with a vsnprintf per piece, on a loaded machine). */
static void
text_put(struct text *text, const char *piece)
{
	size_t len = strlen(piece);

	text_reserve(text, len);
	if (text->failed)
		return;
	memcpy(text->data + text->len, piece, len + 1);
	text->len += len;
}

/* A label value as the format wants it: \, " and newline escaped. */
static void
text_label_value(struct text *text, const char *value)
{
	text_reserve(text, 2 * strlen(value));
	if (text->failed)
		return;
	for (; *value; value++) {
		if (*value == '\\' || *value == '"') {
			text->data[text->len++] = '\\';
			text->data[text->len++] = *value;
		} else if (*value == '\n') {
			text->data[text->len++] = '\\';
			text->data[text->len++] = 'n';
		} else
			text->data[text->len++] = *value;
	}
	text->data[text->len] = '\0';
}

/* The figures of one scrape, copied out of the store before anything is
 * written to a client. */
struct snapshot {
	struct limit_info *limits;
	size_t nlimits, cap;
	int failed;			/* out of memory while copying */
	int store_rc;			/* 0: limits and env read */
	struct store_env_stats env;
	const struct metrics_process *process;
	uint64_t now_ns;		/* CLOCK_MONOTONIC of the copy */
};

/* Inside the read transaction: a copy, nothing else. */
static int
copy_limit(void *ctx, const struct limit_info *info)
{
	struct snapshot *snap = ctx;
	struct limit_info *limits;
	size_t cap;

	if (snap->nlimits == snap->cap) {
		cap = snap->cap ? 2 * snap->cap : 64;
		limits = realloc(snap->limits, cap * sizeof(*limits));
		if (limits == NULL) {
			snap->failed = 1;
			return ENOMEM;
		}
		snap->limits = limits;
		snap->cap = cap;
	}
	snap->limits[snap->nlimits++] = *info;
	return 0;
}

static void
snapshot_take(struct snapshot *snap, struct store *store,
    const struct metrics_process *process)
{
	memset(snap, 0, sizeof(*snap));
	snap->process = process;
	snap->store_rc = store_limit_foreach(store, copy_limit, snap);
	if (snap->store_rc == 0)
		snap->store_rc = store_env_stats(store, &snap->env);
	if (snap->store_rc)
		snap->nlimits = 0;
	snap->now_ns = monotonic_ns();
}

/* One sample being written: the limit and direction (for the scopes that
 * have them) and the variant of the family's extra label. */
struct row {
	const struct snapshot *snap;
	const struct limit_info *limit;
	int dir;
	int variant;
};

#define VALUE_MAX	32
/* Writes the sample's value into out (VALUE_MAX bytes): 0, or 1 for no
 * sample in this row. */
typedef int (*value_fn)(const struct row *row, char out[VALUE_MAX]);

enum scope { SCOPE_PROCESS, SCOPE_LIMIT, SCOPE_LIMIT_DIR };

struct family {
	const char *name;
	const char *type;		/* "gauge" or "counter" */
	const char *help;
	enum scope scope;
	/* An optional label beside limit and direction: its name, and
	 * either fixed values (one sample each, row->variant the index) or
	 * a function giving the row's one value. */
	const char *label;
	const char *const *label_values;
	const char *(*label_of)(const struct row *row);
	value_fn value;
};

static int
put_u64(char out[VALUE_MAX], uint64_t value)
{
	char digits[24];
	size_t n = 0;

	do {
		digits[n++] = (char)('0' + value % 10);
		value /= 10;
	} while (value);
	while (n)
		*out++ = digits[--n];
	*out = '\0';
	return 0;
}

/* Bytes/s as configured: 0 in the store is no limit, +Inf here. */
static int
put_rate(char out[VALUE_MAX], uint64_t rate_Bps)
{
	if (rate_Bps == 0) {
		snprintf(out, VALUE_MAX, "+Inf");
		return 0;
	}
	return put_u64(out, rate_Bps);
}

/* Nanoseconds as seconds, to the millisecond. */
static int
put_seconds(char out[VALUE_MAX], uint64_t ns)
{
	snprintf(out, VALUE_MAX, "%" PRIu64 ".%03" PRIu64,
	    (uint64_t)(ns / NS_PER_SEC), (uint64_t)(ns % NS_PER_SEC / 1000000));
	return 0;
}

/* A cap on live relays: no sample for one not set (0). */
static int
put_cap(char out[VALUE_MAX], uint32_t cap)
{
	if (cap == 0)
		return 1;
	return put_u64(out, cap);
}

static int
limit_info_value(const struct row *row, char out[VALUE_MAX])
{
	(void)row;
	return put_u64(out, 1);
}

static const char *
limit_parent(const struct row *row)
{
	return row->limit->cfg.parent;
}

static int
limit_rate(const struct row *row, char out[VALUE_MAX])
{
	return put_rate(out, row->limit->cfg.rate_Bps[row->dir]);
}

/* The most it may pass: its ceiling, else its own rate. */
static int
limit_ceiling(const struct row *row, char out[VALUE_MAX])
{
	uint64_t ceil_Bps = row->limit->cfg.ceil_Bps[row->dir];

	if (ceil_Bps == CEIL_NONE)
		return put_rate(out, row->limit->cfg.rate_Bps[row->dir]);
	if (ceil_Bps == CEIL_UNLIMITED)
		return put_rate(out, 0);
	return put_rate(out, ceil_Bps);
}

static int
limit_burst(const struct row *row, char out[VALUE_MAX])
{
	const struct bucket *bucket = &row->limit->bucket[row->dir];

	if (bucket->rate_Bps == 0)
		return 1;
	return put_u64(out, bucket->burst_B);
}

static int
limit_bytes(const struct row *row, char out[VALUE_MAX])
{
	return put_u64(out, row->limit->total_B[row->dir]);
}

static int
limit_borrowed(const struct row *row, char out[VALUE_MAX])
{
	return put_u64(out, row->limit->borrowed_B[row->dir]);
}

static const char *const windows[] = { "1s", "5s", "60s", NULL };

static int
limit_current_rate(const struct row *row, char out[VALUE_MAX])
{
	const struct limit_info *limit = row->limit;
	const uint64_t *rates[] = { limit->rate_1s_Bps, limit->rate_5s_Bps,
		limit->rate_60s_Bps };

	if (limit->stats_unix_ns == 0)
		return 1;	/* never measured */
	return put_u64(out, rates[row->variant][row->dir]);
}

/* Settled to the moment of the copy, on a copy: the stored count is as of
 * the last draw or tick. */
static int
limit_tokens(const struct row *row, char out[VALUE_MAX])
{
	struct bucket bucket = row->limit->bucket[row->dir];

	if (bucket.rate_Bps == 0)
		return 1;
	bucket_settle(&bucket, row->snap->now_ns);
	snprintf(out, VALUE_MAX, "%" PRId64, bucket.tokens_B);
	return 0;
}

static int
limit_connections(const struct row *row, char out[VALUE_MAX])
{
	return put_u64(out, row->limit->nconns);
}

/* Caps on live relays (store-caps.c): no sample for one not set. */
static const char *const caps_kinds[] = { "conns", "per_source", NULL };

static int
limit_refused(const struct row *row, char out[VALUE_MAX])
{
	return put_u64(out, row->limit->refused[row->variant]);
}

static int
limit_max_conns(const struct row *row, char out[VALUE_MAX])
{
	return put_cap(out, row->limit->cfg.max_conns);
}

static int
limit_max_conns_per_source(const struct row *row, char out[VALUE_MAX])
{
	return put_cap(out, row->limit->cfg.max_conns_per_source);
}

static int
store_up(const struct row *row, char out[VALUE_MAX])
{
	return put_u64(out, row->snap->store_rc == 0);
}

/* The store's figures exist only when it was read. */
#define ENV_VALUE(fn, field)						\
static int								\
fn(const struct row *row, char out[VALUE_MAX])				\
{									\
	if (row->snap->store_rc)					\
		return 1;						\
	return put_u64(out, row->snap->env.field);			\
}
ENV_VALUE(env_limits, limits)
ENV_VALUE(env_conns, conns)
ENV_VALUE(env_file, file_B)
ENV_VALUE(env_map, map_B)
ENV_VALUE(env_used, used_B)
ENV_VALUE(env_free, free_B)
ENV_VALUE(env_page, page_B)
ENV_VALUE(env_txns, last_txnid)
ENV_VALUE(env_readers, readers)
ENV_VALUE(env_reader_lag, reader_lag_txns)

#define PROCESS_VALUE(fn, field)					\
static int								\
fn(const struct row *row, char out[VALUE_MAX])				\
{									\
	return put_u64(out, (uint64_t)row->snap->process->field);	\
}
PROCESS_VALUE(process_active, active)
PROCESS_VALUE(process_ticks, ticks)
PROCESS_VALUE(process_tick_errors, tick_errors)
PROCESS_VALUE(process_reaped, reaped)

static int
process_start(const struct row *row, char out[VALUE_MAX])
{
	return put_seconds(out, row->snap->process->start_unix_ns);
}

/* Global limits (store.h): nothing for a local limit. */
static const char *const global_states[] = { "leased", "held", "floor",
    "closed", "open", NULL };

static int
global_share(const struct row *row, char out[VALUE_MAX])
{
	enum global_state state;

	if (!row->limit->cfg.global)
		return 1;
	return put_rate(out, global_rate_at(&row->limit->cfg,
	    &row->limit->global, row->dir, row->snap->now_ns, &state));
}

static int
global_state(const struct row *row, char out[VALUE_MAX])
{
	enum global_state state;

	if (!row->limit->cfg.global)
		return 1;
	(void)global_rate_at(&row->limit->cfg, &row->limit->global, DIR_UP,
	    row->snap->now_ns, &state);
	return put_u64(out, (int)state == row->variant);
}

static int
global_lease_left(const struct row *row, char out[VALUE_MAX])
{
	const struct global_live *live = &row->limit->global;
	uint64_t end_ns = live->hold_until_ns > live->lease_until_ns ?
	    live->hold_until_ns : live->lease_until_ns;

	if (!row->limit->cfg.global)
		return 1;
	return put_seconds(out, end_ns > row->snap->now_ns ?
	    end_ns - row->snap->now_ns : 0);
}

static int
global_hosts(const struct row *row, char out[VALUE_MAX])
{
	if (!row->limit->cfg.global)
		return 1;
	return put_u64(out, row->limit->global.nhosts);
}

static int
global_floor_hosts_value(const struct row *row, char out[VALUE_MAX])
{
	if (!row->limit->cfg.global)
		return 1;
	return put_u64(out, global_floor_hosts(&row->limit->cfg,
	    &row->limit->global));
}

/* docs/shaperd.8 lists every family; keep the two in step. */
static const struct family families[] = {
	{ "iprelay_limit_info", "gauge",
	  "Always 1: a limit and the limit it is nested in (\"\" at the top).",
	  SCOPE_LIMIT, "parent", NULL, limit_parent, limit_info_value },
	{ "iprelay_limit_rate_bytes_per_second", "gauge",
	  "Configured rate of the limit in this direction (+Inf: none).",
	  SCOPE_LIMIT_DIR, NULL, NULL, NULL, limit_rate },
	{ "iprelay_limit_ceiling_bytes_per_second", "gauge",
	  "Most the limit may pass borrowing from its ancestors: its ceiling, "
	  "else its rate (+Inf: no bound).",
	  SCOPE_LIMIT_DIR, NULL, NULL, NULL, limit_ceiling },
	{ "iprelay_limit_burst_bytes", "gauge",
	  "Burst of the limit's bucket: most tokens it holds (rated "
	  "directions only).",
	  SCOPE_LIMIT_DIR, NULL, NULL, NULL, limit_burst },
	{ "iprelay_limit_bytes_total", "counter",
	  "Bytes passed through the limit and the limits nested in it.",
	  SCOPE_LIMIT_DIR, NULL, NULL, NULL, limit_bytes },
	{ "iprelay_limit_borrowed_bytes_total", "counter",
	  "Bytes the limit passed past its own rate, borrowed up to its "
	  "ceiling.",
	  SCOPE_LIMIT_DIR, NULL, NULL, NULL, limit_borrowed },
	{ "iprelay_limit_current_rate_bytes_per_second", "gauge",
	  "Rate measured by the refiller over the last window.",
	  SCOPE_LIMIT_DIR, "window", windows, NULL, limit_current_rate },
	{ "iprelay_limit_tokens_bytes", "gauge",
	  "Tokens in the limit's bucket now; negative: bytes granted ahead "
	  "of the refill (rated directions only).",
	  SCOPE_LIMIT_DIR, NULL, NULL, NULL, limit_tokens },
	{ "iprelay_limit_connections", "gauge",
	  "Live relays on the limit and the limits nested in it.",
	  SCOPE_LIMIT, NULL, NULL, NULL, limit_connections },
	{ "iprelay_limit_refused_connections_total", "counter",
	  "Relays refused because the limit's cap was reached: by "
	  "max-conns (cap=\"conns\") or max-conns-per-source "
	  "(cap=\"per_source\").",
	  SCOPE_LIMIT, "cap", caps_kinds, NULL, limit_refused },
	{ "iprelay_limit_max_connections", "gauge",
	  "The limit's cap on live relays in its subtree (none: no sample).",
	  SCOPE_LIMIT, NULL, NULL, NULL, limit_max_conns },
	{ "iprelay_limit_max_connections_per_source", "gauge",
	  "The limit's cap on live relays in its subtree from one source "
	  "(an IPv4 address or an IPv6 /64; none: no sample).",
	  SCOPE_LIMIT, NULL, NULL, NULL, limit_max_conns_per_source },
	{ "iprelay_limit_global_share_bytes_per_second", "gauge",
	  "A global limit: the rate this host runs it at now, its leased "
	  "share or its offline policy's (+Inf: none).",
	  SCOPE_LIMIT_DIR, NULL, NULL, NULL, global_share },
	{ "iprelay_limit_global_state", "gauge",
	  "A global limit: 1 for the state this host runs it in.",
	  SCOPE_LIMIT, "state", global_states, NULL, global_state },
	{ "iprelay_limit_global_lease_seconds", "gauge",
	  "A global limit: time left of this host's lease (or hold).",
	  SCOPE_LIMIT, NULL, NULL, NULL, global_lease_left },
	{ "iprelay_limit_global_hosts", "gauge",
	  "A global limit: hosts holding a lease at this host's last one.",
	  SCOPE_LIMIT, NULL, NULL, NULL, global_hosts },
	{ "iprelay_limit_global_floor_hosts", "gauge",
	  "A global limit: the hosts its floor divides the global rate by "
	  "(set --hosts, or as Redis counted them; 0: none known).",
	  SCOPE_LIMIT, NULL, NULL, NULL, global_floor_hosts_value },
	{ "iprelay_limits", "gauge", "Limits in the store.",
	  SCOPE_PROCESS, NULL, NULL, NULL, env_limits },
	{ "iprelay_connections", "gauge",
	  "Live relays in the store, shaped or not.",
	  SCOPE_PROCESS, NULL, NULL, NULL, env_conns },
	{ "iprelay_refiller_active", "gauge",
	  "1 while this shaperd is the state dir's refiller.",
	  SCOPE_PROCESS, NULL, NULL, NULL, process_active },
	{ "iprelay_refiller_ticks_total", "counter",
	  "Refiller ticks run by this shaperd.",
	  SCOPE_PROCESS, NULL, NULL, NULL, process_ticks },
	{ "iprelay_refiller_tick_errors_total", "counter",
	  "Refiller ticks that failed (shaperd logs why).",
	  SCOPE_PROCESS, NULL, NULL, NULL, process_tick_errors },
	{ "iprelay_refiller_reaped_relays_total", "counter",
	  "Records of dead relays removed by this shaperd.",
	  SCOPE_PROCESS, NULL, NULL, NULL, process_reaped },
	{ "iprelay_store_up", "gauge",
	  "1 when this scrape could read the store; 0: the limit and store "
	  "figures are missing.",
	  SCOPE_PROCESS, NULL, NULL, NULL, store_up },
	{ "iprelay_store_file_size_bytes", "gauge",
	  "Size of the state file.",
	  SCOPE_PROCESS, NULL, NULL, NULL, env_file },
	{ "iprelay_store_map_size_bytes", "gauge",
	  "Most the state file may grow to (the LMDB map).",
	  SCOPE_PROCESS, NULL, NULL, NULL, env_map },
	{ "iprelay_store_used_bytes", "gauge",
	  "State file pages up to the last one in use.",
	  SCOPE_PROCESS, NULL, NULL, NULL, env_used },
	{ "iprelay_store_free_bytes", "gauge",
	  "Pages on the store's free list, to be reused (divide by the "
	  "page size for pages).",
	  SCOPE_PROCESS, NULL, NULL, NULL, env_free },
	{ "iprelay_store_page_size_bytes", "gauge",
	  "Page size of the store.",
	  SCOPE_PROCESS, NULL, NULL, NULL, env_page },
	{ "iprelay_store_transactions_total", "counter",
	  "Write transactions committed on the store (draws and changes).",
	  SCOPE_PROCESS, NULL, NULL, NULL, env_txns },
	{ "iprelay_store_readers", "gauge",
	  "Processes inside a read transaction on the store now.",
	  SCOPE_PROCESS, NULL, NULL, NULL, env_readers },
	{ "iprelay_store_reader_lag_transactions", "gauge",
	  "Write transactions since the snapshot of the oldest reader: its "
	  "pages cannot be reused while it reads.",
	  SCOPE_PROCESS, NULL, NULL, NULL, env_reader_lag },
	{ "process_start_time_seconds", "gauge",
	  "Start time of the process since unix epoch in seconds.",
	  SCOPE_PROCESS, NULL, NULL, NULL, process_start },
};

static void
render_sample(struct text *text, const struct family *family,
    const struct row *row)
{
	char value[VALUE_MAX];

	if (family->value(row, value))
		return;
	text_put(text, family->name);
	if (row->limit) {
		text_put(text, "{limit=\"");
		text_label_value(text, row->limit->name);
		text_put(text, "\"");
		if (family->scope == SCOPE_LIMIT_DIR)
			text_put(text, row->dir == DIR_UP ?
			    ",direction=\"up\"" : ",direction=\"down\"");
	}
	if (family->label) {
		text_put(text, row->limit ? "," : "{");
		text_put(text, family->label);
		text_put(text, "=\"");
		text_label_value(text, family->label_values ?
		    family->label_values[row->variant] :
		    family->label_of(row));
		text_put(text, "\"");
	}
	if (row->limit || family->label)
		text_put(text, "}");
	text_put(text, " ");
	text_put(text, value);
	text_put(text, "\n");
}

static void
render_family(struct text *text, const struct family *family,
    const struct snapshot *snap)
{
	struct row row = { snap, NULL, 0, 0 };
	size_t i;
	int dirs = family->scope == SCOPE_LIMIT_DIR ? 2 : 1;
	int variants = 1;

	if (family->label_values)
		for (variants = 0; family->label_values[variants]; variants++)
			;
	text_printf(text, "# HELP %s %s\n# TYPE %s %s\n", family->name,
	    family->help, family->name, family->type);
	if (family->scope == SCOPE_PROCESS) {
		for (row.variant = 0; row.variant < variants; row.variant++)
			render_sample(text, family, &row);
		return;
	}
	for (i = 0; i < snap->nlimits; i++) {
		row.limit = &snap->limits[i];
		for (row.dir = 0; row.dir < dirs; row.dir++)
			for (row.variant = 0; row.variant < variants;
			    row.variant++)
				render_sample(text, family, &row);
	}
}

int
metrics_render(struct store *store, const struct metrics_process *process,
    char **out, size_t *len)
{
	struct snapshot snap;
	struct text text = { NULL, 0, 0, 0 };
	size_t i;

	snapshot_take(&snap, store, process);
	if (snap.failed) {
		free(snap.limits);
		return ENOMEM;
	}
	for (i = 0; i < sizeof(families) / sizeof(families[0]); i++)
		render_family(&text, &families[i], &snap);
	free(snap.limits);
	if (text.failed) {
		free(text.data);
		return ENOMEM;
	}
	*out = text.data;
	*len = text.len;
	return 0;
}
