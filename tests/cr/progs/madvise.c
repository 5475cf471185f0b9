/* madvise: the advice a process gave its mappings comes back, as smaps VmFlags show it, on
 * whole mappings and on parts of them (the mapping splits), on private, shared and file
 * mappings, read-only and PROT_NONE ones: MADV_DONTFORK (dc), MADV_DONTDUMP (dd),
 * MADV_HUGEPAGE (hg), MADV_NOHUGEPAGE (nh), MADV_WIPEONFORK (wf), MADV_MERGEABLE (mg),
 * MADV_RANDOM (rr), MADV_SEQUENTIAL (sr). The VmFlags line of every mapping is compared, the
 * content too, and the advice still acts after restore: a child forked then has no
 * MADV_DONTFORK mapping and reads zeros from the MADV_WIPEONFORK one.
 */
#include "layout.h"
#include <sys/mman.h>
#include <sys/wait.h>

#define PAGE 4096UL

static struct cr_layout before, after;
static char *dontfork, *wipe, *parts, *shm, *ro, *pnone, *fmap;

struct advice {
	int advice;
	const char *name;
};

static void die(const char *what)
{
	cr_fail("setup: %s: %s", what, strerror(errno));
	cr_finish();
}

/* A mapping between two PROT_NONE guard pages, so that no neighbour merges with it. */
static char *guarded(size_t len, int prot, int flags, int fd)
{
	char *g = mmap(NULL, len + 2 * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (g == MAP_FAILED)
		die("mmap guard");
	char *p = mmap(g + PAGE, len, prot, flags | MAP_FIXED, fd, 0);
	if (p == MAP_FAILED)
		die("mmap");
	return p;
}

static void advise(char *p, size_t len, int advice, const char *name)
{
	if (madvise(p, len, advice) < 0) {
		cr_fail("setup: madvise(%s): %s", name, strerror(errno));
		cr_finish();
	}
}

static void setup(void)
{
	dontfork = guarded(4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	cr_fill(dontfork, 4 * PAGE, 1);
	advise(dontfork, 4 * PAGE, MADV_DONTFORK, "MADV_DONTFORK");

	wipe = guarded(4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	cr_fill(wipe, 4 * PAGE, 2);
	advise(wipe, 4 * PAGE, MADV_WIPEONFORK, "MADV_WIPEONFORK");

	/* One mapping, each part with its advice, some with two. */
	static const struct advice each[] = {
		{ MADV_DONTDUMP, "MADV_DONTDUMP" },   { MADV_HUGEPAGE, "MADV_HUGEPAGE" },
		{ MADV_NOHUGEPAGE, "MADV_NOHUGEPAGE" }, { MADV_MERGEABLE, "MADV_MERGEABLE" },
		{ MADV_RANDOM, "MADV_RANDOM" },       { MADV_SEQUENTIAL, "MADV_SEQUENTIAL" },
		{ MADV_DONTFORK, "MADV_DONTFORK" },   { MADV_WIPEONFORK, "MADV_WIPEONFORK" },
	};
	enum { N = sizeof each / sizeof each[0] };
	parts = guarded((2 * N + 2) * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			-1);
	cr_fill(parts, (2 * N + 2) * PAGE, 3);
	for (int i = 0; i < N; i++)
		advise(parts + (size_t)(2 * i + 1) * PAGE, PAGE, each[i].advice, each[i].name);
	/* two pieces of advice on one part, across two parts */
	advise(parts + 2 * PAGE, 4 * PAGE, MADV_DONTDUMP, "MADV_DONTDUMP over parts");
	advise(parts + 9 * PAGE, 2 * PAGE, MADV_SEQUENTIAL, "MADV_SEQUENTIAL over parts");

	shm = guarded(4 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1);
	memset(shm, 'm', 4 * PAGE);
	advise(shm, 2 * PAGE, MADV_DONTDUMP, "MADV_DONTDUMP shared");
	advise(shm + 2 * PAGE, PAGE, MADV_RANDOM, "MADV_RANDOM shared");
	advise(shm + 3 * PAGE, PAGE, MADV_DONTFORK, "MADV_DONTFORK shared");

	/* Advice given before mprotect, and after it. */
	ro = guarded(4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	cr_fill(ro, 4 * PAGE, 4);
	advise(ro, 4 * PAGE, MADV_MERGEABLE, "MADV_MERGEABLE before mprotect");
	if (mprotect(ro, 4 * PAGE, PROT_READ) < 0)
		die("mprotect");
	advise(ro + 2 * PAGE, 2 * PAGE, MADV_NOHUGEPAGE, "MADV_NOHUGEPAGE read-only");
	pnone = guarded(4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	cr_fill(pnone, 4 * PAGE, 5);
	if (mprotect(pnone, 4 * PAGE, PROT_NONE) < 0)
		die("mprotect PROT_NONE");
	advise(pnone, 2 * PAGE, MADV_DONTDUMP, "MADV_DONTDUMP PROT_NONE");
	advise(pnone + PAGE, 2 * PAGE, MADV_WIPEONFORK, "MADV_WIPEONFORK PROT_NONE");

	char path[2300];
	cr_path(path, sizeof path, "advised.dat");
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || ftruncate(fd, 8 * PAGE) < 0)
		die("create file");
	fmap = guarded(8 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd);
	close(fd);
	cr_fill(fmap, 2 * PAGE, 6);
	advise(fmap, 4 * PAGE, MADV_SEQUENTIAL, "MADV_SEQUENTIAL file");
	advise(fmap + 4 * PAGE, 2 * PAGE, MADV_DONTFORK, "MADV_DONTFORK file");
	advise(fmap + 6 * PAGE, 2 * PAGE, MADV_DONTDUMP, "MADV_DONTDUMP file");
}

/* In a child forked now: DONTFORK areas are not there, WIPEONFORK ones read zeros. */
static void check_fork(void)
{
	pid_t c = fork();
	if (c < 0) {
		cr_fail("fork after restore: %s", strerror(errno));
		return;
	}
	if (c == 0) {
		int bad = 0;
		/* mincore says ENOMEM for addresses that are not mapped */
		unsigned char vec[4];
		if (mincore(dontfork, 4 * PAGE, vec) == 0 || errno != ENOMEM)
			bad |= 1;
		if (mincore(parts + 13 * PAGE, PAGE, vec) == 0 || errno != ENOMEM)
			bad |= 2;
		if (mincore(shm + 3 * PAGE, PAGE, vec) == 0 || errno != ENOMEM)
			bad |= 4;
		if (!cr_is_zero(wipe, 4 * PAGE) || !cr_is_zero(parts + 15 * PAGE, PAGE))
			bad |= 8;
		if (cr_is_zero(parts, PAGE) || shm[0] != 'm')
			bad |= 16;
		_exit(bad);
	}
	int st;
	if (waitpid(c, &st, 0) != c || !WIFEXITED(st)) {
		cr_fail("child forked after restore: status %#x", st);
		return;
	}
	int bad = WEXITSTATUS(st);
	if (bad & 1)
		cr_fail("a child forked after restore has the MADV_DONTFORK mapping");
	if (bad & 2)
		cr_fail("a child forked after restore has the MADV_DONTFORK part of a mapping");
	if (bad & 4)
		cr_fail("a child forked after restore has the MADV_DONTFORK part of shared memory");
	if (bad & 8)
		cr_fail("a child forked after restore reads data from MADV_WIPEONFORK memory");
	if (bad & 16)
		cr_fail("a child forked after restore lost the content of ordinary mappings");
}

int main(int argc, char **argv)
{
	cr_init(argc, argv);
	cr_pretouch_stack();
	setup();
	cr_layout_take(&before);
	cr_ready();
	cr_wait_go();
	cr_layout_check(&before, &after);

	cr_check_fill("MADV_DONTFORK mapping", dontfork, 4 * PAGE, 1);
	cr_check_fill("MADV_WIPEONFORK mapping", wipe, 4 * PAGE, 2);
	cr_check_fill("mapping with advice on parts", parts, 18 * PAGE, 3);
	for (size_t i = 0; i < 4 * PAGE; i++)
		if (shm[i] != 'm') {
			cr_fail("shared memory byte %zu: %d", i, shm[i]);
			break;
		}
	cr_check_fill("read-only mapping", ro, 4 * PAGE, 4);
	if (mprotect(pnone, 4 * PAGE, PROT_READ) < 0)
		cr_fail("mprotect of the PROT_NONE mapping: %s", strerror(errno));
	else
		cr_check_fill("PROT_NONE mapping", pnone, 4 * PAGE, 5);
	cr_check_fill("private file mapping", fmap, 2 * PAGE, 6);
	cr_check_zero("private file mapping, the file's pages", fmap + 2 * PAGE, 6 * PAGE);
	check_fork();
	cr_finish();
}
