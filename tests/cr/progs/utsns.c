/* utsns: a child in a UTS namespace of its own keeps its host and domain names:
 *   root (cryo's UTS namespace)
 *   +- c     clone(CLONE_NEWUTS), sethostname/setdomainname
 *      +- d  inherits c's namespace
 * After restore, c and d see the names set in c, in the same namespace (one, not two), the
 * root sees the host's names, unchanged, in another namespace than c's.
 */
#include "common.h"
#include <sched.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>

static char host[80], dom[80];

static void names(const char *role, const char *want_host, const char *want_dom)
{
	struct utsname u;
	char w[64];
	if (uname(&u) < 0) {
		cr_fail("%s: uname: %s", role, strerror(errno));
		return;
	}
	snprintf(w, sizeof w, "%s host name", role);
	CHECK_S(w, want_host, u.nodename);
	snprintf(w, sizeof w, "%s domain name", role);
	CHECK_S(w, want_dom, u.domainname);
}

static ino_t uts_ino(pid_t pid)
{
	char path[64];
	struct stat st;
	snprintf(path, sizeof path, "/proc/%d/ns/uts", pid);
	return stat(path, &st) == 0 ? st.st_ino : 0;
}

static void d_main(void)
{
	cr_ready_named("ready-d");
	cr_wait_for("go-uts");
	names("d", host, dom);
	cr_wait_for("go-d");
	_exit(cr_verdict("result-d"));
}

static void c_main(void)
{
	snprintf(host, sizeof host, "cryo-uts-%d", (int)getpid());
	snprintf(dom, sizeof dom, "dom-%d.cryo.example", (int)getpid());
	if (sethostname(host, strlen(host)) < 0 || setdomainname(dom, strlen(dom)) < 0)
		cr_fail("setup: sethostname/setdomainname: %s", strerror(errno));
	pid_t d = fork();
	if (d == 0)
		d_main();
	cr_ready_named("ready-c");
	cr_wait_for("go-uts");
	names("c", host, dom);
	CHECK_U("d's uts namespace is c's", uts_ino(getpid()), uts_ino(d));
	cr_write_file("go-d", "", 0);
	int st = 0;
	if (waitpid(d, &st, 0) != d || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		cr_fail("d ended with status 0x%x (see result-d)", st);
	_exit(cr_verdict("result-c"));
}

int main(int argc, char **argv)
{
	cr_init(argc, argv);
	static const char *stale[] = { "ready-c", "ready-d", "go-uts", "go-d" };
	for (size_t i = 0; i < sizeof stale / sizeof *stale; i++) {
		char path[2300];
		cr_path(path, sizeof path, stale[i]);
		unlink(path);
	}
	struct utsname mine;
	uname(&mine);
	pid_t c = (pid_t)syscall(SYS_clone, CLONE_NEWUTS | SIGCHLD, 0, 0, 0, 0);
	if (c == 0)
		c_main();
	if (c < 0) {
		cr_fail("setup: clone(CLONE_NEWUTS): %s", strerror(errno));
		cr_finish();
	}
	cr_wait_for("ready-c");
	cr_wait_for("ready-d");
	cr_ready();
	cr_wait_go();
	names("root", mine.nodename, mine.domainname);
	if (uts_ino(getpid()) == uts_ino(c))
		cr_fail("c is in the root's uts namespace after restore");
	cr_write_file("go-uts", "", 0);
	int st = 0;
	if (waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		char path[2300], buf[4096];
		cr_path(path, sizeof path, "result-c");
		ssize_t n = cr_read_file(path, buf, sizeof buf - 1);
		buf[n < 0 ? 0 : n] = 0;
		cr_fail("c ended with status 0x%x: %s", st, buf);
	}
	char path[2300];
	cr_path(path, sizeof path, "go-uts");
	unlink(path);
	cr_path(path, sizeof path, "go-d");
	unlink(path);
	cr_finish();
}
