# Drawer rounds through the real store (tests/tools/drawer), shared by
# store-procs.t and borrow.t.  Source after tests/lib.sh, with L (the
# iprelay-limit), DRAWER, NPROC (drawers per limit) and SECONDS_T set.

# live_conns: relays registered in the store now.
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
