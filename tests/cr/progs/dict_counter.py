"""python demo (tests/cr/run-test.sh ... python demo): an interpreter with a
big heap (a dict of 500k int->str entries) and a running counter. After
restore the dict must be intact (checksum, size, spot checks) and the
counter must keep going from where it was.
Protocol as the C programs: argv[1] = WORKDIR; writes ready, waits for go,
writes result ("PASS" or FAIL lines) and exits 0/1.
"""
import os
import signal
import sys
import time

signal.signal(signal.SIGUSR1, signal.SIG_IGN)
w = sys.argv[1]


def write_atomic(name, text):
    tmp = os.path.join(w, "." + name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, os.path.join(w, name))


def checksum(d):
    s = 0
    for k, v in d.items():
        s = (s * 1000003 + k * 31 + int(v)) & 0xFFFFFFFFFFFFFFFF
    return s


d = {i: str((i * 7919) % 1000003) for i in range(500000)}
c0 = checksum(d)
pid = os.getpid()
counter = 0
for _ in range(10):
    counter += 1
at_ready = counter
write_atomic("ready", "%d\n" % pid)
go = os.path.join(w, "go")
while not os.path.exists(go):
    counter += 1
    time.sleep(0.01)

fails = []
if os.getpid() != pid:
    fails.append("getpid expected %d got %d" % (pid, os.getpid()))
if counter <= at_ready:
    fails.append("counter expected > %d (value at ready) got %d" % (at_ready, counter))
c1 = counter
for _ in range(20):
    counter += 1
    time.sleep(0.005)
if counter != c1 + 20:
    fails.append("counter expected %d got %d" % (c1 + 20, counter))
if len(d) != 500000:
    fails.append("dict size expected 500000 got %d" % len(d))
for k in (0, 1, 123457, 499999):
    want = str((k * 7919) % 1000003)
    if d.get(k) != want:
        fails.append("d[%d] expected %r got %r" % (k, want, d.get(k)))
c2 = checksum(d)
if c2 != c0:
    fails.append("dict checksum expected %x got %x" % (c0, c2))
# the interpreter still works: allocate, hash, import
d2 = {str(i): i for i in range(10000)}
if sum(d2.values()) != 49995000:
    fails.append("new dict after restore is wrong")
import json  # noqa: E402  (an import after restore reads files again)
if json.loads(json.dumps({"a": [1, 2]})) != {"a": [1, 2]}:
    fails.append("json round trip failed after restore")

write_atomic("result", "".join("FAIL: %s\n" % f for f in fails) if fails else "PASS\n")
sys.exit(1 if fails else 0)
