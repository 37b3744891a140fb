#!/bin/bash
# Source address allow/deny lists: iprelay-conn -a/-A under
# systemd-socket-activate --inetd with IPv4, IPv6 and IPv4-mapped clients
# (allowed ones relay intact data; refused ones are closed at once, before
# the origin is contacted, logged, exit 1), bad CIDR words refused, and
# iprelay's -a/-A and its allow/deny prompt variables.
. "$IPRELAY_TOP/tests/lib.sh"

CONN=$IPRELAY_BIN/iprelay-conn
IPRELAY=$IPRELAY_BIN/iprelay
LOG=$IPRELAY_LOG_FILE
UP_B=200000
DOWN_B=300000
EXITS=$TEST_TMP/exits

# The relay's exit status, which systemd-socket-activate does not report.
cat >"$TEST_TMP/conn-wrap" <<EOF
#!/bin/bash
"$CONN" "\$@"
rc=\$?
exec 0</dev/null 1>/dev/null
echo "\$rc" >>"$EXITS"
EOF
chmod +x "$TEST_TMP/conn-wrap"
: >"$EXITS"

# probe HOST PORT [SOURCE]: connect, send a line, read to the end; prints
# "eof BYTES SECONDS", "reset BYTES SECONDS" or "timeout BYTES SECONDS".
probe() {
	python3 - "$@" <<'EOF'
import socket, sys, time
host, port = sys.argv[1], int(sys.argv[2])
family = socket.AF_INET6 if ":" in host else socket.AF_INET
s = socket.socket(family, socket.SOCK_STREAM)
if len(sys.argv) > 3:
    s.bind((sys.argv[3], 0))
s.settimeout(5)
start = time.monotonic()
s.connect((host, port))
got, how = 0, "eof"
try:
    s.sendall(b"hello\n")
    while True:
        data = s.recv(65536)
        if not data:
            break
        got += len(data)
except socket.timeout:
    how = "timeout"
except OSError:
    how = "reset"
print("%s %d %.2f" % (how, got, time.monotonic() - start))
EOF
}

# relay NAME LISTEN OPTIONS...: iprelay-conn (wrapped) behind
# systemd-socket-activate --inetd on LISTEN, to a new origin; sets PORT.
relay() {
	local name=$1 listen=$2
	shift 2
	start_origin "$name" --send $DOWN_B
	PORT=$(free_port)
	spawn systemd-socket-activate -l "$listen:$PORT" --accept --inetd \
	    -E IPRELAY_STATE_DIR -E IPRELAY_LOG_FILE \
	    "$TEST_TMP/conn-wrap" "$@" "127.0.0.1:$ORIGIN_PORT" \
	    2>"$TEST_TMP/$name.err"
	RELAY_PID=$last_pid
	wait_listen "$PORT" || diag "$name: systemd-socket-activate did not listen"
}

# intact NAME HOST: a peer client through the relay at PORT; both ways
# byte for byte.
intact() {
	local out report
	out=$(timeout 60 $PEER client --connect "$2:$PORT" --send $UP_B)
	if [ -z "$out" ] || ! wait_file "$ORIGIN_REPORT" 10; then
		fail "$1: allowed client relayed"
		return
	fi
	report=$(tail -n1 "$ORIGIN_REPORT")
	ok "$1: allowed client relayed, data intact both ways" \
	    test "$(json "$out" recv):$(json "$out" recv_sha)" = \
	    "$DOWN_B:$(json "$report" sent_sha)" -a \
	    "$(json "$report" recv):$(json "$report" recv_sha)" = \
	    "$UP_B:$(json "$out" sent_sha)"
}

# exits_seen COUNT: until the wrapper has recorded COUNT exits.
exits_seen() {
	for _ in $(seq 100); do
		[ "$(wc -l <"$EXITS")" -ge "$1" ] && return 0
		sleep 0.05
	done
	return 1
}

# refused NAME HOST [SOURCE] LOG-REGEX: the client gets nothing and an end
# at once, the relay logs the refusal and exits 1, the origin sees nothing.
refused() {
	local name=$1 host=$2 source=$3 want=$4 result before
	before=$(wc -l <"$EXITS")
	result=$(probe "$host" "$PORT" $source)
	like "$result" '^(eof|reset) 0 [01]\.' \
	    "$name: closed at once with no data ($result)"
	exits_seen $((before + 1))
	is "$(tail -n1 "$EXITS" 2>/dev/null)" 1 "$name: the relay exits 1"
	like "$(grep ' refused: ' "$LOG" | tail -n1)" "$want" \
	    "$name: one log line naming the peer and the rule"
	sleep 0.2
	is "$(cat "$ORIGIN_REPORT" 2>/dev/null | wc -l)" 0 \
	    "$name: the origin saw no connection"
}

mkdir -p "$IPRELAY_STATE_DIR"

# --- IPv4: allow 127/8 and ::1, deny 127.0.0.2 (deny wins) -------------
relay v4deny 127.0.0.1 -a 127.0.0.0/8 -a ::1 -A 127.0.0.2
refused "v4 deny over allow" 127.0.0.1 127.0.0.2 \
    "peer 127\.0\.0\.2:[0-9]+ refused: denied by -A 127\.0\.0\.2/32, remote 127\.0\.0\.1:$ORIGIN_PORT not contacted"
ok "v4: no open line for the refused peer" \
    test -z "$(grep 'open: peer 127\.0\.0\.2:' "$LOG")"
intact "v4 allowed" 127.0.0.1
stop_pid "$RELAY_PID"

relay v4allow 127.0.0.1 -a 10.0.0.0/8 -a 192.168.0.0/16
refused "v4 outside every -a" 127.0.0.1 "" \
    "peer 127\.0\.0\.1:[0-9]+ refused: in no -a range"
stop_pid "$RELAY_PID"

# --- IPv6 -----------------------------------------------------------
relay v6deny '[::1]' -A ::1/128 -a 127.0.0.1
refused "v6 deny" ::1 "" \
    "peer \[::1\]:[0-9]+ refused: denied by -A ::1/128"
stop_pid "$RELAY_PID"

relay v6allow '[::1]' -a ::1 -A 127.0.0.0/8 -A fe80::/10
intact "v6 allowed" ::1
stop_pid "$RELAY_PID"

# --- IPv4-mapped peers on an IPv6 socket compare as IPv4 --------------
relay mapped '[::ffff:127.0.0.1]' -A 127.0.0.0/8
if ss -Hltn "sport = :$PORT" | grep -q .; then
	refused "mapped peer denied as IPv4" 127.0.0.1 "" \
	    "peer 127\.0\.0\.1:[0-9]+ refused: denied by -A 127\.0\.0\.0/8"
	stop_pid "$RELAY_PID"
	stop_pid "$RELAY_PID"
	# An IPv6 range covering ::ffff:0:0/96 holds IPv4 clients (issue
	# 12: -A ::/0 let them in): deny and allow.
	relay mapped2 '[::ffff:127.0.0.1]' -a 127.0.0.1 -A ::/0
	refused "mapped peer refused by -A ::/0 (deny wins over an IPv4 -a)" \
	    127.0.0.1 "" \
	    "peer 127\.0\.0\.1:[0-9]+ refused: denied by -A ::/0, remote"
	stop_pid "$RELAY_PID"
	relay mapped3 '[::ffff:127.0.0.1]' -a ::/0
	intact "mapped peer let in by -a ::/0" 127.0.0.1
	stop_pid "$RELAY_PID"
	relay mapped4 '[::ffff:127.0.0.1]' -a 2001:db8::/32
	refused "mapped peer outside -a 2001:db8::/32 (no mapped range)" \
	    127.0.0.1 "" "peer 127\.0\.0\.1:[0-9]+ refused: in no -a range"
else
	fail "an IPv6 socket on ::ffff:127.0.0.1 listens"
fi
stop_pid "$RELAY_PID"

# An IPv4 client on an IPv4 socket is in ::/0 too.
relay v4any 127.0.0.1 -A ::/64
refused "IPv4 peer refused by -A ::/64" 127.0.0.1 "" \
    "peer 127\.0\.0\.1:[0-9]+ refused: denied by -A ::/64, remote"
stop_pid "$RELAY_PID"

# --- bad words: exit 100, the word named, then the usage line ----------
usage_line="usage: iprelay-conn [-W] [-l LIMIT] [-S DIR] [-c SECONDS] [-i SECONDS] [-s ADDRESS] [-z BYTES] [-a CIDR] [-A CIDR] HOST:PORT"
for args in "-a 10.0.0.0/33" "-A ::1/129" "-a junk" "-A 1.2.3.4/" \
    "-a 1.2.3" "-A 10.0.0.0/8,11.0.0.0/8" "-a ''"; do
	eval "set -- $args"
	err=$("$CONN" "$@" 127.0.0.1:9 </dev/null 2>&1)
	rc=$?
	is "$rc" 100 "iprelay-conn $args: exit 100"
	word=$2
	like "$(printf '%s\n' "$err" | head -n1)" \
	    "^iprelay-conn: $1 '$(printf '%s' "$word" | sed 's/[.[\*^$/]/\\&/g')' is not an address or CIDR range$" \
	    "iprelay-conn $args: names the word"
	is "$(printf '%s\n' "$err" | tail -n1)" "$usage_line" \
	    "iprelay-conn $args: then the usage line"
done

# --- iprelay ---------------------------------------------------------
err=$("$IPRELAY" -A 10.0.0.0/99 1:127.0.0.1:9 </dev/null 2>&1 >/dev/null)
is "$?" 100 "iprelay -A 10.0.0.0/99: exit 100"
like "$(printf '%s\n' "$err" | head -n1)" \
    '^iprelay: bad -A address or CIDR range: 10\.0\.0\.0/99$' \
    "iprelay -A 10.0.0.0/99: names the word"
err=$("$IPRELAY" -a 127.0.0.1,nope 1:127.0.0.1:9 </dev/null 2>&1 >/dev/null)
like "$(printf '%s\n' "$err" | head -n1)" \
    '^iprelay: bad -a address or CIDR range: nope$' \
    "iprelay -a 127.0.0.1,nope: names the bad entry"

# iprelay -A 127.0.0.1 refuses a client; commands come from a fifo.
start_origin ipr --send $DOWN_B
PORT=$(free_port)
mkfifo "$TEST_TMP/in"
# Held open read-write here first, so neither side's open blocks.
exec 7<>"$TEST_TMP/in"
# Not through spawn: a background job's stdin would be /dev/null.
"$IPRELAY" -A 127.0.0.1 -a ::1 -a 127.0.0.0/8 \
    "$PORT:127.0.0.1:$ORIGIN_PORT" <"$TEST_TMP/in" >"$TEST_TMP/ipr.out" \
    2>"$TEST_TMP/ipr.err" &
ipr_pid=$!
spawned_pids="$spawned_pids $ipr_pid"
wait_port "$PORT" 5 || diag "iprelay did not listen"
# new_output: what iprelay printed (stdout, then stderr) since mark_output.
mark_output() {
	out_mark=$(($(wc -c <"$TEST_TMP/ipr.out") + 1))
	err_mark=$(($(wc -c <"$TEST_TMP/ipr.err") + 1))
}
new_output() {
	tail -c +"$out_mark" "$TEST_TMP/ipr.out"
	tail -c +"$err_mark" "$TEST_TMP/ipr.err"
}
# say COMMAND REGEX NAME: a prompt command and the line it must print
# (after the prompt "> "), or the event it must report (on stderr), among
# what came after the command.
say() {
	mark_output
	echo "$1" >&7
	for _ in $(seq 100); do
		new_output | grep -qE "$2" && break
		sleep 0.05
	done
	like "$(new_output | grep -E "$2" | tail -n1)" "$2" "$3"
}
say "show deny" $'(^|> )deny\t127\\.0\\.0\\.1/32$' "iprelay: show deny gives -A"
say "show allow" $'(^|> )allow\t::1/128,127\\.0\\.0\\.0/8$' "iprelay: show allow gives every -a"
mark_output
result=$(probe 127.0.0.1 "$PORT")
like "$result" '^(eof|reset) 0 [01]\.' "iprelay -A 127.0.0.1: client closed at once with no data"
for _ in $(seq 100); do
	grep -q 'peer 127\.0\.0\.1:[0-9]* refused: denied by -A 127\.0\.0\.1/32' "$LOG" && break
	sleep 0.05
done
like "$(grep ' refused: ' "$LOG" | tail -n1)" \
    "iprelay-conn\[[0-9]+\]: peer 127\.0\.0\.1:[0-9]+ refused: denied by -A 127\.0\.0\.1/32, remote 127\.0\.0\.1:$ORIGIN_PORT not contacted" \
    "iprelay -A: the relay logs the refusal"
for _ in $(seq 100); do
	new_output | grep -q 'closed (no id, exit 1' && break
	sleep 0.05
done
like "$(new_output)" 'closed \(no id, exit 1: peer 127\.0\.0\.1:[0-9]+ refused: denied by -A 127\.0\.0\.1/32' \
    "iprelay reports the refusal (exit 1) with the relay's reason"
is "$(cat "$ORIGIN_REPORT" 2>/dev/null | wc -l)" 0 "iprelay -A: the origin saw no connection"

say "set deny 127.0.0.1/32,nonsense" 'Bad deny: nonsense' \
    "iprelay: set deny names a bad entry"
say "set allow 10.0.0.0/8,::1/200" 'Bad allow: ::1/200' \
    "iprelay: set allow names a bad entry"
say "show deny" $'(^|> )deny\t127\\.0\\.0\\.1/32$' "iprelay: a refused value changes nothing"
say "set deny none" $'(^|> )deny\tnone$' "iprelay: set deny none clears it"
intact "iprelay: after set deny none" 127.0.0.1
say "set allow 10.0.0.0/8" $'(^|> )allow\t10\\.0\\.0\\.0/8$' "iprelay: set allow"
result=$(probe 127.0.0.1 "$PORT")
like "$result" '^(eof|reset) 0 [01]\.' "iprelay: set allow 10.0.0.0/8 refuses 127.0.0.1"
say "show all" $'(^|> )allow\t10\\.0\\.0\\.0/8$' "iprelay: show all lists allow"
exec 7>&-
stop_pid "$ipr_pid"

done_testing
