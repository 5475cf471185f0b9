/* sync_signals: synchronous signals pending with the siginfo a fault gives them. A second
 * thread has SIGTRAP (TRAP_BRKPT), SIGSEGV (SEGV_ACCERR with an address), SIGBUS
 * (BUS_ADRERR), SIGILL (ILL_ILLOPN) and SIGFPE (FPE_INTDIV) queued to itself, blocked (one
 * instance each: the kernel queues no second one of a signal below SIGRTMIN); the main
 * thread has SIGTRAP
 * (TRAP_HWBKPT) and SIGSYS (SYS_SECCOMP, with its syscall, arch and call address) pending.
 * After restore: the same pending sets per thread; once unblocked, each signal reaches its
 * SA_SIGINFO handler once with the very siginfo it was queued with. */
#define _GNU_SOURCE
#include "common.h"
#include <linux/audit.h>
#include <pthread.h>
#include <sys/syscall.h>

#define MAXS 16
struct got {
	int n;
	siginfo_t si[MAXS];
};
static struct got thread_got, main_got;
static __thread struct got *mine;
static volatile int stage;
static pid_t worker_tid;

static void handler(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	if (mine && mine->n < MAXS)
		mine->si[mine->n++] = *si;
}

static siginfo_t fault(int sig, int code, unsigned long addr)
{
	siginfo_t si;
	memset(&si, 0, sizeof si);
	si.si_signo = sig;
	si.si_code = code;
	si.si_errno = 0;
	si.si_addr = (void *)addr;
	return si;
}

static siginfo_t thread_sigs[5];
static siginfo_t main_sigs[2];

static void queue(const siginfo_t *si)
{
	siginfo_t copy = *si;
	if (syscall(SYS_rt_tgsigqueueinfo, getpid(), gettid(), si->si_signo, &copy))
		cr_fail("setup: queue signal %d: %s", si->si_signo, strerror(errno));
}

static void mask_sync(int how)
{
	sigset_t s;
	sigemptyset(&s);
	int sigs[] = { SIGTRAP, SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGSYS };
	for (int i = 0; i < 6; i++)
		sigaddset(&s, sigs[i]);
	pthread_sigmask(how, &s, NULL);
}

static void *worker(void *arg)
{
	(void)arg;
	worker_tid = gettid();
	mine = &thread_got;
	mask_sync(SIG_BLOCK);
	for (int i = 0; i < 5; i++)
		queue(&thread_sigs[i]);
	stage = 1;
	while (stage != 2)
		cr_sleep_ms(5);
	mask_sync(SIG_UNBLOCK);
	stage = 3;
	return NULL;
}

/* Each queued signal reaches its handler once, with its siginfo (in whatever order the
 * handlers nest). */
static void compare(const char *who, const siginfo_t *want, int nwant, const struct got *got)
{
	if (got->n != nwant)
		cr_fail("%s: %d signals delivered, expected %d", who, got->n, nwant);
	int used[MAXS] = { 0 };
	for (int i = 0; i < nwant; i++) {
		const siginfo_t *w = &want[i];
		int k = 0;
		while (k < got->n && (used[k] || got->si[k].si_signo != w->si_signo))
			k++;
		if (k == got->n) {
			cr_fail("%s: signal %d (code %d) was not delivered", who, w->si_signo, w->si_code);
			continue;
		}
		used[k] = 1;
		const siginfo_t *g = &got->si[k];
		if (w->si_code != g->si_code || w->si_errno != g->si_errno)
			cr_fail("%s: signal %d came with code %d errno %d, expected code %d errno %d", who,
				w->si_signo, g->si_code, g->si_errno, w->si_code, w->si_errno);
		/* the kernel keeps 48 bytes of a siginfo: all of them must come back */
		else if (memcmp(w, g, 48))
			cr_fail("%s: signal %d (code %d): siginfo differs (si_addr %p, expected %p)", who,
				g->si_signo, g->si_code, g->si_addr, w->si_addr);
	}
}

int main(int argc, char **argv)
{
	cr_init(argc, argv);
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = handler;
	sa.sa_flags = SA_SIGINFO;
	int sigs[] = { SIGTRAP, SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGSYS };
	for (int i = 0; i < 6; i++)
		sigaction(sigs[i], &sa, NULL);

	thread_sigs[0] = fault(SIGTRAP, TRAP_BRKPT, 0x401234);
	thread_sigs[1] = fault(SIGSEGV, SEGV_ACCERR, 0xdead000);
	thread_sigs[2] = fault(SIGBUS, BUS_ADRERR, 0x7f0000001000);
	thread_sigs[3] = fault(SIGILL, ILL_ILLOPN, 0x401300);
	thread_sigs[4] = fault(SIGFPE, FPE_INTDIV, 0x401400);
	main_sigs[0] = fault(SIGTRAP, TRAP_HWBKPT, 0x402000);
	siginfo_t sys;
	memset(&sys, 0, sizeof sys);
	sys.si_signo = SIGSYS;
	sys.si_code = 1; /* SYS_SECCOMP */
	sys.si_errno = 5;
	sys.si_call_addr = (void *)0x403000;
	sys.si_syscall = 231;
	sys.si_arch = AUDIT_ARCH_X86_64;
	main_sigs[1] = sys;

	mine = &main_got;
	mask_sync(SIG_BLOCK);
	for (int i = 0; i < 2; i++)
		queue(&main_sigs[i]);
	pthread_t th;
	pthread_create(&th, NULL, worker, NULL);
	while (stage != 1)
		cr_sleep_ms(5);
	char pnd_main0[64], pnd_thr0[64], pnd_main1[64], pnd_thr1[64];
	cr_task_field(gettid(), "SigPnd", pnd_main0, sizeof pnd_main0);
	cr_task_field(worker_tid, "SigPnd", pnd_thr0, sizeof pnd_thr0);
	cr_ready();
	cr_wait_go();
	cr_task_field(gettid(), "SigPnd", pnd_main1, sizeof pnd_main1);
	cr_task_field(worker_tid, "SigPnd", pnd_thr1, sizeof pnd_thr1);
	CHECK_S("main thread SigPnd", pnd_main0, pnd_main1);
	CHECK_S("second thread SigPnd", pnd_thr0, pnd_thr1);
	if (main_got.n || thread_got.n)
		cr_fail("signals delivered while blocked: %d and %d", main_got.n, thread_got.n);

	stage = 2;
	while (stage != 3)
		cr_sleep_ms(5);
	pthread_join(th, NULL);
	mask_sync(SIG_UNBLOCK);
	compare("second thread", thread_sigs, 5, &thread_got);
	compare("main thread", main_sigs, 2, &main_got);
	cr_finish();
	return 0;
}
