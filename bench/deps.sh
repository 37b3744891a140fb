#!/bin/sh
# Packages the benchmarks need (bench/README.md); CI does not run benches,
# so these are not in tests/deps.sh.  Idempotent: installs only what is missing.
set -e
want="haproxy nginx libnginx-mod-stream socat trickle gnuplot-nox iproute2 iperf3
	openbsd-inetd systemd linux-perf valgrind"
# One dpkg-query for all (make bench-quick runs this every time).
installed=$(dpkg-query -W -f='${Package} ${Status}\n' $want 2>/dev/null || true)
missing=
for p in $want; do
	case "
$installed
" in
	*"
$p install ok installed
"*) ;;
	*) missing="$missing $p" ;;
	esac
done
[ -z "$missing" ] && exit 0
echo "bench/deps.sh: installing$missing"
export DEBIAN_FRONTEND=noninteractive
[ "$(id -u)" = 0 ] && sudo= || sudo=sudo
$sudo apt-get update -qq
# Only the packages: no service of them is started by the benches' installs.
$sudo apt-get install -y -qq --no-install-recommends $missing
# The Debian packages enable and start their services; the benches run
# their own instances on free ports, so stop the system ones if they run.
for s in haproxy nginx; do
	command -v systemctl >/dev/null 2>&1 && $sudo systemctl disable --now "$s" >/dev/null 2>&1 || true
	command -v service >/dev/null 2>&1 && $sudo service "$s" stop >/dev/null 2>&1 || true
done
exit 0
