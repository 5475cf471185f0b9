#!/usr/bin/env bash
# cryo lazy-pages benchmark: how soon a big process runs again after `cryo restore
# --lazy-pages` starts, and how long a page fault served by `cryo lazy-pages` from local
# images takes, against the machine's own figures.
#
#   bench/lazy.sh CRYO [MIB [ROUNDS]]     (default 4096 MiB, 3 rounds)
#
# memhog (bench/memhog.c, with PROBES) holds MIB MiB of written, incompressible memory; it is dumped
# once into BENCH_TMP (default /tmp). Each round:
#   1. cryo lazy-pages -D IMG starts; `cryo restore -d --lazy-pages` is timed (wall clock: the
#      tree runs when it returns) = `restore_ms`, against the target 100 ms;
#   2. "go" is touched at once: memhog reads one word of 2000 random pages, timing each; the
#      reads slower than 2 us are faults the daemon served while it pushed the rest: their
#      median and 99th percentile (`fault_us`, `p99_us`), against the target 100 us and the
#      machine's first-touch fault (memcpy_bw: a fresh page written, no daemon) = `/touch`;
#   3. the daemon exits once every page is in (`post_copy_s`, and its rate); memhog then
#      checks every word: a FAIL exits 1.
# The last round also times a plain `cryo restore -d` of the same images (`full_restore_s`):
# what the lazy restore saves.
set -uo pipefail
source "$(dirname "$0")/lib.sh"

[[ $# -ge 1 ]] || die "usage: $0 CRYO [MIB [ROUNDS]]"
CRYO=$(readlink -f "$1") || die "no cryo binary at $1"
MIB=${2:-4096}
ROUNDS=${3:-3}
[[ $MIB =~ ^[1-9][0-9]*$ && $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "bad size or round count"
BIN=$(dirname "$CRYO")/bench
[[ -x $CRYO && -x $BIN/memhog && -x $BIN/memcpy_bw ]] || die "build first (make build): need cryo, memhog, memcpy_bw"
[[ $(id -u) -eq 0 ]] || die "must run as root (cryo needs it)"

make_work cryo-lazy
mkdir -p "$WORK/w" "$WORK/img"

read -r touch_mibps < <("$BIN/memcpy_bw" "$WORK" 256 2>/dev/null | sed -n 's/^first_touch_MiBps=//p')
[[ -n $touch_mibps ]] || die "memcpy_bw failed"
touch_us=$(calc "%.1f" "4096 / ($touch_mibps * 1048576) * 1e6")
echo "machine: first-touch page fault ${touch_us} us (memcpy_bw, 256 MiB written page by page)"

start_alone "$WORK/memhog.err" "$BIN/memhog" "$MIB" "$WORK/w/ready" "$WORK/w/go" "$WORK/w/result" 2000
wait_for "[[ -s $WORK/w/ready ]]" 300 || die "memhog not ready: $(cat "$WORK/memhog.err")"
ROOT=$(tr -dc '0-9' <"$WORK/w/ready")
t0=$(now_ns)
"$CRYO" dump -t "$ROOT" -D "$WORK/img" -o dump.log || die "dump failed: see $WORK/img/dump.log (KEEP=1)"
echo "dump of $MIB MiB: $(calc "%.2f" "($(now_ns) - $t0) / 1e9") s"
wait_for "[[ ! -d /proc/$ROOT ]]" 60 || die "memhog still there after the dump"

printf '%5s %6s | %10s %6s | %6s %8s %8s %6s | %11s %8s\n' round MiB restore_ms /100ms \
  faults fault_us p99_us /touch post_copy_s MiB/s
fail=0
for ((r = 1; r <= ROUNDS; r++)); do
  rm -f "$WORK/w/go" "$WORK/w/result" "$WORK/lazy.log"
  "$CRYO" lazy-pages -D "$WORK/img" -o "$WORK/lazy.log" -v4 2>"$WORK/lazy.err" &
  lp=$!
  wait_for "[[ -S $WORK/img/lazy-pages.socket ]]" 30 || die "the daemon does not listen: $(cat "$WORK/lazy.err")"
  t0=$(now_ns)
  "$CRYO" restore -d -D "$WORK/img" --lazy-pages -o restore.log || die "restore failed: see $WORK/img/restore.log (KEEP=1)"
  restore_ns=$(($(now_ns) - t0))
  touch "$WORK/w/go"
  wait "$lp" || die "the daemon failed: $(cat "$WORK/lazy.err")"
  wait_for "[[ -s $WORK/w/result ]]" 300 || die "the restored memhog did not answer"
  head -1 "$WORK/w/result" | grep -q '^PASS' || { echo "RESTORE BROKEN: $(head -1 "$WORK/w/result")"; fail=1; }
  read -r _ _ slow med p99 _ < <(grep '^probe' "$WORK/w/result")
  post=$(awk '/every page is in after/ { for (i = 1; i <= NF; i++) if ($i == "after") print $(i + 1) }' "$WORK/lazy.log")
  awk -v r="$r" -v m="$MIB" -v rs="$restore_ns" -v n="$slow" -v md="$med" -v p="$p99" -v t="$touch_us" -v pc="$post" \
    'BEGIN { printf "%5d %6d | %10.1f %6.2f | %6d %8.1f %8.1f %6.1f | %11.3f %8.0f\n",
      r, m, rs / 1e6, rs / 1e8, n, md / 1e3, p / 1e3, (md / 1e3) / t, pc, m / pc }'
  wait_for "[[ ! -d /proc/$ROOT ]]" 60 || die "the restored memhog did not exit"
done
# The same images restored whole, for comparison.
rm -f "$WORK/w/go" "$WORK/w/result"
t0=$(now_ns)
"$CRYO" restore -d -D "$WORK/img" -o restore-full.log || die "full restore failed"
echo "full_restore_s $(calc "%.3f" "($(now_ns) - $t0) / 1e9") (the same images restored without --lazy-pages)"
echo "targets: restore_ms <= 100 (/100ms <= 1), fault_us <= 100"
exit $fail
