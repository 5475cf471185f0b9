/* vma_layout: mappings whose layout was changed by mprotect and madvise over parts of them
 * come back with the same content, the same VMAs and the same VmFlags:
 *  - 64 private anonymous pages: the middle made read-only (with a MADV_DONTNEED inside it),
 *    MADV_DONTNEED on a part (one page written again), MADV_FREE on another (one page
 *    written again), a PROT_NONE hole with content, a tail never written but one word;
 *  - 32 pages of shared anonymous memory: a read-only part, MADV_DONTNEED on a part (the
 *    pages stay in the object), MADV_REMOVE on another (a hole: zeros), a PROT_NONE hole;
 *  - a private file mapping: some pages changed (COW), a read-only part over a changed page,
 *    MADV_DONTNEED on a changed page (back to the file's content);
 *  - 4 MiB with MADV_HUGEPAGE (transparent huge pages where the kernel gives them), then a
 *    read-only piece and a MADV_DONTNEED piece in the middle (the huge page is split);
 *  - areas writable once and read-only or PROT_NONE since: charged to the commit limit still
 *    (VmFlags "ac") when anonymous and written (though their pages were dropped) or of a
 *    file, and not when anonymous and never written;
 *  - 96 MiB in stripes (more than a restore copies with one thread): every 512 pages, 8 made
 *    read-only and 4 PROT_NONE, and every 61st page MADV_DONTNEED.
 */
#include "layout.h"
#include <sys/mman.h>

#define PAGE 4096UL
#define NPAGES 64
#define FPAGES 16
#define THP_SIZE (4UL << 20)
#define STRIPED_PAGES ((96UL << 20) / PAGE)

static char *area, *fmap, *thp, *striped, *shm;
static char fpath[2300];
static struct cr_layout before, after;
/* What the MADV_FREE pages held when the tree was dumped: the old content or zero. */
static int freed_zero_before[4];

static void die(const char *what)
{
	cr_fail("setup: %s: %s", what, strerror(errno));
	cr_finish();
}

/* A mapping between two PROT_NONE guard pages, so that no neighbour merges with it. */
static char *guarded(size_t len, int prot, int flags, int fd, size_t align)
{
	char *g = mmap(NULL, len + 2 * align, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		       -1, 0);
	if (g == MAP_FAILED)
		die("mmap guard");
	char *at = (char *)(((uintptr_t)g + align) & ~(uintptr_t)(align - 1));
	char *p = mmap(at, len, prot, flags | MAP_FIXED, fd, 0);
	if (p == MAP_FAILED)
		die("mmap");
	return p;
}

static uint64_t file_word(size_t off)
{
	return cr_pat(off, 77);
}

static void setup_anon(void)
{
	area = guarded(NPAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, PAGE);
	cr_fill(area, 56 * PAGE, 1); /* pages 56..63 stay untouched */
	((uint64_t *)(area + 58 * PAGE))[3] = 0x5858585858585858ULL;
	if (madvise(area + 20 * PAGE, 2 * PAGE, MADV_DONTNEED) < 0)
		die("MADV_DONTNEED in the read-only part");
	if (mprotect(area + 16 * PAGE, 8 * PAGE, PROT_READ) < 0)
		die("mprotect PROT_READ");
	if (madvise(area + 30 * PAGE, 4 * PAGE, MADV_DONTNEED) < 0)
		die("MADV_DONTNEED");
	cr_fill(area + 31 * PAGE, PAGE, 2);
	if (madvise(area + 40 * PAGE, 4 * PAGE, MADV_FREE) < 0)
		die("MADV_FREE");
	cr_fill(area + 41 * PAGE, PAGE / 2, 3); /* a write takes the page back */
	if (mprotect(area + 50 * PAGE, 2 * PAGE, PROT_NONE) < 0)
		die("mprotect PROT_NONE");
}

static void check_anon(void)
{
	char what[96];
	cr_check_fill("pages 0-15", area, 16 * PAGE, 1);
	cr_check_fill("read-only pages 16-19", area + 16 * PAGE, 4 * PAGE, 1);
	cr_check_zero("MADV_DONTNEED pages 20-21 (read-only part)", area + 20 * PAGE, 2 * PAGE);
	cr_check_fill("read-only pages 22-23", area + 22 * PAGE, 2 * PAGE, 1);
	cr_check_fill("pages 24-29", area + 24 * PAGE, 6 * PAGE, 1);
	cr_check_zero("MADV_DONTNEED page 30", area + 30 * PAGE, PAGE);
	cr_check_fill("page 31, written after MADV_DONTNEED", area + 31 * PAGE, PAGE, 2);
	cr_check_zero("MADV_DONTNEED pages 32-33", area + 32 * PAGE, 2 * PAGE);
	cr_check_fill("pages 34-39", area + 34 * PAGE, 6 * PAGE, 1);
	for (int i = 0; i < 4; i++) {
		char *pg = area + (40 + i) * PAGE;
		snprintf(what, sizeof what, "MADV_FREE page %d", 40 + i);
		if (i == 1) {
			cr_check_fill("first half of MADV_FREE page 41, written again", pg, PAGE / 2, 3);
			cr_check_fill("second half of MADV_FREE page 41", pg + PAGE / 2, PAGE / 2, 1);
		} else if (freed_zero_before[i]) {
			cr_check_zero(what, pg, PAGE);
		} else {
			cr_check_fill(what, pg, PAGE, 1);
		}
	}
	cr_check_fill("pages 44-49", area + 44 * PAGE, 6 * PAGE, 1);
	if (mprotect(area + 50 * PAGE, 2 * PAGE, PROT_READ) < 0)
		cr_fail("mprotect of the PROT_NONE hole: %s", strerror(errno));
	else
		cr_check_fill("PROT_NONE pages 50-51", area + 50 * PAGE, 2 * PAGE, 1);
	cr_check_fill("pages 52-55", area + 52 * PAGE, 4 * PAGE, 1);
	for (int p = 56; p < NPAGES; p++) {
		uint64_t *w = (uint64_t *)(area + p * PAGE);
		if (p == 58) {
			CHECK_X("page 58 word 3", 0x5858585858585858ULL, w[3]);
			w[3] = 0;
		}
		snprintf(what, sizeof what, "untouched page %d", p);
		cr_check_zero(what, w, PAGE);
	}
}

static void setup_shared(void)
{
	shm = guarded(32 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, PAGE);
	cr_fill(shm, 32 * PAGE, 7);
	if (mprotect(shm + 8 * PAGE, 8 * PAGE, PROT_READ) < 0)
		die("mprotect shared");
	if (madvise(shm + 10 * PAGE, 2 * PAGE, MADV_DONTNEED) < 0 ||
	    madvise(shm + 18 * PAGE, 2 * PAGE, MADV_DONTNEED) < 0)
		die("MADV_DONTNEED shared");
	if (madvise(shm + 22 * PAGE, 3 * PAGE, MADV_REMOVE) < 0)
		die("MADV_REMOVE shared");
	if (mprotect(shm + 28 * PAGE, 2 * PAGE, PROT_NONE) < 0)
		die("mprotect PROT_NONE shared");
}

static void check_shared(void)
{
	if (mprotect(shm + 28 * PAGE, 2 * PAGE, PROT_READ) < 0) {
		cr_fail("mprotect of the shared PROT_NONE hole: %s", strerror(errno));
		return;
	}
	cr_check_fill("shared pages 0-21 (DONTNEED 10-11, 18-19 keep theirs)", shm, 22 * PAGE, 7);
	cr_check_zero("shared pages 22-24, MADV_REMOVE", shm + 22 * PAGE, 3 * PAGE);
	cr_check_fill("shared pages 25-31 (PROT_NONE 28-29)", shm + 25 * PAGE, 7 * PAGE, 7);
}

static void setup_file(void)
{
	static uint64_t pagebuf[PAGE / 8];
	cr_path(fpath, sizeof fpath, "layout.dat");
	int fd = open(fpath, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		die("create file");
	for (size_t p = 0; p < FPAGES; p++) {
		for (size_t i = 0; i < PAGE / 8; i++)
			pagebuf[i] = file_word(p * PAGE + i * 8);
		if (pwrite(fd, pagebuf, PAGE, (off_t)(p * PAGE)) != (ssize_t)PAGE)
			die("write file");
	}
	fmap = guarded(FPAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, PAGE);
	close(fd);
	cr_fill(fmap + 2 * PAGE, 4 * PAGE, 4);				  /* pages 2-5 changed */
	if (mprotect(fmap + 4 * PAGE, 4 * PAGE, PROT_READ) < 0)		  /* 4-7 read-only */
		die("mprotect file mapping");
	if (madvise(fmap + 3 * PAGE, PAGE, MADV_DONTNEED) < 0) /* 3: the file's page again */
		die("MADV_DONTNEED file mapping");
	if (madvise(fmap + 8 * PAGE, 8 * PAGE, MADV_RANDOM) < 0)
		die("MADV_RANDOM file mapping");
}

static void check_file(void)
{
	char what[96];
	for (size_t p = 0; p < FPAGES; p++) {
		const uint64_t *w = (const uint64_t *)(fmap + p * PAGE);
		if (p == 2 || p == 4 || p == 5) {
			snprintf(what, sizeof what, "changed page %zu of the private file mapping", p);
			cr_check_fill(what, w, PAGE, 4);
			continue;
		}
		for (size_t i = 0; i < PAGE / 8; i++)
			if (w[i] != file_word(p * PAGE + i * 8)) {
				cr_fail("page %zu of the private file mapping, word %zu: expected the "
					"file's 0x%llx got 0x%llx",
					p, i, (unsigned long long)file_word(p * PAGE + i * 8),
					(unsigned long long)w[i]);
				break;
			}
	}
}

static void setup_thp(void)
{
	thp = guarded(THP_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 2UL << 20);
	if (madvise(thp, THP_SIZE, MADV_HUGEPAGE) < 0)
		die("MADV_HUGEPAGE");
	cr_fill(thp, THP_SIZE, 5);
	if (mprotect(thp + (1UL << 20), 64 * 1024, PROT_READ) < 0)
		die("mprotect in the huge page");
	if (madvise(thp + (3UL << 20), 128 * 1024, MADV_DONTNEED) < 0)
		die("MADV_DONTNEED in the huge page");
}

static void check_thp(void)
{
	size_t mb = 1UL << 20, hole = 128 * 1024;
	cr_check_fill("THP area before the DONTNEED piece", thp, 3 * mb, 5);
	cr_check_zero("THP area, MADV_DONTNEED piece", thp + 3 * mb, hole);
	cr_check_fill("THP area after the DONTNEED piece", thp + 3 * mb + hole, mb - hole, 5);
}

static void setup_once_writable(void)
{
	char *a = guarded(8 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, PAGE);
	if (mprotect(a, 4 * PAGE, PROT_READ) < 0 || mprotect(a + 4 * PAGE, 4 * PAGE, PROT_NONE) < 0)
		die("mprotect of a writable area");
	char *b = guarded(8 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, PAGE);
	memset(b, 1, 8 * PAGE);
	if (madvise(b, 8 * PAGE, MADV_DONTNEED) < 0)
		die("MADV_DONTNEED of a written area");
	if (mprotect(b, 4 * PAGE, PROT_READ) < 0 || mprotect(b + 4 * PAGE, 4 * PAGE, PROT_NONE) < 0)
		die("mprotect of a written area");
	int fd = open(fpath, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		die("open file");
	char *f = guarded(4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, PAGE);
	close(fd);
	if (mprotect(f, 4 * PAGE, PROT_READ) < 0)
		die("mprotect of a writable file mapping");
}

static void setup_striped(void)
{
	striped = guarded(STRIPED_PAGES * PAGE, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, PAGE);
	if (madvise(striped, STRIPED_PAGES * PAGE, MADV_NOHUGEPAGE) < 0)
		die("MADV_NOHUGEPAGE");
	cr_fill(striped, STRIPED_PAGES * PAGE, 6);
	for (size_t p = 0; p < STRIPED_PAGES; p += 61)
		if (madvise(striped + p * PAGE, PAGE, MADV_DONTNEED) < 0)
			die("MADV_DONTNEED stripe");
	for (size_t p = 0; p < STRIPED_PAGES; p += 512) {
		if (mprotect(striped + (p + 20) * PAGE, 8 * PAGE, PROT_READ) < 0 ||
		    mprotect(striped + (p + 40) * PAGE, 4 * PAGE, PROT_NONE) < 0)
			die("mprotect stripe");
	}
}

static void check_striped(void)
{
	for (size_t p = 0; p < STRIPED_PAGES; p += 512)
		if (mprotect(striped + (p + 40) * PAGE, 4 * PAGE, PROT_READ) < 0) {
			cr_fail("mprotect of a PROT_NONE stripe: %s", strerror(errno));
			return;
		}
	size_t bad = 0, first = 0;
	for (size_t p = 0; p < STRIPED_PAGES; p++) {
		const char *pg = striped + p * PAGE;
		int ok = p % 61 == 0 ? cr_is_zero(pg, PAGE)
				     : *(const uint64_t *)pg == cr_pat((uint64_t)(uintptr_t)pg, 6);
		if (!ok && !bad++)
			first = p;
	}
	if (bad)
		cr_fail("striped area: %zu of %lu pages wrong, first page %zu", bad, STRIPED_PAGES,
			first);
	for (size_t p = 1; p < STRIPED_PAGES; p += 61 * 5)
		cr_check_fill("striped area page", striped + p * PAGE, PAGE, 6);
}

int main(int argc, char **argv)
{
	cr_init(argc, argv);
	cr_pretouch_stack();
	setup_anon();
	setup_shared();
	setup_file();
	setup_thp();
	setup_once_writable();
	setup_striped();
	for (int i = 0; i < 4; i++)
		freed_zero_before[i] = cr_is_zero(area + (40 + i) * PAGE, PAGE);

	cr_layout_take(&before);
	cr_ready();
	cr_wait_go();
	cr_layout_check(&before, &after); /* first: the checks below change the layout */
	check_anon();
	check_shared();
	check_file();
	check_thp();
	check_striped();
	cr_finish();
}
