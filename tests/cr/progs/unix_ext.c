/* unix_ext: datagram sockets connected to a socket outside the dumped tree (--ext-unix-sk).
 * A helper, double-forked so that it is not in our tree, binds WORKDIR/ext.sock and answers
 * each datagram "X" with "ack:X" sent to WORKDIR/back.sock. We hold an unnamed socket
 * connected to ext.sock and a socket bound to back.sock, also connected to ext.sock, with the
 * helper's answer to "hello" still queued. After restore the queued answer is there, and both
 * sockets still reach the helper. The helper exits after 60 s without datagrams.
 * (errors/ext-unix-sk dumps us without --ext-unix-sk: refused, and we keep running.)
 */
#include "common.h"
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

static socklen_t addr_of(struct sockaddr_un *a, const char *name)
{
	memset(a, 0, sizeof *a);
	a->sun_family = AF_UNIX;
	char path[2300];
	cr_path(path, sizeof path, name);
	if (strlen(path) >= sizeof a->sun_path)
		cr_fail("setup: path too long for a unix socket: %s", path);
	memcpy(a->sun_path, path, strnlen(path, sizeof a->sun_path - 1));
	return (socklen_t)sizeof *a;
}

static void helper(void)
{
	struct sockaddr_un ea, ba;
	socklen_t elen = addr_of(&ea, "ext.sock"), blen = addr_of(&ba, "back.sock");
	int s = socket(AF_UNIX, SOCK_DGRAM, 0);
	/* Its own session: a member of ours would keep our pid (the session id) in use. */
	setsid();
	if (s < 0 || bind(s, (struct sockaddr *)&ea, elen) < 0)
		_exit(1);
	/* Killed with the test's processes on cleanup (run-test.sh looks for ready* files). */
	char pid[32];
	int n = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
	cr_write_file("ready.ext-helper", pid, (size_t)n);
	for (;;) {
		struct pollfd p = { .fd = s, .events = POLLIN };
		if (poll(&p, 1, 60000) <= 0)
			_exit(0);
		char buf[128], out[160];
		ssize_t got = recv(s, buf, sizeof buf - 1, 0);
		if (got <= 0)
			continue;
		buf[got] = 0;
		int m = snprintf(out, sizeof out, "ack:%s", buf);
		sendto(s, out, (size_t)m, 0, (struct sockaddr *)&ba, blen);
	}
}

/* Waits up to 3 s for one datagram on fd and compares it. */
static void expect(int fd, const char *want, const char *what)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	if (poll(&p, 1, 3000) != 1) {
		cr_fail("%s: nothing arrived within 3 s (expected \"%s\")", what, want);
		return;
	}
	char buf[160] = { 0 };
	ssize_t got = recv(fd, buf, sizeof buf - 1, MSG_DONTWAIT);
	if (got != (ssize_t)strlen(want) || memcmp(buf, want, strlen(want)))
		cr_fail("%s: expected \"%s\", got %zd bytes \"%s\"", what, want, got, got > 0 ? buf : "");
}

int main(int argc, char **argv)
{
	cr_init(argc, argv);
	pid_t kid = fork();
	if (kid == 0) {
		if (fork() == 0)
			helper();
		_exit(0);
	}
	int st;
	waitpid(kid, &st, 0);
	struct sockaddr_un ea, ba;
	socklen_t elen = addr_of(&ea, "ext.sock"), blen = addr_of(&ba, "back.sock");
	int u = socket(AF_UNIX, SOCK_DGRAM, 0), b = socket(AF_UNIX, SOCK_DGRAM, 0);
	if (u < 0 || b < 0 || bind(b, (struct sockaddr *)&ba, blen) < 0)
		cr_fail("setup: sockets: %s", strerror(errno));
	int tries = 0;
	while (connect(u, (struct sockaddr *)&ea, elen) < 0 && ++tries < 250)
		cr_sleep_ms(20); /* the helper is still binding */
	if (connect(b, (struct sockaddr *)&ea, elen) < 0)
		cr_fail("setup: connect to the helper: %s", strerror(errno));
	if (send(u, "hello", 5, 0) != 5)
		cr_fail("setup: send: %s", strerror(errno));
	/* the helper's answer waits in b's queue across the checkpoint */
	struct pollfd p = { .fd = b, .events = POLLIN };
	if (poll(&p, 1, 3000) != 1)
		cr_fail("setup: the helper did not answer");
	cr_ready();
	cr_wait_go();
	expect(b, "ack:hello", "answer queued at checkpoint");
	if (send(u, "ping1", 5, 0) != 5)
		cr_fail("send on the unnamed socket connected to the helper: %s", strerror(errno));
	expect(b, "ack:ping1", "answer to the unnamed socket's datagram");
	if (send(b, "ping2", 5, 0) != 5)
		cr_fail("send on the named socket connected to the helper: %s", strerror(errno));
	expect(b, "ack:ping2", "answer to the named socket's datagram");
	cr_finish();
	return 0;
}
