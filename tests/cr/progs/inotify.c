/* inotify: two instances.
 *   a (IN_NONBLOCK | IN_CLOEXEC): wd 1 on a directory (create/delete/moved-to), wd 2 on a
 *     file removed again (a gap), wd 3 on a file (modify/close-write), wd 4 on another file
 *     (open, IN_ONESHOT), wd 5 on a directory with IN_EXCL_UNLINK;
 *   b (no flags, blocking): wds 1-3 added and removed, wd 4 on the same directory as a's wd 1.
 * After go: the flags, the exact set of wds and masks in /proc/self/fdinfo, no stray event
 * queued; then events made now arrive with the right wd, mask and name, the one-shot watch
 * fires once and goes, the removed wd stays gone, and a new watch gets the next number.
 */
#include "common.h"
#include <poll.h>
#include <sys/inotify.h>

static char dir[2300], file[2300], once[2300], gone[2300], excl[2300];

/* All events queued on fd within `ms`, as "wd:mask:name;" */
static void events(int fd, int ms, char *out, size_t n)
{
	char buf[4096] __attribute__((aligned(8)));
	size_t len = 0;
	out[0] = 0;
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, ms) <= 0)
			return;
		ssize_t r = read(fd, buf, sizeof buf);
		if (r <= 0)
			return;
		for (char *q = buf; q < buf + r;) {
			struct inotify_event *e = (struct inotify_event *)q;
			len += (size_t)snprintf(out + len, n - len, "%d:%x:%s;", e->wd, e->mask,
						e->len ? e->name : "");
			q += sizeof *e + e->len;
		}
		ms = 50;
	}
}

/* The "inotify wd:.. mask:.." lines of fd's fdinfo as "wd:mask;" in increasing wd order. */
static void watches(int fd, char *out, size_t n)
{
	char path[64], buf[8192];
	unsigned wds[64], masks[64];
	int k = 0;
	snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd);
	ssize_t len = cr_read_file(path, buf, sizeof buf - 1);
	out[0] = 0;
	if (len < 0)
		return;
	buf[len] = 0;
	for (char *l = strstr(buf, "inotify wd:"); l && k < 64; l = strstr(l + 1, "inotify wd:")) {
		char *m = strstr(l, "mask:");
		wds[k] = (unsigned)strtoul(l + 11, NULL, 16);
		masks[k++] = m ? (unsigned)strtoul(m + 5, NULL, 16) : 0;
	}
	size_t o = 0;
	for (int done = 0; done < k; done++) {
		int best = -1;
		for (int i = 0; i < k; i++)
			if (wds[i] && (best < 0 || wds[i] < wds[best]))
				best = i;
		o += (size_t)snprintf(out + o, n - o, "%u:%x;", wds[best], masks[best]);
		wds[best] = 0;
	}
}

static void touch(const char *p)
{
	int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		cr_fail("setup: create %s: %s", p, strerror(errno));
	close(fd);
}

int main(int argc, char **argv)
{
	cr_init(argc, argv);
	cr_path(dir, sizeof dir, "dir");
	cr_path(file, sizeof file, "file");
	cr_path(once, sizeof once, "once");
	cr_path(gone, sizeof gone, "gone");
	cr_path(excl, sizeof excl, "excl");
	if (mkdir(dir, 0755) || mkdir(excl, 0755))
		cr_fail("setup: mkdir: %s", strerror(errno));
	touch(file);
	touch(once);
	touch(gone);

	int a = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	int b = inotify_init();
	if (a < 0 || b < 0)
		cr_fail("setup: inotify_init: %s", strerror(errno));
	CHECK_I("setup: wd of dir", 1, inotify_add_watch(a, dir, IN_CREATE | IN_DELETE | IN_MOVED_TO));
	CHECK_I("setup: wd of gone", 2, inotify_add_watch(a, gone, IN_ATTRIB));
	CHECK_I("setup: wd of file", 3, inotify_add_watch(a, file, IN_MODIFY | IN_CLOSE_WRITE));
	CHECK_I("setup: wd of once", 4, inotify_add_watch(a, once, IN_OPEN | IN_ONESHOT));
	CHECK_I("setup: wd of excl", 5, inotify_add_watch(a, excl, IN_CREATE | IN_EXCL_UNLINK | IN_ONLYDIR));
	CHECK_I("setup: rm wd 2", 0, inotify_rm_watch(a, 2));
	for (int i = 1; i <= 3; i++) {
		CHECK_I("setup: b stand-in wd", i, inotify_add_watch(b, gone, IN_ATTRIB));
		CHECK_I("setup: b rm stand-in", 0, inotify_rm_watch(b, i));
	}
	CHECK_I("setup: b wd of dir", 4, inotify_add_watch(b, dir, IN_DELETE));
	/* Queue nothing across the dump: the IN_IGNORED events of the removals are read now. */
	char ev[4096];
	events(a, 100, ev, sizeof ev);
	CHECK_S("setup: a's events", "2:8000:;", ev);
	events(b, 100, ev, sizeof ev);
	CHECK_S("setup: b's events", "1:8000:;2:8000:;3:8000:;", ev);

	cr_ready();
	cr_wait_go();

	CHECK_X("a: status flags O_NONBLOCK", O_NONBLOCK, fcntl(a, F_GETFL) & O_NONBLOCK);
	CHECK_X("a: FD_CLOEXEC", FD_CLOEXEC, fcntl(a, F_GETFD));
	CHECK_X("b: status flags O_NONBLOCK", 0, fcntl(b, F_GETFL) & O_NONBLOCK);
	CHECK_X("b: FD_CLOEXEC", 0, fcntl(b, F_GETFD));
	char w[1024], exp[1024];
	watches(a, w, sizeof w);
	snprintf(exp, sizeof exp, "1:%x;3:%x;4:%x;5:%x;", IN_CREATE | IN_DELETE | IN_MOVED_TO,
		 IN_MODIFY | IN_CLOSE_WRITE, IN_OPEN | IN_ONESHOT, IN_CREATE | IN_EXCL_UNLINK);
	CHECK_S("a: watches (wd:mask) in fdinfo", exp, w);
	watches(b, w, sizeof w);
	snprintf(exp, sizeof exp, "4:%x;", IN_DELETE);
	CHECK_S("b: watches (wd:mask) in fdinfo", exp, w);
	char one[8];
	errno = 0;
	CHECK_I("a: read of an empty queue", -1, read(a, one, sizeof one));
	CHECK_I("a: read of an empty queue: errno EAGAIN", EAGAIN, errno);
	events(a, 100, ev, sizeof ev);
	CHECK_S("a: events queued before any change", "", ev);
	events(b, 100, ev, sizeof ev);
	CHECK_S("b: events queued before any change", "", ev);

	/* wd 1 and b's wd 4: a file created, then deleted in the directory. */
	char p[2400];
	snprintf(p, sizeof p, "%s/new", dir);
	touch(p);
	events(a, 1000, ev, sizeof ev);
	snprintf(exp, sizeof exp, "1:%x:new;", IN_CREATE);
	CHECK_S("a: events after creating dir/new", exp, ev);
	unlink(p);
	events(a, 1000, ev, sizeof ev);
	snprintf(exp, sizeof exp, "1:%x:new;", IN_DELETE);
	CHECK_S("a: events after deleting dir/new", exp, ev);
	events(b, 1000, ev, sizeof ev);
	snprintf(exp, sizeof exp, "4:%x:new;", IN_DELETE);
	CHECK_S("b: events after creating and deleting dir/new", exp, ev);

	/* wd 3: modify and close-write. */
	int fd = open(file, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, "x", 1) != 1)
		cr_fail("write %s: %s", file, strerror(errno));
	close(fd);
	events(a, 1000, ev, sizeof ev);
	snprintf(exp, sizeof exp, "3:%x:;3:%x:;", IN_MODIFY, IN_CLOSE_WRITE);
	CHECK_S("a: events after writing file", exp, ev);

	/* wd 4 is one-shot: an open, then IN_IGNORED; a second open says nothing. */
	for (int i = 0; i < 2; i++)
		close(open(once, O_RDONLY | O_CLOEXEC));
	events(a, 1000, ev, sizeof ev);
	snprintf(exp, sizeof exp, "4:%x:;4:%x:;", IN_OPEN, IN_IGNORED);
	CHECK_S("a: events after opening once twice", exp, ev);

	/* The removed wd 2 stays gone: nothing on its file, and it cannot be removed again. */
	chmod(gone, 0600);
	events(a, 200, ev, sizeof ev);
	CHECK_S("a: events after chmod of gone (wd 2 removed)", "", ev);
	errno = 0;
	CHECK_I("a: inotify_rm_watch of removed wd 2", -1, inotify_rm_watch(a, 2));
	CHECK_I("a: inotify_rm_watch of removed wd 2: errno EINVAL", EINVAL, errno);
	/* A new watch takes the number after the highest one given out. */
	CHECK_I("a: wd of a new watch", 6, inotify_add_watch(a, gone, IN_ATTRIB));
	CHECK_I("b: wd of a new watch", 5, inotify_add_watch(b, gone, IN_ATTRIB));
	chmod(gone, 0644);
	events(a, 1000, ev, sizeof ev);
	snprintf(exp, sizeof exp, "6:%x:;", IN_ATTRIB);
	CHECK_S("a: events after chmod of gone (new wd 6)", exp, ev);
	events(b, 1000, ev, sizeof ev);
	snprintf(exp, sizeof exp, "5:%x:;", IN_ATTRIB);
	CHECK_S("b: events after chmod of gone (new wd 5)", exp, ev);
	cr_finish();
}
