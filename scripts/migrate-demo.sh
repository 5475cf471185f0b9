#!/usr/bin/env bash
# Live migration of a TCP service between two network namespaces standing for two hosts, with
# its client's connection kept open. Run as root:
#
#   scripts/migrate-demo.sh CRYO [MIB [PRE_DUMPS]]      (default 512 MiB, 2 pre-dumps)
#
# Host A and host B are network namespaces; the client runs outside both (the machine's own
# namespace), joined to each by a veth pair, and reaches the service address SVC through a
# route to A, later to B. A and B are joined by a third veth pair: the migration link.
#
#   1. scripts/migrate-server.py (MIB MiB of memory) listens on SVC:7000 in A; the client
#      (scripts/migrate-client.py) opens one connection and sends a request every 10 ms.
#   2. PRE_DUMPS times: a `cryo page-server` in B, and `cryo pre-dump --track-mem
#      --page-server` in A sending the pages over the migration link (each after the first
#      continues the chain: --prev-images-dir on both sides).
#   3. The final dump, post-copy (the default): `cryo dump --tcp-established --lazy-pages
#      --port` in A writes the images but the pages written since the last pre-dump, which it
#      keeps and serves on the migration link; its images are copied to B (here: a cp, one
#      file system) on top of the pre-dumps' chain; `cryo lazy-pages --page-server` in B
#      fetches those pages from A; B gets the address SVC, `cryo restore --tcp-established
#      --lazy-pages` in B, then the route to SVC moves to B and A drops SVC. The service
#      answers at once; its pages come in behind it, touched ones first.
#      MIGRATE_LAZY=0: the eager final step instead: `cryo dump --tcp-established
#      --page-server` sends the last pages to a page server in B, and B restores them all
#      before the service runs. The network lock holds the connection while the server is
#      frozen and after it is gone from A, in both.
#   4. The client stops; its connection must have survived with every reply once and in
#      order, and the server checks its memory.
#
# Prints the downtime (the client's longest wait between two replies), each step's time (the
# phases: freeze, images complete, images in B, restored, route moved, first answer, from the
# final dump's start) and the bytes that crossed the migration link. Exits 1 when the connection or the memory did not
# survive. DOWNTIME_MAX_MS (if set): also exits 1 when the downtime is larger.
# MIGRATE_LOSE_PS=1 (a test): a first final dump loses its page server's connection and must
# fail with the service running on in A and its connection intact; then the migration goes on.
# MIGRATE_WORK: keep the work directory there (default: a fresh one, removed).
# cryo runs in a namespace with `nsenter --net` (not `ip netns exec`, which would also give
# it a mount namespace of its own: cryo handles one set of namespaces, its own).
set -uo pipefail
[[ $# -ge 1 ]] || {
	echo "usage: $0 CRYO [MIB [PRE_DUMPS]]" >&2
	exit 2
}
CRYO=$(readlink -f "$1")
MIB=${2:-512}
PRE=${3:-2}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[[ -x $CRYO ]] || {
	echo "no cryo at $1" >&2
	exit 2
}
[[ $MIB =~ ^[1-9][0-9]*$ && $PRE =~ ^[0-9]+$ ]] || {
	echo "bad MIB or PRE_DUMPS" >&2
	exit 2
}
((EUID == 0)) || {
	echo "$0 must run as root" >&2
	exit 2
}

W=${MIGRATE_WORK:-$(mktemp -d /tmp/cryo-migrate.XXXXXX)}
mkdir -p "$W/src" "$W/dst"
TAG=$$
A=cryo-mig-a-$TAG
B=cryo-mig-b-$TAG
NET=10.$((100 + TAG % 100)).$((TAG / 100 % 250))
SVC=$NET.100
PORT=7000
PS_PORT=7001
SERVER_PID=
CLIENT_PID=
PS_PIDS=()
DUMP_PID=
LAZY_PID=
LAZY=${MIGRATE_LAZY:-1}
LAZY_PORT=7002

log() { echo "[$(date +%T.%3N)] $*"; }
die() {
	log "FAIL: $*"
	echo "(work directory kept: $W)"
	KEEP=1
	exit 1
}
in_a() { nsenter --net=/run/netns/$A "$@"; }
in_b() { nsenter --net=/run/netns/$B "$@"; }
cleanup() {
	local p
	[[ -n $CLIENT_PID ]] && kill -9 "$CLIENT_PID" 2>/dev/null
	[[ -n $SERVER_PID ]] && kill -9 "$SERVER_PID" 2>/dev/null
	for p in "${PS_PIDS[@]}" $DUMP_PID $LAZY_PID; do kill -9 "$p" 2>/dev/null; done
	[[ -n $SERVER_PID ]] && for p in $(pgrep -x cryo-memtrack); do
		tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline" | grep -q -- "-t $SERVER_PID " && kill -9 "$p"
	done
	ip link del "mig$TAG-a" 2>/dev/null
	ip link del "mig$TAG-b" 2>/dev/null
	ip route del "$SVC/32" 2>/dev/null
	ip netns del "$A" 2>/dev/null
	ip netns del "$B" 2>/dev/null
	[[ ${KEEP:-0} == 1 || -n ${MIGRATE_WORK:-} ]] || rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_until() { # SECONDS CMD...
	local end=$((SECONDS + $1))
	shift
	until "$@"; do
		((SECONDS >= end)) && return 1
		sleep 0.005
	done
}
ms_since() { echo $((($(date +%s%N) - $1) / 1000000)); }

# --- the two hosts and the client's network ---
ip netns add "$A" && ip netns add "$B" || die "cannot create the network namespaces"
ip link add "mig$TAG-a" type veth peer name eth0 netns "$A" &&
	ip link add "mig$TAG-b" type veth peer name eth0 netns "$B" &&
	ip -n "$A" link add eth1 type veth peer name eth1 netns "$B" || die "cannot create the veth pairs"
ip addr add "$NET.1/30" dev "mig$TAG-a" && ip link set "mig$TAG-a" up &&
	ip addr add "$NET.5/30" dev "mig$TAG-b" && ip link set "mig$TAG-b" up || die "cannot set up the client's links"
for h in A B; do
	ns=${!h}
	if [[ $h == A ]]; then mine=$NET.2 gw=$NET.1 link=$NET.9; else mine=$NET.6 gw=$NET.5 link=$NET.10; fi
	ip -n "$ns" link set lo up && ip -n "$ns" addr add "$mine/30" dev eth0 && ip -n "$ns" link set eth0 up &&
		ip -n "$ns" addr add "$link/30" dev eth1 && ip -n "$ns" link set eth1 up &&
		ip -n "$ns" route add default via "$gw" || die "cannot set up host $h"
done
ip -n "$A" addr add "$SVC/32" dev lo && ip route add "$SVC/32" via "$NET.2" || die "cannot set up the service address"
A_LINK=$NET.9
B_LINK=$NET.10

# --- the service in A, its client outside ---
# Its own session, stdio on /dev/null, no other fd.
(
	for fd in /proc/$BASHPID/fd/*; do
		fd=${fd##*/}
		((fd > 2)) && eval "exec $fd>&-"
	done
	exec nsenter --net=/run/netns/$A setsid /usr/bin/python3 "$HERE/migrate-server.py" "$SVC" $PORT "$MIB" "$W/ready" \
		</dev/null >/dev/null 2>"$W/server.err"
) &
disown $! # no job notice when the dump kills it
wait_until 120 test -e "$W/ready" || die "the server did not start: $(cat "$W/server.err")"
SERVER_PID=$(cat "$W/ready")
log "server: pid $SERVER_PID in host A, $MIB MiB, listening on $SVC:$PORT"
/usr/bin/python3 "$HERE/migrate-client.py" "$SVC" $PORT "$W/stop" "$W/client.json" 2>"$W/client.err" &
CLIENT_PID=$!
sleep 1
kill -0 "$CLIENT_PID" 2>/dev/null || die "the client ended: $(cat "$W/client.err")"
log "client: one connection, a request every 10 ms"

# page_server N: a page server in B receiving the pages of dump N into dst/N.
page_server() {
	local n=$1 prev=()
	mkdir -p "$W/dst/$n"
	((n > 1)) && prev=(--prev-images-dir "../$((n - 1))")
	in_b "$CRYO" page-server -D "$W/dst/$n" --address "$B_LINK" --port $PS_PORT "${prev[@]}" \
		-o ps.log -v4 >/dev/null 2>"$W/ps$n.err" &
	PS_PIDS+=($!)
	wait_until 10 ps_listening || die "page server $n does not listen: $(cat "$W/ps$n.err")"
}
ps_listening() { in_b ss -Hltn "sport = :$PS_PORT" | grep -q .; }
# dump ACTION N ARGS...: the (pre-)dump N in A through the page server.
dump() {
	local action=$1 n=$2 prev=()
	shift 2
	mkdir -p "$W/src/$n"
	((n > 1)) && prev=(--prev-images-dir "../$((n - 1))")
	in_a "$CRYO" "$action" -t "$SERVER_PID" -D "$W/src/$n" "${prev[@]}" --page-server --address "$B_LINK" \
		--port $PS_PORT -o "$action.log" -v4 --display-stats "$@" >"$W/src/$n.stats" 2>"$W/dump$n.err" ||
		die "$action $n failed: $(cat "$W/dump$n.err")"
	wait "${PS_PIDS[-1]}" || die "page server $n failed: $(cat "$W/ps$n.err")"
}
lazy_listening() { in_a ss -Hltn "sport = :$LAZY_PORT" | grep -q .; }
is_gone() { ! kill -0 "$1" 2>/dev/null; }
# The final dump's images to B (here: a cp, one file system), but what only the source needs.
copy_images() {
	local f imgs=()
	for f in "$W/src/$n"/*.img; do [[ $f == */cryo-sent-* ]] || imgs+=("$f"); done
	cp "${imgs[@]}" "$W/dst/$n/" || die "cannot copy the images to B"
}
written() { awk -F': ' '/^Memory pages written/ {print $2+0}' "$W/src/$1.stats"; }

for ((n = 1; n <= PRE; n++)); do
	page_server $n
	t0=$(date +%s%N)
	dump pre-dump $n --track-mem
	log "pre-dump $n: $(ms_since "$t0") ms, $(written $n) pages sent"
done

# --- the final dump: from here the service is down ---
n=$((PRE + 1))
if [[ ${MIGRATE_LOSE_PS:-0} == 1 ]]; then
	# A test of failure: the page server's connection breaks during the final dump. The dump
	# must fail, the server run on in A with its connection (no lock, no repair mode left),
	# and the chain go on (its tracking was taken by the failed dump: all pages are sent).
	in_b /usr/bin/python3 -c "
import socket, struct
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(('$B_LINK', $PS_PORT)); ls.listen(1)
sk, _ = ls.accept()
sk.recv(32); sk.sendall(struct.pack('<i', 1))  # PARENT: the parent images are here
sk.recv(32); sk.sendall(b'\\1')                # OPEN2: so is the image
sk.recv(4096)
sk.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0)); sk.close()
" 2>"$W/dropper.err" &
	PS_PIDS+=($!)
	wait_until 10 ps_listening || die "the dropping page server does not listen"
	mkdir -p "$W/src/lost"
	in_a "$CRYO" dump -t "$SERVER_PID" -D "$W/src/lost" --prev-images-dir "../$PRE" --page-server \
		--address "$B_LINK" --port $PS_PORT --tcp-established -o dump.log -v4 >/dev/null 2>"$W/lost.err" &&
		die "the final dump succeeded with its page server gone"
	grep -q "page server" "$W/lost.err" || die "the failed dump said: $(cat "$W/lost.err")"
	log "final dump with the page server lost: $(cat "$W/lost.err")"
	wait "${PS_PIDS[-1]}"
	grep -q '^State:.*[RS]' "/proc/$SERVER_PID/status" || die "the server does not run on in A"
	in_a nft list table inet "cryo-$SERVER_PID" >/dev/null 2>&1 && die "the failed dump left its network lock"
	[[ -e $W/src/lost/inventory.img ]] && die "the failed dump left an inventory"
	sleep 0.5
	kill -0 "$CLIENT_PID" 2>/dev/null || die "the client ended after the failed dump: $(cat "$W/client.err")"
	rm -rf "$W/src/lost"
fi
[[ $LAZY == 1 ]] || page_server $n
t_down=$(date +%s%N)
if [[ $LAZY == 1 ]]; then
	# Post-copy: the final dump keeps the pages written since the last pre-dump in A and
	# serves them on the migration link; B restores at once and takes them as they are
	# touched (or pushed), the pre-dumps' pages from its own images.
	prev=()
	((n > 1)) && prev=(--prev-images-dir "../$((n - 1))")
	mkdir -p "$W/src/$n" "$W/dst/$n"
	in_a "$CRYO" dump -t "$SERVER_PID" -D "$W/src/$n" "${prev[@]}" --tcp-established --lazy-pages \
		--address "$A_LINK" --port $LAZY_PORT -o dump.log -v4 --display-stats >"$W/src/$n.stats" \
		2>"$W/dump$n.err" &
	DUMP_PID=$!
	wait_until 60 test -e "$W/src/$n/inventory.img" || die "the lazy dump wrote no images: $(cat "$W/dump$n.err")"
	t_dumped=$(ms_since "$t_down")
	copy_images
	((n > 1)) && ln -s "../$((n - 1))" "$W/dst/$n/parent"
	t_copied=$(ms_since "$t_down")
	wait_until 60 lazy_listening || die "the lazy dump does not serve its pages: $(cat "$W/dump$n.err")"
	in_b "$CRYO" lazy-pages -D "$W/dst/$n" --page-server --address "$A_LINK" --port $LAZY_PORT \
		-o lazy.log -v4 >/dev/null 2>"$W/lazy.err" &
	LAZY_PID=$!
	wait_until 20 test -S "$W/dst/$n/lazy-pages.socket" || die "the lazy-pages daemon does not listen: $(cat "$W/lazy.err")"
	lazy=(--lazy-pages)
else
	dump dump $n --tcp-established
	t_dumped=$(ms_since "$t_down")
	copy_images
	t_copied=$(ms_since "$t_down")
	lazy=()
fi
# The restored sockets are bound to SVC: B has it first. The packets still go to A, where the
# dump's network lock drops them, until the route moves to B; B must not see them before the
# restore, or its kernel would answer with a reset. So B needs no lock of its own while it
# restores (--network-lock skip: two runs of nft fewer in the pause).
ip -n "$B" addr add "$SVC/32" dev lo || die "cannot add the service address to B"
in_b "$CRYO" restore -D "$W/dst/$n" --tcp-established --network-lock skip "${lazy[@]}" -d -o restore.log -v4 \
	>"$W/restore.out" 2>"$W/restore.err" ||
	die "restore in B failed: $(cat "$W/restore.err")"
t_restored=$(ms_since "$t_down")
ip route replace "$SVC/32" via "$NET.6" && ip -n "$A" addr del "$SVC/32" dev lo || die "cannot move the service address"
t_moved=$(ms_since "$t_down")
log "final dump: images at $t_dumped ms ($(written $n) pages); images in B at $t_copied ms; restored in B at $t_restored ms; route to B at $t_moved ms"
if [[ $LAZY == 1 ]]; then
	wait_until 300 is_gone "$LAZY_PID" || die "the lazy-pages daemon still runs 300 s after the restore"
	wait "$LAZY_PID" || die "cryo lazy-pages failed: $(cat "$W/lazy.err")"
	LAZY_PID=
	wait "$DUMP_PID" || die "the lazy dump failed: $(cat "$W/dump$n.err")"
	DUMP_PID=
	log "post-copy done at $(ms_since "$t_down") ms: $(grep -o 'every page is in.*' "$W/dst/$n/lazy.log")"
else
	# The lock the final dump left in A (for a restore there) has served once the route
	# leads to B. A lazy dump lifts it itself once B has every page.
	in_a nft delete table inet "cryo-$SERVER_PID" || die "cannot lift the network lock in A"
fi
in_a nft list tables | grep -q cryo && die "a network lock is left in A: $(in_a nft list tables)"
if ((PRE > 0)) && [[ ${MIGRATE_LOSE_PS:-0} != 1 ]] && (($(written $n) * 4 > $(written 1))); then
	die "the final dump sent $(written $n) pages, the first pre-dump $(written 1): the chain did not work"
fi
[[ $(stat -L -c %i "/proc/$SERVER_PID/ns/net") == "$(stat -L -c %i "/run/netns/$B")" ]] ||
	die "the restored server is not in host B"

# --- the client goes on for a while, then checks ---
sleep 1
touch "$W/stop"
wait_until 90 test -e "$W/client.json" || die "the client gave no result: $(cat "$W/client.err")"
wait "$CLIENT_PID"
CLIENT_PID=
bytes=$(du -cb "$W"/dst/*/pages-*.img "$W"/dst/*/pagemap-*.img | tail -1 | cut -f1)
other=$(du -cb "$W/dst/$n"/*.img --exclude='pages-*' --exclude='pagemap-*' | tail -1 | cut -f1)
/usr/bin/python3 - "$W/client.json" "$bytes" "$other" <<'EOF' || die "the connection did not survive: $(cat "$W/client.json")"
import json, sys
r = json.load(open(sys.argv[1]))
print("client: %d requests, %d replies, every one once and in order: %s" %
      (r["requests"], r["replies"], "yes" if not r["errors"] and r["replies"] == r["requests"] else "NO"))
print("server memory after the migration: %s" % r["verdict"])
print("downtime (longest gap between two replies): %.1f ms, %.2f s into the run" % (r["max_gap_ms"], r.get("max_gap_at_s", 0)))
print("bytes moved: %d MiB of pages (%d bytes) over the page server, %d KiB of other images" %
      (int(sys.argv[2]) >> 20, int(sys.argv[2]), int(sys.argv[3]) >> 10))
for e in r["errors"]:
    print("error:", e)
ok = not r["errors"] and r["replies"] == r["requests"] and (r["verdict"] or "").startswith("verify ok")
sys.exit(0 if ok else 1)
EOF
downtime=$(/usr/bin/python3 -c 'import json,sys; print(int(json.load(open(sys.argv[1]))["max_gap_ms"]))' "$W/client.json")
answer=$(/usr/bin/python3 -c 'import json,sys; print(int(json.load(open(sys.argv[1]))["max_gap_end_unix"] * 1000 - int(sys.argv[2]) / 1e6))' \
	"$W/client.json" "$t_down")
stat_ms() { awk -v k="$1" 'index($0, k ":") == 1 { printf "%d", $(NF-1) / 1000 }' "$W/src/$n.stats"; }
freeze=$(($(stat_ms 'Freezing time') + $(stat_ms 'Frozen time')))
# Times from the start of the final dump (the client's last answer before the gap comes a
# little before it: the gap also holds the request in flight then).
echo "phases ($([[ $LAZY == 1 ]] && echo post-copy || echo eager) final step, ms from the final dump's start):" \
	"freeze $freeze (the service stopped in A)," \
	"images at $t_dumped, in B at $t_copied, restored at $t_restored, route at $t_moved, first answer at $answer"
echo "DOWNTIME_MS=$downtime"
if [[ -n ${DOWNTIME_MAX_MS:-} ]] && ((downtime > DOWNTIME_MAX_MS)); then
	die "downtime $downtime ms is over $DOWNTIME_MAX_MS ms"
fi
log "migration done"
