#!/bin/bash
# iprelay's command line: usage errors, bad specs, unresolvable hosts, busy
# ports, IPv6, several specs, -n and iprelay-limit, -m, finding
# iprelay-conn.
. "$IPRELAY_TOP/tests/lib.sh"

IPRELAY=$IPRELAY_BIN/iprelay
USAGE_RE='^usage: iprelay \[-d\] \[-b rate\] \[-m max\] \[-n name\] \[-p pidfile\] \[-S dir\] \[-a cidr\] \[-A cidr\] \[proxyspec \.\.\.\]$'

# refused WHY-REGEX ARGS...: exit 100, one line naming the problem, usage.
refused() {
	want=$1
	shift
	err=$("$IPRELAY" "$@" </dev/null 2>&1 >/dev/null)
	status=$?
	is "$status" 100 "iprelay $* exits 100"
	like "$(printf '%s\n' "$err" | head -n 1)" "$want" "iprelay $*: says why"
	like "$(printf '%s\n' "$err" | tail -n 1)" "$USAGE_RE" "iprelay $*: prints the usage line"
}
refused '^iprelay: -d and -b need a proxyspec' -b 512
refused '^iprelay: -d and -b need a proxyspec' -d
refused '^iprelay: unknown option: -x' -x 10080:localhost:80
refused '^iprelay: option needs a value: -b' 10080:localhost:80 -b
refused '^iprelay: bad bandwidth \(bytes/s\): fast' -b fast 10080:localhost:80
refused '^iprelay: bad connection maximum \(1-1000000\): 0' -m 0 10080:localhost:80
refused '^iprelay: bad limit name .*: a/b' -n a/b 10080:localhost:80
refused '^iprelay: bad proxyspec .*: 10080:localhost' 10080:localhost
refused '^iprelay: bad proxyspec .*: 0:localhost:80' 0:localhost:80
refused '^iprelay: bad proxyspec .*: 10080:::1:80' 10080:::1:80

man=$(mandoc -T ascii -O width=1000 "$IPRELAY_TOP/docs/iprelay.1" 2>/dev/null |
    sed 's/.\x08//g' |
    sed -n '/^SYNOPSIS/,/^DESCRIPTION/p' | tr -s ' \t\n' '   ')
like "$man" 'iprelay \[-d\] \[-b rate\] \[-m max\] \[-n name\] \[-p pidfile\] \[-S dir\] \[-a cidr\] \[-A cidr\] \[proxyspec \.\.\.\]' \
    "the usage line matches the man page's SYNOPSIS"

# Unresolvable host: one line naming it, exit 111, nothing left running.
err=$("$IPRELAY" 10080:no-such-host.invalid:80 </dev/null 2>&1 >/dev/null)
is "$?" 111 "an unresolvable host exits 111"
like "$err" 'fatal: forwarder 99: unable to resolve no-such-host\.invalid' \
    "the message names the host"

# A busy port is reported at once (the original retried for 100 s).
start_origin origin --send 200000
busy=$(free_port)
python3 -c 'import socket, sys, time
s = socket.socket(socket.AF_INET6); s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind(("::", int(sys.argv[1]))); s.listen(1); time.sleep(30)' "$busy" &
holder=$!
spawned_pids="$spawned_pids $holder"
wait_port "$busy" 5
start=$(date +%s%N)
err=$("$IPRELAY" "$busy:127.0.0.1:$ORIGIN_PORT" </dev/null 2>&1 >/dev/null)
status=$?
took=$(( ($(date +%s%N) - start) / 1000000 ))
is "$status" 111 "a busy port exits 111"
like "$err" "fatal: forwarder 99: unable to bind .* port $busy: Address already in use" \
    "the message names the port and why"
ok "reported at once (${took} ms)" test "$took" -lt 3000
stop_pid "$holder"

# Two specs: forwarders 99 and 98; IPv6 on both sides.
V4_ORIGIN=$ORIGIN_PORT
start_origin origin6 --bind ::1 --send 200000
V6_ORIGIN=$ORIGIN_PORT
ORIGIN_PORT=$V4_ORIGIN
P1=$(free_port)
P2=$(free_port)
spawn "$IPRELAY" -n cli-two "$P1:127.0.0.1:$ORIGIN_PORT" "$P2:[::1]:$V6_ORIGIN" \
    </dev/null >"$TEST_TMP/two.out" 2>"$TEST_TMP/two.err"
two=$last_pid
ok "forwarder 99 listens on IPv4" wait_port "$P1" 10
ok "forwarder 98 listens on IPv6 too" wait_port "$P2" 10 ::1
# The banner may still be on its way when the port listens: wait for its
# last line (a helper saw an empty banner here every time on a busy machine).
for _ in $(seq 50); do
	grep -q 'forwarder 98 set\.' "$TEST_TMP/two.err" 2>/dev/null && break
	sleep 0.1
done
banner=$(tr '\n\t' '| ' <"$TEST_TMP/two.err")
like "$banner" "forwarder 99 set\\..*remote_addrs ::1\\|  remote_port $V6_ORIGIN\\|.*forwarder 98 set\\." \
    "the banner lists forwarder 99 then 98 with the resolved IPv6 address"
out=$($PEER client --connect "[::1]:$P2" --send 1000)
is "$(json "$out" recv)" 200000 "IPv6 client to IPv6 remote relays everything"
out=$($PEER client --connect "127.0.0.1:$P1" --send 1000)
is "$(json "$out" recv)" 200000 "forwarder 99 relays everything"
limit=$("$IPRELAY_BIN/iprelay-limit" get cli-two 2>&1)
like "$limit" 'cli-two' "-n names the instance's limit in the store"
stop_pid "$two"
like "$(cat "$TEST_TMP/two.err")" 'Caught sig \(TERM\), closing all connections' \
    "TERM closes everything"

# The default limit name is iprelay-<first local port>.
P3=$(free_port)
spawn "$IPRELAY" -b 1K "$P3:127.0.0.1:$ORIGIN_PORT" </dev/null >/dev/null 2>&1
three=$last_pid
wait_port "$P3" 10
like "$("$IPRELAY_BIN/iprelay-limit" get "iprelay-$P3" 2>&1)" 'up: +(1K|1024)' \
    "default limit iprelay-$P3 holds -b 1K as 1024 B/s"
stop_pid "$three"

# -d -n NAME: iprelay-limit set NAME changes the running daemon.
P4=$(free_port)
"$IPRELAY" -d -n cli-daemon -b 1024 -p "$TEST_TMP/d.pid" "$P4:127.0.0.1:$ORIGIN_PORT" \
    </dev/null >/dev/null 2>&1
daemon=$(cat "$TEST_TMP/d.pid" 2>/dev/null)
spawned_pids="$spawned_pids $daemon"
wait_port "$P4" 5
ok "iprelay-limit set cli-daemon 4096" "$IPRELAY_BIN/iprelay-limit" set cli-daemon 4096
out=$($PEER client --connect "127.0.0.1:$P4" --duration 4.5)
within "$(steady_rate "$out" 1 4)" 4096 10 "the daemon now shapes to 4096 B/s"
stop_pid "$daemon"

# -m 1: a second concurrent connection is closed at once and logged.
P5=$(free_port)
spawn "$IPRELAY" -m 1 -b 2048 "$P5:127.0.0.1:$ORIGIN_PORT" </dev/null \
    >/dev/null 2>"$TEST_TMP/m.err"
mpid=$last_pid
# The banner follows the bind; a wait_port probe would take the one slot.
for _ in $(seq 100); do
	grep -q 'forwarder 99 set' "$TEST_TMP/m.err" 2>/dev/null && break
	sleep 0.1
done
$PEER client --connect "127.0.0.1:$P5" --duration 5 >"$TEST_TMP/first.json" &
first=$!
spawned_pids="$spawned_pids $first"
sleep 1.5
out=$($PEER client --connect "127.0.0.1:$P5" --duration 5)
took=$(json "$out" elapsed)
is "$(json "$out" recv)" 0 "past -m 1 the connection gets nothing"
ok "and is closed at once (${took} s after connecting)" awk -v t="$took" 'BEGIN { exit !(t != "" && t < 2) }'

like "$(cat "$TEST_TMP/m.err")" 'forwarder 99: 1 connections already \(-m\), closing the one from 127\.0\.0\.1' \
    "the refusal is logged"
wait "$first"
like "$(json "$(cat "$TEST_TMP/first.json")" recv)" '^[0-9]{4,}$' "the first connection went on"
stop_pid "$mpid"

# Finding iprelay-conn: beside iprelay, else $IPRELAY_CONN, else PATH.
mkdir -p "$TEST_TMP/alone"
cp "$IPRELAY" "$TEST_TMP/alone/iprelay"
err=$(env -u IPRELAY_CONN PATH=/usr/bin:/bin "$TEST_TMP/alone/iprelay" </dev/null 2>&1 >/dev/null)
is "$?" 111 "without iprelay-conn anywhere: exit 111"
like "$err" 'unable to find iprelay-conn' "and says what is missing"
P6=$(free_port)
spawn env IPRELAY_CONN="$IPRELAY_BIN/iprelay-conn" "$TEST_TMP/alone/iprelay" \
    "$P6:127.0.0.1:$ORIGIN_PORT" </dev/null >/dev/null 2>&1
alone=$last_pid
wait_port "$P6" 10
out=$($PEER client --connect "127.0.0.1:$P6" --send 10)
is "$(json "$out" recv)" 200000 "\$IPRELAY_CONN is used when none is beside iprelay"
stop_pid "$alone"

done_testing
