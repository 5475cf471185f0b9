# Helpers shared by the scripted cr tests (pageserver.sh, predump.sh, stats.sh, lazy.sh,
# cgroups.sh). Source it once W (the work directory) is made; background processes go in
# PIDS, killed at exit. A script may define cleanup_more, run at exit before the work
# directory goes. The work directory stays after a failure (or with KEEP=1), and die shows
# the tail of its outputs, logs and results.

PIDS=()

log() { echo "[$(date +%T.%3N)] $*"; }
die() {
	log "FAIL: $*"
	touch "$W/.failed"
	local f
	for f in $(find "$W" -type f \( -name '*.out' -o -name '*.err' -o -name '*.log' -o -name 'log' \
		-o -name 'result*' -o -name 'ts*' \) | sort); do
		echo "--- ${f#"$W"/}:"
		tail -c 3000 "$f" | cat -v
		echo
	done
	echo "(work directory kept: $W)"
	exit 1
}
cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
	declare -F cleanup_more >/dev/null && cleanup_more
	[[ ${KEEP:-0} == 1 ]] || [[ -e $W/.failed ]] || rm -rf "$W"
}
trap 'cleanup' EXIT

wait_until() { # SECONDS CMD...
	local end=$((SECONDS + $1))
	shift
	until "$@"; do
		((SECONDS >= end)) && return 1
		sleep 0.05
	done
}
alive() { [[ -e /proc/$1 ]] && [[ $(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) != [ZX] ]]; }
gone() { ! alive "$1"; }

# A free TCP port on loopback, and whether something listens on one.
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
listening() { ss -Hltn "sport = :$1" | grep -q .; }
