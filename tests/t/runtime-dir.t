#!/bin/bash
# IPRELAY_RUNTIME_DIR: the runtime dir (the live store's) of the state dir
# the environment names (IPRELAY_STATE_DIR, else the system's), for a
# state dir other than the system's whose live store belongs on a tmpfs.
# A -S DIR of another store keeps its own.  The dir is trusted as the
# state dir is: root never follows a link or opens a file in a dir others
# may write (iprelay-state(5)).
. "$IPRELAY_TOP/tests/lib.sh"

L=$IPRELAY_BIN/iprelay-limit
S=$IPRELAY_BIN/shaperd
STATE=$TEST_TMP/state
RUN=$TEST_TMP/run
export IPRELAY_STATE_DIR=$STATE IPRELAY_RUNTIME_DIR=$RUN
# run CMD...: rc, err.
run() { timeout -k 2 10 "$@" </dev/null >"$TEST_TMP/out" 2>"$TEST_TMP/err"; rc=$?; err=$(cat "$TEST_TMP/err"); }

run "$L" set web 1M
is "$rc" 0 "set with IPRELAY_RUNTIME_DIR: exit 0"
ok "the configuration in the state dir" test -s "$STATE/limits.mdb"
ok "the live store in IPRELAY_RUNTIME_DIR" test -s "$RUN/iprelay.mdb"
ok "no live store in the state dir" test ! -e "$STATE/iprelay.mdb"
run "$L" -S "$STATE" --json get web
like "$(cat "$TEST_TMP/out")" '"up":1048576' "-S naming the same state dir: the same stores"
ok "... and still no live store in the state dir" test ! -e "$STATE/iprelay.mdb"

OTHER=$TEST_TMP/other
run "$L" -S "$OTHER" set mail 2M
is "$rc" 0 "-S of another state dir: exit 0"
ok "its live store stays in it" test -s "$OTHER/iprelay.mdb"
run "$L" --json get mail
is "$rc" 1 "the other store's limit is not in ours (rc 1: no such limit)"

# shaperd started with the variable refills the live store the programs
# with it use: top names it as the refiller.
spawn "$S" 2>"$TEST_TMP/shaperd.err"
shaperd_pid=$last_pid
ok "shaperd refills the live store in IPRELAY_RUNTIME_DIR" wait_refiller "$STATE" 20
stop_pid "$shaperd_pid"

run env IPRELAY_RUNTIME_DIR=relative/run "$L" list
is "$rc" 100 "a relative IPRELAY_RUNTIME_DIR: exit 100"
is "$err" "iprelay-limit: fatal: unable to open IPRELAY_RUNTIME_DIR=relative/run: not an absolute path" \
    "one line naming the variable and its value"

# --- root and a runtime dir of others -------------------------------------
if [ "$(id -u)" != 0 ] || ! command -v setpriv >/dev/null; then
	pass "root # SKIP needs root and setpriv"
	done_testing
	exit 0
fi
chmod 711 "$TEST_TMP"
secret=$TEST_TMP/secret
mkdir -p "$secret" && chmod 700 "$secret"
echo secret >"$secret/victim" && chmod 600 "$secret/victim"
state_of() { printf '%s|%s' "$(cat "$1")" "$(stat -c '%s %a %u:%g %i' "$1")"; }
before=$(state_of "$secret/victim")
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }

# A runtime dir anyone may write: refused, nothing made in it.
mkdir -p "$TEST_TMP/open" && chmod 777 "$TEST_TMP/open"
run env IPRELAY_STATE_DIR="$TEST_TMP/s-open" IPRELAY_RUNTIME_DIR="$TEST_TMP/open" "$L" set web 1M
is "$rc" 100 "root, a runtime dir every user may write: refused, exit 100"
like "$err" "open may be written by every user" "naming it and why"
ok "nothing made in it" test -z "$(ls -A "$TEST_TMP/open")"

# The service user's dirs (here nobody's, through IPRELAY_USER), the
# runtime dir's lock file a link to a root-only file planted in advance.
for d in s-svc run-svc; do
	mkdir -p "$TEST_TMP/$d" && chown nobody:nogroup "$TEST_TMP/$d" &&
	    chmod 2770 "$TEST_TMP/$d"
done
as_nobody ln -s "$secret/victim" "$TEST_TMP/run-svc/iprelay.mdb-lock"
run env IPRELAY_USER=nobody IPRELAY_STATE_DIR="$TEST_TMP/s-svc" \
    IPRELAY_RUNTIME_DIR="$TEST_TMP/run-svc" "$L" set web 1M
is "$rc" 100 "root, the runtime dir's iprelay.mdb-lock a symlink: refused, exit 100"
like "$err" "iprelay.mdb-lock is a symbolic link" "naming the link"
is "$(state_of "$secret/victim")" "$before" "the root-only file it points to is untouched"

# Another user's runtime dir beside root's state dir: two owners, refused.
mkdir -p "$TEST_TMP/s-root" "$TEST_TMP/run-nobody"
chown nobody:nogroup "$TEST_TMP/run-nobody" && chmod 2770 "$TEST_TMP/run-nobody"
run env IPRELAY_STATE_DIR="$TEST_TMP/s-root" IPRELAY_RUNTIME_DIR="$TEST_TMP/run-nobody" "$L" set web 1M
is "$rc" 100 "root, a runtime dir of another user: refused, exit 100"
like "$err" "run-nobody belongs to user nobody" "saying whose dir it is"
ok "nothing made in it" test -z "$(ls -A "$TEST_TMP/run-nobody")"
chmod 700 "$TEST_TMP"

done_testing
