#!/bin/bash
# The prompt's line editor on a real terminal narrower than the line: tmux
# at 40 columns is the peer (what it shows is what a user sees).  A line
# longer than the terminal scrolls sideways in one row, as readline's
# horizontal-scroll mode does: no row per key past the margin, no fragments
# after Backspace or Home, a resize (SIGWINCH) redraws it to the new width,
# and Enter runs the whole line as edited.
. "$IPRELAY_TOP/tests/lib.sh"

command -v tmux >/dev/null || { echo "1..0 # SKIP tmux missing (tests/deps.sh installs it)"; exit 0; }
SOCK=$TEST_TMP/tmux.sock
T() { tmux -S "$SOCK" "$@"; }
trap 'T kill-server 2>/dev/null; cleanup' EXIT

# screen: the pane as shown, trailing blanks and empty rows dropped.
screen() { T capture-pane -p -t ed | sed 's/ *$//' | sed -e :a -e '/^\n*$/{$d;N;ba' -e '}'; }
prompt_rows() { screen | grep -c '^>'; }
# fragments: rows other than the prompt with a piece of the typed line.
fragments() { screen | grep -v '^>' | grep -cE '[0-9]{3}|[A-J]{3}|klmn|stuv|xya'; }
cursor_x() { T display-message -p -t ed '#{cursor_x}'; }
# wait_for_text TEXT: until the pane, wrapped rows joined, has TEXT (10 s).
wait_for_text() {
	for _ in $(seq 200); do
		T capture-pane -p -J -S -100 -t ed | grep -qF -- "$1" && return 0
		sleep 0.05
	done
	diag "screen:"; diag "$(T capture-pane -p -J -S -100 -t ed)"
	return 1
}

# shows TEXT: until the pane's last row is "> TEXT" (up to 10 s).
last_row=
shows() {
	for _ in $(seq 200); do
		last_row=$(screen | tail -n 1)
		[ "$last_row" = "$(echo "> $1" | sed 's/ *$//')" ] && return 0
		sleep 0.05
	done
	diag "last row: '$last_row', wanted '> $1'"
	diag "screen:"; diag "$(screen)"
	return 1
}

T -f /dev/null new-session -d -s ed -x 40 -y 12 "$IPRELAY_BIN/iprelay"
T set-option -t ed remain-on-exit on >/dev/null
ok "iprelay starts at the prompt" shows ""

# 46 characters into a 40-column terminal: the window is 37 columns after
# "> ", one short of the margin, so the row never wraps.
L=abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJ
# Key by key past the margin, each drawn before the next is sent (keys that
# arrive together are drawn once).
T send-keys -t ed -l "${L:0:30}"
for i in $(seq 30 45); do
	T send-keys -t ed -l "${L:$i:1}"
	shows "${L:$((i + 1 > 37 ? i + 1 - 37 : 0)):$((i + 1 > 37 ? 37 : i + 1))}"
done
ok "the long line shows its last 37 characters" shows "${L:9:37}"
is "$(prompt_rows)" 1 "in one prompt row (the old editor used a row per key past the margin)"
is "$(cursor_x)" 39 "the cursor after the last character, in the last column"

T send-keys -t ed BSpace BSpace
ok "two Backspaces: the window keeps full, no fragment" shows "${L:7:37}"
is "$(prompt_rows)" 1 "still one prompt row"
is "$(fragments)" 0 "and no piece of the line elsewhere"

T send-keys -t ed Home
ok "Home shows the line's start" shows "${L:0:37}"
is "$(cursor_x)" 2 "the cursor after the prompt"
is "$(prompt_rows)" 1 "one prompt row after Home"
is "$(fragments)" 0 "no piece of the line elsewhere after Home"

T send-keys -t ed -l "xy"
EDITED=xy${L:0:44}
ok "typing at the start inserts there" shows "${EDITED:0:37}"
is "$(cursor_x)" 4 "the cursor after what was typed"

T send-keys -t ed End
ok "End scrolls to the end again" shows "${EDITED:9:37}"
is "$(prompt_rows)" 1 "one prompt row after End"
is "$(fragments)" 0 "no piece of the line elsewhere after End"

# A narrower terminal: SIGWINCH, and the window is 27 columns.
T resize-window -t ed -x 30 -y 12
ok "after a resize to 30 columns the row fits in 29" shows "${EDITED:19:27}"
is "$(prompt_rows)" 1 "one prompt row after the resize"
is "$(fragments)" 0 "and no piece of the row drawn at 40 columns"
is "$(cursor_x)" 29 "the cursor at the end, in the last column"

# The cursor near the start of a row wider than the new width: the row's
# tail reflows onto a row below, which the redraw clears too.
T send-keys -t ed Home
ok "Home at 30 columns" shows "${EDITED:0:27}"
T resize-window -t ed -x 20 -y 12
ok "a resize to 20 columns with the cursor at the start" shows "${EDITED:0:17}"
is "$(prompt_rows)" 1 "one prompt row"
is "$(fragments)" 0 "and no piece of the row's tail below it"
T send-keys -t ed End
ok "End at 20 columns" shows "${EDITED:29:17}"

T send-keys -t ed Enter
ok "Enter runs the whole edited line" \
    wait_for_text "Unknown command: $EDITED"

T send-keys -t ed -l "quit"
T send-keys -t ed Enter
ok "quit ends it" wait_for_text "Quit, closing all connections"

# tmux reflows a row cut by a shrink; xterm cuts it instead and keeps the
# cursor on it.  The editor asks the terminal where the cursor went (a
# cursor position report) and moves up only when the row was reflowed:
# both answers, given by hand through a pty (no terminal here cuts).
out=$(python3 - "$IPRELAY_BIN/iprelay" <<'PY'
import fcntl, os, pty, re, select, struct, sys, termios, time
def size(fd, cols):
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 12, cols, 0, 0))
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], [sys.argv[1]])
size(fd, 40)
got = b""
def until(pattern, seconds=20):
    global got
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        m = re.search(pattern, got, re.S)
        if m:
            rest = got[m.end():]
            got = rest
            return m
        if select.select([fd], [], [], 0.1)[0]:
            got += os.read(fd, 65536)
    return None
print("prompt", bool(until(rb"> $")))
os.write(fd, b"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJ")
print("drawn", bool(until(rb"> jklmnopqrstuvwxyz0123456789ABCDEFGHIJ")))
size(fd, 30)                       # SIGWINCH: the row (39 columns) is cut
print("asked30", bool(until(rb"\x1b\[6n")))
os.write(fd, b"\x1b[5;30R")         # cut: the cursor in the last column
m = until(rb"(.*?)> tuvwxyz0123456789ABCDEFGHIJ")
print("cut-redraw", bool(m), "up" if m and re.search(rb"\x1b\[\d*A", m.group(1)) else "no-up")
size(fd, 20)                       # the row (29 columns) is reflowed now
print("asked20", bool(until(rb"\x1b\[6n")))
os.write(fd, b"\x1b[6;10R")         # reflowed: its end went to column 29 % 20
m = until(rb"(.*?)> 3456789ABCDEFGHIJ")
print("reflow-redraw", bool(m), "up1-cleared" if m and
    m.group(1).startswith(b"\x1b[1A\r\x1b[J") else repr(m and m.group(1)))
os.write(fd, b"\x15quit\r")
print("quit", bool(until(rb"closing all connections")))
os.waitpid(pid, 0)
PY
)
like "$out" "prompt True" "pty at 40 columns: the prompt"
like "$out" "drawn True" "the long line drawn scrolled"
like "$out" "asked30 True" "shrunk past the row: the cursor's position asked"
like "$out" "cut-redraw True no-up" "a cut row (xterm) is redrawn in place, nothing above erased"
like "$out" "asked20 True" "shrunk again: asked again"
like "$out" "reflow-redraw True up1-cleared" \
    "a reflowed row: one row up, cleared to the end of the screen, redrawn"
like "$out" "quit True" "and quits"
done_testing
