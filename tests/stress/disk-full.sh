#!/bin/bash
# The state dir's filesystem full (issue 7, Faults): a small tmpfs in a
# private mount namespace (unshare -m) is filled up while relays move data
# through a limit on it.  iprelay-limit set must fail with a clear message,
# the relays must keep relaying (bytes intact) and stay shaped (the state
# file's headroom, allocated ahead by the refiller, is theirs), and once
# space is freed the store must work as before.  The inner part runs in the namespace and
# reports "check 0|1 NAME" and "diag TEXT" lines, turned into TAP here.
[ -n "${STRESS_EMBEDDED:-}" ] || . "$IPRELAY_TOP/tests/lib.sh"
. "$IPRELAY_TOP/tests/stress/common.sh"

n=$(pick 20 5 5)
note="$(mode_note): $n relays"
if ! unshare -m true 2>/dev/null; then
	pass "disk-full # SKIP unshare -m not permitted here"
	scenario_end
	return 0 2>/dev/null || exit 0
fi
DIR=$TEST_TMP/full
mkdir -p "$DIR/state"
cat >"$TEST_TMP/disk-full-inner.sh" <<'INNER'
set -u
DIR=$1 BIN=$2 TOP=$3 n=$4
export IPRELAY_STATE_DIR=$DIR/state
LIMIT="$BIN/iprelay-limit -S $IPRELAY_STATE_DIR"
MANY="python3 $TOP/tests/stress/manyconn.py"
check() { name=$1; shift; if "$@"; then echo "check 0 $name"; else echo "check 1 $name"; fi; }
pids=
trap 'for p in $pids; do kill $p 2>/dev/null; done; sleep 0.3; for p in $pids; do kill -9 $p 2>/dev/null; done; umount "$IPRELAY_STATE_DIR"' EXIT
mount --make-rprivate / 2>/dev/null
mount -t tmpfs -o size=${FULL_SIZE:-24M},mode=0770 tmpfs "$IPRELAY_STATE_DIR" || { echo "check 1 tmpfs mounted"; exit 0; }
rate=$((n * 32768))
$LIMIT set full "$rate" >/dev/null
"$BIN/shaperd" -S "$IPRELAY_STATE_DIR" 2>"$DIR/shaperd.err" & pids="$pids $!"
$MANY echo --port-file "$DIR/echo.port" & pids="$pids $!"
for _ in $(seq 100); do [ -s "$DIR/echo.port" ] && break; sleep 0.05; done
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
systemd-socket-activate --accept -l "127.0.0.1:$port" -E IPRELAY_STATE_DIR -E IPRELAY_LOG_FILE \
    "$BIN/iprelay-conn" -S "$IPRELAY_STATE_DIR" -l full "127.0.0.1:$(cat "$DIR/echo.port")" \
    2>"$DIR/activate.log" & pids="$pids $!"
for _ in $(seq 100); do grep -q '^Listening' "$DIR/activate.log" && break; sleep 0.05; done
# Six seconds of data each at its share.
$MANY run --connect "127.0.0.1:$port" --count "$n" --send $((32768 * 6)) --timeout 40 \
    >"$DIR/many.out" & many=$!; pids="$pids $many"
# Fill only once every relay is registered and moving data.
for _ in $(seq 200); do
	[ "$($LIMIT --json conns 2>/dev/null | grep -o '"id"' | wc -l)" -ge "$n" ] && break
	sleep 0.05
done
sleep 0.5
dd if=/dev/zero of="$IPRELAY_STATE_DIR/filler" bs=4k 2>/dev/null
echo "diag tmpfs after filling: $(df -k "$IPRELAY_STATE_DIR" | awk 'NR == 2 { print $3 " KiB used, " $4 " KiB free" }'), state file $(du -k "$IPRELAY_STATE_DIR/iprelay.mdb" | cut -f1) KiB allocated"
# New limits until the store must grow its file: one has to fail.
err= made=0 rc_line=0
for i in $(seq 300); do
	err=$($LIMIT set "full$i" 1M 2>&1 >/dev/null) && rc_line=0 || rc_line=$?
	[ "$rc_line" -ne 0 ] && break
	made=$i err=
done
echo "diag iprelay-limit set on a full filesystem, after $made new limits: exit $rc_line: $err"
check "iprelay-limit set fails on the full filesystem" test -n "$err"
check "with one line naming the cause: No space left on device" sh -c 'printf "%s\n" "$1" | grep -Eq "^iprelay-limit: .*: No space left on device$" && [ $(printf "%s\n" "$1" | wc -l) -eq 1 ]' - "$err"
check "and a non-zero exit ($rc_line)" test "$rc_line" -ne 0
check "conns still works on the full filesystem" sh -c "$LIMIT --json conns >/dev/null"
# A relay that starts now registers in the headroom (it used to exit 111).
late=$($MANY run --connect "127.0.0.1:$port" --count 1 --send 32768 --timeout 20)
echo "diag a relay started on the full filesystem: $late"
check "a new connection on the full filesystem is relayed intact" python3 -c 'import json, sys
o = json.loads(sys.argv[1]); sys.exit(not (o["intact"] == 1 and o["bad"] == 0))' "$late"
wait "$many"
out=$(cat "$DIR/many.out")
echo "diag relays over the full filesystem: $out"
check "the relays kept relaying: every connection intact" python3 -c 'import json, sys
o = json.loads(sys.argv[1]); sys.exit(not (o["intact"] == int(sys.argv[2]) and o["bad"] == 0))' "$out" "$n"
# Six seconds of data at the limit: unshaped relays would finish in about
# two (as they did before the headroom).
check "and the limit held while the filesystem was full (6 s of data in $(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["elapsed"])' "$out") s)" python3 -c 'import json, sys
sys.exit(not json.loads(sys.argv[1])["elapsed"] >= 0.85 * 6)' "$out"
check "shaperd never lost its headroom" sh -c "! grep -q 'unable to keep' '$DIR/shaperd.err'"
rm -f "$IPRELAY_STATE_DIR/filler"
check "after freeing space, list works" sh -c "$LIMIT list >/dev/null"
check "the limit is intact ($(($rate / 1024))K)" sh -c "$LIMIT get full | grep -q '$((rate / 1024))K'"
check "and set works again" sh -c "$LIMIT set after 1M >/dev/null && $LIMIT get after >/dev/null"
check "shaperd stayed up" kill -0 $(echo $pids | cut -d' ' -f1)
INNER
while read -r word rc rest; do
	case $word in
	check) if [ "$rc" = 0 ]; then pass "disk-full ($note): $rest"; else fail "disk-full ($note): $rest"; fi ;;
	diag) diag "disk-full: $rc $rest" ;;
	esac
done < <(timeout 90 unshare -m bash "$TEST_TMP/disk-full-inner.sh" "$DIR" "$IPRELAY_BIN" "$IPRELAY_TOP" "$n" 2>"$TEST_TMP/disk-full.err")
[ -s "$TEST_TMP/disk-full.err" ] && diag "disk-full stderr: $(head -c 600 "$TEST_TMP/disk-full.err")"
scenario_end
