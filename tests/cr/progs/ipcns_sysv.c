/* ipcns_sysv: the root is in an IPC namespace of its own holding SysV objects; after restore
 * each is there with its id, key, owner, creator, mode and content, and nothing else is:
 *   U: a shared memory segment no task attaches, 3 pages + 5 bytes, mode 0604, owner
 *      1234:2345, made after another segment was removed (so its id is not the first one),
 *      written only in its second page and its last byte (the rest reads as zeros);
 *   (one object of each kind is made and removed first: no kept one has the id 0 a fresh
 *   namespace would give);
 *   S: a semaphore set of 5 (0, 1, 7, 32767, 42), key of its own, made by uid/gid 65534,
 *      owned by 1001:1002, mode 0640;
 *   Q: a message queue, key of its own, mode 0620, 4 messages of types 1, 5, 2, 5 (5, 9000,
 *      0 and 4 bytes): its size (60000 bytes) is above kernel.msgmnb (20000) when dumped, and
 *      a message is above the default kernel.msgmax (msgmax is 10000);
 *   P: an IPC_PRIVATE message queue, empty, its size lowered to 100 bytes.
 * A child in the namespace finds S and Q by their keys. After the checks, the objects still
 * work: a semop, a message taken by type.
 * Another child, K, made an IPC namespace of its own (not the root's) with a semaphore set
 * (3, 4) and a queue holding one message: both are back in K's namespace, not in the root's.
 */
#include "ipcns_frame.h"
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/syscall.h>

#define PG 4096
#define U_SIZE (3 * PG + 5)
#define NOBODY 65534
#define KEY_S 0x5e11c0de
#define KEY_Q 0x3e55c0de

union semun {
	int val;
	struct semid_ds *buf;
	unsigned short *array;
};

static const unsigned short sem_values[5] = { 0, 1, 7, 32767, 42 };
static const long msg_types[4] = { 1, 5, 2, 5 };
static const size_t msg_sizes[4] = { 5, 9000, 0, 4 };
static int idu, ids, idq, idp;

static unsigned char pat(int msg, size_t i) { return (unsigned char)(i * 13 + msg * 7 + 1); }

static void write_var(const char *path, const char *value)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, value, strlen(value)) < 0)
		cr_fail("setup: write %s: %s", path, strerror(errno));
	if (fd >= 0)
		close(fd);
}

static void check_var(const char *path, const char *want)
{
	char got[64];
	ssize_t n = cr_read_file(path, got, sizeof got - 1);
	got[n < 0 ? 0 : n] = 0;
	if (n > 0 && got[n - 1] == '\n')
		got[n - 1] = 0;
	CHECK_S(path, want, got);
}

/* semget(KEY_S) as uid/gid NOBODY, so that it is the set's creator. */
static int make_sem_as_nobody(void)
{
	int p[2], id = -1;
	if (pipe(p) < 0)
		return -1;
	pid_t h = fork();
	if (h == 0) {
		if (syscall(SYS_setresgid, NOBODY, NOBODY, NOBODY) == 0 &&
		    syscall(SYS_setresuid, NOBODY, NOBODY, NOBODY) == 0)
			id = semget(KEY_S, 5, 0640 | IPC_CREAT | IPC_EXCL);
		int e = id < 0 ? -errno : id;
		_exit(write(p[1], &e, sizeof e) == sizeof e ? 0 : 1);
	}
	close(p[1]);
	if (read(p[0], &id, sizeof id) != sizeof id)
		id = -EIO;
	close(p[0]);
	waitpid(h, NULL, 0);
	if (id < 0)
		errno = -id;
	return id;
}

static pid_t k_pid;

static void k_main(void)
{
	if (unshare(CLONE_NEWIPC) < 0) {
		cr_fail("K: unshare(CLONE_NEWIPC): %s", strerror(errno));
		_exit(cr_verdict("result-k"));
	}
	int sem = semget(IPC_PRIVATE, 2, 0600 | IPC_CREAT);
	int q = msgget(IPC_PRIVATE, 0600 | IPC_CREAT);
	unsigned short v[2] = { 3, 4 };
	union semun arg;
	arg.array = v;
	struct {
		long type;
		char text[8];
	} m = { 7, "inner" };
	if (sem < 0 || q < 0 || semctl(sem, 0, SETALL, arg) < 0 || msgsnd(q, &m, 5, 0) < 0)
		cr_fail("K: setup: %s", strerror(errno));
	cr_ready_named("ready-k");
	cr_wait_for("go-k");
	v[0] = v[1] = 0;
	semctl(sem, 0, GETALL, arg);
	CHECK_U("K semaphore 0", 3, v[0]);
	CHECK_U("K semaphore 1", 4, v[1]);
	memset(&m, 0, sizeof m);
	CHECK_I("K message size", 5, (long)msgrcv(q, &m, sizeof m.text, 0, IPC_NOWAIT));
	CHECK_I("K message type", 7, m.type);
	CHECK_S("K message text", "inner", m.text);
	_exit(cr_verdict("result-k"));
}

static void setup(void)
{
	ipcns_unlink("ready-k");
	ipcns_unlink("go-k");
	ipcns_unlink("result-k");
	k_pid = fork();
	if (k_pid == 0)
		k_main();
	cr_wait_for("ready-k");
	write_var("/proc/sys/kernel/msgmax", "10000");
	write_var("/proc/sys/kernel/msgmnb", "60000");
	/* one of each kind made and removed first: the objects kept do not have the first ids */
	int gone = shmget(IPC_PRIVATE, PG, 0600 | IPC_CREAT);
	if (gone >= 0)
		shmctl(gone, IPC_RMID, NULL);
	int gone_sem = semget(IPC_PRIVATE, 1, 0600 | IPC_CREAT);
	if (gone_sem >= 0)
		semctl(gone_sem, 0, IPC_RMID);
	int gone_msg = msgget(IPC_PRIVATE, 0600 | IPC_CREAT);
	if (gone_msg >= 0)
		msgctl(gone_msg, IPC_RMID, NULL);
	idu = shmget(IPC_PRIVATE, U_SIZE, 0604 | IPC_CREAT);
	ids = make_sem_as_nobody();
	idq = msgget(KEY_Q, 0620 | IPC_CREAT | IPC_EXCL);
	idp = msgget(IPC_PRIVATE, 0600 | IPC_CREAT);
	if (gone < 0 || idu < 0 || ids < 0 || idq < 0 || idp < 0) {
		cr_fail("setup: making the objects: %s", strerror(errno));
		cr_finish();
	}
	if (idu == gone || ids == gone_sem || idq == gone_msg || idp == gone_msg)
		cr_fail("setup: an object took the id of a removed one");
	if (!idu || !ids || !idq || !idp)
		cr_fail("setup: an object has id 0 (the first one of a fresh namespace)");
	struct shmid_ds sd;
	shmctl(idu, IPC_STAT, &sd);
	sd.shm_perm.uid = 1234;
	sd.shm_perm.gid = 2345;
	if (shmctl(idu, IPC_SET, &sd) < 0)
		cr_fail("setup: IPC_SET of U: %s", strerror(errno));
	unsigned char *u = shmat(idu, NULL, 0);
	if (u == (void *)-1) {
		cr_fail("setup: shmat U: %s", strerror(errno));
		cr_finish();
	}
	for (size_t i = 0; i < PG; i++)
		u[PG + i] = pat(9, i);
	u[U_SIZE - 1] = 0x5a;
	shmdt(u);

	union semun arg;
	arg.array = (unsigned short *)sem_values;
	if (semctl(ids, 0, SETALL, arg) < 0)
		cr_fail("setup: SETALL: %s", strerror(errno));
	struct semid_ds ss;
	arg.buf = &ss;
	semctl(ids, 0, IPC_STAT, arg);
	ss.sem_perm.uid = 1001;
	ss.sem_perm.gid = 1002;
	if (semctl(ids, 0, IPC_SET, arg) < 0)
		cr_fail("setup: IPC_SET of S: %s", strerror(errno));

	static struct {
		long type;
		unsigned char text[9000];
	} m;
	for (int k = 0; k < 4; k++) {
		m.type = msg_types[k];
		for (size_t i = 0; i < msg_sizes[k]; i++)
			m.text[i] = pat(k, i);
		if (msgsnd(idq, &m, msg_sizes[k], IPC_NOWAIT) < 0)
			cr_fail("setup: msgsnd %d: %s", k, strerror(errno));
	}
	struct msqid_ds qs;
	msgctl(idp, IPC_STAT, &qs);
	qs.msg_qbytes = 100;
	if (msgctl(idp, IPC_SET, &qs) < 0)
		cr_fail("setup: IPC_SET of P: %s", strerror(errno));
	write_var("/proc/sys/kernel/msgmnb", "20000");
}

#define F(name, field, exp, got)                                         \
	do {                                                             \
		char w_[96];                                             \
		snprintf(w_, sizeof w_, "%s %s", name, field);           \
		CHECK_X(w_, exp, got);                                   \
	} while (0)

static void check_perm(const char *name, const struct ipc_perm *p, key_t key, unsigned uid,
		       unsigned gid, unsigned cuid, unsigned cgid, unsigned mode)
{
	F(name, "key", (unsigned)key, (unsigned)p->__key);
	F(name, "uid", uid, p->uid);
	F(name, "gid", gid, p->gid);
	F(name, "cuid", cuid, p->cuid);
	F(name, "cgid", cgid, p->cgid);
	F(name, "mode", mode, p->mode & 0777);
}

static void check_all(void)
{
	if (ipcns_ino(k_pid) == ipcns_ino(getpid()) || !ipcns_ino(k_pid))
		cr_fail("K is not in an IPC namespace of its own after restore");
	cr_write_file("go-k", "", 0);
	cr_check_child(k_pid, "K", "result-k");
	ipcns_unlink("go-k");
	check_var("/proc/sys/kernel/msgmax", "10000");
	check_var("/proc/sys/kernel/msgmnb", "20000");
	struct shm_info si;
	struct msginfo mi;
	struct seminfo se;
	shmctl(0, SHM_INFO, (struct shmid_ds *)&si);
	msgctl(0, MSG_INFO, (struct msqid_ds *)&mi);
	semctl(0, 0, SEM_INFO, &se);
	CHECK_U("shm segments in the namespace", 1, si.used_ids);
	CHECK_U("semaphore sets in the namespace", 1, se.semusz);
	CHECK_U("message queues in the namespace", 2, mi.msgpool);

	struct shmid_ds sd;
	if (shmctl(idu, IPC_STAT, &sd) < 0) {
		cr_fail("U (id %d): IPC_STAT: %s", idu, strerror(errno));
	} else {
		check_perm("U", &sd.shm_perm, IPC_PRIVATE, 1234, 2345, 0, 0, 0604);
		F("U", "size", U_SIZE, sd.shm_segsz);
		F("U", "nattch", 0, sd.shm_nattch);
		unsigned char *u = shmat(idu, NULL, SHM_RDONLY);
		if (u == (void *)-1) {
			cr_fail("U: shmat: %s", strerror(errno));
		} else {
			size_t bad = 0, first = 0;
			for (size_t i = 0; i < U_SIZE; i++) {
				unsigned char want = i >= PG && i < 2 * PG ? pat(9, i - PG)
						     : i == U_SIZE - 1	  ? 0x5a
									  : 0;
				if (u[i] != want && !bad++)
					first = i;
			}
			if (bad)
				cr_fail("U: %zu bytes differ, the first at %zu", bad, first);
			shmdt(u);
		}
	}

	union semun arg;
	struct semid_ds ss;
	arg.buf = &ss;
	if (semctl(ids, 0, IPC_STAT, arg) < 0) {
		cr_fail("S (id %d): IPC_STAT: %s", ids, strerror(errno));
	} else {
		check_perm("S", &ss.sem_perm, KEY_S, 1001, 1002, NOBODY, NOBODY, 0640);
		F("S", "nsems", 5, ss.sem_nsems);
		unsigned short v[5] = { 9, 9, 9, 9, 9 };
		arg.array = v;
		semctl(ids, 0, GETALL, arg);
		for (int k = 0; k < 5; k++) {
			char w[32];
			snprintf(w, sizeof w, "S value %d", k);
			CHECK_U(w, sem_values[k], v[k]);
		}
		struct sembuf op = { 2, -7, IPC_NOWAIT };
		if (semop(ids, &op, 1) < 0)
			cr_fail("S: semop -7 on semaphore 2: %s", strerror(errno));
		CHECK_I("S semaphore 2 after semop", 0, semctl(ids, 2, GETVAL));
	}

	struct msqid_ds qs;
	if (msgctl(idq, IPC_STAT, &qs) < 0) {
		cr_fail("Q (id %d): IPC_STAT: %s", idq, strerror(errno));
	} else {
		check_perm("Q", &qs.msg_perm, KEY_Q, 0, 0, 0, 0, 0620);
		F("Q", "qnum", 4, qs.msg_qnum);
		F("Q", "qbytes", 60000, qs.msg_qbytes);
		F("Q", "cbytes", 5 + 9000 + 0 + 4, qs.__msg_cbytes);
		static struct {
			long type;
			unsigned char text[10000];
		} m;
		for (int k = 0; k < 4; k++) {
			ssize_t n = msgrcv(idq, &m, sizeof m.text, k, IPC_NOWAIT | MSG_COPY);
			char w[64];
			snprintf(w, sizeof w, "Q message %d size", k);
			CHECK_I(w, (long)msg_sizes[k], (long)n);
			snprintf(w, sizeof w, "Q message %d type", k);
			CHECK_I(w, msg_types[k], m.type);
			for (ssize_t i = 0; i < n && i < (ssize_t)msg_sizes[k]; i++)
				if (m.text[i] != pat(k, (size_t)i)) {
					cr_fail("Q message %d: byte %zd differs", k, i);
					break;
				}
		}
		ssize_t n = msgrcv(idq, &m, sizeof m.text, 5, IPC_NOWAIT);
		CHECK_I("Q: the first message of type 5 taken", 9000, (long)n);
	}
	if (msgctl(idp, IPC_STAT, &qs) < 0) {
		cr_fail("P (id %d): IPC_STAT: %s", idp, strerror(errno));
	} else {
		check_perm("P", &qs.msg_perm, IPC_PRIVATE, 0, 0, 0, 0, 0600);
		F("P", "qnum", 0, qs.msg_qnum);
		F("P", "qbytes", 100, qs.msg_qbytes);
	}
}

static void child_check(void)
{
	CHECK_I("the child finds S by its key", ids, semget(KEY_S, 0, 0));
	CHECK_I("the child finds Q by its key", idq, msgget(KEY_Q, 0));
}

int main(int argc, char **argv)
{
	return ipcns_run(argc, argv, setup, check_all, child_check);
}
