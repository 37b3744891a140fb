#!/usr/bin/env python3
"""Downloads that share a limit, started at chosen times, some reading
slowly, all on one clock: for the tests and the bench of shaping under
contention (a slow reader beside fast ones, chained instances).

  contend.py [--duration S] [--window A B]... [--shell] CONN...

CONN is HOST:PORT[@START][/RATE[:RCVBUF]]: connect START seconds after t0
(the program's start; default 0) and receive as fast as possible, or, with
/RATE, at most RATE bytes/s (a slow client: it reads RATE/20 bytes every
50 ms and leaves the rest in its socket buffer, of SO_RCVBUF RCVBUF if
given).  Runs --duration seconds from t0.

Prints one JSON line (with --shell, NAME=VALUE lines without the series):
  recv      bytes received per connection in total
  rates     per window, bytes/s per connection over [A, B] seconds after
            t0 (rates0 for the first --window, rates1 for the second...)
  series    bytes received per connection in each whole second after t0
"""
import argparse, json, selectors, socket, sys, time


def parse_conn(word):
    rate, rcvbuf = None, None
    if "/" in word:
        word, rate = word.rsplit("/", 1)
        if ":" in rate:
            rate, rcvbuf = rate.split(":")
            rcvbuf = int(rcvbuf)
        rate = float(rate)
    start = 0.0
    if "@" in word:
        word, start = word.rsplit("@", 1)
        start = float(start)
    host, port = word.rsplit(":", 1)
    return {"host": host.strip("[]"), "port": int(port), "start": start,
            "rate": rate, "rcvbuf": rcvbuf, "sock": None, "got": 0, "marks": [], "done": False}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("conns", nargs="+")
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--window", type=float, nargs=2, action="append")
    p.add_argument("--shell", action="store_true")
    a = p.parse_args()
    conns = [parse_conn(w) for w in a.conns]
    windows = a.window or [[0.0, a.duration]]
    sel = selectors.DefaultSelector()
    t0 = time.monotonic()
    end = t0 + a.duration
    # (seconds after t0, bytes so far) per connection, every receive.
    while True:
        now = time.monotonic()
        if now >= end:
            break
        wake = end
        for i, c in enumerate(conns):
            if c["sock"] is None and not c["done"]:
                if now - t0 >= c["start"]:
                    s = socket.socket(socket.AF_INET6 if ":" in c["host"]
                                      else socket.AF_INET)
                    if c["rcvbuf"]:
                        # Before connecting: the first window is small.
                        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF,
                                     c["rcvbuf"])
                    s.settimeout(10)
                    s.connect((c["host"], c["port"]))
                    s.setblocking(False)
                    c["sock"], c["t_open"] = s, now
                    c["marks"].append((now - t0, 0))
                else:
                    wake = min(wake, t0 + c["start"])
                    continue
            if c["done"]:
                continue
            registered = c.get("registered", False)
            want = 262144
            if c["rate"] is not None:
                # Read in 50 ms steps up to what the rate allows so far.
                allowed = int(c["rate"] * (now - c["t_open"])) - c["got"]
                if allowed < c["rate"] / 20:
                    step = c["rate"] / 20 / c["rate"]
                    wake = min(wake, now + step)
                    if registered:
                        sel.unregister(c["sock"])
                        c["registered"] = False
                    continue
                want = allowed
            if not registered:
                sel.register(c["sock"], selectors.EVENT_READ, i)
                c["registered"] = True
            c["want"] = want
        timeout = max(0.0, min(wake, end) - time.monotonic())
        for key, _ in sel.select(timeout):
            c = conns[key.data]
            try:
                data = c["sock"].recv(c["want"])
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                sel.unregister(c["sock"])
                c["registered"] = False
                c["sock"].close()
                c["sock"], c["done"] = None, True
                continue
            c["got"] += len(data)
            c["marks"].append((time.monotonic() - t0, c["got"]))
    for c in conns:
        if c["sock"] is not None:
            c["sock"].close()

    def at(c, t):
        best = 0
        for ts, n in c["marks"]:
            if ts <= t:
                best = n
            else:
                break
        return best

    out = {"recv": [c["got"] for c in conns]}
    for k, (w0, w1) in enumerate(windows):
        out["rates%d" % k] = [int((at(c, w1) - at(c, w0)) / (w1 - w0))
                              for c in conns]
    secs = int(a.duration)
    out["series"] = [[at(c, s + 1) - at(c, s) for s in range(secs)]
                     for c in conns]
    if a.shell:
        for k, v in out.items():
            if k == "series":
                continue
            print('%s="%s"' % (k, " ".join(str(x) for x in v)))
            for j, x in enumerate(v):
                print("%s_%d=%s" % (k, j, x))
    else:
        print(json.dumps(out))


if __name__ == "__main__":
    sys.exit(main())
