#!/usr/bin/env python3
"""A client that reads late, for the tests of how a relay ends.

  latereader.py --connect HOST:PORT --ready FILE [--hold S] [--go FILE]
                [--rcvbuf N] [--read-rate BPS] [--timeout S]

Connects with a small receive buffer, half-closes its sending side at once
(it sends nothing: the request is complete), writes FILE, then reads
nothing for --hold seconds, or with --go until FILE exists (at most 60 s:
the relay's buffers fill meanwhile and the test stops the relay or lets it
idle, however long a loaded machine takes), then reads until the end of
the stream
(at --read-rate bytes a second if given).  Prints one JSON line:
  recv      bytes received
  recv_sha  their SHA-256
  end       "eof" (a clean end of stream), "reset" (ECONNRESET), "timeout"
            (nothing for --timeout seconds) or "error: ..."
  elapsed   seconds from connecting to the end
"""
import argparse, hashlib, json, os, socket, time


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--connect", required=True)
    p.add_argument("--ready", required=True)
    p.add_argument("--hold", type=float, default=0.0)
    p.add_argument("--go")
    p.add_argument("--rcvbuf", type=int, default=65536)
    p.add_argument("--read-rate", type=float, default=0.0)
    p.add_argument("--timeout", type=float, default=30.0)
    args = p.parse_args()

    host, port = args.connect.rsplit(":", 1)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, args.rcvbuf)
    sock.settimeout(10)
    sock.connect((host.strip("[]"), int(port)))
    start = time.monotonic()
    sock.shutdown(socket.SHUT_WR)
    with open(args.ready + ".tmp", "w") as f:
        f.write("connected\n")
    os.rename(args.ready + ".tmp", args.ready)
    time.sleep(args.hold)
    if args.go:
        deadline = time.monotonic() + 60
        while not os.path.exists(args.go) and time.monotonic() < deadline:
            time.sleep(0.02)
    sha, count, end = hashlib.sha256(), 0, None
    sock.settimeout(args.timeout)
    piece = 65536
    if args.read_rate:
        piece = max(1, int(args.read_rate / 10))
    try:
        while True:
            data = sock.recv(piece)
            if not data:
                end = "eof"
                break
            count += len(data)
            sha.update(data)
            if args.read_rate:
                time.sleep(len(data) / args.read_rate)
    except ConnectionResetError:
        end = "reset"
    except socket.timeout:
        end = "timeout"
    except OSError as e:
        end = "error: %s" % e
    print(json.dumps({"recv": count, "recv_sha": sha.hexdigest(), "end": end,
                      "elapsed": round(time.monotonic() - start, 3)}))


main()
