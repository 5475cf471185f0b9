#!/bin/bash
# Lazy pages (post-copy restore): failures during the post-copy and bad use.
#
#   lazy.sh CRYO MEMHOG CASE
#
# CASE is one of:
#   source-killed  a lazy migration (dump --lazy-pages --port, lazy-pages --page-server,
#                  restore -d --lazy-pages) whose source is killed during the post-copy: the
#                  daemon kills the restored tree and exits non-zero naming the source
#   daemon-killed  a lazy restore from local images whose daemon is killed (SIGKILL) during
#                  the post-copy: the restore's watcher kills the tree, with a message; no
#                  process is left waiting for a page forever
#   socket-missing restore --lazy-pages with no daemon: a clear error, nothing restored
#   bad-options    dump --lazy-pages without --port or with --leave-running, lazy-pages
#                  --page-server without an address, images of a lazy dump restored without
#                  --lazy-pages or served without --page-server, --lazy-pages on pre-dump
# memhog (bench/memhog.c) holds 512 MiB of written memory; CRYO_FAULT=lazy-slow-push=MS
# slows the daemon's background push so that the post-copy lasts while the test acts.
set -u
umask 022
(($# == 3)) || {
	echo "usage: $0 CRYO MEMHOG CASE" >&2
	exit 2
}
CRYO=$(readlink -f "$1")
MEMHOG=$(readlink -f "$2")
CASE=$3
W=$(mktemp -d "/tmp/cr-lazy-$CASE.XXXXXX")
IMG=$W/img
mkdir -p "$IMG"
ROOT=""

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cleanup_more() { [[ -z $ROOT ]] || kill -9 "$ROOT" 2>/dev/null; }

# memhog of MIB MiB in its own session, no fd but stdio; ROOT.
start_memhog() {
	(
		for fd in /proc/$BASHPID/fd/*; do
			fd=${fd##*/}
			((fd > 2)) && eval "exec $fd>&-"
		done
		exec setsid "$MEMHOG" "$1" "$W/ready" "$W/go" "$W/result" </dev/null >/dev/null 2>"$W/memhog.err"
	) &
	wait_until 60 test -s "$W/ready" || die "memhog did not start: $(cat "$W/memhog.err")"
	ROOT=$(tr -dc '0-9' <"$W/ready")
	log "memhog $1 MiB: pid $ROOT"
}

# cryo NAME ARGS...: in the foreground with a deadline; RC, output in NAME.err.
cryo() {
	local name=$1
	shift
	log "cryo $*"
	timeout -k 5 120 "$CRYO" "$@" >"$W/$name.out" 2>"$W/$name.err"
	RC=$?
}
# expect_error NAME WORD...: the last cryo failed (not by a signal or the deadline) and its
# message holds each WORD.
expect_error() {
	local n=$1 w
	shift
	((RC != 0)) || die "$n: cryo exited 0, expected a failure"
	((RC < 124)) || die "$n: cryo died by a signal or its deadline ($RC)"
	[[ -s $W/$n.err ]] || die "$n: no message"
	for w in "$@"; do
		grep -qiF -- "$w" "$W/$n.err" || die "$n: the message does not mention \"$w\": $(cat "$W/$n.err")"
	done
	log "$n: failed as expected: $(head -c 300 "$W/$n.err" | tr '\n' ' ')"
}

start_daemon() { # NAME [ARGS]: cryo lazy-pages on IMG in the background, DAEMON
	local n=$1
	shift
	local sock=${SOCK_DIR:-$IMG}/lazy-pages.socket
	rm -f "$sock"
	log "cryo lazy-pages -D $IMG $*"
	CRYO_FAULT=lazy-slow-push=20 "$CRYO" lazy-pages -D "$IMG" -o "$W/$n.log" -v4 "$@" >"$W/$n.out" 2>"$W/$n.err" &
	DAEMON=$!
	PIDS+=("$DAEMON")
	wait_until 20 test -S "$sock" || die "the daemon does not listen on $sock: $(cat "$W/$n.err")"
}

# The restored memhog is killed within 10 s of the failure, and nothing of the tree stays.
expect_tree_killed() {
	wait_until 10 gone "$ROOT" || die "the restored tree (pid $ROOT) still exists 10 s after the failure (state $(awk '{print $3}' "/proc/$ROOT/stat"))"
	log "the restored tree is gone"
}

# restore -d --lazy-pages, then the post-copy must still be under way.
restore_lazy() {
	cryo restore restore -d -D "$IMG" -o "$W/restore.log" -v4 --lazy-pages
	((RC == 0)) || die "restore --lazy-pages exited $RC: $(cat "$W/restore.err")"
	[[ -d /proc/$ROOT ]] || die "the restored tree does not run"
	sleep 0.5
	gone "$DAEMON" && die "the post-copy ended before the test could fail it (daemon gone)"
	return 0
}

case $CASE in
source-killed)
	start_memhog 512
	port=$(free_port)
	log "cryo dump --lazy-pages --port $port (in the background)"
	"$CRYO" dump -t "$ROOT" -D "$IMG" -o "$W/dump.log" -v4 --lazy-pages --port "$port" >"$W/dump.out" 2>"$W/dump.err" &
	src=$!
	PIDS+=("$src")
	wait_until 60 listening "$port" || die "the lazy dump does not listen: $(cat "$W/dump.err")"
	wait_until 10 gone "$ROOT" || die "the dumped memhog still runs"
	start_daemon lazy --page-server --address 127.0.0.1 --port "$port"
	restore_lazy
	log "killing the source (cryo dump, pid $src) during the post-copy"
	kill -9 "$src"
	expect_tree_killed
	wait_until 20 gone "$DAEMON" || die "the daemon still runs 20 s after its source died"
	wait "$DAEMON"
	RC=$?
	expect_error lazy "source" "127.0.0.1" "killed"
	[[ ! -e $W/result ]] || die "the restored memhog wrote a result: $(cat "$W/result")"
	;;
daemon-killed)
	start_memhog 512
	cryo dump dump -t "$ROOT" -D "$IMG" -o "$W/dump.log" -v4
	((RC == 0)) || die "dump exited $RC: $(cat "$W/dump.err")"
	start_daemon lazy
	restore_lazy
	log "killing the daemon (pid $DAEMON) during the post-copy"
	kill -9 "$DAEMON"
	expect_tree_killed
	wait_until 10 grep -q "daemon ended before every page was in" "$W/restore.err" ||
		die "no message from the restore's watcher: $(cat "$W/restore.err")"
	grep -q "killed" "$W/restore.err" || die "the watcher's message does not say the tree was killed"
	log "watcher: $(tail -1 "$W/restore.err")"
	;;
socket-missing)
	start_memhog 16
	cryo dump dump -t "$ROOT" -D "$IMG" -o "$W/dump.log" -v4
	((RC == 0)) || die "dump exited $RC: $(cat "$W/dump.err")"
	cryo restore restore -d -D "$IMG" -o "$W/restore.log" -v4 --lazy-pages
	expect_error restore "lazy-pages.socket" "cryo lazy-pages"
	gone "$ROOT" || die "pid $ROOT exists after the failed restore"
	# The daemon, with a -W where the restore looks too, then restores it.
	mkdir -p "$W/work"
	SOCK_DIR=$W/work start_daemon lazy -W "$W/work"
	[[ ! -e $IMG/lazy-pages.socket ]] || die "the daemon's socket is in -D, not in its -W"
	cryo restore2 restore -d -D "$IMG" -W "$W/work" -o "$W/restore2.log" -v4 --lazy-pages
	((RC == 0)) || die "restore -W --lazy-pages exited $RC: $(cat "$W/restore2.err")"
	wait_until 60 gone "$DAEMON" || die "the daemon still runs"
	wait "$DAEMON" || die "the daemon failed: $(cat "$W/lazy.err")"
	touch "$W/go"
	wait_until 60 test -s "$W/result" || die "the restored memhog did not check itself"
	[[ $(cat "$W/result") == PASS* ]] || die "the restored memhog: $(cat "$W/result")"
	;;
bad-options)
	start_memhog 16
	cryo nport dump -t "$ROOT" -D "$IMG" --lazy-pages
	expect_error nport "--port"
	cryo lr dump -t "$ROOT" -D "$IMG" --lazy-pages --port 1 -R
	expect_error lr "--leave-running"
	cryo pre pre-dump -t "$ROOT" -D "$IMG" --lazy-pages
	expect_error pre "--lazy-pages" "pre-dump"
	[[ -d /proc/$ROOT ]] && ! gone "$ROOT" || die "memhog did not survive the refused dumps"
	cryo noaddr lazy-pages -D "$IMG" --page-server --port 1
	expect_error noaddr "--address"
	# A lazy dump's images: refused without --lazy-pages, and by a daemon without a source.
	port=$(free_port)
	"$CRYO" dump -t "$ROOT" -D "$IMG" -o "$W/dump.log" -v4 --lazy-pages --port "$port" >"$W/dump.out" 2>"$W/dump.err" &
	src=$!
	PIDS+=("$src")
	wait_until 60 listening "$port" || die "the lazy dump does not listen: $(cat "$W/dump.err")"
	wait_until 10 gone "$ROOT" || die "the dumped memhog still runs"
	cryo plain restore -d -D "$IMG"
	expect_error plain "lazy dump" "--lazy-pages"
	gone "$ROOT" || die "pid $ROOT exists after the refused restore"
	cryo nosrc lazy-pages -D "$IMG"
	expect_error nosrc "--page-server"
	# A daemon asking the source for pages it does not have: the source says so and fails.
	exec 9<>/dev/tcp/127.0.0.1/"$port"
	printf '\x07\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x10\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00' >&9
	wait_until 20 gone "$src" || die "the source still runs after a request for pages it does not hold"
	exec 9>&-
	wait "$src"
	RC=$?
	expect_error dump "did not leave on the source"
	;;
*)
	die "unknown case $CASE"
	;;
esac
log "PASS: lazy $CASE"
