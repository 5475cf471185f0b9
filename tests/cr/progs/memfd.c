/* memfd: a memfd with content (and a hole), a name and seals, open twice (two open files
 * with their own offsets and modes), mapped shared and privately (with a private change);
 * a second memfd held only by a shared mapping. After restore: same name, size, content,
 * seals and offsets, both fds still reach the same memory (a write through one is read by
 * the other), the shared mapping still shows writes through the fd (and back), the private
 * one keeps its own copy, and the mapping-only memfd keeps its content, name and sharing
 * with a child process. Both memfds keep their permissions (0640, 0604), not memfd's 0777.
 */
#include "common.h"
#include <sys/mman.h>
#include <sys/wait.h>

#define SIZE (3 * 65536 + 100)

int main(int argc, char **argv) {
	cr_init(argc, argv);
	int a = memfd_create("cryo-test", MFD_ALLOW_SEALING);
	if (a < 0 || ftruncate(a, SIZE)) cr_fail("setup: memfd");
	char buf[4096];
	for (int i = 0; i < (int)sizeof buf; i++) buf[i] = (char)(i * 13 + 1);
	pwrite(a, buf, sizeof buf, 0);
	pwrite(a, buf, 100, SIZE - 100);  /* the middle stays a hole */
	if (fchmod(a, 0640)) cr_fail("setup: fchmod");
	fcntl(a, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW);
	char path[64];
	snprintf(path, sizeof path, "/proc/self/fd/%d", a);
	int b = open(path, O_RDONLY);
	lseek(a, 123, SEEK_SET);
	lseek(b, 5, SEEK_SET);
	char link0[256] = {0};
	readlink(path, link0, sizeof link0 - 1);
	char *shared = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, a, 0);
	char *priv = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE, a, 0);
	if (shared == MAP_FAILED || priv == MAP_FAILED) cr_fail("setup: mmap");
	shared[5000] = 'S';  /* through the mapping into the memfd (in the hole) */
	priv[2] = 'P';    /* private copy only */
	int only = memfd_create("mapped-only", 0);
	ftruncate(only, 4 * 4096);
	char *om = mmap(NULL, 4 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED, only, 0);
	if (om == MAP_FAILED) cr_fail("setup: mmap only");
	if (fchmod(only, 0604)) cr_fail("setup: fchmod only");
	close(only);
	memset(om + 4096, 'o', 4096);
	cr_ready();
	cr_wait_go();
	if (memcmp(shared, buf, 4096) || shared[5000] != 'S') cr_fail("shared mapping content");
	if (priv[2] != 'P' || priv[5000] != 'S' || priv[0] != buf[0]) cr_fail("private mapping content");
	char c1;
	if (pread(a, &c1, 1, 5000) != 1 || c1 != 'S') cr_fail("write through the shared mapping not in the memfd");
	if (pread(a, &c1, 1, 2) != 1 || c1 != buf[2]) cr_fail("the private change reached the memfd");
	pwrite(a, "W", 1, 6000);
	if (shared[6000] != 'W') cr_fail("shared mapping no longer backed by the memfd");
	shared[6001] = 'M';
	if (pread(b, &c1, 1, 6001) != 1 || c1 != 'M') cr_fail("shared mapping write not seen through fd b");
	for (int i = 0; i < 4 * 4096; i++)
		if (om[i] != (i >= 4096 && i < 8192 ? 'o' : 0)) { cr_fail("mapping-only memfd content at %d", i); break; }
	FILE *mf = fopen("/proc/self/maps", "r");
	char line[512], mark[32];
	snprintf(mark, sizeof mark, "%lx-", (unsigned long)om);
	int seen = 0;
	while (mf && fgets(line, sizeof line, mf))
		if (!strncmp(line, mark, strlen(mark))) seen = strstr(line, "/memfd:mapped-only (deleted)") && strstr(line, "rw-s");
	if (mf) fclose(mf);
	if (!seen) cr_fail("mapping-only memfd: maps line");
	pid_t kid = fork();
	if (kid == 0) { om[5] = 'k'; _exit(0); }
	waitpid(kid, NULL, 0);
	if (om[5] != 'k') cr_fail("mapping-only memfd: not shared with a child");
	char link1[256] = {0};
	readlink(path, link1, sizeof link1 - 1);
	if (strcmp(link0, link1)) cr_fail("name: %s -> %s", link0, link1);
	struct stat st;
	fstat(a, &st);
	if (st.st_size != SIZE) cr_fail("size %ld", (long)st.st_size);
	if ((st.st_mode & 07777) != 0640) cr_fail("memfd mode %o, want 640", st.st_mode & 07777);
	char omlink[64];
	snprintf(omlink, sizeof omlink, "/proc/self/map_files/%lx-%lx", (unsigned long)om, (unsigned long)om + 4 * 4096);
	if (stat(omlink, &st) || (st.st_mode & 07777) != 0604) cr_fail("mapping-only memfd mode %o, want 604", st.st_mode & 07777);
	if (fcntl(a, F_GET_SEALS) != (F_SEAL_SHRINK | F_SEAL_GROW)) cr_fail("seals %#x", fcntl(a, F_GET_SEALS));
	if (lseek(a, 0, SEEK_CUR) != 123 || lseek(b, 0, SEEK_CUR) != 5) cr_fail("offsets %ld %ld", (long)lseek(a, 0, SEEK_CUR), (long)lseek(b, 0, SEEK_CUR));
	if ((fcntl(b, F_GETFL) & O_ACCMODE) != O_RDONLY || (fcntl(a, F_GETFL) & O_ACCMODE) != O_RDWR) cr_fail("access modes");
	char got[4096];
	if (pread(b, got, sizeof got, 0) != (ssize_t)sizeof got || memcmp(got, buf, sizeof got)) cr_fail("content at 0");
	if (pread(b, got, 100, SIZE - 100) != 100 || memcmp(got, buf, 100)) cr_fail("content at the end");
	char zero[100] = {0};
	if (pread(b, got, 100, 70000) != 100 || memcmp(got, zero, 100)) cr_fail("the hole is not zero");
	if (pwrite(a, "new", 3, 9000) != 3 || pread(b, got, 3, 9000) != 3 || memcmp(got, "new", 3)) cr_fail("fds no longer share the memfd");
	if (ftruncate(a, 10) == 0) cr_fail("F_SEAL_SHRINK not enforced");
	cr_finish();
	return 0;
}
