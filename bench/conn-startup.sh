#!/bin/bash
# bench/conn-startup.sh [ROUNDS]: what starting iprelay-conn costs.
#  1. posix_spawn + wait of bin/iprelay-conn with a bad option (it exits
#     100 after parsing) against a trivial static and a trivial dynamic C
#     program: the exec and dynamic-linking cost every connection pays.
#  2. one connection at a time (connect, 16 bytes each way, close) direct
#     to an origin and through tcpserver + iprelay-conn (with its store
#     registration): what a client sees.
# Prints the best of ROUNDS (default 5) rounds: on a shared machine the
# minimum is the figure least disturbed by other load.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
rounds=${1:-5}
# IPRELAY_BIN: where iprelay-conn is (default bin/; build/dyn/bin after
# `make OUT=build/dyn CONN_LINK=dynamic build/dyn/bin/iprelay-conn`).
bin=${IPRELAY_BIN:-$top/bin}
work=$(mktemp -d /tmp/conn-startup.XXXXXX)
pids=
trap 'for p in $pids; do kill $p 2>/dev/null || :; done; rm -rf "$work"' EXIT

cat >"$work/spawnbench.c" <<'EOF'
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
extern char **environ;
int
main(int argc, char **argv)
{
	posix_spawn_file_actions_t actions;
	struct timespec t0, t1;
	int count = atoi(argv[1]), status;
	pid_t pid;

	(void)argc;
	posix_spawn_file_actions_init(&actions);
	posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < count; i++) {
		if (posix_spawn(&pid, argv[2], &actions, NULL, argv + 2, environ))
			return 1;
		waitpid(pid, &status, 0);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("%.0f\n", ((t1.tv_sec - t0.tv_sec) * 1e9 +
	    (t1.tv_nsec - t0.tv_nsec)) / count / 1e3);
	return 0;
}
EOF
printf 'int main(void) { return 0; }\n' >"$work/trivial.c"
cc -O2 -o "$work/spawnbench" "$work/spawnbench.c"
cc -O2 -static -o "$work/trivial-static" "$work/trivial.c"
cc -O2 -o "$work/trivial-dynamic" "$work/trivial.c"

best() { sort -n | head -n1; }
export IPRELAY_LOG_FILE=$work/relay.log IPRELAY_STATE_DIR=$work/state
for name in trivial-static trivial-dynamic iprelay-conn; do
	if [ $name = iprelay-conn ]; then
		cmd=("$bin/iprelay-conn" -x)
	else
		cmd=("$work/$name")
	fi
	us=$(for _ in $(seq "$rounds"); do "$work/spawnbench" 200 "${cmd[@]}"; done | best)
	echo "spawn $name: $us us"
done

cat >"$work/pingpong.py" <<'EOF'
import socket, sys, time
port, count = int(sys.argv[1]), int(sys.argv[2])
t0 = time.monotonic()
for _ in range(count):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"0123456789abcdef")
    s.shutdown(socket.SHUT_WR)
    got = b""
    while True:
        b = s.recv(64)
        if not b:
            break
        got += b
    s.close()
    assert got == b"0123456789abcdef", got
print("%.0f" % ((time.monotonic() - t0) / count * 1e6))
EOF
cat >"$work/echo.py" <<'EOF'
import socket, sys, threading
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", 0)); ls.listen(128)
print(ls.getsockname()[1], flush=True)
def serve(c):
    while True:
        b = c.recv(65536)
        if not b:
            break
        c.sendall(b)
    c.close()
while True:
    c, _ = ls.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
EOF
python3 "$work/echo.py" >"$work/echo.port" &
pids="$pids $!"
for _ in $(seq 100); do [ -s "$work/echo.port" ] && break; sleep 0.05; done
origin=$(cat "$work/echo.port")
relay=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
tcpserver -q -H -R -l localhost 127.0.0.1 "$relay" \
    "$bin/iprelay-conn" "127.0.0.1:$origin" &
pids="$pids $!"
# The same relay with no usable state store: what LMDB costs a connection.
nostore=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
IPRELAY_STATE_DIR=/dev/null/none tcpserver -q -H -R -l localhost 127.0.0.1 \
    "$nostore" "$bin/iprelay-conn" "127.0.0.1:$origin" &
pids="$pids $!"
sleep 0.5
direct=$(for _ in $(seq "$rounds"); do python3 "$work/pingpong.py" "$origin" 100; done | best)
through=$(for _ in $(seq "$rounds"); do python3 "$work/pingpong.py" "$relay" 100; done | best)
bare=$(for _ in $(seq "$rounds"); do python3 "$work/pingpong.py" "$nostore" 100; done | best)
echo "connection direct: $direct us"
echo "connection through tcpserver + iprelay-conn: $through us"
echo "the same without a state store: $bare us"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
