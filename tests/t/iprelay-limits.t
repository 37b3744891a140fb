#!/bin/bash
# The limits an iprelay makes for itself go when it ends (a forwarder's own
# limit when the forwarder is deleted, once its connections have ended);
# a limit named with -n stays; a second instance never takes over a
# running one's port-derived limit (issue 15, issue 12 item 5).
. "$IPRELAY_TOP/tests/lib.sh"

IPRELAY=$IPRELAY_BIN/iprelay
LIMIT=$IPRELAY_BIN/iprelay-limit
start_origin origin --send 100000000

# A piped session through a fifo: commands in, stdout and stderr to files.
piped_start() {	# TAG ARGS...
	tag=$1
	shift
	mkfifo "$TEST_TMP/$tag.in"
	eval "exec {fd_$tag}<>\"\$TEST_TMP/\$tag.in\""
	"$IPRELAY" "$@" <"$TEST_TMP/$tag.in" >"$TEST_TMP/$tag.out" 2>"$TEST_TMP/$tag.err" &
	eval "pid_$tag=\$!"
	spawned_pids="$spawned_pids $!"
}
send() { eval "printf '%s\n' \"\$2\" >&\$fd_$1"; }
wait_for() {	# FILE REGEX [SECONDS]
	for _ in $(seq $((${3:-10} * 20))); do
		grep -qE -- "$2" "$1" 2>/dev/null && return 0
		sleep 0.05
	done
	diag "no '$2' in $1:"
	tail -n 8 "$1" | sed 's/^/#   | /'
	return 1
}
exists() { "$LIMIT" get "$1" >/dev/null 2>&1; }
gone_within() {	# NAME SECONDS
	for _ in $(seq $(($2 * 20))); do
		exists "$1" || return 0
		sleep 0.05
	done
	return 1
}

# 1. The port-derived limit, and a forwarder's own, go at the end.
PA=$(free_port)
PF=$(free_port)
piped_start a -b 256K "$PA:127.0.0.1:$ORIGIN_PORT"
wait_for "$TEST_TMP/a.err" 'forwarder 99 set\.'
ok "iprelay-$PA exists while it runs" exists "iprelay-$PA"
send a "set forwarder 1 $PF:127.0.0.1:$ORIGIN_PORT"
send a "set limit 1 5000"
wait_for "$TEST_TMP/a.out" "limit iprelay-$PA\\.1 set to 5000" >/dev/null
ok "iprelay-$PA.1 made by set limit" exists "iprelay-$PA.1"

# A forwarder deleted while a connection runs: its limit stays (the
# connection stays shaped) until that connection ends, then goes.
$PEER client --connect "127.0.0.1:$PF" --duration 3 >"$TEST_TMP/f.json" &
client=$!
spawned_pids="$spawned_pids $client"
wait_for "$TEST_TMP/a.err" 'Received connect' >/dev/null
sleep 0.5
send a "set forwarder 1"
wait_for "$TEST_TMP/a.out" 'forwarder 1 deleted\.' >/dev/null
sleep 0.5
ok "the deleted forwarder's limit stays while its connection runs" exists "iprelay-$PA.1"
wait "$client"
ok "and goes when that connection ends" gone_within "iprelay-$PA.1" 5
recv=$(json "$(cat "$TEST_TMP/f.json")" recv)
within_over_under "$(awk -v b="$recv" 'BEGIN { printf "%.0f", b / 3 }')" 5000 25 60 \
    "the connection stayed shaped at 5000 B/s after its forwarder went"

# An idle forwarder's limit goes at once with it.
send a "set forwarder 2 $(free_port):127.0.0.1:$ORIGIN_PORT"
send a "set limit 2 7000"
wait_for "$TEST_TMP/a.out" "limit iprelay-$PA\\.2 set to 7000" >/dev/null
send a "set forwarder 2"
ok "an idle forwarder's own limit goes with it" gone_within "iprelay-$PA.2" 3

# 2. A second instance on the same port while A runs (A's forwarder 99
# deleted, so the port is free): B gets a name of its own, A keeps its
# bandwidth.
send a "set forwarder 99"
wait_for "$TEST_TMP/a.out" 'forwarder 99 deleted\.' >/dev/null
piped_start b -b 1000 "$PA:127.0.0.1:$ORIGIN_PORT"
ok "B starts" wait_for "$TEST_TMP/b.err" 'forwarder 99 set\.'
ok "B says whose limit it did not take" wait_for "$TEST_TMP/b.err" \
    "limit iprelay-$PA is another iprelay's \\(pid $pid_a\\): this one's limit is iprelay-$PA-2"
send a "show bandwidth"
ok "A's bandwidth is still 262144" wait_for "$TEST_TMP/a.out" '^(> )*bandwidth	262144$'
send b "show stats"
ok "B shapes on iprelay-$PA-2" wait_for "$TEST_TMP/b.out" "Limit: iprelay-$PA-2\$"
like "$("$LIMIT" get "iprelay-$PA-2" 2>&1)" 'up: +1000' "iprelay-$PA-2 holds B's 1000"
# -n naming a limit another instance made for itself: refused.
err=$("$IPRELAY" -n "iprelay-$PA" "$(free_port):127.0.0.1:$ORIGIN_PORT" </dev/null 2>&1 >/dev/null)
is "$?" 100 "-n naming A's own limit exits 100"
like "$err" "unable to use limit iprelay-$PA: another iprelay \\(pid $pid_a\\) made it for itself" \
    "and says whose it is"

send b quit
wait "$pid_b"
ok "B's limit goes when B ends" gone_within "iprelay-$PA-2" 2
ok "A's limit is untouched by B's end" exists "iprelay-$PA"
send a quit
wait "$pid_a"
is "$?" 0 "A quits 0"
ok "A's port-derived limit is gone after it ends" gone_within "iprelay-$PA" 2
ok "no limit with A's port is left" sh -c "! '$LIMIT' list | grep -q 'iprelay-$PA'"

# 3. Without a proxyspec: no iprelay-PID left behind.
piped_start c
wait_for "$TEST_TMP/c.err" 'iprelay Version' >/dev/null
ok "iprelay-PID exists while it runs" exists "iprelay-$pid_c"
send c quit
wait "$pid_c"
ok "iprelay-PID is gone after it ends" gone_within "iprelay-$pid_c" 2

# 4. A limit named with -n stays, and two instances given the same -n
# share it on purpose.
P1=$(free_port)
P2=$(free_port)
piped_start d -n shared-web -b 3000 "$P1:127.0.0.1:$ORIGIN_PORT"
wait_for "$TEST_TMP/d.err" 'forwarder 99 set\.' >/dev/null
piped_start e -n shared-web -b 3000 "$P2:127.0.0.1:$ORIGIN_PORT"
ok "a second instance shares a -n limit" wait_for "$TEST_TMP/e.err" 'forwarder 99 set\.'
send d quit
send e quit
wait "$pid_d" "$pid_e"
ok "a -n limit stays after both end" exists shared-web
ok "the owners dir is left empty" sh -c "[ -z \"\$(ls -A '$IPRELAY_STATE_DIR/owners')\" ]"

done_testing
