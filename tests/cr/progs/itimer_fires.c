/* itimer_fires: a periodic ITIMER_REAL (50 ms) with a counting SIGALRM
 * handler must keep firing after checkpoint/restore: the interval is
 * unchanged, the counter value survives and grows by >= 10 in 1 s.
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
	struct itimerval it = { .it_value = { 0, 50000 }, .it_interval = { 0, 50000 } };
	if (setitimer(ITIMER_REAL, &it, NULL) < 0) {
		cr_fail("setup: setitimer: %s", strerror(errno));
		cr_finish();
	}
	while (ticks < 5)
		pause();

	long at_ready = ticks;
	cr_ready();
	cr_wait_go();
	long t1 = ticks;
	if (t1 < at_ready)
		cr_fail("tick counter went backwards: %ld at ready, %ld after restore", at_ready, t1);
	struct itimerval cur;
	getitimer(ITIMER_REAL, &cur);
	CHECK_I("ITIMER_REAL interval (us)", 50000,
		(long long)cur.it_interval.tv_sec * 1000000 + cur.it_interval.tv_usec);
	if (cur.it_value.tv_sec == 0 && cur.it_value.tv_usec == 0)
		cr_fail("ITIMER_REAL is disarmed after restore");
	cr_sleep_ms(1000);
	long t2 = ticks;
	if (t2 - t1 < 10)
		cr_fail("SIGALRM every 50 ms: expected >= 10 ticks in 1 s after restore got %ld", t2 - t1);
	cr_finish();
}
