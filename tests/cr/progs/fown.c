/* fown: file owners and async I/O signals (F_SETOWN, F_SETOWN_EX, F_SETSIG, O_ASYNC).
 * A pipe with O_ASYNC owned by the process (F_OWNER_PID) signalling SIGRTMIN+1, a socketpair
 * end owned by the process group (F_OWNER_PGRP) with the default SIGIO, and a pipe owned by
 * the main thread (F_OWNER_TID) without O_ASYNC. After restore: the owners, signals and
 * flags read back the same, and writing into the async pipe still sends SIGRTMIN+1 to the
 * process with the fd in si_fd; the socket sends SIGIO.
 */
#include "common.h"
#include <sys/socket.h>

static volatile sig_atomic_t got_sig, got_fd, got_io;

static void on_rt(int sig, siginfo_t *si, void *uc) {
	(void)uc;
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

int main(int argc, char **argv) {
	cr_init(argc, argv);
	struct sigaction sa = {0};
	sa.sa_sigaction = on_rt;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigaction(SIGRTMIN + 1, &sa, NULL);
	signal(SIGIO, on_io);
	int p[2], s[2], q[2];
	if (pipe(p) || socketpair(AF_UNIX, SOCK_STREAM, 0, s) || pipe(q)) cr_fail("setup: pipes");
	struct f_owner_ex me = {F_OWNER_PID, getpid()}, grp = {F_OWNER_PGRP, getpgrp()}, tid = {F_OWNER_TID, (pid_t)syscall(SYS_gettid)};
	if (fcntl(p[0], F_SETOWN_EX, &me) || fcntl(p[0], F_SETSIG, SIGRTMIN + 1) || fcntl(p[0], F_SETFL, O_ASYNC | O_NONBLOCK))
		cr_fail("setup: async pipe: %s", strerror(errno));
	if (fcntl(s[0], F_SETOWN_EX, &grp) || fcntl(s[0], F_SETFL, O_ASYNC)) cr_fail("setup: async socket: %s", strerror(errno));
	if (fcntl(q[0], F_SETOWN_EX, &tid)) cr_fail("setup: owned pipe: %s", strerror(errno));
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
	cr_finish();
	return 0;
}
