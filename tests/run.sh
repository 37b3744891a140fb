#!/bin/sh
# Run the whole suite once per program directory given (bin, then the
# sanitizer build) and end with one summary line over all runs.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
log=$(mktemp)
pydir=$(mktemp -d)
guard=$(mktemp -d)
trap 'rm -f "$log"; rm -rf "$pydir" "$guard"' EXIT
. "$top/tests/guard.sh"
guard_failed=0
# The tests start python3 hundreds of times.  Debian's (tests/deps.sh
# installs it) starts in about 0.05 s; a version manager's shim found first
# on PATH took over a second a start on a loaded CI machine, enough to turn
# timed steps into failures.  Only the stdlib is used.
if [ -x /usr/bin/python3 ]; then
	ln -s /usr/bin/python3 "$pydir/python3"
	PATH=$pydir:$PATH
	export PATH
fi
for bindir in "$@"; do
	bindir=$(cd "$bindir" && pwd)
	echo "# suite with programs from $bindir"
	guard_snapshot "$guard/before"
	units=$(ls "$bindir"/tests/unit-* 2>/dev/null)
	# Two jobs at a time, but never two of the load generators: 64
	# drawers (store-procs, borrow; slow-reader spins one) beside 20
	# relays and a flood (stress-quick) starved each other's timed
	# bounds under the sanitizers (CI: 23% short of a rate; dead relays
	# listed for 3 s).  systemd-live boots containers and times a limit
	# change, global runs three shaperds and times a hold on the relays'
	# clock: not beside them either.
	IPRELAY_BIN=$bindir IPRELAY_TOP=$top \
	    prove --timer -j "${TEST_JOBS:-2}" \
	    --rules='seq=**/tests/t/{store-procs,borrow,stress-quick,systemd-live,slow-reader,global,global-floor}.t' \
	    --rules='par=**' $units "$top"/tests/t/*.t 2>&1 | tee -a "$log"
	# The machine's and the user's iprelay dirs are out of bounds
	# (tests/guard.sh): a program run without the test's state dir
	# would have used them.
	guard_snapshot "$guard/after"
	if ! guard_compare "$guard/before" "$guard/after"; then
		echo "check: FAILED: the suite with programs from $bindir" \
		    "created or changed the iprelay dirs above, which tests" \
		    "must never touch"
		guard_failed=$((guard_failed + 1))
	fi
done
# prove prints "Files=F, Tests=T" per run, "Failed N/M subtests" for a file
# with failures, and a non-zero Wstat with "Failed: 0" for one that died.
awk -v guard_failed="$guard_failed" '
	/^Files=[0-9]+, Tests=[0-9]+/ { split($2, t, "="); sub(",", "", t[2]); total += t[2] }
	/Failed [0-9]+\/[0-9]+ subtests/ { split($2, f, "/"); failed += f[1] }
	/Wstat: [1-9].*Failed: 0\)/ { died++ }
	/No subtests run/ { died++ }
	END { printf "check: %d passed, %d failed%s\n", total - failed,
	          failed + died + guard_failed,
	          guard_failed ? " (counting the iprelay dirs guard)" : "";
	      exit (failed + died + guard_failed) ? 1 : 0 }' "$log"
