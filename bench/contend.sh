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
#   against the echo origin direct, the aggregate and Jain among the bulk
#   connections, at 4 KiB/s to 100 MiB/s (quick: 64 KiB/s and 1 MiB/s, 16
#   downloads); and a short request (16 bytes out, 1 KiB back) on an idle
#   limit and beside 64 downloads.
#
# Environment: IPRELAY_BIN (default bin/), BENCH_OUT, SECTIONS (default
# "chain interactive").
set -u
TOP=$(cd "$(dirname "$0")/.." && pwd)
BIN=${IPRELAY_BIN:-$TOP/bin}
QUICK=
[ "${1:-}" = --quick ] && QUICK=1
SECTIONS=${SECTIONS:-chain interactive}
want() { [[ " $SECTIONS " == *" $1 "* ]]; }
OUT=${BENCH_OUT:-$TOP/bench/results}
[ -n "$QUICK" ] && OUT=${BENCH_OUT:-$TOP/build/bench-quick}
if [ -n "$QUICK" ]; then
	CHAIN_D=22; CHAIN_WIN="14 22"
	ECHO_D=5; ECHO_WIN="2 5"; ECHO_RATES="65536 1048576"; ECHO_COUNTS="16"
	ECHO_DIRS="down"; TTFB_RATE=1048576
else
	CHAIN_D=34; CHAIN_WIN="14 34"
	ECHO_D=8; ECHO_WIN="2 8"; ECHO_RATES="4096 65536 1048576 104857600"
	ECHO_COUNTS="4 16 64"; ECHO_DIRS="down up"; TTFB_RATE=1048576
fi
WORK=$(mktemp -d /tmp/iprelay-contend.XXXXXX)
export IPRELAY_STATE_DIR=$WORK/state IPRELAY_LOG_FILE=$WORK/relay.log
PEER="python3 $TOP/tests/tools/peer.py"
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

if want interactive; then
	say "== interactive: echo beside bulk on one limit"
	"$TOP/tests/tools/origins.py" --port-file "$WORK/origins" &
	PIDS+=($!)
	for _ in $(seq 200); do [ -s "$WORK/origins" ] && break; sleep 0.05; done
	read -r O_ECHO O_SEND O_SINK O_REPLY <"$WORK/origins"
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
		    "to an echo origin and times its round trip (TCP_NODELAY), over $(awk -v w="$ECHO_WIN" 'BEGIN { split(w, a, " "); print a[2] - a[1] }') s." \
		    "Direct (no relay): p50 $direct_p50 ms, p99 $direct_p99 ms." \
		    "Aims: p99 within 5 ms of direct (10 ms at 4 KiB/s), aggregate within 1%, Jain >= 0.99."
		echo
		echo "| rate B/s | bulk | dir | echo p50 ms | echo p99 ms | p99 - direct | aggregate | Jain |"
		echo "|---|---|---|---|---|---|---|---|"
	} >>"$REPORT"
	for rate in $ECHO_RATES; do
		for n in $ECHO_COUNTS; do
			for dirn in $ECHO_DIRS; do
				pb=$(free_port); pe=$(free_port)
				if [ "$dirn" = up ]; then origin=$O_SINK mode="=up"; else origin=$O_SEND mode=""; fi
				daemon "echo-$rate-$n-$dirn" -b "$rate" -m 200 \
				    "$pb:127.0.0.1:$origin" "$pe:127.0.0.1:$O_ECHO" >/dev/null
				wait_listen "$pb"; wait_listen "$pe"
				conns="127.0.0.1:$pe@1=echo"
				for _ in $(seq "$n"); do conns="$conns 127.0.0.1:$pb$mode"; done
				$C $conns >"$WORK/echo.sh"
				kill "$(cat "$WORK/echo-$rate-$n-$dirn.pid")" 2>/dev/null
				rm -f "$WORK/echo-$rate-$n-$dirn.pid"
				unset echo_p50_ms echo_p99_ms rates0 rates0_0
				. "$WORK/echo.sh"
				read -r agg jain <<<"$(awk -v r="$rates0" -v skip="$rates0_0" -v rate="$rate" 'BEGIN {
					n = split(r, a, " "); t = 0; q = 0
					for (i = 2; i <= n; i++) { t += a[i]; q += a[i] * a[i] }
					printf "%+.2f%% %.4f\n", (t - rate) * 100 / rate, q ? t * t / ((n - 1) * q) : 0 }')"
				echo "| $rate | $n | $dirn | ${echo_p50_ms:--} | ${echo_p99_ms:--} | $(awk -v a="${echo_p99_ms:-0}" -v b="$direct_p99" 'BEGIN { printf "%+.2f", a - b }') | $agg | $jain |" >>"$REPORT"
				say "  $rate B/s, $n $dirn: echo p50 ${echo_p50_ms:--} p99 ${echo_p99_ms:--} ms, aggregate $agg, Jain $jain"
			done
		done
	done
	# Time to first byte of a short request (16 bytes out, 1 KiB back)
	# on an idle limit and beside 64 downloads saturating it.
	echo >>"$REPORT"
	echo "Short request (16 bytes out, 1 KiB back), connect to last byte, at $TTFB_RATE B/s:" >>"$REPORT"
	echo >>"$REPORT"
	echo "| limit | requests | p50 ms | max ms |" >>"$REPORT"
	echo "|---|---|---|---|" >>"$REPORT"
	for busy in 0 64; do
		pb=$(free_port); pr=$(free_port)
		daemon "req-$busy" -b "$TTFB_RATE" -m 200 "$pb:127.0.0.1:$O_SEND" "$pr:127.0.0.1:$O_REPLY" >/dev/null
		wait_listen "$pb"; wait_listen "$pr"
		conns=""
		for _ in $(seq "$busy"); do conns="$conns 127.0.0.1:$pb"; done
		for i in $(seq 20); do conns="$conns 127.0.0.1:$pr@$(awk -v i="$i" 'BEGIN { print 2 + i * 0.2 }')=req"; done
		$CONTEND --duration 7 --window 2 7 $conns >"$WORK/req.sh"
		kill "$(cat "$WORK/req-$busy.pid")" 2>/dev/null
		rm -f "$WORK/req-$busy.pid"
		unset req_n req_p50_ms req_max_ms
		. "$WORK/req.sh"
		echo "| $([ "$busy" = 0 ] && echo idle || echo "64 downloads") | ${req_n:-0} | ${req_p50_ms:--} | ${req_max_ms:--} |" >>"$REPORT"
		say "  request beside $busy downloads: p50 ${req_p50_ms:--} ms, max ${req_max_ms:--} ms"
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
