/* orphan_pgrp: process groups whose leader is gone. The root (a session leader) forked L,
 * which made its own group; Z and M joined L's group; L exited and was reaped. Z then
 * exited too and stays a zombie (exit status 7); M lives on. A second group, led by K (a
 * child of M) that exited and was reaped by M, holds Y, a zombie child of M killed by
 * SIGUSR2. After restore: Z and M are in group L and Y in group K (no process has either
 * PID), all in the root's session; a signal to group L reaches M; each parent collects its
 * zombie with the dumped status and has no other child; the root got no SIGCHLD from the
 * restore itself. */
#define _GNU_SOURCE
#include "common.h"
#include <sys/wait.h>

static volatile int usr1_seen, chld_seen;
static void on_usr1(int s)
{
	(void)s;
	usr1_seen++;
}
static void on_chld(int s)
{
	(void)s;
	chld_seen++;
}

static void wait_gone_zombie(pid_t p)
{
	char path[64], buf[512];
	snprintf(path, sizeof path, "/proc/%d/stat", p);
	for (int i = 0; i < 500; i++) {
		ssize_t n = cr_read_file(path, buf, sizeof buf - 1);
		if (n > 0) {
			buf[n] = 0;
			char *s = strrchr(buf, ')');
			if (s && s[2] == 'Z')
				return;
		}
		cr_sleep_ms(10);
	}
	cr_fail("setup: %d did not become a zombie", p);
}

/* M: joins group L, then makes group K with zombie Y in it. */
static void m_main(pid_t L)
{
	signal(SIGUSR1, on_usr1);
	if (setpgid(0, L))
		_exit(20);
	int p[2];
	if (pipe(p))
		_exit(21);
	pid_t K = fork();
	if (K == 0) {
		setpgid(0, 0);
		char c;
		if (read(p[0], &c, 1) != 1) /* until Y joined */
			_exit(1);
		_exit(0);
	}
	setpgid(K, K);
	pid_t Y = fork();
	if (Y == 0) {
		if (setpgid(0, K))
			_exit(22);
		if (write(p[1], "x", 1) != 1)
			_exit(23);
		for (;;)
			pause();
	}
	int st;
	if (waitpid(K, &st, 0) != K)
		_exit(24);
	kill(Y, SIGUSR2);
	wait_gone_zombie(Y);
	char b[64];
	int n = snprintf(b, sizeof b, "%d %d\n", K, Y);
	cr_write_file("m-ids", b, (size_t)n);
	cr_ready_named("ready-m");
	cr_wait_go();
	pid_t got_pgid = getpgid(Y), got_sid = getsid(Y);
	if (got_pgid != K)
		cr_fail("zombie Y %d: group %d, expected %d", Y, got_pgid, K);
	if (got_sid != getsid(0))
		cr_fail("zombie Y %d: session %d, expected %d", Y, got_sid, getsid(0));
	if (getpgid(0) != L)
		cr_fail("M: group %d, expected %d", getpgid(0), L);
	if (kill(K, 0) == 0 || errno != ESRCH)
		cr_fail("PID %d (the gone leader K) exists after restore", K);
	for (int i = 0; i < 300 && !usr1_seen; i++)
		cr_sleep_ms(10);
	if (!usr1_seen)
		cr_fail("M: SIGUSR1 sent to group %d did not arrive", L);
	if (waitpid(Y, &st, 0) != Y || !WIFSIGNALED(st) || WTERMSIG(st) != SIGUSR2)
		cr_fail("M: zombie Y status %#x, expected killed by SIGUSR2", st);
	if (waitpid(-1, &st, WNOHANG) != -1 || errno != ECHILD)
		cr_fail("M: has another child after restore");
	_exit(cr_verdict("result-m"));
}

/* `orphan_pgrp WORKDIR outside`: Z is in the group of O2, a process of the same session that
 * left the tree (its parent exited, it was reparented) and lives on: the dump must refuse. */
static int outside_main(void)
{
	int p[2];
	if (pipe(p))
		cr_fail("setup: pipe");
	pid_t O = fork();
	if (O == 0) {
		pid_t O2 = fork();
		if (O2 == 0) {
			setpgid(0, 0);
			char b[32];
			int n = snprintf(b, sizeof b, "%d\n", getpid());
			cr_write_file("ready-outside", b, (size_t)n);
			cr_wait_go();
			_exit(0);
		}
		_exit(0);
	}
	waitpid(O, NULL, 0);
	cr_wait_for("ready-outside");
	char b[32] = "", path[2300];
	cr_path(path, sizeof path, "ready-outside");
	ssize_t n = cr_read_file(path, b, sizeof b - 1);
	b[n > 0 ? n : 0] = 0;
	pid_t O2 = atoi(b);
	for (int i = 0; i < 500 && getpgid(O2) != O2; i++)
		cr_sleep_ms(10);
	pid_t Z = fork();
	if (Z == 0) {
		if (setpgid(0, O2))
			_exit(30);
		cr_wait_go();
		_exit(0);
	}
	for (int i = 0; i < 500 && getpgid(Z) != O2; i++)
		cr_sleep_ms(10);
	if (getpgid(Z) != O2)
		cr_fail("setup: %d did not join group %d", Z, O2);
	cr_ready();
	cr_wait_go();
	int st;
	if (waitpid(Z, &st, 0) != Z || !WIFEXITED(st) || WEXITSTATUS(st))
		cr_fail("Z: status %#x", st);
	cr_finish();
	return 0;
}

int main(int argc, char **argv)
{
	cr_init(argc, argv);
	if (argc == 3 && strcmp(argv[2], "outside") == 0)
		return outside_main();
	pid_t L = fork();
	if (L == 0) {
		setpgid(0, 0);
		for (;;)
			pause();
	}
	setpgid(L, L);
	pid_t Z = fork();
	if (Z == 0) {
		if (setpgid(0, L))
			_exit(30);
		cr_wait_for("z-exit");
		_exit(7);
	}
	pid_t M = fork();
	if (M == 0)
		m_main(L);
	for (int i = 0; i < 500 && (getpgid(Z) != L || getpgid(M) != L); i++)
		cr_sleep_ms(10);
	if (getpgid(Z) != L || getpgid(M) != L)
		cr_fail("setup: Z and M did not join group %d", L);
	kill(L, SIGKILL);
	int st;
	waitpid(L, &st, 0);
	cr_write_file("z-exit", "1", 1);
	wait_gone_zombie(Z);
	cr_wait_for("ready-m");
	signal(SIGCHLD, on_chld);
	char zb[32];
	int n = snprintf(zb, sizeof zb, "%d\n", Z);
	cr_write_file("zombie", zb, (size_t)n);
	cr_ready();
	cr_wait_go();

	if (getpgid(Z) != L)
		cr_fail("zombie Z %d: group %d, expected %d", Z, getpgid(Z), L);
	if (getsid(Z) != getsid(0))
		cr_fail("zombie Z %d: session %d, expected %d", Z, getsid(Z), getsid(0));
	if (getpgid(M) != L)
		cr_fail("M %d: group %d, expected %d", M, getpgid(M), L);
	if (kill(L, 0) == 0 || errno != ESRCH)
		cr_fail("PID %d (the gone leader L) exists after restore", L);
	if (chld_seen)
		cr_fail("the root got %d SIGCHLD from the restore", chld_seen);
	if (kill(-L, SIGUSR1))
		cr_fail("kill(-%d, SIGUSR1): %s", L, strerror(errno));
	if (waitpid(Z, &st, 0) != Z || !WIFEXITED(st) || WEXITSTATUS(st) != 7)
		cr_fail("zombie Z status %#x, expected exit 7", st);
	cr_check_child(M, "M", "result-m");
	if (waitpid(-1, &st, WNOHANG) != -1 || errno != ECHILD)
		cr_fail("the root has another child after restore");
	cr_finish();
	return 0;
}
