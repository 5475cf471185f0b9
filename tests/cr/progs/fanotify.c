/* fanotify: a notification group (FAN_NONBLOCK | FAN_CLOEXEC) with an inode mark on a
 * directory (close-write of its children), an inode mark with only an ignored mask (a file in
 * that directory stays quiet) and a mount mark on /dev/shm (close-write); a second group
 * (blocking, no cloexec, FAN_REPORT_FID) with an inode mark on a file. The groups' fdinfo
 * files held open: the process holds /proc/self/fdinfo/A read 5 bytes in, a child holds
 * /proc/PARENT/fdinfo/B.
 * After go: the flags and the marks exactly as fdinfo showed them before, also through the
 * held fdinfo files (all their lines, and the offset); then files written now make events
 * from our own pid with the right mask and file, and the quiet one does not.
 * With WORKDIR/proc-mark, group A also marks /proc/self/status, a file without a file handle
 * (errors/file-kinds: the dump refuses it).
 */
#include "common.h"
#include <poll.h>
#include <sys/fanotify.h>
#include <sys/wait.h>

static char dir[2300], loud[2400], quiet[2400], shm[256], lone[2300];

/* The lines of the fdinfo text open at `src` (read from its start) that start with `prefix`,
 * sorted, joined by '|' (the order of the marks is the kernel's). */
static void lines_at(int src, const char *prefix, char *out, size_t n)
{
	char buf[8192], *lines[64];
	int k = 0;
	ssize_t len = pread(src, buf, sizeof buf - 1, 0);
	out[0] = 0;
	if (len < 0)
		return;
	buf[len] = 0;
	for (char *l = strtok(buf, "\n"); l && k < 64; l = strtok(NULL, "\n"))
		if (strncmp(l, prefix, strlen(prefix)) == 0)
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

/* fdinfo lines of group fd `fd` starting with "fanotify", sorted. */
static void marks(int fd, char *out, size_t n)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd);
	int src = open(path, O_RDONLY | O_CLOEXEC);
	out[0] = 0;
	if (src < 0)
		return;
	lines_at(src, "fanotify", out, n);
	close(src);
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
	if (cr_exists("proc-mark") &&
	    fanotify_mark(a, FAN_MARK_ADD, FAN_CLOSE_WRITE, AT_FDCWD, "/proc/self/status"))
		cr_fail("setup: fanotify_mark on /proc/self/status: %s", strerror(errno));
	char ev[4096], before_a[4096], before_b[4096], now[4096], held_a[8192];
	events(a, 100, ev, sizeof ev); /* the setup writes came before the marks: none */
	marks(a, before_a, sizeof before_a);
	marks(b, before_b, sizeof before_b);

	/* The groups' fdinfo files, held open. */
	char path[64];
	snprintf(path, sizeof path, "/proc/self/fdinfo/%d", a);
	int info_a = open(path, O_RDONLY | O_CLOEXEC);
	if (info_a < 0 || read(info_a, held_a, 5) != 5)
		cr_fail("setup: %s: %s", path, strerror(errno));
	lines_at(info_a, "", held_a, sizeof held_a);
	pid_t parent = getpid(), kid = fork();
	if (kid < 0)
		cr_fail("setup: fork: %s", strerror(errno));
	if (kid == 0) {
		char was[4096];
		snprintf(path, sizeof path, "/proc/%d/fdinfo/%d", (int)parent, b);
		int info_b = open(path, O_RDONLY);
		if (info_b < 0)
			cr_fail("child: setup: %s: %s", path, strerror(errno));
		lines_at(info_b, "", was, sizeof was);
		cr_ready_named("ready-child");
		cr_wait_go();
		lines_at(info_b, "", now, sizeof now);
		CHECK_S("child: all lines of the held /proc/PARENT/fdinfo/B", was, now);
		lines_at(info_b, "fanotify", now, sizeof now);
		CHECK_S("child: marks of B through the held /proc/PARENT/fdinfo/B", before_b, now);
		_exit(cr_verdict("result-child"));
	}
	cr_wait_for("ready-child");

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
	lines_at(info_a, "", now, sizeof now);
	CHECK_S("a: all lines of the held /proc/self/fdinfo/A", held_a, now);
	lines_at(info_a, "fanotify", now, sizeof now);
	CHECK_S("a: marks through the held /proc/self/fdinfo/A", before_a, now);
	CHECK_I("a: offset of the held /proc/self/fdinfo/A", 5, lseek(info_a, 0, SEEK_CUR));
	CHECK_X("a: held /proc/self/fdinfo/A FD_CLOEXEC", FD_CLOEXEC, fcntl(info_a, F_GETFD));
	int st;
	if (waitpid(kid, &st, 0) != kid || !WIFEXITED(st))
		cr_fail("child %d did not end: status 0x%x", (int)kid, st);
	char verdict[4096], vpath[2300];
	cr_path(vpath, sizeof vpath, "result-child");
	ssize_t vn = cr_read_file(vpath, verdict, sizeof verdict - 1);
	verdict[vn > 0 ? vn : 0] = 0;
	if (strncmp(verdict, "PASS", 4))
		cr_fail("child: %s", verdict);
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
