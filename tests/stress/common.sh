# Shared by the fault and stress scenarios (tests/stress/*.sh): sourced
# after tests/lib.sh, or by tests/t/stress-quick.t, which runs every
# scenario in one TAP stream (STRESS_EMBEDDED=1, STRESS=quick).
# STRESS=long (make stress) uses the full counts of issue 7; quick scales
# them down, and further under the sanitizers (names say so).
STRESS=${STRESS:-long}
LIMIT="$IPRELAY_BIN/iprelay-limit -S $IPRELAY_STATE_DIR"
CONN=$IPRELAY_BIN/iprelay-conn
MANY="python3 $IPRELAY_TOP/tests/stress/manyconn.py"
mkdir -p "$IPRELAY_STATE_DIR"

# pick LONG QUICK ASAN: the count for this mode.
pick() {
	if [ "$STRESS" = long ]; then echo "$1"
	elif [ -n "$SANITIZED" ]; then echo "$3"
	else echo "$2"; fi
}
# mode_note: said in test names when counts are scaled down.
mode_note() {
	if [ "$STRESS" = long ]; then echo "long"
	elif [ -n "$SANITIZED" ]; then echo "quick, scaled down for ASan"
	else echo "quick"; fi
}

# start_relay NAME IPRELAY-CONN-ARGS...: socket-activated relays on a free
# port (one iprelay-conn per connection); sets RELAY_PORT, RELAY_PID.
start_relay() {
	RELAY_LOG=$TEST_TMP/$1.activate.log
	RELAY_PORT=$(free_port)
	spawn systemd-socket-activate --accept -l "127.0.0.1:$RELAY_PORT" \
	    -E IPRELAY_STATE_DIR -E IPRELAY_LOG_FILE \
	    "$CONN" -S "$IPRELAY_STATE_DIR" "${@:2}" 2>"$RELAY_LOG"
	RELAY_PID=$last_pid
	for _ in $(seq 200); do
		grep -q '^Listening on' "$RELAY_LOG" 2>/dev/null && return 0
		sleep 0.05
	done
	echo "Bail out! relay $1 did not listen"
	exit 1
}

start_shaperd() {
	spawn "$IPRELAY_BIN/shaperd" -S "$IPRELAY_STATE_DIR" 2>>"$TEST_TMP/shaperd.err"
	SHAPERD_PID=$last_pid
	# Up once it holds its priority lock (the file itself stays empty).
	for _ in $(seq 100); do
		[ "$(python3 "$IPRELAY_TOP/tests/stress/ofdlock.py" \
		    "$IPRELAY_STATE_DIR/shaperd.lock" 2>/dev/null)" = locked ] && return 0
		sleep 0.05
	done
	echo "Bail out! shaperd did not start"
	exit 1
}

# start_echo NAME: the echo origin of manyconn.py; sets ECHO_PORT.
start_echo() {
	spawn $MANY echo --port-file "$TEST_TMP/$1.port"
	wait_file "$TEST_TMP/$1.port" 10 || { echo "Bail out! echo $1 did not start"; exit 1; }
	ECHO_PORT=$(cat "$TEST_TMP/$1.port")
}

# conn_count: live relays in the store (-1 when conns fails).
conn_count() {
	$LIMIT --json conns 2>/dev/null |
	    python3 -c 'import json, sys; print(len(json.load(sys.stdin)))' 2>/dev/null ||
	    echo -1
}

# rss_kb PID: resident set size in KiB.
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null; }

# scenario_end: alone, the TAP plan; embedded, stop this scenario's
# processes so the next one starts clean.
scenario_end() {
	if [ -n "${STRESS_EMBEDDED:-}" ]; then
		for pid in $spawned_pids; do stop_pid "$pid"; done
		spawned_pids=""
	else
		done_testing
	fi
}
