#!/usr/bin/python3
"""An independent peer of CRIU 4.2's page-server protocol, to test cryo's ends of it.

  ps_peer.py serve PORT DIR [--status FILE]
      A page server: accepts one connection, checks every message strictly against the
      documented layout and writes what it receives as images in DIR (pycriu encodes the
      pagemaps; pages ids from 0x10001 on). Prints a summary line; exit status 0 when the
      client ended the protocol properly.
  ps_peer.py send PORT SRC_DIR PID [--legacy] [--parent-probe ID...] [--stop-after N]
      A client: sends SRC_DIR/pagemap-PID.img and its pages to a page server on 127.0.0.1.
      --legacy uses OPEN, ADD and HOLE (no answers) instead of OPEN2 and ADD_F. Each
      --parent-probe ID asks PARENT for pagemap-ID.img and prints the answer. --stop-after N
      hangs up after N pages without closing (a dump dying mid-way).

The header (x86-64, host byte order): u32 cmd, 4 bytes padding, u64 nr_pages, u64 vaddr,
u64 dst_id; cmd's high 16 bits are pagemap flags; dst_id = id << 8 | type (1 task, 2 shmem).
"""
import json
import os
import socket
import struct
import sys

sys.path.insert(0, "/usr/lib/python3/dist-packages")
from pycriu import images  # noqa: E402

HDR = struct.Struct("<IIQQQ")
assert HDR.size == 32
ADD, HOLE, OPEN, OPEN2, PARENT, ADD_F, GET = 1, 2, 3, 4, 5, 6, 7
CLOSE, FORCE_CLOSE = 0x1023, 0x1024
PE_PARENT, PE_LAZY, PE_PRESENT = 1, 2, 4
PAGE = 4096


def die(msg):
    print("ps_peer: " + msg, file=sys.stderr)
    sys.exit(1)


def recv_all(sk, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sk.recv(min(n - len(buf), 1 << 20))
        if not chunk:
            return bytes(buf)
        buf += chunk
    return bytes(buf)


def image_name(dst):
    kind, ident = dst & 0xFF, dst >> 8
    if kind == 1:
        return "pagemap-%d.img" % ident
    if kind == 2:
        return "pagemap-shmem-%d.img" % ident
    die("unknown pagemap type %d in dst_id %#x" % (kind, dst))


def serve(port, out_dir, status_file):
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(1)
    if status_file:
        open(status_file, "w").write("listening\n")
    sk, _ = ls.accept()
    ls.close()
    sk.settimeout(60)
    next_id = 0x10001
    cur = None  # [dst, name, pages_id, entries, pages file]
    stats = {"images": 0, "pages": 0, "holes": 0, "commands": []}

    def finish(c):
        if c is None:
            return
        c[4].close()
        with open(os.path.join(out_dir, c[1]), "wb") as f:
            images.dump({"magic": "PAGEMAP", "entries": [{"pages_id": c[2]}] + c[3]}, f)

    while True:
        raw = recv_all(sk, HDR.size)
        if not raw:
            die("the client hung up without CLOSE")
        if len(raw) != HDR.size:
            die("a truncated header (%d bytes)" % len(raw))
        cmd, pad, nr, vaddr, dst = HDR.unpack(raw)
        if pad != 0:
            die("padding bytes after cmd are not zero: %#x" % pad)
        op, flags = cmd & 0xFFFF, cmd >> 16
        stats["commands"].append(op)
        if op in (OPEN, OPEN2):
            if nr or vaddr:
                die("OPEN carries nr_pages %d vaddr %#x" % (nr, vaddr))
            finish(cur)
            name = image_name(dst)
            cur = [dst, name, next_id, [], open(os.path.join(out_dir, "pages-%d.img" % next_id), "wb")]
            next_id += 1
            stats["images"] += 1
            if op == OPEN2:
                sk.sendall(b"\0")  # no parent here
        elif op == PARENT:
            image_name(dst)
            sk.sendall(struct.pack("<i", 0))
        elif op in (ADD, HOLE, ADD_F):
            if cur is None or cur[0] != dst:
                die("pages for %#x without OPEN" % dst)
            if op == ADD:
                flags = PE_PRESENT
            elif op == HOLE:
                flags = PE_PARENT
            if nr == 0 or vaddr % PAGE:
                die("bad entry: %d pages at %#x" % (nr, vaddr))
            if flags & ~(PE_PARENT | PE_LAZY | PE_PRESENT):
                die("unknown flags %#x" % flags)
            if cur[3]:
                last = cur[3][-1]
                if vaddr < last["vaddr"] + last["nr_pages"] * PAGE:
                    die("entries out of order: %#x after %#x" % (vaddr, last["vaddr"]))
            cur[3].append({"vaddr": vaddr, "nr_pages": nr, "flags": flags})
            if flags & PE_PRESENT:
                data = recv_all(sk, nr * PAGE)
                if len(data) != nr * PAGE:
                    die("the client hung up inside the pages of an entry")
                cur[4].write(data)
                stats["pages"] += nr
            else:
                stats["holes"] += nr
        elif op in (CLOSE, FORCE_CLOSE):
            if nr or vaddr or dst or flags:
                die("CLOSE carries data: %r" % (HDR.unpack(raw),))
            finish(cur)
            sk.sendall(struct.pack("<i", 0))
            if op == CLOSE and recv_all(sk, 1) != b"":
                die("data after CLOSE")
            break
        else:
            die("unknown command %#x" % cmd)
    sk.close()
    del stats["commands"][:]
    print(json.dumps(stats))


def send(port, src, pid, legacy, probes, stop_after):
    with open(os.path.join(src, "pagemap-%d.img" % pid), "rb") as f:
        pm = images.load(f)["entries"]
    pages_id = pm[0]["pages_id"]
    data = open(os.path.join(src, "pages-%d.img" % pages_id), "rb").read()
    dst = pid << 8 | 1
    sk = socket.create_connection(("127.0.0.1", port), timeout=60)

    def hdr(cmd, nr=0, vaddr=0, d=0):
        sk.sendall(HDR.pack(cmd, 0, nr, vaddr, d))

    for p in probes:
        hdr(PARENT, d=p << 8 | 1)
        print("parent %d: %d" % (p, struct.unpack("<i", recv_all(sk, 4))[0]))
    if legacy:
        hdr(OPEN, d=dst)
    else:
        hdr(OPEN2, d=dst)
        print("open2 parent: %d" % recv_all(sk, 1)[0])
    off = 0
    sent = 0
    for e in pm[1:]:
        flags = e.get("flags", PE_PRESENT)
        if isinstance(flags, str):
            flags = sum({"PE_PARENT": 1, "PE_LAZY": 2, "PE_PRESENT": 4}[x.strip()] for x in flags.split("|"))
        nr, vaddr = e["nr_pages"], e["vaddr"]
        if legacy and flags == PE_PRESENT:
            hdr(ADD, nr, vaddr, dst)
        elif legacy and flags == PE_PARENT:
            hdr(HOLE, nr, vaddr, dst)
        else:
            hdr(ADD_F | flags << 16, nr, vaddr, dst)
        if flags & PE_PRESENT:
            chunk = data[off:off + nr * PAGE]
            if stop_after is not None and sent + nr > stop_after:
                sk.sendall(chunk[: (stop_after - sent) * PAGE])
                sk.close()
                print("hung up after %d pages" % stop_after)
                return
            sk.sendall(chunk)
            off += nr * PAGE
            sent += nr
    if off != len(data):
        die("the pagemap lists %d bytes of pages, the pages image has %d" % (off, len(data)))
    hdr(CLOSE)
    status = recv_all(sk, 4)
    if len(status) != 4:
        die("no status after CLOSE")
    print("close status: %d" % struct.unpack("<i", status)[0])
    sk.close()


def main(argv):
    if len(argv) >= 3 and argv[0] == "serve":
        status = argv[argv.index("--status") + 1] if "--status" in argv else None
        serve(int(argv[1]), argv[2], status)
    elif len(argv) >= 4 and argv[0] == "send":
        probes, stop = [], None
        i = 4
        while i < len(argv):
            if argv[i] == "--parent-probe":
                probes.append(int(argv[i + 1]))
                i += 2
            elif argv[i] == "--stop-after":
                stop = int(argv[i + 1])
                i += 2
            elif argv[i] == "--legacy":
                i += 1
            else:
                die("unknown argument " + argv[i])
        send(int(argv[1]), argv[2], int(argv[3]), "--legacy" in argv, probes, stop)
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main(sys.argv[1:])
