/* socket_holder: holds a UDP socket on loopback with two datagrams queued, an empty one
 * first (cryo cannot save queued datagrams: dump must refuse and leave us running). After
 * go, both datagrams must still be queued.
 */
#include "common.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

int main(int argc, char **argv)
{
	cr_init(argc, argv);
	int s = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof a;
	if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) < 0 ||
	    getsockname(s, (struct sockaddr *)&a, &len) < 0) {
		cr_fail("setup: udp socket: %s", strerror(errno));
		cr_finish();
	}
	/* an empty datagram first: the socket's FIONREAD then says 0 */
	if (sendto(s, "", 0, 0, (struct sockaddr *)&a, sizeof a) != 0 ||
	    sendto(s, "hello-socket\n", 13, 0, (struct sockaddr *)&a, sizeof a) != 13)
		cr_fail("setup: sendto: %s", strerror(errno));
	cr_ready();
	cr_wait_go();
	char buf[32] = { 0 };
	ssize_t n = recv(s, buf, sizeof buf - 1, MSG_DONTWAIT);
	CHECK_I("bytes of the first (empty) datagram", 0, n);
	n = recv(s, buf, sizeof buf - 1, MSG_DONTWAIT);
	CHECK_I("bytes read back from the socket", 13, n);
	CHECK_S("socket content", "hello-socket\n", buf);
	cr_finish();
}
