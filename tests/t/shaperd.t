#!/bin/bash
# shaperd: sd_notify READY/STATUS/WATCHDOG, one per state dir, reaps a
# killed relay within 2 s, limits survive a restart, TERM/INT exit 0, and
# relays keep their rate with no refiller at all.
. "$IPRELAY_TOP/tests/lib.sh"

L="$IPRELAY_BIN/iprelay-limit"
SHAPERD="$IPRELAY_BIN/shaperd"
DRAWER="$IPRELAY_BIN/tools/drawer"
NOTIFY=$TEST_TMP/notify.sock
MESSAGES=$TEST_TMP/notify.log

spawn python3 "$IPRELAY_TOP/tests/tools/notifylog.py" "$NOTIFY" "$MESSAGES" 120
for _ in $(seq 100); do [ -S "$NOTIFY" ] && break; sleep 0.05; done

# wait_for REGEX [SECONDS]: until a notify line matches.
wait_for() {
	for _ in $(seq $((${2:-5} * 20))); do
		grep -Eq -- "$1" "$MESSAGES" 2>/dev/null && return 0
		sleep 0.05
	done
	return 1
}

# Usage errors.
"$SHAPERD" -t fast 2>"$TEST_TMP/err"
is "$?" 100 "a bad tick exits 100"
like "$(cat "$TEST_TMP/err")" "bad tick: 'fast'" "and names the word"
"$SHAPERD" extra 2>"$TEST_TMP/err"
is "$?" 100 "an extra word exits 100"
like "$(cat "$TEST_TMP/err")" "usage: shaperd \[-S DIR\] \[-t TICK_MS\]" "with the usage line"

"$L" set kept 64K --down 1M --burst 8K
"$L" set slow 1K

NOTIFY_SOCKET=$NOTIFY WATCHDOG_USEC=400000 spawn "$SHAPERD" 2>>"$TEST_TMP/shaperd.err"
shaperd_pid=$last_pid
ok "READY=1 sent" wait_for '^READY=1$'
ok "STATUS= with a summary" wait_for '^STATUS=refilling: 2 limits, 0 live relays, 0 reaped$'
ok "WATCHDOG=1 sent when WATCHDOG_USEC is set" wait_for '^WATCHDOG=1$'
sleep 1
ok "WATCHDOG=1 repeats (at least 3 in a second)" \
	test "$(grep -c '^WATCHDOG=1$' "$MESSAGES")" -ge 3
refiller=$("$L" --json top -n 1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["refiller"])')
is "$refiller" "$shaperd_pid shaperd" "shaperd published itself as the refiller"
rate_5s=$("$L" --json get kept | python3 -c 'import json,sys; print(json.load(sys.stdin)["up_5s"])')
is "$rate_5s" 0 "measured rates are published (fresh, 0 with no traffic)"

# A second shaperd on the same dir is refused in one line.
"$SHAPERD" 2>"$TEST_TMP/second.err"
is "$?" 111 "a second shaperd exits 111"
is "$(wc -l <"$TEST_TMP/second.err")" 1 "with one line"
like "$(cat "$TEST_TMP/second.err")" "another shaperd" "saying another shaperd runs"

# A relay-like process killed with -9 is reaped within 2 s.
spawn "$DRAWER" -l slow -t 60 -o "$TEST_TMP/slow.report"
victim=$last_pid
for _ in $(seq 100); do
	n=$("$L" conns | tail -n +2 | wc -l)
	[ "$n" = 1 ] && break
	sleep 0.05
done
is "$n" 1 "the relay is registered"
ok "STATUS= counts the live relay" wait_for 'STATUS=refilling: 2 limits, 1 live relay, 0 reaped'
kill -KILL "$victim"; wait "$victim" 2>/dev/null
t0=$(date +%s.%N)
reaped=no
for _ in $(seq 60); do
	n=$("$L" conns | tail -n +2 | wc -l)
	[ "$n" = 0 ] && { reaped=yes; break; }
	sleep 0.05
done
t1=$(date +%s.%N)
is "$reaped" yes "the killed relay's record is removed"
ok "within 2 s ($(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}') s)" \
	awk -v a="$t0" -v b="$t1" 'BEGIN { exit !(b - a <= 2.0) }'
ok "STATUS= counts the reaped relay" wait_for 'STATUS=refilling: 2 limits, 0 live relays, 1 reaped' 3
is "$("$L" get slow | awk '/^conns:/ { print $2 }')" 0 \
	"the limit's relay count is back to 0"

# A relay whose launcher does not wait for it stays a zombie when killed:
# dead all the same, reaped.
(exec "$DRAWER" -l slow -t 60 -o "$TEST_TMP/zombie.report" & exec sleep 20) &
launcher=$!
spawned_pids="$spawned_pids $launcher"
zombie=""
for _ in $(seq 100); do
	zombie=$(pgrep -P "$launcher" drawer) && break
	sleep 0.05
done
for _ in $(seq 100); do
	[ "$("$L" conns | tail -n +2 | wc -l)" = 1 ] && break
	sleep 0.05
done
kill -KILL "$zombie"
sleep 0.2
like "$(cat /proc/"$zombie"/stat 2>/dev/null)" '\) Z ' "the killed relay is a zombie"
reaped=no
for _ in $(seq 50); do
	[ "$("$L" conns | tail -n +2 | wc -l)" = 0 ] && { reaped=yes; break; }
	sleep 0.05
done
is "$reaped" yes "a zombie relay is reaped within 2.5 s"
stop_pid "$launcher"

# Measured rates: a drawer at a 64K limit, measured by shaperd.
"$L" set measured 64K --burst 4K
# The drawer outlives the readings by far (a loaded machine once read
# conns after a 5 s drawer had gone), and is stopped after them.
spawn "$DRAWER" -l measured -t 20 -o "$TEST_TMP/measured.report"
measured_pid=$last_pid
sleep 3
"$L" --json get measured >"$TEST_TMP/measured.json"
"$L" --json conns >"$TEST_TMP/conns.json"
within "$(json "$(cat "$TEST_TMP/measured.json")" down_1s)" 65536 10 "the 1 s rate is measured"
conn_rate=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[0]["down_5s"])' "$TEST_TMP/conns.json")
within "$conn_rate" 65536 20 "the connection's 5 s rate is measured"
stop_pid "$measured_pid"

# TERM: clean exit 0, STOPPING=1.
kill -TERM "$shaperd_pid"
status=timeout
for _ in $(seq 60); do
	kill -0 "$shaperd_pid" 2>/dev/null || { wait "$shaperd_pid"; status=$?; break; }
	sleep 0.05
done
is "$status" 0 "TERM: exit 0"
ok "STOPPING=1 sent" wait_for '^STOPPING=1$' 1

# Limits survive a restart; INT exits 0 too.
spawn "$SHAPERD" 2>>"$TEST_TMP/shaperd.err"
shaperd_pid=$last_pid
"$L" --json get kept >"$TEST_TMP/kept.json"
is "$?" 0 "the limit is still there after a restart"
is "$(json "$(cat "$TEST_TMP/kept.json")" up)/$(json "$(cat "$TEST_TMP/kept.json")" down)/$(json "$(cat "$TEST_TMP/kept.json")" burst)" \
	"65536/1048576/8192" "with its rates and burst"
sleep 0.5
kill -INT "$shaperd_pid"
status=timeout
for _ in $(seq 60); do
	kill -0 "$shaperd_pid" 2>/dev/null || { wait "$shaperd_pid"; status=$?; break; }
	sleep 0.05
done
is "$status" 0 "INT: exit 0"

# No refiller at all: a relay is not wedged, it gets its rate (draws settle
# the buckets themselves).
"$L" set norefill 64K --burst 4K
sleep 0.2
start=$("$DRAWER" -p 0.3)
"$DRAWER" -l norefill -a "$start" -t 2 -o "$TEST_TMP/norefill.report" &
drawer=$!
spawned_pids="$spawned_pids $drawer"
for _ in $(seq 100); do kill -0 "$drawer" 2>/dev/null || break; sleep 0.1; done
wait "$drawer"
is "$?" 0 "without a refiller the relay finishes"
got=$(json "$(cat "$TEST_TMP/norefill.report")" window)
# The contract's bounds: never more than burst + rate * t, and with a
# drawer always waiting at least rate * t less what a loaded machine's late
# wake-ups leave unused at the window's edges (2-3% seen under ASan with
# other tests running; 5% allowed).
ok "and gets at most burst + rate * t ($got)" [ "$got" -le $((4096 + 65536 * 2)) ]
ok "and at least 95% of rate * t ($got)" [ "$got" -ge $((65536 * 2 * 95 / 100)) ]

done_testing
