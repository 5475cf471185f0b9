/* pipes: pipes and FIFOs with data in flight, shared between processes, and an eventfd.
 * After restore: every byte buffered at dump time is there, in order; pipe sizes and
 * O_NONBLOCK survive; both ends of a pipe are still one pipe; an end shared with a child is
 * still shared (the child's writes reach the parent); a pipe whose writers are all gone
 * gives its data then EOF; the eventfd keeps its counter and semaphore mode. A second open
 * file on pipe a's read end (opened through /proc/self/fd) stays a separate open file: its
 * flags (blocking) are its own.
 */
#include "common.h"
#include <sys/eventfd.h>
#include <sys/wait.h>

#define A_BYTES 10000

static void fill(char *b, int n, int seed) { for (int i = 0; i < n; i++) b[i] = (char)(i * 7 + seed); }

static int read_exact(int fd, char *b, int n) {
	int got = 0;
	while (got < n) {
		ssize_t r = read(fd, b + got, n - got);
		if (r <= 0) return got;
		got += (int)r;
	}
	return got;
}

int main(int argc, char **argv) {
	cr_init(argc, argv);
	int a[2], b[2], c[2];
	if (pipe(a) || pipe(b) || pipe(c)) cr_fail("setup: pipe");
	if (fcntl(a[0], F_SETPIPE_SZ, 128 * 1024) < 0) cr_fail("setup: F_SETPIPE_SZ");
	fcntl(a[0], F_SETFL, O_NONBLOCK);
	char self_a0[64];
	snprintf(self_a0, sizeof self_a0, "/proc/self/fd/%d", a[0]);
	int a0b = open(self_a0, O_RDONLY);  /* a new open file on the same pipe, blocking */
	if (a0b < 0 || (fcntl(a0b, F_GETFL) & O_NONBLOCK)) cr_fail("setup: second read end");
	char buf[A_BYTES];
	fill(buf, A_BYTES, 3);
	if (write(a[1], buf, A_BYTES) != A_BYTES) cr_fail("setup: write a");
	if (write(c[1], "tail-data", 9) != 9) cr_fail("setup: write c");
	close(c[1]);  /* c: data then EOF */
	char fifo[2300];
	cr_path(fifo, sizeof fifo, "fifo");
	mkfifo(fifo, 0600);
	int fr = open(fifo, O_RDONLY | O_NONBLOCK);
	int fw = open(fifo, O_WRONLY);
	if (fr < 0 || fw < 0 || write(fw, "fifo-data", 9) != 9) cr_fail("setup: fifo");
	int ev = eventfd(42, EFD_SEMAPHORE);
	if (ev < 0) cr_fail("setup: eventfd");
	struct stat sa0, sa1;
	fstat(a[0], &sa0);
	pid_t kid = fork();
	if (kid == 0) {
		close(b[0]);
		cr_wait_go();
		uint64_t one;
		if (read(ev, &one, 8) != 8 || one != 1) _exit(2);
		_exit(write(b[1], "from-child", 10) == 10 ? 0 : 1);
	}
	close(b[1]);
	cr_ready();
	cr_wait_go();

	char got[A_BYTES];
	int n = read_exact(a[0], got, A_BYTES);
	if (n != A_BYTES || memcmp(got, buf, A_BYTES)) cr_fail("pipe a: %d of %d bytes back, or content differs", n, A_BYTES);
	errno = 0;
	if (read(a[0], got, 1) != -1 || errno != EAGAIN) cr_fail("pipe a: not empty or not O_NONBLOCK after reading its data");
	if (fcntl(a0b, F_GETFL) & O_NONBLOCK) cr_fail("pipe a: the second open file took the first one's O_NONBLOCK");
	struct stat sb, sa;
	fstat(a0b, &sb);
	fstat(a[0], &sa);
	if (sb.st_ino != sa.st_ino) cr_fail("pipe a: the second open file is on another pipe");
	fcntl(a0b, F_SETFL, O_NONBLOCK);
	if (!(fcntl(a0b, F_GETFL) & O_NONBLOCK) || !(fcntl(a[0], F_GETFL) & O_NONBLOCK)) cr_fail("pipe a: flags");
	fcntl(a0b, F_SETFL, 0);
	if (!(fcntl(a[0], F_GETFL) & O_NONBLOCK)) cr_fail("pipe a: the two open files share their flags");
	if (fcntl(a[0], F_GETPIPE_SZ) != 128 * 1024) cr_fail("pipe a: size %d", fcntl(a[0], F_GETPIPE_SZ));
	fstat(a[0], &sa0); fstat(a[1], &sa1);
	if (sa0.st_ino != sa1.st_ino) cr_fail("pipe a: ends are different pipes after restore");
	if (write(a[1], "x", 1) != 1 || read(a[0], got, 1) != 1 || got[0] != 'x') cr_fail("pipe a: ends not connected");
	int st;
	if (waitpid(kid, &st, 0) != kid || !WIFEXITED(st) || WEXITSTATUS(st)) cr_fail("child status %x", st);
	n = read_exact(b[0], got, 10);
	if (n != 10 || memcmp(got, "from-child", 10)) cr_fail("pipe b (shared with child): got %d bytes", n);
	n = read_exact(c[0], got, 9);
	if (n != 9 || memcmp(got, "tail-data", 9)) cr_fail("pipe c: got %d bytes", n);
	if (read(c[0], got, 1) != 0) cr_fail("pipe c: no EOF after its data");
	n = (int)read(fr, got, 9);
	if (n != 9 || memcmp(got, "fifo-data", 9)) cr_fail("fifo: got %d bytes", n);
	uint64_t v;
	if (read(ev, &v, 8) != 8 || v != 1) cr_fail("eventfd: semaphore read %llu", (unsigned long long)v);
	/* 42 - child's 1 - ours 1 = 40 left: drain in non-semaphore terms by counting */
	fcntl(ev, F_SETFL, O_NONBLOCK);
	int left = 0;
	while (read(ev, &v, 8) == 8) left++;
	if (left != 40) cr_fail("eventfd: %d left, expected 40", left);
	cr_finish();
	return 0;
}
