#!/usr/bin/env bash
# The README demo: a shell loop counting into a file is checkpointed, killed, restored with
# the same PID, and goes on counting.
set -euo pipefail
CRYO=${1:-build/cryo}
CRYO=$(readlink -f "$CRYO")
work=$(mktemp -d /tmp/cryo-demo.XXXXXX)
count=$work/count
mkdir "$work/ckpt"

"$CRYO" check
# Only stdio (to /dev/null) goes to the demo process: other inherited fds may be pipes,
# which this version of cryo does not dump yet.
(
  for fd in /proc/$BASHPID/fd/*; do
    fd=${fd##*/}
    ((fd > 2)) && eval "exec $fd>&-"
  done
  exec setsid sh -c "i=0; while :; do i=\$((i+1)); echo \$i > $count; sleep 1; done" \
    </dev/null >/dev/null 2>&1
) &
sleep 2.5
pid=$(pgrep -f "echo \\\$i > $count" | head -1)
echo "loop running as PID $pid, count=$(cat "$count")"

"$CRYO" dump -t "$pid" -D "$work/ckpt" -o dump.log -v4
echo "dumped and killed; images:"
ls "$work/ckpt"
before=$(cat "$count")
sleep 1
echo "count while dumped: $before -> $(cat "$count") (stopped)"

"$CRYO" restore -D "$work/ckpt" -d --pidfile "$work/pid" -o restore.log -v4
echo "restored as PID $(cat "$work/pid")"
sleep 2.5
after=$(cat "$count")
echo "count after restore: $after"
kill -9 -- "-$pid" 2>/dev/null || kill -9 "$pid"
if [[ $(cat "$work/pid") == "$pid" && $after -gt $before ]]; then
  echo "demo OK: same PID, counting went on from $before to $after"
  rm -rf "$work"
else
  echo "demo FAILED: see $work" >&2
  exit 1
fi
