#!/bin/bash
# cgroups dumped and restored: a tree of two processes spread over two cgroups (a and b) of
# every v1 hierarchy the test can use (pids, cpu, freezer, memory below the test's own memory
# cgroup) and of the v2 hierarchy when one is mounted, with properties set (pids.max in a,
# cpu.shares in b, memory.limit_in_bytes in a).
#
#   cgroups.sh CRYO CASE
#
# CASE is one of:
#   soft     cgroups removed after the dump: the restore (default mode) makes them again with
#            their properties and puts each task back in its own; cgroup.img decodes with crit
#   modes    none, props, soft, full and strict on existing cgroups whose property was
#            changed after the dump, and on missing ones: made or refused, properties written
#            or not, as each mode says; ignore leaves the tasks in cryo's cgroups
#   root     --cgroup-root at dump (one top for a and b) and at restore (moved elsewhere)
#   freeze   --freeze-cgroup (v1 freezer, v2 cgroup.freeze): the tree is dumped and runs on,
#            the cgroup thawed after; a cgroup frozen before stays frozen; a dump failing after
#            the freeze leaves it thawed and the tree running
#   errors   --cgroup-root that cannot be made, a wrong mode, --freeze-cgroup on a missing
#            path or a cgroup the tree is not in: one clear message, exit 1, the tree runs on
#            (dump) or nothing is left (restore)
set -u
umask 022
(($# == 2)) || {
	echo "usage: $0 CRYO CASE" >&2
	exit 2
}
CRYO=$(readlink -f "$1")
CASE=$2
CRIT=/usr/bin/crit
W=$(mktemp -d "/tmp/cr-cgroups-$CASE.XXXXXX")
CG=/sys/fs/cgroup
T=cryo-test-$CASE-$$
MEMBASE=$CG/memory$(awk -F: '$2 == "memory" {print $3}' /proc/self/cgroup)
MEMBASE=${MEMBASE%/}
V2=
[[ -e $CG/unified/cgroup.procs ]] && V2=$CG/unified
DIRS=("$CG/pids/$T" "$CG/cpu/$T" "$CG/freezer/$T" "$MEMBASE/$T")
[[ -n $V2 ]] && DIRS+=("$V2/$T")
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
rmcg() { # remove the test's cgroups (their tasks gone)
	local d
	for d in "${DIRS[@]}" "$CG/pids/$T-moved"; do
		[[ -d $d ]] || continue
		[[ -f $d/freezer.state ]] && echo THAWED >"$d/freezer.state"
		find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
	done
}
cleanup_more() {
	sleep 0.2
	rmcg
}
state() { awk '{print $3}' "/proc/$1/stat" 2>/dev/null; }
# Task PID runs (sleeping in its sleep; R for a moment after cryo lets it go), untraced.
running_untraced() { [[ $(state "$1") == S && $(awk '/TracerPid/ {print $2}' "/proc/$1/status") == 0 ]]; }
runs() { wait_until 5 running_untraced "$1"; }

mkcg() {
	local d
	for d in "${DIRS[@]}"; do mkdir -p "$d/a" "$d/b" || die "cannot make $d/a and $d/b"; done
	echo 77 >"$CG/pids/$T/a/pids.max" || die "pids.max"
	echo 512 >"$CG/cpu/$T/b/cpu.shares" || die "cpu.shares"
	echo 50000000 >"$MEMBASE/$T/a/memory.limit_in_bytes" || die "memory.limit_in_bytes"
}
join() { # PID a|b: the task into that cgroup of every hierarchy
	local d
	for d in "${DIRS[@]}"; do echo "$1" >"$d/$2/cgroup.procs" || die "cannot move $1 into $d/$2"; done
}
# A root task (sleep) with one child (sleep), in cgroups a and b.
start_tree() {
	rm -f "$W/child"
	setsid bash -c "sleep 10000 & echo \$! >'$W/child'; exec sleep 10000" </dev/null >/dev/null 2>&1 &
	ROOT=$!
	PIDS+=("$ROOT")
	wait_until 5 test -s "$W/child" || die "the tree did not start"
	CHILD=$(cat "$W/child")
	PIDS+=("$CHILD")
	wait_until 5 grep -q "^sleep" "/proc/$ROOT/comm" || die "the root did not exec"
	join "$ROOT" a
	join "$CHILD" b
}
cg_of() { # PID HIERARCHY(pids, cpu, freezer, memory, unified): its path there
	if [[ $2 == unified ]]; then
		awk -F: '$1 == "0" {print $3}' "/proc/$1/cgroup"
	else
		awk -F: -v h="$2" '$2 == h {print $3}' "/proc/$1/cgroup"
	fi
}
# Both tasks alive with their PIDs, each in its own cgroup of every hierarchy (PIDS_DIR: the
# pids hierarchy's directory of the two, default $T).
check_placed() {
	local where=${1:-$T} pid want h
	for pid in "$ROOT" "$CHILD"; do
		gone "$pid" && die "task $pid is not running after the restore"
	done
	for h in pids cpu freezer memory unified; do
		[[ $h == unified && -z $V2 ]] && continue
		for pid in "$ROOT" "$CHILD"; do
			want=/$T
			[[ $h == pids ]] && want=/$where
			[[ $h == memory ]] && want=${MEMBASE#"$CG"/memory}/$T
			[[ $pid == "$ROOT" ]] && want=$want/a || want=$want/b
			[[ $(cg_of "$pid" $h) == "$want" ]] || die "task $pid is in $h cgroup $(cg_of "$pid" $h), not $want"
		done
	done
}
dump() { # ARGS...: dump the tree (killed)
	"$CRYO" dump -t "$ROOT" -D "$W/img" -v4 -o dump.log "$@" 2>"$W/dump.err" || die "dump failed: $(cat "$W/dump.err")"
	wait_until 10 gone "$ROOT" || die "the dumped tree was not killed"
	wait_until 10 gone "$CHILD" || die "the dumped child was not killed"
}
restore() { # ARGS...: restore detached; returns cryo's status
	"$CRYO" restore -D "$W/img" -d -v4 -o restore.log "$@" 2>"$W/restore.err"
}
kill_tree() {
	kill -9 "$ROOT" "$CHILD" 2>/dev/null
	wait_until 10 gone "$ROOT" && wait_until 10 gone "$CHILD" || die "the restored tree did not end"
	sleep 0.3 # PID 1 reaps lazily; cryo waits for the PIDs anyway
}
check_props() { # PIDS_MAX CPU_SHARES: the properties now
	[[ $(cat "$CG/pids/$T/a/pids.max") == "$1" ]] || die "pids.max of a is $(cat "$CG/pids/$T/a/pids.max"), not $1"
	[[ $(cat "$CG/cpu/$T/b/cpu.shares") == "$2" ]] || die "cpu.shares of b is $(cat "$CG/cpu/$T/b/cpu.shares"), not $2"
}

fresh_dump() { # a tree in fresh cgroups, dumped (ARGS: dump options)
	rmcg
	mkcg
	start_tree
	rm -rf "$W/img"
	mkdir "$W/img"
	dump "$@"
}

case $CASE in
soft)
	fresh_dump
	"$CRIT" decode -i "$W/img/cgroup.img" --pretty >"$W/cgroup.json" || die "crit cannot decode cgroup.img"
	for want in '"pids.max"' '"value": "77"' '"cpu.shares"' '"value": "512"' "\"path\": \"/$T/a\"" \
		"\"path\": \"/$T/b\"" '"name": "memory"' '"memory.limit_in_bytes"'; do
		grep -q "$want" "$W/cgroup.json" || die "cgroup.img has no $want"
	done
	[[ -z $V2 ]] || grep -q '"name": "unified"' "$W/cgroup.json" || die "cgroup.img has no v2 hierarchy"
	"$CRIT" decode -i "$W/img/core-$ROOT.img" | grep -q '"cg_set": 2' || die "the root's core has no cg_set 2"
	"$CRIT" decode -i "$W/img/core-$CHILD.img" | grep -q '"cg_set": 3' || die "the child's core has no cg_set 3"
	"$CRIT" decode -i "$W/img/inventory.img" | grep -q '"root_cg_set": 1' || die "no root_cg_set in the inventory"
	rmcg
	[[ -d $CG/pids/$T ]] && die "the test could not remove its cgroups"
	restore || die "restore failed: $(cat "$W/restore.err")"
	check_placed
	check_props 77 512
	[[ $(cat "$MEMBASE/$T/a/memory.limit_in_bytes") == 49999872 ]] || die "memory.limit_in_bytes not restored"
	log "soft: cgroups made again with their properties, tasks back in them"
	kill_tree
	# The tree in cryo's own cgroups: nothing recorded but the sets' ids.
	setsid sleep 10000 </dev/null >/dev/null 2>&1 &
	ROOT=$!
	PIDS+=("$ROOT")
	rm -rf "$W/img2"
	mkdir "$W/img2"
	"$CRYO" dump -t "$ROOT" -D "$W/img2" -o dump.log 2>"$W/dump2.err" || die "dump in cryo's cgroups: $(cat "$W/dump2.err")"
	[[ -e $W/img2/cgroup.img ]] && die "cgroup.img written for a tree in cryo's own cgroups"
	"$CRIT" decode -i "$W/img2/core-$ROOT.img" | grep -q '"cg_set": 1' || die "no cg_set 1 for a task in cryo's cgroups"
	log "soft: a tree in cryo's own cgroups writes no cgroup.img"
	;;
modes)
	fresh_dump
	for mode in none props soft full; do
		rmcg
		mkcg
		echo 55 >"$CG/pids/$T/a/pids.max"
		echo 256 >"$CG/cpu/$T/b/cpu.shares"
		restore --manage-cgroups=$mode || die "restore --manage-cgroups=$mode failed: $(cat "$W/restore.err")"
		check_placed
		case $mode in
		none | soft) check_props 55 256 ;;
		props | full) check_props 77 512 ;;
		esac
		log "$mode on existing cgroups: tasks placed, properties $(cat "$CG/pids/$T/a/pids.max")"
		kill_tree
	done
	for mode in none props; do
		rmcg
		restore --manage-cgroups=$mode && die "--manage-cgroups=$mode restored into missing cgroups"
		grep -q "does not exist: --manage-cgroups=$mode needs it" "$W/restore.err" || die "unclear error: $(cat "$W/restore.err")"
		gone "$ROOT" || die "a refused restore left task $ROOT"
		[[ -d $CG/pids/$T ]] && die "a refused restore made cgroups"
		log "$mode on missing cgroups: refused ($(head -c 150 "$W/restore.err"))"
	done
	for mode in full strict; do
		rmcg
		restore --manage-cgroups=$mode || die "restore --manage-cgroups=$mode failed: $(cat "$W/restore.err")"
		check_placed
		check_props 77 512
		log "$mode on missing cgroups: made with their properties"
		kill_tree
	done
	restore --manage-cgroups=strict && die "--manage-cgroups=strict restored into existing cgroups"
	grep -q "exists already: --manage-cgroups=strict" "$W/restore.err" || die "unclear error: $(cat "$W/restore.err")"
	gone "$ROOT" || die "a refused restore left task $ROOT"
	log "strict on existing cgroups: refused"
	rmcg
	restore --manage-cgroups=ignore || die "restore --manage-cgroups=ignore failed: $(cat "$W/restore.err")"
	[[ -d $CG/pids/$T ]] && die "--manage-cgroups=ignore made cgroups"
	[[ $(cg_of "$ROOT" pids) == $(cg_of $$ pids) && $(cg_of "$CHILD" pids) == $(cg_of $$ pids) ]] ||
		die "--manage-cgroups=ignore moved the tasks"
	log "ignore: tasks left in cryo's cgroups"
	kill_tree
	;;
root)
	# One top directory for a and b in pids: the tree's cgroup $T.
	fresh_dump --cgroup-root "pids:/$T"
	"$CRIT" decode -i "$W/img/cgroup.img" --pretty >"$W/cgroup.json" || die "crit cannot decode cgroup.img"
	grep -q "\"dir_name\": \"$T\"" "$W/cgroup.json" || die "--cgroup-root at dump: no top $T"
	rmcg
	restore --cgroup-root "pids:/$T-moved" || die "restore --cgroup-root failed: $(cat "$W/restore.err")"
	check_placed "$T-moved"
	[[ $(cat "$CG/pids/$T-moved/a/pids.max") == 77 ]] || die "pids.max not restored at the new root"
	[[ -d $CG/pids/$T ]] && die "the old pids cgroup was made too"
	log "root: pids cgroups restored below /$T-moved"
	kill_tree
	;;
freeze)
	for kind in v1 v2; do
		[[ $kind == v2 && -z $V2 ]] && continue
		rmcg
		mkcg
		start_tree
		F=$CG/freezer/$T
		[[ $kind == v2 ]] && F=$V2/$T
		rm -rf "$W/img"
		mkdir "$W/img"
		"$CRYO" dump -t "$ROOT" -D "$W/img" -R --freeze-cgroup "$F" -v4 -o dump.log 2>"$W/dump.err" ||
			die "dump --freeze-cgroup $F failed: $(cat "$W/dump.err")"
		grep -q "froze cgroup $F" "$W/img/dump.log" || die "the log does not say the cgroup froze"
		if [[ $kind == v1 ]]; then
			[[ $(cat "$F/freezer.state") == THAWED ]] || die "$F left $(cat "$F/freezer.state")"
		else
			[[ $(cat "$F/cgroup.freeze") == 0 ]] || die "$F left frozen"
		fi
		for pid in "$ROOT" "$CHILD"; do
			runs "$pid" || die "task $pid not running untraced after the dump (state $(state "$pid"))"
		done
		# The images are whole: the tree comes back from them.
		kill_tree
		rmcg
		restore || die "restore of the frozen dump failed: $(cat "$W/restore.err")"
		check_placed
		log "freeze $kind: dumped frozen, thawed after, restored"
		kill_tree
	done
	# Frozen before: left frozen (the tree ran meanwhile only for cryo).
	rmcg
	mkcg
	start_tree
	echo FROZEN >"$CG/freezer/$T/freezer.state"
	wait_until 5 grep -q FROZEN "$CG/freezer/$T/freezer.state" || die "the test cannot freeze"
	rm -rf "$W/img" && mkdir "$W/img"
	"$CRYO" dump -t "$ROOT" -D "$W/img" -R --freeze-cgroup "$CG/freezer/$T" -o dump.log 2>"$W/dump.err" ||
		die "dump of a frozen cgroup failed: $(cat "$W/dump.err")"
	[[ $(cat "$CG/freezer/$T/freezer.state") == FROZEN ]] || die "a cgroup frozen before the dump was left $(cat "$CG/freezer/$T/freezer.state")"
	echo THAWED >"$CG/freezer/$T/freezer.state"
	log "freeze: a cgroup frozen before stays frozen"
	# A dump failing once the tree is frozen: thawed, the tree runs on.
	CRYO_FAULT=dump-after-freeze "$CRYO" dump -t "$ROOT" -D "$W/img" --freeze-cgroup "$CG/freezer/$T" -o dump.log 2>"$W/dump.err" &&
		die "the injected failure did not fail the dump"
	[[ $(cat "$CG/freezer/$T/freezer.state") == THAWED ]] || die "a failed dump left the cgroup $(cat "$CG/freezer/$T/freezer.state")"
	for pid in "$ROOT" "$CHILD"; do
		runs "$pid" || die "task $pid not running after a failed dump (state $(state "$pid"))"
	done
	log "freeze: a failed dump leaves the cgroup thawed and the tree running"
	;;
errors)
	rmcg
	mkcg
	start_tree
	rm -rf "$W/img" && mkdir "$W/img"
	expect_fail() { # WHAT PATTERN ARGS...: a dump that fails with PATTERN, the tree running
		local what=$1 pattern=$2
		shift 2
		"$CRYO" dump -t "$ROOT" -D "$W/img" -o dump.log "$@" 2>"$W/err.err" && die "$what: dump succeeded"
		grep -q -- "$pattern" "$W/err.err" || die "$what: unclear error: $(cat "$W/err.err")"
		for pid in "$ROOT" "$CHILD"; do
			runs "$pid" || die "$what: task $pid not running (state $(state "$pid"))"
		done
		[[ $(cat "$CG/freezer/$T/freezer.state") == THAWED ]] || die "$what: cgroup left frozen"
		log "$what: $(head -c 200 "$W/err.err")"
	}
	expect_fail "wrong mode" "bad mode 'bogus' for --manage-cgroups" --manage-cgroups=bogus
	expect_fail "missing freezer" "no such cgroup directory" --freeze-cgroup "$CG/freezer/$T-none"
	expect_fail "not a freezer" "not a freezer cgroup" --freeze-cgroup "$CG/pids/$T"
	expect_fail "tree not in it" "is not in that cgroup" --freeze-cgroup "$CG/freezer/$T/b"
	expect_fail "relative root" "bad cgroup root" --cgroup-root "pids:$T"
	expect_fail "bad props" "cannot read" --cgroup-props '"pids": oops'
	dump --cgroup-root "pids:/$T"
	rmcg
	restore --manage-cgroups=bogus && die "restore with a wrong mode succeeded"
	grep -q "bad mode 'bogus' for --manage-cgroups" "$W/restore.err" || die "unclear error: $(cat "$W/restore.err")"
	restore --cgroup-root "pids:/cgroup.procs/x" && die "restore into a cgroup that cannot be made succeeded"
	grep -q "cannot make cgroup $CG/pids/cgroup.procs" "$W/restore.err" || die "unclear error: $(cat "$W/restore.err")"
	gone "$ROOT" || die "a failed restore left task $ROOT"
	for d in "${DIRS[@]}"; do [[ -d $d ]] && die "a failed restore left $d"; done
	log "restore: $(head -c 200 "$W/restore.err")"
	restore --cgroup-root "/$T-moved" && die "a restore moving two tops to one root succeeded"
	grep -q "separate dumped tops" "$W/restore.err" || die "unclear error: $(cat "$W/restore.err")"
	log "restore: $(head -c 250 "$W/restore.err")"
	;;
*) die "unknown case $CASE" ;;
esac
log "PASS"
