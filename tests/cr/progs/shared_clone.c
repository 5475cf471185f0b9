/* shared_clone MODE: the root makes a child with clone() that is a process, not a thread, but
 * shares with it its address space (MODE vm: CLONE_VM, and CLONE_SIGHAND too with vm-sighand)
 * or its fs information (MODE fs: CLONE_FS). cryo cannot make such sharing again, so the dump
 * must refuse (errors/shared-clone); after go, the root checks that the sharing still works
 * (the child's writes show in the root's memory, the child's chdir in the root's cwd).
 */
#define _GNU_SOURCE
#include "common.h"
#include <sched.h>
#include <sys/syscall.h>
#include <sys/wait.h>

static volatile long counter;
static char here[4096];
static int mode_fs;

static int kid(void *arg)
{
	(void)arg;
	struct timespec ts = {0, 2 * 1000 * 1000};
	for (;;) {
		counter++;
		if (mode_fs && counter == 1000)
			syscall(SYS_chdir, "/");
		syscall(SYS_nanosleep, &ts, NULL);
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: %s WORKDIR vm|vm-sighand|fs\n", argv[0]);
		return 2;
	}
	cr_init(argc, argv);
	int flags = SIGCHLD;
	if (strcmp(argv[2], "vm") == 0)
		flags |= CLONE_VM;
	else if (strcmp(argv[2], "vm-sighand") == 0)
		flags |= CLONE_VM | CLONE_SIGHAND;
	else if (strcmp(argv[2], "fs") == 0)
		flags |= CLONE_FS, mode_fs = 1;
	else
		return 2;
	if (!getcwd(here, sizeof here))
		return 2;
	static char stack[1 << 16] __attribute__((aligned(16)));
	pid_t child = clone(kid, stack + sizeof stack, flags, NULL);
	if (child < 0) {
		cr_fail("clone: %s", strerror(errno));
		cr_finish();
	}
	cr_ready();
	cr_wait_go();
	if (mode_fs) {
		/* The child, with the fs the root shares, goes to / after its 1000th round. */
		char now[4096] = "";
		for (int i = 0; i < 500 && strcmp(now, "/") != 0; i++) {
			if (!getcwd(now, sizeof now))
				now[0] = 0;
			usleep(10000);
		}
		CHECK_S("cwd after the child's chdir (shared fs)", "/", now);
	} else {
		long a = counter;
		usleep(200000);
		if (counter == a)
			cr_fail("the child's counter in the shared memory stays at %ld", a);
	}
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	cr_finish();
	return 0;
}
