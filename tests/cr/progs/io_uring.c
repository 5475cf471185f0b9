/* io_uring: holds an io_uring instance whose kernel threads show up in /proc/PID/task.
 *   io_uring WORKDIR sqpoll        a ring with IORING_SETUP_SQPOLL (an iou-sqp-PID thread)
 *   io_uring WORKDIR sqpoll-nofd   the same, its fd registered with the ring and closed:
 *                                  only the mappings and the thread are left to see
 *   io_uring WORKDIR worker        a read of an empty pipe pushed to a worker (IOSQE_ASYNC):
 *                                  an iou-wrk-PID thread blocks in it
 * cryo must refuse the dump quickly, naming the fd and io_uring, and leave us running
 * (errors/io-uring). After go the ring must still work: sqpoll completes a write submitted
 * through the polling thread; worker completes the pending read once the pipe has data.
 * Raw syscalls only (no liburing).
 */
#include "common.h"
#include <linux/io_uring.h>
#include <sys/mman.h>
#include <sys/syscall.h>

struct ring {
	int fd;
	unsigned *sq_head, *sq_tail, *sq_mask, *sq_flags, *sq_array;
	unsigned *cq_head, *cq_tail, *cq_mask;
	struct io_uring_sqe *sqes;
	struct io_uring_cqe *cqes;
};

static int ring_setup(struct ring *r, unsigned flags)
{
	struct io_uring_params p;
	memset(&p, 0, sizeof p);
	p.flags = flags;
	p.sq_thread_idle = 50; /* ms: the SQPOLL thread goes to sleep, as it does when idle */
	r->fd = (int)syscall(__NR_io_uring_setup, 4, &p);
	if (r->fd < 0)
		return -1;
	size_t sq_len = p.sq_off.array + p.sq_entries * sizeof(unsigned);
	size_t cq_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
	char *sq = mmap(NULL, sq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd,
			IORING_OFF_SQ_RING);
	char *cq = mmap(NULL, cq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd,
			IORING_OFF_CQ_RING);
	r->sqes = mmap(NULL, p.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_SQES);
	if (sq == MAP_FAILED || cq == MAP_FAILED || r->sqes == MAP_FAILED)
		return -1;
	r->sq_head = (unsigned *)(sq + p.sq_off.head);
	r->sq_tail = (unsigned *)(sq + p.sq_off.tail);
	r->sq_mask = (unsigned *)(sq + p.sq_off.ring_mask);
	r->sq_flags = (unsigned *)(sq + p.sq_off.flags);
	r->sq_array = (unsigned *)(sq + p.sq_off.array);
	r->cq_head = (unsigned *)(cq + p.cq_off.head);
	r->cq_tail = (unsigned *)(cq + p.cq_off.tail);
	r->cq_mask = (unsigned *)(cq + p.cq_off.ring_mask);
	r->cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
	return 0;
}

/* Queues one SQE; the caller fills it. */
static struct io_uring_sqe *ring_sqe(struct ring *r)
{
	unsigned tail = *r->sq_tail;
	unsigned i = tail & *r->sq_mask;
	struct io_uring_sqe *sqe = &r->sqes[i];
	memset(sqe, 0, sizeof *sqe);
	r->sq_array[i] = i;
	return sqe;
}

static void ring_publish(struct ring *r)
{
	__atomic_store_n(r->sq_tail, *r->sq_tail + 1, __ATOMIC_RELEASE);
}

/* Waits (up to 5 s) for one completion; returns 0 and its result in *res. */
static int ring_wait(struct ring *r, uint64_t *data, int *res)
{
	for (int i = 0; i < 500; i++) {
		unsigned head = *r->cq_head;
		if (head != __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE)) {
			struct io_uring_cqe *c = &r->cqes[head & *r->cq_mask];
			*data = c->user_data;
			*res = c->res;
			__atomic_store_n(r->cq_head, head + 1, __ATOMIC_RELEASE);
			return 0;
		}
		cr_sleep_ms(10);
	}
	return -1;
}

static int thread_named(const char *prefix)
{
	char path[128], comm[64];
	int tids[256];
	int dfd = open("/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return 0;
	static char buf[8192];
	int n = 0, found = 0;
	long got;
	while ((got = syscall(SYS_getdents64, dfd, buf, sizeof buf)) > 0)
		for (long off = 0; off < got;) {
			struct cr_dirent64 *d = (struct cr_dirent64 *)(buf + off);
			off += d->d_reclen;
			if (d->d_name[0] >= '0' && d->d_name[0] <= '9' && n < 256)
				tids[n++] = atoi(d->d_name);
		}
	close(dfd);
	for (int i = 0; i < n && !found; i++) {
		snprintf(path, sizeof path, "/proc/self/task/%d/comm", tids[i]);
		ssize_t len = cr_read_file(path, comm, sizeof comm - 1);
		if (len > 0) {
			comm[len] = 0;
			found = strncmp(comm, prefix, strlen(prefix)) == 0;
		}
	}
	return found;
}

/* nofd: the ring fd is registered with the ring itself and closed, so only the mappings
 * and the SQPOLL thread show it. */
static void run_sqpoll(int nofd)
{
	struct ring r;
	if (ring_setup(&r, IORING_SETUP_SQPOLL) < 0) {
		cr_fail("setup: io_uring_setup(SQPOLL): %s", strerror(errno));
		cr_finish();
	}
	int enter_fd = r.fd;
	unsigned enter_flags = 0;
	if (nofd) {
		struct io_uring_rsrc_update up = { .offset = -1U, .data = (uint64_t)r.fd };
		if (syscall(__NR_io_uring_register, r.fd, IORING_REGISTER_RING_FDS, &up, 1) != 1) {
			cr_fail("setup: IORING_REGISTER_RING_FDS: %s", strerror(errno));
			cr_finish();
		}
		close(r.fd);
		enter_fd = (int)up.offset;
		enter_flags = IORING_ENTER_REGISTERED_RING;
	}
	for (int i = 0; i < 100 && !thread_named("iou-sqp-"); i++)
		cr_sleep_ms(10);
	if (!thread_named("iou-sqp-"))
		cr_fail("setup: no iou-sqp thread in /proc/self/task");
	cr_ready();
	cr_wait_go();

	/* A write to a pipe, submitted through the polling thread (woken if it sleeps). */
	int p[2];
	if (pipe2(p, O_CLOEXEC)) {
		cr_fail("pipe: %s", strerror(errno));
		cr_finish();
	}
	static const char msg[] = "through the sq thread";
	struct io_uring_sqe *sqe = ring_sqe(&r);
	sqe->opcode = IORING_OP_WRITE;
	sqe->fd = p[1];
	sqe->addr = (uint64_t)(uintptr_t)msg;
	sqe->len = sizeof msg;
	sqe->user_data = 0x5150;
	ring_publish(&r);
	if (__atomic_load_n(r.sq_flags, __ATOMIC_ACQUIRE) & IORING_SQ_NEED_WAKEUP)
		if (syscall(__NR_io_uring_enter, enter_fd, 0, 0, IORING_ENTER_SQ_WAKEUP | enter_flags,
			    NULL, 0) < 0)
			cr_fail("io_uring_enter(SQ_WAKEUP): %s", strerror(errno));
	uint64_t data = 0;
	int res = 0;
	if (ring_wait(&r, &data, &res) < 0) {
		cr_fail("the SQPOLL ring completed nothing within 5 s");
		cr_finish();
	}
	CHECK_X("completion user_data", 0x5150, data);
	CHECK_I("write result", (long)sizeof msg, res);
	char buf[64] = { 0 };
	CHECK_I("read back", (long)sizeof msg, read(p[0], buf, sizeof buf));
	CHECK_S("data", msg, buf);
	cr_finish();
}

static void run_worker(void)
{
	struct ring r;
	int p[2];
	if (ring_setup(&r, 0) < 0 || pipe2(p, O_CLOEXEC)) {
		cr_fail("setup: io_uring_setup/pipe: %s", strerror(errno));
		cr_finish();
	}
	static char buf[64];
	struct io_uring_sqe *sqe = ring_sqe(&r);
	sqe->opcode = IORING_OP_READ;
	sqe->flags = IOSQE_ASYNC; /* straight to a worker thread, which blocks in read() */
	sqe->fd = p[0];
	sqe->addr = (uint64_t)(uintptr_t)buf;
	sqe->len = sizeof buf;
	sqe->off = (uint64_t)-1;
	sqe->user_data = 0xfeed;
	ring_publish(&r);
	long n = syscall(__NR_io_uring_enter, r.fd, 1, 0, 0, NULL, 0);
	if (n != 1)
		cr_fail("setup: io_uring_enter submitted %ld: %s", n, strerror(errno));
	for (int i = 0; i < 100 && !thread_named("iou-wrk-"); i++)
		cr_sleep_ms(10);
	if (!thread_named("iou-wrk-"))
		cr_fail("setup: no iou-wrk thread in /proc/self/task");
	cr_ready();
	cr_wait_go();

	static const char msg[] = "for the worker";
	if (write(p[1], msg, sizeof msg) != (ssize_t)sizeof msg)
		cr_fail("write: %s", strerror(errno));
	uint64_t data = 0;
	int res = 0;
	if (ring_wait(&r, &data, &res) < 0) {
		cr_fail("the read pending in a worker did not complete within 5 s");
		cr_finish();
	}
	CHECK_X("completion user_data", 0xfeed, data);
	CHECK_I("read result", (long)sizeof msg, res);
	CHECK_S("data", msg, buf);
	cr_finish();
}

int main(int argc, char **argv)
{
	cr_init(argc, argv);
	if (argc == 3 && strcmp(argv[2], "sqpoll") == 0)
		run_sqpoll(0);
	else if (argc == 3 && strcmp(argv[2], "sqpoll-nofd") == 0)
		run_sqpoll(1);
	else if (argc == 3 && strcmp(argv[2], "worker") == 0)
		run_worker();
	cr_fail("usage: io_uring WORKDIR sqpoll|sqpoll-nofd|worker");
	cr_finish();
}
