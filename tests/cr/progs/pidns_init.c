/* pidns_init: the tree's root is PID 1 of its own pid namespace (as a container's init):
 *   launcher (outside the tree: checks the outer PIDs; its parent, the program started,
 *   ends once the tree is ready)
 *   +- init   clone(CLONE_NEWPID), PID 1 inside, its own session        <- the dumped root
 *      +- c   PID 2 inside
 *      |  +- g  c's child
 *      +- z   exited with status 5, not reaped (a zombie inside)
 * The launcher writes the outer PIDs (ready = init's) and, at each outer-request of init,
 * compares every task's NSpid line (outer and inner PID) with the one before the dump, into
 * outer-check.
 * Inside, each task checks its PID, parent, group and session; init folds outer-check into
 * its result and reaps its children (z's status 5). No /proc inside.
 */
#include "common.h"
#include <sched.h>
#include <sys/syscall.h>
#include <sys/wait.h>

struct ids {
	pid_t pid, ppid, pgrp, sid;
};

static void get_ids(struct ids *i)
{
	i->pid = getpid();
	i->ppid = getppid();
	i->pgrp = getpgrp();
	i->sid = getsid(0);
}

static void check_ids(const char *role, const struct ids *b)
{
	struct ids a;
	char w[64];
	get_ids(&a);
	snprintf(w, sizeof w, "%s getpid (inside)", role);
	CHECK_I(w, b->pid, a.pid);
	snprintf(w, sizeof w, "%s getppid (inside)", role);
	CHECK_I(w, b->ppid, a.ppid);
	snprintf(w, sizeof w, "%s getpgrp (inside)", role);
	CHECK_I(w, b->pgrp, a.pgrp);
	snprintf(w, sizeof w, "%s getsid (inside)", role);
	CHECK_I(w, b->sid, a.sid);
}

static void write_num(const char *name, pid_t pid)
{
	char b[32];
	int n = snprintf(b, sizeof b, "%d\n", (int)pid);
	cr_write_file(name, b, (size_t)n);
}

static pid_t read_num(const char *name)
{
	char path[2300], buf[32];
	cr_path(path, sizeof path, name);
	ssize_t n = cr_read_file(path, buf, sizeof buf - 1);
	buf[n < 0 ? 0 : n] = 0;
	return atoi(buf);
}

static int reap(const char *role, pid_t pid, int want)
{
	int st = 0;
	pid_t r = waitpid(pid, &st, 0);
	if (r != pid || !WIFEXITED(st) || WEXITSTATUS(st) != want) {
		cr_fail("%s %d: waitpid returned %d, status 0x%x, expected exit %d", role, pid, r, st,
			want);
		return -1;
	}
	return 0;
}

static void g_main(void)
{
	struct ids b;
	get_ids(&b);
	write_num("inner-g", b.pid);
	cr_wait_for("go-inner");
	check_ids("g", &b);
	_exit(cr_verdict("result-g"));
}

static void c_main(void)
{
	struct ids b;
	get_ids(&b);
	pid_t g = fork();
	if (g == 0)
		g_main();
	write_num("inner-c", b.pid);
	cr_wait_for("go-inner");
	check_ids("c", &b);
	reap("g", g, 0);
	_exit(cr_verdict("result-c"));
}

static void init_main(void)
{
	if (setsid() < 0)
		cr_fail("setup: setsid: %s", strerror(errno));
	struct ids b;
	get_ids(&b);
	if (b.pid != 1 || b.ppid != 0 || b.sid != 1)
		cr_fail("setup: init has PID %d, parent %d, session %d inside", b.pid, b.ppid, b.sid);
	pid_t c = fork();
	if (c == 0)
		c_main();
	cr_wait_for("inner-c");
	cr_wait_for("inner-g");
	pid_t z = fork();
	if (z == 0)
		_exit(5);
	write_num("inner-z", z);
	write_num("inner-init", b.pid);
	cr_wait_go();
	check_ids("init", &b);
	/* the launcher's view from outside: every outer and inner PID */
	cr_write_file("outer-request", "", 0);
	for (int i = 0; i < 500 && !cr_exists("outer-check"); i++)
		cr_sleep_ms(20);
	char path[2300], buf[4096];
	cr_path(path, sizeof path, "outer-check");
	ssize_t n = cr_read_file(path, buf, sizeof buf - 1);
	buf[n < 0 ? 0 : n] = 0;
	if (n < 0)
		cr_fail("no outer-check from the launcher within 10 s");
	else if (strcmp(buf, "PASS\n") != 0)
		cr_fail("outside: %s", buf);
	unlink(path);
	cr_write_file("go-inner", "", 0);
	reap("z", z, 5);
	if (reap("c", c, 0) < 0) {
		static const char *r[] = { "result-c", "result-g" };
		for (int i = 0; i < 2; i++) {
			cr_path(path, sizeof path, r[i]);
			n = cr_read_file(path, buf, sizeof buf - 1);
			buf[n < 0 ? 0 : n] = 0;
			cr_fail("%s: %s", r[i], buf);
		}
	}
	cr_path(path, sizeof path, "go-inner");
	unlink(path);
	cr_finish();
}

static void nspid(pid_t pid, char *out, size_t n)
{
	char path[96];
	snprintf(path, sizeof path, "/proc/%d/status", pid);
	if (cr_proc_field(path, "NSpid", out, n) < 0)
		snprintf(out, n, "(no %s)", path);
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
		nspid(c, ns, sizeof ns);
		char *last = strrchr(ns, '\t') ? strrchr(ns, '\t') : strrchr(ns, ' ');
		if (last && atoi(last + 1) == inner)
			return c;
	}
	return -1;
}

/* Sleeps 20 ms, reaping init when it ends; false once the workdir is gone or after 150 s. */
static int launcher_tick(pid_t init, long *ticks)
{
	waitpid(init, NULL, WNOHANG);
	if (access(cr_dir, F_OK) < 0 || ++*ticks > 150 * 50)
		return 0;
	cr_sleep_ms(20);
	return 1;
}

int main(int argc, char **argv)
{
	cr_init(argc, argv);
	static const char *stale[] = { "inner-c", "inner-g", "inner-z", "inner-init", "go-inner",
				       "outer-check", "outer-request", "zombie", "ready-c", "ready-g" };
	for (size_t i = 0; i < sizeof stale / sizeof *stale; i++) {
		char path[2300];
		cr_path(path, sizeof path, stale[i]);
		unlink(path);
	}
	/* The driver waits for the process it started once the tree is gone: that one ends as
	 * soon as the launcher, its child, is ready. */
	pid_t launcher = fork();
	if (launcher < 0)
		_exit(1);
	if (launcher > 0) {
		int st = 0;
		while (!cr_exists("ready"))
			if (waitpid(launcher, &st, WNOHANG) == launcher)
				_exit(1);
			else
				cr_sleep_ms(20);
		_exit(0);
	}
	pid_t init = (pid_t)syscall(SYS_clone, CLONE_NEWPID | SIGCHLD, 0, 0, 0, 0);
	if (init == 0)
		init_main();
	if (init < 0)
		_exit(1);
	long ticks = 0;
	while (!cr_exists("inner-init"))
		if (!launcher_tick(init, &ticks))
			_exit(1);
	pid_t pids[4];
	pids[0] = init;
	pids[1] = outer_of(init, read_num("inner-c"));
	pids[2] = pids[1] > 0 ? outer_of(pids[1], read_num("inner-g")) : -1;
	pids[3] = outer_of(init, read_num("inner-z"));
	static const char *what[] = { "init", "c", "g", "zombie z" };
	char before[4][128];
	for (int i = 0; i < 4; i++)
		nspid(pids[i], before[i], sizeof before[i]);
	write_num("ready-c", pids[1]);
	write_num("ready-g", pids[2]);
	write_num("zombie", pids[3]);
	for (int i = 0; i < 200; i++) { /* z ends on its own */
		char st[16], path[64];
		snprintf(path, sizeof path, "/proc/%d/status", pids[3]);
		if (cr_proc_field(path, "State", st, sizeof st) == 0 && st[0] == 'Z')
			break;
		cr_sleep_ms(5);
	}
	write_num("ready", init);
	for (;;) { /* one round per request: the original's, the restored tree's */
		while (!cr_exists("outer-request"))
			if (!launcher_tick(init, &ticks))
				_exit(0);
		char path[2300];
		cr_path(path, sizeof path, "outer-request");
		unlink(path);
		char report[2048] = "", after[128];
		size_t len = 0;
		for (int i = 0; i < 4; i++) {
			nspid(pids[i], after, sizeof after);
			if (strcmp(before[i], after) != 0)
				len += (size_t)snprintf(report + len, sizeof report - len,
							"NSpid of %s: \"%s\" before, \"%s\" now; ", what[i],
							before[i], after);
		}
		if (len == 0)
			snprintf(report, sizeof report, "PASS\n");
		cr_write_file("outer-check", report, strlen(report));
	}
}
