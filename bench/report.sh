#!/bin/bash
# bench/report.sh VALUES NOTES: the markdown of bench/results/latest.md from
# the raw values of one run (figure, peer, repetition, value; tab-separated).
# Each cell is "median (min-max)" over the repetitions.
#
# One awk pass formats every cell; the rest is shell builtins, with no
# command substitution in the tables: an awk per cell took 13 s of a quick
# run on the loaded 2-core machine, where even a fork costs milliseconds.
values=$1 notes=$2
export LC_ALL=C
T=$'\t'

# CELL[FMT<tab>FIGURE<tab>PEER]: "median (min–max)" in FMT (%.4g, %.0f,
# %.3f, %.2f); MED[FIGURE<tab>PEER]: the median (%.6g); FIGS: the figures
# in the order of the values file, PEERS[FIGURE]: their peers in order.
declare -A CELL MED PEERS
FIGS=()
while IFS=$T read -r kind a b c d; do
	case $kind in
	C) CELL["$a$T$b$T$c"]=$d ;;
	M) MED["$a$T$b"]=$c ;;
	F) FIGS+=("$a") ;;
	P) PEERS[$a]="${PEERS[$a]:-}$b " ;;
	esac
done < <(awk -F '\t' '
	$4 != "" {
		k = $1 "\t" $2
		if (!(k in n)) order[++keys] = k
		if (!($1 in seenf)) { seenf[$1] = 1; print "F\t" $1 }
		v[k, ++n[k]] = $4 + 0
	}
	END {
		split("%.4g %.0f %.3f %.2f", fmts, " ")
		for (q = 1; q <= keys; q++) {
			k = order[q]; m = n[k]
			for (i = 1; i <= m; i++) a[i] = v[k, i]
			for (i = 2; i <= m; i++) { x = a[i]; for (j = i - 1; j >= 1 && a[j] > x; j--) a[j + 1] = a[j]; a[j + 1] = x }
			med = (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
			print "P\t" k
			printf "M\t%s\t%.6g\n", k, med
			for (f = 1; f <= 4; f++)
				printf "C\t%s\t%s\t" fmts[f] " (" fmts[f] "–" fmts[f] ")\n", fmts[f], k, med, a[1], a[m]
		}
	}' "$values")

# cell FIGURE PEER [FMT]: the cell, printed ("-" if not measured).
cell() { printf '%s' "${CELL["${3:-%.4g}$T$1$T$2"]:--}"; }
# med VAR FIGURE PEER: VAR = the median, or empty.
med() { printf -v "$1" '%s' "${MED["$2$T$3"]:-}"; }
# micro VAR X: VAR = X (a decimal, maybe 1e-05 or -12.5) in millionths.
micro() {
	local _x _s=
	printf -v _x '%.6f' "$2"
	[[ $_x == -* ]] && { _s=-; _x=${_x#-}; }
	printf -v "$1" '%s' "$_s$((10#${_x%%.*} * 1000000 + 10#${_x#*.}))"
}
# ratio VAR A B: VAR = A / B to two decimals, or "-".
ratio() {
	local _a _b _q _s=
	[ -n "$2" ] && [ -n "$3" ] || { printf -v "$1" -- -; return; }
	micro _a "$2"; micro _b "$3"
	[ "$_b" != 0 ] || { printf -v "$1" -- -; return; }
	(( (_a < 0) != (_b < 0) )) && _s=-
	_a=${_a#-} _b=${_b#-}
	_q=$(( (_a * 200 + _b) / (2 * _b) ))	# hundredths, rounded
	[ "$_q" = 0 ] && _s=
	printf -v "$1" '%s%d.%02d' "$_s" $((_q / 100)) $((_q % 100))
}
# rat FA PA FB PB: print median(FA, PA) / median(FB, PB).
rat() {
	local ra rb rr
	med ra "$1" "$2"; med rb "$3" "$4"; ratio rr "$ra" "$rb"; printf '%s' "$rr"
}
# verdict VAR VALUE OP LIMIT: VAR = met / **missed** / not measured.
verdict() {
	local _v _l _ok
	[ -n "$2" ] && [ "$2" != - ] || { printf -v "$1" 'not measured'; return; }
	micro _v "$2"; micro _l "$4"
	case $3 in
	'<=') _ok=$((_v <= _l)) ;;
	'>=') _ok=$((_v >= _l)) ;;
	*) _ok=$((_v >= 1000000 - _l && _v <= 1000000 + _l)) ;;
	esac
	[ "$_ok" = 1 ] && printf -v "$1" met || printf -v "$1" '**missed**'
}
# peers_of VAR PATTERN: VAR = the peers that have a figure matching the
# (bash) PATTERN, in the order of the values file.
peers_of() {
	local f p list=" "
	for f in "${FIGS[@]}"; do
		[[ $f =~ $2 ]] || continue
		for p in ${PEERS[$f]}; do [[ $list == *" $p "* ]] || list="$list$p "; done
	done
	printf -v "$1" '%s' "$list"
}
# figs_of VAR PREFIX: VAR = "RATE:CONNS ..." of the figures "PREFIX RATE CONNS".
figs_of() {
	local f list=
	for f in "${FIGS[@]}"; do
		[[ $f == "$2 "* ]] || continue
		f=${f#"$2 "}
		list="$list ${f// /:}"
	done
	printf -v "$1" '%s' "$list"
}
# rate_table PREFIX: one row per rate and count, one column per shaping peer.
rate_table() {
	local f r n p rows
	printf '| rate B/s | conns |'; for p in $sp; do printf ' %s |' "$p"; done; echo
	printf '|---|---|'; for p in $sp; do printf -- '---|'; done; echo
	figs_of rows "$1"
	for f in $rows; do
		r=${f%%:*} n=${f##*:}
		printf '| %s | %s |' "$r" "$n"
		for p in $sp; do printf ' '; cell "$1 $r $n" "$p"; printf ' |'; done; echo
	done
}

if [ -n "$QUICK" ]; then
	kind="**quick run** (\`make bench-quick\`: fewer rates, shorter windows)"
else
	kind="full run (\`make bench\`)"
fi
cat <<EOF
# iprelay benchmarks: latest run

- date: $(date -u '+%Y-%m-%d %H:%M UTC'); $kind
- machine: $(nproc) CPUs, $(uname -sr), $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo); load average (1, 5, 15 min) at start $LOAD_START, at end $LOAD_END
- every cell: median (min–max) of $REPS interleaved repetitions (A B C A B C ...); compare ratios within this run only
- peers: $(haproxy -v 2>/dev/null | head -n 1 | awk '{ print "haproxy " $3 }'), $(nginx -v 2>&1 | sed 's/.*nginx\//nginx /'), $(socat -V 2>/dev/null | sed -n 's/^socat version \([^ ]*\).*/socat \1/p'), trickle, tc tbf; iprelay-conn under systemd-socket-activate --accept unless said

EOF

echo "## Unshaped throughput and CPU, 1 connection ($((VOLUME_B >> 20)) MiB each)"
echo
echo "| peer | MiB/s | ÷ haproxy | CPU s/GiB (relay processes) | ÷ haproxy |"
echo "|---|---|---|---|---|"
peers_of tp '^throughput$'
for p in $tp; do
	printf '| %s | ' "$p"; cell throughput "$p" %.0f
	printf ' | '; rat throughput "$p" throughput haproxy
	printf ' | '; cell cpu_per_gib "$p" %.3f
	printf ' | '; rat cpu_per_gib "$p" cpu_per_gib haproxy
	echo ' |'
done
echo
echo "iprelay-conn = systemd-socket-activate --accept, no -l (splice); iprelay = bin/iprelay -d on an unlimited limit."
echo

echo "## Shaping accuracy: steady rate / target (aggregate of all connections on one limit)"
echo
peers_of sp '^accuracy '
rate_table accuracy
echo
echo "## First-second burst: bytes in the first second / (rate + burst), burst = 0.1 s of rate"
echo
rate_table burst
echo
echo "## Fairness: Jain's index of per-connection rates"
echo
rate_table jain
echo

echo "## Nested limits and reaction (iprelay only: no peer has either)"
echo
echo "| figure | value |"
echo "|---|---|"
printf '| child 1024 B/s inside parent 3072 B/s, busy sibling: child / 1024 | '; cell "nested child" iprelay-conn; echo ' |'
printf '| same: child + sibling / 3072 | '; cell "nested total" iprelay-conn; echo ' |'
printf '| reaction: ms from `iprelay-limit set` (64K to 256K) until two 20 ms slots run at the new rate | '; cell reaction_ms iprelay-conn %.0f; echo ' |'
printf '| reaction: the rate after the change / 256 KiB/s | '; cell "reaction after" iprelay-conn; echo ' |'
echo

echo "## Connection cost: $CPS_COUNT short connections one after another (connect, 16 bytes back, close)"
echo
echo "| peer | connections/s | ÷ socat | p50 added µs | p99 added µs | p50 added ÷ spawn floor p50 | p50 added µs, 30 ms apart |"
echo "|---|---|---|---|---|---|---|"
peers_of cp '^cps rate$'
for p in $cp; do
	case $p in
	direct) printf '| direct (no relay; p50, p99 absolute) | ' ;;
	spawn-floor) printf '| spawn floor: posix_spawn + wait of a static no-op | ' ;;
	spawn-conn) printf '| posix_spawn + wait of iprelay-conn exiting at its usage line (exec, start-up) | ' ;;
	spawn-conn-dyn) printf '| the same, iprelay-conn linked dynamically (DYN_BIN: exec, ld.so, start-up) | ' ;;
	*) printf '| %s | ' "$p" ;;
	esac
	cell "cps rate" "$p" %.0f
	printf ' | '; rat "cps rate" "$p" "cps rate" socat
	if [ "$p" = direct ]; then
		printf ' | '; cell "cps p50" direct %.0f
		printf ' | '; cell "cps p99" direct %.0f
		printf ' | | '; cell "cps spaced p50" direct %.0f
		echo ' |'
		continue
	fi
	printf ' | '; cell "cps p50 added" "$p" %.0f
	printf ' | '; cell "cps p99 added" "$p" %.0f
	printf ' | '
	if [ "$p" = spawn-floor ]; then printf 1; else rat "cps p50 added" "$p" "cps p50 added" spawn-floor; fi
	case $p in
	spawn-*) echo ' | |' ;;
	*) printf ' | '; cell "cps spaced p50 added" "$p" %.0f; echo ' |' ;;
	esac
done
echo
echo "Added latency = the peer's percentile minus direct's in the same repetition; the last column is $CPS_SPACED_COUNT connections 30 ms apart (bnet cps -g 30), where a relay started ahead by bin/iprelay is ready for each client, against back to back, where every connection waits for the one started for it. iprelay = bin/iprelay -d; iprelay-dyn = the same with a dynamically linked iprelay-conn beside it (DYN_BIN); inetd = openbsd-inetd -i -R 1000000; iprelay-conn = systemd-socket-activate --accept; iprelay-conn-nostore = the same with -S naming a dir it cannot open (it relays unregistered: the difference is the store's cost per connection)."
echo

echo "## Scale: $SCALE_CONNS concurrent shaped connections on one limit of $SCALE_RATE B/s (bin/iprelay -d -b, shaperd refilling)"
echo
echo "| figure | value |"
echo "|---|---|"
printf '| connections that received data | '; cell "scale started" iprelay %.0f; echo ' |'
printf "| seconds from the first connection's first byte to the last one's | "; cell "scale t0" iprelay %.2f; echo ' |'
printf '| first second after the first byte / (rate + burst) | '; cell "scale first second" iprelay; echo ' |'
printf '| aggregate / target | '; cell "scale accuracy" iprelay; echo ' |'
printf "| Jain's index | "; cell "scale jain" iprelay; echo ' |'
printf '| shaperd CPU, fraction of one core | '; cell "scale shaperd cpu" iprelay %.3f; echo ' |'
printf '| private memory per relay process, KiB (median of the relays) | '; cell "scale relay private KiB" iprelay %.0f; echo ' |'
echo

# aim TEXT VALUE-SHOWN VALUE OP LIMIT: a row of the aims table.
aim() {
	local verd
	verdict verd "$3" "$4" "$5"
	echo "| $1 | $2 | $verd |"
}
echo "## Aims (issue 6) against this run"
echo
echo "| aim | iprelay | verdict |"
echo "|---|---|---|"
med a throughput iprelay-conn; med b throughput haproxy; ratio t "$a" "$b"
aim "unshaped throughput ≥ 1.3x haproxy" "$t x" "$t" '>=' 1.3
med a cpu_per_gib iprelay-conn; med b cpu_per_gib haproxy; ratio t "$a" "$b"
aim "CPU per GiB ≤ 0.7x haproxy" "$t x" "$t" '<=' 0.7
worst=$(awk -F '\t' '$1 ~ /^accuracy / && $2 == "iprelay-conn" { k = $1; v[k] = v[k] " " $4 }
	END { w = 0; for (k in v) { n = split(v[k], a, " "); for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) { x = a[j]; a[j] = a[j - 1]; a[j - 1] = x }
		m = (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2; d = m > 1 ? m - 1 : 1 - m; if (wk == "" || d > w) { w = d; wk = k " = " m } }
		printf "%.4f\t%s\n", w, wk }' "$values")
aim "shaping accuracy within 1% everywhere" "worst: ${worst#*	}" "${worst%%	*}" '<=' 0.01
worst=$(awk -F '\t' '$1 ~ /^burst / && $2 == "iprelay-conn" && $4 > w { w = $4; k = $1 } END { printf "%.4f\t%s\n", w, k }' "$values")
aim "first-second burst ≤ 1.05" "highest single run: ${worst%%	*} (${worst#*	})" "${worst%%	*}" '<=' 1.05
j=$(awk -F '\t' '$1 ~ /^jain / && $1 ~ / 64$/ && $2 == "iprelay-conn" && (w == "" || $4 < w) { w = $4 } END { print w }' "$values")
aim "Jain ≥ 0.99 with 64 connections" "lowest single run: ${j:--}" "$j" '>=' 0.99
med c "nested child" iprelay-conn; med t "nested total" iprelay-conn
verdict vc "$c" within 0.01; verdict vt "$t" within 0.01
echo "| nested: both within 1% | child $c, total $t | $vc, $vt |"
med r reaction_ms iprelay-conn
aim "reaction < 100 ms" "$r ms" "$r" '<=' 100
med a "cps rate" iprelay; med b "cps rate" socat; ratio t "$a" "$b"
aim "connections/s ≥ 1.5x socat (bin/iprelay)" "$t x" "$t" '>=' 1.5
med a "cps p50 added" iprelay; med b "cps p50 added" spawn-floor; ratio t "$a" "$b"
aim "p50 added latency ≤ 2x spawn floor (bin/iprelay)" "$t x" "$t" '<=' 2
med a "scale accuracy" iprelay; aim "scale: accuracy within 2%" "$a" "$a" within 0.02
med a "scale jain" iprelay; aim "scale: Jain ≥ 0.95" "$a" "$a" '>=' 0.95
med a "scale shaperd cpu" iprelay; aim "scale: shaperd < 10% of a core" "$a" "$a" '<=' 0.1
med a "scale relay private KiB" iprelay; aim "scale: relay < 1 MiB private memory" "$a KiB" "$a" '<=' 1024
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
