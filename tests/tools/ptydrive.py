#!/usr/bin/env python3
"""Drive an interactive program through a pseudo-terminal, one command at a
time, for bash tests (run it as a coprocess).

  ptydrive.py --log FILE --last FILE -- PROGRAM ARGS...

Commands on stdin, one a line; one reply line on stdout for each:
  send TEXT         type TEXT and Enter (CR)            -> ok
  raw HEX           write these bytes (03 = ctrl-c)      -> ok
  expect SEC REGEX  wait until REGEX (Python re, MULTILINE) matches the
                    output not yet consumed; the consumed text (up to the
                    end of the match) goes to --last     -> ok | timeout | eof
  wait SEC          wait for the program to exit         -> exit N | timeout
  pid               the program's pid                    -> pid N

Output is matched after removing CR and terminal escape sequences; the raw
output is appended to --log.  On end of stdin or SIGTERM the program gets
SIGTERM, then SIGKILL after 3 s.
"""
import os, pty, re, select, signal, sys, time

# A tiny terminal model: "\r ESC[K" clears the line being drawn (the
# prompt's redraws, a message printed above the prompt), other escapes and
# carriage returns are dropped, "\n" ends a line.
TOKEN = re.compile(rb"\r\x1b\[K|\x1b\[[0-9;?]*[A-Za-z~]|\x1b[()][A-Za-z0-9]"
                   rb"|\r|\n|[^\r\n\x1b]+|\x1b")
PARTIAL = re.compile(rb"(\r(\x1b(\[)?)?|\x1b(\[[0-9;?]*|[()])?)$")


class Driver:
    def __init__(self, argv, log_path, last_path):
        self.log = open(log_path, "ab", buffering=0)
        self.last_path = last_path
        self.pending = b""     # an escape sequence not yet complete
        self.committed = ""    # whole lines
        self.line = ""         # the line being drawn
        self.mark = 0          # characters of committed + line consumed
        self.eof = False
        self.status = None
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            try:
                os.execvp(argv[0], argv)
            finally:
                os._exit(127)

    def pump(self, timeout):
        """Read what the program wrote, waiting at most timeout."""
        if self.eof:
            time.sleep(min(timeout, 0.05))
            return
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return
        try:
            data = os.read(self.fd, 65536)
        except OSError:
            data = b""
        if not data:
            self.eof = True
            return
        self.log.write(data)
        self.feed(data)

    def feed(self, data):
        data = self.pending + data
        partial = PARTIAL.search(data)
        cut = partial.start() if partial else len(data)
        self.pending = data[cut:]
        for token in TOKEN.findall(data[:cut]):
            if token == b"\r\x1b[K":
                self.line = ""
                # What was consumed of a cleared line is gone with it.
                self.mark = min(self.mark, len(self.committed))
            elif token == b"\n":
                self.committed += self.line + "\n"
                self.line = ""
            elif token[:1] in (b"\r", b"\x1b"):
                continue
            else:
                self.line += token.decode("utf-8", "replace")

    def text(self):
        return self.committed + self.line

    def expect(self, seconds, pattern):
        regex = re.compile(pattern, re.MULTILINE)
        deadline = time.monotonic() + seconds
        while True:
            text = self.text()
            match = regex.search(text, self.mark)
            if match:
                with open(self.last_path, "w") as last:
                    last.write(text[self.mark:match.end()])
                self.mark = match.end()
                return "ok"
            left = deadline - time.monotonic()
            if left <= 0:
                break
            if self.eof:
                return "eof"
            self.pump(min(left, 0.1))
        with open(self.last_path, "w") as last:
            last.write(self.text()[self.mark:])
        return "timeout"

    def reap(self, block):
        if self.status is not None:
            return True
        pid, status = os.waitpid(self.pid, 0 if block else os.WNOHANG)
        if pid == 0:
            return False
        self.status = os.waitstatus_to_exitcode(status)
        return True

    def wait(self, seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.pump(0.05)
            if self.reap(False):
                return "exit %d" % self.status
        return "timeout"

    def write(self, data):
        try:
            os.write(self.fd, data)
        except OSError:
            pass

    def stop(self):
        if self.status is not None:
            return
        try:
            os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            self.pump(0.05)
            if self.reap(False):
                return
        os.kill(self.pid, signal.SIGKILL)
        self.reap(True)


def main():
    args = sys.argv[1:]
    opts = {}
    while args and args[0] != "--":
        opts[args[0]] = args[1]
        args = args[2:]
    driver = Driver(args[1:], opts["--log"], opts["--last"])

    def on_term(signo, frame):
        raise SystemExit(0)
    signal.signal(signal.SIGTERM, on_term)
    try:
        for line in sys.stdin:
            line = line.rstrip("\n")
            verb, _, rest = line.partition(" ")
            if verb == "send":
                driver.write(rest.encode() + b"\r")
                reply = "ok"
            elif verb == "raw":
                driver.write(bytes.fromhex(rest))
                reply = "ok"
            elif verb == "expect":
                seconds, _, pattern = rest.partition(" ")
                reply = driver.expect(float(seconds), pattern)
            elif verb == "wait":
                reply = driver.wait(float(rest))
            elif verb == "pid":
                reply = "pid %d" % driver.pid
            else:
                reply = "error unknown command " + verb
            print(reply, flush=True)
    finally:
        driver.stop()


if __name__ == "__main__":
    main()
