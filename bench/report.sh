#!/bin/sh
# bench/report.sh VALUES NOTES: the markdown of bench/results/latest.md from
# the raw values of one run (figure, peer, repetition, value; tab-separated).
# Each cell is "median (min-max)" over the repetitions.
values=$1 notes=$2

# stat FIGURE PEER: "median min max count", or nothing.
stat() {
	awk -F '\t' -v fig="$1" -v peer="$2" '
	$1 == fig && $2 == peer && $4 != "" { v[++n] = $4 + 0 }
	END {
		if (!n) exit
		for (i = 2; i <= n; i++) { x = v[i]; for (j = i - 1; j >= 1 && v[j] > x; j--) v[j + 1] = v[j]; v[j + 1] = x }
		med = (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
		print med, v[1], v[n], n
	}' "$values"
}
fmt() {	# fmt "med min max n" [printf format]: a cell
	[ -n "$1" ] || { echo "-"; return; }
	echo "$1" | awk -v f="${2:-%.4g}" '{ printf f " (" f "–" f ")", $1, $2, $3 }'
}
cell() { fmt "$(stat "$1" "$2")" "${3:-%.4g}"; }
med() { stat "$1" "$2" | awk '{ print $1 }'; }
ratio() {	# ratio A B: A / B, or -
	awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b == 0) print "-"; else printf "%.2f", a / b }'
}
verdict() {	# verdict VALUE OP LIMIT: met / MISSED
	[ -n "$1" ] || { echo "not measured"; return; }
	awk -v v="$1" -v op="$2" -v l="$3" 'BEGIN {
		ok = (op == "<=") ? v <= l : (op == ">=") ? v >= l : (v >= 1 - l && v <= 1 + l)
		print ok ? "met" : "**missed**" }'
}
peers_of() {	# the peers that have a figure, in the order of the values file
	awk -F '\t' -v pat="$1" '$1 ~ pat && !seen[$2]++ { printf "%s ", $2 }' "$values"
}

cat <<EOF
# iprelay benchmarks: latest run

- date: $(date -u '+%Y-%m-%d %H:%M UTC'); $( [ -n "$QUICK" ] && echo "**quick run** (\`make bench-quick\`: fewer rates, shorter windows)" || echo "full run (\`make bench\`)")
- machine: $(nproc) CPUs, $(uname -sr), $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo); load average (1, 5, 15 min) at start $LOAD_START, at end $LOAD_END
- every cell: median (min–max) of $REPS interleaved repetitions (A B C A B C ...); compare ratios within this run only
- peers: $(haproxy -v 2>/dev/null | head -n 1 | awk '{ print "haproxy " $3 }'), $(nginx -v 2>&1 | sed 's/.*nginx\//nginx /'), $(socat -V 2>/dev/null | sed -n 's/^socat version \([^ ]*\).*/socat \1/p'), trickle, tc tbf; iprelay-conn under systemd-socket-activate --accept unless said

EOF

echo "## Unshaped throughput and CPU, 1 connection ($((VOLUME_B >> 20)) MiB each)"
echo
echo "| peer | MiB/s | ÷ haproxy | CPU s/GiB (relay processes) | ÷ haproxy |"
echo "|---|---|---|---|---|"
h_thr=$(med throughput haproxy)
h_cpu=$(med cpu_per_gib haproxy)
for p in $(peers_of '^throughput$'); do
	echo "| $p | $(cell throughput "$p" %.0f) | $(ratio "$(med throughput "$p")" "$h_thr") | $(cell cpu_per_gib "$p" %.3f) | $(ratio "$(med cpu_per_gib "$p")" "$h_cpu") |"
done
echo
echo "iprelay-conn = systemd-socket-activate --accept, no -l (splice); iprelay = bin/iprelay -d on an unlimited limit."
echo

echo "## Shaping accuracy: steady rate / target (aggregate of all connections on one limit)"
echo
sp=$(peers_of '^accuracy ')
printf '| rate B/s | conns |'; for p in $sp; do printf ' %s |' "$p"; done; echo
printf '|---|---|'; for p in $sp; do printf -- '---|'; done; echo
for f in $(awk -F '\t' '$1 ~ /^accuracy / && !seen[$1]++ { sub(/^accuracy /, "", $1); gsub(/ /, ":", $1); print $1 }' "$values"); do
	r=${f%%:*} n=${f##*:}
	printf '| %s | %s |' "$r" "$n"
	for p in $sp; do printf ' %s |' "$(cell "accuracy $r $n" "$p")"; done; echo
done
echo
echo "## First-second burst: bytes in the first second / (rate + burst), burst = 0.1 s of rate"
echo
printf '| rate B/s | conns |'; for p in $sp; do printf ' %s |' "$p"; done; echo
printf '|---|---|'; for p in $sp; do printf -- '---|'; done; echo
for f in $(awk -F '\t' '$1 ~ /^burst / && !seen[$1]++ { sub(/^burst /, "", $1); gsub(/ /, ":", $1); print $1 }' "$values"); do
	r=${f%%:*} n=${f##*:}
	printf '| %s | %s |' "$r" "$n"
	for p in $sp; do printf ' %s |' "$(cell "burst $r $n" "$p")"; done; echo
done
echo
echo "## Fairness: Jain's index of per-connection rates"
echo
printf '| rate B/s | conns |'; for p in $sp; do printf ' %s |' "$p"; done; echo
printf '|---|---|'; for p in $sp; do printf -- '---|'; done; echo
for f in $(awk -F '\t' '$1 ~ /^jain / && !seen[$1]++ { sub(/^jain /, "", $1); gsub(/ /, ":", $1); print $1 }' "$values"); do
	r=${f%%:*} n=${f##*:}
	printf '| %s | %s |' "$r" "$n"
	for p in $sp; do printf ' %s |' "$(cell "jain $r $n" "$p")"; done; echo
done
echo

echo "## Nested limits and reaction (iprelay only: no peer has either)"
echo
echo "| figure | value |"
echo "|---|---|"
echo "| child 1024 B/s inside parent 3072 B/s, busy sibling: child / 1024 | $(cell "nested child" iprelay-conn) |"
echo "| same: child + sibling / 3072 | $(cell "nested total" iprelay-conn) |"
echo "| reaction: ms from \`iprelay-limit set\` (64K to 256K) until two 20 ms slots run at the new rate | $(cell reaction_ms iprelay-conn %.0f) |"
echo "| reaction: the rate after the change / 256 KiB/s | $(cell "reaction after" iprelay-conn) |"
echo

echo "## Connection cost: $CPS_COUNT short connections one after another (connect, 16 bytes back, close)"
echo
echo "| peer | connections/s | ÷ socat | p50 added µs | p99 added µs | p50 added ÷ spawn floor p50 |"
echo "|---|---|---|---|---|---|"
s_rate=$(med "cps rate" socat)
floor=$(med "cps p50 added" spawn-floor)
for p in $(peers_of '^cps rate$'); do
	if [ "$p" = direct ]; then
		echo "| direct (no relay; p50, p99 absolute) | $(cell "cps rate" direct %.0f) | $(ratio "$(med "cps rate" direct)" "$s_rate") | $(cell "cps p50" direct %.0f) | $(cell "cps p99" direct %.0f) | |"
	elif [ "$p" = spawn-conn ]; then
		echo "| posix_spawn + wait of iprelay-conn exiting at its usage line (exec, ld.so, start-up) | $(cell "cps rate" "$p" %.0f) | $(ratio "$(med "cps rate" "$p")" "$s_rate") | $(cell "cps p50 added" "$p" %.0f) | $(cell "cps p99 added" "$p" %.0f) | $(ratio "$(med "cps p50 added" "$p")" "$floor") |"
	elif [ "$p" = spawn-floor ]; then
		echo "| spawn floor: posix_spawn + wait of a static no-op | $(cell "cps rate" "$p" %.0f) | $(ratio "$(med "cps rate" "$p")" "$s_rate") | $(cell "cps p50 added" "$p" %.0f) | $(cell "cps p99 added" "$p" %.0f) | 1 |"
	else
		echo "| $p | $(cell "cps rate" "$p" %.0f) | $(ratio "$(med "cps rate" "$p")" "$s_rate") | $(cell "cps p50 added" "$p" %.0f) | $(cell "cps p99 added" "$p" %.0f) | $(ratio "$(med "cps p50 added" "$p")" "$floor") |"
	fi
done
echo
echo "Added latency = the peer's percentile minus direct's in the same repetition. iprelay = bin/iprelay -d; inetd = openbsd-inetd -i -R 1000000; iprelay-conn = systemd-socket-activate --accept; iprelay-conn-nostore = the same with -S naming a dir it cannot open (it relays unregistered: the difference is the store's cost per connection)."
echo

echo "## Scale: $SCALE_CONNS concurrent shaped connections on one limit of $SCALE_RATE B/s (bin/iprelay -d -b, shaperd refilling)"
echo
echo "| figure | value |"
echo "|---|---|"
echo "| connections that received data | $(cell "scale started" iprelay %.0f) |"
echo "| seconds from the first connection's first byte to the last one's | $(cell "scale t0" iprelay %.2f) |"
echo "| first second after the first byte / (rate + burst) | $(cell "scale first second" iprelay) |"
echo "| aggregate / target | $(cell "scale accuracy" iprelay) |"
echo "| Jain's index | $(cell "scale jain" iprelay) |"
echo "| shaperd CPU, fraction of one core | $(cell "scale shaperd cpu" iprelay %.3f) |"
echo "| private memory per relay process, KiB (median of the relays) | $(cell "scale relay private KiB" iprelay %.0f) |"
echo

echo "## Aims (issue 6) against this run"
echo
echo "| aim | iprelay | verdict |"
echo "|---|---|---|"
t=$(ratio "$(med throughput iprelay-conn)" "$h_thr")
echo "| unshaped throughput ≥ 1.3x haproxy | $t x | $(verdict "$([ "$t" = - ] || echo "$t")" '>=' 1.3) |"
t=$(ratio "$(med cpu_per_gib iprelay-conn)" "$h_cpu")
echo "| CPU per GiB ≤ 0.7x haproxy | $t x | $(verdict "$([ "$t" = - ] || echo "$t")" '<=' 0.7) |"
worst=$(awk -F '\t' '$1 ~ /^accuracy / && $2 == "iprelay-conn" { k = $1; v[k] = v[k] " " $4 }
	END { w = 0; for (k in v) { n = split(v[k], a, " "); for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) { x = a[j]; a[j] = a[j - 1]; a[j - 1] = x }
		m = (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2; d = m > 1 ? m - 1 : 1 - m; if (d > w) { w = d; wk = k " = " m } }
		printf "%.4f\t%s\n", w, wk }' "$values")
echo "| shaping accuracy within 1% everywhere | worst: ${worst#*	} | $(verdict "${worst%%	*}" '<=' 0.01) |"
worst=$(awk -F '\t' '$1 ~ /^burst / && $2 == "iprelay-conn" && $4 > w { w = $4; k = $1 } END { printf "%.4f\t%s\n", w, k }' "$values")
echo "| first-second burst ≤ 1.05 | highest single run: ${worst%%	*} (${worst#*	}) | $(verdict "${worst%%	*}" '<=' 1.05) |"
j=$(awk -F '\t' '$1 ~ /^jain / && $1 ~ / 64$/ && $2 == "iprelay-conn" && (w == "" || $4 < w) { w = $4 } END { print w }' "$values")
echo "| Jain ≥ 0.99 with 64 connections | lowest single run: ${j:--} | $(verdict "$j" '>=' 0.99) |"
c=$(med "nested child" iprelay-conn); t=$(med "nested total" iprelay-conn)
echo "| nested: both within 1% | child $c, total $t | $(verdict "$c" within 0.01), $(verdict "$t" within 0.01) |"
r=$(med reaction_ms iprelay-conn)
echo "| reaction < 100 ms | $r ms | $(verdict "$r" '<=' 100) |"
t=$(ratio "$(med "cps rate" iprelay)" "$s_rate")
echo "| connections/s ≥ 1.5x socat (bin/iprelay) | $t x | $(verdict "$([ "$t" = - ] || echo "$t")" '>=' 1.5) |"
t=$(ratio "$(med "cps p50 added" iprelay)" "$floor")
echo "| p50 added latency ≤ 2x spawn floor (bin/iprelay) | $t x | $(verdict "$([ "$t" = - ] || echo "$t")" '<=' 2) |"
echo "| scale: accuracy within 2% | $(med "scale accuracy" iprelay) | $(verdict "$(med "scale accuracy" iprelay)" within 0.02) |"
echo "| scale: Jain ≥ 0.95 | $(med "scale jain" iprelay) | $(verdict "$(med "scale jain" iprelay)" '>=' 0.95) |"
echo "| scale: shaperd < 10% of a core | $(med "scale shaperd cpu" iprelay) | $(verdict "$(med "scale shaperd cpu" iprelay)" '<=' 0.1) |"
echo "| scale: relay < 1 MiB private memory | $(med "scale relay private KiB" iprelay) KiB | $(verdict "$(med "scale relay private KiB" iprelay)" '<=' 1024) |"
echo

echo "## Plots"
echo
for png in shaped-rate.png limit-change.png shares.png; do
	echo "- [$png]($png)"
done
echo
if [ -s "$notes" ]; then
	echo "## Notes from this run"
	echo
	sed 's/^/- /' "$notes"
	echo
fi
