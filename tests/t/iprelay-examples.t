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

# "both together are not going to use more than 3072 bytes/second; the
# HTTP forwarder delegates up to 1024 bytes/second to the POP3 forwarder
# if necessary": with both busy, POP3 1024 and HTTP the other 2048.  The
# 3072 instance sees the 1024 one only through the socket buffers between
# them; before iprelay-conn sized those from its rate, 512 B/s more than
# POP3 could take parked in them for minutes, and HTTP got 1536.  Two more
# pairs of instances run at the same time (they are slow): the roles
# swapped (HTTP busy first, POP3 joins) and four HTTP downloads beside
# POP3, where the fair share (614) is under POP3's own limit.  Each
# second download starts 4 s in; rates are taken 8 to 20 s after it.
CONTEND="python3 $IPRELAY_TOP/tests/tools/contend.py --shell --duration 24 --window 12 24"
P2_POP=$(free_port)
P2_MID=$(free_port)
P2_HTTP=$(free_port)
P3_POP=$(free_port)
P3_MID=$(free_port)
P3_HTTP=$(free_port)
start_daemon "$TEST_TMP/swap-a.pid" -d -b 1024 "$P2_POP:localhost:$P2_MID"
start_daemon "$TEST_TMP/swap-b.pid" -d -b 3072 "$P2_MID:127.0.0.1:$POP_ORIGIN" \
    "$P2_HTTP:127.0.0.1:$HTTP_ORIGIN"
start_daemon "$TEST_TMP/four-a.pid" -d -b 1024 "$P3_POP:localhost:$P3_MID"
start_daemon "$TEST_TMP/four-b.pid" -d -b 3072 "$P3_MID:127.0.0.1:$POP_ORIGIN" \
    "$P3_HTTP:127.0.0.1:$HTTP_ORIGIN"
# And the same on one instance, where the slow one is a client: one
# reading 1024 B/s through a 2 KiB receive buffer beside one reading as
# fast as it can, on 3072 B/s: the fast one gets 2048 once that buffer is
# full.  Before, the relay for the slow one kept drawing its half and
# parked it in its own socket's unsent queue (small writes are appended to
# it whatever TCP_NOTSENT_LOWAT says): the fast one got 1536.
start_origin bulk --send 100000000
P4=$(free_port)
start_daemon "$TEST_TMP/slow.pid" -d -b 3072 "$P4:127.0.0.1:$ORIGIN_PORT"
for port in "$P2_POP" "$P2_HTTP" "$P3_POP" "$P3_HTTP" "$P4"; do
	wait_listen "$port"
done
$CONTEND "127.0.0.1:$P2_POP@4" "127.0.0.1:$P2_HTTP" >"$TEST_TMP/swap.sh" &
swap=$!
$CONTEND "127.0.0.1:$P3_POP" "127.0.0.1:$P3_HTTP@4" "127.0.0.1:$P3_HTTP@4" \
    "127.0.0.1:$P3_HTTP@4" "127.0.0.1:$P3_HTTP@4" >"$TEST_TMP/four.sh" &
four=$!
$CONTEND "127.0.0.1:$P4/1024:2048" "127.0.0.1:$P4@4" >"$TEST_TMP/slow.sh" &
slow=$!
spawned_pids="$spawned_pids $swap $four $slow"
$CONTEND "127.0.0.1:$P10110" "127.0.0.1:$P8080@4" >"$TEST_TMP/manual.sh"
wait "$swap" "$four" "$slow"

# Under the sanitizers a starved process reads late: 5% under (never
# over) is allowed there, 3% in the plain build; the aim (2%) is held in
# bench/ (make bench, "Chained instances").
under=3
[ -n "$SANITIZED" ] && under=5
# check_chain NAME FILE: POP3 (rates0_0) and HTTP (the others) of a run.
check_chain() {
	unset rates0_0 rates0_1 rates0_2 rates0_3 rates0_4
	. "$2"
	[ -n "${rates0_0:-}" ] || { fail "$1: measured"; return; }
	pop=$rates0_0
	http=$((rates0_1 + ${rates0_2:-0} + ${rates0_3:-0} + ${rates0_4:-0}))
	ok "$1: POP3 never over 1024 B/s: $pop" test "$pop" -le 1044
	within_over_under "$((pop + http))" 3072 2 "$under" \
	    "$1: POP3 and HTTP together use 3072 B/s"
}
# http_share NAME: HTTP gets 2048 B/s, and may take what POP3 left of its
# 1024 (the manual: HTTP "delegates up to 1024"): at most 3072 less what
# POP3 got, plus the total's own tolerance (2% of 3072: the limit's burst
# falls in the window), not 2% of 2048 (a CI run failed on HTTP 2090,
# 2.05% over 2048; here POP3 1020, HTTP 2080, 3100 in all passed).
http_share() {
	local most=$((3072 - pop > 2048 ? 3072 - pop : 2048))
	if awk -v g="$http" -v m="$most" -v u="$under" 'BEGIN {
		exit !(g <= m + 3072 * 0.02 && g >= 2048 * (1 - u / 100)) }'; then
		pass "$1: HTTP gets 2048 B/s ($http, POP3 $pop: 2048 - $under% to $most + 61)"
	else
		fail "$1: HTTP gets 2048 B/s"
		diag "got $http with POP3 at $pop, want 2048 - $under% to $most + 61 (2% of 3072)"
	fi
}
check_chain "manual, POP3 first" "$TEST_TMP/manual.sh"
http_share "manual, POP3 first"
check_chain "roles swapped, HTTP busy first" "$TEST_TMP/swap.sh"
http_share "roles swapped"
check_chain "four HTTP downloads" "$TEST_TMP/four.sh"
for i in 1 2 3 4; do
	eval "got=\$rates0_$i"
	within "$got" 614 10 "four HTTP downloads: download $i gets its share"
done
unset rates0_0 rates0_1
. "$TEST_TMP/slow.sh"
within_over_under "$rates0_0" 1024 2 "$under" "a slow client reads its 1024 B/s"
within_over_under "$rates0_1" 2048 2 "$under" \
    "the fast client beside it gets the 2048 B/s the slow one cannot take"
for pidfile in swap-a swap-b four-a four-b slow; do
	stop_pid "$(cat "$TEST_TMP/$pidfile.pid")"
done
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
