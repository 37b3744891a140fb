#!/bin/bash
# A damaged state file: truncated, random bytes, pages overwritten,
# another program's LMDB file, another format version, zero length.
# The configuration (limits.mdb): every program that opens the store must
# say what is wrong in one line naming the state dir or file, exit 100 or
# 111, never die of a signal, and leave the damaged file as it was.
# The live store (iprelay.mdb, volatile): every program makes it again
# from the configuration with one line, and works on, the limits kept.
. "$IPRELAY_TOP/tests/lib.sh"

LIMIT=$IPRELAY_BIN/iprelay-limit
LAUNCH="python3 $IPRELAY_TOP/tests/fuzz/launch-inetd.py"
CASES=$TEST_TMP/cases
RUN_SECONDS=2	# a program that opened the store runs on: stop it then

# These cases crashed in liblmdb (SIGBUS: the map reaches past the end of
# the file) or took an empty file for a new store until the store checked
# the file before mapping it (common/store-file.c; 860248e, then in common/store.c).

# --- the damaged files ----------------------------------------------------
command -v mdb_load >/dev/null || { echo "Bail out! mdb_load missing (lmdb-utils)"; exit 1; }
mkdir -p "$CASES/good"
"$LIMIT" -S "$CASES/good" set top 1M || { echo "Bail out! cannot make a store"; exit 1; }
"$LIMIT" -S "$CASES/good" set child 10K --parent top
good=$CASES/good/limits.mdb
good_live=$CASES/good/iprelay.mdb
size=$(stat -c %s "$good")

make_case() {
	mkdir -p "$CASES/$1"
	CASE_FILE=$CASES/$1/limits.mdb
}
# format_bumped FROM TO KEYWORD: copy LMDB file FROM to TO with its meta
# "format" record "KEYWORD N" made "KEYWORD N+1"; prints N.  The hex form
# of mdb_dump, not -p: Debian's mdb_dump -p writes a backslash byte bare,
# mdb_load then stops at it, and the random generation record holds one
# in about one store in fifty (the meta database was lost and the case
# was no file of a future format).  mdb_load's complaints go to stderr.
hex() { printf '%s' "$1" | od -An -tx1 | tr -d ' \n'; }
format_bumped() {
	local from=$1 to=$2 keyword=$3 format dump
	format=$(mdb_dump -n -s meta -p "$from" | sed -n "s/^ $keyword \([0-9]*\)\$/\1/p")
	echo "${format:-0}"
	dump=$(mdb_dump -n -a "$from") || { echo "# mdb_dump -a $from failed" >&2; return 1; }
	printf '%s\n' "$dump" |
	    sed "s/^ $(hex "$keyword $format")\$/ $(hex "$keyword $((format + 1))")/" |
	    mdb_load -n -f /dev/stdin "$to" 2>&1 >/dev/null |
	    grep -v 'unrecognized keyword ignored: db_pagesize' | sed 's/^/# mdb_load: /' >&2
}
# seeded_bytes FILE OFFSET COUNT SEED: overwrite (or append) COUNT bytes.
seeded_bytes() {
	python3 - "$@" <<'PY'
import random, sys
path, offset, count, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rng = random.Random(seed)
with open(path, "r+b" if offset else "wb") as f:
    f.seek(offset)
    f.write(bytes(rng.getrandbits(8) for _ in range(count)))
PY
}

make_case truncated-page;  head -c 4096 "$good" >"$CASE_FILE"
make_case truncated-meta;  head -c 8192 "$good" >"$CASE_FILE"
make_case truncated-half;  head -c $((size / 8192 * 4096)) "$good" >"$CASE_FILE"
make_case random;          seeded_bytes "$CASE_FILE" 0 65536 1
make_case pages;           cp "$good" "$CASE_FILE"
			   seeded_bytes "$CASE_FILE" 8192 $((size - 8192)) 2
# Page headers kept, everything else in every page after the meta pages
# random (a few changed bytes may land in free space and harm nothing, so
# they make no test).
make_case page-bodies;     cp "$good" "$CASE_FILE"
for offset in $(seq 8192 4096 $((size - 1))); do
	seeded_bytes "$CASE_FILE" $((offset + 16)) 4080 $offset
done
# Found by tests/fuzz/fuzz-file.c: a free-list record whose page count is
# huge; LMDB trusts it and dies (SIGSEGV in mdb_midl_xmerge) on the first
# write.  Its trees are intact, so only the free list tells.
make_case freelist;        cp "$IPRELAY_TOP/tests/fuzz/regress/fuzz-file/freelist-idl-count" "$CASE_FILE"
# Found by fuzz-file after the free-list check: meta 0 ties meta 1 on txnid
# (so LMDB reads meta 0), claims last_pg 274 in a file of 19 pages, and a
# leaf node of a limit carries flags 0x3d (F_DUPDATA among them, in a
# database without MDB_DUPSORT): reading it dies (SIGSEGV in mdb_cursor_get
# from store_limit_foreach), a write commits over it.
make_case leaf-flags;      cp "$IPRELAY_TOP/tests/fuzz/regress/fuzz-file/leaf-node-flags" "$CASE_FILE"
# Found by fuzz-file too: the free list names pages 2, 12, 13, 14 and 17,
# which the trees still use (and 18, the last).  LMDB hands a live page out
# again and aborts on its own assertion (mdb.c:2433 in mdb_page_touch) on
# the first write.
make_case freelist-live;   cp "$IPRELAY_TOP/tests/fuzz/regress/fuzz-file/freelist-live-pages" "$CASE_FILE"
# Found by fuzz-file (minimised to two bytes from a good store): meta 0's
# txnid made 255, odd.  The newest meta is meta 0, but LMDB's read
# transactions take the meta page of txnid & 1, meta 1, whose older tree
# holds a node pointer past its page (22078): SIGBUS in mdb_get from
# store_limit_foreach.  leaf-flags above is the same mismatch (a tie).
make_case meta-parity;     cp "$IPRELAY_TOP/tests/fuzz/regress/fuzz-file/meta-txnid-parity" "$CASE_FILE"
# Found by fuzz-config: meta 1, the newer, says the page size is 4132864
# (and names no page); LMDB takes that size and looks for meta 1 at it,
# 4 MB past the end of an 8 KiB file: SIGBUS in mdb_env_open.  The check
# skipped that meta, and its own confirming read took the damage for a
# commit moving pages, so it left the file to LMDB.
make_case meta-psize;      cp "$IPRELAY_TOP/tests/fuzz/regress/fuzz-config/meta-page-size" "$CASE_FILE"
make_case foreign
printf 'VERSION=3\nformat=print\ntype=btree\nHEADER=END\n hello\n world\nDATA=END\n' |
	mdb_load -n -f /dev/stdin "$CASE_FILE"
make_case foreign-meta
printf 'VERSION=3\nformat=print\ndatabase=meta\ntype=btree\nHEADER=END\n format\n someone-else 1\nDATA=END\n' |
	mdb_load -n -f /dev/stdin "$CASE_FILE"
make_case version	# the format of today's store, plus one
format=$(format_bumped "$good" "$CASE_FILE" iprelay-config)
future=$((format + 1))
make_case zero-length;     : >"$CASE_FILE"

ok "the future version file says format $future (today's: $format)" \
	grep -qx " iprelay-config $future" <(mdb_dump -n -s meta -p "$CASES/version/limits.mdb")
ok "the foreign files were made" \
	test -s "$CASES/foreign/limits.mdb" -a -s "$CASES/foreign-meta/limits.mdb"

# The same damage to the live store, beside a sound configuration.
CASE_NAMES="truncated-page truncated-meta truncated-half random pages
    page-bodies freelist leaf-flags freelist-live meta-parity meta-psize
    foreign foreign-meta version zero-length"
for case in $CASE_NAMES; do
	mkdir -p "$CASES/live-$case"
	cp "$good" "$CASES/live-$case/limits.mdb"
	cp "$CASES/$case/limits.mdb" "$CASES/live-$case/iprelay.mdb"
done
# Of the live store, the damage cases made of it (the regression files
# are live stores already).
live_size=$(stat -c %s "$good_live")
head -c 4096 "$good_live" >"$CASES/live-truncated-page/iprelay.mdb"
head -c 8192 "$good_live" >"$CASES/live-truncated-meta/iprelay.mdb"
head -c $((live_size / 8192 * 4096)) "$good_live" >"$CASES/live-truncated-half/iprelay.mdb"
cp "$good_live" "$CASES/live-pages/iprelay.mdb"
seeded_bytes "$CASES/live-pages/iprelay.mdb" 8192 $((live_size - 8192)) 2
for case in freelist leaf-flags freelist-live meta-parity meta-psize; do
	cp "$CASES/$case/limits.mdb" "$CASES/live-$case/iprelay.mdb"
done
rm -f "$CASES/live-version/iprelay.mdb"
live_format=$(format_bumped "$good_live" "$CASES/live-version/iprelay.mdb" iprelay-store)
ok "the future version live store says format $((live_format + 1)) (today's: $live_format)" \
	grep -qx " iprelay-store $((live_format + 1))" <(mdb_dump -n -s meta -p "$CASES/live-version/iprelay.mdb")

# --- running every program on a copy ------------------------------------
# run_on CASE PROGRAM: sets rc, msg (its stderr, or its log lines for a
# relay) and dir (the copy it ran on).
run_on() {
	dir=$TEST_TMP/run/$1-$2
	rm -rf "$dir"; mkdir -p "$TEST_TMP/run"; cp -r "$CASES/$1" "$dir"
	export IPRELAY_LOG_FILE=$dir.log
	: >"$IPRELAY_LOG_FILE"
	case $2 in
	limit-list) "$LIMIT" -S "$dir" list >/dev/null 2>"$dir.err"; rc=$? ;;
	limit-set) "$LIMIT" -S "$dir" set new 1K >/dev/null 2>"$dir.err"; rc=$? ;;
	shaperd) timeout -s TERM -k 2 $RUN_SECONDS "$IPRELAY_BIN/shaperd" -S "$dir" \
		>/dev/null 2>"$dir.err"; rc=$?
		[ $rc = 124 ] && rc=timeout ;;
	iprelay-conn) rc=$($LAUNCH $RUN_SECONDS "$IPRELAY_BIN/iprelay-conn" -l top \
		-S "$dir" REMOTE 2>"$dir.err") ;;
	iprelay) timeout -s TERM -k 2 $RUN_SECONDS "$IPRELAY_BIN/iprelay" -S "$dir" \
		</dev/null >/dev/null 2>"$dir.err"; rc=$?
		[ $rc = 124 ] && rc=timeout ;;
	esac
	msg=$(cat "$dir.err" "$IPRELAY_LOG_FILE")
}

# verdict CASE PROGRAM: "" when the run refused the file as it should,
# else why not.
verdict() {
	case $rc in
	100|111) ;;
	timeout) echo "it ran on as if the file were fine"; return ;;
	*) echo "exit $rc"; return ;;
	esac
	# A file that is not ours is the admin's to fix: 100 from every
	# program but the per-connection relay (which says 111 to its peer).
	case $1:$2 in
	*:iprelay-conn) ;;
	foreign:*|foreign-meta:*|version:*)
		[ "$rc" = 100 ] || { echo "exit $rc, want 100"; return; } ;;
	esac
	fatal=$(printf '%s\n' "$msg" | grep -c 'fatal')
	[ "$fatal" = 1 ] || { echo "$fatal fatal lines"; return; }
	printf '%s\n' "$msg" | grep 'fatal' | grep -qF -- "$dir" ||
		{ echo "the message does not name $dir"; return; }
	cmp -s "$CASES/$1/limits.mdb" "$dir/limits.mdb" ||
		{ echo "the file was changed"; return; }
}

report() {
	local case=$1 program=$2 why=$3 name
	name="$case: $program refuses it ($rc)"
	if [ -z "$why" ]; then
		pass "$name"
	else
		fail "$name"
		diag "$why"
		printf '%s\n' "$msg" | grep -v '^$' | tail -n 3 | sed 's/^/#   /'
	fi
}

PROGRAMS="limit-list limit-set shaperd iprelay-conn iprelay"
for case in $CASE_NAMES; do
	for program in $PROGRAMS; do
		run_on "$case" "$program"
		report "$case" "$program" "$(verdict "$case" "$program")"
	done
done

# verdict_live CASE PROGRAM: "" when the run made the live store again and
# worked on, else why not.
verdict_live() {
	case $2:$rc in
	limit-list:0|limit-set:0|shaperd:timeout|iprelay-conn:timeout|iprelay:timeout) ;;
	*) echo "exit $rc"; return ;;
	esac
	printf '%s\n' "$msg" | grep -q 'fatal' && { echo "a fatal line"; return; }
	made=$(printf '%s\n' "$msg" | grep -c "live state $dir/iprelay.mdb is unusable.*made again")
	[ "$made" -le 1 ] || { echo "$made lines about it"; return; }
	cmp -s "$good" "$dir/limits.mdb" || [ "$2" = limit-set ] || [ "$2" = iprelay ] ||
		{ echo "the configuration was changed"; return; }
	"$LIMIT" -S "$dir" get child >/dev/null 2>&1 ||
		{ echo "limit child is gone"; return; }
}

for case in $CASE_NAMES; do
	for program in $PROGRAMS; do
		run_on "live-$case" "$program"
		why=$(verdict_live "live-$case" "$program")
		name="live $case: $program makes it again ($rc)"
		if [ -z "$why" ]; then
			pass "$name"
		else
			fail "$name"
			diag "$why"
			printf '%s\n' "$msg" | grep -v '^$' | tail -n 3 | sed 's/^/#   /'
		fi
	done
done

# Control: on the good file the same runs succeed (so the checks above
# can tell a refusal from a run).
run_on good limit-list
is "$rc" 0 "good: iprelay-limit list works"
is "$(cat "$dir.err")" "" "good: and says nothing on stderr"
run_on good shaperd
is "$rc" timeout "good: shaperd serves it"
run_on good iprelay-conn
is "$rc" timeout "good: iprelay-conn relays with it"
run_on good iprelay
is "$rc" timeout "good: iprelay serves it"

done_testing
