/* unix_scm: messages in flight carrying fds (SCM_RIGHTS) and credentials (SCM_CREDENTIALS).
 * A stream socket holds a message carrying three fds the sender closed since: a pipe's read
 * end (data in the pipe), a regular file at offset 3 and one end of a socketpair with data
 * queued for it; then plain data after. A datagram socket holds a message carrying the same
 * regular file again (one open file: one offset). A seqpacket socket with SO_PASSCRED holds a
 * message with our own credentials and one with uid 1000 / gid 1000 set by us (root).
 * After restore every message comes with its fds and credentials, the fds work (pipe data,
 * file content and shared offset, the socket's queued data and its connection).
 */
#include "common.h"
#include <sys/socket.h>
#include <sys/un.h>

static int send_fds(int s, const char *data, const int *fds, int n)
{
	char ctl[CMSG_SPACE(sizeof(int) * 8)];
	struct iovec iov = { (void *)data, strlen(data) };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl,
			    .msg_controllen = CMSG_SPACE(sizeof(int) * n) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int) * n);
	memcpy(CMSG_DATA(c), fds, sizeof(int) * n);
	return sendmsg(s, &m, 0) == (ssize_t)strlen(data) ? 0 : -1;
}

/* Receives a message: its data, up to 8 fds, and its credentials (pid -1 if none). */
static int recv_msg(int s, char *buf, size_t len, int *fds, int *nfds, struct ucred *cr)
{
	char ctl[CMSG_SPACE(sizeof(int) * 8) + CMSG_SPACE(sizeof(struct ucred))];
	struct iovec iov = { buf, len - 1 };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof ctl };
	memset(buf, 0, len);
	*nfds = 0;
	cr->pid = -1;
	ssize_t n = recvmsg(s, &m, MSG_DONTWAIT);
	if (n < 0)
		return -1;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
		if (c->cmsg_type == SCM_RIGHTS) {
			*nfds = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
			memcpy(fds, CMSG_DATA(c), sizeof(int) * *nfds);
		} else if (c->cmsg_type == SCM_CREDENTIALS) {
			memcpy(cr, CMSG_DATA(c), sizeof *cr);
		}
	}
	if (m.msg_flags & MSG_CTRUNC)
		cr_fail("control data truncated");
	return (int)n;
}

int main(int argc, char **argv)
{
	cr_init(argc, argv);
	int st[2], dg[2], sq[2], inner[2], p[2], one = 1;
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, st) || socketpair(AF_UNIX, SOCK_DGRAM, 0, dg) ||
	    socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sq) || socketpair(AF_UNIX, SOCK_STREAM, 0, inner) ||
	    pipe(p))
		cr_fail("setup: sockets: %s", strerror(errno));
	char path[2300];
	cr_path(path, sizeof path, "data.txt");
	int f = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (f < 0 || write(f, "0123456789", 10) != 10 || lseek(f, 3, SEEK_SET) != 3)
		cr_fail("setup: data.txt: %s", strerror(errno));
	if (write(p[1], "pipe-data", 9) != 9 || send(inner[1], "inner", 5, 0) != 5)
		cr_fail("setup: data: %s", strerror(errno));

	int three[3] = { p[0], f, inner[0] };
	if (send_fds(st[0], "with-fds", three, 3) || send(st[0], "tail", 4, 0) != 4 ||
	    send_fds(dg[0], "same-file", &f, 1))
		cr_fail("setup: send fds: %s", strerror(errno));
	close(p[0]);
	close(f);
	close(inner[0]);

	if (setsockopt(sq[1], SOL_SOCKET, SO_PASSCRED, &one, sizeof one) || send(sq[0], "mine", 4, 0) != 4)
		cr_fail("setup: credentials: %s", strerror(errno));
	{
		struct ucred cr = { getpid(), 1000, 1000 };
		char ctl[CMSG_SPACE(sizeof cr)];
		struct iovec iov = { "spoofed", 7 };
		struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof ctl };
		struct cmsghdr *c = CMSG_FIRSTHDR(&m);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_CREDENTIALS;
		c->cmsg_len = CMSG_LEN(sizeof cr);
		memcpy(CMSG_DATA(c), &cr, sizeof cr);
		if (sendmsg(sq[0], &m, 0) != 7)
			cr_fail("setup: send credentials: %s", strerror(errno));
	}

	cr_ready();
	cr_wait_go();

	char buf[64];
	int fds[8], n;
	struct ucred cr;
	int got = recv_msg(st[1], buf, sizeof buf, fds, &n, &cr);
	CHECK_I("bytes of the message with fds", 8, got);
	CHECK_S("message with fds", "with-fds", buf);
	CHECK_I("fds with the stream message", 3, n);
	if (n == 3) {
		memset(buf, 0, sizeof buf);
		CHECK_I("bytes read from the pipe in flight", 9, read(fds[0], buf, sizeof buf - 1));
		CHECK_S("data of the pipe in flight", "pipe-data", buf);
		CHECK_I("write end still feeds it", 3, write(p[1], "abc", 3));
		memset(buf, 0, sizeof buf);
		CHECK_I("bytes read from the pipe again", 3, read(fds[0], buf, sizeof buf - 1));
		CHECK_I("offset of the file in flight", 3, lseek(fds[1], 0, SEEK_CUR));
		CHECK_X("flags of the file in flight", O_RDWR, fcntl(fds[1], F_GETFL) & O_ACCMODE);
		memset(buf, 0, sizeof buf);
		CHECK_I("bytes read from the file in flight", 2, read(fds[1], buf, 2));
		CHECK_S("content of the file in flight", "34", buf);
		memset(buf, 0, sizeof buf);
		CHECK_I("bytes queued on the socket in flight", 5, recv(fds[2], buf, sizeof buf - 1, MSG_DONTWAIT));
		CHECK_S("data queued on the socket in flight", "inner", buf);
		CHECK_I("the socket in flight sends to its peer", 4, send(fds[2], "back", 4, 0));
		memset(buf, 0, sizeof buf);
		CHECK_I("its peer receives", 4, recv(inner[1], buf, sizeof buf - 1, MSG_DONTWAIT));
		CHECK_S("what its peer receives", "back", buf);
	}
	got = recv_msg(st[1], buf, sizeof buf, fds + 3, &n, &cr);
	CHECK_S("plain data after the message with fds", "tail", buf);
	CHECK_I("fds with the plain data", 0, n);

	int fd2[8];
	got = recv_msg(dg[1], buf, sizeof buf, fd2, &n, &cr);
	CHECK_S("datagram with an fd", "same-file", buf);
	CHECK_I("fds with the datagram", 1, n);
	if (n == 1)
		CHECK_I("the file in the datagram is the same open file (shared offset)", 5, lseek(fd2[0], 0, SEEK_CUR));

	got = recv_msg(sq[1], buf, sizeof buf, fds, &n, &cr);
	CHECK_S("first message with credentials", "mine", buf);
	CHECK_I("its sender pid", getpid(), cr.pid);
	CHECK_I("its sender uid", 0, cr.uid);
	CHECK_I("its sender gid", 0, cr.gid);
	got = recv_msg(sq[1], buf, sizeof buf, fds, &n, &cr);
	CHECK_S("second message with credentials", "spoofed", buf);
	CHECK_I("its sender pid", getpid(), cr.pid);
	CHECK_I("its sender uid", 1000, cr.uid);
	CHECK_I("its sender gid", 1000, cr.gid);
	cr_finish();
}
