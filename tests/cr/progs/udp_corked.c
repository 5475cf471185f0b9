/* udp_corked: a UDP socket corked (UDP_CORK) with 5 bytes written and not sent yet: cryo
 * cannot save a datagram in the making (CRIU refuses corked sockets too), so dump must refuse
 * and leave us running. After go, uncorking sends the whole datagram to our receiver.
 */
#include "common.h"
#include <arpa/inet.h>
#include <linux/udp.h>
#include <netinet/in.h>
#include <sys/socket.h>

int main(int argc, char **argv)
{
	cr_init(argc, argv);
	int r = socket(AF_INET, SOCK_DGRAM, 0), s = socket(AF_INET, SOCK_DGRAM, 0), one = 1, zero = 0;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof a;
	if (r < 0 || s < 0 || bind(r, (struct sockaddr *)&a, sizeof a) < 0 ||
	    getsockname(r, (struct sockaddr *)&a, &len) < 0 || connect(s, (struct sockaddr *)&a, sizeof a) < 0 ||
	    setsockopt(s, IPPROTO_UDP, UDP_CORK, &one, sizeof one) < 0 || send(s, "corked", 6, 0) != 6)
		cr_fail("setup: %s", strerror(errno));
	cr_ready();
	cr_wait_go();
	char buf[16] = { 0 };
	CHECK_I("nothing sent while corked", -1, recv(r, buf, sizeof buf, MSG_DONTWAIT));
	setsockopt(s, IPPROTO_UDP, UDP_CORK, &zero, sizeof zero);
	cr_sleep_ms(50);
	CHECK_I("the corked datagram, once uncorked", 6, recv(r, buf, sizeof buf - 1, MSG_DONTWAIT));
	CHECK_S("its content", "corked", buf);
	cr_finish();
}
