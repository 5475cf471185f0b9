#!/usr/bin/env bash
# cryo fd benchmark: dump and restore time per open fd, against this machine's limit.
#
#   bench/fds.sh CRYO [COUNTS...]        (default: 100 1000 4000 10000 100000; `make bench-fds`)
#
# For each count N: start fdhog N (a tree holding N fds of mixed kinds: files sharing
# inodes, pipes and socketpairs with queued bytes, eventfds and dups; at most 15,000 per
# process, so 100,000 fds are 7 processes), measure two limits with fdscan (reading each fd's
# link, stat and fdinfo through /proc, as a simple dumper does; reading only each fd's
# fdinfo, the least any dumper must do), time `cryo dump`,
# time `cryo restore -d`, then let the restored tree check every fd (kinds, sharing, queued
# bytes, counters). Restore is measured against the time fdhog took to make its fds.
# Exits 1 if a restored tree fails its check. BENCH_TMP (default /tmp) holds the images.
#
# REPEAT=K runs each count K times and ends with the medians. BENCH_RT=1 runs the whole
# benchmark (limit, cryo, the trees) under SCHED_FIFO, so that other work on a busy machine
# does not take the CPUs away in the middle of a measurement.
set -uo pipefail
source "$(dirname "$0")/lib.sh"

[[ $# -ge 1 ]] || die "usage: $0 CRYO [COUNTS...]"
if [[ ${BENCH_RT:-0} == 1 && ${BENCH_RT_ON:-0} != 1 ]]; then
  BENCH_RT_ON=1 exec chrt -f 1 "$0" "$@" || die "cannot run under SCHED_FIFO (chrt)"
fi
CRYO=$(readlink -f "$1") || die "no cryo binary at $1"
shift
COUNTS=("$@")
[[ ${#COUNTS[@]} -gt 0 ]] || COUNTS=(100 1000 4000 10000 100000)
REPEAT=${REPEAT:-1}
[[ $REPEAT =~ ^[1-9][0-9]*$ ]] || die "bad REPEAT '$REPEAT'"
BIN=$(dirname "$CRYO")/bench
FDHOG=$BIN/fdhog
FDSCAN=$BIN/fdscan
[[ -x $CRYO && -x $FDHOG && -x $FDSCAN ]] || die "build first (make build): need cryo, fdhog, fdscan"
[[ $(id -u) -eq 0 ]] || die "must run as root (cryo needs it)"
for n in "${COUNTS[@]}"; do [[ $n =~ ^[1-9][0-9]*$ ]] || die "bad count '$n'"; done

make_work cryo-fds

header() {
  printf '%8s %5s | %8s %8s %8s %6s %8s %6s | %8s %8s %8s %6s | %s\n' fds tasks dump_s us/fd \
    limit_s ratio info_s ratio restore_s us/fd make_s ratio "$1"
}
row() {  # N TASKS DUMP_NS LIMIT_S INFO_S RESTORE_NS MAKE_NS LAST
  printf '%8d %5d | %8.3f %8.1f %8.3f %6.2f %8.3f %6.2f | %8.3f %8.1f %8.3f %6.2f | %s\n' "$1" \
    "$2" "$(calc %.3f "$3 / 1e9")" "$(calc %.1f "$3 / 1e3 / $1")" "$4" \
    "$(calc %.2f "$3 / 1e9 / $4")" "$5" "$(calc %.2f "$3 / 1e9 / $5")" \
    "$(calc %.3f "$6 / 1e9")" "$(calc %.1f "$6 / 1e3 / $1")" "$(calc %.3f "$7 / 1e9")" \
    "$(calc %.2f "$6 / $7")" "$8"
}

header check
broken=0
declare -A all_dump all_limit all_info all_restore all_make all_tasks
run=0
for ((r = 0; r < REPEAT; r++)); do
  for n in "${COUNTS[@]}"; do
    run=$((run + 1))
    d=$WORK/$run
    mkdir -p "$d/w" "$d/img"
    # setsid -f: fdhog is not a job of this shell (no "Killed" line when its tree is killed).
    setsid -f "$FDHOG" "$n" "$d/w" </dev/null >/dev/null 2>"$d/fdhog.err"
    wait_for "[[ -s $d/w/ready ]]" 120 || die "fdhog $n not ready: $(cat "$d/fdhog.err")"
    ROOT=$(cat "$d/w/ready")
    pids=$(cat "$d"/w/ready-* | awk '{print $1}')
    tasks=$(echo "$pids" | wc -w)
    make_ns=$(cat "$d/w/create_ns")
    # The limits, each twice: the first pass warms the dentry cache as a dump's own reading
    # would.
    "$FDSCAN" $pids >/dev/null
    limit=$("$FDSCAN" $pids | awk '{print $1}')
    "$FDSCAN" -i $pids >/dev/null
    info=$("$FDSCAN" -i $pids | awk '{print $1}')
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
    wait_for "[[ ! -d /proc/$ROOT ]]" 30
    ROOT=
    row "$n" "$tasks" "$dump_ns" "$limit" "$info" "$restore_ns" "$make_ns" "$check"
    all_dump[$n]+="$dump_ns "
    all_limit[$n]+="$limit "
    all_info[$n]+="$info "
    all_restore[$n]+="$restore_ns "
    all_make[$n]+="$make_ns "
    all_tasks[$n]=$tasks
    [[ ${KEEP:-0} == 1 ]] || rm -rf "$d"
  done
done
if ((REPEAT > 1)); then
  echo
  header "(medians of $REPEAT runs; ratios of the medians)"
  for n in "${COUNTS[@]}"; do
    row "$n" "${all_tasks[$n]}" "$(median <<<"${all_dump[$n]}")" "$(median <<<"${all_limit[$n]}")" \
      "$(median <<<"${all_info[$n]}")" "$(median <<<"${all_restore[$n]}")" \
      "$(median <<<"${all_make[$n]}")" ""
  done
fi
echo "ratio: cryo's time over a limit (dump: limit_s = fdscan reading every fd's link, stat and"
echo "fdinfo through /proc, info_s = reading only every fd's fdinfo, both on one thread; restore:"
echo "fdhog making the fds). Times are wall clock and include starting cryo, freezing the tree,"
echo "its memory and every other image${BENCH_RT_ON:+ (all under SCHED_FIFO)}."
exit $broken
