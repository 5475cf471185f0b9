"""redis_client: the idle client of the redis demo, in the same tree as the server.

Started as the root of `sh -c "redis-server ... & exec python3 redis_client.py WORKDIR"`:
connects to the server's unix socket, stores a key, writes WORKDIR/ready and waits for
WORKDIR/go; after restore it uses the same connection: the key is still there, a new SET and
a PING work. Writes WORKDIR/result (PASS or what failed) and shuts the server down.
"""
import os
import socket
import sys
import time

d = sys.argv[1]
path = os.path.join(d, "redis.sock")
for _ in range(200):
    if os.path.exists(path):
        break
    time.sleep(0.05)
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(path)


def cmd(*args):
    s.sendall(b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args))
    return s.recv(4096)


fails = []
if cmd(b"SET", b"k", b"before") != b"+OK\r\n":
    fails.append("setup: SET failed")
tmp = os.path.join(d, ".ready.tmp")
with open(tmp, "w") as f:
    f.write(str(os.getpid()))
os.rename(tmp, os.path.join(d, "ready"))
while not os.path.exists(os.path.join(d, "go")):
    time.sleep(0.02)
got = cmd(b"GET", b"k")
if got != b"$6\r\nbefore\r\n":
    fails.append("FAIL: GET k after restore: %r" % got)
got = cmd(b"SET", b"k2", b"after")
if got != b"+OK\r\n":
    fails.append("FAIL: SET after restore: %r" % got)
got = cmd(b"PING")
if got != b"+PONG\r\n":
    fails.append("FAIL: PING after restore: %r" % got)
with open(os.path.join(d, "result"), "w") as f:
    f.write("\n".join(fails) if fails else "PASS")
try:
    s.sendall(b"*2\r\n$8\r\nSHUTDOWN\r\n$6\r\nNOSAVE\r\n")
except OSError:
    pass
sys.exit(1 if fails else 0)
