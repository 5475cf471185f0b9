/* memfd: a memfd with content (and a hole), a name and seals, open twice (two open files
 * with their own offsets and modes). After restore: same name, size, content, seals and
 * offsets, and both fds still reach the same memory (a write through one is read by the
 * other).
 */
#include "common.h"
#include <sys/mman.h>

#define SIZE (3 * 65536 + 100)

int main(int argc, char **argv) {
	cr_init(argc, argv);
	int a = memfd_create("cryo-test", MFD_ALLOW_SEALING);
	if (a < 0 || ftruncate(a, SIZE)) cr_fail("setup: memfd");
	char buf[4096];
	for (int i = 0; i < (int)sizeof buf; i++) buf[i] = (char)(i * 13 + 1);
	pwrite(a, buf, sizeof buf, 0);
	pwrite(a, buf, 100, SIZE - 100);  /* the middle stays a hole */
	fcntl(a, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW);
	char path[64];
	snprintf(path, sizeof path, "/proc/self/fd/%d", a);
	int b = open(path, O_RDONLY);
	lseek(a, 123, SEEK_SET);
	lseek(b, 5, SEEK_SET);
	char link0[256] = {0};
	readlink(path, link0, sizeof link0 - 1);
	cr_ready();
	cr_wait_go();
	char link1[256] = {0};
	readlink(path, link1, sizeof link1 - 1);
	if (strcmp(link0, link1)) cr_fail("name: %s -> %s", link0, link1);
	struct stat st;
	fstat(a, &st);
	if (st.st_size != SIZE) cr_fail("size %ld", (long)st.st_size);
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
