#!/bin/sh
# make package-test: build the Debian package from a copy of the tree
# (tests/deb-build.sh: dpkg-buildpackage cleans, which must not touch the
# work tree's bin/), run lintian, unpack it with dpkg -x and check every
# file sits where the units, the generator and the examples say it does.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d /tmp/iprelay-package.XXXXXX)
trap '[ -n "${KEEP_TMP:-}" ] || rm -rf "$tmp"' EXIT
failed=0
check() {
	# check NAME CMD...: one line per check, remember failures.
	name=$1; shift
	if "$@"; then echo "ok - $name"; else echo "not ok - $name"; failed=1; fi
}

start=$(date +%s)
# tests/deb-build.sh: built from a copy of the tree, kept in build/deb for
# tests/t/systemd-live.t (CI runs this first, so that test reuses it).
deb=$(sh "$top/tests/deb-build.sh") || { echo "package-test: the package did not build" >&2; exit 1; }
echo "# built in $(($(date +%s) - start)) s (reused when the sources are unchanged)"
check "a .deb was built" test -n "$deb"
[ -n "$deb" ] || exit 1

# lintian: every tag above "info" fails, unless overridden with a reason
# (debian/source/lintian-overrides, or debian/iprelay.lintian-overrides).
lintian --fail-on error,warning --suppress-tags-from-file /dev/null "$deb" \
	>"$tmp/lintian.log" 2>&1
lintian_rc=$?
cat "$tmp/lintian.log" | sed 's/^/# /'
check "lintian reports no error or warning" test "$lintian_rc" = 0

root=$tmp/root
dpkg -x "$deb" "$root"
for file in /usr/bin/iprelay /usr/bin/iprelay-limit /usr/sbin/iprelay-conn \
    /usr/sbin/shaperd /usr/sbin/iprelay-forwarder; do
	check "$file is an executable" test -x "$root$file"
done
# debian/rules: the package's iprelay-conn uses the shared libc, so that
# libc's security updates reach it (make's default is static-pie).
check "the packaged iprelay-conn is linked dynamically" \
	sh -c "readelf -d '$root/usr/sbin/iprelay-conn' | grep -q 'NEEDED.*libc\.so'"
for file in /lib/systemd/system/shaperd.service \
    /lib/systemd/system/iprelay-metrics.socket \
    /usr/lib/sysusers.d/iprelay.conf /usr/lib/tmpfiles.d/iprelay.conf \
    /usr/share/bash-completion/completions/iprelay-limit \
    /usr/share/doc/iprelay/examples/iprelay-pop3.socket \
    /usr/share/doc/iprelay/examples/iprelay-pop3@.service \
    /usr/share/doc/iprelay/examples/inetd.conf.example \
    /usr/share/doc/iprelay/examples/xinetd.example; do
	check "$file is there" test -f "$root$file"
done

# Every program a unit, an example or the generator names is in the package.
for file in "$root"/lib/systemd/system/* "$root"/usr/share/doc/iprelay/examples/* \
    "$root"/usr/sbin/iprelay-forwarder; do
	for program in $(grep -o '/usr/s\{0,1\}bin/[A-Za-z0-9_-]\{1,\}' "$file" | sort -u); do
		check "${file#$root}: $program is in the package" test -x "$root$program"
	done
done

# The units verify against the unpacked package (the programs they name
# are where they say), and the postinst steps work on it as on a system:
# sysusers makes the user, tmpfiles the state dir the units share.
cp /lib/systemd/system/*.target /lib/systemd/system/*.slice "$root/lib/systemd/system/"
mkdir -p "$root/etc/systemd/system"
"$root/usr/sbin/iprelay-forwarder" -q -d "$root/etc/systemd/system" \
	10110:pop3.example.net:110 pop3
check "the packaged generator writes a pair" test -f "$root/etc/systemd/system/iprelay-pop3@.service"
for unit in shaperd.service iprelay-metrics.socket iprelay-pop3.socket \
    iprelay-pop3@.service; do
	out=$(systemd-analyze verify --man=no --root="$root" "$unit" 2>&1)
	check "systemd-analyze verify $unit in the package" test $? = 0 -a -z "$out"
	[ -z "$out" ] || echo "$out" | sed 's/^/# /'
done
systemd-sysusers --root="$root" iprelay.conf >/dev/null 2>&1
check "systemd-sysusers makes user iprelay" grep -q '^iprelay:' "$root/etc/passwd"
systemd-tmpfiles --root="$root" --create iprelay.conf >/dev/null 2>&1
uid=$(awk -F: '$1 == "iprelay" { print $3 }' "$root/etc/passwd")
check "systemd-tmpfiles makes /var/lib/iprelay 2770 owned by iprelay" \
	test "$(stat -c '%a %u' "$root/var/lib/iprelay" 2>/dev/null)" = "2770 $uid"

# Every man page in docs/ is installed in its section, and every program
# has one.
for page in "$top"/docs/*.[158]; do
	[ -f "$page" ] || continue
	name=${page##*/}
	check "man page $name installed" test -f "$root/usr/share/man/man${name##*.}/$name.gz"
done
for program in "$root"/usr/bin/* "$root"/usr/sbin/*; do
	name=${program##*/}
	check "$name has a man page" sh -c "ls '$root'/usr/share/man/man[18]/'$name'.[18].gz >/dev/null 2>&1"
done

# The maintainer scripts create the user before shaperd starts.
postinst=$tmp/control/postinst
dpkg -e "$deb" "$tmp/control"
check "postinst runs systemd-sysusers" grep -q systemd-sysusers "$postinst"
check "postinst creates the state dir" grep -q 'systemd-tmpfiles.*iprelay.conf' "$postinst"
check "the user exists before shaperd starts" awk '
	/systemd-sysusers/ && !user { user = NR }
	/deb-systemd-invoke.*start|deb-systemd-helper.*enable/ && !start { start = NR }
	END { exit !(user && start && user < start) }' "$postinst"

[ "$failed" = 0 ] && echo "package-test: ok" || echo "package-test: FAILED"
exit $failed
