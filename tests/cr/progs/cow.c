/* cow: pages a parent shares copy-on-write with its children (and a grandchild) after fork are
 * shared again after restore: the same physical page (pagemap PFNs), content as before, and
 * the parent's PSS as before (measured while every task still runs: one that ended would no
 * longer share its pages). Pages a child wrote, dropped (MADV_DONTNEED) or that the parent
 * wrote after the fork differ as they did; a private file mapping's COW pages likewise. */
#define _GNU_SOURCE
#include "common.h"
#include <fcntl.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/wait.h>

#define NP 4096 /* pages of the anonymous area: 16 MiB */
#define FP 8    /* pages of the file mapping */
#define PG 4096

static unsigned char *A, *F;

static uint64_t pfn(pid_t pid, const void *addr)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/pagemap", (int)pid);
	int fd = open(path, O_RDONLY);
	uint64_t e = 0;
	if (fd >= 0) {
		if (pread(fd, &e, 8, (off_t)((uintptr_t)addr / PG * 8)) != 8)
			e = 0;
		close(fd);
	}
	return (e >> 63) ? (e & ((1ULL << 55) - 1)) : 0; /* 0: not present */
}

static long pss_kb(void)
{
	char buf[4096];
	cr_read_file("/proc/self/smaps_rollup", buf, sizeof buf);
	char *p = strstr(buf, "\nPss:");
	return p ? strtol(p + 5, NULL, 10) : -1;
}

/* What page i of A holds for a task of role r (0 parent, 1 reader, 2 writer, 3 grandchild's
 * parent, 4 grandchild): the value, or -1 for "not present, reads as zero". */
static int a_expect(int role, int i)
{
	if (role == 0 && i >= 100 && i < 110)
		return 0xee; /* the parent wrote after the fork */
	if (role == 2 && i < 10)
		return 0x55;
	if (role == 2 && i >= 20 && i < 30)
		return -1;
	if (i % 7 == 3)
		return -1; /* never written */
	return (i * 13 + 1) & 0xff;
}

static int f_expect(int role, int i)
{
	if (role == 2 && i == 2)
		return 'W';
	if (role == 2 && i == 1)
		return 'a' + i; /* dropped: the file's page again */
	if (i < 2)
		return 'P'; /* the parent's COW copies */
	return 'a' + i;
}

/* Checks the task's own pages; with `share_with`, the pages both still hold as at the fork
 * must be the same physical page as that task's. Returns the number of failures. */
static int check_pages(int role, pid_t share_with, int share_role)
{
	int bad = 0, shared = 0, want_shared = 0;
	for (int i = 0; i < NP; i++) {
		int e = a_expect(role, i);
		uint64_t mine = pfn(getpid(), A + i * PG);
		if (e < 0) {
			if (mine) { cr_fail("role %d: A page %d present, should not be", role, i); bad++; }
			continue;
		}
		if (A[i * PG] != e || A[i * PG + PG - 1] != e) {
			cr_fail("role %d: A page %d holds %#x, expected %#x", role, i, A[i * PG], e);
			if (++bad > 5) return bad;
		}
		if (share_with && a_expect(share_role, i) == e && !(role == 2 && i < 10) &&
		    !(share_role == 0 && i >= 100 && i < 110)) {
			want_shared++;
			if (mine && mine == pfn(share_with, A + i * PG))
				shared++;
		}
	}
	for (int i = 0; i < FP; i++)
		if (F[i * PG] != f_expect(role, i)) {
			cr_fail("role %d: file page %d holds %c, expected %c", role, i, F[i * PG], f_expect(role, i));
			bad++;
		}
	if (share_with && shared != want_shared) {
		cr_fail("role %d: %d of %d pages shared with %d (copy-on-write lost?)", role, shared, want_shared,
			(int)share_with);
		bad++;
	}
	return bad;
}

int main(int argc, char **argv)
{
	cr_init(argc, argv);
	A = mmap(0, NP * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	for (int i = 0; i < NP; i++)
		if (i % 7 != 3)
			memset(A + i * PG, (i * 13 + 1) & 0xff, PG);
	char path[2300];
	cr_path(path, sizeof path, "mapped");
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	for (int i = 0; i < FP; i++) {
		char page[PG];
		memset(page, 'a' + i, PG);
		if (write(fd, page, PG) != PG) cr_fail("write mapped file");
	}
	F = mmap(0, FP * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	close(fd);
	for (int i = 0; i < FP; i++) (void)*(volatile char *)(F + i * PG);
	memset(F, 'P', 2 * PG);
	int up[2], down[2];
	if (pipe(up) < 0 || pipe(down) < 0) cr_fail("pipe");
	pid_t kids[3];
	for (int k = 0; k < 3; k++) {
		kids[k] = fork();
		if (kids[k])
			continue;
		int role = k + 1;
		pid_t gk = 0;
		close(down[1]); /* EOF on down[0]: the parent has measured its PSS */
		if (role == 2) {
			memset(A, 0x55, 10 * PG);
			madvise(A + 20 * PG, 10 * PG, MADV_DONTNEED);
			F[2 * PG] = 'W';
			memset(F + 2 * PG, 'W', PG);
			madvise(F + PG, PG, MADV_DONTNEED);
		}
		if (role == 3) {
			gk = fork();
			if (gk == 0) {
				if (write(up[1], "g", 1) != 1) _exit(2);
				cr_wait_go();
				int bad = check_pages(4, getppid(), 3);
				char x;
				if (read(down[0], &x, 1) < 0) bad++;
				_exit(bad ? 1 : 0);
			}
		}
		if (write(up[1], "c", 1) != 1) _exit(2);
		cr_wait_go();
		int bad = check_pages(role, getppid(), 0);
		char x;
		if (read(down[0], &x, 1) < 0) bad++; /* until the parent has measured its PSS */
		if (gk) {
			int st;
			waitpid(gk, &st, 0);
			if (!WIFEXITED(st) || WEXITSTATUS(st)) { cr_fail("grandchild status %#x", st); bad++; }
		}
		_exit(bad ? 1 : 0);
	}
	memset(A + 100 * PG, 0xee, 10 * PG);
	char c;
	for (int n = 0; n < 4; n++) /* every child and the grandchild are set */
		if (read(up[0], &c, 1) != 1) cr_fail("read");
	long pss0 = pss_kb();
	cr_ready();
	cr_wait_go();
	check_pages(0, 0, 0);
	long pss1 = pss_kb();
	close(down[1]);
	if (pss0 <= 0 || pss1 <= 0)
		cr_fail("no Pss in /proc/self/smaps_rollup (%ld, %ld)", pss0, pss1);
	/* 16 MiB shared by 5 tasks: 3.2 MiB each. Private copies would make it 16 MiB. */
	if (pss1 > pss0 + pss0 / 4 + 512)
		cr_fail("parent PSS %ld kB before the dump, %ld kB after restore (pages not shared)", pss0, pss1);
	for (int k = 0; k < 3; k++) {
		int st;
		waitpid(kids[k], &st, 0);
		if (!WIFEXITED(st) || WEXITSTATUS(st)) cr_fail("child %d status %#x (see result-*.txt)", k + 1, st);
	}
	cr_finish();
	return 0;
}
