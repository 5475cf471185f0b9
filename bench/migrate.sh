#!/usr/bin/env bash
# cryo live migration benchmark: scripts/migrate-demo.sh with a MIB MiB server (default 512)
# and PRE_DUMPS pre-dumps (default 2), RUNS times (default 1). Prints each run's figures and
# the downtime (the client's longest wait between two replies) against the 300 ms target,
# and its phases. The final step is post-copy (a lazy restore); MIGRATE_LAZY=0: eager.
#
#   bench/migrate.sh CRYO [MIB [PRE_DUMPS [RUNS]]]     (`make bench-migrate`)
set -uo pipefail
source "$(dirname "$0")/lib.sh"
[[ $# -ge 1 ]] || die "usage: $0 CRYO [MIB [PRE_DUMPS [RUNS]]]"
CRYO=$(readlink -f "$1") || die "no cryo binary at $1"
MIB=${2:-512}
PRE=${3:-2}
RUNS=${4:-1}
DEMO=$(cd "$(dirname "$0")/.." && pwd)/scripts/migrate-demo.sh
[[ $(id -u) -eq 0 ]] || die "must run as root"
downs=()
for ((i = 1; i <= RUNS; i++)); do
  echo "--- run $i: $MIB MiB, $PRE pre-dump(s)"
  out=$(bash "$DEMO" "$CRYO" "$MIB" "$PRE" 2>&1) || { echo "$out"; die "the migration failed"; }
  echo "$out" | grep -E "pre-dump|final dump|post-copy|phases|client:|memory|downtime|bytes moved"
  downs+=("$(echo "$out" | sed -n 's/^DOWNTIME_MS=//p')")
done
d=$(echo "${downs[@]}" | median)
echo "downtime (median of $RUNS): $d ms; target <= 300 ms: $( ((${d%.*} <= 300)) && echo met || echo NOT met)"
