/* event_fds: a periodic timerfd whose expirations pile up unread, a one-shot timerfd far
 * in the future, and a signalfd for two blocked signals, one of them pending with a value.
 * After restore: the timers keep their clock, interval and (at most) their remaining time;
 * no pending expiration is lost and the periodic one keeps ticking; the signalfd takes the
 * same signals and returns the pending one with its value.
 */
#include "common.h"
#include <sys/signalfd.h>
#include <sys/timerfd.h>

int main(int argc, char **argv) {
	cr_init(argc, argv);
	int tp = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
	int tl = timerfd_create(CLOCK_REALTIME, 0);
	struct itimerspec p = {{0, 10000000}, {0, 10000000}}, l = {{0, 0}, {5000, 0}};
	if (tp < 0 || tl < 0 || timerfd_settime(tp, 0, &p, NULL) || timerfd_settime(tl, 0, &l, NULL)) cr_fail("setup: timerfd");
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR2);
	sigaddset(&set, SIGRTMIN + 2);
	sigprocmask(SIG_BLOCK, &set, NULL);
	int sf = signalfd(-1, &set, SFD_NONBLOCK);
	union sigval v = {.sival_int = 4242};
	if (sf < 0 || sigqueue(getpid(), SIGUSR2, v)) cr_fail("setup: signalfd");
	cr_sleep_ms(100);  /* ~10 expirations of tp pile up */
	struct itimerspec before;
	timerfd_gettime(tl, &before);
	cr_ready();
	cr_wait_go();
	uint64_t n = 0;
	if (read(tp, &n, 8) != 8 || n < 10) cr_fail("periodic timerfd: %llu expirations read, expected at least 10", (unsigned long long)n);
	cr_sleep_ms(50);
	if (read(tp, &n, 8) != 8 || n < 2) cr_fail("periodic timerfd does not tick after restore (%llu)", (unsigned long long)n);
	struct itimerspec now;
	timerfd_gettime(tp, &now);
	if (now.it_interval.tv_sec != 0 || now.it_interval.tv_nsec != 10000000) cr_fail("periodic timerfd interval changed");
	timerfd_gettime(tl, &now);
	if (now.it_value.tv_sec > before.it_value.tv_sec || now.it_value.tv_sec < before.it_value.tv_sec - 60)
		cr_fail("one-shot timerfd: %ld s left, %ld before", (long)now.it_value.tv_sec, (long)before.it_value.tv_sec);
	struct signalfd_siginfo si;
	if (read(sf, &si, sizeof si) != sizeof si) cr_fail("signalfd: nothing to read (%s)", strerror(errno));
	else if (si.ssi_signo != SIGUSR2 || si.ssi_int != 4242) cr_fail("signalfd: got signal %u value %d", si.ssi_signo, si.ssi_int);
	v.sival_int = 7;
	sigqueue(getpid(), SIGRTMIN + 2, v);
	if (read(sf, &si, sizeof si) != sizeof si || si.ssi_signo != (unsigned)(SIGRTMIN + 2)) cr_fail("signalfd does not take SIGRTMIN+2");
	cr_finish();
	return 0;
}
