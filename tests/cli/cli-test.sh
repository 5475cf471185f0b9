#!/bin/bash
# The cryo binary as a CRIU drop-in: --version, check --feature/--all, errors, --help vs the
# README, the man page. Usage: cli-test.sh CRYO README CASE
set -u
CRYO=$1 README=$2 CASE=$3
fail() { echo "FAIL: $*" >&2; exit 1; }
T=$(mktemp -d /tmp/cryo-cli-test-XXXXXX)
trap 'rm -rf "$T"' EXIT
export HOME=$T/home  # no user config file
unset CRIU_CONFIG_FILE

case $CASE in
version)
	"$CRYO" --version >"$T/out" 2>"$T/err" || fail "--version exits $?"
	[ -s "$T/err" ] && fail "--version wrote to stderr: $(cat "$T/err")"
	[ "$(wc -l <"$T/out")" = 2 ] || fail "--version: not two lines: $(cat "$T/out")"
	sed -n 1p "$T/out" | grep -qx 'Version: 4\.2' || fail "first line: $(sed -n 1p "$T/out")"
	sed -n 2p "$T/out" | grep -qxE 'GitID: cryo-[0-9]+\.[0-9]+\.[0-9]+' ||
		fail "second line: $(sed -n 2p "$T/out")"
	# What scripts do with it (lxc, zdtm): the number after "Version: ".
	v=$("$CRYO" -V | sed -n 's/^Version: //p')
	[ "$v" = 4.2 ] || fail "-V gives '$v'"
	;;
features)
	names=$("$CRYO" check --all 2>/dev/null | sed -n 's/^\([a-z0-9_-]*\): .*/\1/p')
	[ "$(echo "$names" | wc -l)" = 45 ] || fail "check --all lists $(echo "$names" | wc -l) features"
	for f in $names; do
		"$CRYO" check --feature "$f" >"$T/out" 2>"$T/err"
		rc=$?
		if [ $rc = 0 ]; then
			[ "$(cat "$T/out")" = "$f is supported" ] || fail "$f: exit 0 with '$(cat "$T/out")'"
			[ -s "$T/err" ] && fail "$f: supported, yet stderr: $(cat "$T/err")"
			"$CRYO" check --all 2>/dev/null | grep -qx "$f: supported" || fail "$f: --all disagrees"
		elif [ $rc = 1 ]; then
			[ -s "$T/out" ] && fail "$f: exit 1 with stdout '$(cat "$T/out")'"
			[ "$(wc -l <"$T/err")" = 1 ] || fail "$f: not one line: $(cat "$T/err")"
			grep -q "^$f is not supported: the kernel \(has it, but cryo\|lacks it\)" "$T/err" ||
				fail "$f: $(cat "$T/err")"
			"$CRYO" check --all 2>/dev/null | grep -q "^$f: not supported: " || fail "$f: --all disagrees"
		else
			fail "$f: exit $rc"
		fi
	done
	# Things cryo does today, on a kernel that has them (6.x).
	for f in mnt_id timerfd fdinfo_lock seccomp_filters kcmp_epoll clone3_set_tid tcp_half_closed \
		network_lock_nftables mem_dirty_track uffd uffd-noncoop timens; do
		"$CRYO" check --feature $f >/dev/null 2>&1 || fail "$f should be supported here"
	done
	# Things cryo cannot do yet: never supported, whatever the kernel.
	for f in userns tun nsid cgroupns; do
		"$CRYO" check --feature $f >/dev/null 2>&1 && fail "$f claims support"
	done
	"$CRYO" check --feature no_such_feature >"$T/out" 2>"$T/err" && fail "unknown feature exits 0"
	[ "$(wc -l <"$T/err")" = 1 ] && grep -q "Unknown feature no_such_feature" "$T/err" ||
		fail "unknown feature: $(cat "$T/err")"
	;;
check-all)
	"$CRYO" check >"$T/out" 2>&1 || fail "plain check exits $?: $(cat "$T/out")"
	grep -qx "Looks good." "$T/out" || fail "plain check: $(cat "$T/out")"
	"$CRYO" check --all >"$T/out" 2>&1
	rc=$?
	missing=$(grep -c ': not supported: ' "$T/out")
	if [ "$missing" -gt 0 ]; then
		[ $rc = 1 ] || fail "check --all with $missing missing exits $rc"
		grep -q "^Looks good but some kernel features are missing" "$T/out" || fail "no summary"
	else
		[ $rc = 0 ] || fail "check --all exits $rc"
	fi
	# --experimental alone: autofs and compat_cr only.
	[ "$("$CRYO" check --experimental | grep -c ': ')" = 2 ] || fail "--experimental"
	;;
errors)
	# Each mistake: exit 1 and one line on stderr naming it.
	one_line() {
		"$CRYO" "${@:2}" >"$T/out" 2>"$T/err"
		rc=$?
		[ $rc = 1 ] || fail "cryo ${*:2}: exit $rc"
		[ "$(wc -l <"$T/err")" = 1 ] || fail "cryo ${*:2}: stderr is not one line: $(cat "$T/err")"
		grep -q -- "$1" "$T/err" || fail "cryo ${*:2}: '$(cat "$T/err")' does not say $1"
	}
	one_line "unknown option --frobnicate" dump --frobnicate
	one_line "unknown option -Z" dump -Z
	one_line "unknown command 'frobnicate'" frobnicate
	one_line "no action given" -v4
	one_line "page-server needs --port" page-server -D "$T"
	one_line "bad port '65536' for --port" page-server -D "$T" --port 65536
	one_line "page-server needs --address" dump -t 1 -D "$T" --page-server --port 1
	one_line "lazy-pages --page-server needs the source's --address" lazy-pages -D "$T" --page-server --port 1
	one_line "dump --lazy-pages needs --port" dump -t 1 -D "$T" --lazy-pages
	one_line "'cpuinfo check' is not supported" cpuinfo check
	one_line "exec" exec
	one_line "option --force-irmap is not supported" dump -t 1 --force-irmap
	one_line "cryo supports only mounts yet" restore --external "net[1]:x"
	one_line "'auto' is not supported" dump -t 1 --ext-mount-map auto
	one_line "bad PID 'abc'" dump -t abc
	one_line "bad mode 'fast' for --pre-dump-mode" dump --pre-dump-mode fast
	one_line "-t/--tree needs an argument" dump -t
	one_line "bad timeout" dump --timeout=-3
	one_line "config" dump --config "$T/missing.conf"
	# A config file's refused option names the file.
	echo "force-irmap" >"$T/c.conf"
	one_line "$T/c.conf" dump --config "$T/c.conf"
	CRIU_CONFIG_FILE=$T/c.conf one_line "force-irmap" check
	# -h wins even over a broken config file, as with CRIU.
	"$CRYO" --config "$T/c.conf" -h >/dev/null || fail "-h with a bad config exits $?"
	;;
readme)
	# README.md's "Options" block is `cryo --help`, word for word.
	awk '/^<!-- cryo --help -->$/{on=1; next} on && /^```text$/{body=1; next}
	     body && /^```$/{exit} body' "$README" >"$T/readme"
	[ -s "$T/readme" ] || fail "no '<!-- cryo --help -->' block in $README"
	"$CRYO" --help >"$T/help" || fail "--help exits $?"
	diff -u "$T/readme" "$T/help" >&2 || fail "README.md's usage differs from cryo --help"
	;;
man)
	"$CRYO" --help-man >"$T/cryo.8" || fail "--help-man exits $?"
	grep -q '^\.TH CRYO 8' "$T/cryo.8" || fail "no .TH"
	# Every option of the help is in the man page.
	for o in $("$CRYO" --help | grep -o -- '--[a-z][a-z0-9-]*' | sort -u); do
		grep -qF -- "$(echo "$o" | sed 's/-/\\-/g')" "$T/cryo.8" || fail "man page lacks $o"
	done
	if command -v man >/dev/null; then
		MANWIDTH=100 man -l "$T/cryo.8" 2>"$T/err" | grep -q "tcp-established" || fail "man cannot render it"
	fi
	;;
*) fail "unknown case $CASE" ;;
esac
echo "ok: $CASE"
