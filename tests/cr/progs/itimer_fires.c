/* itimer_fires: a periodic ITIMER_REAL (1 ms) with a counting SIGALRM
 * handler must keep firing after checkpoint/restore: the interval is
 * unchanged, the counter value survives and grows by >= 200 in 1 s.
 * The period is shorter than a dump takes, so the timer expires while the
 * task is frozen: the pending SIGALRM must not be lost, and the timer must not
 * be restored disarmed (since 6.13 a periodic ITIMER_REAL whose signal is
 * pending reads as value 0 until the signal is delivered).
 */
#include "common.h"
#include <sys/time.h>

static volatile long ticks;

static void h(int sig)
{
	(void)sig;
	ticks++;
}

int main(int argc, char **argv)
{
	cr_init(argc, argv);
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = h;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGALRM, &sa, NULL);
	struct itimerval it = { .it_value = { 0, 1000 }, .it_interval = { 0, 1000 } };
	if (setitimer(ITIMER_REAL, &it, NULL) < 0) {
		cr_fail("setup: setitimer: %s", strerror(errno));
		cr_finish();
	}
	while (ticks < 20)
		pause();

	long at_ready = ticks;
	cr_ready();
	cr_wait_go();
	long t1 = ticks;
	if (t1 < at_ready)
		cr_fail("tick counter went backwards: %ld at ready, %ld after restore", at_ready, t1);
	struct itimerval cur;
	getitimer(ITIMER_REAL, &cur);
	CHECK_I("ITIMER_REAL interval (us)", 1000,
		(long long)cur.it_interval.tv_sec * 1000000 + cur.it_interval.tv_usec);
	if (cur.it_value.tv_sec == 0 && cur.it_value.tv_usec == 0)
		cr_fail("ITIMER_REAL is disarmed after restore");
	cr_sleep_ms(1000);
	long t2 = ticks;
	if (t2 - t1 < 200)
		cr_fail("SIGALRM every 1 ms: expected >= 200 ticks in 1 s after restore got %ld", t2 - t1);
	cr_finish();
}
