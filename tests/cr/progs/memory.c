/* memory: anonymous, sparse, PROT_NONE, read-only, file-backed (private COW
 * and shared) mappings, heap and a deep stack must survive checkpoint/restore
 * with the same content, the same /proc/self/maps (no VMA added, lost or
 * moved) and the same VmFlags per VMA.
 */
#include "layout.h"
#include <sys/mman.h>

#define PAGE 4096UL
#define BIG_SIZE (64UL << 20)
#define SPARSE_SIZE (1UL << 30)
#define SPARSE_PAGES (SPARSE_SIZE / PAGE)
#define SPARSE_TOUCHED 16
#define PNONE_SIZE (8 * PAGE)
#define RO_SIZE (4 * PAGE)
#define FPRIV_PAGES 16
#define FSHARED_PAGES 8
#define NSMALL 200
#define LARGE_SIZE (8UL << 20)
#define DEPTH 2000

/* Fill by offset (for file content, independent of the mapping address). */
static void fill_off(void *p, size_t len, uint64_t base_off, uint64_t seed)
{
	uint64_t *w = p;
	for (size_t i = 0; i < len / 8; i++)
		w[i] = cr_pat(base_off + i * 8, seed);
}

static void check_fill_off(const char *what, const void *p, size_t len, uint64_t base_off,
			   uint64_t seed)
{
	const uint64_t *w = p;
	size_t bad = 0, first = 0;
	for (size_t i = 0; i < len / 8; i++)
		if (w[i] != cr_pat(base_off + i * 8, seed)) {
			if (!bad)
				first = i;
			bad++;
		}
	if (bad)
		cr_fail("%s: %zu of %zu words wrong, first at offset %llu: expected 0x%llx got 0x%llx",
			what, bad, len / 8, (unsigned long long)(base_off + first * 8),
			(unsigned long long)cr_pat(base_off + first * 8, seed),
			(unsigned long long)w[first]);
}

/* ---- state ---- */
static char *big, *sparse, *pnone, *ro, *fpriv, *fshared;
static size_t sparse_idx[SPARSE_TOUCHED];
static char fpriv_path[2300], fshared_path[2300];
static unsigned char *small[NSMALL];
static size_t small_len[NSMALL];
static uint64_t *large;
static void *brk_before;
static int fds_before[1024], nfds_before;
static long sparse_rss_before;

static struct cr_layout before, after;

static void die(const char *what)
{
	cr_fail("setup: %s: %s", what, strerror(errno));
	cr_finish();
}

static void make_file(const char *path, size_t pages, uint64_t seed)
{
	static uint64_t pagebuf[PAGE / 8];
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		die("create file");
	for (size_t p = 0; p < pages; p++) {
		fill_off(pagebuf, PAGE, p * PAGE, seed);
		if (pwrite(fd, pagebuf, PAGE, (off_t)(p * PAGE)) != (ssize_t)PAGE)
			die("write file");
	}
	close(fd);
}

/* The maps line that starts at addr, copied into out. */
static int maps_line(const char *maps, const void *addr, char *out, size_t n)
{
	char key[32];
	snprintf(key, sizeof key, "%lx-", (unsigned long)(uintptr_t)addr);
	for (const char *l = maps; *l;) {
		const char *e = strchr(l, '\n');
		size_t ll = e ? (size_t)(e - l) : strlen(l);
		if (strncmp(l, key, strlen(key)) == 0) {
			if (ll >= n)
				ll = n - 1;
			memcpy(out, l, ll);
			out[ll] = 0;
			return 0;
		}
		if (!e)
			break;
		l = e + 1;
	}
	out[0] = 0;
	return -1;
}

static void check_vma(const char *what, const void *addr, size_t len, const char *perms)
{
	char line[512], want[64];
	if (maps_line(after.maps, addr, line, sizeof line) < 0) {
		cr_fail("%s: no VMA starts at %p after restore", what, addr);
		return;
	}
	snprintf(want, sizeof want, "%lx-%lx %s", (unsigned long)(uintptr_t)addr,
		 (unsigned long)(uintptr_t)addr + len, perms);
	if (strncmp(line, want, strlen(want)) != 0)
		cr_fail("%s: VMA expected \"%s ...\" got \"%s\"", what, want, line);
}

static void check_maps(void)
{
	cr_layout_check(&before, &after);
	check_vma("64 MiB anon area", big, BIG_SIZE, "rw-p");
	check_vma("1 GiB sparse area", sparse, SPARSE_SIZE, "rw-p");
	check_vma("PROT_NONE area", pnone, PNONE_SIZE, "---p");
	check_vma("read-only anon area", ro, RO_SIZE, "r--p");
	check_vma("private file mapping", fpriv, FPRIV_PAGES * PAGE, "rw-p");
	check_vma("shared file mapping", fshared, FSHARED_PAGES * PAGE, "rw-s");
}

static void check_files_and_memory(void)
{
	static uint64_t pagebuf[PAGE / 8];
	char what[128];

	cr_check_fill("64 MiB anon area", big, BIG_SIZE, 1);

	/* sparse: RSS first (reading zero pages below maps the zero page). */
	long rss = cr_smaps_kb(sparse, "Rss");
	if (rss < 0)
		cr_fail("sparse area: no smaps entry at %p", (void *)sparse);
	else if (rss > sparse_rss_before + 16 * 1024)
		cr_fail("sparse 1 GiB area with %d touched pages has Rss %ld kB after restore, "
			"%ld kB before (untouched pages were populated)",
			SPARSE_TOUCHED, rss, sparse_rss_before);
	for (int i = 0; i < SPARSE_TOUCHED; i++) {
		char *pg = sparse + sparse_idx[i] * PAGE;
		snprintf(what, sizeof what, "sparse touched page %zu", sparse_idx[i]);
		cr_check_fill(what, pg, PAGE, 2);
		if (sparse_idx[i] > 0) {
			snprintf(what, sizeof what, "sparse untouched page %zu", sparse_idx[i] - 1);
			cr_check_zero(what, pg - PAGE, PAGE);
		}
		if (sparse_idx[i] + 1 < SPARSE_PAGES) {
			snprintf(what, sizeof what, "sparse untouched page %zu", sparse_idx[i] + 1);
			cr_check_zero(what, pg + PAGE, PAGE);
		}
	}
	for (size_t p = 5; p < SPARSE_PAGES; p += 61) {
		int touched = 0;
		for (int i = 0; i < SPARSE_TOUCHED; i++)
			touched |= sparse_idx[i] == p;
		if (touched)
			continue;
		snprintf(what, sizeof what, "sparse untouched page %zu", p);
		cr_check_zero(what, sparse + p * PAGE, PAGE);
	}

	cr_check_fill("read-only anon area", ro, RO_SIZE, 3);

	/* private file mapping: pages 3 and 7 fully rewritten, page 11 one word */
	int fd = open(fpriv_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		cr_fail("cannot open %s: %s", fpriv_path, strerror(errno));
	for (size_t p = 0; p < FPRIV_PAGES; p++) {
		char *pg = fpriv + p * PAGE;
		snprintf(what, sizeof what, "private file mapping page %zu", p);
		if (p == 3 || p == 7) {
			cr_check_fill(what, pg, PAGE, 5);
		} else if (p == 11) {
			uint64_t *w = (uint64_t *)pg;
			CHECK_X("private file mapping page 11 modified word", 0x1122334455667788ULL, w[17]);
			w[17] = cr_pat(p * PAGE + 17 * 8, 4); /* compare the rest as file content */
			check_fill_off(what, pg, PAGE, p * PAGE, 4);
			w[17] = 0x1122334455667788ULL;
		} else {
			check_fill_off(what, pg, PAGE, p * PAGE, 4);
		}
		if (fd >= 0) {
			if (pread(fd, pagebuf, PAGE, (off_t)(p * PAGE)) != (ssize_t)PAGE)
				cr_fail("short read of %s page %zu", fpriv_path, p);
			snprintf(what, sizeof what, "file under private mapping, page %zu on disk", p);
			check_fill_off(what, pagebuf, PAGE, p * PAGE, 4);
		}
	}
	if (fd >= 0)
		close(fd);

	/* shared file mapping: page 2 was written through the mapping before */
	fd = open(fshared_path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		cr_fail("cannot open %s: %s", fshared_path, strerror(errno));
	for (size_t p = 0; p < FSHARED_PAGES; p++) {
		uint64_t seed = p == 2 ? 7 : 6;
		snprintf(what, sizeof what, "shared file mapping page %zu", p);
		check_fill_off(what, fshared + p * PAGE, PAGE, p * PAGE, seed);
		if (fd >= 0) {
			if (pread(fd, pagebuf, PAGE, (off_t)(p * PAGE)) != (ssize_t)PAGE)
				cr_fail("short read of %s page %zu", fshared_path, p);
			snprintf(what, sizeof what, "file under shared mapping, page %zu on disk", p);
			check_fill_off(what, pagebuf, PAGE, p * PAGE, seed);
		}
	}
	/* write through the restored shared mapping: the file must see it */
	uint64_t *w5 = (uint64_t *)(fshared + 5 * PAGE) + 9;
	uint64_t old = *w5, got = 0;
	*w5 = 0xC0FFEE0DDF00D123ULL;
	if (msync(fshared, FSHARED_PAGES * PAGE, MS_SYNC) < 0)
		cr_fail("msync of shared file mapping: %s", strerror(errno));
	if (fd >= 0) {
		if (pread(fd, &got, 8, 5 * PAGE + 9 * 8) != 8)
			cr_fail("short read of %s", fshared_path);
		CHECK_X("file word written through restored MAP_SHARED mapping", 0xC0FFEE0DDF00D123ULL,
			got);
	}
	*w5 = old; /* leave the file as it was (leave-running flavor restores again) */
	msync(fshared, FSHARED_PAGES * PAGE, MS_SYNC);
	if (fd >= 0)
		close(fd);

	/* heap */
	for (int i = 0; i < NSMALL; i++)
		for (size_t j = 0; j < small_len[i]; j++)
			if (small[i][j] != (unsigned char)(i * 13 + j)) {
				cr_fail("malloc block %d byte %zu expected %u got %u", i, j,
					(unsigned char)(i * 13 + j), small[i][j]);
				break;
			}
	cr_check_fill("large malloc block", large, LARGE_SIZE, 8);
	CHECK_X("sbrk(0)", (uintptr_t)brk_before, (uintptr_t)sbrk(0));
}

static void check_heap_usable(void)
{
	/* after the layout checks: the allocator must still work */
	for (int i = 0; i < NSMALL; i += 2) {
		free(small[i]);
		small[i] = NULL;
	}
	void *a = malloc(100), *b = malloc(300 << 10), *c = malloc(LARGE_SIZE * 2);
	if (!a || !b || !c)
		cr_fail("malloc after restore failed");
	else {
		memset(a, 1, 100);
		memset(b, 2, 300 << 10);
		memset(c, 3, LARGE_SIZE * 2);
	}
	free(a);
	free(b);
	free(c);
}

/* ---- the deep stack: wait for go at depth DEPTH, check frames on unwind ---- */
static void at_bottom(void);

__attribute__((noinline)) static int recurse(int depth)
{
	volatile uint64_t local[6];
	for (int i = 0; i < 6; i++)
		local[i] = cr_pat((uint64_t)depth * 8 + (uint64_t)i, 9);
	int ret;
	if (depth < DEPTH)
		ret = recurse(depth + 1);
	else {
		at_bottom();
		ret = 0;
	}
	for (int i = 0; i < 6; i++)
		if (local[i] != cr_pat((uint64_t)depth * 8 + (uint64_t)i, 9)) {
			cr_fail("stack frame at depth %d local[%d] expected 0x%llx got 0x%llx", depth, i,
				(unsigned long long)cr_pat((uint64_t)depth * 8 + (uint64_t)i, 9),
				(unsigned long long)local[i]);
			return ret + 1;
		}
	return ret;
}

static void at_bottom(void)
{
	nfds_before = cr_list_fds(fds_before, 1024);
	sparse_rss_before = cr_smaps_kb(sparse, "Rss");
	cr_layout_take(&before);

	cr_ready();
	cr_wait_go();

	check_maps(); /* first: nothing below may change the layout before */
	cr_check_fds(fds_before, nfds_before);
	cr_check_threads_1();
	check_files_and_memory();
}

int main(int argc, char **argv)
{
	cr_init(argc, argv);
	cr_pretouch_stack(); /* the stack VMA must not grow between the two maps snapshots */

	/* Between two guard pages, so that no anonymous neighbour the layout happens to put next
	 * to it merges with it (its bounds are checked exactly). */
	char *guard = mmap(NULL, BIG_SIZE + 2 * PAGE, PROT_NONE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (guard == MAP_FAILED)
		die("mmap guard");
	big = mmap(guard + PAGE, BIG_SIZE, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	if (big == MAP_FAILED)
		die("mmap 64 MiB");
	cr_fill(big, BIG_SIZE, 1);

	sparse = mmap(NULL, SPARSE_SIZE, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (sparse == MAP_FAILED)
		die("mmap 1 GiB sparse");
	if (madvise(sparse, SPARSE_SIZE, MADV_NOHUGEPAGE) < 0) /* keep it sparse under THP=always */
		die("madvise NOHUGEPAGE");
	for (int i = 0; i < SPARSE_TOUCHED; i++) {
		/* scattered; the first and the last page of the area too */
		if (i == SPARSE_TOUCHED - 1)
			sparse_idx[i] = SPARSE_PAGES - 1;
		else
			sparse_idx[i] = ((size_t)i * 16411 + (size_t)i * i * 31) % SPARSE_PAGES;
		cr_fill(sparse + sparse_idx[i] * PAGE, PAGE, 2);
	}

	pnone = mmap(NULL, PNONE_SIZE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (pnone == MAP_FAILED)
		die("mmap PROT_NONE");

	ro = mmap(NULL, RO_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (ro == MAP_FAILED)
		die("mmap ro");
	cr_fill(ro, RO_SIZE, 3);
	if (mprotect(ro, RO_SIZE, PROT_READ) < 0)
		die("mprotect ro");
	if (madvise(ro, RO_SIZE, MADV_DONTDUMP) < 0)
		die("madvise DONTDUMP");

	cr_path(fpriv_path, sizeof fpriv_path, "mem-private.dat");
	make_file(fpriv_path, FPRIV_PAGES, 4);
	int fd = open(fpriv_path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		die("open private file");
	fpriv = mmap(NULL, FPRIV_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	if (fpriv == MAP_FAILED)
		die("mmap private file");
	close(fd);
	volatile uint64_t sink = 0;
	for (size_t p = 0; p < FPRIV_PAGES; p += 2) /* fault in some unmodified pages */
		sink += *(uint64_t *)(fpriv + p * PAGE);
	(void)sink;
	cr_fill(fpriv + 3 * PAGE, PAGE, 5);
	cr_fill(fpriv + 7 * PAGE, PAGE, 5);
	((uint64_t *)(fpriv + 11 * PAGE))[17] = 0x1122334455667788ULL;
	if (madvise(fpriv, FPRIV_PAGES * PAGE, MADV_RANDOM) < 0)
		die("madvise RANDOM");

	cr_path(fshared_path, sizeof fshared_path, "mem-shared.dat");
	make_file(fshared_path, FSHARED_PAGES, 6);
	fd = open(fshared_path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		die("open shared file");
	fshared = mmap(NULL, FSHARED_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (fshared == MAP_FAILED)
		die("mmap shared file");
	close(fd);
	fill_off(fshared + 2 * PAGE, PAGE, 2 * PAGE, 7);
	if (msync(fshared, FSHARED_PAGES * PAGE, MS_SYNC) < 0)
		die("msync");

	for (int i = 0; i < NSMALL; i++) {
		small_len[i] = 16 + (size_t)(i % 7) * 24;
		small[i] = malloc(small_len[i]);
		if (!small[i])
			die("malloc");
		for (size_t j = 0; j < small_len[i]; j++)
			small[i][j] = (unsigned char)(i * 13 + j);
	}
	for (int i = 1; i < NSMALL; i += 3) { /* holes in the heap */
		free(small[i]);
		small[i] = malloc(small_len[i]);
		for (size_t j = 0; j < small_len[i]; j++)
			small[i][j] = (unsigned char)(i * 13 + j);
	}
	large = malloc(LARGE_SIZE);
	if (!large)
		die("malloc large");
	cr_fill(large, LARGE_SIZE, 8);
	brk_before = sbrk(0);

	int bad = recurse(0);
	if (bad)
		cr_fail("%d stack frames were corrupted", bad);
	check_heap_usable();
	cr_finish();
}
