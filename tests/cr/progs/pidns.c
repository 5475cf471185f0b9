/* pidns: a nested pid namespace keeps every PID, inside and out:
 *   root (cryo's pid namespace, session leader)
 *   +- init     clone(CLONE_NEWPID): PID 1 inside
 *      +- a     PID 2 inside, with a second thread
 *      |  +- g  a's child
 *      +- z     exited with status 7, not reaped (a zombie inside)
 * Before the dump the root records the NSpid line (outer and inner PID) of every task and
 * thread; after, it compares them and the zombie's state. Inside, each task checks getpid(),
 * getppid() and gettid() against what it saw before, and the parents reap their children.
 * No /proc inside: the namespace has no mount of its own.
 */
#include "common.h"
#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>
#include <sys/wait.h>

struct inner {
	pid_t pid, ppid, tid;
};
static struct inner me_before, thr_before;
static volatile int thr_bad;

static void check_me(const char *role, const struct inner *b)
{
	char w[64];
	snprintf(w, sizeof w, "%s getpid (inside)", role);
	CHECK_I(w, b->pid, getpid());
	snprintf(w, sizeof w, "%s getppid (inside)", role);
	CHECK_I(w, b->ppid, getppid());
}

static void write_inner(const char *name, pid_t pid)
{
	char b[32];
	int n = snprintf(b, sizeof b, "%d\n", (int)pid);
	cr_write_file(name, b, (size_t)n);
}

static void *thread_main(void *arg)
{
	(void)arg;
	thr_before.tid = (pid_t)syscall(SYS_gettid);
	write_inner("inner-thread", thr_before.tid);
	cr_wait_for("go-inner");
	if ((pid_t)syscall(SYS_gettid) != thr_before.tid)
		thr_bad = (int)syscall(SYS_gettid);
	return NULL;
}

static int reap(const char *role, pid_t pid, int want)
{
	int st = 0;
	pid_t r = waitpid(pid, &st, 0);
	if (r != pid) {
		cr_fail("waitpid(%s %d) returned %d: %s", role, pid, r, strerror(errno));
		return -1;
	}
	if (!WIFEXITED(st) || WEXITSTATUS(st) != want) {
		cr_fail("%s %d ended with status 0x%x, expected exit %d", role, pid, st, want);
		return -1;
	}
	return 0;
}

static void g_main(void)
{
	struct inner b = { getpid(), getppid(), 0 };
	write_inner("inner-g", b.pid);
	cr_wait_for("go-inner");
	check_me("g", &b);
	_exit(cr_verdict("result-g"));
}

static void a_main(void)
{
	me_before.pid = getpid();
	me_before.ppid = getppid();
	pthread_t th;
	if (pthread_create(&th, NULL, thread_main, NULL) != 0)
		cr_fail("setup: pthread_create");
	pid_t g = fork();
	if (g == 0)
		g_main();
	write_inner("inner-a", me_before.pid);
	cr_wait_for("go-inner");
	check_me("a", &me_before);
	pthread_join(th, NULL);
	if (thr_bad)
		cr_fail("a's thread: gettid() was %d, now %d", thr_before.tid, thr_bad);
	reap("g", g, 0);
	_exit(cr_verdict("result-a"));
}

static void init_main(void)
{
	struct inner b = { getpid(), getppid(), 0 };
	if (b.pid != 1 || b.ppid != 0)
		cr_fail("setup: init has PID %d and parent %d inside", b.pid, b.ppid);
	pid_t a = fork();
	if (a == 0)
		a_main();
	cr_wait_for("inner-a");
	cr_wait_for("inner-g");
	cr_wait_for("inner-thread");
	pid_t z = fork();
	if (z == 0)
		_exit(7);
	write_inner("inner-z", z);
	write_inner("inner-init", b.pid);
	cr_wait_for("go-inner");
	check_me("init", &b);
	/* the zombie is still there, with its status */
	reap("z", z, 7);
	reap("a", a, 0);
	_exit(cr_verdict("result-init"));
}

/* The NSpid line of /proc/PID[/task/TID]/status. */
static void nspid(pid_t pid, pid_t tid, char *out, size_t n)
{
	char path[96];
	if (tid)
		snprintf(path, sizeof path, "/proc/%d/task/%d/status", pid, tid);
	else
		snprintf(path, sizeof path, "/proc/%d/status", pid);
	if (cr_proc_field(path, "NSpid", out, n) < 0)
		snprintf(out, n, "(no %s)", path);
}

static char state_of(pid_t pid)
{
	char path[64], buf[16];
	snprintf(path, sizeof path, "/proc/%d/status", pid);
	if (cr_proc_field(path, "State", buf, sizeof buf) < 0)
		return '?';
	return buf[0];
}

/* The outer PID of the child of `parent` whose NSpid ends with `inner`. */
static pid_t outer_of(pid_t parent, pid_t inner)
{
	char path[96], buf[4096];
	snprintf(path, sizeof path, "/proc/%d/task/%d/children", parent, parent);
	ssize_t n = cr_read_file(path, buf, sizeof buf - 1);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	for (char *p = buf; *p;) {
		pid_t c = (pid_t)strtol(p, &p, 10);
		if (c <= 0)
			break;
		char ns[128];
		nspid(c, 0, ns, sizeof ns);
		char *last = strrchr(ns, '\t') ? strrchr(ns, '\t') : strrchr(ns, ' ');
		if (last && atoi(last + 1) == inner)
			return c;
	}
	return -1;
}

static pid_t read_inner(const char *name)
{
	char path[2300], buf[32];
	cr_path(path, sizeof path, name);
	ssize_t n = cr_read_file(path, buf, sizeof buf - 1);
	buf[n < 0 ? 0 : n] = 0;
	return atoi(buf);
}

static void ready_outer(const char *name, pid_t pid)
{
	char b[32];
	int n = snprintf(b, sizeof b, "%d\n", (int)pid);
	cr_write_file(name, b, (size_t)n);
}

int main(int argc, char **argv)
{
	cr_init(argc, argv);
	static const char *stale[] = { "inner-a", "inner-g", "inner-thread", "inner-z", "inner-init",
				       "go-inner", "zombie", "ready-init", "ready-a", "ready-g" };
	for (size_t i = 0; i < sizeof stale / sizeof *stale; i++) {
		char path[2300];
		cr_path(path, sizeof path, stale[i]);
		unlink(path);
	}
	pid_t init = (pid_t)syscall(SYS_clone, CLONE_NEWPID | SIGCHLD, 0, 0, 0, 0);
	if (init == 0)
		init_main();
	if (init < 0) {
		cr_fail("setup: clone(CLONE_NEWPID): %s", strerror(errno));
		cr_finish();
	}
	cr_wait_for("inner-init");
	pid_t a = outer_of(init, read_inner("inner-a"));
	pid_t z = outer_of(init, read_inner("inner-z"));
	pid_t g = a > 0 ? outer_of(a, read_inner("inner-g")) : -1;
	pid_t t = -1;
	if (a > 0) { /* the thread: the task entry of a that is not a */
		for (pid_t cand = a + 1; cand < a + 64 && t < 0; cand++) {
			char path[96];
			snprintf(path, sizeof path, "/proc/%d/task/%d", a, cand);
			if (access(path, F_OK) == 0)
				t = cand;
		}
	}
	if (a <= 0 || z <= 0 || g <= 0 || t <= 0) {
		cr_fail("setup: outer PIDs not found: a %d z %d g %d thread %d", a, z, g, t);
		cr_finish();
	}
	while (state_of(z) != 'Z')
		cr_sleep_ms(5);
	char before[5][128];
	nspid(init, 0, before[0], sizeof before[0]);
	nspid(a, 0, before[1], sizeof before[1]);
	nspid(a, t, before[2], sizeof before[2]);
	nspid(g, 0, before[3], sizeof before[3]);
	nspid(z, 0, before[4], sizeof before[4]);
	ready_outer("ready-init", init);
	ready_outer("ready-a", a);
	ready_outer("ready-g", g);
	ready_outer("zombie", z);
	pid_t root = getpid(), sid = getsid(0);
	cr_ready();
	cr_wait_go();

	CHECK_I("root getpid", root, getpid());
	CHECK_I("root getsid", sid, getsid(0));
	char after[128];
	static const char *what[] = { "init", "a", "a's thread", "g", "zombie z" };
	for (int i = 0; i < 5; i++) {
		pid_t p = i == 0 ? init : i <= 2 ? a : i == 3 ? g : z;
		nspid(p, i == 2 ? t : 0, after, sizeof after);
		char w[64];
		snprintf(w, sizeof w, "NSpid of %s", what[i]);
		CHECK_S(w, before[i], after);
	}
	if (state_of(z) != 'Z')
		cr_fail("zombie z %d: state %c", z, state_of(z));
	cr_write_file("go-inner", "", 0);
	int st = 0;
	if (waitpid(init, &st, 0) != init || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		char path[2300], buf[4096];
		for (int i = 0; i < 3; i++) {
			static const char *r[] = { "result-init", "result-a", "result-g" };
			cr_path(path, sizeof path, r[i]);
			ssize_t n = cr_read_file(path, buf, sizeof buf - 1);
			buf[n < 0 ? 0 : n] = 0;
			cr_fail("init ended with status 0x%x; %s: %s", st, r[i], buf);
		}
	}
	/* a tree restored from a dump made before this point must wait for its own go-inner */
	char path[2300];
	cr_path(path, sizeof path, "go-inner");
	unlink(path);
	cr_finish();
}
