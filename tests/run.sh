#!/bin/sh
# Run the whole suite once per program directory given (bin, then the
# sanitizer build) and end with one summary line over all runs.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
log=$(mktemp)
pydir=$(mktemp -d)
trap 'rm -f "$log"; rm -rf "$pydir"' EXIT
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
	units=$(ls "$bindir"/tests/unit-* 2>/dev/null)
	# Two jobs at a time, but never two of the load generators: 64
	# drawers (store-procs, borrow) beside 20 relays and a flood
	# (stress-quick) starved each other's timed bounds under the
	# sanitizers (CI: 23% short of a rate; dead relays listed for 3 s).
	IPRELAY_BIN=$bindir IPRELAY_TOP=$top \
	    prove --timer -j "${TEST_JOBS:-2}" \
	    --rules='seq=**/tests/t/{store-procs,borrow,stress-quick}.t' \
	    --rules='par=**' $units "$top"/tests/t/*.t 2>&1 | tee -a "$log"
done
# prove prints "Files=F, Tests=T" per run, "Failed N/M subtests" for a file
# with failures, and a non-zero Wstat with "Failed: 0" for one that died.
awk '
	/^Files=[0-9]+, Tests=[0-9]+/ { split($2, t, "="); sub(",", "", t[2]); total += t[2] }
	/Failed [0-9]+\/[0-9]+ subtests/ { split($2, f, "/"); failed += f[1] }
	/Wstat: [1-9].*Failed: 0\)/ { died++ }
	/No subtests run/ { died++ }
	END { printf "check: %d passed, %d failed\n", total - failed, failed + died;
	      exit (failed + died) ? 1 : 0 }' "$log"
