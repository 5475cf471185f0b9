/* restart: threads cut by the dump in calls the kernel restarts through its restart block:
 * poll with a timeout, nanosleep, clock_nanosleep (relative). After restore none fails with
 * EINTR: poll returns when the pipe gets data, the sleeps return 0 after at least the time
 * asked (they start over, so they may take longer).
 */
#include "common.h"
#include <poll.h>
#include <pthread.h>
#include <sys/syscall.h>

#define SLEEP_S 4

static int p[2];
static long rets[3], errs[3];
static double took[3];

static double now(void) {
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void *poller(void *arg) {
	(void)arg;
	struct pollfd pf = {.fd = p[0], .events = POLLIN};
	double t0 = now();
	rets[0] = poll(&pf, 1, 60000);
	errs[0] = errno;
	took[0] = now() - t0;
	return NULL;
}

static void *sleeper(void *arg) {
	(void)arg;
	struct timespec ts = {SLEEP_S, 0};
	double t0 = now();
	rets[1] = syscall(SYS_nanosleep, &ts, NULL);
	errs[1] = errno;
	took[1] = now() - t0;
	return NULL;
}

static void *clock_sleeper(void *arg) {
	(void)arg;
	struct timespec ts = {SLEEP_S, 0};
	double t0 = now();
	rets[2] = clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL); /* returns the error */
	errs[2] = rets[2];
	took[2] = now() - t0;
	return NULL;
}

int main(int argc, char **argv) {
	cr_init(argc, argv);
	if (pipe(p)) cr_fail("setup: pipe");
	pthread_t th[3];
	pthread_create(&th[0], NULL, poller, NULL);
	pthread_create(&th[1], NULL, sleeper, NULL);
	pthread_create(&th[2], NULL, clock_sleeper, NULL);
	cr_sleep_ms(300); /* all three are blocked by now */
	cr_ready();
	cr_wait_go();
	if (write(p[1], "x", 1) != 1) cr_fail("write");
	for (int i = 0; i < 3; i++) pthread_join(th[i], NULL);
	if (rets[0] != 1) cr_fail("poll returned %ld (%s)", rets[0], strerror((int)errs[0]));
	if (rets[1] != 0) cr_fail("nanosleep returned %ld (%s)", rets[1], strerror((int)errs[1]));
	if (rets[2] != 0) cr_fail("clock_nanosleep returned %ld (%s)", rets[2], strerror((int)errs[2]));
	if (took[1] < SLEEP_S || took[2] < SLEEP_S) cr_fail("the sleeps took %.3f and %.3f s, less than %d", took[1], took[2], SLEEP_S);
	cr_finish();
	return 0;
}
