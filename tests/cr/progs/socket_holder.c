/* socket_holder: holds a unix socketpair with 13 bytes queued (cryo does not
 * support sockets yet: dump must refuse and leave us running). After go, the
 * data must still be queued.
 */
#include "common.h"
#include <sys/socket.h>

int main(int argc, char **argv)
{
	cr_init(argc, argv);
	int p[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, p) < 0) {
		cr_fail("setup: socketpair: %s", strerror(errno));
		cr_finish();
	}
	if (write(p[1], "hello-socket\n", 13) != 13)
		cr_fail("setup: write to socket: %s", strerror(errno));
	cr_ready();
	cr_wait_go();
	char buf[32] = { 0 };
	ssize_t n = read(p[0], buf, sizeof buf - 1);
	CHECK_I("bytes read back from the socket", 13, n);
	CHECK_S("socket content", "hello-socket\n", buf);
	cr_finish();
}
