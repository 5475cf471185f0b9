#!/usr/bin/env bash
# cryo copy-on-write benchmark: a pre-fork server's tree memory before the dump and after
# the restore.
#
#   bench/cow.sh CRYO [MIB [CHILDREN]]      (default 256 MiB, 4 children; `make bench-cow`)
#
# cowhog writes MIB MiB in a parent and forks CHILDREN children that only read it: every page
# is shared by CHILDREN + 1 processes. The tree's memory is the sum of each process's PSS
# (/proc/PID/smaps_rollup), before `cryo dump` and after `cryo restore -d`; the limit is the
# memory before (ratio 1.00: every shared page shared again; CHILDREN + 1 if each process got
# its own copy). Dump and restore are timed too, and the restored tree checks every word of
# its memory. Exits 1 if the check fails. BENCH_TMP (default /tmp) holds the images.
set -uo pipefail
source "$(dirname "$0")/lib.sh"

[[ $# -ge 1 ]] || die "usage: $0 CRYO [MIB [CHILDREN]]"
CRYO=$(readlink -f "$1") || die "no cryo binary at $1"
MIB=${2:-256}
KIDS=${3:-4}
[[ $MIB =~ ^[1-9][0-9]*$ && $KIDS =~ ^[1-9][0-9]*$ ]] || die "bad size or child count"
COWHOG=$(dirname "$CRYO")/bench/cowhog
[[ -x $CRYO && -x $COWHOG ]] || die "build first (make build): need cryo and cowhog"
[[ $(id -u) -eq 0 ]] || die "must run as root (cryo needs it)"

make_work cryo-cow
tree_pss_kb() {
  local p sum=0 v
  for p in $(cat "$WORK/w/pids"); do
    v=$(awk '/^Pss:/ { print $2 }' "/proc/$p/smaps_rollup" 2>/dev/null) || return 1
    sum=$((sum + v))
  done
  echo "$sum"
}

mkdir -p "$WORK/w" "$WORK/img"
start_alone "$WORK/cowhog.err" "$COWHOG" "$MIB" "$KIDS" "$WORK/w"
wait_for "[[ -s $WORK/w/ready ]]" 120 || die "cowhog not ready: $(cat "$WORK/cowhog.err")"
ROOT=$(cat "$WORK/w/ready")
before=$(tree_pss_kb) || die "cannot read the tree's memory"

t0=$(now_ns)
"$CRYO" dump -t "$ROOT" -D "$WORK/img" -o dump.log -v4 || die "dump failed: see $WORK/img/dump.log (KEEP=1)"
dump_ns=$(($(now_ns) - t0))
for p in $(cat "$WORK/w/pids"); do
  wait_for "[[ ! -d /proc/$p ]]" 60 || die "task $p still there after the dump"
done
t0=$(now_ns)
"$CRYO" restore -D "$WORK/img" -d -o restore.log -v4 || die "restore failed: see $WORK/img/restore.log (KEEP=1)"
restore_ns=$(($(now_ns) - t0))
after=$(tree_pss_kb) || die "cannot read the restored tree's memory"

touch "$WORK/w/go"
wait_for "[[ \$(ls $WORK/w | grep -c '^result-') -ge $((KIDS + 1)) ]]" 120 || die "the restored tree did not answer"
if grep -qv PASS "$WORK"/w/result-*; then
  verdict=FAIL
else
  verdict=PASS
fi

printf '%6s %8s | %12s %12s %6s | %7s %9s | %s\n' MiB children \
  tree_MiB_before tree_MiB_after ratio dump_s restore_s verify
awk -v m="$MIB" -v k="$KIDS" -v b="$before" -v a="$after" -v d="$dump_ns" -v r="$restore_ns" \
  -v v="$verdict" 'BEGIN { printf "%6d %8d | %12.1f %12.1f %6.2f | %7.3f %9.3f | %s\n",
  m, k, b / 1024, a / 1024, a / b, d / 1e9, r / 1e9, v }'
[[ $verdict == PASS ]] || { echo "RESTORE BROKEN: $(grep -v PASS "$WORK"/w/result-* | head -3)"; exit 1; }
