#!/bin/bash
# Peers that misbehave (issue 7, Faults): a client that never reads while
# the origin pushes as fast as it can (the relay's memory stays bounded:
# no unbounded buffering), and a client that connects and sends nothing
# (the idle timeout -i closes it).
[ -n "${STRESS_EMBEDDED:-}" ] || . "$IPRELAY_TOP/tests/lib.sh"
. "$IPRELAY_TOP/tests/stress/common.sh"

hold=$(pick 20 4 4)             # seconds the reader does not read
note="$(mode_note): ${hold} s"

# 1. The slow reader, unshaped (the relay moves as fast as it may).
start_origin pusher --send $((4 << 30))
start_relay slow "127.0.0.1:$ORIGIN_PORT"
spawn python3 -c 'import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
time.sleep(float(sys.argv[2]))' "$RELAY_PORT" $((hold * 2 + 10))
relay=
for _ in $(seq 100); do
	relay=$($LIMIT --json conns 2>/dev/null | python3 -c 'import json, sys
c = json.load(sys.stdin); print(c[0]["pid"] if c else "")' 2>/dev/null)
	[ -n "$relay" ] && break
	sleep 0.05
done
sleep 1
rss_first=$(rss_kb "$relay") rss_max=0
for _ in $(seq $((hold * 4))); do
	r=$(rss_kb "$relay")
	[ -n "$r" ] && [ "$r" -gt "$rss_max" ] && rss_max=$r
	sleep 0.25
done
down=$($LIMIT --json conns | python3 -c 'import json, sys
c = json.load(sys.stdin); print(c[0]["down_bytes"] if c else -1)')
diag "slow-peers: relay $relay RSS ${rss_first:-?} KiB after 1 s, at most $rss_max KiB over $hold s; $down bytes moved down"
ok "slow-peers ($note): the relay is alive while its reader stalls" kill -0 "${relay:-0}"
ok "slow-peers ($note): relay RSS grows by less than 4 MiB (${rss_first:-?} -> $rss_max KiB)" \
    awk -v a="${rss_first:-0}" -v b="$rss_max" 'BEGIN { exit !(a > 0 && b - a < 4096) }'
ok "slow-peers ($note): the relay buffered at most 16 MiB for the stalled reader ($down bytes)" \
    awk -v d="$down" 'BEGIN { exit !(d >= 0 && d < 16 * 1048576) }'

# 2. A client that connects and sends nothing: -i 2 closes it.
start_echo idle
start_relay idle -i 2 "127.0.0.1:$ECHO_PORT"
idle=$(timeout 20 python3 -c 'import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
t = time.monotonic(); s.settimeout(15)
try:
    b = s.recv(1)
    how = "eof" if not b else "data"
except socket.timeout:
    how = "timeout"
except OSError:
    how = "reset"
print(how, round(time.monotonic() - t, 2))' "$RELAY_PORT")
diag "slow-peers: idle client: $idle"
like "$idle" '^reset (1\.[89]|2\.|3\.)' "slow-peers ($note): an idle client is reset after about 2 s (-i 2), never a clean EOF"
like "$(cat "$IPRELAY_LOG_FILE" 2>/dev/null)" 'idle' "slow-peers ($note): the idle close is logged"
scenario_end
