#!/bin/bash
# force_from and the remotes' address families (issue 15): a source address
# of a family no forwarder's remote has is refused at once, naming it and
# the families in use (it was accepted, and every connection then failed
# with "no connection to the remote host"); one that only some forwarders
# can use is set with a warning naming the others; a forwarder set later
# whose remote cannot use force_from is refused.  Literal addresses only:
# nothing is looked up off the machine.
. "$IPRELAY_TOP/tests/lib.sh"

IPRELAY=$IPRELAY_BIN/iprelay
start_origin origin --send 1000
ORIGIN4=$ORIGIN_PORT
start_origin origin6 --send 1000 --bind ::1
ORIGIN6=$ORIGIN_PORT

mkfifo "$TEST_TMP/in"
exec 7<>"$TEST_TMP/in"	# a writer first: opening to read waits for one
LPORT=$(free_port)
L6=$(free_port)
"$IPRELAY" "$LPORT:127.0.0.1:$ORIGIN4" <"$TEST_TMP/in" \
    >"$TEST_TMP/out" 2>"$TEST_TMP/err" &
ipid=$!
spawned_pids="$spawned_pids $ipid"
send() { printf '%s\n' "$1" >&7; }
# wait_for FILE REGEX: until a line of FILE matches (grep -E), 10 s.
wait_for() {
	for _ in $(seq 200); do
		grep -qE -- "$1" "$2" 2>/dev/null && return 0
		sleep 0.05
	done
	diag "no '$1' in $2:"
	# (its last line is a prompt, without a newline)
	{ tail -n 8 "$2"; echo; } | sed 's/^/#   | /'
	return 1
}
# relayed PORT: a client through PORT gets an origin's 1000 bytes.
relayed() {
	timeout 20 $PEER client --connect "127.0.0.1:$1" 2>/dev/null |
	    grep -q '"recv": 1000,'
}
wait_for 'forwarder 99 set\.' "$TEST_TMP/err"

send "set force_from ::1"
ok "an IPv6 force_from with only an IPv4 remote is refused" wait_for \
    '^(> )*  Bad force_from: ::1 is an IPv6 address and the forwarders. remotes are IPv4 only: every connection would fail' \
    "$TEST_TMP/out"
send "show force_from"
ok "force_from stays 0.0.0.0" wait_for '^(> )*force_from	0\.0\.0\.0$' "$TEST_TMP/out"
ok "a connection still goes through" relayed "$LPORT"

send "set force_from 127.0.0.1"
ok "an IPv4 force_from is set" wait_for '^(> )*force_from	127\.0\.0\.1$' "$TEST_TMP/out"
ok "and a connection goes through from it" relayed "$LPORT"

send "set forwarder 3 $L6:[::1]:$ORIGIN6"
ok "a forwarder to an IPv6 remote under an IPv4 force_from is refused" \
    wait_for "forwarder 3 not set: its remote ::1 has no IPv4 address, and force_from is 127\\.0\\.0\\.1: every connection would fail" \
    "$TEST_TMP/out"
send "show all"
ok "and not added" wait_for '^forwarders:$' "$TEST_TMP/out"
ok "(show all has only forwarder 99)" sh -c "! grep -q '^  forwarder 3 ' '$TEST_TMP/out'"

send "set force_from 0.0.0.0"
wait_for '^(> )*force_from	0\.0\.0\.0$' "$TEST_TMP/out" >/dev/null
send "set forwarder 3 $L6:[::1]:$ORIGIN6"
ok "with force_from 0.0.0.0 it is set" wait_for 'forwarder 3 set\.' "$TEST_TMP/out"
send "set force_from ::1"
ok "an IPv6 force_from one forwarder can use is set" \
    wait_for '^(> )*force_from	::1$' "$TEST_TMP/out"
ok "with a warning naming the one that cannot" wait_for \
    "Warning: forwarder 99's remote 127\\.0\\.0\\.1 has no IPv6 address: its connections will fail from ::1\\." \
    "$TEST_TMP/out"
ok "the IPv6 forwarder relays from ::1" relayed "$L6"

send "quit"
exec 7>&-
wait "$ipid"
is "$?" 0 "quits 0"
done_testing
