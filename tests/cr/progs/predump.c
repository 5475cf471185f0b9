/* Memory that changes between the dumps of an image chain (tests/cr/predump.sh): pre-dump,
 * step 1, pre-dump, step 2, dump, restore, then every page is checked against what the
 * steps made of it. Each step waits for WORKDIR/stepN and answers WORKDIR/doneN.
 *
 *   A: 8192 anonymous pages, written with generation 0 at start.
 *   F: a private writable mapping of a 16-page file; pages 2 and 3 written at start.
 *   step 1: A pages i%10==0 and page 7 get generation 1; A[100,200) unmapped;
 *           A[300,310) dropped (MADV_DONTNEED: zero again); C (256 pages) mapped, written;
 *           F page 5 written.
 *   step 2: A pages i%25==1 and page 7 get generation 2; a new mapping at A[100,150)
 *           written with generation 2 (same place, another mapping); C pages i%4==0 get
 *           generation 2, then C is moved (mremap) to another address.
 * Each word of a page holds pat(region, page, generation, word).
 */
#include "common.h"

#include <sys/mman.h>

#define PAGE 4096UL
#define A_PAGES 8192UL
#define C_PAGES 256UL
#define F_PAGES 16UL

static uint64_t pat(uint64_t region, uint64_t page, uint64_t gen, uint64_t word)
{
	uint64_t z = (region << 56) ^ (page << 24) ^ (gen << 16) ^ word;
	z += 0x9e3779b97f4a7c15ULL;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31) ^ 1; /* never a zero page */
}

static void fill(char *p, uint64_t region, uint64_t page, uint64_t gen)
{
	uint64_t *w = (uint64_t *)p;
	for (uint64_t i = 0; i < PAGE / 8; i++)
		w[i] = pat(region, page, gen, i);
}

/* 0: as expected; else the first wrong word + 1. */
static uint64_t wrong(const char *p, uint64_t region, uint64_t page, uint64_t gen)
{
	const uint64_t *w = (const uint64_t *)p;
	for (uint64_t i = 0; i < PAGE / 8; i++)
		if (w[i] != (gen == ~0ULL ? 0 : pat(region, page, gen, i)))
			return i + 1;
	return 0;
}

static int mapped(const void *p)
{
	unsigned char v;
	return mincore((void *)p, PAGE, &v) == 0 || errno != ENOMEM;
}

/* What page i of A holds after step 2: a generation, ~0 for zeros, -2 when unmapped. */
static uint64_t a_gen(uint64_t i)
{
	if (i >= 150 && i < 200)
		return ~1ULL;
	if (i >= 100 && i < 150)
		return 2;
	if (i == 7 || i % 25 == 1)
		return 2;
	if (i >= 300 && i < 310)
		return ~0ULL;
	if (i % 10 == 0)
		return 1;
	return 0;
}

int main(int argc, char **argv)
{
	cr_init(argc, argv);
	char path[2300];
	cr_path(path, sizeof path, "fdata");
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		return 2;
	static char page[PAGE];
	for (uint64_t i = 0; i < F_PAGES; i++) {
		fill(page, 3, i, 9);
		if (cr_write_all(fd, page, PAGE))
			return 2;
	}
	char *f = mmap(NULL, F_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	close(fd);
	char *a = mmap(NULL, A_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		       -1, 0);
	/* Where C goes in step 2: reserved now, so nothing else takes it. */
	char *c_to = mmap(NULL, C_PAGES * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (f == MAP_FAILED || a == MAP_FAILED || c_to == MAP_FAILED)
		return 2;
	for (uint64_t i = 0; i < A_PAGES; i++)
		fill(a + i * PAGE, 1, i, 0);
	fill(f + 2 * PAGE, 3, 2, 0);
	fill(f + 3 * PAGE, 3, 3, 0);
	cr_ready();

	cr_wait_for("step1");
	for (uint64_t i = 0; i < A_PAGES; i++)
		if (i % 10 == 0 || i == 7)
			fill(a + i * PAGE, 1, i, 1);
	munmap(a + 100 * PAGE, 100 * PAGE);
	madvise(a + 300 * PAGE, 10 * PAGE, MADV_DONTNEED);
	char *c = mmap(NULL, C_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		       -1, 0);
	if (c == MAP_FAILED)
		return 2;
	for (uint64_t i = 0; i < C_PAGES; i++)
		fill(c + i * PAGE, 2, i, 1);
	fill(f + 5 * PAGE, 3, 5, 1);
	cr_ready_named("done1");

	cr_wait_for("step2");
	for (uint64_t i = 0; i < A_PAGES; i++)
		if ((i % 25 == 1 || i == 7) && !(i >= 100 && i < 200))
			fill(a + i * PAGE, 1, i, 2);
	if (mmap(a + 100 * PAGE, 50 * PAGE, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED)
		return 2;
	for (uint64_t i = 100; i < 150; i++)
		fill(a + i * PAGE, 1, i, 2);
	for (uint64_t i = 0; i < C_PAGES; i += 4)
		fill(c + i * PAGE, 2, i, 2);
	c = mremap(c, C_PAGES * PAGE, C_PAGES * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, c_to);
	if (c != c_to)
		return 2;
	cr_ready_named("done2");

	cr_wait_go();
	uint64_t bad = 0, checked = 0;
	for (uint64_t i = 0; i < A_PAGES; i++) {
		uint64_t g = a_gen(i);
		const char *p = a + i * PAGE;
		if (g == ~1ULL) {
			if (mapped(p) && bad++ < 5)
				cr_fail("A page %llu is mapped: it was unmapped", (unsigned long long)i);
			continue;
		}
		uint64_t w = wrong(p, 1, i, g);
		checked++;
		if (w && bad++ < 5)
			cr_fail("A page %llu: word %llu is 0x%llx, expected generation %lld", (unsigned long long)i,
				(unsigned long long)(w - 1), (unsigned long long)((uint64_t *)p)[w - 1],
				(long long)g);
	}
	for (uint64_t i = 0; i < C_PAGES; i++) {
		uint64_t w = wrong(c + i * PAGE, 2, i, i % 4 == 0 ? 2 : 1);
		checked++;
		if (w && bad++ < 5)
			cr_fail("C page %llu (moved): word %llu wrong", (unsigned long long)i,
				(unsigned long long)(w - 1));
	}
	for (uint64_t i = 0; i < F_PAGES; i++) {
		uint64_t g = i == 2 || i == 3 ? 0 : i == 5 ? 1 : 9;
		uint64_t w = wrong(f + i * PAGE, 3, i, g);
		checked++;
		if (w && bad++ < 5)
			cr_fail("F page %llu: word %llu wrong (expected generation %llu)",
				(unsigned long long)i, (unsigned long long)(w - 1), (unsigned long long)g);
	}
	if (bad)
		cr_fail("%llu pages wrong of %llu", (unsigned long long)bad, (unsigned long long)checked);
	else
		cr_note("%llu pages checked", (unsigned long long)checked);
	cr_finish();
}
