#!/bin/bash
# valgrind memcheck over the programs' lives (not part of `make check`:
# slow, and valgrind is not a build dependency).  Runs iprelay-limit's
# commands (also on damaged state files), shaperd from start to TERM, one iprelay-conn under
# systemd-socket-activate --inetd relaying a transfer both ways on a shaped
# limit, and iprelay with its spawned relays (--trace-children) relaying
# one.  Prints each run's error and leak summary; exits 1 when any run had
# an error or a leak.  usage: tests/fuzz/memcheck.sh [BINDIR]
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
bin=$(cd "${1:-$top/bin}" && pwd)
tmp=$(mktemp -d /tmp/iprelay-memcheck.XXXXXX)
export IPRELAY_STATE_DIR=$tmp/state IPRELAY_LOG_FILE=$tmp/relay.log
VG="valgrind --leak-check=full --error-exitcode=1 --errors-for-leak-kinds=definite,indirect,possible"
PEER="python3 $top/tests/tools/peer.py"
pids=
trap 'for p in $pids; do kill -TERM $p 2>/dev/null; done; sleep 1; rm -rf "$tmp"' EXIT
runs=0 bad=0

# vg NAME CMD...: run CMD under memcheck, logs in $tmp/vg-NAME.*
vg() {
	name=$1; shift
	runs=$((runs + 1))
	$VG --log-file="$tmp/vg-$name.%p" "$@"
}

free_port() {
	python3 -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_port() {
	for _ in $(seq 200); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.05
	done
	return 1
}

L=$bin/iprelay-limit
vg limit-set $L set site 4M
vg limit-set-child $L set relay 2M --parent site --burst 64K
vg limit-get $L get relay >/dev/null
vg limit-list $L list >/dev/null
vg limit-json $L --json list >/dev/null
vg limit-conns $L conns >/dev/null
vg limit-top $L top -n 2 -d 0.1 >/dev/null
vg limit-bad $L set x abc 2>/dev/null
vg limit-del $L set gone 1K
vg limit-del $L del gone

# The refusal paths: damaged files (the store's file check reads pages
# into buffers of its own before LMDB maps anything).
for damage in truncated zero freelist; do
	mkdir -p "$tmp/$damage"
	case $damage in
	truncated) head -c 8192 "$IPRELAY_STATE_DIR/iprelay.mdb" >"$tmp/$damage/iprelay.mdb" ;;
	zero) : >"$tmp/$damage/iprelay.mdb" ;;
	freelist) cp "$top/tests/fuzz/regress/fuzz-file/freelist-idl-count" "$tmp/$damage/iprelay.mdb" ;;
	esac
	vg "damaged-$damage" $L -S "$tmp/$damage" list >/dev/null 2>&1
	vg "damaged-$damage" $L -S "$tmp/$damage" set x 1K >/dev/null 2>&1
done

runs=$((runs + 1))
$VG --log-file="$tmp/vg-shaperd.%p" "$bin/shaperd" 2>>"$tmp/shaperd.err" &
shaperd_pid=$!; pids="$pids $shaperd_pid"
sleep 3	# under valgrind it needs a moment to start

# One relay's full life: accept, register, shaped transfer both ways with
# half-close, unregister, exit.
origin_port_file=$tmp/origin.port
$PEER server --port-file "$origin_port_file" --send 3000000 --report "$tmp/origin.report" &
pids="$pids $!"
for _ in $(seq 100); do [ -s "$origin_port_file" ] && break; sleep 0.05; done
origin=127.0.0.1:$(cat "$origin_port_file")
port=$(free_port)
runs=$((runs + 1))
systemd-socket-activate -l "127.0.0.1:$port" --accept --inetd \
	-E IPRELAY_STATE_DIR -E IPRELAY_LOG_FILE \
	$VG --log-file="$tmp/vg-iprelay-conn.%p" \
	"$bin/iprelay-conn" -l relay "$origin" 2>"$tmp/sa.err" &
sa_pid=$!; pids="$pids $sa_pid"
wait_port "$port" || echo "memcheck: systemd-socket-activate did not listen"
echo "== iprelay-conn: $($PEER client --connect "127.0.0.1:$port" --send 3000000 |
	python3 -c 'import json,sys; r=json.load(sys.stdin); print("client sent", r["sent"], "received", r["recv"], "errors", r["send_error"], r["recv_error"])')"
for _ in $(seq 200); do
	grep -q 'close:' "$IPRELAY_LOG_FILE" 2>/dev/null && break; sleep 0.1
done
sleep 1
kill -TERM $sa_pid
# (wait_port's probe is a connection too: the first relay's life is a
# client that connects and closes at once.)

# iprelay and the relays it spawns.
port=$(free_port)
runs=$((runs + 1))
$VG --trace-children=yes --log-file="$tmp/vg-iprelay.%p" \
	"$bin/iprelay" -b 2M "$port:$origin" </dev/null >/dev/null 2>"$tmp/iprelay.err" &
iprelay_pid=$!; pids="$pids $iprelay_pid"
wait_port "$port" || echo "memcheck: iprelay did not listen"
echo "== iprelay: $($PEER client --connect "127.0.0.1:$port" --send 1000000 |
	python3 -c 'import json,sys; r=json.load(sys.stdin); print("client sent", r["sent"], "received", r["recv"], "errors", r["send_error"], r["recv_error"])')"
sleep 2
# stop PID: TERM, then wait up to 30 s (valgrind is slow to finish).
stop() {
	kill -TERM "$1" 2>/dev/null
	for _ in $(seq 300); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
	kill -0 "$1" 2>/dev/null && { echo "memcheck: pid $1 ignored TERM"; kill -KILL "$1"; }
	wait "$1" 2>/dev/null
}
stop $iprelay_pid
stop $shaperd_pid

for log in "$tmp"/vg-*; do
	errors=$(grep -o 'ERROR SUMMARY: [0-9]*' "$log" | grep -o '[0-9]*$')
	leaks=$(grep -E '(definitely|indirectly|possibly) lost:' "$log" |
		grep -v ' 0 bytes in 0 blocks' | wc -l)
	command=$(grep -m1 'Command:' "$log" | sed 's/.*Command: //' | cut -c1-90)
	printf '%-12s errors %s, leak lines %s: %s\n' "${log##*/vg-}" \
		"${errors:-?}" "$leaks" "$command"
	if [ "${errors:-1}" != 0 ] || [ "$leaks" != 0 ]; then
		bad=$((bad + 1)); sed -n '/HEAP SUMMARY/,$p' "$log" | head -40
		grep -B2 -A12 -E 'Invalid|uninitialised|lost in' "$log" | head -60
	fi
done
echo "memcheck: $(ls "$tmp"/vg-* | wc -l) processes, $bad with errors or leaks"
[ "$bad" = 0 ]
