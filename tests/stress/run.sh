#!/bin/bash
# make stress: every fault and stress scenario (issue 7) at full size, each
# its own TAP stream under prove.  STRESS=quick runs the bounded counts that
# tests/t/stress-quick.t runs inside make check.
top=$(cd "$(dirname "$0")/../.." && pwd)
export IPRELAY_TOP=$top IPRELAY_BIN=${IPRELAY_BIN:-$top/bin} STRESS=${STRESS:-long}
exec prove -v --timer "$top"/tests/stress/kill-relays.sh "$top"/tests/stress/shaperd-restart.sh \
    "$top"/tests/stress/disk-full.sh "$top"/tests/stress/slow-peers.sh "$top"/tests/stress/flood.sh
