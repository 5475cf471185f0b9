#!/bin/bash
# podman checkpoint/restore with cryo as its criu (podman -> runc -> criu swrk, CRIU's RPC).
#
#   podman.sh CRYO
#
# Debian's podman 4.3 with runc as its runtime, all of its state (storage, run root, tmp dir,
# configuration) in a temporary directory; the image is made here with `podman import` from a
# busybox-static rootfs tarball, no registry. podman and runc run `criu` from PATH, so a
# directory holding a `criu` link to cryo comes first in PATH, for podman and for conmon (which
# runs `runc restore`).
#
# 1. A container holding an established TCP connection is checkpointed without
#    --tcp-established: podman must fail naming the log, the log must name the refusal, and the
#    container must run on (same init, still counting).
# 2. A counting container: `podman container checkpoint --export` then, once it is removed,
#    `podman container restore --import`: it must run again (`podman ps`), its init still PID 1
#    inside, its counter going on from where it was (not from 0).
# Step 1 may stop earlier than the TCP connection, at a socket of the container's own network
# namespace (not supported yet): the refusal is checked all the same.
set -u
CRYO=$(readlink -f "$1")
fail() { echo "FAIL: $*"; KEEP=1; exit 1; }
command -v podman >/dev/null || { echo "FAIL: podman is not installed (scripts/install-deps.sh)"; exit 1; }
command -v runc >/dev/null || { echo "FAIL: runc is not installed (scripts/install-deps.sh)"; exit 1; }
[[ -x /bin/busybox ]] || { echo "FAIL: busybox-static is not installed (scripts/install-deps.sh)"; exit 1; }

W=$(mktemp -d /tmp/rpc-podman.XXXXXX)
KEEP=0
# What podman leaves outside its --root: the blob info cache of `podman import` and its shm
# lock. Removed at the end only when this test made them.
[[ -e /var/lib/containers ]] && had_varlib=1 || had_varlib=0
[[ -e /dev/shm/libpod_lock ]] && had_lock=1 || had_lock=0

mkdir -p "$W/bin" "$W/tmp"
ln -s "$CRYO" "$W/bin/criu"
export PATH="$W/bin:$PATH"
cat >"$W/containers.conf" <<EOF
[engine]
conmon_env_vars = ["PATH=$PATH"]
EOF
export CONTAINERS_CONF="$W/containers.conf"
P=(podman --root "$W/root" --runroot "$W/runroot" --tmpdir "$W/tmp" --storage-driver overlay
	--cgroup-manager cgroupfs --events-backend none --runtime runc)
# podman asks for RLIMIT_NOFILE/NPROC above the hard limits here (no CAP_SYS_RESOURCE).
RUN=(--network none --ulimit "nofile=1024:$(ulimit -Hn)" --ulimit nproc=4096:4096)

cleanup() {
	"${P[@]}" rm -af -t 0 >/dev/null 2>&1
	"${P[@]}" rmi -af >/dev/null 2>&1
	# The overlay driver keeps its home bind-mounted; unmount whatever is left below $W.
	awk -v w="$W/" 'index($5, w) == 1 { print $5 }' /proc/self/mountinfo | sort -r |
		while read -r m; do umount -l "$m"; done
	((had_varlib)) || rm -rf /var/lib/containers
	((had_lock)) || rm -f /dev/shm/libpod_lock
	if ((KEEP)); then echo "kept: $W"; else rm -rf "$W"; fi
}
trap cleanup EXIT

R=$W/rootfs
mkdir -p "$R"/{bin,tmp,proc,dev,sys,etc,run}
cp /bin/busybox "$R/bin/"
for c in sh sleep echo cat nc; do ln -s busybox "$R/bin/$c"; done
tar -C "$R" -cf "$W/rootfs.tar" . || fail "tar of the rootfs"
"${P[@]}" import "$W/rootfs.tar" cryo-busybox:test >"$W/import.out" 2>&1 ||
	fail "podman import: $(cat "$W/import.out")"

# The counter writes the shell's own PID too: the container's init sees itself as 1.
LOOP='echo $$ > /tmp/pid; i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.1; done'
start() { # NAME SCRIPT
	"${P[@]}" run -d --name "$1" "${RUN[@]}" cryo-busybox:test sh -c "$2" >"$W/run-$1.out" 2>&1 ||
		fail "podman run $1: $(cat "$W/run-$1.out")"
}
# A file of the container, read from inside (the counter is rewritten all the time: an empty
# read is retried).
in_ctr() {
	local v
	for _ in 1 2 3 4 5; do
		v=$("${P[@]}" exec "$1" cat "$2" 2>/dev/null)
		[[ -n $v ]] && break
		sleep 0.05
	done
	echo "${v:-0}"
}
host_pid() { "${P[@]}" inspect "$1" --format '{{.State.Pid}}'; }
state() { "${P[@]}" inspect "$1" --format '{{.State.Status}}' 2>/dev/null; }
wait_count() { # NAME MIN
	for _ in $(seq 100); do (($(in_ctr "$1" /tmp/count) > $2)) && return 0; sleep 0.1; done
	fail "container $1 does not count past $2 (at $(in_ctr "$1" /tmp/count))"
}
# Keeps going: two readings half a second apart; sets COUNT to the last.
counts_on() { # NAME
	local c1
	c1=$(in_ctr "$1" /tmp/count); sleep 0.5; COUNT=$(in_ctr "$1" /tmp/count)
	((COUNT > c1)) || fail "container $1 stopped counting ($c1, then $COUNT)"
}
dump_log() { # NAME: runc's work path is the container's userdata directory
	cat "$W/root/overlay-containers/$("${P[@]}" inspect "$1" --format '{{.Id}}')/userdata/dump.log" 2>/dev/null
}

# --- 1. A refusal: an established TCP connection inside, no --tcp-established.
start tcp "sleep 100000 | nc -l -p 5555 >/dev/null & sleep 0.3; (while true; do echo x; sleep 1; done) | nc 127.0.0.1 5555 & $LOOP"
wait_count tcp 2
PID=$(host_pid tcp)
timeout 60 "${P[@]}" container checkpoint --keep tcp >"$W/tcp.out" 2>&1
rc=$?
cat "$W/tcp.out"
dump_log tcp >"$W/tcp.log"
echo "--- dump.log:"; cat "$W/tcp.log"
((rc != 0)) || fail "podman checkpoint of a container with an established TCP connection succeeded"
# runc names the type of its last request: NOTIFY once it has answered the pre-dump notification.
grep -qE "criu failed: type (DUMP|NOTIFY)" "$W/tcp.out" || fail "podman's error does not say that criu failed"
grep -q "dump.log" "$W/tcp.out" || fail "podman's error does not name the log"
[[ $(state tcp) == running ]] || fail "container tcp is $(state tcp) after the refused checkpoint"
[[ $(host_pid tcp) == "$PID" ]] || fail "container tcp has another init after the refusal"
counts_on tcp
"${P[@]}" ps --format '{{.Names}} {{.Status}}' | grep -q '^tcp Up' || fail "podman ps does not show tcp up"
echo "refusal: podman failed, tcp runs on (init $PID, count $COUNT)"

# The pieces other work provides: an error line of the log naming one of them means that piece
# is missing.
missing() { # LOG
	local pat what
	while IFS='|' read -r pat what; do
		grep -i error "$1" | grep -qiE "$pat" && { echo "$what"; return 0; }
	done <<'EOF'
option --empty-ns is not supported|--empty-ns net (runc always asks for an empty network namespace)
option --inherit-fd is not supported|--inherit-fd for pipes (runc gives the container's new stdio so)
ipc namespace.*not supported|IPC namespaces (the container has its own)
net(work)? namespace.*not supported|network namespaces (the container has its own)
EOF
	return 1
}
if grep -q -- "--tcp-established" "$W/tcp.log"; then
	echo "the log names the TCP connection and --tcp-established"
elif m=$(missing "$W/tcp.log"); then
	echo "NOTE: the dump stopped before the TCP connection, at a missing piece: $m"
else
	fail "dump.log does not name the established TCP connection"
fi
"${P[@]}" rm -f -t 0 tcp >/dev/null 2>&1

# --- 2. checkpoint --export, then restore --import.
start ctr "$LOOP"
wait_count ctr 20
[[ $(in_ctr ctr /tmp/pid) == 1 ]] || fail "the container's init is $(in_ctr ctr /tmp/pid) inside, not 1"
before=$(in_ctr ctr /tmp/count)
t0=$(date +%s%N)
timeout 120 "${P[@]}" container checkpoint --export "$W/ctr.tar.zst" ctr >"$W/checkpoint.out" 2>&1
rc=$?
t_ckpt=$((($(date +%s%N) - t0) / 1000000))
cat "$W/checkpoint.out"
if ((rc != 0)); then
	dump_log ctr >"$W/ctr.log"
	echo "--- dump.log:"; cat "$W/ctr.log"
	[[ $(state ctr) == running ]] || fail "container ctr is $(state ctr) after a failed checkpoint"
	counts_on ctr
	fail "podman container checkpoint --export: exit status $rc"
fi
[[ $(state ctr) == exited ]] || fail "container ctr is $(state ctr) after its checkpoint"
# podman compresses with zstd by default; tar finds that out by itself.
tar -tf "$W/ctr.tar.zst" >"$W/export.list" || fail "the export $W/ctr.tar.zst is not a tar archive"
for f in config.dump spec.dump stats-dump checkpoint/inventory.img checkpoint/pstree.img; do
	grep -qx "\(\./\)\?$f" "$W/export.list" || fail "the export holds no $f"
done
mkdir "$W/export" && tar -xf "$W/ctr.tar.zst" -C "$W/export" checkpoint stats-dump
for f in checkpoint/pstree.img checkpoint/inventory.img stats-dump; do
	crit decode -i "$W/export/$f" >/dev/null || fail "crit cannot decode the exported $f"
done
"${P[@]}" rm -f ctr >/dev/null || fail "podman rm ctr"
t0=$(date +%s%N)
if ! timeout 120 "${P[@]}" container restore --import "$W/ctr.tar.zst" >"$W/restore.out" 2>&1; then
	cat "$W/restore.out"
	cat "$W"/root/overlay-containers/*/userdata/restore.log >"$W/restore.log" 2>/dev/null
	echo "--- restore.log:"; cat "$W/restore.log"
	fail "podman container restore --import failed"
fi
t_rst=$((($(date +%s%N) - t0) / 1000000))
cat "$W/restore.out"
echo "podman container checkpoint --export: $t_ckpt ms; restore --import: $t_rst ms"
[[ $(state ctr) == running ]] || fail "container ctr is $(state ctr) after restore"
"${P[@]}" ps --format '{{.Names}} {{.Status}}' | grep -q '^ctr Up' || fail "podman ps does not show ctr up"
init=$("${P[@]}" exec ctr cat /proc/1/cmdline | tr '\0' ' ')
[[ $init == "sh -c $LOOP " ]] || fail "PID 1 inside is not the counting shell: $init"
PID=$(host_pid ctr)
nspid=$(awk '/^NSpid:/ { print $NF }' "/proc/$PID/status")
[[ $nspid == 1 ]] || fail "the container's init (host PID $PID) is $nspid in its namespace, not 1"
after=$(in_ctr ctr /tmp/count)
((after >= before)) || fail "the counter starts again: $before before the checkpoint, $after after restore"
counts_on ctr
echo "podman: PASS (checkpoint --export and restore --import; init is PID 1 inside, count $before -> $COUNT)"
