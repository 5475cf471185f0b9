/* membarrier: registrations of membarrier(2), which belong to the address space. The root
 * (two threads) registered for private expedited barriers, their sync-core and rseq kinds and
 * global expedited ones; a child forked before any registration has none; a child forked
 * after the first one inherited only that. After restore each has the same registrations
 * (MEMBARRIER_CMD_GET_REGISTRATIONS) and each barrier kind works exactly where it is
 * registered (an unregistered private expedited barrier fails with EPERM). */
#define _GNU_SOURCE
#include "common.h"
#include <pthread.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#define CMD_GLOBAL_EXPEDITED (1 << 1)
#define CMD_REGISTER_GLOBAL_EXPEDITED (1 << 2)
#define CMD_PRIVATE_EXPEDITED (1 << 3)
#define CMD_REGISTER_PRIVATE_EXPEDITED (1 << 4)
#define CMD_PRIVATE_EXPEDITED_SYNC_CORE (1 << 5)
#define CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE (1 << 6)
#define CMD_PRIVATE_EXPEDITED_RSEQ (1 << 7)
#define CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ (1 << 8)
#define CMD_GET_REGISTRATIONS (1 << 9)

static long mb(int cmd)
{
	long r = syscall(SYS_membarrier, cmd, 0, 0);
	return r < 0 ? -errno : r;
}

/* Every private kind answers 0 where registered and -EPERM where not. */
static void check(const char *who, long want_mask)
{
	char w[128];
	snprintf(w, sizeof w, "%s: registrations", who);
	CHECK_X(w, want_mask, mb(CMD_GET_REGISTRATIONS));
	const int kinds[][2] = {
		{ CMD_PRIVATE_EXPEDITED, CMD_REGISTER_PRIVATE_EXPEDITED },
		{ CMD_PRIVATE_EXPEDITED_SYNC_CORE, CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE },
		{ CMD_PRIVATE_EXPEDITED_RSEQ, CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ },
	};
	for (int i = 0; i < 3; i++) {
		snprintf(w, sizeof w, "%s: membarrier(%#x)", who, kinds[i][0]);
		CHECK_I(w, (want_mask & kinds[i][1]) ? 0 : -EPERM, mb(kinds[i][0]));
	}
	snprintf(w, sizeof w, "%s: global expedited barrier", who);
	CHECK_I(w, 0, mb(CMD_GLOBAL_EXPEDITED));
}

static void child(const char *name, long want)
{
	char ready[64];
	snprintf(ready, sizeof ready, "ready-%s", name);
	if (mb(CMD_GET_REGISTRATIONS) != want)
		cr_fail("setup: %s has registrations %#lx, expected %#lx", name,
			mb(CMD_GET_REGISTRATIONS), want);
	cr_ready_named(ready);
	cr_wait_go();
	check(name, want);
	char res[64];
	snprintf(res, sizeof res, "result-%s", name);
	_exit(cr_verdict(res));
}

static void *idle(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

int main(int argc, char **argv)
{
	cr_init(argc, argv);
	if (mb(CMD_GET_REGISTRATIONS) < 0) {
		cr_fail("setup: this kernel has no MEMBARRIER_CMD_GET_REGISTRATIONS (Linux 6.3)");
		cr_ready();
		cr_wait_go();
		cr_finish();
	}
	pid_t none = fork();
	if (none == 0)
		child("none", 0);
	if (mb(CMD_REGISTER_PRIVATE_EXPEDITED))
		cr_fail("setup: register private expedited");
	pid_t inherited = fork();
	if (inherited == 0)
		child("inherited", CMD_REGISTER_PRIVATE_EXPEDITED);
	pthread_t th;
	pthread_create(&th, NULL, idle, NULL);
	if (mb(CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE) || mb(CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ) ||
	    mb(CMD_REGISTER_GLOBAL_EXPEDITED))
		cr_fail("setup: register the other kinds: %s", strerror(errno));
	const long all = CMD_REGISTER_GLOBAL_EXPEDITED | CMD_REGISTER_PRIVATE_EXPEDITED |
			 CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE | CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ;
	cr_wait_for("ready-none");
	cr_wait_for("ready-inherited");
	cr_ready();
	cr_wait_go();
	check("root", all);
	cr_check_child(none, "child none", "result-none");
	cr_check_child(inherited, "child inherited", "result-inherited");
	cr_finish();
	return 0;
}
