/* ambient_caps: ambient capability sets, per thread. The root (uid 0) raised
 * CAP_NET_BIND_SERVICE and CAP_SYS_NICE; a second thread of it lowered CAP_NET_BIND_SERVICE
 * again. A child dropped to uid 5001 keeping CAP_KILL, CAP_CHOWN and CAP_NET_RAW permitted,
 * raised CAP_KILL and CAP_NET_RAW as ambient, then locked SECBIT_NO_CAP_AMBIENT_RAISE.
 * After restore: the same CapAmb/CapInh/CapPrm/CapEff lines in every thread, the same answers
 * of PR_CAP_AMBIENT_IS_SET, raising stays forbidden in the child, and a program the child
 * executes (itself, in probe mode) gets the ambient capabilities as its effective set. */
#define _GNU_SOURCE
#include "common.h"
#include <linux/capability.h>
#include <linux/securebits.h>
#include <pthread.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#define CAPS(x) (1ull << (x))

static const char *keys[] = { "CapInh", "CapPrm", "CapEff", "CapAmb" };
struct snap {
	char v[4][64];
};
static void take(pid_t tid, struct snap *s)
{
	for (int i = 0; i < 4; i++)
		cr_task_field(tid, keys[i], s->v[i], sizeof s->v[i]);
}
static void compare(const char *who, const struct snap *a, const struct snap *b)
{
	for (int i = 0; i < 4; i++)
		if (strcmp(a->v[i], b->v[i]))
			cr_fail("%s %s: %s before, %s after restore", who, keys[i], a->v[i], b->v[i]);
}

static int capset_sets(uint64_t eff, uint64_t prm, uint64_t inh)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2] = { { 0 } };
	for (int i = 0; i < 2; i++) {
		d[i].effective = (uint32_t)(eff >> (32 * i));
		d[i].permitted = (uint32_t)(prm >> (32 * i));
		d[i].inheritable = (uint32_t)(inh >> (32 * i));
	}
	return (int)syscall(SYS_capset, &h, d);
}

static uint64_t ambient_mask(void)
{
	uint64_t m = 0;
	for (int c = 0; c <= 40; c++)
		if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, c, 0, 0) == 1)
			m |= CAPS(c);
	return m;
}

static pid_t thread_tid;
static volatile uint64_t thread_amb_after;
static volatile int thread_stage;

static void *thread_main(void *arg)
{
	(void)arg;
	thread_tid = gettid();
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_LOWER, CAP_NET_BIND_SERVICE, 0, 0))
		cr_fail("setup: lower ambient CAP_NET_BIND_SERVICE in the thread: %s", strerror(errno));
	thread_stage = 1;
	while (thread_stage != 2)
		cr_sleep_ms(5);
	thread_amb_after = ambient_mask();
	thread_stage = 3;
	return NULL;
}

/* The child: uid 5001 with ambient CAP_KILL and CAP_NET_RAW. */
static int child_main(char *self)
{
	const uint64_t prm = CAPS(CAP_KILL) | CAPS(CAP_CHOWN) | CAPS(CAP_NET_RAW);
	const uint64_t inh = CAPS(CAP_KILL) | CAPS(CAP_NET_RAW);
	const uint64_t setpcap = CAPS(CAP_SETPCAP);
	if (prctl(PR_SET_KEEPCAPS, 1) || setresuid(5001, 5001, 5001))
		_exit(10);
	/* CAP_SETPCAP for as long as it takes to lock the securebit, after the raises. */
	if (capset_sets(CAPS(CAP_KILL) | setpcap, prm | setpcap, inh))
		_exit(11);
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_KILL, 0, 0) ||
	    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_NET_RAW, 0, 0))
		_exit(12);
	if (prctl(PR_SET_SECUREBITS, SECBIT_NO_CAP_AMBIENT_RAISE | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED))
		_exit(13);
	if (capset_sets(CAPS(CAP_KILL), prm, inh))
		_exit(14);
	struct snap before, after;
	take(gettid(), &before);
	cr_write_file("kid-ready", "1", 1);
	cr_wait_go();
	take(gettid(), &after);
	compare("child", &before, &after);
	if (ambient_mask() != inh)
		cr_fail("child ambient set %#llx after restore, expected %#llx",
			(unsigned long long)ambient_mask(), (unsigned long long)inh);
	if (prctl(PR_GET_SECUREBITS) != (SECBIT_NO_CAP_AMBIENT_RAISE | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED))
		cr_fail("child securebits %#x after restore", prctl(PR_GET_SECUREBITS));
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_CHOWN, 0, 0) == 0)
		cr_fail("child could raise an ambient capability although SECBIT_NO_CAP_AMBIENT_RAISE is set");
	/* What ambient capabilities are for: a program executed gets them. */
	pid_t p = fork();
	if (p == 0) {
		char *argv[] = { self, cr_dir, "probe", NULL };
		execv(self, argv);
		_exit(20);
	}
	int st = 0;
	if (waitpid(p, &st, 0) != p || !WIFEXITED(st) || WEXITSTATUS(st))
		cr_fail("probe program: status %#x", st);
	char got[64] = "", path[2300];
	cr_path(path, sizeof path, "probe-capeff");
	ssize_t n = cr_read_file(path, got, sizeof got - 1);
	got[n > 0 ? n : 0] = 0;
	char want[64];
	snprintf(want, sizeof want, "%016llx", (unsigned long long)inh);
	if (strcmp(got, want))
		cr_fail("executed program has CapEff %s, expected the ambient set %s", got, want);
	return cr_verdict("result-child");
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[2], "probe") == 0) {
		cr_init(argc, argv);
		char v[64];
		if (cr_status_field("CapEff", v, sizeof v) < 0)
			_exit(1);
		cr_write_file("probe-capeff", v, strlen(v));
		_exit(0);
	}
	cr_init(argc, argv);
	if (chmod(cr_dir, 0777))
		cr_fail("setup: chmod workdir");
	char self[4096];
	ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
	if (sl <= 0)
		cr_fail("setup: readlink /proc/self/exe");
	self[sl > 0 ? sl : 0] = 0;

	pid_t kid = fork();
	if (kid == 0) {
		_exit(child_main(self));
	}
	cr_wait_for("kid-ready");

	uint64_t all;
	{
		struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
		struct __user_cap_data_struct d[2];
		syscall(SYS_capget, &h, d);
		all = d[0].permitted | ((uint64_t)d[1].permitted << 32);
	}
	const uint64_t inh = CAPS(CAP_NET_BIND_SERVICE) | CAPS(CAP_SYS_NICE);
	if (capset_sets(all, all, inh))
		cr_fail("setup: capset: %s", strerror(errno));
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_NET_BIND_SERVICE, 0, 0) ||
	    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_SYS_NICE, 0, 0))
		cr_fail("setup: raise ambient: %s", strerror(errno));
	pthread_t th;
	pthread_create(&th, NULL, thread_main, NULL);
	while (thread_stage != 1)
		cr_sleep_ms(5);
	struct snap main_before, thread_before, main_after, thread_after;
	take(gettid(), &main_before);
	take(thread_tid, &thread_before);
	cr_ready();
	cr_wait_go();
	take(gettid(), &main_after);
	take(thread_tid, &thread_after);
	compare("main thread", &main_before, &main_after);
	compare("second thread", &thread_before, &thread_after);
	if (ambient_mask() != inh)
		cr_fail("main thread ambient set %#llx, expected %#llx",
			(unsigned long long)ambient_mask(), (unsigned long long)inh);
	thread_stage = 2;
	while (thread_stage != 3)
		cr_sleep_ms(5);
	if (thread_amb_after != CAPS(CAP_SYS_NICE))
		cr_fail("second thread ambient set %#llx, expected %#llx",
			(unsigned long long)thread_amb_after, (unsigned long long)CAPS(CAP_SYS_NICE));
	pthread_join(th, NULL);
	cr_check_child(kid, "child (exit 10-14: setup)", "result-child");
	cr_finish();
	return 0;
}
