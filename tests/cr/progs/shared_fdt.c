/* shared_fdt: a child created with clone(CLONE_FILES) shares its parent's fd table. Before
 * the dump both hold a pipe (its data queued) through the one table. After restore: kcmp
 * says the two tasks share one table again, the pipe still holds its bytes, and an fd the
 * parent opens now shows in the child's /proc/PID/fd too.
 */
#include "common.h"
#include <linux/kcmp.h>
#include <sched.h>
#include <sys/syscall.h>
#include <sys/wait.h>

int main(int argc, char **argv) {
	cr_init(argc, argv);
	int p[2];
	if (pipe(p) || write(p[1], "shared", 6) != 6) cr_fail("setup: pipe");
	pid_t child = (pid_t)syscall(SYS_clone, CLONE_FILES | SIGCHLD, 0, 0, 0, 0);
	if (child < 0) cr_fail("setup: clone(CLONE_FILES): %s", strerror(errno));
	if (child == 0) {
		for (;;) pause();
	}
	if (syscall(SYS_kcmp, getpid(), child, KCMP_FILES, 0, 0) != 0) cr_fail("setup: tables not shared");
	cr_ready();
	cr_wait_go();
	long same = syscall(SYS_kcmp, getpid(), child, KCMP_FILES, 0, 0);
	if (same != 0) cr_fail("the child's fd table is not its parent's any more (kcmp %ld)", same);
	char buf[16] = {0};
	if (read(p[0], buf, sizeof buf) != 6 || memcmp(buf, "shared", 6)) cr_fail("pipe lost its bytes: '%s'", buf);
	int n = dup2(p[1], 77);
	char path[64], link[64];
	snprintf(path, sizeof path, "/proc/%d/fd/%d", child, n);
	if (n != 77 || readlink(path, link, sizeof link) <= 0) cr_fail("fd 77 opened by the parent is not in the child's table");
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	cr_finish();
	return 0;
}
