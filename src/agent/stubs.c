/* malloc's and free's fast paths, generated once per process in a page next to the allocator. */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>

#include "agent_int.h"

/*
 * Why generate them: compiled, the hooks' fast paths are a test and a taken-once branch, then
 * an indirect jump to the allocator (hooks.c). Here each is one conditional jump, taken in the
 * common case, straight to the allocator (rel32, hence the page within 2 GiB of it); the rare
 * case falls through to an absolute jump into the compiled slow path. On bench/heap.py's pairs
 * (one process taking turns, 15 rounds): 1.13-1.16x plain compiled, 1.06-1.07x generated.
 *
 * malloc (size in %rdi):
 *	sub	%rdi, %fs:COUNTDOWN		countdown -= size
 *	jns	REAL_MALLOC			still >= 0: not sampled
 *	jmp	*0(%rip); .quad SLOW_MALLOC	the countdown ran out (it is already subtracted)
 * free (block in %rdi; %rax and %rdx are the caller's to lose):
 *	mov	%rdi, %rax
 *	shr	$4, %rax
 *	movzwl	%ax, %eax			the filter's cell: bits 4-19 of the address
 *	movabs	$FILTER, %rdx
 *	cmpb	$0, (%rdx,%rax)
 *	je	REAL_FREE			no sampled block there
 *	jmp	*0(%rip); .quad SLOW_FREE	the compiled hook, which looks again and records
 */

#define STUB_PAGE 4096
#define STUB_ALIGN 64
#define NEAR_LIMIT (1LL << 31)
#define PROBE_STEP (2LL << 20)
#define PROBES 1000ULL

#ifndef PR_SET_VMA
#define PR_SET_VMA 0x53564d41
#define PR_SET_VMA_ANON_NAME 0
#endif

static uint8_t *put(uint8_t *c, const void *bytes, size_t n)
{
	memcpy(c, bytes, n);
	return c + n;
}

/* A rel32 to target from the end of these 4 bytes; 0 when it does not reach. */
static uint8_t *put_rel32(uint8_t *c, const void *target)
{
	int64_t d = (int64_t)(uintptr_t)target - (int64_t)(uintptr_t)(c + 4);
	int32_t r = (int32_t)d;

	if (d != r)
		return NULL;
	return put(c, &r, 4);
}

static uint8_t *put_abs_jump(uint8_t *c, const void *target)
{
	static const uint8_t jmp_rip[] = { 0xff, 0x25, 0, 0, 0, 0 };	/* jmp *0(%rip) */
	uint64_t a = (uint64_t)(uintptr_t)target;

	c = put(c, jmp_rip, sizeof(jmp_rip));
	return put(c, &a, 8);
}

static uint8_t *emit_malloc(uint8_t *c, const struct agent_stub_spec *s)
{
	static const uint8_t sub_fs[] = { 0x64, 0x48, 0x29, 0x3c, 0x25 };	/* sub %rdi, %fs:d32 */
	static const uint8_t jns[] = { 0x0f, 0x89 };
	int32_t off = (int32_t)s->countdown_tls;

	c = put(c, sub_fs, sizeof(sub_fs));
	c = put(c, &off, 4);
	c = put(c, jns, sizeof(jns));
	c = put_rel32(c, s->real_malloc);
	return c ? put_abs_jump(c, s->slow_malloc) : NULL;
}

static uint8_t *emit_free(uint8_t *c, const struct agent_stub_spec *s)
{
	static const uint8_t cell[] = {
		0x48, 0x89, 0xf8,		/* mov %rdi, %rax */
		0x48, 0xc1, 0xe8, 0x04,		/* shr $4, %rax */
		0x0f, 0xb7, 0xc0,		/* movzwl %ax, %eax */
		0x48, 0xba,			/* movabs $imm64, %rdx */
	};
	static const uint8_t test_je[] = {
		0x80, 0x3c, 0x02, 0x00,		/* cmpb $0, (%rdx,%rax) */
		0x0f, 0x84,			/* je rel32 */
	};
	uint64_t filter = (uint64_t)(uintptr_t)s->filter;

	c = put(c, cell, sizeof(cell));
	c = put(c, &filter, 8);
	c = put(c, test_je, sizeof(test_je));
	c = put_rel32(c, s->real_free);
	return c ? put_abs_jump(c, s->slow_free) : NULL;
}

static int reaches(uint64_t page, const void *target)
{
	int64_t d = (int64_t)(uintptr_t)target - (int64_t)page;

	return d > -NEAR_LIMIT + STUB_PAGE && d < NEAR_LIMIT - STUB_PAGE;
}

/*
 * A private page within reach of both functions, below them. Not above: above libc lies what
 * the kernel keeps for the main thread's stack to grow into, and above a program's own
 * allocator (not PIE) its brk heap; a page there would stop either short.
 */
static uint8_t *map_near(const void *a, const void *b)
{
	uint64_t lo = (uint64_t)(uintptr_t)(a < b ? a : b);
	uint64_t below = lo & ~(PROBE_STEP - 1);

	for (uint64_t k = 1; k <= PROBES && k * PROBE_STEP < below; k++) {
		uint64_t want = below - k * PROBE_STEP;
		void *m;

		if (!reaches(want, a) || !reaches(want, b))
			break;
		m = mmap((void *)(uintptr_t)want, STUB_PAGE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
		if (m == MAP_FAILED)
			continue;
		if (reaches((uint64_t)(uintptr_t)m, a) && reaches((uint64_t)(uintptr_t)m, b))
			return m;
		munmap(m, STUB_PAGE);	/* a kernel that took the address as a hint only */
		break;
	}
	return NULL;
}

int agent_stubs_make(const struct agent_stub_spec *spec, void **malloc_stub, void **free_stub)
{
	uint8_t *page;

	if (spec->countdown_tls != (int32_t)spec->countdown_tls)
		return -ERANGE;
	page = map_near(spec->real_malloc, spec->real_free);
	if (!page)
		return -ENOMEM;
	if (!emit_malloc(page, spec) || !emit_free(page + STUB_ALIGN, spec) ||
	    mprotect(page, STUB_PAGE, PROT_READ | PROT_EXEC) < 0) {
		/* Out of reach after all, or executable memory refused (W^X policies). */
		munmap(page, STUB_PAGE);
		return -EPERM;
	}
	/* Named in /proc/PID/maps as [anon:cprof-agent-stubs] where the kernel can. */
	prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, page, STUB_PAGE, "cprof-agent-stubs");
	*malloc_stub = page;
	*free_stub = page + STUB_ALIGN;
	return 0;
}
