/* fown: file owners and async I/O signals (F_SETOWN, F_SETOWN_EX, F_SETSIG, O_ASYNC).
 * A pipe with O_ASYNC owned by the process (F_OWNER_PID) signalling SIGRTMIN+1, a socketpair
 * end owned by the process group (F_OWNER_PGRP) with the default SIGIO, and a pipe owned by
 * the main thread (F_OWNER_TID) without O_ASYNC. Two files only in flight in a unix socket's
 * queue (SCM_RIGHTS, closed by the sender): a pipe's read end with O_ASYNC owned by the
 * process signalling SIGRTMIN+2, and a file owned by the process group.
 * After restore: the owners, signals and flags read back the same (for the files in flight,
 * once received), and writing into the async pipe still sends SIGRTMIN+1 to the process
 * with the fd in si_fd; the socket sends SIGIO; the pipe received sends SIGRTMIN+2.
 */
#include "common.h"
#include <sys/socket.h>

static volatile sig_atomic_t got_sig, got_fd, got_io, got_flight;

static void on_rt(int sig, siginfo_t *si, void *uc) {
	(void)uc;
	if (sig == SIGRTMIN + 2) {
		got_flight = 1;
		return;
	}
	got_sig = sig;
	got_fd = si->si_fd;
}

static void on_io(int sig) {
	(void)sig;
	got_io++;
}

static void owner(int fd, int type, pid_t pid, int sig, int async, const char *what) {
	struct f_owner_ex o;
	if (fcntl(fd, F_GETOWN_EX, &o) < 0) cr_fail("%s: F_GETOWN_EX: %s", what, strerror(errno));
	else if ((int)o.type != type || o.pid != pid) cr_fail("%s: owner type %d pid %d, expected %d %d", what, o.type, o.pid, type, pid);
	int s = fcntl(fd, F_GETSIG);
	if (s != sig) cr_fail("%s: F_GETSIG %d, expected %d", what, s, sig);
	int fl = fcntl(fd, F_GETFL);
	if (!!(fl & O_ASYNC) != async) cr_fail("%s: O_ASYNC %s", what, async ? "lost" : "appeared");
}

/* Sends fds `fds` over `s` in one message, or receives up to 2 into `fds` (returns how many). */
static int pass_fds(int s, int *fds, int n, int receive) {
	char byte = 'f', ctl[CMSG_SPACE(sizeof(int) * 2)];
	struct iovec iov = {&byte, 1};
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof ctl};
	if (receive) {
		if (recvmsg(s, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC) != 1) return -1;
		struct cmsghdr *c = CMSG_FIRSTHDR(&m);
		if (!c || c->cmsg_type != SCM_RIGHTS) return 0;
		int got = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		memcpy(fds, CMSG_DATA(c), sizeof(int) * (size_t)got);
		return got;
	}
	m.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)n);
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)n);
	memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)n);
	return sendmsg(s, &m, 0) == 1 ? n : -1;
}

int main(int argc, char **argv) {
	cr_init(argc, argv);
	struct sigaction sa = {0};
	sa.sa_sigaction = on_rt;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigaction(SIGRTMIN + 1, &sa, NULL);
	sigaction(SIGRTMIN + 2, &sa, NULL);
	signal(SIGIO, on_io);
	int p[2], s[2], q[2];
	if (pipe(p) || socketpair(AF_UNIX, SOCK_STREAM, 0, s) || pipe(q)) cr_fail("setup: pipes");
	struct f_owner_ex me = {F_OWNER_PID, getpid()}, grp = {F_OWNER_PGRP, getpgrp()}, tid = {F_OWNER_TID, (pid_t)syscall(SYS_gettid)};
	if (fcntl(p[0], F_SETOWN_EX, &me) || fcntl(p[0], F_SETSIG, SIGRTMIN + 1) || fcntl(p[0], F_SETFL, O_ASYNC | O_NONBLOCK))
		cr_fail("setup: async pipe: %s", strerror(errno));
	if (fcntl(s[0], F_SETOWN_EX, &grp) || fcntl(s[0], F_SETFL, O_ASYNC)) cr_fail("setup: async socket: %s", strerror(errno));
	if (fcntl(q[0], F_SETOWN_EX, &tid)) cr_fail("setup: owned pipe: %s", strerror(errno));
	/* In flight: a pipe's read end (its write end kept) and a file, then closed. */
	int carrier[2], fp[2], flight[2];
	char fname[2300];
	cr_path(fname, sizeof fname, "owned-file");
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, carrier) || pipe(fp)) cr_fail("setup: carrier: %s", strerror(errno));
	flight[0] = fp[0];
	flight[1] = open(fname, O_RDWR | O_CREAT, 0600);
	if (flight[1] < 0 || fcntl(flight[0], F_SETOWN_EX, &me) || fcntl(flight[0], F_SETSIG, SIGRTMIN + 2) ||
	    fcntl(flight[0], F_SETFL, O_ASYNC | O_NONBLOCK) || fcntl(flight[1], F_SETOWN_EX, &grp))
		cr_fail("setup: owners of the files in flight: %s", strerror(errno));
	if (pass_fds(carrier[0], flight, 2, 0) != 2) cr_fail("setup: send the files: %s", strerror(errno));
	close(flight[0]);
	close(flight[1]);
	cr_ready();
	cr_wait_go();
	owner(p[0], F_OWNER_PID, getpid(), SIGRTMIN + 1, 1, "async pipe");
	owner(s[0], F_OWNER_PGRP, getpgrp(), 0, 1, "async socket");
	owner(q[0], F_OWNER_TID, (pid_t)syscall(SYS_gettid), 0, 0, "owned pipe");
	if (write(p[1], "x", 1) != 1) cr_fail("write to the async pipe");
	for (int i = 0; i < 100 && !got_sig; i++) cr_sleep_ms(10);
	if (got_sig != SIGRTMIN + 1 || got_fd != p[0]) cr_fail("async pipe: signal %d fd %d, expected %d fd %d", (int)got_sig, (int)got_fd, SIGRTMIN + 1, p[0]);
	if (write(s[1], "y", 1) != 1) cr_fail("write to the async socket");
	for (int i = 0; i < 100 && !got_io; i++) cr_sleep_ms(10);
	if (!got_io) cr_fail("async socket: no SIGIO");
	int got[2] = {-1, -1};
	if (pass_fds(carrier[1], got, 2, 1) != 2) {
		cr_fail("the message carrying two files: %s", strerror(errno));
		cr_finish();
	}
	owner(got[0], F_OWNER_PID, getpid(), SIGRTMIN + 2, 1, "async pipe received");
	owner(got[1], F_OWNER_PGRP, getpgrp(), 0, 0, "file received");
	if (write(fp[1], "z", 1) != 1) cr_fail("write to the pipe received");
	for (int i = 0; i < 100 && !got_flight; i++) cr_sleep_ms(10);
	if (!got_flight) cr_fail("async pipe received: no SIGRTMIN+2");
	char c;
	if (read(got[0], &c, 1) != 1 || c != 'z') cr_fail("pipe received: not the pipe written to");
	cr_finish();
	return 0;
}
