/* pipe_holder: holds both ends of a pipe with 11 bytes in it (cryo does not
 * support pipes yet: dump must refuse and leave us running). After go, the
 * data must still be in the pipe.
 */
#include "common.h"

int main(int argc, char **argv)
{
	cr_init(argc, argv);
	int p[2];
	if (pipe(p) < 0) {
		cr_fail("setup: pipe: %s", strerror(errno));
		cr_finish();
	}
	if (write(p[1], "hello-pipe\n", 11) != 11)
		cr_fail("setup: write to pipe: %s", strerror(errno));
	cr_ready();
	cr_wait_go();
	char buf[32] = { 0 };
	ssize_t n = read(p[0], buf, sizeof buf - 1);
	CHECK_I("bytes read back from the pipe", 11, n);
	CHECK_S("pipe content", "hello-pipe\n", buf);
	cr_finish();
}
