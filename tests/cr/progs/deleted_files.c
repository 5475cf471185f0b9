/* deleted_files: files held after they were deleted or replaced on disk.
 * - "a": data, a hole, more data; open O_RDWR at offset 5000 and dup'ed (one open file),
 *   then unlinked;
 * - "b": mapped MAP_SHARED and changed through the mapping, then unlinked and its fd closed,
 *   so only the mapping holds it;
 * - "c": open O_RDONLY, then replaced on disk (a new file renamed over it);
 * - the program itself runs from a copy of its binary that it deleted (an upgraded binary).
 * After restore: content byte for byte (the hole reads zero), size, mode, offsets, the shared
 * offset, access modes, nlink 0, "(deleted)" links with the old paths, the mapping's content
 * and that it is still shared with the file; "c" on disk still holds the new content and no
 * temporary file is left in the directory. As its old name is taken, "c" links to
 * "c.cryo.<id>.ghost (deleted)" (CRIU: "c.cr.<id>.ghost").
 */
#include "common.h"
#include <dirent.h>
#include <sys/mman.h>

#define HOLE_AT 8192
#define TAIL_AT (512 << 10) /* past the hole */

static char pa[2300], pb[2300], pc[2300], self[2300];
static char buf[8192];

static void fill(char *p, size_t n, int seed) {
	for (size_t i = 0; i < n; i++) p[i] = (char)(i * 7 + seed);
}

/* A file whose name is taken again by another file comes back under a name next to it. */
static void check_link(int fd, const char *path, int taken) {
	char want[2400], got[2400] = {0}, proc[64];
	snprintf(want, sizeof want, taken ? "%s.cryo." : "%s (deleted)", path);
	snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
	readlink(proc, got, sizeof got - 1);
	size_t gl = strlen(got);
	char exact[2400];
	snprintf(exact, sizeof exact, "%s (deleted)", path);
	int alt = taken && !strncmp(want, got, strlen(want)) && gl >= 16 &&
		  !strcmp(got + gl - 16, ".ghost (deleted)");
	if (strcmp(exact, got) && !alt) /* the original (leave-running) keeps the exact name */
		cr_fail("fd %d links to '%s', expected '%s'", fd, got, want);
	struct stat st;
	if (fstat(fd, &st) || st.st_nlink != 0) cr_fail("fd %d: nlink %ld", fd, (long)st.st_nlink);
}

static int entries_in_dir(void) {
	DIR *d = opendir(cr_dir);
	int n = 0;
	struct dirent *e;
	while (d && (e = readdir(d)))
		if (strstr(e->d_name, "ghost") || !strcmp(e->d_name, "a") || !strcmp(e->d_name, "b"))
			n++;
	if (d) closedir(d);
	return n;
}

int main(int argc, char **argv) {
	cr_init(argc, argv);
	cr_path(self, sizeof self, "deleted_files.copy");
	if (argc == 2) {
		/* Run from a copy of ourselves, which is then deleted. */
		int in = open("/proc/self/exe", O_RDONLY), out = open(self, O_WRONLY | O_CREAT | O_TRUNC, 0750);
		ssize_t n;
		while ((n = read(in, buf, sizeof buf)) > 0) cr_write_all(out, buf, (size_t)n);
		close(in);
		close(out);
		char *args[] = {self, argv[1], "copied", NULL};
		execv(self, args);
		_exit(4);
	}
	if (unlink(self)) cr_fail("setup: unlink the binary copy");

	cr_path(pa, sizeof pa, "a");
	cr_path(pb, sizeof pb, "b");
	cr_path(pc, sizeof pc, "c");
	int a = open(pa, O_RDWR | O_CREAT | O_TRUNC, 0640);
	fill(buf, sizeof buf, 1);
	pwrite(a, buf, HOLE_AT, 0);
	pwrite(a, buf, 100, TAIL_AT);
	fchmod(a, 0604);
	lseek(a, 5000, SEEK_SET);
	int a2 = dup(a);
	unlink(pa);

	int b = open(pb, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ftruncate(b, 3 * 4096);
	char *map = mmap(NULL, 3 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED, b, 0);
	if (map == MAP_FAILED) cr_fail("setup: mmap");
	fill(map, 3 * 4096, 2);
	close(b);
	unlink(pb);

	int c = open(pc, O_RDWR | O_CREAT | O_TRUNC, 0644);
	write(c, "old content", 11);
	close(c);
	c = open(pc, O_RDONLY);
	lseek(c, 4, SEEK_SET);
	char pnew[2300];
	cr_path(pnew, sizeof pnew, "c.new");
	int n = open(pnew, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	write(n, "NEW", 3);
	close(n);
	rename(pnew, pc);

	cr_ready();
	cr_wait_go();

	/* a */
	check_link(a, pa, 0);
	struct stat st;
	fstat(a, &st);
	if (st.st_size != TAIL_AT + 100) cr_fail("a: size %ld", (long)st.st_size);
	if ((st.st_mode & 07777) != 0604) cr_fail("a: mode %o", st.st_mode & 07777);
	if (lseek(a, 0, SEEK_CUR) != 5000) cr_fail("a: offset %ld", (long)lseek(a, 0, SEEK_CUR));
	if ((fcntl(a, F_GETFL) & O_ACCMODE) != O_RDWR) cr_fail("a: access mode");
	char got[8192], want[8192];
	fill(want, sizeof want, 1);
	if (pread(a, got, HOLE_AT, 0) != HOLE_AT || memcmp(got, want, HOLE_AT)) cr_fail("a: head content");
	if (pread(a, got, 100, TAIL_AT) != 100 || memcmp(got, want, 100)) cr_fail("a: tail content");
	static const char zero[4096];
	if (pread(a, got, 4096, HOLE_AT + 4096) != 4096 || memcmp(got, zero, 4096)) cr_fail("a: the hole is not zero");
	lseek(a2, 7, SEEK_SET);
	if (lseek(a, 0, SEEK_CUR) != 7) cr_fail("a: dup no longer shares the offset");
	if (write(a, "xy", 2) != 2 || pread(a2, got, 2, 7) != 2 || memcmp(got, "xy", 2)) cr_fail("a: write/read");

	/* b: only mapped */
	char want3[3 * 4096];
	fill(want3, sizeof want3, 2);
	if (memcmp(map, want3, sizeof want3)) cr_fail("b: mapping content");
	char line[4096], mark[64];
	snprintf(mark, sizeof mark, "%lx-", (unsigned long)map);
	FILE *f = fopen("/proc/self/maps", "r");
	int found = 0;
	while (f && fgets(line, sizeof line, f))
		if (!strncmp(line, mark, strlen(mark))) {
			found = 1;
			char w2[2400];
			snprintf(w2, sizeof w2, "%s (deleted)\n", pb);
			if (!strstr(line, w2) || !strstr(line, "rw-s")) cr_fail("b: maps line %s", line);
		}
	if (f) fclose(f);
	if (!found) cr_fail("b: mapping gone");
	map[10] = 'Q';

	/* c: replaced on disk */
	check_link(c, pc, 1);
	if (lseek(c, 0, SEEK_CUR) != 4) cr_fail("c: offset");
	memset(got, 0, 16);
	if (read(c, got, 16) != 7 || memcmp(got, "content", 7)) cr_fail("c: old content '%.16s'", got);
	int cn = open(pc, O_RDONLY);
	memset(got, 0, 16);
	if (cn < 0 || read(cn, got, 16) != 3 || memcmp(got, "NEW", 3)) cr_fail("c: the path no longer holds the new file '%.16s'", got);

	/* the binary */
	char exe[2400] = {0}, wexe[2400];
	readlink("/proc/self/exe", exe, sizeof exe - 1);
	snprintf(wexe, sizeof wexe, "%s (deleted)", self);
	if (strcmp(exe, wexe)) cr_fail("exe is '%s', expected '%s'", exe, wexe);
	if (access(self, F_OK) == 0) cr_fail("the binary copy exists again");

	if (entries_in_dir()) cr_fail("a ghost file was left in the directory");
	cr_finish();
	return 0;
}
