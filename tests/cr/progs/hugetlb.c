/* hugetlb: memory of huge pages (2 MiB, from the hugetlb pool that the driver reserves)
 * comes back with its content, flags and sharing:
 *   - anonymous MAP_HUGETLB private: one huge page written, one never touched; a forked
 *     child has its copy-on-write copy and changes one page of it;
 *   - anonymous MAP_HUGETLB shared by the root and its child: writes after restore meet;
 *   - a hugetlb memfd (MFD_HUGETLB), open and mapped shared by both: same name, size and
 *     content through the fd and the mapping, writes after restore meet.
 * Both compare maps (inode numbers of the recreated objects aside), the VmFlags and
 * KernelPageSize of every mapping, and the huge pages each private mapping holds.
 */
#include "layout.h"
#include <linux/memfd.h>
#include <linux/mman.h>
#include <sys/mman.h>
#include <sys/wait.h>

#define HPAGE (2UL << 20)

static struct cr_layout before, after;
static char *priv, *shared, *mfd_map;
static int mfd;
static long priv_huge_kb_before;
static volatile int *counters; /* in the shared mapping */

static void die(const char *what)
{
	cr_fail("setup: %s: %s", what, strerror(errno));
	cr_finish();
}

static char *huge_map(size_t len, int flags, int fd)
{
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, flags | (flags & MAP_HUGETLB ? MAP_HUGE_2MB : 0), fd, 0);
	if (p == MAP_FAILED)
		die("mmap of huge pages (are there free huge pages?)");
	if ((uintptr_t)p % HPAGE)
		cr_fail("setup: huge page mapping at %p is not aligned", (void *)p);
	return p;
}

/* The page at priv + 4096 is the child's own: its seed is `own_seed`. */
static void check_common(const char *role, uint64_t own_seed)
{
	char w[128];
	cr_layout_check(&before, &after);
	/* before any read: a read of an untouched huge page allocates it */
	snprintf(w, sizeof w, "%s: Private_Hugetlb kB of the private mapping", role);
	CHECK_I(w, priv_huge_kb_before, cr_smaps_kb(priv, "Private_Hugetlb"));
	snprintf(w, sizeof w, "%s: first huge page of the private mapping", role);
	cr_check_fill(w, priv, 4096, 1);
	cr_check_fill(w, priv + 4096, 4096, own_seed);
	cr_check_fill(w, priv + 8192, HPAGE - 8192, 1);
	snprintf(w, sizeof w, "%s: untouched huge page of the private mapping", role);
	cr_check_zero(w, priv + HPAGE, HPAGE);
	snprintf(w, sizeof w, "%s: shared mapping, second huge page", role);
	cr_check_fill(w, shared + HPAGE, HPAGE, 3);
	snprintf(w, sizeof w, "%s: hugetlb memfd mapping", role);
	cr_check_fill(w, mfd_map, HPAGE, 4);

	struct stat st;
	if (fstat(mfd, &st) < 0)
		cr_fail("%s: fstat of the hugetlb memfd: %s", role, strerror(errno));
	else
		CHECK_I("size of the hugetlb memfd", 2 * HPAGE, st.st_size);
	char link[256] = "", path[64];
	snprintf(path, sizeof path, "/proc/self/fd/%d", mfd);
	if (readlink(path, link, sizeof link - 1) < 0)
		cr_fail("%s: readlink %s: %s", role, path, strerror(errno));
	CHECK_S("hugetlb memfd link", "/memfd:cryo-huge (deleted)", link);
	static char buf[4096];
	if (pread(mfd, buf, sizeof buf, (off_t)(HPAGE + 4096)) != (ssize_t)sizeof buf)
		cr_fail("%s: pread of the hugetlb memfd: %s", role, strerror(errno));
	else
		for (size_t i = 0; i < sizeof buf; i++)
			if (buf[i] != 'M') {
				cr_fail("%s: hugetlb memfd byte %zu through the fd: %d", role,
					HPAGE + 4096 + i, buf[i]);
				break;
			}
}

/* Each side counts in shared memory and in the memfd; the other must see it. */
static void count(int who)
{
	for (int n = 0; n < 1000; n++) {
		__atomic_fetch_add(&counters[who], 1, __ATOMIC_SEQ_CST);
		__atomic_fetch_add((int *)(mfd_map + HPAGE) + who, 1, __ATOMIC_SEQ_CST);
	}
}

static void child(void)
{
	cr_fill(priv + 4096, 4096, 5); /* copy on write: the root keeps its page */
	priv_huge_kb_before = cr_smaps_kb(priv, "Private_Hugetlb");
	cr_layout_take(&before);
	cr_ready_named("ready-child");
	cr_wait_go();
	check_common("child", 5);
	count(1);
	_exit(cr_nfails ? 1 : 0);
}

int main(int argc, char **argv)
{
	cr_init(argc, argv);
	cr_pretouch_stack();
	priv = huge_map(2 * HPAGE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1);
	cr_fill(priv, HPAGE, 1);
	shared = huge_map(2 * HPAGE, MAP_SHARED | MAP_ANONYMOUS | MAP_HUGETLB, -1);
	counters = (volatile int *)shared;
	cr_fill(shared + HPAGE, HPAGE, 3);
	mfd = memfd_create("cryo-huge", MFD_HUGETLB | MFD_HUGE_2MB);
	if (mfd < 0 || ftruncate(mfd, 2 * HPAGE) < 0)
		die("hugetlb memfd");
	mfd_map = huge_map(2 * HPAGE, MAP_SHARED, mfd);
	cr_fill(mfd_map, HPAGE, 4);
	memset(mfd_map + HPAGE, 'M', HPAGE);
	memset(mfd_map + HPAGE, 0, 64); /* the counters */

	pid_t c = fork();
	if (c < 0)
		die("fork");
	if (c == 0)
		child();
	cr_wait_for("ready-child");
	priv_huge_kb_before = cr_smaps_kb(priv, "Private_Hugetlb");
	cr_layout_take(&before);
	cr_ready();
	cr_wait_go();

	check_common("root", 1);
	count(0);
	int st;
	if (waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st))
		cr_fail("child (pid %d) failed (status %#x): see result-%d.txt", c, st, c);
	if (counters[0] != 1000 || counters[1] != 1000)
		cr_fail("counters in shared huge pages: %d %d (not shared after restore?)", counters[0],
			counters[1]);
	int *mc = (int *)(mfd_map + HPAGE);
	if (mc[0] != 1000 || mc[1] != 1000)
		cr_fail("counters in the hugetlb memfd: %d %d (not shared after restore?)", mc[0], mc[1]);
	int got[2] = { 0, 0 };
	if (pread(mfd, got, sizeof got, (off_t)HPAGE) != (ssize_t)sizeof got || got[0] != 1000 ||
	    got[1] != 1000)
		cr_fail("counters read through the memfd fd: %d %d", got[0], got[1]);
	cr_finish();
}
