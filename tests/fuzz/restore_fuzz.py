#!/usr/bin/python3
"""Whole restores of mutated image sets.

  restore_fuzz.py corpus  --cryo CRYO --progs DIR --out BASE [--programs a,b,...]
      Starts each test program of tests/cr/progs with WORKDIR BASE/PROG/work (the protocol of
      tests/cr/run-test.sh: `prog WORKDIR`, wait for WORKDIR/ready) and dumps it once into
      BASE/PROG/img. BASE/PROG/work.pristine keeps a copy of the work directory.

  restore_fuzz.py restore --cryo CRYO --mutator CRYO_FUZZ --corpus BASE [--seed S]
                          [--iterations N] [--first I] [--count C] [--timeout SEC]
                          [--time-budget SEC] [--findings DIR] [--known FILE] [-v]
      For each iteration: a copy of one image set with C mutations (made by
      `cryo-fuzz mutate`, deterministic given seed and iteration), restored with
      `cryo restore -d --pidfile` as PID 1's child in new PID, mount, network and IPC
      namespaces (`unshare --pid --fork --mount-proc --net --ipc`): orphans are reaped, PIDs are
      private, and everything dies with the namespace. Inside, every mount but /proc, /dev,
      BASE and a private tmpfs on /tmp is read-only, so that no mutated path can write
      anywhere else. A hard timeout (`timeout -s KILL`) bounds each case.

  restore_fuzz.py replay --cryo CRYO FINDING_DIR      restores a saved finding again
  restore_fuzz.py selftest --mutator CRYO_FUZZ        checks the classification with fake cryos

Outcomes of a case:
  refused    non-zero exit, exactly one "Error:" line on stderr, nothing left behind
  restored   exit 0 and the restored root is alive (the mutation was harmless, or not caught)
  restored-dead  exit 0 but the restored root died at once
  unclear    refused, but not with exactly one error line (or with other output)
  crash      cryo killed by a signal, a sanitizer report, an "internal:" error, an odd status
  hang       no exit within the timeout
  leftover   a process of the failed restore still alive, or a file left (in /tmp, in the
             images directory, in the programs' work directories) that was not there
             before, or a process outside the namespace
crash, hang, leftover and unclear are failures unless a line of the known-findings file
("CLASS SIGNATURE-GLOB") matches a mutation of the case. Every non-clean case is saved under
the findings directory with its images, output and a reproducer.
"""

import argparse
import ctypes
import fnmatch
import json
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))

# Programs of tests/cr/progs dumped for the corpus, with the options their dump and restore
# need (as run-test.sh's PROG_OPTS).
PROGRAMS = {
    "memory": [], "pipes": [], "files": [], "threads": [], "tree": [], "unix_sockets": [],
    "deleted_files": [], "memfd": [], "epoll": [], "event_fds": [], "shmem": [],
    "task_state": [], "signals_pending": [], "file_locks": ["-l"], "inet_sockets": [],
    "ptimers": [], "seccomp": [], "pty": [],
}

FAILURES = ("crash", "hang", "leftover", "unclear")
CLASSES = ("refused", "restored", "restored-dead") + FAILURES


def log(*a):
    print(time.strftime("[%H:%M:%S]"), *a, flush=True)


def proc_state(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return None
    return s[s.rindex(")") + 2:].split()[0]


def wait_until(secs, cond, step=0.02):
    end = time.monotonic() + secs
    while not cond():
        if time.monotonic() >= end:
            return False
        time.sleep(step)
    return True


# ---------------------------------------------------------------- corpus

def cmd_corpus(a):
    progs = a.programs.split(",") if a.programs else list(PROGRAMS)
    os.makedirs(a.out, exist_ok=True)
    base = os.path.realpath(a.out)
    if under(base, ["/tmp"]):
        sys.exit("the corpus must be outside /tmp: restores run with a private tmpfs on /tmp")
    meta = {"programs": {}}
    skipped = []
    for name in progs:
        if name not in PROGRAMS:
            sys.exit(f"unknown program {name} (known: {', '.join(PROGRAMS)})")
        d = os.path.join(base, name)
        shutil.rmtree(d, ignore_errors=True)
        work, img = os.path.join(d, "work"), os.path.join(d, "img")
        os.makedirs(work)
        os.makedirs(img)
        exe = os.path.join(os.path.realpath(a.progs), name)
        # Its own session, stdio on /dev/null, no other fd, cwd in its work directory: all
        # that the images refer to is inside BASE (run-test.sh's spawn).
        with open(os.devnull, "r+b") as null:
            p = subprocess.Popen([exe, work], stdin=null, stdout=null, stderr=null,
                                 cwd=work, start_new_session=True, close_fds=True)
        ready = os.path.join(work, "ready")
        if not wait_until(20, lambda: os.path.exists(ready) and os.path.getsize(ready) > 0,
                          0.05):
            p.kill()
            p.wait()
            skipped.append(f"{name}: no {ready} within 20 s")
            shutil.rmtree(d, ignore_errors=True)
            continue
        root = int(open(ready).read().strip() or 0)
        time.sleep(0.1)
        opts = PROGRAMS[name]
        log(f"dumping {name} (pid {root})")
        r = subprocess.run([os.path.realpath(a.cryo), "dump", "-t", str(root), "-D", img,
                            "-o", os.path.join(d, "dump.log"), "-v4"] + opts,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=90)
        if r.returncode != 0:
            # The cr tests judge dumps; the corpus goes on without this program.
            p.kill()
            p.wait()
            skipped.append(f"{name}: cryo dump failed ({r.returncode}): {r.stdout.strip()}")
            shutil.rmtree(d, ignore_errors=True)
            continue
        p.wait(timeout=30)
        subprocess.run(["cp", "-a", work, work + ".pristine"], check=True)
        meta["programs"][name] = {"opts": opts, "work": work, "img": img, "exe": exe}
    with open(os.path.join(base, "corpus.json"), "w") as f:
        json.dump(meta, f, indent=1)
    for why in skipped:
        log(f"warning: skipped {why}")
    log(f"corpus of {len(meta['programs'])} image sets in {base}")
    if not meta["programs"]:
        sys.exit("no image set")


# ---------------------------------------------------------------- snapshots

def snapshot(root):
    """{relative path: (kind, size, mtime)} of everything under root; size and mtime of
    regular files only (a FIFO's mtime moves when a restore refills it)."""
    import stat as st_
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(dirpath, n)
            try:
                st = os.lstat(p)
            except OSError:
                continue
            m = st.st_mode
            kind = ("f" if st_.S_ISREG(m) else "d" if st_.S_ISDIR(m) else "p" if st_.S_ISFIFO(m)
                    else "s" if st_.S_ISSOCK(m) else "l" if st_.S_ISLNK(m) else "o")
            out[os.path.relpath(p, root)] = ((kind, st.st_size, st.st_mtime_ns) if kind == "f"
                                             else (kind, 0, 0))
    return out


def diff(before, after, ignore=()):
    """(new, gone, changed) paths. A socket file that went is not counted: a restore takes over
    the stale socket files of the dumped tree (a bind needs the name free) and a failed one
    removes what it bound; the next restore binds them again."""
    new = sorted(p for p in after if p not in before and p not in ignore)
    gone = sorted(p for p in before if p not in after and p not in ignore
                  and before[p][0] != "s")
    changed = sorted(p for p in after if p in before and after[p] != before[p]
                     and after[p][0] == "f" and p not in ignore)
    return new, gone, changed


def restore_pristine(work):
    shutil.rmtree(work, ignore_errors=True)
    subprocess.run(["cp", "-a", work + ".pristine", work], check=True)


def host_leftovers(exes, base):
    """Processes outside the cases' namespaces running a program of this corpus: a corpus
    program with its work directory in `base` (not other runs of the same programs)."""
    found = []
    own_ns = os.readlink("/proc/self/ns/pid")
    for e in os.listdir("/proc"):
        if not e.isdigit():
            continue
        try:
            # A process of a case still running (another job's) is in that case's namespace.
            if os.readlink(f"/proc/{e}/ns/pid") != own_ns:
                continue
            exe = os.readlink(f"/proc/{e}/exe")
            argv = open(f"/proc/{e}/cmdline", "rb").read().split(b"\0")
        except OSError:
            continue
        if exe in exes and len(argv) > 1 and under(argv[1].decode(errors="replace"), [base]):
            found.append(int(e))
    return found


# ---------------------------------------------------------------- inside the namespace

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MS_NOATIME, MS_NODIRATIME, MS_RELATIME = 1024, 2048, 1 << 21
FLAG_OF = {"nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC,
           "noatime": MS_NOATIME, "nodiratime": MS_NODIRATIME, "relatime": MS_RELATIME}


def mount(src, target, fstype, flags, data=None):
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_char_p]
    enc = lambda s: s.encode() if s is not None else None
    if libc.mount(enc(src), enc(target), enc(fstype), flags, enc(data)) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"mount {target}: {os.strerror(e)}")


def under(path, roots):
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def lock_down(writable):
    """Private mounts; a fresh tmpfs on /tmp; everything read-only but /proc, /dev, /tmp and
    `writable` (directories outside /tmp)."""
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    for w in writable:
        mount(w, w, None, MS_BIND | MS_REC)
    mount("cryo-fuzz-tmp", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777")
    # Ptys of our own (a new devpts instance): restored pty pairs take their dumped indexes
    # here, whatever the machine's other terminals hold.
    mount("devpts", "/dev/pts", "devpts", MS_NOSUID, "newinstance,ptmxmode=0666,mode=0620")
    mount("/dev/pts/ptmx", "/dev/ptmx", None, MS_BIND)
    keep = ["/proc", "/dev", "/tmp"] + list(writable)
    with open("/proc/self/mountinfo") as f:
        lines = f.read().splitlines()
    for line in lines:
        fields = line.split()
        point = fields[4].encode().decode("unicode_escape")
        if under(point, keep):
            continue
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY
        for o in fields[5].split(","):
            flags |= FLAG_OF.get(o, 0)
        try:
            mount(None, point, None, flags)
        except OSError:
            pass  # a mount hidden below another one
    # Loopback up: restored TCP/UDP sockets bind to 127.0.0.1 and ::1.
    SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 1
    import fcntl
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s, SIOCGIFFLAGS, req))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))


def ns_procs():
    """Processes of this PID namespace but us: [(pid, state, comm)]."""
    out = []
    for e in os.listdir("/proc"):
        if not e.isdigit() or int(e) == 1:
            continue
        st = proc_state(e)
        try:
            comm = open(f"/proc/{e}/comm").read().strip()
        except OSError:
            comm = "?"
        if st:
            out.append((int(e), st, comm))
    return out


def reap():
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def cmd_inner(a):
    """PID 1 of the case's namespaces: restore, look around, report, exit (killing the rest)."""
    spec = json.load(open(a.spec))
    res = {"rc": None, "signal": None, "hang": False}
    try:
        # Copies mounted over the corpus work directories (replay): the corpus stays as it is.
        mount(None, "/", None, MS_REC | MS_PRIVATE)
        for target, source in spec.get("binds", {}).items():
            mount(source, target, None, MS_BIND)
        lock_down(spec["writable"])
    except OSError as e:
        res["setup_error"] = str(e)
        json.dump(res, open(spec["result"], "w"))
        return
    with open(spec["stdout"], "wb") as out, open(spec["stderr"], "wb") as err:
        p = subprocess.Popen(spec["argv"], stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                             cwd=spec["cwd"], env=spec.get("env"))
        try:
            rc = p.wait(timeout=spec["timeout"])
        except subprocess.TimeoutExpired:
            res["hang"] = True
            p.kill()
            rc = p.wait()
    if rc < 0:
        res["signal"] = -rc
    res["rc"] = rc
    if rc == 0 and not res["hang"]:
        # Restored: the tree must be alive a moment later.
        time.sleep(spec.get("settle", 0.3))
        reap()
        try:
            root = int(open(spec["pidfile"]).read().strip())
        except (OSError, ValueError):
            root = None
        res["root"] = root
        st = proc_state(root) if root else None
        res["root_alive"] = st is not None and st not in "ZX"
        res["procs"] = ns_procs()
    else:
        # Refused: whatever the restore made must go with it.
        def nothing_left():
            reap()
            return not [p for p in ns_procs() if p[1] not in "ZX"]
        wait_until(2, nothing_left)
        res["procs"] = [p for p in ns_procs() if p[1] not in "ZX"]
    res["tmp"] = sorted(os.path.relpath(os.path.join(d, n), "/tmp")
                        for d, ds, fs in os.walk("/tmp") for n in ds + fs)
    json.dump(res, open(spec["result"], "w"))


# ---------------------------------------------------------------- one case

def run_in_namespace(spec, case_dir, timeout):
    """Runs spec (see cmd_inner) as PID 1 of new namespaces; returns its result dict or None
    when it did not finish within timeout seconds."""
    spec_path = os.path.join(case_dir, "spec.json")
    with open(spec_path, "w") as f:
        json.dump(spec, f)
    cmd = ["timeout", "-s", "KILL", str(timeout), "unshare", "--pid", "--fork", "--mount-proc",
           "--net", "--ipc", "--kill-child", sys.executable, os.path.abspath(__file__),
           "inner", spec_path]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        with open(spec["result"]) as f:
            res = json.load(f)
    except (OSError, ValueError):
        res = None
    if r.returncode != 0 and res is None:
        return {"outer_rc": r.returncode, "outer_out": r.stdout.decode(errors="replace")[-2000:]}
    return res


def classify(res, stderr_text, img_diff, work_diffs, host_left, log_tail=""):
    """(class, reason). A crash's reason ends with the last line of cryo's log (where it
    was)."""
    cls, reason = classify_(res, stderr_text, img_diff, work_diffs, host_left)
    if cls in ("crash", "hang") and log_tail:
        reason += f"; last log line: {log_tail}"
    return cls, reason


def classify_(res, stderr_text, img_diff, work_diffs, host_left):
    if res is None or "outer_rc" in res:
        rc = res.get("outer_rc") if res else None
        if rc in (124, 137, -9):
            return "hang", "the namespace did not finish within the hard timeout"
        return "crash", f"the namespace's init failed ({rc}): {res.get('outer_out', '') if res else ''}"
    if "setup_error" in res:
        return "crash", "fuzz driver: " + res["setup_error"]
    if res["hang"]:
        return "hang", "cryo did not exit within the timeout"
    lines = [l for l in stderr_text.splitlines() if l.strip()]
    for marker in ("AddressSanitizer", "runtime error:", "LeakSanitizer", "internal:"):
        if marker in stderr_text:
            return "crash", f"{marker} on stderr"
    if res["signal"]:
        return "crash", f"cryo killed by signal {res['signal']} ({signal.Signals(res['signal']).name})"
    left = []
    if host_left:
        left.append(f"processes outside the namespace: {host_left}")
    rc = res["rc"]
    new, gone, changed = img_diff
    if new:
        left.append(f"new files in the images directory: {new}")
    for prog, (n, g, c) in work_diffs.items():
        # A restored tree binds again the socket files it had at the dump (another case may
        # have removed them meanwhile): only a failed restore leaves files behind.
        if n and rc != 0:
            left.append(f"new files in {prog}/work: {n}")
        if g:
            left.append(f"files removed from {prog}/work: {g}")
        if c:
            left.append(f"files changed in {prog}/work: {c}")
    if rc != 0:
        if res["procs"]:
            left.append(f"processes left in the namespace: {res['procs']}")
        if res["tmp"]:
            left.append(f"files left in /tmp: {res['tmp'][:10]}")
        if left:
            return "leftover", "; ".join(left)
        if rc != 1:
            return "crash", f"cryo exited {rc}"
        errors = [l for l in lines if l.startswith("Error: ")]
        others = [l for l in lines if not l.startswith(("Error: ", "Warn: "))]
        if any(c < " " and c not in "\n\t" for c in stderr_text):
            return "unclear", (f"non-printable bytes on stderr: "
                               f"{stderr_text.strip()[:200]!r}")
        if len(errors) != 1 or others:
            first = (others or errors)[0][:200]
            return "unclear", (f"{len(errors)} error line(s), {len(others)} other line(s) on "
                               f"stderr: {first}")
        return "refused", errors[0][len("Error: "):]
    if left:
        return "leftover", "; ".join(left)
    if not res.get("root_alive"):
        return "restored-dead", f"restore exited 0 but root {res.get('root')} is not alive"
    return "restored", f"{len(res['procs'])} process(es) running"


def match_known(known, cls, sigs, reason):
    for k_cls, glob, reason_glob, line in known:
        if k_cls not in (cls, "*") or not fnmatch.fnmatchcase(reason, reason_glob):
            continue
        if any(fnmatch.fnmatchcase(s, glob) for s in sigs):
            return line
    return None


def read_known(path):
    """Lines "CLASS SIGNATURE-GLOB [REASON-GLOB]  # why" (REASON-GLOB quoted when it holds
    spaces), as cryo-fuzz reads them."""
    import shlex
    out = []
    if not path:
        return out
    for line in open(path):
        body = shlex.split(line.split("#", 1)[0])
        if len(body) >= 2:
            out.append((body[0], body[1], body[2] if len(body) > 2 else "*", line.strip()))
    return out


class Fuzzer:
    def __init__(self, a):
        self.a = a
        self.base = os.path.realpath(a.corpus)
        meta = json.load(open(os.path.join(self.base, "corpus.json")))
        self.progs = meta["programs"]
        self.names = sorted(self.progs)
        self.exes = {os.path.realpath(p["exe"]) for p in self.progs.values()}
        self.work = os.path.realpath(a.work or os.path.join(self.base, "run"))
        os.makedirs(self.work, exist_ok=True)
        self.findings = os.path.realpath(a.findings) if a.findings else None
        self.known = read_known(a.known)
        self.counts = {c: 0 for c in CLASSES}
        self.known_hits = 0
        self.failures = 0
        self.kinds = {}      # (class, signatures) -> count
        self.reasons = {}    # refusal reasons -> count
        self.snaps = {n: snapshot(p["work"]) for n, p in self.progs.items()}
        # With several jobs, cases of one program run one at a time and look at their own
        # program's work directory only.
        self.lock = threading.Lock()
        self.results = open(a.results, "a") if getattr(a, "results", None) else None
        self.prog_locks = {n: threading.Lock() for n in self.names}

    def case(self, it):
        name = random.Random(f"{self.a.seed}:{it}").choice(self.names)
        with self.prog_locks[name]:
            return self._case(it, name)

    def _case(self, it, name):
        a = self.a
        prog = self.progs[name]
        watched = self.names if getattr(a, "jobs", 1) <= 1 else [name]
        case_dir = os.path.join(self.work, f"case-{it}")
        shutil.rmtree(case_dir, ignore_errors=True)
        os.makedirs(case_dir)
        img = os.path.join(case_dir, "img")
        m = subprocess.run([a.mutator, "mutate", "--seed", str(a.seed), "--iteration", str(it),
                            "--count", str(a.count), prog["img"], img],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if m.returncode != 0:
            raise SystemExit(f"cryo-fuzz mutate failed: {m.stderr.strip()}")
        muts = [l.split("\t", 1) for l in m.stdout.splitlines() if l]
        sigs = [x[0] for x in muts]
        img_before = snapshot(img)
        spec = self.spec(case_dir, img, prog["opts"])
        res = run_in_namespace(spec, case_dir, a.timeout + 10)
        stderr_text = open(spec["stderr"], errors="replace").read() if os.path.exists(
            spec["stderr"]) else ""
        img_diff = diff(img_before, snapshot(img), ignore=("stats-restore",))
        work_diffs = {}
        for n in watched:
            d = diff(self.snaps[n], snapshot(self.progs[n]["work"]))
            if any(d):
                work_diffs[n] = d
        host_left = host_leftovers(self.exes, self.base)
        for pid in host_left:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        log_path = os.path.join(case_dir, "restore.log")
        log_tail = ""
        if os.path.exists(log_path):
            with open(log_path, "rb") as f:
                f.seek(max(0, os.path.getsize(log_path) - 4096))
                lines = f.read().decode(errors="replace").splitlines()
            log_tail = lines[-1][:200] if lines else ""
        cls, reason = classify(res, stderr_text, img_diff, work_diffs, host_left, log_tail)
        for n in work_diffs:
            restore_pristine(self.progs[n]["work"])
            self.snaps[n] = snapshot(self.progs[n]["work"])
        with self.lock:
            return self.account(it, name, cls, reason, muts, sigs, case_dir)

    def account(self, it, name, cls, reason, muts, sigs, case_dir):
        a = self.a
        self.counts[cls] += 1
        if self.results:
            self.results.write(json.dumps({"it": it, "prog": name, "class": cls,
                                           "reason": reason, "mutations": muts}) + "\n")
            self.results.flush()
        if cls == "refused":
            key = "".join("#" if c.isdigit() else c for c in reason)[:90]
            self.reasons[key] = self.reasons.get(key, 0) + 1
        known = None
        if cls in FAILURES:
            # "set:NAME" names the image set, for findings that any change to it shows.
            known = match_known(self.known, cls, sigs + [f"set:{name}"], reason)
            if known:
                self.known_hits += 1
            else:
                self.failures += 1
        if a.verbose or (cls in FAILURES and not known):
            log(f"case {it} {name}: {cls.upper()}{' (known)' if known else ''}: {reason}")
            for s, *d in muts:
                print(f"    {s}\t{d[0] if d else ''}")
        kind = (cls, tuple(sigs))
        seen = self.kinds.get(kind, 0)
        self.kinds[kind] = seen + 1
        keep = (cls not in ("refused", "restored") and self.findings and
                (not a.max_saved or seen < a.max_saved))
        if keep:
            self.save(it, name, cls, reason, muts, case_dir, known)
        shutil.rmtree(case_dir, ignore_errors=True)
        return cls

    def spec(self, case_dir, img, opts):
        writable = sorted({self.base, self.work})
        return {
            "argv": [os.path.realpath(self.a.cryo), "restore", "-D", img, "-d",
                     "--pidfile", os.path.join(case_dir, "pidfile"),
                     "-o", os.path.join(case_dir, "restore.log"), "-v4"] + opts,
            "cwd": case_dir, "timeout": self.a.timeout, "writable": writable,
            "pidfile": os.path.join(case_dir, "pidfile"),
            "stdout": os.path.join(case_dir, "stdout"),
            "stderr": os.path.join(case_dir, "stderr"),
            "result": os.path.join(case_dir, "inner.json"),
        }

    def save(self, it, name, cls, reason, muts, case_dir, known):
        dst = os.path.join(self.findings, cls, f"s{self.a.seed}-i{it}-{name}")
        shutil.rmtree(dst, ignore_errors=True)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copytree(case_dir, dst, copy_function=os.link)
        # A log that grew without bound (a loop in cryo) keeps its head and tail.
        log_path = os.path.join(dst, "restore.log")
        if os.path.exists(log_path) and os.path.getsize(log_path) > (1 << 20):
            with open(log_path, "rb") as f:
                head = f.read(256 << 10)
                f.seek(-(256 << 10), os.SEEK_END)
                tail = f.read()
            os.unlink(log_path)
            with open(log_path, "wb") as f:
                f.write(head + b"\n[... cut by restore_fuzz.py ...]\n" + tail)
        me = os.path.abspath(__file__)
        with open(os.path.join(dst, "README"), "w") as f:
            f.write(f"{cls}: {reason}\n")
            if known:
                f.write(f"known finding: {known}\n")
            f.write(f"image set: {self.progs[name]['img']} ({name})\nmutations:\n")
            for s, *d in muts:
                f.write(f"  {s}\t{d[0] if d else ''}\n")
            f.write("reproduce (the corpus work directories must be as at the dump):\n"
                    f"  {me} replay --cryo {os.path.realpath(self.a.cryo)} {dst}\n"
                    f"  {me} restore --cryo {self.a.cryo} --mutator {self.a.mutator} "
                    f"--corpus {self.base} --seed {self.a.seed} --first {it} --iterations 1 "
                    f"--count {self.a.count} -v\n")

    def report(self, n, secs):
        a = self.a
        print(f"restore_fuzz: seed {a.seed}, {n} case(s) from {a.first} in {secs:.0f} s "
              f"over {len(self.names)} image set(s)")
        for c in CLASSES:
            print(f"  {c:14} {self.counts[c]}")
        print(f"  known findings {self.known_hits}")
        print(f"  most frequent refusals ({len(self.reasons)} distinct):")
        for r, k in sorted(self.reasons.items(), key=lambda x: -x[1])[:12]:
            print(f"    {k:5} {r}")
        restored = {}
        for (cls, sigs), v in self.kinds.items():
            if cls.startswith("restored"):
                for sig in set(sigs):
                    restored[sig] = restored.get(sig, 0) + v
        if restored:
            print(f"  restored (exit 0) after ({len(restored)} distinct signatures; top 20):")
            for sig, v in sorted(restored.items(), key=lambda x: -x[1])[:20]:
                print(f"    {v:5} {sig}")
        odd = [(k, v) for k, v in self.kinds.items() if k[0] not in ("refused", "restored")]
        if odd:
            print("  non-clean cases:")
            for (cls, sigs), v in sorted(odd):
                print(f"    {v:4} {cls:13} {' + '.join(sigs)}")
        if self.findings:
            print(f"  findings saved under {self.findings}")


def cmd_restore(a):
    f = Fuzzer(a)
    t0 = time.monotonic()
    done = [0]
    its = iter(range(a.first, a.first + a.iterations))
    its_lock = threading.Lock()

    def worker():
        while True:
            with its_lock:
                if a.time_budget and time.monotonic() - t0 > a.time_budget:
                    return
                it = next(its, None)
            if it is None:
                return
            f.case(it)
            with f.lock:
                done[0] += 1
                if a.progress and done[0] % a.progress == 0:
                    log(f"{done[0]} cases: " +
                        ", ".join(f"{c} {f.counts[c]}" for c in CLASSES if f.counts[c]))

    threads = [threading.Thread(target=worker) for _ in range(max(1, a.jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if done[0] < a.iterations:
        log(f"time budget of {a.time_budget} s spent after {done[0]} case(s)")
    f.report(done[0], time.monotonic() - t0)
    return 1 if f.failures else 0


def cmd_replay(a):
    d = os.path.realpath(a.finding)
    spec = json.load(open(os.path.join(d, "spec.json")))
    old_case = os.path.dirname(spec["pidfile"])
    spec = json.loads(json.dumps(spec).replace(old_case, d))
    spec["argv"][0] = os.path.realpath(a.cryo)
    spec["writable"] = sorted(set(spec["writable"]) | {d})
    # The programs' work directories as they were at the dump, in copies mounted over them
    # inside the namespace: the replay changes nothing of the corpus.
    spec["binds"] = {}
    for w in spec["writable"]:
        meta = os.path.join(w, "corpus.json")
        if not os.path.exists(meta):
            continue
        for name, prog in json.load(open(meta))["programs"].items():
            copy = os.path.join(d, "replay-work", name)
            shutil.rmtree(copy, ignore_errors=True)
            os.makedirs(os.path.dirname(copy), exist_ok=True)
            subprocess.run(["cp", "-a", prog["work"] + ".pristine", copy], check=True)
            spec["binds"][prog["work"]] = copy
    for n in ("pidfile", "result"):
        try:
            os.unlink(spec[n])
        except OSError:
            pass
    res = run_in_namespace(spec, d, spec["timeout"] + 10)
    print(json.dumps(res, indent=1))
    print(open(spec["stderr"], errors="replace").read(), end="")


# ---------------------------------------------------------------- self test

def cmd_selftest(a):
    """The driver must see each kind of failure: fake cryos that crash, hang, leave a process
    or a file, print two errors, refuse cleanly and restore; and cryo-fuzz must report an
    injected crash, hang and internal error of its parsers."""
    import tempfile
    root = tempfile.mkdtemp(prefix="cryo-fuzz-selftest.", dir=a.dir or "/var/tmp")
    try:
        base = os.path.join(root, "corpus")
        img = os.path.join(base, "fake", "img")
        work = os.path.join(base, "fake", "work")
        os.makedirs(img)
        os.makedirs(work)
        os.makedirs(work + ".pristine")
        with open(os.path.join(img, "inventory.img"), "wb") as f:
            f.write(struct.pack("<II", 0x58313116, 0) + b"\x08\x02")
        with open(os.path.join(base, "corpus.json"), "w") as f:
            json.dump({"programs": {"fake": {"opts": [], "work": work, "img": img,
                                             "exe": "/bin/false"}}}, f)
        fakes = [
            ("refused", 'echo "Error: image inventory.img is corrupt" >&2; exit 1'),
            ("restored", 'setsid sleep 100 </dev/null >/dev/null 2>&1 & echo $! > "$PIDFILE"'),
            ("restored-dead", 'echo 99999 > "$PIDFILE"; exit 0'),
            ("crash", 'kill -SEGV $$'),
            ("crash", 'echo "Error: internal: vector::_M_range_check" >&2; exit 1'),
            ("hang", 'sleep 100'),
            ("leftover", 'setsid sleep 100 </dev/null >/dev/null 2>&1 & echo "Error: x" >&2; exit 1'),
            ("leftover", 'touch /tmp/ghost; echo "Error: x" >&2; exit 1'),
            ("leftover", 'touch "$IMG/stray"; echo "Error: x" >&2; exit 1'),
            ("leftover", f'touch "{work}/sock"; echo "Error: x" >&2; exit 1'),
            ("unclear", 'echo "Error: a" >&2; echo "Error: b" >&2; exit 1'),
            ("unclear", "printf 'Error: file /usr/\\r\\001\\n' >&2; exit 1"),
        ]
        bad = 0
        for want, body in fakes:
            fake = os.path.join(root, "fake-cryo")
            with open(fake, "w") as f:
                f.write("#!/bin/bash\n# args: restore -D IMG -d --pidfile FILE ...\n"
                        'IMG=$3; PIDFILE=$6\n' + body + "\n")
            os.chmod(fake, 0o755)
            args = argparse.Namespace(cryo=fake, mutator=a.mutator, corpus=base, seed=1,
                                      first=0, iterations=1, count=1, timeout=2,
                                      time_budget=0, findings=None, known=None,
                                      verbose=False, max_saved=0, progress=0, jobs=1,
                                      work=os.path.join(root, "run"))
            fz = Fuzzer(args)
            got = fz.case(0)
            ok = got == want
            bad += not ok
            print(f"  fake cryo '{body[:60]}': {got} {'ok' if ok else f'(expected {want})'}")
        # cryo-fuzz's own classification, with faults injected into its child.
        faults = [("segv", "crash"), ("hang", "hang"), ("internal", "internal")]
        info = subprocess.run([a.mutator, "info"], stdout=subprocess.PIPE, text=True).stdout
        if "address" in info:
            faults.append(("heap-overflow", "crash"))
        for inject, want in faults:
            env = dict(os.environ, CRYO_FUZZ_INJECT=inject)
            # A sanitizer report may take seconds to symbolize on a loaded machine.
            timeout = "2" if want == "hang" else "30"
            r = subprocess.run([a.mutator, "parsers", "--seed", "1", "--iterations", "1",
                                "--timeout", timeout, "--work", os.path.join(root, "parsers"),
                                base], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
            ok = r.returncode == 1 and f"FINDING {want}" in r.stdout
            bad += not ok
            print(f"  cryo-fuzz parsers with CRYO_FUZZ_INJECT={inject}: "
                  f"{'ok' if ok else 'NOT DETECTED: ' + r.stdout[-500:]}")
        print("selftest:", "FAIL" if bad else "PASS")
        return 1 if bad else 0
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("corpus")
    c.add_argument("--cryo", required=True)
    c.add_argument("--progs", required=True)
    c.add_argument("--out", required=True)
    c.add_argument("--programs")
    r = sub.add_parser("restore")
    r.add_argument("--cryo", required=True)
    r.add_argument("--mutator", required=True)
    r.add_argument("--corpus", required=True)
    r.add_argument("--seed", type=int, default=1)
    r.add_argument("--first", type=int, default=0)
    r.add_argument("--iterations", type=int, default=100)
    r.add_argument("--count", type=int, default=1, help="mutations per case")
    r.add_argument("--timeout", type=int, default=20, help="seconds per restore")
    r.add_argument("--time-budget", type=float, default=0,
                   help="start no case after this many seconds")
    r.add_argument("--findings")
    r.add_argument("--known")
    r.add_argument("--work", help="where cases are made (default CORPUS/run)")
    r.add_argument("--progress", type=int, default=0, help="a line every N cases")
    r.add_argument("-j", "--jobs", type=int, default=1, help="cases at once")
    r.add_argument("--results", help="append one JSON line per case to this file")
    r.add_argument("--max-saved", type=int, default=0,
                   help="save at most N cases of one class and mutation signatures (0: all)")
    r.add_argument("-v", "--verbose", action="store_true")
    i = sub.add_parser("inner")
    i.add_argument("spec")
    y = sub.add_parser("replay")
    y.add_argument("--cryo", required=True)
    y.add_argument("finding")
    s = sub.add_parser("selftest")
    s.add_argument("--mutator", required=True)
    s.add_argument("--dir", default=None,
                   help="where to work, outside /tmp (default: a new directory in /var/tmp)")
    a = p.parse_args()
    if a.cmd == "corpus":
        return cmd_corpus(a)
    if a.cmd == "restore":
        return cmd_restore(a)
    if a.cmd == "inner":
        return cmd_inner(a)
    if a.cmd == "replay":
        return cmd_replay(a)
    return cmd_selftest(a)


if __name__ == "__main__":
    sys.exit(main())
