/* sysv_shm: SysV shared memory segments attached with shmat come back with their ids, keys,
 * owners, modes, sizes, content and attach addresses; parent and child see each other's
 * writes after restore, and nattch counts the same attachments.
 *   A: a key of its own, made by uid/gid 65534 (its creator), owned by uid 1 gid 2, mode
 *      0640, 3 pages + 101 bytes. The parent attaches it read-write at a1 and makes a1's
 *      second page read-only (3 VMAs), attaches it again at a2 and unmaps a2's first page (a
 *      VMA at offset 4096). The child inherits both, detaches a1, attaches it read-write at c1
 *      and read-only (SHM_RDONLY) at c2.
 *   B: IPC_PRIVATE, mode 0600, 2 pages, attached with SHM_EXEC by the parent (and the child).
 *   C: a key of its own, 5002 bytes, removed (IPC_RMID) while parent and child attach it: its
 *      key reads 0 and its mode has SHM_DEST.
 * WORKDIR/ids holds the ids of A, B and C (for the driver's error flavor).
 * Other modes, for the driver: `sysv_shm DIR take ID` makes a one-page segment with id ID and
 * exits; `sysv_shm DIR attach ID` attaches segment ID, writes DIR/ready and waits. */
#define _GNU_SOURCE
#include "common.h"
#include <sched.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#define PG 4096
#define A_SIZE (3 * PG + 101) /* not a multiple of 4: the image pads the content */
#define B_SIZE (2 * PG)
#define C_SIZE 5002
#define A_NATTCH 7 /* parent: a1 (3 VMAs) + a2 (1); child: a2 (1) + c1 + c2 */
#define NOBODY 65534

static int ida, idb, idc;
static key_t keya, keyc;
static unsigned char *a1, *a2, *b, *c;

static unsigned char pat(int seg, int i) { return (unsigned char)(i * 7 + seg * 31 + 3); }

/* A segment with a fresh key, made by uid/gid `who` (0: us). */
static int make(key_t *key, size_t size, int mode, uid_t who)
{
	for (key_t k = 0x53590000 | (getpid() & 0xffff) << 2;; k++) {
		int id;
		if (who) {
			int p[2];
			if (pipe(p) < 0) return -1;
			pid_t h = fork();
			if (h == 0) {
				id = -1;
				if (syscall(SYS_setresgid, who, who, who) == 0 && syscall(SYS_setresuid, who, who, who) == 0)
					id = shmget(k, size, mode | IPC_CREAT | IPC_EXCL);
				int e = id < 0 ? -errno : id;
				if (write(p[1], &e, sizeof e) != sizeof e) _exit(1);
				_exit(0);
			}
			close(p[1]);
			if (read(p[0], &id, sizeof id) != sizeof id) id = -EIO;
			close(p[0]);
			waitpid(h, NULL, 0);
			if (id < 0) errno = -id;
		} else {
			id = shmget(k, size, mode | IPC_CREAT | IPC_EXCL);
		}
		if (id >= 0 || errno != EEXIST) {
			*key = k;
			return id;
		}
	}
}

static struct shmid_ds stat_of(int id, const char *name)
{
	struct shmid_ds ds;
	memset(&ds, 0, sizeof ds);
	if (shmctl(id, IPC_STAT, &ds) < 0) cr_fail("IPC_STAT of %s (id %d): %s", name, id, strerror(errno));
	return ds;
}

static void check_seg(const char *name, int id, key_t key, size_t size, unsigned mode, uid_t uid, gid_t gid,
		      uid_t cuid, gid_t cgid, unsigned long nattch)
{
	struct shmid_ds ds = stat_of(id, name);
	char what[64];
#define F(field, exp, got) do { snprintf(what, sizeof what, "%s %s", name, field); CHECK_X(what, exp, got); } while (0)
	F("key", (unsigned)key, (unsigned)ds.shm_perm.__key);
	F("size", size, ds.shm_segsz);
	F("mode", mode, ds.shm_perm.mode);
	F("uid", uid, ds.shm_perm.uid);
	F("gid", gid, ds.shm_perm.gid);
	F("cuid", cuid, ds.shm_perm.cuid);
	F("cgid", cgid, ds.shm_perm.cgid);
	F("nattch", nattch, ds.shm_nattch);
#undef F
}

/* The SYSV lines of /proc/self/maps (the attachments: address, perms, offset, id). */
static void sysv_maps(char *out, size_t n)
{
	static char maps[65536];
	ssize_t len = cr_read_file("/proc/self/maps", maps, sizeof maps - 1);
	size_t o = 0;
	out[0] = 0;
	if (len < 0) return;
	maps[len] = 0;
	for (char *l = maps; *l;) {
		char *e = strchr(l, '\n');
		if (!e) break;
		*e = 0;
		char *p = strstr(l, "/SYSV");
		if (p && o + (size_t)(e - l) + 2 < n) {
			/* C was removed: its key is gone, and the name made again shows key 0 */
			unsigned long inode = 0;
			sscanf(l, "%*s %*s %*s %*s %lu", &inode);
			if ((int)inode == idc) strcpy(p, "/SYSV(C)");
			o += (size_t)snprintf(out + o, n - o, "%s\n", l);
		}
		l = e + 1;
	}
}

/* Waits (10 s at most) for the other process's write. */
static int wait_value(volatile int *p, int want)
{
	for (int i = 0; i < 1000 && *p != want; i++) cr_sleep_ms(10);
	return *p == want;
}

static int wait_byte(volatile unsigned char *p, unsigned char want)
{
	for (int i = 0; i < 1000 && *p != want; i++) cr_sleep_ms(10);
	return *p == want;
}

static void check_content(const unsigned char *p, int seg, size_t from, size_t to, const char *name)
{
	for (size_t i = from; i < to; i++)
		if ((seg || i < 200 || i >= 216) && p[i - from] != pat(seg, (int)i)) {
			cr_fail("%s byte %zu is %d, expected %d", name, i, p[i - from], pat(seg, (int)i));
			return;
		}
}

static int child_main(void)
{
	/* a1 goes; A comes at two new places, one read-only */
	if (shmdt(a1) < 0) cr_fail("child shmdt a1: %s", strerror(errno));
	unsigned char *c1 = shmat(ida, NULL, 0);
	unsigned char *c2 = shmat(ida, NULL, SHM_RDONLY);
	if (c1 == (void *)-1 || c2 == (void *)-1) {
		cr_fail("child shmat: %s", strerror(errno));
		_exit(1);
	}
	char maps0[4096], maps1[4096];
	sysv_maps(maps0, sizeof maps0);
	cr_ready_named("ready-child");
	cr_wait_go();
	sysv_maps(maps1, sizeof maps1);
	if (strcmp(maps0, maps1)) cr_fail("child SysV attachments changed:\n%s---\n%s", maps0, maps1);
	check_content(c2, 0, 0, A_SIZE, "child A");
	if (mprotect(c2, PG, PROT_READ | PROT_WRITE) == 0) cr_fail("c2 was attached read-only, yet it can be made writable");
	/* each side counts in its own word; the other one must see it */
	for (int n = 0; n < 1000; n++) __atomic_fetch_add((int *)(c1 + 200), 1, __ATOMIC_SEQ_CST);
	c[10] = 'X';
	if (!wait_value((volatile int *)(c2 + 204), 1000))
		cr_fail("child: the parent's counter in A is %d (not shared?)", *(volatile int *)(c2 + 204));
	return cr_verdict("result-child");
}

static int take(int id)
{
	char s[32];
	int n = snprintf(s, sizeof s, "%d", id);
	int fd = open("/proc/sys/kernel/shm_next_id", O_WRONLY);
	if (fd < 0 || write(fd, s, (size_t)n) != n) return 1;
	close(fd);
	int got = shmget(IPC_PRIVATE, PG, 0600 | IPC_CREAT);
	return got == id ? 0 : 1;
}

int main(int argc, char **argv)
{
	cr_init(argc, argv);
	if (argc == 4 && !strcmp(argv[2], "take")) return take(atoi(argv[3]));
	if (argc == 4 && !strcmp(argv[2], "attach")) {
		if (shmat(atoi(argv[3]), NULL, SHM_RDONLY) == (void *)-1) return 1;
		cr_ready();
		for (;;) pause();
	}

#ifdef CR_IPC_NS
	/* sysv_shm_ns: the same segments in an IPC namespace of the tree's own */
	if (unshare(CLONE_NEWIPC) < 0) {
		cr_fail("setup: unshare(CLONE_NEWIPC): %s", strerror(errno));
		cr_finish();
	}
#endif
	ida = make(&keya, A_SIZE, 0640, NOBODY);
	idb = shmget(IPC_PRIVATE, B_SIZE, 0600 | IPC_CREAT);
	idc = make(&keyc, C_SIZE, 0660, 0);
	if (ida < 0 || idb < 0 || idc < 0) {
		cr_fail("setup: shmget: %s", strerror(errno));
		cr_finish();
	}
	struct shmid_ds ds = stat_of(ida, "A");
	ds.shm_perm.uid = 1;
	ds.shm_perm.gid = 2;
	if (shmctl(ida, IPC_SET, &ds) < 0) cr_fail("setup: IPC_SET: %s", strerror(errno));
	a1 = shmat(ida, NULL, 0);
	a2 = shmat(ida, NULL, 0);
	b = shmat(idb, NULL, SHM_EXEC);
	c = shmat(idc, NULL, 0);
	if (a1 == (void *)-1 || a2 == (void *)-1 || b == (void *)-1 || c == (void *)-1) {
		cr_fail("setup: shmat: %s", strerror(errno));
		cr_finish();
	}
	for (int i = 0; i < A_SIZE; i++) a1[i] = pat(0, i);
	memset(a1 + 200, 0, 16);
	for (int i = 0; i < B_SIZE; i++) b[i] = pat(1, i);
	for (int i = 0; i < C_SIZE; i++) c[i] = pat(2, i);
	if (mprotect(a1 + PG, PG, PROT_READ) < 0 || munmap(a2, PG) < 0) cr_fail("setup: %s", strerror(errno));
	char ids[64];
	int n = snprintf(ids, sizeof ids, "%d %d %d\n", ida, idb, idc);
	cr_write_file("ids", ids, (size_t)n);

	pid_t kid = fork();
	if (kid == 0) _exit(child_main());
	if (shmctl(idc, IPC_RMID, NULL) < 0) cr_fail("setup: IPC_RMID: %s", strerror(errno));
	cr_wait_for("ready-child");
	char maps0[4096], maps1[4096];
	sysv_maps(maps0, sizeof maps0);
	cr_ready();
	cr_wait_go();

	sysv_maps(maps1, sizeof maps1);
	if (strcmp(maps0, maps1)) cr_fail("SysV attachments changed:\n%s---\n%s", maps0, maps1);
	check_seg("A", ida, keya, A_SIZE, 0640, 1, 2, NOBODY, NOBODY, A_NATTCH);
	CHECK_I("shmget of A's key", ida, shmget(keya, 0, 0));
	check_seg("B", idb, IPC_PRIVATE, B_SIZE, 0600, 0, 0, 0, 0, 2);
	check_seg("C", idc, IPC_PRIVATE, C_SIZE, 0660 | SHM_DEST, 0, 0, 0, 0, 2);
	check_content(a1, 0, 0, A_SIZE, "A at a1");
	check_content(a2 + PG, 0, PG, A_SIZE, "A at a2");
	check_content(b, 1, 0, B_SIZE, "B");
	check_content(c, 2, 0, 10, "C");
	check_content(c + 11, 2, 11, C_SIZE, "C");
	/* B is executable: a ret instruction in it runs */
	unsigned char save = b[B_SIZE - 1];
	b[B_SIZE - 1] = 0xc3;
	((void (*)(void))(b + B_SIZE - 1))();
	b[B_SIZE - 1] = save;

	for (int k = 0; k < 1000; k++) __atomic_fetch_add((int *)(a1 + 204), 1, __ATOMIC_SEQ_CST);
	if (!wait_value((volatile int *)(a1 + 200), 1000))
		cr_fail("the child's counter in A is %d (not shared?)", *(volatile int *)(a1 + 200));
	if (!wait_byte(c + 10, 'X'))
		cr_fail("C byte 10 is %d: the child's write is not seen", c[10]);
	int st;
	if (waitpid(kid, &st, 0) != kid || !WIFEXITED(st) || WEXITSTATUS(st))
		cr_fail("child status %x (see result-child)", st);
	/* a1 was attached read-write: its read-only page can be made writable again */
	if (mprotect(a1 + PG, PG, PROT_READ | PROT_WRITE) < 0) cr_fail("mprotect of a1 to read-write: %s", strerror(errno));
	if (shmdt(a1) < 0 || shmdt(a2) < 0 || shmdt(b) < 0 || shmdt(c) < 0) cr_fail("shmdt: %s", strerror(errno));
	shmctl(ida, IPC_RMID, NULL);
	shmctl(idb, IPC_RMID, NULL);
	cr_finish();
	return 0;
}
