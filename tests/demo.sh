#!/bin/sh
# `make run`: with arguments, run bin/iprelay with them
# (make run ARGS="-b 512 10080:example.org:80); without, a demo: a local
# HTTP origin serving a large file, a forwarder to it at 64 KiB/s, and what
# to try.
top=$(cd "$(dirname "$0")/.." && pwd)
if [ $# -gt 0 ]; then
	exec "$top/bin/iprelay" "$@"
fi

tmp=$(mktemp -d /tmp/iprelay-demo.XXXXXX)
origin_pid=
cleanup() {
	[ -n "$origin_pid" ] && kill "$origin_pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

free_port() {
	python3 -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# A sparse 256 MiB file: nothing to write, plenty to download.
truncate -s 256M "$tmp/big.bin"
origin_port=$(free_port)
# Its own session, so the ctrl-c meant for iprelay does not reach it.
setsid python3 -m http.server --bind 127.0.0.1 --directory "$tmp" \
    "$origin_port" >"$tmp/origin.log" 2>&1 &
origin_pid=$!
for _ in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
	python3 -c 'import socket, sys
socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2)' \
	    "$origin_port" 2>/dev/null && break
	sleep 0.1
done
port=$(free_port)
export IPRELAY_STATE_DIR=${IPRELAY_STATE_DIR:-$tmp/state}

cat <<EOF
demo: an HTTP origin on 127.0.0.1:$origin_port serves big.bin (256 MiB);
demo: iprelay forwards port $port to it at 64 KiB/s (limit "demo").
demo: in another terminal, watch a download crawl:
    curl -o /dev/null http://127.0.0.1:$port/big.bin
demo: then type at the prompt below
    set bandwidth 1048576
demo: and watch curl speed up to 1 MiB/s.  Also try: show stats, kill all,
demo: iprelay-limit -S $IPRELAY_STATE_DIR set demo 128K (from outside), quit.
EOF
"$top/bin/iprelay" -n demo -b 64K "$port:127.0.0.1:$origin_port"
