#!/bin/bash
# A rate change through real relays (issue 12, item 3): 16 connections
# drawing at 100 MiB/s, the limit cut to 1 KiB/s, then raised back.  A
# cut must not leave the limit owing hours at the new rate: every
# connection moves again within 2 s.  Relays are iprelay-conn spawned by
# systemd-socket-activate --accept; one receiver reads all 16 on one clock.
. "$IPRELAY_TOP/tests/lib.sh"

CONN=$IPRELAY_BIN/iprelay-conn
LIMIT="$IPRELAY_BIN/iprelay-limit -S $IPRELAY_STATE_DIR"
mkdir -p "$IPRELAY_STATE_DIR"

spawn "$IPRELAY_BIN/shaperd" -S "$IPRELAY_STATE_DIR" 2>"$TEST_TMP/shaperd.err"
for _ in $(seq 200); do
	grep -q refilling "$TEST_TMP/shaperd.err" && break
	sleep 0.05
done

# More than 16 connections can take in the run at 100 MB/s.
start_origin origin --send $((512 << 20))
$LIMIT set web 100M >/dev/null
RELAY_PORT=$(free_port)
spawn systemd-socket-activate --accept -l "127.0.0.1:$RELAY_PORT" \
    -E IPRELAY_STATE_DIR -E IPRELAY_LOG_FILE \
    "$CONN" -S "$IPRELAY_STATE_DIR" -l web "127.0.0.1:$ORIGIN_PORT" \
    2>"$TEST_TMP/activate.log"
for _ in $(seq 200); do
	grep -q '^Listening on' "$TEST_TMP/activate.log" && break
	sleep 0.05
done

# Receive on 16 connections; 1.5 s after the last one's first byte set
# web 1K, 3 s after that set it back to 100M, stop 3 s later.  Prints
# per connection the bytes received in [cut + 1 s, cut + 2 s] (old
# grants long out by then: a connection moving there was granted after
# the cut), the total in [cut + 1 s, cut + 3 s], and the total bytes/s
# in [raise + 1 s, raise + 3 s]; times from when each set returned.
python3 - "$RELAY_PORT" "$LIMIT" >"$TEST_TMP/result" 2>"$TEST_TMP/recv.err" <<'PY'
import selectors, socket, subprocess, sys, time
port, limit = int(sys.argv[1]), sys.argv[2].split()
n = 16
socks = [socket.create_connection(("127.0.0.1", port), timeout=10)
         for _ in range(n)]
sel = selectors.DefaultSelector()
for i, s in enumerate(socks):
    s.setblocking(False)
    sel.register(s, selectors.EVENT_READ, i)
events = []            # (time, connection, bytes)
started = set()
t0 = None
cut = raise_ = None
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    now = time.monotonic()
    if t0 is None and len(started) == n:
        t0 = now
    if t0 is not None and cut is None and now >= t0 + 1.5:
        subprocess.run(limit + ["set", "web", "1K"], check=True,
                       stdout=subprocess.DEVNULL)
        cut = time.monotonic()
    if cut is not None and raise_ is None and now >= cut + 3:
        subprocess.run(limit + ["set", "web", "100M"], check=True,
                       stdout=subprocess.DEVNULL)
        raise_ = time.monotonic()
    if raise_ is not None and now >= raise_ + 3:
        break
    for key, _ in sel.select(timeout=0.05):
        try:
            data = key.fileobj.recv(1 << 20)
        except BlockingIOError:
            continue
        if not data:
            sel.unregister(key.fileobj)
            continue
        started.add(key.data)
        events.append((time.monotonic(), key.data, len(data)))
def between(a, b, who=None):
    return sum(c for t, w, c in events
               if a <= t < b and (who is None or w == who))
if cut is None or raise_ is None:
    print("moved= cut_total= raised_rate=0")
    sys.exit(0)
moved = [between(cut + 1, cut + 2, i) for i in range(n)]
print('moved="%s"' % " ".join(map(str, moved)))
print("cut_total=%d" % between(cut + 1, cut + 3))
print("raised_rate=%d" % (between(raise_ + 1, raise_ + 3) / 2))
print("before_rate=%d" % (between(t0 + 0.5, t0 + 1.5) / 1))
PY
moved= cut_total= raised_rate= before_rate=
. "$TEST_TMP/result"
diag "before the cut: $before_rate B/s; per connection in [cut + 1 s," \
    "cut + 2 s]: $moved; after the raise: $raised_rate B/s"
ok "cut 100M -> 1K with 16 connections: every connection moves again within 2 s" \
    awk -v m="$moved" 'BEGIN { n = split(m, a, " ")
	if (n != 16) exit 1; for (i = 1; i <= n; i++) if (a[i] < 1) exit 1 }'
# 2 s at 1 KiB/s, one burst (102 B) and a quantum per relay in flight.
ok "after the cut the limit holds 1 KiB/s ($cut_total B in 2 s)" \
    awk -v t="$cut_total" 'BEGIN { exit !(t != "" && t <= 2048 + 102 + 16 * 128) }'
# Over 102% would be a shaping error whatever the load.  Under it is the
# machine: one python loop reading 16 sockets beside seven other suites
# reached 22-33 MB/s before the cut at load 20.  So back means at least a
# third of what the same relays and receiver moved before the cut (or 60%
# of the limit); the old code moved nothing at all after the raise.
ok "raised back to 100M: the rate is back ($raised_rate B/s; before the cut $before_rate)" \
    awk -v r="$raised_rate" -v b="$before_rate" 'BEGIN {
	want = b / 3; if (want > 0.6 * 104857600) want = 0.6 * 104857600
	exit !(r != "" && r > 0 && r >= want && r <= 1.02 * 104857600 + 10485760 / 2) }'

done_testing
