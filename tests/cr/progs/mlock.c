/* mlock: locked memory stays locked, the way it was locked:
 *   root   mlock of 4 pages in the middle of 16 (the mapping splits in three), mlock2
 *          MLOCK_ONFAULT of 8 pages (2 touched), a locked PROT_NONE area, a locked private
 *          file mapping, locked shared anonymous memory; no mlockall.
 *   cur    mlockall(MCL_CURRENT | MCL_FUTURE), then a mapping made after it.
 *   fault  mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT).
 *   future mlockall(MCL_FUTURE) alone: nothing locked yet but what is mapped after it.
 * Each compares after restore its maps and the VmFlags of every mapping ("lo", "lf"), VmLck
 * in status, the resident kB of its locked areas and their content; then maps a new area: it
 * must be locked (and populated at once, or only on fault) as mlockall(MCL_FUTURE) said, or
 * not locked at all in the root.
 */
#include "layout.h"
#include <sys/mman.h>
#include <sys/wait.h>

#define PAGE 4096UL

static struct cr_layout before, after;
static char vmlck_before[64];
static char *lk, *onf, *pnone, *fmap, *shm;
static long rss_kb_before[5];
static uint64_t pagebuf[PAGE / 8]; /* the file's pages are made here (the pattern is of its address) */

static void die(const char *what)
{
	cr_fail("setup: %s: %s", what, strerror(errno));
	cr_finish();
}

static char *map(size_t len, int prot, int flags, int fd)
{
	char *p = mmap(NULL, len, prot, flags, fd, 0);
	if (p == MAP_FAILED)
		die("mmap");
	return p;
}

static void vmlck(char *out, size_t n)
{
	if (cr_status_field("VmLck", out, n) < 0)
		cr_fail("no VmLck in /proc/self/status");
}

/* A new mapping after restore: locked or not, populated or not, as mlockall said. */
static void check_new_mapping(const char *role, int locked, int onfault)
{
	size_t len = 16 * PAGE;
	/* Between PROT_NONE guards: a VMA of its own, whatever is around it. */
	char *g = map(len + 2 * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	char *p = mmap(g + PAGE, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
		       -1, 0);
	if (p == MAP_FAILED) {
		cr_fail("%s: mmap after restore: %s", role, strerror(errno));
		return;
	}
	char flags[256];
	cr_vmflags_of(p, flags, sizeof flags);
	if (cr_has_vmflag(p, "lo") != locked)
		cr_fail("%s: a mapping made after restore is %slocked (VmFlags:%s)", role,
			locked ? "not " : "", flags);
	if (cr_has_vmflag(p, "lf") != onfault)
		cr_fail("%s: a mapping made after restore is %slocked on fault (VmFlags:%s)", role,
			onfault ? "not " : "", flags);
	long rss = cr_smaps_kb(p, "Rss");
	long want = locked && !onfault ? (long)(len / 1024) : 0;
	if (rss != want)
		cr_fail("%s: a mapping made after restore has Rss %ld kB before any access, expected "
			"%ld kB",
			role, rss, want);
	munmap(g, len + 2 * PAGE);
}

static void take_before(void)
{
	vmlck(vmlck_before, sizeof vmlck_before);
	cr_layout_take(&before);
}

static void check_after(const char *role)
{
	char now[64], w[128];
	cr_layout_check(&before, &after);
	vmlck(now, sizeof now);
	snprintf(w, sizeof w, "%s: VmLck", role);
	CHECK_S(w, vmlck_before, now);
}

static void member(const char *role, int how)
{
	char name[64];
	if (how && mlockall(how) < 0)
		die("mlockall");
	char *late = map(8 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	cr_fill(late, 8 * PAGE, 9);
	take_before();
	snprintf(name, sizeof name, "ready-%s", role);
	cr_ready_named(name);
	cr_wait_go();
	check_after(role);
	cr_check_fill("area mapped after mlockall", late, 8 * PAGE, 9);
	cr_check_fill("locked area", lk, 16 * PAGE, 1);
	check_new_mapping(role, (how & MCL_FUTURE) != 0, (how & MCL_ONFAULT) != 0);
	_exit(cr_nfails ? 1 : 0);
}

static void setup_root(void)
{
	lk = map(16 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	cr_fill(lk, 16 * PAGE, 1);
	if (mlock(lk + 4 * PAGE, 4 * PAGE) < 0)
		die("mlock");

	onf = map(8 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	if (mlock2(onf, 8 * PAGE, MLOCK_ONFAULT) < 0)
		die("mlock2 MLOCK_ONFAULT");
	cr_fill(onf + 2 * PAGE, 2 * PAGE, 2);

	/* The kernel marks a PROT_NONE area locked, then fails to populate it (ENOMEM). */
	pnone = map(4 * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	if (mlock(pnone, 4 * PAGE) == 0 || errno != ENOMEM)
		cr_note("mlock of a PROT_NONE area: %s", strerror(errno));

	char path[2300];
	cr_path(path, sizeof path, "locked.dat");
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		die("create file");
	for (size_t p = 0; p < 4; p++) {
		cr_fill(pagebuf, PAGE, 10 + p);
		if (pwrite(fd, pagebuf, PAGE, (off_t)(p * PAGE)) != (ssize_t)PAGE)
			die("write file");
	}
	fmap = map(4 * PAGE, PROT_READ, MAP_PRIVATE, fd);
	close(fd);
	if (mlock(fmap, 4 * PAGE) < 0)
		die("mlock of a file mapping");

	shm = map(4 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1);
	memset(shm, 's', 4 * PAGE);
	if (mlock(shm, 4 * PAGE) < 0)
		die("mlock of shared memory");
}

int main(int argc, char **argv)
{
	static const struct {
		const char *role;
		int how;
	} kids[] = {
		{ "cur", MCL_CURRENT | MCL_FUTURE },
		{ "fault", MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT },
		{ "future", MCL_FUTURE },
	};
	enum { NKIDS = sizeof kids / sizeof kids[0] };
	pid_t pids[NKIDS];
	char *areas[5];

	cr_init(argc, argv);
	cr_pretouch_stack();
	setup_root();
	for (int k = 0; k < NKIDS; k++) {
		pids[k] = fork();
		if (pids[k] < 0)
			die("fork");
		if (pids[k] == 0)
			member(kids[k].role, kids[k].how);
	}
	for (int k = 0; k < NKIDS; k++) {
		char name[64];
		snprintf(name, sizeof name, "ready-%s", kids[k].role);
		cr_wait_for(name);
	}
	areas[0] = lk + 4 * PAGE;
	areas[1] = onf;
	areas[2] = pnone;
	areas[3] = fmap;
	areas[4] = shm;
	for (int i = 0; i < 5; i++)
		rss_kb_before[i] = cr_smaps_kb(areas[i], "Rss");
	take_before();
	cr_ready();
	cr_wait_go();

	check_after("root");
	static const char *names[] = { "mlock'ed pages", "MLOCK_ONFAULT area", "PROT_NONE area",
				       "file mapping", "shared memory" };
	for (int i = 0; i < 5; i++) {
		char w[96];
		/* (Locked is the PSS of locked pages: it counts their sharing with the children) */
		snprintf(w, sizeof w, "Rss kB of the %s", names[i]);
		CHECK_I(w, rss_kb_before[i], cr_smaps_kb(areas[i], "Rss"));
		if (!cr_has_vmflag(areas[i], "lo"))
			cr_fail("the %s is not locked", names[i]);
	}
	if (!cr_has_vmflag(onf, "lf"))
		cr_fail("the MLOCK_ONFAULT area is not locked on fault");
	cr_check_fill("locked area", lk, 16 * PAGE, 1);
	cr_check_zero("MLOCK_ONFAULT area, untouched pages", onf, 2 * PAGE);
	cr_check_fill("MLOCK_ONFAULT area, touched pages", onf + 2 * PAGE, 2 * PAGE, 2);
	for (size_t p = 0; p < 4; p++) {
		char w[64];
		snprintf(w, sizeof w, "locked file mapping page %zu", p);
		cr_fill(pagebuf, PAGE, 10 + p);
		if (memcmp(pagebuf, fmap + p * PAGE, PAGE) != 0)
			cr_fail("%s differs from the file", w);
	}
	for (size_t i = 0; i < 4 * PAGE; i++)
		if (shm[i] != 's') {
			cr_fail("shared memory byte %zu: %d", i, shm[i]);
			break;
		}
	check_new_mapping("root", 0, 0);

	for (int k = 0; k < NKIDS; k++) {
		int st;
		if (waitpid(pids[k], &st, 0) != pids[k])
			cr_fail("waitpid %s: %s", kids[k].role, strerror(errno));
		else if (!WIFEXITED(st) || WEXITSTATUS(st))
			cr_fail("child %s (pid %d) failed (status %#x): see result-%d.txt", kids[k].role,
				pids[k], st, pids[k]);
	}
	cr_finish();
}
