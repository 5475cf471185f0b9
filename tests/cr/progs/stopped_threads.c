/* stopped_threads: group stops of processes with threads. Child A (3 threads) was stopped
 * by a SIGSTOP sent to one of its non-leader threads (tgkill): the whole group stops. Child
 * B (3 threads, in its own process group so that the group is not orphaned) was stopped by
 * SIGTSTP. The parent has not collected either stop. After restore: every thread of both is
 * stopped and makes no progress, waitpid(WUNTRACED) reports each stop with its own signal
 * (SIGSTOP, SIGTSTP), and SIGCONT makes every thread of both go on.
 * (A thread stopped while another thread of the same process runs is not a state Linux
 * has without a tracer: a stop signal sent to one thread stops the whole group.) */
#define _GNU_SOURCE
#include "common.h"
#include <dirent.h>
#include <pthread.h>
#include <sys/prctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#define NTH 3
static volatile unsigned long *counters; /* shared with the children: [child][thread] */
static int me;

static void *worker(void *arg)
{
	long k = (long)arg;
	for (;;) {
		counters[me * NTH + k]++;
		cr_sleep_ms(2);
	}
	return NULL;
}

static void child_main(int which)
{
	me = which;
	prctl(PR_SET_PDEATHSIG, SIGKILL); /* a failed run leaves no stopped process behind */
	if (which == 1 && setpgid(0, 0))
		_exit(10);
	pthread_t th;
	for (long k = 1; k < NTH; k++)
		pthread_create(&th, NULL, worker, (void *)k);
	worker((void *)0);
}

static char state_of(pid_t pid, pid_t tid)
{
	char path[64], buf[512];
	snprintf(path, sizeof path, "/proc/%d/task/%d/stat", pid, tid);
	ssize_t n = cr_read_file(path, buf, sizeof buf - 1);
	if (n <= 0)
		return '?';
	buf[n] = 0;
	char *p = strrchr(buf, ')');
	return p && p[1] ? p[2] : '?';
}

static int tids_of(pid_t pid, pid_t *tids, int max)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/task", pid);
	DIR *d = opendir(path);
	int n = 0;
	struct dirent *e;
	while (d && (e = readdir(d)))
		if (e->d_name[0] != '.' && n < max)
			tids[n++] = atoi(e->d_name);
	if (d)
		closedir(d);
	return n;
}

/* All NTH threads of `pid` in state T. */
static int all_stopped(pid_t pid)
{
	pid_t tids[16];
	int n = tids_of(pid, tids, 16);
	if (n != NTH)
		return 0;
	for (int i = 0; i < n; i++)
		if (state_of(pid, tids[i]) != 'T')
			return 0;
	return 1;
}

static void snapshot(unsigned long *out)
{
	for (int i = 0; i < 2 * NTH; i++)
		out[i] = counters[i];
}

int main(int argc, char **argv)
{
	cr_init(argc, argv);
	counters = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	pid_t kids[2];
	for (int c = 0; c < 2; c++) {
		kids[c] = fork();
		if (kids[c] == 0)
			child_main(c);
	}
	/* every thread counts before the stops */
	for (int i = 0; i < 500; i++) {
		int ok = 1;
		for (int k = 0; k < 2 * NTH; k++)
			ok &= counters[k] > 2;
		if (ok)
			break;
		cr_sleep_ms(10);
	}
	pid_t tids[16];
	int n = tids_of(kids[0], tids, 16);
	pid_t victim = 0;
	for (int i = 0; i < n; i++)
		if (tids[i] != kids[0])
			victim = tids[i];
	if (!victim || syscall(SYS_tgkill, kids[0], victim, SIGSTOP))
		cr_fail("setup: tgkill SIGSTOP to a thread of %d", kids[0]);
	if (kill(kids[1], SIGTSTP))
		cr_fail("setup: SIGTSTP to %d", kids[1]);
	for (int i = 0; i < 500 && !(all_stopped(kids[0]) && all_stopped(kids[1])); i++)
		cr_sleep_ms(10);
	for (int c = 0; c < 2; c++)
		if (!all_stopped(kids[c]))
			cr_fail("setup: child %d is not stopped in all its threads", kids[c]);
	unsigned long sr[2 * NTH], s0[2 * NTH], s1[2 * NTH];
	cr_sleep_ms(50);
	snapshot(sr);
	cr_ready();
	cr_wait_go();

	/* Not one step since the stop, not even right after the restore. */
	snapshot(s0);
	cr_sleep_ms(300);
	snapshot(s1);
	for (int c = 0; c < 2; c++) {
		if (!all_stopped(kids[c]))
			cr_fail("child %d: not every thread is stopped after restore", kids[c]);
		for (int k = 0; k < NTH; k++)
			if (sr[c * NTH + k] != s0[c * NTH + k] || s0[c * NTH + k] != s1[c * NTH + k])
				cr_fail("child %c (%d) thread %d ran while stopped: %lu at the stop, %lu "
					"after restore, %lu 300 ms later",
					'A' + c, kids[c], k, sr[c * NTH + k], s0[c * NTH + k], s1[c * NTH + k]);
	}
	const int want_sig[2] = { SIGSTOP, SIGTSTP };
	for (int c = 0; c < 2; c++) {
		int st = 0;
		pid_t r = waitpid(kids[c], &st, WUNTRACED | WNOHANG);
		if (r != kids[c] || !WIFSTOPPED(st))
			cr_fail("child %d: waitpid(WUNTRACED) gave %d status %#x, expected its stop", kids[c],
				r, st);
		else if (WSTOPSIG(st) != want_sig[c])
			cr_fail("child %d: stopped by signal %d, expected %d", kids[c], WSTOPSIG(st),
				want_sig[c]);
		kill(kids[c], SIGCONT);
	}
	snapshot(s0);
	for (int i = 0; i < 300; i++) {
		snapshot(s1);
		int moved = 1;
		for (int k = 0; k < 2 * NTH; k++)
			moved &= s1[k] > s0[k] + 2;
		if (moved)
			break;
		cr_sleep_ms(10);
	}
	for (int k = 0; k < 2 * NTH; k++)
		if (s1[k] <= s0[k] + 2)
			cr_fail("child %d thread %d did not go on after SIGCONT", kids[k / NTH], k % NTH);
	for (int c = 0; c < 2; c++) {
		kill(kids[c], SIGKILL);
		waitpid(kids[c], NULL, 0);
	}
	cr_finish();
	return 0;
}
