#!/bin/bash
# runc checkpoint with cryo as its criu (runc --criu CRYO), through CRIU's RPC (cryo swrk).
#
#   runc.sh CRYO
#
# A busybox container (Debian's busybox-static in a bundle made here, no registry) counts in a
# shell loop. cryo does not dump namespaces yet: the checkpoint must get past runc's CRIU
# version check, fail with a log naming what cryo does not support, and leave the container
# running and counting.
set -u
CRYO=$(readlink -f "$1")
fail() { echo "FAIL: $*"; exit 1; }
command -v runc >/dev/null || fail "runc is not installed (scripts/install-deps.sh installs it)"
[[ -x /bin/busybox ]] || fail "busybox-static is not installed (scripts/install-deps.sh)"
W=$(mktemp -d /tmp/rpc-runc.XXXXXX)
ID=cryo-rpc-$$
cleanup() {
	runc kill "$ID" KILL >/dev/null 2>&1
	for _ in $(seq 50); do runc state "$ID" 2>/dev/null | grep -q '"running"' || break; sleep 0.1; done
	runc delete -f "$ID" >/dev/null 2>&1
	[[ ${KEEP:-0} == 1 ]] || rm -rf "$W"
}
trap cleanup EXIT

R=$W/bundle/rootfs
mkdir -p "$R"/{bin,tmp,proc,dev,sys}
cp /bin/busybox "$R/bin/"
for c in sh sleep echo cat; do ln -s busybox "$R/bin/$c"; done
(cd "$W/bundle" && runc spec) || fail "runc spec"
python3 - "$W/bundle/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["process"]["terminal"] = False
c["process"]["args"] = ["sh", "-c", "i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.1; done"]
c["root"]["readonly"] = False
json.dump(c, open(sys.argv[1], "w"), indent=1)
PY
(cd "$W/bundle" && timeout 30 runc run -d "$ID" </dev/null >/dev/null 2>"$W/run.err") ||
	fail "runc run: $(cat "$W/run.err")"
count() { cat "$R/tmp/count" 2>/dev/null || echo 0; }
for _ in $(seq 100); do (( $(count) > 2 )) && break; sleep 0.05; done
(( $(count) > 2 )) || fail "the container does not count"
PID=$(runc state "$ID" | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])')

mkdir "$W/img"
timeout 60 runc --criu "$CRYO" checkpoint --image-path "$W/img" --work-path "$W/img" "$ID" \
	>"$W/checkpoint.out" 2>&1
rc=$?
cat "$W/checkpoint.out"
echo "--- dump.log:"
cat "$W/img/dump.log" 2>/dev/null
(( rc != 0 )) || { KEEP=1; fail "runc checkpoint succeeded, but cryo cannot dump namespaces yet"; }
grep -q "version check failed" "$W/checkpoint.out" && { KEEP=1; fail "runc's CRIU version check failed"; }
grep -q "criu failed: type DUMP" "$W/checkpoint.out" || { KEEP=1; fail "runc did not get to DUMP"; }
for w in "not supported"; do
	grep -qF "$w" "$W/img/dump.log" || { KEEP=1; fail "dump.log does not name '$w'"; }
done
[[ ! -e $W/img/inventory.img ]] || fail "an image set was written"
runc state "$ID" | grep -q '"running"' || fail "the container is not running after the refusal"
[[ $(runc state "$ID" | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])') == "$PID" ]] ||
	fail "the container's init changed"
c1=$(count); sleep 0.5; c2=$(count)
(( c2 > c1 )) || fail "the container stopped counting ($c1, then $c2)"
grep -q '^State:.*[RS]' "/proc/$PID/status" || fail "init is not running: $(grep State /proc/$PID/status)"
echo "runc: PASS (checkpoint refused clearly, container counts on: $c1 -> $c2)"
