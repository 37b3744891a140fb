#!/usr/bin/env python3
"""Three origins in one process, for tests and benches of shaping under
contention: an echo server (TCP_NODELAY, every byte sent back at once), a
source sending without end, a sink reading and discarding, and a reply
server answering 16 bytes with 1 KiB and closing.

  origins.py --port-file F [--stats-port-file G]

Listens on four free ports of 127.0.0.1 and writes "ECHO SEND SINK REPLY"
to F.  With --stats-port-file, a fifth port (written to G) answers every
connection with one JSON line and closes it: {"sinks": [[[T, BYTES], ...],
...]}, for each sink connection opened since the last answer, its
cumulative bytes received at CLOCK_MONOTONIC seconds T (one sample per
10 ms at most; uploads are counted where they arrive, on the clock the
clients read too).
One select loop, non-blocking sockets, one 256 KiB buffer of random bytes
sent again and again (fast enough for 100 MiB/s on a loaded machine).
"""
import argparse, json, os, selectors, socket, time


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port-file", required=True)
    p.add_argument("--stats-port-file")
    a = p.parse_args()
    sinks = {}
    sel = selectors.DefaultSelector()
    data = os.urandom(262144)
    ports, asked = [], {}
    for kind in ("echo", "send", "sink", "reply"):
        ls = socket.socket()
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("127.0.0.1", 0))
        ls.listen(512)
        ls.setblocking(False)
        sel.register(ls, selectors.EVENT_READ, ("listen", kind))
        ports.append(str(ls.getsockname()[1]))
    if a.stats_port_file:
        ls = socket.socket()
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("127.0.0.1", 0))
        ls.listen(16)
        sel.register(ls, selectors.EVENT_READ, ("listen", "stats"))
        with open(a.stats_port_file + ".tmp", "w") as f:
            f.write("%d\n" % ls.getsockname()[1])
        os.rename(a.stats_port_file + ".tmp", a.stats_port_file)
    tmp = a.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(" ".join(ports) + "\n")
    os.rename(tmp, a.port_file)
    while True:
        for key, _ in sel.select():
            role, kind = key.data
            s = key.fileobj
            if role == "listen":
                try:
                    c, _ = s.accept()
                except OSError:
                    continue
                if kind == "stats":
                    c.setblocking(True)
                    c.sendall((json.dumps({"sinks": list(sinks.values())})
                               + "\n").encode())
                    c.close()
                    sinks = {k: v for k, v in sinks.items()
                             if k.fileno() >= 0}
                    for k in sinks:
                        sinks[k] = []
                    continue
                c.setblocking(False)
                c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if kind == "sink" and a.stats_port_file:
                    sinks[c] = []
                ev = selectors.EVENT_WRITE if kind == "send" else selectors.EVENT_READ
                sel.register(c, ev, ("conn", kind))
                asked[c] = 0
                continue
            try:
                if kind == "send":
                    s.send(data)
                    continue
                got = s.recv(262144)
                if not got:
                    raise OSError("closed")
                if kind == "sink" and s in sinks:
                    marks = sinks[s]
                    t = time.monotonic()
                    total = (marks[-1][1] if marks else 0) + len(got)
                    if len(marks) > 1 and marks[-1][0] - marks[-2][0] < 0.01:
                        marks[-1] = [t, total]
                    else:
                        marks.append([t, total])
                elif kind == "echo":
                    s.sendall(got)
                elif kind == "reply":
                    asked[s] += len(got)
                    if asked[s] >= 16:
                        s.setblocking(True)
                        s.sendall(data[:1024])
                        raise OSError("answered")
            except BlockingIOError:
                pass
            except OSError:
                sel.unregister(s)
                asked.pop(s, None)
                s.close()


if __name__ == "__main__":
    main()
