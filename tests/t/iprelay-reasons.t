#!/bin/bash
# At the prompt a failed connection shows the relay's own reason (refused,
# ...), not only "exit 111", and its close line
# has one form, with the connection's id (issue 15).
. "$IPRELAY_TOP/tests/lib.sh"

closed=$(free_port)	# nothing listens there
L=$(free_port)
mkfifo "$TEST_TMP/in"
exec 7<>"$TEST_TMP/in"
"$IPRELAY_BIN/iprelay" "$L:127.0.0.1:$closed" <"$TEST_TMP/in" >"$TEST_TMP/out" 2>"$TEST_TMP/err" &
ipid=$!
spawned_pids="$spawned_pids $ipid"
wait_port "$L" 10 || diag "iprelay not listening"
wait_for() {	# REGEX [SECONDS]
	for _ in $(seq $((${2:-10} * 20))); do
		grep -qE -- "$1" "$TEST_TMP/err" 2>/dev/null && return 0
		sleep 0.05
	done
	diag "no '$1' in:"
	tail -n 6 "$TEST_TMP/err" | sed 's/^/#   | /'
	return 1
}
python3 -c 'import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1]))); time.sleep(2)' "$L" &
client=$!
ok "the refused connection's close line gives the relay's reason" wait_for \
    "^- Connection from 127\\.0\\.0\\.1:[0-9]+ closed \\(CONN[0-9]{6}, exit 111: peer 127\\.0\\.0\\.1:[0-9]+: unable to connect to 127\\.0\\.0\\.1:$closed .*Connection refused\\)\\.\$"
wait "$client"

# A source address of a family the remote does not have: once every
# connection failed with a reason naming it; now refused at once (more in
# iprelay-force-from.t).
printf 'set force_from ::1\n' >&7
for _ in $(seq 200); do grep -q 'Bad force_from' "$TEST_TMP/out" && break; sleep 0.05; done
like "$(cat "$TEST_TMP/out")" 'Bad force_from: ::1 is an IPv6 address and the forwarders. remotes are IPv4 only' \
    "a wrong family's force_from is refused, saying why"
is "$(grep -c 'no connection to the remote host or system failure' "$TEST_TMP/err")" 0 \
    "the generic line is not used when the relay said why"
printf 'quit\n' >&7
wait "$ipid"
is "$?" 0 "quits 0"

done_testing
