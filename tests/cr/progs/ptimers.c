/* ptimers: POSIX timers keep their IDs, clocks, notification, values and intervals; a
 * periodic one keeps firing with its sigev_value. */
#define _GNU_SOURCE
#include "common.h"
#include <sys/syscall.h>

static volatile long fired;
static void on_sig(int s, siginfo_t *si, void *u) { (void)s; (void)u; if (si->si_value.sival_ptr == (void *)0x1234) fired++; }

int main(int argc, char **argv) {
	cr_init(argc, argv);
	struct sigaction sa = {0};
	sa.sa_sigaction = on_sig; sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigaction(SIGRTMIN, &sa, NULL);
	timer_t t1, t2, t3;
	struct sigevent sev = {0};
	sev.sigev_notify = SIGEV_SIGNAL; sev.sigev_signo = SIGRTMIN; sev.sigev_value.sival_ptr = (void *)0x1234;
	timer_create(CLOCK_MONOTONIC, &sev, &t1);
	sev.sigev_value.sival_ptr = (void *)0x5678; sev.sigev_signo = SIGRTMIN + 1;
	signal(SIGRTMIN + 1, SIG_IGN);
	timer_create(CLOCK_REALTIME, &sev, &t2);
	sev.sigev_notify = SIGEV_NONE;
	timer_create(CLOCK_BOOTTIME, &sev, &t3);
	struct itimerspec p = {{0, 20000000}, {0, 20000000}}, l = {{0, 0}, {1000, 0}}, n = {{7, 0}, {2000, 0}};
	timer_settime(t1, 0, &p, NULL); timer_settime(t2, 0, &l, NULL); timer_settime(t3, 0, &n, NULL);
	char before[4096] = "", after[4096] = "";
	cr_read_file("/proc/self/timers", before, sizeof before);
	struct itimerspec b2, b3; timer_gettime(t2, &b2); timer_gettime(t3, &b3);
	cr_ready();
	cr_wait_go();
	cr_read_file("/proc/self/timers", after, sizeof after);
	if (strcmp(before, after)) cr_fail("/proc/self/timers differs:\n%s\n---\n%s", before, after);
	struct itimerspec a2, a3; timer_gettime(t2, &a2); timer_gettime(t3, &a3);
	if (a2.it_value.tv_sec > b2.it_value.tv_sec || a2.it_value.tv_sec < b2.it_value.tv_sec - 30) cr_fail("t2 value %ld vs %ld", a2.it_value.tv_sec, b2.it_value.tv_sec);
	if (a3.it_interval.tv_sec != 7 || a3.it_value.tv_sec > b3.it_value.tv_sec || a3.it_value.tv_sec < b3.it_value.tv_sec - 30) cr_fail("t3 %ld/%ld", a3.it_interval.tv_sec, a3.it_value.tv_sec);
	long f0 = fired; cr_sleep_ms(200); long f1 = fired;
	if (f1 - f0 < 3) cr_fail("periodic timer fired %ld times in 200ms after restore", f1 - f0);
	cr_finish();
	return 0;
}
