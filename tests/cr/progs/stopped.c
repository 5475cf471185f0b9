/* stopped: a child stopped by SIGSTOP stays stopped after restore and continues only on
 * SIGCONT. */
#define _GNU_SOURCE
#include "common.h"
#include <sys/wait.h>

static char child_state(pid_t pid) {
	char path[64], buf[512];
	snprintf(path, sizeof path, "/proc/%d/stat", pid);
	if (cr_read_file(path, buf, sizeof buf) <= 0) return '?';
	char *p = strrchr(buf, ')');
	return p && p[1] ? p[2] : '?';
}

int main(int argc, char **argv) {
	cr_init(argc, argv);
	pid_t c = fork();
	if (c == 0) {
		raise(SIGSTOP);
		/* only after SIGCONT */
		cr_write_file("continued", "yes", 3);
		_exit(0);
	}
	for (int i = 0; i < 500 && child_state(c) != 'T'; i++) cr_sleep_ms(10);
	int st;
	if (waitpid(c, &st, WUNTRACED) != c || !WIFSTOPPED(st)) cr_fail("setup: child not stopped");
	cr_ready();
	cr_wait_go();
	/* a leave-running run before us may have left it; a child that ran early has exited and
	 * fails the state check below */
	char cont[2300];
	cr_path(cont, sizeof cont, "continued");
	unlink(cont);
	cr_sleep_ms(200);
	char s = child_state(c);
	if (s != 'T') cr_fail("child state after restore is %c, expected T (stopped)", s);
	if (cr_exists("continued")) cr_fail("child ran before SIGCONT");
	kill(c, SIGCONT);
	if (waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st)) cr_fail("child status %x", st);
	if (!cr_exists("continued")) cr_fail("child did not continue after SIGCONT");
	cr_finish();
	return 0;
}
