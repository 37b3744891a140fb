#!/bin/bash
# The interactive prompt of iprelay driven through a pseudo-terminal: every
# command and its output, bad values refused, line editing and history,
# `set bandwidth` on an open connection, `kill`, `iprelay-limit set` from
# outside, quit and ctrl-c.
. "$IPRELAY_TOP/tests/lib.sh"
. "$IPRELAY_TOP/tests/tools/pty.sh"

start_origin origin --send 100000000
LPORT=$(free_port)
NAME=iprelay-$LPORT

pty_start "$IPRELAY_BIN/iprelay" "$LPORT:127.0.0.1:$ORIGIN_PORT"
ok "banner with the version" pty_expect 'iprelay Version: [0-9]'
ok "resolved forwarder 99 printed" pty_expect \
    "local_port\t$LPORT\n  remote_addrs\t127\\.0\\.0\\.1\n  remote_port\t$ORIGIN_PORT\n  bandwidth\t0\n  forwarder 99 set\\."
ok "prompt shown" pty_expect '^> $'
wait_port "$LPORT" 5 || diag "forwarder port $LPORT not listening"

# help, by every spelling the original accepted that is a command.
for word in help '?' he h; do
	pty_send "$word"
	ok "'$word' lists the commands" pty_expect 'Commands are:(.|\n)*show(.|\n)*set(.|\n)*kill(.|\n)*quit'
done
pty_send "hello"
ok "'hello' is not help (the original matched any 'he')" pty_expect 'Unknown command: hello'
pty_send "s"
ok "an ambiguous prefix is named" pty_expect 'Ambiguous command: s'

pty_send "show all"
ok "show all lists every variable then the forwarders" pty_expect \
    '^local_addrs\t0\.0\.0\.0,::\nforce_from\t0\.0\.0\.0\ndebug\t1\ndump_traff\t0\nidle_out\t3000\ndead_count\t10\ndata_size\t0\nbandwidth\t0\nallow\tnone\ndeny\tnone\nforwarders:\n  forwarder 99 '"$LPORT:127\\.0\\.0\\.1:$ORIGIN_PORT"'$'
pty_send "sh ver"
ok "show ver prints the banner" pty_expect 'iprelay Version: '
pty_send "show ?"
ok "show ? explains" pty_expect 'stats\tShow stats on connections'
pty_send "set ?"
ok "set ? explains" pty_expect 'forwarder\tSet up forwarders'
pty_send "kill ?"
ok "kill ? explains" pty_expect 'all\t\tKill all connections'
pty_send "show idle"
ok "show VAR by prefix" pty_expect '^idle_out\t3000$'
pty_send "show stats"
ok "show stats with no connection" pty_expect \
    'Total connections: 0\n  Bandwidth is not set\.'
pty_send "show nosuch"
ok "show of an unknown word" pty_expect 'Unknown variable nosuch, try: show all, stats, ver, or one of: local_addrs,'

# Bad values are refused with a message naming them; nothing changes.
bad() {
	pty_send "$1"
	ok "refused: $1" pty_expect "$2"
}
bad "set bandwidth fast" 'Bad bandwidth: fast'
bad "set bandwidth -5" 'Bad bandwidth: -5'
bad "set data_size 300000" 'Bad data_size: 300000'
bad "set data_size 12x" 'Bad data_size: 12x'
bad "set debug 2" 'Bad debug: 2'
bad "set idle_out soon" 'Bad idle_out: soon'
bad "set dead_count -1" 'Bad dead_count: -1'
bad "set local_addrs 1.2.3" 'Bad local_addrs: 1\.2\.3'
bad "set local_addrs 127.0.0.1,not" 'Bad local_addrs: 127\.0\.0\.1,not'
bad "set force_from example.org" 'Bad force_from: example\.org'
bad "set dump_traff 1" 'dump_traff 1 is not supported'
bad "set bandwidth" 'Incomplete or incorrect command: set bandwidth <value>'
bad "set forwarder x 1:localhost:2" 'Bad forwarder: x'
bad "set forwarder 5 nospec" 'Bad proxyspec: nospec'
bad "set forwarder 5 70000:localhost:80" 'Bad proxyspec: 70000:localhost:80'
bad "set forwarder 5 $LPORT:127.0.0.1:1" "forwarder 5 not set: unable to bind .*$LPORT.*(in use)"
bad "set forwarder 5 1:no-such-host.invalid:80" 'forwarder 5 not set: unable to resolve no-such-host\.invalid'
bad "set limit 42 1024" 'No such forwarder: 42'
bad "set limit 99 lots" 'Bad rate: lots'
bad "kill CONN999999" 'No such connection: CONN999999'
bad "kill bogus" 'No such connection: bogus'
pty_send "show all"
ok "nothing changed by refused values" pty_expect \
    'debug\t1\ndump_traff\t0\nidle_out\t3000\ndead_count\t10\ndata_size\t0\nbandwidth\t0\nallow\tnone\ndeny\tnone\nforwarders:\n  forwarder 99 [^\n]*$'

# Good values are echoed as the original did.
pty_send "set idle_out 600"
ok "set idle_out" pty_expect '^idle_out\t600$'
pty_send "set data_size 1K"
ok "set data_size with a suffix" pty_expect '^data_size\t1024$'
pty_send "set data_size 0"
ok "set data_size back to automatic" pty_expect '^data_size\t0$'
pty_send "set dead_count 3"
ok "set dead_count (accepted, ignored)" pty_expect '^dead_count\t3$'
pty_send "set local_addrs 127.0.0.1"
ok "set local_addrs" pty_expect '^local_addrs\t127\.0\.0\.1$'

# Line editing: type "sho all", go left four times, insert "w".
pty_raw "$(printf 'sho all' | od -An -tx1 | tr -d ' \n')1b5b441b5b441b5b441b5b4477"0d
ok "cursor keys edit the line" pty_expect 'forwarders:\n  forwarder 99 '
# History: up arrow recalls "show all".
pty_raw 1b5b410d
ok "up arrow recalls the last command" pty_expect 'data_size\t0\nbandwidth\t0\nallow\tnone\ndeny\tnone\nforwarders:'
# ctrl-u clears what was typed.
pty_raw "$(printf 'garbage' | od -An -tx1 | tr -d ' \n')15$(printf 'show debug' | od -An -tx1 | tr -d ' \n')0d"
ok "ctrl-u clears the line" pty_expect '^debug\t1$'

# A second forwarder, used, replaced and deleted.
ORIGIN2_PORT=$ORIGIN_PORT
L2=$(free_port)
pty_send "set forwarder 1 $L2:localhost:$ORIGIN2_PORT"
ok "a name is resolved while the prompt goes on" pty_expect '^  Resolving address \(localhost\)\.+$'
ok "set forwarder 1" pty_expect '^  forwarder 1 set\.$'
pty_send "show all"
ok "forwarder 1 listed before 99" pty_expect \
    "forwarders:\n  forwarder 1 $L2:(127\\.0\\.0\\.1|::1):$ORIGIN2_PORT\n  forwarder 99 "
wait_port "$L2" 5
out=$($PEER client --connect "127.0.0.1:$L2" --send 2000 --duration 1)
is "$(json "$out" sent)" 2000 "forwarder 1 relays"
like "$(json "$out" recv)" '^[1-9][0-9]*$' "forwarder 1 delivers the origin's bytes"
pty_send "set forwarder 1"
ok "set forwarder N deletes it" pty_expect '^  forwarder 1 deleted\.$'
if (exec 3<>"/dev/tcp/127.0.0.1/$L2") 2>/dev/null; then
	fail "forwarder 1's port closed"
else
	pass "forwarder 1's port closed"
fi
pty_send "set forwarder 1"
ok "deleting it again says so" pty_expect 'No such forwarder: 1'

# set bandwidth on an open connection.
pty_send "set bandwidth 2048"
ok "set bandwidth echoes" pty_expect '^bandwidth\t2048$'
$PEER client --connect "127.0.0.1:$LPORT" --duration 9 >"$TEST_TMP/shaped.json" &
client=$!
spawned_pids="$spawned_pids $client"
ok "the connection is announced" pty_expect 'Received connect from 127\.0\.0\.1:[0-9]+ \(forwarder 99, CONN[0-9]{6}\)'
sleep 4
pty_send "show stats"
ok "show stats lists the connection" pty_expect \
    "Total connections: 1\n  Bandwidth set to: 2048 bytes / sec\.\n  Limit: $NAME\n  Forwarding connections for:\n    127\\.0\\.0\\.1:[0-9]+ -> 127\\.0\\.0\\.1:$ORIGIN_PORT \\(CONN[0-9]{6}\\)\n        Connection Up: [0-9]+ secs\\. Idle: [0-9]+ secs\\.\n        Bytes transferred: [0-9]+ in, 0 out\\.\n        Data rate       : [0-9.]+ kB/s in, 0\\.00 kB/s out\\.\n            \\(5 sec avg\\.\\): [0-9.]+ kB/s in, 0\\.00 kB/s out\\.\n            \\(1 min avg\\.\\): [0-9.]+ kB/s in, 0\\.00 kB/s out\\."
five=$(printf '%s\n' "$PTY_TEXT" | sed -n 's/.*(5 sec avg.): \([0-9.]*\) kB.*/\1/p')
within "$five" 2.00 25 "the 5 s average shows about 2 kB/s"
pty_send "set bandwidth 8192"
ok "set bandwidth while it runs" pty_expect '^bandwidth\t8192$'
wait "$client"
result=$(cat "$TEST_TMP/shaped.json")
before=$(steady_rate "$result" 1 3)
after=$(steady_rate "$result" 5.5 8.5)
within "$before" 2048 15 "2048 B/s before the change"
within "$after" 8192 15 "8192 B/s after the change, on the same connection"

# iprelay-limit changes the running instance's limit.
"$IPRELAY_BIN/iprelay-limit" set "$NAME" 3000 >/dev/null
pty_send "show bandwidth"
ok "iprelay-limit set reaches the prompt" pty_expect '^bandwidth\t3000$'

# kill a live connection, by id, then kill all.
$PEER client --connect "127.0.0.1:$LPORT" --duration 60 >"$TEST_TMP/killed.json" &
victim=$!
spawned_pids="$spawned_pids $victim"
ok "second connection announced" pty_expect 'Received connect from'
sleep 1.5
pty_send "show stats"
pty_expect 'Total connections: 1(.|\n)*1 min avg' >/dev/null
id=$(printf '%s\n' "$PTY_TEXT" | grep -o 'CONN[0-9]\{6\}' | head -n 1)
like "$id" '^CONN[0-9]{6}$' "the connection has a store id ($id)"
pty_send "kill $id"
ok "kill CONN answers" pty_expect "$id: closing\\."
ok "its close is reported, with its id" pty_expect "Connection from 127\\.0\\.0\\.1:[0-9]+ closed \\($id\\)\\."
gone=no
for _ in $(seq 50); do kill -0 "$victim" 2>/dev/null || { gone=yes; break; }; sleep 0.1; done
is "$gone" yes "the killed connection's client sees the end at once"
pty_send "show stats"
ok "no connection left" pty_expect 'Total connections: 0'
$PEER client --connect "127.0.0.1:$LPORT" --duration 60 >/dev/null &
c1=$!
$PEER client --connect "127.0.0.1:$LPORT" --duration 60 >/dev/null &
c2=$!
spawned_pids="$spawned_pids $c1 $c2"
pty_expect 'Received connect(.|\n)*Received connect' 10 >/dev/null
pty_send "kill all"
ok "kill all" pty_expect 'Closing 2 connections\.'
gone=no
for _ in $(seq 50); do
	kill -0 "$c1" 2>/dev/null || kill -0 "$c2" 2>/dev/null || { gone=yes; break; }
	sleep 0.1
done
is "$gone" yes "kill all ends both clients"

# Stopped (ctrl-z; SIGSTOP here, as a session leader's group ignores
# ctrl-z), the terminal's modes changed meanwhile (as a shell does), then
# continued: the editor takes its keys one by one again.
pty_cmd pid
ipid=${PTY_REPLY#pid }
tty=$(readlink "/proc/$ipid/fd/0")
kill -STOP "$ipid"
stopped=no
for _ in $(seq 30); do
	[ "$(awk '{ print $3 }' "/proc/$ipid/stat" 2>/dev/null)" = T ] && { stopped=yes; break; }
	sleep 0.1
done
is "$stopped" yes "iprelay stopped"
stty -F "$tty" icanon -echo
kill -CONT "$ipid"
sleep 0.5
pty_raw "$(printf 'show debug' | od -An -tx1 | tr -d ' \n')"
ok "after fg, keys are read one by one again" pty_expect '^> show debug$' 5
pty_raw 0d
ok "and the line runs" pty_expect '^debug\t1$'

# quit: every connection closed, exit 0.
$PEER client --connect "127.0.0.1:$LPORT" --duration 60 >/dev/null &
c3=$!
spawned_pids="$spawned_pids $c3"
pty_expect 'Received connect' 10 >/dev/null
pty_send "quit"
ok "quit closes all connections" pty_expect 'closing all connections'
ok "quit exits" pty_wait 10
is "$PTY_EXIT" 0 "exit status 0 after quit"
gone=no
for _ in $(seq 50); do kill -0 "$c3" 2>/dev/null || { gone=yes; break; }; sleep 0.1; done
is "$gone" yes "the open connection was closed by quit"
conns=$("$IPRELAY_BIN/iprelay-limit" conns 2>&1 | grep -c CONN)
is "$conns" 0 "no connection left registered in the store"

# ctrl-c: the same, from a fresh instance with a live connection.
pty_stop
LPORT3=$(free_port)
pty_start "$IPRELAY_BIN/iprelay" -b 1024 "$LPORT3:127.0.0.1:$ORIGIN_PORT"
pty_expect 'forwarder 99 set\.' >/dev/null
pty_expect '^> $' >/dev/null
wait_port "$LPORT3" 5
$PEER client --connect "127.0.0.1:$LPORT3" --duration 60 >/dev/null &
c4=$!
spawned_pids="$spawned_pids $c4"
pty_expect 'Received connect' 10 >/dev/null
sleep 0.5
pty_raw 03
ok "ctrl-c is caught" pty_expect 'Caught sig \(INT\), closing all connections'
ok "ctrl-c exits" pty_wait 10
is "$PTY_EXIT" 0 "exit status 0 after ctrl-c"
gone=no
for _ in $(seq 50); do kill -0 "$c4" 2>/dev/null || { gone=yes; break; }; sleep 0.1; done
is "$gone" yes "ctrl-c closed the open connection"

done_testing
