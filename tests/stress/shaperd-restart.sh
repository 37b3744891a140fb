#!/bin/bash
# shaperd kill -9 and restart mid-transfer, ten times (issue 7, Faults): no
# relay wedges (every connection finishes intact, in about the time its
# rate allows), the limits are as they were, exactly one refiller after.
[ -n "${STRESS_EMBEDDED:-}" ] || . "$IPRELAY_TOP/tests/lib.sh"
. "$IPRELAY_TOP/tests/stress/common.sh"

n=$(pick 50 20 10)
restarts=10
gap=$(pick 1 0.4 0.4)             # seconds between restarts
per_conn=16384
rate=$((n * per_conn))
seconds=$(pick 14 7 7)            # each connection's transfer at its share
send=$((per_conn * seconds))
note="$(mode_note): $n relays"
diag "shaperd-restart: $note, $restarts kill -9 + restart ${gap} s apart, $send bytes each at $per_conn B/s"

$LIMIT set sr "$rate" --burst 64K >/dev/null
$LIMIT set sr.child "$rate" --parent sr >/dev/null
limits_before=$($LIMIT list | awk '{ print $1, $2, $3, $4, $5 }')
start_shaperd
start_echo sr
start_relay sr -l sr.child "127.0.0.1:$ECHO_PORT"

spawn $MANY run --connect "127.0.0.1:$RELAY_PORT" --count "$n" --send "$send" \
    --timeout $((seconds * 3 + 10)) >"$TEST_TMP/sr.out"
many_pid=$last_pid
sleep 1
for i in $(seq "$restarts"); do
	kill -9 "$SHAPERD_PID"
	wait "$SHAPERD_PID" 2>/dev/null
	start_shaperd
	sleep "$gap"
done
t_restarts=$(date +%s.%N)
# Bounded: manyconn gives up at its own --timeout.
wait "$many_pid"
out=$(cat "$TEST_TMP/sr.out")
diag "shaperd-restart result: $out"
is "$(json "$out" intact 2>/dev/null)" "$n" "shaperd-restart ($note): every connection finishes intact"
is "$(json "$out" hung 2>/dev/null)$(json "$out" bad 2>/dev/null)$(json "$out" cut 2>/dev/null)" 000 \
    "shaperd-restart ($note): none hung, cut or damaged"
elapsed=$(json "$out" elapsed 2>/dev/null)
diag "shaperd-restart: transfers took ${elapsed:-?} s for $seconds s of data at the limit"
ok "shaperd-restart ($note): no relay wedged: done in ${elapsed:-?} s (at most 1.5 x $seconds s)" \
    awk -v e="${elapsed:-999}" -v s="$seconds" 'BEGIN { exit !(e <= 1.5 * s + 1) }'
ok "shaperd-restart ($note): the limit still held (not faster than 0.85 x $seconds s)" \
    awk -v e="${elapsed:-0}" -v s="$seconds" 'BEGIN { exit !(e >= 0.85 * s) }'
is "$($LIMIT list | awk '{ print $1, $2, $3, $4, $5 }')" "$limits_before" \
    "shaperd-restart ($note): the limits are as before"
# The refiller: the last shaperd holds refiller.lock, and it alone runs.
sleep 0.5
refiller=$($LIMIT --json top -n 1 | python3 -c 'import json, sys; print(json.load(sys.stdin)["refiller"])')
is "$refiller" "$SHAPERD_PID shaperd" "shaperd-restart ($note): top names the last shaperd as the refiller"
is "$(python3 "$IPRELAY_TOP/tests/stress/ofdlock.py" "$IPRELAY_STATE_DIR/refiller.lock")" locked \
    "shaperd-restart ($note): refiller.lock is held (F_OFD_GETLK)"
live=0
for pid in $(pgrep -x shaperd); do
	[ "$(readlink "/proc/$pid/cwd" 2>/dev/null)" = "" ] && continue
	tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$IPRELAY_STATE_DIR" && live=$((live + 1))
done
is "$live" 1 "shaperd-restart ($note): exactly one shaperd on this state dir"
scenario_end
