/* files: regular-file and device fds must survive checkpoint/restore with the
 * same numbers, access modes and flags, FD_CLOEXEC, offsets, identity
 * (st_dev/st_ino) and sharing (dup'ed fds share one offset).
 *   fd 5   A  O_RDWR, 1000 bytes written, offset 123
 *   fd 7   B  O_WRONLY|O_APPEND, 300 bytes
 *   fd 9   C  O_RDONLY|O_CLOEXEC, offset 10
 *   fd 10  dup(5)
 *   fd 11  /dev/null O_WRONLY|O_NONBLOCK
 *   fd 12  /dev/zero O_RDONLY
 *   fd 200 dup(9) (no FD_CLOEXEC on the dup)
 */
#include "common.h"

#define NFD 7
static const int fdnum[NFD] = { 5, 7, 9, 10, 11, 12, 200 };
static const char *fdname[NFD] = { "fd 5 (A)",	      "fd 7 (B, append)",  "fd 9 (C)",
				   "fd 10 (dup of 5)", "fd 11 (/dev/null)", "fd 12 (/dev/zero)",
				   "fd 200 (dup of 9)" };

struct fdstate {
	int fl, fd_flags;
	off_t off;
	dev_t dev;
	ino_t ino;
	off_t size;
};

static struct fdstate before[NFD];
static int fds_before[1024], nfds_before;
static char path_a[2300], path_b[2300], path_c[2300];

static unsigned char content(int file, size_t i)
{
	return (unsigned char)(file * 37 + i * 11 + (i >> 8));
}

static void die(const char *what)
{
	cr_fail("setup: %s: %s", what, strerror(errno));
	cr_finish();
}

static void get(int fd, struct fdstate *s)
{
	struct stat st;
	s->fl = fcntl(fd, F_GETFL);
	s->fd_flags = fcntl(fd, F_GETFD);
	s->off = lseek(fd, 0, SEEK_CUR);
	if (fstat(fd, &st) == 0) {
		s->dev = st.st_dev;
		s->ino = st.st_ino;
		s->size = st.st_size;
	} else {
		s->dev = s->ino = 0;
		s->size = -1;
	}
}

static void place(int fd, int want)
{
	if (fd < 0)
		die("open");
	if (fd != want) {
		int cloexec = fcntl(fd, F_GETFD) & FD_CLOEXEC;
		if (dup3(fd, want, cloexec ? O_CLOEXEC : 0) < 0)
			die("dup3");
		close(fd);
	}
}

static void write_file(const char *path, int file, size_t n)
{
	unsigned char buf[1000];
	for (size_t i = 0; i < n; i++)
		buf[i] = content(file, i);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || write(fd, buf, n) != (ssize_t)n)
		die("write file");
	close(fd);
}

int main(int argc, char **argv)
{
	cr_init(argc, argv);
	cr_path(path_a, sizeof path_a, "file-A");
	cr_path(path_b, sizeof path_b, "file-B");
	cr_path(path_c, sizeof path_c, "file-C");
	write_file(path_b, 1, 300);
	write_file(path_c, 2, 100);

	/* close everything above stderr so the numbers we want are free */
	int cur[1024], n = cr_list_fds(cur, 1024);
	for (int i = 0; i < n; i++)
		if (cur[i] > 2)
			close(cur[i]);

	place(open(path_a, O_RDWR | O_CREAT | O_TRUNC, 0644), 5);
	unsigned char buf[1000];
	for (int i = 0; i < 1000; i++)
		buf[i] = content(0, (size_t)i);
	if (write(5, buf, 1000) != 1000)
		die("write A");
	lseek(5, 123, SEEK_SET);
	place(open(path_b, O_WRONLY | O_APPEND), 7);
	place(open(path_c, O_RDONLY | O_CLOEXEC), 9);
	lseek(9, 10, SEEK_SET);
	if (dup2(5, 10) < 0)
		die("dup2 10");
	place(open("/dev/null", O_WRONLY | O_NONBLOCK), 11);
	place(open("/dev/zero", O_RDONLY), 12);
	if (dup2(9, 200) < 0)
		die("dup2 200");

	for (int i = 0; i < NFD; i++)
		get(fdnum[i], &before[i]);
	nfds_before = cr_list_fds(fds_before, 1024);
	cr_ready();
	cr_wait_go();

	cr_check_fds(fds_before, nfds_before);
	for (int i = 0; i < NFD; i++) {
		struct fdstate a;
		char w[96];
		get(fdnum[i], &a);
		snprintf(w, sizeof w, "%s F_GETFL", fdname[i]);
		CHECK_X(w, before[i].fl, a.fl);
		snprintf(w, sizeof w, "%s F_GETFD", fdname[i]);
		CHECK_X(w, before[i].fd_flags, a.fd_flags);
		snprintf(w, sizeof w, "%s offset", fdname[i]);
		CHECK_I(w, before[i].off, a.off);
		snprintf(w, sizeof w, "%s st_dev", fdname[i]);
		CHECK_X(w, before[i].dev, a.dev);
		snprintf(w, sizeof w, "%s st_ino", fdname[i]);
		CHECK_U(w, before[i].ino, a.ino);
		snprintf(w, sizeof w, "%s st_size", fdname[i]);
		CHECK_I(w, before[i].size, a.size);
	}
	/* literal expectations too, in case the recording itself went wrong */
	CHECK_X("fd 5 access mode", O_RDWR, fcntl(5, F_GETFL) & O_ACCMODE);
	CHECK_X("fd 7 access mode", O_WRONLY, fcntl(7, F_GETFL) & O_ACCMODE);
	CHECK_X("fd 7 O_APPEND", O_APPEND, fcntl(7, F_GETFL) & O_APPEND);
	CHECK_X("fd 9 access mode", O_RDONLY, fcntl(9, F_GETFL) & O_ACCMODE);
	CHECK_X("fd 9 FD_CLOEXEC", FD_CLOEXEC, fcntl(9, F_GETFD) & FD_CLOEXEC);
	CHECK_X("fd 200 FD_CLOEXEC", 0, fcntl(200, F_GETFD) & FD_CLOEXEC);
	CHECK_X("fd 5 FD_CLOEXEC", 0, fcntl(5, F_GETFD) & FD_CLOEXEC);
	CHECK_X("fd 11 O_NONBLOCK", O_NONBLOCK, fcntl(11, F_GETFL) & O_NONBLOCK);
	CHECK_I("fd 5 offset", 123, lseek(5, 0, SEEK_CUR));
	CHECK_I("fd 9 offset", 10, lseek(9, 0, SEEK_CUR));

	/* content: A from offset 123 via fd 5 */
	unsigned char r[64];
	ssize_t got = read(5, r, 64);
	CHECK_I("read(5, 64) bytes", 64, got);
	for (int i = 0; i < got; i++)
		if (r[i] != content(0, (size_t)(123 + i))) {
			cr_fail("file A byte %d via fd 5 expected %u got %u", 123 + i,
				content(0, (size_t)(123 + i)), r[i]);
			break;
		}
	/* fds 5 and 10 share one open file description (one offset) */
	CHECK_I("fd 10 offset after reading 64 bytes on fd 5", 187, lseek(10, 0, SEEK_CUR));
	lseek(5, 500, SEEK_SET);
	CHECK_I("fd 10 offset after lseek(5, 500)", 500, lseek(10, 0, SEEK_CUR));
	/* write through fd 10 (the same bytes as on disk: leaves the file unchanged) */
	for (int i = 0; i < 16; i++)
		r[i] = content(0, (size_t)(500 + i));
	CHECK_I("write(10, 16 bytes) at 500", 16, write(10, r, 16));
	CHECK_I("fd 5 offset after write on fd 10", 516, lseek(5, 0, SEEK_CUR));
	lseek(5, 123, SEEK_SET);

	/* C via fd 9 from offset 10; fd 200 shares the description */
	got = read(9, r, 20);
	CHECK_I("read(9, 20) bytes", 20, got);
	for (int i = 0; i < got; i++)
		if (r[i] != content(2, (size_t)(10 + i))) {
			cr_fail("file C byte %d via fd 9 expected %u got %u", 10 + i,
				content(2, (size_t)(10 + i)), r[i]);
			break;
		}
	CHECK_I("fd 200 offset after reading 20 bytes on fd 9", 30, lseek(200, 0, SEEK_CUR));
	errno = 0;
	if (write(9, "x", 1) != -1 || errno != EBADF)
		cr_fail("write on O_RDONLY fd 9 expected EBADF got %s", strerror(errno));

	/* B: an O_APPEND write lands at the end even after lseek(0) */
	struct stat st;
	fstat(7, &st);
	off_t size_b = st.st_size;
	CHECK_I("file B size", 300, size_b);
	lseek(7, 0, SEEK_SET);
	CHECK_I("write(7, 5 bytes)", 5, write(7, "TAIL!", 5));
	char tail[6] = { 0 };
	int rb = open(path_b, O_RDONLY | O_CLOEXEC);
	if (rb < 0 || pread(rb, tail, 5, size_b) != 5)
		cr_fail("cannot read back file B");
	CHECK_S("file B tail after O_APPEND write", "TAIL!", tail);
	unsigned char head;
	if (rb >= 0 && pread(rb, &head, 1, 0) == 1)
		CHECK_U("file B byte 0 (O_APPEND write must not land at 0)", content(1, 0), head);
	if (rb >= 0)
		close(rb);
	if (ftruncate(7, size_b) < 0) /* back to the dump-time size for the next restore */
		cr_fail("ftruncate B: %s", strerror(errno));

	/* devices */
	CHECK_I("write(11) to /dev/null", 3, write(11, "abc", 3));
	unsigned char z[256];
	memset(z, 0xAA, sizeof z);
	CHECK_I("read(12) from /dev/zero", 256, read(12, z, sizeof z));
	for (int i = 0; i < 256; i++)
		if (z[i]) {
			cr_fail("/dev/zero byte %d expected 0 got %u", i, z[i]);
			break;
		}
	cr_check_threads_1();
	cr_finish();
}
