#!/bin/bash
# Statistics and progress of real dumps and restores.
#
#   stats.sh CRYO MEMHOG CASE
#
# CASE is one of:
#   images     stats-dump/stats-restore hold every field CRIU writes (zeros included), their
#              page counts agree with the page images, --display-stats prints CRIU's lines
#              with the images' figures, --stats-json FILE holds the same figures; with -W
#              both go to the work directory (as CRIU's)
#   progress   under a pty (script(1)) a dump and a restore lasting over a second show the
#              phase and pages done of the total, redrawn in place, erased at the end
#   quiet      no progress when stderr is not a terminal, nor with -v0 on a terminal
#   interrupt  SIGTERM while progress is shown still aborts the dump cleanly: the line is
#              erased, the error is printed, the tree runs on with its memory intact
#   fields     the other images cryo writes carry every optional field CRIU always writes
#              (inventory, ids, core, mm, fs, pagemap; fd images have their own tests)
#   freeze     a task that cannot stop: "freezing" is shown, the --timeout error follows on
#              a clean line, the task runs on
# CR_PROGS_DIR holds the test programs (shmem, vfork_wait). Runs as root. CRYO_FAULT
# slow-pages=MS makes cryo sleep MS ms at each batch of pages, so that the display has
# something to show whatever the machine's speed.
set -u
umask 022
(($# == 3)) || {
	echo "usage: $0 CRYO MEMHOG CASE" >&2
	exit 2
}
CRYO=$(readlink -f "$1")
MEMHOG=$(readlink -f "$2")
CASE=$3
PROGS=${CR_PROGS_DIR:?CR_PROGS_DIR must name the test programs directory}
CRIT=/usr/bin/crit
W=$(mktemp -d "/tmp/cr-stats-$CASE.XXXXXX")
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# memhog MIB DIR: started in its own session; sets HOG.
memhog() {
	mkdir -p "$2/img"
	setsid "$MEMHOG" "$1" "$2/ready" "$2/go" "$2/result" </dev/null >/dev/null 2>&1 &
	wait_until 60 test -s "$2/ready" || die "memhog $1 MiB did not get ready"
	HOG=$(tr -dc 0-9 <"$2/ready")
	PIDS+=("$HOG")
}
# prog NAME DIR: a test program of tests/cr/progs in its own session; sets ROOT.
prog() {
	mkdir -p "$2/img"
	setsid "$PROGS/$1" "$2" </dev/null >/dev/null 2>&1 &
	wait_until 20 test -s "$2/ready" || die "$1 did not get ready"
	ROOT=$(tr -dc 0-9 <"$2/ready")
	PIDS+=("$ROOT")
	sleep 0.1
}
# finish DIR WHAT: let the program in DIR check itself; its result must be PASS.
finish() {
	touch "$1/go"
	wait_until 60 test -s "$1/result" || die "$2: no result"
	grep -q '^PASS' "$1/result" || die "$2: the program reported: $(head -c 300 "$1/result")"
}
wait_pid_free() { wait_until 60 bash -c "[[ ! -e /proc/$1 ]]" || die "pid $1 still taken"; }

# on_tty FILE CMD...: CMD on a pty (script(1)); its terminal output goes to FILE. Sets RC.
on_tty() {
	local out=$1
	shift
	local cmd
	printf -v cmd '%q ' "$@"
	script -q -e -c "$cmd" /dev/null >"$out" 2>&1 </dev/null
	RC=$?
}

# JSON of a stats image's one entry.
decode_stats() { "$CRIT" decode -i "$1" | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["entries"][0], sort_keys=True))'; }

case_images() {
	local d=$W/images
	prog shmem "$d"
	log "shmem program: pid $ROOT"
	"$CRYO" dump -t "$ROOT" -D "$d/img" -o dump.log -v4 --display-stats --stats-json "$d/dump.json" \
		>"$d/dump.out" 2>"$d/dump.err" || die "dump failed"
	wait_pid_free "$ROOT"
	python3 - "$d" "$(decode_stats "$d/img/stats-dump")" dump <<'EOF' || die "stats-dump check failed"
import glob, json, re, subprocess, sys
d, entry, what = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
# Every field CRIU 4.2's stats.c writes on dump, zeros included.
want = ["freezing_time", "frozen_time", "memdump_time", "memwrite_time", "irmap_resolve",
        "pages_scanned", "pages_skipped_parent", "pages_written", "pages_lazy", "page_pipes",
        "page_pipe_bufs", "shpages_scanned", "shpages_skipped_parent", "shpages_written"]
s = entry["dump"]
missing = [k for k in want if k not in s]
assert not missing, f"stats-dump lacks {missing}: {s}"
def pages(pattern):
    n = 0
    for f in glob.glob(f"{d}/img/{pattern}"):
        img = json.loads(subprocess.check_output(["/usr/bin/crit", "decode", "-i", f]))
        n += sum(e.get("nr_pages", 0) for e in img["entries"][1:])
    return n
private = sum(pages(f"pagemap-{p}.img") for p in
              [re.search(r"pagemap-(\d+)\.img$", f).group(1) for f in glob.glob(f"{d}/img/pagemap-[0-9]*.img")])
shared = pages("pagemap-shmem-*.img")
assert s["pages_written"] == private > 0, f"pages_written {s['pages_written']}, page images hold {private}"
assert s["shpages_written"] == shared > 0, f"shpages_written {s['shpages_written']}, shmem images hold {shared}"
assert s["shpages_scanned"] >= shared, s
assert s["pages_scanned"] >= private, s
assert s["frozen_time"] >= s["memdump_time"], s
# --display-stats: CRIU's lines, in CRIU's order, with the image's figures.
text = open(f"{d}/dump.out").read()
us = lambda k: str(s[k]) + " us"
cnt = lambda k: f"{s[k]} ({s[k]:#x})"
lines = ["Displaying dump stats:", "Freezing time: " + us("freezing_time"),
         "Frozen time: " + us("frozen_time"), "Memory dump time: " + us("memdump_time"),
         "Memory write time: " + us("memwrite_time"), "IRMAP resolve time: " + us("irmap_resolve"),
         "Memory pages scanned: " + cnt("pages_scanned"),
         "Memory pages skipped from parent: " + cnt("pages_skipped_parent"),
         "Memory pages written: " + cnt("pages_written"), "Lazy memory pages: " + cnt("pages_lazy")]
assert text.splitlines() == lines, f"--display-stats printed:\n{text}\nexpected:\n" + "\n".join(lines)
j = json.load(open(f"{d}/{what}.json"))
assert j == entry, f"--stats-json {j} differs from the image {entry}"
print("stats-dump: all", len(want), "fields;", private, "private and", shared, "shared pages")
EOF
	"$CRYO" restore -D "$d/img" -d -o restore.log -v4 --display-stats --stats-json "$d/restore.json" \
		>"$d/restore.out" 2>"$d/restore.err" || die "restore failed"
	python3 - "$d" "$(decode_stats "$d/img/stats-restore")" "$(decode_stats "$d/img/stats-dump")" <<'EOF' || die "stats-restore check failed"
import json, sys
d, entry, dump = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])["dump"]
want = ["pages_compared", "pages_skipped_cow", "forking_time", "restore_time", "pages_restored"]
s = entry["restore"]
missing = [k for k in want if k not in s]
assert not missing, f"stats-restore lacks {missing}: {s}"
# A child's page equal to its parent's is kept shared, not written (copy-on-write after fork).
assert s["pages_restored"] + s["pages_skipped_cow"] == dump["pages_written"], \
    f"restored {s['pages_restored']} + kept {s['pages_skipped_cow']}, dumped {dump['pages_written']}"
assert s["pages_skipped_cow"] <= s["pages_compared"], s
assert 0 < s["forking_time"] <= s["restore_time"], s
cnt = lambda k: f"{s[k]} ({s[k]:#x})"
lines = ["Displaying restore stats:", "Pages compared: " + cnt("pages_compared"),
         "Pages skipped COW: " + cnt("pages_skipped_cow"), "Pages restored: " + cnt("pages_restored"),
         f"Restore time: {s['restore_time']} us", f"Forking time: {s['forking_time']} us"]
text = open(f"{d}/restore.out").read()
assert text.splitlines() == lines, f"--display-stats printed:\n{text}\nexpected:\n" + "\n".join(lines)
j = json.load(open(f"{d}/restore.json"))
assert j == entry, f"--stats-json {j} differs from the image {entry}"
print("stats-restore: all", len(want), "fields")
EOF
	[[ $(stat -c %a "$d/dump.json") == 600 ]] || die "the --stats-json file is not mode 0600"
	finish "$d" "restored shmem program"
	# A dump that fails leaves no --stats-json file behind.
	"$CRYO" dump -t 999999999 -D "$d/img" --stats-json "$d/failed.json" >/dev/null 2>&1 && die "dump of a bad pid worked"
	prog shmem "$d/2"
	CRYO_FAULT=dump-after-images "$CRYO" dump -t "$ROOT" -D "$d/2/img" --stats-json "$d/failed.json" \
		>"$d/failed.out" 2>&1 && die "a dump with an injected fault succeeded"
	[[ ! -e $d/failed.json ]] || die "a failed dump left its --stats-json file"
	finish "$d/2" "shmem program after the failed dump"
	# With -W the statistics go to the work directory, as CRIU's (podman exports them from there).
	prog shmem "$d/3"
	mkdir "$d/3/work"
	"$CRYO" dump -t "$ROOT" -D "$d/3/img" -W "$d/3/work" -o dump.log >"$d/3/dump.err" 2>&1 || die "dump -W failed"
	[[ -s $d/3/work/stats-dump && ! -e $d/3/img/stats-dump ]] || die "stats-dump is not in the work directory alone"
	wait_pid_free "$ROOT"
	"$CRYO" restore -D "$d/3/img" -W "$d/3/work" -d -o restore.log >"$d/3/restore.err" 2>&1 || die "restore -W failed"
	[[ -s $d/3/work/stats-restore && ! -e $d/3/img/stats-restore ]] || die "stats-restore is not in the work directory alone"
	finish "$d/3" "shmem program restored with -W"
}

# The progress lines of an action in a typescript: "\rcryo ACTION: PHASE | D/T pages ...".
check_progress() { # FILE ACTION
	python3 - "$1" "$2" <<'EOF'
import re, sys
raw = open(sys.argv[1], "rb").read().decode("latin-1")
action = sys.argv[2]
draws = re.findall(r"\r(cryo " + action + r": [^\r\n\x1b]*)\x1b\[K", raw)
assert draws, f"no progress line in {raw[:2000]!r}"
pages = [d for d in draws if re.search(r"memory of task \d+ \| \d+/\d+ pages \(\d+%\) \| \d+ MiB/s \| [\d.]+ s$", d)]
assert pages, f"no line with pages done of the total: {draws[:5]}"
done = [int(re.search(r"\| (\d+)/", d).group(1)) for d in pages]
assert done == sorted(done) and done[-1] > done[0], f"pages done do not grow: {done}"
# The line is erased after the last draw, before anything else is printed.
tail = raw[raw.rfind("\r" + draws[-1]) + len(draws[-1]) + 1:]
assert tail.startswith("\x1b[K\r\x1b[K"), f"the last line was not erased: {tail[:80]!r}"
print(f"{action}: {len(draws)} progress lines, {len(pages)} with pages; last: {draws[-1]}")
EOF
}

case_progress() {
	local d=$W/progress
	memhog 256 "$d"
	log "memhog 256 MiB: pid $HOG"
	on_tty "$d/ts-dump" env CRYO_FAULT=slow-pages=100 "$CRYO" dump -t "$HOG" -D "$d/img" --display-stats
	((RC == 0)) || die "dump on a tty exited $RC"
	check_progress "$d/ts-dump" dump || die "dump progress"
	# The statistics come after the line was erased, each on its own line.
	grep -a -q $'\x1b\[K\r\x1b\[KDisplaying dump stats:' "$d/ts-dump" ||
		die "--display-stats did not start on the erased line"
	wait_pid_free "$HOG"
	on_tty "$d/ts-restore" env CRYO_FAULT=slow-pages=700 "$CRYO" restore -D "$d/img" -d
	((RC == 0)) || die "restore on a tty exited $RC"
	check_progress "$d/ts-restore" restore || die "restore progress"
	finish "$d" "restored memhog"
}

case_quiet() {
	local d=$W/quiet
	memhog 64 "$d"
	env CRYO_FAULT=slow-pages=400 "$CRYO" dump -t "$HOG" -D "$d/img" >"$d/dump.out" 2>"$d/dump.err" ||
		die "dump failed"
	[[ ! -s $d/dump.err && ! -s $d/dump.out ]] || die "a dump without a terminal printed something"
	wait_pid_free "$HOG"
	on_tty "$d/ts-restore" env CRYO_FAULT=slow-pages=1500 "$CRYO" restore -D "$d/img" -d -v0
	((RC == 0)) || die "restore -v0 on a tty exited $RC"
	! grep -a -q "cryo restore" "$d/ts-restore" || die "progress shown with -v0"
	[[ ! -s $d/ts-restore ]] || die "restore -v0 on a tty printed: $(cat -v "$d/ts-restore")"
	finish "$d" "restored memhog"
	log "nothing shown without a terminal nor with -v0"
}

case_interrupt() {
	local d=$W/interrupt
	memhog 256 "$d"
	# The dump's pid, for the signal: the command writes it before it becomes cryo.
	(script -q -e -c "echo \$\$ >$d/cryo.pid; exec env CRYO_FAULT=slow-pages=150 $CRYO dump -t $HOG -D $d/img" \
		/dev/null >"$d/ts-dump" 2>&1 </dev/null; echo $? >"$d/rc") &
	wait_until 10 test -s "$d/cryo.pid" || die "the dump did not start"
	local cryo
	cryo=$(<"$d/cryo.pid")
	wait_until 10 grep -a -q "memory of task" "$d/ts-dump" || die "no progress line within 10 s"
	kill -TERM "$cryo"
	wait_until 30 test -s "$d/rc" || die "cryo did not end within 30 s of SIGTERM"
	[[ $(<"$d/rc") == 1 ]] || die "the interrupted dump exited $(<"$d/rc"), not 1"
	grep -a -q $'\r\x1b\[KError: interrupted by SIGTERM' "$d/ts-dump" ||
		die "the error did not follow an erased progress line"
	alive "$HOG" || die "memhog is gone after the interrupted dump"
	[[ $(awk '{print $3}' "/proc/$HOG/stat") != [Tt] ]] || die "memhog was left stopped"
	finish "$d" "memhog after the interrupted dump"
	log "SIGTERM with progress shown: dump aborted, tree intact"
}

case_freeze() {
	local d=$W/freeze
	prog vfork_wait "$d"
	local t0=$SECONDS
	on_tty "$d/ts-dump" "$CRYO" dump -t "$ROOT" -D "$d/img" --timeout 3
	((RC == 1)) || die "dump of a task that cannot stop exited $RC"
	((SECONDS - t0 < 15)) || die "the refused dump took $((SECONDS - t0)) s with --timeout 3"
	grep -a -q $'\rcryo dump: freezing | [0-9.]* s\x1b\[K' "$d/ts-dump" || die "no 'freezing' progress line"
	grep -a -q $'\r\x1b\[KError: .*did not stop' "$d/ts-dump" ||
		die "the timeout error did not follow an erased progress line"
	alive "$ROOT" || die "the task is gone after the refused dump"
	finish "$d" "vfork_wait after the refused dump"
	log "freeze timeout with progress shown: error on a clean line, task runs on"
}

case_fields() {
	local d=$W/fields
	prog shmem "$d"
	"$CRYO" dump -t "$ROOT" -D "$d/img" -o dump.log -v4 >"$d/dump.out" 2>"$d/dump.err" || die "dump failed"
	wait_pid_free "$ROOT"
	python3 - "$d/img" <<'EOF' || die "image fields check failed"
import glob, json, subprocess, sys
img = sys.argv[1]
def decode(name):
    return json.loads(subprocess.check_output(["/usr/bin/crit", "decode", "-i", f"{img}/{name}"]))["entries"]
def need(what, obj, keys):
    missing = [k for k in keys if k not in obj]
    assert not missing, f"{what} lacks {missing}: {sorted(obj)}"
ns = ["pid_ns_id", "net_ns_id", "ipc_ns_id", "uts_ns_id", "mnt_ns_id", "user_ns_id", "cgroup_ns_id"]
inv = decode("inventory.img")[0]
need("inventory", inv, ["img_version", "fdinfo_per_id", "ns_per_id", "lsmtype", "root_ids",
                        "network_lock_method"])
need("inventory root_ids", inv["root_ids"], ns)
pids = [e["pid"] for e in decode("pstree.img")]
for p in pids:
    ids = decode(f"ids-{p}.img")[0]
    need(f"ids-{p}", ids, ["vm_id", "files_id", "fs_id", "sighand_id"] + ns)
    assert all(ids[k] == inv["root_ids"][k] for k in ns), f"ids-{p} namespaces differ from the root's"
    core = decode(f"core-{p}.img")[0]
    need(f"core-{p} tc", core["tc"], ["timers", "rlimits", "signals_s", "loginuid", "oom_score_adj",
                                       "sigactions", "child_subreaper"])
    need(f"core-{p} ids", core["ids"], ns)
    tls = core["thread_info"].get("tls", [])
    assert [d["entry_number"] for d in tls] == [12, 13, 14], f"core-{p}: TLS descriptors {tls}"
    need(f"core-{p} thread_core", core["thread_core"],
         ["sched_nice", "sched_policy", "blk_sigset", "sas", "pdeath_sig", "signals_p", "creds",
          "seccomp_mode", "comm"])
    mm = decode(f"mm-{p}.img")[0]
    need(f"mm-{p}", mm, ["exe_file_id", "mm_saved_auxv", "vmas", "dumpable", "thp_disabled"])
    for v in mm["vmas"]:
        need(f"mm-{p} vma {v['start']}", v, ["start", "end", "pgoff", "shmid", "prot", "flags",
                                             "status", "fd", "fdflags"])
    need(f"fs-{p}", decode(f"fs-{p}.img")[0], ["cwd_id", "root_id", "umask"])
    for e in decode(f"pagemap-{p}.img")[1:]:
        need(f"pagemap-{p}", e, ["vaddr", "nr_pages", "flags"])
print("inventory, ids, core, mm, fs, pagemap of", len(pids), "tasks: every field CRIU always writes")
EOF
	"$CRYO" restore -D "$d/img" -d -o restore.log -v4 >"$d/restore.out" 2>"$d/restore.err" || die "restore failed"
	finish "$d" "restored shmem program"
}

case $CASE in
images | fields | progress | quiet | interrupt | freeze) "case_$CASE" ;;
*) die "unknown case $CASE" ;;
esac
log "PASS stats/$CASE"
