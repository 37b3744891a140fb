#!/bin/bash
# What the state dir's owner writes is not trusted (issue 11, item 1): the
# relays run as that owner and face the network, so a connection record
# may hold any bytes and name any pid.  iprelay-limit shows peer and remote
# escaped (JSON stays JSON); kill signals only relays of this store and
# says "not permitted" (exit 100) when the kernel refuses; iprelay -p
# never follows a link or truncates a file that is not its own.
. "$IPRELAY_TOP/tests/lib.sh"

L=$IPRELAY_BIN/iprelay-limit
CTL=$IPRELAY_BIN/tools/limitctl
CONN=$IPRELAY_BIN/iprelay-conn
mkdir -p "$IPRELAY_STATE_DIR"
"$L" set slow 1K >/dev/null
"$L" set held 1K >/dev/null

# --- peer and remote escaped before a terminal sees them ------------------
peer=$'\e[31mred\e]0;owned\a\r'
remote=$'a\nb\\c\xc2\x9b2J\xff:1'
sleep 60 &
shown_pid=$!
spawned_pids="$spawned_pids $shown_pid"
id=$("$CTL" plant "$shown_pid" "$peer" "$remote")
like "$id" '^CONN[0-9]{6}$' "a record with control bytes in peer and remote planted"
"$L" conns >"$TEST_TMP/conns" 2>&1
ok "conns prints no control byte at all" \
    python3 -c 'import sys; d = open(sys.argv[1], "rb").read()
sys.exit(any(b < 0x20 and b != 0x0a or b >= 0x7f for b in d))' "$TEST_TMP/conns"
is "$(grep -c "^$id" "$TEST_TMP/conns")" 1 "the record is one line of the table"
like "$(grep "^$id" "$TEST_TMP/conns")" \
    ' \\x1b\[31mred\\x1b\]0;owned\\x07\\x0d +a\\x0ab\\\\c\\xc2\\x9b2J\\xff:1 ' \
    "peer and remote are shown escaped, byte for byte"
"$L" top -n 1 >"$TEST_TMP/top" 2>&1
ok "top prints no control byte but its own screen clearing" \
    python3 -c 'import sys; d = open(sys.argv[1], "rb").read()
sys.exit(any(b < 0x20 and b != 0x0a or b >= 0x7f for b in d))' "$TEST_TMP/top"
"$L" --json conns >"$TEST_TMP/conns.json"
ok "conns --json is valid JSON" python3 -m json.tool "$TEST_TMP/conns.json"
is "$(python3 -c 'import json, sys
c = [c for c in json.load(open(sys.argv[1])) if c["id"] == sys.argv[2]][0]
print(repr(c["peer"]))' "$TEST_TMP/conns.json" "$id")" "'\\x1b[31mred\\x1b]0;owned\\x07\\r'" \
    "--json keeps the peer's characters, escaped as JSON"
"$L" --json top -n 1 >"$TEST_TMP/top.json"
ok "top --json is valid JSON" python3 -m json.tool "$TEST_TMP/top.json"

# --- kill signals only relays of this store ---------------------------------
sleep 60 &
victim=$!
spawned_pids="$spawned_pids $victim"
id=$("$CTL" plant "$victim" 192.0.2.1:1 192.0.2.2:2 slow)
"$L" kill "$id" >"$TEST_TMP/out" 2>"$TEST_TMP/err"
rc=$?
is "$rc" 1 "kill of a record naming another program: refused (exit 1)"
like "$(cat "$TEST_TMP/err")" "skipped $id: not a relay of this store: pid $victim runs .*sleep" \
    "and says what the pid runs"
sleep 0.2
ok "the other program was not signalled" kill -0 "$victim"
id1=$("$CTL" plant 1 192.0.2.1:1 192.0.2.2:2 slow)
"$L" kill all >"$TEST_TMP/out" 2>"$TEST_TMP/err"
rc=$?
is "$rc" 1 "kill all with records naming pid 1 and another program: exit 1"
like "$(cat "$TEST_TMP/err")" "skipped $id1: .*pid 1 is never a relay" "pid 1 is skipped"
like "$(cat "$TEST_TMP/out")" "^0 connections terminated" "none counted as terminated"
ok "the other program still runs after kill all" kill -0 "$victim"
stop_pid "$victim"

# A real relay, held open by a client.
start_origin hold --send 100000000
port=$(free_port)
spawn systemd-socket-activate -l "127.0.0.1:$port" --accept --inetd \
    -E IPRELAY_STATE_DIR -E IPRELAY_LOG_FILE \
    "$CONN" -l held "127.0.0.1:$ORIGIN_PORT" 2>"$TEST_TMP/sa.err"
wait_listen "$port" || diag "systemd-socket-activate did not listen"
spawn python3 -c 'import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
time.sleep(60)' "$port"
relay_pid=
for _ in $(seq 100); do
	relay_pid=$("$L" --json conns | python3 -c 'import json, sys
print("".join(str(c["pid"]) for c in json.load(sys.stdin) if c["limit"] == "held"))')
	[ -n "$relay_pid" ] && break
	sleep 0.05
done
like "$relay_pid" '^[0-9]+$' "a real relay is registered"
relay_id=$("$L" --json conns | python3 -c 'import json, sys
print("".join(c["id"] for c in json.load(sys.stdin) if c["limit"] == "held"))')

# A user the kernel does not let signal it: "not permitted", exit 100,
# never "0 connections terminated" with exit 0 (it read EPERM as gone).
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
	chmod 711 "$TEST_TMP"
	chmod 755 "$IPRELAY_STATE_DIR"
	chmod 666 "$IPRELAY_STATE_DIR"/*.mdb*
	setpriv --reuid=65534 --regid=65534 --clear-groups \
	    "$L" kill all >"$TEST_TMP/out" 2>"$TEST_TMP/err"
	rc=$?
	is "$rc" 100 "kill all by a user who may not signal the relays: exit 100"
	like "$(cat "$TEST_TMP/err")" "not permitted: $relay_id \\(pid $relay_pid\\)" \
	    "and says not permitted, naming the relay"
	setpriv --reuid=65534 --regid=65534 --clear-groups \
	    "$L" kill "$relay_id" >"$TEST_TMP/out" 2>"$TEST_TMP/err"
	is "$?" 100 "kill ID by that user: exit 100"
	like "$(cat "$TEST_TMP/err")" "not permitted" "not permitted"
	ok "the relay still runs" kill -0 "$relay_pid"

	# A relay running as someone else than the state dir's owner is
	# not this store's: root, dropped to the dir's owner (here nobody,
	# as the service user), leaves it alone.
	chown 65534 "$IPRELAY_STATE_DIR"
	IPRELAY_USER=nobody "$L" kill "$relay_id" >"$TEST_TMP/out" 2>"$TEST_TMP/err"
	is "$?" 100 "root: kill of a relay not running as the dir's owner: exit 100"
	like "$(cat "$TEST_TMP/err")" "not permitted: $relay_id" "naming it"
	ok "that relay still runs" kill -0 "$relay_pid"
	chown 0 "$IPRELAY_STATE_DIR"
	chmod 770 "$IPRELAY_STATE_DIR"
	chmod 660 "$IPRELAY_STATE_DIR"/iprelay.mdb*
else
	diag "not root: the other-user cases need setpriv as root"
fi

"$L" kill "$relay_id" >"$TEST_TMP/out" 2>"$TEST_TMP/err"
is "$?" 0 "the dir's owner kills its own relay"
like "$(cat "$TEST_TMP/out")" "$relay_id terminated" "and says so"
gone=no
for _ in $(seq 60); do
	kill -0 "$relay_pid" 2>/dev/null || { gone=yes; break; }
	sleep 0.05
done
is "$gone" yes "the relay got SIGTERM"

# --- iprelay -p PIDFILE --------------------------------------------------------
I=$IPRELAY_BIN/iprelay
pids=$TEST_TMP/pids
mkdir -p "$pids"
echo secret >"$pids/victim"
chmod 600 "$pids/victim"
before=$(stat -c '%s %a %U %i' "$pids/victim")
# pidrun FILE: iprelay -p FILE at the prompt, ended by EOF on stdin.
pidrun() {
	timeout -k 2 10 "$I" -p "$1" </dev/null >"$TEST_TMP/out" 2>"$TEST_TMP/err"
	rc=$?
}
ln -s "$pids/victim" "$pids/link.pid"
pidrun "$pids/link.pid"
is "$rc" 100 "-p on a symbolic link: refused (exit 100)"
like "$(cat "$TEST_TMP/err")" "link.pid: it is a symbolic link" "saying so"
is "$(cat "$pids/victim")/$(stat -c '%s %a %U %i' "$pids/victim")" "secret/$before" \
    "the file it points to is untouched"
ln "$pids/victim" "$pids/hard.pid"
pidrun "$pids/hard.pid"
is "$rc" 100 "-p on a hard link: refused (exit 100)"
is "$(cat "$pids/victim")" secret "the linked file is untouched"
mkfifo "$pids/fifo.pid"
pidrun "$pids/fifo.pid"
is "$rc" 100 "-p on a fifo: refused (exit 100)"
like "$(cat "$TEST_TMP/err")" "not a regular file" "saying so"
if [ "$(id -u)" = 0 ]; then
	echo theirs >"$pids/theirs.pid"
	chown 65534 "$pids/theirs.pid"
	pidrun "$pids/theirs.pid"
	is "$rc" 100 "-p on another user's file: refused (exit 100)"
	is "$(cat "$pids/theirs.pid")" theirs "and it is untouched"
fi

# Locked while it runs: a second iprelay on the same file is refused and
# the first one's pid stays.
spawn "$I" -p "$pids/run.pid" -S "$IPRELAY_STATE_DIR" -n pidlock \
    "$(free_port):127.0.0.1:9" </dev/null >/dev/null 2>"$TEST_TMP/first.err"
first=$last_pid
wait_file "$pids/run.pid" 10
is "$(cat "$pids/run.pid")" "$first" "-p writes the pid"
timeout -k 2 10 "$I" -p "$pids/run.pid" -n pidlock2 "$(free_port):127.0.0.1:9" \
    </dev/null >/dev/null 2>"$TEST_TMP/err"
is "$?" 100 "a second iprelay on a pid file in use: refused (exit 100)"
like "$(cat "$TEST_TMP/err")" "another iprelay holds it" "saying so"
is "$(cat "$pids/run.pid")" "$first" "the first one's pid stays"
stop_pid "$first"
ok "the pid file is removed at the end" test ! -e "$pids/run.pid"

done_testing
