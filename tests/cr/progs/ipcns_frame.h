/* The frame of the ipcns programs: the root makes an IPC namespace of its own
 * (unshare(CLONE_NEWIPC), as a container's init), fills it (setup), forks a child in it and
 * writes ready. After go, the root checks that it and the child are in one IPC namespace that
 * is not its parent's, runs root_check, then lets the child run child_check. */
#ifndef CR_IPCNS_FRAME_H
#define CR_IPCNS_FRAME_H

#include "common.h"
#include <sched.h>

static ino_t ipcns_ino(pid_t pid)
{
	char path[64];
	struct stat st;
	snprintf(path, sizeof path, "/proc/%d/ns/ipc", pid);
	return stat(path, &st) == 0 ? st.st_ino : 0;
}

static void ipcns_unlink(const char *name)
{
	char path[2300];
	cr_path(path, sizeof path, name);
	unlink(path);
}

static int ipcns_run(int argc, char **argv, void (*setup)(void), void (*root_check)(void),
		     void (*child_check)(void))
{
	cr_init(argc, argv);
	ipcns_unlink("ready-c");
	ipcns_unlink("go-ipc");
	ipcns_unlink("result-c");
	ino_t outer = ipcns_ino(getpid());
	if (unshare(CLONE_NEWIPC) < 0) {
		cr_fail("setup: unshare(CLONE_NEWIPC): %s", strerror(errno));
		cr_finish();
	}
	setup();
	pid_t c = fork();
	if (c == 0) {
		cr_ready_named("ready-c");
		cr_wait_for("go-ipc");
		child_check();
		_exit(cr_verdict("result-c"));
	}
	cr_wait_for("ready-c");
	cr_ready();
	cr_wait_go();
	ino_t mine = ipcns_ino(getpid());
	if (mine == ipcns_ino(getppid()) || mine == outer)
		cr_fail("the root is in its parent's IPC namespace after restore");
	CHECK_U("the child's IPC namespace is the root's", mine, ipcns_ino(c));
	root_check();
	cr_write_file("go-ipc", "", 0);
	cr_check_child(c, "the child", "result-c");
	ipcns_unlink("go-ipc");
	cr_finish();
	return 0;
}

#endif
