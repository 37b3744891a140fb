#!/usr/bin/env python3
"""Receive from several connections at once on one clock, for shaping tests.

  multirecv.py [--duration S] [--window A B] [--run-at T --run CMD
               [--after S]] [--send-up N] HOST:PORT...

Connects to every HOST:PORT given (repeat one to open several connections
to it), then receives from all of them in one select loop for --duration
seconds counted from t0, the moment the last connection received its first
byte (so every connection is running during any window after t0).  With
--send-up N, also sends N random bytes on each connection (then half-closes)
while receiving, at whatever pace the relay accepts them.

Prints one JSON line (with --shell, NAME=VALUE lines without the timeline,
lists as NAME="A B" and NAME0=A, NAME1=B):
  recv       bytes received per connection in total
  rates      bytes/s per connection over the window [A, B] seconds after t0
  total      the sum of rates
  run_start, run_end  seconds after t0 when CMD was started and returned
  after_rate total bytes/s over [run_end, run_end + after]
  reaction   rough time from run_start until the rate changed, seconds:
             the first 20 ms slot after run_start whose rate was closer to
             after_rate than to the rate before run_start
  timeline   [[seconds after t0, total bytes received], ...] every 10 ms
"""
import argparse, bisect, json, os, selectors, socket, subprocess, sys, time


def connect(addr):
    host, port = addr.rsplit(":", 1)
    sock = socket.create_connection((host.strip("[]"), int(port)), timeout=10)
    sock.setblocking(False)
    return sock


def main():
    p = argparse.ArgumentParser()
    p.add_argument("addrs", nargs="+")
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--window", type=float, nargs=2, default=[0.5, 4.5])
    p.add_argument("--run-at", type=float)
    p.add_argument("--run")
    p.add_argument("--after", type=float, default=2.0)
    p.add_argument("--send-up", type=int, default=0)
    p.add_argument("--start-timeout", type=float, default=10.0)
    p.add_argument("--shell", action="store_true")
    args = p.parse_args()

    socks = [connect(a) for a in args.addrs]
    n = len(socks)
    sel = selectors.DefaultSelector()
    for i, s in enumerate(socks):
        sel.register(s, selectors.EVENT_READ, i)
    # Per connection: (time, cumulative bytes) at every receive.
    events = [[] for _ in socks]
    counts = [0] * n
    first = [None] * n
    up_left = [args.send_up] * n
    up_data = os.urandom(65536) if args.send_up else b""
    open_ = [True] * n
    t0 = None
    begun = time.monotonic()
    run_start = run_end = None
    proc = None
    while True:
        now = time.monotonic()
        if t0 is None and now - begun > args.start_timeout:
            print(json.dumps({"error": "not every connection received",
                              "recv": counts}), file=sys.stderr)
            return 1
        if t0 is not None and now - t0 >= args.duration:
            break
        if (args.run and run_start is None and t0 is not None
                and now - t0 >= args.run_at):
            # Keep receiving while CMD runs: a receiver blocked on it would
            # see the bytes sent meanwhile arrive late, all at once.
            run_start = time.monotonic() - t0
            proc = subprocess.Popen(args.run, shell=True, stdout=sys.stderr)
        if proc is not None and run_end is None and proc.poll() is not None:
            run_end = time.monotonic() - t0
        for i, s in enumerate(socks):
            want = selectors.EVENT_READ if open_[i] else 0
            if up_left[i] > 0:
                want |= selectors.EVENT_WRITE
            if want:
                sel.modify(s, want, i)
            elif s in sel.get_map():
                sel.unregister(s)
        if not sel.get_map():
            break
        waiting = proc is not None and run_end is None
        for key, mask in sel.select(timeout=0.002 if waiting else 0.05):
            i = key.data
            s = socks[i]
            if mask & selectors.EVENT_WRITE and up_left[i] > 0:
                try:
                    sent = s.send(up_data[:up_left[i]])
                    up_left[i] -= sent
                    if up_left[i] == 0:
                        s.shutdown(socket.SHUT_WR)
                except BlockingIOError:
                    pass
            if mask & selectors.EVENT_READ:
                try:
                    data = s.recv(262144)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                t = time.monotonic()
                if not data:
                    open_[i] = False
                    continue
                counts[i] += len(data)
                events[i].append((t, counts[i]))
                if first[i] is None:
                    first[i] = t
                    if all(f is not None for f in first):
                        t0 = t
        if t0 is None and not any(open_):
            break
    for s in socks:
        s.close()
    if t0 is None:
        print(json.dumps({"error": "not every connection received",
                          "recv": counts}), file=sys.stderr)
        return 1

    times = [[ts for ts, _ in ev] for ev in events]

    def at(i, t):
        """Bytes connection i had received by t seconds after t0."""
        k = bisect.bisect_right(times[i], t0 + t)
        return events[i][k - 1][1] if k else 0

    def total_at(t):
        return sum(at(i, t) for i in range(n))

    a, b = args.window
    rates = [(at(i, b) - at(i, a)) / (b - a) for i in range(n)]
    result = {"recv": counts, "rates": [int(r) for r in rates],
              "total": int(sum(rates))}
    if proc is not None and run_end is None:
        proc.wait()
        run_end = time.monotonic() - t0
    if run_start is not None:
        result["run_start"] = round(run_start, 4)
        result["run_end"] = round(run_end, 4)
        after = (total_at(run_end + args.after) - total_at(run_end)) / args.after
        result["after_rate"] = int(after)
        before = (total_at(run_start) - total_at(max(0.0, run_start - 1.0))) \
            / min(1.0, run_start)
        result["before_rate"] = int(before)
        slot, t = 0.02, run_start
        reaction = None
        while t + slot <= run_end + args.after:
            r = (total_at(t + slot) - total_at(t)) / slot
            if abs(r - after) < abs(r - before):
                reaction = t - run_start
                break
            t += slot
        result["reaction"] = None if reaction is None else round(reaction, 4)
    timeline, t = [], 0.0
    while t <= args.duration + 1e-9:
        timeline.append([round(t, 2), total_at(t)])
        t += 0.01
    result["timeline"] = timeline
    if args.shell:
        emit_shell(result)
    else:
        print(json.dumps(result))
    return 0


def emit_shell(result):
    """NAME=VALUE lines for a shell's eval (starting python is slow on a
    loaded machine, so one run should give a test everything)."""
    for key, value in result.items():
        if key == "timeline":
            continue
        if isinstance(value, list):
            print('%s="%s"' % (key, " ".join(str(v) for v in value)))
            for i, v in enumerate(value):
                print("%s%d=%s" % (key, i, v))
        else:
            print("%s=%s" % (key, "" if value is None else value))


if __name__ == "__main__":
    sys.exit(main())
