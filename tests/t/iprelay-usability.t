#!/bin/bash
# iprelay as a new user meets it (issue 15): overlapping local_addrs
# refused, show all that reads back as proxyspecs, set limit N 0 said
# plainly, unknown variables named, a NUL byte refusing its line, show
# stats averages from a connection's first second, the open and close lines
# with the relay's CONN id, and no prompt after the last line.
. "$IPRELAY_TOP/tests/lib.sh"
. "$IPRELAY_TOP/tests/tools/pty.sh"

IPRELAY=$IPRELAY_BIN/iprelay
start_origin origin --send 100000000

# A piped session through a fifo: commands in, stdout and stderr to files.
piped_start() {
	mkfifo "$TEST_TMP/in"
	exec 7<>"$TEST_TMP/in"	# a writer first: opening to read waits for one
	"$IPRELAY" "$@" <"$TEST_TMP/in" >"$TEST_TMP/out" 2>"$TEST_TMP/err" &
	piped_pid=$!
	spawned_pids="$spawned_pids $piped_pid"
}
send() { printf '%s\n' "$1" >&7; }
# wait_for FILE REGEX [SECONDS]: until a line of FILE matches (grep -E).
wait_for() {
	for _ in $(seq $((${3:-10} * 20))); do
		grep -qE -- "$2" "$1" 2>/dev/null && return 0
		sleep 0.05
	done
	diag "no '$2' in $1:"
	# awk ends every line, the prompt too (no newline after it): the
	# next TAP line must start a line of its own.
	tail -n 8 "$1" | awk '{ print "#   | " $0 }'
	return 1
}

LPORT=$(free_port)
L6=$(free_port)
piped_start "$LPORT:127.0.0.1:$ORIGIN_PORT"
wait_for "$TEST_TMP/err" 'forwarder 99 set\.'

# Overlapping local_addrs: refused, naming the pair; a forwarder set after
# it still binds (the old list stays).
send "set local_addrs 0.0.0.0,127.0.0.1"
ok "0.0.0.0,127.0.0.1 refused, naming the overlap" wait_for "$TEST_TMP/out" \
    'Bad local_addrs: 127\.0\.0\.1 overlaps 0\.0\.0\.0'
send "set local_addrs ::,::1"
ok ":: and ::1 refused" wait_for "$TEST_TMP/out" 'Bad local_addrs: ::1 overlaps ::'
send "set local_addrs 127.0.0.1,127.0.0.1"
ok "one address twice refused" wait_for "$TEST_TMP/out" \
    'Bad local_addrs: 127\.0\.0\.1 overlaps 127\.0\.0\.1'
send "set local_addrs 127.0.0.1,::1"
ok "127.0.0.1,::1 accepted" wait_for "$TEST_TMP/out" '^(> )*local_addrs	127\.0\.0\.1,::1$'

# show all prints an IPv6 remote in brackets, as a proxyspec is written.
send "set forwarder 3 $L6:[::1]:$ORIGIN_PORT"
ok "forwarder 3 to [::1] set" wait_for "$TEST_TMP/out" 'forwarder 3 set\.'
send "show all"
ok "show all: forwarder 3 reads back as a proxyspec" wait_for "$TEST_TMP/out" \
    "^  forwarder 3 $L6:\\[::1\\]:$ORIGIN_PORT\$"
ok "IPv4 remotes stay bare" wait_for "$TEST_TMP/out" \
    "^  forwarder 99 $LPORT:127\\.0\\.0\\.1:$ORIGIN_PORT\$"

# set limit N 0 says it means no limit of its own.
send "set limit 99 0"
ok "set limit 99 0 says: no limit of its own" wait_for "$TEST_TMP/out" \
    'forwarder 99 limit iprelay-[0-9]+\.99: 0, no limit of its own'
ok "and does not say 'set to 0 bytes / sec'" \
    sh -c "! grep -q 'set to 0 bytes' '$TEST_TMP/out'"

# Unknown variables are named and the variables listed.
send "show nosuch"
ok "show nosuch: unknown variable, listed" wait_for "$TEST_TMP/out" \
    'Unknown variable nosuch, .*local_addrs, force_from, debug, dump_traff, idle_out, dead_count, data_size, bandwidth, allow, deny'
send "set nosuch 3"
ok "set nosuch 3: unknown variable, listed" wait_for "$TEST_TMP/out" \
    'Unknown variable nosuch, try: set forwarder, limit, or one of: local_addrs,'
send "set ?"
ok "set ? lists the variables" wait_for "$TEST_TMP/out" \
    '<var> <val>	Set specific variable to a value: local_addrs, .*, deny\.'

# A NUL byte refuses its line (it used to end it: "set debug 0").
printf 'set debug 0\0junk\n' >&7
ok "a line with a NUL byte is refused" wait_for "$TEST_TMP/out" \
    'Refused: the line has a NUL byte\.'
send "show debug"
ok "and nothing of it ran" wait_for "$TEST_TMP/out" '^(> )*debug	1$'
# A line longer than a command line is refused whole, not run cut short.
printf 'set debug 0 %01100d\n' 0 >&7
ok "an overlong line is refused" wait_for "$TEST_TMP/out" 'Line too long'

# show stats in a connection's first second: the 5 s and 1 min averages
# are over its life so far, not 0.00 while data flows.
send "set bandwidth 8192"
wait_for "$TEST_TMP/out" '^(> )*bandwidth	8192$' >/dev/null
$PEER client --connect "127.0.0.1:$LPORT" --duration 4 >/dev/null &
client=$!
spawned_pids="$spawned_pids $client"
wait_for "$TEST_TMP/err" 'Received connect from' >/dev/null
sleep 0.6
send "show stats"
ok "show stats lists the young connection" wait_for "$TEST_TMP/out" '1 min avg'
five=$(sed -n 's/.*(5 sec avg.): \([0-9.]*\) kB\/s in.*/\1/p' "$TEST_TMP/out" | tail -n 1)
minute=$(sed -n 's/.*(1 min avg.): \([0-9.]*\) kB\/s in.*/\1/p' "$TEST_TMP/out" | tail -n 1)
up=$(sed -n 's/.*Connection Up: \([0-9]*\) secs.*/\1/p' "$TEST_TMP/out" | tail -n 1)
ok "the connection was under 2 s old ($up s)" test "${up:-9}" -lt 2
ok "5 s average not 0 in the first second ($five kB/s)" \
    awk -v v="$five" 'BEGIN { exit !(v > 0) }'
ok "1 min average not 0 in the first second ($minute kB/s)" \
    awk -v v="$minute" 'BEGIN { exit !(v > 0) }'
wait "$client"

# The open line names the relay's CONN id, the one the close line and
# iprelay-limit conns give (it was printed at accept, before the relay had
# one).  The first connection's lines are there already: the second's.
# count_lines FILE REGEX N: until N lines of FILE match.
count_lines() {
	for _ in $(seq 200); do
		[ "$(grep -cE -- "$2" "$1")" -ge "$3" ] && return 0
		sleep 0.05
	done
	diag "fewer than $3 '$2' in $1:"; tail -n 8 "$1" | sed 's/^/#   | /'
	return 1
}
OPEN_RE='Received connect from 127\.0\.0\.1:[0-9]+ \(forwarder 99, CONN[0-9]{6}\)$'
ok "the first connection's open line had its id" \
    count_lines "$TEST_TMP/err" "$OPEN_RE" 1
$PEER client --connect "127.0.0.1:$LPORT" --duration 3 >/dev/null &
client=$!
spawned_pids="$spawned_pids $client"
ok "the open line names the CONN id" count_lines "$TEST_TMP/err" "$OPEN_RE" 2
open_line=$(grep -E -- "$OPEN_RE" "$TEST_TMP/err" | tail -n 1)
open_id=$(echo "$open_line" | sed -n 's/.*(forwarder 99, \(CONN[0-9]*\))$/\1/p')
open_peer=$(echo "$open_line" | sed -n 's/.*Received connect from \([^ ]*\) .*/\1/p')
conns=$("$IPRELAY_BIN/iprelay-limit" conns)
like "$conns" "^$open_id +[0-9]+ +[^ ]+ +$open_peer " \
    "iprelay-limit conns lists $open_id for $open_peer"
wait "$client"
ok "the close line has the same id" wait_for "$TEST_TMP/err" \
    "Connection from $open_peer closed \\($open_id[,)]"
is "$(grep -c "Connection from $open_peer closed" "$TEST_TMP/err")" 1 \
    "one close line for it"
# A relay that never registers (refused by deny) still gets its open line.
send "set deny 127.0.0.1/32"
wait_for "$TEST_TMP/out" '^(> )*deny	127\.0\.0\.1/32$' >/dev/null
$PEER client --connect "127.0.0.1:$LPORT" --duration 1 >/dev/null 2>&1
ok "a refused client's open line says no id" wait_for "$TEST_TMP/err" \
    'Received connect from 127\.0\.0\.1:[0-9]+ \(forwarder 99, no id\)$'
ok "and its close line too" wait_for "$TEST_TMP/err" \
    'closed \(no id, exit 1: .*'

send "quit"
exec 7>&-
wait "$piped_pid"
is "$?" 0 "piped session quits 0"

# The last line is the last: no "> " after "..., closing all connections."
# (quit, ctrl-c, ctrl-d), so the shell's next output starts a line.
for how in quit ctrl-c ctrl-d; do
	pty_start "$IPRELAY" "$(free_port):127.0.0.1:$ORIGIN_PORT"
	pty_expect '^> $' >/dev/null
	: >"$PTY_LOG"
	case $how in
	quit) pty_send quit ;;
	ctrl-c) pty_raw 03 ;;
	ctrl-d) pty_raw 04 ;;
	esac
	ok "$how: exits" pty_wait 10
	tail=$(python3 -c 'import sys
data = open(sys.argv[1], "rb").read()
cut = data.rfind(b"closing all connections.")
print(repr(data[cut:]) if cut >= 0 else "none")' "$PTY_LOG")
	is "$tail" "b'closing all connections.\\r\\n'" \
	    "$how: nothing after the last line"
	pty_stop
done

done_testing
