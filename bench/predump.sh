#!/usr/bin/env bash
# cryo incremental dump benchmark: a process that keeps writing its memory, dumped after two
# pre-dumps (the way a live migration does it).
#
#   bench/predump.sh CRYO [MIB [PERMILLE_PER_S]]   (default 1024 MiB, 10 = 1% of pages/s;
#                                                   `make bench-predump`)
#
# dirtyhog writes MIB MiB, then PERMILLE_PER_S thousandths of its pages per second. Then:
# `cryo pre-dump` into 1, `cryo pre-dump --prev-images-dir ../1` into 2, and
# `cryo dump --prev-images-dir ../2 --track-mem` into 3, one right after the other. Printed:
# each step's wall time, frozen time (stats-dump: the tree stopped, from the freeze to the
# release or the SIGKILL, not the teardown after it) and pages written; the final dump's freeze (its freezing +
# frozen time: how long the process did not run) against the 50 ms target; and the three
# image directories' total size against the memory (target 1.1). The tree is then restored
# from 3 (through the chain) and checks every page. Exits 1 if the check fails. BENCH_TMP
# (default /tmp) holds the images.
set -uo pipefail
source "$(dirname "$0")/lib.sh"

[[ $# -ge 1 ]] || die "usage: $0 CRYO [MIB [PERMILLE_PER_S]]"
CRYO=$(readlink -f "$1") || die "no cryo binary at $1"
MIB=${2:-1024}
RATE=${3:-10}
[[ $MIB =~ ^[1-9][0-9]*$ && $RATE =~ ^[0-9]+$ ]] || die "bad size or rate"
HOG=$(dirname "$CRYO")/bench/dirtyhog
[[ -x $CRYO && -x $HOG ]] || die "build first (make build): need cryo and dirtyhog"
[[ $(id -u) -eq 0 ]] || die "must run as root (cryo needs it)"

make_work cryo-predump
mkdir -p "$WORK/w" "$WORK/1" "$WORK/2" "$WORK/3"
start_alone "$WORK/hog.err" "$HOG" "$MIB" "$RATE" "$WORK/w"
wait_for "[[ -s $WORK/w/ready ]]" 120 || die "dirtyhog not ready: $(cat "$WORK/hog.err")"
ROOT=$(cat "$WORK/w/ready")
sleep 1

stat_us() { awk -v k="$2" 'index($0, k ":") == 1 { print $(NF-1) }' "$WORK/$1.stats"; }
step() {  # NAME DIR ARGS...
  local name=$1 dir=$2 t0
  shift 2
  t0=$(now_ns)
  (cd "$WORK" && "$CRYO" "$@" -t "$ROOT" -D "$dir" -o log -v4 --display-stats >"$WORK/$name.stats") ||
    die "$name failed: see $WORK/$dir/log (KEEP=1)"
  local ns=$(($(now_ns) - t0))
  printf '%-10s %8.3f %10.1f %10.1f %10d %10d\n' "$name" "$(calc %f "$ns / 1e9")" \
    "$(calc %f "$(stat_us "$name" 'Freezing time') / 1000")" \
    "$(calc %f "$(stat_us "$name" 'Frozen time') / 1000")" \
    "$(stat_us "$name" 'Memory pages written')" "$(stat_us "$name" 'Memory pages skipped from parent')"
}
printf '%-10s %8s %10s %10s %10s %10s\n' step wall_s freezing_ms frozen_ms pages_written pages_parent
step pre-dump1 1 pre-dump
step pre-dump2 2 pre-dump --prev-images-dir ../1
step dump 3 dump --prev-images-dir ../2 --track-mem

freeze_ms=$(calc %.1f "($(stat_us dump 'Freezing time') + $(stat_us dump 'Frozen time')) / 1000")
# The part of it until the images were complete (the rest is letting the tree go).
images_us=$(sed -n 's/.*images complete after \([0-9]*\) us frozen.*/\1/p' "$WORK/3/log")
images_ms=$(calc %.1f "($(stat_us dump 'Freezing time') + ${images_us:-0}) / 1000")
chain=$(du -cb "$WORK"/1 "$WORK"/2 "$WORK"/3 | awk 'END { print $1 }')
mem=$((MIB * 1024 * 1024 + MIB * 1024))  # the area and gen[] (4 bytes a page)
wait_for "[[ ! -d /proc/$ROOT ]]" 60 || die "dirtyhog still there after the dump"
t0=$(now_ns)
"$CRYO" restore -D "$WORK/3" -d -o restore.log -v4 || die "restore failed: see $WORK/3/restore.log (KEEP=1)"
restore_ns=$(($(now_ns) - t0))
touch "$WORK/w/go"
wait_for "[[ -s $WORK/w/result ]]" 120 || die "the restored dirtyhog did not answer"
verdict=$(cat "$WORK/w/result")

echo
printf '%6s %8s | %14s %15s %6s | %10s %12s %6s %6s | %9s | %s\n' MiB permille/s final_freeze_ms \
  until_images_ms target chain_MiB memory_MiB ratio target restore_s verify
awk -v m="$MIB" -v r="$RATE" -v f="$freeze_ms" -v i="$images_ms" -v c="$chain" -v mem="$mem" \
  -v rs="$restore_ns" -v v="${verdict%%$'\n'*}" 'BEGIN { printf "%6d %8d | %14.1f %15.1f %6s | %10.1f %12.1f %6.3f %6s | %9.3f | %s\n",
  m, r, f, i, "50", c / 1048576, mem / 1048576, c / mem, "1.1", rs / 1e9, v }'
[[ $verdict == PASS* ]] || { echo "RESTORE BROKEN: $verdict"; exit 1; }
