#!/usr/bin/env bash
# cryo decode/encode against crit (Debian's /usr/bin/crit) on a whole images directory.
#
#   bench/imgtool.sh CRYO [IMAGES_DIR]
#
# Without IMAGES_DIR, memhog (64 MiB, from $(dirname CRYO)/bench/) is dumped into a fresh
# directory first (as root). Then, best of ROUNDS (default 3) runs each:
#   1. every image of the directory but the raw pages-*.img decoded one process per image, as
#      a script would: `crit decode -i F -o OUT` vs `cryo decode -i F -o OUT`, plain and
#      --pretty (both outputs are compared: they must be the same bytes);
#   2. one large image: a pagemap of PAGEMAP_ENTRIES (default 200000) entries, decoded
#      (plain) and encoded back by both tools (cryo's image is checked against the original).
# Prints the times and the crit/cryo ratio of each.
set -uo pipefail

die() { echo "bench: $*" >&2; exit 1; }

[[ $# -ge 1 ]] || die "usage: $0 CRYO [IMAGES_DIR]"
CRYO=$(readlink -f "$1") || die "no cryo binary at $1"
CRIT=${CRIT:-/usr/bin/crit}
ROUNDS=${ROUNDS:-3}
ENTRIES=${PAGEMAP_ENTRIES:-200000}
[[ -x $CRYO ]] || die "$CRYO is not executable (build first: make build)"
[[ -x $CRIT ]] || die "no crit at $CRIT (apt-get install criu)"

WORK=$(mktemp -d /tmp/cryo-imgtool-bench.XXXXXX) || die "cannot create a work dir"
HOG=
cleanup() {
  [[ -n $HOG ]] && kill -9 "$HOG" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now_ns() { date +%s%N; }
calc() { awk "BEGIN { printf \"$1\", $2 }"; }

if [[ $# -ge 2 ]]; then
  DIR=$(readlink -f "$2")
  [[ -d $DIR ]] || die "$2 is not a directory"
else
  [[ $(id -u) -eq 0 ]] || die "must run as root to dump memhog (or name an images directory)"
  MEMHOG=$(dirname "$CRYO")/bench/memhog
  [[ -x $MEMHOG ]] || die "$MEMHOG missing (build first: make build)"
  DIR=$WORK/img
  mkdir -p "$DIR"
  (
    for fd in /proc/$BASHPID/fd/*; do
      fd=${fd##*/}
      ((fd > 2)) && eval "exec $fd>&-"
    done
    exec setsid "$MEMHOG" 64 "$WORK/ready" "$WORK/go" "$WORK/result" </dev/null >/dev/null 2>&1
  ) &
  disown $!
  for ((i = 0; i < 1200; i++)); do
    [[ -s $WORK/ready ]] && break
    sleep 0.05
  done
  [[ -s $WORK/ready ]] || die "memhog not ready"
  HOG=$(tr -dc 0-9 <"$WORK/ready")
  "$CRYO" dump -t "$HOG" -D "$DIR" -o "$WORK/dump.log" >/dev/null 2>&1 ||
    die "cryo dump of memhog failed: $(tail -n 3 "$WORK/dump.log")"
  HOG=
fi

mapfile -t IMAGES < <(find "$DIR" -maxdepth 1 -type f ! -name 'pages-*' | sort)
((${#IMAGES[@]} > 0)) || die "no images in $DIR"
echo "cryo image tool benchmark: $CRYO vs $CRIT"
echo "machine: $(nproc) CPUs, kernel $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "images: $DIR, ${#IMAGES[@]} files (pages-*.img left out), $(du -ch "${IMAGES[@]}" | tail -1 | cut -f1)"
echo

# decode_all TOOL OUTDIR [--pretty]: one process per image; prints the wall time in ms.
decode_all() {
  local tool=$1 out=$2 f t0
  shift 2
  mkdir -p "$out"
  t0=$(now_ns)
  for f in "${IMAGES[@]}"; do
    "$tool" decode -i "$f" -o "$out/${f##*/}.json" "$@" || die "$tool decode of $f failed"
  done
  echo $((($(now_ns) - t0) / 1000000))
}

best() { printf '%s\n' "$@" | sort -n | head -1; }

ROWS=()
for mode in plain pretty; do
  flag=()
  [[ $mode == pretty ]] && flag=(--pretty)
  crit_ms=() cryo_ms=()
  for ((r = 0; r < ROUNDS; r++)); do
    crit_ms+=("$(decode_all "$CRIT" "$WORK/crit-$mode" "${flag[@]}")")
    cryo_ms+=("$(decode_all "$CRYO" "$WORK/cryo-$mode" "${flag[@]}")")
  done
  same=0
  for f in "${IMAGES[@]}"; do
    cmp -s "$WORK/crit-$mode/${f##*/}.json" "$WORK/cryo-$mode/${f##*/}.json" && ((same++))
  done
  c=$(best "${crit_ms[@]}") y=$(best "${cryo_ms[@]}")
  ((y > 0)) || y=1
  echo "decode $mode, ${#IMAGES[@]} images: crit ${c} ms ($(calc %.1f "$c / ${#IMAGES[@]}") ms/image)," \
    "cryo ${y} ms ($(calc %.1f "$y / ${#IMAGES[@]}") ms/image): crit/cryo $(calc %.1f "$c / $y")x;" \
    "identical JSON ${same}/${#IMAGES[@]}"
  ROWS+=("$(printf '%-22s %9s %9s %9s' "directory, $mode" "$c" "$y" "$(calc %.1f "$c / $y")")")
done

# One large image: a pagemap of ENTRIES entries.
awk -v n="$ENTRIES" 'BEGIN {
  printf "{\"magic\": \"PAGEMAP\", \"entries\": [{\"pages_id\": 1}"
  for (i = 0; i < n; i++) printf ", {\"vaddr\": %d, \"nr_pages\": %d, \"flags\": 4}", 4096 * (2 * i + 4096), 1 + i % 7
  printf "]}"
}' >"$WORK/big.json"
"$CRYO" encode -i "$WORK/big.json" -o "$WORK/big.img" || die "cryo encode of the large pagemap failed"
time_ms() {
  local t0
  t0=$(now_ns)
  "$@" || die "$* failed"
  echo $((($(now_ns) - t0) / 1000000))
}
crit_d=() cryo_d=() crit_e=() cryo_e=()
for ((r = 0; r < ROUNDS; r++)); do
  crit_d+=("$(time_ms "$CRIT" decode -i "$WORK/big.img" -o "$WORK/big-crit.json")")
  cryo_d+=("$(time_ms "$CRYO" decode -i "$WORK/big.img" -o "$WORK/big-cryo.json")")
  crit_e+=("$(time_ms "$CRIT" encode -i "$WORK/big-crit.json" -o "$WORK/big-crit.img")")
  cryo_e+=("$(time_ms "$CRYO" encode -i "$WORK/big-crit.json" -o "$WORK/big-cryo.img")")
done
cmp -s "$WORK/big-crit.json" "$WORK/big-cryo.json" || die "the large pagemap decodes differently"
cmp -s "$WORK/big.img" "$WORK/big-cryo.img" || die "cryo encode of crit's JSON is not the large pagemap"
size=$(du -h "$WORK/big.img" | cut -f1)
for what in decode encode; do
  if [[ $what == decode ]]; then c=$(best "${crit_d[@]}") y=$(best "${cryo_d[@]}"); else c=$(best "${crit_e[@]}") y=$(best "${cryo_e[@]}"); fi
  ((y > 0)) || y=1
  echo "$what of one pagemap of $ENTRIES entries ($size): crit ${c} ms, cryo ${y} ms: crit/cryo $(calc %.1f "$c / $y")x"
  ROWS+=("$(printf '%-22s %9s %9s %9s' "large pagemap, $what" "$c" "$y" "$(calc %.1f "$c / $y")")")
done

echo
printf '%-22s %9s %9s %9s\n' "case" "crit_ms" "cryo_ms" "ratio"
printf '%s\n' "${ROWS[@]}"
