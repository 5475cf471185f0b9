#!/usr/bin/env bash
# cryo dump/restore benchmark over tree shapes: process count, VMA count, thread count.
#
#   bench/shapes.sh CRYO [SHAPE...]     (`make bench-shapes`)
#
# SHAPE is procs:N[:MIB] (N processes of MIB MiB, default 1), vmas:N (one process with N
# one-page VMAs) or threads:N (one process of N threads). Default:
# procs:1 procs:10 procs:100 vmas:20000 threads:200.
# Each shape runs ROUNDS times (default 3) and the summary gives the medians. One round:
# start treehog (bench/treehog.c), measure the dump's limit with dumpscan (seizing every
# thread, reading smaps and pagemap, copying the pages into a file and creating the other
# files of the image set: the least any dumper does; run twice, the second timed), time
# `cryo dump`, wait for the PIDs to be free, time `cryo restore -d`, then let the restored
# tree check itself (memory, VMAs and their protections, thread ids, stacks and thread-local
# words). The restore is compared with the time treehog took to make its shape. A failed
# check fails the run. BENCH_TMP (default /tmp) holds the images, all kept until the end
# (KEEP=1: after it): on ext4 without a journal, files deleted in the last 30 s make every
# file created next to them slower, the limit's and cryo's alike.
set -uo pipefail
source "$(dirname "$0")/lib.sh"

[[ $# -ge 1 ]] || die "usage: $0 CRYO [SHAPE...]"
CRYO=$(readlink -f "$1") || die "no cryo binary at $1"
shift
SHAPES=("$@")
[[ ${#SHAPES[@]} -gt 0 ]] || SHAPES=(procs:1 procs:10 procs:100 vmas:20000 threads:200)
ROUNDS=${ROUNDS:-3}
BIN=$(dirname "$CRYO")/bench
TREEHOG=$BIN/treehog
DUMPSCAN=$BIN/dumpscan
[[ -x $CRYO && -x $TREEHOG && -x $DUMPSCAN ]] || die "build first (make build): need cryo, treehog, dumpscan"
[[ $(id -u) -eq 0 ]] || die "must run as root (cryo needs it)"
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "bad ROUNDS '$ROUNDS'"
for s in "${SHAPES[@]}"; do
  [[ $s =~ ^(procs:[1-9][0-9]*(:[1-9][0-9]*)?|vmas:[1-9][0-9]*|threads:[1-9][0-9]*)$ ]] ||
    die "bad shape '$s' (procs:N[:MIB], vmas:N or threads:N)"
done

make_work cryo-shapes

# One round of a shape. Sets ROW to "dump_s limit_s restore_s make_s tasks threads vmas pages
# check" and returns 1 when the restored tree failed its check.
round() {  # SHAPE N DIR
  local kind=${1%%:*} rest=${1#*:} d=$3 n mib=1 args t0 dump_ns restore_ns
  n=${rest%%:*}
  [[ $rest == *:* ]] && mib=${rest#*:}
  rm -rf "$d"
  mkdir -p "$d/w" "$d/img"
  case $kind in
  procs) args=(procs "$n" "$mib" "$d/w") ;;
  *) args=("$kind" "$n" "$d/w") ;;
  esac
  start_alone "$d/treehog.err" "$TREEHOG" "${args[@]}"
  wait_for "[[ -s $d/w/ready ]]" 300 || die "treehog ${args[*]} not ready: $(cat "$d/treehog.err")"
  ROOT=$(cat "$d/w/ready")
  local pids make_ns scan
  pids=$(cat "$d/w/pids")
  make_ns=$(cat "$d/w/create_ns")
  mkdir -p "$d/scan1" "$d/scan2"
  # shellcheck disable=SC2086
  "$DUMPSCAN" "$d/scan1" $pids >/dev/null || die "dumpscan failed"
  # shellcheck disable=SC2086
  scan=$("$DUMPSCAN" "$d/scan2" $pids) || die "dumpscan failed"
  t0=$(now_ns)
  "$CRYO" dump -t "$ROOT" -D "$d/img" >"$d/dump.out" 2>&1 || die "dump of $1 failed: $(tail -3 "$d/dump.out")"
  dump_ns=$(($(now_ns) - t0))
  # Every PID free (PID 1 reaps orphans lazily here), so that the restore time is restore only.
  local p
  for p in $pids; do
    wait_for "[[ ! -d /proc/$p ]]" 60 || die "pid $p still taken 60 s after the dump"
  done
  t0=$(now_ns)
  "$CRYO" restore -D "$d/img" -d >"$d/restore.out" 2>&1 ||
    die "restore of $1 failed: $(tail -3 "$d/restore.out")"
  restore_ns=$(($(now_ns) - t0))
  touch "$d/w/go"
  local check
  if wait_for "[[ -s $d/w/result ]]" 300; then
    check=$(head -1 "$d/w/result")
  else
    check="FAIL: no result from the restored tree"
  fi
  kill -9 -- "-$ROOT" 2>/dev/null
  wait_for "[[ ! -d /proc/$ROOT ]]" 60
  ROOT=
  # scan: seconds tasks threads vmas pages
  read -r scan_s tasks threads vmas pages <<<"$scan"
  ROW="$(calc %.4f "$dump_ns / 1e9") $scan_s $(calc %.4f "$restore_ns / 1e9")"
  ROW+=" $(calc %.4f "$make_ns / 1e9") $tasks $threads $vmas $pages ${check// /_}"
  [[ $check == PASS* ]]
}

echo "cryo shape benchmark: $CRYO ($ROUNDS rounds a shape, medians; $(nproc) CPUs," \
  "load $(cut -d' ' -f1-3 /proc/loadavg))"
printf '%-14s %5s %6s %6s | %8s %8s %6s %10s | %9s %8s %6s | %s\n' shape tasks thrds vmas \
  dump_s limit_s ratio per_unit restore_s make_s ratio check
broken=0
for shape in "${SHAPES[@]}"; do
  rows=()
  for ((r = 0; r < ROUNDS; r++)); do
    round "$shape" "$r" "$WORK/$shape.$r" || broken=1
    rows+=("$ROW")
    [[ -n ${VERBOSE:-} ]] && echo "  round $r: $ROW" >&2
  done
  col() { printf '%s\n' "${rows[@]}" | awk -v c="$1" '{ print $c }' | median; }
  dump=$(col 1) limit=$(col 2) restore=$(col 3) make=$(col 4)
  read -r _ _ _ _ tasks threads vmas _ _ <<<"${rows[0]}"
  checks=$(printf '%s\n' "${rows[@]}" | awk '{ print $9 }' | sort -u | tr '\n' ' ')
  [[ $checks == PASS*" " && $(wc -w <<<"$checks") -eq 1 ]] && check=PASS || check="$checks"
  case ${shape%%:*} in
  procs) unit=$(calc '%.2f ms/task' "$dump * 1e3 / $tasks") ;;
  vmas) unit=$(calc '%.1f us/vma' "$dump * 1e6 / ${shape#*:}") ;;
  threads) unit=$(calc '%.0f us/thr' "$dump * 1e6 / $threads") ;;
  esac
  printf '%-14s %5d %6d %6d | %8.3f %8.3f %6.2f %10s | %9.3f %8.3f %6.2f | %s\n' "$shape" \
    "$tasks" "$threads" "$vmas" "$dump" "$limit" "$(calc %.2f "$dump / $limit")" "$unit" \
    "$restore" "$make" "$(calc %.2f "$restore / $make")" "${check//_/ }"
done
echo "dump ratio: cryo dump over dumpscan (seize every thread, smaps, pagemap, copy the pages"
echo "into the page cache, create the image files); restore ratio: cryo restore over the time"
echo "treehog took to make the shape. Wall clock, medians; cryo's times include starting cryo,"
echo "freezing and every image."
exit $broken
