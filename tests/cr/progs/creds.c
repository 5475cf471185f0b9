/* creds: uids, gids, supplementary groups, capability sets (with the bounding set) and
 * keep-caps of a task that dropped root; nice. */
#define _GNU_SOURCE
#include "common.h"
#include <grp.h>
#include <sys/prctl.h>
#include <linux/capability.h>
#include <sys/syscall.h>
#include <sched.h>
#include <sys/resource.h>

static void status_line(const char *key, char *out, size_t n) { if (cr_status_field(key, out, n) < 0) out[0] = 0; }
int main(int argc, char **argv) {
	cr_init(argc, argv);
	/* the workdir must stay writable for us once we are no longer root */
	if (chmod(cr_dir, 0777)) cr_fail("setup: chmod workdir");
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
	cr_finish();
	return 0;
}
