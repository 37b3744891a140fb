#!/bin/bash
# The system state dir as a packaged service meets it (issue 11, item 4),
# in a private mount namespace with a tmpfs on /var/lib and one on /run, so
# the machine's /var/lib/iprelay and /run/iprelay are never touched; nobody plays the service user
# (IPRELAY_USER).  What root makes there ends up the service user's; files
# root left from before the dir was the service user's stop shaperd with
# one line naming the file and the fix, and shaperd -O (ExecStartPre=+ in
# shaperd.service) hands them over without following links; a member of
# the dir's group uses the system store without -S, and every command says
# which store it used.
if [ -z "${IPRELAY_IN_NS:-}" ]; then
	if [ "$(id -u)" = 0 ] && unshare -m true 2>/dev/null; then
		exec unshare -m env IPRELAY_IN_NS=1 bash "$0" "$@"
	fi
	. "$IPRELAY_TOP/tests/lib.sh"
	pass "system-store # SKIP needs root and unshare -m"
	done_testing
	exit 0
fi
. "$IPRELAY_TOP/tests/lib.sh"

mount --make-rprivate / && mount -t tmpfs -o mode=0755 tmpfs /var/lib &&
    mount -t tmpfs -o mode=0755 tmpfs /run ||
	{ echo "Bail out! no tmpfs on /var/lib and /run in a private namespace"; exit 1; }
SYS=/var/lib/iprelay
RUN=/run/iprelay	# the live store's runtime dir
L=$IPRELAY_BIN/iprelay-limit
S=$IPRELAY_BIN/shaperd
unset IPRELAY_STATE_DIR
export IPRELAY_USER=nobody
chmod 711 "$TEST_TMP"
owner() { stat -c '%U:%G %a' "$@" | sort -u | tr '\n' ' ' | sed 's/ $//'; }
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }

# --- root makes the system dir: the service user's --------------------------
out=$("$L" set web 1M 2>&1)
is "$?" 0 "root's set without -S and no system dir yet: exit 0"
is "$out" "web created in $SYS (the system store)" "says it used the system store"
is "$(owner "$SYS")" "nobody:nogroup 2770" "root made $SYS the service user's, 2770"
is "$(owner "$SYS"/limits.mdb "$SYS"/limits.mdb-lock)" "nobody:nogroup 660" \
    "and its files the service user's, 660 (root worked there as that user)"
is "$(owner "$RUN")" "nobody:nogroup 2770" "root made the runtime dir $RUN the same owner's"
is "$(owner "$RUN"/*)" "nobody:nogroup 660" "and the live store in it"
"$L" set mail 2K >/dev/null
is "$(owner "$SYS"/* "$RUN"/*)" "nobody:nogroup 660" "a second root command keeps it so"

# --- a member of the dir's group, without -S ----------------------------------
home=$TEST_TMP/home
mkdir -p "$home"
chown daemon "$home"
member() { setpriv --reuid=daemon --regid=daemon --groups=65534 \
    env HOME="$home" XDG_STATE_HOME= "$@"; }
stranger() { setpriv --reuid=daemon --regid=daemon --clear-groups \
    env HOME="$home" XDG_STATE_HOME= "$@"; }
out=$(member "$L" list 2>&1)
like "$out" "^NAME .*\\[store $SYS, the system store\\]$" \
    "a group member's list without -S uses the system store, and says so"
like "$out" "^web " "and shows its limits"
out=$(member "$L" set pop3 4K 2>&1)
is "$out" "pop3 created in $SYS (the system store)" "a member's set goes to the system store"
is "$(member "$L" --json get pop3 | python3 -c 'import json, sys; print(json.load(sys.stdin)["store"])')" \
    "$SYS" "--json says the store too"
ok "nothing was written to the member's own dir" test ! -e "$home/.local"
out=$(stranger "$L" list 2>&1)
like "$out" "\\[store $home/.local/state/iprelay, your own store: the system store $SYS is not open to you" \
    "a user outside the group gets their own store, told why"

# --- files root left before the dir was the service user's --------------------
rm -rf "$SYS" "$RUN"
mkdir -m 0770 "$SYS"		# root's, as with no service user yet
"$L" set web 1M >/dev/null
is "$(owner "$SYS"/limits.mdb "$RUN"/iprelay.mdb)" "root:root 660" "root's own dir: its files are root's"
chown nobody:nogroup "$SYS" "$RUN"	# tmpfiles / RuntimeDirectory=: the dirs only
chmod 2770 "$SYS" "$RUN"
timeout -k 2 10 setpriv --reuid=65534 --regid=65534 --clear-groups \
    env IPRELAY_STATE_DIR="$SYS" "$S" >"$TEST_TMP/out" 2>"$TEST_TMP/err"
is "$?" 100 "shaperd as the service user on root's leftovers: exit 100, no retry loop"
like "$(cat "$TEST_TMP/err")" "unable to open $SYS/limits.mdb-lock: it belongs to root.*shaperd -O -S $SYS" \
    "naming the file and the fix"
is "$(wc -l <"$TEST_TMP/err")" 1 "in one line"

# shaperd -O hands them over, never through a link: a symlink the service
# user planted is not followed, a hard link root made is refused.
victim=/var/lib/victim	# on the same tmpfs, for the hard link
echo secret >"$victim"
chmod 600 "$victim"
as_nobody ln -s "$victim" "$SYS/refiller.lock"
out=$(env IPRELAY_STATE_DIR="$SYS" "$S" -O 2>&1)
is "$?" 0 "shaperd -O as root: exit 0"
is "$(owner "$SYS"/limits.mdb "$SYS"/limits.mdb-lock "$RUN"/iprelay.mdb "$RUN"/iprelay.mdb-lock)" \
    "nobody:nogroup 660" "root's leftovers are the service user's now"
like "$out" "gave $SYS/limits.mdb, root's, to the dir's owner" "and it says so"
like "$out" "gave $RUN/iprelay.mdb, root's, to the dir's owner" "the live store's too"
is "$(owner "$victim")" "root:root 600" "a planted symlink is not followed"
rm -f "$SYS/refiller.lock"
ln "$victim" "$SYS/shaperd.lock"
env IPRELAY_STATE_DIR="$SYS" "$S" -O >"$TEST_TMP/out" 2>"$TEST_TMP/err"
is "$?" 100 "a root-owned hard link: refused"
like "$(cat "$TEST_TMP/err")" "$SYS/shaperd.lock is root's but not a regular file with one link" \
    "naming it"
is "$(owner "$victim")" "root:root 600" "and the linked file is untouched"
rm -f "$SYS/shaperd.lock"
out=$(as_nobody env IPRELAY_STATE_DIR="$SYS" "$S" -O 2>&1)
is "$?" 100 "shaperd -O is root's only"

spawn setpriv --reuid=65534 --regid=65534 --clear-groups \
    env IPRELAY_STATE_DIR="$SYS" "$S"
shaperd_pid=$last_pid
started=no
for _ in $(seq 100); do
	[ -e "$SYS/shaperd.lock" ] &&
	    [ "$(python3 "$IPRELAY_TOP/tests/stress/ofdlock.py" "$SYS/shaperd.lock" 2>/dev/null)" = locked ] &&
	    { started=yes; break; }
	sleep 0.05
done
is "$started" yes "then shaperd starts as the service user"
stop_pid "$shaperd_pid"

done_testing
