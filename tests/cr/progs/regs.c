/* regs: CPU register state must survive checkpoint/restore.
 *
 * regs_spin() (x86_64 assembly below) loads known patterns into rax, rbx,
 * rbp, r8-r15, the x87 stack (3 values), x87 control word, MXCSR, rflags.DF,
 * the vector registers (xmm0-15; ymm0-15 with AVX; zmm0-31 and k1-k7 with
 * AVX-512) and spins until a flag in memory becomes nonzero. The flag is set
 * by a SIGUSR1 handler (the driver sends SIGUSR1 after touching go; the
 * kernel saves/restores the user register state around the handler). Then
 * it stores every register back to memory, and we compare.
 */
#include "common.h"
#include <stddef.h>

#if !defined(__x86_64__)
#error "regs.c is x86_64 only"
#endif

struct regset {
	uint64_t gp[11];     /*   0: rax rbx rbp r8 r9 r10 r11 r12 r13 r14 r15 */
	uint64_t rflags;     /*  88 */
	uint8_t st[3][16];   /*  96: st0 st1 st2 (80-bit values) */
	uint32_t mxcsr;      /* 144 */
	uint16_t fcw;        /* 148 */
	uint16_t pad0;
	uint32_t mxcsr_dfl;  /* 152: loaded after the stores */
	uint16_t fcw_dfl;    /* 156 */
	uint16_t pad1;
	uint64_t k[8];       /* 160: k0 unused */
	uint8_t pad2[32];
	uint8_t vec[32][64]; /* 256: zmm0-31 (low 16/32 bytes for xmm/ymm) */
};
_Static_assert(offsetof(struct regset, rflags) == 88, "layout");
_Static_assert(offsetof(struct regset, st) == 96, "layout");
_Static_assert(offsetof(struct regset, mxcsr) == 144, "layout");
_Static_assert(offsetof(struct regset, fcw) == 148, "layout");
_Static_assert(offsetof(struct regset, mxcsr_dfl) == 152, "layout");
_Static_assert(offsetof(struct regset, fcw_dfl) == 156, "layout");
_Static_assert(offsetof(struct regset, k) == 160, "layout");
_Static_assert(offsetof(struct regset, vec) == 256, "layout");

/* void regs_spin(const struct regset *in, struct regset *out,
 *                volatile int *flag, long mode)   mode: 0 sse, 1 avx, 2 avx512 */
void regs_spin(const struct regset *in, struct regset *out, volatile int *flag, long mode);

__asm__(
	".text\n"
	".globl regs_spin\n"
	".type regs_spin,@function\n"
	"regs_spin:\n"
	"	push %rbp\n"
	"	push %rbx\n"
	"	push %r12\n"
	"	push %r13\n"
	"	push %r14\n"
	"	push %r15\n"
	"	ldmxcsr 144(%rdi)\n"
	"	fldcw 148(%rdi)\n"
	"	cmp $2, %rcx\n"
	"	je 12f\n"
	"	cmp $1, %rcx\n"
	"	je 11f\n"
	"	.irp i,0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15\n"
	"	movdqu 256+\\i*64(%rdi), %xmm\\i\n"
	"	.endr\n"
	"	jmp 13f\n"
	"11:\n"
	"	.irp i,0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15\n"
	"	vmovdqu 256+\\i*64(%rdi), %ymm\\i\n"
	"	.endr\n"
	"	jmp 13f\n"
	"12:\n"
	"	.irp i,0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31\n"
	"	vmovdqu64 256+\\i*64(%rdi), %zmm\\i\n"
	"	.endr\n"
	"	.irp i,1,2,3,4,5,6,7\n"
	"	kmovq 160+\\i*8(%rdi), %k\\i\n"
	"	.endr\n"
	"13:\n"
	"	fldt 128(%rdi)\n"
	"	fldt 112(%rdi)\n"
	"	fldt 96(%rdi)\n"
	"	mov 0(%rdi), %rax\n"
	"	mov 8(%rdi), %rbx\n"
	"	mov 16(%rdi), %rbp\n"
	"	mov 24(%rdi), %r8\n"
	"	mov 32(%rdi), %r9\n"
	"	mov 40(%rdi), %r10\n"
	"	mov 48(%rdi), %r11\n"
	"	mov 56(%rdi), %r12\n"
	"	mov 64(%rdi), %r13\n"
	"	mov 72(%rdi), %r14\n"
	"	mov 80(%rdi), %r15\n"
	"	std\n"
	"14:\n"
	"	pause\n"
	"	cmpl $0, (%rdx)\n"
	"	je 14b\n"
	"	pushfq\n"
	"	popq 88(%rsi)\n"
	"	cld\n"
	"	mov %rax, 0(%rsi)\n"
	"	mov %rbx, 8(%rsi)\n"
	"	mov %rbp, 16(%rsi)\n"
	"	mov %r8, 24(%rsi)\n"
	"	mov %r9, 32(%rsi)\n"
	"	mov %r10, 40(%rsi)\n"
	"	mov %r11, 48(%rsi)\n"
	"	mov %r12, 56(%rsi)\n"
	"	mov %r13, 64(%rsi)\n"
	"	mov %r14, 72(%rsi)\n"
	"	mov %r15, 80(%rsi)\n"
	"	fstpt 96(%rsi)\n"
	"	fstpt 112(%rsi)\n"
	"	fstpt 128(%rsi)\n"
	"	stmxcsr 144(%rsi)\n"
	"	fnstcw 148(%rsi)\n"
	"	cmp $2, %rcx\n"
	"	je 22f\n"
	"	cmp $1, %rcx\n"
	"	je 21f\n"
	"	.irp i,0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15\n"
	"	movdqu %xmm\\i, 256+\\i*64(%rsi)\n"
	"	.endr\n"
	"	jmp 23f\n"
	"21:\n"
	"	.irp i,0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15\n"
	"	vmovdqu %ymm\\i, 256+\\i*64(%rsi)\n"
	"	.endr\n"
	"	vzeroupper\n"
	"	jmp 23f\n"
	"22:\n"
	"	.irp i,0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31\n"
	"	vmovdqu64 %zmm\\i, 256+\\i*64(%rsi)\n"
	"	.endr\n"
	"	.irp i,1,2,3,4,5,6,7\n"
	"	kmovq %k\\i, 160+\\i*8(%rsi)\n"
	"	.endr\n"
	"	vzeroupper\n"
	"23:\n"
	"	ldmxcsr 152(%rdi)\n"
	"	fldcw 156(%rdi)\n"
	"	pop %r15\n"
	"	pop %r14\n"
	"	pop %r13\n"
	"	pop %r12\n"
	"	pop %rbx\n"
	"	pop %rbp\n"
	"	ret\n"
	".size regs_spin, .-regs_spin\n");

static const char *gp_names[11] = { "rax", "rbx", "rbp", "r8",  "r9", "r10",
				    "r11", "r12", "r13", "r14", "r15" };

static volatile int flag;
static struct regset in, out;

static void on_usr1(int sig)
{
	(void)sig;
	flag = 1;
}

int main(int argc, char **argv)
{
	cr_init(argc, argv);

	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_usr1;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGUSR1, &sa, NULL);

	long mode = 0;
	int nvec = 16, vlen = 16;
	const char *vname = "xmm";
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")) {
		mode = 2;
		nvec = 32;
		vlen = 64;
		vname = "zmm";
	} else if (__builtin_cpu_supports("avx")) {
		mode = 1;
		vlen = 32;
		vname = "ymm";
	}

	for (int i = 0; i < 11; i++)
		in.gp[i] = 0x0101010101010101ULL * (uint64_t)(i + 1) ^ 0xA5C3000000000000ULL ^
			   ((uint64_t)i << 20);
	for (int r = 0; r < 32; r++)
		for (int b = 0; b < 64; b++)
			in.vec[r][b] = (uint8_t)(r * 64 + b * 7 + 0x35 + (b >> 4) * 0x40);
	for (int i = 1; i < 8; i++)
		in.k[i] = 0x0123456789ABCDEFULL ^ ((uint64_t)i * 0x1111000011110000ULL);
	long double st[3];
	volatile long double three = 3.0L, big = 1e300L;
	st[0] = 1.0L / three;                  /* needs all 64 mantissa bits */
	st[1] = -big * 3.14159265358979323846L;
	st[2] = 12345.678L / three;
	for (int i = 0; i < 3; i++)
		memcpy(in.st[i], &st[i], 10);
	in.mxcsr = 0xFFC0; /* masks + round toward zero + FTZ + DAZ (default 0x1F80) */
	in.fcw = 0x0E7F;   /* round toward zero, 53-bit precision (default 0x037F) */
	in.mxcsr_dfl = 0x1F80;
	in.fcw_dfl = 0x037F;

	const char *force = getenv("CR_REGS_MODE"); /* to exercise the other paths by hand */
	if (force && atoi(force) < mode) {
		mode = atoi(force);
		nvec = 16;
		vlen = mode == 1 ? 32 : 16;
		vname = mode == 1 ? "ymm" : "xmm";
	}
	cr_note("vector mode %ld (%s, %d registers)", mode, vname, nvec);
	cr_ready();
	regs_spin(&in, &out, &flag, mode);

	char what[64];
	for (int i = 0; i < 11; i++)
		CHECK_X(gp_names[i], in.gp[i], out.gp[i]);
	if (!(out.rflags & 0x400))
		cr_fail("rflags.DF expected set got clear (rflags 0x%llx)",
			(unsigned long long)out.rflags);
	for (int i = 0; i < 3; i++)
		if (memcmp(in.st[i], out.st[i], 10) != 0) {
			uint64_t em, gm;
			uint16_t ee, ge;
			memcpy(&em, in.st[i], 8);
			memcpy(&ee, in.st[i] + 8, 2);
			memcpy(&gm, out.st[i], 8);
			memcpy(&ge, out.st[i] + 8, 2);
			cr_fail("x87 st%d expected %04x:%016llx got %04x:%016llx", i, ee,
				(unsigned long long)em, ge, (unsigned long long)gm);
		}
	CHECK_X("MXCSR", in.mxcsr, out.mxcsr);
	CHECK_X("x87 control word", in.fcw, out.fcw);
	for (int r = 0; r < nvec; r++)
		for (int q = 0; q < vlen / 8; q++) {
			uint64_t e, g;
			memcpy(&e, &in.vec[r][q * 8], 8);
			memcpy(&g, &out.vec[r][q * 8], 8);
			snprintf(what, sizeof what, "%s%d bytes %d-%d", vname, r, q * 8, q * 8 + 7);
			CHECK_X(what, e, g);
		}
	if (mode == 2)
		for (int i = 1; i < 8; i++) {
			snprintf(what, sizeof what, "k%d", i);
			CHECK_X(what, in.k[i], out.k[i]);
		}
	cr_check_threads_1();
	cr_finish();
}
