/* inotify_deleted: an inotify watch on a file that is deleted but still open, so the watch
 * stays. cryo cannot watch such a file again: dump must refuse and leave us running
 * (errors/inotify-deleted). After go, the watch must still report a write.
 */
#include "common.h"
#include <poll.h>
#include <sys/inotify.h>

int main(int argc, char **argv)
{
	cr_init(argc, argv);
	char path[2300];
	cr_path(path, sizeof path, "doomed");
	/* The inotify fd gets the lower number: dump meets it before the deleted file. */
	int in = inotify_init1(IN_NONBLOCK);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0 || in < 0) {
		cr_fail("setup: %s", strerror(errno));
		cr_finish();
	}
	CHECK_I("setup: wd", 1, inotify_add_watch(in, path, IN_MODIFY));
	if (unlink(path))
		cr_fail("setup: unlink: %s", strerror(errno));
	cr_ready();
	cr_wait_go();
	if (write(fd, "x", 1) != 1)
		cr_fail("write: %s", strerror(errno));
	struct pollfd p = { .fd = in, .events = POLLIN };
	char buf[256] __attribute__((aligned(8)));
	CHECK_I("poll for the event", 1, poll(&p, 1, 2000));
	ssize_t n = read(in, buf, sizeof buf);
	struct inotify_event *e = (struct inotify_event *)buf;
	CHECK_I("event size", (long)sizeof *e, n);
	CHECK_I("event wd", 1, e->wd);
	CHECK_X("event mask", IN_MODIFY, e->mask);
	cr_finish();
}
