/* pidfds: a pidfd on a live child (and a dup of it), on a child that has exited and been
 * reaped, and on the process itself (PIDFD_NONBLOCK). After restore: fdinfo names the same
 * processes (Pid: -1 for the reaped one), flags and the dup's sharing are kept; the reaped
 * child's pidfd polls readable and pidfd_send_signal says ESRCH; the live child's pidfd
 * does not poll readable until pidfd_send_signal(SIGUSR2) through it makes the child exit
 * with status 7, which waitid(P_PIDFD) then reports; a signal sent through the pidfd on
 * itself reaches the process. A pidfd on a zombie child polls readable and waitid(P_PIDFD)
 * reaps it with its status 5. With WORKDIR/pidfd-outside, fd 41 is a pidfd on the parent, outside
 * the tree (errors/file-kinds: the dump refuses it).
 */
#include "common.h"
#include <poll.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#ifndef PIDFD_NONBLOCK
#define PIDFD_NONBLOCK O_NONBLOCK
#endif
#ifndef P_PIDFD
#define P_PIDFD 3
#endif

static volatile sig_atomic_t got_usr2;
static void on_usr2(int sig) { (void)sig; got_usr2 = 1; }
static void child_usr2(int sig) { (void)sig; _exit(7); }

static int pidfd_open(pid_t pid, unsigned flags) { return (int)syscall(SYS_pidfd_open, pid, flags); }
static int pidfd_send_signal(int fd, int sig) { return (int)syscall(SYS_pidfd_send_signal, fd, sig, NULL, 0); }

static long fdinfo_pid(int fd)
{
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd);
	int f = open(path, O_RDONLY);
	if (f < 0) return -1000;
	ssize_t n = read(f, buf, sizeof buf - 1);
	close(f);
	if (n <= 0) return -1000;
	buf[n] = 0;
	char *p = strstr(buf, "\nPid:");
	return p ? strtol(p + 5, NULL, 10) : -1000;
}

static int readable(int fd, int ms)
{
	struct pollfd p = { fd, POLLIN, 0 };
	return poll(&p, 1, ms) == 1 && (p.revents & POLLIN);
}

int main(int argc, char **argv)
{
	cr_init(argc, argv);
	pid_t live = fork();
	if (live == 0) {
		signal(SIGUSR2, child_usr2);
		for (;;) pause();
	}
	pid_t dead = fork();
	if (dead == 0) _exit(3);
	pid_t zombie = fork();
	if (zombie == 0) _exit(5);
	int pz = pidfd_open(zombie, 0);
	if (pz < 0 || !readable(pz, 5000)) cr_fail("setup: the zombie child did not exit");
	int pa = pidfd_open(live, 0), pd = pidfd_open(dead, 0), ps = pidfd_open(getpid(), PIDFD_NONBLOCK);
	if (pa < 0 || pd < 0 || ps < 0) cr_fail("setup: pidfd_open: %s", strerror(errno));
	if (waitpid(dead, NULL, 0) != dead) cr_fail("setup: reap");
	if (dup2(pa, 40) != 40) cr_fail("setup: dup2");
	/* errors/file-kinds: a pidfd on the parent, outside the tree, which the dump refuses */
	if (cr_exists("pidfd-outside")) {
		int po = pidfd_open(getppid(), 0);
		if (po < 0 || dup2(po, 41) != 41) cr_fail("setup: pidfd on the parent");
		close(po);
	}
	struct sigaction sa = { 0 };
	sa.sa_handler = on_usr2;
	sigaction(SIGUSR2, &sa, NULL);
	cr_ready();
	cr_wait_go();

	CHECK_I("fdinfo Pid of the live child's pidfd", live, fdinfo_pid(pa));
	CHECK_I("fdinfo Pid of the dup", live, fdinfo_pid(40));
	CHECK_I("fdinfo Pid of the reaped child's pidfd", -1, fdinfo_pid(pd));
	CHECK_I("fdinfo Pid of the own pidfd", getpid(), fdinfo_pid(ps));
	CHECK_I("fdinfo Pid of the zombie child's pidfd", zombie, fdinfo_pid(pz));
	if (!(fcntl(ps, F_GETFL) & O_NONBLOCK)) cr_fail("own pidfd lost PIDFD_NONBLOCK");
	if (fcntl(pa, F_GETFL) & O_NONBLOCK) cr_fail("live child's pidfd became non-blocking");
	if (syscall(SYS_kcmp, getpid(), getpid(), 0 /* KCMP_FILE */, pa, 40) != 0)
		cr_fail("fd 40 is no longer a dup of the live child's pidfd");
	if (syscall(SYS_kcmp, getpid(), getpid(), 0, pa, pd) == 0) cr_fail("two pidfds became one file");

	if (!readable(pd, 0)) cr_fail("the reaped child's pidfd does not poll readable");
	errno = 0;
	if (pidfd_send_signal(pd, 0) == 0 || errno != ESRCH)
		cr_fail("signal through the reaped child's pidfd: %s, want ESRCH", strerror(errno));

	if (!readable(pz, 0)) cr_fail("the zombie child's pidfd does not poll readable");
	siginfo_t zi;
	memset(&zi, 0, sizeof zi);
	if (syscall(SYS_waitid, P_PIDFD, pz, &zi, WEXITED, NULL) != 0)
		cr_fail("waitid(P_PIDFD) on the zombie child: %s", strerror(errno));
	else {
		CHECK_I("zombie waitid pid", zombie, zi.si_pid);
		CHECK_I("zombie exit status", 5, zi.si_status);
	}

	if (readable(ps, 0)) cr_fail("own pidfd polls readable");
	if (pidfd_send_signal(ps, SIGUSR2) != 0) cr_fail("signal through own pidfd: %s", strerror(errno));
	for (int i = 0; i < 100 && !got_usr2; i++) cr_sleep_ms(10);
	if (!got_usr2) cr_fail("the signal sent through the own pidfd did not arrive");

	if (readable(pa, 0)) cr_fail("the live child's pidfd polls readable before it exits");
	if (pidfd_send_signal(pa, SIGUSR2) != 0) cr_fail("signal through the live child's pidfd: %s", strerror(errno));
	if (!readable(pa, 5000)) cr_fail("the live child's pidfd is not readable after it was told to exit");
	siginfo_t si;
	memset(&si, 0, sizeof si);
	if (syscall(SYS_waitid, P_PIDFD, pa, &si, WEXITED, NULL) != 0)
		cr_fail("waitid(P_PIDFD) on the live child: %s", strerror(errno));
	else {
		CHECK_I("waitid pid", live, si.si_pid);
		CHECK_I("child exit status", 7, si.si_status);
	}
	cr_finish();
	return 0;
}
