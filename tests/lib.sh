# Shared helpers for the integration tests (bash, TAP output).
# Source it first: . "$IPRELAY_TOP/tests/lib.sh"
set -u
IPRELAY_TOP=${IPRELAY_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
IPRELAY_BIN=${IPRELAY_BIN:-$IPRELAY_TOP/bin}
PEER="python3 $IPRELAY_TOP/tests/tools/peer.py"
# The sanitizer build (make check's second run) starts and draws slower:
# the few timed bounds that widen for it say so in their names.
case $IPRELAY_BIN in
*asan*) SANITIZED=1 ;;
*) SANITIZED= ;;
esac
TEST_TMP=$(mktemp -d /tmp/iprelay-test.XXXXXX)
export IPRELAY_STATE_DIR=$TEST_TMP/state
export IPRELAY_LOG_FILE=$TEST_TMP/relay.log
tap_count=0
tap_failed=0
spawned_pids=""

plan() { echo "1..$1"; }
# A failure and the diag lines after it go to stderr as well: prove shows
# stderr whatever its verbosity, so a CI log says what failed and why.
diag_loud=""
diag() {
	printf '# %s\n' "$*"
	[ -z "$diag_loud" ] || printf '# %s\n' "$*" >&2
}

pass() { tap_count=$((tap_count + 1)); diag_loud=""; echo "ok $tap_count - $*"; }
fail() {
	tap_count=$((tap_count + 1)); tap_failed=$((tap_failed + 1))
	diag_loud=1
	echo "not ok $tap_count - $*"
	echo "# failed: $tap_count - $*" >&2
}
# ok NAME CMD...: passes when CMD exits 0.
ok() { name=$1; shift; if "$@"; then pass "$name"; else fail "$name"; fi; }
# is GOT WANT NAME
is() {
	if [ "$1" = "$2" ]; then pass "$3"; else
		fail "$3"; diag "got:  '$1'"; diag "want: '$2'"; fi
}
# like GOT REGEX NAME
like() {
	if printf '%s' "$1" | grep -Eq -- "$2"; then pass "$3"; else
		fail "$3"; diag "got:  '$1'"; diag "want match: '$2'"; fi
}
# within GOT WANT PERCENT NAME: |GOT - WANT| <= WANT * PERCENT / 100
within() {
	if awk -v g="$1" -v w="$2" -v p="$3" 'BEGIN {
		d = g - w; if (d < 0) d = -d; exit !(d <= w * p / 100) }'; then
		pass "$4 ($1 vs $2, ±$3%)"
	else
		fail "$4"; diag "got $1, want $2 within $3%"
	fi
}

# within_over_under GOT WANT OVER UNDER NAME: WANT * (1 - UNDER / 100) <=
# GOT <= WANT * (1 + OVER / 100).  For rates: over the limit is a shaping
# error whatever the load, under it can be a starved process.
within_over_under() {
	if awk -v g="$1" -v w="$2" -v o="$3" -v u="$4" 'BEGIN {
		exit !(g ~ /^[0-9.]+$/ && g <= w * (1 + o / 100) &&
		    g >= w * (1 - u / 100)) }'; then
		pass "$5 ($1 vs $2, +$3% -$4%)"
	else
		fail "$5"; diag "got $1, want $2 within +$3% -$4%"
	fi
}

# spawn CMD...: start in the background, remember the pid for cleanup.
spawn() {
	"$@" &
	spawned_pids="$spawned_pids $!"
	last_pid=$!
}

stop_pid() {
	# TERM, up to 3 s, then KILL; never waits unbounded.
	pid=$1
	kill -TERM "$pid" 2>/dev/null || return 0
	for _ in $(seq 30); do
		kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	return 0
}

cleanup() {
	for pid in $spawned_pids; do stop_pid "$pid"; done
	if [ "${KEEP_TMP:-}" = "" ]; then rm -rf "$TEST_TMP"; fi
}
trap cleanup EXIT

done_testing() {
	echo "1..$tap_count"
	[ "$tap_failed" -eq 0 ]
}

# wait_file PATH [SECONDS]: until PATH exists and is non-empty.
wait_file() {
	for _ in $(seq $((${2:-10} * 20))); do
		[ -s "$1" ] && return 0
		sleep 0.05
	done
	return 1
}

# wait_refiller DIR [SECONDS]: until a refiller (shaperd, iprelay) has
# named itself in DIR's store.  Its lock files are empty (only locked), so
# waiting for one to fill waited out the whole bound.
wait_refiller() {
	for _ in $(seq $((${2:-10} * 20))); do
		"$IPRELAY_BIN/iprelay-limit" -S "$1" --json top -n 1 2>/dev/null |
		    grep -q '"refiller":"' && return 0
		sleep 0.05
	done
	return 1
}

# conns_of NAME: the live relays on limit NAME (iprelay-limit get).
conns_of() {
	json "$("$IPRELAY_BIN/iprelay-limit" --json get "$1" 2>/dev/null)" \
	    conns 2>/dev/null
}

# wait_conns NAME N: until limit NAME has N live relays, up to 20 s.
wait_conns() {
	local end=$((SECONDS + 20))
	while [ $SECONDS -lt $end ]; do
		[ "$(conns_of "$1")" = "$2" ] && return 0
		sleep 0.1
	done
	return 1
}

# wait_port PORT [SECONDS] [HOST]: until something listens on it.
wait_port() {
	host=${3:-127.0.0.1}
	for _ in $(seq $((${2:-10} * 20))); do
		if (exec 3<>"/dev/tcp/$host/$1") 2>/dev/null; then return 0; fi
		sleep 0.05
	done
	return 1
}

# wait_listen PORT: until something listens on PORT, up to 10 s, without
# connecting (a connection would start a socket-activated relay).
wait_listen() {
	for _ in $(seq 200); do
		ss -Hltn "sport = :$1" 2>/dev/null | grep -q . && return 0
		sleep 0.05
	done
	return 1
}

# need_redis: skip the whole file without redis-server and redis-cli
# (tests/deps.sh installs them), or with programs built without hiredis.
need_redis() {
	if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
		echo "1..0 # SKIP redis-server or redis-cli not installed (tests/deps.sh)"
		exit 0
	fi
	if "$IPRELAY_BIN/iprelay-limit" -R unix:/nonexistent hosts x 2>&1 |
	    grep -q "without hiredis"; then
		echo "1..0 # SKIP built without hiredis (HIREDIS=no)"
		exit 0
	fi
}

# free_port: a TCP port free on 127.0.0.1 and ::1 a moment ago, taken below
# the kernel's ephemeral range: a port from that range (what port 0 gives)
# can be taken as the local port of any outgoing connection on the machine
# before the test binds it (a CI run saw a daemon of iprelay-examples.t
# never start while another suite ran beside it).
free_port() {
	python3 -c 'import errno, random, socket
low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
top = low - 1 if low > 11000 else 65535
bottom = 10000 if low > 11000 else 61000
for _ in range(1000):
	port = random.randint(bottom, top)
	try:
		s = socket.socket(socket.AF_INET)
		s.bind(("127.0.0.1", port))
		s.close()
		s = socket.socket(socket.AF_INET6)
		s.bind(("::1", port))
		s.close()
	except OSError as e:
		# A machine without IPv6 on loopback: the IPv4 port will do.
		if e.errno not in (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL):
			continue
	print(port)
	break'
}

# start_origin NAME [peer server args...]: a peer server; sets
# ORIGIN_PORT and ORIGIN_REPORT.
start_origin() {
	ORIGIN_REPORT=$TEST_TMP/$1.report
	spawn $PEER server --port-file "$TEST_TMP/$1.port" --report "$ORIGIN_REPORT" "${@:2}"
	wait_file "$TEST_TMP/$1.port" 10 || { echo "Bail out! origin $1 did not start"; exit 1; }
	ORIGIN_PORT=$(cat "$TEST_TMP/$1.port")
}

# json FILE-OR-STRING KEY: one field of a JSON line.
json() {
	python3 -c 'import json, sys; v = json.loads(sys.argv[1])[sys.argv[2]]
print(v if not isinstance(v, (list, dict)) else json.dumps(v))' "$1" "$2"
}

# steady_rate JSON FROM TO: received bytes/s between FROM and TO seconds
# after the first byte, from the timeline.
steady_rate() {
	python3 - "$1" "$2" "$3" <<'PY'
import json, sys
timeline = json.loads(sys.argv[1])["timeline"]
t0, t1 = float(sys.argv[2]), float(sys.argv[3])
def at(t):
    best = 0
    for ts, n in timeline:
        if ts <= t:
            best = n
    return best
print(int((at(t1) - at(t0)) / (t1 - t0)))
PY
}
