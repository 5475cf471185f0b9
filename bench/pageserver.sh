#!/usr/bin/env bash
# cryo page-server benchmark: pages streamed over loopback TCP from `cryo dump --page-server`
# into `cryo page-server`, against a plain TCP copy measured in the same run.
#
#   bench/pageserver.sh CRYO [MIB [ROUNDS]]     (default 1024 MiB, 3 rounds)
#
# memhog holds MIB MiB of written, incompressible memory. Each round:
#   1. tcpcopy MIB: a plain loopback copy of MIB MiB, received and dropped (`tcp`), then the
#      same received and written with write() into a file next to the server's images
#      (`tcp+file`): what any receiver that stores the bytes meets;
#   2. cryo page-server -D PS_DIR, then cryo dump -R --page-server of memhog: the dump's wall
#      time, and the stream time from the server's log (its first image opened to its last
#      page received), whose rate is `stream`;
#   3. the ratios stream/tcp and stream/tcp+file.
# The last round's dump kills memhog; it is restored from the dump's images plus the server's
# and checks every word of its memory: a FAIL exits 1. PS_DIR is a fresh directory under
# PS_TMP (default /dev/shm: the stream, not this VM's disk, is measured; PS_TMP=/tmp to put
# the server's images on disk). BENCH_TMP (default /tmp) holds the dump's own images.
set -uo pipefail
source "$(dirname "$0")/lib.sh"

[[ $# -ge 1 ]] || die "usage: $0 CRYO [MIB [ROUNDS]]"
CRYO=$(readlink -f "$1") || die "no cryo binary at $1"
MIB=${2:-1024}
ROUNDS=${3:-3}
[[ $MIB =~ ^[1-9][0-9]*$ && $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "bad size or round count"
BIN=$(dirname "$CRYO")/bench
[[ -x $CRYO && -x $BIN/memhog && -x $BIN/tcpcopy ]] || die "build first (make build): need cryo, memhog, tcpcopy"
[[ $(id -u) -eq 0 ]] || die "must run as root (cryo needs it)"

make_work cryo-pageserver
PSD=$(mktemp -d "${PS_TMP:-/dev/shm}/cryo-ps.XXXXXX") || die "cannot create the server's directory"
trap 'cleanup_work; rm -rf "$PSD"' EXIT
mkdir -p "$WORK/w" "$WORK/img"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start_alone "$WORK/memhog.err" "$BIN/memhog" "$MIB" "$WORK/w/ready" "$WORK/w/go" "$WORK/w/result"
wait_for "[[ -s $WORK/w/ready ]]" 120 || die "memhog not ready: $(cat "$WORK/memhog.err")"
ROOT=$(cat "$WORK/w/ready")

# stream_of LOG: "SECONDS PAGES" from the server's log lines.
stream_of() {
  awk '/page server: receiving/ && !t0 { t0 = substr($1, 2) + 0 }
       /pages received from/ { t1 = substr($1, 2) + 0; for (i = 1; i <= NF; i++) if ($i == "pages") p = $(i - 1) }
       END { if (t0 && t1 && p) printf "%.6f %d\n", t1 - t0, p; else exit 1 }' "$1"
}

printf '%5s %6s | %9s %9s | %7s %8s %9s | %6s %9s\n' round MiB tcp_MB/s tcp+file dump_s \
  stream_s stream_MB/s /tcp /tcp+file
rows=()
for ((r = 1; r <= ROUNDS; r++)); do
  read -r _ tcp < <("$BIN/tcpcopy" "$MIB") || die "tcpcopy failed"
  read -r _ tcpf < <("$BIN/tcpcopy" "$MIB" "$PSD/tcpcopy.tmp") || die "tcpcopy to a file failed"
  port=$(free_port)
  rm -rf "${PSD:?}"/*
  "$CRYO" page-server -D "$PSD" --port "$port" -o "$WORK/ps.log" -v4 &
  ps=$!
  wait_for "ss -Hltn 'sport = :$port' | grep -q ." 10 || die "the page server does not listen"
  last=()
  ((r == ROUNDS)) || last=(-R)
  t0=$(now_ns)
  "$CRYO" dump -t "$ROOT" -D "$WORK/img" -o dump.log -v4 --page-server --address 127.0.0.1 \
    --port "$port" "${last[@]}" || die "dump failed: see $WORK/img/dump.log (KEEP=1)"
  dump_ns=$(($(now_ns) - t0))
  wait "$ps" || die "the page server failed: see $WORK/ps.log (KEEP=1)"
  read -r secs pages < <(stream_of "$WORK/ps.log") || die "no stream figures in $WORK/ps.log"
  row=$(awk -v r="$r" -v m="$MIB" -v t="$tcp" -v f="$tcpf" -v d="$dump_ns" -v s="$secs" -v p="$pages" \
    'BEGIN { rate = p * 4096 / s / 1e6; printf "%5d %6d | %9.0f %9.0f | %7.3f %8.3f %9.0f | %6.2f %9.2f",
      r, m, t, f, d / 1e9, s, rate, rate / t, rate / f }')
  echo "$row"
  rows+=("$row")
done

# The last dump killed memhog: restore it from both halves of the images and let it check.
wait_for "[[ ! -d /proc/$ROOT ]]" 60 || die "memhog still there after the dump"
cp "$PSD"/pagemap-*.img "$PSD"/pages-*.img "$WORK/img/"
"$CRYO" restore -D "$WORK/img" -d -o restore.log -v4 || die "restore failed: see $WORK/img/restore.log (KEEP=1)"
touch "$WORK/w/go"
wait_for "[[ -s $WORK/w/result ]]" 120 || die "the restored memhog did not answer"
verdict=$(cat "$WORK/w/result")
echo "verify: $verdict"
[[ $verdict == PASS* ]] || { echo "RESTORE BROKEN"; exit 1; }
