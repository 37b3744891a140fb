#!/bin/bash
# bench/systemd-cps.sh: what a connection costs under a running systemd
# (Accept=yes, one service unit per connection) beside the other ways to
# start a relay, all in one run, inside one container booted by tests/sdbox
# (the machine's own systemd as PID 1, its own network namespace), so every
# peer meets the same systemd, kernel and load.  Not a test.
#
#   bench/systemd-cps.sh [REPS]      (root; make build first; socat needed)
#
# Inside: `make install PREFIX=/usr` of this tree (so every peer runs the
# same /usr/sbin/iprelay-conn, linked as bin/ is), shaperd.service as
# units/README.md starts it, and a bnet origin that answers 16 bytes and
# closes.  Peers, each relaying to that origin unshaped:
#   direct           the origin itself
#   systemd          a forwarder from iprelay-forwarder (-p 256: the
#                    per-source cap out of the way of one client), i.e. a
#                    socket unit with Accept=yes and the shipped sandboxed
#                    service template: a unit per connection
#   systemd-bare     the same socket, a service with ExecStart= and User=
#                    only: what the unit costs without its sandbox
#   socket-activate  systemd-socket-activate --accept: a spawn per
#                    connection, no unit (the test suite's launcher)
#   iprelay          iprelay -d (its own spawn, one relay started ahead)
#   inetd            openbsd-inetd -i, nowait.1000000, as units/inetd.conf.example
#   socat            socat TCP-LISTEN,fork (no iprelay-conn at all)
# Each repetition runs every peer in turn: `bnet cps -n COUNT` back to back
# and `bnet cps -n SPACED -g 30` with 30 ms between connections; figures are
# medians over REPS (default 3), latency "added" is over direct's in the
# same repetition.  It also measures a limit change under the live systemd:
# `tests/tools/ratestep.py` on a forwarder at 512K set to 2M, error of the
# rate from 1 s after the change.  Writes $BENCH_OUT/systemd-cps.md
# (default bench/results) and prints it, and the raw figures to
# $BENCH_OUT/systemd-cps.tsv.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
reps=${1:-${REPS:-3}}
count=${CPS_COUNT:-100}
spaced=${CPS_SPACED_COUNT:-20}
out_dir=${BENCH_OUT:-$top/bench/results}

if [ "${1:-}" = --inside ]; then
	inside=1
	work=$2
	reps=$3
fi

field() { sed -n "s/^$1=//p" <<<"$2" | head -1; }

# ---- inside the container ---------------------------------------------------
if [ -n "${inside:-}" ]; then
	set -e
	BNET=$top/build/bench-tools/bnet
	cd "$top"
	make -s -o build install PREFIX=/usr >/dev/null
	systemd-sysusers iprelay.conf >/dev/null
	systemd-tmpfiles --create iprelay.conf
	systemctl daemon-reload
	systemctl enable --now shaperd.service 2>/dev/null
	systemd-run -q --unit=bench-origin -p Type=exec "$BNET" serve -P "$work/reply.port" -m reply
	systemd-run -q --unit=bench-source -p Type=exec "$BNET" serve -P "$work/source.port" -m source
	for _ in $(seq 100); do [ -s "$work/reply.port" ] && [ -s "$work/source.port" ] && break; sleep 0.05; done
	origin=127.0.0.1:$(cat "$work/reply.port")
	source=127.0.0.1:$(cat "$work/source.port")
	iprelay-forwarder -q -n cps -p 256 20001:$origin -
	iprelay-forwarder -q -n bare -p 256 20002:$origin -
	# The bare service: the generated one without its sandbox.
	cat >/etc/systemd/system/iprelay-bare@.service <<EOF
[Unit]
Description=iprelay connection, no sandbox (bench)
CollectMode=inactive-or-failed
[Service]
ExecStart=/usr/sbin/iprelay-conn $origin
User=iprelay
Group=iprelay
Environment=IPRELAY_STATE_DIR=%S/iprelay
EOF
	systemctl daemon-reload
	systemctl enable --now iprelay-cps.socket iprelay-bare.socket 2>/dev/null
	state_dir=$(systemctl show -P Environment shaperd.service | tr ' ' '\n' | sed -n 's/^IPRELAY_STATE_DIR=//p')
	systemd-run -q --unit=bench-sa -p Type=exec -p User=iprelay -p Group=iprelay \
		-E IPRELAY_STATE_DIR="$state_dir" systemd-socket-activate --accept \
		-l 127.0.0.1:20003 -E IPRELAY_STATE_DIR /usr/sbin/iprelay-conn "$origin"
	iprelay -d -p /tmp/bench-iprelay.pid -n bench-iprelay 20004:$origin >/dev/null 2>&1
	printf '127.0.0.1:20005 stream tcp4 nowait.1000000 iprelay:iprelay /usr/sbin/iprelay-conn iprelay-conn -S %s %s\n' \
		"$state_dir" "$origin" >/run/bench-inetd.conf
	systemd-run -q --unit=bench-inetd -p Type=exec /usr/sbin/inetd -i -E -R 1000000 /run/bench-inetd.conf
	systemd-run -q --unit=bench-socat -p Type=exec socat \
		"TCP-LISTEN:20006,bind=127.0.0.1,fork,reuseaddr,backlog=1024" "TCP:$origin"
	for port in 20001 20002 20003 20004 20005 20006; do
		for _ in $(seq 100); do ss -Hltn "sport = :$port" | grep -q . && break; sleep 0.05; done
	done
	peers="direct:${origin##*:} systemd:20001 systemd-bare:20002 socket-activate:20003 iprelay:20004 inetd:20005 socat:20006"
	set +e
	for rep in $(seq "$reps"); do
		for peer in $peers; do
			a=$("$BNET" cps -n "$count" "127.0.0.1:${peer#*:}")
			b=$("$BNET" cps -n "$spaced" -g 30 "127.0.0.1:${peer#*:}")
			printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$rep" "${peer%%:*}" \
				"$(field rate "$a")" "$(field p50_us "$a")" "$(field p99_us "$a")" \
				"$(field p50_us "$b")" "$(( $(field failures "$a") + $(field failures "$b") ))"
		done
	done >"$work/cps.tsv"
	# A limit change under the live systemd: the 2% figure.
	iprelay-forwarder -q 20010:$source step
	systemctl daemon-reload
	systemctl enable --now iprelay-step.socket 2>/dev/null
	for rep in $(seq "$reps"); do
		iprelay-limit set step 512K >/dev/null
		python3 "$top/tests/tools/ratestep.py" --connect 127.0.0.1:20010 --before 3 --after 4 \
			-- iprelay-limit set step 2M
	done >"$work/step.json"
	exit 0
fi

# ---- the machine's side -------------------------------------------------------
[ "$(id -u)" = 0 ] || { echo "systemd-cps: fatal: run as root (it boots a container)" >&2; exit 111; }
command -v socat >/dev/null || { echo "systemd-cps: fatal: no socat (bench/deps.sh)" >&2; exit 111; }
[ -x /usr/sbin/inetd ] || { echo "systemd-cps: fatal: no openbsd-inetd (bench/deps.sh)" >&2; exit 111; }
for p in iprelay iprelay-conn iprelay-limit shaperd; do
	[ -x "$top/bin/$p" ] || { echo "systemd-cps: fatal: bin/$p is not built (make build)" >&2; exit 111; }
done
reason=$("$top/tests/sdbox" -d /tmp/systemd-cps-check check) ||
	{ echo "systemd-cps: fatal: cannot boot a container here: $reason" >&2; exit 111; }
tools=$top/build/bench-tools
mkdir -p "$tools"
if ! [ "$tools/bnet" -nt "$top/bench/tools/bnet.c" ]; then
	cc -std=c11 -Wall -Wextra -Werror -D_GNU_SOURCE -O2 -o "$tools/bnet.$$" "$top/bench/tools/bnet.c" &&
		mv -f "$tools/bnet.$$" "$tools/bnet" || exit 111
fi
work=$(mktemp -d /tmp/systemd-cps.XXXXXX)
chmod 755 "$work"
box=$work/box
trap '"$top/tests/sdbox" -d "$box" down >/dev/null 2>&1; rm -rf "$work"' EXIT
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date -u '+%Y-%m-%d %H:%M')
# The machine's own iprelay state and units stay unseen (tests/sdbox -r).
"$top/tests/sdbox" -d "$box" up -b "$top" -b "$work" -r /var/lib/iprelay \
	-r '/etc/systemd/system/iprelay-*' -r '/etc/systemd/system/*.wants/iprelay-*' >&2 || exit 111
"$top/tests/sdbox" -d "$box" run bash "$top/bench/systemd-cps.sh" --inside "$work" "$reps" ||
	{ echo "systemd-cps: fatal: the run inside failed" >&2; exit 111; }
load_end=$(cut -d' ' -f1-3 /proc/loadavg)
conn_link=dynamic
LC_ALL=C readelf -lW "$top/bin/iprelay-conn" 2>/dev/null | grep -q 'Requesting program interpreter' ||
	conn_link=static

report() {
	echo "# Connection cost under a running systemd (bench/systemd-cps.sh)"
	echo
	echo "$started UTC, $(nproc) CPUs, load average $load_start at the start, $load_end at the end;"
	echo "$(systemctl --version 2>/dev/null | head -1 | cut -d' ' -f1-2), inside a container booted by tests/sdbox; iprelay-conn linked $conn_link."
	echo "$reps repetitions interleaved, medians (min-max); $count connections back to back, $spaced with 30 ms between them."
	echo
	echo "| peer | connections/s | p50 added (ms) | p99 added (ms) | p50 added, 30 ms apart (ms) | failed |"
	echo "|---|---|---|---|---|---|"
	awk -F'\t' '
	function med(list,   n, a, i, j, t) {
		n = split(list, a, " ")
		for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++)
			if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
		lo = a[1]; hi = a[n]
		return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
	}
	{ rep = $1; peer = $2
	  if (!(peer in seen)) { seen[peer] = 1; order[++np] = peer }
	  rate[peer] = rate[peer] " " $3
	  p50[rep, peer] = $4; p99[rep, peer] = $5; s50[rep, peer] = $6
	  failed[peer] += $7; reps[rep] = 1 }
	END {
		for (k = 1; k <= np; k++) {
			peer = order[k]; a50 = a99 = as50 = ""
			for (rep in reps) {
				a50 = a50 " " (p50[rep, peer] - p50[rep, "direct"]) / 1000
				a99 = a99 " " (p99[rep, peer] - p99[rep, "direct"]) / 1000
				as50 = as50 " " (s50[rep, peer] - s50[rep, "direct"]) / 1000
			}
			r = med(rate[peer]); rl = lo; rh = hi
			if (peer == "direct") {
				printf "| direct (p50 %.2f ms, p99 %.2f ms, apart %.2f ms: the base) | %.1f (%.1f-%.1f) | - | - | - | %d |\n",
				    med(p50list("direct")) / 1000, med(p99list("direct")) / 1000,
				    med(s50list("direct")) / 1000, r, rl, rh, failed[peer]
				continue
			}
			m50 = med(a50); l50 = lo; h50 = hi
			m99 = med(a99)
			ms50 = med(as50); ls50 = lo; hs50 = hi
			printf "| %s | %.1f (%.1f-%.1f) | %.2f (%.2f-%.2f) | %.2f | %.2f (%.2f-%.2f) | %d |\n",
			    peer, r, rl, rh, m50, l50, h50, m99, ms50, ls50, hs50, failed[peer]
		}
	}
	function p50list(peer,   s, rep) { s = ""; for (rep in reps) s = s " " p50[rep, peer]; return s }
	function p99list(peer,   s, rep) { s = ""; for (rep in reps) s = s " " p99[rep, peer]; return s }
	function s50list(peer,   s, rep) { s = ""; for (rep in reps) s = s " " s50[rep, peer]; return s }
	' "$work/cps.tsv"
	echo
	echo "A limit change under the live systemd (forwarder at 512K, \`iprelay-limit set step 2M\` 3 s into a download; rate from 1 s after the change to 4 s after it):"
	echo
	echo "| repetition | before (B/s) | first second after | from 1 s after | error vs 2097152 |"
	echo "|---|---|---|---|---|"
	python3 - "$work/step.json" <<'PY'
import json, sys
for i, line in enumerate(open(sys.argv[1]), 1):
    r = json.loads(line)
    after = r.get("after_Bps", 0)
    print("| %d | %d | %d | %d | %+.2f%% |" % (i, r.get("before_Bps", 0), r.get("first_Bps", 0),
          after, (after - 2097152) / 2097152 * 100))
PY
}
mkdir -p "$out_dir"
report | tee "$out_dir/systemd-cps.md"
# The raw figures: repetition, peer, connections/s, p50, p99, p50 apart
# (microseconds), failures.
cp "$work/cps.tsv" "$out_dir/systemd-cps.tsv"
