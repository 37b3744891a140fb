#!/bin/bash
# End to end: curl through iprelay-conn to a local HTTP origin
# (python3 -m http.server), the relay spawned per connection by
# systemd-socket-activate in both of its modes: --accept (socket on fd 3)
# and --inetd (socket on fd 0 and 1).  The file must arrive intact, and
# when shaped, in the time the rate says.
. "$IPRELAY_TOP/tests/lib.sh"

CONN=$IPRELAY_BIN/iprelay-conn
if [ -x "$IPRELAY_BIN/iprelay-limit" ]; then
	LIMIT_CMD="$IPRELAY_BIN/iprelay-limit -S $IPRELAY_STATE_DIR"
else
	LIMIT_CMD="$IPRELAY_BIN/tools/limitctl -S $IPRELAY_STATE_DIR"
fi
[ -x "$CONN" ] || { echo "1..0 # SKIP $CONN not built"; exit 0; }
mkdir -p "$IPRELAY_STATE_DIR"

# 512 KiB at 128 KiB/s: 3.9 s, as the idle bucket's burst (a tenth of a
# second of traffic) passes at once.
SIZE=$((512 << 10))
RATE=$((128 << 10))
mkdir -p "$TEST_TMP/www"
head -c "$SIZE" /dev/urandom >"$TEST_TMP/www/file.bin"
want_sha=$(sha256sum <"$TEST_TMP/www/file.bin" | cut -d' ' -f1)

http_port=$(free_port)
spawn python3 -m http.server --bind 127.0.0.1 --directory "$TEST_TMP/www" \
    "$http_port" >"$TEST_TMP/http.log" 2>&1
wait_port "$http_port" 10 || { echo "Bail out! http origin did not start"; exit 1; }

$LIMIT_CMD set web 0 --down "$RATE"

# start_relay MODE IPRELAY-CONN-ARGS...: sets RELAY_PORT.  MODE accept: the
# connection on fd 3 (LISTEN_FDS); inetd: on fd 0 and 1, like inetd nowait.
start_relay() {
	log=$TEST_TMP/activate.$1.$RANDOM.log
	RELAY_PORT=$(free_port)
	mode_flag=
	[ "$1" = inetd ] && mode_flag=--inetd
	spawn systemd-socket-activate --accept $mode_flag -l "127.0.0.1:$RELAY_PORT" \
	    -E IPRELAY_STATE_DIR -E IPRELAY_LOG_FILE \
	    "$CONN" -S "$IPRELAY_STATE_DIR" "${@:2}" 2>"$log"
	for _ in $(seq 200); do
		grep -q '^Listening on' "$log" 2>/dev/null && return 0
		sleep 0.05
	done
	echo "Bail out! relay ($1) did not listen"
	exit 1
}

# fetch PORT: downloads the file, prints "SECONDS TRANSFER_SECONDS SHA256":
# the whole request, and from the first byte of the answer to the last
# (without the relay's start-up, which a loaded machine or the sanitizer
# build stretches).
fetch() {
	rm -f "$TEST_TMP/got.bin"
	secs=$(curl -sS --max-time 30 -o "$TEST_TMP/got.bin" \
	    -w '%{time_total} %{time_starttransfer}' \
	    "http://127.0.0.1:$1/file.bin") || secs="curl-failed 0"
	set -- $secs
	echo "$1 $(awk -v t="$1" -v s="$2" 'BEGIN { print t - s }')" \
	    "$(sha256sum <"$TEST_TMP/got.bin" 2>/dev/null | cut -d' ' -f1)"
}

for mode in accept inetd; do
	start_relay "$mode" "127.0.0.1:$http_port"
	set -- $(fetch "$RELAY_PORT")
	is "${3:-}" "$want_sha" "curl through the relay ($mode): file intact"
	like "$1" '^[0-9.]+$' "curl through the relay ($mode): transfer completed"

	start_relay "$mode" -l web "127.0.0.1:$http_port"
	set -- $(fetch "$RELAY_PORT")
	is "${3:-}" "$want_sha" "curl through a shaped relay ($mode): file intact"
	# The burst (a tenth of a second's worth) of the idle limit passes
	# at once, the rest at the rate.
	want_secs=$(awk -v s="$SIZE" -v r="$RATE" 'BEGIN { print (s - r / 10) / r }')
	diag "$mode: request took $1 s, $2 s from the first byte"
	like "$1" '^[0-9.]+$' "curl through a shaped relay ($mode): transfer completed"
	within "$2" "$want_secs" 3 \
	    "curl through a relay at 128 KiB/s ($mode): download time"
done

done_testing
