/* inet_sockets: a TCP listener on 127.0.0.1 (SO_REUSEADDR, non-blocking), a TCP listener on
 * [::1] (IPV6_V6ONLY), a bound UDP socket and a UDP socket connected to it. After restore
 * they have the same addresses and options, the listeners accept new connections and the
 * connected UDP socket still reaches the bound one.
 */
#include "common.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

static int port_of(int s) {
	struct sockaddr_storage a;
	socklen_t len = sizeof a;
	if (getsockname(s, (struct sockaddr *)&a, &len)) return -1;
	return a.ss_family == AF_INET ? ntohs(((struct sockaddr_in *)&a)->sin_port)
				      : ntohs(((struct sockaddr_in6 *)&a)->sin6_port);
}

static int opt(int s, int level, int name) {
	int v = -1;
	socklen_t len = sizeof v;
	getsockopt(s, level, name, &v, &len);
	return v;
}

int main(int argc, char **argv) {
	cr_init(argc, argv);
	int one = 1;
	int t4 = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	setsockopt(t4, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	struct sockaddr_in a4 = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (bind(t4, (struct sockaddr *)&a4, sizeof a4) || listen(t4, 17)) cr_fail("setup: tcp4");
	int t6 = socket(AF_INET6, SOCK_STREAM, 0);
	setsockopt(t6, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
	/* Without it, the connection the leave-running flavor's first run accepts here would
	 * hold the port in TIME_WAIT and no restore could listen on it for 60 s. */
	setsockopt(t6, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
	if (bind(t6, (struct sockaddr *)&a6, sizeof a6) || listen(t6, 5)) cr_fail("setup: tcp6");
	int ub = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in au = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof au;
	if (bind(ub, (struct sockaddr *)&au, sizeof au) || getsockname(ub, (struct sockaddr *)&au, &len)) cr_fail("setup: udp");
	int uc = socket(AF_INET, SOCK_DGRAM, 0);
	if (connect(uc, (struct sockaddr *)&au, sizeof au)) cr_fail("setup: udp connect");
	int p4 = port_of(t4), p6 = port_of(t6), pu = port_of(ub), pc = port_of(uc);
	cr_ready();
	cr_wait_go();
	if (port_of(t4) != p4 || port_of(t6) != p6 || port_of(ub) != pu || port_of(uc) != pc)
		cr_fail("ports changed: %d/%d %d/%d %d/%d %d/%d", p4, port_of(t4), p6, port_of(t6), pu, port_of(ub), pc, port_of(uc));
	if (opt(t4, SOL_SOCKET, SO_ACCEPTCONN) != 1 || opt(t6, SOL_SOCKET, SO_ACCEPTCONN) != 1) cr_fail("listeners not listening");
	if (opt(t4, SOL_SOCKET, SO_REUSEADDR) != 1) cr_fail("SO_REUSEADDR lost");
	if (opt(t6, IPPROTO_IPV6, IPV6_V6ONLY) != 1) cr_fail("IPV6_V6ONLY lost");
	if (!(fcntl(t4, F_GETFL) & O_NONBLOCK)) cr_fail("O_NONBLOCK lost on the tcp4 listener");
	int c = socket(AF_INET, SOCK_STREAM, 0);
	a4.sin_port = htons((uint16_t)p4);
	if (connect(c, (struct sockaddr *)&a4, sizeof a4)) cr_fail("connect to the tcp4 listener: %s", strerror(errno));
	cr_sleep_ms(20);
	int s = accept(t4, NULL, NULL);
	if (s < 0) cr_fail("accept on tcp4: %s", strerror(errno));
	else if (write(c, "hi", 2) != 2 || read(s, (char[4]){0}, 4) != 2) cr_fail("tcp4 data");
	int c6 = socket(AF_INET6, SOCK_STREAM, 0);
	a6.sin6_port = htons((uint16_t)p6);
	if (connect(c6, (struct sockaddr *)&a6, sizeof a6)) cr_fail("connect to the tcp6 listener: %s", strerror(errno));
	if (accept(t6, NULL, NULL) < 0) cr_fail("accept on tcp6");
	if (send(uc, "dgram", 5, 0) != 5) cr_fail("udp send: %s", strerror(errno));
	char buf[16] = {0};
	cr_sleep_ms(20);
	if (recv(ub, buf, sizeof buf, MSG_DONTWAIT) != 5 || strcmp(buf, "dgram")) cr_fail("udp: got \"%s\"", buf);
	cr_finish();
	return 0;
}
