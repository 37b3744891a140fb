#!/bin/bash
# iprelay-limit: every command's output and exit code, including bad input.
. "$IPRELAY_TOP/tests/lib.sh"

L="$IPRELAY_BIN/iprelay-limit"
OUT=$TEST_TMP/out
ERR=$TEST_TMP/err

# run ARGS...: sets rc, out (stdout) and err (stderr).
run() {
	"$L" "$@" >"$OUT" 2>"$ERR"
	rc=$?
	out=$(cat "$OUT")
	err=$(cat "$ERR")
}

valid_json() { python3 -m json.tool "$OUT" >/dev/null 2>&1; }

# Reading before any state file exists: empty, and creates nothing.
run list
is "$rc" 0 "list without a state file exits 0"
like "$out" '^NAME +PARENT +UP +DOWN +CEIL +BURST +CONNS' "list prints the header"
like "$out" "DOWN/5s GLOBAL  \\[store $IPRELAY_STATE_DIR, from IPRELAY_STATE_DIR\\]\$" \
    "which names the store and why that one"
ok "reading created no state file" test ! -e "$IPRELAY_STATE_DIR/iprelay.mdb" -a ! -e "$IPRELAY_STATE_DIR/limits.mdb"
run --json list
is "$out" "[]" "--json list without a state file is []"

# set NAME RATE: both directions; the user's own words.
run set pop3 1024
is "$rc" 0 "set pop3 1024 exits 0"
is "$out" "pop3 created in $IPRELAY_STATE_DIR (from IPRELAY_STATE_DIR)" \
    "set says which store it wrote to, and why that one"
run get pop3
is "$rc" 0 "get exits 0"
like "$out" '^name: +pop3$' "get shows the name"
like "$out" 'up: +1K' "1024 prints as 1K"
like "$out" 'down: +1K' "set RATE sets both directions"
like "$out" 'burst: +auto' "burst defaults to auto"
like "$out" 'parent: +-' "no parent"
ok "state dir is not world-accessible" \
	test "$(stat -c %a "$IPRELAY_STATE_DIR")" = 770
mode=$(stat -c %a "$IPRELAY_STATE_DIR/iprelay.mdb")
is "$mode" 660 "state file is mode 660"

# Options, after the name too; fields not given are kept.
run set pop3 --up 64K --burst 16K
is "$rc" 0 "set with options exits 0"
run --json get pop3
ok "get --json is valid JSON" valid_json
is "$(json "$out" store)" "$IPRELAY_STATE_DIR" "get --json names the store"
is "$(json "$out" up)" 65536 "--up 64K is 65536"
is "$(json "$out" down)" 1024 "down kept"
is "$(json "$out" burst)" 16384 "--burst 16K"
is "$(json "$out" parent)" None "parent null"
run set pop3 1.5M
is "$rc" 100 "a decimal rate is refused"
run set big 3M --down unlimited
run --json get big
is "$(json "$out" up)/$(json "$out" down)" "3145728/0" "--down unlimited is 0"
run set big 1536
run get big
like "$out" 'up: +1536$' "a rate that is no whole K prints in bytes"
run set newup --up 5K
run --json get newup
is "$(json "$out" up)/$(json "$out" down)" "5120/0" "new limit given only --up gets down=0"

# Creating shows (issue 15): "created" for a new name, "changed" for one that
# exists, and --no-create refuses a name the store does not have.
run set big 2K
is "$rc/$out" "0/big changed in $IPRELAY_STATE_DIR (from IPRELAY_STATE_DIR)" \
    "set on an existing limit says changed, and the store"
run set --no-create big 4K
is "$rc/$out" "0/big changed in $IPRELAY_STATE_DIR (from IPRELAY_STATE_DIR)" \
    "--no-create changes an existing limit"
run --json get big
is "$(json "$out" up)" 4096 "and the change is written"
run set bgi 4K --no-create
is "$rc" 1 "--no-create on a missing name exits 1"
is "$err" "iprelay-limit: refused: no limit bgi in $IPRELAY_STATE_DIR (from IPRELAY_STATE_DIR) to change, and --no-create makes none" \
    "one line naming the limit and the store"
is "$out" "" "and nothing on stdout"
run get bgi
is "$rc" 1 "nothing was created"
run -S "$TEST_TMP/nostore" set --no-create big 1K
is "$rc" 1 "--no-create with a store that has no state file: refused"
like "$err" "no limit big in $TEST_TMP/nostore \\(given with -S\\)" \
    "naming that store"
ok "and made no state file there" test ! -e "$TEST_TMP/nostore/iprelay.mdb"
run set bgi --no-create
is "$rc" 100 "--no-create alone is no change: missing RATE"
run get big --no-create
is "$rc" 100 "--no-create is only for set"
like "$err" "option --no-create is only for set" "and says so"

# Parents: nesting, cycles refused, clearing.
run set total 1M
run set pop3 --parent total
is "$rc" 0 "set --parent exits 0"
run --json get pop3
is "$(json "$out" parent)" total "parent set"
is "$(json "$out" up)" 65536 "re-parenting keeps the rates"
run set total --parent pop3
is "$rc" 1 "a cycle is refused with exit 1"
like "$err" "cycle" "the refusal says cycle"
is "$(echo "$err" | wc -l)" 1 "the refusal is one line"
run set pop3 --parent pop3
is "$rc" 1 "own parent is refused"
run set pop3 --parent nosuch
is "$rc" 1 "a missing parent is refused"
like "$err" "nosuch" "the refusal names the parent"
run set sub --parent pop3
run set sub2 --parent sub
run set total --parent sub2
is "$rc" 1 "a longer cycle is refused"

# del: refused while it has children; says what becomes of relays.
run del total
is "$rc" 1 "del of a limit with children is refused"
like "$err" "child" "the refusal says why"
run del sub2
is "$rc" 0 "del of a leaf exits 0"
like "$out" "unshaped until a limit named sub2 exists again" \
	"del says what becomes of relays on it"
run get sub2
is "$rc" 1 "get of a deleted limit exits 1"
like "$err" "no such limit: sub2" "and names it"
run del sub2
is "$rc" 1 "del of a missing limit exits 1"
run set pop3 --parent ''
run --json get pop3
is "$(json "$out" parent)" None "--parent '' clears the parent"
run set sub --parent none
run --json get sub
is "$(json "$out" parent)" None "--parent none clears the parent"

# list: the table and --json.
run list
is "$rc" 0 "list exits 0"
like "$out" '^pop3 +- +64K +1K +none +16K +0 +- +0 +- +-' "list row of pop3 (CAPS -, REFUSED 0)"
like "$out" '^total +- +1M +1M +none +auto +0' "list row of total"
run --json list
ok "list --json is valid JSON" valid_json
is "$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$OUT")" \
	"$(run list; echo "$out" | tail -n +2 | wc -l)" "list --json has every limit"

# Ceilings: borrowing past the rate, up to a ceiling, from idle ancestors.
run get pop3
like "$out" 'ceil: +up none down none' "a limit has no ceiling by default"
like "$out" 'borrowed: up 0 down 0' "and has borrowed nothing"
run --json get pop3
is "$(json "$out" ceil_up)/$(json "$out" ceil_down)" "None/None" "no ceiling is null in JSON"
run set link 1M
run set bulk 256K --parent link --ceil 768K
is "$rc" 0 "set --ceil with a parent exits 0"
is "$err" "" "and says nothing"
run --json get bulk
is "$(json "$out" ceil_up)/$(json "$out" ceil_down)" "786432/786432" "--ceil sets both directions"
is "$(json "$out" up)" 262144 "the rate is kept beside it"
run set bulk --ceil-down unlimited
run --json get bulk
is "$(json "$out" ceil_up)/$(json "$out" ceil_down)" "786432/0" "--ceil-down unlimited is 0 in JSON, up kept"
run get bulk
like "$out" 'ceil: +up 768K down unlimited' "get shows both ceilings"
run list
like "$out" '^bulk +link +256K +256K +768K/unlimited +auto +0 ' "list shows the ceilings (up/down when they differ)"
run set bulk --ceil 0
run list
like "$out" '^bulk +link +256K +256K +unlimited +auto ' "--ceil 0 is unlimited, one value when both agree"
run set bulk --ceil-up 256K
run --json get bulk
is "$(json "$out" ceil_up)" 262144 "a ceiling equal to the rate is accepted"
run set bulk --ceil 128K
is "$rc" 1 "a ceiling below the rate is refused with exit 1"
like "$err" "refused: bulk: ceiling 128K \(up\) is below the rate 256K \(up\)" "the refusal names both values"
is "$(echo "$err" | wc -l)" 1 "in one line"
run set bulk 512K
is "$rc" 1 "raising the rate past the stored ceiling is refused"
like "$err" "ceiling 256K \(up\) is below the rate 512K \(up\)" "naming the stored ceiling and the new rate"
run set bulk 512K --ceil 1M
is "$rc" 0 "rate and ceiling raised together are accepted"
run set newbulk 64K --ceil 128K
is "$rc" 1 "a ceiling on a limit without a parent is refused"
like "$err" "refused: newbulk: a ceiling needs a parent limit to borrow from" "and says why"
run get newbulk
is "$rc" 1 "the refused limit was not created"
run set link --ceil 2M
is "$rc" 1 "a ceiling on a top-level limit is refused"
run set bulk --parent none
is "$rc" 1 "making a limit with a ceiling top-level is refused"
like "$err" "top-level limit cannot have a ceiling \(up 1M, down 1M\).*--ceil none" "and says how"
run set bulk --parent none --ceil none
is "$rc" 0 "... unless its ceiling goes too"
run --json get bulk
is "$(json "$out" ceil_up)/$(json "$out" parent)" "None/None" "ceiling none, top-level"
run set link --ceil none
is "$rc" 0 "--ceil none on a top-level limit is fine (nothing to borrow)"
run set half --up 1K --parent link
run set half --ceil 4K
is "$rc" 1 "--ceil over an unlimited direction is refused"
like "$err" "ceiling 4K \(down\) is below the rate unlimited \(down\)" "naming the unlimited direction"
run set half --ceil-up 4K
is "$rc" 0 "--ceil-up sets the limited direction alone"

# conns and kill with no relay.
run conns
is "$rc" 0 "conns exits 0"
like "$out" '^ID +PID +LIMIT +PEER +REMOTE +AGE +UP +DOWN' "conns header"
run --json conns
is "$out" "[]" "conns --json with no relay is []"
run kill CONN000042
is "$rc" 1 "kill of a missing connection exits 1"
like "$err" "no such connection: CONN000042" "and names it"
run kill all
is "$rc" 0 "kill all with none exits 0"
like "$out" "^0 connections terminated" "kill all says how many"

# conns and kill with a live relay-like process (a drawer on a slow limit).
"$IPRELAY_BIN/iprelay-limit" set free 1K
spawn "$IPRELAY_BIN/tools/drawer" -l free -t 30 -o "$TEST_TMP/free.report"
drawer_pid=$last_pid
for _ in $(seq 100); do
	run --json conns
	[ "$out" != "[]" ] && break
	sleep 0.05
done
ok "conns --json is valid JSON" valid_json
id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[0]["id"])' "$OUT")
like "$id" '^CONN[0-9]{6}$' "a relay is listed with its id"
is "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[0]["pid"])' "$OUT")" \
	"$drawer_pid" "with its pid"
run conns
like "$out" "^$id +$drawer_pid +free " "conns table row"
run list
like "$out" '^free +- +1K +1K +none +auto +1 ' "list counts the live relay"
# A drawer registers like a relay but is no iprelay-conn: kill leaves it
# alone and says so (a real relay: conn-faults.t, trust-records.t).
run kill "$id"
is "$rc" 1 "kill ID of a process that is no relay exits 1"
like "$err" "skipped $id: not a relay of this store: pid $drawer_pid runs .*drawer, not iprelay-conn" \
    "kill says what it skipped and why"
ok "the drawer was not signalled" kill -0 "$drawer_pid"
stop_pid "$drawer_pid"

# del with a live relay on it: says how many now run unshaped; the relay
# goes on drawing (unshaped) and is counted again when the name returns.
"$L" set doomed 1K
spawn "$IPRELAY_BIN/tools/drawer" -l doomed -t 30 -o "$TEST_TMP/doomed.report"
doomed_pid=$last_pid
for _ in $(seq 100); do
	run get doomed
	[[ $out == *"conns:   1"* ]] && break
	sleep 0.05
done
run del doomed
is "$rc" 0 "del of a limit in use exits 0"
like "$out" "its 1 live relay now runs unshaped until a limit named doomed exists again" \
	"del says how many relays now run unshaped"
run set doomed 2K
run get doomed
like "$out" "conns: +1$" "a limit set again under that name counts the relay again"
ok "the relay is still running" kill -0 "$doomed_pid"
stop_pid "$doomed_pid"

# top: refreshes COUNT times.
run top -n 2 -d 0.1
is "$rc" 0 "top -n 2 exits 0"
is "$(grep -c '^iprelay-limit top' "$OUT")" 2 "top refreshed twice"
run --json top -n 3 -d 0.05
is "$(wc -l <"$OUT")" 3 "top --json prints one line per refresh"
ok "each top --json line is JSON" python3 -c '
import json, sys
for line in open(sys.argv[1]):
    v = json.loads(line); assert "limits" in v and "conns" in v' "$OUT"

# Bad input: one line naming the bad word, exit 100.
bad() {
	word=$1; shift
	run "$@"
	is "$rc" 100 "bad input exits 100: $*"
	like "$err" "$word" "the message names '$word'"
}
bad "12Q" set x 12Q
bad "-5" set x -5
bad "fast" set x --up fast
bad "1X" set x --down 1X
bad "lots" set x 1K --burst lots
bad "fast" set x 1K --ceil fast
bad "1.5M" set x 1K --ceil-up 1.5M
bad "-3" set x 1K --ceil-down -3
bad "only for set" get pop3 --ceil 1K
bad "b@d" set 'b@d' 1K
bad "b@d" get 'b@d'
bad "p!" set x 1K --parent 'p!'
bad "frob" frob
bad "--bogus" list --bogus
bad "CONNxyz" kill CONNxyz
bad "zero" top -n zero
bad "missing NAME" get
bad "missing NAME" set
bad "missing RATE" set x
bad "missing command"
bad "missing ID" kill
bad "unexpected word 'extra'" get pop3 extra
bad "needs a value" set x --up
bad "only for set" list --up 1K
long=$(printf 'n%.0s' $(seq 65))
bad "$long" set "$long" 1K
run set x 12Q
is "$(wc -l <"$ERR")" 1 "a bad word gets exactly one line"
run frob
like "$(head -1 "$ERR")" "unknown command: 'frob'" "a usage error comes first"
like "$err" "usage: iprelay-limit" "then the usage"
run get x
is "$rc" 1 "nothing was created by refused commands"

# A foreign configuration file is refused, never read as garbage, and the
# line names the file and the way back; a foreign live file is made again.
mkdir -p "$TEST_TMP/foreign"
head -c 65536 /dev/urandom >"$TEST_TMP/foreign/limits.mdb"
run -S "$TEST_TMP/foreign" list
ok "a foreign configuration file is refused" test "$rc" -ne 0
is "$(wc -l <"$ERR")" 1 "in one line"
like "$err" "$TEST_TMP/foreign/limits.mdb.*import" "naming it and the way back"
mkdir -p "$TEST_TMP/foreign-live"
run -S "$TEST_TMP/foreign-live" set kept 1K
head -c 65536 /dev/urandom >"$TEST_TMP/foreign-live/iprelay.mdb"
run -S "$TEST_TMP/foreign-live" get kept
is "$rc" 0 "a foreign live file is made again, the limits kept"

# Caps on live relays (issue 12 item 4): set, shown, cleared; bad values
# named in one line, exit 100, nothing written.
run set capped 1M --max-conns 100 --max-conns-per-source 8
is "$rc" 0 "set --max-conns 100 --max-conns-per-source 8 exits 0"
run get capped
like "$out" '^caps: +conns 100 per source 8$' "get shows the caps"
like "$out" '^refused: +conns 0 per source 0$' "get shows no refusal yet"
run --json get capped
is "$(json "$out" max_conns) $(json "$out" max_conns_per_source)" "100 8" "--json max_conns, max_conns_per_source"
is "$(json "$out" refused_max_conns) $(json "$out" refused_max_conns_per_source)" "0 0" "--json refusal counts"
run list
like "$out" '^capped +- +1M +1M +none +auto +0 +100/8 +0 ' "list shows CAPS 100/8, REFUSED 0"
run set capped 2M
run --json get capped
is "$(json "$out" max_conns) $(json "$out" max_conns_per_source)" "100 8" "a set without them keeps the caps"
for word in x -1 1.5 1000001 ''; do
	run set capped --max-conns "$word"
	is "$rc" 100 "--max-conns '$word' exits 100"
	is "$(printf '%s\n' "$err" | wc -l) $err" \
	    "1 iprelay-limit: bad --max-conns: '$word' (a number of connections from 1 to 1000000, or 0 or none to clear it)" \
	    "and names it in one line"
done
run set capped --max-conns-per-source 8x --max-conns y
is "$rc/$err" "100/iprelay-limit: bad --max-conns: 'y', bad --max-conns-per-source: '8x' (a number of connections from 1 to 1000000, or 0 or none to clear it)" \
    "two bad caps are both named, in one line"
run --json get capped
is "$(json "$out" max_conns) $(json "$out" max_conns_per_source)" "100 8" "a refused set wrote nothing"
run set capped --max-conns none --max-conns-per-source 0
is "$rc" 0 "none and 0 clear the caps"
run --json get capped
is "$(json "$out" max_conns) $(json "$out" max_conns_per_source)" "None None" "both cleared (null)"
run set newcap --max-conns-per-source 3
is "$rc" 0 "a cap alone creates a limit"
run get capped --max-conns 3
is "$rc" 100 "--max-conns is only for set"
run del newcap

# Without write permission: refused by policy, said plainly.
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
	chmod 755 "$IPRELAY_STATE_DIR"
	chmod 644 "$IPRELAY_STATE_DIR"/*.mdb*
	setpriv --reuid=65534 --regid=65534 --clear-groups \
		"$L" set pop3 2K >"$OUT" 2>"$ERR"
	rc=$?
	is "$rc" 1 "set without write access exits 1"
	like "$(cat "$ERR")" "write access" "and says it needs write access"
	chmod 770 "$IPRELAY_STATE_DIR"
	chmod 660 "$IPRELAY_STATE_DIR"/*.mdb*
elif [ "$(id -u)" != 0 ]; then
	ro=$TEST_TMP/ro
	"$L" -S "$ro" set a 1K
	chmod 500 "$ro"; chmod 400 "$ro"/*.mdb*
	run -S "$ro" set a 2K
	is "$rc" 1 "set without write access exits 1"
	like "$err" "write access" "and says it needs write access"
	chmod 700 "$ro"; chmod 600 "$ro"/*.mdb*
fi

# -S DIR is honoured over IPRELAY_STATE_DIR.
run -S "$TEST_TMP/other" set only 1K
run -S "$TEST_TMP/other" list
like "$out" '^only ' "-S DIR uses that dir"
run get only
is "$rc" 1 "and not IPRELAY_STATE_DIR"

done_testing
