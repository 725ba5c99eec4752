/* The agent's replacements for the malloc family: a countdown per thread, a sample now and then. */
#include <dlfcn.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "agent_int.h"

#define TLS __thread __attribute__((tls_model("initial-exec")))
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

/*
 * Per thread, in initial-exec TLS (a library loaded by dlopen must not reach its TLS through
 * __tls_get_addr in a hook: that may allocate): bytes still to allocate before the next sample.
 * A new thread starts at 0, so its first allocation takes the slow path, which draws.
 */
static TLS int64_t countdown;
static TLS uint64_t rng_state;
static TLS uint64_t thread_generation;	/* agent_sess.generation the countdown was drawn for */
static TLS int in_sample;		/* a sampled path is running on this thread */
static TLS int32_t thread_tid;		/* gettid(), once per thread (0: not asked yet) */

struct agent_real agent_real;
struct agent_hook agent_hooks[AGENT_NHOOKS];

/*
 * Sampled blocks: a filter (a counter per hash of an address, so that a free looks at one
 * byte of a table small enough to stay in cache, and an address freed and reused over and
 * over stops hitting it once its sample is freed) and an open-addressing set of the addresses,
 * which decides. A counter that reaches 255 stays there for the session.
 */
#define FILTER_LOG 16
_Static_assert(FILTER_LOG == 16, "free's generated fast path (stubs.c) takes bits 4-19 as the cell");
#define FILTER_STUCK 255
#define SET_SLOTS_LOG 18
#define SET_PROBES 64
#define SLOT_EMPTY 0
#define SLOT_GONE 1		/* a tombstone: never an address of a block */
#define FILTER_BYTES (1UL << FILTER_LOG)
#define SET_BYTES (sizeof(uint64_t) << SET_SLOTS_LOG)

/* In the library's own zero pages: a free reaches it without loading a pointer first. */
static uint8_t filter[FILTER_BYTES] __attribute__((aligned(4096)));
static uint64_t *set;


static inline uint64_t hash_addr(uint64_t a)
{
	return (a >> 4) * 0x9E3779B97F4A7C15ULL;
}

/*
 * The address' bits 4-19: blocks 16 bytes apart land apart; blocks a megabyte apart share a
 * cell, which costs only a look in the set. One shift and a mask keep free's fast path within
 * 32 bytes of code.
 */
static inline uint8_t *filter_cell(uint64_t a)
{
	return &filter[(a >> 4) & (FILTER_BYTES - 1)];
}

static inline int filter_hit(uint64_t a)
{
	return __atomic_load_n(filter_cell(a), __ATOMIC_RELAXED) != 0;
}

/* Add d (+1 or -1) to a's counter, unless it is stuck at 255. */
static void filter_add(uint64_t a, int d)
{
	uint8_t *c = filter_cell(a), v = __atomic_load_n(c, __ATOMIC_RELAXED);

	do {
		if (v == FILTER_STUCK || (d < 0 && v == 0))
			return;
	} while (!__atomic_compare_exchange_n(c, &v, (uint8_t)(v + d), 1, __ATOMIC_RELAXED,
					      __ATOMIC_RELAXED));
}

/*
 * Written through once here: a sampled path that met a page never touched would take a page
 * fault (a zeroed page from the kernel, a microsecond or more) in the middle of the target.
 */
int agent_blocks_reset(void)
{
	if (!set) {
		void *m = mmap(NULL, SET_BYTES, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (m == MAP_FAILED)
			return -errno;
		__atomic_store_n(&set, (uint64_t *)m, __ATOMIC_RELEASE);
	}
	memset(set, 0, SET_BYTES);
	memset(filter, 0, FILTER_BYTES);
	return 0;
}

void agent_blocks_release(void)
{
	madvise(filter, FILTER_BYTES, MADV_DONTNEED);
	if (set)
		madvise(set, SET_BYTES, MADV_DONTNEED);
}

/* Remember a sampled block. 0, or -ENOSPC when its neighbourhood of the set is full. */
static int set_insert(uint64_t a)
{
	uint64_t h = hash_addr(a), mask = (1UL << SET_SLOTS_LOG) - 1;

	for (uint64_t i = 0; i < SET_PROBES; i++) {
		uint64_t *s = &set[(h + i) & mask];
		uint64_t v = __atomic_load_n(s, __ATOMIC_RELAXED);

		if ((v == SLOT_EMPTY || v == SLOT_GONE) &&
		    __atomic_compare_exchange_n(s, &v, a, 0, __ATOMIC_RELEASE, __ATOMIC_RELAXED)) {
			filter_add(a, 1);
			return 0;
		}
	}
	return -ENOSPC;
}

/* Forget a sampled block; 1 when it was one, else 0. */
static int set_remove(uint64_t a)
{
	uint64_t h = hash_addr(a), mask = (1UL << SET_SLOTS_LOG) - 1;

	for (uint64_t i = 0; i < SET_PROBES; i++) {
		uint64_t *s = &set[(h + i) & mask];
		uint64_t v = __atomic_load_n(s, __ATOMIC_ACQUIRE);

		if (v == a) {
			if (!__atomic_compare_exchange_n(s, &v, SLOT_GONE, 0, __ATOMIC_RELAXED,
							 __ATOMIC_RELAXED))
				return 0;
			filter_add(a, -1);
			return 1;
		}
		if (v == SLOT_EMPTY)
			return 0;
	}
	return 0;
}

/* xorshift64*: the thread's uniform random numbers. */
static uint64_t rng_next(void)
{
	uint64_t x = rng_state;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	rng_state = x;
	return x * 0x2545F4914F6CDD1DULL;
}

/* ln(x) for x in (0, 1], without libm: exponent, then 2 atanh((m - 1) / (m + 1)) for m in [1, 2). */
static double ln_unit(double x)
{
	union {
		double d;
		uint64_t u;
	} v = { .d = x };
	int e = (int)((v.u >> 52) & 0x7ff) - 1023;
	double s, s2;

	v.u = (v.u & ((1ULL << 52) - 1)) | (1023ULL << 52);
	s = (v.d - 1) / (v.d + 1);
	s2 = s * s;
	return e * 0.6931471805599453 +
	       2 * s * (1 + s2 * (1.0 / 3 + s2 * (1.0 / 5 + s2 * (1.0 / 7 + s2 * (1.0 / 9)))));
}

/* The bytes to the next sample: exponential with mean rate, as Go's nextSample; 0 samples all. */
static int64_t draw_countdown(uint64_t rate)
{
	double u;

	if (rate <= 1)
		return 0;
	u = ((rng_next() >> 11) + 1) * (1.0 / 9007199254740992.0);	/* (0, 1] */
	return (int64_t)(-ln_unit(u) * (double)rate);
}

/*
 * A place for size bytes in the ring, or NULL (counted in dropped) when the reader is behind.
 * Producers reserve by compare-and-swap on hdr->reserved; a record that would cross the end of
 * the ring leaves a PAD record and starts at offset 0.
 */
static struct cp_agent_rec *ring_reserve(uint32_t size)
{
	struct cp_agent_header *hdr = agent_sess.hdr;
	uint64_t ring_bytes = agent_sess.ring_mask + 1;
	uint64_t r = __atomic_load_n(&hdr->reserved, __ATOMIC_RELAXED), pos, pad;

	for (;;) {
		uint64_t consumed = __atomic_load_n(&hdr->consumed, __ATOMIC_ACQUIRE);

		pos = r & agent_sess.ring_mask;
		pad = pos + size > ring_bytes ? ring_bytes - pos : 0;
		if (r + pad + size - consumed > ring_bytes) {
			__atomic_fetch_add(&hdr->dropped, 1, __ATOMIC_RELAXED);
			return NULL;
		}
		if (__atomic_compare_exchange_n(&hdr->reserved, &r, r + pad + size, 1,
						__ATOMIC_RELAXED, __ATOMIC_RELAXED))
			break;
	}
	if (pad) {
		struct cp_agent_rec *p = (struct cp_agent_rec *)(agent_sess.ring + pos);

		p->type = CP_AGENT_REC_PAD;
		p->flags = 0;
		__atomic_store_n(&p->size, (uint32_t)pad | CP_AGENT_REC_COMMIT, __ATOMIC_RELEASE);
		pos = 0;
	}
	return (struct cp_agent_rec *)(agent_sess.ring + pos);
}

static void ring_commit(struct cp_agent_rec *rec, uint32_t size, uint16_t type)
{
	rec->type = type;
	rec->flags = 0;
	__atomic_store_n(&rec->size, size | CP_AGENT_REC_COMMIT, __ATOMIC_RELEASE);
}

/*
 * The sampled path: check the reader, then write an ALLOC record with this function's own
 * registers (cprof unwinds from here through the agent's CFI) and a copy of the stack.
 */
static __attribute__((noinline)) void sample_alloc(uint64_t addr, uint64_t size)
{
	struct cp_agent_alloc *rec;
	uint64_t regs[CP_AGENT_NREGS] = { 0 };
	uint32_t stack_bytes, recsize;
	const char *why;
	int saved_errno = errno;

	__atomic_fetch_add(&agent_sess.busy, 1, __ATOMIC_ACQUIRE);
	if (!__atomic_load_n(&agent_sess.on, __ATOMIC_ACQUIRE))
		goto out;
	if (agent_poll(&why)) {
		agent_go_off(why, 0);
		goto out;
	}
	__asm__ volatile("mov %%rbx, 3*8(%0)\n\t"
			 "mov %%rbp, 6*8(%0)\n\t"
			 "mov %%rsp, 7*8(%0)\n\t"
			 "mov %%r12, 12*8(%0)\n\t"
			 "mov %%r13, 13*8(%0)\n\t"
			 "mov %%r14, 14*8(%0)\n\t"
			 "mov %%r15, 15*8(%0)\n\t"
			 "lea 0(%%rip), %%rax\n\t"
			 "mov %%rax, 16*8(%0)\n\t"
			 :
			 : "r"(regs)
			 : "rax", "memory");
	stack_bytes = (agent_sess.stack_bytes + 7) & ~7u;
	recsize = sizeof(*rec) + stack_bytes;
	rec = (struct cp_agent_alloc *)ring_reserve(recsize);
	if (!rec)
		goto out;
	if (!thread_tid)
		thread_tid = (int32_t)syscall(SYS_gettid);
	rec->tid = thread_tid;
	rec->addr = addr;
	rec->size = size;
	memcpy(rec->regs, regs, sizeof(regs));
	rec->stack_start = regs[7];
	rec->stack_len = agent_copy_stack(rec->stack, regs[7], stack_bytes);
	if (set_insert(addr) < 0)
		__atomic_fetch_add(&agent_sess.hdr->untracked, 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&agent_sess.hdr->samples, 1, __ATOMIC_RELAXED);
	ring_commit(&rec->h, recsize, CP_AGENT_REC_ALLOC);
out:
	__atomic_fetch_sub(&agent_sess.busy, 1, __ATOMIC_RELEASE);
	errno = saved_errno;
}

/* An allocation crossed the countdown (or the thread has none yet): maybe sample it. */
static __attribute__((noinline)) void alloc_slow(void *p, size_t size)
{
	uint64_t gen = __atomic_load_n(&agent_sess.generation, __ATOMIC_RELAXED);

	if (in_sample)
		return;
	in_sample = 1;
	if (thread_generation != gen) {
		/* A thread new to this session: its countdown starts now (sampling is memoryless). */
		if (!rng_state)
			rng_state = ((uint64_t)(uintptr_t)&countdown ^ (uint64_t)syscall(SYS_gettid) << 32 ^
				     gen * 0x9E3779B97F4A7C15ULL) | 1;
		thread_generation = gen;
		countdown = draw_countdown(agent_sess.rate) - (int64_t)size;
		if (countdown >= 0)
			goto done;
	}
	countdown = draw_countdown(agent_sess.rate);
	if (p)
		sample_alloc((uint64_t)(uintptr_t)p, size);
done:
	in_sample = 0;
}

/*
 * A block that passed the filter is about to be freed: if it was sampled, say so. NULL comes
 * here too when its cell is set (the fast path has one test, the filter's).
 */
static __attribute__((noinline)) void free_slow(void *p)
{
	struct cp_agent_free *rec;
	int saved_errno = errno;

	if (!p)
		return;
	__atomic_fetch_add(&agent_sess.busy, 1, __ATOMIC_ACQUIRE);
	if (!__atomic_load_n(&agent_sess.on, __ATOMIC_ACQUIRE))
		goto out;
	if (!set_remove((uint64_t)(uintptr_t)p))
		goto out;
	rec = (struct cp_agent_free *)ring_reserve(sizeof(*rec));
	if (rec) {
		rec->addr = (uint64_t)(uintptr_t)p;
		__atomic_fetch_add(&agent_sess.hdr->frees, 1, __ATOMIC_RELAXED);
		ring_commit(&rec->h, sizeof(*rec), CP_AGENT_REC_FREE);
	}
	/* The reader's own check (a system call) is left to the allocations. */
	if (__atomic_load_n(&agent_sess.hdr->state, __ATOMIC_ACQUIRE) == CP_AGENT_STOP)
		agent_go_off(NULL, 0);
out:
	__atomic_fetch_sub(&agent_sess.busy, 1, __ATOMIC_RELEASE);
	errno = saved_errno;
}

void agent_thread_forked(void)
{
	thread_tid = 0;
}

/* Whether an allocation of size bytes stays below this thread's countdown (the fast path). */
static inline int unsampled(size_t size)
{
	return likely((countdown -= (int64_t)size) >= 0);
}

static inline void forget(void *p)
{
	if (unlikely(filter_hit((uint64_t)(uintptr_t)p)))
		free_slow(p);
}

/* The countdown ran out: the allocation, then perhaps its sample. */
#define ALLOC_SLOW(size, call)                                                                     \
	do {                                                                                       \
		void *p_ = (call);                                                                 \
		alloc_slow(p_, (size));                                                            \
		return p_;                                                                         \
	} while (0)

/* malloc once its countdown ran out (already subtracted): the generated fast path's way out. */
static __attribute__((noinline)) void *malloc_sampled(size_t size)
{
	ALLOC_SLOW(size, agent_real.malloc(size));
}

/*
 * The compiled hooks: used where the generated fast paths (stubs.c) cannot be. malloc's and
 * free's hooks start a cache line each: their fast paths (22 and 31 bytes) then
 * never straddle a fetch block. Placed where the linker happened to put them, the same code
 * cost 1.12x instead of 1.06x on bench/heap.py's pairs (one process, the two builds taking
 * turns).
 */
static __attribute__((aligned(64))) void *hook_malloc(size_t size)
{
	if (unsampled(size))
		return agent_real.malloc(size);
	return malloc_sampled(size);
}

static __attribute__((aligned(64))) void hook_free(void *p)
{
	forget(p);
	agent_real.free(p);
}

static void *hook_calloc(size_t n, size_t m)
{
	if (unsampled(n * m))
		return agent_real.calloc(n, m);
	ALLOC_SLOW(n * m, agent_real.calloc(n, m));
}

/* A failed realloc keeps the old block, but its FREE record is already out: it is untracked. */
static void *hook_realloc(void *old, size_t size)
{
	void *p;

	forget(old);
	p = agent_real.realloc(old, size);
	if (!p) {
		if (old && size && filter_hit((uint64_t)(uintptr_t)old))
			__atomic_fetch_add(&agent_sess.hdr->untracked, 1, __ATOMIC_RELAXED);
		return p;
	}
	if (!unsampled(size))
		alloc_slow(p, size);
	return p;
}

/* Through realloc, as glibc's own does: one call, one record. */
static void *hook_reallocarray(void *old, size_t n, size_t m)
{
	size_t size;

	if (__builtin_mul_overflow(n, m, &size)) {
		errno = ENOMEM;
		return NULL;
	}
	return hook_realloc(old, size);
}

static int hook_posix_memalign(void **out, size_t align, size_t size)
{
	int rc = agent_real.posix_memalign(out, align, size);

	if (rc == 0 && !unsampled(size))
		alloc_slow(*out, size);
	return rc;
}

static void *hook_aligned_alloc(size_t align, size_t size)
{
	if (unsampled(size))
		return agent_real.aligned_alloc(align, size);
	ALLOC_SLOW(size, agent_real.aligned_alloc(align, size));
}

static void *hook_memalign(size_t align, size_t size)
{
	if (unsampled(size))
		return agent_real.memalign(align, size);
	ALLOC_SLOW(size, agent_real.memalign(align, size));
}

static void *hook_valloc(size_t size)
{
	if (unsampled(size))
		return agent_real.valloc(size);
	ALLOC_SLOW(size, agent_real.valloc(size));
}

static void *hook_pvalloc(size_t size)
{
	if (unsampled(size))
		return agent_real.pvalloc(size);
	ALLOC_SLOW(size, agent_real.pvalloc(size));
}

void *agent_real_dlsym, *agent_real_dlvsym;

/*
 * dlsym and dlvsym: a program that has dlopen()ed a library looks up its symbols next, so
 * that is when the modules loaded since the last look get redirected (then the library's own
 * malloc calls are sampled too; a dlopen hook could only do it before the library is there).
 * The real function is then jumped to, not called: it reads its return address to find its
 * caller's module (RTLD_NEXT, RTLD_DEFAULT, the namespace), which must stay the program's.
 * The argument registers are kept across the call (three pushes also align the stack).
 */
#define DL_HOOK(name)                                                                              \
	__asm__(".text\n"                                                                          \
		".p2align 4\n"                                                                     \
		".type hook_" #name ", @function\n"                                                \
		"hook_" #name ":\n"                                                                \
		"	.cfi_startproc\n"                                                        \
		"	push %rdi\n	.cfi_adjust_cfa_offset 8\n"                              \
		"	push %rsi\n	.cfi_adjust_cfa_offset 8\n"                              \
		"	push %rdx\n	.cfi_adjust_cfa_offset 8\n"                              \
		"	call agent_patch_new\n"                                                  \
		"	pop %rdx\n	.cfi_adjust_cfa_offset -8\n"                              \
		"	pop %rsi\n	.cfi_adjust_cfa_offset -8\n"                              \
		"	pop %rdi\n	.cfi_adjust_cfa_offset -8\n"                              \
		"	jmp *agent_real_" #name "(%rip)\n"                                      \
		"	.cfi_endproc\n"                                                          \
		".size hook_" #name ", .-hook_" #name "\n");                                      \
	void hook_##name(void)

DL_HOOK(dlsym);
DL_HOOK(dlvsym);

int agent_fast_paths;

/* Replace malloc's and free's compiled hooks with generated fast paths, where they can be. */
static void use_fast_paths(void **hooks)
{
	struct agent_stub_spec spec = {
		.real_malloc = (void *)agent_real.malloc,
		.real_free = (void *)agent_real.free,
		.slow_malloc = (void *)malloc_sampled,
		.slow_free = (void *)hook_free,
		.countdown_tls = (int64_t)((intptr_t)&countdown -
					   (intptr_t)__builtin_thread_pointer()),
		.filter = filter,
	};
	const char *compiled = getenv("CPROF_AGENT_COMPILED_HOOKS");

	if (compiled && *compiled && strcmp(compiled, "0") != 0)
		return;
	if (agent_stubs_make(&spec, &hooks[0], &hooks[1]) == 0)
		agent_fast_paths = 1;
}

int agent_hooks_init(void)
{
	static const char *const names[AGENT_NHOOKS] = {
		"malloc", "free", "calloc", "realloc", "reallocarray", "posix_memalign",
		"aligned_alloc", "memalign", "valloc", "pvalloc", "dlsym", "dlvsym",
	};
	void *hooks[AGENT_NHOOKS] = {
		(void *)hook_malloc, (void *)hook_free, (void *)hook_calloc,
		(void *)hook_realloc, (void *)hook_reallocarray, (void *)hook_posix_memalign,
		(void *)hook_aligned_alloc, (void *)hook_memalign, (void *)hook_valloc,
		(void *)hook_pvalloc, (void *)hook_dlsym, (void *)hook_dlvsym,
	};
	void **reals[AGENT_NHOOKS] = {
		(void **)&agent_real.malloc, (void **)&agent_real.free,
		(void **)&agent_real.calloc, (void **)&agent_real.realloc,
		(void **)&agent_real.reallocarray, (void **)&agent_real.posix_memalign,
		(void **)&agent_real.aligned_alloc, (void **)&agent_real.memalign,
		(void **)&agent_real.valloc, (void **)&agent_real.pvalloc,
		&agent_real_dlsym, &agent_real_dlvsym,
	};

	if (agent_hooks[0].name)
		return 0;
	/*
	 * The real function is the first definition in load order (the global scope's order).
	 * dlsym may give another address: a non-PIE program that takes malloc's address makes
	 * its own PLT entry malloc's canonical address, and that entry jumps through the very GOT
	 * entry the hook replaces (calling it from the hook would call the hook). GOT entries
	 * holding either are ours to patch. malloc, free, calloc and realloc must resolve.
	 */
	for (int i = 0; i < AGENT_NHOOKS; i++) {
		void *canon = dlsym(RTLD_DEFAULT, names[i]);
		uint64_t def = agent_symbol_definition(names[i]);
		void *f = def ? (void *)(uintptr_t)def : canon;

		if (!f && i < 4)
			return -ENOENT;
		*reals[i] = f;
		agent_hooks[i].canonical = canon;
	}
	use_fast_paths(hooks);
	for (int i = 0; i < AGENT_NHOOKS; i++) {
		agent_hooks[i].real = *reals[i];
		agent_hooks[i].hook = hooks[i];
		__atomic_store_n(&agent_hooks[i].name, names[i], __ATOMIC_RELEASE);
	}
	return 0;
}
