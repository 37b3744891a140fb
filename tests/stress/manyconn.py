#!/usr/bin/env python3
"""Many connections at once through a relay to an echo origin, on one clock,
checking every byte: for the fault and stress scripts (tests/stress).

  manyconn.py echo --port-file F
  manyconn.py run --connect HOST:PORT --count N --send BYTES [--chunk N]
                  [--run-at T --run CMD] [--timeout S] [--window S]

`echo` is the origin: it sends back whatever each connection sends and
half-closes after the client's EOF.  `run` opens N connections, sends BYTES
of a per-connection pseudo-random stream on each (then half-closes), and
compares what comes back with what was sent.  With --run-at, CMD runs (by
the shell) T seconds after every connection received its first byte; its
standard output is kept as `run_output`.  Prints one JSON line:
  intact     connections that got back exactly what they sent, closed by EOF
  cut        connections that ended early (EOF or reset before the end)
  bad        connections whose bytes differ from what was sent (never ok)
  hung       connections still open at --timeout
  cut_ports  the local ports of the cut connections
  rate_before, rate_after  total bytes/s received over --window seconds
             before CMD and over the --window seconds starting 1 s after it
  elapsed    seconds from the first connect until the last connection ended
"""
import argparse, hashlib, json, os, random, selectors, socket, subprocess
import sys, time


def stream(seed, n):
    # Deterministic bytes per connection, so a swapped or shifted byte shows.
    return random.Random(seed).randbytes(n)


def echo(args):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(4096)
    ls.setblocking(False)
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % ls.getsockname()[1])
    os.rename(tmp, args.port_file)
    sel = selectors.DefaultSelector()
    sel.register(ls, selectors.EVENT_READ, None)
    pending = {}                        # sock -> bytes waiting to go back
    while True:
        for key, _ in sel.select():
            s = key.fileobj
            if s is ls:
                try:
                    c, _ = ls.accept()
                except OSError:
                    continue
                c.setblocking(False)
                pending[c] = [b"", False]
                sel.register(c, selectors.EVENT_READ, None)
                continue
            st = pending[s]
            try:
                if st[0]:
                    n = s.send(st[0])
                    st[0] = st[0][n:]
                else:
                    b = s.recv(65536)
                    if b:
                        st[0] = b
                    else:
                        st[1] = True
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                st[0] = b""; st[1] = True
            if st[1] and not st[0]:
                try:
                    s.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                sel.unregister(s); s.close(); del pending[s]
                continue
            sel.modify(s, selectors.EVENT_WRITE if st[0] else
                       selectors.EVENT_READ, None)


def run(args):
    host, port = args.connect.rsplit(":", 1)
    conns = []
    t_start = time.monotonic()
    for i in range(args.count):
        s = socket.create_connection((host, int(port)), timeout=10)
        s.setblocking(False)
        data = stream(i, args.send)
        conns.append({"i": i, "s": s, "data": data, "off": 0, "recv": 0,
                      "sha": hashlib.sha256(), "first": None, "end": None,
                      "port": s.getsockname()[1], "how": None})
    sel = selectors.DefaultSelector()
    for c in conns:
        sel.register(c["s"], selectors.EVENT_READ | selectors.EVENT_WRITE, c)
    timeline = []                       # (t, total received)
    total = 0
    t0 = None
    run_at = run_start = run_end = runner = None
    run_output = ""
    open_count = len(conns)
    deadline = t_start + args.timeout
    while open_count and time.monotonic() < deadline:
        # CMD runs beside the transfer, not in place of it: a slow CMD on a
        # loaded machine must not stall the readers and skew the rates.
        if t0 is not None and args.run and run_start is None and \
                time.monotonic() >= run_at:
            run_start = time.monotonic()
            runner = subprocess.Popen(args.run, shell=True, stdout=subprocess.PIPE,
                                      text=True)
        if run_start is not None and run_end is None and runner.poll() is not None:
            run_output = runner.stdout.read()
            run_end = time.monotonic()
        for key, ev in sel.select(0.05):
            c = key.data
            s = c["s"]
            if ev & selectors.EVENT_WRITE and c["off"] < len(c["data"]):
                try:
                    n = s.send(c["data"][c["off"]:c["off"] + args.chunk])
                    c["off"] += n
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError:
                    c["off"] = len(c["data"])
                if c["off"] >= len(c["data"]):
                    try:
                        s.shutdown(socket.SHUT_WR)
                    except OSError:
                        pass
                    sel.modify(s, selectors.EVENT_READ, c)
            if ev & selectors.EVENT_READ:
                try:
                    b = s.recv(262144)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    b = None
                if b:
                    now = time.monotonic()
                    if c["first"] is None:
                        c["first"] = now
                        if all(x["first"] is not None for x in conns):
                            t0 = now
                            run_at = t0 + args.run_at
                    c["sha"].update(b)
                    c["recv"] += len(b)
                    total += len(b)
                    timeline.append((now, total))
                    continue
                c["end"] = time.monotonic()
                c["how"] = "eof" if b == b"" else "reset"
                sel.unregister(s); s.close(); open_count -= 1
    intact = cut = bad = hung = 0
    cut_ports = []
    for c in conns:
        want = c["data"][:c["recv"]]
        same = hashlib.sha256(want).digest() == c["sha"].digest()
        if c["how"] is None:
            hung += 1
        elif not same:
            bad += 1
        elif c["recv"] == len(c["data"]) and c["how"] == "eof":
            intact += 1
        else:
            cut += 1; cut_ports.append(c["port"])

    def rate(a, b):
        def at(t):
            best = 0
            for ts, n in timeline:
                if ts > t:
                    break
                best = n
            return best
        return int((at(b) - at(a)) / (b - a)) if b > a else 0
    out = {"intact": intact, "cut": cut, "bad": bad, "hung": hung,
           "cut_ports": cut_ports, "run_output": run_output,
           "elapsed": round(max([c["end"] or time.monotonic() for c in conns])
                            - t_start, 3)}
    if run_start is not None and run_end is None:
        runner.wait()
        run_output = runner.stdout.read()
        run_end = time.monotonic()
    if run_start is not None:
        w = args.window
        out["rate_before"] = rate(run_start - w, run_start)
        # After CMD, and only while at least half of the survivors still
        # sending at its start are: the rest absorb a finished one's share
        # of the limit, but a tail of a few finishing connections is not a
        # slow relay.  Ends are spread (the first to start had the whole
        # rate while the others were spawned), so the first end alone
        # could close the window at once.
        a = run_end + 1
        ends = sorted(c["end"] for c in conns
                      if c["how"] == "eof" and c["recv"] == len(c["data"])
                      and c["end"] > a)
        b = min([a + w] + ends[len(ends) // 2:len(ends) // 2 + 1])
        out["rate_after"] = rate(a, b) if b - a >= 0.25 else None
        out["run_output"] = run_output
    elif t0 is not None:
        out["rate_before"] = rate(t0, t0 + args.window)
    print(json.dumps(out))


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("echo")
    e.add_argument("--port-file", required=True)
    r = sub.add_parser("run")
    r.add_argument("--connect", required=True)
    r.add_argument("--count", type=int, default=1)
    r.add_argument("--send", type=int, default=65536)
    r.add_argument("--chunk", type=int, default=16384)
    r.add_argument("--run-at", type=float, default=1.0)
    r.add_argument("--run", default="")
    r.add_argument("--timeout", type=float, default=60.0)
    r.add_argument("--window", type=float, default=1.0)
    args = p.parse_args()
    echo(args) if args.cmd == "echo" else run(args)


if __name__ == "__main__":
    main()
