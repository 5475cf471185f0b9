/* shell_job: a process whose stdio is a terminal (started under script(1)).
 * After restore (cryo restore -j inside a new script session) its stdio must
 * be a terminal again and writing to it must work: it prints
 * "after-restore-OK" there, which the driver finds in the new typescript.
 */
#include "common.h"

int main(int argc, char **argv)
{
	cr_init(argc, argv);
	signal(SIGHUP, SIG_IGN); /* the first script session goes away after the dump */
	for (int fd = 0; fd < 3; fd++)
		if (!isatty(fd))
			cr_fail("setup: fd %d is not a terminal", fd);
	cr_ready();
	cr_wait_go();
	for (int fd = 0; fd < 3; fd++)
		if (!isatty(fd))
			cr_fail("fd %d is not a terminal after restore", fd);
	const char msg[] = "after-restore-OK\n";
	if (write(1, msg, sizeof msg - 1) != (ssize_t)sizeof msg - 1)
		cr_fail("write to the terminal on fd 1: %s", strerror(errno));
	cr_finish();
}
