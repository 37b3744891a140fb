#!/usr/bin/env python3
"""A one-process TCP proxy, to cut one host off from Redis in a test.

usage: tcpproxy.py LISTEN_PORT TARGET
TARGET is unix:/path or HOST:PORT.  Listens on 127.0.0.1:LISTEN_PORT and
copies bytes both ways between every client and its own connection to
TARGET.  One process, one thread, so SIGSTOP hangs every connection at
once (new ones complete their handshake in the kernel's backlog and then
hear nothing), SIGCONT resumes them, and killing it resets them all: the
three ways a path to Redis fails.  Prints "ready" once listening.
"""
import selectors
import socket
import sys


def connect_target(target):
    if target.startswith("unix:"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(target[5:])
    else:
        host, port = target.rsplit(":", 1)
        s = socket.create_connection((host, int(port)))
    s.setblocking(False)
    return s


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: tcpproxy.py LISTEN_PORT TARGET")
    port, target = int(sys.argv[1]), sys.argv[2]
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", port))
    lsock.listen(64)
    lsock.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(lsock, selectors.EVENT_READ, None)
    peer = {}
    print("ready", flush=True)

    def close(s):
        for x in (s, peer.pop(s, None)):
            if x is None:
                continue
            peer.pop(x, None)
            try:
                sel.unregister(x)
            except (KeyError, ValueError):
                pass
            x.close()

    while True:
        for key, _ in sel.select():
            s = key.fileobj
            if s is lsock:
                try:
                    c, _ = lsock.accept()
                except BlockingIOError:
                    continue
                try:
                    t = connect_target(target)
                except OSError:
                    c.close()
                    continue
                c.setblocking(False)
                peer[c], peer[t] = t, c
                sel.register(c, selectors.EVENT_READ, None)
                sel.register(t, selectors.EVENT_READ, None)
                continue
            if s not in peer:
                continue
            try:
                data = s.recv(65536)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            if not data:
                close(s)
                continue
            try:
                # Redis's calls and replies are small: a blocking send of
                # one read's worth never waits long on loopback.
                peer[s].setblocking(True)
                peer[s].sendall(data)
                peer[s].setblocking(False)
            except OSError:
                close(s)


if __name__ == "__main__":
    main()
