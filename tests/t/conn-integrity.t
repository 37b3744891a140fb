#!/bin/bash
# iprelay-conn never loses, duplicates or reorders a byte: 64 MiB each way
# at once, half-close in both directions, many small writes, IPv6, and the
# unshaped path of a relay on an unlimited limit (bytes counted).
. "$IPRELAY_TOP/tests/lib.sh"

CONN=$IPRELAY_BIN/iprelay-conn
mkdir -p "$IPRELAY_STATE_DIR"

# relay_to NAME HOSTPORT [LISTEN-HOST] [relay options...]: a socket-activated
# relay (fd 3) in front of HOSTPORT; sets RELAY_PORT.
relay_to() {
	local name=$1 remote=$2 host=${3:-127.0.0.1}
	shift 3
	RELAY_PORT=$(free_port)
	local listen="$host:$RELAY_PORT"
	case $host in *:*) listen="[$host]:$RELAY_PORT" ;; esac
	spawn systemd-socket-activate -l "$listen" --accept \
	    -E IPRELAY_STATE_DIR -E IPRELAY_LOG_FILE \
	    "$CONN" "$@" "$remote" 2>"$TEST_TMP/$name.sa.err"
	wait_listen "$RELAY_PORT" || diag "$name: relay did not listen"
}

# compare NAME CLIENT-JSON ORIGIN-JSON UP_B DOWN_B
compare() {
	local got
	got=$(python3 -c '
import json, sys
c, o = json.loads(sys.argv[1]), json.loads(sys.argv[2])
up, down = int(sys.argv[3]), int(sys.argv[4])
print("ok" if c["recv"] == down and c["recv_sha"] == o["sent_sha"] else
      "down: got %d want %d, sha %s" % (c["recv"], down,
      c["recv_sha"] == o["sent_sha"]))
print("ok" if o["recv"] == up and o["recv_sha"] == c["sent_sha"] else
      "up: got %d want %d, sha %s" % (o["recv"], up,
      o["recv_sha"] == c["sent_sha"]))
' "$2" "$3" "$4" "$5" 2>&1)
	is "$(printf '%s\n' "$got" | sed -n 1p)" ok "$1: remote to client intact"
	is "$(printf '%s\n' "$got" | sed -n 2p)" ok "$1: client to remote intact"
}

# 64 MiB each way at the same time.
BIG=$((64 * 1024 * 1024))
start_origin big --send $BIG
relay_to big "127.0.0.1:$ORIGIN_PORT" 127.0.0.1
t0=$(date +%s.%N)
out=$(timeout 120 $PEER client --connect "127.0.0.1:$RELAY_PORT" --send $BIG)
t1=$(date +%s.%N)
wait_file "$ORIGIN_REPORT" 20
compare "64 MiB each way" "$out" "$(tail -n1 "$ORIGIN_REPORT" 2>/dev/null || echo '{}')" $BIG $BIG
diag "64 MiB each way in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }') s"

# The same path on a limit with no rate: spliced, and counted in the store.
"$IPRELAY_BIN/iprelay-limit" set open unlimited >/dev/null ||
	diag "iprelay-limit set open unlimited failed"
MID=$((16 * 1024 * 1024))
start_origin open --send $((MID / 2))
relay_to open "127.0.0.1:$ORIGIN_PORT" 127.0.0.1 -l open
out=$(timeout 120 $PEER client --connect "127.0.0.1:$RELAY_PORT" --send $MID)
wait_file "$ORIGIN_REPORT" 20
compare "unlimited limit" "$out" "$(tail -n1 "$ORIGIN_REPORT" 2>/dev/null || echo '{}')" $MID $((MID / 2))
for _ in $(seq 50); do
	grep -q "limit open" "$IPRELAY_LOG_FILE" &&
	    grep -q "close: up $MID B" "$IPRELAY_LOG_FILE" && break
	sleep 0.1
done
totals=$("$IPRELAY_BIN/iprelay-limit" --json get open | python3 -c '
import json, sys; d = json.load(sys.stdin); print(d["up_total"], d["down_total"])')
is "$totals" "$MID $((MID / 2))" "unlimited limit: every byte counted on the limit"

# Half-close, both ways round, with a small origin and client that wait
# for end of file before answering.
cat >"$TEST_TMP/halfclose.py" <<'EOF'
import hashlib, json, os, socket, sys
role, mode = sys.argv[1], sys.argv[2]
SIZE = 1 << 20
def drain(s):
    h, n = hashlib.sha256(), 0
    while True:
        b = s.recv(65536)
        if not b:
            return n, h.hexdigest()
        n += len(b); h.update(b)
def send(s):
    data = os.urandom(SIZE)
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
    return hashlib.sha256(data).hexdigest()
if role == "origin":
    ls = socket.socket(); ls.bind(("127.0.0.1", 0)); ls.listen(4)
    with open(sys.argv[3] + ".tmp", "w") as f:
        f.write("%d\n" % ls.getsockname()[1])
    os.rename(sys.argv[3] + ".tmp", sys.argv[3])
    s, _ = ls.accept()
    if mode == "client-first":     # answer only after the client's EOF
        n, h = drain(s); sent = send(s)
    else:                          # speak first, half-close, then listen
        sent = send(s); n, h = drain(s)
    s.close()
    with open(sys.argv[4], "w") as f:
        json.dump({"recv": n, "recv_sha": h, "sent_sha": sent}, f)
else:
    host, port = sys.argv[3].rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=30)
    if mode == "client-first":
        sent = send(s); n, h = drain(s)
    else:
        n, h = drain(s); sent = send(s)
        s.recv(1)                  # the relay closes after the origin
    print(json.dumps({"recv": n, "recv_sha": h, "sent_sha": sent}))
EOF
for mode in client-first origin-first; do
	spawn python3 "$TEST_TMP/halfclose.py" origin $mode \
	    "$TEST_TMP/$mode.port" "$TEST_TMP/$mode.report"
	wait_file "$TEST_TMP/$mode.port" 10
	relay_to "$mode" "127.0.0.1:$(cat "$TEST_TMP/$mode.port")" 127.0.0.1
	out=$(timeout 30 python3 "$TEST_TMP/halfclose.py" client $mode \
	    "127.0.0.1:$RELAY_PORT")
	wait_file "$TEST_TMP/$mode.report" 10
	compare "half-close, $mode" "$out" \
	    "$(cat "$TEST_TMP/$mode.report" 2>/dev/null || echo '{}')" $((1 << 20)) $((1 << 20))
done

# Many small writes both ways (7 and 11 bytes at a time).
start_origin small --send 44000 --chunk 11 --write-delay 0.0002
relay_to small "127.0.0.1:$ORIGIN_PORT" 127.0.0.1
out=$(timeout 60 $PEER client --connect "127.0.0.1:$RELAY_PORT" --send 28000 \
    --chunk 7 --write-delay 0.0002)
wait_file "$ORIGIN_REPORT" 20
compare "many small writes" "$out" "$(tail -n1 "$ORIGIN_REPORT" 2>/dev/null || echo '{}')" 28000 44000

# IPv6 on both sides: [::1] listener, [::1] remote.
if ip -6 addr show dev lo 2>/dev/null | grep -q '::1/128'; then
	start_origin v6 --bind ::1 --send 3000000
	relay_to v6 "[::1]:$ORIGIN_PORT" ::1
	out=$(timeout 60 $PEER client --connect "[::1]:$RELAY_PORT" --send 2000000)
	wait_file "$ORIGIN_REPORT" 20
	compare "IPv6" "$out" "$(tail -n1 "$ORIGIN_REPORT" 2>/dev/null || echo '{}')" 2000000 3000000
	like "$(grep "remote \[::1\]:$ORIGIN_PORT" "$IPRELAY_LOG_FILE")" \
	    "open: peer \[::1\]:[0-9]+ via systemd, remote \[::1\]:$ORIGIN_PORT \(\[::1\]:$ORIGIN_PORT\)" \
	    "IPv6: peer and remote logged in brackets"
else
	diag "no ::1 on lo: IPv6 case skipped"
fi

done_testing
