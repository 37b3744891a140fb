#!/bin/bash
# A flood of connections at iprelay (issue 7, Faults): with -m small it
# never runs more relays than its cap; with `ulimit -n` small it runs out
# of descriptors without crashing; either way service resumes (bytes
# intact) once the flood ends.
[ -n "${STRESS_EMBEDDED:-}" ] || . "$IPRELAY_TOP/tests/lib.sh"
. "$IPRELAY_TOP/tests/stress/common.sh"

flood=$(pick 2000 300 200)
cap=$(pick 50 20 10)
note="$(mode_note): $flood connections"
start_echo flood

# flooder PORT COUNT: opens COUNT connections as fast as it can, holds
# them all 2 s, closes; prints how many connected and how many the relay
# closed at once (EOF or reset within the hold).
cat >"$TEST_TMP/flooder.py" <<'PY'
import resource, socket, sys, time
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
port, count = int(sys.argv[1]), int(sys.argv[2])
socks, failed = [], 0
for _ in range(count):
    s = socket.socket(); s.settimeout(2)
    try:
        s.connect(("127.0.0.1", port)); s.setblocking(False); socks.append(s)
    except OSError:
        failed += 1; s.close()
time.sleep(2)
closed = 0
for s in socks:
    try:
        if s.recv(1) == b"":
            closed += 1
    except BlockingIOError:
        pass
    except OSError:
        closed += 1
    s.close()
print(len(socks), failed, closed)
PY

# run_flood NAME IPRELAY-ARGS... (in a subshell with its own ulimit when
# the caller says so): starts iprelay, floods it, samples its relay count.
run_flood() {
	name=$1; shift
	port=$(free_port)
	spawn "$@" "$port:127.0.0.1:$ECHO_PORT" </dev/null >/dev/null 2>"$TEST_TMP/$name.err"
	ipid=$last_pid
	for _ in $(seq 100); do
		grep -q 'forwarder 99 set' "$TEST_TMP/$name.err" 2>/dev/null && break
		sleep 0.1
	done
	python3 "$TEST_TMP/flooder.py" "$port" "$flood" >"$TEST_TMP/$name.flood" &
	fpid=$!
	spawned_pids="$spawned_pids $fpid"
	max_children=0
	while kill -0 "$fpid" 2>/dev/null; do
		c=$(pgrep -c -P "$ipid")
		[ "$c" -gt "$max_children" ] && max_children=$c
		sleep 0.05
	done
	wait "$fpid"
	read -r connected failed closed <"$TEST_TMP/$name.flood"
	diag "flood $name: $connected of $flood connected ($failed failed), $closed closed at once, at most $max_children relays at a time"
}

# 1. -m cap under the flood.
run_flood capped "$IPRELAY_BIN/iprelay" -m "$cap"
ok "flood ($note): iprelay -m $cap survives" kill -0 "$ipid"
ok "flood ($note): at most $cap relays at once ($max_children)" test "$max_children" -le "$cap"
ok "flood ($note): the connections past the cap were closed at once ($closed of $connected)" \
    test "${closed:-0}" -ge $((connected - cap))
like "$(cat "$TEST_TMP/capped.err")" 'connections already \(-m\)' "flood ($note): refusals logged"
sleep 1
out=$($MANY run --connect "127.0.0.1:$port" --count 5 --send 200000 --timeout 30)
is "$(json "$out" intact 2>/dev/null)" 5 "flood ($note): after the flood, 5 connections relayed intact"
stop_pid "$ipid"

# 2. Descriptors: ulimit -n 32 for iprelay, default cap.
run_flood fds bash -c 'ulimit -n 32 && exec "$@"' - "$IPRELAY_BIN/iprelay"
ok "flood ($note): iprelay with ulimit -n 32 survives" kill -0 "$ipid"
grep -q 'unable to accept' "$TEST_TMP/fds.err" && diag "flood fds: $(grep -c 'unable to accept' "$TEST_TMP/fds.err") 'unable to accept' lines"
sleep 1
out=$($MANY run --connect "127.0.0.1:$port" --count 5 --send 200000 --timeout 30)
is "$(json "$out" intact 2>/dev/null)" 5 "flood ($note): with ulimit -n 32, after the flood, 5 connections relayed intact"
stop_pid "$ipid"
scenario_end
