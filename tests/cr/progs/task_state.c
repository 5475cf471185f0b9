/* task_state: per-task kernel state must survive checkpoint/restore:
 * TLS and the fs base, auxv, the mm layout fields of /proc/self/stat,
 * /proc/self/exe, cmdline/environ, comm, personality, umask, cwd and root,
 * all rlimits, ids (pid, pgrp, sid, uids, gids, groups), nice value and the
 * child-subreaper flag.
 */
#include "common.h"
#include <asm/prctl.h>
#include <grp.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>

static __thread int tls_a = 0x11223344;
static __thread uint64_t tls_b[16];

struct state {
	void *tls_a_addr;
	uint64_t tls_b[16];
	unsigned long fs_base, gs_base;
	char auxv[4096];
	ssize_t auxv_len;
	unsigned long long stat_fields[53]; /* index = field number */
	char exe[4096];
	char cmdline[4096];
	ssize_t cmdline_len;
	char environ_[16384];
	ssize_t environ_len;
	char comm[32];
	char proc_comm[32];
	int persona;
	char umask_status[32];
	char cwd[4096];
	char root[4096];
	struct rlimit rl[RLIM_NLIMITS];
	pid_t pid, pgrp, sid;
	uid_t ruid, euid, suid;
	gid_t rgid, egid, sgid;
	int ngroups;
	gid_t groups[64];
	int nice;
	int subreaper;
	long timerslack;
	int fds[1024], nfds;
};

static struct state before, after;

static const char *rl_names[RLIM_NLIMITS] = {
	"RLIMIT_CPU",	 "RLIMIT_FSIZE",  "RLIMIT_DATA",    "RLIMIT_STACK",  "RLIMIT_CORE",
	"RLIMIT_RSS",	 "RLIMIT_NPROC",  "RLIMIT_NOFILE",  "RLIMIT_MEMLOCK", "RLIMIT_AS",
	"RLIMIT_LOCKS",	 "RLIMIT_SIGPENDING", "RLIMIT_MSGQUEUE", "RLIMIT_NICE",  "RLIMIT_RTPRIO",
	"RLIMIT_RTTIME",
};

static void read_stat_fields(unsigned long long *f)
{
	char buf[4096];
	ssize_t n = cr_read_file("/proc/self/stat", buf, sizeof buf - 1);
	memset(f, 0, 53 * sizeof *f);
	if (n < 0) {
		cr_fail("cannot read /proc/self/stat");
		return;
	}
	buf[n] = 0;
	char *p = strrchr(buf, ')');
	if (!p)
		return;
	p += 2; /* field 3 (state) */
	for (int i = 3; i <= 52 && *p; i++) {
		if (i > 3)
			f[i] = strtoull(p, NULL, 10);
		p = strchr(p, ' ');
		if (!p)
			break;
		p++;
	}
}

static void snapshot(struct state *s)
{
	s->tls_a_addr = &tls_a;
	memcpy(s->tls_b, tls_b, sizeof tls_b);
	syscall(SYS_arch_prctl, ARCH_GET_FS, &s->fs_base);
	syscall(SYS_arch_prctl, ARCH_GET_GS, &s->gs_base);
	s->auxv_len = cr_read_file("/proc/self/auxv", s->auxv, sizeof s->auxv);
	read_stat_fields(s->stat_fields);
	ssize_t n = readlink("/proc/self/exe", s->exe, sizeof s->exe - 1);
	s->exe[n < 0 ? 0 : n] = 0;
	s->cmdline_len = cr_read_file("/proc/self/cmdline", s->cmdline, sizeof s->cmdline);
	s->environ_len = cr_read_file("/proc/self/environ", s->environ_, sizeof s->environ_);
	memset(s->comm, 0, sizeof s->comm);
	prctl(PR_GET_NAME, s->comm);
	n = cr_read_file("/proc/self/comm", s->proc_comm, sizeof s->proc_comm - 1);
	s->proc_comm[n < 0 ? 0 : n] = 0;
	s->persona = personality(0xffffffff);
	s->timerslack = prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0);
	cr_status_field("Umask", s->umask_status, sizeof s->umask_status);
	if (!getcwd(s->cwd, sizeof s->cwd))
		s->cwd[0] = 0;
	n = readlink("/proc/self/root", s->root, sizeof s->root - 1);
	s->root[n < 0 ? 0 : n] = 0;
	for (int i = 0; i < RLIM_NLIMITS; i++)
		getrlimit(i, &s->rl[i]);
	s->pid = getpid();
	s->pgrp = getpgrp();
	s->sid = getsid(0);
	getresuid(&s->ruid, &s->euid, &s->suid);
	getresgid(&s->rgid, &s->egid, &s->sgid);
	s->ngroups = getgroups(64, s->groups);
	errno = 0;
	s->nice = getpriority(PRIO_PROCESS, 0);
	prctl(PR_GET_CHILD_SUBREAPER, &s->subreaper);
	s->nfds = cr_list_fds(s->fds, 1024);
}

static void compare(void)
{
	CHECK_X("address of __thread variable", (uintptr_t)before.tls_a_addr, (uintptr_t)&tls_a);
	CHECK_X("__thread int value", 0x11223344, tls_a);
	for (int i = 0; i < 16; i++) {
		char w[64];
		snprintf(w, sizeof w, "__thread array[%d]", i);
		CHECK_X(w, before.tls_b[i], tls_b[i]);
	}
	CHECK_X("arch_prctl(ARCH_GET_FS)", before.fs_base, after.fs_base);
	CHECK_X("arch_prctl(ARCH_GET_GS)", before.gs_base, after.gs_base);
	CHECK_X("thread pointer (%fs:0) vs fs base", after.fs_base,
		(uintptr_t)__builtin_thread_pointer());

	if (before.auxv_len != after.auxv_len)
		cr_fail("/proc/self/auxv length expected %zd got %zd", before.auxv_len, after.auxv_len);
	else if (before.auxv_len > 0)
		for (ssize_t i = 0; i + 16 <= before.auxv_len; i += 16) {
			uint64_t ek, ev, gk, gv;
			memcpy(&ek, before.auxv + i, 8);
			memcpy(&ev, before.auxv + i + 8, 8);
			memcpy(&gk, after.auxv + i, 8);
			memcpy(&gv, after.auxv + i + 8, 8);
			if (ek != gk || ev != gv)
				cr_fail("/proc/self/auxv entry %zd expected (%llu, 0x%llx) got (%llu, 0x%llx)",
					i / 16, (unsigned long long)ek, (unsigned long long)ev,
					(unsigned long long)gk, (unsigned long long)gv);
		}

	static const int fields[] = { 26, 27, 28, 45, 46, 47, 48, 49, 50, 51 };
	static const char *fnames[] = { "startcode", "endcode", "startstack", "start_data",
					"end_data",  "start_brk", "arg_start",  "arg_end",
					"env_start", "env_end" };
	for (unsigned i = 0; i < sizeof fields / sizeof fields[0]; i++) {
		char w[80];
		snprintf(w, sizeof w, "/proc/self/stat field %d (%s)", fields[i], fnames[i]);
		CHECK_X(w, before.stat_fields[fields[i]], after.stat_fields[fields[i]]);
	}
	CHECK_S("readlink /proc/self/exe", before.exe, after.exe);
	if (before.cmdline_len != after.cmdline_len ||
	    memcmp(before.cmdline, after.cmdline, (size_t)before.cmdline_len) != 0)
		cr_fail("/proc/self/cmdline differs (%zd bytes before, %zd after)", before.cmdline_len,
			after.cmdline_len);
	if (before.environ_len != after.environ_len ||
	    memcmp(before.environ_, after.environ_, (size_t)before.environ_len) != 0)
		cr_fail("/proc/self/environ differs (%zd bytes before, %zd after)", before.environ_len,
			after.environ_len);
	CHECK_S("prctl(PR_GET_NAME)", "cryo-test-comm", after.comm);
	CHECK_S("/proc/self/comm", "cryo-test-comm\n", after.proc_comm);
	CHECK_X("personality", before.persona, after.persona);
	CHECK_X("prctl(PR_GET_TIMERSLACK)", 123457L, after.timerslack);
	if (!(after.persona & ADDR_NO_RANDOMIZE))
		cr_fail("personality lost ADDR_NO_RANDOMIZE (0x%x)", after.persona);
	CHECK_S("/proc/self/status Umask", "0027", after.umask_status);
	mode_t um = umask(0);
	umask(um);
	CHECK_U("umask()", 027, um);
	CHECK_S("getcwd", before.cwd, after.cwd);
	char want_cwd[4200];
	snprintf(want_cwd, sizeof want_cwd, "%s/sub", cr_dir);
	CHECK_S("getcwd vs WORKDIR/sub", want_cwd, after.cwd);
	CHECK_S("readlink /proc/self/root", before.root, after.root);
	for (int i = 0; i < RLIM_NLIMITS; i++) {
		char w[64];
		snprintf(w, sizeof w, "%s soft", rl_names[i]);
		CHECK_U(w, before.rl[i].rlim_cur, after.rl[i].rlim_cur);
		snprintf(w, sizeof w, "%s hard", rl_names[i]);
		CHECK_U(w, before.rl[i].rlim_max, after.rl[i].rlim_max);
	}
	CHECK_U("RLIMIT_NOFILE soft (set to 300)", 300, after.rl[RLIMIT_NOFILE].rlim_cur);
	CHECK_U("RLIMIT_CORE soft (set to 0)", 0, after.rl[RLIMIT_CORE].rlim_cur);
	CHECK_I("getpid", before.pid, after.pid);
	CHECK_I("getpgrp", before.pgrp, after.pgrp);
	CHECK_I("getsid", before.sid, after.sid);
	CHECK_U("ruid", before.ruid, after.ruid);
	CHECK_U("euid", before.euid, after.euid);
	CHECK_U("suid", before.suid, after.suid);
	CHECK_U("rgid", before.rgid, after.rgid);
	CHECK_U("egid", before.egid, after.egid);
	CHECK_U("sgid", before.sgid, after.sgid);
	CHECK_I("getgroups count", before.ngroups, after.ngroups);
	for (int i = 0; i < before.ngroups && i < after.ngroups; i++)
		CHECK_U("supplementary group", before.groups[i], after.groups[i]);
	CHECK_I("nice value (getpriority)", 7, after.nice);
	CHECK_I("PR_GET_CHILD_SUBREAPER", 1, after.subreaper);
	cr_check_fds(before.fds, before.nfds);
	cr_check_threads_1();
}

static void die(const char *what)
{
	cr_fail("setup: %s: %s", what, strerror(errno));
	cr_finish();
}

int main(int argc, char **argv)
{
	cr_init(argc, argv);

	for (int i = 0; i < 16; i++)
		tls_b[i] = 0xF00D000000000000ULL + (uint64_t)i * 0x10001;
	if (prctl(PR_SET_NAME, "cryo-test-comm") < 0)
		die("PR_SET_NAME");
	int p = personality(0xffffffff);
	if (personality((unsigned long)p | ADDR_NO_RANDOMIZE) < 0)
		die("personality");
	umask(027);
	char sub[4200];
	snprintf(sub, sizeof sub, "%s/sub", cr_dir);
	if (mkdir(sub, 0755) < 0 && errno != EEXIST)
		die("mkdir sub");
	if (chdir(sub) < 0)
		die("chdir sub");

	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	rl.rlim_cur = 300;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		die("RLIMIT_NOFILE");
	getrlimit(RLIMIT_CORE, &rl);
	rl.rlim_cur = 0;
	if (setrlimit(RLIMIT_CORE, &rl) < 0)
		die("RLIMIT_CORE");
	getrlimit(RLIMIT_STACK, &rl);
	rl.rlim_cur = 7 << 20;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < rl.rlim_cur)
		rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_STACK, &rl) < 0)
		die("RLIMIT_STACK");
	getrlimit(RLIMIT_MSGQUEUE, &rl); /* lower the hard limit too (allowed without CAP_SYS_RESOURCE) */
	if (rl.rlim_max == RLIM_INFINITY || rl.rlim_max > 700000)
		rl.rlim_max = 700000;
	rl.rlim_cur = rl.rlim_max - 100000;
	if (setrlimit(RLIMIT_MSGQUEUE, &rl) < 0)
		die("RLIMIT_MSGQUEUE");
	getrlimit(RLIMIT_CPU, &rl);
	rl.rlim_cur = 100000;
	if (setrlimit(RLIMIT_CPU, &rl) < 0)
		die("RLIMIT_CPU");

	if (setpriority(PRIO_PROCESS, 0, 7) < 0)
		die("setpriority");
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		die("PR_SET_CHILD_SUBREAPER");
	if (prctl(PR_SET_TIMERSLACK, 123457UL, 0, 0, 0) < 0)
		die("PR_SET_TIMERSLACK");

	snapshot(&before);
	cr_ready();
	cr_wait_go();
	snapshot(&after);
	compare();
	cr_finish();
}
