#!/bin/bash
# bench/global.sh: global limits across three "hosts" (three state dirs,
# three shaperds leasing from one private redis-server; drawers as relays),
# global rate 4 MiB/s, against issue 16's aims.  Prints one line per aim
# with its figure; a run of every aim also writes them, with the date, the
# load and the commit, to $BENCH_OUT/global.md (default bench/results);
# bench/README.md ("Global limits") discusses them.
# A sampler (bench/global-probe) reads every host's bytes, share and state
# every 20 ms on the relays' clock; windows are computed from it.
#
# usage: bench/global.sh [AIM...]   (IPRELAY_BIN: the programs, default
# ./bin; AIM: run only these aims' scenarios, e.g. "7 8"; KEEP=1 keeps the
# temporary dir with the probe's samples and the events)
set -u
TOP=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${GLOBAL_BENCH_INNER:-}" ]; then
	report=$(mktemp)
	load0=$(cut -d' ' -f1-3 /proc/loadavg)
	started=$(date -u '+%Y-%m-%d %H:%M UTC')
	GLOBAL_BENCH_INNER=1 bash "$0" "$@" | tee "$report"
	rc=${PIPESTATUS[0]}
	if [ $# -eq 0 ] && [ "$rc" = 0 ]; then
		out_dir=${BENCH_OUT:-$TOP/bench/results}
		mkdir -p "$out_dir"
		commit=$(git -C "$TOP" describe --always --dirty 2>/dev/null || echo unknown)
		{
			echo "# Global limits across three hosts (bench/global.sh)"
			echo
			echo "$started, $(nproc) CPUs, load average $load0 at the start," \
			    "$(cut -d' ' -f1-3 /proc/loadavg) at the end; tree $commit."
			echo "Three state dirs, three shaperds, one private redis-server (unix socket), drawers as relays;"
			echo "G = 4 MiB/s.  One run; bench/README.md (\"Global limits\") has the aims and the discussion."
			echo
			grep '^aim ' "$report" | sed 's/^/- /'
		} >"$out_dir/global.md"
	fi
	rm -f "$report"
	exit "$rc"
fi
BIN=${IPRELAY_BIN:-$TOP/bin}
L=$BIN/iprelay-limit
SHAPERD=$BIN/shaperd
DRAWER=$BIN/tools/drawer
PROBE=$BIN/bench/global-probe
T=$(mktemp -d /tmp/iprelay-bench-global.XXXXXX)
G=4194304
pids=""
cleanup() {
	for pid in $pids; do kill -TERM "$pid" 2>/dev/null; done
	sleep 0.5
	for pid in $pids; do kill -KILL "$pid" 2>/dev/null; done
	wait 2>/dev/null
	if [ -n "${KEEP:-}" ]; then echo "global: samples kept in $T"; else rm -rf "$T"; fi
}
AIMS=" ${*:-all} "
aim() { [ "$AIMS" = " all " ] || [[ $AIMS == *" $1 "* ]]; }
trap cleanup EXIT
for tool in redis-server redis-cli; do
	command -v $tool >/dev/null || { echo "global: $tool not installed"; exit 1; }
done
[ -x "$PROBE" ] || { echo "global: $PROBE not built (make bench)"; exit 1; }

SOCK=$T/redis.sock
export IPRELAY_REDIS=unix:$SOCK
start_redis() {
	redis-server --port 0 --unixsocket "$SOCK" --unixsocketperm 700 \
		--save '' --appendonly no --dir "$T" --logfile "$T/redis.log" &
	redis_pid=$!
	pids="$pids $redis_pid"
	for _ in $(seq 100); do
		redis-cli -s "$SOCK" ping 2>/dev/null | grep -q PONG && return
		sleep 0.05
	done
	echo "global: redis-server did not start"; exit 1
}
declare -A shaperd_pid drawers
start_shaperd() {
	mkdir -p "$T/h$1"
	"${@:2}" "$SHAPERD" -S "$T/h$1" -H "h$1" 2>>"$T/shaperd-h$1.err" &
	shaperd_pid[$1]=$!
	pids="$pids $!"
}
run_drawers() {
	local h=$1 n=$2
	shift 2
	for _ in $(seq "$n"); do
		"$DRAWER" -S "$T/h$h" -l pop3 -t 600 -o "$T/drawers-h$h.report" "$@" &
		drawers[$h]="${drawers[$h]:-} $!"
		pids="$pids $!"
	done
}
stop_drawers() {
	local pid
	for pid in ${drawers[$1]:-}; do kill -${2:-TERM} "$pid" 2>/dev/null; done
	for pid in ${drawers[$1]:-}; do wait "$pid" 2>/dev/null; done
	drawers[$1]=""
}
now_ns() { "$DRAWER" -p 0; }
event() { echo "$1 $(now_ns)" >>"$T/events"; }
# probe SECONDS: sample the three hosts for SECONDS into $T/probe.
probe() {
	"$PROBE" pop3 20 "$1" "$T/h1" "$T/h2" "$T/h3" >>"$T/probe" &
	probe_pid=$!
	pids="$pids $probe_pid"
}
analyse() { python3 "$TOP/bench/global-analyse.py" "$T" "$G" "$@"; }

start_redis
for h in 1 2 3; do start_shaperd $h; done
"$L" -S "$T/h1" set pop3 4M --global --hosts 3 >/dev/null &&
"$L" -S "$T/h2" set pop3 --global >/dev/null &&
"$L" -S "$T/h3" set pop3 --global >/dev/null || { echo "global: set --global failed"; exit 1; }
calls0=$(redis-cli -s "$SOCK" info commandstats | tr -d '\r' |
	awk -F'[=,:]' '/cmdstat_evalsha/ { print $3 }')
calls_t0=$(date +%s.%N)

# Aims 1 and 2: skewed demand, 2 s warm-up, 10 s measured; the relays of
# this run start together and report their bytes over the 12 s.
probe 150
if aim 1 || aim 2; then
start_file=$T/start
for spec in 1:6: 2:2: 3:1:-r$((G / 10)); do
	IFS=: read -r h n extra <<<"$spec"
	for _ in $(seq "$n"); do
		"$DRAWER" -S "$T/h$h" -l pop3 -t 12 -w "$start_file" \
			-o "$T/skew-h$h.report" ${extra:+$extra} &
		pids="$pids $!"
	done
done
sleep 1
"$DRAWER" -p 0.2 >"$start_file.tmp" && mv "$start_file.tmp" "$start_file"
start_ns=$(cat "$start_file")
echo "skew0 $((start_ns + 2000000000))" >>"$T/events"
echo "skew1 $((start_ns + 12000000000))" >>"$T/events"
sleep 13
analyse skew skew0 skew1
python3 - "$T" <<'PY'
import json, sys
t = sys.argv[1]
per = [json.loads(l)["window"] / 12.0 for h in (1, 2)
       for l in open("%s/skew-h%d.report" % (t, h))]
s, q = sum(per), sum(x * x for x in per)
print("aim 2: per-connection Jain over the %d bulk relays of hosts 1 and 2, 12 s: %.4f (aim >= 0.98)"
      % (len(per), s * s / (len(per) * q)))
PY
fi
run_drawers 1 6; run_drawers 2 2; run_drawers 3 1 -r $((G / 10))
sleep 3

if aim 3 || aim 9; then
# Aim 3: demand moves: host 1's relays stop.
event move; stop_drawers 1
sleep 3
analyse move move
# Aim 9: set --global 3M on host 1: the new aggregate within 300 ms.
run_drawers 1 6; sleep 3
event set0; "$L" -S "$T/h1" set pop3 3M --global >/dev/null; event set1
sleep 3
analyse set set1 3145728
"$L" -S "$T/h1" set pop3 4M --global >/dev/null
sleep 3
fi

if aim 4 || aim 5; then
# Aim 4: kill -9 of host 2's shaperd and relays.
event kill_host; kill -KILL "${shaperd_pid[2]}"; stop_drawers 2 KILL
sleep 3
analyse killhost kill_host
start_shaperd 2; run_drawers 2 2; sleep 3

# Aim 5: kill -9 of host 2's shaperd only.
event kill_shaperd; kill -KILL "${shaperd_pid[2]}"
sleep 4
analyse killshaperd kill_shaperd
start_shaperd 2; sleep 3
fi

if aim 6; then
# Aim 6: Redis stopped for 5 s; the 5 s before it are the control for
# the tick intervals (what the machine's load alone does to them).
event calm0; sleep 5; event calm1
event stop0; kill -STOP "$redis_pid"; sleep 5; event stop1; kill -CONT "$redis_pid"
sleep 3
analyse redisstop stop0 stop1 calm0 calm1
fi
calls1=$(redis-cli -s "$SOCK" info commandstats | tr -d '\r' |
	awk -F'[=,:]' '/cmdstat_evalsha/ { print $3 }')
calls_t1=$(date +%s.%N)

if aim 7; then
# Aim 7: Redis killed for longer than lease + grace (1 s + 10 s), then
# started again empty on the same socket.
event rkill; kill -KILL "$redis_pid"; wait "$redis_pid" 2>/dev/null
sleep 12.5
event rstart; start_redis
sleep 3
analyse rediskill rkill rstart
fi

if aim 8; then
# Aim 8: host 2 reaches Redis through a proxy (tests/tools/tcpproxy.py,
# one process), which is stopped for 5 s: host 2 is cut off, the others
# are not.
pport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 "$TOP/tests/tools/tcpproxy.py" "$pport" "unix:$SOCK" >"$T/proxy.out" &
proxy_pid=$!; pids="$pids $proxy_pid"
for _ in $(seq 100); do grep -q ready "$T/proxy.out" 2>/dev/null && break; sleep 0.05; done
kill -TERM "${shaperd_pid[2]}"; wait "${shaperd_pid[2]}" 2>/dev/null
start_shaperd 2 env IPRELAY_REDIS=redis://127.0.0.1:$pport
sleep 3
event cut0; kill -STOP "$proxy_pid"; sleep 5; event cut1; kill -CONT "$proxy_pid"
sleep 3
analyse cut cut0 cut1
fi
kill -TERM "$probe_pid" 2>/dev/null; wait "$probe_pid" 2>/dev/null
if aim 10; then
awk -v a="$calls0" -v b="$calls1" -v t0="$calls_t0" -v t1="$calls_t1" 'BEGIN {
	printf "aim 10: EVALSHA calls per host per global limit per second = %.1f (aim <= 10)\n", (b - a) / 3 / (t1 - t0) }'
# shaperd's CPU: leasing (host 1) against one that does not (a fourth dir,
# one local limit, the same kind of load), over 10 s.
mkdir -p "$T/h4"
env -u IPRELAY_REDIS "$SHAPERD" -S "$T/h4" 2>/dev/null &
plain_pid=$!; pids="$pids $plain_pid"
"$L" -S "$T/h4" set pop3 1M >/dev/null
for _ in 1 2; do "$DRAWER" -S "$T/h4" -l pop3 -t 15 -o /dev/null & pids="$pids $!"; done
sleep 1
cpu() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
c1a=$(cpu "${shaperd_pid[1]}"); c4a=$(cpu "$plain_pid"); ta=$(date +%s.%N)
sleep 10
c1b=$(cpu "${shaperd_pid[1]}"); c4b=$(cpu "$plain_pid"); tb=$(date +%s.%N)
awk -v a="$c1a" -v b="$c1b" -v c="$c4a" -v d="$c4b" -v t0="$ta" -v t1="$tb" -v hz="$(getconf CLK_TCK)" 'BEGIN {
	l = (b - a) / hz / (t1 - t0) * 100; p = (d - c) / hz / (t1 - t0) * 100
	printf "aim 10: shaperd CPU leasing one global limit %.2f%% of a core, without %.2f%%: +%.2f%% (aim <= 0.5%%)\n", l, p, l - p }'
fi
aim 11 || exit 0

# Aim 11: host 3's shaperd 2 hours ahead by the wall clock; one backlogged
# relay on every host: shares as without it.
stop_drawers 1; stop_drawers 2; stop_drawers 3
run_drawers 1 1; run_drawers 2 1; run_drawers 3 1
sleep 3
"$PROBE" pop3 20 3 "$T/h1" "$T/h2" "$T/h3" >"$T/probe.plain"
kill -TERM "${shaperd_pid[3]}"; wait "${shaperd_pid[3]}" 2>/dev/null
lib=$(ls /usr/lib/*/faketime/libfaketime.so.1 2>/dev/null | head -1)
if [ -n "$lib" ]; then
	start_shaperd 3 env LD_PRELOAD="$lib" FAKETIME=+2h FAKETIME_DONT_FAKE_MONOTONIC=1
	sleep 3
	"$PROBE" pop3 20 3 "$T/h1" "$T/h2" "$T/h3" >"$T/probe.fake"
	python3 - "$T" "$G" <<'PY'
import sys
t, g = sys.argv[1], int(sys.argv[2])
def shares(f):
    s = {1: [], 2: [], 3: []}
    for r in (l.split() for l in open(t + "/" + f)):
        s[int(r[1])].append(int(r[3]))
    return [sum(v) / len(v) / g * 3 for k, v in sorted(s.items())]
a, b = shares("probe.plain"), shares("probe.fake")
print("aim 11: mean share / (G/3) per host, all clocks equal: %s; host 3 at +2 h: %s"
      % (" ".join("%.3f" % x for x in a), " ".join("%.3f" % x for x in b)))
PY
else
	echo "aim 11: not measured (libfaketime not installed)"
fi
