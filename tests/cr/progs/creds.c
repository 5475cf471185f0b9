/* creds: uids, gids, supplementary groups, capability sets (with the bounding set) and
 * keep-caps of a task that dropped root; nice. A child locked its securebits (KEEP_CAPS and
 * NOROOT, both locked) and dropped root and CAP_SETPCAP: the same bits, uids and
 * capabilities after restore. */
#define _GNU_SOURCE
#include "common.h"
#include <grp.h>
#include <sys/prctl.h>
#include <linux/capability.h>
#include <sys/syscall.h>
#include <sched.h>
#include <sys/resource.h>
#include <linux/securebits.h>
#include <sys/wait.h>

static void status_line(const char *key, char *out, size_t n) { if (cr_status_field(key, out, n) < 0) out[0] = 0; }
int main(int argc, char **argv) {
	cr_init(argc, argv);
	/* the workdir must stay writable for us once we are no longer root */
	if (chmod(cr_dir, 0777)) cr_fail("setup: chmod workdir");
	pid_t kid = fork();
	if (kid == 0) {
		int bits = SECBIT_KEEP_CAPS | SECBIT_KEEP_CAPS_LOCKED | SECBIT_NOROOT | SECBIT_NOROOT_LOCKED;
		if (prctl(PR_SET_SECUREBITS, bits)) _exit(10);
		if (setresuid(3001, 3001, 3001)) _exit(11);
		struct __user_cap_header_struct kh = {_LINUX_CAPABILITY_VERSION_3, 0};
		struct __user_cap_data_struct kd[2] = {{0}};
		kd[0].permitted = (1u << CAP_KILL) | (1u << CAP_CHOWN);
		kd[0].effective = (1u << CAP_KILL);
		if (syscall(SYS_capset, &kh, kd)) _exit(12);
		char kb[3][256], ka[3][256], kk[][16] = {"Uid", "CapPrm", "CapEff"};
		for (int i = 0; i < 3; i++) status_line(kk[i], kb[i], 256);
		cr_write_file("kid-ready", "1", 1);
		cr_wait_go();
		if (prctl(PR_GET_SECUREBITS) != bits) _exit(13);
		for (int i = 0; i < 3; i++) {
			status_line(kk[i], ka[i], 256);
			if (strcmp(kb[i], ka[i])) _exit(14 + i);
		}
		if (prctl(PR_SET_KEEPCAPS, 0) == 0) _exit(17); /* still locked */
		_exit(0);
	}
	cr_wait_for("kid-ready");
	gid_t gs[3] = {100, 200, 300};
	if (setgroups(3, gs)) cr_fail("setgroups");
	if (setresgid(1001, 1002, 1003)) cr_fail("setresgid");
	prctl(PR_CAPBSET_DROP, CAP_SYS_MODULE);
	prctl(PR_SET_KEEPCAPS, 1);
	if (setresuid(2001, 2002, 2003)) cr_fail("setresuid");
	struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct d[2] = {{0}};
	d[0].permitted = (1u << CAP_NET_BIND_SERVICE) | (1u << CAP_CHOWN) | (1u << CAP_KILL);
	d[0].effective = (1u << CAP_NET_BIND_SERVICE);
	d[0].inheritable = (1u << CAP_CHOWN);
	if (syscall(SYS_capset, &h, d)) cr_fail("capset");
	prctl(PR_SET_PDEATHSIG, SIGUSR2);
	setpriority(PRIO_PROCESS, 0, 7);
	char keys[][16] = {"Uid", "Gid", "Groups", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"};
	char before[8][256], after[8][256];
	for (int i = 0; i < 8; i++) status_line(keys[i], before[i], 256);
	int pd0 = 0; prctl(PR_GET_PDEATHSIG, &pd0);
	int kc0 = prctl(PR_GET_KEEPCAPS);
	cr_ready();
	cr_wait_go();
	for (int i = 0; i < 8; i++) { status_line(keys[i], after[i], 256); if (strcmp(before[i], after[i])) cr_fail("%s: %s -> %s", keys[i], before[i], after[i]); }
	(void)pd0; /* the root's pdeath signal is not restored: its old parent is gone */
	if (prctl(PR_GET_KEEPCAPS) != kc0) cr_fail("keepcaps");
	errno = 0; if (getpriority(PRIO_PROCESS, 0) != 7) cr_fail("nice %d", getpriority(PRIO_PROCESS, 0));
	int kst = 0;
	if (waitpid(kid, &kst, 0) != kid || !WIFEXITED(kst) || WEXITSTATUS(kst))
		cr_fail("child with locked securebits: status %#x (exit 10-12 setup, 13 bits, 14-16 Uid/CapPrm/CapEff, 17 unlocked)", kst);
	cr_finish();
	return 0;
}
