#!/bin/bash
# docs/: every man page is `mandoc -T lint -W warning` clean; every program
# that exists has a page, and the page's SYNOPSIS says what the program's
# own usage text says (the same forms, word for word); every man page the
# units name exists.
. "$IPRELAY_TOP/tests/lib.sh"
cd "$IPRELAY_TOP" || exit 1

pages=$(ls docs/*.[158] 2>/dev/null)
ok "docs/ has man pages" test -n "$pages"
for page in $pages; do
	out=$(mandoc -T lint -W warning "$page" 2>&1)
	ok "mandoc -T lint -W warning $page" test -z "$out" || diag "$out"
done

# forms PROGRAM: one synopsis form a line, whitespace collapsed, from text
# on stdin in which each form starts with the program's name.
forms() {
	tr -s ' \t\n' '   ' | sed "s/^ //; s/ \$//; s/ $1 /\\n$1 /g"
	echo
}

# usage_of PROGRAM PATH: the usage text, as -h prints it (or a bad option,
# for a program without -h): "usage: " dropped, continuation lines kept.
usage_of() {
	local text
	for option in -h --no-such-option; do
		text=$("$2" "$option" 2>&1 </dev/null | sed -n '/^usage: /,$p')
		if [ -n "$text" ]; then
			printf '%s\n' "$text" | sed 's/^usage: //; s/^ *or: //'
			return
		fi
	done
}

# synopsis_of PAGE: the rendered SYNOPSIS section, overstrike removed.
synopsis_of() {
	mandoc -T ascii -O width=1000 "$1" | sed 's/.\x08//g' |
		sed -n '/^SYNOPSIS/,/^[A-Z]/{/^[A-Z]/d;p}'
}

programs="iprelay:relay iprelay-limit:shaperd iprelay-conn:relay shaperd:shaperd"
for entry in $programs iprelay-forwarder:units; do
	program=${entry%%:*}
	if [ "$program" = iprelay-forwarder ]; then
		path=units/iprelay-forwarder
	else
		path=$IPRELAY_BIN/$program
		# A program whose source is not written yet has no page to match.
		[ -f "${entry#*:}/$program.c" ] || { diag "$program: no source yet"; continue; }
		if [ ! -x "$path" ]; then fail "$program is built"; continue; fi
	fi
	page=$(ls docs/"$program".[18] 2>/dev/null | head -1)
	if [ -z "$page" ]; then fail "$program has a man page in section 1 or 8"; continue; fi
	usage=$(usage_of "$program" "$path" | forms "$program")
	if [ -z "$usage" ]; then fail "$program prints a usage text"; continue; fi
	# Every program also takes -h, --help and --version (help-startup.t
	# checks them and their synopsis line): not part of its usage text.
	synopsis=$(synopsis_of "$page" | forms "$program" |
	    grep -vx "$program -h | --help | --version")
	is "$synopsis" "$usage" "$page SYNOPSIS matches $program's usage"
done

# The state dir page, and every man page a unit points at.
ok "a section 5 page (the state dir and its file)" \
	test -n "$(ls docs/*.5 2>/dev/null)"
for ref in $(grep -ho 'man:[A-Za-z0-9_.-]*([0-9])' units/*.service units/*.socket units/iprelay-forwarder | sort -u); do
	name=${ref#man:}
	name=${name%(*}
	section=${ref#*(}
	section=${section%)}
	case $name in systemd.* | inetd.conf | xinetd.conf) continue ;; esac
	ok "units name $ref: docs/$name.$section exists" test -f "docs/$name.$section"
done

done_testing
