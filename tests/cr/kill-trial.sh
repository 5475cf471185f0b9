#!/bin/bash
# Kill-and-fault trial: cryo is killed or interrupted at many moments of a dump and of a
# restore of a real tree (tests/cr/progs/survivor.c: threads, a child, a pipe, MIB MiB).
#
#   kill-trial.sh CRYO PROGS_DIR [ROUNDS] [MIB]
#
# Dump rounds (cryo dump -R): ROUNDS SIGKILLs, then ROUNDS/3 stop signals:
#   - SIGKILL at the N-th ptrace stop cryo sees (CRYO_FAULT=kill-at-stop=N): every phase of
#     the freeze and of the syscalls cryo runs inside the tasks, deterministically;
#   - SIGKILL at a random moment of the dump;
#   - SIGINT, SIGTERM, SIGHUP or SIGQUIT at a random moment: cryo must exit non-zero saying
#     "interrupted" (or finish, if the signal came after the last abort point).
# After each round the tree must be running untraced, with the same memory map, and pass
# its own check (memory, registers, pipe sequence, sleeps without EINTR, signal mask).
# Restore rounds: the tree is dumped once, then each restore is killed (SIGKILL at a stop or
# at a random moment, or a stop signal): afterwards no restored process may be alive and no
# file may be left in the images directory; a final restore must bring the tree back whole.
# Prints tried / clean / lost per kind; exits non-zero if any round lost anything.
set -u
CRYO=$(readlink -f "$1")
PROGS=$(readlink -f "$2")
ROUNDS=${3:-60}
MIB=${4:-512}
W=$(mktemp -d /tmp/cr-kill-trial.XXXXXX)
IMG=$W/img
ROOT=""
RANDOM=${KILL_TRIAL_SEED:-4242}
declare -A TRIED CLEAN LOST
LOST_ANY=0

log() { echo "[$(date +%T.%3N)] $*"; }

cleanup() {
	[[ -n $ROOT ]] && touch "$W/stop" && sleep 0.1
	for p in $(pgrep -f "$W" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
	if ((LOST_ANY == 0)); then rm -rf "$W"; else log "workdir kept: $W"; fi
}
trap cleanup EXIT

wait_file() { # SECONDS FILE
	local i
	for ((i = 0; i < $1 * 50; i++)); do
		[[ -s $2 ]] && return 0
		sleep 0.02
	done
	return 1
}

# Every thread of the tree runs untraced and not stopped.
tree_free() {
	local pid t st
	for pid in $ROOT $(cat /proc/$ROOT/task/*/children 2>/dev/null); do
		for t in /proc/$pid/task/*; do
			st=$(awk '/^State:/{print $2} /^TracerPid:/{print $2}' "$t/status" 2>/dev/null | tr '\n' ' ')
			[[ $st == "R 0 " || $st == "S 0 " ]] || return 1
		done
	done
	return 0
}

CHECKS=0
# The tree is alive, untraced, with its map unchanged, and passes its own check.
check_tree() { # WHAT
	local i
	kill -0 "$ROOT" 2>/dev/null || { echo "the root $ROOT is gone ($1)"; return 1; }
	for ((i = 0; i < 250; i++)); do
		tree_free && break
		sleep 0.02
	done
	tree_free || { echo "the tree is still traced or stopped 5 s after $1"; grep -H 'State\|TracerPid' /proc/$ROOT/task/*/status; return 1; }
	if ! diff -q "$W/maps" <(cat /proc/$ROOT/maps) >/dev/null; then
		echo "the memory map of $ROOT changed after $1:"
		diff "$W/maps" /proc/$ROOT/maps | head -10
		return 1
	fi
	CHECKS=$((CHECKS + 1))
	echo "$CHECKS" >"$W/check-req"
	wait_file 20 "$W/check-$CHECKS" || { echo "no answer to check $CHECKS after $1"; return 1; }
	[[ $(cat "$W/check-$CHECKS") == PASS ]] || { echo "check failed after $1:"; cat "$W/check-$CHECKS"; return 1; }
	return 0
}

# Runs cryo with ARGS, with CRYO_FAULT=FAULT, sending it SIG after DELAY seconds (no signal
# when SIG is empty); its exit status in RC.
run_cut() { # SIG DELAY FAULT STDERR_FILE ARGS...
	local sig=$1 delay=$2 fault=$3 err=$4
	shift 4
	CRYO_FAULT=$fault "$CRYO" "$@" 2>"$err" &
	local cpid=$!
	if [[ -n $sig ]]; then
		sleep "$delay"
		kill "-$sig" "$cpid" 2>/dev/null
	fi
	{ wait "$cpid"; } 2>/dev/null
	RC=$?
}

record() { # KIND OK(0/1) MESSAGE
	TRIED[$1]=$((${TRIED[$1]:-0} + 1))
	if [[ $2 == 0 ]]; then
		CLEAN[$1]=$((${CLEAN[$1]:-0} + 1))
	else
		LOST[$1]=$((${LOST[$1]:-0} + 1))
		LOST_ANY=1
		log "LOST ($1): $3"
	fi
}

start_tree() {
	rm -f "$W"/ready "$W"/check-* "$W/stop"
	(setsid "$PROGS/survivor" "$W" "$MIB" </dev/null >"$W/survivor.out" 2>&1 &)
	wait_file 60 "$W/ready" || { log "survivor did not start"; exit 1; }
	ROOT=$(cat "$W/ready")
	sleep 0.2
	cat /proc/$ROOT/maps >"$W/maps"
}

# One dump, cut short by SIG after DELAY seconds (or by the fault in FAULT).
dump_round() { # KIND SIG DELAY FAULT
	local kind=$1 sig=$2 delay=$3 fault=$4 rc out
	rm -rf "$IMG" && mkdir "$IMG"
	run_cut "$sig" "$delay" "$fault" "$W/dump.err" dump -t "$ROOT" -D "$IMG" -R -o dump.log -v4
	rc=$RC
	out=$(check_tree "$kind (cryo exit $rc)")
	local ok=$?
	local expect=$sig
	[[ $fault == term-at-stop=* ]] && expect=TERM
	# A signal that came while cryo was still starting (before main) ends it by default.
	if [[ $expect != "" && $expect != KILL && $rc == $((128 + $(kill -l "$expect"))) && ! -s $IMG/dump.log ]]; then
		rc=0
	fi
	if ((ok == 0)) && [[ $expect != "" && $expect != KILL && $rc != 0 ]] &&
		! grep -q "interrupted by SIG$expect" "$W/dump.err"; then
		out="cryo exited $rc after SIG$expect without saying it was interrupted: $(cat "$W/dump.err")"
		ok=1
	fi
	if ((ok == 0)) && [[ $expect != "" && $expect != KILL && $rc != 0 && $(wc -l <"$W/dump.err") != 1 ]]; then
		out="more than one line on stderr after SIG$expect: $(cat "$W/dump.err")"
		ok=1
	fi
	record "$kind" $ok "$out"
	if ((ok != 0)); then
		cp -r "$IMG" "$W/lost-img-$kind-${TRIED[$kind]}" 2>/dev/null
		# Go on with a fresh tree so that one loss does not hide the others.
		touch "$W/stop"
		sleep 0.2
		kill -KILL "$ROOT" 2>/dev/null
		start_tree
	fi
}

log "kill trial: $ROUNDS dump rounds, $MIB MiB, workdir $W"
start_tree
# How long a whole dump takes, and how many ptrace stops it makes.
rm -rf "$IMG" && mkdir "$IMG"
t0=$(date +%s.%N)
"$CRYO" dump -t "$ROOT" -D "$IMG" -R -o dump.log -v4 || { log "the reference dump failed"; exit 1; }
t1=$(date +%s.%N)
DUMP_S=$(echo "$t1 - $t0" | bc)
check_tree "the reference dump" >/dev/null || { log "tree broken by a complete dump"; exit 1; }
STOPS=$(grep -c . "$IMG/dump.log")
# Count the stops: each remote syscall makes two, each probe a few more. Find the last one
# that still kills by doubling, then sample below it.
MAXSTOP=1
while CRYO_FAULT=kill-at-stop=$((MAXSTOP * 2)) "$CRYO" dump -t "$ROOT" -D "$IMG" -R -o d.log
	(($? == 137 && MAXSTOP < 100000)); do
	MAXSTOP=$((MAXSTOP * 2))
	check_tree "probe kill" >/dev/null || { log "tree broken while counting stops"; exit 1; }
done 2>/dev/null
check_tree "counting stops" >/dev/null || { log "tree broken while counting stops"; exit 1; }
log "a dump takes ${DUMP_S}s; cryo sees about $((MAXSTOP * 2)) ptrace stops"

signals=(INT TERM HUP QUIT)
for ((r = 0; r < ROUNDS + ROUNDS / 3; r++)); do
	if ((r >= ROUNDS)); then
		# a stop signal: SIGTERM at stop N, or a random signal at a random moment
		sig=${signals[$((r % 4))]}
		if ((r % 2)); then
			n=$((1 + (r - ROUNDS) * (MAXSTOP * 2) / (ROUNDS / 3 + 1)))
			dump_round sigTERM-at-stop "" 0 "term-at-stop=$n"
			continue
		fi
		if ((RANDOM % 2)); then d=$(printf '0.%03d' $((RANDOM % 60))); else
			d=$(echo "scale=3; $DUMP_S * $((RANDOM % 1000)) / 1000" | bc); fi
		dump_round "sig$sig" "$sig" "$d" ""
	elif ((r % 2 == 0)); then
		# deterministic: SIGKILL at stop N, N over the whole range
		n=$((1 + (r / 2) * (MAXSTOP * 2) / ((ROUNDS + 1) / 2)))
		dump_round kill-at-stop "" 0 "kill-at-stop=$n"
	else
		# SIGKILL at a random moment: half in the first 60 ms (freeze and task state)
		if ((RANDOM % 2)); then d=$(printf '0.%03d' $((RANDOM % 60))); else
			d=$(echo "scale=3; $DUMP_S * $((RANDOM % 1000)) / 1000" | bc); fi
		dump_round sigkill KILL "$d" ""
	fi
done

# cryo killed while a thread runs cryo's queries alone (infect/probe_batch.h): the thread
# finishes them and puts itself back, unmapping their area.
dump_round kill-in-queries "" 0 "kill-in-queries"
((RC == 137)) || { log "LOST: cryo was not killed in its queries (exit $RC): no batch ran"; LOST_ANY=1; }

# ---- restore rounds
restore_round() { # KIND SIG DELAY FAULT
	local kind=$1 sig=$2 delay=$3 fault=$4 rc out="" ok=0 i
	local before
	before=$(ls -A "$IMG" | sort)
	run_cut "$sig" "$delay" "$fault" "$W/restore.err" restore -D "$IMG" -d -o restore.log -v4
	rc=$RC
	# Killed after the release (the log says it finished): the restore is complete.
	if ((rc != 0)) && grep -q "Restore finished successfully" "$IMG/restore.log" 2>/dev/null; then
		rc=0
	fi
	if ((rc == 0)); then
		# It finished first: the tree must be whole; end it for the next round.
		ROOT=$DUMPED_ROOT
		out=$(check_tree "$kind: a restore that finished")
		ok=$?
		touch "$W/stop"
		for ((i = 0; i < 100; i++)); do kill -0 "$DUMPED_ROOT" 2>/dev/null || break; sleep 0.05; done
		rm -f "$W/stop"
		kill -KILL "$DUMPED_ROOT" 2>/dev/null
	else
		for ((i = 0; i < 100; i++)); do
			alive=""
			for p in "${DUMPED_PIDS[@]}"; do
				st=$(awk '/^State:/{print $2}' /proc/$p/status 2>/dev/null)
				[[ -n $st && $st != Z && $st != X ]] && alive="$alive $p($st)"
			done
			[[ -z $alive ]] && break
			sleep 0.05
		done
		[[ -n $alive ]] && { out="processes left alive after a killed restore:$alive"; ok=1; }
		local expect=$sig
		[[ $fault == term-at-stop=* ]] && expect=TERM
		if [[ $expect != "" && $expect != KILL ]] && ! [[ $rc == $((128 + $(kill -l "$expect"))) && ! -s $IMG/restore.log ]]; then
			if ! grep -q "interrupted by SIG$expect" "$W/restore.err" || [[ $(wc -l <"$W/restore.err") != 1 ]]; then
				out="$out restore exited $rc after SIG$expect without one line saying it was interrupted: $(cat "$W/restore.err")"
				ok=1
			fi
		fi
	fi
	rm -f "$IMG/restore.log" "$IMG/stats-restore"
	local after
	after=$(ls -A "$IMG" | sort)
	if [[ $before != "$after" ]]; then
		out="$out files left in the images directory: $(diff <(echo "$before") <(echo "$after") | grep '^>' | tr '\n' ' ')"
		ok=1
	fi
	record "$kind" $ok "$out"
}

rm -rf "$IMG" && mkdir "$IMG"
DUMPED_ROOT=$ROOT
DUMPED_PIDS=($ROOT $(cat /proc/$ROOT/task/*/children) $(ls /proc/$ROOT/task))
"$CRYO" dump -t "$ROOT" -D "$IMG" -o dump.log -v4 || { log "the dump for the restore rounds failed"; exit 1; }
rm -f "$IMG/dump.log"
RROUNDS=$((ROUNDS / 3))
t0=$(date +%s.%N)
CRYO_FAULT=restore-before-release "$CRYO" restore -D "$IMG" -d 2>/dev/null
t1=$(date +%s.%N)
REST_S=$(echo "$t1 - $t0" | bc)
for ((r = 0; r < RROUNDS; r++)); do
	case $((r % 4)) in
	0) restore_round restore-kill-at-stop "" 0 "kill-at-stop=$((1 + r * 40))" ;;
	1) restore_round restore-sigkill KILL "$(echo "scale=3; $REST_S * $((RANDOM % 1000)) / 1000" | bc)" "" ;;
	2) restore_round "restore-sig${signals[$(((r / 4) % 4))]}" "${signals[$(((r / 4) % 4))]}" \
		"$(echo "scale=3; $REST_S * $((RANDOM % 1000)) / 1000" | bc)" "" ;;
	3) restore_round restore-sigTERM-at-stop "" 0 "term-at-stop=$((1 + r * 40))" ;;
	esac
done
# Finally a restore that is left alone brings the tree back whole.
"$CRYO" restore -D "$IMG" -d -o restore.log -v4 || { log "LOST: the final restore failed"; LOST_ANY=1; }
ROOT=$DUMPED_ROOT
if out=$(check_tree "the final restore"); then :; else log "LOST: $out"; LOST_ANY=1; fi

log "results (tried / clean / lost):"
for k in $(printf '%s\n' "${!TRIED[@]}" | sort); do
	printf '  %-22s %4d %4d %4d\n' "$k" "${TRIED[$k]}" "${CLEAN[$k]:-0}" "${LOST[$k]:-0}"
done
((LOST_ANY == 0)) || { log "FAIL: something was lost"; exit 1; }
log "PASS: nothing lost"
