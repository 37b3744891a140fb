# Bash helpers over tests/tools/ptydrive.py (source after tests/lib.sh).
# pty_start CMD...   run CMD on a pseudo-terminal (cleaned up at exit)
# pty_send TEXT      type TEXT and Enter
# pty_raw HEX        write raw bytes (03 = ctrl-c)
# pty_expect REGEX [SECONDS]  wait for REGEX in the output not yet
#                    consumed; true on a match; the consumed text is in
#                    $PTY_TEXT (the unmatched rest on a failure)
# pty_wait [SECONDS] wait for the program to end; its status in $PTY_EXIT
PTY_LOG=$TEST_TMP/pty.log
PTY_LAST=$TEST_TMP/pty.last

pty_start() {
	coproc PTYDRIVE { exec python3 "$IPRELAY_TOP/tests/tools/ptydrive.py" \
	    --log "$PTY_LOG" --last "$PTY_LAST" -- "$@"; }
	spawned_pids="$spawned_pids $PTYDRIVE_PID"
	PTY_IN=${PTYDRIVE[1]}
	PTY_OUT=${PTYDRIVE[0]}
}

pty_cmd() {
	PTY_REPLY=lost
	echo "$*" >&"$PTY_IN" 2>/dev/null || return 1
	read -r -t 120 PTY_REPLY <&"$PTY_OUT" || PTY_REPLY=lost
}

pty_send() { pty_cmd send "$1"; }
pty_raw() { pty_cmd raw "$1"; }

pty_expect() {
	pty_cmd expect "${2:-10}" "$1"
	PTY_TEXT=$(cat "$PTY_LAST" 2>/dev/null)
	[ "$PTY_REPLY" = ok ] && return 0
	diag "pty: no match for '$1' ($PTY_REPLY); unconsumed output:"
	printf '%s\n' "$PTY_TEXT" | tail -n 15 | sed 's/^/#   | /'
	return 1
}

pty_wait() {
	pty_cmd wait "${1:-10}"
	PTY_EXIT=${PTY_REPLY#exit }
	[ "${PTY_REPLY%% *}" = exit ]
}

# pty_stop: end the driver (it stops the program, TERM then KILL).
pty_stop() {
	exec {PTY_IN}>&- 2>/dev/null
	wait "$PTYDRIVE_PID" 2>/dev/null
	return 0
}
