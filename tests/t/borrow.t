#!/bin/bash
# Borrowing up to a ceiling, through the real store with relay-like
# processes (tests/tools/drawer): a child alone in its parent passes at
# min(ceiling, parent); beside a sibling busy at its own rate it is held to
# its rate, and the sibling keeps all of its; a child without a ceiling
# stays at its rate however idle the parent.
. "$IPRELAY_TOP/tests/lib.sh"

L="$IPRELAY_BIN/iprelay-limit"
DRAWER="$IPRELAY_BIN/tools/drawer"
NPROC=8
SECONDS_T=3

live_conns() { "$L" conns | tail -n +2 | wc -l; }

# draw_round NAME LIMIT:REPORT...: NPROC drawers on each LIMIT for
# SECONDS_T, all starting at one instant once every one has registered;
# waits (bounded) and checks every drawer reported.
draw_round() {
	local name=$1 pids="" pid deadline want=0 spec
	local start_file=$TEST_TMP/start.$RANDOM
	shift
	for spec in "$@"; do
		rm -f "${spec#*:}"
		for _ in $(seq $NPROC); do
			"$DRAWER" -l "${spec%%:*}" -w "$start_file" -t "$SECONDS_T" \
				-o "${spec#*:}" &
			pids="$pids $!"
		done
		want=$((want + NPROC))
	done
	spawned_pids="$spawned_pids $pids"
	for _ in $(seq 300); do
		[ "$(live_conns)" -ge $want ] && break
		sleep 0.1
	done
	"$DRAWER" -p 0.2 >"$start_file.tmp" && mv "$start_file.tmp" "$start_file"
	deadline=$((SECONDS + SECONDS_T + 20))
	for pid in $pids; do
		while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do
			sleep 0.1
		done
		kill -0 "$pid" 2>/dev/null && { fail "$name: drawer $pid hangs"; kill -KILL "$pid"; }
		wait "$pid" 2>/dev/null
	done
	for spec in "$@"; do
		is "$(wc -l <"${spec#*:}")" "$NPROC" "$name: every drawer on ${spec%%:*} reported"
	done
}

# window REPORT: bytes released in the window by every drawer of REPORT.
window() {
	python3 -c 'import json, sys
print(sum(json.loads(l)["window"] for l in open(sys.argv[1])))' "$1"
}

# fair NAME REPORT: nobody under half the fair share.  Borrowers refused
# together come back for the same idle tokens; a fixed order among them
# let one relay take nearly all (min 0.02, max 24 times the mean of 32).
fair() {
	local share
	share=$(python3 -c 'import json, sys
w = [json.loads(l)["window"] for l in open(sys.argv[1])]
print("%.3f %.3f" % (min(w) * len(w) / sum(w), max(w) * len(w) / sum(w)))' "$2")
	ok "$1: nobody under half its fair share (min ${share% *}, max ${share#* } of fair)" \
		awk -v m="${share% *}" 'BEGIN { exit !(m >= 0.5) }'
}

spawn "$IPRELAY_BIN/shaperd" 2>>"$TEST_TMP/shaperd.err"
shaperd_pid=$last_pid

# Rates in B/s; bursts given so the expected totals are exact: every
# bucket was made well before the start, so it is full then.
P=1048576
R1=262144
C=786432
B=65536
"$L" set parent $P --burst $B
"$L" set child $R1 --burst $B --parent parent --ceil $C
"$L" set sibling $((P - R1)) --burst $B --parent parent

# Alone: the ceiling (768K/s) binds, below the parent (1M/s).
draw_round "alone" "child:$TEST_TMP/alone.report"
got=$(window "$TEST_TMP/alone.report")
within "$got" $((B + C * SECONDS_T)) 4 "alone, a child of rate 256K and ceiling 768K passes at its ceiling"
borrowed=$("$L" --json get child | python3 -c 'import json,sys; print(json.load(sys.stdin)["down_borrowed"])')
ok "most of it borrowed ($borrowed B)" test "$borrowed" -gt $(((C - R1) * SECONDS_T * 9 / 10))
fair "alone" "$TEST_TMP/alone.report"

# A ceiling above the parent: the parent (1M/s) binds.
"$L" set child --ceil 2M
draw_round "ceiling above the parent" "child:$TEST_TMP/above.report"
got=$(window "$TEST_TMP/above.report")
within "$got" $((B + P * SECONDS_T)) 4 "with a ceiling of 2M the child passes at the parent's 1M"
fair "ceiling above the parent" "$TEST_TMP/above.report"

# Beside a sibling busy at its rate (768K/s, all the parent leaves): the
# child gets its rate and no more, the sibling all of its own.
"$L" set child --ceil $C
draw_round "busy sibling" "child:$TEST_TMP/child.report" "sibling:$TEST_TMP/sibling.report"
got=$(window "$TEST_TMP/child.report")
within "$got" $((B + R1 * SECONDS_T)) 5 "beside a busy sibling the child gets its own rate"
got=$(window "$TEST_TMP/sibling.report")
# The parent's burst at the start went to the child (counted above).
within "$got" $(((P - R1) * SECONDS_T)) 5 "and the sibling gets its own"

# No ceiling: held to its rate in an idle parent (the behaviour before
# ceilings existed).
"$L" set child --ceil none
draw_round "no ceiling" "child:$TEST_TMP/none.report"
got=$(window "$TEST_TMP/none.report")
within "$got" $((B + R1 * SECONDS_T)) 4 "without a ceiling the child is held to its rate"

ok "shaperd is still running" kill -0 "$shaperd_pid"
done_testing
