# The suite's box (sourced by tests/run.sh and tests/t/box.t): the tests
# must never create or change the machine's or the user's own iprelay
# dirs.  guard_snapshot FILE records them before a run, guard_compare FILE
# after it; a difference fails make check, naming the dir.
#
# The dirs: the system state and runtime dirs, and the user's XDG ones, as
# the programs resolve them (IPRELAY_GUARD_DIRS, one per line, replaces
# the list: for tests/t/box.t only).  A dir that exists is recorded entry
# by entry: name, type, owner, group, mode, inode; sizes and times too,
# unless a refiller holds its lock (a live shaperd or iprelay of the
# machine draws in it all the time, and that is not the suite's doing).
# The tree: run.sh sets top, the tests IPRELAY_TOP.
guard_top=${top:-${IPRELAY_TOP:-.}}

guard_dirs() {
	if [ -n "${IPRELAY_GUARD_DIRS:-}" ]; then
		printf '%s\n' "$IPRELAY_GUARD_DIRS"
		return
	fi
	echo /var/lib/iprelay
	echo /run/iprelay
	if [ -n "${XDG_STATE_HOME:-}" ]; then
		echo "$XDG_STATE_HOME/iprelay"
	elif [ -n "${HOME:-}" ]; then
		echo "$HOME/.local/state/iprelay"
	fi
	echo "${XDG_RUNTIME_DIR:-/run/user/$(id -u)}/iprelay"
	[ -z "${IPRELAY_RUNTIME_DIR:-}" ] || echo "$IPRELAY_RUNTIME_DIR"
}

# guard_busy DIR: true when a process holds a refiller lock in DIR (for
# the system's runtime dir, of the live store: in the state dir's).
guard_busy() {
	locks_dir=$1
	[ "$1" = /run/iprelay ] && locks_dir=/var/lib/iprelay
	for lock in shaperd.lock refiller.lock; do
		[ -f "$locks_dir/$lock" ] && [ ! -L "$locks_dir/$lock" ] || continue
		[ "$(python3 "$guard_top/tests/stress/ofdlock.py" "$locks_dir/$lock" \
		    2>/dev/null)" = locked ] && return 0
	done
	return 1
}

# guard_snapshot FILE: FILE.meta (entries), FILE.sizes (sizes and times)
# and FILE.busy (dirs in use by a refiller).
guard_snapshot() {
	: >"$1.meta"; : >"$1.sizes"; : >"$1.busy"
	guard_dirs | while IFS= read -r dir; do
		[ -n "$dir" ] || continue
		if [ ! -e "$dir" ] && [ ! -L "$dir" ]; then
			echo "$dir absent" >>"$1.meta"
			continue
		fi
		find "$dir" -printf '%p %y %u:%g %m inode %i\n' 2>&1 |
		    sort >>"$1.meta"
		find "$dir" -printf '%p size %s mtime %T@ ctime %C@\n' 2>&1 |
		    sort >>"$1.sizes"
		guard_busy "$dir" && echo "$dir" >>"$1.busy"
	done
}

# guard_compare BEFORE AFTER: prints what changed and returns 1, or
# returns 0.  Sizes count only for dirs no refiller used at either end.
guard_compare() {
	local changed=0 busy
	busy=$(cat "$1.busy" "$2.busy" | sort -u)
	if ! diff "$1.meta" "$2.meta" >"$2.diff"; then
		changed=1
	fi
	diff "$1.sizes" "$2.sizes" | grep '^[<>]' | while IFS= read -r line; do
		path=${line#[<>] }
		path=${path%% size *}
		skip=
		for dir in $busy; do
			case $path in "$dir"|"$dir"/*) skip=1 ;; esac
		done
		[ -n "$skip" ] || echo "$line"
	done >>"$2.diff"
	[ -s "$2.diff" ] && changed=1
	if [ "$changed" = 1 ]; then
		sed 's/^/#   /' "$2.diff"
		return 1
	fi
	return 0
}
