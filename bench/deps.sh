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
$sudo apt-get install -y -qq --no-install-recommends $missing
# No service is stopped or disabled here, whoever started it: the benches
# run their own haproxy, nginx and inetd on free ports of their own, beside
# any the machine runs (Debian starts the ones it installs; stop them
# yourself if you do not want them).
exit 0
