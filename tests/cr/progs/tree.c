/* tree: a process tree must survive checkpoint/restore with the same pids,
 * parents, process groups, session and an unreaped zombie:
 *   root (session leader, started via setsid)
 *   +- child1      stays in root's group
 *   +- child2      own group (setpgid(0,0))
 *   |  +- grandchild   in child2's group
 *   +- child3      exited with status 7, not reaped (zombie)
 * Each live process writes WORKDIR/ready-<role> and waits. After go, the root
 * checks its own ids, the others' groups and sessions and the zombie, then
 * writes WORKDIR/go-children; each member then checks its ids and exits 0/1
 * (details in WORKDIR/result-<role>); the root reaps child3 (status 7) and
 * the children (0).
 */
#include "common.h"
#include <sys/wait.h>

static pid_t root_pid, root_pgrp, root_sid;

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

static void check_ids(const char *role, const struct ids *b, int check_ppid)
{
	struct ids a;
	char w[64];
	get_ids(&a);
	snprintf(w, sizeof w, "%s getpid", role);
	CHECK_I(w, b->pid, a.pid);
	if (check_ppid) {
		snprintf(w, sizeof w, "%s getppid", role);
		CHECK_I(w, b->ppid, a.ppid);
	}
	snprintf(w, sizeof w, "%s getpgrp", role);
	CHECK_I(w, b->pgrp, a.pgrp);
	snprintf(w, sizeof w, "%s getsid", role);
	CHECK_I(w, b->sid, a.sid);
}

/* Common body of child1, child2 and the grandchild. */
static void member(const char *role, pid_t want_ppid, pid_t want_pgrp, pid_t reap)
{
	struct ids b;
	char name[64];
	get_ids(&b);
	if (b.ppid != want_ppid || b.pgrp != want_pgrp || b.sid != root_sid)
		cr_fail("setup: %s ids ppid %d pgrp %d sid %d, wanted %d %d %d", role, b.ppid, b.pgrp,
			b.sid, want_ppid, want_pgrp, root_sid);
	snprintf(name, sizeof name, "ready-%s", role);
	cr_ready_named(name);
	cr_wait_for("go-children"); /* the root checks our groups first */
	check_ids(role, &b, 1);
	if (reap > 0) {
		int st;
		pid_t r = waitpid(reap, &st, 0);
		if (r != reap)
			cr_fail("%s: waitpid(grandchild %d) returned %d: %s", role, reap, r,
				strerror(errno));
		else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
			cr_fail("%s: grandchild %d ended with status 0x%x (see result-grandchild)", role,
				reap, st);
	}
	snprintf(name, sizeof name, "result-%s", role);
	_exit(cr_verdict(name));
}

static char proc_state(pid_t pid, pid_t *ppid)
{
	char path[64], buf[512];
	snprintf(path, sizeof path, "/proc/%d/stat", pid);
	ssize_t n = cr_read_file(path, buf, sizeof buf - 1);
	if (n < 0)
		return '?';
	buf[n] = 0;
	char *p = strrchr(buf, ')');
	if (!p || !p[1] || !p[2])
		return '?';
	if (ppid)
		*ppid = atoi(p + 4);
	return p[2];
}

static void reap_member(const char *role, pid_t pid)
{
	int st;
	pid_t r = waitpid(pid, &st, 0);
	if (r != pid) {
		cr_fail("waitpid(%s %d) returned %d: %s", role, pid, r, strerror(errno));
		return;
	}
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		char path[2300], buf[4096];
		snprintf(buf, sizeof buf, "result-%s", role);
		cr_path(path, sizeof path, buf);
		ssize_t n = cr_read_file(path, buf, sizeof buf - 1);
		buf[n < 0 ? 0 : n] = 0;
		if (WIFSIGNALED(st))
			cr_fail("%s %d killed by signal %d", role, pid, WTERMSIG(st));
		else
			cr_fail("%s %d exited with status %d; its report: %s", role, pid,
				WEXITSTATUS(st), buf);
	}
}

int main(int argc, char **argv)
{
	cr_init(argc, argv);
	root_pid = getpid();
	root_pgrp = getpgrp();
	root_sid = getsid(0);
	if (root_sid != root_pid)
		cr_fail("setup: root is not a session leader (sid %d)", root_sid);

	static const char *stale[] = { "ready-child1", "ready-child2", "ready-grandchild", "zombie",
				       "go-children" };
	for (int i = 0; i < 5; i++) { /* from an earlier run in the same WORKDIR */
		char path[2300];
		cr_path(path, sizeof path, stale[i]);
		unlink(path);
	}

	pid_t c1 = fork();
	if (c1 == 0)
		member("child1", root_pid, root_pgrp, 0);

	pid_t c2 = fork();
	if (c2 == 0) {
		setpgid(0, 0);
		pid_t me = getpid();
		pid_t g = fork();
		if (g == 0)
			member("grandchild", me, me, 0);
		member("child2", root_pid, me, g);
	}
	setpgid(c2, c2); /* both sides, so there is no race */

	pid_t c3 = fork();
	if (c3 == 0)
		_exit(7);

	if (c1 < 0 || c2 < 0 || c3 < 0) {
		cr_fail("setup: fork: %s", strerror(errno));
		cr_finish();
	}
	cr_wait_for("ready-child1");
	cr_wait_for("ready-child2");
	cr_wait_for("ready-grandchild");
	while (proc_state(c3, NULL) != 'Z')
		cr_sleep_ms(5);
	char z[32];
	int zn = snprintf(z, sizeof z, "%d\n", c3);
	cr_write_file("zombie", z, (size_t)zn);
	pid_t g = 0;
	{
		char path[2300], buf[64];
		cr_path(path, sizeof path, "ready-grandchild");
		ssize_t n = cr_read_file(path, buf, sizeof buf - 1);
		buf[n < 0 ? 0 : n] = 0;
		g = atoi(buf);
	}
	struct ids b;
	get_ids(&b);
	cr_ready();
	cr_wait_go();

	check_ids("root", &b, 0);
	CHECK_I("getpgid(child1)", root_pgrp, getpgid(c1));
	CHECK_I("getpgid(child2)", c2, getpgid(c2));
	CHECK_I("getpgid(grandchild)", c2, getpgid(g));
	CHECK_I("getsid(child1)", root_sid, getsid(c1));
	CHECK_I("getsid(child2)", root_sid, getsid(c2));
	CHECK_I("getsid(grandchild)", root_sid, getsid(g));
	pid_t gppid = 0;
	proc_state(g, &gppid);
	CHECK_I("grandchild ppid (from /proc)", c2, gppid);

	pid_t zppid = 0;
	char zs = proc_state(c3, &zppid);
	if (zs != 'Z')
		cr_fail("child3 %d state expected 'Z' (zombie) got '%c'", c3, zs);
	CHECK_I("zombie child3 ppid", root_pid, zppid);
	int st = 0;
	pid_t r = waitpid(c3, &st, 0);
	if (r != c3)
		cr_fail("waitpid(child3 %d) returned %d: %s", c3, r, strerror(errno));
	else if (!WIFEXITED(st))
		cr_fail("child3 expected exit status 7 got raw status 0x%x", st);
	else
		CHECK_I("child3 exit status", 7, WEXITSTATUS(st));

	cr_write_file("go-children", "", 0);
	reap_member("child1", c1);
	reap_member("child2", c2);
	char gc[2300];
	cr_path(gc, sizeof gc, "go-children"); /* so that a second restore waits again */
	unlink(gc);
	errno = 0;
	if (waitpid(-1, &st, WNOHANG) != -1 || errno != ECHILD)
		cr_fail("root has an unexpected extra child after reaping all (errno %d)", errno);
	cr_finish();
}
