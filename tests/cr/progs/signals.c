/* signals: signal dispositions (handler, flags, restorer, mask) of all 64
 * signals, the blocked mask and the alternate signal stack must survive
 * checkpoint/restore; handlers must then actually run as configured
 * (SA_SIGINFO, SA_ONSTACK, SA_NODEFER, SA_RESETHAND, sa_mask).
 */
#include "common.h"
#include <sys/syscall.h>

struct ksigaction {
	void *handler;
	unsigned long flags;
	void *restorer;
	uint64_t mask;
};

static struct ksigaction act_before[65];
static uint64_t blocked_before;
static stack_t ss_before;
static char altstack[1 << 16] __attribute__((aligned(16)));

static volatile int hits[65];
static volatile uint64_t mask_in_handler[65];
static volatile uintptr_t sp_in_handler[65];
static volatile int onstack_in_handler[65];
static volatile int si_signo_seen[65], si_code_seen[65], si_pid_seen[65];

static uint64_t cur_blocked(void)
{
	uint64_t m = 0;
	syscall(SYS_rt_sigprocmask, SIG_BLOCK, NULL, &m, 8);
	return m;
}

static void record(int sig)
{
	volatile char here;
	stack_t ss;
	hits[sig]++;
	mask_in_handler[sig] = cur_blocked();
	sp_in_handler[sig] = (uintptr_t)&here;
	sigaltstack(NULL, &ss);
	onstack_in_handler[sig] = (ss.ss_flags & SS_ONSTACK) != 0;
}

static void h_plain(int sig)
{
	record(sig);
}

static void h_plain2(int sig)
{
	record(sig);
}

static void h_info(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	record(sig);
	si_signo_seen[sig] = si->si_signo;
	si_code_seen[sig] = si->si_code;
	si_pid_seen[sig] = si->si_pid;
}

static uint64_t bit(int sig)
{
	return 1ULL << (sig - 1);
}

static void set(int sig, void (*h)(int), void (*hi)(int, siginfo_t *, void *), int flags,
		const int *maskset)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	if (hi)
		sa.sa_sigaction = hi;
	else
		sa.sa_handler = h;
	sa.sa_flags = flags;
	sigemptyset(&sa.sa_mask);
	for (; maskset && *maskset; maskset++)
		sigaddset(&sa.sa_mask, *maskset);
	if (sigaction(sig, &sa, NULL) < 0) {
		cr_fail("setup: sigaction(%d): %s", sig, strerror(errno));
		cr_finish();
	}
}

static void get_all(struct ksigaction *a)
{
	for (int s = 1; s <= 64; s++) {
		memset(&a[s], 0, sizeof a[s]);
		if (s == SIGKILL || s == SIGSTOP)
			continue;
		if (syscall(SYS_rt_sigaction, s, NULL, &a[s], 8) < 0)
			cr_fail("rt_sigaction(%d) read: %s", s, strerror(errno));
	}
}

static void check_dispositions(void)
{
	static struct ksigaction now[65];
	get_all(now);
	for (int s = 1; s <= 64; s++) {
		if (s == SIGKILL || s == SIGSTOP)
			continue;
		char w[64];
		snprintf(w, sizeof w, "signal %d handler", s);
		CHECK_X(w, (uintptr_t)act_before[s].handler, (uintptr_t)now[s].handler);
		snprintf(w, sizeof w, "signal %d sa_flags", s);
		CHECK_X(w, act_before[s].flags, now[s].flags);
		snprintf(w, sizeof w, "signal %d sa_restorer", s);
		CHECK_X(w, (uintptr_t)act_before[s].restorer, (uintptr_t)now[s].restorer);
		snprintf(w, sizeof w, "signal %d sa_mask", s);
		CHECK_X(w, act_before[s].mask, now[s].mask);
	}
}

static int on_altstack(uintptr_t sp)
{
	return sp >= (uintptr_t)altstack && sp < (uintptr_t)altstack + sizeof altstack;
}

static void check_behaviour(void)
{
	int me = getpid();

	/* SIGHUP: SA_RESTART, sa_mask {SIGINT}; SIGHUP itself blocked inside */
	raise(SIGHUP);
	CHECK_I("SIGHUP handler calls", 1, hits[SIGHUP]);
	uint64_t want = blocked_before | bit(SIGHUP) | bit(SIGINT);
	CHECK_X("blocked mask inside SIGHUP handler", want, mask_in_handler[SIGHUP]);
	if (on_altstack(sp_in_handler[SIGHUP]))
		cr_fail("SIGHUP handler (no SA_ONSTACK) ran on the alternate stack");

	/* SIGINT: SA_SIGINFO */
	raise(SIGINT);
	CHECK_I("SIGINT handler calls", 1, hits[SIGINT]);
	CHECK_I("SIGINT si_signo", SIGINT, si_signo_seen[SIGINT]);
	CHECK_I("SIGINT si_code", SI_TKILL, si_code_seen[SIGINT]);
	CHECK_I("SIGINT si_pid", me, si_pid_seen[SIGINT]);

	/* SIGQUIT: SA_NODEFER -> SIGQUIT not blocked inside its handler */
	raise(SIGQUIT);
	CHECK_I("SIGQUIT handler calls", 1, hits[SIGQUIT]);
	if (mask_in_handler[SIGQUIT] & bit(SIGQUIT))
		cr_fail("SA_NODEFER lost: SIGQUIT blocked inside its handler (mask 0x%llx)",
			(unsigned long long)mask_in_handler[SIGQUIT]);

	/* SIGTERM: SA_RESETHAND -> handler once, then SIG_DFL */
	raise(SIGTERM);
	CHECK_I("SIGTERM handler calls", 1, hits[SIGTERM]);
	struct sigaction sa;
	sigaction(SIGTERM, NULL, &sa);
	if (sa.sa_handler != SIG_DFL)
		cr_fail("SA_RESETHAND lost: SIGTERM handler not reset to SIG_DFL after delivery");

	/* SIGUSR2: blocked + SA_ONSTACK: pending while blocked, runs on the altstack */
	raise(SIGUSR2);
	CHECK_I("SIGUSR2 handler calls while blocked", 0, hits[SIGUSR2]);
	sigset_t pend;
	sigpending(&pend);
	if (!sigismember(&pend, SIGUSR2))
		cr_fail("SIGUSR2 (blocked) not pending after raise()");
	sigset_t u;
	sigemptyset(&u);
	sigaddset(&u, SIGUSR2);
	sigprocmask(SIG_UNBLOCK, &u, NULL);
	CHECK_I("SIGUSR2 handler calls after unblock", 1, hits[SIGUSR2]);
	if (!on_altstack(sp_in_handler[SIGUSR2]) || !onstack_in_handler[SIGUSR2])
		cr_fail("SIGUSR2 (SA_ONSTACK) handler did not run on the alternate stack "
			"(sp %p, altstack %p-%p, SS_ONSTACK %d)",
			(void *)sp_in_handler[SIGUSR2], (void *)altstack,
			(void *)(altstack + sizeof altstack), onstack_in_handler[SIGUSR2]);

	/* SIGRTMAX: SA_SIGINFO|SA_ONSTACK, mask {SIGINT, SIGQUIT}, queued value */
	union sigval v = { .sival_int = 4242 };
	sigqueue(me, SIGRTMAX, v);
	CHECK_I("SIGRTMAX handler calls", 1, hits[SIGRTMAX]);
	CHECK_I("SIGRTMAX si_code", SI_QUEUE, si_code_seen[SIGRTMAX]);
	if (!on_altstack(sp_in_handler[SIGRTMAX]))
		cr_fail("SIGRTMAX (SA_ONSTACK) handler did not run on the alternate stack");
	want = (blocked_before & ~bit(SIGUSR2)) | bit(SIGRTMAX) | bit(SIGINT) | bit(SIGQUIT);
	CHECK_X("blocked mask inside SIGRTMAX handler", want, mask_in_handler[SIGRTMAX]);

	/* SIGRTMIN+1: sa_mask {SIGHUP, SIGRTMIN+5} */
	raise(SIGRTMIN + 1);
	CHECK_I("SIGRTMIN+1 handler calls", 1, hits[SIGRTMIN + 1]);
	want = (blocked_before & ~bit(SIGUSR2)) | bit(SIGRTMIN + 1) | bit(SIGHUP) |
	       bit(SIGRTMIN + 5);
	CHECK_X("blocked mask inside SIGRTMIN+1 handler", want, mask_in_handler[SIGRTMIN + 1]);

	/* SIGURG: a second plain handler, sa_mask = everything */
	raise(SIGURG);
	CHECK_I("SIGURG handler calls", 1, hits[SIGURG]);

	/* ignored signals stay ignored (the process survives them) */
	raise(SIGALRM);
	raise(SIGPIPE);
	raise(SIGXCPU);
}

int main(int argc, char **argv)
{
	cr_init(argc, argv);

	stack_t ss = { .ss_sp = altstack, .ss_size = sizeof altstack, .ss_flags = 0 };
	if (sigaltstack(&ss, NULL) < 0) {
		cr_fail("setup: sigaltstack: %s", strerror(errno));
		cr_finish();
	}

	set(SIGHUP, h_plain, NULL, SA_RESTART, (int[]){ SIGINT, 0 });
	set(SIGINT, NULL, h_info, SA_SIGINFO, NULL);
	set(SIGQUIT, h_plain, NULL, SA_NODEFER, NULL);
	set(SIGTERM, h_plain, NULL, SA_RESETHAND, NULL);
	set(SIGUSR2, h_plain, NULL, SA_ONSTACK | SA_RESTART, NULL);
	set(SIGUSR1, h_plain2, NULL, SA_RESTART, NULL); /* the driver sends SIGUSR1 */
	set(SIGCHLD, h_plain, NULL, SA_NOCLDSTOP | SA_RESTART, NULL);
	set(SIGRTMIN + 1, NULL, h_info, SA_SIGINFO, (int[]){ SIGHUP, SIGRTMIN + 5, 0 });
	set(SIGRTMAX, NULL, h_info, SA_SIGINFO | SA_RESTART | SA_ONSTACK,
	    (int[]){ SIGINT, SIGQUIT, 0 });
	struct sigaction all;
	memset(&all, 0, sizeof all);
	all.sa_handler = h_plain2;
	sigfillset(&all.sa_mask);
	sigaction(SIGURG, &all, NULL);
	signal(SIGALRM, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGXCPU, SIG_IGN);
	signal(SIGWINCH, SIG_DFL);

	sigset_t b;
	sigemptyset(&b);
	sigaddset(&b, SIGUSR2);
	sigaddset(&b, SIGRTMIN + 3);
	sigaddset(&b, SIGPROF);
	sigprocmask(SIG_BLOCK, &b, NULL);

	get_all(act_before);
	blocked_before = cur_blocked();
	sigaltstack(NULL, &ss_before);

	cr_ready();
	cr_wait_go();

	check_dispositions();
	CHECK_X("blocked signal mask", blocked_before, cur_blocked());
	stack_t ss_after;
	sigaltstack(NULL, &ss_after);
	CHECK_X("sigaltstack ss_sp", (uintptr_t)ss_before.ss_sp, (uintptr_t)ss_after.ss_sp);
	CHECK_U("sigaltstack ss_size", ss_before.ss_size, ss_after.ss_size);
	CHECK_X("sigaltstack ss_flags", ss_before.ss_flags, ss_after.ss_flags);
	check_behaviour();
	cr_check_threads_1();
	cr_finish();
}
