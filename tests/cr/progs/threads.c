/* threads: 8 threads with their own TIDs, TLS, names and signal masks, blocked in futex
 * waits, nanosleep and poll, sharing a mutex/condvar work queue. After restore every thread
 * has its TID, TLS, name and mask, and the pool makes progress again. */
#define _GNU_SOURCE
#include "common.h"
#include <pthread.h>
#include <sys/syscall.h>
#include <poll.h>

#define N 8
static __thread long tls_val;
static pid_t tids[N];
static volatile int go_flag;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static long work_done;
static int ready_count;
static char fails[N][256];

static void *worker(void *arg) {
	long i = (long)arg;
	tls_val = 1000 + i;
	tids[i] = syscall(SYS_gettid);
	char name[16];
	snprintf(name, sizeof name, "worker-%ld", i);
	pthread_setname_np(pthread_self(), name);
	sigset_t m;
	sigemptyset(&m);
	sigaddset(&m, SIGRTMIN + (int)i);
	pthread_sigmask(SIG_BLOCK, &m, NULL);
	pthread_mutex_lock(&mu);
	ready_count++;
	pthread_mutex_unlock(&mu);
	while (!go_flag) {
		if (i % 3 == 0) {
			pthread_mutex_lock(&mu);
			work_done++;
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 5000000;
			if (ts.tv_nsec >= 1000000000) { ts.tv_sec++; ts.tv_nsec -= 1000000000; }
			pthread_cond_timedwait(&cv, &mu, &ts);
			pthread_mutex_unlock(&mu);
		} else if (i % 3 == 1) {
			struct timespec ts = {0, 3000000};
			nanosleep(&ts, NULL);
		} else {
			poll(NULL, 0, 7);
		}
	}
	if (tls_val != 1000 + i) snprintf(fails[i], 256, "thread %ld tls %ld", i, tls_val);
	if (syscall(SYS_gettid) != tids[i]) snprintf(fails[i], 256, "thread %ld tid changed", i);
	char got[16] = "";
	pthread_getname_np(pthread_self(), got, sizeof got);
	if (strcmp(got, name)) snprintf(fails[i], 256, "thread %ld name %s", i, got);
	sigset_t cur;
	pthread_sigmask(SIG_BLOCK, NULL, &cur);
	if (!sigismember(&cur, SIGRTMIN + (int)i)) snprintf(fails[i], 256, "thread %ld mask lost", i);
	return NULL;
}

int main(int argc, char **argv) {
	cr_init(argc, argv);
	pthread_t th[N];
	for (long i = 0; i < N; i++) pthread_create(&th[i], NULL, worker, (void *)i);
	for (;;) { pthread_mutex_lock(&mu); int r = ready_count; pthread_mutex_unlock(&mu); if (r == N) break; usleep(1000); }
	cr_ready();
	cr_wait_go();
	pthread_mutex_lock(&mu); long before = work_done; pthread_mutex_unlock(&mu);
	usleep(100000);
	pthread_mutex_lock(&mu); long after = work_done; pthread_mutex_unlock(&mu);
	if (after <= before) cr_fail("pool made no progress after restore (%ld)", after);
	go_flag = 1;
	pthread_cond_broadcast(&cv);
	for (int i = 0; i < N; i++) pthread_join(th[i], NULL);
	for (int i = 0; i < N; i++) if (fails[i][0]) cr_fail("%s", fails[i]);
	cr_finish();
	return 0;
}
