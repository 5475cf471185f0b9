#!/bin/bash
# The page server: cryo dump --page-server, cryo page-server, and each against an
# independent peer of CRIU 4.2's protocol (ps_peer.py).
#
#   pageserver.sh CRYO CASE
#
# CASE is one of:
#   memory       dump --page-server to cryo page-server (images dirs apart), restore from the
#                dump's images plus the server's: every mapping's content checked by the program
#   shmem        the same with shared memory (pagemap-shmem-*.img through the server), the
#                server writing into the dump's own directory
#   peer-server  cryo dump --page-server to ps_peer.py's server, which checks each message and
#                writes the images itself; cryo restores from them
#   peer-client  ps_peer.py sends a local dump's pages (OPEN2/ADD_F, then OPEN/ADD/HOLE) to cryo
#                page-server: the images it writes equal the originals byte for byte; PARENT
#                and OPEN2 answer from the server's parent link
#   ps-socket    --ps-socket on both sides (the two ends of one socket pair): the dump ends
#                with FORCE_CLOSE, the restore passes
#   daemon       page-server -d --status-fd: returns at once, the zero byte is written, the
#                daemon serves a dump and exits
#   tls          --tls with a throwaway CA (openssl): a dump through TLS restores; a peer with
#                another CA's certificate, a server name the certificate lacks, TLS at one end
#                only: each fails with one message, the tree runs on (--tls-no-cn-verify lets
#                the name pass)
#   errors       unreachable server, connection dropped mid-dump (the tree runs on intact),
#                bad ports, missing options, an unusable images dir, a client that hangs up
# CR_PROGS_DIR holds the test programs. Runs as root.
set -u
umask 022
(($# == 2)) || {
	echo "usage: $0 CRYO CASE" >&2
	exit 2
}
CRYO=$(readlink -f "$1")
CASE=$2
PROGS=${CR_PROGS_DIR:?CR_PROGS_DIR must name the test programs directory}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PEER="/usr/bin/python3 $HERE/ps_peer.py"
CRIT=/usr/bin/crit
W=$(mktemp -d "/tmp/cr-pageserver-$CASE.XXXXXX")
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# prog NAME DIR: a test program in its own session; sets ROOT.
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
	log "$2: the program passed its checks"
}
# server DIR PORT [ARGS]: cryo page-server in the background, listening; sets SRV.
server() {
	local dir=$1 port=$2
	shift 2
	mkdir -p "$dir"
	"$CRYO" page-server -D "$dir" --port "$port" -o "$dir/ps.log" -v4 "$@" >"$dir/ps.out" 2>"$dir/ps.err" &
	SRV=$!
	PIDS+=("$SRV")
	wait_until 10 listening "$port" || die "cryo page-server did not listen on port $port"
}
# wait_ok PID WHAT: PID exits 0 within 60 s.
wait_ok() {
	wait_until 60 gone "$1" || die "$2 did not exit"
	wait "$1"
	local rc=$?
	((rc == 0)) || die "$2 exited $rc"
}
# decodable DIR: crit decodes every image of DIR.
decodable() {
	local f
	for f in "$1"/*.img; do
		[[ ${f##*/} == pages-*.img ]] && continue
		"$CRIT" decode -i "$f" >/dev/null 2>"$W/crit.err" || die "crit cannot decode $f: $(tail -n 2 "$W/crit.err")"
	done
}
# restore_check DIR WHAT: restore DIR/img detached; the program passes its checks.
restore_check() {
	rm -f "$1/result" "$1/go"
	"$CRYO" restore -D "$1/img" -o "$1/restore.log" -v4 -d >"$1/restore.out" 2>"$1/restore.err" ||
		die "$2: restore failed: $(cat "$1/restore.err")"
	ROOT=$(tr -dc 0-9 <"$1/ready")
	PIDS+=("$ROOT")
	finish "$1" "$2 (restored)"
}

dump_through_server() { # PROG SAME_DIR
	local d=$W/$1 port
	port=$(free_port)
	prog "$1" "$d"
	local srvdir=$d/srv
	[[ $2 == same ]] && srvdir=$d/img
	server "$srvdir" "$port"
	"$CRYO" dump -t "$ROOT" -D "$d/img" -o dump.log -v4 --page-server --address 127.0.0.1 --port "$port" \
		>"$d/dump.out" 2>"$d/dump.err" || die "dump --page-server failed: $(cat "$d/dump.err")"
	wait_ok "$SRV" "cryo page-server"
	wait_until 10 gone "$ROOT" || die "the dumped tree still runs"
	compgen -G "$d/img/pages-*.img" >/dev/null && [[ $2 != same ]] &&
		die "the dump wrote pages-*.img itself: $(ls "$d/img")"
	compgen -G "$d/img/pagemap-*.img" >/dev/null && [[ $2 != same ]] &&
		die "the dump wrote pagemap-*.img itself: $(ls "$d/img")"
	[[ -e $srvdir/pagemap-$ROOT.img ]] || die "the server wrote no pagemap-$ROOT.img: $(ls "$srvdir")"
	[[ -e $srvdir/pages-65537.img ]] || die "the server's pages are not pages-65537.img: $(ls "$srvdir")"
	decodable "$srvdir"
	if [[ $2 != same ]]; then
		cp "$srvdir"/pagemap-*.img "$srvdir"/pages-*.img "$d/img/"
	fi
	decodable "$d/img"
	log "$1: dumped through the page server ($(ls "$srvdir" | grep -c img) images there)"
}

case_memory() {
	dump_through_server memory apart
	restore_check "$W/memory" memory
}

case_shmem() {
	dump_through_server shmem same
	compgen -G "$W/shmem/img/pagemap-shmem-*.img" >/dev/null || die "no pagemap-shmem image from the server"
	restore_check "$W/shmem" shmem
}

case_peer_server() {
	local d=$W/peer port
	port=$(free_port)
	prog memory "$d"
	mkdir -p "$d/srv"
	$PEER serve "$port" "$d/srv" --status "$d/peer-ready" >"$d/peer.out" 2>"$d/peer.err" &
	local peer=$!
	PIDS+=("$peer")
	wait_until 10 test -e "$d/peer-ready" || die "ps_peer did not start"
	"$CRYO" dump -t "$ROOT" -D "$d/img" -o dump.log -v4 --page-server --address 127.0.0.1 --port "$port" \
		>"$d/dump.out" 2>"$d/dump.err" || die "dump to ps_peer failed: $(cat "$d/dump.err")"
	wait_ok "$peer" "ps_peer serve"
	log "ps_peer: $(cat "$d/peer.out")"
	grep -q '"pages": [1-9]' "$d/peer.out" || die "ps_peer received no pages"
	cp "$d/srv"/* "$d/img/"
	decodable "$d/img"
	restore_check "$d" "memory via ps_peer"
}

case_peer_client() {
	local d=$W/client port
	prog memory "$d"
	"$CRYO" dump -t "$ROOT" -D "$d/img" -o dump.log -v4 -R >"$d/dump.out" 2>"$d/dump.err" ||
		die "local dump failed: $(cat "$d/dump.err")"
	local pid=$ROOT pm=$d/img/pagemap-$ROOT.img pages
	pages=$("$CRIT" decode -i "$pm" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["entries"][0]["pages_id"])')
	# A parent images dir on the server side holding this task's pagemap (and not pid+1's).
	mkdir -p "$d/parent"
	cp "$pm" "$d/parent/"
	local style
	for style in add_f legacy; do
		local s=$d/srv-$style
		port=$(free_port)
		server "$s" "$port"
		ln -s ../parent "$s/parent"
		local args=()
		[[ $style == legacy ]] && args=(--legacy)
		$PEER send "$port" "$d/img" "$pid" --parent-probe "$pid" --parent-probe $((pid + 1)) "${args[@]}" \
			>"$d/send-$style.out" 2>"$d/send-$style.err" || die "ps_peer send ($style) failed"
		wait_ok "$SRV" "cryo page-server ($style)"
		grep -qx "parent $pid: 1" "$d/send-$style.out" || die "PARENT for pagemap-$pid.img did not answer 1: $(cat "$d/send-$style.out")"
		grep -qx "parent $((pid + 1)): 0" "$d/send-$style.out" || die "PARENT for a missing image did not answer 0"
		[[ $style == legacy ]] || grep -qx "open2 parent: 1" "$d/send-$style.out" || die "OPEN2 did not answer 1 (a parent exists)"
		grep -qx "close status: 0" "$d/send-$style.out" || die "CLOSE was not answered 0"
		cmp "$s/pages-65537.img" "$d/img/pages-$pages.img" || die "$style: the server's pages differ from the dump's"
		diff <("$CRIT" decode -i "$s/pagemap-$pid.img" | sed 's/"pages_id": [0-9]*/ID/') \
			<("$CRIT" decode -i "$pm" | sed 's/"pages_id": [0-9]*/ID/') >"$d/diff-$style.out" ||
			die "$style: the server's pagemap differs from the dump's"
		log "$style: the server wrote the dump's pagemap and pages byte for byte"
	done
	finish "$d" "memory (left running)"
}

case_ps_socket() {
	local d=$W/pss
	prog memory "$d"
	mkdir -p "$d/srv"
	# Each end of a connected pair goes to one cryo (and stays open in neither's parent).
	/usr/bin/python3 - "$CRYO" "$d" "$ROOT" <<'EOF' >"$d/pair.out" 2>&1 || die "--ps-socket run failed: $(cat "$d/pair.out")"
import socket, subprocess, sys
cryo, d, root = sys.argv[1:]
a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
srv = subprocess.Popen([cryo, "page-server", "-D", d + "/srv", "--ps-socket", str(a.fileno()), "-o", "ps.log",
                        "-v4"], pass_fds=[a.fileno()], stderr=open(d + "/srv.err", "w"))
a.close()
dump = subprocess.run([cryo, "dump", "-t", root, "-D", d + "/img", "--page-server", "--ps-socket",
                       str(b.fileno()), "-o", "dump.log", "-v4"], pass_fds=[b.fileno()],
                      stderr=open(d + "/dump.err", "w"))
b.close()
rc = srv.wait(timeout=60)
print("dump", dump.returncode, "server", rc)
sys.exit(0 if dump.returncode == 0 and rc == 0 else 1)
EOF
	grep -q "page server: done" "$d/srv/ps.log" || die "the server did not finish: $(tail -3 "$d/srv/ps.log")"
	cp "$d/srv"/*.img "$d/img/"
	restore_check "$d" "memory via --ps-socket"
}

case_daemon() {
	local d=$W/daemon port
	port=$(free_port)
	prog memory "$d"
	mkdir -p "$d/srv"
	# The status descriptor is a FIFO read by a background od: its end of file shows the close.
	mkfifo "$d/status"
	od -An -tx1 <"$d/status" >"$d/status.out" &
	PIDS+=($!)
	local t0=$SECONDS
	"$CRYO" page-server -D "$d/srv" --port "$port" -d --status-fd 3 -o "$d/srv/ps.log" -v4 \
		3>"$d/status" >"$d/ps.out" 2>"$d/ps.err" || die "page-server -d failed: $(cat "$d/ps.err")"
	((SECONDS - t0 < 5)) || die "page-server -d did not return at once"
	wait_until 10 grep -q . "$d/status.out" || die "nothing written to --status-fd"
	[[ $(tr -d ' \n' <"$d/status.out") == 00 ]] || die "--status-fd got '$(cat "$d/status.out")', not one zero byte"
	listening "$port" || die "the daemon does not listen on $port"
	local daemon
	daemon=$(ss -Hltnp "sport = :$port" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)
	[[ -n $daemon ]] || die "no daemon pid for port $port"
	PIDS+=("$daemon")
	[[ $(awk '{print $6}' "/proc/$daemon/stat") == "$daemon" ]] || die "the daemon is not a session leader"
	"$CRYO" dump -t "$ROOT" -D "$d/img" -o dump.log -v4 --page-server --address localhost --port "$port" \
		>"$d/dump.out" 2>"$d/dump.err" || die "dump to the daemon failed: $(cat "$d/dump.err")"
	wait_until 20 gone "$daemon" || die "the daemon did not exit after the dump"
	cp "$d/srv"/*.img "$d/img/"
	restore_check "$d" "memory via the daemon"
}

# expect_fail WHAT PATTERN CMD...: CMD exits non-zero with one line matching PATTERN.
expect_fail() {
	local what=$1 pat=$2
	shift 2
	timeout 60 "$@" >"$W/ef.out" 2>"$W/ef.err"
	local rc=$?
	((rc != 0 && rc != 124)) || die "$what: exit status $rc (expected a failure)"
	grep -qE -- "$pat" "$W/ef.err" || die "$what: message '$(cat "$W/ef.err")' does not match '$pat'"
	(($(wc -l <"$W/ef.err") == 1)) || die "$what: more than one line: $(cat "$W/ef.err")"
	log "$what: $(cat "$W/ef.err")"
}

case_errors() {
	local d=$W/err port
	mkdir -p "$d/img"
	port=$(free_port)
	expect_fail "bad port" "bad port '70000' for --port" "$CRYO" page-server -D "$d" --port 70000
	expect_fail "bad port text" "bad port 'x1' for --port" "$CRYO" dump -t 1 -D "$d/img" --page-server --address 127.0.0.1 --port x1
	expect_fail "no port" "page-server needs --port" "$CRYO" page-server -D "$d"
	expect_fail "no address" "--page-server needs --address" "$CRYO" dump -t 1 -D "$d/img" --page-server --port 1234
	expect_fail "missing dir" "images directory $d/nope does not exist" "$CRYO" page-server -D "$d/nope" --port "$port"
	touch "$d/file"
	expect_fail "dir is a file" "images directory $d/file .*not a directory" "$CRYO" page-server -D "$d/file" --port "$port"
	expect_fail "port in use" "cannot listen on .*Address already in use" \
		/usr/bin/python3 -c "import socket,subprocess,sys; s=socket.socket(); s.bind(('0.0.0.0',$port)); s.listen(); sys.exit(subprocess.call(['$CRYO','page-server','-D','$d','--port','$port']))"

	# Nobody listening: the tree is never touched.
	prog memory "$d/a"
	expect_fail "unreachable" "cannot connect to page server 127.0.0.1:$port: Connection refused" \
		"$CRYO" dump -t "$ROOT" -D "$d/a/img" --page-server --address 127.0.0.1 --port "$port"
	alive "$ROOT" || die "the tree died after an unreachable page server"
	[[ -e $d/a/img/inventory.img ]] && die "an inventory.img after a failed dump"
	finish "$d/a" "memory after an unreachable server"

	# The server hangs up after 1 MiB: the dump fails, the tree runs on with its memory intact.
	prog memory "$d/b"
	port=$(free_port)
	/usr/bin/python3 -c "
import socket
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(('127.0.0.1', $port)); ls.listen(1); open('$d/b/drop-ready', 'w')
sk, _ = ls.accept(); got = 0
while got < (1 << 20):
    b = sk.recv(65536)
    if not b: break
    if got == 0: sk.sendall(b'\0')  # the OPEN2 answer
    got += len(b)
sk.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b'\1\0\0\0\0\0\0\0'); sk.close()
" &
	PIDS+=($!)
	wait_until 10 test -e "$d/b/drop-ready" || die "the dropping server did not start"
	expect_fail "dropped" "lost the connection to page server 127.0.0.1:$port" \
		"$CRYO" dump -t "$ROOT" -D "$d/b/img" --page-server --address 127.0.0.1 --port "$port"
	alive "$ROOT" || die "the tree died after the page server dropped the connection"
	[[ $(awk '{print $3}' "/proc/$ROOT/stat") == [RS] ]] || die "the tree is not running after the failed dump"
	[[ -e $d/b/img/inventory.img ]] && die "an inventory.img after a failed dump"
	finish "$d/b" "memory after a dropped connection"

	# A client that hangs up mid-way: the server fails, leaving no pagemap image.
	prog memory "$d/c"
	"$CRYO" dump -t "$ROOT" -D "$d/c/img" -R -o dump.log >"$d/c/dump.out" 2>&1 || die "local dump failed"
	port=$(free_port)
	server "$d/c/srv" "$port"
	$PEER send "$port" "$d/c/img" "$ROOT" --stop-after 100 >"$d/c/send.out" 2>&1 || die "ps_peer send failed"
	wait_until 20 gone "$SRV" || die "the server did not exit after its client hung up"
	wait "$SRV" && die "the server exited 0 after an incomplete dump"
	grep -q "hung up" "$d/c/srv/ps.err" || die "the server's message: $(cat "$d/c/srv/ps.err")"
	(($(wc -l <"$d/c/srv/ps.err") == 1)) || die "the server said more than one line: $(cat "$d/c/srv/ps.err")"
	compgen -G "$d/c/srv/pagemap-*.img" >/dev/null && die "a pagemap image after an incomplete dump"
	log "client hung up: $(cat "$d/c/srv/ps.err")"
	finish "$d/c" "memory (left running)"
}

# make_pki DIR: a CA, a server and a client certificate (both for IP 127.0.0.1), and a
# certificate of another CA.
make_pki() {
	local d=$1 who
	mkdir -p "$d"
	for ca in ca other; do
		openssl req -x509 -newkey rsa:2048 -nodes -keyout "$d/$ca.key" -out "$d/$ca.pem" -days 2 \
			-subj "/CN=cryo test $ca" 2>"$d/openssl.err" || die "openssl: cannot make a CA"
	done
	printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >"$d/ext"
	for who in server client stranger; do
		local ca=ca
		[[ $who == stranger ]] && ca=other
		openssl req -newkey rsa:2048 -nodes -keyout "$d/$who.key" -out "$d/$who.csr" -subj "/CN=127.0.0.1" \
			2>>"$d/openssl.err" || die "openssl: cannot make a request"
		openssl x509 -req -in "$d/$who.csr" -CA "$d/$ca.pem" -CAkey "$d/$ca.key" -CAcreateserial \
			-out "$d/$who.pem" -days 2 -extfile "$d/ext" 2>>"$d/openssl.err" || die "openssl: cannot sign"
	done
}

case_tls() {
	local d=$W/tls port pki=$W/pki
	make_pki "$pki"
	local srv_tls=(--tls --tls-cacert "$pki/ca.pem" --tls-cert "$pki/server.pem" --tls-key "$pki/server.key")
	local cli_tls=(--tls --tls-cacert "$pki/ca.pem" --tls-cert "$pki/client.pem" --tls-key "$pki/client.key")
	prog memory "$d"
	port=$(free_port)
	server "$d/srv" "$port" "${srv_tls[@]}"
	"$CRYO" dump -t "$ROOT" -D "$d/img" -o dump.log -v4 --page-server --address 127.0.0.1 --port "$port" \
		"${cli_tls[@]}" >"$d/dump.out" 2>"$d/dump.err" || die "dump over TLS failed: $(cat "$d/dump.err")"
	wait_ok "$SRV" "cryo page-server --tls"
	grep -q "TLS session with" "$d/srv/ps.log" || die "the server log shows no TLS session"
	cp "$d/srv"/*.img "$d/img/"
	restore_check "$d" "memory over TLS"

	local e=$W/tls-err
	prog memory "$e"
	# A client certificate from another CA: the server refuses it, the dump fails.
	port=$(free_port)
	server "$e/srv1" "$port" "${srv_tls[@]}"
	expect_fail "client of another CA" "TLS" "$CRYO" dump -t "$ROOT" -D "$e/img" --page-server \
		--address 127.0.0.1 --port "$port" --tls --tls-cacert "$pki/ca.pem" --tls-cert "$pki/stranger.pem" \
		--tls-key "$pki/stranger.key"
	wait_until 20 gone "$SRV" || die "the server still runs after refusing a certificate"
	wait "$SRV" && die "the server exited 0 after refusing a certificate"
	grep -q "not trusted\|handshake" "$e/srv1/ps.err" || die "server's message: $(cat "$e/srv1/ps.err")"
	alive "$ROOT" || die "the tree died after a refused certificate"
	# The server's certificate names 127.0.0.1, not localhost.
	port=$(free_port)
	server "$e/srv2" "$port" "${srv_tls[@]}"
	expect_fail "name mismatch" "TLS certificate of page server .* is not trusted" "$CRYO" dump -t "$ROOT" \
		-D "$e/img" --page-server --address localhost --port "$port" "${cli_tls[@]}"
	kill "$SRV" 2>/dev/null
	wait "$SRV" 2>/dev/null
	# TLS at the client only.
	port=$(free_port)
	server "$e/srv3" "$port"
	expect_fail "TLS at one end" "TLS handshake with page server" "$CRYO" dump -t "$ROOT" -D "$e/img" \
		--page-server --address 127.0.0.1 --port "$port" "${cli_tls[@]}"
	kill "$SRV" 2>/dev/null
	wait "$SRV" 2>/dev/null
	alive "$ROOT" || die "the tree died after failed TLS dumps"
	[[ -e $e/img/inventory.img ]] && die "an inventory.img after failed dumps"
	# --tls-no-cn-verify: localhost passes.
	port=$(free_port)
	server "$e/srv4" "$port" "${srv_tls[@]}"
	"$CRYO" dump -t "$ROOT" -D "$e/img" -o dump.log -v4 --page-server --address localhost --port "$port" \
		"${cli_tls[@]}" --tls-no-cn-verify >"$e/dump.out" 2>"$e/dump.err" ||
		die "dump with --tls-no-cn-verify failed: $(cat "$e/dump.err")"
	wait_ok "$SRV" "cryo page-server (no CN check)"
	cp "$e/srv4"/*.img "$e/img/"
	restore_check "$e" "memory over TLS without the name check"
}

case $CASE in
memory | shmem | daemon | errors | tls) "case_$CASE" ;;
peer-server) case_peer_server ;;
peer-client) case_peer_client ;;
ps-socket) case_ps_socket ;;
*) die "unknown case $CASE" ;;
esac
log "PASS: $CASE"
