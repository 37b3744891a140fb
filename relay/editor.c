/*
 * iprelay's input: the line editor used when stdin is a terminal (raw
 * mode, keys one by one, history, cursor keys and the usual control keys)
 * and piped input read line by line.  Each whole line goes to
 * run_command() (relay/execute.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "iprelay.h"

#define PROMPT		"> "
#define PROMPT_LEN	(sizeof(PROMPT) - 1)

/* The line is shown scrolled sideways, as readline's horizontal-scroll
 * mode does, in one row of width - 1 columns: a row that never reaches the
 * last column never wraps, so "\r, clear to the end" always redraws all of
 * it, whatever the terminal does at its margin. */
void
editor_redraw(void)
{
	struct editor *editor = &relay.editor;
	char buf[LINE_MAX_B + 64];
	size_t room, shown;
	int len;

	room = editor->width > PROMPT_LEN + 2 ?
	    editor->width - 1 - PROMPT_LEN : 1;
	/* The cursor stays in the window (at most at its end, past the last
	 * character); the window is kept full when text before it goes. */
	if (editor->cursor < editor->scroll)
		editor->scroll = editor->cursor;
	if (editor->cursor > editor->scroll + room)
		editor->scroll = editor->cursor - room;
	if (editor->len < editor->scroll + room)
		editor->scroll = editor->len > room ? editor->len - room : 0;
	shown = editor->len - editor->scroll;
	if (shown > room)
		shown = room;
	editor->column = PROMPT_LEN + editor->cursor - editor->scroll;
	editor->drawn = PROMPT_LEN + shown;
	len = snprintf(buf, sizeof(buf), "\r\033[K" PROMPT "%.*s", (int)shown,
	    editor->line + editor->scroll);
	if (editor->cursor < editor->scroll + shown)
		len += snprintf(buf + len, sizeof(buf) - (size_t)len, "\033[%zuD",
		    editor->scroll + shown - editor->cursor);
	fflush(stdout);
	if (write(STDOUT_FILENO, buf, (size_t)len) < 0)
		return;
}

/* At the start and on SIGWINCH: the width the window above fits in. */
void
editor_resize(void)
{
	struct winsize size;

	if ((ioctl(STDOUT_FILENO, TIOCGWINSZ, &size) == 0 ||
	    ioctl(STDIN_FILENO, TIOCGWINSZ, &size) == 0) && size.ws_col > 0)
		relay.editor.width = size.ws_col;
	else if (relay.editor.width == 0)
		relay.editor.width = 80;
}

/* SIGWINCH.  Narrower than the row drawn, a terminal either cuts the row
 * (xterm: the cursor stays on it, at most in the last column) or reflows
 * it into rows of the new width (tmux, VTE, kitty: the cursor goes with its
 * character, old / width rows down, to column old % width).  A cursor
 * still in the first of those rows is where it was either way: clearing to
 * the end of the screen takes the rest (the row is the last one used).
 * Past it, which one happened is asked of the terminal itself (a cursor
 * position report, answered on stdin, editor_position()): moving up
 * blindly would erase a line of output above on one that cuts. */
void
editor_resized(void)
{
	struct editor *editor = &relay.editor;

	editor_resize();
	if (editor->column < editor->width) {
		if (editor->drawn > editor->width &&
		    write(STDOUT_FILENO, "\r\033[J", 4) < 0)
			return;
		editor_redraw();
		return;
	}
	editor->asked = 1;
	editor->asked_column = editor->column;
	if (write(STDOUT_FILENO, "\033[6n", 4) < 0)
		editor->asked = 0;
}

/* The answer, ESC [ ROW ; COLUMN R. */
static void
editor_position(const char *sequence)
{
	struct editor *editor = &relay.editor;
	unsigned row, column;
	size_t up, old = editor->asked_column;
	char buf[32];
	int len;

	if (!editor->asked || sscanf(sequence, "[%u;%uR", &row, &column) != 2 ||
	    column == 0 || editor->width == 0)
		return;
	editor->asked = 0;
	/* Reflowed: the row's end went down old / width rows.  A column
	 * both kinds would give is taken as cut: a fragment left is better
	 * than a line of output erased. */
	if (column - 1 != old % editor->width ||
	    column - 1 == editor->width - 1)
		return;
	up = old / editor->width;
	len = snprintf(buf, sizeof(buf), "\033[%zuA\r\033[J", up);
	if (up && write(STDOUT_FILENO, buf, (size_t)len) < 0)
		return;
}

void
editor_restore(void)
{
	if (relay.editor.active) {
		tcsetattr(STDIN_FILENO, TCSANOW, &relay.editor.saved);
		relay.editor.active = 0;
	}
}

int
editor_raw(void)
{
	struct termios raw = relay.editor.saved;

	/* Keys one by one, echoed by us; ISIG stays so ctrl-c is SIGINT. */
	raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
	raw.c_iflag &= ~(tcflag_t)(IXON | ICRNL);
	raw.c_cc[VMIN] = 1;
	raw.c_cc[VTIME] = 0;
	return tcsetattr(STDIN_FILENO, TCSANOW, &raw);
}

void
editor_start(void)
{
	if (tcgetattr(STDIN_FILENO, &relay.editor.saved) < 0)
		return;
	if (editor_raw() < 0)
		return;
	editor_resize();
	relay.editor.active = 1;
	atexit(editor_restore);
}

static void
history_add(const char *line)
{
	struct editor *editor = &relay.editor;
	char *copy;

	if (*line == '\0' || (editor->nhistory &&
	    strcmp(editor->history[editor->nhistory - 1], line) == 0))
		return;
	copy = strdup(line);
	if (copy == NULL)
		return;
	if (editor->nhistory == HISTORY_MAX) {
		free(editor->history[0]);
		memmove(editor->history, editor->history + 1,
		    (HISTORY_MAX - 1) * sizeof(editor->history[0]));
		editor->nhistory--;
	}
	editor->history[editor->nhistory++] = copy;
}

static void
editor_load(const char *text)
{
	struct editor *editor = &relay.editor;

	snprintf(editor->line, sizeof(editor->line), "%s", text);
	editor->len = editor->cursor = strlen(editor->line);
}

static void
editor_enter(void)
{
	struct editor *editor = &relay.editor;
	char line[LINE_MAX_B];

	memcpy(line, editor->line, editor->len);
	line[editor->len] = '\0';
	editor->len = editor->cursor = editor->scroll = 0;
	if (write(STDOUT_FILENO, "\r\n", 2) < 0)
		return;
	history_add(line);
	editor->browse = editor->nhistory;
	run_command(line);
	fflush(stdout);
}

static void
editor_escape(const char *sequence)
{
	struct editor *editor = &relay.editor;

	if (strcmp(sequence, "[A") == 0 || strcmp(sequence, "OA") == 0) {
		if (editor->browse > 0) {
			editor->browse--;
			editor_load(editor->history[editor->browse]);
		}
	} else if (strcmp(sequence, "[B") == 0 || strcmp(sequence, "OB") == 0) {
		if (editor->browse < editor->nhistory) {
			editor->browse++;
			editor_load(editor->browse < editor->nhistory ?
			    editor->history[editor->browse] : "");
		}
	} else if (strcmp(sequence, "[C") == 0 || strcmp(sequence, "OC") == 0) {
		if (editor->cursor < editor->len)
			editor->cursor++;
	} else if (strcmp(sequence, "[D") == 0 || strcmp(sequence, "OD") == 0) {
		if (editor->cursor > 0)
			editor->cursor--;
	} else if (strcmp(sequence, "[H") == 0 || strcmp(sequence, "OH") == 0 ||
	    strcmp(sequence, "[1~") == 0) {
		editor->cursor = 0;
	} else if (strcmp(sequence, "[F") == 0 || strcmp(sequence, "OF") == 0 ||
	    strcmp(sequence, "[4~") == 0) {
		editor->cursor = editor->len;
	} else if (sequence[strlen(sequence) - 1] == 'R') {
		editor_position(sequence);
	} else if (strcmp(sequence, "[3~") == 0) {
		if (editor->cursor < editor->len) {
			memmove(editor->line + editor->cursor,
			    editor->line + editor->cursor + 1,
			    editor->len - editor->cursor - 1);
			editor->len--;
		}
	}
}

static void
editor_key(unsigned char key)
{
	struct editor *editor = &relay.editor;
	size_t start;

	if (editor->escape_len) {
		editor->escape[editor->escape_len - 1] = (char)key;
		editor->escape[editor->escape_len] = '\0';
		editor->escape_len++;
		/* A sequence ends with a letter or '~' after "[" or "O". */
		if (editor->escape_len > 2 && ((key >= 'A' && key <= 'Z') ||
		    (key >= 'a' && key <= 'z') || key == '~')) {
			editor_escape(editor->escape);
			editor->escape_len = 0;
		} else if (editor->escape_len >= sizeof(editor->escape) - 1) {
			editor->escape_len = 0;
		}
		return;
	}
	switch (key) {
	case '\r': case '\n':
		editor_enter();
		return;
	case 27:
		editor->escape_len = 1;
		return;
	case 1: editor->cursor = 0; break;			/* ^A */
	case 5: editor->cursor = editor->len; break;		/* ^E */
	case 2: if (editor->cursor) editor->cursor--; break;	/* ^B */
	case 6: if (editor->cursor < editor->len) editor->cursor++; break;
	case 4:							/* ^D */
		if (editor->len == 0) {
			if (write(STDOUT_FILENO, "\r\n", 2) < 0)
				break;
			begin_stop("End of input");
			return;
		}
		editor_escape("[3~");
		break;
	case 11: editor->len = editor->cursor; break;		/* ^K */
	case 21:						/* ^U */
		memmove(editor->line, editor->line + editor->cursor,
		    editor->len - editor->cursor);
		editor->len -= editor->cursor;
		editor->cursor = 0;
		break;
	case 23:						/* ^W */
		start = editor->cursor;
		while (start > 0 && editor->line[start - 1] == ' ')
			start--;
		while (start > 0 && editor->line[start - 1] != ' ')
			start--;
		memmove(editor->line + start, editor->line + editor->cursor,
		    editor->len - editor->cursor);
		editor->len -= editor->cursor - start;
		editor->cursor = start;
		break;
	case 12: break;						/* ^L */
	case 127: case 8:
		if (editor->cursor == 0)
			break;
		memmove(editor->line + editor->cursor - 1,
		    editor->line + editor->cursor, editor->len - editor->cursor);
		editor->cursor--;
		editor->len--;
		break;
	default:
		if (key < 32 || editor->len >= sizeof(editor->line) - 1)
			break;
		memmove(editor->line + editor->cursor + 1,
		    editor->line + editor->cursor, editor->len - editor->cursor);
		editor->line[editor->cursor++] = (char)key;
		editor->len++;
		break;
	}
}

void
read_input(void)
{
	char buf[512];
	ssize_t got, index;

	got = read(STDIN_FILENO, buf, sizeof(buf));
	if (got < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (got <= 0) {
		/* End of input ends the prompt, not the forwarders: the
		 * original kept relaying (and `iprelay ... </dev/null &`
		 * is a way to run it). */
		relay.prompt = 0;
		if (relay.editor.active)
			begin_stop("End of input");
		return;
	}
	if (relay.editor.active) {
		/* One redraw for what arrived together (a paste, a test). */
		for (index = 0; index < got && relay.prompt && !relay.stopping;
		    index++)
			editor_key((unsigned char)buf[index]);
		if (relay.prompt && !relay.stopping)
			editor_redraw();
		return;
	}
	/* A line with a NUL byte, or longer than a command line, is refused
	 * whole: run cut short, it would do what was not asked. */
	for (index = 0; index < got; index++) {
		if (buf[index] == '\0')
			relay.pending_nul = 1;
		else if (buf[index] == '\n')
			relay.pending[relay.pending_len] = '\0';
		else if (relay.pending_len < sizeof(relay.pending) - 1)
			relay.pending[relay.pending_len++] = buf[index];
		else
			relay.pending_long = 1;
		if (buf[index] != '\n')
			continue;
		if (relay.pending_nul)
			out("  Refused: the line has a NUL byte.\n");
		else if (relay.pending_long)
			out("  Line too long: at most %zu bytes.\n",
			    sizeof(relay.pending) - 1);
		else
			run_command(relay.pending);
		relay.pending_len = 0;
		relay.pending_nul = relay.pending_long = 0;
		if (relay.stopping)
			return;
		prompt();
	}
}
