#!/bin/bash
# The lease script of global limits (shaperd/lease.lua) on its own,
# called with redis-cli --eval against a private redis-server: weighted
# max-min shares from demand, headroom when every want is met, never more
# than the global rate less what the other hosts hold (also over a random
# run), a dead host's share freed within a lease, learning mode after
# Redis lost its state (and its early end once every known host has
# reported; the host count set put back), expiry stamped by Redis's clock,
# and its refusals.  Exact
# figures: the script is arithmetic, nothing here is timed tightly.
. "$IPRELAY_TOP/tests/lib.sh"

if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
	echo "1..0 # SKIP redis-server or redis-cli not installed (tests/deps.sh)"
	exit 0
fi
SCRIPT=${LEASE_LUA:-$IPRELAY_TOP/shaperd/lease.lua}

SOCK=$TEST_TMP/redis.sock
spawn redis-server --port 0 --unixsocket "$SOCK" --unixsocketperm 700 \
	--save '' --appendonly no --dir "$TEST_TMP" --logfile "$TEST_TMP/redis.log"
for _ in $(seq 100); do
	redis-cli -s "$SOCK" ping 2>/dev/null | grep -q PONG && break
	sleep 0.05
done
R() { redis-cli -s "$SOCK" "$@"; }
CFG='iprelay:{t}:cfg'
HOSTS='iprelay:{t}:hosts'
M=1000000

# lease HOST WEIGHT WANT_DOWN HAVE_DOWN [KNOWN [VERSION RATE_DOWN]]: one
# call as shaperd makes it (up unlimited); sets REPLY to the 12 fields
# joined by spaces and share, learning, target, hosts from them.
lease() {
	REPLY=$(R --eval "$SCRIPT" "$CFG" "$HOSTS" , "$1" "nonce$1" "$2" 0 "$3" 0 \
		"$4" "${6:-0}" 0 "${7:-0}" 0 lease "${5:-0}" | tr '\n' ' ')
	REPLY=${REPLY% }
	set -- $REPLY
	share=${2:-x}; nhosts=${4:-x}; learning=${9:-x}; target=${11:-x}
}
# Renew every host in turn, N rounds; the last share of each in S[host].
declare -A S W D
rounds() {
	local r h
	for r in $(seq "$1"); do
		for h in "${!W[@]}"; do
			lease "$h" "${W[$h]}" "${D[$h]}" "${S[$h]:-0}" "${#W[@]}"
			S[$h]=$share
		done
	done
}
# The shares the hosts hash holds now, summed (field 5: share down).
held_sum() {
	R hgetall "$HOSTS" | awk 'NR % 2 == 0 { s += $5 } END { print s + 0 }'
}
setcfg() { R hset "$CFG" rate_up 0 rate_down "$1" burst 0 lease_ms "$2" version "${3:-1}" >/dev/null; }

# Refusals.
lease h1 1 -1 0
like "$REPLY" "NOLIMIT" "no configuration and none cached: NOLIMIT"
setcfg $M 1000
REPLY=$(R --eval "$SCRIPT" "$CFG" "$HOSTS" , h1 'bad nonce' 1 0 -1 0 0 0 0 0 0 2>&1)
like "$REPLY" "BADARG" "a nonce that is not a word: BADARG"
REPLY=$(R --eval "$SCRIPT" "$CFG" "$HOSTS" , h1 n1 0 0 -1 0 0 0 0 0 0 2>&1)
like "$REPLY" "BADARG" "weight 0: BADARG"

# Never more than the global rate less what others hold: h1 alone takes
# everything; h2 joins backlogged and gets nothing until h1 has shrunk.
lease h1 1 -1 0 0
is "$share $nhosts" "$M 1" "one backlogged host is granted the whole rate"
lease h2 1 -1 0 1
is "$share $target" "0 500000" "a second backlogged host: target half, granted 0 while h1 holds all"
lease h1 1 -1 $M 2
is "$share" 500000 "h1 renews: its half"
lease h2 1 -1 0 2
is "$share" 500000 "h2 renews: its half now that h1 gave it back"
lease h1 1 -1 500000 2 7 0 0
like "$(R --eval "$SCRIPT" "$CFG" "$HOSTS" , h1 other 1 0 -1 0 0 0 0 0 0 2>&1)" "HOSTID" \
	"the same host id from another state dir (nonce): HOSTID"
R del "$HOSTS" >/dev/null

# Weighted max-min: h1 weight 3 and h2 weight 1 backlogged, h3 wants
# 100000 (under its fair part): h3 gets its want, h1 and h2 split the rest
# 3:1 (675000 / 225000).
W=([h1]=3 [h2]=1 [h3]=1); D=([h1]=-1 [h2]=-1 [h3]=100000); S=()
rounds 3
is "${S[h1]} ${S[h2]} ${S[h3]}" "675000 225000 100000" "weighted max-min: 675000/225000/100000 (weights 3, 1, want 100000)"
is "$(held_sum)" "$M" "the shares held in Redis add up to the global rate"
# Every want met: the rest is headroom by weight (100000 + 350000 and
# 200000 + 350000).
W=([h1]=1 [h2]=1); D=([h1]=100000 [h2]=200000)
R del "$HOSTS" >/dev/null; S=()
rounds 3
is "${S[h1]} ${S[h2]}" "450000 550000" "wants met: headroom by weight, 450000/550000"
# A want between: h1 wants 300000 of a fair 333333 with three hosts.
W=([h1]=1 [h2]=1 [h3]=1); D=([h1]=300000 [h2]=-1 [h3]=-1)
R del "$HOSTS" >/dev/null; S=()
rounds 3
is "${S[h1]} ${S[h2]} ${S[h3]}" "300000 350000 350000" "max-min: 300000 wanted, the two backlogged 350000 each"

# Random demands and weights, hosts renewing in random order: the shares
# Redis holds never add up past the global rate, and once demand stops
# moving they settle at the water-filling targets.
R del "$HOSTS" >/dev/null; S=(); worst=0; RANDOM=16
for step in $(seq 60); do
	h=h$((RANDOM % 4 + 1))
	w=$((RANDOM % 5 + 1))
	case $((RANDOM % 3)) in 0) d=-1 ;; 1) d=$((RANDOM * 10)) ;; *) d=$((RANDOM % 1000)) ;; esac
	lease "$h" "$w" "$d" "${S[$h]:-0}" 4
	S[$h]=$share
	sum=$(held_sum)
	[ "$sum" -gt "$worst" ] && worst=$sum
done
ok "60 random renewals by 4 hosts: the shares held never add up past the rate (largest sum $worst)" \
	test "$worst" -le "$M"

# A dead host's share is freed within a lease (Redis's clock), while the
# live host renews every 0.25 s.
R del "$HOSTS" >/dev/null
lease h1 1 -1 0 0; lease h2 1 -1 0 1; lease h1 1 -1 $M 2; lease h2 1 -1 0 2
is "$share" 500000 "two backlogged hosts at half each"
for _ in 1 2 3 4 5; do sleep 0.25; lease h1 1 -1 500000 2; done
is "$share $nhosts" "$M 1" "h2 silent for more than a lease (1 s) while h1 renews: h2's record is gone, h1 takes the whole rate"
# The expiry is Redis's TIME + lease; the caller sends no clock at all.
ms() { R time | tr '\n' ' ' | awk '{ printf "%.0f", $1 * 1000 + int($2 / 1000) }'; }
t0=$(ms); lease h1 1 -1 $M 1; t1=$(ms)
exp=$(R hget "$HOSTS" h1 | awk '{ print $6 }')
ok "the record's expiry is Redis's clock at the call + 1000 ms ($t0 <= $exp - 1000 <= $t1)" \
	awk -v e="$exp" -v a="$t0" -v b="$t1" 'BEGIN { exit !(e - 1000 >= a && e - 1000 <= b) }'

# Redis loses its state (FLUSHALL, as a restart without persistence): the
# first host puts back its cached configuration and learning mode grants
# nobody more than it enforces, until every host it knew has reported.
setcfg $M 1000
R del "$HOSTS" >/dev/null
W=([h1]=3 [h2]=1 [h3]=1); D=([h1]=-1 [h2]=-1 [h3]=100000); S=()
rounds 3
R flushall >/dev/null; R script flush >/dev/null
lease h2 1 -1 225000 3 4 $M
is "$share $learning" "225000 1" "after FLUSHALL: the first host is held to what it enforces (learning)"
is "$(R hget "$CFG" rate_down) $(R hget "$CFG" version)" "$M 4" "and put back its cached configuration"
# Learning lasts a lease (1 s restored) at most, and a host's record as
# long: both stretched to 20 s, and h2 renews under the longer lease, so
# that a machine too loaded to make the next calls within 1 s neither ends
# learning nor lets h2's record expire before h1 reports (a CI run at load
# 10 saw h1's call end nothing: h2 had expired, two of three were live).
stretch() { R hset "$CFG" learn_until $(( $(R time | head -1) * 1000 + 20000 )) lease_ms 20000 >/dev/null; }
stretch
lease h2 1 -1 225000 3 4 $M
lease h3 1 100000 100000 3 4 $M
is "$learning" 1 "two of the three known hosts reported: still learning"
lease h1 3 -1 675000 3 4 $M
is "$share $learning" "675000 0" "the third reports: learning ends, h1 keeps its 675000"
rounds 2
is "${S[h1]} ${S[h2]} ${S[h3]}" "675000 225000 100000" "shares as before the loss"
# Without a count of known hosts (an older shaperd), learning lasts the
# lease: a backlogged host that now enforces little stays there.
R flushall >/dev/null
lease h2 1 -1 100000 0 4 $M
stretch
lease h2 1 -1 100000 0 4 $M
is "$share $learning" "100000 1" "learning without a host count: no growth within the lease"
# Every record expired while the caller still enforces a share (Redis's
# clock jumped, or Redis was stopped longer than a lease): learning too.
setcfg $M 1000 5
R del "$HOSTS" >/dev/null; R hdel "$CFG" learn_until >/dev/null
lease h1 1 -1 0 0; lease h2 1 -1 0 1; lease h1 1 -1 $M 2; lease h2 1 -1 0 2
sleep 1.1
lease h1 1 -1 500000 2
is "$share $learning" "500000 1" "all records expired, caller enforcing 500000: learning, no growth"
lease h2 1 -1 500000 2
lease h1 1 -1 500000 2
is "$share $learning" "500000 0" "both known hosts reported: learning over"

# leave: the record goes at once.
lease h2 1 -1 500000 2
R --eval "$SCRIPT" "$CFG" "$HOSTS" , h2 nonceh2 1 0 -1 0 0 0 0 0 0 leave 0 >/dev/null
is "$(R hexists "$HOSTS" h2)" 0 "leave drops the host's record"

# The host count set with --hosts (argument 14) is put back with the
# configuration, for the hosts that join later; a bad one is refused.
R flushall >/dev/null
R --eval "$SCRIPT" "$CFG" "$HOSTS" , h1 nonceh1 1 0 -1 0 0 4 0 $M 0 lease 0 3 >/dev/null
is "$(R hget "$CFG" rate_down) $(R hget "$CFG" hosts)" "$M 3" "a restore puts back the host count set"
lease h1 1 -1 0
is "${REPLY##* }" 3 "and every lease answers it (the 12th field)"
like "$(R --eval "$SCRIPT" "$CFG" "$HOSTS" , h1 nonceh1 1 0 -1 0 0 4 0 $M 0 lease 0 1001)" \
	BADARG "a host count over 1000: BADARG"
done_testing
