/* seccomp: a chain of two filters (each making one syscall fail with its own errno) and
 * no_new_privs survive. */
#define _GNU_SOURCE
#include "common.h"
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <linux/audit.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

/* A filter that makes getppid() fail with EPERM 77 and allows everything else. */
int main(int argc, char **argv) {
	cr_init(argc, argv);
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_getppid, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | 77),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_filter g[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_getpgrp, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | 78),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog p = {4, f}, q = {4, g};
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)) cr_fail("nnp");
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &p)) cr_fail("seccomp1 %s", strerror(errno));
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &q)) cr_fail("seccomp2 %s", strerror(errno));
	char s0[64], n0[64];
	cr_status_field("Seccomp", s0, sizeof s0); cr_status_field("NoNewPrivs", n0, sizeof n0);
	cr_ready();
	cr_wait_go();
	errno = 0; long r = syscall(SYS_getppid);
	if (r != -1 || errno != 77) cr_fail("getppid: %ld errno %d (filter 1 lost)", r, errno);
	errno = 0; r = syscall(SYS_getpgrp);
	if (r != -1 || errno != 78) cr_fail("getpgrp: %ld errno %d (filter 2 lost)", r, errno);
	if (syscall(SYS_getpid) != getpid()) cr_fail("getpid");
	char s1[64], n1[64];
	cr_status_field("Seccomp", s1, sizeof s1); cr_status_field("NoNewPrivs", n1, sizeof n1);
	if (strcmp(s0, s1)) cr_fail("Seccomp %s -> %s", s0, s1);
	if (strcmp(n0, n1)) cr_fail("NoNewPrivs %s -> %s", n0, n1);
	cr_finish();
	return 0;
}
