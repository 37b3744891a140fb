#!/usr/bin/env python3
"""ofdlock.py FILE: prints "locked" when some open file description holds
a write lock on FILE (F_OFD_GETLK, as the refiller election takes it),
else "free".  Run by a process holding no lock on FILE itself."""
import fcntl, os, struct, sys

F_OFD_GETLK = 36
fd = os.open(sys.argv[1], os.O_RDWR)
# struct flock on Linux x86_64/aarch64: short type, short whence, (pad),
# off_t start, off_t len, pid_t pid, (pad).
req = struct.pack("hh4xqqi4x", fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
got = fcntl.fcntl(fd, F_OFD_GETLK, req)
print("free" if struct.unpack("hh4xqqi4x", got)[0] == fcntl.F_UNLCK else "locked")
