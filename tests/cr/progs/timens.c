/* timens: children born in a new time namespace. The root called unshare(CLONE_NEWTIME),
 * set the new namespace's offsets (CLOCK_MONOTONIC +100000 s, CLOCK_BOOTTIME +200000 s) and
 * forked C, which forked C2: both live in the new namespace, whose clocks run ahead. After
 * restore: C and C2 share a time namespace other than the root's, and the root's next
 * children are born in it (its time_for_children); the namespace's clocks went on from
 * where they were at the dump (never backwards, at most the time since then ahead) and are
 * still about 100000 s / 200000 s ahead of the root's (less the time the tree was away,
 * as CRIU restores them). Besides, P (a child born before the unshare, in the root's
 * namespace) made a namespace of its own (+300000 s) for its child Q, then went back to its
 * own namespace for its next children: after restore Q's clock is ahead that much and P's
 * time_for_children is its own namespace again. */
#define _GNU_SOURCE
#include "common.h"
#include <sched.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#define MONO_OFF 100000LL
#define BOOT_OFF 200000LL
#define Q_OFF 300000LL
#define NS 1000000000LL

static long long now_ns(clockid_t c)
{
	struct timespec ts;
	clock_gettime(c, &ts);
	return ts.tv_sec * NS + ts.tv_nsec;
}

static unsigned long long ns_ino(pid_t pid, const char *which)
{
	char path[64];
	struct stat st;
	snprintf(path, sizeof path, "/proc/%d/ns/%s", pid, which);
	if (stat(path, &st))
		return 0;
	return (unsigned long long)st.st_ino;
}

/* What a child reports through the pipe after restore (files could be stale: a leave-running
 * run of the original wrote them before). */
struct clocks {
	int who;
	long long mono, boot;
};
static int up[2], down[2];

static void report_before(const char *name)
{
	char b[64];
	int n = snprintf(b, sizeof b, "%lld %lld\n", now_ns(CLOCK_MONOTONIC), now_ns(CLOCK_BOOTTIME));
	cr_write_file(name, b, (size_t)n);
}

static void read_pair(const char *name, long long *a, long long *b)
{
	char path[2300], buf[128] = "";
	cr_path(path, sizeof path, name);
	ssize_t n = cr_read_file(path, buf, sizeof buf - 1);
	buf[n > 0 ? n : 0] = 0;
	*a = *b = 0;
	sscanf(buf, "%lld %lld", a, b);
}

static void child(int who)
{
	report_before(who ? "c2-before" : "c-before");
	cr_ready_named(who ? "ready-c2" : "ready-c");
	cr_wait_go();
	struct clocks c = { who, now_ns(CLOCK_MONOTONIC), now_ns(CLOCK_BOOTTIME) };
	if (write(up[1], &c, sizeof c) != sizeof c)
		_exit(2);
	char x;
	if (read(down[0], &x, 1) != 1) /* until the root is done */
		_exit(3);
}

static void child_c(void)
{
	pid_t c2 = fork();
	if (c2 == 0) {
		child(1);
		_exit(0);
	}
	child(0);
	int st;
	waitpid(c2, &st, 0);
	_exit(WIFEXITED(st) ? WEXITSTATUS(st) : 1);
}

static int qpipe[2];

static void child_p(void)
{
	if (unshare(CLONE_NEWTIME))
		_exit(40);
	int fd = open("/proc/self/timens_offsets", O_WRONLY);
	char o[64];
	int n = snprintf(o, sizeof o, "monotonic %lld 0\n", Q_OFF);
	if (fd < 0 || write(fd, o, (size_t)n) != n)
		_exit(41);
	close(fd);
	pid_t q = fork();
	if (q == 0) {
		cr_ready_named("ready-q");
		cr_wait_go();
		long long m = now_ns(CLOCK_MONOTONIC);
		if (write(qpipe[1], &m, sizeof m) != sizeof m)
			_exit(2);
		char x;
		if (read(down[0], &x, 1) != 1)
			_exit(3);
		_exit(0);
	}
	fd = open("/proc/self/ns/time", O_RDONLY);
	if (fd < 0 || setns(fd, CLONE_NEWTIME))
		_exit(42);
	close(fd);
	cr_ready_named("ready-p");
	cr_wait_go();
	int st;
	waitpid(q, &st, 0);
	_exit(WIFEXITED(st) ? WEXITSTATUS(st) : 1);
}

int main(int argc, char **argv)
{
	cr_init(argc, argv);
	if (pipe(up) || pipe(down) || pipe(qpipe))
		cr_fail("setup: pipe");
	pid_t p_kid = fork();
	if (p_kid == 0)
		child_p();
	cr_wait_for("ready-p");
	if (unshare(CLONE_NEWTIME)) {
		cr_fail("setup: unshare(CLONE_NEWTIME): %s", strerror(errno));
	} else {
		int fd = open("/proc/self/timens_offsets", O_WRONLY);
		char o[128];
		int n = snprintf(o, sizeof o, "monotonic %lld 0\nboottime %lld 0\n", MONO_OFF, BOOT_OFF);
		if (fd < 0 || write(fd, o, (size_t)n) != n)
			cr_fail("setup: write timens_offsets: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
	}
	pid_t c = fork();
	if (c == 0)
		child_c();
	cr_wait_for("ready-c");
	cr_wait_for("ready-c2");
	cr_wait_for("ready-q");
	long long r_mono0 = now_ns(CLOCK_MONOTONIC);
	cr_ready();
	cr_wait_go();
	long long r_mono1 = now_ns(CLOCK_MONOTONIC), r_boot1 = now_ns(CLOCK_BOOTTIME);
	long long away = r_mono1 - r_mono0; /* at least the time the tree was checkpointed */

	pid_t me = getpid();
	pid_t c2 = 0;
	{
		char path[64], buf[256] = "";
		snprintf(path, sizeof path, "/proc/%d/task/%d/children", c, c);
		ssize_t n = cr_read_file(path, buf, sizeof buf - 1);
		buf[n > 0 ? n : 0] = 0;
		c2 = atoi(buf);
	}
	unsigned long long root_ns = ns_ino(me, "time"), root_tfc = ns_ino(me, "time_for_children");
	unsigned long long c_ns = ns_ino(c, "time"), c2_ns = ns_ino(c2, "time");
	if (!c_ns || c_ns == root_ns)
		cr_fail("C is in the root's time namespace after restore");
	if (c2_ns != c_ns)
		cr_fail("C2 (time:[%llu]) is not in C's time namespace (time:[%llu])", c2_ns, c_ns);
	if (root_tfc != c_ns)
		cr_fail("the root's time_for_children time:[%llu] is not C's namespace time:[%llu]",
			root_tfc, c_ns);
	if (ns_ino(c, "time_for_children") != c_ns)
		cr_fail("C's time_for_children is not its own namespace");

	/* the children's clocks after restore */
	struct clocks after[2] = { { 0, 0, 0 }, { 0, 0, 0 } };
	for (int i = 0; i < 2; i++) {
		struct clocks c;
		if (read(up[0], &c, sizeof c) != sizeof c || c.who < 0 || c.who > 1)
			cr_fail("no clocks from the children");
		else
			after[c.who] = c;
	}
	const char *who[] = { "c", "c2" };
	for (int i = 0; i < 2; i++) {
		char nb[32];
		snprintf(nb, sizeof nb, "%s-before", who[i]);
		long long mb, bb, ma = after[i].mono, ba = after[i].boot;
		read_pair(nb, &mb, &bb);
		if (ma < mb || ba < bb)
			cr_fail("%s: clocks went backwards: monotonic %lld -> %lld, boottime %lld -> %lld",
				who[i], mb, ma, bb, ba);
		if (ma - mb > away + 2 * NS)
			cr_fail("%s: monotonic jumped %lld ns, more than the %lld ns since the dump", who[i],
				ma - mb, away);
		long long dm = ma - r_mono1, db = ba - r_boot1;
		if (dm > MONO_OFF * NS + NS || dm < MONO_OFF * NS - away - 2 * NS)
			cr_fail("%s: monotonic is %lld ns ahead of the root's, expected about %lld s", who[i],
				dm, MONO_OFF);
		if (db > BOOT_OFF * NS + NS || db < BOOT_OFF * NS - away - 2 * NS)
			cr_fail("%s: boottime is %lld ns ahead of the root's, expected about %lld s", who[i],
				db, BOOT_OFF);
	}
	int st;
	/* the root's next child is born in the namespace too, with its clock */
	int p[2];
	if (pipe(p))
		cr_fail("pipe");
	pid_t d = fork();
	if (d == 0) {
		long long m[2] = { now_ns(CLOCK_MONOTONIC), (long long)ns_ino(getpid(), "time") };
		if (write(p[1], m, sizeof m) != sizeof m)
			_exit(1);
		_exit(0);
	}
	long long got[2] = { 0, 0 };
	if (read(p[0], got, sizeof got) != sizeof got)
		cr_fail("new child: no clock");
	long long dm = got[0];
	if ((unsigned long long)got[1] != c_ns)
		cr_fail("a child forked after restore is in time:[%lld], not in C's time:[%llu]", got[1],
			c_ns);
	long long cm = after[0].mono;
	if (dm < cm)
		cr_fail("a child forked after restore reads monotonic %lld, below C's %lld", dm, cm);
	waitpid(d, NULL, 0);
	/* P's child Q, in a namespace of P's making; P is back to its own for its children */
	long long qm = 0;
	if (read(qpipe[0], &qm, sizeof qm) != sizeof qm)
		cr_fail("Q: no clock");
	long long root_now = now_ns(CLOCK_MONOTONIC);
	if (qm - root_now > Q_OFF * NS + NS || qm - root_now < Q_OFF * NS - away - 2 * NS)
		cr_fail("Q: monotonic is %lld ns ahead of the root's, expected about %lld s",
			qm - root_now, Q_OFF);
	if (ns_ino(p_kid, "time") != root_ns)
		cr_fail("P is not in the root's time namespace");
	if (ns_ino(p_kid, "time_for_children") != root_ns)
		cr_fail("P's time_for_children is not its own namespace after restore");
	if (write(down[1], "xxx", 3) != 3)
		cr_fail("cannot release the children");
	if (waitpid(p_kid, &st, 0) != p_kid || !WIFEXITED(st) || WEXITSTATUS(st))
		cr_fail("P: status %#x", st);
	if (waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st))
		cr_fail("C: status %#x", st);
	cr_finish();
	return 0;
}
