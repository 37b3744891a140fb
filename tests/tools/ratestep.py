#!/usr/bin/env python3
"""A download whose limit changes while it runs: how fast the rate follows.

  ratestep.py --connect HOST:PORT --before S --after S [--settle S] -- CMD...

Connects and receives.  BEFORE seconds after the first byte it runs CMD
(for instance `iprelay-limit set NAME RATE`) and waits for it; the change
counts from the moment CMD returned.  It receives AFTER seconds more, then
closes and prints one JSON line:
  before_Bps   bytes/s from 1 s after the first byte to CMD's start (past
               the bucket's burst)
  first_Bps    bytes/s in the SETTLE seconds (default 1) after CMD returned
  after_Bps    bytes/s from SETTLE s after CMD returned to the end: the new
               rate, reached within SETTLE seconds
  cmd_status, cmd_s (CMD's exit status and run time), recv (bytes)
Used by tests/t/systemd-live.t and bench/systemd-cps.sh.
"""
import argparse, json, socket, subprocess, sys, threading, time


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--connect", required=True)
    p.add_argument("--before", type=float, required=True)
    p.add_argument("--after", type=float, required=True)
    p.add_argument("--settle", type=float, default=1.0)
    p.add_argument("cmd", nargs=argparse.REMAINDER)
    args = p.parse_args()
    cmd = args.cmd[1:] if args.cmd and args.cmd[0] == "--" else args.cmd
    host, port = args.connect.rsplit(":", 1)
    sock = socket.create_connection((host.strip("[]"), int(port)), timeout=30)
    samples = []            # (monotonic time, cumulative bytes)
    state = {"count": 0, "first": None, "error": None}
    stop = threading.Event()

    def receive():
        try:
            while not stop.is_set():
                data = sock.recv(262144)
                if not data:
                    break
                t = time.monotonic()
                if state["first"] is None:
                    state["first"] = t
                state["count"] += len(data)
                samples.append((t, state["count"]))
        except OSError as e:
            state["error"] = str(e)

    rx = threading.Thread(target=receive, daemon=True)
    rx.start()
    while state["first"] is None and rx.is_alive():
        time.sleep(0.005)
    if state["first"] is None:
        print(json.dumps({"error": "no byte received", "recv_error": state["error"]}))
        return 1
    t0 = state["first"]
    time.sleep(max(0.0, t0 + args.before - time.monotonic()))
    cmd_start = time.monotonic()
    # CMD's output goes to stderr: stdout is the one JSON line.
    status = subprocess.call(cmd, stdout=sys.stderr)
    cmd_end = time.monotonic()
    time.sleep(max(0.0, cmd_end + args.after - time.monotonic()))
    end = time.monotonic()
    stop.set()
    sock.shutdown(socket.SHUT_RDWR)
    rx.join(2)
    sock.close()

    def at(t):
        best = 0
        for ts, n in samples:
            if ts > t:
                break
            best = n
        return best

    def rate(a, b):
        return int((at(b) - at(a)) / (b - a)) if b > a else 0

    settled = cmd_end + args.settle
    print(json.dumps({
        "before_Bps": rate(t0 + 1.0, cmd_start),
        "first_Bps": rate(cmd_end, settled),
        "after_Bps": rate(settled, end),
        "cmd_status": status, "cmd_s": round(cmd_end - cmd_start, 3),
        "recv": state["count"], "recv_error": state["error"]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
