#!/usr/bin/env python3
"""Test peer for iprelay: a client or server that sends bytes and receives
bytes at the same time, half-closes when done sending, and reports what it
sent and received (sizes, SHA-256, and a timeline for rate measurement).

  peer.py server --port-file F [--bind 127.0.0.1] [--send N] [--report F]
                 [--count K] [--mode both|echo] [--delay-close S]
  peer.py client --connect HOST:PORT [--send N] [--duration S]
                 [--chunk N] [--write-delay S]

The client prints one JSON line; the server appends one JSON line per
connection to --report.  Timelines are cumulative received bytes sampled at
every receive: [[seconds since the first byte, bytes], ...] thinned to one
sample per 10 ms.
"""
import argparse, hashlib, json, os, socket, sys, threading, time


def now():
    return time.monotonic()


class Receiver(threading.Thread):
    def __init__(self, sock, duration=None):
        super().__init__(daemon=True)
        self.sock, self.duration = sock, duration
        self.sha, self.count, self.timeline = hashlib.sha256(), 0, []
        self.first = self.last = None
        self.error = None

    def run(self):
        last_sample = -1.0
        deadline = None
        try:
            while True:
                if deadline is not None:
                    left = deadline - now()
                    if left <= 0:
                        break
                    self.sock.settimeout(left)
                data = self.sock.recv(262144)
                if not data:
                    break
                t = now()
                if self.first is None:
                    self.first = t
                    if self.duration:
                        deadline = t + self.duration
                self.last = t
                self.count += len(data)
                self.sha.update(data)
                rel = t - self.first
                if rel - last_sample >= 0.01:
                    self.timeline.append([round(rel, 4), self.count])
                    last_sample = rel
        except socket.timeout:
            pass
        except OSError as e:
            self.error = str(e)
        if self.first is not None:
            self.timeline.append([round(self.last - self.first, 4), self.count])

    def report(self):
        return {"recv": self.count, "recv_sha": self.sha.hexdigest(),
                "recv_error": self.error,
                "recv_span": (self.last - self.first) if self.first else 0.0,
                "timeline": self.timeline}


def send_all(sock, total, chunk, write_delay, echo_from=None):
    sha, sent = hashlib.sha256(), 0
    error = None
    try:
        while sent < total:
            n = min(chunk, total - sent)
            data = os.urandom(n)
            sock.sendall(data)
            sha.update(data)
            sent += n
            if write_delay:
                time.sleep(write_delay)
        sock.shutdown(socket.SHUT_WR)
    except OSError as e:
        error = str(e)
    return {"sent": sent, "sent_sha": sha.hexdigest(), "send_error": error}


def handle(conn, args, report_lock):
    rx = Receiver(conn)
    rx.start()
    result = send_all(conn, args.send, args.chunk, args.write_delay)
    rx.join()
    if args.delay_close:
        time.sleep(args.delay_close)
    conn.close()
    result.update(rx.report())
    if args.report:
        with report_lock, open(args.report, "a") as f:
            f.write(json.dumps(result) + "\n")


def server(args):
    family = socket.AF_INET6 if ":" in args.bind else socket.AF_INET
    lsock = socket.socket(family, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind((args.bind, args.port))
    lsock.listen(args.backlog)
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % lsock.getsockname()[1])
        os.rename(tmp, args.port_file)
    if args.no_accept:
        time.sleep(3600)
    lock, threads, served = threading.Lock(), [], 0
    while args.count == 0 or served < args.count:
        conn, _ = lsock.accept()
        served += 1
        t = threading.Thread(target=handle, args=(conn, args, lock), daemon=True)
        t.start()
        threads.append(t)
    for t in threads:
        t.join()


def client(args):
    host, port = args.connect.rsplit(":", 1)
    host = host.strip("[]")
    sock = socket.create_connection((host, int(port)), timeout=30)
    connected = time.monotonic()
    sock.settimeout(None)
    rx = Receiver(sock, args.duration)
    rx.start()
    result = send_all(sock, args.send, args.chunk, args.write_delay)
    rx.join()
    # Connected to finished receiving: the relay's time, not the
    # interpreter's start-up (seconds on a loaded machine).
    result["elapsed"] = round(time.monotonic() - connected, 3)
    sock.close()
    result.update(rx.report())
    print(json.dumps(result))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("role", choices=["server", "client"])
    p.add_argument("--bind", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--port-file")
    p.add_argument("--backlog", type=int, default=128)
    p.add_argument("--no-accept", action="store_true")
    p.add_argument("--count", type=int, default=0)
    p.add_argument("--report")
    p.add_argument("--connect")
    p.add_argument("--send", type=int, default=0)
    p.add_argument("--chunk", type=int, default=65536)
    p.add_argument("--write-delay", type=float, default=0.0)
    p.add_argument("--delay-close", type=float, default=0.0)
    p.add_argument("--duration", type=float)
    args = p.parse_args()
    (server if args.role == "server" else client)(args)


if __name__ == "__main__":
    main()
