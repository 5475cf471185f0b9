#!/bin/bash
# Checkpoint/restore test driver.
#
#   run-test.sh CRYO_BINARY PROGRAM_OR_NAME FLAVOR
#
# PROGRAM_OR_NAME is the path of a test program (tests/cr/progs/*.c) for the
# flavors restore, restore-detached, leave-running, exit-status, shell-job and lazy,
# lazy-detached, lazy-remote (restore --lazy-pages with cryo lazy-pages);
# "loop_sh", "script", "pipeline", "python" or "redis" for the flavor demo; "errors" for the error flavors
# (missing-pid bad-option missing-dir occupied-pid truncated-image
# corrupt-image unsupported-socket inotify-deleted fault-dump fault-restore traced
# ghost-limit freeze-timeout file-locks ext-unix-sk unix-inflight socket-path-taken
# stop-during-dump oom-score-adj io-uring udp-corked unix-creds-outside pidfile log-file images-perms image-part-symlink
# hostile-memory hostile-core hostile-files hostile-pipes file-kinds sysv-shm pgrp-outside
# shared-clone namespaces).
# Some programs need options on both dump and restore: see PROG_OPTS below.
# Helper programs (memory, task_state, tree, socket_holder, tracer, deleted_files,
# vfork_wait, file_locks, inotify_deleted, pid_taker, io_uring, udp_corked,
# unix_creds_outside) are taken
# from $CR_PROGS_DIR, else from the directory of PROGRAM_OR_NAME.
#
# Protocol with the programs: `prog WORKDIR` builds its state, writes
# WORKDIR/ready (its pid; tree members write ready-<role>), waits for
# WORKDIR/go, checks its state and writes WORKDIR/result ("PASS" or FAIL
# lines). After touching go the driver sends SIGUSR1 to the root once the
# root's SIGUSR1 disposition is in place (the regs program waits for it).
#
# Every run uses a fresh WORKDIR (mktemp -d), kept on failure, removed on
# success. Test processes are killed on exit (only those whose command line
# names the WORKDIR).
set -u
# cryo restore refuses group- or world-writable images: whatever the caller's umask, the
# directories made here are writable by root alone.
umask 022

if (( $# != 3 )); then
	echo "usage: $0 CRYO_BINARY PROGRAM_OR_NAME FLAVOR" >&2
	exit 2
fi
CRYO=$(readlink -f "$1")
PROG=$2
FLAVOR=$3
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[[ $PROG == */* ]] && PROG=$(readlink -f "$PROG")
PROGS_DIR=${CR_PROGS_DIR:-}
[[ -z $PROGS_DIR && $PROG == /* ]] && PROGS_DIR=$(dirname "$PROG")
CRIT=/usr/bin/crit

# Extra options of a program, added to every cryo dump and restore of it (not to the error
# flavors, which name their options themselves). CRIU's -l is needed on both sides too.
declare -A PROG_OPTS=(
	[file_locks]="-l"
	[unix_ext]="--ext-unix-sk"
	[link_remap]="--link-remap"
	[tcp_stream]="--tcp-established"
)
read -ra OPTS <<<"${PROG_OPTS[$(basename "$PROG")]:-}"

# Free huge pages (2 MiB) a program needs: the hugetlb pool is grown for the run and put back
# after it. A run that cannot grow it is skipped (exit 77, ctest's SKIP_RETURN_CODE).
declare -A PROG_HUGEPAGES=(
	[hugetlb]=10
)
NEED_HUGEPAGES=${PROG_HUGEPAGES[$(basename "$PROG")]:-0}
HUGEPAGES_SYSCTL=/proc/sys/vm/nr_hugepages
HUGEPAGES_OLD=""

W=$(mktemp -d "/tmp/cr-$(basename "$PROG")-$FLAVOR.XXXXXX")
D=$W               # WORKDIR of the current run (error flavors use subdirectories)
IMG=$D/img
ROOT=""            # root pid of the test tree
BGPID=""           # the pid we spawned (== ROOT normally)
EXE=""             # /proc/ROOT/exe of the original
COMM=""
SEND_USR1=1
HELPERS=()         # cryo/script/tracer processes we started
RC=0

log() { echo "[$(date +%T.%3N)] $*"; }

show_diagnostics() {
	local f
	for f in $(find "$W" -name '*.stderr' -size +0 2>/dev/null | sort); do
		echo "--- ${f#"$W"/}:"
		tail -n 20 "$f"
	done
	for f in $(find "$W" -name '*.log' 2>/dev/null | sort); do
		echo "--- last 40 lines of ${f#"$W"/}:"
		tail -n 40 "$f"
	done
	for f in $(find "$W" \( -name 'result*' -o -name 'notes-*' -o -name 'tracer-error' \
		-o -name 'typescript*' -o -name 'crit.err' \) 2>/dev/null | sort); do
		echo "--- ${f#"$W"/}:"
		tail -n 30 "$f" | cat -v
	done
}

die() {
	echo "FAIL: $*"
	show_diagnostics
	exit 1
}

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# wait_until SECONDS CMD...: poll CMD every 50 ms
wait_until() {
	local end=$(( $(now_ms) + $1 * 1000 ))
	shift
	until "$@"; do
		(( $(now_ms) >= end )) && return 1
		sleep 0.05
	done
}

# State letter of a pid (R S D Z T t ...); fails if there is no such process.
proc_state() {
	local s
	s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	[[ -n $s ]] || return 1
	s=${s##*) }
	echo "${s%% *}"
}
state_of() { proc_state "$1" || echo "gone"; }
# Gone: no such process, or a zombie (PID 1 here reaps orphans lazily).
is_gone() {
	local s
	s=$(proc_state "$1") || return 0
	[[ $s == Z || $s == X ]]
}
# Running: exists, not a zombie, not stopped or traced-stopped.
is_running() {
	local s
	s=$(proc_state "$1") || return 1
	[[ $s != [ZXtT] ]]
}

# Pids of the live test processes of the current run (ready files).
test_pids() {
	local f
	for f in "$D"/ready "$D"/ready-*; do
		[[ -s $f ]] && tr -dc '0-9\n' <"$f"
	done
}

kill_test_procs() {
	local p f
	local pids=()
	for f in $(find "$W" -name 'ready*' -type f 2>/dev/null); do
		pids+=($(tr -dc '0-9\n' <"$f"))
	done
	for p in "${pids[@]}"; do
		[[ $p =~ ^[0-9]+$ ]] || continue
		if tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline" | grep -qF -- "$W"; then
			kill -KILL "$p" 2>/dev/null
		fi
	done
}

cleanup() {
	local rc=$?
	trap - EXIT
	kill_test_procs
	put_back_hugepages
	local p
	for p in "${HELPERS[@]}"; do # only if still our child (pids get reused)
		local st
		st=$(cat "/proc/$p/stat" 2>/dev/null) || continue
		st=${st##*) }
		[[ $(cut -d' ' -f2 <<<"$st") == "$$" ]] && kill -KILL "$p" 2>/dev/null
	done
	if (( rc == 0 || rc == 77 )); then
		rm -rf "$W"
	else
		remove_sysv_segments
		echo "workdir kept: $W"
	fi
	exit $rc
}
# SysV segments outlive their processes: on failure, those a killed test program listed in
# its WORKDIR/ids and nobody attaches any more go (on success the program removed them).
remove_sysv_segments() {
	local f id
	for f in $(find "$W" -name ids -type f 2>/dev/null); do
		for id in $(tr -dc '0-9 \n' <"$f"); do
			awk -v id="$id" '$2 == id && $7 == 0 { f = 1 } END { exit !f }' /proc/sysvipc/shm &&
				ipcrm -m "$id" 2>/dev/null
		done
	done
}
trap cleanup EXIT
trap 'echo "FAIL: interrupted"; exit 1' INT TERM HUP

hugepages_free() { awk '/^HugePages_Free:/ {print $2}' /proc/meminfo; }
reserve_hugepages() {
	(( NEED_HUGEPAGES )) || return 0
	local free total
	free=$(hugepages_free)
	(( free >= NEED_HUGEPAGES )) && return 0
	HUGEPAGES_OLD=$(<"$HUGEPAGES_SYSCTL")
	total=$(( HUGEPAGES_OLD + NEED_HUGEPAGES - free ))
	echo "$total" >"$HUGEPAGES_SYSCTL" 2>/dev/null
	free=$(hugepages_free)
	if (( free < NEED_HUGEPAGES )); then
		echo "SKIP: $(basename "$PROG") needs $NEED_HUGEPAGES free huge pages, the pool gives $free" \
			"(vm.nr_hugepages $HUGEPAGES_OLD -> $total)"
		exit 77
	fi
	log "huge pages: vm.nr_hugepages $HUGEPAGES_OLD -> $total for this run"
}
put_back_hugepages() {
	[[ -n $HUGEPAGES_OLD ]] || return 0
	# Pages still in use become surplus pages, freed when their last user goes.
	echo "$HUGEPAGES_OLD" >"$HUGEPAGES_SYSCTL" 2>/dev/null
	HUGEPAGES_OLD=""
}

# spawn [--tty] CMD...: start CMD in the background with no fds above 2
# (inherited pipes would make the tree undumpable), stdio on /dev/null and,
# unless --tty, in a new session (setsid: the root is a session leader).
# Sets SPAWN_PID.
# (bash reports "PID Killed  spawned_child ..." when a dump kills one: expected)
spawned_child() { # runs in the background subshell
	local fd
	for fd in /proc/$BASHPID/fd/*; do
		fd=${fd##*/}
		(( fd > 2 )) && eval "exec $fd>&-"
	done 2>/dev/null
	exec "$@" </dev/null >/dev/null 2>&1
}
spawn() {
	if [[ $1 == --tty ]]; then
		shift
		spawned_child "$@" &
	else
		spawned_child setsid "$@" &
	fi
	SPAWN_PID=$!
}

# helper NAME: the path of a helper test program (sets HELPER).
helper() {
	HELPER=$PROGS_DIR/$1
	[[ -x $HELPER ]] || die "test program $HELPER not found (set CR_PROGS_DIR)"
}

# new_run NAME: a fresh run directory under W for the next program.
new_run() {
	D=$W/$1
	IMG=$D/img
	mkdir -p "$D"
	ROOT="" BGPID="" EXE="" COMM=""
}

# start_cmd CMD...: spawn and wait for $D/ready; sets ROOT BGPID EXE COMM.
start_cmd() {
	spawn "$@"
	BGPID=$SPAWN_PID
	wait_until 20 test -s "$D/ready" ||
		die "$(basename "$1") did not write $D/ready within 20 s (state $(state_of "$BGPID"))"
	ROOT=$(tr -dc '0-9' <"$D/ready")
	[[ $ROOT == "$BGPID" ]] || log "note: root pid $ROOT differs from the spawned pid $BGPID"
	EXE=$(readlink "/proc/$ROOT/exe")
	COMM=$(cat "/proc/$ROOT/comm")
	sleep 0.1 # let it settle in its wait loop
	log "started $(basename "$1") as pid $ROOT ($COMM) in $D"
}
start_prog() { start_cmd "$1" "$D"; }

# run_cryo NAME ARGS...: cryo in the foreground with a timeout; sets RC.
CRYO_TIMEOUT=90
run_cryo() {
	local name=$1
	shift
	log "cryo $*"
	timeout -k 5 "$CRYO_TIMEOUT" "$CRYO" "$@" >"$D/$name.stdout" 2>"$D/$name.stderr"
	RC=$?
	(( RC == 124 || RC == 137 )) && log "cryo $1 timed out after $CRYO_TIMEOUT s"
	return 0
}
msg_of() { head -c 800 "$D/$1.stderr" | tr '\n' ' '; }

dump() { # NAME [ARGS]: dump ROOT into IMG
	local name=$1
	shift
	mkdir -p "$IMG"
	run_cryo "$name" dump -t "$ROOT" -D "$IMG" -o "$D/$name.log" -v4 "${OPTS[@]}" "$@"
}

check_images() {
	local f p need=(inventory.img pstree.img files.img stats-dump)
	for p in $(test_pids); do
		need+=("core-$p.img" "mm-$p.img" "pagemap-$p.img" "fs-$p.img" "ids-$p.img")
	done
	[[ -s $D/zombie ]] && need+=("core-$(tr -dc '0-9' <"$D/zombie").img")
	for f in "${need[@]}"; do
		[[ -e $IMG/$f ]] || die "image $f missing after dump (have: $(ls "$IMG" | tr '\n' ' '))"
	done
	compgen -G "$IMG/pages-*.img" >/dev/null || die "no pages-*.img after dump"
	for f in "$IMG"/*; do
		case ${f##*/} in pages-*.img | tmpfs-dev-*.tar.gz.img) continue ;; esac
		# files.img is kept for check_ns_ids.
		"$CRIT" decode -i "$f" --pretty >"$D/${f##*/}.json" 2>"$D/crit.err" ||
			die "crit cannot decode ${f##*/}: $(tail -n 3 "$D/crit.err" | tr '\n' ' ')"
		[[ ${f##*/} == files.img ]] || rm -f "$D/${f##*/}.json"
	done
	rm -f "$D/crit.err"
	log "images present and decodable by crit ($(ls "$IMG" | wc -l) files)"
	check_ns_ids
}

# A namespace file's entry names its namespace by the id the tasks' ids-PID.img give it
# (CRIU's namespace ids), not by the namespace's inode.
check_ns_ids() {
	local f
	if grep -q '"nsf"' "$D/files.img.json"; then
		for f in "$IMG"/ids-*.img; do
			"$CRIT" decode -i "$f" -o "$D/${f##*/}.json" || die "crit decode of ${f##*/} failed"
		done
		/usr/bin/python3 - "$D/files.img.json" "$D"/ids-*.img.json <<-'EOF' || die "namespace ids of NS files differ from ids-PID.img"
			import json, sys
			kinds = {0x40000000: "net", 0x04000000: "uts", 0x08000000: "ipc", 0x20000000: "pid",
			         0x00020000: "mnt", 0x10000000: "user", 0x02000000: "cgroup", 0x80: "time"}
			ids = [json.load(open(p))["entries"][0] for p in sys.argv[2:]]
			bad = 0
			for f in json.load(open(sys.argv[1]))["entries"]:
			    if "nsf" not in f:
			        continue
			    n = f["nsf"]
			    kind = kinds.get(int(n["ns_cflag"]))
			    known = sorted({i.get(f"{kind}_ns_id") for i in ids} - {None})
			    if kind is None or int(n["ns_id"]) not in known:
			        print(f"file {n['id']}: {kind} namespace id {n['ns_id']}, ids-PID.img have {known}")
			        bad += 1
			sys.exit(1 if bad else 0)
		EOF
		log "NS files name their namespaces by the ids of ids-PID.img"
		rm -f "$D"/ids-*.img.json
	fi
	rm -f "$D/files.img.json"
}

dump_ok() { # NAME [ARGS]
	dump "$@"
	(( RC == 0 )) || die "cryo dump ${*:2} exited $RC: $(msg_of "$1")"
	check_images
}

# After a killing dump: every process of the tree is gone; reap our child.
check_tree_gone() {
	local p
	for p in $(test_pids); do
		wait_until 5 is_gone "$p" ||
			die "pid $p still exists (state $(state_of "$p")) 5 s after cryo dump returned"
	done
	[[ -n $BGPID ]] && { wait "$BGPID" 2>/dev/null || true; }
}

check_tree_running() { # WHEN
	local p
	for p in $(test_pids); do
		is_running "$p" || die "$1: pid $p is not running (state $(state_of "$p"))"
	done
}

usr1_ready() { # the root exists with its own exe and SIGUSR1 caught or ignored
	[[ $(readlink "/proc/$ROOT/exe" 2>/dev/null) == "$EXE" ]] || return 1
	local cgt ign
	cgt=$(awk '/^SigCgt:/ {print $2}' "/proc/$ROOT/status" 2>/dev/null)
	ign=$(awk '/^SigIgn:/ {print $2}' "/proc/$ROOT/status" 2>/dev/null)
	[[ -n $cgt && -n $ign ]] || return 1
	(( (0x${cgt: -4} | 0x${ign: -4}) & 0x200 ))
}
usr1_ready_or_done() { usr1_ready || is_gone "$ROOT" || [[ -e $D/result ]]; }
send_usr1() {
	(( SEND_USR1 )) || return 0
	wait_until 10 usr1_ready_or_done ||
		die "root $ROOT never got its SIGUSR1 disposition back (state $(state_of "$ROOT"))"
	usr1_ready && kill -USR1 "$ROOT" 2>/dev/null
	return 0
}

check_result() { # WHAT
	[[ -e $D/result ]] || die "$1: the program wrote no result"
	[[ $(<"$D/result") == PASS ]] || die "$1: the program reported: $(cat "$D/result")"
}

check_stats_restore() {
	[[ -e $IMG/stats-restore ]] || die "no stats-restore image after restore"
	"$CRIT" decode -i "$IMG/stats-restore" --pretty >/dev/null 2>"$D/crit.err" ||
		die "crit cannot decode stats-restore"
	rm -f "$D/crit.err"
}

# Touch go in the ORIGINAL tree, let it check itself and exit 0 with PASS.
finish_original() { # WHAT
	touch "$D/go"
	send_usr1
	wait_until 30 is_gone "$ROOT" || die "$1: the original did not finish within 30 s after go (state $(state_of "$ROOT"))"
	local rc=0
	if [[ $BGPID == "$ROOT" ]]; then
		wait "$BGPID"
		rc=$?
	fi
	[[ -e $D/result ]] || die "$1: the original wrote no result (exit status $rc)"
	[[ $(<"$D/result") == PASS ]] || die "$1: the original reported: $(cat "$D/result")"
	(( rc == 0 )) || die "$1: the original exited with status $rc"
	log "$1: the original passed its checks"
}

# cryo restore (no -d) in the background: it waits for the root and exits
# with its status. Touch go, poke SIGUSR1, expect 0 and PASS.
restore_fg() { # [ARGS]
	rm -f "$D/result" "$D/go"
	log "cryo restore -D $IMG $*"
	"$CRYO" restore -D "$IMG" -o "$D/restore.log" -v4 "${OPTS[@]}" "$@" >"$D/restore.stdout" 2>"$D/restore.stderr" &
	local rpid=$! sent=0 end=$(( $(now_ms) + 30000 ))
	HELPERS+=("$rpid")
	touch "$D/go"
	while ! is_gone "$rpid"; do
		if (( SEND_USR1 && !sent )) && usr1_ready; then
			kill -USR1 "$ROOT" 2>/dev/null
			sent=1
		fi
		(( $(now_ms) < end )) || die "cryo restore did not exit within 30 s (root $ROOT state $(state_of "$ROOT"))"
		sleep 0.05
	done
	wait "$rpid"
	local rc=$?
	if (( rc != 0 )); then
		local why="exit status $rc"
		(( rc > 128 )) && why+=" (the root died by signal $((rc - 128))?)"
		[[ -e $D/result ]] && why+="; program result: $(cat "$D/result")"
		die "cryo restore: $why; stderr: $(msg_of restore)"
	fi
	check_result "after restore"
	check_stats_restore
	log "restored tree passed its checks"
}

# cryo restore -d must succeed and write the original root's pid to its pidfile.
restore_detached_ok() {
	rm -f "$D/pidfile"
	run_cryo restore restore -d --pidfile "$D/pidfile" -D "$IMG" -o "$D/restore.log" -v4 "${OPTS[@]}"
	(( RC == 0 )) || die "cryo restore -d exited $RC: $(msg_of restore)"
	[[ -s $D/pidfile ]] || die "cryo restore -d wrote no pidfile"
	local p
	p=$(tr -dc '0-9' <"$D/pidfile")
	[[ $p == "$ROOT" ]] || die "pidfile holds $p, expected the original pid $ROOT"
	local mode
	mode=$(stat -c %a "$D/pidfile")
	[[ $mode == 600 ]] || die "the pidfile has mode $mode, expected 600"
}

restore_detached() {
	rm -f "$D/result" "$D/go"
	restore_detached_ok
	check_tree_running "after cryo restore -d"
	[[ $(readlink "/proc/$ROOT/exe") == "$EXE" ]] || die "restored pid $ROOT runs $(readlink "/proc/$ROOT/exe"), expected $EXE"
	touch "$D/go"
	send_usr1
	wait_until 30 test -e "$D/result" || die "restored tree wrote no result within 30 s after go (root state $(state_of "$ROOT"))"
	check_result "after restore -d"
	wait_until 10 is_gone "$ROOT" || die "restored root still alive 10 s after writing its result"
	check_stats_restore
	log "restored tree passed its checks"
}

expect_fail() { # NAME WHAT: the last run_cryo failed cleanly with a message
	(( RC != 0 )) || die "$2: expected a failure, cryo exited 0"
	(( RC != 124 && RC != 137 )) || die "$2: cryo timed out"
	(( RC < 128 )) || die "$2: cryo died by signal $((RC - 128))"
	[[ -s $D/$1.stderr ]] || die "$2: cryo failed ($RC) without a message on stderr"
	log "$2: cryo failed as expected ($RC): $(msg_of "$1")"
}
expect_msg() { # NAME WHAT WORD...: each WORD appears in stderr (case-insensitive)
	local n=$1 what=$2 w
	shift 2
	for w in "$@"; do
		grep -qiF -- "$w" "$D/$n.stderr" ||
			die "$what: the message does not mention \"$w\": $(msg_of "$n")"
	done
}

# ---------------------------------------------------------------- flavors

flavor_restore() {
	start_prog "$PROG"
	dump_ok dump
	check_tree_gone
	restore_fg
}

flavor_restore_detached() {
	start_prog "$PROG"
	dump_ok dump
	check_tree_gone
	restore_detached
}

flavor_leave_running() {
	start_prog "$PROG"
	dump_ok dump -R
	check_tree_running "after cryo dump -R"
	finish_original "leave-running"
	rm -f "$D/result" "$D/go"
	wait_until 10 is_gone "$ROOT" || die "pid $ROOT not released"
	restore_fg
}

# cryo restore (no -d) exits with 128+signo when the restored root dies by a signal.
flavor_exit_status() {
	start_prog "$PROG"
	dump_ok dump
	check_tree_gone
	log "cryo restore -D $IMG (then SIGTERM to the restored root)"
	"$CRYO" restore -D "$IMG" -o "$D/restore.log" -v4 "${OPTS[@]}" >"$D/restore.stdout" 2>"$D/restore.stderr" &
	local rpid=$!
	HELPERS+=("$rpid")
	wait_until 30 usr1_ready || die "the restored root $ROOT did not come up within 30 s (state $(state_of "$ROOT"))"
	kill -TERM "$ROOT"
	wait_until 30 is_gone "$rpid" || die "cryo restore did not exit within 30 s after its root got SIGTERM"
	wait "$rpid"
	local rc=$?
	(( rc == 128 + 15 )) || die "cryo restore exited $rc after its root died by SIGTERM, expected 143: $(msg_of restore)"
	log "cryo restore exited 143 after the root died by SIGTERM"
}

flavor_shell_job() {
	spawn --tty script -qfec "$PROG $D" "$D/typescript1"
	local spid=$SPAWN_PID
	HELPERS+=("$spid")
	wait_until 20 test -s "$D/ready" || die "$PROG under script(1) did not write ready"
	ROOT=$(tr -dc '0-9' <"$D/ready")
	EXE=$(readlink "/proc/$ROOT/exe")
	sleep 0.1
	log "started $(basename "$PROG") on a terminal as pid $ROOT"

	dump dump-no-j
	expect_fail dump-no-j "dump of a terminal job without -j"
	expect_msg dump-no-j "dump without -j" --shell-job
	check_tree_running "after the refused dump"

	rm -rf "$IMG"
	dump_ok dump -j
	[[ -e $IMG/tty-info.img ]] || die "no tty-info.img after dump -j of a terminal job"
	wait_until 5 is_gone "$ROOT" || die "pid $ROOT still exists after dump -j"
	wait_until 10 is_gone "$spid" || die "script(1) did not exit after its job was dumped (state $(state_of "$spid"))"
	wait "$spid" 2>/dev/null

	run_cryo restore-no-j restore -D "$IMG" -o "$D/restore-no-j.log" -v4
	expect_fail restore-no-j "restore of a terminal job without -j"
	expect_msg restore-no-j "restore without -j" --shell-job
	wait_until 5 is_gone "$ROOT" || die "pid $ROOT exists after the refused restore (state $(state_of "$ROOT"))"

	log "script -c 'cryo restore -j -D $IMG'"
	spawn --tty script -qfec "$CRYO restore -j -D $IMG -o $D/restore.log -v4" "$D/typescript2"
	spid=$SPAWN_PID
	HELPERS+=("$spid")
	touch "$D/go"
	wait_until 30 is_gone "$spid" || die "cryo restore -j under script(1) did not finish within 30 s (root state $(state_of "$ROOT"))"
	wait "$spid"
	local rc=$?
	grep -q after-restore-OK "$D/typescript2" || die "the restored job's output is not on the new terminal (typescript2)"
	check_result "after restore -j"
	(( rc == 0 )) || die "script -e 'cryo restore -j' exited $rc"
	check_stats_restore
}

demo_pipeline() {
	# producer | filter | consumer, checkpointed mid-stream: no line is lost or repeated.
	SEND_USR1=0
	spawn sh -c "i=0; while :; do i=\$((i+1)); echo \$i; sleep 0.01; done | grep --line-buffered -v x | while read l; do echo \$l >> $D/seen; done"
	ROOT=$SPAWN_PID BGPID=$SPAWN_PID
	echo "$ROOT" >"$D/ready"
	lines() { wc -l <"$D/seen" 2>/dev/null || echo 0; }
	at_least() { (( $(lines) >= $1 )); }
	wait_until 10 at_least 20 || die "the pipeline did not start"
	log "pipeline running as pid $ROOT, $(lines) lines"
	dump_ok dump
	check_tree_gone
	local n1
	n1=$(lines)
	restore_detached_ok
	wait_until 10 at_least $((n1 + 100)) || die "the pipeline stopped after restore at $(lines) lines"
	local kids
	kids=$(pgrep -s "$ROOT")
	kill -KILL $kids 2>/dev/null
	# Every number once, in order: the data in flight in both pipes survived.
	awk 'NR != $1 { print "line " NR " is " $1; bad = 1; exit } END { exit bad }' "$D/seen" ||
		die "lines lost or repeated across the checkpoint: $(awk 'NR != $1 { print "line " NR " is " $1; exit }' "$D/seen")"
	log "pipeline went on from $n1 to $(lines) lines, none lost or repeated"
}

demo_loop_sh() {
	SEND_USR1=0
	spawn sh -c "i=0; while :; do i=\$((i+1)); echo \$i > $D/count; sleep 0.2; done"
	ROOT=$SPAWN_PID BGPID=$SPAWN_PID
	echo "$ROOT" >"$D/ready"
	count() { cat "$D/count" 2>/dev/null; }
	count_at_least() { local c; c=$(count); [[ -n $c ]] && (( c >= $1 )); }
	wait_until 10 count_at_least 3 || die "the loop did not start counting"
	EXE=$(readlink "/proc/$ROOT/exe")
	log "loop running as pid $ROOT, count $(count)"
	dump_ok dump
	check_tree_gone
	local v1 v2
	v1=$(count)
	sleep 1
	v2=$(count)
	[[ $v1 == "$v2" ]] || die "count still changing after dump ($v1 -> $v2)"
	# (empty: the dump caught "echo > count" between truncate and write)

	restore_detached_ok
	is_running "$ROOT" || die "restored shell $ROOT not running (state $(state_of "$ROOT"))"
	[[ $(readlink "/proc/$ROOT/exe") == "$EXE" ]] || die "restored pid $ROOT runs $(readlink "/proc/$ROOT/exe")"
	local sid
	sid=$(ps -o sid= -p "$ROOT" | tr -d ' ')
	[[ $sid == "$ROOT" ]] || die "restored shell is not a session leader (sid $sid)"

	local end=$(( $(now_ms) + 5000 )) c=$v1
	while [[ $c == "$v1" || -z $c ]]; do
		(( $(now_ms) < end )) || die "count did not move within 5 s after restore (still $v1)"
		sleep 0.05
		c=$(count)
	done
	if [[ -n $v1 ]]; then
		# v1+1 first; a loaded machine may let this poll miss a 200 ms step or two.
		(( c > v1 && c <= v1 + 3 )) ||
			die "count continued at $c, expected $((v1 + 1)) (restarted or jumped?)"
	else
		v1=$((c - 1))
	fi
	has_child() { [[ -n $(cat "/proc/$ROOT/task/$ROOT/children" 2>/dev/null) ]]; }
	wait_until 3 has_child || die "restored shell $ROOT never had a child (sleep) within 3 s"
	wait_until 5 count_at_least $((v1 + 3)) || die "count stopped after restore at $(count)"
	log "count continues after restore: $v1 -> $(count)"
	local kids
	kids=$(cat "/proc/$ROOT/task/$ROOT/children" 2>/dev/null)
	kill -KILL "$ROOT" $kids 2>/dev/null
	wait_until 5 is_gone "$ROOT" || die "restored shell did not die on SIGKILL"
}

demo_script() {
	# script(1) from util-linux: a pty pair inside the tree (script holds the master and polls
	# it with a timeout; a shell runs on the slave, its controlling terminal). The shell's
	# lines keep flowing through the pty into the typescript: none lost or repeated.
	SEND_USR1=0
	command -v script >/dev/null || die "script is not installed (util-linux)"
	spawn script -q -f -c "i=0; while :; do i=\$((i+1)); echo line \$i; sleep 0.1; done; : $D" \
		"$D/typescript"
	ROOT=$SPAWN_PID BGPID=$SPAWN_PID
	echo "$ROOT" >"$D/ready"
	last() { awk '/^line /{n=$2} END{print n+0}' "$D/typescript" 2>/dev/null; }
	at_least() { (( $(last) >= $1 )); }
	wait_until 10 at_least 5 || die "script did not start writing lines"
	EXE=$(readlink "/proc/$ROOT/exe")
	dump_ok dump
	check_tree_gone
	local v1
	v1=$(last)
	restore_detached_ok
	wait_until 10 at_least $((v1 + 10)) || die "lines stopped after restore at $(last) (dumped at $v1)"
	is_running "$ROOT" || die "restored script $ROOT not running (state $(state_of "$ROOT"))"
	local bad
	bad=$(awk '/^line /{n=$2+0; if (p && n != p + 1) print p " -> " n; p=n}' "$D/typescript" | head -3)
	[[ -z $bad ]] || die "lines lost or repeated around the dump: $bad"
	log "script goes on after restore: line $v1 -> $(last)"
}

demo_redis() {
	# A real server from Debian's packages (epoll, threads, a unix socket) with an idle
	# client connected, both in the tree; the client uses its connection after restore.
	SEND_USR1=0
	command -v redis-server >/dev/null || die "redis-server is not installed (scripts/install-deps.sh)"
	start_cmd sh -c "redis-server --port 0 --unixsocket $D/redis.sock --save '' --appendonly no --dir $D --logfile $D/redis.log & exec /usr/bin/python3 -I $HERE/progs/redis_client.py $D"
	dump_ok dump
	check_tree_gone
	restore_fg
}

demo_python() {
	SEND_USR1=0
	start_cmd /usr/bin/python3 -I "$HERE/progs/dict_counter.py" "$D"
	dump_ok dump
	check_tree_gone
	restore_fg
}

# ---------------------------------------------------------------- errors

err_missing_pid() {
	ROOT=4000000
	dump dump-bigpid
	expect_fail dump-bigpid "dump -t 4000000"
	expect_msg dump-bigpid "dump -t 4000000" 4000000
	sh -c 'exit 0' &
	local p=$!
	wait "$p"
	[[ -e /proc/$p ]] && die "setup: pid $p reused already"
	ROOT=$p
	dump dump-exited
	expect_fail dump-exited "dump of the exited pid $p"
	expect_msg dump-exited "dump of the exited pid $p" "$p"
}

err_bad_option() {
	run_cryo badopt dump --no-such-option
	expect_fail badopt "cryo dump --no-such-option"
	expect_msg badopt "cryo dump --no-such-option" no-such-option
	run_cryo badcmd frobnicate
	expect_fail badcmd "cryo frobnicate"
	expect_msg badcmd "cryo frobnicate" frobnicate
	mkdir -p "$IMG"
	run_cryo notarget dump -D "$IMG"
	expect_fail notarget "cryo dump without -t"
}

err_missing_dir() {
	[[ -e /nonexistent ]] && die "setup: /nonexistent exists"
	run_cryo restore-missing restore -D /nonexistent
	expect_fail restore-missing "restore -D /nonexistent"
	expect_msg restore-missing "restore -D /nonexistent" /nonexistent
	new_run dump-missing
	helper task_state
	start_prog "$HELPER"
	run_cryo dump-missing dump -t "$ROOT" -D /nonexistent -o "$D/dump-missing.log" -v4
	expect_fail dump-missing "dump -D /nonexistent"
	expect_msg dump-missing "dump -D /nonexistent" /nonexistent
	check_tree_running "after the refused dump"
	finish_original "after dump -D /nonexistent"
}

err_occupied_pid() {
	helper memory
	start_prog "$HELPER"
	dump_ok dump -R
	check_tree_running "after dump -R"
	CRYO_TIMEOUT=60 run_cryo restore-busy restore -D "$IMG" -o "$D/restore-busy.log" -v4
	expect_fail restore-busy "restore while pid $ROOT is alive"
	expect_msg restore-busy "restore while pid $ROOT is alive" "$ROOT" "$COMM"
	check_tree_running "after the refused restore"
	finish_original "the original after the refused restore"

	# A thread's TID held by another process: refused before anything is created, naming it.
	new_run tid
	helper threads
	start_prog "$HELPER"
	local tid
	tid=$(ls "/proc/$ROOT/task" | grep -vx "$ROOT" | sort -n | tail -1)
	[[ -n $tid ]] || die "setup: the threads program has no second thread"
	dump_ok dump
	check_tree_gone
	helper pid_taker
	spawn "$HELPER" "$D" "$tid"
	HELPERS+=("$SPAWN_PID")
	wait_until 10 test -s "$D/taken" || die "setup: pid_taker could not take PID $tid"
	restore_must_fail restore-tid "restore while thread id $tid is taken" "$IMG" "PID $tid" \
		"pid_taker"
	pkill -KILL -P "$SPAWN_PID"
	kill -KILL "$SPAWN_PID"
}

# A restore that must fail with a message containing WORDs and leave no
# process of the tree behind. RESTORE_ARGS: extra options.
RESTORE_ARGS=()
restore_must_fail() { # NAME WHAT IMGDIR WORD...
	local name=$1 what=$2 dir=$3
	shift 3
	CRYO_TIMEOUT=40 run_cryo "$name" restore "${RESTORE_ARGS[@]}" -D "$dir" -o "$D/$name.log" -v4
	expect_fail "$name" "$what"
	expect_msg "$name" "$what" "$@"
	local p
	for p in $(test_pids); do
		wait_until 5 is_gone "$p" || die "$what: pid $p left behind (state $(state_of "$p"))"
	done
}

# Namespaces. A kind cryo cannot restore yet (network, IPC) is refused at dump, naming the
# kind and the task, and the tree runs on. A task of a nested pid namespace that is not its
# init cannot be the root of a dump. A restore whose PID (in cryo's namespace) of a task in a
# nested namespace is taken fails naming it, and leaves nothing behind.
err_namespaces() {
	local kind opt
	for kind in net; do
		new_run "$kind"
		helper memory
		opt=--$kind
		start_cmd unshare "$opt" "$HELPER" "$D"
		dump dump
		expect_fail dump "dump of a task in a $kind namespace of its own"
		expect_msg dump "dump of a task in a $kind namespace of its own" "$kind namespace" \
			"not supported" "task $ROOT"
		check_tree_running "after the refused dump of a $kind namespace"
		finish_original "after the refused dump of a $kind namespace"
	done

	# An IPC namespace of the tree holding objects cryo cannot dump yet (a SysV message queue
	# made by ipcmk): refused by name, the tree runs on.
	new_run ipc-objects
	helper memory
	start_cmd unshare --ipc sh -c 'ipcmk -Q >/dev/null && exec "$0" "$1"' "$HELPER" "$D"
	dump dump
	expect_fail dump "dump of an IPC namespace holding a SysV message queue"
	expect_msg dump "dump of an IPC namespace holding a SysV message queue" "IPC namespace" \
		"1 message queue" "not supported" "task $ROOT"
	check_tree_running "after the refused dump of an IPC namespace with objects"
	finish_original "after the refused dump of an IPC namespace with objects"

	new_run inner-root
	helper pidns
	start_prog "$HELPER"
	local outer_root=$ROOT
	ROOT=$(tr -dc '0-9' <"$D/ready-a")
	dump dump --shell-job
	expect_fail dump "dump rooted at a task of a nested pid namespace that is not its init"
	expect_msg dump "dump rooted at a non-init task of a pid namespace" "task $ROOT" "PID 1" \
		"init"
	ROOT=$outer_root
	check_tree_running "after the refused dump of a non-init root"
	finish_original "after the refused dump of a non-init root"

	# unshare --pid --fork twice: pid namespaces nested two deep below cryo's, each made by
	# unshare(CLONE_NEWPID) in the parent (its namespace for children): every PID at every
	# level, and each parent's namespace for children, come back.
	new_run nested
	spawn unshare --pid --fork unshare --pid --fork sleep 1000
	HELPERS+=("$SPAWN_PID")
	ROOT=$SPAWN_PID
	local p pids=() before=() k
	wait_until 5 pgrep -P "$ROOT" >/dev/null || die "setup: unshare made no child"
	pids=("$ROOT" "$(pgrep -P "$ROOT")")
	wait_until 5 pgrep -P "${pids[1]}" >/dev/null || die "setup: the inner unshare made no child"
	pids+=("$(pgrep -P "${pids[1]}")")
	wait_until 5 test "$(cat "/proc/${pids[2]}/comm")" = sleep || die "setup: no sleep inside"
	for p in "${pids[@]}"; do before+=("$(grep NSpid "/proc/$p/status")"); done
	[[ ${before[2]} =~ NSpid:[[:space:]]+${pids[2]}[[:space:]]+2[[:space:]]+1$ ]] ||
		die "setup: sleep's NSpid is '${before[2]}', expected 3 levels"
	dump_ok dump
	check_tree_gone
	run_cryo restore restore -d -D "$IMG" -o "$D/restore.log" -v4
	(( RC == 0 )) || die "restore of nested pid namespaces exited $RC: $(msg_of restore)"
	for k in 0 1 2; do
		p=${pids[$k]}
		[[ $(grep NSpid "/proc/$p/status" 2>/dev/null) == "${before[$k]}" ]] ||
			die "nested: task $p has '$(grep NSpid "/proc/$p/status" 2>/dev/null)', was '${before[$k]}'"
	done
	for k in 0 1; do
		[[ $(readlink "/proc/${pids[$k]}/ns/pid_for_children") == \
			"$(readlink "/proc/${pids[$((k + 1))]}/ns/pid")" ]] ||
			die "nested: the namespace for children of ${pids[$k]} is not its child's"
	done
	log "nested pid namespaces restored: ${before[*]}"
	kill -KILL "${pids[@]}"

	new_run taken
	helper pidns
	start_prog "$HELPER"
	local taken # the outer PID of the zombie inside: the driver's checks cover every other one
	taken=$(tr -dc '0-9' <"$D/zombie")
	dump_ok dump
	check_tree_gone
	helper pid_taker
	spawn "$HELPER" "$D" "$taken"
	HELPERS+=("$SPAWN_PID")
	wait_until 10 test -s "$D/taken" || die "setup: pid_taker could not take PID $taken"
	restore_must_fail restore-taken "restore while PID $taken (a zombie's, inside) is taken" \
		"$IMG" "PID $taken" "pid_taker"
	pkill -KILL -P "$SPAWN_PID"
	kill -KILL "$SPAWN_PID"
	wait "$SPAWN_PID" 2>/dev/null
	wait_until 10 is_gone "$taken" || die "setup: pid_taker still holds PID $taken"
	restore_fg
}

err_truncated_image() {
	helper task_state
	start_prog "$HELPER"
	dump_ok dump
	check_tree_gone
	local f pages
	pages=$(cd "$IMG" && ls pages-*.img | head -n 1)
	for f in "core-$ROOT.img" "mm-$ROOT.img" "$pages"; do
		local copy=$D/img-trunc-${f%.img}
		cp -a "$IMG" "$copy"
		local size
		size=$(stat -c %s "$copy/$f")
		truncate -s $((size / 2)) "$copy/$f"
		log "truncated $f from $size to $((size / 2)) bytes"
		restore_must_fail "restore-trunc-${f%.img}" "restore with $f truncated" "$copy" "$f"
	done
	restore_fg # the intact images still restore
}

err_corrupt_image() {
	helper task_state
	start_prog "$HELPER"
	dump_ok dump
	check_tree_gone
	local copy=$D/img-corrupt
	cp -a "$IMG" "$copy"
	printf 'GARBAGE!' | dd of="$copy/pstree.img" bs=1 count=8 conv=notrunc status=none
	restore_must_fail restore-corrupt "restore with a corrupt pstree.img" "$copy" pstree.img magic
	restore_fg
}

err_unsupported_socket() {
	helper socket_holder
	start_prog "$HELPER"
	dump dump
	expect_fail dump "dump of a process holding a socket"
	expect_msg dump "dump of a process holding a socket" socket "datagrams queued"
	grep -qF -e "$ROOT" -e "$COMM" "$D/dump.stderr" ||
		die "the message names neither the task's pid $ROOT nor its name $COMM: $(msg_of dump)"
	check_tree_running "after the refused dump"
	finish_original "after the refused dump"
}

err_inotify_deleted() {
	helper inotify_deleted
	start_prog "$HELPER"
	dump dump
	expect_fail dump "dump of an inotify watch on a deleted file"
	expect_msg dump "dump of an inotify watch on a deleted file" inotify "wd 1" deleted doomed
	grep -qF "task $ROOT fd" "$D/dump.stderr" ||
		die "the message does not name the task $ROOT and its fd: $(msg_of dump)"
	check_tree_running "after the refused dump"
	finish_original "after the refused dump"
}

# SysV shared memory. A segment the tree shares with a process outside it is refused at
# dump, and the tree runs on. A restore whose segment id is held by another segment fails
# before any process exists, names the id and its fix, and makes no segment; once the id is
# free, the restore makes the segment again (same id, key, owners) and the tree passes.
shm_exists() { awk -v id="$1" '$2 == id { found = 1 } END { exit !found }' /proc/sysvipc/shm; }
err_sysv_shm() {
	helper sysv_shm
	start_prog "$HELPER"
	local ida idb idc
	read -r ida idb idc <"$D/ids"
	mkdir -p "$D/outside"
	spawn "$HELPER" "$D/outside" attach "$ida"
	local outside=$SPAWN_PID
	HELPERS+=("$outside")
	wait_until 10 test -s "$D/outside/ready" || die "setup: no outside process attached segment $ida"
	dump dump-shared
	expect_fail dump-shared "dump of a tree sharing SysV segment $ida with another process"
	expect_msg dump-shared "dump of a tree sharing a SysV segment" "segment $ida" "outside the tree"
	check_tree_running "after the refused dump"
	kill -KILL "$outside"
	wait "$outside" 2>/dev/null

	rm -rf "$IMG"
	dump_ok dump
	check_tree_gone
	shm_exists "$ida" || die "segment A ($ida) is gone after the dump: it must outlive its tree"
	shm_exists "$idc" && die "segment C ($idc), removed while attached, outlived its tree"
	ipcrm -m "$ida"
	"$HELPER" "$D" take "$ida" || die "setup: cannot make another segment with id $ida"
	restore_must_fail restore-taken "restore while segment id $ida is another segment's" "$IMG" \
		"segment $ida" "taken" "ipcrm -m $ida"
	shm_exists "$idc" && die "the refused restore made segment C ($idc)"
	ipcrm -m "$ida"
	restore_fg
	shm_exists "$ida" && die "segment A ($ida) remains after the restored program removed it"
	return 0
}

# A tree in its own mount namespace. A ramfs in it is refused at dump, naming the mount, its
# fstype and the three options, and the tree runs on; --enable-fs ramfs dumps it. A restore
# whose root directory is gone fails before any process runs, naming it and --root, and
# leaves no build directory behind; --root with the moved directory restores the tree (the
# program checks its mount tree). A mount dumped as external needs --external at restore.
err_mount_ns() {
	helper mntns
	local yards
	yards=$(ls -d /tmp/.cryo-mnt-* 2>/dev/null | wc -l)
	export CR_MNTNS_RAMFS=1
	start_prog "$HELPER"
	unset CR_MNTNS_RAMFS
	dump dump-ramfs
	expect_fail dump-ramfs "dump of a tree holding a ramfs mount"
	expect_msg dump-ramfs "dump of a tree holding a ramfs mount" "/extra" "ramfs" \
		"--external mnt[/extra]:" "--skip-mnt /extra" "--enable-fs ramfs"
	check_tree_running "after the refused dump"
	IMG=$D/img-ext dump dump-external --external "mnt[/extra]:EXTRA" -R
	(( RC == 0 )) || die "dump with --external mnt[/extra]:EXTRA exited $RC: $(msg_of dump-external)"
	dump_ok dump --enable-fs ramfs
	check_tree_gone
	restore_must_fail restore-external "restore of an external mount without --external" \
		"$D/img-ext" "/extra" "--external mnt[EXTRA]:PATH"
	mv "$D/rootfs" "$D/rootfs.moved"
	restore_must_fail restore-noroot "restore while the root directory is gone" "$IMG" \
		"$D/rootfs" "--root"
	(( $(ls -d /tmp/.cryo-mnt-* 2>/dev/null | wc -l) == yards )) ||
		die "the failed restore left a directory /tmp/.cryo-mnt-*"
	restore_fg --root "$D/rootfs.moved"
}

# A path a dumped socket was bound to is taken by a live socket outside the tree when the
# restore comes: the restore fails naming it, leaves its socket file alone, and works once
# the path is free again.
# Open files cryo cannot give back as they were: each refusal names the cause and the fix,
# and leaves the tree running (or nothing made, for a restore).
err_file_kinds() {
	# A file whose open name was removed while another hard link keeps it: refused without
	# --link-remap, which the message names; the refused dump leaves no link behind.
	helper link_remap
	start_prog "$HELPER"
	dump dump
	expect_fail dump "dump of a file whose name was removed while another link keeps it"
	expect_msg dump "dump without --link-remap" --link-remap "$D/orig"
	check_tree_running "after the refused dump"
	compgen -G "$D/link_remap.*" >/dev/null && die "the refused dump left a link behind"
	# With it the dump works. A file that is not a log (O_WRONLY|O_APPEND) and grew since the
	# dump stops the restore; the link stays for the next try, which works once the file is
	# back to its size.
	rm -rf "$IMG"
	dump_ok dump-lr --link-remap
	check_tree_gone
	echo more >>"$D/other-name"
	restore_must_fail restore-grown "restore after the file grew" "$IMG" "changed size" link_remap.
	compgen -G "$D/link_remap.*" >/dev/null || die "the failed restore removed the link of --link-remap"
	truncate -s 10 "$D/other-name"
	restore_fg

	# A pidfd on a process outside the tree: refused, naming the process.
	new_run pidfd-outside
	helper pidfds
	touch "$D/pidfd-outside"
	start_prog "$HELPER"
	dump dump
	expect_fail dump "dump of a pidfd on a process outside the tree"
	expect_msg dump "dump of a pidfd on a process outside the tree" pidfd "not in the dumped tree" "task $ROOT fd 41"
	check_tree_running "after the refused dump"
	finish_original "after the refused dump"

	# A namespace file of a namespace the task is not in (a time namespace made for its
	# children): refused, naming the fd and the namespace.
	new_run ns-other
	helper file_kinds
	touch "$D/ns-other"
	start_prog "$HELPER"
	dump dump
	expect_fail dump "dump of a file on a namespace the task is not in"
	expect_msg dump "dump of a file on a namespace the task is not in" "task $ROOT fd 33" "time namespace"
	check_tree_running "after the refused dump"
	finish_original "after the refused dump"

	# A fanotify mark on a /proc file (a filesystem without file handles, so no path can be
	# found for the marked inode): refused, naming the group's fd and why.
	new_run fanotify-proc
	helper fanotify
	touch "$D/proc-mark"
	start_prog "$HELPER"
	dump dump
	expect_fail dump "dump of a fanotify mark on a /proc file"
	expect_msg dump "dump of a fanotify mark on a /proc file" "task $ROOT fd" "fanotify inode mark" "no path leads to it" "cannot open file handles"
	check_tree_running "after the refused dump"
	finish_original "after the refused dump"
}

err_udp_corked() {
	helper udp_corked
	start_prog "$HELPER"
	dump dump
	expect_fail dump "dump of a corked UDP socket with data pending"
	expect_msg dump "dump of a corked UDP socket" "task $ROOT" UDP_CORK "not sent yet"
	check_tree_running "after the refused dump"
	finish_original "after the refused dump"
}
err_unix_creds_outside() {
	helper unix_creds_outside
	start_prog "$HELPER"
	dump dump
	expect_fail dump "dump of a message with the credentials of a process outside the tree"
	expect_msg dump "dump of a message with outside credentials" "task $ROOT" "pid 1" "not in the dumped tree"
	check_tree_running "after the refused dump"
	finish_original "after the refused dump"
}
err_socket_path_taken() {
	helper unix_sockets
	start_prog "$HELPER"
	dump_ok dump
	check_tree_gone
	spawn /usr/bin/python3 -c 'import os, socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
path = sys.argv[1] + "/listen.sock"
if os.path.exists(path):
    os.unlink(path)  # the stale file of the dumped server, as a new server would
s.bind(path)
s.listen(1)
open(sys.argv[1] + "/taker", "w").write("ok")
time.sleep(120)' "$D"
	local taker=$SPAWN_PID
	HELPERS+=("$taker")
	wait_until 10 test -s "$D/taker" || die "setup: the outside process did not bind listen.sock"
	restore_must_fail restore-taken "restore while $D/listen.sock is bound by pid $taker" "$IMG" \
		"$D/listen.sock" "task $taker"
	[[ -S $D/listen.sock ]] || die "the failed restore removed the live socket file $D/listen.sock"
	kill -KILL "$taker"
	wait "$taker" 2>/dev/null
	restore_fg
}

# A SIGSTOP that comes while cryo runs syscalls inside a task (CRYO_FAULT=dump-stop-signal
# sends one then) is not lost: after dump -R the task is stopped; after a dump and restore,
# the restored task is stopped. Both go on after SIGCONT.
is_stopped() { [[ $(proc_state "$1") == T ]]; }
err_stop_during_dump() {
	helper memory
	start_prog "$HELPER"
	export CRYO_FAULT=dump-stop-signal
	dump_ok dump -R
	unset CRYO_FAULT
	wait_until 5 is_stopped "$ROOT" || die "the SIGSTOP sent during dump -R was lost (state $(state_of "$ROOT"))"
	kill -CONT "$ROOT"
	finish_original "after SIGCONT"

	new_run kill
	start_prog "$HELPER"
	export CRYO_FAULT=dump-stop-signal
	dump_ok dump
	unset CRYO_FAULT
	check_tree_gone
	restore_detached_ok
	wait_until 5 is_stopped "$ROOT" || die "the SIGSTOP sent during the dump did not reach the images (restored state $(state_of "$ROOT"))"
	kill -CONT "$ROOT"
	BGPID=""
	finish_original "the restored task after SIGCONT"
}

# Images asking for an oom_score_adj below what cryo may set (crit-edited: no task here can
# lower its own without CAP_SYS_RESOURCE): the restore fails saying so, leaving nothing.
err_oom_score_adj() {
	helper memory
	start_prog "$HELPER"
	dump_ok dump
	check_tree_gone
	local core=$IMG/core-$ROOT.img
	"$CRIT" decode -i "$core" -o "$D/core.json" || die "crit decode of $core failed"
	/usr/bin/python3 - "$D/core.json" <<-'PY' || die "cannot edit $D/core.json"
		import json, sys
		j = json.load(open(sys.argv[1]))
		j["entries"][0]["tc"]["oom_score_adj"] = -500
		json.dump(j, open(sys.argv[1], "w"))
	PY
	"$CRIT" encode -i "$D/core.json" -o "$core" || die "crit encode of $core failed"
	restore_must_fail restore-oom "restore of oom_score_adj -500" "$IMG" oom_score_adj -500 \
		CAP_SYS_RESOURCE
}

# ---------------------------------------------------------------- hostile images
# Images are untrusted input. An image set edited with crit (decode, a python edit of the
# JSON, encode) must be refused with one message naming the image and the field, with a
# non-zero exit, before any task is created, leaving no process and no file behind; the
# intact images still restore afterwards.

# crit_edit FILE PYTHON: runs PYTHON on the decoded FILE, its entries in `e`; num(v) reads a
# number crit writes as hex text.
crit_edit() {
	local f=$1
	"$CRIT" decode -i "$f" -o "$f.json" 2>"$D/crit.err" ||
		die "crit decode of ${f##*/} failed: $(tail -n 3 "$D/crit.err" | tr '\n' ' ')"
	/usr/bin/python3 - "$f.json" "$2" <<-'PY' || die "cannot edit ${f##*/} with: $2"
		import json, sys
		def num(v): return int(v, 0) if isinstance(v, str) else v
		j = json.load(open(sys.argv[1]))
		e = j["entries"]
		exec(sys.argv[2])
		json.dump(j, open(sys.argv[1], "w"))
	PY
	"$CRIT" encode -i "$f.json" -o "$f" 2>"$D/crit.err" ||
		die "crit encode of ${f##*/} failed: $(tail -n 3 "$D/crit.err" | tr '\n' ' ')"
	rm -f "$f.json" "$D/crit.err"
}

# crit_get FILE PYTHON-EXPRESSION: prints the expression over the decoded FILE (`e`, `num`).
crit_get() {
	"$CRIT" decode -i "$1" 2>/dev/null | /usr/bin/python3 -c '
import json, sys
def num(v): return int(v, 0) if isinstance(v, str) else v
e = json.load(sys.stdin)["entries"]
print(eval(sys.argv[1]))' "$2"
}

# hostile_copy NAME: a fresh copy of the images to edit, in $COPY.
hostile_copy() {
	COPY=$D/img-$1
	rm -rf "$COPY"
	cp -a "$IMG" "$COPY"
}

# files_snapshot: every file under D except cryo's own output of the run NAME and the copies.
files_snapshot() { # NAME
	find "$D" -path "$D/img-*" -prune -o -print | grep -vxF -e "$D/$1.log" -e "$D/$1.stdout" \
		-e "$D/$1.stderr" | sort
}

# must_refuse NAME WHAT WORD...: a restore of $COPY fails with one message holding every
# WORD, creates no task, leaves no file in D or in the copy.
must_refuse() {
	local name=$1 what=$2
	shift 2
	local before copy_before
	before=$(files_snapshot "$name")
	copy_before=$(ls -A "$COPY")
	restore_must_fail "$name" "$what" "$COPY" "$@"
	local lines
	lines=$(wc -l <"$D/$name.stderr")
	(( lines == 1 )) || die "$what: $lines lines on stderr, expected one message: $(msg_of "$name")"
	grep -q "created root task" "$D/$name.log" &&
		die "$what: refused only after creating tasks (the planner must see it)"
	[[ $(files_snapshot "$name") == "$before" ]] ||
		die "$what: the refused restore left files behind: $(diff <(echo "$before") <(files_snapshot "$name") | tr '\n' ' ')"
	[[ $(ls -A "$COPY") == "$copy_before" ]] ||
		die "$what: the refused restore wrote into the images directory: $(ls -A "$COPY" | tr '\n' ' ')"
}

err_hostile_memory() {
	helper memory
	start_prog "$HELPER"
	dump_ok dump
	check_tree_gone
	local pm=pagemap-$ROOT.img mm=mm-$ROOT.img

	# Two pagemap entries over the same pages: every page after them would shift.
	hostile_copy overlap
	local n
	n=$(crit_get "$COPY/$pm" 'len(e)')
	(( n >= 3 )) || die "setup: $pm has $n entries, two runs of pages needed"
	crit_edit "$COPY/$pm" 'e[2]["vaddr"] = e[1]["vaddr"]'
	must_refuse restore-overlap "restore with overlapping pagemap entries" "$pm" "entry 2" overlaps

	hostile_copy outside
	crit_edit "$COPY/$pm" 'e[1]["vaddr"] = hex(0x1000)'
	must_refuse restore-outside "restore with pages outside any mapping" "$pm" "entry 1" \
		"private mapping"

	hostile_copy unaligned
	crit_edit "$COPY/$mm" 'v = e[0]["vmas"][2]; v["end"] = hex(num(v["end"]) + 0x800)'
	must_refuse restore-unaligned "restore with an unaligned mapping" "$mm" "vmas[2]" "page aligned"

	hostile_copy vma-overlap
	crit_edit "$COPY/$mm" 'v = e[0]["vmas"]; v[3]["start"] = v[2]["start"]'
	must_refuse restore-vma-overlap "restore with overlapping mappings" "$mm" "vmas[3]" overlaps

	if (( $(cat /proc/sys/vm/mmap_min_addr) > 0 )); then
		hostile_copy vma-zero
		crit_edit "$COPY/$mm" 'vs = e[0]["vmas"]; vs.insert(0, dict(next(v for v in vs
		    if num(v["status"]) & 0x200), start=0, end=0x1000))  # 0x200: VMA_ANON_PRIVATE'
		must_refuse restore-vma-zero "restore with a mapping at address 0" "$mm" "vmas[0]" \
			"mmap_min_addr"
	else
		log "vm.mmap_min_addr is 0 here: a mapping at 0 is allowed, not tested"
	fi

	hostile_copy beyond
	crit_edit "$COPY/$mm" 'v = e[0]["vmas"][-2]; v["end"] = hex(0x800000000000)'
	must_refuse restore-beyond "restore with a mapping beyond user space" "$mm" "user address space"

	restore_fg # the intact images still restore
}

err_hostile_core() {
	helper task_state
	start_prog "$HELPER"
	dump_ok dump
	check_tree_gone
	local core=core-$ROOT.img

	hostile_copy uid
	crit_edit "$COPY/$core" 'e[0]["thread_core"]["creds"]["uid"] = 0xffffffff'
	must_refuse restore-uid "restore with uid -1" "$core" "creds.uid" "-1"
	hostile_copy fsgid
	crit_edit "$COPY/$core" 'e[0]["thread_core"]["creds"]["fsgid"] = 0xffffffff'
	must_refuse restore-fsgid "restore with fsgid -1" "$core" "creds.fsgid"

	hostile_copy personality
	crit_edit "$COPY/$core" 'e[0]["tc"]["personality"] = 0xffffffff'
	must_refuse restore-personality "restore with personality -1" "$core" "tc.personality"

	hostile_copy rip
	crit_edit "$COPY/$core" 'e[0]["thread_info"]["gpregs"]["ip"] = "0x0"'
	must_refuse restore-rip "restore with rip 0" "$core" "gpregs.ip"

	hostile_copy noncanonical
	crit_edit "$COPY/$core" 'e[0]["thread_info"]["gpregs"]["ip"] = "0x800000001000"'
	must_refuse restore-noncanonical "restore with a non-canonical rip" "$core" "gpregs.ip" canonical

	hostile_copy tf
	crit_edit "$COPY/$core" 'r = e[0]["thread_info"]["gpregs"]; r["flags"] = hex(num(r["flags"]) | 0x100)'
	must_refuse restore-tf "restore with the trap flag set" "$core" "gpregs.flags" TF

	hostile_copy st-space
	crit_edit "$COPY/$core" 'f = e[0]["thread_info"]["fpregs"]; f["st_space"] = f["st_space"][:16]'
	must_refuse restore-st-space "restore with a short st_space" "$core" "fpregs.st_space" 32

	hostile_copy trailing
	printf 'trailing garbage' >>"$COPY/$core"
	must_refuse restore-trailing "restore with bytes after the one entry of $core" "$core" \
		"bytes follow"

	restore_fg
}

err_hostile_files() {
	helper files
	start_prog "$HELPER"
	dump_ok dump
	check_tree_gone
	local files_id fdinfo
	files_id=$(crit_get "$IMG/ids-$ROOT.img" 'e[0]["files_id"]')
	fdinfo=fdinfo-$files_id.img

	# Two entries for one fd number: one of the files would be dropped without a word.
	hostile_copy dup-fd
	local fd0
	fd0=$(crit_get "$IMG/$fdinfo" 'e[0]["fd"]')
	crit_edit "$COPY/$fdinfo" 'e.append(dict(e[-1], fd=e[0]["fd"]))'
	must_refuse restore-dup-fd "restore with fd $fd0 listed twice" "$fdinfo" "fd $fd0" twice

	hostile_copy dup-file
	local id0
	id0=$(crit_get "$IMG/files.img" 'e[0]["id"]')
	crit_edit "$COPY/files.img" 'e.append(e[0])'
	must_refuse restore-dup-file "restore with file id $id0 listed twice" files.img "file id $id0" \
		twice

	# A regular file the tree had open is a FIFO now: opening it would block for ever.
	local path=$D/file-C
	[[ -f $path ]] || die "setup: $path is not a regular file"
	crit_get "$IMG/files.img" "[f['reg']['name'] for f in e if f.get('reg')]" | grep -qF "$path" ||
		die "setup: files.img does not name $path"
	mv "$path" "$path.saved"
	mkfifo "$path"
	COPY=$IMG
	must_refuse restore-fifo "restore with $path now a FIFO" "$path" FIFO "regular file"
	rm -f "$path"
	mv "$path.saved" "$path"

	restore_fg
}

# Data larger than its pipe: the write back would block for ever.
err_hostile_pipes() {
	helper pipes
	start_prog "$HELPER"
	dump_ok dump
	check_tree_gone
	local big
	big=$(crit_get "$IMG/pipes-data.img" 'max(x["bytes"] for x in e)')
	(( big > 4096 )) || die "setup: no pipe holds more than 4096 bytes (largest: $big)"
	hostile_copy pipe-size
	crit_edit "$COPY/pipes-data.img" '[x.update(size=4096) for x in e if x["bytes"] > 4096]'
	must_refuse restore-pipe-size "restore of $big bytes into a pipe of 4096" pipes-data.img \
		"$big bytes" 4096
	restore_fg
}

# A task in a process group led by a live process outside the tree (it left the tree when its
# parent exited): a restore could not recreate the group, so the dump refuses, naming the
# task, the group and its leader, and the tree runs on.
err_pgrp_outside() {
	helper orphan_pgrp
	start_cmd "$HELPER" "$D" outside
	local leader
	leader=$(tr -dc '0-9' <"$D/ready-outside")
	dump dump
	expect_fail dump "dump of a task in a group led from outside the tree"
	expect_msg dump "dump of a task in a group led from outside the tree" "process group $leader" \
		"led by process $leader" "outside the dumped tree"
	[[ -e $IMG/inventory.img ]] && die "the refused dump left an inventory.img"
	check_tree_running "after the refused dump"
	finish_original "after the refused dump"
}

# A child process that shares the root's address space (CLONE_VM, also with CLONE_SIGHAND)
# or fs information (CLONE_FS) would come back with its own: the dump refuses, naming both
# tasks and what they share, and the tree runs on, its sharing intact.
err_shared_clone() {
	helper shared_clone
	local mode what
	for mode in vm vm-sighand fs; do
		new_run "$mode"
		start_cmd "$HELPER" "$D" "$mode"
		what="address space"
		[[ $mode == fs ]] && what="fs information"
		dump dump
		expect_fail dump "dump of a child process sharing the root's $what ($mode)"
		expect_msg dump "dump of a child process sharing the root's $what ($mode)" \
			"shares its $what with task $ROOT" "not supported"
		[[ -e $IMG/inventory.img ]] && die "the refused dump left an inventory.img"
		check_tree_running "after the refused dump ($mode)"
		finish_original "after the refused dump ($mode)"
	done
}

err_freeze_timeout() {
	helper vfork_wait
	start_prog "$HELPER"
	local t0=$SECONDS
	dump dump --timeout 1
	expect_fail dump "dump of a task that cannot stop (vfork wait), --timeout 1"
	expect_msg dump "dump of a task that cannot stop" "did not stop" "--timeout" "$ROOT"
	(( SECONDS - t0 < 10 )) || die "the refused dump took $((SECONDS - t0)) s with --timeout 1"
	check_tree_running "after the refused dump"
	finish_original "after the refused dump"
}

# io_uring: a ring with an SQPOLL thread, the same ring with its fd closed (registered with
# the ring itself), and a ring whose worker thread blocks in a read. Their kernel threads never
# stop for ptrace: the dump must refuse at once, within --timeout, naming the task, the fd (or
# the mapping) and io_uring; the program keeps running and its ring still works.
err_io_uring() {
	helper io_uring
	local mode t0 took fd f
	for mode in sqpoll worker sqpoll-nofd; do
		new_run "$mode"
		start_cmd "$HELPER" "$D" "$mode"
		fd=""
		for f in /proc/"$ROOT"/fd/*; do
			[[ $(readlink "$f") == "anon_inode:[io_uring]" ]] && fd=${f##*/}
		done
		if [[ $mode == sqpoll-nofd ]]; then
			[[ -z $fd ]] || die "setup: $mode still has the ring open as fd $fd"
		else
			[[ -n $fd ]] || die "setup: $mode has no io_uring fd"
		fi
		t0=$(now_ms)
		CRYO_TIMEOUT=30 dump dump --timeout 2
		took=$(( $(now_ms) - t0 ))
		expect_fail dump "dump of an io_uring ring ($mode)"
		(( took < 5000 )) || die "the refused dump of $mode took $took ms with --timeout 2"
		if [[ -n $fd ]]; then
			expect_msg dump "dump of an io_uring ring ($mode)" "task $ROOT fd $fd:" \
				"io_uring" "not supported yet"
		else
			expect_msg dump "dump of an io_uring ring ($mode)" "task $ROOT:" "io_uring" mapped \
				"not supported yet"
		fi
		[[ -e $IMG/inventory.img ]] && die "the refused dump of $mode left an inventory.img"
		check_tree_running "after the refused dump of $mode"
		[[ $(awk '/^TracerPid:/ {print $2}' "/proc/$ROOT/status") == 0 ]] ||
			die "$mode: pid $ROOT is still traced after the refused dump"
		finish_original "$mode after the refused dump"
	done
}

# --pidfile is created anew (O_EXCL, mode 0600) before any process: a symlink planted there
# (to a file or dangling) or an existing file is refused, naming the path, with nothing
# restored and nothing written through the link; a restore failing later removes the pidfile
# it created. Then a restore with a fresh pidfile works (restore_detached checks mode 0600).
err_pidfile() {
	helper task_state
	start_prog "$HELPER"
	dump_ok dump
	check_tree_gone
	echo precious >"$D/target"
	ln -s "$D/target" "$D/pid-link"
	ln -s "$D/absent" "$D/pid-dangling"
	echo 12345 >"$D/pid-old"
	local case path
	for case in link:pid-link dangling:pid-dangling old:pid-old; do
		path=$D/${case#*:}
		RESTORE_ARGS=(-d --pidfile "$path")
		restore_must_fail "restore-pidfile-${case%%:*}" "restore with --pidfile $path (${case%%:*})" \
			"$IMG" "pidfile $path" "already exists" remove
	done
	RESTORE_ARGS=()
	expect_msg restore-pidfile-link "a symlink as pidfile" "symbolic link"
	[[ $(<"$D/target") == precious ]] || die "the refused restore wrote through the pidfile symlink: $(cat "$D/target")"
	[[ -L $D/pid-link && $(readlink "$D/pid-link") == "$D/target" ]] || die "the pidfile symlink was changed"
	[[ ! -e $D/absent ]] || die "the refused restore created the target of a dangling pidfile symlink"
	[[ $(<"$D/pid-old") == 12345 ]] || die "the refused restore changed the existing pidfile: $(cat "$D/pid-old")"

	# Created before the tree, removed when the restore fails after it.
	export CRYO_FAULT=restore-before-release
	RESTORE_ARGS=(-d --pidfile "$D/pid-fault")
	restore_must_fail restore-pidfile-fault "restore --pidfile with CRYO_FAULT=restore-before-release" \
		"$IMG" "fault injected"
	unset CRYO_FAULT
	RESTORE_ARGS=()
	[[ ! -e $D/pid-fault ]] || die "a failed restore left its pidfile $D/pid-fault"
	restore_detached
}

# -o FILE: never written through a symlink, never another user's file, a FIFO or a device;
# an existing log of our own is truncated and made 0600; -o - still logs to stderr.
err_log_file() {
	helper task_state
	start_prog "$HELPER"
	mkdir -p "$IMG"
	echo precious >"$D/target"
	ln -s "$D/target" "$D/link.log"
	touch "$D/other.log"
	chown 65534 "$D/other.log"
	mkfifo "$D/fifo.log"
	local name why
	for name in link other fifo; do
		case $name in
		link) why="symbolic link" ;;
		other) why="uid 65534" ;;
		fifo) why=FIFO ;;
		esac
		run_cryo "dump-$name" dump -R -t "$ROOT" -D "$IMG" -o "$D/$name.log" -v4
		expect_fail "dump-$name" "dump -o $D/$name.log ($why)"
		expect_msg "dump-$name" "dump -o $D/$name.log" "log file $D/$name.log" "$why"
		check_tree_running "after the refused dump -o $name.log"
	done
	[[ $(<"$D/target") == precious ]] || die "cryo wrote through the log symlink: $(head -c 200 "$D/target")"
	[[ -L $D/link.log ]] || die "the log symlink was replaced"
	[[ ! -s $D/other.log && $(stat -c %u "$D/other.log") == 65534 ]] || die "another user's log file was changed"
	[[ -p $D/fifo.log ]] || die "the FIFO log was replaced"

	# A relative log goes to the images directory; an old log of ours there is truncated.
	echo "OLD-LOG-LINE" >"$IMG/mine.log"
	chmod 644 "$IMG/mine.log"
	run_cryo dump-mine dump -R -t "$ROOT" -D "$IMG" -o mine.log -v4
	(( RC == 0 )) || die "dump -R -o mine.log (an old log of ours) exited $RC: $(msg_of dump-mine)"
	grep -q OLD-LOG-LINE "$IMG/mine.log" && die "the old log was not truncated"
	grep -q "froze" "$IMG/mine.log" || die "nothing logged to $IMG/mine.log"
	[[ $(stat -c %a "$IMG/mine.log") == 600 ]] || die "the log has mode $(stat -c %a "$IMG/mine.log"), expected 600"
	rm -f "$IMG/inventory.img"
	run_cryo dump-new dump -R -t "$ROOT" -D "$IMG" -o new.log -v4
	(( RC == 0 )) || die "dump -R -o new.log exited $RC: $(msg_of dump-new)"
	[[ $(stat -c %a "$IMG/new.log") == 600 ]] || die "a new log has mode $(stat -c %a "$IMG/new.log"), expected 600"
	run_cryo dump-stderr dump -R -t "$ROOT" -D "$IMG" -o - -v4
	(( RC == 0 )) || die "dump -R -o - exited $RC: $(msg_of dump-stderr)"
	grep -q "froze" "$D/dump-stderr.stderr" || die "dump -o - -v4 logged nothing to stderr"
	[[ ! -e $IMG/- ]] || die "dump -o - created a file named '-'"
	check_tree_running "after dump -R"
	finish_original "after the dumps"
}

# Who may restore what: an images directory, or an image in it, that someone other than the
# restoring user could have written is refused before any process is created, naming the
# path, owner and mode and the fix. The images are intact and restore once fixed. A dump
# into such a directory warns that its restore will be refused.
err_images_perms() {
	helper task_state
	start_prog "$HELPER"
	mkdir -p "$IMG"
	chmod 0777 "$IMG"
	dump_ok dump
	expect_msg dump "dump into a world-writable images directory" "$IMG" 0777 "restore will refuse"
	check_tree_gone
	local core=$IMG/core-$ROOT.img mm=$IMG/mm-$ROOT.img
	restore_must_fail restore-dir-777 "restore from a world-writable images directory" "$IMG" \
		"images directory $IMG" "writable by others" 0777 credentials "chmod go-w"
	chmod 0775 "$IMG"
	restore_must_fail restore-dir-775 "restore from a group-writable images directory" "$IMG" \
		"images directory $IMG" "writable by its group" 0775 "chmod go-w"
	chmod 0755 "$IMG"
	chown 65534 "$IMG"
	restore_must_fail restore-dir-owner "restore from an images directory of uid 65534" "$IMG" \
		"images directory $IMG" "not owned by uid 0" "owner uid 65534" chown
	chown 0 "$IMG"

	chown 65534 "$core"
	restore_must_fail restore-file-owner "restore with core-$ROOT.img of uid 65534" "$IMG" \
		"image $core" "not owned by uid 0" "owner uid 65534" credentials chown
	chown 0 "$core"
	chmod 0666 "$core"
	restore_must_fail restore-file-666 "restore with a world-writable core-$ROOT.img" "$IMG" \
		"image $core" "writable by others" 0666 "chmod go-w"
	chmod 0600 "$core"

	mv "$mm" "$D/mm-real.img"
	ln -s "$D/mm-real.img" "$mm"
	restore_must_fail restore-file-link "restore with mm-$ROOT.img a symlink" "$IMG" \
		"image $mm" "symbolic link"
	rm "$mm"
	mkfifo "$mm"
	restore_must_fail restore-file-fifo "restore with a FIFO as mm-$ROOT.img" "$IMG" \
		"image $mm" "not a regular file"
	rm "$mm"
	mv "$D/mm-real.img" "$mm"
	restore_fg
}

# Image temporaries (.NAME.part) and raw pages images are created anew: a symlink planted at
# their path is removed, not written through; the dump works and restores.
err_image_part_symlink() {
	helper task_state
	start_prog "$HELPER"
	mkdir -p "$IMG"
	echo precious >"$D/outside"
	local f planted=(".core-$ROOT.img.part" ".inventory.img.part" ".stats-dump.part" pages-1.img
		"fs-$ROOT.img")
	for f in "${planted[@]}"; do
		ln -s "$D/outside" "$IMG/$f"
	done
	dump_ok dump
	check_tree_gone
	[[ $(<"$D/outside") == precious ]] || die "the dump wrote through a planted symlink: $(head -c 100 "$D/outside" | cat -v)"
	for f in "${planted[@]}"; do
		[[ ! -L $IMG/$f ]] || die "the planted symlink $IMG/$f is still there"
	done
	[[ -f $IMG/core-$ROOT.img && ! -L $IMG/core-$ROOT.img ]] || die "core-$ROOT.img is not a regular file"
	[[ $(stat -c %a "$IMG/core-$ROOT.img") == 600 ]] || die "core-$ROOT.img has mode $(stat -c %a "$IMG/core-$ROOT.img"), expected 600"
	[[ $(stat -c %a "$IMG/pages-1.img") == 600 ]] || die "pages-1.img has mode $(stat -c %a "$IMG/pages-1.img"), expected 600"
	restore_fg
}

err_ghost_limit() {
	helper deleted_files
	start_prog "$HELPER"
	dump dump --ghost-limit 4K
	expect_fail dump "dump of deleted files over --ghost-limit 4K"
	expect_msg dump "dump of deleted files over --ghost-limit 4K" "ghost-limit" "deleted"
	check_tree_running "after the refused dump"
	finish_original "after the refused dump"
}

# A datagram socket connected to a socket outside the tree: refused without --ext-unix-sk,
# naming the socket, the peer's name and its holder; a stream connection to outside: refused
# even with it. The tree keeps running.
err_ext_unix_sk() {
	helper unix_ext
	start_prog "$HELPER"
	wait_until 5 test -s "$D/ready.ext-helper" || die "setup: the helper outside the tree did not start"
	local hpid
	hpid=$(tr -dc '0-9' <"$D/ready.ext-helper")
	dump dump
	expect_fail dump "dump of a socket connected outside the tree without --ext-unix-sk"
	expect_msg dump "dump without --ext-unix-sk" --ext-unix-sk "task $ROOT" ext.sock "task $hpid"
	check_tree_running "after the refused dump"
	finish_original "after the refused dump"

	# A stream connection to a server outside: refused even with --ext-unix-sk.
	new_run stream
	helper unix_ext_stream
	start_prog "$HELPER"
	wait_until 5 test -s "$D/ready.ext-helper" || die "setup: the server outside the tree did not start"
	hpid=$(tr -dc '0-9' <"$D/ready.ext-helper")
	dump dump --ext-unix-sk
	expect_fail dump "dump --ext-unix-sk of a stream connection to a server outside the tree"
	expect_msg dump "dump --ext-unix-sk of a stream connection" "task $ROOT" stream "task $hpid"
	check_tree_running "after the refused dump --ext-unix-sk"
	finish_original "after the refused dump --ext-unix-sk"
}

# Data sent on a connection still waiting in a listener's backlog: only accept() reaches
# it, so the dump is refused naming the listener; the tree keeps running, the data intact.
err_unix_inflight() {
	helper unix_inflight
	start_prog "$HELPER"
	dump dump
	expect_fail dump "dump of data sent on a connection not accepted yet"
	expect_msg dump "dump of data sent before accept" "task $ROOT" inflight.sock listening accept
	check_tree_running "after the refused dump"
	finish_original "after the refused dump"
}

err_fault_dump() {
	local fault
	for fault in dump-after-freeze dump-after-images; do
		new_run "$fault"
		helper memory
	start_prog "$HELPER"
		export CRYO_FAULT=$fault
		dump dump
		unset CRYO_FAULT
		expect_fail dump "dump with CRYO_FAULT=$fault"
		expect_msg dump "dump with CRYO_FAULT=$fault" "fault injected" "$fault"
		check_tree_running "after the failed dump ($fault)"
		finish_original "after the failed dump ($fault)"
	done
}

err_fault_restore() {
	helper tree
	start_prog "$HELPER"
	dump_ok dump
	check_tree_gone
	local spec fault z
	z=$(tr -dc '0-9' <"$D/zombie")
	for spec in restore-after-fork restore-after-memory restore-before-release \
		restore-before-release:-d; do
		fault=${spec%%:*}
		RESTORE_ARGS=()
		[[ $spec == *:* ]] && RESTORE_ARGS=("${spec#*:}")
		export CRYO_FAULT=$fault
		restore_must_fail "restore-$fault${RESTORE_ARGS[*]}" \
			"restore${RESTORE_ARGS[*]:+ ${RESTORE_ARGS[*]}} with CRYO_FAULT=$fault" "$IMG" "fault injected" "$fault"
		unset CRYO_FAULT
		wait_until 5 is_gone "$z" || die "CRYO_FAULT=$fault: the zombie's pid $z left behind (state $(state_of "$z"))"
	done
	RESTORE_ARGS=()
	restore_fg
}

err_traced() {
	helper task_state
	start_prog "$HELPER"
	helper tracer
	spawn "$HELPER" "$D" "$ROOT"
	local tpid=$SPAWN_PID
	HELPERS+=("$tpid")
	wait_until 10 test -s "$D/tracer-ready" || die "setup: the tracer did not attach"
	log "pid $ROOT is traced by $tpid"
	dump dump
	expect_fail dump "dump of a traced process"
	expect_msg dump "dump of a traced process" "$tpid"
	check_tree_running "after the refused dump (still traced)"
	kill -KILL "$tpid"
	wait "$tpid" 2>/dev/null
	finish_original "after the refused dump"
}

# A lease is refused even with -l. A tree holding file locks: refused without -l (naming the task, fd, file and lock) and left
# running with its locks; dumped with -l, its images are refused by a restore without -l;
# a restore fails naming the lock and its new holder while an outside process holds a
# conflicting lock, and succeeds once it is gone.
err_file_locks() {
	new_run lease
	echo data >"$D/leased"
	start_cmd /usr/bin/python3 -c 'import fcntl, os, sys, time
f = open(sys.argv[1] + "/leased")
fcntl.fcntl(f, fcntl.F_SETLEASE, fcntl.F_RDLCK)
open(sys.argv[1] + "/ready", "w").write(str(os.getpid()))
time.sleep(120)' "$D"
	dump dump -l
	expect_fail dump "dump of a process holding a lease"
	expect_msg dump "dump of a process holding a lease" "task $ROOT" "$D/leased" lease
	check_tree_running "after the refused dump of a lease"
	kill -KILL "$ROOT"
	wait "$ROOT" 2>/dev/null

	new_run no-l
	helper file_locks
	start_prog "$HELPER"
	dump dump
	expect_fail dump "dump of a tree holding file locks without -l"
	expect_msg dump "dump of a tree holding file locks without -l" \
		"task $ROOT" "fd 3" "$D/fa" flock --file-locks
	[[ -e $IMG/inventory.img ]] && die "the refused dump left an inventory.img"
	check_tree_running "after the refused dump"
	finish_original "after the refused dump" # its locks were all still in place

	new_run with-l
	start_prog "$HELPER"
	OPTS=(-l)
	dump_ok dump
	check_tree_gone
	[[ -s $IMG/file-locks.img ]] || die "no file-locks.img after dump -l"
	OPTS=()
	restore_must_fail restore-no-l "restore of file locks without -l" "$IMG" --file-locks "task $ROOT"

	# An outside process now holds a POSIX write lock on bytes 0..9 of fc.
	spawn /usr/bin/python3 -c 'import fcntl, sys, time
f = open(sys.argv[1] + "/fc", "r+")
fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB, 10, 0)
open(sys.argv[1] + "/holder", "w").write("ok")
time.sleep(120)' "$D"
	local holder=$SPAWN_PID
	HELPERS+=("$holder")
	wait_until 10 test -s "$D/holder" || die "setup: the outside lock holder did not lock fc"
	RESTORE_ARGS=(-l)
	restore_must_fail restore-busy "restore while pid $holder holds a conflicting lock" "$IMG" \
		"task $ROOT" "$D/fc" POSIX "bytes 0..9" "process $holder"
	RESTORE_ARGS=()
	kill -KILL "$holder"
	wait "$holder" 2>/dev/null
	OPTS=(-l)
	restore_fg
}

# ---------------------------------------------------------------- TCP connections
# PROG is tcp_outside: a client in the tree of tcp_peer, a process outside it.

# lock_left ROOT: names what of a network lock of tree ROOT is left (nothing: fails).
lock_left() {
	nft list table inet "cryo-$1" >/dev/null 2>&1 && echo "nft table inet cryo-$1"
	iptables -w 10 -n -L "cryo-$1" >/dev/null 2>&1 && echo "iptables chain cryo-$1"
	ip6tables -w 10 -n -L "cryo-$1" >/dev/null 2>&1 && echo "ip6tables chain cryo-$1"
}
check_no_lock() { # WHEN
	local left
	left=$(lock_left "$ROOT")
	[[ -z $left ]] || die "$1: the network lock is left behind: $left"
}

start_peer() {
	helper tcp_peer
	rm -f "$D/peer-port" "$D/peer-result"
	spawn "$HELPER" "$D"
	HELPERS+=("$SPAWN_PID")
	wait_until 10 test -s "$D/peer-port" || die "the outside peer tcp_peer did not listen"
}

# The peer ends once the tree closed its side (or the connection failed).
check_peer() { # WHAT EXPECTED-WORD
	wait_until 30 test -s "$D/peer-result" || die "$1: the outside peer wrote no result"
	if [[ -z ${2:-} ]]; then
		[[ $(<"$D/peer-result") == PASS ]] || die "$1: the outside peer reported: $(cat "$D/peer-result")"
	else
		grep -qi -- "$2" "$D/peer-result" || die "$1: the outside peer saw no \"$2\": $(cat "$D/peer-result")"
	fi
	log "$1: the outside peer ${2:+saw \"$2\"}${2:-passed its checks}"
}

# A connection with a peer outside the tree survives dump and restore: the lock keeps the
# peer's packets from meeting a closed port (a reset) in between, and is gone at the end.
flavor_tcp_outside() { # [LOCK METHOD]
	local method=${1:-nftables}
	start_peer
	OPTS=(--tcp-established)
	[[ -n ${1:-} ]] && OPTS+=(--network-lock "$1")
	start_prog "$PROG"
	dump_ok dump
	check_tree_gone
	[[ -e $(compgen -G "$IMG/tcp-stream-*.img" | head -n 1) ]] || die "no tcp-stream-*.img after dump"
	case $method in
	nftables) nft list table inet "cryo-$ROOT" >/dev/null 2>&1 || die "no nft table inet cryo-$ROOT between dump and restore" ;;
	iptables) iptables -w 10 -S "cryo-$ROOT" 2>/dev/null | grep -q DROP || die "no iptables chain cryo-$ROOT between dump and restore" ;;
	esac
	log "the $method lock holds between dump and restore; the peer keeps sending for 1 s"
	sleep 1
	OPTS=(--tcp-established)
	restore_fg
	check_no_lock "after restore"
	check_peer "after restore"
}

# --tcp-close: restored closed (the peer learns it), whether asked at restore or at dump.
flavor_tcp_close() {
	start_peer
	OPTS=()
	start_prog "$PROG"
	dump_ok dump --tcp-established
	check_tree_gone
	run_cryo restore restore -d -D "$IMG" -o "$D/restore.log" -v4 --tcp-close
	(( RC == 0 )) || die "cryo restore --tcp-close exited $RC: $(msg_of restore)"
	check_no_lock "after restore --tcp-close"
	ss -tnp | grep -q "pid=$ROOT," && die "restore --tcp-close: the restored process has a TCP connection: $(ss -tnp | grep "pid=$ROOT,")"
	check_tree_running "after restore --tcp-close"
	check_peer "after restore --tcp-close" reset
	kill -KILL "$ROOT"
	wait_until 10 is_gone "$ROOT" || die "the restored tree did not go"

	new_run close-at-dump
	start_peer
	start_prog "$PROG"
	dump_ok dump --tcp-close
	check_tree_gone
	[[ -z $(compgen -G "$IMG/tcp-stream-*.img") ]] || die "dump --tcp-close wrote tcp-stream images"
	"$CRIT" decode -i "$IMG/inventory.img" | grep -q '"tcp_close": true' || die "dump --tcp-close: no tcp_close in inventory.img"
	run_cryo restore restore -d -D "$IMG" -o "$D/restore.log" -v4
	(( RC == 0 )) || die "cryo restore of a --tcp-close dump exited $RC: $(msg_of restore)"
	ss -tnp | grep -q "pid=$ROOT," && die "restore of a --tcp-close dump: the restored process has a TCP connection"
	check_tree_running "after restore of a --tcp-close dump"
	kill -KILL "$ROOT"
	wait_until 10 is_gone "$ROOT" || die "the restored tree did not go"
}

# Refusals and failures leave the tree running, its connection whole, and no lock.
flavor_tcp_errors() {
	start_peer
	OPTS=()
	start_prog "$PROG"
	dump plain
	expect_fail plain "dump of an established connection without --tcp-established"
	expect_msg plain "dump without --tcp-established" --tcp-established "connected to 127.0.0.1"
	check_tree_running "after the refused dump"

	# A lock that cannot be taken: a chain of another kind holds the lock's name.
	nft add table inet "cryo-$ROOT" && nft add chain inet "cryo-$ROOT" input '{ type filter hook prerouting priority 0; }' ||
		die "setup: cannot make a conflicting nft table"
	dump lockfail --tcp-established
	expect_fail lockfail "dump whose lock cannot be taken"
	expect_msg lockfail "dump whose lock cannot be taken" nft "lock"
	check_tree_running "after the dump whose lock failed"
	# What is left is the table made here, untouched (nft's transaction made nothing).
	nft list table inet "cryo-$ROOT" | grep -qi drop && die "the failed dump left lock rules: $(nft list table inet "cryo-$ROOT")"
	nft delete table inet "cryo-$ROOT"
	check_no_lock "after the dump whose lock failed"

	# nft missing.
	log "cryo dump with a PATH without nft"
	timeout 60 env PATH=/nonexistent "$CRYO" dump -t "$ROOT" -D "$IMG" -o "$D/nonft.log" -v4 --tcp-established >"$D/nonft.stdout" 2>"$D/nonft.stderr"
	RC=$?
	expect_fail nonft "dump without nft"
	expect_msg nonft "dump without nft" nft nftables
	check_tree_running "after the dump without nft"
	check_no_lock "after the dump without nft"

	# A failure after everything was read (connections locked, in repair mode).
	CRYO_FAULT=dump-after-images dump fault --tcp-established
	expect_fail fault "dump failing at its end"
	check_tree_running "after the failed dump"
	check_no_lock "after the failed dump"

	# The images need --tcp-established (or --tcp-close) to be restored.
	OPTS=(--tcp-established)
	dump_ok dump
	check_tree_gone
	OPTS=()
	restore_must_fail restore-plain "restore without --tcp-established" "$IMG" --tcp-established
	OPTS=(--tcp-established)
	restore_fg
	check_no_lock "after restore"
	check_peer "after the refusals, dump and restore"
}

# A stop signal while the connections are locked and in repair mode: the dump stops, the
# tree and its connection go on, no lock is left.
flavor_tcp_interrupt() {
	start_peer
	OPTS=()
	start_prog "$PROG"
	log "cryo dump --tcp-established (stalled once locked), then SIGTERM"
	CRYO_FAULT=tcp-locked-stall "$CRYO" dump -t "$ROOT" -D "$IMG" -o "$D/dump.log" -v4 --tcp-established >"$D/dump.stdout" 2>"$D/dump.stderr" &
	local cpid=$!
	HELPERS+=("$cpid")
	wait_until 20 nft list table inet "cryo-$ROOT" >/dev/null 2>&1 || die "the dump took no lock within 20 s"
	sleep 0.3
	kill -TERM "$cpid"
	wait "$cpid"
	RC=$?
	expect_fail dump "dump stopped by SIGTERM"
	check_tree_running "after SIGTERM"
	check_no_lock "after SIGTERM"
	finish_original "after SIGTERM"
	check_peer "after SIGTERM"
}

# ---------------------------------------------------------------- lazy pages

listening() { ss -Hltn "sport = :$1" | grep -q .; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# cryo lazy-pages on IMG in the background (LAZY_PID), listening once this returns.
start_lazy_daemon() { # [ARGS]
	rm -f "$IMG/lazy-pages.socket"
	log "cryo lazy-pages -D $IMG $*"
	"$CRYO" lazy-pages -D "$IMG" -o "$D/lazy.log" -v4 "$@" >"$D/lazy.stdout" 2>"$D/lazy.stderr" &
	LAZY_PID=$!
	HELPERS+=("$LAZY_PID")
	wait_until 20 test -S "$IMG/lazy-pages.socket" ||
		die "the lazy-pages daemon does not listen: $(msg_of lazy)"
}

# The daemon exits 0 once every page is in, having filled some.
lazy_daemon_done() {
	wait_until 60 is_gone "$LAZY_PID" || die "the lazy-pages daemon still runs 60 s after the restore"
	wait "$LAZY_PID"
	local rc=$? filled
	(( rc == 0 )) || die "cryo lazy-pages exited $rc: $(msg_of lazy)"
	grep -q "every page is in" "$D/lazy.log" || die "the daemon's log does not say every page is in"
	filled=$(grep -o '[0-9]* pages filled' "$D/lazy.log" | grep -o '^[0-9]*')
	(( ${filled:-0} > 0 )) || die "the lazy-pages daemon filled no page"
	grep -q "handed to the lazy-pages daemon" "$D/restore.log" ||
		die "the restore's log does not say it handed its userfaultfds over"
	[[ ! -e $IMG/lazy-pages.socket ]] || die "the daemon left its socket behind"
	log "lazy-pages: $(grep -o 'every page is in.*' "$D/lazy.log")"
}

# restore --lazy-pages in the foreground: the tree checks itself while the daemon fills it
# (faults served during the post-copy).
flavor_lazy() {
	start_prog "$PROG"
	dump_ok dump
	check_tree_gone
	start_lazy_daemon
	restore_fg --lazy-pages
	lazy_daemon_done
}

# restore -d --lazy-pages; every page is in (the daemon exited) before the tree checks itself,
# most of them never touched during the post-copy.
flavor_lazy_detached() {
	start_prog "$PROG"
	dump_ok dump
	check_tree_gone
	start_lazy_daemon
	lazy_restore_detached
}

# restore -d --lazy-pages with the daemon started; once it is done, the tree checks itself
# (mappings the daemon still serves show "um" in their VmFlags: the check waits for it).
lazy_restore_detached() {
	rm -f "$D/result" "$D/go"
	run_cryo restore restore -d -D "$IMG" -o "$D/restore.log" -v4 --lazy-pages "${OPTS[@]}"
	(( RC == 0 )) || die "cryo restore -d --lazy-pages exited $RC: $(msg_of restore)"
	lazy_daemon_done
	check_tree_running "after the lazy-pages daemon exited"
	touch "$D/go"
	send_usr1
	wait_until 30 test -e "$D/result" || die "restored tree wrote no result within 30 s after go"
	check_result "after a lazy restore, the daemon gone"
	wait_until 10 is_gone "$ROOT" || die "restored root still alive 10 s after writing its result"
}

# A lazy migration: dump --lazy-pages --port serves the lazy pages from the frozen tree to
# lazy-pages --page-server, which fills the restored tree with them.
flavor_lazy_remote() {
	start_prog "$PROG"
	local port
	port=$(free_port)
	mkdir -p "$IMG"
	log "cryo dump --lazy-pages --port $port (in the background)"
	"$CRYO" dump -t "$ROOT" -D "$IMG" -o "$D/dump.log" -v4 --lazy-pages --port "$port" "${OPTS[@]}" \
		>"$D/dump.stdout" 2>"$D/dump.stderr" &
	local dpid=$!
	HELPERS+=("$dpid")
	wait_until 60 test -e "$IMG/inventory.img" || die "the lazy dump wrote no inventory: $(msg_of dump)"
	wait_until 20 listening "$port" || die "the lazy dump does not listen on $port: $(msg_of dump)"
	grep -q PE_LAZY < <("$CRIT" decode -i "$IMG/pagemap-$ROOT.img" --pretty 2>/dev/null) ||
		die "pagemap-$ROOT.img has no entry left on the source (PE_LAZY)"
	start_lazy_daemon --page-server --address 127.0.0.1 --port "$port"
	lazy_restore_detached
	wait_until 30 is_gone "$dpid" || die "the lazy dump still runs after the daemon exited"
	wait "$dpid" || die "cryo dump --lazy-pages failed: $(msg_of dump)"
	local fetched
	fetched=$(grep -o '([0-9]* fetched' "$D/lazy.log" | tr -dc '0-9')
	(( ${fetched:-0} > 0 )) || die "the daemon fetched no page from the source"
	grep -q "the daemon has them all" "$D/dump.log" || die "the dump's log does not say the daemon has every page"
}

# ---------------------------------------------------------------- main

[[ -x $CRYO ]] || die "cryo binary $1 not found"
[[ $(id -u) == 0 ]] || die "checkpoint/restore tests must run as root"
mkdir -p "$IMG"
log "cryo $CRYO, test $PROG, flavor $FLAVOR, workdir $W"
reserve_hugepages

case $FLAVOR in
restore | restore-detached | leave-running | shell-job | exit-status)
	[[ -x $PROG ]] || die "test program $PROG not found"
	case $FLAVOR in
	exit-status) flavor_exit_status ;;
	restore) flavor_restore ;;
	restore-detached) flavor_restore_detached ;;
	leave-running) flavor_leave_running ;;
	shell-job) flavor_shell_job ;;
	esac
	;;
demo)
	case $(basename "$PROG") in
	loop_sh) demo_loop_sh ;;
	script) demo_script ;;
	pipeline) demo_pipeline ;;
	python) demo_python ;;
	redis) demo_redis ;;
	*) die "unknown demo $PROG" ;;
	esac
	;;
lazy | lazy-detached | lazy-remote)
	[[ -x $PROG ]] || die "test program $PROG not found"
	"flavor_${FLAVOR//-/_}"
	;;
tcp-outside) flavor_tcp_outside ;;
tcp-outside-iptables) flavor_tcp_outside iptables ;;
tcp-close) flavor_tcp_close ;;
tcp-errors) flavor_tcp_errors ;;
tcp-interrupt) flavor_tcp_interrupt ;;
missing-pid | bad-option | missing-dir | occupied-pid | truncated-image | corrupt-image | \
	unsupported-socket | inotify-deleted | fault-dump | fault-restore | traced | ghost-limit | \
	freeze-timeout | file-locks | ext-unix-sk | unix-inflight | socket-path-taken | \
	stop-during-dump | oom-score-adj | io-uring | udp-corked | unix-creds-outside | pidfile | log-file | images-perms | \
	image-part-symlink | hostile-memory | hostile-core | hostile-files | hostile-pipes | file-kinds | \
	sysv-shm | pgrp-outside | shared-clone | mount-ns | namespaces)
	"err_${FLAVOR//-/_}"
	;;
*)
	die "unknown flavor $FLAVOR"
	;;
esac

log "PASS: $(basename "$PROG") $FLAVOR"
exit 0
