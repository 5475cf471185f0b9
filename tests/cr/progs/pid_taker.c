/* pid_taker WORKDIR PID: makes a child with exactly that PID (clone3 with set_tid), writes
 * WORKDIR/taken with the child's PID, and waits; the child pauses. For errors/occupied-tid.
 */
#include "common.h"
#include <linux/sched.h>
#include <sys/syscall.h>
#include <sys/wait.h>

int main(int argc, char **argv) {
	cr_init(argc, argv);
	if (argc < 3) return 2;
	pid_t want = (pid_t)atoi(argv[2]);
	struct clone_args ca;
	memset(&ca, 0, sizeof ca);
	ca.exit_signal = SIGCHLD;
	ca.set_tid = (uint64_t)(uintptr_t)&want;
	ca.set_tid_size = 1;
	long r = syscall(SYS_clone3, &ca, sizeof ca);
	if (r == 0) {
		for (;;) pause();
	}
	if (r < 0) return 3;
	char b[32];
	int n = snprintf(b, sizeof b, "%ld\n", r);
	cr_write_file("taken", b, (size_t)n);
	waitpid((pid_t)r, NULL, 0);
	return 0;
}
