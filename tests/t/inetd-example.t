#!/bin/bash
# The shipped launcher examples, run as written but for the words every
# example file names for replacement: units/inetd.conf.example under
# openbsd-inetd (units/xinetd.example under xinetd where that is the inetd
# installed: the two packages conflict), and the pop3 service's ExecStart=
# and Environment= under systemd-socket-activate --accept.  Bytes checked
# both ways, and the traffic counted on limit "pop3".
. "$IPRELAY_TOP/tests/lib.sh"

UP_B=200000
DOWN_B=300000
LIMIT="$IPRELAY_BIN/iprelay-limit"

# render FILE PORT: the example with its placeholder words replaced.
render() {
	sed -e "s|^10110\\([[:space:]]\\)|127.0.0.1:$2\\1|" \
	    -e "s|\\(port[[:space:]]*= \\)10110\$|\\1$2|" \
	    -e "s|iprelay:iprelay|$(id -un):$(id -gn)|" \
	    -e "s|^\\([[:space:]]*user[[:space:]]*= \\)iprelay\$|\\1$(id -un)|" \
	    -e "s|^\\([[:space:]]*group[[:space:]]*= \\)iprelay\$|\\1$(id -gn)|" \
	    -e "s|/usr/sbin/|$IPRELAY_BIN/|g" \
	    -e "s|/var/lib/iprelay|$IPRELAY_STATE_DIR|g" \
	    -e "s|pop3\\.example\\.net:110|127.0.0.1:$ORIGIN_PORT|g" "$1"
}

# through NAME PORT: one client through PORT to the origin started last.
through() {
	local out report before after
	before=$(pop3_total)
	out=$(timeout 60 $PEER client --connect "127.0.0.1:$2" --send $UP_B)
	if [ -z "$out" ] || ! wait_file "$ORIGIN_REPORT" 10; then
		fail "$1: transfer through the relay"
		diag "$(cat "$TEST_TMP"/*.err 2>/dev/null | tail -5)"
		return
	fi
	report=$(tail -n1 "$ORIGIN_REPORT")
	# One python per side: client "recv recv_sha sent_sha", origin the same.
	read -r c_recv c_recv_sha c_sent_sha <<<"$(fields "$out" recv recv_sha sent_sha)"
	read -r o_recv o_recv_sha o_sent_sha <<<"$(fields "$report" recv recv_sha sent_sha)"
	is "$c_recv $c_recv_sha" "$DOWN_B $o_sent_sha" "$1: the client got every byte"
	is "$o_recv $o_recv_sha" "$UP_B $c_sent_sha" "$1: the origin got every byte"
	# The relay counts on the limit when it closes: wait for it.
	for _ in $(seq 100); do
		after=$(pop3_total)
		[ "$after" = "$((${before% *} + UP_B)) $((${before#* } + DOWN_B))" ] && break
		sleep 0.05
	done
	is "$after" "$((${before% *} + UP_B)) $((${before#* } + DOWN_B))" \
	    "$1: the traffic was counted on limit pop3 (up down)"
}

# fields JSON KEY...: the values, space-separated, in one python run.
fields() {
	python3 -c 'import json, sys
v = json.loads(sys.argv[1])
print(" ".join(str(v[k]) for k in sys.argv[2:]))' "$@"
}

pop3_total() {
	local got
	got=$("$LIMIT" --json get pop3 2>/dev/null)
	[ -n "$got" ] || { echo "0 0"; return; }
	fields "$got" up_total down_total
}

# A limit well above what the transfers need: the point is that the
# example's "-l pop3" reaches the store, not the rate.
"$LIMIT" set pop3 100M >/dev/null
ok "limit pop3 set" test $? = 0

# inetd.conf.example, or xinetd.example.
start_origin inetd --send $DOWN_B
port=$(free_port)
if [ -x /usr/sbin/inetd ]; then
	render "$IPRELAY_TOP/units/inetd.conf.example" "$port" >"$TEST_TMP/inetd.conf"
	is "$(grep -cv '^#' "$TEST_TMP/inetd.conf")" 1 "inetd.conf.example has one service line"
	grep -q "127.0.0.1:$port.*$IPRELAY_BIN/iprelay-conn.*-S $IPRELAY_STATE_DIR -i 600 -l pop3 127.0.0.1:$ORIGIN_PORT\$" \
	    "$TEST_TMP/inetd.conf"
	ok "every placeholder word of inetd.conf.example replaced" test $? = 0 ||
	    diag "$(grep -v '^#' "$TEST_TMP/inetd.conf")"
	# No -E: the example passes the state dir itself.  The log file
	# variable is all the environment the relays get from the test.
	spawn env -i IPRELAY_LOG_FILE="$IPRELAY_LOG_FILE" PATH=/usr/bin:/bin \
	    /usr/sbin/inetd -d -E -i "$TEST_TMP/inetd.conf" 2>"$TEST_TMP/inetd.err"
	inetd_pid=$last_pid
	name=inetd.conf.example
elif [ -x /usr/sbin/xinetd ]; then
	{ printf 'defaults\n{\n}\n'; render "$IPRELAY_TOP/units/xinetd.example" "$port"; } \
	    >"$TEST_TMP/xinetd.conf"
	grep -q "server_args.*-S $IPRELAY_STATE_DIR -i 600 -l pop3 127.0.0.1:$ORIGIN_PORT\$" \
	    "$TEST_TMP/xinetd.conf"
	ok "every placeholder word of xinetd.example replaced" test $? = 0
	spawn /usr/sbin/xinetd -dontfork -f "$TEST_TMP/xinetd.conf" \
	    -pidfile "$TEST_TMP/xinetd.pid" 2>"$TEST_TMP/inetd.err"
	inetd_pid=$last_pid
	name=xinetd.example
else
	inetd_pid=
fi
if [ -n "$inetd_pid" ] && wait_listen "$port"; then
	through "$name" "$port"
	stop_pid "$inetd_pid"
else
	fail "an inetd runs the example: $(cat "$TEST_TMP/inetd.err" 2>/dev/null)"
fi

# The pop3 service unit's command and environment, as systemd would run
# it for a connection on iprelay-pop3.socket (the socket on fd 3).
start_origin unit --send $DOWN_B
port=$(free_port)
service=$IPRELAY_TOP/units/iprelay-pop3@.service
exec_start=$(render "$service" "$port" | sed -n 's/^ExecStart=//p')
environment=$(sed -n 's/^Environment=//p' "$service")
like "$environment" '^IPRELAY_STATE_DIR=%S/iprelay$' "the service names the state dir"
like "$exec_start" "^$IPRELAY_BIN/iprelay-conn -i 600 -l pop3 127\\.0\\.0\\.1:$ORIGIN_PORT\$" \
    "the service's ExecStart= with the placeholder words replaced"
# %S/iprelay is the state dir: here the test's.
spawn systemd-socket-activate -l "127.0.0.1:$port" --accept \
    -E IPRELAY_STATE_DIR -E IPRELAY_LOG_FILE $exec_start 2>"$TEST_TMP/unit.err"
unit_pid=$last_pid
if wait_listen "$port"; then
	through "iprelay-pop3@.service" "$port"
else
	fail "systemd-socket-activate listens: $(cat "$TEST_TMP/unit.err")"
fi
stop_pid "$unit_pid"

done_testing
