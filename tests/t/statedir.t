#!/bin/bash
# Root acting on a state dir it does not own (issue 11, item 1): what the
# dir's owner plants there (symlinks, hard links, fifos, the dir made in
# advance) never makes a root process create, write, truncate, chmod or
# chown anything outside it.  Root drops to the owner of a dir of the
# service user (here nobody, through IPRELAY_USER) before it opens
# anything there; other users' dirs and dirs anyone may write are refused
# with one line, exit 100 (common/statedir.h).
. "$IPRELAY_TOP/tests/lib.sh"

if [ "$(id -u)" != 0 ] || ! command -v setpriv >/dev/null; then
	pass "statedir # SKIP needs root and setpriv (the attacks are on root)"
	done_testing
	exit 0
fi

L=$IPRELAY_BIN/iprelay-limit
I=$IPRELAY_BIN/iprelay
S=$IPRELAY_BIN/shaperd
unset IPRELAY_STATE_DIR
chmod 711 "$TEST_TMP"
secret=$TEST_TMP/secret
mkdir -p "$secret"
chmod 700 "$secret"

# fresh NAME: a dir of nobody's, setgid, group-writable, as tmpfiles makes
# the system one; sets D.
fresh() {
	D=$TEST_TMP/$1
	mkdir -p "$D"
	chown nobody:nogroup "$D"
	chmod 2770 "$D"
}
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
# victim NAME: a root-only file with known content; its state in $state_of.
victim() {
	V=$secret/$1
	echo "secret $1" >"$V"
	chmod 600 "$V"
}
state_of() { printf '%s|%s' "$(cat "$1")" "$(stat -c '%s %a %u:%g %i' "$1")"; }
# run CMD...: rc, err.
run() { timeout -k 2 10 "$@" </dev/null >"$TEST_TMP/out" 2>"$TEST_TMP/err"; rc=$?; err=$(cat "$TEST_TMP/err"); }

# --- the reproducer of the issue: iprelay.mdb-lock -> a root-only file ----
fresh lock
victim lock
before=$(state_of "$V")
as_nobody ln -s "$V" "$D/iprelay.mdb-lock"
run env IPRELAY_USER=nobody "$L" -S "$D" set web 1M
is "$rc" 100 "set in a dir with iprelay.mdb-lock a symlink: refused, exit 100"
like "$err" "iprelay.mdb-lock is a symbolic link" "naming the link"
is "$(echo "$err" | wc -l)" 1 "in one line"
is "$(state_of "$V")" "$before" "the root-only file it points to is untouched"
ok "and no empty state file is left behind" test ! -e "$D/iprelay.mdb"
run "$L" -S "$D" set web 1M
is "$rc" 100 "the same dir without IPRELAY_USER (nobody is no service user): refused"
like "$err" "belongs to user nobody" "saying whose dir it is"
is "$(state_of "$V")" "$before" "the file is still untouched"
run env IPRELAY_USER=nobody "$L" -S "$D" list
is "$(state_of "$V")" "$before" "untouched by a read (rc $rc)"

# The data file itself a symlink.
fresh data
victim data
before=$(state_of "$V")
as_nobody ln -s "$V" "$D/iprelay.mdb"
run env IPRELAY_USER=nobody "$L" -S "$D" set web 1M
is "$rc" 100 "iprelay.mdb a symlink: refused"
is "$(state_of "$V")" "$before" "its target is untouched"

# The configuration's files (limits.mdb, issue 11 item 2) and a runtime dir
# made in advance by another user: the same rules.
for name in limits.mdb-lock limits.mdb; do
	fresh "cfg-$name"
	victim "cfg-$name"
	before=$(state_of "$V")
	as_nobody ln -s "$V" "$D/$name"
	run env IPRELAY_USER=nobody "$L" -S "$D" set web 1M
	is "$rc" 100 "$name a symlink: refused, exit 100"
	like "$err" "$name is a symbolic link" "naming it"
	is "$(state_of "$V")" "$before" "its target is untouched"
done

# --- refiller.lock and shaperd.lock: iprelay's embedded refiller, shaperd --
fresh refill
victim refill
before=$(state_of "$V")
IPRELAY_USER=nobody "$L" -S "$D" set web 1M
as_nobody ln -s "$V" "$D/refiller.lock"
run env IPRELAY_USER=nobody "$I" -S "$D"
is "$rc" 100 "iprelay with refiller.lock a symlink: refused, exit 100"
like "$err" "refiller.lock is a symbolic link" "naming it"
is "$(state_of "$V")" "$before" "the file it points to: not chmod'ed, not chown'ed"
run env IPRELAY_USER=nobody "$S" -S "$D"
is "$rc" 100 "shaperd with refiller.lock a symlink: refused, exit 100"
is "$(state_of "$V")" "$before" "still untouched"
rm -f "$D/refiller.lock"
victim prio
before=$(state_of "$V")
as_nobody ln -s "$V" "$D/shaperd.lock"
run env IPRELAY_USER=nobody "$S" -S "$D"
is "$rc" 100 "shaperd with shaperd.lock a symlink: refused"
is "$(state_of "$V")" "$before" "untouched"

# --- a hard link (as if fs.protected_hardlinks were off), a fifo ----------
fresh hard
victim hard
ln "$V" "$D/iprelay.mdb-lock"	# root makes it: the kernel stops nobody
before=$(state_of "$V")
run env IPRELAY_USER=nobody "$L" -S "$D" set web 1M
is "$rc" 100 "iprelay.mdb-lock a hard link to a root-only file: refused"
like "$err" "has 2 links" "saying so"
is "$(state_of "$V")" "$before" "the linked file is untouched"
rm -f "$D/iprelay.mdb-lock"
victim hard2
ln "$V" "$D/refiller.lock"
before=$(state_of "$V")
IPRELAY_USER=nobody "$L" -S "$D" set web 1M
run env IPRELAY_USER=nobody "$S" -S "$D"
is "$rc" 100 "refiller.lock a hard link: shaperd refuses"
is "$(state_of "$V")" "$before" "untouched"

fresh fifo
as_nobody mkfifo "$D/iprelay.mdb"
run env IPRELAY_USER=nobody "$L" -S "$D" set web 1M
is "$rc" 100 "iprelay.mdb a fifo: refused at once, exit 100 (no hang)"
like "$err" "not a regular file" "saying so"
fresh fifo2
IPRELAY_USER=nobody "$L" -S "$D" set web 1M
as_nobody mkfifo "$D/refiller.lock"
run env IPRELAY_USER=nobody "$S" -S "$D"
is "$rc" 100 "refiller.lock a fifo: shaperd refuses"

# --- dirs root must not use ----------------------------------------------------
other=$TEST_TMP/other
mkdir -p "$other"
chown daemon:daemon "$other"
chmod 770 "$other"
run "$L" -S "$other" set web 1M
is "$rc" 100 "a dir made in advance by another user: refused, exit 100"
like "$err" "belongs to user daemon" "naming its owner"
is "$(ls -A "$other")" "" "nothing was created in it"
run "$S" -S "$other"
is "$rc" 100 "shaperd -S that dir: refused too"
run "$I" -S "$other"
is "$rc" 100 "iprelay -S that dir: refused too"
open=$TEST_TMP/open
mkdir -p "$open"
chmod 1777 "$open"
run "$L" -S "$open" set web 1M
is "$rc" 100 "a dir every user may write: refused"
like "$err" "written by every user" "saying so"
grp=$TEST_TMP/grp
mkdir -p "$grp"
chgrp nogroup "$grp"
chmod 2770 "$grp"
run "$L" -S "$grp" set web 1M
is "$rc" 100 "root's dir that another group may write: refused"
like "$err" "group nogroup may write it" "naming the group"

# --- the service user's dir: root drops to it -----------------------------------
fresh good
run env IPRELAY_USER=nobody "$L" -S "$D" set web 1M
is "$rc" 0 "root's set in the service user's dir works"
is "$(stat -c '%U:%G %a' "$D/iprelay.mdb" "$D/iprelay.mdb-lock" | sort -u)" \
    "nobody:nogroup 660" "what root made there is the service user's, mode 660"
spawn env IPRELAY_USER=nobody "$S" -S "$D"
shaperd_pid=$last_pid
wait_file "$D/shaperd.lock" 10
for _ in $(seq 50); do
	[ "$(awk '/^Uid:/ { print $2 "/" $3 }' "/proc/$shaperd_pid/status" 2>/dev/null)" = 65534/65534 ] && break
	sleep 0.1
done
is "$(awk '/^Uid:/ { print $2 "/" $3 "/" $4 }' "/proc/$shaperd_pid/status")" 65534/65534/65534 \
    "shaperd started by root runs as the dir's owner (real, effective, saved)"
is "$(awk '/^Groups:/ { print $2 }' "/proc/$shaperd_pid/status")" "" \
    "with no supplementary group"
is "$(stat -c '%U:%G %a' "$D/refiller.lock" "$D/shaperd.lock" | sort -u)" \
    "nobody:nogroup 660" "its lock files are the owner's, mode 660"
stop_pid "$shaperd_pid"
run env IPRELAY_USER=nobody "$L" -S "$D" list
like "$(cat "$TEST_TMP/out")" "^web " "and the store reads back"

# A member of the dir's group (not its owner) goes through a private dir of
# links to the files it checked: nothing is left behind, and a link
# planted by the owner is refused the same way.
fresh member
IPRELAY_USER=nobody "$L" -S "$D" set web 1M
tmp=$TEST_TMP/member-tmp
mkdir -p "$tmp"
chown daemon "$tmp"
run setpriv --reuid=daemon --regid=nogroup --clear-groups \
    env TMPDIR="$tmp" IPRELAY_USER=nobody "$L" -S "$D" set mail 2K
is "$rc" 0 "a group member's set works (files checked, then opened by LMDB)"
run env IPRELAY_USER=nobody "$L" -S "$D" --json get mail
like "$(cat "$TEST_TMP/out")" '"up":2048' "and the limit is stored"
is "$(ls -A "$tmp")" "" "its private dir of links is gone"
victim member
before=$(state_of "$V")
rm -f "$D/iprelay.mdb-lock"
as_nobody ln -s "$V" "$D/iprelay.mdb-lock"
run setpriv --reuid=daemon --regid=nogroup --clear-groups \
    env TMPDIR="$tmp" IPRELAY_USER=nobody "$L" -S "$D" set mail 4K
is "$rc" 100 "a link the owner planted is refused for a group member too"
is "$(state_of "$V")" "$before" "and the file is untouched"

# Root's pid file is opened before the drop to the dir's owner, who may not
# write where root keeps it (a root-only dir here, /run on a real system).
fresh pidfile
pid_path=$secret/iprelay.pid
port=$(free_port)
run env IPRELAY_USER=nobody "$I" -S "$D" -d -p "$pid_path" "$port:127.0.0.1:9"
is "$rc" 0 "root's iprelay -d -p FILE in a root-only dir starts on the service user's dir"
[ "$rc" = 0 ] || diag "$err"
daemon_pid=$(cat "$pid_path" 2>/dev/null)
ok "the pid file names the running daemon" \
    test -n "$daemon_pid" -a -d "/proc/${daemon_pid:-0}"
is "$(awk '/^Uid:/ { print $2 }' "/proc/${daemon_pid:-0}/status" 2>/dev/null)" 65534 \
    "and the daemon runs as the dir's owner"
[ -n "$daemon_pid" ] && stop_pid "$daemon_pid"

done_testing
