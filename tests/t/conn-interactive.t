#!/bin/bash
# Interactive connections beside bulk ones on one limit (docs/design.md,
# "Interactive connections: the sparse lane"): an echo session sending a
# byte every 100 ms beside 16 downloads at 64 KiB/s has its bytes released
# at once, not behind the downloads' reservations, and the limit's
# aggregate is unchanged.  Before the lane (c148a5b) its round trip was
# 36 ms p50 and 47 ms p99 here; the bench (bench/contend.sh) holds the
# tight figures.  And a new short request (16 bytes out, 1 KiB back)
# beside 16 downloads on 16 KiB/s has its first byte at once (the pool of
# new relays' credit), not a round of the downloads' quanta later.
. "$IPRELAY_TOP/tests/lib.sh"

"$IPRELAY_TOP/tests/tools/origins.py" --port-file "$TEST_TMP/origins" &
spawned_pids="$spawned_pids $!"
wait_file "$TEST_TMP/origins" 10 || { echo "Bail out! origins did not start"; exit 1; }
read -r ECHO SEND _ REPLY <"$TEST_TMP/origins"
PB=$(free_port)
PE=$(free_port)
start_daemon() {	# start_daemon NAME ARGS...
	local pidf=$TEST_TMP/$1.pid
	shift
	"$IPRELAY_BIN/iprelay" -p "$pidf" "$@" >/dev/null 2>>"$TEST_TMP/daemon.err"
	spawned_pids="$spawned_pids $(cat "$pidf" 2>/dev/null)"
}
ok "iprelay -d -b 65536 with a bulk and an echo forwarder" \
    start_daemon echo -d -b 65536 "$PB:127.0.0.1:$SEND" "$PE:127.0.0.1:$ECHO"
wait_listen "$PB"
wait_listen "$PE"
# The machine itself alongside: in the same client process and run, a
# probe timing the echo origin with no relay (MODE direct), so that a
# burst of load counts on both.  A probe every 40 ms (225 round trips;
# still far under share / 4, so the relay stays in the lane) makes p99
# the third largest, not the largest: one round trip in 90 waiting 77 ms
# for a core at load 12 failed a plain run with the direct echo measured
# alone before (p99 15 ms).
conns="127.0.0.1:$PE@1=echo 127.0.0.1:$ECHO@1=direct"
for _ in $(seq 16); do conns="$conns 127.0.0.1:$PB"; done
python3 "$IPRELAY_TOP/tests/tools/contend.py" --shell --duration 12 \
    --echo-interval 0.04 --window 3 12 $conns >"$TEST_TMP/run.sh"
. "$TEST_TMP/run.sh"
direct_p99=${direct_p99_ms:-0}
total=0
for r in $rates0; do total=$((total + r)); done
total=$((total - rates0_0 - rates0_1))
diag "direct echo, no relay, alongside: p50 ${direct_p50_ms:-none} ms, p99 $direct_p99 ms"
diag "echo: $echo_n round trips, p50 $echo_p50_ms ms, p90 $echo_p90_ms ms, p99 $echo_p99_ms ms, max $echo_max_ms ms"
# A machine so busy that the echo origin alone, no relay, has a p99 over
# 5 ms (17 ms at load 17 here) gets that much more: the tail is then the
# machine's, not the relay's.  Under the sanitizers on a busy 2-core
# machine one round trip in 90 waited 295 ms for a core (p50 3 ms): there
# the bound is on p90 (40 ms), the tail being the scheduler's.  The aim
# (p99 within 5 ms of direct) is the bench's.
p99_max=$(awk -v d="$direct_p99" 'BEGIN { print (d > 5) ? 15 + d : 20 }')
tail_name=p99 tail_ms=$echo_p99_ms
if [ -n "$SANITIZED" ]; then
	p99_max=$(awk -v d="$direct_p99" 'BEGIN { print (d > 5) ? 35 + d : 40 }')
	tail_name=p90 tail_ms=$echo_p90_ms
fi
ok "the echo had its round trips measured ($echo_n)" test "$echo_n" -ge 100
ok "echo p50 under 10 ms beside 16 downloads ($echo_p50_ms)" \
    awk -v v="$echo_p50_ms" 'BEGIN { exit !(v < 10) }'
ok "echo $tail_name under $p99_max ms beside 16 downloads ($tail_ms)" \
    awk -v v="$tail_ms" -v m="$p99_max" 'BEGIN { exit !(v < m) }'
# Over the limit is a shaping error whatever the load; under it, with 17
# sanitized relays and the client's interpreter on 2 busy cores, a
# starved reader (62227 of 65536 once, 5% under): 8% there, 2% plain.
under=2
[ -n "$SANITIZED" ] && under=8
within_over_under "$total" 65536 2 "$under" "the downloads together still get 64 KiB/s"

# Short requests, first alone on the limit, then beside 16 downloads, 10
# each.  On 16 KiB/s the downloads' quanta (128 B) make a round of about
# 125 ms: a request's first draw queued behind them waits up to that (the
# old code: p50 102 ms, idle 5 ms); one from the pool goes at once.
PD=$(free_port)
PR=$(free_port)
ok "iprelay -d -b 16384 with a bulk and a request forwarder" \
    start_daemon req -d -b 16384 "$PD:127.0.0.1:$SEND" "$PR:127.0.0.1:$REPLY"
wait_listen "$PD"
wait_listen "$PR"
conns=
# 0.5 s apart, alone and beside the downloads alike: iprelay starts the
# next relay ahead after each hand-over, and a sanitized one at load 9
# took over 0.15 s to start (idle p50 234 ms with requests 0.15 s apart).
# A run ends 1.5 s after the last request: beside the downloads the rest
# of a 1 KiB answer, 128 B quanta at 16 KiB/s, queues for about 1 s.
for i in $(seq 10); do conns="$conns 127.0.0.1:$PR@$(awk -v i="$i" 'BEGIN { print i * 0.5 }')=req"; done
python3 "$IPRELAY_TOP/tests/tools/contend.py" --shell --duration 6.5 \
    $conns >"$TEST_TMP/idle.sh"
unset req_n req_first_p50_ms
. "$TEST_TMP/idle.sh"
idle_n=${req_n:-0} idle_p50=${req_first_p50_ms:-none}
conns=
for _ in $(seq 16); do conns="$conns 127.0.0.1:$PD"; done
for i in $(seq 10); do conns="$conns 127.0.0.1:$PR@$(awk -v i="$i" 'BEGIN { print 2 + i * 0.5 }')=req"; done
python3 "$IPRELAY_TOP/tests/tools/contend.py" --shell --duration 9 \
    $conns >"$TEST_TMP/busy.sh"
unset req_n req_first_p50_ms req_first_max_ms
. "$TEST_TMP/busy.sh"
diag "short request, first byte: idle p50 $idle_p50 ms ($idle_n);" \
    "beside 16 downloads p50 ${req_first_p50_ms:-none} ms, max" \
    "${req_first_max_ms:-none} ms (${req_n:-0})"
# Plain, the pool's grant is a few ms over idle; a queued first draw waits
# about a round, 125 ms.  Under the sanitizers 17 relays and the client's
# interpreter share 2 busy cores and a relay's start varies by more than
# that (p50 89 ms busy, 234 ms idle once): there the bound is 100 ms, a
# check that requests are answered beside the downloads, not of the pool.
over=40
[ -n "$SANITIZED" ] && over=100
ok "every request answered (${idle_n} idle, ${req_n:-0} busy of 10 each)" \
    test "$idle_n" -eq 10 -a "${req_n:-0}" -eq 10
ok "first byte beside 16 downloads within $over ms of idle (p50 ${req_first_p50_ms:-none}, idle $idle_p50)" \
    awk -v v="${req_first_p50_ms:-x}" -v i="$idle_p50" -v o="$over" \
    'BEGIN { exit !(v ~ /^[0-9.]+$/ && i ~ /^[0-9.]+$/ && v < i + o) }'
done_testing
