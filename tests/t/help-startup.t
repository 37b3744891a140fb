#!/bin/bash
# -h, --help and --version for every program (exit 0, documented); iprelay
# checks everything before printing anything; iprelay(1) agrees with the
# program on the listen backlog and the split bandwidth, and says that the
# request is shaped too (issue 15).
. "$IPRELAY_TOP/tests/lib.sh"

man_text() {
	mandoc -T ascii -O width=1000 "$IPRELAY_TOP/docs/$1" 2>/dev/null |
	    sed 's/.\x08//g' | tr -s ' \t\n' '   '
}

for prog in iprelay iprelay-limit shaperd iprelay-conn; do
	for option in -h --help; do
		out=$("$IPRELAY_BIN/$prog" $option </dev/null 2>&1)
		is "$?" 0 "$prog $option exits 0"
		like "$(printf '%s\n' "$out" | head -n 1)" "^usage: $prog " \
		    "$prog $option prints the usage"
	done
	out=$("$IPRELAY_BIN/$prog" --version </dev/null 2>&1)
	is "$?" 0 "$prog --version exits 0"
	like "$out" "^$prog [0-9]+\\.[0-9]+\$" "$prog --version prints the version"
	page=$(ls "$IPRELAY_TOP"/docs/"$prog".[18])
	text=$(man_text "$(basename "$page")")
	like "$text" "$prog -h \\| --help \\| --version" \
	    "$(basename "$page") has -h | --help | --version in its synopsis"
	like "$text" "-h, --help " "$(basename "$page") describes -h, --help"
done

# Nothing is printed as set before a fatal line.
start_origin origin --send 1000
touch "$TEST_TMP/not-a-dir"
P=$(free_port)
err=$("$IPRELAY_BIN/iprelay" -S "$TEST_TMP/not-a-dir" "$P:127.0.0.1:$ORIGIN_PORT" </dev/null 2>&1)
status=$?
ok "a store that cannot be opened is fatal (exit $status)" test "$status" -ne 0
like "$err" 'fatal: unable to open the store' "it says why"
unlike_set=$(printf '%s\n' "$err" | grep -c 'forwarder 99 set\|iprelay Version')
is "$unlike_set" 0 "no banner and no 'forwarder 99 set.' before the fatal line"
err=$("$IPRELAY_BIN/iprelay" "$P:no-such-host.invalid:80" </dev/null 2>&1)
is "$?" 111 "an unresolvable host exits 111"
is "$(printf '%s\n' "$err" | grep -c 'iprelay Version')" 0 "and prints no banner"
is "$(printf '%s\n' "$err" | wc -l)" 1 "only the fatal line"

# iprelay(1) and the program agree.
text=$(man_text iprelay.1)
like "$text" 'SOMAXCONN' "iprelay(1) names the backlog the program uses (SOMAXCONN)"
case $text in
*'backlog of 128'*) fail "iprelay(1) no longer says the backlog is 128" ;;
*) pass "iprelay(1) no longer says the backlog is 128" ;;
esac
like "$text" 'request is shaped too' "iprelay(1) says the request is shaped too"
# The port listens only once the instance's limit has its rate: a change
# made by a client that waited for the port is never undone by the
# start-up's own rate (the split below was lost so, now and then, in CI).
# The store's open is held up here by its configuration's lock.
"$IPRELAY_BIN/iprelay-limit" set placeholder 1K >/dev/null
# One process holds it (flock(1)'s command would keep it past a kill).
spawn python3 -c 'import fcntl, sys, time
f = open(sys.argv[1]); fcntl.flock(f, fcntl.LOCK_EX); time.sleep(60)' \
    "$IPRELAY_STATE_DIR/limits.mdb" >/dev/null 2>&1
locker=$last_pid
H=$(free_port)
for _ in $(seq 100); do
	flock -n -s "$IPRELAY_STATE_DIR/limits.mdb" true || break
	sleep 0.05
done
"$IPRELAY_BIN/iprelay" -b 1000 "$H:127.0.0.1:$ORIGIN_PORT" </dev/null >/dev/null 2>&1 &
held=$!
spawned_pids="$spawned_pids $held"
# Until /proc/locks shows it waiting for that lock: inside its store's open.
blocked=0
for _ in $(seq 200); do
	if grep -Eq "^[0-9]+: -> FLOCK +ADVISORY +READ +$held " /proc/locks; then
		blocked=1; break
	fi
	sleep 0.05
done
ok "iprelay waits for its store's open (the lock held)" test "$blocked" = 1
if (exec 3<>"/dev/tcp/127.0.0.1/$H") 2>/dev/null; then
	fail "no connection is taken before the limit is set"
else
	pass "no connection is taken before the limit is set"
fi
stop_pid "$locker"
ok "the port listens once the store is open" wait_port "$H" 10
stop_pid "$held"

L=$(free_port)
mkfifo "$TEST_TMP/in"
exec 7<>"$TEST_TMP/in"
"$IPRELAY_BIN/iprelay" -b 1000 "$L:127.0.0.1:$ORIGIN_PORT" <"$TEST_TMP/in" >"$TEST_TMP/out" 2>/dev/null &
ipid=$!
spawned_pids="$spawned_pids $ipid"
wait_port "$L" 10
"$IPRELAY_BIN/iprelay-limit" set "iprelay-$L" --up 1000 --down 8000 >/dev/null
printf 'show bandwidth\nquit\n' >&7
wait "$ipid"
shown=$(sed -n 's/^.*bandwidth\t\(.*\)$/\1/p' "$TEST_TMP/out")
is "$shown" "1000 up, 8000 down" "a split bandwidth shows as 'UP up, DOWN down'"
like "$text" "as .UP up, DOWN down. if the directions differ" "and iprelay(1) says so"

done_testing
