"""Run a relay as inetd would, on one real TCP connection, and print its
exit status (128+N for signal N, "timeout" when it outlived the limit).

usage: launch-inetd.py SECONDS PROGRAM ARGS...   ("REMOTE" in ARGS becomes
127.0.0.1:PORT of a listener that queues connections and never reads).
The client socket is fd 0 and 1; stderr goes to /dev/null, as fd 2 may be
the client under inetd and a relay must never write there.
"""
import socket
import subprocess
import sys

seconds = float(sys.argv[1])
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(1)
remote = socket.socket()
remote.bind(("127.0.0.1", 0))
remote.listen(8)
client = socket.create_connection(listener.getsockname())
conn, _ = listener.accept()
remote_word = "127.0.0.1:%d" % remote.getsockname()[1]
args = [arg.replace("REMOTE", remote_word) for arg in sys.argv[2:]]
proc = subprocess.Popen(args, stdin=conn.fileno(), stdout=conn.fileno(),
                        stderr=subprocess.DEVNULL)
conn.close()
try:
    status = proc.wait(timeout=seconds)
except subprocess.TimeoutExpired:
    proc.terminate()
    try:
        proc.wait(timeout=3)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    print("timeout")
    sys.exit(0)
print(status if status >= 0 else 128 - status)
