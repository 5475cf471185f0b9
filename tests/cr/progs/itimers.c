/* itimers: interval timers ITIMER_REAL (1000 s, interval 500 s),
 * ITIMER_VIRTUAL (2000 s, no interval) and ITIMER_PROF (3000 s, interval 7 s)
 * must survive checkpoint/restore: intervals exact, remaining values > 0,
 * not above the values recorded right before the checkpoint, and not below
 * them by more than the time that passed (+1 s).
 */
#include "common.h"
#include <sys/time.h>

static volatile int fired[65];

static void h(int sig)
{
	fired[sig]++;
}

static long long us(struct timeval tv)
{
	return (long long)tv.tv_sec * 1000000 + tv.tv_usec;
}

static long long now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int main(int argc, char **argv)
{
	cr_init(argc, argv);
	signal(SIGALRM, h);
	signal(SIGVTALRM, h);
	signal(SIGPROF, h);

	static const int which[3] = { ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF };
	static const char *names[3] = { "ITIMER_REAL", "ITIMER_VIRTUAL", "ITIMER_PROF" };
	struct itimerval set[3] = {
		{ .it_value = { 1000, 0 }, .it_interval = { 500, 0 } },
		{ .it_value = { 2000, 0 }, .it_interval = { 0, 0 } },
		{ .it_value = { 3000, 0 }, .it_interval = { 7, 0 } },
	};
	for (int i = 0; i < 3; i++)
		if (setitimer(which[i], &set[i], NULL) < 0) {
			cr_fail("setup: setitimer(%s): %s", names[i], strerror(errno));
			cr_finish();
		}

	struct itimerval before[3], after[3];
	for (int i = 0; i < 3; i++)
		getitimer(which[i], &before[i]);
	long long t0 = now_us();
	cr_ready();
	cr_wait_go();
	for (int i = 0; i < 3; i++)
		getitimer(which[i], &after[i]);
	long long elapsed = now_us() - t0;

	for (int i = 0; i < 3; i++) {
		char w[96];
		snprintf(w, sizeof w, "%s interval (us)", names[i]);
		CHECK_I(w, us(set[i].it_interval), us(after[i].it_interval));
		long long b = us(before[i].it_value), a = us(after[i].it_value);
		/* REAL counts wall time; VIRTUAL/PROF count CPU time (we mostly sleep) */
		long long slack = (i == 0 ? elapsed : 0) + 1000000;
		if (a <= 0 || a > b || a < b - slack)
			cr_fail("%s remaining expected in [%lld, %lld] us (recorded %lld us, %lld us "
				"passed) got %lld us",
				names[i], b - slack > 0 ? b - slack : 1, b, b, elapsed, a);
	}
	if (fired[SIGALRM] || fired[SIGVTALRM] || fired[SIGPROF])
		cr_fail("a timer fired early: SIGALRM %d SIGVTALRM %d SIGPROF %d", fired[SIGALRM],
			fired[SIGVTALRM], fired[SIGPROF]);
	cr_finish();
}
