#!/bin/bash
# The fault and stress scenarios of tests/stress (issue 7) at bounded
# counts, in one TAP stream: kill -9 of 10% of live relays, shaperd kill -9
# and restart ten times, a full state filesystem, a reader that never
# reads and an idle client, a connection flood at iprelay.  Under the
# sanitizers the counts are smaller (the test names say so); `make stress`
# runs the full counts.
. "$IPRELAY_TOP/tests/lib.sh"
export STRESS=quick STRESS_EMBEDDED=1
for s in kill-relays shaperd-restart disk-full slow-peers flood; do
	diag "== $s"
	started=$SECONDS
	. "$IPRELAY_TOP/tests/stress/$s.sh"
	diag "$s: $((SECONDS - started)) s"
done
done_testing
