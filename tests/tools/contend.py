#!/usr/bin/env python3
"""Downloads that share a limit, started at chosen times, some reading
slowly, all on one clock: for the tests and the bench of shaping under
contention (a slow reader beside fast ones, chained instances).

  contend.py [--duration S] [--window A B]... [--t0 T] [--shell] CONN...

CONN is HOST:PORT[@START][/RATE[:RCVBUF]][~TURN][=MODE]: connect START
seconds after t0 (the program's start; default 0) and receive as fast as
possible, or, with /RATE, at most RATE bytes/s (a slow client: it reads
RATE/20 bytes every 50 ms and leaves the rest in its socket buffer, of
SO_RCVBUF RCVBUF if given), until TURN seconds after t0 if given, then as
fast as possible (a connection that turns bulk).  MODE up: send as fast as the relay takes instead (rates are of
bytes sent); MODE req: send 16 bytes and time from connecting to the end
of the answer (origins.py's reply port sends 1 KiB); MODE echo: send one byte every --echo-interval seconds (0.1)
when none is in flight and time its echo; MODE direct: the same, counted
apart (an echo origin reached without a relay, as a reference timed in
the same process and run).  Runs --duration seconds from
t0.  --t0 T: t0 is CLOCK_MONOTONIC second T (waited for if still ahead),
so that another program (bench/tools/bbulk -t T) runs on the same clock.

Prints one JSON line (with --shell, NAME=VALUE lines without the series):
  t0        t0 in CLOCK_MONOTONIC seconds (origins.py's sink marks use it)
  recv      bytes received per connection in total
  rates     per window, bytes/s per connection over [A, B] seconds after
            t0 (rates0 for the first --window, rates1 for the second...)
  series    bytes received per connection in each whole second after t0
  echo_n, echo_p50_ms, echo_p90_ms, echo_p99_ms, echo_max_ms: round trips of the echo
            connections' bytes sent in the first --window (direct_n,
            direct_p50_ms...: the direct ones')
  req_n, req_p50_ms, req_max_ms: the req connections answered in full,
            connect to the answer's end; req_first_p50_ms,
            req_first_max_ms: the same, connect to the answer's first byte
"""
import argparse, json, os, selectors, socket, sys, time

UPLOAD = os.urandom(65536)


def parse_conn(word):
    rate, rcvbuf, mode, turn = None, None, "down", None
    if "=" in word:
        word, mode = word.rsplit("=", 1)
    if "~" in word:
        word, turn = word.rsplit("~", 1)
        turn = float(turn)
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
            "rate": rate, "rcvbuf": rcvbuf, "mode": mode, "turn": turn,
            "rtts": [],
            "probe": None, "next_probe": 0.0, "sock": None, "got": 0, "marks": [], "done": False}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("conns", nargs="+")
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--window", type=float, nargs=2, action="append")
    p.add_argument("--shell", action="store_true")
    p.add_argument("--echo-interval", type=float, default=0.1)
    p.add_argument("--t0", type=float)
    a = p.parse_args()
    conns = [parse_conn(w) for w in a.conns]
    windows = a.window or [[0.0, a.duration]]
    sel = selectors.DefaultSelector()
    t0 = time.monotonic()
    if a.t0 is not None:
        time.sleep(max(0.0, a.t0 - t0))
        t0 = a.t0
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
                    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    s.setblocking(False)
                    c["sock"], c["t_open"] = s, now
                    c["marks"].append((now - t0, 0))
                else:
                    wake = min(wake, t0 + c["start"])
                    continue
            if c["done"]:
                continue
            registered = c.get("registered", False)
            if c["mode"] in ("echo", "direct"):
                # One byte out when none is in flight and its time came.
                if c["probe"] is None and now >= c["next_probe"]:
                    c["sock"].send(b"e")
                    c["probe"] = now
                    c["next_probe"] = now + a.echo_interval
                if c["probe"] is None:
                    wake = min(wake, c["next_probe"])
                if not registered:
                    sel.register(c["sock"], selectors.EVENT_READ, i)
                    c["registered"] = True
                c["want"] = 4096
                continue
            if c["mode"] == "req" and not c.get("asked"):
                c["sock"].send(b"0123456789abcdef")
                c["asked"] = True
            if c["mode"] == "up":
                if not registered:
                    sel.register(c["sock"], selectors.EVENT_WRITE, i)
                    c["registered"] = True
                continue
            want = 262144
            if c["turn"] is not None and now - t0 >= c["turn"]:
                c["rate"] = None
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
            if c["mode"] == "up":
                try:
                    n = c["sock"].send(UPLOAD)
                except BlockingIOError:
                    continue
                except OSError:
                    sel.unregister(c["sock"])
                    c["registered"] = False
                    c["sock"].close()
                    c["sock"], c["done"] = None, True
                    continue
                c["got"] += n
                c["marks"].append((time.monotonic() - t0, c["got"]))
                continue
            try:
                data = c["sock"].recv(c["want"])
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                if c["mode"] == "req":
                    c["req_s"] = time.monotonic() - c["t_open"]
                sel.unregister(c["sock"])
                c["registered"] = False
                c["sock"].close()
                c["sock"], c["done"] = None, True
                continue
            c["got"] += len(data)
            t = time.monotonic()
            if c["mode"] == "req" and c.get("first_s") is None:
                c["first_s"] = t - c["t_open"]
            c["marks"].append((t - t0, c["got"]))
            if c["mode"] in ("echo", "direct") and c["probe"] is not None:
                c["rtts"].append((c["probe"] - t0, t - c["probe"]))
                c["probe"] = None
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

    out = {"recv": [c["got"] for c in conns], "t0": round(t0, 6)}
    reqs = sorted(c["req_s"] for c in conns if c.get("req_s") is not None
                  and c["got"] >= 1024)
    if reqs:
        out["req_n"] = len(reqs)
        out["req_p50_ms"] = round(reqs[len(reqs) // 2] * 1000, 2)
        out["req_max_ms"] = round(reqs[-1] * 1000, 2)
        firsts = sorted(c["first_s"] for c in conns
                        if c.get("req_s") is not None and c["got"] >= 1024)
        out["req_first_p50_ms"] = round(firsts[len(firsts) // 2] * 1000, 2)
        out["req_first_max_ms"] = round(firsts[-1] * 1000, 2)
    w0, w1 = windows[0]
    for mode in ("echo", "direct"):
        rtts = sorted(r for c in conns if c["mode"] == mode
                      for (ts, r) in c["rtts"] if w0 <= ts < w1)
        if rtts:
            def q(f):
                return round(rtts[min(len(rtts) - 1, int(f * len(rtts)))] * 1000, 2)
            out[mode + "_n"] = len(rtts)
            out[mode + "_p50_ms"] = q(0.5)
            out[mode + "_p90_ms"] = q(0.9)
            out[mode + "_p99_ms"] = q(0.99)
            out[mode + "_max_ms"] = round(rtts[-1] * 1000, 2)
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
            if not isinstance(v, list):
                print("%s=%s" % (k, v))
                continue
            print('%s="%s"' % (k, " ".join(str(x) for x in v)))
            for j, x in enumerate(v):
                print("%s_%d=%s" % (k, j, x))
    else:
        print(json.dumps(out))


if __name__ == "__main__":
    sys.exit(main())
