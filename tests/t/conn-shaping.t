#!/bin/bash
# Shaping through real connections: iprelay-conn spawned per connection by
# systemd-socket-activate --accept (client socket on fd 3), an origin that
# sends as fast as it may, and receivers measuring rates on one clock.
# Windows start 0.5 s after the last connection's first byte; shaperd runs.
. "$IPRELAY_TOP/tests/lib.sh"

CONN=$IPRELAY_BIN/iprelay-conn
MULTI="python3 $IPRELAY_TOP/tests/tools/multirecv.py --shell"
# iprelay-limit once it is built, else the store-API stand-in (same words).
if [ -x "$IPRELAY_BIN/iprelay-limit" ]; then
	LIMIT_CMD="$IPRELAY_BIN/iprelay-limit -S $IPRELAY_STATE_DIR"
else
	LIMIT_CMD="$IPRELAY_BIN/tools/limitctl -S $IPRELAY_STATE_DIR"
fi

[ -x "$CONN" ] || { echo "1..0 # SKIP $CONN not built"; exit 0; }
mkdir -p "$IPRELAY_STATE_DIR"

limit_set() { $LIMIT_CMD set "$@"; }

# start_relay NAME IPRELAY-CONN-ARGS...: a socket-activated relay on a free
# port, sets RELAY_PORT.  Waits for the listener without connecting to it,
# so no probe connection draws from a limit.
relay_n=0
start_relay() {
	relay_n=$((relay_n + 1))
	RELAY_LOG=$TEST_TMP/$1.activate.log
	RELAY_PORT=$(free_port)
	spawn systemd-socket-activate --accept -l "127.0.0.1:$RELAY_PORT" \
	    -E IPRELAY_STATE_DIR -E IPRELAY_LOG_FILE \
	    "$CONN" -S "$IPRELAY_STATE_DIR" "${@:2}" 2>"$RELAY_LOG"
	for _ in $(seq 200); do
		grep -q '^Listening on' "$RELAY_LOG" 2>/dev/null && return 0
		sleep 0.05
	done
	echo "Bail out! relay $1 did not listen"
	exit 1
}

# A refiller ticking as in a real deployment (conn-http.t runs without one).
if [ -x "$IPRELAY_BIN/shaperd" ]; then
	spawn "$IPRELAY_BIN/shaperd" -S "$IPRELAY_STATE_DIR" 2>"$TEST_TMP/shaperd.err"
	wait_refiller "$IPRELAY_STATE_DIR" 10
fi

# An origin sending 64 MiB to each connection: more than any test takes.
start_origin origin --send $((64 << 20))
ORIGIN=127.0.0.1:$ORIGIN_PORT

# measure MULTIRECV-ARGS...: sets total, rates, rates0..., after_rate...
# (empty when the receiver failed, so the checks fail).
measure() {
	total= rates= rates0= after_rate= reaction= run_start= run_end=
	eval "$($MULTI "$@")"
}

# 1. One relay at 64 KiB/s over 4 s.
limit_set one 64K
start_relay one -l one "$ORIGIN"
measure --duration 5 --window 0.5 4.5 "127.0.0.1:$RELAY_PORT"
within "$total" 65536 3 "one relay at 64 KiB/s over 4 s"

# 2. Eight relays sharing one limit of 256 KiB/s.
limit_set shared 256K
start_relay shared -l shared "$ORIGIN"
addrs=$(for _ in 1 2 3 4 5 6 7 8; do printf '127.0.0.1:%s ' "$RELAY_PORT"; done)
measure --duration 5 --window 0.5 4.5 $addrs
within "$total" 262144 3 "eight relays share 256 KiB/s in total"
diag "each: $rates (fair share 32768)"
ok "each of eight relays gets at least 70% of its fair share" \
    awk -v r="$rates" 'BEGIN { n = split(r, a, " "); if (n != 8) exit 1
	for (i = 1; i <= n; i++) if (a[i] < 0.7 * 32768) exit 1 }'

# 3. A change from 64 KiB/s to 256 KiB/s mid-transfer.
limit_set change 64K
start_relay change -l change "$ORIGIN"
measure --duration 5 --window 0.5 1.9 --run-at 2 \
    --run "$LIMIT_CMD set change 256K" --after 2 "127.0.0.1:$RELAY_PORT"
within "$total" 65536 3 "before the change: 64 KiB/s"
within "$after_rate" 262144 3 "the 2 s after the change: 256 KiB/s"
diag "set ran $run_start..$run_end s;" \
    "rate changed $reaction s after set started (target < 0.1 s)"

# 4. A child of 32 KiB/s inside a parent of 96 KiB/s with a busy sibling.
limit_set parent 96K
limit_set child 32K --parent parent
limit_set sibling 0 --parent parent
start_relay child -l child "$ORIGIN"
child_port=$RELAY_PORT
start_relay sibling -l sibling "$ORIGIN"
measure --duration 5 --window 0.5 4.5 "127.0.0.1:$child_port" \
    "127.0.0.1:$RELAY_PORT"
within "$rates0" 32768 3 "child held at 32 KiB/s"
within "$total" 98304 3 "child + busy sibling held at 96 KiB/s"

# 5. Up and down limited separately, both moving at once.
limit_set updown 96K --up 32K --down 96K
# Its own origin, so its report holds this one connection only.
start_origin updown-origin --send $((64 << 20))
start_relay updown -l updown "127.0.0.1:$ORIGIN_PORT"
measure --duration 5 --window 0.5 4.5 --send-up $((32 << 20)) \
    "127.0.0.1:$RELAY_PORT"
within "$total" 98304 3 "down at 96 KiB/s while uploading"
wait_file "$ORIGIN_REPORT" 10
up=$(steady_rate "$(head -n 1 "$ORIGIN_REPORT")" 0.5 4.5)
within "$up" 32768 3 "up at 32 KiB/s while downloading"

# 6. No busy loop: the CPU time of a relay at 1 KiB/s over 10 s.
limit_set slow 1K
start_relay slow -l slow "$ORIGIN"
spawn $MULTI --duration 11 --window 0.5 10.5 "127.0.0.1:$RELAY_PORT" \
    >"$TEST_TMP/slow.out"
multi_pid=$last_pid
pid=
for _ in $(seq 100); do
	pid=$(sed -n 's/^Spawned .* as PID \([0-9]*\)\.$/\1/p' "$RELAY_LOG" | head -n 1)
	[ -n "$pid" ] && break
	sleep 0.05
done
cpu_ms() {
	# utime + stime (fields 14 and 15 of /proc/PID/stat) in ms.
	[ -n "$1" ] && [ -r "/proc/$1/stat" ] || { echo 1000000; return; }
	awk -v hz="$(getconf CLK_TCK)" \
	    '{ sub(/^.*\) /, ""); print ($12 + $13) * 1000 / hz }' "/proc/$1/stat"
}
sleep 0.5
cpu0=$(cpu_ms "$pid")
sleep 10
cpu1=$(cpu_ms "$pid")
cpu=$(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN { print b - a }')
if [ -n "$SANITIZED" ]; then
	budget=250; what="(sanitizer build: budget 250 ms)"
else
	budget=50; what=""
fi
diag "relay $pid used $cpu ms of CPU in 10 s at 1 KiB/s"
ok "no busy loop: relay at 1 KiB/s uses < $budget ms CPU in 10 s $what" \
    awk -v c="$cpu" -v b="$budget" 'BEGIN { exit !(c < b) }'
wait "$multi_pid" 2>/dev/null
total=
eval "$(cat "$TEST_TMP/slow.out")"
within "$total" 1024 3 \
    "the slow relay moved 1 KiB/s meanwhile"

done_testing
