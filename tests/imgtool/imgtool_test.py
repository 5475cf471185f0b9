#!/usr/bin/python3
"""cryo decode / encode / show against Debian's crit, on real dumps and generated images.

Usage: imgtool_test.py CRYO PROGS_DIR PROTO_DIR [PROTOC]      (as root)

1. Real dumps: each of a set of tests/cr programs (PROGS_DIR) is started as the cr driver
   does (own session, stdio on /dev/null) and dumped with `cryo dump`. For every image but the
   raw pages-*.img:
   - `cryo decode` (plain and --pretty, -o FILE, stdout, stdin) prints exactly crit's JSON
     (crit's own decode function, in process; the /usr/bin/crit command for the first image
     of each kind). Fields only cryo's schema has (CRYO_ONLY) are the one allowed
     difference: crit skips them as unknown, cryo keeps them (see below);
   - decode -> `cryo encode` gives back the image byte for byte (plain and pretty JSON);
   - `cryo encode` of crit's JSON gives the original image (or, for an image with cryo-only
     fields, crit's own encoding of its JSON).
2. Generated images: for every image kind cryo knows, entries with random values in every
   field (crit's message classes, only fields cryo's schema has), encoded by crit: the same
   checks, which reach the formatting rules (hex, flags, dev, dict, IP, quoted-printable
   unix names, unicode, base64 lines) on values no dump has.
3. Errors: a missing file, an empty, truncated or corrupt image, a wrong magic, invalid or
   wrong JSON, bad options: exit status 1, one "Error: ..." line naming the cause.
4. `cryo show` on the real dumps: every process with its command, its areas and dumped pages,
   every fd with its kind, unix peers, and totals as the images hold them.

Exits 1 on any failure.
"""

import base64
import collections
import glob
import io
import json
import os
import random
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, "/usr/lib/python3/dist-packages")
import pycriu  # noqa: E402
import pycriu.cli  # noqa: E402
from pycriu.images import images as crit_images  # noqa: E402
from pycriu.images import magic as crit_magic  # noqa: E402
from pycriu.images import pb2dict as crit_pb2dict  # noqa: E402
from google.protobuf import descriptor_pb2  # noqa: E402
from google.protobuf.descriptor import FieldDescriptor as FD  # noqa: E402

CRIT = "/usr/bin/crit"

# Programs of tests/cr/progs dumped here, with the options their dump needs, and the image
# kinds they are there for.
PROGS = [
    ("pipes", []),  # PIPES_DATA, FIFO_DATA, eventfd
    ("unix_sockets", []),  # SK_QUEUES, unix names (quoted-printable), peers
    ("inet_sockets", []),  # IPv4/IPv6 addresses, sk dicts
    ("memfd", []),  # MEMFD_INODE, seals flags
    ("epoll", []),  # eventpoll
    ("event_fds", []),  # timerfd, signalfd
    ("deleted_files", []),  # GHOST_FILE (chunks), REMAP_FPATH
    ("file_locks", ["-l"]),  # FILE_LOCKS
    ("inotify", []),  # inotify wds: dev, hex
    ("fanotify", []),  # fanotify marks
    ("pty", []),  # TTY_INFO, TTY_DATA
    ("seccomp", []),  # SECCOMP, creds.no_new_privs
    ("threads", []),  # thread cores
    ("tree", []),  # several processes, a zombie
    ("shmem", []),  # pagemap-shmem
    ("sysv_shm", []),  # IPCNS_SHM (content padded to 4 bytes)
    ("ipcns_sysv", []),  # IPC_VAR, IPCNS_SEM (values), IPCNS_MSG (messages), IPCNS_SHM
    ("signals_pending", []),  # siginfo bytes
    ("ptimers", []),  # posix timers
    ("memory", []),  # every kind of area
    ("creds", []),  # capabilities, groups
    ("mlock", []),  # MAP_LOCKED, locked on fault, mlockall(MCL_FUTURE)
]

# Fields cryo's schema has and Debian's crit (CRIU 3.17) does not: crit skips them as unknown
# fields when it decodes, cryo shows them (so that decode -> encode gives the same image).
CRYO_ONLY = {"no_new_privs", "cryo_target_id", "cryo_peer_closed", "cap_amb", "stop_signo",
             "membarrier_registration_mask", "cryo_time_for_children_ns_id",
             "cryo_lock_onfault", "cryo_accounted", "cryo_mlockall", "cryo_timerslack_ns"}
# The same, for a field name other messages use too: name -> the keys that tell its message.
CRYO_ONLY_IN = {"mode": {"shmid", "seals", "inode_id"}}  # memfd_inode_entry.mode (CRIU 4.2)

failures = []
notes = collections.Counter()


def fail(msg):
    failures.append(msg)
    print("FAIL: " + msg, flush=True)


def run(args, stdin=None, input_bytes=None):
    return subprocess.run(args, stdin=stdin, input=input_bytes, capture_output=True)


# --- crit, in process (crit's own functions, as its `decode` / `encode` commands) ---

def crit_decode(path, pretty):
    """crit decode -i PATH -o FILE [--pretty]: the JSON text crit writes to a file."""
    with tempfile.NamedTemporaryFile("r", suffix=".json") as out:
        pycriu.cli.decode({"in": path, "out": out.name, "pretty": pretty, "nopl": False})
        return open(out.name).read()


def crit_encode(text):
    return crit_images.dumps(json.loads(text))


def strip_cryo_only(text, pretty):
    """The JSON text without the fields crit does not know, printed as crit prints."""
    def strip(v):
        if isinstance(v, dict):
            return collections.OrderedDict(
                (k, strip(x)) for k, x in v.items()
                if k not in CRYO_ONLY and not CRYO_ONLY_IN.get(k, {None}) <= v.keys())
        if isinstance(v, list):
            return [strip(x) for x in v]
        return v
    obj = json.loads(text, object_pairs_hook=collections.OrderedDict)
    return json.dumps(strip(obj), indent=4 if pretty else None)


def first_diff(a, b):
    n = next((i for i in range(min(len(a), len(b))) if a[i] != b[i]), min(len(a), len(b)))
    return "at char %d: crit ...%r... cryo ...%r..." % (n, a[max(0, n - 60):n + 60], b[max(0, n - 60):n + 60])


# --- dumping the test programs ---

def remove_sysv_segments(d):
    """SysV segments outlive their processes: those a killed program listed in WORKDIR/ids go."""
    ids = os.path.join(d, "ids")
    if os.path.exists(ids):
        for i in open(ids).read().split():
            subprocess.run(["ipcrm", "-m", i], stderr=subprocess.DEVNULL)


def dump_prog(cryo, progs_dir, work, name, opts):
    d = os.path.join(work, name)
    img = os.path.join(d, "img")
    for attempt in range(2):
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(img)
        p = subprocess.Popen([os.path.join(progs_dir, name), d], stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True, close_fds=True)
        try:
            ready = os.path.join(d, "ready")
            deadline = time.time() + 20
            while time.time() < deadline:
                if os.path.exists(ready) and open(ready).read().strip().isdigit():
                    break
                if p.poll() is not None:
                    break
                time.sleep(0.05)
            else:
                fail("%s did not get ready" % name)
                return None
            if p.poll() is not None:
                fail("%s exited with %s before it was ready" % (name, p.returncode))
                return None
            pid = int(open(ready).read().strip())
            time.sleep(0.2)
            r = subprocess.run([cryo, "dump", "-t", str(pid), "-D", img, "-o",
                                os.path.join(d, "dump.log"), "-v4"] + opts,
                               capture_output=True, timeout=90)
            if r.returncode == 0:
                return img
            print("note: dump of %s failed (attempt %d): %s" %
                  (name, attempt + 1, r.stderr.decode(errors="replace").strip()[-300:]))
        finally:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()
            remove_sysv_segments(d)
    fail("cannot dump %s" % name)
    return None


# --- the comparisons ---

class Checker:
    def __init__(self, cryo, tmp):
        self.cryo = cryo
        self.tmp = tmp
        self.kinds = collections.Counter()
        self.cli_checked = set()

    def cryo_decode(self, path, pretty):
        out = os.path.join(self.tmp, "cryo.json")
        r = run([self.cryo, "decode", "-i", path, "-o", out] + (["--pretty"] if pretty else []))
        if r.returncode != 0:
            return None, r.stderr.decode(errors="replace").strip()
        return open(out).read(), ""

    def cryo_encode(self, text):
        r = run([self.cryo, "encode"], input_bytes=text.encode())
        if r.returncode != 0:
            return None, r.stderr.decode(errors="replace").strip()
        return r.stdout, ""

    def check_image(self, path, what, cli=True):
        with open(path, "rb") as f:
            original = f.read()
        has_cryo_only = False
        for pretty in (False, True):
            mode = "--pretty" if pretty else "plain"
            try:
                want = crit_decode(path, pretty)
            except Exception as e:  # crit cannot: cryo must say why, not crash
                r = run([self.cryo, "decode", "-i", path])
                if r.returncode != 1 or r.stderr.count(b"\n") != 1:
                    fail("%s: crit fails (%r), cryo exit %d: %r" % (what, e, r.returncode, r.stderr))
                return
            got, err = self.cryo_decode(path, pretty)
            if got is None:
                fail("%s %s: cryo decode failed: %s" % (what, mode, err))
                continue
            if got != want:
                stripped = strip_cryo_only(got, pretty)
                if stripped != want:
                    fail("%s %s: cryo decode differs from crit %s" % (what, mode, first_diff(want, got)))
                    continue
                has_cryo_only = True
            magic = json.loads(want)["magic"]
            if not pretty:
                self.kinds[magic] += 1
            # stdout (a new line at the end, as crit) and stdin
            args = [self.cryo, "decode"] + (["--pretty"] if pretty else [])
            if cli:
                with open(path, "rb") as f:
                    r = run(args, stdin=f)
                if r.returncode != 0 or r.stdout.decode() != got + "\n":
                    fail("%s %s: decode from stdin to stdout differs from -i/-o" % (what, mode))
                r = run(args + ["-i", "-", "-o", "-"], input_bytes=original)
                if r.returncode != 0 or r.stdout.decode() != got + "\n":
                    fail("%s %s: decode -i - -o - differs" % (what, mode))
            # the crit command itself, once per kind and mode
            if cli and (magic, pretty) not in self.cli_checked:
                self.cli_checked.add((magic, pretty))
                r = run([CRIT, "decode", "-i", path] + (["--pretty"] if pretty else []))
                if r.returncode != 0 or r.stdout.decode() != (want + "\n"):
                    fail("%s %s: /usr/bin/crit's output differs from crit's decode function" % (what, mode))
                if r.stdout.decode() != got + "\n" and not has_cryo_only:
                    fail("%s %s: cryo decode differs from /usr/bin/crit decode" % (what, mode))
            # decode -> encode: the same bytes
            back, err = self.cryo_encode(got)
            if back != original:
                fail("%s %s: cryo decode | cryo encode is not the image (%s)" % (what, mode, err or "bytes differ"))
            # crit's JSON -> cryo encode
            back, err = self.cryo_encode(want)
            expect = original if not has_cryo_only else crit_encode(want)
            if back != expect:
                fail("%s %s: cryo encode of crit's JSON is not %s (%s)" %
                     (what, mode, "the image" if not has_cryo_only else "crit's encoding",
                      err or "bytes differ"))
        if has_cryo_only:
            notes["images with cryo-only fields (crit drops them)"] += 1


# --- generated images ---

def our_fields(proto_dir, protoc):
    """message name -> {field number: field name} of cryo's schema."""
    out = os.path.join(tempfile.mkdtemp(), "d.pb")
    protos = [os.path.basename(p) for p in glob.glob(os.path.join(proto_dir, "*.proto"))]
    subprocess.run([protoc, "--include_imports", "--descriptor_set_out=" + out, "-I", proto_dir] + protos,
                   check=True, cwd=proto_dir)
    fds = descriptor_pb2.FileDescriptorSet.FromString(open(out, "rb").read())
    res = {}

    def walk(prefix, msgs):
        for m in msgs:
            res[m.name] = {f.number: f.name for f in m.field}
            walk(prefix, m.nested_type)
    for f in fds.file:
        walk("", f.message_type)
    return res


RENAMED = {"timeval": "criu_timeval", "timespec": "criu_timespec"}

STRINGS = ["", "a", "hello world", "tab\there", "quote\" back\\slash", "new\nline\r",
           "\x00\x01\x1f\x7f", "caf\u00e9", "\u20ac\u2028", "emoji \U0001F600 x",
           "/usr/lib/x86_64-linux-gnu/libc.so.6", "=3D=", "  trailing  "]


def rand_int(f, rng):
    bits = {FD.CPPTYPE_INT32: (-(2 ** 31), 2 ** 31 - 1), FD.CPPTYPE_INT64: (-(2 ** 63), 2 ** 63 - 1),
            FD.CPPTYPE_UINT32: (0, 2 ** 32 - 1), FD.CPPTYPE_UINT64: (0, 2 ** 64 - 1)}[f.cpp_type]
    lo, hi = bits
    opts = f.GetOptions().Extensions[crit_pb2dict.opts_pb2.criu]
    choices = [0, 1, hi, lo, rng.randint(lo, hi), rng.randint(0, 4096), 0x7fff5a000, 0x1ff]
    if opts.dict:
        known = list(crit_pb2dict.dict_maps[opts.dict][0].get(f.name, {}).keys())
        choices += known * 3
    if opts.flags:
        fm = crit_pb2dict.flags_maps.get(opts.flags, [])
        choices += [sum(v for _, v in rng.sample(fm, rng.randint(0, len(fm)))) for _ in range(4)]
    v = rng.choice(choices)
    return max(lo, min(hi, v))


def rand_bytes(f, rng):
    opts = f.GetOptions().Extensions[crit_pb2dict.opts_pb2.criu]
    if opts.conv == "unix_name":
        alphabet = b"abc/._-= \t\r\n\x00\xff\x7f." + bytes(range(0x20, 0x7f))
        n = rng.choice([0, 1, 2, 5, 30, 75, 76, 77, 107, 200])
        s = bytes(rng.choice(alphabet) for _ in range(n))
        return rng.choice([s, b"\x00" + s, b"/tmp/sock " + s, b".", b"a.\n.", b"x \n"])
    n = rng.choice([0, 1, 2, 3, 56, 57, 58, 114, 300])
    return bytes(rng.getrandbits(8) for _ in range(n))


def fill(msg, ours, rng, depth=0):
    desc = msg.DESCRIPTOR
    known = ours.get(RENAMED.get(desc.name, desc.name), {})
    for f in desc.fields:
        if known.get(f.number) != f.name:
            continue  # not in cryo's schema
        required = f.label == FD.LABEL_REQUIRED
        if not required and rng.random() < 0.35:
            continue
        if f.type == FD.TYPE_MESSAGE:
            if depth > 3 and not required:
                continue
            if f.label == FD.LABEL_REPEATED:
                for _ in range(rng.randint(0, 2)):
                    fill(getattr(msg, f.name).add(), ours, rng, depth + 1)
            else:
                getattr(msg, f.name).SetInParent()
                fill(getattr(msg, f.name), ours, rng, depth + 1)
            continue

        def one():
            if f.type == FD.TYPE_ENUM:
                return rng.choice(f.enum_type.values).number
            if f.type == FD.TYPE_BOOL:
                return rng.random() < 0.5
            if f.type == FD.TYPE_STRING:
                return rng.choice(STRINGS)
            if f.type == FD.TYPE_BYTES:
                return rand_bytes(f, rng)
            return rand_int(f, rng)
        if f.label == FD.LABEL_REPEATED:
            opts = f.GetOptions().Extensions[crit_pb2dict.opts_pb2.criu]
            n = rng.choice([1, 4]) if opts.ipadd else rng.randint(0, 3)
            getattr(msg, f.name).extend([one() for _ in range(n)])
        else:
            setattr(msg, f.name, one())


def generated_images(ours, rng, out_dir):
    """kind -> list of image paths, written with crit's encoder."""
    kinds = [k for k in crit_images.handlers
             if k not in ("PAGEMAP", "GHOST_FILE") and k in crit_magic.by_name]
    paths = []
    for kind in kinds:
        h = crit_images.handlers[kind]
        payload = getattr(h, "payload", None)
        if payload is None or payload.DESCRIPTOR.name not in ours:
            continue
        if h.extra_handler is not None and kind not in ("PIPES_DATA", "FIFO_DATA", "SK_QUEUES",
                                                        "TCP_STREAM"):
            continue
        for sample in range(5):
            entries = []
            for _ in range(rng.randint(1 if sample else 0, 4)):
                m = payload()
                fill(m, ours, rng)
                e = crit_pb2dict.pb2dict(m)
                if kind == "TCP_STREAM":  # two queues: {"inq": ..., "outq": ...}
                    q = [bytes(rng.getrandbits(8) for _ in range(rng.choice([0, 1, 57, 200])))
                         for _ in range(2)]
                    e["inq_len"], e["outq_len"] = len(q[0]), len(q[1])
                    e["extra"] = {"inq": base64.encodebytes(q[0]).decode(),
                                  "outq": base64.encodebytes(q[1]).decode()}
                elif h.extra_handler is not None:
                    data = bytes(rng.getrandbits(8) for _ in range(rng.choice([0, 1, 57, 200])))
                    field = "bytes" if kind in ("PIPES_DATA", "FIFO_DATA") else "length"
                    e[field] = len(data)
                    e["extra"] = base64.encodebytes(data).decode()
                entries.append(e)
            p = os.path.join(out_dir, "%s-%d.img" % (kind.lower(), sample))
            with open(p, "wb") as f:
                f.write(crit_images.dumps({"magic": kind, "entries": entries}))
            paths.append(p)
    # pagemap: a head, then entries
    pm = []
    for sample in range(2):
        es = [{"pages_id": rng.randint(1, 9)}]
        for _ in range(rng.randint(0, 5)):
            e = {"vaddr": rng.randint(0, 2 ** 47) & ~0xfff, "nr_pages": rng.randint(1, 999)}
            if rng.random() < 0.7:
                e["flags"] = rng.choice([1, 2, 4, 6, 12, 0])
            if rng.random() < 0.3:
                e["in_parent"] = True
            es.append(e)
        p = os.path.join(out_dir, "pagemap-%d.img" % sample)
        open(p, "wb").write(crit_images.dumps({"magic": "PAGEMAP", "entries": es}))
        pm.append(p)
    # ghost files: without chunks (all the content as one extra), and with chunks
    g = {"uid": 0, "gid": 5, "mode": 0o100644, "dev": (8 << 20) | 1, "ino": 77, "rdev": 0x10302,
         "atim": {"tv_sec": 1, "tv_usec": 2}, "mtim": {"tv_sec": 3, "tv_usec": 4}, "size": 300}
    whole = dict(g, extra=base64.encodebytes(bytes(range(256)) * 2).decode())
    chunked = [dict(g, chunks=True), {"len": 5, "off": 0, "extra": base64.encodebytes(b"hello").decode()},
               {"len": 70, "off": 4096, "extra": base64.encodebytes(b"x" * 70).decode()}]
    for n, es in enumerate([[whole], chunked, [dict(g, chunks=True)]]):
        p = os.path.join(out_dir, "ghost-%d.img" % n)
        open(p, "wb").write(crit_images.dumps({"magic": "GHOST_FILE", "entries": es}))
        pm.append(p)
    return paths + pm


# --- every magic crit knows ---

def check_magics(cryo):
    """Each image kind crit names: an image with no entries encodes to crit's bytes and
    decodes back, or, for a kind cryo's schema has no message for, both directions say so."""
    for name, value in sorted(crit_magic.by_name.items()):
        if name in ("IMG_COMMON", "IMG_SERVICE", "CRTOOLS_IMAGES_V1_1"):
            continue
        text = json.dumps({"magic": name, "entries": []})
        r = run([cryo, "encode"], input_bytes=text.encode())
        try:
            want = crit_images.dumps({"magic": name, "entries": []})
        except Exception:  # crit has no handler (SIGNAL, ...) or needs an entry (GHOST_FILE)
            want = struct.pack("<II", magic_common(name), value)
        if r.returncode == 0:
            if r.stdout != want:
                fail("encode of an empty %s image: %r, crit %r" % (name, r.stdout, want))
            d = run([cryo, "decode"], input_bytes=want)
            if d.returncode != 0 or d.stdout.decode() != text + "\n":
                fail("decode of an empty %s image: %r" % (name, d.stdout + d.stderr))
            notes["kinds cryo encodes and decodes"] += 1
            continue
        err = r.stderr.decode(errors="replace")
        d = run([cryo, "decode"], input_bytes=want)
        derr = d.stderr.decode(errors="replace")
        if ("image kind %s is not one cryo's schema knows" % name not in err or
                "image kind %s is not one cryo's schema knows" % name not in derr):
            fail("kind %s: encode says %r, decode says %r" % (name, err, derr))
        notes["kinds cryo refuses by name"] += 1


def magic_common(name):
    return crit_magic.by_name["IMG_SERVICE" if name in ("STATS", "IRMAP_CACHE") else "IMG_COMMON"]


# --- JSON laid out otherwise than crit writes it ---

def check_layouts(cryo, image):
    """cryo encode reads any JSON layout of an image as crit does (json.load): members in
    another order, more members, other blanks, a repeated member (the last one counts)."""
    img = json.loads(crit_decode(image, False), object_pairs_hook=collections.OrderedDict)
    # crit's own encoding: the image itself, but for fields crit does not know (CRYO_ONLY)
    original = crit_encode(json.dumps(img))
    texts = {
        "entries before magic": json.dumps({"entries": img["entries"], "magic": img["magic"]}),
        "another member": json.dumps({"magic": img["magic"], "entries": img["entries"], "x": [1, {}]}),
        "indent 1, no spaces": json.dumps(img, indent=1, separators=(",", ":")),
        "repeated entries": '{"magic": %s, "entries": [], "entries": %s}' % (
            json.dumps(img["magic"]), json.dumps(img["entries"])),
        "repeated magic": '{"magic": "PSTREE", "entries": %s, "magic": %s}' % (
            json.dumps(img["entries"]), json.dumps(img["magic"])),
    }
    for what, text in texts.items():
        r = run([cryo, "encode"], input_bytes=text.encode())
        if r.returncode != 0 or r.stdout != original:
            fail("encode of %s JSON with %s: exit %d %s" % (image, what, r.returncode,
                                                           r.stderr.decode(errors="replace").strip()))
        else:
            notes["JSON layouts"] += 1


# --- errors ---

def check_errors(cryo, tmp, some_image, pages_image):
    def expect(args, needle, what, input_bytes=None):
        r = run([cryo] + args, input_bytes=input_bytes)
        err = r.stderr.decode(errors="replace")
        lines = err.splitlines()
        if (r.returncode != 1 or len(lines) != 1 or not lines[0].startswith("Error: ") or
                needle.lower() not in lines[0].lower() or r.stdout):
            fail("error case %s: exit %d, stdout %d bytes, stderr %r (want one 'Error: ...%s...' line)"
                 % (what, r.returncode, len(r.stdout), err, needle))
        else:
            notes["error cases"] += 1

    data = open(some_image, "rb").read()
    p = lambda name: os.path.join(tmp, name)  # noqa: E731
    expect(["decode", "-i", p("missing.img")], "No such file", "missing file")
    open(p("empty.img"), "wb").close()
    expect(["decode", "-i", p("empty.img")], "empty", "empty file")
    open(p("short.img"), "wb").write(data[:3])
    expect(["decode", "-i", p("short.img")], "truncated", "3 bytes")
    open(p("trunc.img"), "wb").write(data[:len(data) // 2 + 3])
    expect(["decode", "-i", p("trunc.img")], "truncated", "truncated image")
    open(p("magic.img"), "wb").write(b"\x01\x02\x03\x04" + data[8:])
    expect(["decode", "-i", p("magic.img")], "unknown magic 0x4030201", "wrong magic")
    expect(["decode", "-i", pages_image], "unknown magic", "raw pages image")
    # an entry whose bytes are not protobuf (a field with wire type 7)
    open(p("corrupt.img"), "wb").write(data[:8] + b"\x02\x00\x00\x00\x0f\xff")
    expect(["decode", "-i", p("corrupt.img")], "not a valid", "corrupt entry")
    open(p("userns.img"), "wb").write(b"\x19\x43\x56\x54\x06\x49\x47\x55")
    expect(["decode", "-i", p("userns.img")], "USERNS", "a kind crit knows and cryo does not")
    expect(["decode", "-i", tmp], "cannot read", "a directory")
    expect(["encode", "-i", p("missing.json")], "No such file", "missing JSON")
    expect(["encode"], "invalid JSON at line 1 column 2", "unterminated JSON", b"{")
    expect(["encode"], "invalid JSON", "not JSON", b"\x19CVT")
    expect(["encode"], "invalid JSON at line 2", "trailing data", b'{"magic": "PSTREE", "entries": []}\nx')
    expect(["encode"], "not an image object", "a list", b"[]")
    expect(["encode"], "unknown magic name 'NOPE'", "bad magic name", b'{"magic": "NOPE", "entries": []}')
    expect(["encode"], "\"entries\"", "no entries", b'{"magic": "PSTREE"}')
    expect(["encode"], "entry 0, field pid", "bad number",
           b'{"magic": "PSTREE", "entries": [{"pid": "abc", "ppid": 0, "pgid": 1, "sid": 1}]}')
    expect(["encode"], "out of range", "number too big",
           b'{"magic": "PSTREE", "entries": [{"pid": 4294967296, "ppid": 0, "pgid": 1, "sid": 1}]}')
    expect(["encode"], "required field", "missing required field",
           b'{"magic": "PSTREE", "entries": [{"pid": 1}]}')
    expect(["encode"], "not a name of enum", "bad enum name",
           b'{"magic": "CORE", "entries": [{"mtype": "VAX"}]}')
    expect(["encode"], "base64", "bad base64 extra",
           b'{"magic": "PIPES_DATA", "entries": [{"pipe_id": 1, "bytes": 1, "extra": "QQ"}]}')
    expect(["encode"], "field vmas[0].prot", "bad flag name",
           b'{"magic": "MM", "entries": [{"vmas": [{"prot": "PROT_BOGUS"}]}]}')
    r = run([cryo, "decode", "-i", some_image, "-o", "/dev/null"])
    if r.returncode != 0 or r.stderr:
        fail("decode -o /dev/null: exit %d %r" % (r.returncode, r.stderr))
    os.symlink(p("target.json"), p("link.json"))
    expect(["decode", "-i", some_image, "-o", p("link.json")], "symbolic link", "-o through a link")
    if os.path.exists(p("target.json")):
        fail("decode -o LINK wrote through the link")
    expect(["decode", "-x"], "unknown argument '-x'", "bad option")
    expect(["decode", "-i"], "needs a value", "option without value")
    expect(["show", p("missing-dir")], "not a directory", "show: missing dir")
    expect(["show", tmp], "no pstree.img", "show: not an images dir")
    bad = p("bad-dir")
    os.makedirs(bad, exist_ok=True)
    open(os.path.join(bad, "pstree.img"), "wb").write(data[:5])
    expect(["show", bad], "truncated", "show: truncated pstree.img")


# --- show ---

def check_show(cryo, img):
    r = run([cryo, "show", img])
    out = r.stdout.decode(errors="replace")
    if r.returncode != 0:
        fail("show %s: exit %d: %s" % (img, r.returncode, r.stderr.decode(errors="replace")))
        return
    load = lambda name: crit_images.load(open(os.path.join(img, name), "rb"))["entries"]  # noqa: E731
    tree = load("pstree.img")
    total_pages = total_fds = 0
    files = {f["id"]: f for f in load("files.img")}
    for p in tree:
        pid = p["pid"]
        core = load("core-%d.img" % pid)[0]
        comm = core["tc"]["comm"]
        zombie = core["tc"]["task_state"] == 2
        if "Process %d (%s)\n" % (pid, comm) not in out:
            fail("show %s: no 'Process %d (%s)' section" % (img, pid, comm))
        line = [ln for ln in out.splitlines() if ln.split()[:2] == [str(pid), str(p["ppid"])]]
        if len(line) != 1 or not line[0].endswith(comm):
            fail("show %s: tree line of %d: %r" % (img, pid, line))
        if zombie:
            continue
        vmas = load("mm-%d.img" % pid)[0]["vmas"]
        pm = load("pagemap-%d.img" % pid)
        pages = sum(e["nr_pages"] for e in pm[1:] if e.get("flags", 4) & 4)
        total_pages += pages
        want = "  memory: %d areas, " % len(vmas)
        sect = out[out.index("Process %d (" % pid):]
        sect = sect[:sect.index("\n\n")]
        if want not in sect or (" %d page(s) dumped" % pages) not in sect:
            fail("show %s: memory line of %d lacks %r / %d pages" % (img, pid, want, pages))
        for v in vmas:
            if "%016x-%016x" % (v["start"], v["end"]) not in sect:
                fail("show %s: area %x of %d missing" % (img, v["start"], pid))
        ids = load("ids-%d.img" % pid)[0]
        fds = load("fdinfo-%d.img" % ids["files_id"])
        total_fds += len(fds)
        kinds = {"REG": "file", "PIPE": "pipe", "FIFO": "fifo", "UNIXSK": "unix", "INETSK": "inet",
                 "EVENTFD": "eventfd", "EVENTPOLL": "epoll", "SIGNALFD": "signalfd", "TIMERFD": "timerfd",
                 "INOTIFY": "inotify", "FANOTIFY": "fanotify", "MEMFD": "memfd", "TTY": "tty"}
        for fd in fds:
            kind = kinds.get(fd["type"], fd["type"])
            if not any(ln.split()[:2] == [str(fd["fd"]), kind] for ln in sect.splitlines()):
                fail("show %s: fd %d (%s) of %d missing" % (img, fd["fd"], kind, pid))
            f = files.get(fd["id"], {})
            if fd["type"] == "REG" and f.get("reg", {}).get("name", "") not in sect:
                fail("show %s: path of fd %d of %d missing" % (img, fd["fd"], pid))
    if not re.search(r"\n  processes %d(, | \(\d+ zombie\), )threads" % len(tree), out):
        fail("show %s: process total" % img)
    if ", %d page(s) dumped" % total_pages not in out.split("Totals")[-1]:
        fail("show %s: page total %d" % (img, total_pages))
    if "  fds %d, " % total_fds not in out:
        fail("show %s: fd total %d" % (img, total_fds))
    # unix sockets: each one connected in the tree names its peer's holder
    for fid, f in files.items():
        usk = f.get("usk")
        if usk and usk.get("peer") and any(g.get("usk", {}).get("ino") == usk["peer"] for g in files.values()):
            if "ino %-9d" % usk["ino"] not in out or "peer pid " not in out:
                fail("show %s: unix socket ino %d and its peer" % (img, usk["ino"]))
    notes["show checked"] += 1


def main(argv):
    if len(argv) < 4:
        sys.exit(__doc__)
    cryo, progs_dir, proto_dir = (os.path.abspath(a) for a in argv[1:4])
    protoc = argv[4] if len(argv) > 4 else shutil.which("protoc")
    if os.geteuid() != 0:
        sys.exit("must run as root (it dumps processes)")
    # A private directory: cryo's restore rules want images writable by root alone.
    os.umask(0o022)
    tmp = tempfile.mkdtemp(prefix="cryo-imgtool-test.", dir="/tmp")
    os.chmod(tmp, 0o755)  # the creds program's child (uid 3001) writes into its work dir
    keep = False
    try:
        chk = Checker(cryo, tmp)
        dumps = []
        t0 = time.time()
        only = os.environ.get("IMGTOOL_PROGS")  # e.g. "pipes,tree": fewer dumps while developing
        for name, opts in PROGS:
            if only and name not in only.split(","):
                continue
            img = dump_prog(cryo, progs_dir, os.path.join(tmp, "dumps"), name, opts)
            if img:
                dumps.append(img)
        print("dumped %d programs in %.1f s" % (len(dumps), time.time() - t0), flush=True)
        n = 0
        some_image = pages_image = None
        for img in dumps:
            for path in sorted(glob.glob(os.path.join(img, "*"))):
                base = os.path.basename(path)
                if base.startswith("pages-"):
                    pages_image = path
                    continue
                if base.startswith("core-"):
                    some_image = path
                chk.check_image(path, os.path.relpath(path, tmp))
                n += 1
        print("real images: %d checked, kinds: %s" % (n, ", ".join(
            "%s %d" % kv for kv in sorted(chk.kinds.items()))), flush=True)

        rng = random.Random(int(os.environ.get("IMGTOOL_SEED", "20261130")))
        gen_dir = os.path.join(tmp, "generated")
        os.makedirs(gen_dir)
        before = collections.Counter(chk.kinds)
        gen = generated_images(our_fields(proto_dir, protoc), rng, gen_dir)
        for path in gen:
            chk.check_image(path, os.path.relpath(path, tmp), cli=False)
        gen_kinds = chk.kinds - before
        print("generated images: %d checked, kinds: %s" % (len(gen), ", ".join(
            "%s %d" % kv for kv in sorted(gen_kinds.items()))), flush=True)

        if some_image and pages_image:
            check_layouts(cryo, some_image)
            check_magics(cryo)
            check_errors(cryo, tmp, some_image, pages_image)
        else:
            fail("no core or pages image for the error cases")
        for img in dumps:
            check_show(cryo, img)
        for k, v in sorted(notes.items()):
            print("%s: %d" % (k, v))
        if failures:
            keep = True
            print("imgtool test: %d failure(s); files kept in %s" % (len(failures), tmp))
            return 1
        print("imgtool test: PASS")
        return 0
    finally:
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
