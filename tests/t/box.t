#!/bin/bash
# The suite and the scripts stay in their own boxes (issue 11, item 5):
# tests/deps.sh and bench/deps.sh install packages and never stop, disable
# or kill a service or process (run here on stub commands that record what
# they were asked); the guard of tests/run.sh (tests/guard.sh) fails a run
# that created or changed an iprelay dir outside the tests' own.
. "$IPRELAY_TOP/tests/lib.sh"
. "$IPRELAY_TOP/tests/guard.sh"

# Stubs first on PATH: every package missing, apt-get succeeding, an inetd,
# haproxy and nginx running; whatever a stub is asked is logged.
stubs=$TEST_TMP/stubs
calls=$TEST_TMP/calls
mkdir -p "$stubs"
: >"$calls"
stub() {
	printf '#!/bin/sh\necho "%s $*" >>"%s"\n%s\n' "$1" "$calls" "$2" \
	    >"$stubs/$1"
	chmod 755 "$stubs/$1"
}
stub dpkg-query 'exit 1'
stub apt-get 'exit 0'
stub pgrep 'echo 4242; exit 0'
stub pidof 'echo 4242; exit 0'
for cmd in pkill killall systemctl service invoke-rc.d update-rc.d \
    start-stop-daemon deb-systemd-invoke; do
	stub "$cmd" 'exit 0'
done
# Not root: bench/deps.sh goes through sudo, which runs the rest.
stub sudo '"$@"'

for script in tests/deps.sh bench/deps.sh; do
	for user in root other; do
		if [ "$user" = root ]; then uid=0; else uid=1000; fi
		stub id "if [ \"\$1\" = -u ]; then echo $uid; else /usr/bin/id \"\$@\"; fi"
		: >"$calls"
		PATH=$stubs:$PATH sh "$IPRELAY_TOP/$script" \
		    >"$TEST_TMP/out" 2>&1
		rc=$?
		if [ "$script" = tests/deps.sh ] && [ "$user" = other ]; then
			# Not root: it names what is missing and installs nothing.
			is "$rc" 1 "$script as a user with packages missing exits 1"
			like "$(cat "$TEST_TMP/out")" "run 'make deps' as root" \
			    "$script as a user says who may install"
		else
			is "$rc" 0 "$script ($user) installs what is missing"
			like "$(cat "$calls")" "apt-get .*install" \
			    "$script ($user) ran apt-get install"
		fi
		touched=$(grep -E '^(pkill|killall|systemctl|service|invoke-rc.d|update-rc.d|start-stop-daemon|deb-systemd-invoke) ' "$calls")
		is "$touched" "" "$script ($user) stops, disables and kills nothing"
	done
done

# The guard, on dirs of its own (IPRELAY_GUARD_DIRS replaces the list).
g=$TEST_TMP/guard
mkdir -p "$g/snap"
export IPRELAY_GUARD_DIRS="$g/system
$g/user"
mkdir -p "$g/user"
echo old >"$g/user/file"
guard_snapshot "$g/snap/a"
guard_snapshot "$g/snap/b"
ok "guard: nothing changed, nothing reported" guard_compare "$g/snap/a" "$g/snap/b"

mkdir -p "$g/system" && : >"$g/system/iprelay.mdb"
guard_snapshot "$g/snap/c"
guard_compare "$g/snap/a" "$g/snap/c" >"$TEST_TMP/report"
is "$?" 1 "guard: a dir created during the run fails the run"
like "$(cat "$TEST_TMP/report")" "$g/system" "and names it"
rm -rf "$g/system"

touch -d '2001-01-01' "$g/user/file"
guard_snapshot "$g/snap/d"
guard_compare "$g/snap/a" "$g/snap/d" >"$TEST_TMP/report"
is "$?" 1 "guard: a file written in an existing dir fails the run"
like "$(cat "$TEST_TMP/report")" "$g/user/file" "and names the file"

chmod 600 "$g/user/file"
guard_snapshot "$g/snap/e"
guard_compare "$g/snap/d" "$g/snap/e" >"$TEST_TMP/report"
is "$?" 1 "guard: a chmod fails the run"

# A refiller of the machine holding its lock: sizes and times of that dir
# change without the suite, so only names, owners and modes count there.
: >"$g/user/refiller.lock"
guard_snapshot "$g/snap/f"
python3 -c '
import fcntl, os, struct, sys, time
fd = os.open(sys.argv[1], os.O_RDWR)
fcntl.fcntl(fd, 37, struct.pack("hh4xqqi4x", fcntl.F_WRLCK, 0, 0, 0, 0))
open(sys.argv[2], "w").close()
time.sleep(30)' "$g/user/refiller.lock" "$TEST_TMP/locked" &
locker=$!
spawned_pids="$spawned_pids $locker"
wait_file_exists() { for _ in $(seq 100); do [ -e "$1" ] && return 0; sleep 0.05; done; return 1; }
wait_file_exists "$TEST_TMP/locked"
echo more >>"$g/user/file"
guard_snapshot "$g/snap/h"
ok "guard: a live refiller's writes are not the suite's" \
    guard_compare "$g/snap/f" "$g/snap/h"
: >"$g/user/iprelay.mdb-new"
guard_snapshot "$g/snap/i"
guard_compare "$g/snap/f" "$g/snap/i" >"$TEST_TMP/report"
is "$?" 1 "guard: a file created beside a live refiller still fails the run"
stop_pid "$locker"

# The real list: the machine's and the user's dirs, as the programs
# resolve them.
unset IPRELAY_GUARD_DIRS
dirs=$(HOME=/home/u XDG_STATE_HOME= XDG_RUNTIME_DIR=/run/user/7 guard_dirs | tr '\n' ' ')
is "$dirs" "/var/lib/iprelay /run/iprelay /home/u/.local/state/iprelay /run/user/7/iprelay " \
    "guard: watches the system and the user's state and runtime dirs"

done_testing
