/* unix_inflight: a client that connected to our listener and sent data the server has not
 * accepted yet. That data sits in the kernel's embryo socket, which only accept() reaches:
 * dump must refuse, naming the listener, and leave us running (errors/unix-inflight). After
 * go the connection is accepted and the data is all there.
 */
#include "common.h"
#include <sys/socket.h>
#include <sys/un.h>

int main(int argc, char **argv)
{
	cr_init(argc, argv);
	struct sockaddr_un a;
	memset(&a, 0, sizeof a);
	a.sun_family = AF_UNIX;
	char path[2300];
	cr_path(path, sizeof path, "inflight.sock");
	if (strlen(path) >= sizeof a.sun_path)
		cr_fail("setup: path too long for a unix socket: %s", path);
	memcpy(a.sun_path, path, strnlen(path, sizeof a.sun_path - 1));
	int ls = socket(AF_UNIX, SOCK_STREAM, 0), c = socket(AF_UNIX, SOCK_STREAM, 0);
	if (ls < 0 || c < 0 || bind(ls, (struct sockaddr *)&a, sizeof a) || listen(ls, 4) ||
	    connect(c, (struct sockaddr *)&a, sizeof a))
		cr_fail("setup: %s", strerror(errno));
	if (send(c, "sent-before-accept", 18, 0) != 18)
		cr_fail("setup: send: %s", strerror(errno));
	cr_ready();
	cr_wait_go();
	int s = accept4(ls, NULL, NULL, SOCK_NONBLOCK);
	if (s < 0) {
		cr_fail("accept: %s", strerror(errno));
		cr_finish();
	}
	char buf[64] = { 0 };
	ssize_t n = recv(s, buf, sizeof buf - 1, 0);
	CHECK_I("bytes sent before accept", 18, n);
	CHECK_S("data sent before accept", "sent-before-accept", buf);
	if (send(s, "reply", 5, 0) != 5 || recv(c, buf, sizeof buf, MSG_DONTWAIT) != 5)
		cr_fail("the accepted connection does not work both ways");
	cr_finish();
	return 0;
}
