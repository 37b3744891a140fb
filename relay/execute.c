/*
 * What the prompt's commands do to this instance.  command_parse()
 * (relay/command.c) turns a line into a checked command; run_command()
 * here carries it out: set forwarder, set limit, set VARIABLE, delete,
 * kill, quit, and the instance's limits in the store they change.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "iprelay.h"

/* Set a limit's rate in both directions, keeping its burst (and its
 * parent, unless one is given) as iprelay-limit may have set them. */
int
limit_set_rate(const char *name, const char *parent, uint64_t rate_Bps)
{
	struct limit_cfg cfg = { .rate_Bps = { rate_Bps, rate_Bps } };
	unsigned fields = LIMIT_FIELD_UP | LIMIT_FIELD_DOWN;

	if (parent) {
		snprintf(cfg.parent, sizeof(cfg.parent), "%s", parent);
		fields |= LIMIT_FIELD_PARENT;
	}
	return store_limit_update(relay.store, name, &cfg, fields, NULL);
}

static void
do_set_forwarder(const struct command *command)
{
	char why[512];
	int rc;

	if (!address_valid(command->spec.remote.host)) {
		if (relay.resolving.active) {
			out("  Still resolving for forwarder %d; forwarder %d not "
			    "set, try again.\n", relay.resolving.number,
			    command->forwarder);
			return;
		}
		rc = resolve_start(command->forwarder, &command->spec);
		if (rc) {
			out("  forwarder %d not set: unable to resolve %s: %s\n",
			    command->forwarder, command->spec.remote.host,
			    gai_strerror(rc));
			return;
		}
		out("  Resolving address (%s).....\n",
		    command->spec.remote.host);
		return;
	}
	if (forwarder_set(command->forwarder, &command->spec, why,
	    sizeof(why)) < 0) {
		out("  forwarder %d not set: %s\n", command->forwarder, why);
		return;
	}
	out("  forwarder %d set.\n", command->forwarder);
}

static void
do_set_limit(const struct command *command)
{
	struct forwarder *forwarder = forwarder_find(command->forwarder);
	char name[LIMIT_NAME_MAX + 8], why[PATH_MAX + 128];
	int rc;

	if (forwarder == NULL) {
		out("  No such forwarder: %s\n", command->word);
		return;
	}
	forwarder_limit_name(command->forwarder, name, sizeof(name));
	if (!limit_name_valid(name)) {
		out("  Limit name too long: %s\n", name);
		return;
	}
	if (forwarder_limit_take(forwarder, name, why, sizeof(why)) < 0) {
		out("  forwarder %d limit not set: %s\n", command->forwarder, why);
		return;
	}
	rc = limit_set_rate(name, relay.limit_name, command->value);
	if (rc) {
		out("  unable to set limit %s: %s\n", name, store_strerror(rc));
		return;
	}
	forwarder->has_own_limit = 1;
	forwarder->own_rate_Bps = command->value;
	if (command->value == 0)
		out("  forwarder %d limit %s: 0, no limit of its own: its new "
		    "connections are held only by bandwidth (limit %s).\n",
		    command->forwarder, name, relay.limit_name);
	else
		out("  forwarder %d limit %s set to %llu bytes / sec (new "
		    "connections).\n", command->forwarder, name,
		    (unsigned long long)command->value);
}

static void
do_set_variable(const struct command *command)
{
	int rc;

	switch (command->variable) {
	case VAR_LOCAL_ADDRS:
		snprintf(relay.set.local_addrs, sizeof(relay.set.local_addrs),
		    "%s", command->text);
		break;
	case VAR_FORCE_FROM:
		if (force_from_refused(command->text))
			return;
		/* An address literal: always fits. */
		snprintf(relay.set.force_from, sizeof(relay.set.force_from),
		    "%.*s", (int)sizeof(relay.set.force_from) - 1,
		    command->text);
		break;
	case VAR_DEBUG: relay.set.debug = command->value; break;
	case VAR_DUMP_TRAFF: relay.set.dump_traff = command->value; break;
	case VAR_IDLE_OUT: relay.set.idle_out_s = command->value; break;
	case VAR_DEAD_COUNT: relay.set.dead_count = command->value; break;
	case VAR_DATA_SIZE: relay.set.data_size_B = command->value; break;
	case VAR_BANDWIDTH:
		rc = limit_set_rate(relay.limit_name, NULL, command->value);
		if (rc) {
			out("  unable to set bandwidth: %s\n",
			    store_strerror(rc));
			return;
		}
		break;
	case VAR_ALLOW:
		memcpy(relay.set.allow, command->acl,
		    command->nacl * sizeof(command->acl[0]));
		relay.set.nallow = command->nacl;
		break;
	case VAR_DENY:
		memcpy(relay.set.deny, command->acl,
		    command->nacl * sizeof(command->acl[0]));
		relay.set.ndeny = command->nacl;
		break;
	case NVARIABLES:
		return;
	}
	show_variable(command->variable);
}

static int
kill_visit(void *ctx, const struct conn_info *info)
{
	uint32_t *wanted = ctx;
	struct child *child;

	if (info->id != *wanted)
		return 0;
	child = child_of(info);
	if (child == NULL)
		return 0;
	child->conn_id = info->id;
	kill(child->pid, SIGTERM);
	child->term_sent = 1;
	*wanted = 0;
	return 1;
}

static void
do_kill_conn(const struct command *command)
{
	uint32_t wanted = command->conn_id;

	(void)store_conn_foreach(relay.store, kill_visit, &wanted);
	if (wanted)
		out("  No such connection: %s\n", command->word);
	else
		out("  %s: closing.\n", command->word);
}

void
begin_stop(const char *why)
{
	if (relay.stopping)
		return;
	relay.stopping = 1;
	say(LOG_INFO, "%s, closing all connections.", why);
	relay.stop_deadline_ns = monotonic_ns() + STOP_GRACE_NS;
	kill_children();
}

void
run_command(const char *line)
{
	struct command command;

	command_parse(line, &command);
	switch (command.kind) {
	case CMD_EMPTY: break;
	case CMD_REPLY: out("%s", command.reply); break;
	case CMD_SHOW_ALL: show_all(); break;
	case CMD_SHOW_STATS: show_stats(); break;
	case CMD_SHOW_VERSION: print_version(); break;
	case CMD_SHOW_VARIABLE: show_variable(command.variable); break;
	case CMD_SET_VARIABLE:
		do_set_variable(&command);
		spares_let_go();
		break;
	case CMD_SET_FORWARDER: do_set_forwarder(&command); break;
	case CMD_DELETE_FORWARDER:
		if (forwarder_delete(command.forwarder) < 0)
			out("  No such forwarder: %d\n", command.forwarder);
		else
			out("  forwarder %d deleted.\n", command.forwarder);
		break;
	case CMD_SET_LIMIT:
		do_set_limit(&command);
		spares_let_go();
		break;
	case CMD_KILL_ALL:
		out("  Closing %zu connections.\n", live_connections());
		kill_children();
		break;
	case CMD_KILL_CONN: do_kill_conn(&command); break;
	case CMD_QUIT: begin_stop("Quit"); break;
	case NCOMMAND_KINDS: break;
	}
}
