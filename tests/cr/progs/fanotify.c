/* fanotify: a notification group (FAN_NONBLOCK | FAN_CLOEXEC) with an inode mark on a
 * directory (close-write of its children), an inode mark with only an ignored mask (a file in
 * that directory stays quiet) and a mount mark on /dev/shm (close-write); a second group
 * (blocking, no cloexec, FAN_REPORT_FID) with an inode mark on a file.
 * After go: the flags and the marks exactly as fdinfo showed them before; then files written
 * now make events from our own pid with the right mask and file, and the quiet one does not.
 */
#include "common.h"
#include <poll.h>
#include <sys/fanotify.h>

static char dir[2300], loud[2400], quiet[2400], shm[256], lone[2300];

/* fdinfo lines starting with "fanotify", sorted, joined by '|' (their order is the kernel's). */
static void marks(int fd, char *out, size_t n)
{
	char path[64], buf[8192], *lines[64];
	int k = 0;
	snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd);
	ssize_t len = cr_read_file(path, buf, sizeof buf - 1);
	out[0] = 0;
	if (len < 0)
		return;
	buf[len] = 0;
	for (char *l = strtok(buf, "\n"); l && k < 64; l = strtok(NULL, "\n"))
		if (strncmp(l, "fanotify", 8) == 0)
			lines[k++] = l;
	for (int i = 0; i < k; i++)
		for (int j = i + 1; j < k; j++)
			if (strcmp(lines[j], lines[i]) < 0) {
				char *t = lines[i];
				lines[i] = lines[j];
				lines[j] = t;
			}
	size_t o = 0;
	for (int i = 0; i < k && o < n; i++)
		o += (size_t)snprintf(out + o, n - o, "%s|", lines[i]);
}

/* Our own events on group fd within `ms`, as "mask:path;"; the event fds are closed. */
static void events(int fd, int ms, char *out, size_t n)
{
	char buf[8192] __attribute__((aligned(8)));
	size_t len = 0;
	out[0] = 0;
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, ms) <= 0)
			return;
		ssize_t r = read(fd, buf, sizeof buf);
		if (r <= 0)
			return;
		struct fanotify_event_metadata *m = (struct fanotify_event_metadata *)buf;
		for (; FAN_EVENT_OK(m, r); m = FAN_EVENT_NEXT(m, r)) {
			char link[64], target[2400] = "";
			if (m->fd >= 0) {
				snprintf(link, sizeof link, "/proc/self/fd/%d", m->fd);
				ssize_t t = readlink(link, target, sizeof target - 1);
				target[t > 0 ? t : 0] = 0;
				close(m->fd);
			}
			if (m->pid == getpid())
				len += (size_t)snprintf(out + len, n - len, "%llx:%s;",
							(unsigned long long)m->mask, target);
		}
		ms = 50;
	}
}

static void write_file(const char *p)
{
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, "x", 1) != 1)
		cr_fail("write %s: %s", p, strerror(errno));
	close(fd);
}

int main(int argc, char **argv)
{
	cr_init(argc, argv);
	cr_path(dir, sizeof dir, "dir");
	cr_path(lone, sizeof lone, "lone");
	snprintf(loud, sizeof loud, "%s/loud", dir);
	snprintf(quiet, sizeof quiet, "%s/quiet", dir);
	snprintf(shm, sizeof shm, "/dev/shm/cr-fanotify-%d", (int)getpid());
	if (mkdir(dir, 0755))
		cr_fail("setup: mkdir: %s", strerror(errno));
	write_file(quiet);
	write_file(lone);
	write_file(shm);

	int a = fanotify_init(FAN_CLASS_NOTIF | FAN_NONBLOCK | FAN_CLOEXEC, O_RDONLY | O_LARGEFILE);
	int b = fanotify_init(FAN_CLASS_NOTIF | FAN_REPORT_FID, O_RDONLY);
	if (a < 0 || b < 0) {
		cr_fail("setup: fanotify_init: %s", strerror(errno));
		cr_finish();
	}
	if (fanotify_mark(a, FAN_MARK_ADD, FAN_CLOSE_WRITE | FAN_EVENT_ON_CHILD, AT_FDCWD, dir) ||
	    fanotify_mark(a, FAN_MARK_ADD | FAN_MARK_IGNORED_MASK | FAN_MARK_IGNORED_SURV_MODIFY,
			  FAN_CLOSE_WRITE, AT_FDCWD, quiet) ||
	    fanotify_mark(a, FAN_MARK_ADD | FAN_MARK_MOUNT, FAN_CLOSE_WRITE, AT_FDCWD, "/dev/shm") ||
	    fanotify_mark(b, FAN_MARK_ADD, FAN_MODIFY, AT_FDCWD, lone))
		cr_fail("setup: fanotify_mark: %s", strerror(errno));
	char ev[4096], before_a[4096], before_b[4096], now[4096];
	events(a, 100, ev, sizeof ev); /* the setup writes came before the marks: none */
	marks(a, before_a, sizeof before_a);
	marks(b, before_b, sizeof before_b);

	cr_ready();
	cr_wait_go();

	CHECK_X("a: status flags O_NONBLOCK", O_NONBLOCK, fcntl(a, F_GETFL) & O_NONBLOCK);
	CHECK_X("a: FD_CLOEXEC", FD_CLOEXEC, fcntl(a, F_GETFD));
	CHECK_X("b: status flags O_NONBLOCK", 0, fcntl(b, F_GETFL) & O_NONBLOCK);
	CHECK_X("b: FD_CLOEXEC", 0, fcntl(b, F_GETFD));
	marks(a, now, sizeof now);
	CHECK_S("a: fanotify lines of fdinfo", before_a, now);
	marks(b, now, sizeof now);
	CHECK_S("b: fanotify lines of fdinfo", before_b, now);
	if (!strstr(before_a, "mnt_id:") || !strstr(before_a, "mflags:40 mask:0 ignored_mask:8 "))
		cr_fail("a: the marks are not what the test set up: %s", before_a);
	events(a, 100, ev, sizeof ev);
	CHECK_S("a: events queued before any change", "", ev);

	char exp[8192];
	write_file(loud);
	write_file(quiet);
	write_file(shm);
	events(a, 1000, ev, sizeof ev);
	snprintf(exp, sizeof exp, "%x:%s;%x:%s;", FAN_CLOSE_WRITE, loud, FAN_CLOSE_WRITE, shm);
	CHECK_S("a: events after writing dir/loud, dir/quiet and the /dev/shm file", exp, ev);

	/* b reports file ids, not fds: one FAN_MODIFY event, with no fd. */
	write_file(lone);
	struct pollfd p = { .fd = b, .events = POLLIN };
	char buf[4096] __attribute__((aligned(8)));
	CHECK_I("b: poll for the event", 1, poll(&p, 1, 2000));
	ssize_t r = read(b, buf, sizeof buf);
	struct fanotify_event_metadata *m = (struct fanotify_event_metadata *)buf;
	if (r < (ssize_t)sizeof *m)
		cr_fail("b: read %zd bytes: %s", r, strerror(errno));
	else {
		CHECK_X("b: event mask", FAN_MODIFY, m->mask);
		CHECK_I("b: event fd (FAN_REPORT_FID)", FAN_NOFD, m->fd);
		CHECK_I("b: event pid", getpid(), m->pid);
	}
	unlink(shm);
	cr_finish();
}
