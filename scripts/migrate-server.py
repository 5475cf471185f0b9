#!/usr/bin/python3
"""The service of the migration demo (scripts/migrate-demo.sh).

  migrate-server.py ADDR PORT MIB READY_FILE

Holds MIB MiB of memory (not zero, not compressible page by page) and serves one TCP
connection: each request line "N" is answered "N\\n" after the 8 bytes of N are written into a
page of the memory (so the memory keeps changing while it runs); the line "verify" is answered
"verify ok PAGES" when every page holds what it should, else "verify BAD ...". Writes its pid
into READY_FILE once listening.
"""
import os
import socket
import struct
import sys

addr, port, mib, ready = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
BLOCK = 1 << 20
base = os.urandom(BLOCK)
mem = bytearray(BLOCK * mib)
for i in range(mib):
    mem[i * BLOCK:(i + 1) * BLOCK] = base
npages = len(mem) // 4096
changed = {}  # offset -> the 8 bytes written there

ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind((addr, port))
ls.listen(1)
with open(ready + ".tmp", "w") as f:
    f.write(str(os.getpid()))
os.rename(ready + ".tmp", ready)


def verify():
    bad = 0
    for blk in range(mib):
        want = bytearray(base)
        lo = blk * BLOCK
        for off, val in changed.items():
            if lo <= off < lo + BLOCK:
                want[off - lo:off - lo + 8] = val
        if mem[lo:lo + BLOCK] != want:
            bad += 1
    return "verify ok %d" % npages if bad == 0 else "verify BAD %d MiB blocks differ" % bad


sk, _ = ls.accept()
buf = b""
while True:
    data = sk.recv(65536)
    if not data:
        break
    buf += data
    out = []
    while b"\n" in buf:
        line, buf = buf.split(b"\n", 1)
        if line == b"verify":
            out.append(verify().encode() + b"\n")
            continue
        n = int(line)
        off = (n * 7919 % npages) * 4096 + (n % 500) * 8
        val = struct.pack("<Q", n)
        mem[off:off + 8] = val
        changed[off] = val
        out.append(line + b"\n")
    sk.sendall(b"".join(out))
