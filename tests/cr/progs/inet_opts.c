/* inet_opts: inet sockets of the rarer kinds and their options. An ICMP ("ping") socket bound
 * to ident 4242 (net.ipv4.ping_group_range is opened to root, "0 0", for the test if needed;
 * it stays so: a restore after the original ends needs it too); a UDP-Lite socket; raw sockets (protocol 253 with IP_HDRINCL and IP_NODEFRAG, ICMP with
 * an ICMP_FILTER); a UDP socket bound with IP_FREEBIND to an address no interface has; one
 * bound to "lo" (SO_BINDTODEVICE); a TCP listener with SO_LINGER, SO_KEEPALIVE, TCP_KEEPIDLE/
 * INTVL/CNT, TCP_NODELAY and TCP_CORK; UDP sockets with classic BPF filters (drop all, accept
 * all); connected UDP sockets shut down for reading, for writing and both; a UDP socket with
 * UDP_CORK set and nothing pending. After restore every option reads back the same and the
 * sockets behave so (echo reply on the ping socket, datagrams through UDP-Lite, the filters
 * dropping or passing, the shutdowns).
 */
#include "common.h"
#include <arpa/inet.h>
#include <linux/filter.h>
#include <linux/icmp.h>
#include <linux/udp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

static int iopt(int s, int level, int name)
{
	int v = -12345;
	socklen_t l = sizeof v;
	if (getsockopt(s, level, name, &v, &l) < 0)
		return -1;
	return v;
}

static struct sockaddr_in lo_addr(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	return a;
}

static int port_of(int s)
{
	struct sockaddr_in a;
	socklen_t l = sizeof a;
	if (getsockname(s, (struct sockaddr *)&a, &l) < 0)
		return -1;
	return ntohs(a.sin_port);
}

static short poll_events(int s)
{
	struct pollfd p = { s, POLLIN | POLLOUT | POLLRDHUP, 0 };
	poll(&p, 1, 0);
	return p.revents;
}

int main(int argc, char **argv)
{
	cr_init(argc, argv);
	char range[64] = { 0 };
	int rf = open("/proc/sys/net/ipv4/ping_group_range", O_RDONLY);
	if (rf >= 0) {
		if (read(rf, range, sizeof range - 1) < 0)
			range[0] = 0;
		close(rf);
	}
	int ping = socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP);
	int opened_range = 0;
	if (ping < 0 && errno == EACCES) {
		rf = open("/proc/sys/net/ipv4/ping_group_range", O_WRONLY);
		if (rf < 0 || write(rf, "0 0", 3) != 3)
			cr_fail("setup: cannot open ping_group_range to root: %s", strerror(errno));
		close(rf);
		opened_range = 1;
		ping = socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP);
	}
	struct sockaddr_in a = lo_addr(4242);
	if (ping < 0 || bind(ping, (struct sockaddr *)&a, sizeof a) < 0)
		cr_fail("setup: ping socket: %s", strerror(errno));

	int lite = socket(AF_INET, SOCK_DGRAM, IPPROTO_UDPLITE);
	a = lo_addr(0);
	if (lite < 0 || bind(lite, (struct sockaddr *)&a, sizeof a) < 0)
		cr_fail("setup: UDP-Lite: %s", strerror(errno));
	const int lite_port = port_of(lite);

	int one = 1;
	int raw = socket(AF_INET, SOCK_RAW, 253);
	if (raw < 0 || setsockopt(raw, IPPROTO_IP, IP_HDRINCL, &one, sizeof one) ||
	    setsockopt(raw, IPPROTO_IP, IP_NODEFRAG, &one, sizeof one))
		cr_fail("setup: raw socket: %s", strerror(errno));
	int rawicmp = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
	struct icmp_filter flt = { 0x12345678 };
	if (rawicmp < 0 || setsockopt(rawicmp, SOL_RAW, ICMP_FILTER, &flt, sizeof flt))
		cr_fail("setup: raw ICMP socket: %s", strerror(errno));

	int fb = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in absent = { .sin_family = AF_INET, .sin_port = htons(5555) };
	inet_pton(AF_INET, "192.0.2.77", &absent.sin_addr);
	if (setsockopt(fb, IPPROTO_IP, IP_FREEBIND, &one, sizeof one) ||
	    bind(fb, (struct sockaddr *)&absent, sizeof absent))
		cr_fail("setup: IP_FREEBIND: %s", strerror(errno));

	int dev = socket(AF_INET, SOCK_DGRAM, 0);
	if (setsockopt(dev, SOL_SOCKET, SO_BINDTODEVICE, "lo", 2))
		cr_fail("setup: SO_BINDTODEVICE: %s", strerror(errno));

	int tl = socket(AF_INET, SOCK_STREAM, 0);
	struct linger lg = { 1, 7 };
	int idle = 111, intvl = 22, cnt = 5;
	a = lo_addr(0);
	if (setsockopt(tl, SOL_SOCKET, SO_LINGER, &lg, sizeof lg) ||
	    setsockopt(tl, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one) ||
	    setsockopt(tl, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle) ||
	    setsockopt(tl, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl) ||
	    setsockopt(tl, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt) ||
	    setsockopt(tl, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) ||
	    setsockopt(tl, IPPROTO_TCP, TCP_CORK, &one, sizeof one) ||
	    bind(tl, (struct sockaddr *)&a, sizeof a) || listen(tl, 3))
		cr_fail("setup: TCP options: %s", strerror(errno));
	const int tl_port = port_of(tl);

	struct sock_filter drop[] = { { BPF_RET | BPF_K, 0, 0, 0 } };
	struct sock_filter pass[] = { { BPF_LD | BPF_W | BPF_LEN, 0, 0, 0 }, { BPF_RET | BPF_K, 0, 0, 0xffff } };
	struct sock_fprog pd = { 1, drop }, pp = { 2, pass };
	int fdrop = socket(AF_INET, SOCK_DGRAM, 0), fpass = socket(AF_INET, SOCK_DGRAM, 0);
	a = lo_addr(0);
	if (bind(fdrop, (struct sockaddr *)&a, sizeof a) || bind(fpass, (struct sockaddr *)&a, sizeof a) ||
	    setsockopt(fdrop, SOL_SOCKET, SO_ATTACH_FILTER, &pd, sizeof pd) ||
	    setsockopt(fpass, SOL_SOCKET, SO_ATTACH_FILTER, &pp, sizeof pp))
		cr_fail("setup: filters: %s", strerror(errno));

	int shr = socket(AF_INET, SOCK_DGRAM, 0), shw = socket(AF_INET, SOCK_DGRAM, 0), shb = socket(AF_INET, SOCK_DGRAM, 0);
	a = lo_addr(9);
	if (connect(shr, (struct sockaddr *)&a, sizeof a) || connect(shw, (struct sockaddr *)&a, sizeof a) ||
	    connect(shb, (struct sockaddr *)&a, sizeof a) || shutdown(shr, SHUT_RD) || shutdown(shw, SHUT_WR) ||
	    shutdown(shb, SHUT_RDWR))
		cr_fail("setup: shutdowns: %s", strerror(errno));

	int cork = socket(AF_INET, SOCK_DGRAM, 0);
	if (setsockopt(cork, IPPROTO_UDP, UDP_CORK, &one, sizeof one))
		cr_fail("setup: UDP_CORK: %s", strerror(errno));

	cr_ready();
	cr_wait_go();

	/* ping */
	CHECK_I("ping socket protocol", IPPROTO_ICMP, iopt(ping, SOL_SOCKET, SO_PROTOCOL));
	CHECK_I("ping socket type", SOCK_DGRAM, iopt(ping, SOL_SOCKET, SO_TYPE));
	CHECK_I("ping socket ident", 4242, port_of(ping));
	struct icmphdr req = { .type = ICMP_ECHO, .un.echo.sequence = htons(7) };
	a = lo_addr(0);
	if (sendto(ping, &req, sizeof req, 0, (struct sockaddr *)&a, sizeof a) != sizeof req)
		cr_fail("ping: send echo request: %s", strerror(errno));
	struct pollfd pf = { ping, POLLIN, 0 };
	poll(&pf, 1, 2000);
	struct icmphdr rep;
	memset(&rep, 0, sizeof rep);
	CHECK_I("bytes of the echo reply", sizeof rep, recv(ping, &rep, sizeof rep, MSG_DONTWAIT));
	CHECK_I("echo reply type", ICMP_ECHOREPLY, rep.type);
	CHECK_I("echo reply ident", 4242, ntohs(rep.un.echo.id));
	CHECK_I("echo reply sequence", 7, ntohs(rep.un.echo.sequence));

	/* UDP-Lite */
	CHECK_I("UDP-Lite protocol", IPPROTO_UDPLITE, iopt(lite, SOL_SOCKET, SO_PROTOCOL));
	CHECK_I("UDP-Lite port", lite_port, port_of(lite));
	a = lo_addr(lite_port);
	if (sendto(lite, "lite", 4, 0, (struct sockaddr *)&a, sizeof a) != 4)
		cr_fail("UDP-Lite: send: %s", strerror(errno));
	char buf[64] = { 0 };
	pf.fd = lite;
	poll(&pf, 1, 2000);
	CHECK_I("UDP-Lite datagram", 4, recv(lite, buf, sizeof buf, MSG_DONTWAIT));

	/* raw */
	CHECK_I("raw socket type", SOCK_RAW, iopt(raw, SOL_SOCKET, SO_TYPE));
	CHECK_I("raw socket protocol", 253, iopt(raw, SOL_SOCKET, SO_PROTOCOL));
	CHECK_I("raw IP_HDRINCL", 1, iopt(raw, IPPROTO_IP, IP_HDRINCL));
	CHECK_I("raw IP_NODEFRAG", 1, iopt(raw, IPPROTO_IP, IP_NODEFRAG));
	CHECK_I("raw ICMP socket protocol", IPPROTO_ICMP, iopt(rawicmp, SOL_SOCKET, SO_PROTOCOL));
	struct icmp_filter got = { 0 };
	socklen_t gl = sizeof got;
	getsockopt(rawicmp, SOL_RAW, ICMP_FILTER, &got, &gl);
	CHECK_X("raw ICMP_FILTER", 0x12345678, got.data);

	/* freebind */
	struct sockaddr_in ga;
	socklen_t gal = sizeof ga;
	getsockname(fb, (struct sockaddr *)&ga, &gal);
	CHECK_X("IP_FREEBIND socket address", absent.sin_addr.s_addr, ga.sin_addr.s_addr);
	CHECK_I("IP_FREEBIND socket port", 5555, ntohs(ga.sin_port));
	CHECK_I("IP_FREEBIND", 1, iopt(fb, IPPROTO_IP, IP_FREEBIND));

	/* device */
	char ifn[16] = { 0 };
	socklen_t il = sizeof ifn;
	getsockopt(dev, SOL_SOCKET, SO_BINDTODEVICE, ifn, &il);
	CHECK_S("SO_BINDTODEVICE", "lo", ifn);

	/* TCP */
	struct linger glg = { 0, 0 };
	socklen_t ll = sizeof glg;
	getsockopt(tl, SOL_SOCKET, SO_LINGER, &glg, &ll);
	CHECK_I("SO_LINGER on", 1, glg.l_onoff);
	CHECK_I("SO_LINGER time", 7, glg.l_linger);
	CHECK_I("SO_KEEPALIVE", 1, iopt(tl, SOL_SOCKET, SO_KEEPALIVE));
	CHECK_I("TCP_KEEPIDLE", 111, iopt(tl, IPPROTO_TCP, TCP_KEEPIDLE));
	CHECK_I("TCP_KEEPINTVL", 22, iopt(tl, IPPROTO_TCP, TCP_KEEPINTVL));
	CHECK_I("TCP_KEEPCNT", 5, iopt(tl, IPPROTO_TCP, TCP_KEEPCNT));
	CHECK_I("TCP_NODELAY", 1, iopt(tl, IPPROTO_TCP, TCP_NODELAY));
	CHECK_I("TCP_CORK", 1, iopt(tl, IPPROTO_TCP, TCP_CORK));
	CHECK_I("listener port", tl_port, port_of(tl));
	int c = socket(AF_INET, SOCK_STREAM, 0);
	a = lo_addr(tl_port);
	if (connect(c, (struct sockaddr *)&a, sizeof a) < 0)
		cr_fail("connect to the listener: %s", strerror(errno));
	int ac = accept(tl, NULL, NULL);
	if (ac < 0)
		cr_fail("accept: %s", strerror(errno));
	else
		CHECK_I("TCP_KEEPIDLE inherited by the accepted socket", 111, iopt(ac, IPPROTO_TCP, TCP_KEEPIDLE));
	/* the client closes first: the TIME_WAIT is its own, not the listener's port (a restore
	 * after --leave-running binds that port again) */
	close(c);
	cr_sleep_ms(50);
	close(ac);

	/* filters */
	struct sock_filter fbuf[4];
	socklen_t fl = 4;
	memset(fbuf, 0, sizeof fbuf);
	if (getsockopt(fpass, SOL_SOCKET, SO_GET_FILTER, fbuf, &fl) < 0)
		cr_fail("SO_GET_FILTER: %s", strerror(errno));
	CHECK_I("instructions of the passing filter", 2, fl);
	CHECK_I("its first instruction", 0, memcmp(&fbuf[0], &pass[0], sizeof pass[0]));
	CHECK_I("its second instruction", 0, memcmp(&fbuf[1], &pass[1], sizeof pass[1]));
	fl = 4;
	getsockopt(fdrop, SOL_SOCKET, SO_GET_FILTER, fbuf, &fl);
	CHECK_I("instructions of the dropping filter", 1, fl);
	int snd = socket(AF_INET, SOCK_DGRAM, 0);
	a = lo_addr(port_of(fdrop));
	sendto(snd, "x", 1, 0, (struct sockaddr *)&a, sizeof a);
	a = lo_addr(port_of(fpass));
	sendto(snd, "y", 1, 0, (struct sockaddr *)&a, sizeof a);
	pf.fd = fpass;
	poll(&pf, 1, 2000);
	CHECK_I("the passing filter lets a datagram in", 1, recv(fpass, buf, sizeof buf, MSG_DONTWAIT));
	CHECK_I("the dropping filter lets none in", -1, recv(fdrop, buf, sizeof buf, MSG_DONTWAIT));

	/* shutdowns */
	CHECK_X("poll of the socket shut for reading", POLLIN | POLLOUT | POLLRDHUP, poll_events(shr));
	CHECK_I("read on it finds nothing", -1, recv(shr, buf, sizeof buf, MSG_DONTWAIT));
	CHECK_I("send on the socket shut for writing fails", -1, send(shw, "z", 1, MSG_NOSIGNAL));
	CHECK_I("with EPIPE", EPIPE, errno);
	CHECK_X("poll of the socket shut both ways", POLLIN | POLLOUT | POLLRDHUP | POLLHUP, poll_events(shb));
	CHECK_I("UDP_CORK", 1, iopt(cork, IPPROTO_UDP, UDP_CORK));

	if (opened_range)
		cr_note("net.ipv4.ping_group_range was \"%s\", opened to root (\"0 0\") for the test", range);
	cr_finish();
}
