#!/bin/bash
# iprelay-conn under each launcher it supports (systemd socket activation
# with Accept=yes, its inetd mode, a real inetd, tcpserver), bytes checked
# end to end through each, and every launch it must refuse.
. "$IPRELAY_TOP/tests/lib.sh"

CONN=$IPRELAY_BIN/iprelay-conn
UP_B=300000
DOWN_B=500000
LOG=$IPRELAY_LOG_FILE

# through NAME PORT LAUNCHER [HOST]: one peer client through the relay
# listening on PORT, to the origin started last; checks both directions
# byte for byte and the relay's open and close lines.
through() {
	local name=$1 port=$2 launcher=$3 host=${4:-127.0.0.1}
	local out report pid
	out=$(timeout 60 $PEER client --connect "$host:$port" --send $UP_B)
	if [ -z "$out" ] || ! wait_file "$ORIGIN_REPORT" 10; then
		fail "$name: transfer through the relay"
		fail "$name: transfer through the relay (other way)"
		return
	fi
	report=$(tail -n1 "$ORIGIN_REPORT")
	# One python for all four fields: it starts slowly on a busy machine.
	{ read -r got_down want_down; read -r got_up want_up; } < <(python3 -c '
import json, sys
c, o = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print("%d:%s %s:%s" % (c["recv"], c["recv_sha"], sys.argv[3], o["sent_sha"]))
print("%d:%s %s:%s" % (o["recv"], o["recv_sha"], sys.argv[4], c["sent_sha"]))
' "$out" "$report" "$DOWN_B" "$UP_B")
	is "$got_down" "$want_down" \
	    "$name: the client got every byte the origin sent"
	is "$got_up" "$want_up" \
	    "$name: the origin got every byte the client sent"
	pid=$(grep -E "open: peer .* via $launcher, remote [^ ]*:$ORIGIN_PORT " \
	    "$LOG" | tail -n1 | sed -E 's/.*iprelay-conn\[([0-9]+)\].*/\1/')
	for _ in $(seq 100); do
		grep -q "iprelay-conn\[$pid\]: .* close:" "$LOG" && break
		sleep 0.05
	done
	like "$(grep "iprelay-conn\[$pid\]: .* close:" "$LOG")" \
	    "close: up $UP_B B, down $DOWN_B B, [0-9.]+ s, both sides finished" \
	    "$name: one close line with the bytes each way"
}

mkdir -p "$TEST_TMP/state"

# systemd socket activation, Accept=yes: the socket on fd 3.
start_origin sa --send $DOWN_B
port=$(free_port)
spawn systemd-socket-activate -l "127.0.0.1:$port" --accept \
    -E IPRELAY_STATE_DIR -E IPRELAY_LOG_FILE \
    "$CONN" "127.0.0.1:$ORIGIN_PORT" 2>"$TEST_TMP/sa.err"
sa_pid=$last_pid
wait_listen "$port" || diag "systemd-socket-activate did not listen"
through "systemd --accept" "$port" systemd
like "$(grep "via systemd" "$LOG" | tail -n1)" \
    "open: peer 127\.0\.0\.1:[0-9]+ via systemd, remote 127\.0\.0\.1:$ORIGIN_PORT" \
    "systemd: peer from getpeername when REMOTE_ADDR is unset"
stop_pid "$sa_pid"

# The same with REMOTE_ADDR/REMOTE_PORT set, as systemd sets them.
start_origin sa2 --send $DOWN_B
port=$(free_port)
spawn systemd-socket-activate -l "127.0.0.1:$port" --accept \
    -E IPRELAY_STATE_DIR -E IPRELAY_LOG_FILE -E REMOTE_ADDR=192.0.2.7 \
    -E REMOTE_PORT=4242 "$CONN" "127.0.0.1:$ORIGIN_PORT" 2>"$TEST_TMP/sa2.err"
sa_pid=$last_pid
wait_listen "$port" || diag "systemd-socket-activate did not listen"
through "systemd REMOTE_ADDR" "$port" systemd
like "$(grep "via systemd" "$LOG" | tail -n1)" \
    "open: peer 192\.0\.2\.7:4242 via systemd" \
    "systemd: peer taken from REMOTE_ADDR and REMOTE_PORT"
stop_pid "$sa_pid"

# systemd-socket-activate --inetd: the socket on fd 0 and 1.
start_origin sai --send $DOWN_B
port=$(free_port)
spawn systemd-socket-activate -l "127.0.0.1:$port" --accept --inetd \
    -E IPRELAY_STATE_DIR -E IPRELAY_LOG_FILE \
    "$CONN" "127.0.0.1:$ORIGIN_PORT" 2>"$TEST_TMP/sai.err"
sa_pid=$last_pid
wait_listen "$port" || diag "systemd-socket-activate did not listen"
through "systemd --inetd" "$port" inetd
stop_pid "$sa_pid"

# A real inetd in the foreground on a generated configuration: Debian's
# openbsd-inetd, or xinetd where that is the one installed (the two
# packages conflict).
start_origin inetd --send $DOWN_B
port=$(free_port)
user=$(id -un)
if [ -x /usr/sbin/inetd ]; then
	printf '127.0.0.1:%s stream tcp4 nowait %s %s iprelay-conn 127.0.0.1:%s\n' \
	    "$port" "$user" "$CONN" "$ORIGIN_PORT" >"$TEST_TMP/inetd.conf"
	# -E keeps IPRELAY_STATE_DIR and IPRELAY_LOG_FILE for the relays.
	spawn /usr/sbin/inetd -d -E -i "$TEST_TMP/inetd.conf" \
	    2>"$TEST_TMP/inetd.err"
	inetd_pid=$last_pid
	inetd_name=openbsd-inetd
elif [ -x /usr/sbin/xinetd ]; then
	cat >"$TEST_TMP/xinetd.conf" <<EOF
defaults
{
}
service iprelay-conn-test
{
	type		= UNLISTED
	socket_type	= stream
	protocol	= tcp
	wait		= no
	user		= $user
	bind		= 127.0.0.1
	port		= $port
	server		= $CONN
	server_args	= 127.0.0.1:$ORIGIN_PORT
	env		= IPRELAY_STATE_DIR=$IPRELAY_STATE_DIR IPRELAY_LOG_FILE=$IPRELAY_LOG_FILE
}
EOF
	spawn /usr/sbin/xinetd -dontfork -f "$TEST_TMP/xinetd.conf" \
	    -pidfile "$TEST_TMP/xinetd.pid" 2>"$TEST_TMP/inetd.err"
	inetd_pid=$last_pid
	inetd_name=xinetd
else
	inetd_pid=
fi
if [ -n "$inetd_pid" ] && wait_listen "$port"; then
	through "$inetd_name" "$port" inetd
	stop_pid "$inetd_pid"
else
	diag "no inetd could be started: $(cat "$TEST_TMP/inetd.err" 2>/dev/null)"
	fail "inetd: a transfer through inetd"
fi

# tcpserver (UCSPI): fd 0/1 and PROTO, TCPREMOTEIP, TCPREMOTEPORT.
start_origin ucspi --send $DOWN_B
port=$(free_port)
spawn tcpserver -q -H -R -l localhost 127.0.0.1 "$port" \
    "$CONN" "127.0.0.1:$ORIGIN_PORT"
ucspi_pid=$last_pid
wait_listen "$port" || diag "tcpserver did not listen"
through "tcpserver" "$port" ucspi
like "$(grep "via ucspi" "$LOG" | tail -n1)" \
    "open: peer 127\.0\.0\.1:[0-9]+ via ucspi, remote 127\.0\.0\.1:$ORIGIN_PORT \(127\.0\.0\.1:$ORIGIN_PORT\), limit none" \
    "tcpserver: the open line names peer, launcher, remote and limit"
stop_pid "$ucspi_pid"

# -l naming a limit that does not exist: the bytes pass, and the log says
# the relay is unshaped and how to fix it (never a silently wrong limit).
start_origin nolimit --send $DOWN_B
port=$(free_port)
spawn tcpserver -q -H -R -l localhost 127.0.0.1 "$port" \
    "$CONN" -l nosuchlimit "127.0.0.1:$ORIGIN_PORT"
nolimit_pid=$last_pid
wait_listen "$port" || diag "tcpserver did not listen"
through "-l with no such limit" "$port" ucspi
like "$(grep "no limit named" "$LOG" | tail -n1)" \
    "iprelay-conn\[[0-9]+\]: .*no limit named nosuchlimit: relaying unshaped until one is set \(iprelay-limit set nosuchlimit RATE\)" \
    "-l with no such limit: a warning names it and the fix"
stop_pid "$nolimit_pid"

# Launches to refuse: one line naming the problem, exit 100.
# refused NAME WANT-REGEX CMD...: run CMD, stderr captured.
refused() {
	local name=$1 want=$2 err rc
	shift 2
	err=$("$@" 2>&1 >/dev/null)
	rc=$?
	is "$rc" 100 "$name: exit 100"
	is "$(printf '%s\n' "$err" | wc -l)" 1 "$name: one line"
	like "$err" "$want" "$name: the line says why"
}
refused "stdin a pipe" "^iprelay-conn: no client socket: standard input is a pipe" \
    sh -c "echo | '$CONN' 127.0.0.1:9"
refused "stdin /dev/null" "standard input is a character device" \
    sh -c "'$CONN' 127.0.0.1:9 </dev/null"
refused "stdin closed" "standard input is not open" \
    sh -c "'$CONN' 127.0.0.1:9 <&-"
refused "stdin a file" "standard input is a file" \
    sh -c "'$CONN' 127.0.0.1:9 <'$IPRELAY_TOP/tests/lib.sh'"
if command -v script >/dev/null; then
	timeout 10 script -qec "'$CONN' 127.0.0.1:9" /dev/null \
	    >"$TEST_TMP/tty.out" 2>&1
	rc=$?
	err=$(tr -d '\r' <"$TEST_TMP/tty.out")
	is "$rc" 100 "stdin a terminal: exit 100"
	like "$err" "standard input is a terminal" "stdin a terminal: says so"
fi

# inetd "wait" (a listening socket on fd 0) and systemd Accept=no.
out=$(python3 - "$CONN" <<'EOF'
import socket, subprocess, sys
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen()
r = subprocess.run([sys.argv[1], "127.0.0.1:9"], stdin=s,
                   capture_output=True, text=True, timeout=10)
print(r.returncode, r.stderr.strip())
EOF
)
like "$out" "^100 iprelay-conn: no client socket: standard input is a listening socket \(inetd.conf needs nowait\)$" \
    "a listening socket on fd 0 (inetd wait): exit 100, one line"
port=$(free_port)
# Without --accept it execs the relay on the first connection.
timeout 10 systemd-socket-activate -l "127.0.0.1:$port" -E IPRELAY_LOG_FILE \
    "$CONN" 127.0.0.1:9 2>"$TEST_TMP/accept-no.err" &
accept_no_pid=$!
wait_listen "$port" && (exec 5<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null
wait "$accept_no_pid"
is "$?" 100 "systemd Accept=no (listening socket on fd 3): exit 100"
like "$(grep iprelay-conn: "$TEST_TMP/accept-no.err")" \
    "fd 3 is a listening socket \(the socket unit needs Accept=yes\)" \
    "systemd Accept=no: says Accept=yes is needed"
out=$(LISTEN_PID=1 LISTEN_FDS=1 "$CONN" 127.0.0.1:9 2>&1 </dev/null)
like "$out" "standard input is a character device" \
    "LISTEN_PID of another process: fd 3 ignored"

# stderr a socket (inetd passes the client as fd 2): nothing written to
# it, the line still logged.
: >"$TEST_TMP/quiet.log"
out=$(IPRELAY_LOG_FILE=$TEST_TMP/quiet.log python3 - "$CONN" <<'EOF'
import socket, subprocess, sys
a, b = socket.socketpair()
r = subprocess.run([sys.argv[1], "127.0.0.1:9"], stdin=subprocess.PIPE,
                   stderr=b, timeout=10)
b.close()
a.settimeout(2)
got = a.recv(4096)
print(r.returncode, len(got))
EOF
)
is "$out" "100 0" "stderr a socket: exit 100 and not one byte written to it"
like "$(cat "$TEST_TMP/quiet.log")" "no client socket: standard input is a pipe" \
    "stderr a socket: the refusal is logged instead"

# Usage errors: the message, then the usage line of the man page.
usage_line="usage: iprelay-conn [-W] [-l LIMIT] [-S DIR] [-c SECONDS] [-i SECONDS] [-s ADDRESS] [-z BYTES] [-a CIDR] [-A CIDR] HOST:PORT"
# usage NAME WANT-REGEX ARGS...
usage() {
	local name=$1 want=$2 err rc
	shift 2
	err=$("$CONN" "$@" 2>&1 </dev/null)
	rc=$?
	is "$rc" 100 "usage, $name: exit 100"
	like "$(printf '%s\n' "$err" | head -n1)" "^iprelay-conn: $want" \
	    "usage, $name: names the bad word"
	is "$(printf '%s\n' "$err" | tail -n1)" "$usage_line" \
	    "usage, $name: then the usage line"
}
usage "no argument" "HOST:PORT is missing"
usage "bad HOST:PORT" "'localhost:99999' is not HOST:PORT" localhost:99999
usage "bare IPv6" "'::1:80' is not HOST:PORT" ::1:80
usage "two remotes" "one HOST:PORT only \('b:2' is extra\)" a:1 b:2
usage "bad limit" "limit name 'no/slash' is not valid" -l no/slash h:1
usage "bad -c" "connect timeout 'soon' is not a number of seconds" -c soon h:1
usage "bad -i" "idle timeout '-1' is not a number of seconds" -i -1 h:1
usage "bad -s" "source address 'example.org' is not an IP address" -s example.org h:1
usage "bad -z" "chunk size '0' is not a number of bytes" -z 0 h:1
usage "unknown option" "unknown option -x" -x h:1
usage "missing value" "option -l needs a value" h:1 -l
if [ -f "$IPRELAY_TOP/docs/iprelay-conn.8" ]; then
	synopsis=$(mandoc -T ascii -O width=250 "$IPRELAY_TOP/docs/iprelay-conn.8" |
	    sed 's/.\x08//g' | sed -n '/^SYNOPSIS/{n;p;}' | sed 's/^ *//')
	is "usage: $synopsis" "$usage_line" "the usage line matches the man page"
fi

done_testing
