/* ipcns: the root is in an IPC namespace of its own (unshare(CLONE_NEWIPC), as a container's
 * init), with every sysctl of the namespace changed from its default, and a child in it too.
 * After restore both are in one IPC namespace, not their parent's; every sysctl has its
 * value; the namespace holds no object and new ones can be made there (a SysV message queue
 * takes the first id of a fresh namespace, 0).
 */
#include "common.h"
#include <mqueue.h>
#include <sched.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>

static const struct {
	const char *path, *value;
} vars[] = {
	{ "/proc/sys/kernel/sem", "300\t64000\t40\t200" },
	{ "/proc/sys/kernel/msgmax", "12345" },
	{ "/proc/sys/kernel/msgmnb", "23456" },
	{ "/proc/sys/kernel/msgmni", "1234" },
	{ "/proc/sys/kernel/shmmax", "123456789" },
	{ "/proc/sys/kernel/shmall", "987654321" },
	{ "/proc/sys/kernel/shmmni", "333" },
	{ "/proc/sys/kernel/shm_rmid_forced", "1" },
	{ "/proc/sys/fs/mqueue/queues_max", "77" },
	{ "/proc/sys/fs/mqueue/msg_max", "20" },
	{ "/proc/sys/fs/mqueue/msgsize_max", "4000" },
	{ "/proc/sys/fs/mqueue/msg_default", "7" },
	{ "/proc/sys/fs/mqueue/msgsize_default", "1000" },
};
#define NVARS (sizeof vars / sizeof *vars)

static ino_t ipc_ino(pid_t pid)
{
	char path[64];
	struct stat st;
	snprintf(path, sizeof path, "/proc/%d/ns/ipc", pid);
	return stat(path, &st) == 0 ? st.st_ino : 0;
}

static void read_var(const char *path, char *buf, size_t n)
{
	ssize_t got = cr_read_file(path, buf, n - 1);
	buf[got < 0 ? 0 : got] = 0;
	if (got > 0 && buf[got - 1] == '\n')
		buf[got - 1] = 0;
}

static void check_vars(const char *role)
{
	for (size_t i = 0; i < NVARS; i++) {
		char got[128], what[160];
		read_var(vars[i].path, got, sizeof got);
		snprintf(what, sizeof what, "%s: %s", role, vars[i].path);
		CHECK_S(what, vars[i].value, got);
	}
}

static void check_empty_and_usable(void)
{
	struct shm_info shm;
	struct msginfo msg;
	struct seminfo sem;
	if (shmctl(0, SHM_INFO, (struct shmid_ds *)&shm) < 0 ||
	    msgctl(0, MSG_INFO, (struct msqid_ds *)&msg) < 0 || semctl(0, 0, SEM_INFO, &sem) < 0) {
		cr_fail("SHM_INFO/MSG_INFO/SEM_INFO: %s", strerror(errno));
		return;
	}
	CHECK_U("shm segments in the namespace", 0, shm.used_ids);
	CHECK_U("message queues in the namespace", 0, msg.msgpool);
	CHECK_U("semaphore sets in the namespace", 0, sem.semusz);
	int q = msgget(IPC_PRIVATE, 0600 | IPC_CREAT);
	CHECK_I("id of a new message queue in the fresh namespace", 0, q);
	if (q >= 0)
		msgctl(q, IPC_RMID, NULL);
	/* POSIX queues: the restored msg_default/msgsize_default apply to one made without attrs */
	mqd_t m = mq_open("/cryo-ipcns-after", O_RDWR | O_CREAT | O_EXCL, 0600, NULL);
	if (m == (mqd_t)-1) {
		cr_fail("mq_open after restore: %s", strerror(errno));
		return;
	}
	struct mq_attr a;
	mq_getattr(m, &a);
	CHECK_I("maxmsg of a new POSIX queue (fs.mqueue.msg_default)", 7, a.mq_maxmsg);
	CHECK_I("msgsize of a new POSIX queue (fs.mqueue.msgsize_default)", 1000, a.mq_msgsize);
	mq_close(m);
	mq_unlink("/cryo-ipcns-after");
}

static void child_main(void)
{
	cr_ready_named("ready-c");
	cr_wait_for("go-ipc");
	check_vars("child");
	_exit(cr_verdict("result-c"));
}

int main(int argc, char **argv)
{
	cr_init(argc, argv);
	static const char *stale[] = { "ready-c", "go-ipc", "result-c" };
	for (size_t i = 0; i < sizeof stale / sizeof *stale; i++) {
		char path[2300];
		cr_path(path, sizeof path, stale[i]);
		unlink(path);
	}
	ino_t outer = ipc_ino(getpid());
	if (unshare(CLONE_NEWIPC) < 0) {
		cr_fail("setup: unshare(CLONE_NEWIPC): %s", strerror(errno));
		cr_finish();
	}
	for (size_t i = 0; i < NVARS; i++) {
		int fd = open(vars[i].path, O_WRONLY | O_CLOEXEC);
		if (fd < 0 || write(fd, vars[i].value, strlen(vars[i].value)) < 0)
			cr_fail("setup: write %s: %s", vars[i].path, strerror(errno));
		if (fd >= 0)
			close(fd);
	}
	check_vars("setup");
	pid_t c = fork();
	if (c == 0)
		child_main();
	cr_wait_for("ready-c");
	cr_ready();
	cr_wait_go();
	ino_t mine = ipc_ino(getpid());
	if (mine == ipc_ino(getppid()) || mine == outer)
		cr_fail("the root is in its parent's IPC namespace after restore");
	CHECK_U("the child's IPC namespace is the root's", mine, ipc_ino(c));
	check_vars("root");
	check_empty_and_usable();
	cr_write_file("go-ipc", "", 0);
	cr_check_child(c, "the child", "result-c");
	char path[2300];
	cr_path(path, sizeof path, "go-ipc");
	unlink(path);
	cr_finish();
}
