#!/bin/bash
# Relays that registered before the first refiller of a state dir started
# (inetd's or systemd's with no shaperd yet, or iprelay's own accepted in
# the 100 ms before its first tick) still count against the caps once it
# runs.  The first refiller of a boot drops the live state of an earlier
# boot; a live store made in this boot says so from the start.  It said
# nothing until a refiller wrote it, so that refiller took every record
# in it for another boot's and dropped them: caps.t under the full suite
# saw iprelay serve 4 and 5 of 6 against --max-conns-per-source 3.
. "$IPRELAY_TOP/tests/lib.sh"

LIMIT="$IPRELAY_BIN/iprelay-limit"
LIMITCTL="$IPRELAY_BIN/tools/limitctl"
CLIENT="python3 $IPRELAY_TOP/tests/tools/capsclient.py"

spawn $CLIENT --echo --port-file "$TEST_TMP/echo.port"
wait_file "$TEST_TMP/echo.port" 10 || { echo "Bail out! no echo origin"; exit 1; }
echo_port=$(cat "$TEST_TMP/echo.port")

# try NAME: one connection from 127.0.0.1 through iprelay, closed once
# classified (nothing is held); sets out to capsclient's line.
try() {
	out=$($CLIENT --connect "127.0.0.1:$port" --count 1 --bind 127.0.0.1 \
	    </dev/null 2>"$TEST_TMP/$1.err")
	[ -n "$out" ] || diag "$1: $(cat "$TEST_TMP/$1.err")"
}

# result: "served refused corrupt pending reset" of $out.
result() {
	python3 -c 'import json, sys; v = json.loads(sys.argv[1])
print(v["served"], v["refused"], v["corrupt"], v["pending"], v["reset"])' "${out:-{\}}" 2>/dev/null
}

"$LIMIT" set early --max-conns-per-source 2 >/dev/null
ok "set --max-conns-per-source 2 (the live store made now, no refiller yet)" test $? = 0

# Two relays from 127.0.0.1 registered with no refiller running: their
# records, as a relay writes them, for a live process of ours.
spawn sleep 300
holder=$last_pid
for peer in 127.0.0.1:40001 127.0.0.1:40002; do
	"$LIMITCTL" plant "$holder" "$peer" "127.0.0.1:$echo_port" early >/dev/null
done
is "$(conns_of early)" 2 "two relays from 127.0.0.1 registered before any refiller"

mkfifo "$TEST_TMP/cmd"
exec 7<>"$TEST_TMP/cmd"
port=$(free_port)
"$IPRELAY_BIN/iprelay" -S "$IPRELAY_STATE_DIR" -n early \
    "$port:127.0.0.1:$echo_port" <"$TEST_TMP/cmd" >"$TEST_TMP/iprelay.out" 2>&1 &
ipid=$!
spawned_pids="$spawned_pids $ipid"
wait_listen "$port" || diag "iprelay did not listen on $port"
# Its refiller names itself once it has taken the store (after the reset
# of another boot's state, which this store is not).
wait_refiller "$IPRELAY_STATE_DIR" 20
ok "iprelay's refiller took the store" test $? = 0
is "$(conns_of early)" 2 "the first refiller keeps the records of this boot's relays"
try third
is "$(result)" "0 1 0 0 1" "a third from 127.0.0.1 through iprelay is reset: the two count"
is "$(json "$("$LIMIT" --json get early)" refused_max_conns_per_source)" 1 \
    "the refusal is counted on the limit"

# The relays end (their process is gone): the refiller drops their records
# and the cap lets 127.0.0.1 in again.
stop_pid "$holder"
wait_conns early 0
ok "the ended relays' records are dropped (0 live)" test $? = 0
try after
is "$(result)" "1 0 0 0 0" "then one from 127.0.0.1 is served"

stop_pid "$ipid"
done_testing
