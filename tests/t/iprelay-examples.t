#!/bin/bash
# The three EXAMPLES of iprelay(1), literally, with local stand-ins for the
# remote hosts: a plain daemonised forwarder; `-d -b 512` held to 512 B/s;
# the 1024 B/s daemon chained into a 3072 B/s interactive instance with a
# second forwarder.  Then the same nesting as a child limit (`set limit`).
. "$IPRELAY_TOP/tests/lib.sh"
. "$IPRELAY_TOP/tests/tools/pty.sh"

# start_daemon PIDFILE ARGS...: iprelay -d, its pid remembered for cleanup.
start_daemon() {
	pidfile=$1
	shift
	"$IPRELAY_BIN/iprelay" -p "$pidfile" "$@" 2>>"$TEST_TMP/daemon.err"
	daemon_status=$?
	daemon_pid=$(cat "$pidfile" 2>/dev/null)
	[ -n "$daemon_pid" ] && spawned_pids="$spawned_pids $daemon_pid"
	return $daemon_status
}

# --- 1. A simple forwarder: iprelay -d 110:<new machine> --------------
start_origin pop --send 300000
P110=$(free_port)
ok "iprelay -d $P110:127.0.0.1:$ORIGIN_PORT returns at once, status 0" \
    start_daemon "$TEST_TMP/one.pid" -d "$P110:127.0.0.1:$ORIGIN_PORT"
like "$daemon_pid" '^[0-9]+$' "the daemon wrote its pid file"
ok "the daemon listens" wait_port "$P110" 5
is "$(ps -o sid= -p "$daemon_pid" | tr -d ' ')" "$daemon_pid" \
    "the daemon leads its own session (setsid)"
is "$(ps -o tty= -p "$daemon_pid" | tr -d ' ')" "?" "the daemon has no terminal"
out=$($PEER client --connect "127.0.0.1:$P110" --send 200000)
wait_file "$ORIGIN_REPORT" 10
report=$(tail -n 1 "$ORIGIN_REPORT")
is "$(json "$out" recv)" 300000 "all of the origin's bytes arrive"
is "$(json "$out" recv_sha)" "$(json "$report" sent_sha)" "unchanged (SHA-256)"
is "$(json "$report" recv)" 200000 "all of the client's bytes arrive upstream"
is "$(json "$report" recv_sha)" "$(json "$out" sent_sha)" "unchanged upstream"
like "$(cat "$IPRELAY_LOG_FILE")" 'iprelay\[[0-9]+\]: started' \
    "the daemon logs (here to IPRELAY_LOG_FILE) instead of losing it"
stop_pid "$daemon_pid"
ok "TERM ends the daemon and its pid file" test ! -e "$TEST_TMP/one.pid"

# --- 2. A bandwidth-shaping forwarder: iprelay -d -b 512 10080:... -----
start_origin web --send 100000
P10080=$(free_port)
ok "iprelay -d -b 512 $P10080:127.0.0.1:$ORIGIN_PORT" \
    start_daemon "$TEST_TMP/two.pid" -d -b 512 "$P10080:127.0.0.1:$ORIGIN_PORT"
wait_port "$P10080" 5
out=$($PEER client --connect "127.0.0.1:$P10080" --duration 11.5)
rate=$(steady_rate "$out" 1 11)
within "$rate" 512 3 "held to 512 B/s over 10 s"
# "two simultaneous connections are going to get 256 bytes/second each"
$PEER client --connect "127.0.0.1:$P10080" --duration 11.5 >"$TEST_TMP/a.json" &
a=$!
$PEER client --connect "127.0.0.1:$P10080" --duration 11.5 >"$TEST_TMP/b.json" &
b=$!
spawned_pids="$spawned_pids $a $b"
wait "$a" "$b"
rate_a=$(steady_rate "$(cat "$TEST_TMP/a.json")" 1.5 11)
rate_b=$(steady_rate "$(cat "$TEST_TMP/b.json")" 1.5 11)
within "$((rate_a + rate_b))" 512 5 "two connections share 512 B/s"
within "$rate_a" 256 25 "the first gets about 256 B/s"
within "$rate_b" 256 25 "the second gets about 256 B/s"
stop_pid "$daemon_pid"

# --- 3. Customized sharing: 1024 inside 3072 by chaining -------------
start_origin pop3 --send 1000000
POP_ORIGIN=$ORIGIN_PORT
start_origin http --send 1000000
HTTP_ORIGIN=$ORIGIN_PORT
P10110=$(free_port)
P10001=$(free_port)
P8080=$(free_port)
ok "iprelay -d -b 1024 $P10110:localhost:$P10001" \
    start_daemon "$TEST_TMP/three.pid" -d -b 1024 "$P10110:localhost:$P10001"
pty_start "$IPRELAY_BIN/iprelay" -b 3072 "$P10001:127.0.0.1:$POP_ORIGIN"
ok "iprelay -b 3072 $P10001:127.0.0.1:$POP_ORIGIN starts" pty_expect 'forwarder 99 set\.'
pty_expect '^> $' >/dev/null
pty_send "set forwarder 1 $P8080:127.0.0.1:$HTTP_ORIGIN"
ok "> set forwarder 1 $P8080:127.0.0.1:$HTTP_ORIGIN" pty_expect 'forwarder 1 set\.'
wait_port "$P8080" 5
wait_port "$P10110" 5

# measure_pair POP_PORT HTTP_PORT: both at once; sets pop_rate, http_rate.
measure_pair() {
	$PEER client --connect "127.0.0.1:$1" --duration 11.5 >"$TEST_TMP/pop.json" &
	pop=$!
	$PEER client --connect "127.0.0.1:$2" --duration 11.5 >"$TEST_TMP/http.json" &
	http=$!
	spawned_pids="$spawned_pids $pop $http"
	wait "$pop" "$http"
	pop_rate=$(steady_rate "$(cat "$TEST_TMP/pop.json")" 1.5 11)
	http_rate=$(steady_rate "$(cat "$TEST_TMP/http.json")" 1.5 11)
}
measure_pair "$P10110" "$P8080"
within "$pop_rate" 1024 5 "POP3 through the chain is held to 1024 B/s"
# "both together are not going to use more than 3072 bytes/second": a
# ceiling.  The 3072 instance cannot see the 1024 one downstream except
# through socket buffers, so for the first minutes it gives POP3 a full
# half and HTTP gets 1536 rather than 2048 (see iprelay(1), BUGS); the
# child-limit form below splits exactly.
total=$((pop_rate + http_rate))
ok "POP3 and HTTP together stay within 3072 B/s (+3%): $total" \
    test "$total" -le 3164
ok "HTTP gets at least half of 3072 B/s: $http_rate" test "$http_rate" -ge 1459
pty_send "quit"
pty_wait 10
pty_stop
stop_pid "$daemon_pid"

# --- 3b. The same nesting, directly: a child limit per forwarder -------
P10001=$(free_port)
P8080=$(free_port)
pty_start "$IPRELAY_BIN/iprelay" -b 3072 "$P10001:127.0.0.1:$POP_ORIGIN"
pty_expect '^> $' >/dev/null
pty_send "set forwarder 1 $P8080:127.0.0.1:$HTTP_ORIGIN"
pty_expect 'forwarder 1 set\.' >/dev/null
pty_send "set limit 99 1024"
ok "> set limit 99 1024" pty_expect "forwarder 99 limit iprelay-$P10001\\.99 set to 1024"
limit_out=$("$IPRELAY_BIN/iprelay-limit" get "iprelay-$P10001.99" 2>&1)
like "$limit_out" "iprelay-$P10001" "the child limit is in the store, nested in the instance's"
pty_send "show all"
ok "show all names the forwarder's own limit" \
    pty_expect "forwarder 99 $P10001:127\\.0\\.0\\.1:$POP_ORIGIN \\(limit iprelay-$P10001\\.99: 1024\\)"
wait_port "$P8080" 5
measure_pair "$P10001" "$P8080"
within "$pop_rate" 1024 5 "forwarder 99 is held to its own 1024 B/s"
within "$((pop_rate + http_rate))" 3072 5 "both together are held to 3072 B/s"
within "$http_rate" 2048 5 "forwarder 1 gets the remaining 2048 B/s"
pty_send "quit"
pty_wait 10

done_testing
