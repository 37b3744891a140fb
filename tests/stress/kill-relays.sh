#!/bin/bash
# kill -9 of 10% of many live shaped relays mid-transfer (issue 7, Faults):
# the others finish with every byte intact, the store stays usable, shaperd
# reaps the dead within 2 s, the limit's aggregate rate recovers.
[ -n "${STRESS_EMBEDDED:-}" ] || . "$IPRELAY_TOP/tests/lib.sh"
. "$IPRELAY_TOP/tests/stress/common.sh"

n=$(pick 200 30 20)
k=$((n / 10))
per_conn=16384                  # bytes/s each way for each relay
rate=$((n * per_conn))
send=$((per_conn * $(pick 10 9 9)))
note="$(mode_note): $n relays, $k killed"
diag "kill-relays: $note, limit $rate B/s each way, $send bytes each"

$LIMIT set kr "$rate" >/dev/null
start_shaperd
start_echo kr
start_relay kr -l kr "127.0.0.1:$ECHO_PORT"

# The killer: the k youngest relays' pids and client ports from conns, kill -9, then a
# poller in the background timing the reaping (manyconn waits for us).
# awk, not python: on a loaded machine python's start-up alone can outlast
# the transfer.  It retries (bounded) until conns lists k relays, and keeps
# what conns said for the diagnosis below.
# Both list with the plain build's iprelay-limit when there is one: this
# times shaperd, and a sanitized lister's own start-up under load (a few
# hundred ms each) would count as reap time.
LISTER=$LIMIT
[ -x "$IPRELAY_TOP/bin/iprelay-limit" ] &&
    LISTER="$IPRELAY_TOP/bin/iprelay-limit -S $IPRELAY_STATE_DIR"
cat >"$TEST_TMP/killer.sh" <<KILL
for _ in \$(seq 50); do
	$LISTER conns >"$TEST_TMP/killer.conns" 2>>"$TEST_TMP/killer.err"
	[ "\$(tail -n +2 "$TEST_TMP/killer.conns" | wc -l)" -ge $k ] && break
	sleep 0.1
done
# The last k rows: the youngest relays, furthest from finishing, so a
# victim cannot end its transfer between the listing and the kill.
tail -n +2 "$TEST_TMP/killer.conns" | tail -n $k |
    awk '{ sep = pids == "" ? "" : " "; pids = pids sep \$2
    n = split(\$4, p, ":"); ports = ports sep p[n] }
    END { print pids; print ports }' >"$TEST_TMP/victims"
kill -9 \$(sed -n 1p "$TEST_TMP/victims")
echo "\$EPOCHREALTIME" >"$TEST_TMP/killed_at"
# Nothing forked in the loop but the lister (bash's clock and mapfile):
# on a loaded machine every fork is slow, and it would count as reap time.
(
	for _ in \$(seq 100); do
		# A failed conns says nothing: only a listing counts.
		if $LISTER conns >"$TEST_TMP/poll.conns" 2>/dev/null; then
			mapfile -t rows <"$TEST_TMP/poll.conns"
			if [ "\$((\${#rows[@]} - 1))" -le $((n - k)) ]; then
				echo "\$EPOCHREALTIME" >"$TEST_TMP/reaped_at"; break
			fi
		fi
		sleep 0.05
	done
) </dev/null >/dev/null 2>&1 &
KILL

out=$($MANY run --connect "127.0.0.1:$RELAY_PORT" --count "$n" --send "$send" \
    --run-at 1.5 --run "bash $TEST_TMP/killer.sh" --window 1 --timeout 60)
diag "kill-relays result: $out"
victim_ports=$(sed -n 2p "$TEST_TMP/victims" 2>/dev/null | tr ' ' '\n' | sort -n | tr '\n' ' ')
cut_ports=$(python3 -c 'import json, sys; print(" ".join(map(str, sorted(json.loads(sys.argv[1])["cut_ports"]))))' "$out" 2>/dev/null)
is "$(json "$out" intact 2>/dev/null)" $((n - k)) "kill-relays ($note): the $((n - k)) others finish intact (SHA-256)"
is "$(json "$out" bad 2>/dev/null)" 0 "kill-relays ($note): no connection got a wrong byte"
is "$(json "$out" hung 2>/dev/null)" 0 "kill-relays ($note): no connection hung"
is "$cut_ports " "$victim_ports" "kill-relays ($note): exactly the killed relays' clients were cut"
if [ "$(json "$out" intact 2>/dev/null)" != $((n - k)) ] || [ "$cut_ports " != "$victim_ports" ]; then
	diag "kill-relays: conns as the killer saw it:"
	sed 's/^/#   /' "$TEST_TMP/killer.conns" "$TEST_TMP/killer.err" 2>/dev/null
	diag "kill-relays: relay and activation logs (tail):"
	tail -n 20 "$RELAY_LOG" "$IPRELAY_LOG_FILE" 2>/dev/null | sed 's/^/#   /'
fi
if [ -s "$TEST_TMP/reaped_at" ]; then
	reap=$(awk -v a="$(cat "$TEST_TMP/killed_at")" -v b="$(cat "$TEST_TMP/reaped_at")" \
	    'BEGIN { printf "%.2f", b - a }')
else
	reap=99
fi
diag "kill-relays: dead relays gone from conns ${reap} s after kill -9"
ok "kill-relays ($note): the dead reaped within 2 s (${reap} s)" \
    awk -v r="$reap" 'BEGIN { exit !(r <= 2) }'
before=$(json "$out" rate_before 2>/dev/null) after=$(json "$out" rate_after 2>/dev/null)
diag "kill-relays: aggregate rate back to the client before ${before:-?} B/s, after ${after:-?} B/s (limit $rate)"
# manyconn says null when the survivors finished too soon after the kill to
# measure: that is a failure of this test's timing, not a pass.
ok "kill-relays ($note): aggregate rate recovers (after ${after:-?} >= 80% of before ${before:-?})" \
    awk -v a="${after:-null}" -v b="${before:-null}" \
    'BEGIN { exit !(a ~ /^[0-9]+$/ && b ~ /^[0-9]+$/ && b > 0 && a + 0 >= 0.8 * b) }'
ok "kill-relays ($note): list works afterwards" eval "$LIMIT list >/dev/null"
wait_conns() { for _ in $(seq 60); do [ "$(conn_count)" = 0 ] && return 0; sleep 0.1; done; return 1; }
ok "kill-relays ($note): conns works and is empty afterwards" wait_conns
scenario_end
