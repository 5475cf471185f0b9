/* unix_ext_stream: a stream connection to a server outside the dumped tree. A helper,
 * double-forked into its own session, listens on WORKDIR/ext-stream.sock, accepts one
 * connection and echoes what it reads. Half of a stream connection cannot be restored, so a
 * dump must refuse even with --ext-unix-sk (errors/ext-unix-sk) and leave us running; after
 * go the connection still echoes. The helper exits when the connection closes or after 60 s.
 */
#include "common.h"
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

static socklen_t addr_of(struct sockaddr_un *a)
{
	memset(a, 0, sizeof *a);
	a->sun_family = AF_UNIX;
	char path[2300];
	cr_path(path, sizeof path, "ext-stream.sock");
	if (strlen(path) >= sizeof a->sun_path)
		cr_fail("setup: path too long for a unix socket: %s", path);
	memcpy(a->sun_path, path, strnlen(path, sizeof a->sun_path - 1));
	return (socklen_t)sizeof *a;
}

static void helper(void)
{
	struct sockaddr_un a;
	socklen_t len = addr_of(&a);
	setsid(); /* a member of our session would keep our pid in use */
	int ls = socket(AF_UNIX, SOCK_STREAM, 0);
	if (ls < 0 || bind(ls, (struct sockaddr *)&a, len) < 0 || listen(ls, 1) < 0)
		_exit(1);
	char pid[32];
	int n = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
	cr_write_file("ready.ext-helper", pid, (size_t)n);
	struct pollfd p = { .fd = ls, .events = POLLIN };
	if (poll(&p, 1, 60000) <= 0)
		_exit(0);
	int c = accept(ls, NULL, NULL);
	for (;;) {
		struct pollfd q = { .fd = c, .events = POLLIN };
		if (poll(&q, 1, 60000) <= 0)
			_exit(0);
		char buf[128];
		ssize_t got = recv(c, buf, sizeof buf, 0);
		if (got <= 0)
			_exit(0);
		send(c, buf, (size_t)got, MSG_NOSIGNAL);
	}
}

static void echo(int s, const char *msg, const char *what)
{
	size_t n = strlen(msg);
	if (send(s, msg, n, 0) != (ssize_t)n) {
		cr_fail("%s: send: %s", what, strerror(errno));
		return;
	}
	struct pollfd p = { .fd = s, .events = POLLIN };
	char buf[128] = { 0 };
	ssize_t got = poll(&p, 1, 3000) == 1 ? recv(s, buf, sizeof buf - 1, MSG_DONTWAIT) : -1;
	if (got != (ssize_t)n || memcmp(buf, msg, n))
		cr_fail("%s: expected the echo \"%s\", got %zd bytes \"%s\"", what, msg, got, got > 0 ? buf : "");
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
	struct sockaddr_un a;
	socklen_t len = addr_of(&a);
	int s = socket(AF_UNIX, SOCK_STREAM, 0), tries = 0;
	while (connect(s, (struct sockaddr *)&a, len) < 0 && ++tries < 250)
		cr_sleep_ms(20); /* the helper is still binding */
	echo(s, "hello", "setup");
	cr_ready();
	cr_wait_go();
	echo(s, "again", "after the refused dump");
	cr_finish();
	return 0;
}
