/* packet_netlink: packet and netlink sockets. A raw packet socket for IPv4 bound to lo with
 * TPACKET_V2, a reserve of 64, PACKET_AUXDATA, promiscuous and multicast memberships on lo, a
 * fanout group (hash, id 777), and an rx ring mapped into memory (its frames are not saved); an
 * unbound datagram packet socket; a NETLINK_ROUTE socket bound to a chosen port id with groups
 * 1 and 5 joined by bind and 33 by NETLINK_ADD_MEMBERSHIP; an unbound NETLINK_GENERIC socket.
 * After restore every setting reads back the same; the packet socket sees a datagram sent
 * over lo, in its ring too; the route socket answers a link dump request at its port id.
 */
#include "common.h"
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/ethernet.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>

#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif

static int popt(int s, int name)
{
	int v = -12345;
	socklen_t l = sizeof v;
	if (getsockopt(s, SOL_PACKET, name, &v, &l) < 0)
		return -1;
	return v;
}

int main(int argc, char **argv)
{
	cr_init(argc, argv);
	const int lo = 1;
	int ps = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_IP));
	struct sockaddr_ll ll = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_IP), .sll_ifindex = lo };
	int v2 = TPACKET_V2, reserve = 64, one = 1;
	struct packet_mreq promisc = { .mr_ifindex = lo, .mr_type = PACKET_MR_PROMISC };
	struct packet_mreq mc = { .mr_ifindex = lo, .mr_type = PACKET_MR_MULTICAST, .mr_alen = 6,
				  .mr_address = { 0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb } };
	struct tpacket_req ring = { .tp_block_size = 4096, .tp_block_nr = 4, .tp_frame_size = 2048, .tp_frame_nr = 8 };
	int fanout = 777 | (PACKET_FANOUT_HASH << 16);
	if (ps < 0 || bind(ps, (struct sockaddr *)&ll, sizeof ll) ||
	    setsockopt(ps, SOL_PACKET, PACKET_VERSION, &v2, sizeof v2) ||
	    setsockopt(ps, SOL_PACKET, PACKET_RESERVE, &reserve, sizeof reserve) ||
	    setsockopt(ps, SOL_PACKET, PACKET_AUXDATA, &one, sizeof one) ||
	    setsockopt(ps, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &promisc, sizeof promisc) ||
	    setsockopt(ps, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mc, sizeof mc) ||
	    setsockopt(ps, SOL_PACKET, PACKET_RX_RING, &ring, sizeof ring) ||
	    setsockopt(ps, SOL_PACKET, PACKET_FANOUT, &fanout, sizeof fanout))
		cr_fail("setup: packet socket: %s", strerror(errno));
	const int ps_proto = ({
		int p = -1;
		socklen_t l = sizeof p;
		getsockopt(ps, SOL_SOCKET, SO_PROTOCOL, &p, &l);
		p;
	});
	size_t ring_len = 4 * 4096;
	unsigned char *rx = mmap(NULL, ring_len, PROT_READ | PROT_WRITE, MAP_SHARED, ps, 0);
	if (rx == MAP_FAILED)
		cr_fail("setup: mmap of the ring: %s", strerror(errno));
	int pd = socket(AF_PACKET, SOCK_DGRAM, 0);
	if (pd < 0)
		cr_fail("setup: datagram packet socket: %s", strerror(errno));

	int nl = socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE);
	struct sockaddr_nl na = { .nl_family = AF_NETLINK, .nl_pid = 0x7a000000u | (unsigned)getpid(),
				  .nl_groups = RTMGRP_LINK | RTMGRP_IPV4_ROUTE };
	int g33 = 33;
	if (nl < 0 || bind(nl, (struct sockaddr *)&na, sizeof na) ||
	    setsockopt(nl, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &g33, sizeof g33))
		cr_fail("setup: netlink socket: %s", strerror(errno));
	int ng = socket(AF_NETLINK, SOCK_RAW, NETLINK_GENERIC);

	cr_ready();
	cr_wait_go();

	/* packet */
	CHECK_I("packet socket protocol", ps_proto, ({
		int p = -1;
		socklen_t l = sizeof p;
		getsockopt(ps, SOL_SOCKET, SO_PROTOCOL, &p, &l);
		p;
	}));
	struct sockaddr_ll got;
	socklen_t gl = sizeof got;
	memset(&got, 0, sizeof got);
	getsockname(ps, (struct sockaddr *)&got, &gl);
	CHECK_I("packet socket interface", lo, got.sll_ifindex);
	CHECK_X("packet socket bound protocol", htons(ETH_P_IP), got.sll_protocol);
	CHECK_I("PACKET_VERSION", TPACKET_V2, popt(ps, PACKET_VERSION));
	CHECK_I("PACKET_RESERVE", 64, popt(ps, PACKET_RESERVE));
	CHECK_I("PACKET_AUXDATA", 1, popt(ps, PACKET_AUXDATA));
	CHECK_I("PACKET_FANOUT", fanout, popt(ps, PACKET_FANOUT));
	CHECK_I("PACKET_LOSS", 0, popt(ps, PACKET_LOSS));
	/* a datagram over lo: seen by the packet socket, in its ring */
	for (int i = 0; i < 8; i++) { /* give back frames taken before the dump */
		struct tpacket2_hdr *h = (struct tpacket2_hdr *)(rx + i * 2048);
		h->tp_status = TP_STATUS_KERNEL;
	}
	int u = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(9), .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	sendto(u, "packet-marker", 13, 0, (struct sockaddr *)&to, sizeof to);
	int seen = 0;
	for (int tries = 0; tries < 100 && !seen; tries++) {
		for (int i = 0; i < 8 && !seen; i++) {
			struct tpacket2_hdr *h = (struct tpacket2_hdr *)(rx + i * 2048);
			if (!(h->tp_status & TP_STATUS_USER))
				continue;
			if (memmem((unsigned char *)h + h->tp_mac, h->tp_snaplen, "packet-marker", 13))
				seen = 1;
			h->tp_status = TP_STATUS_KERNEL;
		}
		if (!seen)
			cr_sleep_ms(10);
	}
	CHECK_I("the datagram over lo reached the packet socket's mapped ring", 1, seen);
	CHECK_I("datagram packet socket type", SOCK_DGRAM, ({
		int t = -1;
		socklen_t l = sizeof t;
		getsockopt(pd, SOL_SOCKET, SO_TYPE, &t, &l);
		t;
	}));

	/* netlink */
	struct sockaddr_nl ga;
	socklen_t gal = sizeof ga;
	memset(&ga, 0, sizeof ga);
	getsockname(nl, (struct sockaddr *)&ga, &gal);
	CHECK_X("netlink port id", na.nl_pid, ga.nl_pid);
	CHECK_X("netlink groups joined by bind", RTMGRP_LINK | RTMGRP_IPV4_ROUTE, ga.nl_groups);
	uint32_t groups[4] = { 0 };
	socklen_t glen = sizeof groups;
	if (getsockopt(nl, SOL_NETLINK, NETLINK_LIST_MEMBERSHIPS, groups, &glen) < 0)
		cr_fail("NETLINK_LIST_MEMBERSHIPS: %s", strerror(errno));
	CHECK_X("netlink groups 1-32", RTMGRP_LINK | RTMGRP_IPV4_ROUTE, groups[0]);
	CHECK_X("netlink groups 33-64", 1, groups[1]);
	struct {
		struct nlmsghdr h;
		struct rtgenmsg g;
	} req = { { sizeof req, RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, 42, na.nl_pid }, { AF_PACKET } };
	if (send(nl, &req, sizeof req, 0) != sizeof req)
		cr_fail("netlink: send a link dump request: %s", strerror(errno));
	char buf[16384];
	int answered = 0;
	for (int tries = 0; tries < 50 && !answered; tries++) {
		ssize_t n = recv(nl, buf, sizeof buf, MSG_DONTWAIT);
		if (n < 0) {
			cr_sleep_ms(10);
			continue;
		}
		for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, n); h = NLMSG_NEXT(h, n))
			if (h->nlmsg_seq == 42 && h->nlmsg_type == RTM_NEWLINK && h->nlmsg_pid == na.nl_pid)
				answered = 1;
	}
	CHECK_I("the route socket answers a link dump at its port id", 1, answered);
	CHECK_I("generic netlink protocol", NETLINK_GENERIC, ({
		int p = -1;
		socklen_t l = sizeof p;
		getsockopt(ng, SOL_SOCKET, SO_PROTOCOL, &p, &l);
		p;
	}));
	cr_finish();
}
