#!/bin/bash
# Global limits without Redis (issue 16, shaperd(8) "Global limits"): a
# host whose shaperd never had a lease runs its relays at the floor, the
# global rate divided by the host count set with `set --global --hosts N`
# (never at the whole rate), until Redis answers and it is leased; a
# floor with no host count known is refused by set; a shaperd restarted
# while Redis is down keeps its stored share for the lease and grace,
# then goes to the floor, and one rebooted (live store gone) at once, by
# the count Redis last gave; get, --json and the metrics show the state
# and the host count.
. "$IPRELAY_TOP/tests/lib.sh"

L="$IPRELAY_BIN/iprelay-limit"
SHAPERD="$IPRELAY_BIN/shaperd"
DRAWER="$IPRELAY_BIN/tools/drawer"

need_redis

SLOW=1
[ -n "$SANITIZED" ] && SLOW=2
G=4194304
HOSTS=4
FLOOR=$((G / HOSTS))

# A TCP port with nothing listening until start_redis.
REDIS_PORT=$(free_port)
export IPRELAY_REDIS=redis://127.0.0.1:$REDIS_PORT
R() { redis-cli -p "$REDIS_PORT" "$@"; }
start_redis() {
	spawn redis-server --port "$REDIS_PORT" --bind 127.0.0.1 \
		--save '' --appendonly no --dir "$TEST_TMP" \
		--logfile "$TEST_TMP/redis.log"
	redis_pid=$last_pid
	for _ in $(seq 100); do
		R ping 2>/dev/null | grep -q PONG && return 0
		sleep 0.05
	done
	echo "Bail out! redis-server did not start"
	exit 1
}
stop_redis() { stop_pid "$redis_pid"; }

H=$TEST_TMP/h1
mkdir -p "$H"
get() { "$L" -S "$H" --json get gf; }
field() { get | python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
# wait_field NAME FIELD VALUE SECONDS: a timed step, as one test.
wait_field() {
	local got
	for _ in $(seq $(($4 * 20))); do
		got=$(field "$2")
		[ "$got" = "$3" ] && { pass "$1"; return; }
		sleep 0.05
	done
	fail "$1"; diag "$2 is $got, not $3, after $4 s"
}

start_redis
"$L" -S "$H" set gf 4M --global 2>"$TEST_TMP/err"
is "$?" 1 "set --global with a floor of global / hosts and no host count is refused"
like "$(cat "$TEST_TMP/err")" "no host count is known: give --hosts N" "and says what to give"
is "$(R hget 'iprelay:{gf}:cfg' rate_up)" "" "nothing was written to Redis"
"$L" -S "$H" set gf 4M --global --hosts 0 2>/dev/null
is "$?" 100 "--hosts 0 is a usage error"
"$L" -S "$H" set gf 4M --global --hosts "$HOSTS" >/dev/null
is "$?" 0 "set gf 4M --global --hosts $HOSTS"
is "$(R hget 'iprelay:{gf}:cfg' hosts)" "$HOSTS" "Redis keeps the host count for the hosts that join"
"$L" -S "$H" set gf --grace 5 >/dev/null
# Saved: the Redis started again below loads it, as a Redis that was only
# unreachable still has the configuration.
R save >/dev/null
stop_redis

# Never leased: shaperd starts with nothing listening at its Redis.
METRICS_PORT=$(free_port)
spawn "$SHAPERD" -S "$H" -H h1 --metrics "127.0.0.1:$METRICS_PORT" \
	2>>"$TEST_TMP/shaperd.err"
shaperd_pid=$last_pid
wait_refiller "$H" 10 || { echo "Bail out! shaperd did not start"; exit 1; }
for _ in 1 2; do
	spawn "$DRAWER" -S "$H" -l gf -t 60 -o "$TEST_TMP/drawers.report"
	drawers="${drawers:-} $last_pid"
done
sleep 1
read -r state share floor_hosts < <(get | python3 -c 'import json,sys
d = json.load(sys.stdin); print(d["global_state"], d["share_down"], d["floor_hosts"])')
is "$state $share $floor_hosts" "floor $FLOOR $HOSTS" \
	"never leased, Redis down: at the floor (global / $HOSTS), not the global rate"
# Bytes over 4 s, each end read at the middle of its call.
rate=$(python3 - "$L" "$H" <<'PY'
import json, subprocess, sys, time
def total():
    a = time.monotonic()
    d = json.loads(subprocess.run([sys.argv[1], "-S", sys.argv[2], "--json", "get", "gf"],
                   capture_output=True, text=True, check=True).stdout)
    return d["down_total"], (a + time.monotonic()) / 2
b0, t0 = total()
time.sleep(4)
b1, t1 = total()
print(int((b1 - b0) / (t1 - t0)))
PY
)
# Over: the burst (a tenth of the floor) on top of 4 s, and the reads'
# ends; under: drawers starved on a loaded machine.
within_over_under "$rate" "$FLOOR" 15 15 "its relays pass the floor, not the global rate $G"
scrape=$(python3 -c 'import sys, urllib.request
print(urllib.request.urlopen("http://127.0.0.1:%s/metrics" % sys.argv[1], timeout=5).read().decode())' "$METRICS_PORT")
like "$scrape" 'iprelay_limit_global_state\{limit="gf",state="floor"\} 1' "the metrics show the floor"
like "$scrape" "iprelay_limit_global_floor_hosts\\{limit=\"gf\"\\} $HOSTS" "and the host count"
like "$("$L" -S "$H" get gf)" "offline: floor \\(global / $HOSTS hosts\\)" "get shows what the floor divides by"

# Redis comes up: the host is leased, and keeps the count Redis gives.
start_redis
wait_field "Redis up: the host is leased" global_state leased $((5 * SLOW))
is "$(field hosts_seen)" 1 "the host count Redis gave is kept in the configuration"
like "$("$L" -S "$H" export)" '"hosts":4,"hosts_seen":1' "and exported with the one set"
# The count set on another host reaches this one with its next lease.
"$L" -S "$TEST_TMP/h2" set gf --global --hosts 6 >/dev/null
wait_field "a host count set on another host is kept here too" hosts_set 6 $((3 * SLOW))
"$L" -S "$TEST_TMP/h2" set gf --global --hosts "$HOSTS" >/dev/null
wait_field "and set back" hosts_set "$HOSTS" $((3 * SLOW))

# Redis down, then shaperd restarted: the stored share is held for the
# lease and the grace (5 s: a restart and a read fit in it on a loaded
# machine), then the floor.
stop_redis
wait_field "Redis down: the share is held" global_state held $((3 * SLOW))
held=$(field share_down)
stop_pid "$shaperd_pid"
spawn "$SHAPERD" -S "$H" -H h1 2>>"$TEST_TMP/shaperd.err"
shaperd_pid=$last_pid
wait_refiller "$H" 10
read -r st share < <(get | python3 -c 'import json,sys
d = json.load(sys.stdin); print(d["global_state"], d["share_down"])')
is "$st $share" "held $held" "a shaperd restarted without Redis keeps holding the stored share"
wait_field "then, its grace over, the floor" global_state floor $((8 * SLOW))
is "$(field share_down)" "$FLOOR" "at global / $HOSTS"

# A reboot (the live store gone, made again from the configuration) with
# only the count Redis gave kept, 2 (an export edited to say so): the
# floor, global / 2.
for pid in $drawers; do stop_pid "$pid"; done
stop_pid "$shaperd_pid"
"$L" -S "$H" export | sed 's/"hosts":4,"hosts_seen":1/"hosts":0,"hosts_seen":2/' \
	>"$TEST_TMP/export.json"
rm -f "$H/iprelay.mdb" "$H/iprelay.mdb-lock"
"$L" -S "$H" import "$TEST_TMP/export.json" >/dev/null
spawn "$SHAPERD" -S "$H" -H h1 2>>"$TEST_TMP/shaperd.err"
wait_refiller "$H" 10
is "$(get | python3 -c 'import json,sys
d = json.load(sys.stdin); print(d["global_state"], d["share_down"], d["floor_hosts"], d["hosts_set"])')" \
	"floor $((G / 2)) 2 0" "after a reboot, Redis down: at the floor, global / the count Redis gave (kept in the configuration)"
done_testing
