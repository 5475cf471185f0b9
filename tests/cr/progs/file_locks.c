/* file_locks: a parent and a child holding file locks (dumped and restored with -l).
 *   fa  flock LOCK_EX, taken by the parent (the child shares the open file)
 *   fb  flock LOCK_SH, taken by the parent (shared too)
 *   fc  POSIX write lock on bytes 0..9 and read lock on 100..EOF (parent),
 *       POSIX read lock on 20..29 (child, through the same open file),
 *       OFD write lock on 50..59 (parent, through a second open file of fc)
 * After go each process checks its locks from outside: a short-lived forked checker opens
 * the files anew and asks flock(LOCK_NB), F_GETLK and F_OFD_GETLK what they see (type,
 * range, owner pid). Then the process unlocks and relocks each of its locks itself, with a
 * check between and after. The parent never opens or closes another fd on fc: that would
 * drop its POSIX locks.
 */
#include "common.h"
#include <sys/file.h>
#include <sys/wait.h>

static int fa, fb, fc, fo;
static pid_t parent_pid, child_pid;

static int open_in_dir(const char *name)
{
	char path[2300];
	cr_path(path, sizeof path, name);
	return open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
}

static int set_lock(int fd, int cmd, short type, off_t start, off_t len)
{
	struct flock fl = { .l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len };
	return fcntl(fd, cmd, &fl);
}

static const char *type_name(int t)
{
	return t == F_RDLCK ? "read" : t == F_WRLCK ? "write" : t == F_UNLCK ? "none" : "?";
}

/* What a `type` request on [start, start+len) meets: exp_type (F_UNLCK: nothing) at
 * [exp_start, exp_start+exp_len) owned by exp_pid. */
static void expect_getlk(int fd, int cmd, short type, off_t start, off_t len, short exp_type,
			 off_t exp_start, off_t exp_len, pid_t exp_pid)
{
	const char *c = cmd == F_GETLK ? "F_GETLK" : "F_OFD_GETLK";
	struct flock fl = { .l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len };
	if (fcntl(fd, cmd, &fl) < 0) {
		cr_fail("%s %s %ld+%ld: %s", c, type_name(type), (long)start, (long)len,
			strerror(errno));
		return;
	}
	if (fl.l_type != exp_type) {
		cr_fail("%s %s %ld+%ld: expected a %s lock, found %s (at %ld+%ld, pid %d)", c,
			type_name(type), (long)start, (long)len, type_name(exp_type),
			type_name(fl.l_type), (long)fl.l_start, (long)fl.l_len, (int)fl.l_pid);
		return;
	}
	if (exp_type == F_UNLCK)
		return;
	if (fl.l_start != exp_start || fl.l_len != exp_len || fl.l_pid != exp_pid)
		cr_fail("%s %s %ld+%ld: expected the %s lock %ld+%ld of pid %d, found %ld+%ld of pid %d",
			c, type_name(type), (long)start, (long)len, type_name(exp_type),
			(long)exp_start, (long)exp_len, (int)exp_pid, (long)fl.l_start,
			(long)fl.l_len, (int)fl.l_pid);
}

/* flock(op | LOCK_NB) on a new open file of `name`: expect success or EWOULDBLOCK. */
static void expect_flock(const char *name, int op, int ok)
{
	int fd = open_in_dir(name);
	if (fd < 0) {
		cr_fail("checker: open %s: %s", name, strerror(errno));
		return;
	}
	int r = flock(fd, op | LOCK_NB);
	const char *what = op == LOCK_EX ? "LOCK_EX" : "LOCK_SH";
	if (ok && r < 0)
		cr_fail("flock(%s, %s) from another open file failed: %s", name, what,
			strerror(errno));
	if (!ok && r == 0)
		cr_fail("flock(%s, %s) from another open file succeeded: the lock is not held",
			name, what);
	if (!ok && r < 0 && errno != EWOULDBLOCK)
		cr_fail("flock(%s, %s): expected EWOULDBLOCK, got %s", name, what, strerror(errno));
	close(fd);
}

/* Which of the parent's locks are expected held (all of them, or released for relocking). */
enum { ALL = 0, NO_FA = 1, NO_POSIX_W = 2, NO_OFD = 4, NO_CHILD = 8, CHILD_VIEW = 16 };

/* With CHILD_VIEW, only what the parent leaves alone while the child checks: fb and the
 * child's own lock. */
static void check_state(int released)
{
	int g = open_in_dir("fc");
	if (g < 0) {
		cr_fail("checker: open fc: %s", strerror(errno));
		return;
	}
	expect_flock("fb", LOCK_EX, 0);
	expect_flock("fb", LOCK_SH, 1);
	if (released & CHILD_VIEW) {
		if (released & NO_CHILD)
			expect_getlk(g, F_GETLK, F_WRLCK, 20, 10, F_UNLCK, 0, 0, 0);
		else
			expect_getlk(g, F_GETLK, F_WRLCK, 20, 10, F_RDLCK, 20, 10, child_pid);
		expect_getlk(g, F_GETLK, F_RDLCK, 20, 10, F_UNLCK, 0, 0, 0);
		close(g);
		return;
	}
	expect_flock("fa", LOCK_EX, released & NO_FA);
	expect_flock("fa", LOCK_SH, released & NO_FA);
	/* the parent's write lock 0..9 */
	if (released & NO_POSIX_W) {
		expect_getlk(g, F_GETLK, F_WRLCK, 0, 10, F_UNLCK, 0, 0, 0);
	} else {
		expect_getlk(g, F_GETLK, F_WRLCK, 0, 10, F_WRLCK, 0, 10, parent_pid);
		expect_getlk(g, F_GETLK, F_RDLCK, 9, 1, F_WRLCK, 0, 10, parent_pid);
		expect_getlk(g, F_OFD_GETLK, F_RDLCK, 5, 1, F_WRLCK, 0, 10, parent_pid);
	}
	expect_getlk(g, F_GETLK, F_WRLCK, 10, 10, F_UNLCK, 0, 0, 0);
	/* the child's read lock 20..29 */
	if (released & NO_CHILD) {
		expect_getlk(g, F_GETLK, F_WRLCK, 20, 10, F_UNLCK, 0, 0, 0);
	} else {
		expect_getlk(g, F_GETLK, F_WRLCK, 20, 10, F_RDLCK, 20, 10, child_pid);
		expect_getlk(g, F_GETLK, F_WRLCK, 29, 1, F_RDLCK, 20, 10, child_pid);
	}
	expect_getlk(g, F_GETLK, F_RDLCK, 20, 10, F_UNLCK, 0, 0, 0);
	expect_getlk(g, F_GETLK, F_WRLCK, 30, 20, F_UNLCK, 0, 0, 0);
	/* the OFD write lock 50..59: no owner pid */
	if (released & NO_OFD) {
		expect_getlk(g, F_OFD_GETLK, F_WRLCK, 50, 10, F_UNLCK, 0, 0, 0);
	} else {
		expect_getlk(g, F_OFD_GETLK, F_WRLCK, 50, 10, F_WRLCK, 50, 10, -1);
		expect_getlk(g, F_GETLK, F_RDLCK, 55, 1, F_WRLCK, 50, 10, -1);
	}
	expect_getlk(g, F_GETLK, F_WRLCK, 60, 40, F_UNLCK, 0, 0, 0);
	/* the parent's read lock 100..EOF */
	expect_getlk(g, F_GETLK, F_WRLCK, 100, 0, F_RDLCK, 100, 0, parent_pid);
	expect_getlk(g, F_GETLK, F_WRLCK, 1000000, 1, F_RDLCK, 100, 0, parent_pid);
	expect_getlk(g, F_OFD_GETLK, F_WRLCK, 100, 0, F_RDLCK, 100, 0, parent_pid);
	expect_getlk(g, F_GETLK, F_RDLCK, 100, 0, F_UNLCK, 0, 0, 0);
	close(g);
}

/* Runs check_state(released) in a forked checker; its failures become ours. */
static void check_from_outside(const char *when, int released)
{
	pid_t k = fork();
	if (k < 0) {
		cr_fail("%s: fork a checker: %s", when, strerror(errno));
		return;
	}
	if (k == 0) {
		cr_nfails = 0;
		cr_fails_len = 0;
		check_state(released);
		_exit(cr_nfails ? 1 : 0);
	}
	int st;
	if (waitpid(k, &st, 0) != k) {
		cr_fail("%s: waitpid(checker %d): %s", when, (int)k, strerror(errno));
		return;
	}
	char name[64], path[2300];
	static char buf[1 << 15];
	snprintf(name, sizeof name, "result-%d.txt", (int)k);
	cr_path(path, sizeof path, name);
	ssize_t n = cr_read_file(path, buf, sizeof buf - 1);
	unlink(path);
	if (n > 0) {
		buf[n] = 0;
		for (char *l = buf, *e; *l; l = e + 1) {
			e = strchr(l, '\n');
			if (!e)
				break;
			*e = 0;
			cr_fail("%s (pid %d), checker: %s", when, (int)getpid(),
				strncmp(l, "FAIL: ", 6) == 0 ? l + 6 : l);
		}
	}
	if (!WIFEXITED(st) || (WEXITSTATUS(st) != 0 && n <= 0))
		cr_fail("%s: checker %d ended with status 0x%x", when, (int)k, st);
}

static void must(int ok, const char *what)
{
	if (!ok)
		cr_fail("%s: %s", what, strerror(errno));
}

static int child_main(int rd)
{
	cr_ready_named("ready-child");
	cr_wait_go();
	check_from_outside("child, restored", CHILD_VIEW);
	/* The parent checks the child's lock too: relock only once it is done. */
	char c;
	if (read(rd, &c, 1) != 1)
		cr_fail("child: read the parent's go-ahead: %s", strerror(errno));
	must(set_lock(fc, F_SETLK, F_UNLCK, 20, 10) == 0, "child: unlock 20..29");
	check_from_outside("child, unlocked", CHILD_VIEW | NO_CHILD);
	must(set_lock(fc, F_SETLK, F_RDLCK, 20, 10) == 0, "child: relock 20..29");
	check_from_outside("child, relocked", CHILD_VIEW);
	return cr_verdict("result-child");
}

int main(int argc, char **argv)
{
	cr_init(argc, argv);
	parent_pid = getpid();
	fa = open_in_dir("fa");
	fb = open_in_dir("fb");
	fc = open_in_dir("fc");
	fo = open_in_dir("fc");
	int p[2];
	if (fa < 0 || fb < 0 || fc < 0 || fo < 0 || pipe2(p, O_CLOEXEC) < 0) {
		cr_fail("setup: open: %s", strerror(errno));
		cr_finish();
	}
	must(flock(fa, LOCK_EX | LOCK_NB) == 0, "setup: flock fa LOCK_EX");
	must(flock(fb, LOCK_SH | LOCK_NB) == 0, "setup: flock fb LOCK_SH");
	must(set_lock(fc, F_SETLK, F_WRLCK, 0, 10) == 0, "setup: write lock 0..9");
	must(set_lock(fc, F_SETLK, F_RDLCK, 100, 0) == 0, "setup: read lock 100..EOF");
	must(set_lock(fo, F_OFD_SETLK, F_WRLCK, 50, 10) == 0, "setup: OFD write lock 50..59");
	if (cr_nfails)
		cr_finish();

	child_pid = fork();
	if (child_pid < 0) {
		cr_fail("setup: fork: %s", strerror(errno));
		cr_finish();
	}
	if (child_pid == 0) {
		close(p[1]);
		child_pid = getpid();
		if (set_lock(fc, F_SETLK, F_RDLCK, 20, 10) < 0) {
			cr_fail("setup: child: read lock 20..29: %s", strerror(errno));
			_exit(cr_verdict("result-child"));
		}
		_exit(child_main(p[0]));
	}
	close(p[0]);
	cr_wait_for("ready-child");
	cr_ready();
	cr_wait_go();

	check_from_outside("parent, restored", ALL);
	must(flock(fa, LOCK_UN) == 0, "parent: flock fa LOCK_UN");
	must(set_lock(fc, F_SETLK, F_UNLCK, 0, 10) == 0, "parent: unlock 0..9");
	must(set_lock(fo, F_OFD_SETLK, F_UNLCK, 50, 10) == 0, "parent: OFD unlock 50..59");
	check_from_outside("parent, unlocked", NO_FA | NO_POSIX_W | NO_OFD);
	must(flock(fa, LOCK_EX | LOCK_NB) == 0, "parent: flock fa LOCK_EX again");
	must(set_lock(fc, F_SETLK, F_WRLCK, 0, 10) == 0, "parent: relock 0..9");
	must(set_lock(fo, F_OFD_SETLK, F_WRLCK, 50, 10) == 0, "parent: OFD relock 50..59");
	check_from_outside("parent, relocked", ALL);
	if (write(p[1], "k", 1) != 1)
		cr_fail("parent: tell the child to go on: %s", strerror(errno));

	int st;
	if (waitpid(child_pid, &st, 0) != child_pid)
		cr_fail("waitpid(child %d): %s", (int)child_pid, strerror(errno));
	else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		cr_fail("the child %d failed (status 0x%x): see result-child", (int)child_pid, st);
	cr_finish();
}
