/* link_remap (dumped with --link-remap): fd 20 is open on a file whose name was removed while
 * a second hard link keeps it. The dump keeps it by a new link in its directory instead of a
 * copy; restore opens it there and removes that link. After restore: fd 20 is on the same
 * inode as the remaining name (not a copy), a write through it shows there, offset and
 * flags are kept, the file has one link again and no link_remap.* name is left behind.
 */
#include "common.h"
#include <dirent.h>

int main(int argc, char **argv)
{
	cr_init(argc, argv);
	char a[2300], b[2300];
	cr_path(a, sizeof a, "orig");
	cr_path(b, sizeof b, "other-name");
	int fd = open(a, O_RDWR | O_CREAT, 0640);
	if (fd < 0 || write(fd, "0123456789", 10) != 10 || link(a, b) || dup2(fd, 20) != 20) cr_fail("setup: %s", strerror(errno));
	close(fd);
	lseek(20, 4, SEEK_SET);
	if (unlink(a)) cr_fail("setup: unlink");
	cr_ready();
	cr_wait_go();

	struct stat st, other;
	if (fstat(20, &st) || stat(b, &other)) cr_fail("stat: %s", strerror(errno));
	else {
		if (st.st_ino != other.st_ino || st.st_dev != other.st_dev) cr_fail("fd 20 is not on the file of the other name");
		CHECK_U("links", 1, st.st_nlink);
	}
	CHECK_I("offset", 4, lseek(20, 0, SEEK_CUR));
	CHECK_X("access mode", O_RDWR, fcntl(20, F_GETFL) & O_ACCMODE);
	if (pwrite(20, "X", 1, 0) != 1) cr_fail("write: %s", strerror(errno));
	int o = open(b, O_RDONLY);
	char c = 0;
	if (o < 0 || pread(o, &c, 1, 0) != 1 || c != 'X') cr_fail("a write through fd 20 is not seen by the other name");
	pwrite(20, "0", 1, 0);
	DIR *d = opendir(cr_dir);
	struct dirent *e;
	while (d && (e = readdir(d)))
		if (!strncmp(e->d_name, "link_remap.", 11)) cr_fail("%s was left behind", e->d_name);
	if (d) closedir(d);
	struct stat gone;
	if (stat(a, &gone) == 0) cr_fail("the removed name is back");
	cr_finish();
	return 0;
}
