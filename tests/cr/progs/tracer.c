/* tracer WORKDIR PID: PTRACE_SEIZEs PID (without stopping it), writes
 * WORKDIR/tracer-ready with its own pid and sleeps until killed. Killing it
 * detaches the tracee.
 */
#include "common.h"
#include <sys/ptrace.h>

int main(int argc, char **argv)
{
	if (argc < 3)
		return 2;
	cr_init(argc, argv);
	pid_t pid = atoi(argv[2]);
	if (ptrace(PTRACE_SEIZE, pid, 0, 0) < 0) {
		char msg[256];
		int n = snprintf(msg, sizeof msg, "PTRACE_SEIZE %d: %s\n", pid, strerror(errno));
		cr_write_file("tracer-error", msg, (size_t)n);
		return 1;
	}
	cr_ready_named("tracer-ready");
	for (;;)
		pause();
}
