#!/bin/sh
# Install the Debian packages the build and the tests need, only when one
# is missing.  Used by `make`, `make check`, `make run` and .ci/run.
PACKAGES="gcc make libc6-dev pkg-config liblmdb-dev lmdb-utils libsystemd-dev
systemd openbsd-inetd ucspi-tcp iperf3 curl python3 perl mandoc util-linux
prometheus
iproute2 procps psmisc clang tmux
libhiredis-dev redis-server redis-tools faketime
bash-completion debhelper dpkg-dev fakeroot lintian"
missing=
for package in $PACKAGES; do
	status=$(dpkg-query -W -f '${db:Status-Status}' "$package" 2>/dev/null)
	[ "$status" = installed ] || missing="$missing $package"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "deps: missing Debian packages:$missing (run 'make deps' as root)" >&2
	exit 1
fi
echo "deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null && apt-get install -y -qq $missing >/dev/null ||
	{ echo "deps: apt-get install failed for:$missing" >&2; exit 1; }
# Nothing is stopped or killed here: Debian may start the inetd and the
# prometheus it installs, and the tests run their own (tests/t/metrics.t:
# prometheus and its promtool) on their own free ports beside them.
exit 0
