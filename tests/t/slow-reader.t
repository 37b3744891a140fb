#!/bin/bash
# A reader that stalls on its output pins no snapshot of the store
# (issue 11, item 3).  `iprelay-limit conns` and `top` writing 1000
# connection records into pipes nobody reads, while relays draw: before,
# each held its read transaction across the blocked printf, every draw took
# fresh pages, and the 256 MiB map filled within seconds (then relays pass
# bytes unshaped and new shaped connections are refused).  Now the listing
# is copied out and the transaction ended before anything is printed: the
# file stays under FILE_MAX_MIB and shaping holds.  A reader that does pin
# a snapshot (tools/pinreader, standing in for a program stopped inside
# its transaction) is named by the refiller with its pid and age.
. "$IPRELAY_TOP/tests/lib.sh"

L="$IPRELAY_BIN/iprelay-limit"
DRAWER="$IPRELAY_BIN/tools/drawer"
LIMITCTL="$IPRELAY_BIN/tools/limitctl"
PINREADER="$IPRELAY_BIN/tools/pinreader"
FILE="$IPRELAY_STATE_DIR/iprelay.mdb"
SECONDS_T=8
RATE=262144
BURST=65536
# The records and the draws need a few MiB; the refiller keeps 8 MiB
# allocated ahead of the last used page.  A pinned snapshot passes this
# within about 2000 draws (several pages a commit).
FILE_MAX_MIB=32

file_mib() { echo $(( $(stat -c %s "$FILE") / 1048576 )); }
# The newest commit: pinreader's snapshot, taken and dropped at once.
last_txnid() { "$PINREADER" "$IPRELAY_STATE_DIR" 0 | awk '{ print $2 }'; }

"$L" set web $RATE --burst $BURST
"$L" set fast 1G
"$L" set idle 1M
# The refiller runs throughout: a commit every tick while the pagers
# below hold their snapshots.
spawn "$IPRELAY_BIN/shaperd" 2>>"$TEST_TMP/shaperd.err"
shaperd_pid=$last_pid
for _ in $(seq 100); do
	"$L" top -n 1 | grep -q 'refiller [0-9]* shaperd' && break
	sleep 0.1
done
spawn sleep 300
holder=$last_pid
"$LIMITCTL" register idle 1000 "$holder"
is "$("$L" conns | tail -n +2 | wc -l)" 1000 "1000 connection records"

# Two pagers nobody scrolls: readers that open the pipe and never read.
mkfifo "$TEST_TMP/pager1" "$TEST_TMP/pager2"
# (Redirected on the command itself: a function's redirection does not
# reach what it starts in the background.)
sleep 300 <>"$TEST_TMP/pager1" &
spawned_pids="$spawned_pids $!"
sleep 300 <>"$TEST_TMP/pager2" &
spawned_pids="$spawned_pids $!"
"$L" conns >"$TEST_TMP/pager1" &
conns_pid=$!
"$L" top -d 0.1 >"$TEST_TMP/pager2" &
top_pid=$!
spawned_pids="$spawned_pids $conns_pid $top_pid"
sleep 1
ok "iprelay-limit conns is stalled on its output" kill -0 "$conns_pid"
ok "iprelay-limit top is stalled on its output" kill -0 "$top_pid"

size_before=$(file_mib)
txn_before=$(last_txnid)
start=$("$DRAWER" -p 1)
pids=""
for n in 1 2 3 4; do
	"$DRAWER" -l web -a "$start" -t $SECONDS_T -o "$TEST_TMP/web.report" &
	pids="$pids $!"
done
# One spinning drawer makes the commits, niced: on two cores it would
# otherwise take a core from the paced ones, whose rate is measured.
nice -n 19 "$DRAWER" -s -l fast -a "$start" -t $SECONDS_T -o "$TEST_TMP/fast.report" &
pids="$pids $!"
spawned_pids="$spawned_pids $pids"
deadline=$((SECONDS + SECONDS_T + 30))
for pid in $pids; do
	while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do
		sleep 0.2
	done
	wait "$pid" 2>/dev/null
done
commits=$(( $(last_txnid) - txn_before ))
diag "file $size_before MiB before, $(file_mib) MiB after $commits commits"
ok "the draws made many commits ($commits, at least 3000)" \
	test "$commits" -ge 3000
ok "the state file stays under $FILE_MAX_MIB MiB ($(file_mib) MiB)" \
	test "$(file_mib)" -lt $FILE_MAX_MIB
is "$(wc -l <"$TEST_TMP/web.report")" 4 "every paced drawer reported"
is "$(wc -l <"$TEST_TMP/fast.report")" 1 "the spinning drawer reported"
total=$(python3 -c 'import json, sys
print(sum(json.loads(l)["window"] for l in open(sys.argv[1])))' "$TEST_TMP/web.report")
# Over the contract is a shaping error whatever the load: 1%.  Under it
# measures the machine, not the store: paced drawers that wake late beside
# a spinning one and other suites on two cores (24% and 35% short at a load
# average of 17).  Half still tells drawers that kept drawing from drawers
# stopped by a full map (which also fail to report).
under=50
within_over_under "$total" $((BURST + RATE * SECONDS_T)) 1 $under \
	"shaping holds: released in the window is burst + rate * t"
ok "the pagers are still stalled" kill -0 "$conns_pid"

# A reader that does hold its snapshot is named, with its age.
"$PINREADER" "$IPRELAY_STATE_DIR" 60 >"$TEST_TMP/pin.out" &
pin_pid=$!
spawned_pids="$spawned_pids $pin_pid"
wait_file "$TEST_TMP/pin.out" 10
# Spinning for 3 s: enough commits to fill the map behind the pinned
# snapshot; the refiller names the reader all the same.
spawn "$DRAWER" -s -l fast -t 3 -o "$TEST_TMP/fast2.report"
spin_pid=$last_pid
named=
for _ in $(seq 200); do
	if grep -q "reader pid $pin_pid has held a snapshot" "$TEST_TMP/shaperd.err"; then
		named=1
		break
	fi
	sleep 0.1
done
ok "shaperd names the reader that lags (pid $pin_pid)" test -n "$named"
like "$(grep "reader pid $pin_pid" "$TEST_TMP/shaperd.err")" \
	"held a snapshot of the state for [0-9]+ s, [0-9]+ commits behind" \
	"with its age and how far behind it is"
stop_pid "$spin_pid"
stop_pid "$pin_pid"
is "$(grep -c "reader pid \($conns_pid\|$top_pid\) " "$TEST_TMP/shaperd.err")" 0 \
	"the stalled iprelay-limit processes were never named"

stop_pid "$conns_pid"
stop_pid "$top_pid"
stop_pid "$shaperd_pid"
done_testing
