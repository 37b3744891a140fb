#!/bin/bash
# bench/contend.sh [--quick]: shaping under contention (bench/README.md,
# "Under contention").  Writes bench/results/contend.md (build/bench-quick/
# with --quick) and prints it.
#
# chain: iprelay(1)'s chained example, `iprelay -d -b 1024 A:localhost:B`
#   into `iprelay -d -b 3072 B:pop3 C:http` (the prompt's `set forwarder 1`
#   given as a second spec), with POP3 busy first and HTTP joining 4 s
#   later, the roles swapped, and four HTTP downloads beside POP3; and a
#   client reading 8 KiB/s beside a fast one on 64 KiB/s.  The four runs go
#   at once (they are slow); rates are taken from 10 s after the second
#   download started to the end (20 s; 8 s with --quick).
#
# interactive: one limit with a bulk and an echo forwarder; 4, 16, 64
#   connections downloading or uploading as fast as allowed beside one
#   sending a byte every 100 ms to an echo origin: its round trip p50/p99
#   against the echo origin direct (timed in the same client process and
#   run, so the machine's load counts on both), the aggregate and Jain
#   among the bulk connections, at 4 KiB/s to 100 MiB/s, both directions
#   (quick: 64 KiB/s and 1 MiB/s, 16 downloads).
#
# turn: one connection reading a tenth of its share (an interactive one,
#   with sparse credit) beside 16 downloads turns bulk at 4 s: its rate
#   over [5, 12] s against the others' mean (aim: it does not outrun them
#   a second after it turned), at every ECHO_RATES rate.
#
# ttfb: a short request (16 bytes out, 1 KiB back) on an idle limit and
#   beside 64 downloads saturating it: connect to first and to last byte.
#
# The rig of the last three: origins in C (bench/tools/borigin), the bulk
# connections in C (bench/tools/bbulk), the echo, direct, turning and
# request connections in tests/tools/contend.py, both clients on one t0
# (bench/README.md, "The rig").  The chain's few KiB/s stay in Python.
#
# Environment: IPRELAY_BIN (default bin/), BENCH_OUT, SECTIONS (default
# "chain interactive turn ttfb", quick without turn); ECHO_RATES, ECHO_COUNTS, ECHO_DIRS, ECHO_D
# (seconds a run) to run part of the interactive matrix.
set -u
TOP=$(cd "$(dirname "$0")/.." && pwd)
BIN=${IPRELAY_BIN:-$TOP/bin}
QUICK=
[ "${1:-}" = --quick ] && QUICK=1
# Quick: no turn (two more 12 s runs) unless asked for.
if [ -n "$QUICK" ]; then SECTIONS=${SECTIONS:-chain interactive ttfb}
else SECTIONS=${SECTIONS:-chain interactive turn ttfb}; fi
want() { [[ " $SECTIONS " == *" $1 "* ]]; }
OUT=${BENCH_OUT:-$TOP/bench/results}
[ -n "$QUICK" ] && OUT=${BENCH_OUT:-$TOP/build/bench-quick}
# An echo run's p99 is of (ECHO_D - 2) * 10 round trips: 100 in a full
# run (its second largest), 60 quick.
if [ -n "$QUICK" ]; then
	CHAIN_D=22; CHAIN_WIN="14 22"
	: "${ECHO_D:=8}" "${ECHO_RATES:=65536 1048576}" "${ECHO_COUNTS:=16}"
	: "${ECHO_DIRS:=down}"
else
	CHAIN_D=34; CHAIN_WIN="14 34"
	: "${ECHO_D:=12}" "${ECHO_RATES:=4096 65536 1048576 104857600}"
	: "${ECHO_COUNTS:=4 16 64}" "${ECHO_DIRS:=down up}"
fi
ECHO_WIN="2 $ECHO_D"; TTFB_RATE=1048576
WORK=$(mktemp -d /tmp/iprelay-contend.XXXXXX)
export IPRELAY_STATE_DIR=$WORK/state IPRELAY_LOG_FILE=$WORK/relay.log
PEER="python3 $TOP/tests/tools/peer.py"
# The C tools are built once into build/bench-tools, as bench/run.sh
# builds bnet, and again when their source changes.
TOOLS=$TOP/build/bench-tools
mkdir -p "$TOOLS" || exit 111
for tool in borigin bbulk; do
	[ "$TOOLS/$tool" -nt "$TOP/bench/tools/$tool.c" ] && continue
	cc -std=c11 -Wall -Wextra -Werror -D_GNU_SOURCE -O2 -o "$TOOLS/$tool.$$" \
	    "$TOP/bench/tools/$tool.c" && mv -f "$TOOLS/$tool.$$" "$TOOLS/$tool" || exit 111
done
BBULK=$TOOLS/bbulk
CONTEND="python3 $TOP/tests/tools/contend.py --shell"
PIDS=()
REPORT=$WORK/report.md
: >"$REPORT"

cleanup() {
	local pid
	for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
	for pid in "$WORK"/*.pid; do
		[ -e "$pid" ] && kill "$(cat "$pid")" 2>/dev/null
	done
	wait 2>/dev/null
	rm -rf "$WORK"
}
trap cleanup EXIT
# reaped PID: PID has been waited for; cleanup must not kill its number,
# which another process may hold by then.
reaped() {
	local keep=() pid
	for pid in "${PIDS[@]}"; do [ "$pid" = "$1" ] || keep+=("$pid"); done
	PIDS=("${keep[@]}")
}
say() { printf "%3ds %s\n" "$SECONDS" "$*" >&2; }
free_port() {
	python3 -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_listen() {
	local i
	for i in $(seq 200); do
		ss -Hltn "sport = :$1" 2>/dev/null | grep -q . && return 0
		sleep 0.05
	done
	return 1
}
# origin NAME: a peer server sending without end; sets ORIGIN.
origin() {
	$PEER server --port-file "$WORK/$1.port" --send 1000000000 &
	PIDS+=($!)
	for _ in $(seq 200); do [ -s "$WORK/$1.port" ] && break; sleep 0.05; done
	ORIGIN=$(cat "$WORK/$1.port")
}
daemon() {	# daemon NAME ARGS...: iprelay -d, its pid file kept for cleanup
	local name=$1
	shift
	"$BIN/iprelay" -p "$WORK/$name.pid" -d "$@" 2>>"$WORK/daemon.err"
}
# pct VALUE WANT: the signed difference in percent, one decimal.
pct() { awk -v v="$1" -v w="$2" 'BEGIN { printf "%+.1f%%", (v - w) * 100 / w }'; }

if want chain; then
	say "== chain: iprelay(1)'s chained example; a slow client (${CHAIN_D} s)"
	origin pop; POP=$ORIGIN
	origin http; HTTP=$ORIGIN
	origin bulk; BULK=$ORIGIN
	for run in manual swap four; do
		eval "${run}_a=\$(free_port) ${run}_b=\$(free_port) ${run}_c=\$(free_port)"
		eval "daemon $run-a -b 1024 \$${run}_a:localhost:\$${run}_b"
		eval "daemon $run-b -b 3072 \$${run}_b:127.0.0.1:$POP \$${run}_c:127.0.0.1:$HTTP"
	done
	slow_port=$(free_port)
	daemon slow -b 65536 "$slow_port:127.0.0.1:$BULK"
	for p in "$manual_a" "$manual_c" "$swap_a" "$swap_c" "$four_a" "$four_c" "$slow_port"; do
		wait_listen "$p" || say "port $p never listened"
	done
	C="$CONTEND --duration $CHAIN_D --window $CHAIN_WIN"
	$C "127.0.0.1:$manual_a" "127.0.0.1:$manual_c@4" >"$WORK/manual.sh" &
	runs=($!)
	$C "127.0.0.1:$swap_a@4" "127.0.0.1:$swap_c" >"$WORK/swap.sh" &
	runs+=($!)
	$C "127.0.0.1:$four_a" "127.0.0.1:$four_c@4" "127.0.0.1:$four_c@4" \
	    "127.0.0.1:$four_c@4" "127.0.0.1:$four_c@4" >"$WORK/four.sh" &
	runs+=($!)
	PIDS+=("${runs[@]}")
	$C "127.0.0.1:$slow_port/8192" "127.0.0.1:$slow_port@4" >"$WORK/slow.sh"
	wait "${runs[@]}"
	{
		echo "## Chained instances and a slow client"
		echo
		echo "Rates from 10 s after the second download started, over" \
		    "$(awk -v w="$CHAIN_WIN" 'BEGIN { split(w, a, " "); print a[2] - a[1] }') s" \
		    "(B/s; aims: HTTP within 2% of its share, the total within 2% of the limit, POP3 never over 1024)."
		echo
		echo "| run | POP3 / slow | HTTP / fast (each) | HTTP / fast | total | HTTP vs aim | total vs aim |"
		echo "|---|---|---|---|---|---|---|"
		for run in manual swap four slow; do
			unset rates0_0 rates0_1 rates0_2 rates0_3 rates0_4
			. "$WORK/$run.sh"
			slow=$rates0_0
			fast=$((rates0_1 + ${rates0_2:-0} + ${rates0_3:-0} + ${rates0_4:-0}))
			each=$(echo "$rates0" | cut -d' ' -f2- | tr ' ' '/')
			case $run in
			manual) name="manual: POP3 busy, HTTP joins"; want_fast=2048; limit=3072 ;;
			swap) name="roles swapped: HTTP busy, POP3 joins"; want_fast=2048; limit=3072 ;;
			four) name="four HTTP beside POP3 (share 614)"; want_fast=2458; limit=3072 ;;
			slow) name="one instance, 64 KiB/s: client reading 8 KiB/s beside a fast one"; want_fast=57344; limit=65536 ;;
			esac
			echo "| $name | $slow | $each | $fast | $((slow + fast)) | $(pct "$fast" "$want_fast") | $(pct $((slow + fast)) "$limit") |"
		done
		echo
	} >>"$REPORT"
	for f in "$WORK"/*.pid; do kill "$(cat "$f")" 2>/dev/null; rm -f "$f"; done
	kill "${PIDS[@]}" 2>/dev/null
	PIDS=()
fi

load1() { cut -d' ' -f1 /proc/loadavg; }
# sink_rates T0 "A B" RATE: the aggregate and Jain of the uploads that
# reached the sink origin over [T0 + A, T0 + B] (borigin's stats, as
# origins.py's).
sink_rates() {
	python3 - "$O_STATS" "$@" <<'PY'
import json, socket, sys
port, t0, (w0, w1), rate = int(sys.argv[1]), float(sys.argv[2]), \
    map(float, sys.argv[3].split()), float(sys.argv[4])
s = socket.create_connection(("127.0.0.1", port))
sinks = json.loads(s.makefile().readline())["sinks"]
def at(marks, t):
    best = 0
    for ts, n in marks:
        if ts > t:
            break
        best = n
    return best
rates = [(at(m, t0 + w1) - at(m, t0 + w0)) / (w1 - w0) for m in sinks if m]
t = sum(rates); q = sum(r * r for r in rates)
print("%+.2f%% %.4f" % ((t - rate) * 100 / rate, t * t / (len(rates) * q) if q else 0))
PY
}
if want interactive || want turn || want ttfb; then
	"$TOOLS/borigin" -P "$WORK/origins" -S "$WORK/stats" &
	PIDS+=($!)
	for _ in $(seq 200); do [ -s "$WORK/origins" ] && [ -s "$WORK/stats" ] && break; sleep 0.05; done
	read -r O_ECHO O_SEND O_SINK O_REPLY <"$WORK/origins"
	O_STATS=$(cat "$WORK/stats")
fi
if want interactive; then
	say "== interactive: echo beside bulk on one limit"
	C="$CONTEND --duration $ECHO_D --window $ECHO_WIN"
	# Direct: the echo origin itself, no relay.
	$C "127.0.0.1:$O_ECHO=echo" >"$WORK/direct.sh"
	unset echo_p50_ms echo_p99_ms
	. "$WORK/direct.sh"
	direct_p50=$echo_p50_ms direct_p99=$echo_p99_ms
	{
		echo "## Interactive connections beside bulk ones"
		echo
		echo "One limit (\`iprelay -d -b RATE\` with a bulk and an echo forwarder); N bulk connections" \
		    "downloading (down) or uploading (up) as fast as allowed; one more sends a byte every 100 ms" \
		    "to an echo origin and times its round trip (TCP_NODELAY), over $(awk -v w="$ECHO_WIN" 'BEGIN { split(w, a, " "); print a[2] - a[1] }') s;" \
		    "in the same client process and run another does the same with the echo origin direct (no relay)." \
		    "Direct alone before the runs: p50 $direct_p50 ms, p99 $direct_p99 ms." \
		    "Aims: echo p99 within 5 ms of direct (10 ms at 4 KiB/s), aggregate within 1%, Jain >= 0.99;" \
		    "load is the 1-minute average as the run ended."
		echo
		echo "| rate B/s | bulk | dir | echo p50 ms | echo p99 ms | direct p99 ms | p99 - direct | aggregate | Jain | load | aims |"
		echo "|---|---|---|---|---|---|---|---|---|---|---|"
	} >>"$REPORT"
	for rate in $ECHO_RATES; do
		for n in $ECHO_COUNTS; do
			for dirn in $ECHO_DIRS; do
				pb=$(free_port); pe=$(free_port)
				if [ "$dirn" = up ]; then origin=$O_SINK mode="=up"; else origin=$O_SEND mode=""; fi
				daemon "echo-$rate-$n-$dirn" -b "$rate" -m 200 \
				    "$pb:127.0.0.1:$origin" "$pe:127.0.0.1:$O_ECHO" >/dev/null
				wait_listen "$pb"; wait_listen "$pe"
				# The bulk connections in C, the echo and direct
				# probes in contend.py, on one t0 a second ahead
				# (time for both to start on a loaded machine).
				t0=$($BBULK -N 1)
				$BBULK -n "$n" -d "$ECHO_D" -t "$t0" -w $ECHO_WIN \
				    ${mode:+-u} "127.0.0.1:$pb" >"$WORK/bulk.sh" &
				bulk=$!
				PIDS+=("$bulk")
				$C --t0 "$t0" "127.0.0.1:$pe@1=echo" "127.0.0.1:$O_ECHO@1=direct" >"$WORK/echo.sh"
				wait "$bulk"; reaped "$bulk"
				kill "$(cat "$WORK/echo-$rate-$n-$dirn.pid")" 2>/dev/null
				rm -f "$WORK/echo-$rate-$n-$dirn.pid"
				unset echo_p50_ms echo_p99_ms direct_p99_ms rates0 t0
				. "$WORK/echo.sh"
				. "$WORK/bulk.sh"	# its rates0: the bulk connections'
				read -r agg jain <<<"$(awk -v r="$rates0" -v rate="$rate" 'BEGIN {
					n = split(r, a, " "); t = 0; q = 0
					for (i = 1; i <= n; i++) { t += a[i]; q += a[i] * a[i] }
					printf "%+.2f%% %.4f\n", (t - rate) * 100 / rate, q ? t * t / (n * q) : 0 }')"
				# Uploads are counted where they arrive: what a client
				# has sent includes what waits in the relay's socket.
				[ "$dirn" = up ] && read -r agg jain <<<"$(sink_rates "$t0" "$ECHO_WIN" "$rate")"
				diff=$(awk -v a="${echo_p99_ms:-0}" -v b="${direct_p99_ms:-0}" 'BEGIN { printf "%+.2f", a - b }')
				aims=$(awk -v d="$diff" -v g="$agg" -v j="$jain" -v r="$rate" 'BEGIN {
					sub("%", "", g); g += 0; m = ""
					if (d > (r <= 4096 ? 10 : 5)) m = m " p99"
					if (g > 1 || g < -1) m = m " aggregate"
					if (j < 0.99) m = m " Jain"
					print m == "" ? "met" : "missed:" m }')
				echo "| $rate | $n | $dirn | ${echo_p50_ms:--} | ${echo_p99_ms:--} | ${direct_p99_ms:--} | $diff | $agg | $jain | $(load1) | $aims |" >>"$REPORT"
				say "  $rate B/s, $n $dirn: echo p50 ${echo_p50_ms:--} p99 ${echo_p99_ms:--} ms (direct ${direct_p99_ms:--}), aggregate $agg, Jain $jain, load $(load1): $aims"
			done
		done
	done
	echo >>"$REPORT"
fi

if want turn; then
	say "== turn: a connection turning bulk beside 16 downloads"
	{
		echo "## A connection that turns bulk"
		echo
		echo "One limit, 16 downloads as fast as allowed and one more reading a tenth of its share" \
		    "(rate / 17 / 10, a 4 KiB receive buffer: under a quarter, so its relay has sparse credit) until 4 s, then as fast" \
		    "as it can.  Its rate against the 16 others' mean in the second after the turn and over" \
		    "[5, 12] s.  Aim: a connection that turns bulk loses its priority within 1 s (it does not" \
		    "outrun the others: at most 1.05 of their mean over [5, 12] s)."
		echo
		echo "| rate B/s | [4, 5] s vs mean | [5, 12] s vs mean | aggregate [5, 12] s | Jain [5, 12] s, all 17 | load | aim |"
		echo "|---|---|---|---|---|---|---|"
	} >>"$REPORT"
	for rate in $ECHO_RATES; do
		pb=$(free_port)
		daemon "turn-$rate" -b "$rate" -m 200 "$pb:127.0.0.1:$O_SEND" >/dev/null
		wait_listen "$pb"
		# The turning connection in contend.py, the 16 in C.
		t0=$($BBULK -N 1)
		$BBULK -n 16 -d 12 -t "$t0" -w 5 12 -w 4 5 "127.0.0.1:$pb" >"$WORK/bulk.sh" &
		bulk=$!
		PIDS+=("$bulk")
		$CONTEND --t0 "$t0" --duration 12 --window 5 12 --window 4 5 \
		    "127.0.0.1:$pb/$(awk -v r="$rate" 'BEGIN { printf "%d", r / 170 < 1 ? 1 : r / 170 }'):4096~4" \
		    >"$WORK/turn.sh"
		wait "$bulk"; reaped "$bulk"
		kill "$(cat "$WORK/turn-$rate.pid")" 2>/dev/null
		rm -f "$WORK/turn-$rate.pid"
		unset rates0 rates1
		. "$WORK/bulk.sh"
		bulk0=$rates0 bulk1=$rates1
		. "$WORK/turn.sh"
		# The turning connection first, then the 16.
		rates0="$rates0 $bulk0" rates1="$rates1 $bulk1"
		read -r late first agg jain <<<"$(awk -v r="$rates0" -v f="$rates1" -v rate="$rate" 'BEGIN {
			n = split(r, a, " "); split(f, b, " "); t = 0; q = 0; tb = 0
			for (i = 2; i <= n; i++) { t += a[i]; tb += b[i] }
			for (i = 1; i <= n; i++) q += a[i] * a[i]
			m = t / (n - 1); mb = tb / (n - 1)
			printf "%.3f %.3f %+.2f%% %.4f\n", m ? a[1] / m : 0, mb ? b[1] / mb : 0,
			    (t + a[1] - rate) * 100 / rate, q ? (t + a[1]) ^ 2 / (n * q) : 0 }')"
		aim=$(awk -v l="$late" 'BEGIN { print l <= 1.05 ? "met" : "missed" }')
		echo "| $rate | $first | $late | $agg | $jain | $(load1) | $aim |" >>"$REPORT"
		say "  $rate B/s: turned connection $first of the mean in [4, 5] s, $late over [5, 12] s, aggregate $agg: $aim"
	done
	echo >>"$REPORT"
fi

if want ttfb; then
	# Time to first byte of a short request (16 bytes out, 1 KiB back)
	# on an idle limit and beside 64 downloads saturating it.
	say "== ttfb: a short request, idle and beside 64 downloads"
	{
		echo "## A new short request beside downloads"
		echo
		echo "Short request (16 bytes out, 1 KiB back) at $TTFB_RATE B/s, 20 of them 0.2 s apart, each a new" \
		    "connection (a new relay): connect to the answer's first and last byte." \
		    "Aim: beside 64 downloads within 5 ms of the idle limit."
		echo
		echo "| limit | requests | first byte p50 ms | first byte max ms | last byte p50 ms | last byte max ms | load |"
		echo "|---|---|---|---|---|---|---|"
	} >>"$REPORT"
	for busy in 0 64; do
		pb=$(free_port); pr=$(free_port)
		daemon "req-$busy" -b "$TTFB_RATE" -m 200 "$pb:127.0.0.1:$O_SEND" "$pr:127.0.0.1:$O_REPLY" >/dev/null
		wait_listen "$pb"; wait_listen "$pr"
		conns=""
		for i in $(seq 20); do conns="$conns 127.0.0.1:$pr@$(awk -v i="$i" 'BEGIN { print 2 + i * 0.2 }')=req"; done
		t0=$($BBULK -N 1)
		bulk=
		if [ "$busy" -gt 0 ]; then
			$BBULK -n "$busy" -d 7 -t "$t0" "127.0.0.1:$pb" >/dev/null &
			bulk=$!
			PIDS+=("$bulk")
		fi
		$CONTEND --t0 "$t0" --duration 7 --window 2 7 $conns >"$WORK/req.sh"
		if [ -n "$bulk" ]; then wait "$bulk"; reaped "$bulk"; fi
		kill "$(cat "$WORK/req-$busy.pid")" 2>/dev/null
		rm -f "$WORK/req-$busy.pid"
		unset req_n req_p50_ms req_max_ms req_first_p50_ms req_first_max_ms
		. "$WORK/req.sh"
		echo "| $([ "$busy" = 0 ] && echo idle || echo "64 downloads") | ${req_n:-0} | ${req_first_p50_ms:--} | ${req_first_max_ms:--} | ${req_p50_ms:--} | ${req_max_ms:--} | $(load1) |" >>"$REPORT"
		say "  request beside $busy downloads: first byte p50 ${req_first_p50_ms:--} ms, last byte p50 ${req_p50_ms:--} ms, max ${req_max_ms:--} ms"
	done
	echo >>"$REPORT"
fi

mkdir -p "$OUT"
{
	echo "# Under contention ($(date -u +%Y-%m-%d), load $(cut -d' ' -f1-3 /proc/loadavg)${QUICK:+, quick})"
	echo
	cat "$REPORT"
} >"$OUT/contend.md"
cat "$OUT/contend.md"
