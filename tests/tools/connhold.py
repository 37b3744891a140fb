#!/usr/bin/env python3
"""Many connections from one address at once, sorted by what became of them.

  connhold.py --connect HOST:PORT --count N [--greeting BYTES] [--wait S]
  connhold.py --serve PORT [--greeting BYTES]

Opens N connections one right after the other, then watches them until
each is classified or WAIT seconds (default 10) have passed:
  served   received GREETING bytes (default 1) from the far end and is
           still open: a relay carried it to the origin
  refused  closed or reset by the far end before any byte came (a socket
           unit over MaxConnectionsPerSource= accepts and closes at once)
  pending  neither at the end
Prints one JSON line {"served": S, "refused": R, "pending": P}; the served
ones stay open until then.  With --serve it is the origin for that: it
sends GREETING bytes to every connection and holds it open until the far
end closes (no half-close that a relay would pass on).  Used by
tests/t/systemd-live.t.
"""
import argparse, json, selectors, socket, threading, time


def serve(port, greeting):
    lsock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("::", port))
    lsock.listen(1024)

    def hold(conn):
        try:
            conn.sendall(b"g" * greeting)
            while conn.recv(4096):
                pass
        except OSError:
            pass
        conn.close()

    while True:
        conn, _ = lsock.accept()
        threading.Thread(target=hold, args=(conn,), daemon=True).start()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--connect")
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--serve", type=int)
    p.add_argument("--greeting", type=int, default=1)
    p.add_argument("--wait", type=float, default=10.0)
    args = p.parse_args()
    if args.serve:
        serve(args.serve, args.greeting)
    host, port = args.connect.rsplit(":", 1)
    address = (host.strip("[]"), int(port))
    sel = selectors.DefaultSelector()
    got, ended, socks = {}, {}, []
    for i in range(args.count):
        s = socket.create_connection(address, timeout=10)
        s.setblocking(False)
        socks.append(s)
        got[i], ended[i] = 0, False
        sel.register(s, selectors.EVENT_READ, i)
    deadline = time.monotonic() + args.wait
    while time.monotonic() < deadline:
        if all(ended[i] or got[i] >= args.greeting for i in got):
            break
        for key, _ in sel.select(timeout=0.05):
            i = key.data
            try:
                data = key.fileobj.recv(4096)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if data:
                got[i] += len(data)
            else:
                ended[i] = True
                sel.unregister(key.fileobj)
    served = sum(1 for i in got if got[i] >= args.greeting and not ended[i])
    refused = sum(1 for i in got if ended[i] and got[i] == 0)
    print(json.dumps({"served": served, "refused": refused,
                      "pending": args.count - served - refused}), flush=True)
    for s in socks:
        s.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
