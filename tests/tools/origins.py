#!/usr/bin/env python3
"""Three origins in one process, for tests and benches of shaping under
contention: an echo server (TCP_NODELAY, every byte sent back at once), a
source sending without end, a sink reading and discarding, and a reply
server answering 16 bytes with 1 KiB and closing.

  origins.py --port-file F

Listens on four free ports of 127.0.0.1 and writes "ECHO SEND SINK REPLY"
to F.
One select loop, non-blocking sockets, one 256 KiB buffer of random bytes
sent again and again (fast enough for 100 MiB/s on a loaded machine).
"""
import argparse, os, selectors, socket


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port-file", required=True)
    a = p.parse_args()
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
                c.setblocking(False)
                c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
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
                if kind == "echo":
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
