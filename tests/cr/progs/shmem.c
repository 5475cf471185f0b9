/* shmem: MAP_SHARED|MAP_ANONYMOUS memory shared by a parent and two children stays shared
 * (their writes after restore meet), with its content and holes. An object whose tail was
 * unmapped keeps it: mremap brings it back with its content. A MAP_SHARED mapping of /dev/zero
 * is shared memory too (the children count in it); a MAP_PRIVATE one keeps its own pages. */
#define _GNU_SOURCE
#include "layout.h"
#include <sys/mman.h>
#include <sys/wait.h>

#define SZ (8 << 20)
int main(int argc, char **argv) {
	cr_init(argc, argv);
	cr_pretouch_stack();
	unsigned char *a = mmap(0, SZ, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	unsigned char *b = mmap(0, 1 << 20, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	for (int i = 0; i < SZ; i += 4096 * 3) a[i] = (unsigned char)(i / 4096 + 1);
	munmap(a, 4096 * 2);  /* the parent maps the object from offset 8K on */
	b[100] = 42;
	unsigned char *d = mmap(0, 4 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	for (int p = 0; p < 4; p++) memset(d + p * 4096, 'a' + p, 4096);
	munmap(d + 2 * 4096, 2 * 4096);  /* the tail stays in the object */
	int zfd = open("/dev/zero", O_RDWR | O_CLOEXEC);
	unsigned char *z = mmap(0, 3 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED, zfd, 0);
	unsigned char *zp = mmap(0, 2 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE, zfd, 0);
	if (zfd < 0 || z == MAP_FAILED || zp == MAP_FAILED) cr_fail("setup: /dev/zero: %s", strerror(errno));
	close(zfd);
	memset(z + 4096, 'z', 4096);
	memset(zp, 'p', 4096);
	pid_t kids[2];
	for (int k = 0; k < 2; k++) {
		kids[k] = fork();
		if (kids[k] == 0) {
			cr_wait_go();
			/* each child bumps its own counter in shared memory; the parent must see them */
			for (int n = 0; n < 1000; n++) {
				__atomic_fetch_add((int *)(b + 512 + 4 * k), 1, __ATOMIC_SEQ_CST);
				__atomic_fetch_add((int *)(z + 2 * 4096) + k, 1, __ATOMIC_SEQ_CST);
			}
			zp[4096] = 'c';  /* the child's own page */
			_exit(b[100] == 42 && a[4096 * 3] == 4 && z[4096] == 'z' && zp[0] == 'p' ? 0 : 1);
		}
	}
	static struct cr_layout before, after;
	cr_layout_take(&before);
	cr_ready();
	cr_wait_go();
	for (int i = 4096 * 3; i < SZ; i += 4096 * 3) if (a[i] != (unsigned char)(i / 4096 + 1)) { cr_fail("a[%d]=%d", i, a[i]); break; }
	for (int i = 4096 * 3; i < SZ; i += 4096) if (i % (4096 * 3) && a[i]) { cr_fail("hole a[%d]=%d", i, a[i]); break; }
	int st;
	for (int k = 0; k < 2; k++) { waitpid(kids[k], &st, 0); if (!WIFEXITED(st) || WEXITSTATUS(st)) cr_fail("child %d status %x", k, st); }
	int *zc = (int *)(z + 2 * 4096);
	if (zc[0] != 1000 || zc[1] != 1000) cr_fail("counters in /dev/zero shared memory %d %d (not shared after restore?)", zc[0], zc[1]);
	for (int i = 0; i < 4096; i++)
		if (z[i] || z[4096 + i] != 'z' || zp[i] != 'p' || zp[4096 + i]) { cr_fail("/dev/zero mappings: byte %d: %d %d %d %d", i, z[i], z[4096 + i], zp[i], zp[4096 + i]); break; }
	int *c = (int *)(b + 512);
	if (c[0] != 1000 || c[1] != 1000) cr_fail("shared counters %d %d (not shared after restore?)", c[0], c[1]);
	/* same mappings and VmFlags; a shared memory object is a new one (new inode) */
	cr_layout_check(&before, &after);
	unsigned char *d2 = mremap(d, 2 * 4096, 4 * 4096, MREMAP_MAYMOVE);
	if (d2 == MAP_FAILED) cr_fail("mremap of the shrunk object: %s", strerror(errno));
	else
		for (int p = 0; p < 4; p++)
			if (d2[p * 4096] != 'a' + p || d2[p * 4096 + 4095] != 'a' + p) { cr_fail("object tail page %d: %c", p, d2[p * 4096]); break; }
	cr_finish();
	return 0;
}
