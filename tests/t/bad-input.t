#!/bin/bash
# Every CLI refuses malformed input: a table of inputs per program.  Each
# must give a non-zero exit (not a signal), print nothing on stdout, and
# say what is wrong in its first stderr line, naming the bad word; any
# further lines may only be the usage text.  BAD_INPUT_TABLE=FILE also
# writes the table as Markdown rows (docs/reliability.md).
. "$IPRELAY_TOP/tests/lib.sh"

long65=$(printf 'n%.0s' $(seq 65))
long300=$(printf 'h%.0s' $(seq 300))
table=${BAD_INPUT_TABLE:-/dev/null}
: >"$table"

# shown WORDS...: the arguments as one readable line for names and table.
shown() {
	local arg out=
	for arg in "$@"; do
		case $arg in
		'') arg="''" ;;
		*[[:space:]]*|*[![:print:]]*) arg=$(printf '%q' "$arg") ;;
		esac
		[ ${#arg} -gt 24 ] && arg="${arg:0:12}...(${#arg})"
		out="$out $arg"
	done
	printf '%s' "${out# }"
}

# t PROGRAM RC NAMED ARGS...: run PROGRAM ARGS; want exit RC and a first
# stderr line naming NAMED (a fixed string).
# todo=REASON before a call marks that one case a known failure (TAP TODO).
todo=
t() {
	local program=$1 want_rc=$2 named=$3 rc first rest why=
	shift 3
	timeout -k 2 10 "$IPRELAY_BIN/$program" "$@" </dev/null \
		>"$TEST_TMP/out" 2>"$TEST_TMP/err"
	rc=$?
	first=$(head -n 1 "$TEST_TMP/err")
	rest=$(tail -n +2 "$TEST_TMP/err" | grep -Ev '^(usage: |   |$)')
	if [ "$rc" != "$want_rc" ]; then why="exit $rc, want $want_rc"
	elif [ -s "$TEST_TMP/out" ]; then why="wrote to stdout"
	elif [[ $first != "$program: "* ]]; then
		# The program's name, not the path it was run as.
		why="first line not '$program: ...'"
	elif [[ $first != *"$named"* ]]; then why="first line does not name '$named'"
	elif [ -n "$rest" ]; then why="more than one line besides the usage"
	fi
	if [ -n "$todo" ]; then
		tap_count=$((tap_count + 1))
		printf '%s %d - %s # TODO %s\n' "$([ -z "$why" ] && echo ok ||
			echo not ok)" "$tap_count" "$program $(shown "$@")" "$todo"
		[ -n "$why" ] && diag "$why"
	elif [ -z "$why" ]; then pass "$program $(shown "$@"): $rc"; else
		fail "$program $(shown "$@")"; diag "$why"
		sed 's/^/#   /' "$TEST_TMP/err" | head -n 4
	fi
	todo=
	printf '| `%s %s` | %s | `%s` |\n' "$program" "$(shown "$@" | sed 's/|/\\|/g')" \
		"$rc" "$(printf '%s' "$first" | cut -c1-110 | sed 's/|/\\|/g')" >>"$table"
}

# --- iprelay-limit ----------------------------------------------------------
# Refusals by the store's rules (no such limit, a cycle) are policy: exit 1.
L=iprelay-limit
"$IPRELAY_BIN/$L" set top 1M && "$IPRELAY_BIN/$L" set child 10K --parent top ||
	{ echo "Bail out! iprelay-limit set failed"; exit 1; }
t $L 100 "missing command"
t $L 100 "'frobnicate'" frobnicate
t $L 100 "'--bogus'" --bogus list
t $L 100 "'-x'" -x list
t $L 100 "''" -S "" list
t $L 100 "-S" -S
t $L 100 "'extra'" list extra
t $L 100 "NAME" get
t $L 100 "NAME" set
t $L 100 "RATE" set x
t $L 100 "'x y'" set "x y" 1K
t $L 100 "''" set "" 1K
t $L 100 "'a/b'" set a/b 1K
t $L 100 "'../x'" set ../x 1K
t $L 100 "'$long65'" set "$long65" 1K
t $L 100 "'abc'" set x abc
t $L 100 "'-1'" set x -1
t $L 100 "'1.5K'" set x 1.5K
t $L 100 "'1KB'" set x 1KB
t $L 100 "'1e3'" set x 1e3
t $L 100 "'0x10'" set x 0x10
t $L 100 "' 1'" set x " 1"
t $L 100 "''" set x ""
t $L 100 "'1025G'" set x 1025G
t $L 100 "'18446744073709551616'" set x 18446744073709551616
t $L 100 "'K'" set x K
# A control character in a bad word is echoed escaped (\n), so the one
# line stays one (and for a relay, one log line).
t $L 100 "'1\\n2'" set x $'1\n2'
t $L 100 "'abc'" set x --up abc
t $L 100 "'-5'" set x 1K --down -5
t $L 100 "'fast'" set x --up=fast
t $L 100 "--up" set x --up
t $L 100 "'abc'" set x 1K --burst abc
t $L 100 "'2048G'" set x 1K --burst 2048G
t $L 100 "'bad name'" set x 1K --parent "bad name"
t $L 100 "'2K'" set x 1K 2K
t $L 1 "nosuch" set x 1K --parent nosuch
t $L 1 "top" set top 1K --parent child
t $L 1 "x cannot" set x 1K --parent x
t $L 100 "--up" list --up 1K
t $L 100 "-n" get top -n 3
t $L 100 "--json" del x --json
t $L 100 "''" get ""
t $L 1 "nosuch" get nosuch
t $L 1 "nosuch" del nosuch
t $L 1 "top" del top
t $L 100 "'abc'" kill abc
t $L 100 "'CONNabc'" kill CONNabc
t $L 100 "'-1'" kill -- -1
t $L 100 "'99999999999'" kill 99999999999
t $L 100 "'0'" top -n 0
t $L 100 "'abc'" top -n abc
t $L 100 "'0'" top -d 0
t $L 100 "'0.001'" top -d 0.001
t $L 100 "'x'" top -d x
t $L 111 "/etc/passwd/state" -S /etc/passwd/state list

# --- iprelay-conn (usage is checked before the client socket) ---------------
C=iprelay-conn
t $C 100 "HOST:PORT is missing"
t $C 100 "'host'" host
t $C 100 "''" ""
t $C 100 "'host:0'" host:0
t $C 100 "'host:65536'" host:65536
t $C 100 "'host:http'" host:http
t $C 100 "':80'" :80
t $C 100 "'::1:80'" ::1:80
t $C 100 "'[::1]80'" [::1]80
t $C 100 "'[name]:80'" [name]:80
t $C 100 "'[1.2.3.4]:80'" [1.2.3.4]:80
t $C 100 "'h st:80'" "h st:80"
t $C 100 "'h\\nx:80'" $'h\nx:80'
t $C 100 "'$long300" "$long300:80"
t $C 100 "'b:2'" a:1 b:2
t $C 100 "'bad name'" -l "bad name" h:1
t $C 100 "''" -l "" h:1
t $C 100 "'$long65'" -l "$long65" h:1
t $C 100 "''" -S "" h:1
t $C 100 "'abc'" -c abc h:1
t $C 100 "'-1'" -c -1 h:1
t $C 100 "'1.'" -c 1. h:1
t $C 100 "'1e3'" -i 1e3 h:1
t $C 100 "'0.0000000001'" -i 0.0000000001 h:1
t $C 100 "'notanip'" -s notanip h:1
t $C 100 "'1.2.3.4.5'" -s 1.2.3.4.5 h:1
t $C 100 "'[1.2.3.4'" -s [1.2.3.4 h:1
t $C 100 "'example.com'" -s example.com h:1
t $C 100 "'0'" -z 0 h:1
t $C 100 "'abc'" -z abc h:1
t $C 100 "'99G'" -z 99G h:1
t $C 100 "-x" -x h:1
t $C 100 "'10.0.0.0/33'" -a 10.0.0.0/33 h:1
t $C 100 "'::1/129'" -A ::1/129 h:1
t $C 100 "'junk'" -a junk h:1
t $C 100 "'127.0.0.1/'" -a 127.0.0.1/ h:1
t $C 100 "''" -A "" h:1
t $C 100 "-l" h:1 -l

# --- shaperd ----------------------------------------------------------------
S=shaperd
t $S 100 "'abc'" -t abc
t $S 100 "'0'" -t 0
t $S 100 "'99999999999'" -t 99999999999
t $S 100 "''" -S ""
t $S 100 "'extra'" extra
t $S 100 "'x'" -x
t $S 100 "'t'" -t
t $S 100 "'1\\n2'" -t $'1\n2'

# --- iprelay ----------------------------------------------------------------
I=iprelay
t $I 100 "abc" -b abc
t $I 100 "10.0.0.0/33" -a 10.0.0.0/33 8080:h:1
t $I 100 "1.2.3" -A 1.2.3 8080:h:1
t $I 100 "1\\n2" -b $'1\n2'
t $I 100 "-1" -b -1 80:h:1
t $I 100 "1KB" -b 1KB 80:h:1
t $I 100 "0" -m 0
t $I 100 "abc" -m abc
t $I 100 "1000001" -m 1000001
t $I 100 "bad name" -n "bad name"
t $I 100 "${long65:0:60}" -n "${long65:0:60}"
t $I 100 "-x" -x
t $I 100 "-b" -b
t $I 100 "80" 80
t $I 100 "80:host" 80:host
t $I 100 "0:h:1" 0:h:1
t $I 100 "70000:h:1" 70000:h:1
t $I 100 "80:h:0" 80:h:0
t $I 100 "80:[::1]:x" 80:[::1]:x
t $I 100 "abc:h:1" abc:h:1
t $I 100 "80::1" 80::1
t $I 100 "80:h st:1" "80:h st:1"
t $I 100 "proxyspec" -d
t $I 100 "proxyspec" -b 1K

done_testing
