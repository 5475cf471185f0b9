/* file_kinds: fds that are neither plain files nor pipes.
 *   fd 20 O_PATH on a regular file       fd 21 O_PATH on a directory
 *   fd 22 O_PATH on a FIFO (no open of the FIFO)
 *   fd 23 O_PATH|O_NOFOLLOW on a symlink  fd 24 the same on a symlink since deleted
 *   fd 25 a log: O_WRONLY|O_APPEND, written before the dump and again by each check, so a
 *         restore after --leave-running finds it grown
 *   fd 26 /proc/self/stat, fd 27 /proc/self/maps, fd 28 /proc/self/fdinfo/25,
 *   fd 29 /proc/CHILD/status of a child in the tree
 *   fd 30 /proc/self/ns/net, fd 31 /proc/self/ns/uts
 *   fd 32 a terminal device that is not the controlling terminal (/dev/console, /dev/tty0
 *         or /dev/ttyS0, the first that opens; noted and skipped when none does)
 * After restore: kinds, inodes, flags, symlink targets, the log's old content followed by the
 * new line, /proc files read for this process and the child, the namespace files are this
 * process's namespaces (setns works), the terminal is the same device. With WORKDIR/ns-other,
 * fd 33 is on a time namespace the task is not in (errors/file-kinds: the dump refuses it).
 */
#include "common.h"
#include <sched.h>
#include <sys/mman.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>

static char wpath[6][2300];
static struct stat before[40];

static ssize_t read_fd_at(int fd, char *buf, size_t n)
{
	ssize_t r = pread(fd, buf, n - 1, 0);
	buf[r > 0 ? r : 0] = 0;
	return r;
}

static void same_inode(int fd, const char *what)
{
	struct stat st;
	if (fstat(fd, &st)) { cr_fail("%s: fstat: %s", what, strerror(errno)); return; }
	if (st.st_ino != before[fd].st_ino || st.st_dev != before[fd].st_dev) cr_fail("%s: another inode", what);
	if ((st.st_mode & S_IFMT) != (before[fd].st_mode & S_IFMT)) cr_fail("%s: mode %o, was %o", what, st.st_mode, before[fd].st_mode);
}

int main(int argc, char **argv)
{
	cr_init(argc, argv);
	const char *names[6] = { "a", "dir", "fifo", "ln", "lndel", "log" };
	for (int i = 0; i < 6; i++) cr_path(wpath[i], sizeof wpath[i], names[i]);
	int fd = open(wpath[0], O_RDWR | O_CREAT, 0644);
	write(fd, "abc", 3);
	close(fd);
	mkdir(wpath[1], 0755);
	mkfifo(wpath[2], 0644);
	symlink("target-text", wpath[3]);
	symlink("gone-target", wpath[4]);
	pid_t kid = fork();
	if (kid == 0) { for (;;) pause(); }
	char p[64];
	struct { int fd; int r; } o[] = {
		{ 20, open(wpath[0], O_PATH) }, { 21, open(wpath[1], O_PATH | O_DIRECTORY) },
		{ 22, open(wpath[2], O_PATH) }, { 23, open(wpath[3], O_PATH | O_NOFOLLOW) },
		{ 24, open(wpath[4], O_PATH | O_NOFOLLOW) },
		{ 25, open(wpath[5], O_WRONLY | O_APPEND | O_CREAT, 0644) },
		{ 26, open("/proc/self/stat", O_RDONLY) }, { 27, open("/proc/self/maps", O_RDONLY) },
	};
	for (unsigned i = 0; i < sizeof o / sizeof o[0]; i++)
		if (o[i].r < 0 || dup2(o[i].r, o[i].fd) != o[i].fd) cr_fail("setup fd %d: %s", o[i].fd, strerror(errno));
		else if (o[i].r != o[i].fd) close(o[i].r);
	write(25, "first\n", 6);
	snprintf(p, sizeof p, "/proc/%d/fdinfo/25", (int)getpid());
	dup2(open(p, O_RDONLY), 28);
	snprintf(p, sizeof p, "/proc/%d/status", (int)kid);
	dup2(open(p, O_RDONLY), 29);
	dup2(open("/proc/self/ns/net", O_RDONLY), 30);
	dup2(open("/proc/self/ns/uts", O_RDONLY), 31);
	const char *ttys[] = { "/dev/console", "/dev/tty0", "/dev/ttyS0" };
	const char *tty = NULL;
	for (int i = 0; i < 3 && !tty; i++) {
		int t = open(ttys[i], O_RDWR | O_NOCTTY | O_NONBLOCK);
		if (t >= 0) { dup2(t, 32); close(t); tty = ttys[i]; }
	}
	if (!tty) cr_note("no terminal device other than a pty opens here: fd 32 skipped");
	/* errors/file-kinds: fd 33 on a time namespace made for children only, which the task is
	 * not in: the dump refuses it */
	if (cr_exists("ns-other")) {
		if (unshare(0x80 /* CLONE_NEWTIME */)) cr_fail("setup: unshare(CLONE_NEWTIME): %s", strerror(errno));
		int t = open("/proc/self/ns/time_for_children", O_RDONLY);
		if (t < 0 || dup2(t, 33) != 33) cr_fail("setup: time_for_children");
		close(t);
	}
	for (int i = 20; i <= 32; i++) fstat(i, &before[i]);
	unlink(wpath[4]);
	void *mark = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	cr_ready();
	cr_wait_go();

	same_inode(20, "O_PATH file");
	same_inode(21, "O_PATH directory");
	same_inode(22, "O_PATH FIFO");
	same_inode(23, "O_PATH symlink");
	for (int i = 20; i <= 24; i++)
		if (!(fcntl(i, F_GETFL) & O_PATH)) cr_fail("fd %d lost O_PATH", i);
	char buf[65536];
	ssize_t n = readlinkat(23, "", buf, sizeof buf - 1);
	buf[n > 0 ? n : 0] = 0;
	CHECK_S("target of the symlink fd", "target-text", buf);
	struct stat st;
	if (fstat(24, &st) || !S_ISLNK(st.st_mode)) cr_fail("deleted symlink fd is no longer a symlink");
	else if (st.st_nlink != 0) cr_fail("deleted symlink has %lu links", (unsigned long)st.st_nlink);
	n = readlinkat(24, "", buf, sizeof buf - 1);
	buf[n > 0 ? n : 0] = 0;
	CHECK_S("target of the deleted symlink fd", "gone-target", buf);
	if (lstat(wpath[4], &st) == 0) cr_fail("the deleted symlink is back at its path");
	snprintf(p, sizeof p, "/proc/self/fd/24");
	n = readlink(p, buf, sizeof buf - 1);
	buf[n > 0 ? n : 0] = 0;
	if (!strstr(buf, " (deleted)")) cr_fail("deleted symlink fd reads as %s", buf);

	/* the log */
	int fl = fcntl(25, F_GETFL);
	if ((fl & O_ACCMODE) != O_WRONLY || !(fl & O_APPEND)) cr_fail("log flags %#x", fl);
	char line[64];
	int ln = snprintf(line, sizeof line, "check by %d\n", (int)getpid());
	if (write(25, line, (size_t)ln) != ln) cr_fail("log write: %s", strerror(errno));
	int lf = open(wpath[5], O_RDONLY);
	n = read(lf, buf, sizeof buf - 1);
	close(lf);
	buf[n > 0 ? n : 0] = 0;
	if (strncmp(buf, "first\n", 6) || n < ln || strcmp(buf + n - ln, line)) cr_fail("log content: %s", buf);

	/* /proc files */
	read_fd_at(26, buf, sizeof buf);
	if (strtol(buf, NULL, 10) != getpid()) cr_fail("/proc/self/stat fd reads %.40s", buf);
	read_fd_at(27, buf, sizeof buf);
	char want[32];
	snprintf(want, sizeof want, "%lx-", (unsigned long)mark);
	if (!strstr(buf, want) || !strstr(buf, "[stack]")) cr_fail("/proc/self/maps fd does not show this process's mappings");
	read_fd_at(28, buf, sizeof buf);
	char *f = strstr(buf, "flags:");
	if (!f || !(strtol(f + 6, NULL, 8) & O_APPEND)) cr_fail("/proc/self/fdinfo/25 fd reads %.60s", buf);
	read_fd_at(29, buf, sizeof buf);
	snprintf(want, sizeof want, "\nPid:\t%d\n", (int)kid);
	if (!strstr(buf, want)) cr_fail("/proc/CHILD/status fd does not read the child's status");

	/* namespaces */
	struct stat mine;
	stat("/proc/self/ns/net", &mine);
	if (fstat(30, &st) || st.st_ino != mine.st_ino) cr_fail("net namespace fd is another namespace");
	if (setns(30, CLONE_NEWNET)) cr_fail("setns(net fd): %s", strerror(errno));
	stat("/proc/self/ns/uts", &mine);
	if (fstat(31, &st) || st.st_ino != mine.st_ino) cr_fail("uts namespace fd is another namespace");

	if (tty) {
		if (fstat(32, &st) || !S_ISCHR(st.st_mode) || st.st_rdev != before[32].st_rdev)
			cr_fail("%s fd: another device", tty);
		if ((fcntl(32, F_GETFL) & (O_ACCMODE | O_NONBLOCK)) != (O_RDWR | O_NONBLOCK)) cr_fail("%s fd flags", tty);
	}
	kill(kid, SIGKILL);
	waitpid(kid, NULL, 0);
	cr_finish();
	return 0;
}
