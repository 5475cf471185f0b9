/* rseq_busy: two threads spend nearly all their time inside an rseq critical section (a
 * long countdown loop whose last instruction commits a count) registered through the C
 * library's rseq area; the abort handler counts aborts and retries. The dump stops them
 * inside the section. After restore: every thread's rseq area is registered again (a
 * sentinel written into cpu_id is replaced by the kernel with a valid CPU number after a
 * sleep, in the workers and in the main thread), the loops go on committing, and aborts
 * still go through the handler (a wrong signature would kill the thread). */
#define _GNU_SOURCE
#include "common.h"
#include <pthread.h>
#include <sys/rseq.h>
#include <sys/sysinfo.h>

#define NW 2
#define SENTINEL 0xfffffff0u

struct rseq_view {
	uint32_t cpu_id_start;
	uint32_t cpu_id;
	uint64_t rseq_cs;
	uint32_t flags;
};

static volatile unsigned long commits[NW], aborts[NW];
static volatile int probe[NW];
static volatile uint32_t probed_cpu[NW], probed_start[NW];

static struct rseq_view *my_rseq(void)
{
	return (struct rseq_view *)((char *)__builtin_thread_pointer() + __rseq_offset);
}

/* Writes a sentinel into cpu_id, sleeps (the kernel refreshes a registered area when the
 * thread comes back on a CPU) and returns what is there then. */
static void probe_cpu(uint32_t *cpu, uint32_t *start)
{
	volatile struct rseq_view *rs = my_rseq();
	rs->cpu_id = SENTINEL;
	rs->cpu_id_start = SENTINEL;
	cr_sleep_ms(5);
	*cpu = rs->cpu_id;
	*start = rs->cpu_id_start;
}

static void *worker(void *arg)
{
	long k = (long)arg;
	struct rseq_view *rs = my_rseq();
	for (;;) {
		if (probe[k] == 1) {
			uint32_t c, s;
			probe_cpu(&c, &s);
			probed_cpu[k] = c;
			probed_start[k] = s;
			probe[k] = 2;
		}
		__asm__ __volatile__ goto(
			".pushsection __rseq_cs, \"aw\"\n\t"
			".balign 32\n\t"
			"3:\n\t"
			".long 0x0, 0x0\n\t"
			".quad 1f, (2f - 1f), 4f\n\t"
			".popsection\n\t"
			"leaq 3b(%%rip), %%rax\n\t"
			"movq %%rax, %[cs]\n\t"
			"1:\n\t"
			"movq $2000000, %%rcx\n\t"
			"5:\n\t"
			"decq %%rcx\n\t"
			"jnz 5b\n\t"
			"incq %[commit]\n\t"
			"2:\n\t"
			".pushsection __rseq_failure, \"ax\"\n\t"
			".long 0x53053053\n\t"
			"4:\n\t"
			"jmp %l[aborted]\n\t"
			".popsection\n\t"
			:
			: [cs] "m"(rs->rseq_cs), [commit] "m"(commits[k])
			: "rax", "rcx", "memory", "cc"
			: aborted);
		continue;
aborted:
		aborts[k]++;
	}
	return NULL;
}

int main(int argc, char **argv)
{
	cr_init(argc, argv);
	if (__rseq_size == 0) {
		cr_fail("setup: the C library registered no rseq area (glibc.pthread.rseq=0?)");
		cr_ready();
		cr_wait_go();
		cr_finish();
	}
	pthread_t th[NW];
	for (long k = 0; k < NW; k++)
		pthread_create(&th[k], NULL, worker, (void *)k);
	for (int i = 0; i < 1000; i++) {
		int ok = 1;
		for (int k = 0; k < NW; k++)
			ok &= commits[k] > 3;
		if (ok)
			break;
		cr_sleep_ms(10);
	}
	for (int k = 0; k < NW; k++)
		if (commits[k] <= 3)
			cr_fail("setup: worker %d commits nothing (%lu commits, %lu aborts)", k,
				commits[k], aborts[k]);
	cr_ready();
	cr_wait_go();

	const int ncpu = get_nprocs_conf();
	unsigned long c0[NW];
	for (int k = 0; k < NW; k++)
		c0[k] = commits[k];
	for (int k = 0; k < NW; k++)
		probe[k] = 1;
	uint32_t cpu, start;
	probe_cpu(&cpu, &start);
	if (cpu == SENTINEL || (int)cpu >= ncpu || start == SENTINEL || (int)start >= ncpu)
		cr_fail("main thread: rseq cpu_id %#x cpu_id_start %#x after restore: not registered", cpu,
			start);
	for (int i = 0; i < 500; i++) {
		int done = 1;
		for (int k = 0; k < NW; k++)
			done &= probe[k] == 2 && commits[k] > c0[k] + 3;
		if (done)
			break;
		cr_sleep_ms(10);
	}
	for (int k = 0; k < NW; k++) {
		if (probe[k] != 2)
			cr_fail("worker %d never left its critical section loop after restore", k);
		else if (probed_cpu[k] == SENTINEL || (int)probed_cpu[k] >= ncpu ||
			 probed_start[k] == SENTINEL || (int)probed_start[k] >= ncpu)
			cr_fail("worker %d: rseq cpu_id %#x cpu_id_start %#x after restore: not registered",
				k, probed_cpu[k], probed_start[k]);
		if (commits[k] <= c0[k] + 3)
			cr_fail("worker %d: %lu commits at restore, %lu 5 s later", k, c0[k], commits[k]);
		cr_note("worker %d: %lu commits, %lu aborts", k, commits[k], aborts[k]);
	}
	cr_finish();
	return 0;
}
