#!/bin/bash
# The crash model of the state (issue 11, item 2): the configuration
# (limits.mdb, synced) apart from the live store (iprelay.mdb, NOSYNC,
# thrown away and made again from the configuration).
#  1. The live file garbled or cut at random offsets while relays and
#     shaperd run: every new connection is relayed (the first relay may
#     die of the damage, the next one must work), the limits are intact,
#     the configuration file untouched, shaperd runs on or restarts
#     cleanly.  On the code of one file the limits were in the damaged
#     file: relays exited 111 and the limits were gone.
#  2. The configuration file garbled: a refusal naming it and the way back
#     (import of an export), exit 100.
#  3. Writers (iprelay-limit set in a loop) killed with SIGKILL at random
#     instants, many times: the configuration is always readable and
#     consistent, and the live copy agrees with it after the next open.
#  4. export -> import round trip equal; an import of a bad file changes
#     nothing.
. "$IPRELAY_TOP/tests/lib.sh"

L=$IPRELAY_BIN/iprelay-limit
CONN=$IPRELAY_BIN/iprelay-conn
D=$IPRELAY_STATE_DIR
ROUNDS=${CRASH_ROUNDS:-24}
command -v systemd-socket-activate >/dev/null ||
	{ echo "Bail out! systemd-socket-activate missing"; exit 1; }

# garble FILE SEED: random bytes (4 KiB, or a cut) at a random offset.
garble() {
	python3 - "$@" <<'PY'
import os, random, sys
path, seed = sys.argv[1], int(sys.argv[2])
rng = random.Random(seed)
# Within the pages in use (the refiller keeps 8 MiB allocated past them,
# where damage harms nothing): a store this small uses the first few.
size = min(os.path.getsize(path), 65536)
kind = rng.choice(["page", "page", "meta", "cut"])
with open(path, "r+b") as f:
    if kind == "cut":
        f.truncate(rng.randrange(0, max(size, 1)))
    else:
        offset = rng.randrange(0, 8192) if kind == "meta" else rng.randrange(0, max(size, 1))
        f.seek(offset)
        f.write(bytes(rng.getrandbits(8) for _ in range(4096)))
print(kind)
PY
}

# fetch PORT: bytes received through the relay, to EOF (10 s at most).
fetch() {
	python3 -c 'import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
n = 0
try:
    while True:
        b = s.recv(65536)
        if not b:
            break
        n += len(b)
except OSError:
    pass
print(n)' "$1" 2>/dev/null || echo 0
}

# --- 1. the live file damaged while relays and shaperd run -------------------
"$L" set top 1M >/dev/null
"$L" set child 400K --parent top --ceil 800K >/dev/null
cp "$D/limits.mdb" "$TEST_TMP/limits.before"
start_origin o --send 20000
port=$(free_port)
spawn systemd-socket-activate -l "127.0.0.1:$port" --accept --inetd \
    -E IPRELAY_STATE_DIR -E IPRELAY_LOG_FILE \
    "$CONN" -l child "127.0.0.1:$ORIGIN_PORT" 2>"$TEST_TMP/sa.err"
wait_listen "$port" || diag "systemd-socket-activate did not listen"
is "$(fetch "$port")" 20000 "a connection is relayed before any damage"
spawn "$IPRELAY_BIN/shaperd" -S "$D" 2>"$TEST_TMP/shaperd.err"
shaperd_pid=$last_pid
sleep 0.5

first_failed=0 second_failed=0 limits_lost=0 shaperd_died=0
for round in $(seq "$ROUNDS"); do
	kind=$(garble "$D/iprelay.mdb" "$round")
	got=$(fetch "$port")
	if [ "$got" != 20000 ]; then
		first_failed=$((first_failed + 1))
		got=$(fetch "$port")
		if [ "$got" != 20000 ]; then
			second_failed=$((second_failed + 1))
			diag "round $round ($kind): two connections failed ($got bytes)"
		fi
	fi
	"$L" get child 2>/dev/null | grep -q 'up: *400K' || {
		limits_lost=$((limits_lost + 1))
		diag "round $round ($kind): limit child not as set"
	}
	if ! kill -0 "$shaperd_pid" 2>/dev/null; then
		wait "$shaperd_pid"
		diag "round $round ($kind): shaperd ended ($?): restarted"
		shaperd_died=$((shaperd_died + 1))
		spawn "$IPRELAY_BIN/shaperd" -S "$D" 2>>"$TEST_TMP/shaperd.err"
		shaperd_pid=$last_pid
		sleep 0.3
	fi
done
diag "live damage rounds took ${SECONDS}s; remade $(cat "$IPRELAY_LOG_FILE" "$TEST_TMP/shaperd.err" 2>/dev/null | grep -c 'made again') times"
is "$second_failed" 0 "the live file damaged $ROUNDS times: a second connection always relayed"
diag "first connections after the damage that failed: $first_failed of $ROUNDS; shaperd restarts: $shaperd_died"
is "$limits_lost" 0 "the limits were intact after every round"
ok "the configuration file was never written" cmp -s "$TEST_TMP/limits.before" "$D/limits.mdb"
grep -q "made again from the configuration" "$IPRELAY_LOG_FILE" "$TEST_TMP/shaperd.err" 2>/dev/null
ok "the remaking was logged" test $? = 0
sleep 2.5	# a housekeeping round: shaperd follows the new file
# A shaperd with the file mapped can still die on pages garbled under it
# by the last round (LMDB reads them in place: iprelay-state(5) BUGS); a
# CI run saw that in this sleep.  Then a new one must start and stay.
if ! kill -0 "$shaperd_pid" 2>/dev/null; then
	wait "$shaperd_pid"
	diag "shaperd ended ($?) after the last round: restarted"
	spawn "$IPRELAY_BIN/shaperd" -S "$D" 2>>"$TEST_TMP/shaperd.err"
	shaperd_pid=$last_pid
	sleep 2
fi
ok "shaperd runs at the end (or restarted cleanly)" kill -0 "$shaperd_pid"
out=$("$L" --json conns 2>&1)
ok "conns reads the live store at the end" python3 -c 'import json, sys; json.loads(sys.argv[1])' "$out"
is "$(fetch "$port")" 20000 "and a last connection is relayed"
stop_pid "$shaperd_pid"

# --- 2. the configuration file garbled --------------------------------------
G=$TEST_TMP/garbled
"$L" -S "$G" set web 1M >/dev/null
"$L" -S "$G" export >"$TEST_TMP/garbled.json"
python3 -c 'import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(0); f.write(b"\xa5" * 8192)' "$G/limits.mdb"
"$L" -S "$G" list >/dev/null 2>"$TEST_TMP/err"
is "$?" 100 "a garbled configuration is refused, exit 100"
like "$(cat "$TEST_TMP/err")" "$G/limits.mdb: the configuration file is damaged.*import" \
    "naming the file and the way back"
is "$(wc -l <"$TEST_TMP/err")" 1 "in one line"
timeout -k 2 5 "$IPRELAY_BIN/shaperd" -S "$G" >/dev/null 2>"$TEST_TMP/err"
is "$?" 100 "shaperd refuses it too, exit 100"
like "$(cat "$TEST_TMP/err")" "$G/limits.mdb" "naming it"
mv "$G/limits.mdb" "$G/limits.mdb.bad"
rm -f "$G/limits.mdb-lock"
"$L" -S "$G" import "$TEST_TMP/garbled.json" >/dev/null
is "$?" 0 "the way back: import of the export into a fresh configuration"
"$L" -S "$G" get web 2>/dev/null | grep -q 'up: *1M'
ok "the limit is back" test $? = 0

# --- 3. writers killed mid-commit -------------------------------------------
W=$TEST_TMP/writers
"$L" -S "$W" set base 1M >/dev/null
kills=${CRASH_KILLS:-25}
bad_reads=0 bad_limits=0 disagree=0
for round in $(seq "$kills"); do
	setsid bash -c 'i='"$round"'; while :; do
		"$0" -S "$1" set "w$((i % 5))" "$((1000 + i))" --parent base >/dev/null 2>&1
		i=$((i + 1)); done' "$L" "$W" &
	pgid=$!
	sleep "0.$(printf '%02d' $((RANDOM % 30 + 5)))"
	kill -KILL -- "-$pgid" 2>/dev/null
	wait "$pgid" 2>/dev/null
	if ! "$L" -S "$W" export >"$TEST_TMP/w.json" 2>"$TEST_TMP/w.err"; then
		bad_reads=$((bad_reads + 1))
		diag "round $round: export failed: $(cat "$TEST_TMP/w.err")"
		continue
	fi
	# Each limit whole: set writes both rates at once, under base.
	python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
for l in d["limits"]:
    if l["name"] == "base":
        continue
    assert l["up"] == l["down"] and l["up"] >= 1000 and l["parent"] == "base", l' \
	    "$TEST_TMP/w.json" 2>/dev/null || { bad_limits=$((bad_limits + 1)); diag "round $round: a torn limit"; }
	# The live copy agrees with the configuration once opened.
	"$L" -S "$W" --json list >"$TEST_TMP/w-list.json" 2>/dev/null
	python3 -c 'import json, sys
e = {l["name"]: l["up"] for l in json.load(open(sys.argv[1]))["limits"]}
j = json.load(open(sys.argv[2]))
j = j["limits"] if isinstance(j, dict) else j
g = {l["name"]: l.get("up") for l in j}
assert set(e) == set(g), (e, g)' "$TEST_TMP/w.json" "$TEST_TMP/w-list.json" 2>"$TEST_TMP/w.err" ||
	    { disagree=$((disagree + 1)); diag "round $round: live copy disagrees: $(tail -1 "$TEST_TMP/w.err")"; }
done
diag "writer kills done at ${SECONDS}s"
is "$bad_reads" 0 "$kills writers killed with SIGKILL: the configuration always read"
is "$bad_limits" 0 "no limit ever torn"
is "$disagree" 0 "the live copy always agreed with the configuration after the next open"

# --- 4. export and import ----------------------------------------------------
E=$TEST_TMP/export
"$L" -S "$E" set top 10M --burst 1M >/dev/null
"$L" -S "$E" set a 1M --parent top --ceil 5M >/dev/null
"$L" -S "$E" set b --up 64K --down 2M --parent top --ceil-down unlimited >/dev/null
"$L" -S "$E" set c 3M >/dev/null
"$L" -S "$E" export >"$TEST_TMP/e1.json"
is "$?" 0 "export exits 0"
is "$(grep -c '"name"' "$TEST_TMP/e1.json")" 4 "one line a limit"
"$L" -S "$TEST_TMP/export2" set stale 1K >/dev/null
"$L" -S "$TEST_TMP/export2" import - <"$TEST_TMP/e1.json" >/dev/null
is "$?" 0 "import - of it elsewhere exits 0"
"$L" -S "$TEST_TMP/export2" export >"$TEST_TMP/e2.json"
ok "export -> import -> export is equal" cmp -s "$TEST_TMP/e1.json" "$TEST_TMP/e2.json"
"$L" -S "$TEST_TMP/export2" get stale >/dev/null 2>&1
is "$?" 1 "a limit not in the file is gone"
# Bad files: each refused, the configuration unchanged.
bad_file() {	# NAME SED-EXPRESSION WANT-IN-MESSAGE
	sed "$2" "$TEST_TMP/e1.json" >"$TEST_TMP/bad-$1.json"
	"$L" -S "$E" import "$TEST_TMP/bad-$1.json" >/dev/null 2>"$TEST_TMP/err"
	is "$?" 100 "import of a bad file ($1): exit 100"
	like "$(cat "$TEST_TMP/err")" "$TEST_TMP/bad-$1.json:$3" "naming the file, line and fault ($1)"
	"$L" -S "$E" export | cmp -s - "$TEST_TMP/e1.json"
	ok "and nothing changed ($1)" test $? = 0
}
bad_file number 's/"up":1048576/"up":"fast"/' '[0-9]*: field up'
bad_file field 's/"burst":0,/"burst":0,"colour":1,/' '[0-9]*: unknown field .colour.'
bad_file parent 's/"parent":"top","up":1048576/"parent":"nope","up":1048576/' '[0-9]*: limit a: no such parent'
bad_file ceiling 's/"ceil_up":5242880/"ceil_up":5/' '[0-9]*: limit a: ceiling below the rate'
bad_file cut '$d' '[0-9]*: '
bad_file twice 's/"name":"c"/"name":"a"/' '[0-9]*: limit a: given twice'

done_testing
