/* unix_creds_outside: a SO_PASSCRED datagram socket holding a message whose credentials name
 * pid 1 (set by us, root): restore could not send it again as a process outside the tree, so
 * dump must refuse (CRIU drops such a message) and leave us running. After go, the message is
 * still there with its credentials.
 */
#include "common.h"
#include <sys/socket.h>

int main(int argc, char **argv)
{
	cr_init(argc, argv);
	int sv[2], one = 1;
	struct ucred cr = { 1, 0, 0 };
	char ctl[CMSG_SPACE(sizeof cr)];
	struct iovec iov = { "from-init", 9 };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof ctl };
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_CREDENTIALS;
	c->cmsg_len = CMSG_LEN(sizeof cr);
	memcpy(CMSG_DATA(c), &cr, sizeof cr);
	if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sv) || setsockopt(sv[1], SOL_SOCKET, SO_PASSCRED, &one, sizeof one) ||
	    sendmsg(sv[0], &m, 0) != 9)
		cr_fail("setup: %s", strerror(errno));
	cr_ready();
	cr_wait_go();
	char buf[16] = { 0 }, rctl[CMSG_SPACE(sizeof cr)];
	struct iovec riov = { buf, sizeof buf - 1 };
	struct msghdr r = { .msg_iov = &riov, .msg_iovlen = 1, .msg_control = rctl, .msg_controllen = sizeof rctl };
	CHECK_I("bytes of the message", 9, recvmsg(sv[1], &r, MSG_DONTWAIT));
	CHECK_S("the message", "from-init", buf);
	c = CMSG_FIRSTHDR(&r);
	struct ucred got = { 0, 0, 0 };
	if (c && c->cmsg_type == SCM_CREDENTIALS)
		memcpy(&got, CMSG_DATA(c), sizeof got);
	CHECK_I("its sender pid", 1, got.pid);
	cr_finish();
}
