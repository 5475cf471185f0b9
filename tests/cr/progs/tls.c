/* tls: GDT TLS descriptors set with set_thread_area (what 32-bit code uses for its TLS),
 * one in the main thread and two in a second thread, keep their slots, bases, limits and
 * flags. Descriptors are per thread: each thread checks its own after restore.
 * The 64-bit syscall table has no set_thread_area: the 32-bit one is reached with int $0x80
 * (IA32 emulation), its argument in a page below 4 GiB. */
#define _GNU_SOURCE
#include "common.h"
#include <asm/ldt.h>
#include <pthread.h>
#include <sys/mman.h>

#define NR32_SET_THREAD_AREA 243
#define NR32_GET_THREAD_AREA 244

static struct user_desc *low; /* two slots per thread, below 4 GiB */

static long sys32(long nr, struct user_desc *arg)
{
	long ret;
	__asm__ volatile("int $0x80" : "=a"(ret) : "a"(nr), "b"(arg) : "memory");
	if (ret < 0) {
		errno = (int)-ret;
		return -1;
	}
	return ret;
}

static char area_main[64], area_a[64], area_b[64];

static int set_desc(struct user_desc *u, void *base, unsigned limit, int pages, int contents,
		    struct user_desc *scratch)
{
	memset(u, 0, sizeof *u);
	u->entry_number = -1; /* the kernel picks a free TLS slot */
	u->base_addr = (unsigned)(uintptr_t)base;
	u->limit = limit;
	u->seg_32bit = 1;
	u->contents = contents;
	u->limit_in_pages = pages;
	u->useable = 1;
	*scratch = *u;
	if (sys32(NR32_SET_THREAD_AREA, scratch) != 0)
		return -1;
	u->entry_number = scratch->entry_number;
	return 0;
}

static void check_desc(const char *who, const struct user_desc *want, struct user_desc *scratch)
{
	memset(scratch, 0, sizeof *scratch);
	scratch->entry_number = want->entry_number;
	if (sys32(NR32_GET_THREAD_AREA, scratch) != 0) {
		cr_fail("%s: get_thread_area(%u): %s", who, want->entry_number, strerror(errno));
		return;
	}
	struct user_desc got = *scratch;
	CHECK_X(who, want->base_addr, got.base_addr);
	CHECK_X(who, want->limit, got.limit);
	CHECK_U(who, want->seg_32bit, got.seg_32bit);
	CHECK_U(who, want->contents, got.contents);
	CHECK_U(who, want->limit_in_pages, got.limit_in_pages);
	CHECK_U(who, want->seg_not_present, got.seg_not_present);
	CHECK_U(who, want->read_exec_only, got.read_exec_only);
	CHECK_U(who, want->useable, got.useable);
}

static struct user_desc thread_a, thread_b;
static volatile int thread_ready;

static void *thread_main(void *arg)
{
	(void)arg;
	if (set_desc(&thread_a, area_a, 0xfff, 0, 0, &low[1]) ||
	    set_desc(&thread_b, area_b, 0x7, 1, 1, &low[1]))
		cr_fail("thread: set_thread_area: %s", strerror(errno));
	__atomic_store_n(&thread_ready, 1, __ATOMIC_SEQ_CST);
	cr_wait_go();
	check_desc("thread descriptor A", &thread_a, &low[1]);
	check_desc("thread descriptor B", &thread_b, &low[1]);
	if (thread_a.entry_number == thread_b.entry_number)
		cr_fail("thread: two descriptors in one slot %u", thread_a.entry_number);
	return NULL;
}

int main(int argc, char **argv)
{
	cr_init(argc, argv);
	low = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
	if (low == MAP_FAILED) {
		cr_fail("mmap(MAP_32BIT): %s", strerror(errno));
		cr_finish();
	}
	struct user_desc mine;
	if (set_desc(&mine, area_main, 0xfffff, 1, 0, &low[0]))
		cr_fail("main: set_thread_area: %s", strerror(errno));
	pthread_t t;
	pthread_create(&t, NULL, thread_main, NULL);
	while (!__atomic_load_n(&thread_ready, __ATOMIC_SEQ_CST))
		cr_sleep_ms(1);
	cr_ready();
	cr_wait_go();
	check_desc("main descriptor", &mine, &low[0]);
	pthread_join(t, NULL);
	cr_finish();
}
