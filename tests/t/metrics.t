#!/bin/bash
# shaperd --metrics: the Prometheus text format checked by promtool, every
# family with HELP and TYPE, the figures of the store; HTTP answers for
# other paths, methods and oversized requests; a client that never reads
# (and one that never sends) delays neither the tick nor other scrapes and
# is dropped at its deadline; at most 8 clients at once; a real prometheus
# scraping every second reports a limit's rate within 5%; a socket passed
# by systemd-socket-activate serves the same.
. "$IPRELAY_TOP/tests/lib.sh"

L="$IPRELAY_BIN/iprelay-limit"
SHAPERD="$IPRELAY_BIN/shaperd"
DRAWER="$IPRELAY_BIN/tools/drawer"
LIMITCTL="$IPRELAY_BIN/tools/limitctl"
NOTIFY=$TEST_TMP/notify.sock
MESSAGES=$TEST_TMP/notify.log
RATE=1048576

for tool in prometheus promtool curl ss; do
	if ! command -v $tool >/dev/null; then
		fail "$tool is installed (tests/deps.sh)"
		done_testing
		exit
	fi
done

# client.py MODE PORT REPORT [N]: "idle" makes N connections (default 1)
# and sends nothing; "noread" asks for /metrics with a 4 KiB receive
# buffer and reads nothing for 12 s; "flood" asks for /metrics, then sends
# without end while it reads the answer.  Writes "connected" to REPORT, then
# "SECONDS BYTES END": when shaperd closed the last connection, the bytes
# read, and "eof" or "reset".
cat >"$TEST_TMP/client.py" <<'PY'
import socket, sys, time
mode, port, report = sys.argv[1], int(sys.argv[2]), sys.argv[3]
count = int(sys.argv[4]) if len(sys.argv) > 4 else 1
socks = []
for _ in range(count):
    s = socket.socket()
    if mode == "noread":
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    socks.append(s)
start = time.monotonic()
if mode in ("noread", "flood"):
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: stuck\r\n\r\n")
open(report, "w").write("connected\n")
if mode == "flood":
    import select
    # Sends on past the answer's end (EOF) until shaperd closes.
    junk, got, end, eof = b"x" * 65536, 0, "timeout", False
    s.setblocking(False)
    while time.monotonic() - start < 30 and end == "timeout":
        readable, writable, _ = select.select([] if eof else [s], [s], [], 1)
        try:
            if writable:
                s.send(junk)
            if readable:
                data = s.recv(65536)
                eof = not data
                got += len(data)
        except BlockingIOError:
            pass
        except OSError:
            end = "closed"
    open(report, "a").write("%.1f %d %s\n" % (time.monotonic() - start, got, end))
    sys.exit(0)
if mode == "noread":
    time.sleep(12)    # shaperd's stall deadline is 10 s
got, end = 0, "timeout"
for s in socks:
    s.settimeout(1)
    while time.monotonic() - start < 30:
        try:
            data = s.recv(65536)
        except socket.timeout:
            continue
        except OSError:
            end = "reset"
            break
        if not data:
            end = "eof"
            break
        got += len(data)
open(report, "a").write("%.1f %d %s\n" % (time.monotonic() - start, got, end))
PY

spawn python3 "$IPRELAY_TOP/tests/tools/notifylog.py" "$NOTIFY" "$MESSAGES" 180 --stamp
for _ in $(seq 100); do [ -S "$NOTIFY" ] && break; sleep 0.05; done

# Usage: one line naming the bad word, exit 100.
bad() {
	want=$1; shift
	err=$("$SHAPERD" "$@" 2>&1 >/dev/null)
	rc=$?
	if [ "$rc" = 100 ] && printf '%s' "$err" | grep -qF -- "$want"; then
		pass "shaperd $* exits 100 naming the word"
	else
		fail "shaperd $* exits 100 naming the word"; diag "rc=$rc: $err"
	fi
}
bad "bad metrics address: 'nonsense'" --metrics nonsense
bad "bad metrics address: 'localhost:9757'" --metrics localhost:9757
bad "bad metrics address: '127.0.0.1:0'" --metrics 127.0.0.1:0
bad "bad metrics address: '::1:9757'" --metrics ::1:9757
bad "bad metrics address: '[127.0.0.1]:9757'" --metrics '[127.0.0.1]:9757'
bad "option requires an argument -- 'metrics'" --metrics
bad "invalid option -- '--no-such-option'" --no-such-option
like "$("$SHAPERD" -h)" '^usage: shaperd \[-S DIR\] \[-t TICK_MS\] \[--metrics ADDR:PORT\]$' \
	"usage line names --metrics"

"$L" set web $RATE --down unlimited >/dev/null
"$L" set kid 100K --parent web --ceil 400K >/dev/null
"$LIMITCTL" many bulk 150 1M
ok "151 more limits set" test $? = 0
# Caps (issue 12 item 4): one relay record from 192.0.2.1 on "capped",
# whose cap per source is 1, then a second from the same address is
# refused and counted.  The records name this shell, alive throughout.
"$L" set capped 1M --max-conns 50 --max-conns-per-source 1 >/dev/null
"$LIMITCTL" plant $$ 192.0.2.1:1000 192.0.2.9:80 capped >/dev/null
ok "a relay record on capped" test $? = 0
err=$("$LIMITCTL" plant $$ 192.0.2.1:1001 192.0.2.9:80 capped 2>&1 >/dev/null)
like "$err" "over the limit's cap on connections from one source" \
	"a second from 192.0.2.1 is refused by the per-source cap"

MPORT=$(free_port)
NOTIFY_SOCKET=$NOTIFY WATCHDOG_USEC=200000 spawn "$SHAPERD" \
	--metrics 127.0.0.1:$MPORT --metrics "[::1]:$MPORT" 2>>"$TEST_TMP/shaperd.err"
shaperd_pid=$last_pid
ok "shaperd listens on the metrics port" wait_listen $MPORT
err=$("$SHAPERD" -S "$TEST_TMP/other" --metrics 127.0.0.1:$MPORT 2>&1)
rc=$?
is "$rc: $err" "111: shaperd: fatal: unable to listen on 127.0.0.1:$MPORT for metrics: Address already in use" \
	"a metrics port taken: exit 111, one line"
for _ in $(seq 100); do grep -q ' READY=1$' "$MESSAGES" && break; sleep 0.05; done

# A real prometheus scrapes shaperd every second from here on, beside
# everything below; once two drawers hold "web" at its rate (up), its
# rate() over 5 s must be the limit's.
PPORT=$(free_port)
mkdir -p "$TEST_TMP/prom"
cat >"$TEST_TMP/prom/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: iprelay
    static_configs:
      - targets: ['127.0.0.1:$MPORT']
EOF
spawn prometheus --config.file="$TEST_TMP/prom/prometheus.yml" \
	--storage.tsdb.path="$TEST_TMP/prom/data" \
	--web.listen-address="127.0.0.1:$PPORT" --log.level=warn \
	2>"$TEST_TMP/prom/log"
prom_pid=$last_pid
query() {
	curl -sS --max-time 5 "http://127.0.0.1:$PPORT/api/v1/query" \
		--data-urlencode "query=$1" | python3 -c '
import json, sys
r = json.load(sys.stdin)["data"]["result"]
print(r[0]["value"][1] if r else "none")'
}

scrape() { curl -sS --max-time 5 "http://${2:-127.0.0.1}:$MPORT/metrics" >"$1"; }
status() { curl -s --max-time 5 -o /dev/null -w '%{http_code}' "$@"; }
wait_until() { while [ $SECONDS -lt "$1" ]; do sleep 0.2; done; }
# value FILE SAMPLE: the value of one sample (name and labels as written).
value() { awk -v s="$2" '$1 == s { print $2 }' "$1"; }

scrape "$TEST_TMP/s1"
ok "a scrape answers" test -s "$TEST_TMP/s1"
out=$(promtool check metrics <"$TEST_TMP/s1" 2>&1)
ok "promtool check metrics finds no problem" test $? = 0 -a -z "$out" || diag "$out"
# Every sample's family has HELP and TYPE, once, before its samples;
# counters end in _total.
problems=$(awk '
	/^# HELP / { help[$3]++; next }
	/^# TYPE / { type[$3] = $4; ntype[$3]++; next }
	/^#/ { next }
	{ name = $1; sub(/\{.*/, "", name)
	  if (!(name in help) || !(name in type)) print "no HELP/TYPE before " name
	  if (type[name] == "counter" && name !~ /_total$/) print "counter " name }
	END { for (n in ntype) if (ntype[n] != 1 || help[n] != 1) print "twice: " n }
' "$TEST_TMP/s1")
is "$problems" "" "every family has one HELP and one TYPE line before its samples"
families=$(grep -c '^# TYPE ' "$TEST_TMP/s1")
ok "at least 20 families ($families)" test "$families" -ge 20
is "$(value "$TEST_TMP/s1" 'iprelay_limit_rate_bytes_per_second{limit="web",direction="up"}')" \
	$RATE "configured rate in bytes/s"
is "$(value "$TEST_TMP/s1" 'iprelay_limit_rate_bytes_per_second{limit="web",direction="down"}')" \
	"+Inf" "an unlimited direction is +Inf"
is "$(value "$TEST_TMP/s1" 'iprelay_limit_ceiling_bytes_per_second{limit="kid",direction="up"}')" \
	409600 "ceiling"
is "$(value "$TEST_TMP/s1" 'iprelay_limit_ceiling_bytes_per_second{limit="web",direction="up"}')" \
	$RATE "no ceiling: the rate"
is "$(value "$TEST_TMP/s1" 'iprelay_limit_info{limit="kid",parent="web"}')" 1 \
	"iprelay_limit_info names the parent"
is "$(value "$TEST_TMP/s1" 'iprelay_limit_burst_bytes{limit="kid",direction="down"}')" \
	10240 "default burst: a tenth of the rate"
like "$(value "$TEST_TMP/s1" 'iprelay_limit_tokens_bytes{limit="web",direction="up"}')" \
	'^-?[0-9]+$' "tokens of a rated bucket"
is "$(value "$TEST_TMP/s1" 'iprelay_limit_tokens_bytes{limit="web",direction="down"}')" \
	"" "no tokens sample for an unlimited direction"
is "$(value "$TEST_TMP/s1" 'iprelay_limits')" 153 "iprelay_limits"
is "$(value "$TEST_TMP/s1" 'iprelay_limit_refused_connections_total{limit="capped",cap="per_source"}')" 1 \
	"the refusal is counted, by cap"
is "$(value "$TEST_TMP/s1" 'iprelay_limit_refused_connections_total{limit="capped",cap="conns"}')" 0 \
	"none by max-conns"
is "$(value "$TEST_TMP/s1" 'iprelay_limit_refused_connections_total{limit="web",cap="conns"}')" 0 \
	"a limit without caps has its refusals at 0"
is "$(value "$TEST_TMP/s1" 'iprelay_limit_max_connections{limit="capped"}') $(value "$TEST_TMP/s1" 'iprelay_limit_max_connections_per_source{limit="capped"}')" \
	"50 1" "the caps as gauges"
is "$(value "$TEST_TMP/s1" 'iprelay_limit_max_connections{limit="web"}')" "" \
	"no cap: no sample"
is "$(grep -c '^# TYPE iprelay_limit_refused_connections_total counter$' "$TEST_TMP/s1")" 1 \
	"iprelay_limit_refused_connections_total is a counter"
is "$(value "$TEST_TMP/s1" 'iprelay_store_up')" 1 "iprelay_store_up"
is "$(value "$TEST_TMP/s1" 'iprelay_refiller_active')" 1 "iprelay_refiller_active"
is "$(value "$TEST_TMP/s1" 'iprelay_store_page_size_bytes')" "$(getconf PAGESIZE)" \
	"store page size"
used=$(value "$TEST_TMP/s1" iprelay_store_used_bytes)
file=$(value "$TEST_TMP/s1" iprelay_store_file_size_bytes)
ok "store: 0 < used ($used) <= file size ($file)" test "${used:-0}" -gt 0 -a "${used:-0}" -le "${file:-0}"
# The refiller keeps 8 MiB allocated ahead: the size moves a little.
within "$file" "$(stat -c %s "$IPRELAY_STATE_DIR/iprelay.mdb")" 10 "store file size"
like "$(value "$TEST_TMP/s1" iprelay_store_free_bytes)" '^[0-9]+$' "store free bytes"
like "$(value "$TEST_TMP/s1" iprelay_store_reader_lag_transactions)" '^[0-9]+$' \
	"store reader lag"
ok "answer is larger than the socket buffers (stuck test below)" \
	test "$(wc -c <"$TEST_TMP/s1")" -gt 200000

scrape "$TEST_TMP/s6" "[::1]"
is "$(value "$TEST_TMP/s6" 'iprelay_limit_rate_bytes_per_second{limit="web",direction="up"}')" \
	$RATE "the same over IPv6"

# HTTP: other paths, methods, versions and sizes.
is "$(status "http://127.0.0.1:$MPORT/")" 404 "/ is 404"
is "$(status "http://127.0.0.1:$MPORT/metricsx")" 404 "/metricsx is 404"
is "$(status "http://127.0.0.1:$MPORT/metrics?x=1")" 200 "a query string is ignored"
is "$(status -X POST "http://127.0.0.1:$MPORT/metrics")" 405 "POST is 405"
is "$(status --http1.0 "http://127.0.0.1:$MPORT/metrics")" 200 "HTTP/1.0 is served"
is "$(status -H "X-Big: $(head -c 9000 /dev/zero | tr '\0' a)" \
	"http://127.0.0.1:$MPORT/metrics")" 431 "a 9 KB header is 431"
head=$(curl -sS --max-time 5 -I "http://127.0.0.1:$MPORT/metrics" | tr -d '\r')
like "$head" 'Content-Type: text/plain; version=0\.0\.4; charset=utf-8' \
	"HEAD: the exposition format's content type"
like "$head" 'Content-Length: [0-9]{6}' "HEAD: the length of the body, no body"
garbage=$(printf 'hello\r\n\r\n' | timeout 5 python3 -c '
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(sys.stdin.buffer.read()); print(s.recv(100).decode().split("\r\n")[0])' $MPORT)
is "$garbage" "HTTP/1.1 400 Bad Request" "a line that is no request is 400"

ready=0
for _ in $(seq 300); do
	[ "$(status "http://127.0.0.1:$PPORT/-/ready")" = 200 ] && { ready=1; break; }
	sleep 0.1
done
ok "prometheus is ready" test $ready = 1 || diag "$(tail -5 "$TEST_TMP/prom/log")"
up=none
for _ in $(seq 100); do
	up=$(query 'up{job="iprelay"}' 2>/dev/null)
	[ "$up" = 1 ] && break
	sleep 0.2
done
is "$up" 1 "prometheus scrapes shaperd (up 1)"
stuck_from=$SECONDS

# A client that never reads and one that never sends.  The refiller's
# tick, the watchdog and other scrapes carry on beside them.
spawn python3 "$TEST_TMP/client.py" noread $MPORT "$TEST_TMP/noread"
wait_file "$TEST_TMP/noread" 10
spawn python3 "$TEST_TMP/client.py" idle $MPORT "$TEST_TMP/idle"
wait_file "$TEST_TMP/idle" 10
sleep 1
sendq=$(ss -Htn state established "( sport = :$MPORT )" | awk '{ print $2 }' | sort -n | tail -1)
ok "the stuck client's answer waits (Send-Q $sendq bytes)" test "${sendq:-0}" -gt 0
watch_from=$(python3 -c 'import time; print(time.monotonic())')
scrape "$TEST_TMP/t1"
ticks1=$(value "$TEST_TMP/t1" iprelay_refiller_ticks_total)
ticks1_at=$EPOCHREALTIME
spawn "$DRAWER" -l kid -t 60 -o "$TEST_TMP/victim.report"
victim=$last_pid
for _ in $(seq 100); do [ "$("$L" conns | grep -c ' kid ')" = 1 ] && break; sleep 0.05; done
{ kill -KILL "$victim"; wait "$victim"; } 2>/dev/null
slow=0
for i in 1 2 3 4; do
	sleep 0.5
	took=$(curl -sS --max-time 5 -o "$TEST_TMP/t2" -w '%{time_total}' \
		"http://127.0.0.1:$MPORT/metrics")
	awk -v t="$took" 'BEGIN { exit !(t < 2) }' || slow="$slow $took"
done
is "$slow" 0 "4 scrapes beside the stuck clients each answered within 2 s"
ticks2=$(value "$TEST_TMP/t2" iprelay_refiller_ticks_total)
ticks_s=$(awk -v a="$ticks1_at" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
# 10 a second; a loaded machine may skip some.
ok "ticks go on beside them ($ticks1 -> $ticks2 in $ticks_s s)" \
	awk -v n=$((${ticks2:-0} - ${ticks1:-0})) -v s="$ticks_s" 'BEGIN { exit !(n >= 3 * s) }'
is "$(value "$TEST_TMP/t2" iprelay_refiller_reaped_relays_total)" 1 \
	"a relay killed beside them is reaped (iprelay_refiller_reaped_relays_total)"
is "$(value "$TEST_TMP/t2" 'iprelay_limit_connections{limit="web"}')" 0 \
	"and no longer counted on its limit's parent"
gap=$(awk -v from="$watch_from" '$2 == "WATCHDOG=1" && $1 >= from {
	if (last && $1 - last > max) max = $1 - last; last = $1 }
	END { printf "%.2f", max }' "$MESSAGES")
ok "WATCHDOG=1 every 0.1 s goes on: largest gap $gap s (under 1 s)" \
	awk -v g="$gap" 'BEGIN { exit !(g > 0 && g < 1) }'

# Eight seconds of traffic at the limit's rate, scraped every second.
for _ in 1 2; do
	spawn "$DRAWER" -l web -d up -t 20 -o "$TEST_TMP/web.report"
done
traffic_from=$SECONDS
wait_until $((traffic_from + 8))
under=5
[ -n "$SANITIZED" ] && under=10
got=$(query 'rate(iprelay_limit_bytes_total{limit="web",direction="up"}[5s])')
within_over_under "$got" $RATE 5 $under "prometheus: rate(iprelay_limit_bytes_total[5s]) is the limit's rate"
got=$(query 'iprelay_limit_current_rate_bytes_per_second{limit="web",direction="up",window="5s"}')
within_over_under "$got" $RATE 5 $under "prometheus: the refiller's 5 s rate is the limit's rate"
got=$(query 'iprelay_limit_connections{limit="web"}')
is "$got" 2 "prometheus: 2 live relays on web"
# Its scrapes since the stuck clients came: one a second, and (a slow
# answer under load aside) successful.
window=$((SECONDS - stuck_from))
count=$(query "count_over_time(up{job=\"iprelay\"}[${window}s])")
sum=$(query "sum_over_time(up{job=\"iprelay\"}[${window}s])")
ok "prometheus scraped beside the stuck clients: $sum of $count scrapes in $window s succeeded" \
	awk -v c="${count:-0}" -v s="${sum:-0}" -v w=$window \
	'BEGIN { exit !(c >= w * 0.7 && s >= c * 0.7) }'
stop_pid "$prom_pid"

# The clients that never sent and never read were dropped at their
# deadlines: 5 s to send a request, 10 s to take the next byte.
for _ in $(seq 100); do [ "$(wc -l <"$TEST_TMP/idle")" -ge 2 ] && break; sleep 0.1; done
idle_s=$(tail -1 "$TEST_TMP/idle" | cut -d' ' -f1)
ok "a client that sends nothing is dropped after 5 s (after $idle_s s)" \
	awk -v t="$idle_s" 'BEGIN { exit !(t >= 4.5 && t < 9) }'
for _ in $(seq 150); do [ "$(wc -l <"$TEST_TMP/noread")" -ge 2 ] && break; sleep 0.1; done
noread=$(tail -1 "$TEST_TMP/noread")
like "$noread" " reset$" "the client that stopped reading was dropped with a reset (after: $noread)"

# At most 8 clients at once: with 8 idle ones holding every slot, a
# ninth is answered when they are dropped, about 5 s later.
spawn python3 "$TEST_TMP/client.py" idle $MPORT "$TEST_TMP/hold" 8
wait_file "$TEST_TMP/hold" 10
sleep 0.2
took=$(curl -sS --max-time 20 -o "$TEST_TMP/late" -w '%{time_total}' \
	"http://127.0.0.1:$MPORT/metrics")
ok "a ninth client waits for a free slot ($took s; 4 to 9 expected)" \
	awk -v t="$took" 'BEGIN { exit !(t >= 4 && t < 9) }'
ok "and is then answered" grep -q '^iprelay_store_up 1$' "$TEST_TMP/late"

# A client that sends without end is answered, then dropped when the
# second shaperd waits for it to close has passed; meanwhile it holds the
# loop no longer than 64 KiB a wake-up.
scrape "$TEST_TMP/f1"
ticks1=$(value "$TEST_TMP/f1" iprelay_refiller_ticks_total)
ticks1_at=$EPOCHREALTIME
python3 "$TEST_TMP/client.py" flood $MPORT "$TEST_TMP/flood"
flood=$(tail -1 "$TEST_TMP/flood")
scrape "$TEST_TMP/f2"
ticks2=$(value "$TEST_TMP/f2" iprelay_refiller_ticks_total)
ticks_s=$(awk -v a="$ticks1_at" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
got_all=$(wc -c <"$TEST_TMP/f1")
ok "a client sending without end gets its answer and is dropped within 5 s ($flood; $got_all bytes expected)" \
	awk -v t="${flood%% *}" -v e="${flood##* }" -v f="$flood" -v want=$got_all \
	'BEGIN { split(f, w, " "); exit !(t >= 0.9 && t < 5 && e == "closed" && w[2] > want * 0.99) }'
ok "ticks go on beside it ($ticks1 -> $ticks2 in $ticks_s s)" \
	awk -v n=$((${ticks2:-0} - ${ticks1:-0})) -v s="$ticks_s" 'BEGIN { exit !(n >= 3 * s) }'

stop_pid "$shaperd_pid"
ok "shaperd stops on TERM and frees the port" \
	test "$(ss -Hltn "sport = :$MPORT" | wc -l)" = 0

# Socket activation: a listening socket passed as systemd does (LISTEN_FDS).
SPORT=$(free_port)
spawn systemd-socket-activate -l 127.0.0.1:$SPORT "$SHAPERD" -S "$TEST_TMP/activated" \
	2>"$TEST_TMP/activated.err"
ok "systemd-socket-activate listens" wait_listen $SPORT
curl -sS --max-time 10 "http://127.0.0.1:$SPORT/metrics" >"$TEST_TMP/sa"
is "$(value "$TEST_TMP/sa" iprelay_limits)" 0 "the passed socket serves the new state dir's metrics"
like "$(cat "$TEST_TMP/activated.err")" "metrics on 1 socket passed by systemd" \
	"shaperd says it took the passed socket"

done_testing
