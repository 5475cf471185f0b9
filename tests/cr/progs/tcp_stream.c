/* Established TCP connections (--tcp-established), one program in three roles by its name:
 *
 * tcp_stream: a server (the root) and its client (a child), both in the tree, over four
 *   connections:
 *   A (IPv4) a counter stream both ways, pumped until the end: data is in flight at the dump;
 *   B (IPv6) the server does not read before go: the client's send queue is full (sent and
 *     unacknowledged data, and data not sent yet) and so is the server's receive queue;
 *   C (IPv4) half-closed: the client sent 1000 bytes and shut down its sending side (client
 *     FIN_WAIT2, server CLOSE_WAIT with the data and the FIN unread);
 *   D (IPv6) the client filled the connection, then shut it down: its FIN waits behind data
 *     not sent yet (FIN_WAIT1);
 *   E (IPv4) the client shut its side down at once and does not read; the server filled the
 *     connection and shut down too (server LAST_ACK, its FIN behind data not sent yet).
 *   After go every stream must go on: every byte the pattern's, none lost or repeated, totals
 *   equal to what the sender wrote; states and negotiated options (MSS, window scaling,
 *   SACK, timestamps) as before the dump; no reset.
 * tcp_outside: a client in the tree of a peer outside it (tcp_peer): a counter stream both
 *   ways, as A; the peer must see no reset and the stream go on.
 * tcp_peer: the peer outside the tree (WORKDIR/peer-port, then WORKDIR/peer-result).
 */
#include "common.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>

static uint8_t pat(uint64_t i)
{
	return (uint8_t)((i * 2654435761u) >> 13);
}

/* One direction of a counter stream. */
struct stream {
	const char *name;
	int fd;
	uint64_t sent, got;
	int eof, shut, bad;
};

static void pump_send(struct stream *s, uint64_t limit)
{
	uint8_t buf[16384];
	while (s->sent < limit) {
		size_t n = sizeof buf;
		if (limit - s->sent < n)
			n = (size_t)(limit - s->sent);
		for (size_t i = 0; i < n; i++)
			buf[i] = pat(s->sent + i);
		ssize_t w = send(s->fd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (w < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (w < 0) {
			if (!s->bad++)
				cr_fail("%s: send after %llu bytes: %s", s->name,
					(unsigned long long)s->sent, strerror(errno));
			return;
		}
		s->sent += (uint64_t)w;
	}
}

static void pump_recv(struct stream *s)
{
	uint8_t buf[16384];
	for (;;) {
		ssize_t r = recv(s->fd, buf, sizeof buf, MSG_DONTWAIT);
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (r < 0) {
			if (!s->bad++)
				cr_fail("%s: recv after %llu bytes: %s", s->name,
					(unsigned long long)s->got, strerror(errno));
			return;
		}
		if (r == 0) {
			s->eof = 1;
			return;
		}
		for (ssize_t i = 0; i < r; i++)
			if (buf[i] != pat(s->got + (uint64_t)i) && !s->bad++)
				cr_fail("%s: byte %llu is %u, expected %u (lost or repeated data)",
					s->name, (unsigned long long)(s->got + (uint64_t)i), buf[i],
					pat(s->got + (uint64_t)i));
		s->got += (uint64_t)r;
	}
}

/* Reads until EOF, up to `secs` seconds. */
static void drain(struct stream *s, int secs)
{
	for (int t = 0; t < secs * 100 && !s->eof && !s->bad; t++) {
		struct pollfd p = { s->fd, POLLIN, 0 };
		poll(&p, 1, 10);
		pump_recv(s);
	}
	if (!s->eof && !s->bad)
		cr_fail("%s: no EOF within %d s (%llu bytes read)", s->name, secs,
			(unsigned long long)s->got);
}

/* What must survive: state, negotiated options, MSS, addresses. */
struct snap {
	int state, options, snd_wscale, rcv_wscale, mss;
	struct sockaddr_storage me, peer;
};

static void take(int fd, struct snap *s)
{
	struct tcp_info ti;
	socklen_t len = sizeof ti;
	memset(s, 0, sizeof *s);
	memset(&ti, 0, sizeof ti);
	getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len);
	s->state = ti.tcpi_state;
	s->options = ti.tcpi_options;
	s->snd_wscale = ti.tcpi_snd_wscale;
	s->rcv_wscale = ti.tcpi_rcv_wscale;
	len = sizeof s->mss;
	getsockopt(fd, IPPROTO_TCP, TCP_MAXSEG, &s->mss, &len);
	len = sizeof s->me;
	getsockname(fd, (struct sockaddr *)&s->me, &len);
	len = sizeof s->peer;
	getpeername(fd, (struct sockaddr *)&s->peer, &len);
}

static void compare(const char *what, int fd, const struct snap *before)
{
	struct snap now;
	take(fd, &now);
	char w[128];
	snprintf(w, sizeof w, "%s: TCP state", what);
	CHECK_I(w, before->state, now.state);
	snprintf(w, sizeof w, "%s: TCP options (TCPI_OPT_*)", what);
	CHECK_X(w, (unsigned)before->options, (unsigned)now.options);
	snprintf(w, sizeof w, "%s: send window scale", what);
	CHECK_I(w, before->snd_wscale, now.snd_wscale);
	snprintf(w, sizeof w, "%s: receive window scale", what);
	CHECK_I(w, before->rcv_wscale, now.rcv_wscale);
	/* The segment size may be larger than before (the kernel bounds it by half the largest
	 * window seen, which it learns again), never smaller; but a restore can set at most
	 * 32767 (less the timestamps), which only loopback's MTU exceeds. */
	if (now.mss < before->mss && now.mss < 32767 - 12)
		cr_fail("%s: MSS %d, was %d before the dump", what, now.mss, before->mss);
	if (memcmp(&before->me, &now.me, sizeof now.me))
		cr_fail("%s: local address changed", what);
	if (memcmp(&before->peer, &now.peer, sizeof now.peer))
		cr_fail("%s: peer address changed", what);
}

static int listener(int family, int *port)
{
	int l = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_storage a;
	memset(&a, 0, sizeof a);
	socklen_t len;
	if (family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)&a;
		in->sin_family = AF_INET;
		in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		len = sizeof *in;
	} else {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&a;
		in6->sin6_family = AF_INET6;
		in6->sin6_addr = in6addr_loopback;
		len = sizeof *in6;
	}
	/* As servers do: the leave-running flavor restores while the original's connections
	 * linger in TIME_WAIT. */
	int one = 1;
	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (l < 0 || bind(l, (struct sockaddr *)&a, len) < 0 || listen(l, 8) < 0)
		_exit(3);
	getsockname(l, (struct sockaddr *)&a, &len);
	*port = ntohs(family == AF_INET ? ((struct sockaddr_in *)&a)->sin_port
					: ((struct sockaddr_in6 *)&a)->sin6_port);
	return l;
}

static int dial(int family, int port)
{
	int c = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_storage a;
	memset(&a, 0, sizeof a);
	socklen_t len;
	if (family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)&a;
		in->sin_family = AF_INET;
		in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		in->sin_port = htons((uint16_t)port);
		len = sizeof *in;
	} else {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&a;
		in6->sin6_family = AF_INET6;
		in6->sin6_addr = in6addr_loopback;
		in6->sin6_port = htons((uint16_t)port);
		len = sizeof *in6;
	}
	if (c < 0 || connect(c, (struct sockaddr *)&a, len) < 0)
		_exit(4);
	return c;
}

/* Fills the connection until nothing more goes (the peer does not read). */
static void fill(struct stream *s)
{
	for (int i = 0; i < 200; i++) {
		uint64_t before = s->sent;
		pump_send(s, UINT64_MAX);
		if (s->sent == before && i > 20)
			break;
		cr_sleep_ms(5);
	}
}

/* Pumps both directions of A-like connections until `stop` returns true. */
static void pump_pair(struct stream *out, struct stream *in, int (*stop)(void))
{
	while (!stop() && !out->bad && !in->bad) {
		struct pollfd p = { in->fd, POLLIN | POLLOUT, 0 };
		poll(&p, 1, 20);
		pump_send(out, UINT64_MAX);
		pump_recv(in);
	}
}

static int go_seen(void)
{
	return cr_exists("go");
}
static long long pump_until;
static int time_up(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000 >= pump_until;
}
static void pump_for(struct stream *out, struct stream *in, int ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	pump_until = ts.tv_sec * 1000LL + ts.tv_nsec / 1000000 + ms;
	pump_pair(out, in, time_up);
}

/* After go: A-like streams go on for a while, then both sides close and read to the end. */
static void finish_pair(const char *who, struct stream *out, struct stream *in, uint64_t got_at_go)
{
	pump_for(out, in, 700);
	/* The peer's data held by the lock comes when its retransmission timer, backed off
	 * while the lock held, fires again. */
	for (int i = 0; i < 20 && in->got <= got_at_go && !in->bad && !out->bad; i++)
		pump_for(out, in, 500);
	if (in->got <= got_at_go && !in->bad)
		cr_fail("%s: no data came after the restore (%llu bytes)", who,
			(unsigned long long)in->got);
	shutdown(out->fd, SHUT_WR);
	drain(in, 10);
}

/* Files written after go are named for this go (the leave-running flavor runs the program
 * twice from one dump, in one WORKDIR): after its inode and change time. */
static const char *after_go(const char *name)
{
	static char out[4][128];
	static int next;
	char path[2300];
	struct stat st;
	cr_path(path, sizeof path, "go");
	memset(&st, 0, sizeof st);
	stat(path, &st);
	char *o = out[next++ % 4];
	snprintf(o, sizeof out[0], "%s-%llx-%llx", name, (unsigned long long)st.st_ino,
		 (unsigned long long)(st.st_ctim.tv_sec * 1000000000LL + st.st_ctim.tv_nsec));
	return o;
}

static void write_total(const char *name, uint64_t v)
{
	char b[32];
	name = after_go(name);
	int n = snprintf(b, sizeof b, "%llu\n", (unsigned long long)v);
	cr_write_file(name, b, (size_t)n);
}

static uint64_t read_total(const char *name)
{
	char path[2300], b[32];
	name = after_go(name);
	cr_path(path, sizeof path, name);
	for (int i = 0; i < 1000; i++) {
		ssize_t n = cr_read_file(path, b, sizeof b - 1);
		if (n > 0) {
			b[n] = 0;
			return strtoull(b, NULL, 10);
		}
		cr_sleep_ms(10);
	}
	cr_fail("%s: the sender wrote no total", name);
	return 0;
}

/* ---- tcp_stream */

static int client(int pa, int pb, int pc, int pd, int pe)
{
	struct stream a = { "A client->server", dial(AF_INET, pa), 0, 0, 0, 0, 0 };
	struct stream ain = { "A server->client (client side)", a.fd, 0, 0, 0, 0, 0 };
	struct stream b = { "B client->server", dial(AF_INET6, pb), 0, 0, 0, 0, 0 };
	struct stream c = { "C client->server", dial(AF_INET, pc), 0, 0, 0, 0, 0 };
	struct stream cin = { "C server->client (client side)", c.fd, 0, 0, 0, 0, 0 };
	struct stream d = { "D client->server", dial(AF_INET6, pd), 0, 0, 0, 0, 0 };
	struct stream ein = { "E server->client (client side)", dial(AF_INET, pe), 0, 0, 0, 0, 0 };
	shutdown(ein.fd, SHUT_WR);
	cr_wait_for("accepted");
	fill(&b);
	pump_send(&c, 1000);
	shutdown(c.fd, SHUT_WR);
	fill(&d);
	shutdown(d.fd, SHUT_WR);
	cr_sleep_ms(50);
	struct snap sb, sc, sd, se;
	cr_wait_for("e-filled");
	take(ein.fd, &se);
	take(b.fd, &sb);
	take(c.fd, &sc);
	take(d.fd, &sd);
	if (sc.state != TCP_FIN_WAIT2)
		cr_fail("setup: C client in state %d, not FIN_WAIT2", sc.state);
	if (sd.state != TCP_FIN_WAIT1)
		cr_fail("setup: D client in state %d, not FIN_WAIT1", sd.state);
	cr_ready_named("ready-client");
	pump_pair(&a, &ain, go_seen);
	uint64_t got_at_go = ain.got;

	compare("B client", b.fd, &sb);
	compare("C client", c.fd, &sc);
	compare("D client", d.fd, &sd);
	compare("E client", ein.fd, &se);
	cr_write_file(after_go("client-checked"), "1\n", 2);
	/* B: more data after the restore, then the end. */
	uint64_t more = b.sent + (1 << 20);
	while (b.sent < more && !b.bad) {
		struct pollfd p = { b.fd, POLLOUT, 0 };
		poll(&p, 1, 20);
		pump_send(&b, more);
	}
	shutdown(b.fd, SHUT_WR);
	write_total("b-total", b.sent);
	write_total("d-total", d.sent);
	/* C: the server answers 5000 bytes and closes. */
	drain(&cin, 10);
	if (cin.got != 5000)
		cr_fail("C: the client read %llu bytes of the server's 5000",
			(unsigned long long)cin.got);
	drain(&ein, 20);
	if (ein.got != read_total("e-total"))
		cr_fail("E: the client read %llu bytes, the server sent %llu",
			(unsigned long long)ein.got, (unsigned long long)read_total("e-total"));
	finish_pair("A client", &a, &ain, got_at_go);
	write_total("a-client-sent", a.sent);
	if (ain.got != read_total("a-server-sent"))
		cr_fail("A: the client read %llu bytes, the server sent %llu",
			(unsigned long long)ain.got, (unsigned long long)read_total("a-server-sent"));
	return cr_verdict("result-client") ;
}

static int server(void)
{
	int pa, pb, pc, pd;
	int la = listener(AF_INET, &pa), lb = listener(AF_INET6, &pb);
	int lc = listener(AF_INET, &pc), ld = listener(AF_INET6, &pd), pe, le = listener(AF_INET, &pe);
	pid_t kid = fork();
	if (kid == 0)
		_exit(client(pa, pb, pc, pd, pe));
	int fa = accept4(la, NULL, NULL, SOCK_CLOEXEC), fb = accept4(lb, NULL, NULL, SOCK_CLOEXEC);
	int fc = accept4(lc, NULL, NULL, SOCK_CLOEXEC), fd = accept4(ld, NULL, NULL, SOCK_CLOEXEC);
	int fe = accept4(le, NULL, NULL, SOCK_CLOEXEC);
	if (fa < 0 || fb < 0 || fc < 0 || fd < 0 || fe < 0)
		_exit(5);
	cr_write_file("accepted", "1\n", 2);
	struct stream e = { "E server->client", fe, 0, 0, 0, 0, 0 };
	fill(&e);
	shutdown(fe, SHUT_WR);
	cr_sleep_ms(50);
	cr_write_file("e-filled", "1\n", 2);
	struct stream a = { "A server->client", fa, 0, 0, 0, 0, 0 };
	struct stream ain = { "A client->server (server side)", fa, 0, 0, 0, 0, 0 };
	struct stream bin = { "B client->server (server side)", fb, 0, 0, 0, 0, 0 };
	struct stream c = { "C server->client", fc, 0, 0, 0, 0, 0 };
	struct stream cin = { "C client->server (server side)", fc, 0, 0, 0, 0, 0 };
	struct stream din = { "D client->server (server side)", fd, 0, 0, 0, 0, 0 };
	cr_wait_for("ready-client");
	struct snap sa, sb, sc, sd, se;
	take(fe, &se);
	if (se.state != TCP_LAST_ACK)
		cr_fail("setup: E server in state %d, not LAST_ACK", se.state);
	take(fb, &sb);
	take(fc, &sc);
	take(fd, &sd);
	if (sc.state != TCP_CLOSE_WAIT)
		cr_fail("setup: C server in state %d, not CLOSE_WAIT", sc.state);
	take(fa, &sa);
	cr_ready();
	pump_pair(&a, &ain, go_seen);
	uint64_t got_at_go = ain.got;
	compare("A server", fa, &sa);
	compare("B server", fb, &sb);
	compare("C server", fc, &sc);
	compare("D server", fd, &sd);
	compare("E server", fe, &se);
	write_total("e-total", e.sent);
	cr_wait_for(after_go("client-checked")); /* before C moves on */

	drain(&cin, 10);
	if (cin.got != 1000)
		cr_fail("C: the server read %llu bytes of the client's 1000 before EOF",
			(unsigned long long)cin.got);
	pump_send(&c, 5000);
	if (c.sent != 5000)
		cr_fail("C: the server could send only %llu bytes after the client's FIN",
			(unsigned long long)c.sent);
	shutdown(fc, SHUT_WR);
	drain(&bin, 20);
	if (bin.got != read_total("b-total"))
		cr_fail("B: the server read %llu bytes, the client sent %llu",
			(unsigned long long)bin.got, (unsigned long long)read_total("b-total"));
	drain(&din, 20);
	if (din.got != read_total("d-total"))
		cr_fail("D: the server read %llu bytes, the client sent %llu",
			(unsigned long long)din.got, (unsigned long long)read_total("d-total"));
	finish_pair("A server", &a, &ain, got_at_go);
	write_total("a-server-sent", a.sent);
	if (ain.got != read_total("a-client-sent"))
		cr_fail("A: the server read %llu bytes, the client sent %llu",
			(unsigned long long)ain.got, (unsigned long long)read_total("a-client-sent"));

	int st = 0;
	while (waitpid(kid, &st, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		char path[2300], buf[2048];
		cr_path(path, sizeof path, "result-client");
		ssize_t n = cr_read_file(path, buf, sizeof buf - 1);
		buf[n > 0 ? n : 0] = 0;
		cr_fail("the client failed (status %#x): %s", st, buf);
	}
	cr_finish();
	return 0;
}

/* ---- tcp_outside / tcp_peer: one A-like connection with a process outside the tree */

static int outside_client(void)
{
	char path[2300], b[32];
	cr_path(path, sizeof path, "peer-port");
	ssize_t n = cr_read_file(path, b, sizeof b - 1);
	if (n <= 0)
		_exit(6);
	b[n] = 0;
	int fd = dial(AF_INET, atoi(b));
	struct stream out = { "tree->peer", fd, 0, 0, 0, 0, 0 };
	struct stream in = { "peer->tree (tree side)", fd, 0, 0, 0, 0, 0 };
	struct snap s;
	pump_for(&out, &in, 200);
	take(fd, &s);
	cr_ready();
	pump_pair(&out, &in, go_seen);
	uint64_t got_at_go = in.got;
	compare("connection to the outside peer", fd, &s);
	finish_pair("tree", &out, &in, got_at_go);
	write_total("tree-sent", out.sent);
	if (in.got != read_total("peer-sent"))
		cr_fail("the tree read %llu bytes, the peer sent %llu", (unsigned long long)in.got,
			(unsigned long long)read_total("peer-sent"));
	cr_finish();
	return 0;
}

static int peer(void)
{
	int port;
	int l = listener(AF_INET, &port);
	char b[32];
	int n = snprintf(b, sizeof b, "%d\n", port);
	cr_write_file("peer-port", b, (size_t)n);
	int fd = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		_exit(5);
	struct stream out = { "peer->tree", fd, 0, 0, 0, 0, 0 };
	struct stream in = { "tree->peer (peer side)", fd, 0, 0, 0, 0, 0 };
	/* Pumps through the dump and the restore, until the tree closes its side. */
	while (!in.eof && !out.bad && !in.bad) {
		struct pollfd p = { fd, POLLIN | POLLOUT, 0 };
		poll(&p, 1, 20);
		if (!out.shut)
			pump_send(&out, UINT64_MAX);
		pump_recv(&in);
		if (!out.shut && cr_exists("go")) {
			/* the tree runs again: go on a while, then close */
			pump_for(&out, &in, 700);
			shutdown(fd, SHUT_WR);
			out.shut = 1;
			write_total("peer-sent", out.sent);
		}
	}
	if (in.eof && in.got != read_total("tree-sent"))
		cr_fail("the peer read %llu bytes, the tree sent %llu", (unsigned long long)in.got,
			(unsigned long long)read_total("tree-sent"));
	return cr_verdict("peer-result");
}

int main(int argc, char **argv)
{
	cr_init(argc, argv);
	const char *me = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
	if (strcmp(me, "tcp_peer") == 0)
		return peer();
	if (strcmp(me, "tcp_outside") == 0)
		return outside_client();
	return server();
}
