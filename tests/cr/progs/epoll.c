/* epoll: an epoll instance watching a pipe (with data waiting), an eventfd (edge
 * triggered) and a socket, each with its own user data, shared with a child. After restore
 * epoll_wait reports the same readiness with the same data, and the registrations answer
 * EPOLL_CTL_MOD/DEL under the task's own fd numbers. Two registrations outlive their fd
 * number: a pipe registered as fd N, dup'ed to M, N closed (data 555); an eventfd registered
 * as fd K, dup'ed, K then reused for another file (data 666). After restore both still report
 * their events, the epoll fdinfo lists them under N and K, and K still holds its new file.
 */
#include "common.h"
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/wait.h>

static int find(struct epoll_event *ev, int n, uint64_t data, uint32_t want) {
	for (int i = 0; i < n; i++)
		if (ev[i].data.u64 == data) return (ev[i].events & want) == want;
	return 0;
}

int main(int argc, char **argv) {
	cr_init(argc, argv);
	int ep = epoll_create1(0);
	int p[2], sv[2];
	if (ep < 0 || pipe(p) || socketpair(AF_UNIX, SOCK_STREAM, 0, sv)) cr_fail("setup");
	int ev = eventfd(0, EFD_NONBLOCK);
	struct epoll_event e = {.events = EPOLLIN, .data.u64 = 111};
	epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &e);
	e.events = EPOLLIN | EPOLLET; e.data.u64 = 222;
	epoll_ctl(ep, EPOLL_CTL_ADD, ev, &e);
	e.events = EPOLLOUT; e.data.u64 = 333;
	epoll_ctl(ep, EPOLL_CTL_ADD, sv[0], &e);
	if (write(p[1], "x", 1) != 1) cr_fail("setup: write");
	int q[2];
	if (pipe(q)) cr_fail("setup: pipe q");
	e.events = EPOLLIN; e.data.u64 = 555;
	epoll_ctl(ep, EPOLL_CTL_ADD, q[0], &e);
	int qn = q[0], qm = dup(q[0]);
	close(q[0]);
	int ev2 = eventfd(0, EFD_NONBLOCK);
	e.events = EPOLLIN; e.data.u64 = 666;
	epoll_ctl(ep, EPOLL_CTL_ADD, ev2, &e);
	int kn = ev2, km = dup(ev2);
	close(ev2);
	int reuse = open("/dev/null", O_RDONLY); /* takes the lowest free number: kn (or qn) */
	if (reuse != qn && reuse != kn) cr_fail("setup: /dev/null at %d", reuse);
	int kept = reuse == qn ? kn : qn; /* the other stays closed */
	(void)kept;
	pid_t kid = fork();
	if (kid == 0) {
		cr_wait_go();
		uint64_t one = 1;
		_exit(write(ev, &one, 8) == 8 ? 0 : 1);  /* wakes the parent's epoll */
	}
	cr_ready();
	cr_wait_go();
	int st;
	waitpid(kid, &st, 0);
	struct epoll_event out[8];
	int n = epoll_wait(ep, out, 8, 1000);
	if (!find(out, n, 111, EPOLLIN)) cr_fail("pipe not reported readable with data 111 (%d events)", n);
	if (!find(out, n, 222, EPOLLIN)) cr_fail("eventfd written by the child not reported with data 222");
	if (!find(out, n, 333, EPOLLOUT)) cr_fail("socket not reported writable with data 333");
	if (find(out, n, 555, EPOLLIN) || find(out, n, 666, EPOLLIN)) cr_fail("idle detached registrations reported");
	uint64_t one = 1;
	if (write(q[1], "z", 1) != 1 || write(km, &one, 8) != 8) cr_fail("write q/ev2");
	n = epoll_wait(ep, out, 8, 1000);
	if (!find(out, n, 555, EPOLLIN)) cr_fail("registration of closed fd %d (pipe) lost", qn);
	if (!find(out, n, 666, EPOLLIN)) cr_fail("registration of reused fd %d (eventfd) lost", kn);
	char fdinfo[64], text[4096] = {0};
	snprintf(fdinfo, sizeof fdinfo, "/proc/self/fdinfo/%d", ep);
	int fi = open(fdinfo, O_RDONLY);
	if (fi < 0 || read(fi, text, sizeof text - 1) <= 0) cr_fail("read epoll fdinfo");
	close(fi);
	char want[32];
	snprintf(want, sizeof want, "tfd: %8d", qn);
	if (!strstr(text, want)) cr_fail("epoll fdinfo lacks '%s': %s", want, text);
	snprintf(want, sizeof want, "tfd: %8d", kn);
	if (!strstr(text, want)) cr_fail("epoll fdinfo lacks '%s': %s", want, text);
	struct stat rs;
	if (fstat(reuse, &rs) || !S_ISCHR(rs.st_mode)) cr_fail("fd %d no longer /dev/null", reuse);
	char c2; uint64_t cnt;
	if (read(qm, &c2, 1) != 1 || read(km, &cnt, 8) != 8) cr_fail("drain q/ev2");
	e.events = EPOLLIN; e.data.u64 = 444;
	if (epoll_ctl(ep, EPOLL_CTL_MOD, sv[0], &e)) cr_fail("EPOLL_CTL_MOD on fd %d: %s", sv[0], strerror(errno));
	if (epoll_ctl(ep, EPOLL_CTL_DEL, p[0], NULL)) cr_fail("EPOLL_CTL_DEL on fd %d: %s", p[0], strerror(errno));
	if (write(sv[1], "y", 1) != 1) cr_fail("write to socket");
	n = epoll_wait(ep, out, 8, 1000);
	if (!find(out, n, 444, EPOLLIN)) cr_fail("modified registration not reported");
	if (find(out, n, 111, EPOLLIN)) cr_fail("deleted registration still reported");
	cr_finish();
	return 0;
}
