/* shmem: MAP_SHARED|MAP_ANONYMOUS memory shared by a parent and two children stays shared
 * (their writes after restore meet), with its content and holes. An object whose tail was
 * unmapped keeps it: mremap brings it back with its content. */
#define _GNU_SOURCE
#include "common.h"
#include <sys/mman.h>
#include <sys/wait.h>

#define SZ (8 << 20)
int main(int argc, char **argv) {
	cr_init(argc, argv);
	unsigned char *a = mmap(0, SZ, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	unsigned char *b = mmap(0, 1 << 20, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	for (int i = 0; i < SZ; i += 4096 * 3) a[i] = (unsigned char)(i / 4096 + 1);
	munmap(a, 4096 * 2);  /* the parent maps the object from offset 8K on */
	b[100] = 42;
	unsigned char *d = mmap(0, 4 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	for (int p = 0; p < 4; p++) memset(d + p * 4096, 'a' + p, 4096);
	munmap(d + 2 * 4096, 2 * 4096);  /* the tail stays in the object */
	pid_t kids[2];
	for (int k = 0; k < 2; k++) {
		kids[k] = fork();
		if (kids[k] == 0) {
			cr_wait_go();
			/* each child bumps its own counter in shared memory; the parent must see them */
			for (int n = 0; n < 1000; n++) __atomic_fetch_add((int *)(b + 512 + 4 * k), 1, __ATOMIC_SEQ_CST);
			_exit(b[100] == 42 && a[4096 * 3] == 4 ? 0 : 1);
		}
	}
	char maps0[8192]; cr_read_file("/proc/self/maps", maps0, sizeof maps0);
	cr_ready();
	cr_wait_go();
	for (int i = 4096 * 3; i < SZ; i += 4096 * 3) if (a[i] != (unsigned char)(i / 4096 + 1)) { cr_fail("a[%d]=%d", i, a[i]); break; }
	for (int i = 4096 * 3; i < SZ; i += 4096) if (i % (4096 * 3) && a[i]) { cr_fail("hole a[%d]=%d", i, a[i]); break; }
	int st;
	for (int k = 0; k < 2; k++) { waitpid(kids[k], &st, 0); if (!WIFEXITED(st) || WEXITSTATUS(st)) cr_fail("child %d status %x", k, st); }
	int *c = (int *)(b + 512);
	if (c[0] != 1000 || c[1] != 1000) cr_fail("shared counters %d %d (not shared after restore?)", c[0], c[1]);
	/* same mappings; a shared memory object is a new one (new inode), so compare up to the inode */
	char maps1[8192]; cr_read_file("/proc/self/maps", maps1, sizeof maps1);
	char *s0 = maps0, *s1 = maps1;
	for (;;) {
		char *e0 = strchr(s0, '\n'), *e1 = strchr(s1, '\n');
		if (!e0 || !e1) { if (e0 != e1) cr_fail("maps: different number of lines"); break; }
		if (strncmp(s0, s1, 40) || strcmp(strrchr(s0, ' '), strrchr(s1, ' '))) { *e0 = *e1 = 0; cr_fail("maps: %s vs %s", s0, s1); break; }
		s0 = e0 + 1; s1 = e1 + 1;
	}
	unsigned char *d2 = mremap(d, 2 * 4096, 4 * 4096, MREMAP_MAYMOVE);
	if (d2 == MAP_FAILED) cr_fail("mremap of the shrunk object: %s", strerror(errno));
	else
		for (int p = 0; p < 4; p++)
			if (d2[p * 4096] != 'a' + p || d2[p * 4096 + 4095] != 'a' + p) { cr_fail("object tail page %d: %c", p, d2[p * 4096]); break; }
	cr_finish();
	return 0;
}
