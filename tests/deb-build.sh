#!/bin/sh
# tests/deb-build.sh: the Debian package of the work tree, built once per
# state of the sources.  Prints the path of the .deb (build/deb/); builds
# it from a copy of the tree (dpkg-buildpackage cleans, which must not
# touch the work tree's bin/) unless the one there was built from the same
# sources (build/deb/sources.sha256: every file the package is made of,
# so not .git, bin, build, tests, bench or .ci).
# Used by `make package-test` (tests/package-test.sh) and by
# tests/t/systemd-live.t, so CI builds it once.  -f: build even so.
# Exit 111 when the build fails (its log's tail on stderr).
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
out=$top/build/deb
force=0
[ "${1:-}" = -f ] && force=1

sources_sum() {
	(cd "$top" && find . -path ./.git -prune -o -path ./bin -prune -o \
	    -path ./build -prune -o -path ./tests -prune -o -path ./bench -prune \
	    -o -path ./.ci -prune -o -type f -print | LC_ALL=C sort |
	    xargs -d '\n' sha256sum | sha256sum | cut -d' ' -f1)
}

sum=$(sources_sum)
deb=$(ls "$out"/iprelay_*.deb 2>/dev/null | head -1)
if [ "$force" = 0 ] && [ -n "$deb" ] && [ "$(cat "$out/sources.sha256" 2>/dev/null)" = "$sum" ]; then
	echo "$deb"
	exit 0
fi

tmp=$(mktemp -d /tmp/iprelay-deb.XXXXXX) || exit 111
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/src"
(cd "$top" && tar -c --exclude=./.git --exclude=./bin --exclude=./build .) |
	(cd "$tmp/src" && tar -x) || { echo "deb-build: unable to copy the tree" >&2; exit 111; }
if ! (cd "$tmp/src" && dpkg-buildpackage -us -uc -b >"$tmp/build.log" 2>&1); then
	tail -40 "$tmp/build.log" >&2
	echo "deb-build: dpkg-buildpackage failed" >&2
	exit 111
fi
built=$(ls "$tmp"/iprelay_*.deb 2>/dev/null | head -1)
[ -n "$built" ] || { echo "deb-build: no .deb was built" >&2; exit 111; }
mkdir -p "$out" && rm -f "$out"/iprelay_*.deb "$out/sources.sha256" &&
	cp "$built" "$out/" && echo "$sum" >"$out/sources.sha256" ||
	{ echo "deb-build: unable to write $out" >&2; exit 111; }
echo "$out/${built##*/}"
