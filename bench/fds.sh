#!/usr/bin/env bash
# cryo fd benchmark: dump and restore time per open fd, against this machine's limit.
#
#   bench/fds.sh CRYO [COUNTS...]        (default: 100 1000 10000 100000; `make bench-fds`)
#
# For each count N: start fdhog N (a tree holding N fds of mixed kinds: files sharing
# inodes, pipes and socketpairs with queued bytes, eventfds and dups; at most 15,000 per
# process, so 100,000 fds are 7 processes), measure the limit with fdscan (reading each fd's
# link, stat and fdinfo through /proc: the least a dumper does per fd), time `cryo dump`,
# time `cryo restore -d`, then let the restored tree check every fd (kinds, sharing, queued
# bytes, counters). Restore is measured against the time fdhog took to make its fds.
# Exits 1 if a restored tree fails its check. BENCH_TMP (default /tmp) holds the images.
set -uo pipefail
source "$(dirname "$0")/lib.sh"

[[ $# -ge 1 ]] || die "usage: $0 CRYO [COUNTS...]"
CRYO=$(readlink -f "$1") || die "no cryo binary at $1"
shift
COUNTS=("$@")
[[ ${#COUNTS[@]} -gt 0 ]] || COUNTS=(100 1000 10000 100000)
BIN=$(dirname "$CRYO")/bench
FDHOG=$BIN/fdhog
FDSCAN=$BIN/fdscan
[[ -x $CRYO && -x $FDHOG && -x $FDSCAN ]] || die "build first (make build): need cryo, fdhog, fdscan"
[[ $(id -u) -eq 0 ]] || die "must run as root (cryo needs it)"
for n in "${COUNTS[@]}"; do [[ $n =~ ^[1-9][0-9]*$ ]] || die "bad count '$n'"; done

make_work cryo-fds

printf '%8s %5s | %8s %8s %8s %6s | %8s %8s %8s %6s | %s\n' fds tasks dump_s us/fd limit_s ratio \
  restore_s us/fd make_s ratio check
broken=0
for n in "${COUNTS[@]}"; do
  d=$WORK/$n
  mkdir -p "$d/w" "$d/img"
  start_alone "$d/fdhog.err" "$FDHOG" "$n" "$d/w"
  wait_for "[[ -s $d/w/ready ]]" 120 || die "fdhog $n not ready: $(cat "$d/fdhog.err")"
  ROOT=$(cat "$d/w/ready")
  pids=$(cat "$d"/w/ready-* | awk '{print $1}')
  tasks=$(echo "$pids" | wc -w)
  make_ns=$(cat "$d/w/create_ns")
  # The limit, twice: the first pass warms the dentry cache as a dump's own reading would.
  "$FDSCAN" $pids >/dev/null
  limit=$("$FDSCAN" $pids | awk '{print $1}')
  t0=$(now_ns)
  "$CRYO" dump -t "$ROOT" -D "$d/img" >"$d/dump.out" 2>&1 || die "dump of $n fds failed: $(tail -3 "$d/dump.out")"
  dump_ns=$(($(now_ns) - t0))
  wait_for "[[ ! -d /proc/$ROOT ]]" 30 || die "pid $ROOT still taken after the dump"
  t0=$(now_ns)
  "$CRYO" restore -D "$d/img" -d >"$d/restore.out" 2>&1 ||
    die "restore of $n fds failed: $(tail -3 "$d/restore.out")"
  restore_ns=$(($(now_ns) - t0))
  touch "$d/w/go"
  if wait_for "[[ -s $d/w/result ]]" 120 && grep -q PASS "$d/w/result"; then
    check=PASS
  else
    check="FAIL ($(cat "$d"/w/result-* 2>/dev/null | grep -m3 FAIL | tr '\n' ' '))"
    broken=1
  fi
  kill -9 -- "-$ROOT" 2>/dev/null
  ROOT=
  printf '%8d %5d | %8.3f %8.1f %8.3f %6.2f | %8.3f %8.1f %8.3f %6.2f | %s\n' "$n" "$tasks" \
    "$(calc %.3f "$dump_ns / 1e9")" "$(calc %.1f "$dump_ns / 1e3 / $n")" "$limit" \
    "$(calc %.2f "$dump_ns / 1e9 / $limit")" \
    "$(calc %.3f "$restore_ns / 1e9")" "$(calc %.1f "$restore_ns / 1e3 / $n")" \
    "$(calc %.3f "$make_ns / 1e9")" "$(calc %.2f "$restore_ns / $make_ns")" "$check"
  [[ ${KEEP:-0} == 1 ]] || rm -rf "$d/img"
done
echo "ratio: cryo's time over the limit (dump: fdscan reading every fd through /proc;"
echo "restore: fdhog making the fds). Times are wall clock and include freezing the tree,"
echo "its memory and every other image."
exit $broken
