#!/bin/bash
# The upgrade from a store of one file (before f7f7250: limits, buckets and
# connections all in iprelay.mdb in the state dir) to the configuration
# (limits.mdb, synced) and the live store (issue 11 item 2).  Whatever
# program opens it first, a reader too, keeps every limit and says so in
# one line; where the live store now has a dir of its own, the old file is
# kept as iprelay.mdb.old and never read again.
#
# The old file is made by mdb_load from a dump of one the old programs
# wrote: `git archive f7f7250^ | tar -x`, `make`, then
#   iprelay-limit -S D set web --up 1M --down 2M --burst 64k
#   iprelay-limit -S D set web.child 100k --parent web --ceil 500k --max-conns 5
#   iprelay-limit -S D set mail 300k
#   mdb_dump -a -n D/iprelay.mdb
. "$IPRELAY_TOP/tests/lib.sh"

L=$IPRELAY_BIN/iprelay-limit
unset IPRELAY_STATE_DIR
if ! command -v mdb_load >/dev/null; then
	pass "store-upgrade # SKIP needs mdb_load (lmdb-utils)"
	done_testing
	exit 0
fi

cat >"$TEST_TMP/old.dump" <<'DUMP'
VERSION=3
format=bytevalue
database=buckets
type=btree
mapsize=268435456
maxreaders=8448
HEADER=END
 6d61696c
 495250420000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000b00400000000000078000000000000000000000000000000000000000000005669bfc09c00000000b00400000000000078000000000000000000000000000000000000000000005669bfc09c000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000
 776562
 4952504200000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000010000000000000000100000000000000000000000000000000000000000009c3b3bd9c000000000020000000000000000100000000000000000000000000000000000000000009c3b3bd9c000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000
 7765622e6368696c64
 495250420000000077656200000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000900100000000000028000000000000000000000000000000000000000000006247b6be9c00000000900100000000000028000000000000000000000000000000000000000000006247b6be9c00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000d007000000000000d007000000000000d007000000000000c8000000000000000000000000000000000000000000006247b6be9c00000000d007000000000000c8000000000000000000000000000000000000000000006247b6be9c00000000000000000000000000000000000000
DATA=END
VERSION=3
format=bytevalue
database=conns
type=btree
mapsize=268435456
maxreaders=8448
HEADER=END
DATA=END
VERSION=3
format=bytevalue
database=limits
type=btree
mapsize=268435456
maxreaders=8448
HEADER=END
 6d61696c
 4952504c0000000000b004000000000000b00400000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000
 776562
 4952504c00000000000010000000000000002000000000000000010000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000
 7765622e6368696c64
 4952504c0000000000900100000000000090010000000000000000000000000077656200000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000d007000000000000d00700000000000000000000000000000000000500000000000000000000000000000000000000
DATA=END
VERSION=3
format=bytevalue
database=meta
type=btree
mapsize=268435456
maxreaders=8448
HEADER=END
 666f726d6174
 697072656c61792d73746f72652031
DATA=END
DUMP

# old_store DIR: DIR holds a store of one file as the old programs left it.
old_store() {
	mkdir -p "$1" && chmod 2770 "$1" &&
	    mdb_load -n -f "$TEST_TMP/old.dump" "$1/iprelay.mdb"
}
# fields: export's JSON on stdin, the fields the old store held, a limit
# a line (fields export gains later are not compared).
fields() {
	python3 -c 'import json, sys
keys = ("name", "parent", "up", "down", "burst", "ceil_up", "ceil_down",
    "global", "max_conns", "max_conns_per_source")
for limit in json.load(sys.stdin)["limits"]:
    print(" ".join("%s=%s" % (k, limit.get(k)) for k in keys))'
}
# limits_of [-S DIR]: the limits as export lists them, fields as above.
limits_of() { "$L" "$@" export | fields; }
want='name=mail parent= up=307200 down=307200 burst=0 ceil_up=0 ceil_down=0 global=False max_conns=0 max_conns_per_source=0
name=web parent= up=1048576 down=2097152 burst=65536 ceil_up=0 ceil_down=0 global=False max_conns=0 max_conns_per_source=0
name=web.child parent=web up=102400 down=102400 burst=0 ceil_up=512000 ceil_down=512000 global=False max_conns=5 max_conns_per_source=0'
took='took the 3 limits of .*/iprelay\.mdb, a state file of an older version, as the configuration .*/limits\.mdb'

# --- 1. -S DIR holds both: a reader opens it first ----------------------
A=$TEST_TMP/a
ok "the old store of one file is made" old_store "$A"
out=$("$L" -S "$A" list 2>"$TEST_TMP/a.err"); rc=$?
is "$rc" 0 "-S DIR: list on the old store exits 0"
is "$(printf '%s\n' "$out" | awk 'NR > 1 { print $1 }' | tr '\n' ' ')" \
    "mail web web.child " "-S DIR: list shows the old store's 3 limits"
is "$(grep -c . "$TEST_TMP/a.err")" 1 "-S DIR: one line on stderr"
like "$(cat "$TEST_TMP/a.err")" "$took; that file goes on as the live state" \
    "-S DIR: the line names both files and what became of the old one"
is "$(limits_of -S "$A")" "$want" "-S DIR: every field of every limit kept"
ok "-S DIR: the configuration made beside it" test -s "$A/limits.mdb"
"$L" -S "$A" list >/dev/null 2>"$TEST_TMP/a2.err"
is "$(cat "$TEST_TMP/a2.err")" "" "-S DIR: the next open says nothing"
"$L" -S "$A" set mail 400k >/dev/null 2>&1
is "$(limits_of -S "$A" | cut -d' ' -f1,3 | tr '\n' ' ')" \
    'name=mail up=409600 name=web up=1048576 name=web.child up=102400 ' \
    "-S DIR: a change after the upgrade keeps the other limits"

# --- 2. -S DIR, a writer opens it first ---------------------------------
W=$TEST_TMP/w
old_store "$W"
"$L" -S "$W" set other 1M >/dev/null 2>"$TEST_TMP/w.err"
is "$?" 0 "-S DIR: set on the old store exits 0"
is "$(limits_of -S "$W" | cut -d' ' -f1 | tr '\n' ' ')" \
    'name=mail name=other name=web name=web.child ' \
    "-S DIR: the old limits and the new one"
like "$(cat "$TEST_TMP/w.err")" "$took" "-S DIR: the writer says it too"

# --- 3. a maker of the configuration died before it took the limits ----
# (the configuration made, never committed to: no generation)
U=$TEST_TMP/u
old_store "$U"
printf 'VERSION=3\nformat=print\ndatabase=%s\ntype=btree\nmaxreaders=8448\nHEADER=END\n%bDATA=END\n' \
    meta ' format\n iprelay-config 1\n' limits '' | mdb_load -n "$U/limits.mdb"
ok "a configuration with no generation is made" test -s "$U/limits.mdb"
is "$(limits_of -S "$U" 2>/dev/null)" "$want" \
    "a configuration never committed to: the old limits still taken"

# --- 4. the live store in a dir of its own (as /run/iprelay) ------------
# A user's default state dir with XDG_RUNTIME_DIR set: the live store
# goes to $XDG_RUNTIME_DIR/iprelay, as the system's goes to /run/iprelay.
H=$TEST_TMP/home
B=$H/.local/state/iprelay
mkdir -p "$H/run" && chmod 700 "$H/run"
old_store "$B"
in_home() { env -u XDG_STATE_HOME HOME="$H" XDG_RUNTIME_DIR="$H/run" "$@"; }
out=$(in_home "$L" -S "$B" list 2>"$TEST_TMP/b.err"); rc=$?
is "$rc" 0 "own runtime dir: list on the old store exits 0"
is "$(in_home "$L" -S "$B" export 2>/dev/null | fields)" "$want" \
    "own runtime dir: every field of every limit kept"
like "$(cat "$TEST_TMP/b.err")" \
    "$took; the old file is kept as .*/iprelay\.mdb\.old, no longer used \(the live state is now in $H/run/iprelay\)" \
    "own runtime dir: one line names the old file, where it is kept and the live dir"
is "$(grep -c . "$TEST_TMP/b.err")" 1 "own runtime dir: one line on stderr"
# limits_dump FILE: the limits database of an LMDB file, as mdb_dump says.
limits_dump() { mdb_dump -n -s limits "$1" | sed -n '/^HEADER=END/,$p'; }
mdb_load -n -f "$TEST_TMP/old.dump" "$TEST_TMP/again.mdb"
is "$(limits_dump "$B/iprelay.mdb.old")" "$(limits_dump "$TEST_TMP/again.mdb")" \
    "own runtime dir: the old file kept as iprelay.mdb.old, its limits as they were"
ok "own runtime dir: no iprelay.mdb left in the state dir" test ! -e "$B/iprelay.mdb"
ok "own runtime dir: the live store in the runtime dir" test -s "$H/run/iprelay/iprelay.mdb"
# The configuration removed (a reset): the old file is not read again.
rm -f "$B/limits.mdb" "$B/limits.mdb-lock"
is "$(in_home "$L" -S "$B" export 2>/dev/null | fields | grep -c .)" 0 \
    "own runtime dir: the configuration removed, the old limits do not come back"

# --- 5. a reader who may not write the dir cannot upgrade it ------------
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
	R=$TEST_TMP/r
	old_store "$R"
	chmod 755 "$TEST_TMP" "$R"
	chmod 644 "$R/iprelay.mdb" "$R/iprelay.mdb-lock"
	setpriv --reuid=65534 --regid=65534 --clear-groups "$L" -S "$R" list \
	    >/dev/null 2>"$TEST_TMP/r.err"
	is "$?" 100 "a reader who may not write the old store: exit 100"
	like "$(cat "$TEST_TMP/r.err")" "a state dir of an older version \\(no limits\\.mdb yet\\), which only a user who may write it can upgrade" \
	    "a reader who may not write the old store: told who may upgrade it"
	ok "a reader who may not write the old store: nothing made" \
	    test ! -e "$R/limits.mdb"
	chmod 700 "$TEST_TMP"
else
	pass "reader # SKIP needs root and setpriv"
fi

# --- 6. shaperd opens it first (a package upgrade's restart) -------------
rm -rf "$H/run/iprelay"
C=$H/.local/state/iprelay
rm -rf "$C"
old_store "$C"
spawn env -u XDG_STATE_HOME HOME="$H" XDG_RUNTIME_DIR="$H/run" \
    "$IPRELAY_BIN/shaperd" -S "$C" 2>"$TEST_TMP/shaperd.err"
shaperd_pid=$last_pid
# Its own line says it refills (no other program may open the store
# first: it would be the one to upgrade it).
refilling=1
for _ in $(seq 400); do
	grep -q '^shaperd: refilling' "$TEST_TMP/shaperd.err" && { refilling=0; break; }
	sleep 0.05
done
is "$refilling" 0 "shaperd on the old store refills"
is "$(in_home "$L" -S "$C" export 2>/dev/null | fields)" "$want" \
    "shaperd: every field of every limit kept"
stop_pid "$shaperd_pid"
like "$(cat "$TEST_TMP/shaperd.err" "$TEST_TMP/relay.log" 2>/dev/null)" "$took; the old file is kept" \
    "shaperd: the line in its log"

done_testing
