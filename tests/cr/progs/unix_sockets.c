/* unix_sockets: a socketpair (stream) with data queued both ways and shared with a child;
 * a seqpacket pair keeping message boundaries (an empty message among them); a bound datagram
 * socket with messages (one empty) from an unnamed sender connected to it, and a named socket
 * connected to it holding a message from it; a listening socket
 * with one accepted connection (data queued) and one connection still waiting in its backlog;
 * buffer sizes set on some sockets; SO_PASSCRED on a seqpacket receiver; an unnamed datagram
 * socket whose peer sent two messages and closed (the messages, then ECONNREFUSED); a named
 * datagram pair (both names kept); a datagram socket connected to itself; 20 messages (more
 * than net.unix.max_dgram_qlen) sent by its peer to a named socket connected to that peer.
 * After restore all
 * the data is there, in order and with boundaries, every connection still works both ways,
 * the buffer sizes are the same and credentials arrive with each message where asked for.
 */
#include "common.h"
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

static int int_opt(int fd, int name) {
	int v = -1;
	socklen_t len = sizeof v;
	if (getsockopt(fd, SOL_SOCKET, name, &v, &len)) return -1;
	return v;
}

/* A message with its SCM_CREDENTIALS, which must name us. */
static void expect_creds(int fd, const char *want, const char *what) {
	char buf[64] = {0}, ctl[CMSG_SPACE(sizeof(struct ucred))];
	struct iovec iov = {buf, sizeof buf - 1};
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof ctl};
	ssize_t n = recvmsg(fd, &m, MSG_DONTWAIT);
	if (n != (ssize_t)strlen(want) || memcmp(buf, want, strlen(want))) {
		cr_fail("%s: expected \"%s\" got %zd bytes \"%s\"", what, want, n, n > 0 ? buf : "");
		return;
	}
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);
	if (!c || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_CREDENTIALS) {
		cr_fail("%s: no SCM_CREDENTIALS with the message (SO_PASSCRED lost?)", what);
		return;
	}
	struct ucred cr;
	memcpy(&cr, CMSG_DATA(c), sizeof cr);
	if (cr.pid != getpid() || cr.uid != getuid() || cr.gid != getgid())
		cr_fail("%s: credentials pid %d uid %d gid %d, expected %d %d %d", what, cr.pid, cr.uid, cr.gid, getpid(),
			getuid(), getgid());
}

static int addr_of(struct sockaddr_un *a, const char *name) {
	memset(a, 0, sizeof *a);
	a->sun_family = AF_UNIX;
	char path[2300];
	cr_path(path, sizeof path, name);
	if (strlen(path) >= sizeof a->sun_path) cr_fail("setup: path too long for a unix socket: %s", path);
	memcpy(a->sun_path, path, strnlen(path, sizeof a->sun_path - 1));
	return (int)sizeof *a;
}

static int expect(int fd, const char *want, const char *what) {
	char buf[256] = {0};
	size_t n = strlen(want);
	ssize_t got = recv(fd, buf, sizeof buf - 1, MSG_DONTWAIT);
	if (got != (ssize_t)n || memcmp(buf, want, n)) {
		cr_fail("%s: expected \"%s\" got %zd bytes \"%s\"", what, want, got, got > 0 ? buf : "");
		return -1;
	}
	return 0;
}

int main(int argc, char **argv) {
	cr_init(argc, argv);
	int sp[2], sq[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp) || socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sq)) cr_fail("setup: socketpair");
	send(sp[0], "to-1", 4, 0);
	send(sp[1], "to-0", 4, 0);
	send(sq[0], "m1", 2, 0);
	send(sq[0], "", 0, 0);
	send(sq[0], "msg2", 4, 0);
	/* buffer sizes (the kernel doubles what it is given) */
	int bsz = 40000, rsz = 50000;
	if (setsockopt(sp[0], SOL_SOCKET, SO_SNDBUF, &bsz, sizeof bsz) ||
	    setsockopt(sp[0], SOL_SOCKET, SO_RCVBUF, &rsz, sizeof rsz))
		cr_fail("setup: buffer sizes: %s", strerror(errno));
	const int sp_snd = int_opt(sp[0], SO_SNDBUF), sp_rcv = int_opt(sp[0], SO_RCVBUF);
	const int sp1_snd = int_opt(sp[1], SO_SNDBUF);
	/* credentials passed with each message received on pc[1] */
	int pc[2], one = 1;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, pc) || setsockopt(pc[1], SOL_SOCKET, SO_PASSCRED, &one, sizeof one))
		cr_fail("setup: SO_PASSCRED pair: %s", strerror(errno));

	struct sockaddr_un da, la;
	int dlen = addr_of(&da, "dgram.sock"), llen = addr_of(&la, "listen.sock");
	int dg = socket(AF_UNIX, SOCK_DGRAM, 0), ds = socket(AF_UNIX, SOCK_DGRAM, 0);
	if (bind(dg, (struct sockaddr *)&da, dlen) || connect(ds, (struct sockaddr *)&da, dlen)) cr_fail("setup: dgram");
	send(ds, "d-one", 5, 0);
	send(ds, "", 0, 0);
	send(ds, "d-two", 5, 0);
	int dg_rcv = 300000;
	if (setsockopt(dg, SOL_SOCKET, SO_RCVBUF, &dg_rcv, sizeof dg_rcv)) cr_fail("setup: SO_RCVBUF: %s", strerror(errno));
	dg_rcv = int_opt(dg, SO_RCVBUF);
	/* a named dgram socket connected to dg, with a message from dg queued: only its peer may
	 * send to it, so the restore must queue the message before connecting it */
	struct sockaddr_un na;
	int nlen = addr_of(&na, "named.sock");
	int dn = socket(AF_UNIX, SOCK_DGRAM, 0);
	if (bind(dn, (struct sockaddr *)&na, nlen) || connect(dn, (struct sockaddr *)&da, dlen) ||
	    sendto(dg, "to-named", 8, 0, (struct sockaddr *)&na, nlen) != 8)
		cr_fail("setup: named dgram: %s", strerror(errno));

	int ls = socket(AF_UNIX, SOCK_STREAM, 0);
	if (bind(ls, (struct sockaddr *)&la, llen) || listen(ls, 8)) cr_fail("setup: listen");
	int c1 = socket(AF_UNIX, SOCK_STREAM, 0), c2 = socket(AF_UNIX, SOCK_STREAM, 0);
	if (connect(c1, (struct sockaddr *)&la, llen) || connect(c2, (struct sockaddr *)&la, llen)) cr_fail("setup: connect");
	int a1 = accept(ls, NULL, NULL);  /* c2 stays in the backlog */
	if (a1 < 0) cr_fail("setup: accept");
	send(c1, "client-hello", 12, 0);
	send(a1, "server-hello", 12, 0);

	int h[2];  /* the peer of h[0] is closed after sending: data, then end of file */
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, h)) cr_fail("setup: socketpair h");
	send(h[1], "last-words", 10, 0);
	close(h[1]);

	struct sockaddr_un p1a, p2a, sa, qa, qb;
	int p1l = addr_of(&p1a, "np1.sock"), p2l = addr_of(&p2a, "np2.sock");
	int np1 = socket(AF_UNIX, SOCK_DGRAM, 0), np2 = socket(AF_UNIX, SOCK_DGRAM, 0);
	if (bind(np1, (struct sockaddr *)&p1a, p1l) || bind(np2, (struct sockaddr *)&p2a, p2l) ||
	    connect(np1, (struct sockaddr *)&p2a, p2l) || connect(np2, (struct sockaddr *)&p1a, p1l) ||
	    send(np1, "p1", 2, 0) != 2)
		cr_fail("setup: named dgram pair: %s", strerror(errno));
	int sl = addr_of(&sa, "self.sock");
	int sc = socket(AF_UNIX, SOCK_DGRAM, 0);
	if (bind(sc, (struct sockaddr *)&sa, sl) || connect(sc, (struct sockaddr *)&sa, sl) || send(sc, "me", 2, 0) != 2)
		cr_fail("setup: self-connected dgram: %s", strerror(errno));
	int ql = addr_of(&qa, "qa.sock"), qbl = addr_of(&qb, "qb.sock");
	int qsa = socket(AF_UNIX, SOCK_DGRAM, 0), qsb = socket(AF_UNIX, SOCK_DGRAM, 0);
	if (bind(qsa, (struct sockaddr *)&qa, ql) || bind(qsb, (struct sockaddr *)&qb, qbl) ||
	    connect(qsa, (struct sockaddr *)&qb, qbl))
		cr_fail("setup: qa/qb: %s", strerror(errno));
	for (int i = 0; i < 20; i++) {
		char m[16];
		int n = snprintf(m, sizeof m, "q%02d", i);
		if (sendto(qsb, m, (size_t)n, MSG_DONTWAIT, (struct sockaddr *)&qa, ql) != n) cr_fail("setup: message %d to qa: %s", i, strerror(errno));
	}

	int gd[2];  /* datagram: the peer of gd[0] sends two messages, then closes */
	if (socketpair(AF_UNIX, SOCK_DGRAM, 0, gd)) cr_fail("setup: socketpair gd");
	send(gd[1], "dg-one", 6, 0);
	send(gd[1], "dg-two!", 7, 0);
	close(gd[1]);

	pid_t kid = fork();
	if (kid == 0) {
		cr_wait_go();
		/* the child shares sp[1]: what it sends reaches sp[0] in the parent */
		_exit(send(sp[1], "from-kid", 8, 0) == 8 ? 0 : 1);
	}
	cr_ready();
	cr_wait_go();
	int st;
	if (waitpid(kid, &st, 0) != kid || !WIFEXITED(st) || WEXITSTATUS(st)) cr_fail("child status %x", st);
	cr_sleep_ms(50);
	char buf[64] = {0};
	ssize_t n = recv(sp[0], buf, sizeof buf - 1, MSG_DONTWAIT);
	if (n != 12 || memcmp(buf, "to-0from-kid", 12)) cr_fail("socketpair end 0: got %zd \"%s\"", n, buf);
	expect(sp[1], "to-1", "socketpair end 1");
	expect(sq[1], "m1", "seqpacket first message");
	expect(sq[1], "", "seqpacket empty message");
	expect(sq[1], "msg2", "seqpacket third message");
	if (recv(sq[1], buf, sizeof buf, MSG_DONTWAIT) != -1 || errno != EAGAIN) cr_fail("seqpacket: more than three messages queued");
	expect(dg, "d-one", "dgram first message");
	expect(dg, "", "dgram empty message");
	expect(dg, "d-two", "dgram third message");
	if (recv(dg, buf, sizeof buf, MSG_DONTWAIT) != -1 || errno != EAGAIN) cr_fail("dgram: more than three messages queued");
	expect(dn, "to-named", "named dgram socket connected to the bound one");
	if (send(dn, "from-named", 10, 0) != 10) cr_fail("named dgram socket not connected after restore: %s", strerror(errno));
	expect(dg, "from-named", "dgram from the named socket");
	CHECK_I("socketpair end 0 SO_SNDBUF", sp_snd, int_opt(sp[0], SO_SNDBUF));
	CHECK_I("socketpair end 0 SO_RCVBUF", sp_rcv, int_opt(sp[0], SO_RCVBUF));
	CHECK_I("socketpair end 1 SO_SNDBUF (left as it was)", sp1_snd, int_opt(sp[1], SO_SNDBUF));
	CHECK_I("bound dgram socket SO_RCVBUF", dg_rcv, int_opt(dg, SO_RCVBUF));
	CHECK_I("SO_PASSCRED on the receiving end", 1, int_opt(pc[1], SO_PASSCRED));
	CHECK_I("SO_PASSCRED on the sending end (never set)", 0, int_opt(pc[0], SO_PASSCRED));
	if (send(pc[0], "cred", 4, 0) != 4) cr_fail("SO_PASSCRED pair: send: %s", strerror(errno));
	expect_creds(pc[1], "cred", "message on the SO_PASSCRED socket");
	if (send(ds, "d-three", 7, 0) != 7) cr_fail("dgram sender not connected after restore");
	expect(dg, "d-three", "dgram after restore");
	expect(a1, "client-hello", "accepted connection");
	expect(c1, "server-hello", "client connection");
	send(c1, "ping", 4, 0);
	expect(a1, "ping", "accepted connection after restore");
	expect(h[0], "last-words", "socket whose peer was closed");
	if (recv(h[0], buf, sizeof buf, MSG_DONTWAIT) != 0) cr_fail("socket whose peer was closed: no end of file after its data");
	int a2 = accept(ls, NULL, NULL);
	if (a2 < 0) cr_fail("no connection waiting in the listener's backlog after restore");
	else {
		send(c2, "late", 4, 0);
		cr_sleep_ms(20);
		expect(a2, "late", "backlog connection");
	}
	struct sockaddr_un got_a;
	socklen_t gl = sizeof got_a;
	if (getsockname(np1, (struct sockaddr *)&got_a, &gl) || strcmp(got_a.sun_path, p1a.sun_path)) cr_fail("np1: name lost");
	gl = sizeof got_a;
	if (getsockname(np2, (struct sockaddr *)&got_a, &gl) || strcmp(got_a.sun_path, p2a.sun_path)) cr_fail("np2: name lost");
	expect(np2, "p1", "named pair: queued message");
	if (send(np2, "p2", 2, 0) != 2) cr_fail("named pair: send back: %s", strerror(errno));
	expect(np1, "p2", "named pair: new message");
	expect(sc, "me", "self-connected: queued message");
	gl = sizeof got_a;
	if (getpeername(sc, (struct sockaddr *)&got_a, &gl) || strcmp(got_a.sun_path, sa.sun_path)) cr_fail("self-connected: peer");
	for (int i = 0; i < 20; i++) {
		char m[16];
		snprintf(m, sizeof m, "q%02d", i);
		expect(qsa, m, "qa: message from its peer");
	}
	char gb[16] = {0};
	if (recv(gd[0], gb, sizeof gb, MSG_DONTWAIT) != 6 || memcmp(gb, "dg-one", 6)) cr_fail("gd: first message '%s'", gb);
	memset(gb, 0, sizeof gb);
	if (recv(gd[0], gb, sizeof gb, MSG_DONTWAIT) != 7 || memcmp(gb, "dg-two!", 7)) cr_fail("gd: second message '%s'", gb);
	errno = 0;
	if (recv(gd[0], gb, sizeof gb, MSG_DONTWAIT) != -1 || errno != EAGAIN) cr_fail("gd: a third message or %s", strerror(errno));
	errno = 0;
	if (send(gd[0], "x", 1, MSG_DONTWAIT) != -1 || errno != ECONNREFUSED) cr_fail("gd: send to the closed peer: %s", strerror(errno));
	cr_finish();
	return 0;
}
