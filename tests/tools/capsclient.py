#!/usr/bin/env python3
"""Many connections from one source address at once through a relay to an
echo origin, sorted by what became of them, the served ones held open.

  capsclient.py --connect HOST:PORT --count N [--bind ADDR] [--payload B]
                [--wait S] [--hold-file F]
  capsclient.py --echo --port-file F

Opens N connections from ADDR (default: the kernel's choice) one right
after the other and sends PAYLOAD random bytes (default 65536) on each,
then watches them until each is classified or WAIT seconds (default 20)
have passed:
  served   the whole payload came back, byte for byte: a relay carried it
           to the origin and back
  corrupt  as many bytes came back, not the same ones
  refused  reset or closed by the far end before any byte came back
  pending  none of those at the end
Prints one JSON line {"served", "refused", "corrupt", "pending",
"refused_max_s" (the slowest refusal, seconds after its connect),
"reset" (refusals that were resets, not a FIN)}, then holds the served
connections open while the file F exists (or until standard input ends),
closes them and exits.
With --echo it is the origin: every connection's bytes are sent back.
"""
import argparse, errno, json, os, selectors, socket, sys, threading, time


def echo(port_file):
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1024)
    with open(port_file + ".tmp", "w") as f:
        f.write("%d\n" % lsock.getsockname()[1])
    os.rename(port_file + ".tmp", port_file)

    def serve(conn):
        try:
            while True:
                data = conn.recv(65536)
                if not data:
                    break
                conn.sendall(data)
        except OSError:
            pass
        conn.close()

    while True:
        conn, _ = lsock.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--connect")
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--bind")
    p.add_argument("--payload", type=int, default=65536)
    p.add_argument("--wait", type=float, default=20.0)
    p.add_argument("--hold-file")
    p.add_argument("--echo", action="store_true")
    p.add_argument("--port-file")
    a = p.parse_args()
    if a.echo:
        echo(a.port_file)
        return 0
    host, port = a.connect.rsplit(":", 1)
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    payload = os.urandom(a.payload)
    sel = selectors.DefaultSelector()
    conns = []
    for i in range(a.count):
        s = socket.socket(family, socket.SOCK_STREAM)
        if a.bind:
            s.bind((a.bind, 0))
        s.settimeout(10)
        c = {"sock": s, "start": time.monotonic(), "got": bytearray(),
             "sent": 0, "ended": None, "reset": False, "end_s": None}
        conns.append(c)
        try:
            s.connect((host, int(port)))
        except ConnectionResetError:
            # Reset before the connect call saw it complete: a refusal
            # that fast (Python's connect with a timeout polls, then
            # reads SO_ERROR).
            c["ended"], c["reset"] = True, True
            c["end_s"] = time.monotonic() - c["start"]
            continue
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE, c)
    deadline = time.monotonic() + a.wait

    def end(c, reset):
        c["ended"] = True
        c["reset"] = reset
        c["end_s"] = time.monotonic() - c["start"]
        sel.unregister(c["sock"])

    while time.monotonic() < deadline:
        if all(c["ended"] or len(c["got"]) >= a.payload for c in conns):
            break
        for key, events in sel.select(timeout=0.05):
            c = key.data
            if events & selectors.EVENT_WRITE and c["sent"] < a.payload:
                try:
                    c["sent"] += c["sock"].send(payload[c["sent"]:])
                except BlockingIOError:
                    pass
                except OSError as e:
                    end(c, e.errno == errno.ECONNRESET)
                    continue
                if c["sent"] >= a.payload:
                    sel.modify(c["sock"], selectors.EVENT_READ, c)
            if events & selectors.EVENT_READ:
                try:
                    data = c["sock"].recv(65536)
                except BlockingIOError:
                    continue
                except OSError as e:
                    end(c, e.errno == errno.ECONNRESET)
                    continue
                if data:
                    c["got"] += data
                    if len(c["got"]) >= a.payload:
                        sel.unregister(c["sock"])
                else:
                    end(c, False)
    served = sum(1 for c in conns if not c["ended"] and
                 bytes(c["got"]) == payload)
    corrupt = sum(1 for c in conns if len(c["got"]) >= a.payload and
                  bytes(c["got"]) != payload)
    refused = [c for c in conns if c["ended"] and not c["got"]]
    print(json.dumps({
        "served": served, "corrupt": corrupt, "refused": len(refused),
        "pending": a.count - served - corrupt - len(refused),
        "reset": sum(1 for c in refused if c["reset"]),
        "refused_max_s": round(max([c["end_s"] for c in refused],
                                   default=0), 3)}), flush=True)
    if a.hold_file:
        while os.path.exists(a.hold_file):
            time.sleep(0.05)
    else:
        sys.stdin.read()
    for c in conns:
        c["sock"].close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
