/* signals_pending: signals pending at checkpoint time must be pending after
 * restore, with their queue order and siginfo: a thread-directed SIGUSR2
 * (tgkill), two queued process-directed SIGRTMIN+3 with values 111 and 222
 * (sigqueue) and a process-directed SIGRTMIN+4 (kill). All are blocked.
 */
#include "common.h"
#include <sys/syscall.h>

static volatile int unexpected[65];

static void h(int sig)
{
	unexpected[sig]++;
}

static void get_status_masks(char *pnd, char *shd)
{
	if (cr_status_field("SigPnd", pnd, 32) < 0)
		strcpy(pnd, "?");
	if (cr_status_field("ShdPnd", shd, 32) < 0)
		strcpy(shd, "?");
}

static void take(int sig, int want_code, int want_value, const char *what)
{
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, sig);
	struct timespec ts = { 0, 0 };
	siginfo_t si;
	int r = sigtimedwait(&s, &si, &ts);
	if (r != sig) {
		cr_fail("%s: not pending after restore (sigtimedwait: %s)", what,
			r < 0 ? strerror(errno) : "other signal");
		return;
	}
	char w[96];
	snprintf(w, sizeof w, "%s si_code", what);
	if (want_code == SI_TKILL) { /* this kernel reports SI_USER for tgkill */
		if (si.si_code != SI_TKILL && si.si_code != SI_USER)
			cr_fail("%s expected SI_TKILL or SI_USER got %d", w, si.si_code);
	} else
		CHECK_I(w, want_code, si.si_code);
	snprintf(w, sizeof w, "%s si_pid", what);
	CHECK_I(w, getpid(), si.si_pid);
	if (want_code == SI_QUEUE) {
		snprintf(w, sizeof w, "%s si_value", what);
		CHECK_I(w, want_value, si.si_value.sival_int);
	}
}

int main(int argc, char **argv)
{
	cr_init(argc, argv);
	int sigs[] = { SIGUSR2, SIGRTMIN + 3, SIGRTMIN + 4 };
	sigset_t b;
	sigemptyset(&b);
	for (int i = 0; i < 3; i++) {
		signal(sigs[i], h);
		sigaddset(&b, sigs[i]);
	}
	sigprocmask(SIG_BLOCK, &b, NULL);

	syscall(SYS_tgkill, getpid(), gettid(), SIGUSR2); /* thread-directed: SigPnd */
	union sigval v1 = { .sival_int = 111 }, v2 = { .sival_int = 222 };
	sigqueue(getpid(), SIGRTMIN + 3, v1); /* process-directed: ShdPnd */
	sigqueue(getpid(), SIGRTMIN + 3, v2);
	kill(getpid(), SIGRTMIN + 4);

	char pnd0[32], shd0[32], pnd1[32], shd1[32];
	get_status_masks(pnd0, shd0);
	cr_ready();
	cr_wait_go();
	get_status_masks(pnd1, shd1);

	CHECK_S("/proc/self/status SigPnd (thread-directed pending)", pnd0, pnd1);
	CHECK_S("/proc/self/status ShdPnd (process-directed pending)", shd0, shd1);
	take(SIGUSR2, SI_TKILL, 0, "SIGUSR2 (tgkill)");
	take(SIGRTMIN + 3, SI_QUEUE, 111, "first SIGRTMIN+3 (sigqueue 111)");
	take(SIGRTMIN + 3, SI_QUEUE, 222, "second SIGRTMIN+3 (sigqueue 222)");
	take(SIGRTMIN + 4, SI_USER, 0, "SIGRTMIN+4 (kill)");
	sigset_t p;
	sigpending(&p);
	for (int i = 0; i < 3; i++)
		if (sigismember(&p, sigs[i]))
			cr_fail("signal %d still pending after taking the expected instances "
				"(duplicated on restore?)",
				sigs[i]);
	for (int s = 1; s <= 64; s++)
		if (unexpected[s])
			cr_fail("signal %d was delivered to its handler although blocked", s);
	cr_finish();
}
