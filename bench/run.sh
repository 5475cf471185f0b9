#!/usr/bin/env bash
# cryo dump/restore benchmark against this machine's limits (memcpy bandwidth, disk write rate).
#
#   bench/run.sh CRYO [SIZES_MiB...]        (default sizes: 256 1024; `make bench` runs it)
#
# Builds nothing: expects memhog and memcpy_bw in $(dirname CRYO)/bench/ (the CMake build).
# For each size: measure memcpy/disk (memcpy_bw), start memhog (SIZE MiB of non-zero,
# incompressible memory), time `cryo dump`, wait for the PID to be free, time
# `cryo restore -d`, let the restored memhog verify its whole area (PASS/FAIL), clean up.
# Environment: BENCH_TMP (default /tmp) is where the images go; KEEP=1 keeps them.
# Exits 1 if any restore did not come back intact.
set -uo pipefail
source "$(dirname "$0")/lib.sh"


[[ $# -ge 1 ]] || die "usage: $0 CRYO [SIZES_MiB...]"
CRYO=$(readlink -f "$1") || die "no cryo binary at $1"
shift
SIZES=("$@")
[[ ${#SIZES[@]} -gt 0 ]] || SIZES=(256 1024)
BIN=$(dirname "$CRYO")/bench
MEMHOG=$BIN/memhog
MEMCPY_BW=$BIN/memcpy_bw
[[ -x $CRYO ]] || die "$CRYO is not executable (build first: make build)"
[[ -x $MEMHOG && -x $MEMCPY_BW ]] || die "$MEMHOG / $MEMCPY_BW missing (build first: make build)"
[[ $(id -u) -eq 0 ]] || die "must run as root (cryo needs it)"
for s in "${SIZES[@]}"; do [[ $s =~ ^[1-9][0-9]*$ ]] || die "bad size '$s' (MiB)"; done

max=0
for s in "${SIZES[@]}"; do ((s > max)) && max=$s; done
BASE=${BENCH_TMP:-/tmp}
# Disk: the largest image plus memcpy_bw's 1 GiB file plus slack.
need_disk=$((max + 1024 + 512))
avail_disk=$(df --output=avail -BM "$BASE" | tail -1 | tr -dc 0-9)
((avail_disk >= need_disk)) || die "$BASE has ${avail_disk} MiB free, need ${need_disk} MiB"
# Memory: memhog (then the restored copy) plus memcpy_bw's two 1 GiB areas, never at the
# same time, plus slack; the images themselves sit in reclaimable page cache.
need_mem=$(((max > 2048 ? max : 2048) + 1024))
avail_mem=$(($(awk '/^MemAvailable:/ {print $2}' /proc/meminfo) / 1024))
((avail_mem >= need_mem)) || die "only ${avail_mem} MiB of memory available, need ${need_mem} MiB"

WORK=$(mktemp -d "$BASE/cryo-bench.XXXXXX") || die "cannot create a work dir in $BASE"
MEMHOG_PID=
cleanup() {
  [[ -n $MEMHOG_PID ]] && kill -9 "$MEMHOG_PID" 2>/dev/null
  [[ ${KEEP:-0} == 1 ]] || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Start memhog alone in its own session. Sets MEMHOG_PID from its ready file.
start_memhog() {  # SIZE DIR
  local size=$1 dir=$2
  start_alone /dev/null "$MEMHOG" "$size" "$dir/ready" "$dir/go" "$dir/result"
  MEMHOG_JOB=$!
  # Filling takes ~1-3 s per GiB here.
  if ! wait_for "[[ -s $dir/ready ]]" $((60 + size / 32)); then
    echo "bench: memhog $size MiB not ready" >&2
    kill -9 "$MEMHOG_JOB" 2>/dev/null
    return 1
  fi
  MEMHOG_PID=$(tr -dc 0-9 <"$dir/ready")
}

# One dump/restore cycle of SIZE MiB. Fills the R_* variables; returns 0 ok, 1 cryo failed
# (worth a retry), 2 the restored memory was not intact.
cycle() {  # SIZE
  local size=$1 dir=$WORK/run-$1 t0 t1 rc
  rm -rf "$dir"
  mkdir -p "$dir/img"
  start_memhog "$size" "$dir" || return 1
  # The limits, now, next to the figures they are compared with: after memhog took its memory
  # and just before the dump, so that the write() measured and the dump's writes meet the
  # same free memory (in a VM, memory the guest has not touched lately costs a host fault per
  # page on its first touch, the page cache's included). At the size dumped: the target is a
  # dump costing at most 1.5x writing SIZE MiB.
  lim=$("$MEMCPY_BW" "$WORK" "$size" 2>"$WORK/memcpy_bw.err") || {
    cat "$WORK/memcpy_bw.err" >&2
    kill -9 "$MEMHOG_PID"
    die "memcpy_bw failed"
  }
  eval "$lim"  # memcpy_MiBps, disk_MiBps, disk_buffered_MiBps, first_touch_MiBps, populate_MiBps
  echo "limits: memcpy ${memcpy_MiBps} MiB/s; disk write+fsync ${disk_MiBps} MiB/s" \
    "(write() alone ${disk_buffered_MiBps}); first touch ${first_touch_MiBps} MiB/s," \
    "MADV_POPULATE_WRITE ${populate_MiBps} MiB/s"
  sed 's/^/  /' "$WORK/memcpy_bw.err"

  t0=$(now_ns)
  "$CRYO" dump -t "$MEMHOG_PID" -D "$dir/img" --display-stats >"$dir/dump.out" 2>&1
  rc=$?
  t1=$(now_ns)
  if ((rc != 0)); then
    echo "bench: cryo dump failed (exit $rc):" >&2
    sed 's/^/    /' "$dir/dump.out" >&2
    kill -9 "$MEMHOG_PID" 2>/dev/null
    MEMHOG_PID=
    return 1
  fi
  R_DUMP_NS=$((t1 - t0))
  R_DUMP_STATS=$(grep -E '^[A-Z][A-Za-z ]+: [0-9]+' "$dir/dump.out")
  R_IMG_BYTES=$(du -sb "$dir/img" | cut -f1)

  # The dump killed memhog (reaped by bash, or by PID 1 if setsid had to fork): wait until no
  # zombie holds the PID (PID 1 reaps orphans lazily here), so restore time is restore only.
  local t_free0
  t_free0=$(now_ns)
  if ! wait_for "[[ ! -e /proc/$MEMHOG_PID ]]" 60; then
    echo "bench: PID $MEMHOG_PID still taken 60 s after the dump" >&2
    MEMHOG_PID=
    return 1
  fi
  R_PIDFREE_NS=$(($(now_ns) - t_free0))

  t0=$(now_ns)
  "$CRYO" restore -D "$dir/img" -d --pidfile "$dir/pidfile" --display-stats >"$dir/restore.out" 2>&1
  rc=$?
  t1=$(now_ns)
  if ((rc != 0)); then
    echo "bench: cryo restore failed (exit $rc):" >&2
    sed 's/^/    /' "$dir/restore.out" >&2
    MEMHOG_PID=
    return 1
  fi
  R_RESTORE_NS=$((t1 - t0))
  R_RESTORE_STATS=$(grep -E '^[A-Z][A-Za-z ]+: [0-9]+' "$dir/restore.out")
  local rpid
  rpid=$(tr -dc 0-9 <"$dir/pidfile")
  [[ $rpid == "$MEMHOG_PID" ]] || echo "bench: WARNING: restored as PID $rpid, dumped $MEMHOG_PID" >&2

  touch "$dir/go"
  if ! wait_for "[[ -s $dir/result ]]" $((60 + size / 32)); then
    R_VERIFY="FAIL: no result from the restored memhog (PID $rpid)"
    [[ -e /proc/$rpid ]] || R_VERIFY+=" (it is gone)"
  else
    R_VERIFY=$(cat "$dir/result")
  fi
  kill -9 "$rpid" 2>/dev/null  # normally it has exited already
  MEMHOG_PID=
  [[ ${KEEP:-0} == 1 ]] || rm -rf "$dir/img"
  [[ $R_VERIFY == PASS* ]] || return 2
  return 0
}

stat_of() {  # TEXT NAME -> the number after "NAME: "
  sed -n "s/^$2: \([0-9]*\).*/\1/p" <<<"$1"
}

echo "cryo benchmark: $CRYO"
echo "machine: $(nproc) CPUs, $(awk '/^MemTotal:/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), kernel $(uname -r)"
echo "images in $WORK ($(df --output=source,fstype -h "$BASE" | tail -1 | tr -s ' '), ${avail_disk} MiB free)"
echo

SUMMARY=()
failed=0
for size in "${SIZES[@]}"; do
  echo "== $size MiB =="
  rc=1
  for attempt in 1 2 3; do
    cycle "$size"
    rc=$?
    ((rc == 1)) || break
    echo "bench: attempt $attempt for $size MiB failed, retrying" >&2
  done
  if ((rc != 0)); then
    failed=1
    if ((rc == 2)); then
      echo "RESTORE BROKEN: $R_VERIFY" >&2
      echo "  dump/restore figures for $size MiB are not valid"
      SUMMARY+=("$(printf '%6s  %s' "$size" "FAIL: $R_VERIFY")")
    else
      SUMMARY+=("$(printf '%6s  %s' "$size" "FAIL: cryo failed 3 times")")
    fi
    echo
    continue
  fi

  dump_s=$(calc %.3f "$R_DUMP_NS / 1e9")
  rest_s=$(calc %.3f "$R_RESTORE_NS / 1e9")
  dump_bw=$(calc %.0f "$size * 1e9 / $R_DUMP_NS")
  rest_bw=$(calc %.0f "$size * 1e9 / $R_RESTORE_NS")
  img_mib=$(calc %.1f "$R_IMG_BYTES / 1048576")
  d_mc=$(calc %.3f "$dump_bw / $memcpy_MiBps")
  r_mc=$(calc %.3f "$rest_bw / $memcpy_MiBps")
  d_dk=$(calc %.2f "$dump_bw / $disk_MiBps")
  r_pop=$(calc %.2f "$rest_bw / $populate_MiBps")
  # Time over the time write() took to put SIZE MiB into the page cache.
  x_write=$(calc %.2f "$R_DUMP_NS / 1e9 * $disk_buffered_MiBps / $size")

  # cryo's own phase times, as rates over the pages it wrote.
  pages=$(stat_of "$R_DUMP_STATS" "Memory pages written")
  memdump_us=$(stat_of "$R_DUMP_STATS" "Memory dump time")
  memwrite_us=$(stat_of "$R_DUMP_STATS" "Memory write time")
  echo "dump:    ${dump_s} s  ${dump_bw} MiB/s  (dump/memcpy ${d_mc}, dump/disk ${d_dk};" \
    "${x_write} times the write() of ${size} MiB)"
  sed 's/^/  cryo: /' <<<"$R_DUMP_STATS"
  if [[ -n $pages && ${memdump_us:-0} -gt 0 && ${memwrite_us:-0} -gt 0 ]]; then
    echo "  => memory read $(calc %.0f "$pages * 4096 / 1048576 / ($memdump_us / 1e6)") MiB/s," \
      "memory write $(calc %.0f "$pages * 4096 / 1048576 / ($memwrite_us / 1e6)") MiB/s" \
      "(pages written over cryo's phase times)"
  fi
  echo "  (PID free $(calc %.3f "$R_PIDFREE_NS / 1e9") s after the dump ended)"
  echo "restore: ${rest_s} s  ${rest_bw} MiB/s  (restore/memcpy ${r_mc}, restore/populate ${r_pop})"
  sed 's/^/  cryo: /' <<<"$R_RESTORE_STATS"
  echo "image:   ${R_IMG_BYTES} bytes (${img_mib} MiB)"
  echo "verify:  ${R_VERIFY}"
  echo
  SUMMARY+=("$(printf '%6s %7s %8s %7s %8s %9s %7s %6s %6s %8s %8s %8s %7s' "$size" "$dump_s" \
    "$dump_bw" "$rest_s" "$rest_bw" "$img_mib" "$memcpy_MiBps" "$disk_MiBps" \
    "$disk_buffered_MiBps" "$d_mc" "$r_mc" "$d_dk" "$x_write")")
done

echo "== summary (MiB/s over the memhog area; memcpy/disk/write measured just before each size,"
echo "   at that size; x_write: dump time over the time write() took to put as many MiB into"
echo "   the page cache) =="
printf '%6s %7s %8s %7s %8s %9s %7s %6s %6s %8s %8s %8s %7s\n' MiB dump_s dump/s rest_s rest/s \
  image_MiB memcpy disk write d/memcpy r/memcpy d/disk x_write
printf '%s\n' "${SUMMARY[@]}"
((failed == 0)) || { echo "bench: FAILED (see above)" >&2; exit 1; }
