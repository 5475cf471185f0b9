#!/bin/bash
# Incremental dumps: chains of pre-dumps with memory change tracking (--track-mem,
# --prev-images-dir), restored through the chain.
#
#   predump.sh CRYO CASE
#
# The program is tests/cr/progs/predump.c (in $CR_PROGS_DIR): its memory changes between the
# dumps in known ways (pages written, unmapped, dropped, a new mapping where an old one was, a
# new mapping moved), and after restore it checks every page. CASE is one of:
#   chain          pre-dump, step 1, pre-dump, step 2, dump, restore: every page right; each
#                  dump writes only (about) the pages changed since the one before, the rest
#                  is marked in the parent (PE_PARENT); crit decodes every image
#   leave-running  the middle one is a dump --leave-running --track-mem: the chain goes on
#   holder-killed  the holder of the tracking is killed: the next dump writes every page (and
#                  the chain goes on from there); the restore is right
#   expired        the holder expires (CRYO_TRACK_MEM_TIMEOUT): the same
#   errors         a bad --prev-images-dir (missing, not a dump, the images dir itself) or
#                  timeout: one clear line, and the tree runs on untouched; restore of a
#                  pre-dump is refused
#   broken-chain   restore of a chain whose parent images are missing or wrong: refused with
#                  a clear message before any process is made; whole again, it restores
#   pageserver     the chain through page servers (--page-server; each server made the link
#                  to the previous one's images with --prev-images-dir): the same figures,
#                  PE_PARENT in the servers' pagemaps, the restore from the server's side
#   pageserver-errors  a server without the parent images, and a connection dropped mid
#                  pre-dump: one clear line, the tree runs on; the chain can still end well
#   corrupt-chain  restore of a chain whose parent pagemap is truncated, garbage, lists a run
#                  twice, or whose parent pages image is short: refused with one clear line,
#                  no process left; whole again, it restores
#   own-uffd       a process with a userfaultfd of its own is refused, and runs on
#   dedup          --auto-dedup punches the pages a later image holds anew out of the earlier
#                  pages-N.img (their blocks shrink by about that much, their size stays);
#                  `cryo dedup` again frees nothing more; the restore is right
set -u
umask 022
(($# == 2)) || {
	echo "usage: $0 CRYO CASE" >&2
	exit 2
}
CRYO=$(readlink -f "$1")
CASE=$2
PROG=${CR_PROGS_DIR:?CR_PROGS_DIR must name the test programs directory}/predump
CRIT=/usr/bin/crit
W=$(mktemp -d "/tmp/cr-predump-$CASE.XXXXXX")
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
holders() { # pids of live holders of this test's chains (their command line names -t PID)
	local p
	for p in $(pgrep -x cryo-memtrack); do
		[ "$(awk '/^State:/ {print $2}' /proc/$p/status 2>/dev/null)" = Z ] && continue
		tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -q -- "-t ${PID:-none} " && echo "$p"
	done
}
no_holders() { [ -z "$(holders)" ]; }
cleanup_more() {
	# Holders this test left (a failed case): they would hold the tracking for an hour.
	local p
	for p in $(holders); do kill -9 "$p"; done
}

start() { # the program in $W/w; sets PID
	mkdir -p "$W/w"
	setsid "$PROG" "$W/w" </dev/null >"$W/w/prog.out" 2>&1 &
	wait_until 10 test -e "$W/w/ready" || die "the program did not start"
	PID=$(cat "$W/w/ready")
	PIDS+=("$PID")
}
step() { # N: the program's step N, done before returning
	touch "$W/w/step$1"
	wait_until 20 test -e "$W/w/done$1" || die "step $1 not done"
	kill -0 "$PID" 2>/dev/null || die "the program died in step $1"
}
cryo() { # NAME ARGS...: runs cryo in $W, output to $W/NAME.out/.err
	local name=$1
	shift
	(cd "$W" && "$CRYO" "$@" >"$W/$name.out" 2>"$W/$name.err")
}
dump() { # NAME DIR ARGS...: pre-dump or dump into $W/DIR, -v4 log in DIR/log
	local name=$1 dir=$2
	shift 2
	mkdir -p "$W/$dir"
	cryo "$name" "$@" -t "$PID" -D "$dir" -v4 -o log --display-stats || die "$name failed: $(cat "$W/$name.err")"
}
stat_of() { # NAME FIELD: a figure of --display-stats
	awk -v k="$2" 'index($0, k ":") == 1 {print $(NF-1)}' "$W/$1.out"
}
between() { # WHAT VALUE LO HI
	(($2 >= $3 && $2 <= $4)) || die "$1 is $2, expected $3..$4"
	log "$1: $2 (expected $3..$4)"
}
# Pages the pagemap images of DIR hold themselves, and those they leave in the parent.
pagemap_counts() {
	"$CRIT" decode -i "$W/$1"/pagemap-*.img | python3 -c '
import json, sys
own = parent = 0
for e in json.load(sys.stdin)["entries"][1:]:
    f = e.get("flags", 0)
    if isinstance(f, str):
        f = (1 if "PE_PARENT" in f else 0) | (4 if "PE_PRESENT" in f else 0)
    if f & 1 or e.get("in_parent"):
        parent += e["nr_pages"]
    else:
        own += e["nr_pages"]
print(own, parent)'
}
decode_all() { # DIR: crit decodes every image
	local f
	for f in "$W/$1"/*.img "$W/$1"/stats-dump; do
		case $f in */pages-*.img) continue ;; esac
		[ -e "$f" ] || continue # a page server writes no stats
		"$CRIT" decode -i "$f" --pretty >/dev/null 2>"$W/crit.err" || die "crit cannot decode ${f#"$W"/}: $(cat "$W/crit.err")"
	done
	"$CRIT" decode -i "$W/$1"/pagemap-*.img --pretty | grep -q PE_PARENT ||
		[ "${2:-}" = noparent ] || die "crit shows no PE_PARENT entry in $1's pagemap"
}
restore_check() { # DIR: restore, release, the program's verdict
	wait_until 30 gone "$PID" || die "the dumped program is still there"
	cryo restore restore -D "$1" -d --pidfile "$W/rpid" -v4 -o rlog || die "restore failed: $(cat "$W/restore.err")"
	local rpid
	rpid=$(cat "$W/rpid")
	PIDS+=("$rpid")
	[ "$rpid" = "$PID" ] || die "restored as $rpid, not $PID"
	touch "$W/w/go"
	wait_until 30 test -e "$W/w/result" || die "no verdict from the restored program"
	grep -qx PASS "$W/w/result" || die "restored memory is wrong: $(cat "$W/w/result")"
	log "restored: $(cat "$W/w/result") ($(cat "$W"/w/notes-* 2>/dev/null))"
}

# The figures the program's steps give (see predump.c): step 1 writes ~810 pages of A, 256 of
# C, one of F; step 2 ~324 of A, 50 in A's new mapping and all 256 of the moved C, plus page
# 7. The rest (stack, libc data) is a few dozen.
FULL_MIN=8200   # everything: A (8192) and the rest
STEP1_LO=1060 STEP1_HI=1300
STEP2_LO=625 STEP2_HI=850

case $CASE in
chain)
	start
	dump pre1 1 pre-dump
	kill -0 "$PID" 2>/dev/null || die "pre-dump did not leave the tree running"
	grep -q "State:.*[RS]" /proc/$PID/status || die "the tree is not running after pre-dump"
	between "pre-dump 1 pages written" "$(stat_of pre1 'Memory pages written')" $FULL_MIN 9000
	[ -e "$W/1/cryo-memtrack" ] && [ -n "$(holders)" ] || die "no holder after pre-dump 1"
	[ -e "$W/1/pstree.img" ] && die "pre-dump wrote pstree.img (CRIU's pre-dump does not)"
	step 1
	dump pre2 2 pre-dump --prev-images-dir ../1
	[ "$(readlink "$W/2/parent")" = ../1 ] || die "2/parent is not a link to ../1"
	[ -e "$W/1/cryo-memtrack" ] && die "the tracking of 1 was not handed on"
	between "pre-dump 2 pages written" "$(stat_of pre2 'Memory pages written')" $STEP1_LO $STEP1_HI
	step 2
	dump final 3 dump --prev-images-dir ../2 --track-mem
	between "dump pages written" "$(stat_of final 'Memory pages written')" $STEP2_LO $STEP2_HI
	between "dump pages in the parent" "$(stat_of final 'Memory pages skipped from parent')" 7000 8500
	read -r own parent < <(pagemap_counts 3)
	[ "$own" = "$(stat_of final 'Memory pages written')" ] || die "pagemap holds $own pages, stats say otherwise"
	between "pagemap-PID.img of the dump: entries in the parent" "$parent" 7000 8500
	[ "$(stat -c %s "$W"/3/pages-1.img)" = $((own * 4096)) ] || die "pages-1.img is not $own pages"
	for d in 1 2 3; do decode_all $d $([ $d = 1 ] && echo noparent); done
	wait_until 10 no_holders || die "a holder is left after the final dump"
	[ -e "$W/2/cryo-memtrack" ] || [ -e "$W/3/cryo-memtrack" ] && die "a holder file is left"
	restore_check 3
	grep -q "pages from parent images (3 image(s) in the chain)" "$W/3/rlog" ||
		die "restore did not read through the chain: $(grep -i parent "$W/3/rlog")"
	;;
leave-running)
	start
	dump pre1 1 pre-dump
	step 1
	dump mid 2 dump --prev-images-dir ../1 --track-mem --leave-running
	between "dump -R pages written" "$(stat_of mid 'Memory pages written')" $STEP1_LO $STEP1_HI
	kill -0 "$PID" 2>/dev/null || die "dump --leave-running killed the tree"
	[ -e "$W/2/cryo-memtrack" ] || die "dump --leave-running --track-mem left no tracking"
	step 2
	dump final 3 dump --prev-images-dir ../2 --track-mem
	between "dump pages written" "$(stat_of final 'Memory pages written')" $STEP2_LO $STEP2_HI
	restore_check 3
	;;
holder-killed | expired)
	start
	if [ "$CASE" = expired ]; then
		CRYO_TRACK_MEM_TIMEOUT=1 dump pre1 1 pre-dump
		wait_until 10 no_holders || die "the holder did not expire"
	else
		dump pre1 1 pre-dump
		h=$(holders)
		[ -n "$h" ] || die "no holder"
		kill -9 $h
		wait_until 10 no_holders || die "the holder did not die"
	fi
	log "holder gone"
	step 1
	dump pre2 2 pre-dump --prev-images-dir ../1
	grep -q "holder process is gone" "$W/pre2.err" || die "no warning that the tracking ended: $(cat "$W/pre2.err")"
	between "pre-dump after the holder's end: pages written" "$(stat_of pre2 'Memory pages written')" $FULL_MIN 9000
	read -r own parent < <(pagemap_counts 2)
	[ "$parent" = 0 ] || die "$parent pages marked in the parent with no tracking"
	step 2
	# The chain goes on from the pre-dump that tracked anew.
	dump final 3 dump --prev-images-dir ../2 --track-mem
	between "dump pages written" "$(stat_of final 'Memory pages written')" $STEP2_LO $STEP2_HI
	restore_check 3
	;;
errors)
	start
	mkdir -p "$W/empty" "$W/4"
	one_error() { # NAME EXPECTED ARGS...
		local name=$1 want=$2
		shift 2
		cryo "$name" "$@" && die "$name: exit 0"
		[ "$(wc -l <"$W/$name.err")" = 1 ] || die "$name: not one line: $(cat "$W/$name.err")"
		grep -q -- "$want" "$W/$name.err" || die "$name: $(cat "$W/$name.err")"
		kill -0 "$PID" 2>/dev/null && grep -q "State:.*[RS]" /proc/$PID/status ||
			die "$name: the tree does not run on"
		log "$name: $(cat "$W/$name.err")"
	}
	one_error missing "--prev-images-dir ../nope: .*is not a directory" pre-dump -t "$PID" -D 4 --prev-images-dir ../nope
	one_error not-a-dump "holds no inventory.img" dump -t "$PID" -D 4 --prev-images-dir ../empty --track-mem
	one_error itself "is the images directory itself" pre-dump -t "$PID" -D 4 --prev-images-dir .
	CRYO_TRACK_MEM_TIMEOUT=soon one_error timeout "CRYO_TRACK_MEM_TIMEOUT" pre-dump -t "$PID" -D 4
	[ -z "$(holders)" ] || die "a failed pre-dump left a holder"
	[ -e "$W/4/inventory.img" ] && die "a failed pre-dump left an inventory"
	# The tree is whole: a chain made now restores right.
	dump pre1 1 pre-dump
	cryo pre-restore restore -D 1 -d && die "restore of a pre-dump succeeded"
	grep -q "holds a pre-dump (memory only): restore the final dump" "$W/pre-restore.err" ||
		die "restore of a pre-dump: $(cat "$W/pre-restore.err")"
	step 1
	step 2
	dump final 3 dump --prev-images-dir ../1
	restore_check 3
	;;
broken-chain)
	start
	dump pre1 1 pre-dump
	step 1
	dump pre2 2 pre-dump --prev-images-dir ../1
	step 2
	dump final 3 dump --prev-images-dir ../2
	wait_until 30 gone "$PID" || die "the dumped program is still there"
	mv "$W/1" "$W/1.away"
	cryo broken restore -D 3 -d && die "restore of a chain without its first images succeeded"
	grep -q "images chain is broken" "$W/broken.err" || die "broken chain: $(cat "$W/broken.err")"
	log "missing parent: $(cat "$W/broken.err")"
	gone "$PID" || die "a process was left by the failed restore"
	mkdir "$W/1"
	cp "$W/1.away/inventory.img" "$W/1/"
	cryo wrong restore -D 3 -d && die "restore with a parent lacking pages succeeded"
	grep -q "images chain is broken\|cannot open" "$W/wrong.err" || die "wrong parent: $(cat "$W/wrong.err")"
	log "parent without the pages: $(cat "$W/wrong.err")"
	rm -rf "$W/1"
	mv "$W/1.away" "$W/1"
	restore_check 3
	;;
corrupt-chain)
	# Images of the chain damaged in three ways; each restore is refused with one clear line
	# before any process is made, and the chain made whole again restores.
	start
	dump pre1 1 pre-dump
	step 1
	dump pre2 2 pre-dump --prev-images-dir ../1
	step 2
	dump final 3 dump --prev-images-dir ../2
	wait_until 30 gone "$PID" || die "the dumped program is still there"
	refused() { # NAME PATTERN: restore of 3 fails with one line matching PATTERN, no process left
		cryo "$1" restore -D 3 -d && die "$1: the restore succeeded"
		[ "$(wc -l <"$W/$1.err")" = 1 ] || die "$1: not one line: $(cat "$W/$1.err")"
		grep -qE -- "$2" "$W/$1.err" || die "$1: $(cat "$W/$1.err")"
		gone "$PID" || die "$1: a process was left by the failed restore"
		log "$1: $(cat "$W/$1.err")"
	}
	pm=pagemap-$PID.img
	cp "$W/2/$pm" "$W/pm.good"
	# A parent pagemap cut short in its last entry.
	head -c $(($(stat -c %s "$W/2/$pm") - 3)) "$W/pm.good" >"$W/2/$pm"
	refused truncated "chain is broken: in 3/parent: .*$pm is truncated"
	# A parent pagemap with garbage in place of its entries.
	{ head -c 12 "$W/pm.good"; head -c 200 /dev/urandom; } >"$W/2/$pm"
	refused garbage "chain is broken: in 3/parent: .*$pm is corrupt"
	# Entries that parse but do not make a chain: the parent's pagemap lists a run twice.
	"$CRIT" decode -i "$W/pm.good" | python3 -c '
import json, sys
img = json.load(sys.stdin)
img["entries"].insert(2, dict(img["entries"][1]))
json.dump(img, sys.stdout)' >"$W/pm.json"
	"$CRIT" encode -i "$W/pm.json" -o "$W/2/$pm" || die "crit cannot encode the doubled pagemap"
	refused overlap "3/parent/$pm.*overlaps"
	# A parent's pages image shorter than its pagemap says.
	cp "$W/pm.good" "$W/2/$pm"
	cp "$W/1/pages-1.img" "$W/pages.good"
	truncate -s 8192 "$W/1/pages-1.img"
	refused short-pages "pages-1.img is truncated.*3/parent/parent/$pm"
	cp "$W/pages.good" "$W/1/pages-1.img"
	restore_check 3
	;;
dedup)
	blocks() { stat -c %b "$W/$1"; } # 512-byte blocks allocated
	start
	dump pre1 1 pre-dump
	size1=$(stat -c %s "$W/1/pages-1.img")
	b1=$(blocks 1/pages-1.img)
	step 1
	dump pre2 2 pre-dump --prev-images-dir ../1 --auto-dedup
	written2=$(stat_of pre2 'Memory pages written')
	b1after=$(blocks 1/pages-1.img)
	# Of the pages 2 wrote, those 1 held (not C, new in step 1) are punched out of 1.
	between "pages punched out of 1 by pre-dump 2" $(((b1 - b1after) / 8)) 700 $((written2 - 200))
	[ "$(stat -c %s "$W/1/pages-1.img")" = "$size1" ] || die "dedup changed the size of 1/pages-1.img"
	step 2
	dump final 3 dump --prev-images-dir ../2 --track-mem --auto-dedup
	b1final=$(blocks 1/pages-1.img)
	b2=$(blocks 2/pages-1.img)
	cryo dedup2 dedup -D 3 -v4 -o dedup.log || die "cryo dedup failed: $(cat "$W/dedup2.err")"
	[ "$(blocks 2/pages-1.img)" = "$b2" ] && [ "$(blocks 1/pages-1.img)" = "$b1final" ] ||
		die "a second dedup punched more"
	grep -q "dedup of 3: [0-9]* pages punched" "$W/3/dedup.log" || die "dedup log: $(cat "$W/3/dedup.log")"
	cryo badrestore restore -D 3 --auto-dedup && die "restore --auto-dedup succeeded"
	grep -q "auto-dedup on restore is not supported" "$W/badrestore.err" || die "restore --auto-dedup: $(cat "$W/badrestore.err")"
	restore_check 3
	;;
pageserver)
	# The chain through page servers, one per dump, each given the previous one's directory as
	# --prev-images-dir (as CRIU's page server takes it): the pages live only in $W/srv.
	start
	ps_dump() { # NAME N ARGS...: a page server into srv/N, then the (pre-)dump N through it
		local name=$1 n=$2 port
		shift 2
		port=$(free_port)
		mkdir -p "$W/srv/$n"
		local prev=()
		((n > 1)) && prev=(--prev-images-dir ../$((n - 1)))
		"$CRYO" page-server -D "$W/srv/$n" --port "$port" "${prev[@]}" -v4 -o ps.log >"$W/ps$n.out" 2>"$W/ps$n.err" &
		local srv=$!
		PIDS+=("$srv")
		wait_until 10 listening "$port" || die "page server $n does not listen"
		dump "$name" "$n" "$@" "${prev[@]}" --page-server --address 127.0.0.1 --port "$port"
		wait_until 30 gone "$srv" || die "page server $n did not exit"
		wait "$srv" || die "page server $n failed: $(cat "$W/ps$n.err")"
		compgen -G "$W/$n/pages-*.img" >/dev/null && die "dump $n wrote pages locally"
		[ -e "$W/srv/$n/pagemap-$PID.img" ] || die "page server $n wrote no pagemap-$PID.img"
		decode_all "srv/$n" $( ((n == 1)) && echo noparent)
	}
	ps_dump pre1 1 pre-dump
	between "pre-dump 1 pages written" "$(stat_of pre1 'Memory pages written')" $FULL_MIN 9000
	[ -e "$W/1/cryo-sent-pagemap-$PID.img" ] || die "pre-dump 1 kept no record of the entries it sent"
	step 1
	ps_dump pre2 2 pre-dump
	[ "$(readlink "$W/srv/2/parent")" = ../1 ] || die "srv/2/parent is not a link to ../1"
	between "pre-dump 2 pages written" "$(stat_of pre2 'Memory pages written')" $STEP1_LO $STEP1_HI
	step 2
	# A record an older dump left where the final dump goes: removed, not taken for its own.
	mkdir -p "$W/3"
	cp "$W/1/cryo-sent-pagemap-$PID.img" "$W/3/"
	ps_dump final 3 dump
	between "dump pages written" "$(stat_of final 'Memory pages written')" $STEP2_LO $STEP2_HI
	between "dump pages in the parent" "$(stat_of final 'Memory pages skipped from parent')" 7000 8500
	read -r own parent < <(pagemap_counts srv/3)
	[ "$own" = "$(stat_of final 'Memory pages written')" ] || die "the server's pagemap holds $own pages"
	between "server's pagemap-PID.img of the dump: entries in the parent" "$parent" 7000 8500
	[ -e "$W/3/cryo-sent-pagemap-$PID.img" ] && die "a record is left in 3 (the chain ends there)"
	wait_until 10 no_holders || die "a holder is left after the final dump"
	# The other images go where the pages are (a migration copies them).
	for f in "$W"/3/*.img; do
		case $f in */cryo-sent-*) continue ;; esac
		cp "$f" "$W/srv/3/"
	done
	restore_check srv/3
	grep -q "pages from parent images (3 image(s) in the chain)" "$W/srv/3/rlog" ||
		die "restore did not read through the chain: $(grep -i parent "$W/srv/3/rlog")"
	;;
pageserver-errors)
	# The page server has no parent images: the dump continuing the chain fails, the tree runs
	# on, and the chain can go on once a server has them. A connection dropped mid pre-dump
	# fails it the same way, leaving no tracking behind.
	start
	port=$(free_port)
	mkdir -p "$W/srv/1" "$W/srv/2" "$W/srv/3"
	"$CRYO" page-server -D "$W/srv/1" --port "$port" -o ps.log >"$W/ps1.out" 2>&1 &
	PIDS+=($!)
	wait_until 10 listening "$port" || die "page server 1 does not listen"
	dump pre1 1 pre-dump --page-server --address 127.0.0.1 --port "$port"
	step 1
	port=$(free_port)
	"$CRYO" page-server -D "$W/srv/2" --port "$port" -o ps.log >"$W/ps2.out" 2>"$W/ps2.err" &
	srv=$!
	PIDS+=("$srv")
	wait_until 10 listening "$port" || die "page server 2 does not listen"
	mkdir -p "$W/2"
	cryo noparent pre-dump -t "$PID" -D 2 --prev-images-dir ../1 --page-server --address 127.0.0.1 --port "$port" &&
		die "a pre-dump leaving pages in a parent the server lacks succeeded"
	[ "$(wc -l <"$W/noparent.err")" = 1 ] || die "not one line: $(cat "$W/noparent.err")"
	grep -q "has no parent image of pagemap-$PID.img.*--prev-images-dir" "$W/noparent.err" ||
		die "no parent: $(cat "$W/noparent.err")"
	[ -e "$W/1/cryo-memtrack" ] || die "the refused pre-dump took the tracking of 1"
	log "no parent on the server: $(cat "$W/noparent.err")"
	grep -q "State:.*[RS]" /proc/$PID/status || die "the tree does not run on"
	[ -e "$W/2/inventory.img" ] && die "the failed pre-dump left an inventory"
	wait_until 10 gone "$srv" || die "page server 2 did not end"
	compgen -G "$W/srv/2/pagemap-*.img" >/dev/null && die "page server 2 kept a pagemap of a failed dump"
	# Dropped after 1 MiB.
	port=$(free_port)
	python3 -c "
import socket
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(('127.0.0.1', $port)); ls.listen(1); open('$W/drop-ready', 'w')
sk, _ = ls.accept(); got = n = 0
while got < (1 << 20):
    b = sk.recv(65536)
    if not b: break
    n += 1
    if n == 1: sk.sendall(b'\\1\\0\\0\\0')  # PARENT: yes
    if n == 2: sk.sendall(b'\\1')  # OPEN2: a parent exists
    got += len(b)
sk.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b'\\1\\0\\0\\0\\0\\0\\0\\0'); sk.close()
" &
	PIDS+=($!)
	wait_until 10 test -e "$W/drop-ready" || die "the dropping server did not start"
	rm -rf "$W/2" && mkdir -p "$W/2"
	cryo dropped pre-dump -t "$PID" -D 2 --prev-images-dir ../1 --page-server --address 127.0.0.1 --port "$port" &&
		die "a pre-dump whose page server dropped the connection succeeded"
	grep -q "lost the connection to page server" "$W/dropped.err" || die "dropped: $(cat "$W/dropped.err")"
	log "dropped: $(cat "$W/dropped.err")"
	grep -q "State:.*[RS]" /proc/$PID/status || die "the tree does not run on"
	[ -e "$W/2/inventory.img" ] && die "the failed pre-dump left an inventory"
	[ -e "$W/2/cryo-memtrack" ] && die "the failed pre-dump left a holder file"
	# The refusal came before pre-dump 1's tracking was taken; the dropped pre-dump took it and
	# lost it: the final dump writes every page, and is right.
	step 2
	port=$(free_port)
	"$CRYO" page-server -D "$W/srv/3" --port "$port" --prev-images-dir ../1 -o ps.log >"$W/ps3.out" 2>&1 &
	PIDS+=($!)
	wait_until 10 listening "$port" || die "page server 3 does not listen"
	dump final 3 dump --prev-images-dir ../1 --page-server --address 127.0.0.1 --port "$port"
	for f in "$W"/3/*.img; do cp "$f" "$W/srv/3/"; done
	restore_check srv/3
	;;
own-uffd)
	# A process with a userfaultfd of its own (userfaultfd(UFFD_USER_MODE_ONLY)).
	setsid python3 -c '
import ctypes, os, sys, time
fd = ctypes.CDLL(None, use_errno=True).syscall(323, os.O_CLOEXEC | os.O_NONBLOCK | 1)
if fd < 0:
    sys.exit(3)
open(sys.argv[1] + "/.ready", "w").write(str(os.getpid()))
os.rename(sys.argv[1] + "/.ready", sys.argv[1] + "/ready")
while True:
    time.sleep(0.05)
' "$W" </dev/null >"$W/py.out" 2>&1 &
	wait_until 10 test -e "$W/ready" || die "the python program did not start"
	PID=$(cat "$W/ready")
	PIDS+=("$PID")
	mkdir -p "$W/1"
	cryo own pre-dump -t "$PID" -D 1 && die "pre-dump of a task with its own userfaultfd succeeded"
	grep -q "has a userfaultfd open" "$W/own.err" || die "own uffd: $(cat "$W/own.err")"
	kill -0 "$PID" 2>/dev/null && grep -q "State:.*[RS]" /proc/$PID/status || die "the tree does not run on"
	[ -z "$(holders)" ] || die "a refused pre-dump left a holder"
	log "refused: $(cat "$W/own.err")"
	;;
*)
	echo "unknown case $CASE" >&2
	exit 2
	;;
esac
log "PASS $CASE"
