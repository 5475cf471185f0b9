#!/usr/bin/python3
"""The client of the migration demo (scripts/migrate-demo.sh).

  migrate-client.py ADDR PORT STOP_FILE RESULT_FILE

One TCP connection to the service; a request "N" every 10 ms (N = 1, 2, ...), whatever the
answers. Each reply must be "N" for the oldest unanswered request: a missing, repeated or
out-of-order reply, a reset or an end of the connection is an error. When STOP_FILE appears, it
stops sending, waits for the last replies, asks "verify" and writes RESULT_FILE (JSON): the
requests, the longest gap between two replies (the downtime) and when it was, the server's
verdict on its memory, and the errors.
"""
import json
import os
import select
import socket
import sys
import time

addr, port, stop_file, result_file = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
PERIOD = 0.010
result = {"requests": 0, "replies": 0, "errors": [], "max_gap_ms": 0.0}

sk = socket.create_connection((addr, port), timeout=10)
sk.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
sk.setblocking(False)
start = time.monotonic()
last_reply = start
expect = 1
sent = 0
buf = b""
next_send = start
stopping_since = None
verdict = None


def fail(msg):
    result["errors"].append(msg)
    raise SystemExit


def on_line(line, now):
    global expect, last_reply, verdict
    if line.startswith(b"verify"):
        verdict = line.decode()
        return
    gap = now - last_reply
    if gap * 1000 > result["max_gap_ms"]:
        result["max_gap_ms"] = round(gap * 1000, 1)
        result["max_gap_at_s"] = round(last_reply - start, 3)
        result["max_gap_end_unix"] = time.time()  # the first answer after it
    last_reply = now
    n = int(line)
    if n != expect:
        fail("reply %d where %d was due (lost, repeated or out of order)" % (n, expect))
    expect += 1
    result["replies"] += 1


try:
    while True:
        now = time.monotonic()
        if stopping_since is None and os.path.exists(stop_file):
            stopping_since = now
        if stopping_since is None and now >= next_send:
            sent += 1
            try:
                sk.send(b"%d\n" % sent)  # a short line always fits the socket's buffer
            except OSError as e:
                fail("send of request %d: %s" % (sent, e))
            next_send += PERIOD
        if stopping_since is not None:
            if expect > sent and verdict is None and "asked" not in result:
                sk.send(b"verify\n")
                result["asked"] = True
            if verdict is not None:
                break
            if now - stopping_since > 60:
                fail("no reply to the last requests or to verify within 60 s")
        wait = max(0.0, next_send - time.monotonic()) if stopping_since is None else 0.05
        r, _, _ = select.select([sk], [], [], wait)
        if r:
            try:
                data = sk.recv(65536)
            except OSError as e:
                fail("receive: %s" % e)
            if not data:
                fail("the server closed the connection")
            buf += data
            now = time.monotonic()
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                on_line(line, now)
except SystemExit:
    pass
result["requests"] = sent
result["verdict"] = verdict
result.pop("asked", None)
with open(result_file + ".tmp", "w") as f:
    json.dump(result, f)
os.rename(result_file + ".tmp", result_file)
