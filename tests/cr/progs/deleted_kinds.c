/* deleted_kinds: deleted objects other than plain small files, still in use.
 *   fd 20  a deleted directory held open (mode 0751)
 *   cwd    a deleted directory (mode 0750): the process's working directory
 *   fd 21  a deleted FIFO opened O_RDWR holding "fifo-data", fd 22 its O_RDONLY|O_NONBLOCK end
 *   fd 23  a deleted device node (/dev/null's numbers, mode 0640)
 *   fd 24  a deleted 2 GiB sparse file with three written blocks, offset 12345
 * After restore: each is the same kind of object with no name left (nlink 0, "(deleted)" in
 * /proc, nothing back at the old path), modes and device numbers kept, the FIFO's data read
 * back and the FIFO still one pipe, the device works as /dev/null, the sparse file has its
 * size, content and holes and stays sparse.
 */
#include "common.h"
#include <sys/sysmacros.h>

#define BIG (2ULL << 30)
static const off_t offs[3] = { 0, 1 << 30, (off_t)(BIG - 4096) };

static void deleted_link(int fd, const char *path, const char *what)
{
	char p[64], buf[2400], want[2400];
	snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
	ssize_t n = readlink(p, buf, sizeof buf - 1);
	buf[n > 0 ? n : 0] = 0;
	snprintf(want, sizeof want, "%s (deleted)", path);
	CHECK_S(what, want, buf);
	struct stat st;
	if (lstat(path, &st) == 0) cr_fail("%s: something is back at %s", what, path);
}

int main(int argc, char **argv)
{
	cr_init(argc, argv);
	char d1[2300], d2[2300], ff[2300], dev[2300], sp[2300];
	cr_path(d1, sizeof d1, "dir-open");
	cr_path(d2, sizeof d2, "dir-cwd");
	cr_path(ff, sizeof ff, "fifo");
	cr_path(dev, sizeof dev, "null");
	cr_path(sp, sizeof sp, "sparse");
	umask(0);
	if (mkdir(d1, 0751) || mkdir(d2, 0750) || mkfifo(ff, 0600) || mknod(dev, S_IFCHR | 0640, makedev(1, 3)))
		cr_fail("setup: %s", strerror(errno));
	dup2(open(d1, O_RDONLY | O_DIRECTORY), 20);
	dup2(open(ff, O_RDWR), 21);
	dup2(open(ff, O_RDONLY | O_NONBLOCK), 22);
	dup2(open(dev, O_RDWR), 23);
	dup2(open(sp, O_RDWR | O_CREAT, 0644), 24);
	if (write(21, "fifo-data", 9) != 9) cr_fail("setup: fifo write");
	if (ftruncate(24, (off_t)BIG)) cr_fail("setup: ftruncate");
	char blk[4096];
	for (int i = 0; i < 3; i++) {
		memset(blk, 'A' + i, sizeof blk);
		if (pwrite(24, blk, sizeof blk, offs[i]) != (ssize_t)sizeof blk) cr_fail("setup: pwrite");
	}
	lseek(24, 12345, SEEK_SET);
	if (chdir(d2)) cr_fail("setup: chdir");
	if (rmdir(d1) || rmdir(d2) || unlink(ff) || unlink(dev) || unlink(sp)) cr_fail("setup: remove: %s", strerror(errno));
	umask(022);
	cr_ready();
	cr_wait_go();

	struct stat st;
	if (fstat(20, &st) || !S_ISDIR(st.st_mode) || (st.st_mode & 07777) != 0751 || st.st_nlink != 0)
		cr_fail("deleted directory fd: mode %o nlink %lu", st.st_mode, (unsigned long)st.st_nlink);
	deleted_link(20, d1, "deleted directory fd");
	if (stat(".", &st) || !S_ISDIR(st.st_mode) || (st.st_mode & 07777) != 0750 || st.st_nlink != 0)
		cr_fail("deleted cwd: mode %o nlink %lu", st.st_mode, (unsigned long)st.st_nlink);
	char buf[2400], want[2400];
	ssize_t n = readlink("/proc/self/cwd", buf, sizeof buf - 1);
	buf[n > 0 ? n : 0] = 0;
	snprintf(want, sizeof want, "%s (deleted)", d2);
	CHECK_S("cwd", want, buf);
	if (open("new-file", O_CREAT | O_WRONLY, 0600) >= 0 || errno != ENOENT)
		cr_fail("a file could be made in the deleted cwd");

	if (fstat(21, &st) || !S_ISFIFO(st.st_mode) || st.st_nlink != 0) cr_fail("deleted FIFO fd: mode %o", st.st_mode);
	deleted_link(21, ff, "deleted FIFO");
	n = read(22, buf, sizeof buf);
	if (n != 9 || memcmp(buf, "fifo-data", 9)) cr_fail("deleted FIFO data: %zd bytes", n);
	if (write(21, "more", 4) != 4 || read(22, buf, sizeof buf) != 4 || memcmp(buf, "more", 4))
		cr_fail("deleted FIFO ends are no longer one pipe");
	if ((fcntl(21, F_GETFL) & O_ACCMODE) != O_RDWR || (fcntl(22, F_GETFL) & (O_ACCMODE | O_NONBLOCK)) != (O_RDONLY | O_NONBLOCK))
		cr_fail("deleted FIFO fd flags");

	if (fstat(23, &st) || !S_ISCHR(st.st_mode) || st.st_rdev != makedev(1, 3) || (st.st_mode & 07777) != 0640 || st.st_nlink != 0)
		cr_fail("deleted device node: mode %o rdev %lx", st.st_mode, (unsigned long)st.st_rdev);
	deleted_link(23, dev, "deleted device node");
	if (write(23, "x", 1) != 1 || read(23, buf, 1) != 0) cr_fail("deleted device node does not act as /dev/null");

	if (fstat(24, &st) || !S_ISREG(st.st_mode) || (unsigned long long)st.st_size != BIG || st.st_nlink != 0)
		cr_fail("deleted sparse file: size %lld nlink %lu", (long long)st.st_size, (unsigned long)st.st_nlink);
	if ((unsigned long long)st.st_blocks * 512 > (1 << 20)) cr_fail("deleted sparse file is no longer sparse: %lld blocks", (long long)st.st_blocks);
	deleted_link(24, sp, "deleted sparse file");
	CHECK_I("sparse file offset", 12345, lseek(24, 0, SEEK_CUR));
	for (int i = 0; i < 3; i++) {
		if (pread(24, blk, sizeof blk, offs[i]) != (ssize_t)sizeof blk) cr_fail("sparse read at %lld", (long long)offs[i]);
		for (size_t k = 0; k < sizeof blk; k++)
			if (blk[k] != 'A' + i) { cr_fail("sparse content at %lld", (long long)(offs[i] + (off_t)k)); break; }
	}
	if (pread(24, blk, 16, 512 << 20) != 16 || memcmp(blk, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 16)) cr_fail("sparse hole not zero");
	cr_finish();
	return 0;
}
