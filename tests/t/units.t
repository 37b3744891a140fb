#!/bin/bash
# units/: `make install` into a temporary root, then systemd-analyze verify
# on every unit there (so the programs the units name must be installed),
# the exposure ratings against "OK" and docs/security.md, the forwarder
# generator (its output is the shipped pop3 example; bad input refused),
# sysusers/tmpfiles, and the bash completion of iprelay-limit.
. "$IPRELAY_TOP/tests/lib.sh"
cd "$IPRELAY_TOP" || exit 1

root=$TEST_TMP/root
units_etc=$root/etc/systemd/system
generator=units/iprelay-forwarder

# -o build: install what the tree has built; never compile from a test.
make -s -o build install DESTDIR="$root" PREFIX=/usr >"$TEST_TMP/install.log" 2>&1
ok "make install DESTDIR PREFIX=/usr" test $? = 0 || cat "$TEST_TMP/install.log"
for file in /usr/sbin/iprelay-conn /usr/sbin/shaperd /usr/sbin/iprelay-forwarder \
    /usr/bin/iprelay /usr/bin/iprelay-limit; do
	ok "$file installed" test -x "$root$file"
done
ok "shaperd.service installed in /lib/systemd/system as shipped" \
	cmp -s units/shaperd.service "$root/lib/systemd/system/shaperd.service"
ok "sysusers.d and tmpfiles.d files installed" \
	test -f "$root/usr/lib/sysusers.d/iprelay.conf" -a -f "$root/usr/lib/tmpfiles.d/iprelay.conf"
ok "bash completion installed" \
	test -f "$root/usr/share/bash-completion/completions/iprelay-limit"
grep -q "^conn_path=/usr/sbin/iprelay-conn$" "$root/usr/sbin/iprelay-forwarder"
ok "installed generator names the installed iprelay-conn" test $? = 0

# A PREFIX other than /usr keeps everything under it.
make -s -o build install DESTDIR="$TEST_TMP/local" PREFIX=/usr/local >/dev/null 2>&1
ok "PREFIX=/usr/local: unit under /usr/local/lib/systemd/system" \
	test -f "$TEST_TMP/local/usr/local/lib/systemd/system/shaperd.service"
grep -q "^ExecStart=/usr/local/sbin/shaperd$" \
	"$TEST_TMP/local/usr/local/lib/systemd/system/shaperd.service"
ok "PREFIX=/usr/local: shaperd.service runs /usr/local/sbin/shaperd" test $? = 0

# The generator reproduces the shipped example exactly.
mkdir -p "$TEST_TMP/gen" "$units_etc"
sh $generator -q -d "$TEST_TMP/gen" 10110:pop3.example.net:110 pop3
ok "generator writes the pop3 pair" test $? = 0
ok "pop3 socket is the generator's output" \
	cmp "$TEST_TMP/gen/iprelay-pop3.socket" units/iprelay-pop3.socket
ok "pop3 service is the generator's output" \
	cmp "$TEST_TMP/gen/iprelay-pop3@.service" units/iprelay-pop3@.service

# The socket bounds what one forwarder can start.
for setting in Accept=yes MaxConnections=256 MaxConnectionsPerSource=32 ReceiveBuffer=64K; do
	grep -qx "$setting" units/iprelay-pop3.socket
	ok "pop3 socket: $setting" test $? = 0
done
for setting in Type=notify WatchdogSec=10s Restart=on-failure StateDirectory=iprelay User=iprelay; do
	grep -qx "$setting" units/shaperd.service
	ok "shaperd.service: $setting" test $? = 0
done

# Every unit in units/, and more generated ones, in the root's /etc.
cp units/*.socket units/*.service "$units_etc/"
rm -f "$units_etc/shaperd.service"	# installed in /lib, checked there
"$root/usr/sbin/iprelay-forwarder" -q -d "$units_etc" -n web6 -a ::1 \
	-m 10 -p 2 -r 16K 8080:[2001:db8::1]:80 -
ok "generator: IPv6 listen address and remote, unshaped" test $? = 0
grep -q '^ListenStream=\[::1\]:8080$' "$units_etc/iprelay-web6.socket" &&
	grep -q '^ExecStart=/usr/sbin/iprelay-conn -i 600 \[2001:db8::1\]:80$' \
	"$units_etc/iprelay-web6@.service"
ok "generator: listen address, unshaped ExecStart" test $? = 0
"$root/usr/sbin/iprelay-forwarder" -q -d "$units_etc" 2525:mail.example.org:25 mail-out
ok "generator: unit named after the limit" test -f "$units_etc/iprelay-mail-out@.service"

# systemd-analyze needs the targets the units hang on in the root.
cp /lib/systemd/system/*.target /lib/systemd/system/*.slice "$root/lib/systemd/system/"
unit_names="shaperd.service"
for file in "$units_etc"/*.socket "$units_etc"/*.service; do
	unit_names="$unit_names ${file##*/}"
done
for unit in $unit_names; do
	out=$(systemd-analyze verify --man=no --root="$root" "$unit" 2>&1)
	ok "systemd-analyze verify $unit" test $? = 0 -a -z "$out" || diag "$out"
done
# verify does check the programs: it must fail without them.
mv "$root/usr/sbin/iprelay-conn" "$TEST_TMP/conn.moved"
systemd-analyze verify --man=no --root="$root" iprelay-pop3@.service >/dev/null 2>&1
ok "verify fails when iprelay-conn is not installed" test $? != 0
mv "$TEST_TMP/conn.moved" "$root/usr/sbin/iprelay-conn"

# Exposure: "OK" or better means below 5.0 (MEDIUM starts there); the
# figures in docs/security.md are the ones measured.
for unit in shaperd.service iprelay-pop3@1.service; do
	line=$(systemd-analyze security --offline=true --root="$root" "$unit" 2>&1 |
		sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\) \([A-Z]*\).*/\1 \2/p')
	figure=${line% *}
	like "$line" '^[0-9]+\.[0-9] (OK|SAFE|PERFECT)$' "$unit exposure $line is OK or better"
	documented=$(sed -n "s/^| \`${unit%@*}[^|]*| \([0-9.]*\) *|.*/\1/p" docs/security.md 2>/dev/null | head -1)
	is "$documented" "$figure" "docs/security.md gives the exposure of $unit"
done

# Bad input: one line naming the bad word, exit 100; nothing written.
mkdir -p "$TEST_TMP/bad"
bad() {
	# bad WANT_WORD ARGS...
	want=$1; shift
	err=$(sh $generator -q -d "$TEST_TMP/bad" "$@" 2>&1 >/dev/null)
	rc=$?
	first=$(printf '%s\n' "$err" | head -1)
	if [ "$rc" = 100 ] && printf '%s' "$first" | grep -qF -- "$want"; then
		pass "generator refuses $* (exit 100)"
	else
		fail "generator refuses $*"; diag "rc=$rc: $err"
	fi
}
bad "bad local port: 0" 0:host:80 x
bad "bad local port: 70000" 70000:host:80 x
bad "bad remote port: 8o" 1:host:8o x
bad "bad remote host: ho%st" 1:ho%st:80 x
bad "bad remote host: -oops" 1:-oops:80 x
bad "bad remote host: [::g]" "1:[::g]:80" x
bad "bad forwarder spec: 1234" 1234 x
bad "bad limit name: po/p3" 1:host:80 po/p3
bad "bad name: a b" -n "a b" 1:host:80 x
bad "bad address: 1.2.3.4x" -a 1.2.3.4x 1:host:80 x
bad "bad receive buffer: 12Q" -r 12Q 1:host:80 x
bad "usage:" 1:host:80
ok "nothing written on bad input" test -z "$(ls "$TEST_TMP/bad")"
sh $generator -q -d "$TEST_TMP/gen" 10110:pop3.example.net:110 pop3 2>/dev/null
is "$?" 100 "generator refuses to replace an existing pair without -f"
sh $generator -q -f -d "$TEST_TMP/gen" 10110:pop3.example.net:110 pop3
is "$?" 0 "generator -f replaces it"
sh $generator -q -d "$TEST_TMP/no/such/dir" 1:host:80 x 2>/dev/null
is "$?" 111 "generator: missing directory is a system failure (111)"

# sysusers and tmpfiles make the user and a setgid, group-writable dir.
mkdir -p "$TEST_TMP/sys/etc"
systemd-sysusers --root="$TEST_TMP/sys" "$IPRELAY_TOP/units/iprelay-sysusers.conf" >/dev/null 2>&1
ok "sysusers creates user iprelay" grep -q '^iprelay:' "$TEST_TMP/sys/etc/passwd"
systemd-tmpfiles --root="$TEST_TMP/sys" --create "$IPRELAY_TOP/units/iprelay-tmpfiles.conf" >/dev/null 2>&1
is "$(stat -c %a "$TEST_TMP/sys/var/lib/iprelay" 2>/dev/null)" 2770 \
	"tmpfiles makes /var/lib/iprelay mode 2770"
for file in units/shaperd.service units/iprelay-pop3@.service; do
	grep -q '^StateDirectoryMode=2770$' "$file"
	ok "${file#units/}: StateDirectoryMode matches tmpfiles.d" test $? = 0
done

# Bash completion: commands, and limit names from `iprelay-limit list --json`.
if [ -f /usr/share/bash-completion/bash_completion ]; then
	"$IPRELAY_BIN/iprelay-limit" set pop3 1024 >/dev/null &&
		"$IPRELAY_BIN/iprelay-limit" set bulk 1M >/dev/null
	complete_words() {
		PATH=$IPRELAY_BIN:$PATH bash -c '
			. /usr/share/bash-completion/bash_completion
			. units/iprelay-limit.bash-completion
			COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
			COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
			_iprelay_limit iprelay-limit "${COMP_WORDS[COMP_CWORD]}" \
			    "${COMP_WORDS[COMP_CWORD - 1]}"
			[ ${#COMPREPLY[@]} = 0 ] ||
			    printf "%s\n" "${COMPREPLY[@]}" | sort | tr "\n" " "' _ "$@"
	}
	is "$(complete_words iprelay-limit "")" "conns del get kill list set top " \
		"completion: commands"
	is "$(complete_words iprelay-limit get "")" "bulk pop3 " "completion: limit names"
	is "$(complete_words iprelay-limit set bulk --pa)" "--parent " \
		"completion: options from the usage text"
	is "$(complete_words iprelay-limit -S "$TEST_TMP/empty" get "")" "" \
		"completion: limit names of the -S state dir"
else
	fail "bash-completion is installed (tests/deps.sh)"
fi

done_testing
