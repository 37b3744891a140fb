#!/bin/bash
# Replays every seed of the fuzz corpora and every saved crash
# (tests/fuzz/regress/TARGET/) through the fuzz targets built without
# libFuzzer (bin/fuzz/*), so they run under gcc and under ASan+UBSan.  A
# crash, a sanitizer report or a broken invariant (abort) fails the test.
. "$IPRELAY_TOP/tests/lib.sh"

fuzz_src=$IPRELAY_TOP/tests/fuzz
export TMPDIR=$TEST_TMP	# fuzz-file's scratch dir, left behind by a crash
targets=$(cd "$fuzz_src" && ls fuzz-*.c | sed 's/\.c$//')
[ -n "$targets" ] || { echo "Bail out! no fuzz targets in $fuzz_src"; exit 1; }

for target in $targets; do
	driver=$IPRELAY_BIN/fuzz/$target
	ok "$target is built" test -x "$driver"
	seeds=$(ls "$fuzz_src/corpus/$target" 2>/dev/null | wc -l)
	ok "$target has a seed corpus ($seeds files)" test "$seeds" -ge 5
	out=$("$driver" "$fuzz_src/corpus/$target" 2>"$TEST_TMP/$target.err")
	rc=$?
	is "$rc" 0 "$target: every seed replays cleanly"
	[ "$rc" = 0 ] || sed 's/^/#   /' "$TEST_TMP/$target.err" | tail -n 20
	is "$out" "replayed $seeds inputs" "$target: all seeds read"
	# Each saved crash on its own, so a failure names its file.
	for crash in "$fuzz_src/regress/$target"/*; do
		[ -f "$crash" ] || continue
		out=$("$driver" "$crash" 2>"$TEST_TMP/$target.err")
		rc=$?
		is "$rc/$out" "0/replayed 1 inputs" \
			"$target: saved crash ${crash##*/} replays cleanly"
		[ "$rc" = 0 ] || sed 's/^/#   /' "$TEST_TMP/$target.err" |
			grep -v '^#   *$' | head -n 8
	done
done

# The driver itself must be able to fail: an unreadable input is an error,
# not a silent pass.
first=$(echo "$targets" | head -n 1)
"$IPRELAY_BIN/fuzz/$first" "$TEST_TMP/no-such-input" 2>"$TEST_TMP/missing.err"
is "$?" 111 "replay refuses a missing input"
like "$(cat "$TEST_TMP/missing.err")" "no-such-input" "and names it"

# The record seeds must hold valid records of all three kinds (a corpus
# of only damaged records would leave the decoders' accept paths unfuzzed).
kinds=$(for f in "$fuzz_src"/corpus/fuzz-record/*; do
	od -An -tu1 -N1 "$f" | tr -d ' '; done | sort -u | tr '\n' ' ')
is "$kinds" "0 1 2 " "record seeds cover limits, buckets and connections"

done_testing
