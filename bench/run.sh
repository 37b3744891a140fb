#!/bin/bash
# bench/run.sh [--quick]: iprelay against the tools people use instead, on
# 127.0.0.1, in one run (bench/README.md says what each figure is and why).
# Writes bench/results/latest.md, bench/results/*.png and the raw values
# (bench/results/values.tsv: figure, peer, repetition, value).  Every figure
# is the median of REPS interleaved repetitions (A B C A B C ...), with min
# and max.  Needs root only for the tc netns peer (skipped otherwise).
#
# Environment: IPRELAY_BIN (default bin/), REPS (default 3), SCALE_CONNS
# (default 1000, 50 with --quick), BENCH_OUT (default bench/results;
# build/bench-quick with --quick, so a quick run never overwrites the
# committed full run),
# SECTIONS (default "throughput shaping nested reaction cps scale"),
# BENCH_KEEP=1 (keep the work dir), DYN_BIN (a dir with iprelay and a
# dynamically linked iprelay-conn, `make OUT=build/dyn CONN_LINK=dynamic`:
# the connection-cost section then also runs them, as iprelay-dyn and
# spawn-conn-dyn; `make bench` sets it).
set -u
TOP=$(cd "$(dirname "$0")/.." && pwd)
BIN=${IPRELAY_BIN:-$TOP/bin}
QUICK=
[ "${1:-}" = --quick ] && QUICK=1
REPS=${REPS:-3}
SECTIONS=${SECTIONS:-throughput shaping nested reaction cps scale}
want() { [[ " $SECTIONS " == *" $1 "* ]]; }
OUT=${BENCH_OUT:-$TOP/bench/results}
[ -n "$QUICK" ] && OUT=${BENCH_OUT:-$TOP/build/bench-quick}
if [ -n "$QUICK" ]; then
	SCALE_CONNS=${SCALE_CONNS:-50}
	VOLUME_B=$((64 << 20))
	CPS_COUNT=20
	CPS_SPACED_COUNT=5
	RATES="1048576"
	COUNTS="8"
	SHAPE_D=1; SHAPE_WIN="0.3 1"
	NEST_D=2
	REACT_D=1.5; REACT_AT=0.8
	SCALE_D=2; SCALE_WIN="0.8 2"; SCALE_MEM_AT=1
else
	SCALE_CONNS=${SCALE_CONNS:-1000}
	VOLUME_B=$((1 << 30))
	CPS_COUNT=300
	CPS_SPACED_COUNT=30
	RATES="512 65536 1048576 10485760 104857600"
	COUNTS="1 8 64"
	SHAPE_D=2; SHAPE_WIN="0.5 2"
	NEST_D=4.5
	REACT_D=4; REACT_AT=2
	SCALE_D=5; SCALE_WIN="1 5"; SCALE_MEM_AT=3.5
fi

WORK=$(mktemp -d /tmp/iprelay-bench.XXXXXX)
STATE=$WORK/state
mkdir -p "$STATE" "$OUT"
export IPRELAY_STATE_DIR=$STATE
export IPRELAY_LOG_FILE=$WORK/relay.log
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
VALUES=$WORK/values.tsv
NOTES=$WORK/notes
: >"$VALUES"
: >"$NOTES"
NETNS=
PIDS=()
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

cleanup() {
	local pid
	for pid in "${PIDS[@]}"; do
		kill "$pid" 2>/dev/null
	done
	sleep 0.2
	for pid in "${PIDS[@]}"; do
		kill -9 "$pid" 2>/dev/null
	done
	[ -n "$NETNS" ] && ip netns del "$NETNS" 2>/dev/null
	[ -n "${BENCH_KEEP:-}" ] && say "bench: kept $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# nap SECONDS: sleep without an exec (a sleep exec costs 10-40 ms on the
# loaded 2-core machine, and the bench polls): read with a timeout from a
# fifo that nothing writes to.
mkfifo "$WORK/nap"
exec {NAP_FD}<>"$WORK/nap"
nap() { read -r -t "$1" -u "$NAP_FD" _; return 0; }
say() { printf "%3ds %s\n" "$SECONDS" "$*" >&2; }
note() { printf '%s\n' "$*" >>"$NOTES"; say "note: $*"; }
# record FIGURE PEER VALUE: one repetition's value.
record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "${REP:-1}" "$3" >>"$VALUES"; }

# ---- the programs ---------------------------------------------------------

for p in iprelay-conn iprelay iprelay-limit shaperd; do
	[ -x "$BIN/$p" ] || { say "bench: fatal: $BIN/$p is not built (make build)"; exit 111; }
done
CONN=$BIN/iprelay-conn
LIMIT="$BIN/iprelay-limit -S $STATE"
# The tools are built once into build/bench-tools and rebuilt when their
# source changes (a compile is seconds of a quick run on the loaded machine).
TOOLS=$TOP/build/bench-tools
mkdir -p "$TOOLS" || exit 111
if ! [ "$TOOLS/bnet" -nt "$TOP/bench/tools/bnet.c" ]; then
	cc -std=c11 -Wall -Wextra -Werror -D_GNU_SOURCE -O2 -o "$TOOLS/bnet.$$" "$TOP/bench/tools/bnet.c" &&
	    mv -f "$TOOLS/bnet.$$" "$TOOLS/bnet" || exit 111
fi
if ! [ "$TOOLS/trivial" -nt "$TOP/bench/tools/trivial.c" ]; then
	rm -f "$TOOLS/trivial.dynamic"
	if ! cc -O2 -static -o "$TOOLS/trivial.$$" "$TOP/bench/tools/trivial.c" 2>/dev/null; then
		cc -O2 -o "$TOOLS/trivial.$$" "$TOP/bench/tools/trivial.c" || exit 111
		: >"$TOOLS/trivial.dynamic"
	fi
	mv -f "$TOOLS/trivial.$$" "$TOOLS/trivial" || exit 111
fi
[ -e "$TOOLS/trivial.dynamic" ] &&
	note "no static libc: the spawn floor is a dynamically linked program"
BNET=$TOOLS/bnet
have() { command -v "$1" >/dev/null 2>&1; }

# start LOG CMD...: run in the background, remember the pid in LAST.
start() {
	local log=$1
	shift
	"$@" >"$log" 2>&1 &
	LAST=$!
	PIDS+=("$LAST")
}
# alive PID: PID runs and is not a zombie.  bin/iprelay -d is init's
# child, and init here reaps it up to a second or two after it exits: a
# `kill -0` loop waited that long at every stop.
alive() {
	local stat
	{ read -r stat <"/proc/$1/stat"; } 2>/dev/null || return 1
	stat=${stat##*) }
	[ "${stat%% *}" != Z ]
}
# Shell builtins only where the bench loops: every sed, seq or grep is an
# exec, 10-30 ms on the loaded 2-core machine (make bench-quick ran
# about 500 of them).
# field NAME TEXT: the value of TEXT's NAME=VALUE line.
field() {
	local line
	while IFS= read -r line; do
		[[ $line == "$1="* ]] && { printf '%s\n' "${line#*=}"; return; }
	done <<<"$2"
}
# stop PID: TERM, wait a moment, KILL.
stop() {
	local pid=$1 i
	kill "$pid" 2>/dev/null
	for ((i = 0; i < 50; i++)); do
		alive "$pid" || break
		nap 0.02
	done
	kill -9 "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
}
# The sockets of this host: /proc/net/tcp and tcp6, read by the shell
# itself (an ss costs 50-90 ms an exec on the loaded machine, and the quick
# run made 140); ports in hex, "0A" is LISTEN.
# free_port: a port nothing on this host listens on or is connected from
# (random in 20000-59999).
free_port() {
	local port hex sockets
	while :; do
		port=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
		printf -v hex '%04X' "$port"
		sockets=$(</proc/net/tcp)$(</proc/net/tcp6)
		[[ $sockets == *":$hex "* ]] || break
	done
	echo "$port"
}
wait_file() {
	local i
	for ((i = 0; i < 200; i++)); do [ -s "$1" ] && return 0; nap 0.05; done
	return 1
}
# wait_listen PORT [NETNS]: until something listens on PORT, any address
# (bin/iprelay binds the wildcard); from the socket table, so that no probe
# connection reaches a relay and draws from a limit.
wait_listen() {
	local i hex sockets
	printf -v hex '%04X' "$1"
	for ((i = 0; i < 200; i++)); do
		if [ -n "${2:-}" ]; then
			[ -n "$(ip netns exec "$2" ss -Hltn "sport = :$1" 2>/dev/null)" ] && return 0
		else
			sockets=$(</proc/net/tcp)$(</proc/net/tcp6)
			[[ $sockets == *":$hex 00000000:0000 0A "* ||
			    $sockets == *":$hex 00000000000000000000000000000000:0000 0A "* ]] && return 0
		fi
		nap 0.025
	done
	say "bench: nothing listens on port $1"
	return 1
}

HZ=$(getconf CLK_TCK)
# cpu_tree PID: user+sys seconds of PID and every live descendant,
# including the children they have reaped (cutime, cstime).
cpu_tree() {
	# In BEGIN with getline: a process that ends between the glob and
	# the read must not stop awk (it would print nothing).
	awk -v root="$1" -v hz="$HZ" 'BEGIN {
		for (i = 1; i < ARGC; i++) {
			if ((getline line < ARGV[i]) <= 0) continue
			close(ARGV[i])
			pid = line; sub(/ .*/, "", pid)
			sub(/^.*\) /, "", line); split(line, f, " ")
			ppid[pid] = f[2]; t[pid] = f[12] + f[13] + f[14] + f[15]
		}
		sum = 0
		for (p in t) {
			q = p; n = 0
			while (q != "" && q != root && q + 0 > 1 && n++ < 64) q = ppid[q]
			if (q == root) sum += t[p]
		}
		printf "%.3f\n", sum / hz
	}' /proc/[0-9]*/stat
}

# ---- the origin, the refiller ---------------------------------------------

start "$WORK/origin.log" "$BNET" serve -P "$WORK/origin.port" -m source
wait_file "$WORK/origin.port" || exit 111
ORIGIN=127.0.0.1:$(cat "$WORK/origin.port")
start "$WORK/reply.log" "$BNET" serve -P "$WORK/reply.port" -m reply
wait_file "$WORK/reply.port" || exit 111
REPLY=127.0.0.1:$(cat "$WORK/reply.port")
start "$WORK/shaperd.log" "$BIN/shaperd" -S "$STATE"
SHAPERD_PID=$LAST
nap 0.3

# ---- the peers --------------------------------------------------------------
# peer_start PEER TARGET [RATE N LIMITNAME]: a relay of kind PEER on a free
# port to TARGET; sets PORT and ROOT (the pid whose tree is the relay).
# RATE (bytes/s for all N connections together) shapes where PEER can.

NGINX_MOD=
for m in /usr/lib/nginx/modules/ngx_stream_module.so; do [ -f "$m" ] && NGINX_MOD=$m; done

peer_start() {
	local peer=$1 target=$2 rate=${3:-0} n=${4:-1} limit=${5:-} conf
	ROOT=
	if [ "$peer" = direct ]; then
		PORT=${target##*:}
		return 0
	fi
	PORT=$(free_port)
	case $peer in
	iprelay-conn)	# systemd-socket-activate --accept: the socket on fd 3
		start "$WORK/sa.log" systemd-socket-activate --accept \
		    -l "127.0.0.1:$PORT" -E IPRELAY_STATE_DIR -E IPRELAY_LOG_FILE \
		    "$CONN" -S "$STATE" ${limit:+-l "$limit"} "$target" ;;
	iprelay-conn-nostore)	# the same with a state dir it cannot open:
		# it relays unregistered, which prices the store per connection
		start "$WORK/sa.log" systemd-socket-activate --accept \
		    -l "127.0.0.1:$PORT" "$CONN" -S /proc/iprelay-bench-none "$target" ;;
	inetd)		# openbsd-inetd, nowait, fd 0 and 1
		printf '127.0.0.1:%s stream tcp4 nowait %s %s iprelay-conn -S %s %s\n' \
		    "$PORT" "$(id -un)" "$CONN" "$STATE" "$target" >"$WORK/inetd.conf"
		start "$WORK/inetd.log" /usr/sbin/inetd -i -E -R 1000000 "$WORK/inetd.conf" ;;
	iprelay|iprelay-dyn)	# the classic command, daemonised, its own
		# limit; iprelay-dyn: the one in DYN_BIN, whose iprelay-conn
		# beside it is linked dynamically
		rm -f "$WORK/iprelay.pid"
		local bopt=() ibin=$BIN
		[ "$peer" = iprelay-dyn ] && ibin=$DYN_BIN
		[ "$rate" != 0 ] && bopt=(-b "$rate")
		"$ibin/iprelay" -d -p "$WORK/iprelay.pid" -S "$STATE" \
		    -n "${limit:-bench-iprelay}" -m $((SCALE_CONNS + 100)) \
		    "${bopt[@]}" "$PORT:$target" >"$WORK/iprelay.log" 2>&1 || {
			say "bench: iprelay did not start: $(cat "$WORK/iprelay.log")"; return 1; }
		wait_file "$WORK/iprelay.pid" || return 1
		LAST=$(cat "$WORK/iprelay.pid")
		PIDS+=("$LAST") ;;
	haproxy)
		cat >"$WORK/haproxy.cfg" <<-EOF
		global
			maxconn 4000
		defaults
			mode tcp
			timeout connect 10s
			timeout client 60s
			timeout server 60s
		listen bench
			bind 127.0.0.1:$PORT
			server origin $target
		EOF
		start "$WORK/haproxy.log" haproxy -db -f "$WORK/haproxy.cfg" ;;
	nginx|nginx-rate)
		mkdir -p "$WORK/nginx"
		conf="proxy_pass $target;"
		# nginx shapes each connection on its own: the total over n.
		[ "$peer" = nginx-rate ] && conf="$conf proxy_download_rate $((rate / n));"
		cat >"$WORK/nginx/nginx.conf" <<-EOF
		load_module $NGINX_MOD;
		pid $WORK/nginx/nginx.pid;
		error_log $WORK/nginx/error.log;
		worker_rlimit_nofile 65536;
		events { worker_connections 16384; }
		stream { server { listen 127.0.0.1:$PORT; $conf } }
		EOF
		start "$WORK/nginx.log" nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" \
		    -g 'daemon off;' ;;
	socat)
		start "$WORK/socat.log" socat \
		    "TCP-LISTEN:$PORT,bind=127.0.0.1,fork,reuseaddr,backlog=1024" \
		    "TCP:$target" ;;
	*)
		say "bench: no peer $peer"; return 1 ;;
	esac
	ROOT=$LAST
	wait_listen "$PORT"
}
peer_stop() {
	[ -n "$ROOT" ] && stop "$ROOT"
	ROOT=
}
peer_available() {
	case $1 in
	haproxy) have haproxy ;;
	nginx|nginx-rate) have nginx && [ -n "$NGINX_MOD" ] ;;
	socat) have socat ;;
	trickle) have trickle ;;
	inetd) [ -x /usr/sbin/inetd ] ;;
	iprelay-dyn) [ -n "${DYN_BIN:-}" ] && [ -x "$DYN_BIN/iprelay" ] && [ -x "$DYN_BIN/iprelay-conn" ] ;;
	*) return 0 ;;
	esac
}
available() {
	local p list=
	for p in "$@"; do
		if peer_available "$p"; then list="$list $p"
		else note "$p is not installed (bench/deps.sh): left out"; fi
	done
	echo $list
}

# The tc peer: a network namespace with only loopback, a tbf on it, and its
# own origin inside.  Everything on lo crosses the qdisc, headers and ACKs
# included, so its payload rate is below the configured rate.
TC_OK=
if [ "$(id -u)" = 0 ] && have ip && have tc; then
	NETNS=iprelay-bench-$$
	if ip netns add "$NETNS" 2>/dev/null &&
	    ip -n "$NETNS" link set lo mtu 1500 up 2>/dev/null; then
		start "$WORK/tc-origin.log" ip netns exec "$NETNS" "$BNET" serve \
		    -P "$WORK/tc-origin.port" -m source
		wait_file "$WORK/tc-origin.port" && TC_OK=1
		TC_ORIGIN=127.0.0.1:$(cat "$WORK/tc-origin.port")
	else
		NETNS=
	fi
fi
[ -n "$TC_OK" ] || note "tc tbf: no network namespace here (needs root and ip/tc): left out"
tc_set() {	# tc_set RATE: a tbf of RATE bytes/s (lo MTU 1500)
	local burst=$(($1 / 10))
	[ "$burst" -lt 3100 ] && burst=3100
	ip netns exec "$NETNS" tc qdisc replace dev lo root tbf \
	    rate "$(($1 * 8))bit" burst "$burst" latency 1s
}

# ---- 1. unshaped throughput and CPU per GiB ---------------------------------
if want throughput; then

say "== unshaped throughput, 1 connection, $((VOLUME_B >> 20)) MiB each"
THRU_PEERS=$(available direct iprelay-conn iprelay haproxy nginx socat)
for REP in $(seq "$REPS"); do
	for peer in $THRU_PEERS; do
		peer_start "$peer" "$ORIGIN" || continue
		cpu0=0
		[ -n "$ROOT" ] && cpu0=$(cpu_tree "$ROOT")
		# The relay's CPU is read once every byte has arrived, while
		# the connection (so a per-connection relay) still lives.
		rm -f "$WORK/hold"
		"$BNET" bulk -s "$VOLUME_B" -k "$WORK/hold" "127.0.0.1:$PORT" >"$WORK/bulk.out" &
		bpid=$!
		for ((i = 0; i < 3000; i++)); do
			[ -e "$WORK/hold" ] || ! kill -0 "$bpid" 2>/dev/null && break
			nap 0.01
		done
		[ -n "$ROOT" ] && cpu1=$(cpu_tree "$ROOT")
		rm -f "$WORK/hold"
		wait "$bpid"
		rate=$(field rate "$(<"$WORK/bulk.out")")
		read -r mib cpu <<<"$(awk -v r="$rate" -v a="$cpu0" -v b="${cpu1:-0}" -v v="$VOLUME_B" \
		    'BEGIN { printf "%.1f %.3f\n", r / 1048576, (b - a) * 1073741824 / v }')"
		[ -n "$ROOT" ] && record cpu_per_gib "$peer" "$cpu"
		record throughput "$peer" "$mib"
		say "  rep $REP $peer: ${mib%.*} MiB/s"
		peer_stop
	done
done
fi

# ---- 2. shaping accuracy, first-second burst, fairness ----------------------
if want shaping; then

# shaped RATE N PEER: one run; records accuracy, burst (and jain for N > 1).
SHAPE_SEQ=0
shaped() {
	local rate=$1 n=$2 peer=$3 target=$ORIGIN out name pre= recv_args
	SHAPE_SEQ=$((SHAPE_SEQ + 1))
	name=acc$SHAPE_SEQ
	recv_args=(-n "$n" -d "$SHAPE_D" -w $SHAPE_WIN -T "$WORK/tl.$peer.$rate.$n.$REP"
	    -R "$WORK/rates.$peer.$rate.$n.$REP")
	case $peer in
	iprelay-conn)
		$LIMIT set "$name" "$rate" >/dev/null || return 1
		peer_start iprelay-conn "$ORIGIN" "$rate" "$n" "$name" || return 1
		out=$("$BNET" recv "${recv_args[@]}" "127.0.0.1:$PORT")
		peer_stop
		$LIMIT del "$name" >/dev/null 2>&1 ;;
	nginx-rate)
		peer_start nginx-rate "$ORIGIN" "$rate" "$n" || return 1
		out=$("$BNET" recv "${recv_args[@]}" "127.0.0.1:$PORT")
		peer_stop ;;
	tc)
		tc_set "$rate" || return 1
		out=$(ip netns exec "$NETNS" "$BNET" recv "${recv_args[@]}" "$TC_ORIGIN")
		ip netns exec "$NETNS" tc qdisc del dev lo root 2>/dev/null ;;
	trickle)
		# trickle counts KiB/s, whole numbers; it wraps recv() but
		# not epoll, so one blocking connection.
		# It delays each recv() by the size asked: ask 50 ms' worth.
		out=$(trickle -s -d $((rate / 1024)) -u $((rate / 1024)) \
		    "$BNET" recv -B -b $((rate / 20 > 262144 ? 262144 : rate / 20)) "${recv_args[@]}" "$ORIGIN" 2>/dev/null) ;;
	esac
	local total first jain
	total=$(field total "$out")
	first=$(field first_sec "$out")
	jain=$(field jain "$out")
	[ -n "$total" ] || { say "  $peer $rate x$n: no result"; return 1; }
	local acc burst
	read -r acc burst <<<"$(awk -v t="$total" -v f="$first" -v r="$rate" \
	    'BEGIN { printf "%.4f %.4f\n", t / r, f / (r * 1.1) }')"
	record "accuracy $rate $n" "$peer" "$acc"
	record "burst $rate $n" "$peer" "$burst"
	[ "$n" -gt 1 ] && record "jain $rate $n" "$peer" "$jain"
	say "  rep $REP $peer $rate B/s x$n: $acc of target, jain $jain"
}

say "== shaping accuracy"
SHAPE_PEERS="iprelay-conn $(available nginx-rate trickle)"
[ -n "$TC_OK" ] && SHAPE_PEERS="$SHAPE_PEERS tc"
for REP in $(seq "$REPS"); do
	for rate in $RATES; do
		for n in $COUNTS; do
			for peer in $SHAPE_PEERS; do
				if [ "$peer" = trickle ] && { [ "$n" != 1 ] || [ "$rate" -lt 1024 ]; }; then
					continue
				fi
				# A tbf under 64 KiB/s holds a 1514-byte packet for
				# seconds: the handshake itself times out.
				[ "$peer" = tc ] && [ "$rate" -lt 65536 ] && continue
				shaped "$rate" "$n" "$peer"
			done
		done
	done
done
[[ " $SHAPE_PEERS " == *" trickle "* ]] &&
	note "trickle: one connection only (it wraps recv() and select/poll, not epoll; standalone mode shapes one process), and whole KiB/s only (no 512 B/s)"
note "nginx: proxy_download_rate is per connection, so it was set to the total divided by the number of connections"
[ -n "$TC_OK" ] && note "tc tbf counts every packet on lo (headers and ACKs), so its payload rate is under the configured rate (more so at low rates); not run under 64 KiB/s, where one 1514-byte packet takes seconds and connections time out"
fi

# ---- 3. nested limits -------------------------------------------------------
if want nested; then

say "== nested limits: child 1024 B/s in parent 3072 B/s, busy sibling"
for REP in $(seq "$REPS"); do
	$LIMIT set "np$REP" 3072 >/dev/null
	$LIMIT set "nc$REP" 1024 --parent "np$REP" >/dev/null
	$LIMIT set "ns$REP" 0 --parent "np$REP" >/dev/null
	peer_start iprelay-conn "$ORIGIN" 0 1 "nc$REP"; child_root=$ROOT child_port=$PORT
	peer_start iprelay-conn "$ORIGIN" 0 1 "ns$REP"; sib_root=$ROOT sib_port=$PORT
	"$BNET" recv -d "$NEST_D" -w 0.5 "$NEST_D" "127.0.0.1:$child_port" >"$WORK/nest.child" &
	cpid=$!
	"$BNET" recv -d "$NEST_D" -w 0.5 "$NEST_D" "127.0.0.1:$sib_port" >"$WORK/nest.sib"
	wait "$cpid"
	c=$(field total "$(<"$WORK/nest.child")")
	s=$(field total "$(<"$WORK/nest.sib")")
	record "nested child" iprelay-conn "$(awk -v c="$c" 'BEGIN { printf "%.4f", c / 1024 }')"
	record "nested total" iprelay-conn "$(awk -v c="$c" -v s="$s" 'BEGIN { printf "%.4f", (c + s) / 3072 }')"
	say "  rep $REP child $c B/s, sibling $s B/s"
	stop "$child_root"; stop "$sib_root"
	$LIMIT del "nc$REP" >/dev/null; $LIMIT del "ns$REP" >/dev/null; $LIMIT del "np$REP" >/dev/null
done
fi

# ---- 4. reaction to iprelay-limit set ----------------------------------------
if want reaction; then

say "== reaction: 64 KiB/s, then iprelay-limit set 256K"
for REP in $(seq "$REPS"); do
	$LIMIT set "re$REP" 64K >/dev/null
	peer_start iprelay-conn "$ORIGIN" 0 1 "re$REP"
	out=$("$BNET" recv -d "$REACT_D" -w 0.3 "$REACT_AT" -x "$REACT_AT" "$LIMIT set re$REP 256K" \
	    -T "$WORK/tl.reaction.$REP" "127.0.0.1:$PORT")
	peer_stop
	$LIMIT del "re$REP" >/dev/null
	eval "$(grep -E '^(reaction_ms|after_rate|before_rate|run_start|run_end)=' <<<"$out")"
	record reaction_ms iprelay-conn "$reaction_ms"
	record "reaction after" iprelay-conn "$(awk -v a="$after_rate" 'BEGIN { printf "%.4f", a / 262144 }')"
	echo "$run_start $run_end" >"$WORK/run.reaction.$REP"
	say "  rep $REP: reaction $reaction_ms ms, before $before_rate, after $after_rate B/s"
done
fi

# ---- 5. connection cost -------------------------------------------------------
if want cps; then

say "== connection cost: $CPS_COUNT short connections one after another"
# iprelay-conn-nostore prices the store (a diagnosis, no aim): not in quick runs.
nostore=iprelay-conn-nostore
[ -n "$QUICK" ] && nostore=
CPS_PEERS=$(available direct iprelay ${DYN_BIN:+iprelay-dyn} inetd iprelay-conn $nostore socat haproxy)
# How iprelay-conn is linked (Makefile CONN_LINK): no PT_INTERP, no ld.so.
conn_link() {
	if ! LC_ALL=C readelf -lW "$1" 2>/dev/null | grep -q 'Requesting program interpreter'; then
		LC_ALL=C readelf -hW "$1" 2>/dev/null | grep -q 'Type:.*DYN' && echo static-pie || echo static
	else
		echo dynamic
	fi
}
note "iprelay-conn ($CONN) is linked $(conn_link "$CONN")${DYN_BIN:+; iprelay-dyn and spawn-conn-dyn: $DYN_BIN, iprelay-conn linked $(conn_link "$DYN_BIN/iprelay-conn")}"
SPAWNS="spawn-floor:$TOOLS/trivial spawn-conn:$CONN"
peer_available iprelay-dyn && SPAWNS="$SPAWNS spawn-conn-dyn:$DYN_BIN/iprelay-conn"
for REP in $(seq "$REPS"); do
	# The floor, and iprelay-conn itself exiting at its usage line: exec,
	# linking and start-up, no store and no sockets.
	for s in $SPAWNS; do
		out=$("$BNET" spawn -n "$CPS_COUNT" "${s#*:}" 2>/dev/null)
		record "cps rate" "${s%%:*}" "$(field rate "$out")"
		record "cps p50 added" "${s%%:*}" "$(field p50_us "$out")"
		record "cps p99 added" "${s%%:*}" "$(field p99_us "$out")"
	done
	for peer in $CPS_PEERS; do
		peer_start "$peer" "$REPLY" || continue
		out=$("$BNET" cps -n "$CPS_COUNT" "127.0.0.1:$PORT")
		# The same apart (30 ms between connections): the latency a
		# client sees when connections do not queue behind each other.
		spaced=$("$BNET" cps -n "$CPS_SPACED_COUNT" -g 30 "127.0.0.1:$PORT")
		peer_stop
		s50=$(field p50_us "$spaced")
		if [ "$peer" = direct ]; then
			direct_s50=$s50
			record "cps spaced p50" direct "$s50"
		else
			record "cps spaced p50 added" "$peer" \
			    "$(awk -v a="$s50" -v b="$direct_s50" 'BEGIN { printf "%.1f", a - b }')"
		fi
		p50=$(field p50_us "$out")
		p99=$(field p99_us "$out")
		record "cps rate" "$peer" "$(field rate "$out")"
		if [ "$peer" = direct ]; then
			direct_p50=$p50 direct_p99=$p99
			record "cps p50" direct "$p50"
			record "cps p99" direct "$p99"
		else
			read -r a50 a99 <<<"$(awk -v a="$p50" -v b="$direct_p50" -v c="$p99" -v d="$direct_p99" \
			    'BEGIN { printf "%.1f %.1f\n", a - b, c - d }')"
			record "cps p50 added" "$peer" "$a50"
			record "cps p99 added" "$peer" "$a99"
		fi
		say "  rep $REP $peer: $(field rate "$out") conn/s, p50 $p50 us, p99 $p99 us"
	done
done
fi

# ---- 6. scale: SCALE_CONNS shaped connections through bin/iprelay -----------
SCALE_RATE=$((SCALE_CONNS * 8192))
if want scale; then

say "== scale: $SCALE_CONNS connections on one limit of $SCALE_RATE B/s (bin/iprelay)"
for REP in $(seq "$REPS"); do
	peer_start iprelay "$ORIGIN" "$SCALE_RATE" "$SCALE_CONNS" "scale$REP" || continue
	cpu0=$(cpu_tree "$SHAPERD_PID"); t0=$(date +%s.%N)
	# Spawning a thousand relays takes seconds: wait up to 120 s for the
	# last one's first byte.
	"$BNET" recv -n "$SCALE_CONNS" -d "$SCALE_D" -w $SCALE_WIN -s 120 \
	    -R "$WORK/rates.scale.$REP" "127.0.0.1:$PORT" >"$WORK/scale.out" &
	rpid=$!
	# Memory while every relay runs: private bytes of each iprelay-conn
	# (one awk for all: a relay may end between pgrep and the read).
	nap "$SCALE_MEM_AT"
	for ((i = 0; i < 100; i++)); do
		[ "$(pgrep -c -P "$ROOT")" -ge "$SCALE_CONNS" ] && break
		nap 0.1
	done
	pgrep -P "$ROOT" | awk '{
		f = "/proc/" $1 "/smaps_rollup"; s = ""
		while ((getline line < f) > 0)
			if (line ~ /^Private_(Clean|Dirty):/) { split(line, a, " "); s += a[2] }
		close(f)
		if (s != "") print s
	}' | sort -n >"$WORK/mem.$REP"
	wait "$rpid"
	cpu1=$(cpu_tree "$SHAPERD_PID"); t1=$(date +%s.%N)
	scale_out=$(<"$WORK/scale.out")
	total=$(field total "$scale_out")
	jain=$(field jain "$scale_out")
	started=$(field started "$scale_out")
	record "scale accuracy" iprelay "$(awk -v t="$total" -v r="$SCALE_RATE" 'BEGIN { printf "%.4f", t / r }')"
	record "scale jain" iprelay "$jain"
	record "scale started" iprelay "$started"
	record "scale first second" iprelay "$(awk -v f="$(field first_sec "$scale_out")" -v r="$SCALE_RATE" 'BEGIN { printf "%.4f", f / (r * 1.1) }')"
	record "scale t0" iprelay "$(field t0 "$scale_out")"
	record "scale shaperd cpu" iprelay "$(awk -v a="$cpu0" -v b="$cpu1" -v s="$t0" -v e="$t1" \
	    'BEGIN { printf "%.4f", (b - a) / (e - s) }')"
	record "scale relay private KiB" iprelay "$(awk '{ v[NR] = $1 } END { print NR ? v[int((NR + 1) / 2)] : "" }' "$WORK/mem.$REP")"
	say "  rep $REP: $started started, $total B/s, jain $jain, memory median $(awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }' "$WORK/mem.$REP") KiB"
	peer_stop
	$LIMIT del "scale$REP" >/dev/null 2>&1
done
fi

# ---- results ----------------------------------------------------------------

cp "$VALUES" "$OUT/values.tsv"
LOAD_START="$LOAD_START" LOAD_END="$(cut -d' ' -f1-3 /proc/loadavg)" \
    QUICK="$QUICK" REPS="$REPS" SCALE_CONNS="$SCALE_CONNS" SCALE_RATE="$SCALE_RATE" \
    VOLUME_B="$VOLUME_B" CPS_COUNT="$CPS_COUNT" CPS_SPACED_COUNT="$CPS_SPACED_COUNT" \
    bash "$TOP/bench/report.sh" "$VALUES" "$NOTES" >"$OUT/latest.md"

# Plots: the median repetition's files are as good as any; take rep 1.
if have gnuplot; then
	plot_rate=1048576
	[ -n "$QUICK" ] && plot_rate=1048576
	sh "$TOP/bench/plots.sh" "$WORK" "$OUT" "$plot_rate" "$SCALE_CONNS" 2>"$WORK/gnuplot.err" ||
		say "bench: plots failed: $(cat "$WORK/gnuplot.err")"
else
	say "bench: gnuplot is not installed (bench/deps.sh): no plots"
fi
say "bench: wrote $OUT/latest.md"
