#!/bin/bash
# Debian's PostgreSQL 15, checkpointed and restored whole.
#
#   postgres.sh CRYO
#
# A fresh cluster (initdb as the postgres user, in a temporary directory) is started in its
# own session, listening on a free TCP port of 127.0.0.1 and on a unix socket in the
# temporary directory. A table is written. While a psql session outside the tree is connected,
# the dump is refused (cryo cannot take one end of a connection) and the server and the
# session go on unharmed. Once it left, `cryo dump -t POSTMASTER` takes the whole
# tree (the postmaster and its background processes, which attach a small SysV segment and
# map a large shared anonymous area and /dev/shm segments), the tree is gone, `cryo restore
# -d` brings it back, and psql must read every row written before, through the unix socket
# and over TCP, and write new ones. The SysV segment has its id, key, owner and attachments
# again. Last, the server is stopped cleanly (pg_ctl stop -m fast).
#
# Runs as root. Everything made is removed at the end; on failure the server's processes are
# killed and the work directory is kept for a look (KEEP=1: kept anyway).
set -u
umask 022
(($# == 1)) || {
	echo "usage: $0 CRYO" >&2
	exit 2
}
CRYO=$(readlink -f "$1")
PGBIN=/usr/lib/postgresql/15/bin
CRIT=/usr/bin/crit
W=$(mktemp -d /tmp/cr-postgres.XXXXXX)
chmod 0755 "$W" # the postgres user reaches its directory in it
PG=$W/pg      # the postgres user's: data directory, socket, server log
IMG=$W/img    # root's
PM=""         # the postmaster's pid
TREE=()       # every pid of the server's tree when dumped
FAILED=0
CLIENT=""     # a psql session connected from outside the tree

log() { echo "[$(date +%T.%3N)] $*"; }
die() {
	log "FAIL: $*"
	FAILED=1
	local f
	for f in "$PG/server.log" "$W"/*.err "$W/dump.log" "$W/restore.log"; do
		[[ -s $f ]] || continue
		echo "--- ${f#"$W"/} (last lines):"
		tail -n 25 "$f"
	done
	exit 1
}
# The postmaster and whatever it started, still alive.
server_pids() {
	local p
	for p in $PM "${TREE[@]}"; do
		[[ -n $p && -e /proc/$p ]] && grep -qF -- "$PG" "/proc/$p/cmdline" 2>/dev/null && echo "$p"
		[[ -n $p ]] && cat "/proc/$p/task/$p/children" 2>/dev/null
	done | tr ' ' '\n' | grep -E '^[0-9]+$' | sort -u
}
cleanup() {
	local rc=$? p
	trap - EXIT
	for p in $(server_pids); do kill -KILL "$p" 2>/dev/null; done
	# the psql client, if it is still our child
	if [[ -n ${CLIENT:-} ]] && [[ $(awk '{ print $4 }' "/proc/$CLIENT/stat" 2>/dev/null) == "$$" ]]; then
		kill -KILL "$CLIENT" 2>/dev/null
	fi
	# The SysV segment and /dev/shm segments of a server that did not stop cleanly.
	if [[ -n ${SHMID:-} ]] && awk -v id="$SHMID" '$2 == id && $7 == 0 { f = 1 } END { exit !f }' \
		/proc/sysvipc/shm 2>/dev/null; then
		ipcrm -m "$SHMID" 2>/dev/null
	fi
	for p in "${DSM[@]}"; do rm -f "$p"; done
	if ((rc == 0 && !FAILED)) && [[ ${KEEP:-0} != 1 ]]; then
		rm -rf "$W"
	else
		echo "work directory kept: $W"
	fi
	exit $rc
}
trap cleanup EXIT
trap 'die "interrupted"' INT TERM HUP
DSM=()

now_ms() { echo $(($(date +%s%N) / 1000000)); }
wait_until() { # SECONDS CMD...: poll CMD every 100 ms
	local end=$(($(now_ms) + $1 * 1000))
	shift
	until "$@"; do
		(($(now_ms) >= end)) && return 1
		sleep 0.1
	done
}
is_gone() {
	local s
	s=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
	s=${s##*) }
	[[ ${s%% *} == [ZX] ]]
}
all_gone() {
	local p
	for p in "$@"; do is_gone "$p" || return 1; done
}
AS_POSTGRES=(setpriv --reuid=postgres --regid=postgres --init-groups --)
# psql HOST SQL: one statement through the unix socket (HOST a directory) or TCP; prints rows.
psql_at() {
	timeout -k 5 30 "$PGBIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h "$1" -p "$PORT" -U postgres \
		-d postgres -c "$2" 2>>"$W/psql.err"
}
ready() { timeout -k 2 10 "$PGBIN/pg_isready" -q -h "$PG" -p "$PORT" -U postgres; }
# The backends of client connections, children of the postmaster: none once the clients left.
no_backends() {
	local p
	for p in $(cat "/proc/$PM/task/$PM/children" 2>/dev/null); do
		grep -qa -e '\[local\]' -e '127.0.0.1' "/proc/$p/cmdline" 2>/dev/null && return 1
	done
	return 0
}
# The server's SysV segment: "id key nattch uid" from /proc/sysvipc/shm.
segment() { awk -v id="$SHMID" '$2 == id { print $2, $1, $7, $8 }' /proc/sysvipc/shm; }
# The rows' fingerprint.
CHECK_SQL="select count(*) || ' ' || sum(i) || ' ' || md5(string_agg(s, ',' order by i)) from t"

[[ $(id -u) == 0 ]] || die "this test must run as root"
[[ -x $PGBIN/postgres ]] || die "PostgreSQL 15 is not installed (scripts/install-deps.sh installs postgresql)"
id postgres >/dev/null 2>&1 || die "there is no postgres user (the postgresql package makes it)"

# --- a fresh cluster ---
mkdir -p "$PG" "$IMG"
chown postgres: "$PG"
chmod 0700 "$PG"
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log "initdb in $PG/data"
timeout -k 5 120 "${AS_POSTGRES[@]}" "$PGBIN/initdb" -D "$PG/data" -A trust -U postgres --no-sync \
	>"$W/initdb.out" 2>&1 ||
	die "initdb failed: $(tail -n 5 "$W/initdb.out")"
setsid "${AS_POSTGRES[@]}" "$PGBIN/postgres" -D "$PG/data" \
	-p "$PORT" -k "$PG" -c listen_addresses=127.0.0.1 -c fsync=off </dev/null >"$PG/server.log" 2>&1 &
wait_until 30 ready || die "the server did not accept connections within 30 s"
PM=$(head -n 1 "$PG/data/postmaster.pid")
[[ $PM =~ ^[0-9]+$ ]] || die "no postmaster pid in postmaster.pid"
log "postmaster $PM listening on port $PORT and in $PG"

psql_at "$PG" "create table t (i int primary key, s text);
	insert into t select g, md5(g::text) from generate_series(1, 20000) g;" >/dev/null ||
	die "cannot write the table: $(tail -n 3 "$W/psql.err")"
BEFORE=$(psql_at "$PG" "$CHECK_SQL") || die "cannot read the table back"
log "table written: $BEFORE (count, sum, md5)"

# --- a client connected from outside the tree: the dump is refused, the server runs on ---
mkfifo "$W/client.in"
exec 7<>"$W/client.in"
"$PGBIN/psql" -X -q -A -t -h "$PG" -p "$PORT" -U postgres -d postgres <"$W/client.in" \
	>"$W/client.out" 2>&1 &
CLIENT=$!
echo "select 'client' || 'ready';" >&7
wait_until 30 grep -q clientready "$W/client.out" || die "the psql client did not connect"
timeout -k 5 180 "$CRYO" dump -t "$PM" -D "$IMG" -o "$W/dump-client.log" -v4 \
	>"$W/dump-client.out" 2>"$W/dump-client.err" && die "cryo dump of a server with a client connected from outside succeeded"
grep -q "outside the dumped tree" "$W/dump-client.err" ||
	die "the refusal does not name the outside connection: $(head -c 600 "$W/dump-client.err")"
log "with a client connected, the dump is refused: $(head -c 300 "$W/dump-client.err")"
[[ $(psql_at "$PG" "$CHECK_SQL") == "$BEFORE" ]] || die "the server does not answer as before after the refused dump"
echo "select 'client' || 'still';" >&7
wait_until 30 grep -q clientstill "$W/client.out" || die "the client's session does not work after the refused dump"
echo '\q' >&7
exec 7>&-
wait_until 30 is_gone "$CLIENT" || die "psql did not quit"
wait "$CLIENT"
rm -rf "$IMG"
mkdir -p "$IMG"

# --- what the tree holds ---
wait_until 30 no_backends || die "client backends still there 30 s after the clients left"
SHMID=$(awk '/\/SYSV/ { print $5; exit }' "/proc/$PM/maps")
[[ -n $SHMID ]] || die "the postmaster attaches no SysV segment (maps: $(grep -c . "/proc/$PM/maps") lines)"
mapfile -t DSM < <(awk '$6 ~ /^\/dev\/shm\/PostgreSQL\./ { print $6 }' /proc/"$PM"/maps | sort -u)
SEG_BEFORE=$(segment)
TREE=("$PM" $(cat "/proc/$PM/task/$PM/children"))
log "tree: ${TREE[*]}; SysV segment (id key nattch uid): $SEG_BEFORE; /dev/shm segments: ${DSM[*]:-none}"
((${#TREE[@]} >= 5)) || die "the postmaster has only $((${#TREE[@]} - 1)) children"

# --- dump: the tree goes ---
t0=$(now_ms)
timeout -k 5 180 "$CRYO" dump -t "$PM" -D "$IMG" -o "$W/dump.log" -v4 >"$W/dump.out" 2>"$W/dump.err" ||
	die "cryo dump exited $?: $(head -c 800 "$W/dump.err")"
log "dumped in $(($(now_ms) - t0)) ms ($(du -sh "$IMG" | cut -f1) of images)"
wait_until 30 all_gone "${TREE[@]}" || die "the server's processes are still there 30 s after the dump"
[[ -e $IMG/ipcns-shm-3.img ]] || die "no ipcns-shm image: $(ls "$IMG" | tr '\n' ' ')"
# (every kind of image is decoded by the other tests; here the ones of shared memory)
for f in "$IMG"/ipcns-shm-*.img "$IMG"/mm-*.img; do
	"$CRIT" decode -i "$f" --pretty >/dev/null 2>"$W/crit.err" || die "crit cannot decode ${f##*/}"
done
ready && die "something still accepts connections on port $PORT after the dump"

# --- restore ---
t0=$(now_ms)
timeout -k 5 180 "$CRYO" restore -d -D "$IMG" -o "$W/restore.log" -v4 >"$W/restore.out" 2>"$W/restore.err" ||
	die "cryo restore -d exited $?: $(head -c 800 "$W/restore.err")"
log "restored in $(($(now_ms) - t0)) ms"
for p in "${TREE[@]}"; do
	is_gone "$p" && die "pid $p of the tree is not there after restore"
done
[[ $(segment) == "$SEG_BEFORE" ]] ||
	die "the SysV segment (id key nattch uid) was \"$SEG_BEFORE\", now \"$(segment)\""

AFTER=$(psql_at "$PG" "$CHECK_SQL") || die "psql cannot read the table through the unix socket after restore: $(tail -n 3 "$W/psql.err")"
[[ $AFTER == "$BEFORE" ]] || die "the table read \"$BEFORE\" before the dump, \"$AFTER\" after restore"
AFTER_TCP=$(psql_at 127.0.0.1 "$CHECK_SQL") || die "psql cannot connect over TCP after restore: $(tail -n 3 "$W/psql.err")"
[[ $AFTER_TCP == "$BEFORE" ]] || die "over TCP the table reads \"$AFTER_TCP\""
psql_at "$PG" "insert into t select g, md5(g::text) from generate_series(20001, 30000) g;
	update t set s = 'changed' where i % 1000 = 0;" >/dev/null || die "cannot write after restore: $(tail -n 3 "$W/psql.err")"
N=$(psql_at 127.0.0.1 "select count(*) || ' ' || count(*) filter (where s = 'changed') from t") ||
	die "cannot read the new rows"
[[ $N == "30000 30" ]] || die "after the writes the table holds \"$N\" (rows, changed), expected \"30000 30\""
log "after restore: the rows read as before ($AFTER), 10000 rows written, 30 updated"

# --- a clean stop ---
timeout -k 5 90 "${AS_POSTGRES[@]}" "$PGBIN/pg_ctl" -D "$PG/data" stop -m fast -t 60 >"$W/stop.out" 2>&1 || die "pg_ctl stop failed: $(tail -n 3 "$W/stop.out")"
wait_until 30 all_gone "${TREE[@]}" || die "the server's processes remain 30 s after pg_ctl stop"
grep -q "database system is shut down" "$PG/server.log" || die "the server log does not say it shut down"
[[ -z $(segment) ]] || die "the SysV segment $SHMID remains after the server stopped: $(segment)"
log "PASS: postgres stopped cleanly after dump and restore"
