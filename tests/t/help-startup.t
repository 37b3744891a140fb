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
