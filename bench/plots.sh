#!/bin/sh
# bench/plots.sh WORK OUT RATE SCALE_CONNS: the PNGs of bench/run.sh from the
# files of its first repetition in WORK (timelines: "seconds bytes/s" every
# 100 ms; rates: "connection bytes/s").
work=$1 out=$2 rate=$3 scale=$4
set -e

# 1. Rate over time of one shaped connection, every shaping peer.
plots=
n=1
[ -e "$work/tl.iprelay-conn.$rate.1.1" ] || n=8
for peer in iprelay-conn nginx-rate tc trickle; do
	f=$work/tl.$peer.$rate.$n.1
	[ -s "$f" ] && plots="$plots${plots:+, }'$f' using 1:(\$2/1024) with lines lw 2 title '$peer'"
done
[ -n "$plots" ] && gnuplot <<EOF
set terminal pngcairo size 900,500 noenhanced
set output '$out/shaped-rate.png'
set title "$n connection(s) on one limit of $((rate / 1024)) KiB/s: total rate in 100 ms slots"
set xlabel 'seconds after the first byte'
set ylabel 'KiB/s'
set yrange [0:*]
set grid
set key bottom right
plot $plots, $((rate / 1024)) with lines dt 2 lc 'black' title 'target'
EOF

# 2. A limit changed mid-transfer.
f=$work/tl.reaction.1
if [ -s "$f" ]; then
	read -r run_start run_end <"$work/run.reaction.1"
	gnuplot <<EOF
set terminal pngcairo size 900,500 noenhanced
set output '$out/limit-change.png'
set title 'iprelay-limit set 64K -> 256K during a transfer (iprelay-conn, 100 ms slots)'
set xlabel 'seconds after the first byte'
set ylabel 'KiB/s'
set yrange [0:320]
set grid
set arrow from $run_start, graph 0 to $run_start, graph 1 nohead dt 3 lc 'red'
set label 'iprelay-limit set' at $run_start, 300 offset 0.5, 0 tc 'red'
plot '$f' using 1:(\$2/1024) with steps lw 2 title 'iprelay-conn', \
	64 with lines dt 2 lc 'black' title '64 KiB/s', \
	256 with lines dt 2 lc 'gray' title '256 KiB/s'
EOF
fi

# 3. Per-connection shares: 64 (or 8) connections on one limit, and scale.
many=
for n in 64 8; do
	f=$work/rates.iprelay-conn.$rate.$n.1
	[ -s "$f" ] && { many=$f; count=$n; break; }
done
sf=$work/rates.scale.1
if [ -n "$many" ] || [ -s "$sf" ]; then
	gnuplot <<EOF
set terminal pngcairo size 1000,700 noenhanced
set output '$out/shares.png'
set multiplot layout 2,1
set grid
set yrange [0:2]
set boxwidth 0.8 relative
set style fill solid 0.6
set ylabel 'rate / fair share'
set xlabel 'connection'
$( [ -n "$many" ] && echo "set xrange [0:$((count + 1))]
set title '$count connections on one limit of $((rate / 1024)) KiB/s (iprelay-conn)'
plot '$many' using 1:(\$2 * $count / $rate) with boxes title 'share', 1 with lines dt 2 lc 'black' title 'fair'" )
$( [ -s "$sf" ] && echo "set xrange [0:$((scale + 1))]
set title '$scale connections on one limit of $((scale * 8)) KiB/s (bin/iprelay)'
plot '$sf' using 1:(\$2 / 8192) with impulses title 'share', 1 with lines dt 2 lc 'black' title 'fair'" )
unset multiplot
EOF
fi
exit 0
