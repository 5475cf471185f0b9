/* mntns: a tree in a mount namespace of its own, as a container runtime makes it. The root
 * unshares its mount namespace, makes WORKDIR/rootfs a bind mount of itself and puts in it: /usr
 * and the directory of this program bound read-only from the host, WORKDIR bound at its own
 * path, a tmpfs /data holding files (a text file, a 64 KiB file in a subdirectory, a symlink),
 * /data-ro (a read-only bind of /data/sub), a read-only tmpfs /masked holding a file, proc, sysfs, devpts and mqueue mounted anew, and a
 * shared tmpfs /shared with a peer /peer and a slave /slave (with CR_MNTNS_RAMFS set, a ramfs
 * /extra too: errors/mount-ns); then pivot_root into it. Its cwd
 * is /data, a child's /data/sub; each holds an open file on the tmpfs at an offset.
 * After restore both check: their mountinfo is what it was (mount points, roots, sources,
 * fstypes, per-mount and superblock options, peer groups and masters up to renumbering), the
 * files' contents, their fds' offsets, their cwd, that read-only mounts refuse writes, that
 * proc shows them, and that propagation works: a mount under /shared appears under /peer and
 * /slave, one under /slave does not appear under /shared. */
#define _GNU_SOURCE
#include "common.h"
#include <libgen.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/wait.h>

static char before[16384];
static int up[2];

static void must(int ok, const char *what)
{
	if (!ok) {
		char b[512];
		snprintf(b, sizeof b, "setup: %s: %s\n", what, strerror(errno));
		cr_write_file("result", b, strlen(b));
		_exit(1);
	}
}

static void mkdirs(const char *path)
{
	char p[2300];
	snprintf(p, sizeof p, "%s", path);
	for (char *s = p + 1; *s; s++)
		if (*s == '/') {
			*s = 0;
			mkdir(p, 0755);
			*s = '/';
		}
	mkdir(p, 0755);
}

static void bind(const char *src, const char *dst, int ro)
{
	mkdirs(dst);
	must(mount(src, dst, NULL, MS_BIND, NULL) == 0, dst);
	if (ro)
		must(mount(NULL, dst, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) == 0, "remount ro");
}

static void put(const char *path, const char *data, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	must(fd >= 0 && write(fd, data, len) == (ssize_t)len, path);
	fchmod(fd, mode);
	close(fd);
}

/* mountinfo without mount ids and with peer groups numbered by first appearance. */
static void mounts_now(char *out, size_t n)
{
	char raw[16384];
	ssize_t len = cr_read_file("/proc/self/mountinfo", raw, sizeof raw - 1);
	raw[len > 0 ? len : 0] = 0;
	unsigned groups[64];
	int ngroups = 0;
	size_t o = 0;
	out[0] = 0;
	for (char *save = NULL, *line = strtok_r(raw, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *w[32] = { 0 };
		int nw = 0;
		for (char *s2 = NULL, *t = strtok_r(line, " ", &s2); t && nw < 32; t = strtok_r(NULL, " ", &s2))
			w[nw++] = t;
		if (nw < 10)
			continue;
		/* The root's source directory is the restore's choice (--root). */
		o += (size_t)snprintf(out + o, n - o, "%s %s %s", strcmp(w[4], "/") ? w[3] : "-", w[4], w[5]);
		int i = 6;
		for (; i < nw && strcmp(w[i], "-"); i++) {
			unsigned g;
			char kind[16];
			if (sscanf(w[i], "%15[a-z]:%u", kind, &g) != 2)
				continue;
			int k = 0;
			while (k < ngroups && groups[k] != g)
				k++;
			if (k == ngroups && ngroups < 64)
				groups[ngroups++] = g;
			o += (size_t)snprintf(out + o, n - o, " %s:G%d", kind, k);
		}
		for (i++; i < nw; i++)
			o += (size_t)snprintf(out + o, n - o, " %s", w[i]);
		o += (size_t)snprintf(out + o, n - o, "\n");
	}
}

static int mounted_at(const char *dir)
{
	struct stat a, b;
	char up_[256];
	snprintf(up_, sizeof up_, "%s/..", dir);
	return stat(dir, &a) == 0 && stat(up_, &b) == 0 && a.st_dev != b.st_dev;
}

static void check_common(const char *cwd, int fd, const char *content, off_t pos)
{
	char now[16384];
	mounts_now(now, sizeof now);
	if (strcmp(now, before)) {
		cr_fail("mountinfo differs after restore");
		cr_note("before:\n%s\nafter:\n%s", before, now);
	}
	char buf[256];
	CHECK_S("cwd", cwd, getcwd(buf, sizeof buf) ? buf : "?");
	CHECK_I("fd offset", pos, lseek(fd, 0, SEEK_CUR));
	char got[128] = "";
	ssize_t r = pread(fd, got, strlen(content), 0);
	got[r > 0 ? r : 0] = 0;
	CHECK_S("open file content", content, got);
	int w = open("/usr/cryo-mntns-probe", O_WRONLY | O_CREAT, 0600);
	CHECK_I("write on read-only /usr fails with EROFS", EROFS, w < 0 ? errno : 0);
	w = open("/data-ro/probe", O_WRONLY | O_CREAT, 0600);
	CHECK_I("write on read-only /data-ro fails with EROFS", EROFS, w < 0 ? errno : 0);
	char path[64], stat_[2048] = "";
	snprintf(path, sizeof path, "/proc/%d/stat", (int)getpid());
	r = cr_read_file(path, stat_, sizeof stat_ - 1);
	CHECK_I("proc shows the task", (long long)getpid(), r > 0 ? atoll(stat_) : -1);
}

static void child(void)
{
	must(chdir("/data/sub") == 0, "chdir /data/sub");
	int fd = open("b.bin", O_RDONLY);
	must(fd >= 0 && lseek(fd, 3, SEEK_SET) == 3, "open b.bin");
	cr_ready_named("ready-child");
	cr_wait_go();
	check_common("/data/sub", fd, "0123456789abcdef", 3);
	char res[8] = { (char)(cr_nfails ? 'F' : 'P') };
	if (write(up[1], res, 1) != 1)
		_exit(2);
	_exit(cr_verdict("result-child"));
}

int main(int argc, char **argv)
{
	cr_init(argc, argv);
	char exe[1024], progdir[1024], root[2300], p[4400];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	must(n > 0, "readlink exe");
	exe[n] = 0;
	snprintf(progdir, sizeof progdir, "%s", exe);
	dirname(progdir);

	must(unshare(CLONE_NEWNS) == 0, "unshare");
	must(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0, "make / private");
	snprintf(root, sizeof root, "%s/rootfs", cr_dir);
	bind(root, root, 0);
	snprintf(p, sizeof p, "%s/usr", root);
	bind("/usr", p, 1);
	for (const char *const *l = (const char *const[]){ "lib", "lib64", "bin", "sbin", NULL }; *l; l++) {
		char t[64];
		snprintf(t, sizeof t, "usr/%s", *l);
		snprintf(p, sizeof p, "%s/%s", root, *l);
		must(symlink(t, p) == 0, "symlink");
	}
	snprintf(p, sizeof p, "%s%s", root, progdir);
	bind(progdir, p, 1);
	snprintf(p, sizeof p, "%s%s", root, cr_dir);
	bind(cr_dir, p, 0);
	snprintf(p, sizeof p, "%s/data", root);
	mkdirs(p);
	must(mount("mntns-data", p, "tmpfs", MS_NOSUID | MS_NODEV, "size=4m,mode=0755") == 0, "tmpfs");
	snprintf(p, sizeof p, "%s/data/a.txt", root);
	put(p, "hello tmpfs\n", 12, 0640);
	snprintf(p, sizeof p, "%s/data/sub", root);
	mkdirs(p);
	static char big[65536];
	for (size_t i = 0; i < sizeof big; i++)
		big[i] = "0123456789abcdef"[i % 16];
	snprintf(p, sizeof p, "%s/data/sub/b.bin", root);
	put(p, big, sizeof big, 0600);
	snprintf(p, sizeof p, "%s/data/link", root);
	must(symlink("a.txt", p) == 0, "symlink a.txt");
	char src[4400];
	snprintf(src, sizeof src, "%s/data/sub", root);
	snprintf(p, sizeof p, "%s/data-ro", root);
	bind(src, p, 1);
	/* A read-only tmpfs with a file in it, as runc masks /proc/acpi. */
	snprintf(p, sizeof p, "%s/masked", root);
	mkdirs(p);
	must(mount("mntns-masked", p, "tmpfs", MS_NOSUID, "size=64k") == 0, "masked tmpfs");
	snprintf(src, sizeof src, "%s/masked/m.txt", root);
	put(src, "masked\n", 7, 0644);
	must(mount(NULL, p, NULL, MS_REMOUNT | MS_RDONLY | MS_NOSUID, "size=64k") == 0, "masked ro");
	const struct {
		const char *dir, *fs, *src, *opts;
		unsigned long flags;
	} fresh[] = {
		{ "proc", "proc", "proc", NULL, MS_NOSUID | MS_NODEV | MS_NOEXEC },
		{ "sys", "sysfs", "sysfs", NULL, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC },
		{ "dev/pts", "devpts", "devpts", "newinstance,ptmxmode=0666,mode=0620", MS_NOSUID | MS_NOEXEC },
		{ "dev/mqueue", "mqueue", "mqueue", NULL, MS_NOSUID | MS_NODEV | MS_NOEXEC },
	};
	for (size_t i = 0; i < sizeof fresh / sizeof fresh[0]; i++) {
		snprintf(p, sizeof p, "%s/%s", root, fresh[i].dir);
		mkdirs(p);
		must(mount(fresh[i].src, p, fresh[i].fs, fresh[i].flags, fresh[i].opts) == 0, fresh[i].fs);
	}
	if (getenv("CR_MNTNS_RAMFS")) { /* a file system cryo does not take by default */
		snprintf(p, sizeof p, "%s/extra", root);
		mkdirs(p);
		must(mount("mntns-extra", p, "ramfs", MS_NOSUID, NULL) == 0, "ramfs");
	}
	snprintf(src, sizeof src, "%s/shared", root);
	mkdirs(src);
	must(mount("mntns-shared", src, "tmpfs", 0, "size=1m") == 0, "shared tmpfs");
	must(mount(NULL, src, NULL, MS_SHARED, NULL) == 0, "make shared");
	snprintf(p, sizeof p, "%s/peer", root);
	bind(src, p, 0);
	snprintf(p, sizeof p, "%s/slave", root);
	bind(src, p, 0);
	must(mount(NULL, p, NULL, MS_SLAVE, NULL) == 0, "make slave");

	must(chdir(root) == 0, "chdir root");
	must(syscall(SYS_pivot_root, ".", ".") == 0, "pivot_root");
	must(umount2(".", MNT_DETACH) == 0, "umount old root");
	must(chdir("/data") == 0, "chdir /data");
	mounts_now(before, sizeof before);
	cr_write_file("mounts-before", before, strlen(before));

	must(pipe(up) == 0, "pipe");
	pid_t c = fork();
	if (c == 0)
		child();
	int fd = open("a.txt", O_RDWR);
	must(fd >= 0 && lseek(fd, 5, SEEK_SET) == 5, "open a.txt");
	cr_ready();
	cr_wait_go();

	check_common("/data", fd, "hello tmpfs\n", 5);
	char buf[128] = "";
	CHECK_I("symlink on tmpfs", 5, readlink("/data/link", buf, sizeof buf));
	CHECK_S("symlink target", "a.txt", buf);
	struct stat st;
	CHECK_I("mode of a.txt", 0640, stat("/data/a.txt", &st) == 0 ? (long long)(st.st_mode & 07777) : -1);
	int m = open("/masked/m.txt", O_RDONLY);
	CHECK_I("m.txt on the read-only tmpfs", 7, m >= 0 ? read(m, buf, sizeof buf) : -1);
	CHECK_I("m.txt content", 0, memcmp(buf, "masked\n", 7));
	m = open("/masked/new", O_WRONLY | O_CREAT, 0600);
	CHECK_I("creating a file on the read-only tmpfs fails with EROFS", EROFS, m < 0 ? errno : 0);
	int b = open("/data-ro/b.bin", O_RDONLY);
	static char got[65536];
	CHECK_I("b.bin through /data-ro", (long long)sizeof got, b >= 0 ? read(b, got, sizeof got) : -1);
	CHECK_I("b.bin content", 0, memcmp(got, big, sizeof got));
	char r = 0;
	CHECK_I("child's verdict", 1, read(up[0], &r, 1));
	if (r != 'P')
		cr_fail("the child failed (see result-child)");
	/* Propagation: /shared -> /peer, /slave; /slave -/-> /shared (once the child has checked
	 * the mount tree). */
	mkdir("/shared/new", 0755);
	CHECK_I("mount under /shared", 0, mount("t1", "/shared/new", "tmpfs", 0, "size=64k"));
	CHECK_I("mount under /shared shows under /peer", 1, mounted_at("/peer/new"));
	CHECK_I("mount under /shared shows under /slave", 1, mounted_at("/slave/new"));
	mkdir("/slave/own", 0755);
	CHECK_I("mount under /slave", 0, mount("t2", "/slave/own", "tmpfs", 0, "size=64k"));
	CHECK_I("mount under /slave stays there", 0, mounted_at("/shared/own"));
	int status = 0;
	waitpid(c, &status, 0);
	return cr_verdict("result");
}
