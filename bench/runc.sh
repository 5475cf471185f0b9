#!/bin/bash
# runc checkpoint and restore -d time of a busybox container with N processes (default 50),
# with cryo as runc's criu.
#
#   bench/runc.sh CRYO [N] [ROUNDS]
#
# The container (runc's default spec, busybox-static, stdio not a terminal) runs a shell
# loop counting into /tmp/count and N-1 sleeping children. Each round times `runc checkpoint`
# and `runc restore -d` (wall clock, as a user sees them), checks that the restored container
# counts on with all N processes, and prints one line. Namespaces this cryo refuses are left
# out of the spec (said so). The issue's target is within 2x CRIU 4.2 (about 0.25 s for a
# 2-process container); CRIU cannot run on these machines, so only cryo's figures are shown.
set -u
CRYO=$(readlink -f "$1")
N=${2:-50}
ROUNDS=${3:-3}
die() {
	echo "runc bench: $*" >&2
	exit 1
}
command -v runc >/dev/null || die "runc is not installed (scripts/install-deps.sh)"
[[ -x /bin/busybox ]] || die "busybox-static is not installed (scripts/install-deps.sh)"
W=$(mktemp -d /tmp/cryo-bench-runc.XXXXXX)
ID=cryo-bench-$$
cleanup() {
	runc kill "$ID" KILL >/dev/null 2>&1
	sleep 0.3
	runc delete -f "$ID" >/dev/null 2>&1
	[[ ${KEEP:-0} == 1 ]] || rm -rf "$W"
}
trap cleanup EXIT

DROP=()
probe=$("$CRYO" restore --empty-ns net -D /nonexistent 2>&1)
[[ $probe == *"--empty-ns is not supported"* ]] &&
	die "this cryo does not support --empty-ns net, which runc always asks for"
setsid unshare --ipc --fork sleep 30 &
ipc_pid=$!
sleep 0.2
probe=$("$CRYO" dump -t "$ipc_pid" -D "$(mktemp -d "$W/probe.XXXX")" -R 2>&1)
[[ $probe == *"ipc namespace"*"not supported"* ]] && DROP+=(ipc)
kill "$ipc_pid" 2>/dev/null
wait 2>/dev/null
((${#DROP[@]})) && echo "note: namespaces left out of the spec: ${DROP[*]}"

B=$W/bundle
R=$B/rootfs
mkdir -p "$R"/{bin,tmp,proc,dev,sys}
cp /bin/busybox "$R/bin/"
for c in sh sleep; do ln -s busybox "$R/bin/$c"; done
(cd "$B" && runc spec) || die "runc spec"
python3 - "$B/config.json" "$N" "${DROP[@]}" <<'PY'
import json, sys
path, n, drop = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
c = json.load(open(path))
c["process"]["terminal"] = False
kids = "sleep 100000 & " * (n - 1)
c["process"]["args"] = ["sh", "-c", kids + "i=0; while true; do i=$((i+1)); echo $i >/tmp/count; sleep 0.2; done"]
c["root"]["readonly"] = False
c["linux"]["namespaces"] = [x for x in c["linux"]["namespaces"] if x["type"] not in drop]
json.dump(c, open(path, "w"), indent=1)
PY
count() { cat "$R/tmp/count" 2>/dev/null || echo 0; }
procs() { # init and its sleeping children (the loop's own sleep 0.2 comes and goes)
	local pid n=1 c
	pid=$(runc state "$ID" | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])')
	for c in $(cat "/proc/$pid/task/$pid/children"); do
		tr '\0' ' ' 2>/dev/null <"/proc/$c/cmdline" | grep -q 'sleep 100000' && n=$((n + 1))
	done
	echo "$n"
}
now() { date +%s%N; }
(cd "$B" && runc run -d "$ID" </dev/null >/dev/null 2>"$W/run.err") || die "runc run: $(cat "$W/run.err")"
for _ in $(seq 100); do (($(count) > 1)) && break; sleep 0.05; done
echo "container of $N processes ($(procs) running); times are wall clock, in seconds"
for r in $(seq "$ROUNDS"); do
	img=$W/img$r
	mkdir "$img"
	t0=$(now)
	runc --criu "$CRYO" checkpoint --image-path "$img" --work-path "$img" "$ID" >"$img.out" 2>&1 ||
		die "checkpoint failed: $(cat "$img.out")"
	t1=$(now)
	(cd "$B" && runc --criu "$CRYO" restore -d --image-path "$img" --work-path "$img" "$ID" \
		</dev/null >"$img.rout" 2>&1) || die "restore failed: $(cat "$img.rout")"
	t2=$(now)
	c1=$(count)
	sleep 0.5
	(($(count) > c1)) || die "round $r: the restored container does not count"
	n=$(procs)
	((n == N)) || die "round $r: $n processes after the restore, not $N"
	printf 'round %d: checkpoint %.3f  restore -d %.3f  (%d processes, counts on)\n' "$r" \
		"$(echo "($t1 - $t0) / 1000000000" | bc -l)" "$(echo "($t2 - $t1) / 1000000000" | bc -l)" "$n"
done
