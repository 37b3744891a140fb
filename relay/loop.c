/*
 * iprelay's poll loop: stdin, the listeners, a signalfd and a 100 ms timer,
 * so nothing blocks the prompt; the signals it handles; and the glue to the
 * embedded refiller (common/refiller.c), which refills the buckets on the
 * timer while no shaperd does.  open_store() opens the store and the
 * refiller in the process that uses them, after any fork.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "iprelay.h"

static void
on_tick(void)
{
	unsigned reaped;
	size_t index;
	int rc;

	relay.ticks++;
	for (index = 0; index < relay.nforwarders; index++)
		relay.forwarders[index].paused = 0;
	if (refiller_arbitrate(relay.refiller)) {
		rc = refiller_tick(relay.refiller, &reaped);
		if (rc && relay.ticks % 100 == 0)
			say(LOG_WARNING, "** refiller: %s", store_strerror(rc));
	}
	children_open_due();
	if (relay.ticks % 10 == 0)
		sample_children();
}

static void
on_signal(void)
{
	struct signalfd_siginfo info;

	while (read(relay.signal_fd, &info, sizeof(info)) == sizeof(info)) {
		switch (info.ssi_signo) {
		case SIGCHLD:
			reap_children();
			break;
		case SIGINT:
			begin_stop("Caught sig (INT)");
			break;
		case SIGTERM:
			begin_stop("Caught sig (TERM)");
			break;
		case SIGHUP:
			begin_stop("Caught sig (HUP)");
			break;
		case SIGCONT:
			/* Back from ctrl-z: the shell restored its own modes. */
			if (relay.editor.active && editor_raw() == 0)
				editor_redraw();
			break;
		case SIGWINCH:
			if (relay.editor.active && relay.prompt &&
			    !relay.stopping)
				editor_resized();
			break;
		default:
			if ((int)info.ssi_signo == SIGRTMIN)
				resolve_done();
			break;
		}
	}
}

int
run_loop(void)
{
	struct pollfd fds[3 + FORWARDERS_MAX * ADDRS_MAX];
	struct forwarder *owners[3 + FORWARDERS_MAX * ADDRS_MAX];
	uint64_t expirations;
	size_t nfds, index, slot;
	int ready;

	for (;;) {
		if (relay.stopping) {
			if (relay.nchildren == 0)
				return 0;
			if (monotonic_ns() >= relay.stop_deadline_ns) {
				/* Past the grace: a relay that did not end
				 * on TERM is killed and its record dropped. */
				for (index = 0; index < relay.nchildren; index++)
					kill(relay.children[index].pid, SIGKILL);
				relay.stop_deadline_ns = UINT64_MAX;
			}
		}
		nfds = 0;
		fds[nfds].fd = relay.signal_fd;
		fds[nfds++].events = POLLIN;
		fds[nfds].fd = relay.timer_fd;
		fds[nfds++].events = POLLIN;
		/* The relays' log lines (relay_log_read): always slot 2. */
		if (relay.log_fds[0] >= 0) {
			fds[nfds].fd = relay.log_fds[0];
			fds[nfds++].events = POLLIN;
		}
		if (relay.prompt && !relay.stopping) {
			fds[nfds].fd = STDIN_FILENO;
			fds[nfds++].events = POLLIN;
		}
		if (!relay.stopping) {
			for (index = 0; index < relay.nforwarders; index++) {
				struct forwarder *forwarder = &relay.forwarders[index];

				if (forwarder->paused)
					continue;
				for (slot = 0; slot < forwarder->nlisten; slot++) {
					owners[nfds] = forwarder;
					fds[nfds].fd = forwarder->listen_fds[slot];
					fds[nfds++].events = POLLIN;
				}
			}
		}
		ready = poll(fds, nfds, spare_wait_ms());
		if (ready < 0) {
			if (errno == EINTR)
				continue;
			log_fatal(EXIT_SYSTEM, "unable to poll: %s",
			    strerror(errno));
		}
		spares_due();
		if (fds[0].revents)
			on_signal();
		if (fds[1].revents) {
			if (read(relay.timer_fd, &expirations,
			    sizeof(expirations)) > 0)
				on_tick();
		}
		/* A forwarder deleted by a command moves others in the
		 * array: take no listener events after one. */
		if (relay.log_fds[0] >= 0 && fds[2].revents)
			relay_log_read();
		for (index = relay.log_fds[0] >= 0 ? 3 : 2; index < nfds;
		    index++) {
			if (!fds[index].revents)
				continue;
			if (fds[index].fd == STDIN_FILENO) {
				read_input();
				break;
			}
			if (!relay.stopping)
				accept_on(owners[index], fds[index].fd);
		}
	}
}

void
setup_signals(void)
{
	struct itimerspec every = {
		.it_interval = { 0, (long)REFILLER_TICK_NS },
		.it_value = { 0, (long)REFILLER_TICK_NS },
	};
	sigset_t mask;

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGRTMIN);	/* a set forwarder name resolved */
	sigaddset(&mask, SIGCONT);	/* still continues the process */
	sigaddset(&mask, SIGWINCH);	/* the line editor's width */
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
		log_fatal(EXIT_SYSTEM, "unable to block signals: %s",
		    strerror(errno));
	relay.signal_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (relay.signal_fd < 0)
		log_fatal(EXIT_SYSTEM, "unable to create a signalfd: %s",
		    strerror(errno));
	relay.timer_fd = timerfd_create(CLOCK_MONOTONIC,
	    TFD_NONBLOCK | TFD_CLOEXEC);
	if (relay.timer_fd < 0 ||
	    timerfd_settime(relay.timer_fd, 0, &every, NULL) < 0)
		log_fatal(EXIT_SYSTEM, "unable to create a timer: %s",
		    strerror(errno));
}

/* The store and the refiller: opened in the process that uses them,
 * after any fork. */
void
open_store(uint64_t bandwidth_Bps)
{
	char resolved[PATH_MAX], why[512];
	int rc;

	rc = store_open(&relay.store, relay.state_dir, 0);
	if (rc)
		log_fatal(store_exit_code(rc),
		    "unable to open the store %s: %s", store_failed_path(),
		    store_strerror(rc));
	/* Relays get an absolute path: a daemon runs from /. */
	if (realpath(relay.state_dir, resolved))
		snprintf(relay.state_dir, sizeof(relay.state_dir), "%s",
		    resolved);
	limits_choose(relay.name_option, relay.first_port);
	rc = limit_set_rate(relay.limit_name, NULL, bandwidth_Bps);
	if (rc)
		log_fatal(rc == EINVAL ? EXIT_USAGE : EXIT_SYSTEM,
		    "unable to set limit %s: %s", relay.limit_name,
		    store_strerror(rc));
	rc = refiller_create(&relay.refiller, relay.store, relay.state_dir,
	    REFILLER_EMBEDDED);
	if (rc)
		log_fatal(rc == STATEDIR_EREFUSED ? EXIT_USAGE : EXIT_SYSTEM,
		    "unable to open the refiller locks in %s: %s",
		    relay.state_dir, store_strerror(rc));
	if (forwarders_listen(why, sizeof(why)) < 0)
		log_fatal(EXIT_SYSTEM, "%s", why);
}
