# Helpers the benchmark scripts share: `source "$(dirname "$0")/lib.sh"`.

die() { echo "bench: $*" >&2; exit 1; }
now_ns() { date +%s%N; }
calc() { awk "BEGIN { printf \"$1\", $2 }"; }  # calc FORMAT EXPR
# The median of numbers on stdin, one per line or separated by spaces.
median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# wait_for COND_CMD TIMEOUT_S: poll every 50 ms.
wait_for() {
  local i
  for ((i = 0; i < $2 * 20; i++)); do
    eval "$1" && return 0
    sleep 0.05
  done
  return 1
}

# A work directory WORK under BENCH_TMP (default /tmp), removed at exit unless KEEP=1, where
# the process group ROOT (when set) is killed too.
make_work() {  # NAME
  WORK=$(mktemp -d "${BENCH_TMP:-/tmp}/$1.XXXXXX") || die "cannot create a work dir"
  ROOT=
  trap cleanup_work EXIT
  trap 'exit 130' INT TERM
}
cleanup_work() {
  [[ -n $ROOT ]] && kill -9 -- "-$ROOT" 2>/dev/null
  [[ ${KEEP:-0} == 1 ]] || rm -rf "$WORK"
}

# start_alone ERR_FILE CMD...: CMD in its own session (and group), in the background, with
# stdin/stdout on /dev/null, stderr into ERR_FILE and no other fd (the caller's shell may hold
# some, and the dump would have to take them along).
start_alone() {
  local err=$1
  shift
  (
    for fd in /proc/$BASHPID/fd/*; do
      fd=${fd##*/}
      ((fd > 2)) && eval "exec $fd>&-"
    done
    exec setsid "$@" </dev/null >/dev/null 2>"$err"
  ) &
  disown $!  # bash still reaps it, without a "Killed" notice after the dump
}
