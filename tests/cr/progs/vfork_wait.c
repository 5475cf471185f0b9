/* vfork_wait: the root vforks a child that waits for WORKDIR/go before it exits; until then
 * the root sits in an uninterruptible vfork wait (state D) and cannot be stopped by ptrace
 * (errors/freeze-timeout). After go, the root reports PASS.
 */
#include "common.h"
#include <sys/syscall.h>
#include <sys/wait.h>

int main(int argc, char **argv) {
	cr_init(argc, argv);
	static char go[2300];
	cr_path(go, sizeof go, "go");
	cr_ready();
	pid_t kid = vfork();
	if (kid == 0) {
		/* Raw syscalls only: this child borrows the parent's memory and stack. */
		struct timespec ts = {0, 20 * 1000 * 1000};
		while (syscall(SYS_access, go, F_OK) != 0) syscall(SYS_nanosleep, &ts, NULL);
		syscall(SYS_exit, 0);
	}
	int st;
	if (waitpid(kid, &st, 0) != kid || !WIFEXITED(st)) cr_fail("vfork child status %x", st);
	cr_finish();
	return 0;
}
