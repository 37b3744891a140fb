#!/bin/bash
# iprelay keeps one relay started ahead per forwarder that has had a
# connection (iprelay-conn -W, given its client over a unix socket): it
# carries a client intact both ways, is replaced once used, is let go when
# a command changes what relays are started with, counts against -m, and
# ends with iprelay.  iprelay-conn -W on its own: end of file exits 0
# quietly, a message without a socket is refused naming it.
. "$IPRELAY_TOP/tests/lib.sh"
MANY="python3 $IPRELAY_TOP/tests/stress/manyconn.py"

spawn $MANY echo --port-file "$TEST_TMP/echo.port"
wait_file "$TEST_TMP/echo.port" 10 || { echo "Bail out! echo did not start"; exit 1; }
ECHO_PORT=$(cat "$TEST_TMP/echo.port")

# ahead_pids PARENT: its children still waiting for a client: started
# with -W and fd 0 still the unix socket (a relay handed its client keeps
# -W in its command line, but fd 0 is then the TCP socket).
ahead_pids() {
	local pid inode
	for pid in $(pgrep -P "$1"); do
		case " $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" in
		*" -W "*) ;;
		*) continue ;;
		esac
		inode=$(readlink "/proc/$pid/fd/0" 2>/dev/null | sed -n 's/^socket:\[\([0-9]*\)\]$/\1/p')
		[ -n "$inode" ] && awk -v i="$inode" '$7 == i { found = 1 } END { exit !found }' /proc/net/unix &&
		    echo "$pid"
	done
}
# wait_ahead PARENT COUNT: until PARENT has COUNT relays waiting (5 s).
wait_ahead() {
	for _ in $(seq 50); do
		[ "$(ahead_pids "$1" | wc -l)" -eq "$2" ] && return 0
		sleep 0.1
	done
	return 1
}
# relay_through PORT COUNT: COUNT connections at once, SHA-256 both ways
# with a half-close; prints how many were intact.
relay_through() {
	json "$($MANY run --connect "127.0.0.1:$1" --count "$2" --send 300000 \
	    --timeout 30)" intact 2>/dev/null
}

# iprelay reading commands from a fifo (held open, so no end of file).
mkfifo "$TEST_TMP/cmd"
exec 7<>"$TEST_TMP/cmd"
LPORT=$(free_port)
# (Not through spawn: a background command in a function gets /dev/null
# for stdin unless redirected on the command itself.)
"$IPRELAY_BIN/iprelay" -S "$IPRELAY_STATE_DIR" \
    "$LPORT:127.0.0.1:$ECHO_PORT" <"$TEST_TMP/cmd" >"$TEST_TMP/iprelay.out" 2>&1 &
ipid=$!
spawned_pids="$spawned_pids $ipid"
wait_listen "$LPORT" 10 || diag "iprelay did not listen on $LPORT"

is "$(pgrep -c -P "$ipid")" 0 "no relay is started before the first connection"
is "$(relay_through "$LPORT" 1)" 1 "the first connection (spawned for) is intact"
ok "then one relay waits ahead, with -W" wait_ahead "$ipid" 1
first=$(ahead_pids "$ipid")
is "$(relay_through "$LPORT" 1)" 1 "a connection given to the waiting relay is intact both ways"
ok "the used one is replaced by a new waiting relay" wait_ahead "$ipid" 1
second=$(ahead_pids "$ipid")
ok "the new one is another process ($first, then $second)" test "$first" != "$second"
ok "the used one has ended with its connection" \
    eval "! kill -0 $first 2>/dev/null"
is "$(relay_through "$LPORT" 8)" 8 "8 at once: one handed over, 7 spawned, all intact"
ok "and one waits afterwards" wait_ahead "$ipid" 1

# A setting change lets the waiting relay go: the next starts with it.
before=$(ahead_pids "$ipid")
echo "set idle_out 77" >&7
gone() { for _ in $(seq 50); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done; return 1; }
ok "set idle_out lets the waiting relay go (end of file: it exits)" gone "$before"
is "$(relay_through "$LPORT" 1)" 1 "the next connection is intact"
ok "a relay waits again" wait_ahead "$ipid" 1
like "$(tr '\0' ' ' <"/proc/$(ahead_pids "$ipid")/cmdline")" ' -i 77 ' \
    "started with the new idle_out"
like "$(cat "$TEST_TMP/iprelay.out")" 'Received connect from 127\.0\.0\.1:[0-9]+ \(forwarder 99, CONN[0-9]{6}\)' \
    "a handed-over connection is logged as before"

# iprelay gone: the waiting relay sees end of file and exits.
waiting=$(ahead_pids "$ipid")
kill -KILL "$ipid"
wait "$ipid" 2>/dev/null	# (its status, not bash's "Killed" line)
ok "kill -9 of iprelay: the waiting relay exits" gone "$waiting"

# -m 1: a forwarder never has more than one iprelay-conn.
LPORT=$(free_port)
spawn "$IPRELAY_BIN/iprelay" -m 1 -S "$IPRELAY_STATE_DIR" \
    "$LPORT:127.0.0.1:$ECHO_PORT" </dev/null >"$TEST_TMP/m1.out" 2>&1
mpid=$last_pid
wait_listen "$LPORT" 10 || diag "iprelay -m 1 did not listen on $LPORT"
is "$(relay_through "$LPORT" 1)" 1 "-m 1: a connection is intact"
ok "-m 1: one relay waits while none is open" wait_ahead "$mpid" 1
python3 -c 'import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"x"); s.recv(1); time.sleep(3)' "$LPORT" &
holder=$!
spawned_pids="$spawned_pids $holder"
sleep 1
is "$(pgrep -c -P "$mpid")" 1 "-m 1: with a connection open, one iprelay-conn in all (none ahead)"
wait "$holder" 2>/dev/null
ok "-m 1: one waits again once it closed" wait_ahead "$mpid" 1
stop_pid "$mpid"

# iprelay-conn -W alone.
python3 - "$IPRELAY_BIN/iprelay-conn" "$IPRELAY_STATE_DIR" <<'PY' >"$TEST_TMP/w.out" 2>&1
import socket, subprocess, sys
conn, state = sys.argv[1], sys.argv[2]
def run(send):
    ours, theirs = socket.socketpair()
    p = subprocess.Popen([conn, "-W", "-S", state, "127.0.0.1:9"], stdin=theirs,
                         stdout=theirs, stderr=subprocess.PIPE)
    theirs.close()
    send(ours)
    ours.close()
    try:
        _, err = p.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill(); p.communicate()
        return "hung", ""
    return p.returncode, err.decode().strip()
print("eof", *run(lambda s: None), sep="|")
print("nofd", *run(lambda s: s.sendall(b"x")), sep="|")
PY
is "$(grep '^eof|' "$TEST_TMP/w.out")" "eof|0|" "iprelay-conn -W: end of file exits 0 and says nothing"
is "$(grep '^nofd|' "$TEST_TMP/w.out")" "nofd|111|" "iprelay-conn -W: a message without a socket exits 111"
like "$(cat "$IPRELAY_LOG_FILE")" 'iprelay-conn\[[0-9]+\]: fatal: -W: unable to receive the client socket: the message on standard input carried none' \
    "and its log says why"

# A state file damaged while a relay waits ahead: once handed its client,
# the relay checks the file again and, the live state being volatile
# (iprelay-state(5)), makes it again from the configuration with one line
# and serves its client: never a signal in liblmdb, never a refusal, and
# the limit is intact.
mkdir -p "$TEST_TMP/dmg"
"$IPRELAY_BIN/iprelay-limit" -S "$TEST_TMP/dmg" set lim 1M >/dev/null
python3 - "$IPRELAY_BIN/iprelay-conn" "$TEST_TMP/dmg" "$ECHO_PORT" <<'PY' >"$TEST_TMP/dmg.out" 2>&1
import os, random, socket, subprocess, sys, time
conn, state, port = sys.argv[1], sys.argv[2], sys.argv[3]
ours, theirs = socket.socketpair()
p = subprocess.Popen([conn, "-W", "-l", "lim", "-S", state, "127.0.0.1:" + port],
                     stdin=theirs, stdout=theirs, stderr=subprocess.DEVNULL)
theirs.close()
time.sleep(1)                          # it has opened the store meanwhile
path = os.path.join(state, "iprelay.mdb")
size = os.path.getsize(path)
rng = random.Random(7)
with open(path, "r+b") as f:           # every page body after the metas
    for offset in range(8192, size, 4096):
        f.seek(offset + 16)
        f.write(bytes(rng.getrandbits(8) for _ in range(4080)))
ls = socket.socket(); ls.bind(("127.0.0.1", 0)); ls.listen(1)
client = socket.create_connection(ls.getsockname())
served, _ = ls.accept()
socket.send_fds(ours, [b"\0"], [served.fileno()])
served.close()
client.settimeout(10)
sent = os.urandom(20000)
client.sendall(sent)
client.shutdown(socket.SHUT_WR)
got = b""
try:
    while True:
        b = client.recv(65536)
        if not b:
            break
        got += b
except OSError as e:
    print("client:", e)
print("echoed", "intact" if got == sent else "%d of %d" % (len(got), len(sent)))
try:
    p.wait(timeout=10)
except subprocess.TimeoutExpired:
    p.kill(); p.wait()
    print("hung"); sys.exit()
print("status", p.returncode)
PY
is "$(cat "$TEST_TMP/dmg.out")" "echoed intact
status 0" \
    "a state file damaged while the relay waited: remade, the client served, exit 0, not a signal"
like "$(grep 'made again' "$IPRELAY_LOG_FILE" | tail -n 1)" "the live state $TEST_TMP/dmg/iprelay.mdb is unusable \\(.*\\): made again from the configuration $TEST_TMP/dmg/limits.mdb" \
    "and one line naming the live file and the configuration it was made from"
like "$("$IPRELAY_BIN/iprelay-limit" -S "$TEST_TMP/dmg" get lim)" "1048576|1M|1 ?MiB" "the limit is intact"

done_testing
