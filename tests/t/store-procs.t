#!/bin/bash
# Many processes drawing through the real store: the total released in a
# window obeys the bucket contract (burst + rate * t), the share of each is
# fair, nesting binds at the tighter level, and kill -9 leaves nothing stuck.
. "$IPRELAY_TOP/tests/lib.sh"

L="$IPRELAY_BIN/iprelay-limit"
DRAWER="$IPRELAY_BIN/tools/drawer"
NPROC=64
SECONDS_T=3

. "$IPRELAY_TOP/tests/drawers.sh"

# check_round NAME REPORT RATE BURST: total released in the window within
# 1% of burst + rate * t; nobody under half of the fair share.
check_round() {
	local verdict
	verdict=$(python3 - "$2" "$3" "$4" "$SECONDS_T" <<'PY'
import json, sys
reports = [json.loads(l) for l in open(sys.argv[1])]
rate, burst, t = int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
window = [r["window"] for r in reports]
total = sum(window)
want = burst + rate * t
fair = total / len(window)
print(total, int(want), "%.3f" % (min(window) / fair), "%.3f" % (max(window) / fair))
PY
)
	set -- "$1" $verdict
	# Over the contract is a shaping error whatever the load: 1%.  Under
	# it, 1% too, except under the sanitizers: 64 sanitized drawers on two
	# cores beside other suites can all stall past the burst's 0.1 s (the
	# write lock's holder descheduled), and the refill a full bucket
	# cannot hold is lost.  The figure is otherwise exact run after run
	# (3210024 of 3211264 for "parent binds"), so below it measures the
	# machine's load, not the shaper: 3% was missed once in a local make
	# check, and 10% is allowed there, and said.
	local under=1
	[ -n "$SANITIZED" ] && under=10
	within_over_under "$2" "$3" 1 $under \
	    "$1: released in the window is burst + rate * t"
	ok "$1: nobody under half its fair share (min $4, max $5 of fair)" \
		awk -v m="$4" 'BEGIN { exit !(m >= 0.5) }'
}

spawn "$IPRELAY_BIN/shaperd" 2>>"$TEST_TMP/shaperd.err"
shaperd_pid=$last_pid

# One limit.  Created well before the start, it is full (burst) at start.
RATE=1048576
BURST=$((RATE / 10))
"$L" set one $RATE --burst $BURST
draw_round "one limit" "one:$TEST_TMP/one.report"
check_round "one limit" "$TEST_TMP/one.report" $RATE $BURST

# A child inside a parent: the parent binds (child is faster).
"$L" set parent 1M --burst 64K
"$L" set child 4M --burst 256K --parent parent
draw_round "parent binds" "child:$TEST_TMP/nest1.report"
check_round "parent binds" "$TEST_TMP/nest1.report" 1048576 65536

# The child binds (parent is faster), and the parent counted every byte.
"$L" set parent2 4M --burst 256K
"$L" set child2 512K --burst 32K --parent parent2
draw_round "child binds" "child2:$TEST_TMP/nest2.report"
check_round "child binds" "$TEST_TMP/nest2.report" 524288 32768
child_total=$("$L" --json get child2 | python3 -c 'import json,sys; print(json.load(sys.stdin)["down_total"])')
parent_total=$("$L" --json get parent2 | python3 -c 'import json,sys; print(json.load(sys.stdin)["down_total"])')
is "$parent_total" "$child_total" "the parent counted every byte drawn on the child"

# kill -9 in a loop while others go on, spinning so kills land inside
# transactions: nobody hangs, and shaperd reaps the dead within 2 s.
"$L" set spin 0
"$L" set paced 256K
survivors=""
for _ in $(seq 8); do
	spawn "$DRAWER" -l paced -t 120 -o "$TEST_TMP/survivors.report"
	survivors="$survivors $last_pid"
done
killed=0
for round in $(seq 20); do
	victims=""
	for _ in $(seq 6); do
		spawn "$DRAWER" -s -l spin -t 30
		victims="$victims $last_pid"
	done
	sleep 0.1
	for pid in $victims; do kill -KILL "$pid"; wait "$pid" 2>/dev/null; done
	killed=$((killed + 6))
done
t0=$(date +%s.%N)
"$L" get spin >/dev/null
is "$?" 0 "the store still answers after $killed kill -9s"
reaped_at=""
for _ in $(seq 60); do
	live=$("$L" get spin | awk '/^conns:/ { print $2 }')
	[ "$live" = 0 ] && { reaped_at=$(date +%s.%N); break; }
	sleep 0.05
done
ok "shaperd reaped the dead drawers (conns on spin is ${live:-?})" test -n "$reaped_at"
[ -n "$reaped_at" ] && ok "within 2 s ($(awk -v a="$t0" -v b="$reaped_at" 'BEGIN{printf "%.2f", b-a}') s)" \
	awk -v a="$t0" -v b="$reaped_at" 'BEGIN { exit !(b - a <= 2.0) }'
is "$("$L" conns | tail -n +2 | wc -l)" 8 \
	"only the 8 paced drawers are still listed"
for pid in $survivors; do kill -TERM "$pid"; done
for pid in $survivors; do
	for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
	wait "$pid" 2>/dev/null
done
is "$(wc -l <"$TEST_TMP/survivors.report" 2>/dev/null)" 8 "every paced drawer answered TERM at once"
# Their windows overlap: together they drew the limit's rate over the
# longest, whatever the kills around them.
read -r total seconds < <(python3 -c 'import json,sys
r = [json.loads(l) for l in open(sys.argv[1])]
print(sum(x["window"] for x in r), max(x["seconds"] for x in r))' "$TEST_TMP/survivors.report")
ok "the paced drawers kept drawing ($total bytes in $seconds s at 256K/s)" \
	awk -v g="$total" -v s="$seconds" 'BEGIN { r = g / s; exit !(r >= 0.9 * 262144 && r <= 1.1 * 262144) }'
ok "shaperd is still running" kill -0 "$shaperd_pid"

# Two processes changing different fields of one limit at once, each
# checking before every write that its own field still holds what it wrote
# last: store_limit_update merges inside the write transaction, so none is
# lost.  (limitctl's "whole" mode, read then write back in two
# transactions as iprelay-limit set did, loses one within a few hundred.)
C="$IPRELAY_BIN/tools/limitctl"
"$C" set merge 1 >/dev/null
"$C" hammer merge up 3000 >"$TEST_TMP/hammer-up" 2>&1 &
up_pid=$!
"$C" hammer merge burst 3000 >"$TEST_TMP/hammer-burst" 2>&1 &
burst_pid=$!
"$C" hammer merge down 3000 >"$TEST_TMP/hammer-down" 2>&1
down_rc=$?
wait "$up_pid"; up_rc=$?
wait "$burst_pid"; burst_rc=$?
is "$up_rc/$burst_rc/$down_rc" "0/0/0" "three processes setting up, burst and down of one limit at once: no update lost ($(cat "$TEST_TMP/hammer-up" "$TEST_TMP/hammer-burst" "$TEST_TMP/hammer-down" | tr '\n' ' '))"
"$L" --json get merge >"$TEST_TMP/merge.json"
is "$(python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); print(d["up"], d["down"], d["burst"])' "$TEST_TMP/merge.json")" \
    "3000 3000 3000" "the limit ends with every field's last value"

done_testing
