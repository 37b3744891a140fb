# notifylog.py SOCKET LOG SECONDS [--stamp]: a stand-in for systemd's
# notify socket.  Every sd_notify datagram's lines are appended to LOG, one
# a line, prefixed with the CLOCK_MONOTONIC second they came at when
# --stamp is given (for tests that time the watchdog); gone after SECONDS.
import socket, sys, time

path, log_path, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
stamp = "--stamp" in sys.argv[4:]
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind(path)
sock.settimeout(1)
end = time.monotonic() + seconds
with open(log_path, "a") as log:
    while time.monotonic() < end:
        try:
            data = sock.recv(4096)
        except socket.timeout:
            continue
        for line in data.decode().split("\n"):
            if line:
                log.write("%.3f %s\n" % (time.monotonic(), line) if stamp
                          else line + "\n")
        log.flush()
