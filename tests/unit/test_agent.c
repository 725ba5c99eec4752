/* libcprof-agent.so loaded into this very program: its records, GOT restore, cycles, stop paths. */
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <link.h>
#include <malloc.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <ucontext.h>
#include <unistd.h>

#include "check.h"
#include "agent_proto.h"

static int (*agent_start)(int, uint64_t, uint32_t, uint64_t);
static int (*agent_stop)(void);
static struct cp_agent_control *control;

/* Keeps the compiler from pairing a malloc with its free and dropping both. */
static void use(void *p)
{
	__asm__ volatile("" : : "r"(p) : "memory");
}

/* This program's own GOT entry for name (its JUMP_SLOT or GLOB_DAT), found as the agent does. */
struct got_query {
	const char *name;
	uint64_t *slot;
	uint64_t text_lo, text_hi;
};

static int find_got(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct got_query *q = arg;
	const ElfW(Sym) *symtab = NULL;
	const char *strtab = NULL;
	const ElfW(Rela) *rela[2] = { NULL, NULL };
	uint64_t relsz[2] = { 0, 0 }, base = info->dlpi_addr;
	const ElfW(Dyn) *dyn = NULL;

	(void)size;
	if (info->dlpi_name && info->dlpi_name[0])
		return 0;	/* the main program only */
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];

		if (ph->p_type == PT_DYNAMIC)
			dyn = (const ElfW(Dyn) *)(base + ph->p_vaddr);
		if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X)) {
			q->text_lo = base + ph->p_vaddr;
			q->text_hi = q->text_lo + ph->p_memsz;
		}
	}
	for (; dyn && dyn->d_tag != DT_NULL; dyn++) {
		uint64_t v = dyn->d_un.d_ptr < base ? dyn->d_un.d_ptr + base : dyn->d_un.d_ptr;

		if (dyn->d_tag == DT_SYMTAB)
			symtab = (const void *)v;
		else if (dyn->d_tag == DT_STRTAB)
			strtab = (const void *)v;
		else if (dyn->d_tag == DT_JMPREL)
			rela[0] = (const void *)v;
		else if (dyn->d_tag == DT_PLTRELSZ)
			relsz[0] = dyn->d_un.d_val;
		else if (dyn->d_tag == DT_RELA)
			rela[1] = (const void *)v;
		else if (dyn->d_tag == DT_RELASZ)
			relsz[1] = dyn->d_un.d_val;
	}
	for (int t = 0; t < 2; t++)
		for (uint64_t i = 0; rela[t] && i < relsz[t] / sizeof(ElfW(Rela)); i++) {
			uint32_t sym = ELF64_R_SYM(rela[t][i].r_info);
			uint32_t type = ELF64_R_TYPE(rela[t][i].r_info);

			if (type != R_X86_64_JUMP_SLOT && type != R_X86_64_GLOB_DAT)
				continue;
			if (sym && !strcmp(strtab + symtab[sym].st_name, q->name))
				q->slot = (uint64_t *)(base + rela[t][i].r_offset);
		}
	return 1;
}

static uint64_t *got_slot(const char *name, struct got_query *q)
{
	memset(q, 0, sizeof(*q));
	q->name = name;
	dl_iterate_phdr(find_got, q);
	return q->slot;
}

/* The ring of a session, read as cprof reads it. */
struct reader {
	struct cp_agent_header *hdr;
	uint8_t *ring;
	size_t map_bytes;
};

static int reader_open(struct reader *r, int fd)
{
	r->map_bytes = control->region_bytes;
	r->hdr = mmap(NULL, r->map_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (r->hdr == MAP_FAILED)
		return -errno;
	r->ring = (uint8_t *)r->hdr + r->hdr->header_bytes;
	return 0;
}

static void reader_close(struct reader *r)
{
	munmap(r->hdr, r->map_bytes);
}

struct tally {
	const uint64_t *addrs;	/* the blocks of interest, or NULL */
	size_t naddrs;
	uint64_t want_size;	/* count allocations of this size (0: any) */
	uint64_t allocs, frees, bytes, bad;
	uint64_t text_lo, text_hi;	/* a return address into here must be on the stack copy */
	uint64_t agent_lo, agent_hi;
	uint64_t stack_ok;
	uint64_t last_addr, last_size;
};

static int interesting(const struct tally *t, uint64_t a)
{
	if (!t->addrs)
		return 1;
	for (size_t i = 0; i < t->naddrs; i++)
		if (t->addrs[i] == a)
			return 1;
	return 0;
}

static void check_alloc(struct tally *t, const struct cp_agent_alloc *a, uint32_t size)
{
	if (a->stack_len > size - sizeof(*a) || a->stack_start != a->regs[7] ||
	    a->tid <= 0 || a->regs[16] < t->agent_lo || a->regs[16] >= t->agent_hi) {
		t->bad++;
		return;
	}
	for (uint32_t o = 0; o + 8 <= a->stack_len; o += 8) {
		uint64_t w;

		memcpy(&w, a->stack + o, 8);
		if (w >= t->text_lo && w < t->text_hi) {
			t->stack_ok++;
			break;
		}
	}
}

/* Consume every committed record; count those of interest. */
static void reader_drain(struct reader *r, struct tally *t)
{
	uint64_t mask = r->hdr->ring_bytes - 1;

	for (;;) {
		uint64_t c = __atomic_load_n(&r->hdr->consumed, __ATOMIC_RELAXED);
		struct cp_agent_rec *rec = (struct cp_agent_rec *)(r->ring + (c & mask));
		uint32_t size = __atomic_load_n(&rec->size, __ATOMIC_ACQUIRE);

		if (!(size & CP_AGENT_REC_COMMIT))
			break;
		size &= ~CP_AGENT_REC_COMMIT;
		if (size < sizeof(*rec) || size % 8 || (c & mask) + size > r->hdr->ring_bytes) {
			t->bad++;
			break;
		}
		if (rec->type == CP_AGENT_REC_ALLOC) {
			const struct cp_agent_alloc *a = (const void *)rec;

			if (interesting(t, a->addr) && (!t->want_size || a->size == t->want_size)) {
				t->allocs++;
				t->bytes += a->size;
				t->last_addr = a->addr;
				t->last_size = a->size;
				check_alloc(t, a, size);
			}
		} else if (rec->type == CP_AGENT_REC_FREE) {
			const struct cp_agent_free *f = (const void *)rec;

			if (interesting(t, f->addr))
				t->frees++;
		} else if (rec->type != CP_AGENT_REC_PAD) {
			t->bad++;
		}
		memset(rec, 0, size);
		__atomic_store_n(&r->hdr->consumed, c + size, __ATOMIC_RELEASE);
	}
}

static void agent_range(struct tally *t)
{
	Dl_info info;
	struct got_query q;

	memset(t, 0, sizeof(*t));
	got_slot("malloc", &q);
	t->text_lo = q.text_lo;
	t->text_hi = q.text_hi;
	if (dladdr((void *)agent_stop, &info)) {
		t->agent_lo = (uint64_t)(uintptr_t)info.dli_fbase;
		t->agent_hi = t->agent_lo + (1 << 20);
	}
}

/*
 * malloc's address taken while the agent runs: in a program built without -pie the program's
 * own PLT entry is malloc's canonical address, which jumps through the GOT entry the agent
 * patches; with -pie it comes from a GLOB_DAT entry. (A pointer stored by a data relocation
 * before the agent started points at malloc itself: not seen, as documented.)
 */
static void *(*volatile malloc_ptr)(size_t);
#ifndef __PIE__
/* Without -pie, a pointer initialised at link time is the program's PLT entry (canonical). */
static void *(*volatile malloc_static)(size_t) = malloc;
#endif

/* Every function of the family, at rate 1 (every allocation sampled): exact records. */
static void test_every_call(void)
{
	struct got_query q;
	uint64_t *slot = got_slot("malloc", &q), orig, addrs[16], dlopen_got;
	struct reader r;
	struct tally t;
	void *p[16];
	size_t n = 0;
	int fd;

	CHECK(slot != NULL, "no GOT entry for malloc in the test program");
	if (!slot)
		return;
	orig = *slot;
	{
		struct got_query dq;
		uint64_t *ds = got_slot("dlopen", &dq);

		dlopen_got = ds ? *ds : 0;
	}
	fd = agent_start(getpid(), 1, 4096, 1 << 20);
	CHECK(fd >= 0, "start: %s", strerror(-fd));
	if (fd < 0)
		return;
	CHECK(control->state == CP_AGENT_ON);
	CHECK(*slot != orig, "the GOT entry for malloc was not patched");
	/* dlopen is left alone: glibc finds a dlopen's RUNPATH and namespace by its caller. */
	{
		struct got_query dq;
		uint64_t *ds = got_slot("dlopen", &dq);

		CHECK(!ds || *ds == dlopen_got, "the GOT entry for dlopen was patched");
	}
	CHECK(reader_open(&r, fd) == 0);
	CHECK(r.hdr->patched > 0 && r.hdr->modules > 0, "patched %lu in %lu modules",
	      (unsigned long)r.hdr->patched, (unsigned long)r.hdr->modules);

	p[n++] = malloc(100);
	p[n++] = calloc(3, 70);
	p[n++] = realloc(NULL, 333);
	p[n++] = reallocarray(NULL, 5, 11);
	CHECK(posix_memalign(&p[n], 64, 444) == 0);
	n++;
	p[n++] = aligned_alloc(256, 512);
	p[n++] = memalign(128, 600);
	p[n++] = valloc(700);
	p[n++] = pvalloc(800);
	malloc_ptr = malloc;
	p[n++] = malloc_ptr(900);
#ifndef __PIE__
	p[n++] = malloc_static(1000);
#endif
	for (size_t i = 0; i < n; i++) {
		use(p[i]);
		addrs[i] = (uint64_t)(uintptr_t)p[i];
	}
	agent_range(&t);
	t.addrs = addrs;
	t.naddrs = n;
	reader_drain(&r, &t);
	CHECK(t.allocs == n, "%lu records for %zu allocations", (unsigned long)t.allocs, n);
	CHECK(t.bytes == 100 + 210 + 333 + 55 + 444 + 512 + 600 + 700 + 800 + 900 +
			   (n == 11 ? 1000 : 0),
	      "bytes %lu", (unsigned long)t.bytes);
	CHECK(t.bad == 0, "%lu malformed records", (unsigned long)t.bad);
	CHECK(t.stack_ok == t.allocs, "%lu of %lu stack copies hold a return address into the test",
	      (unsigned long)t.stack_ok, (unsigned long)t.allocs);
	/* realloc of a sampled block: a free of the old, an allocation of the new. */
	p[0] = realloc(p[0], 5000);
	use(p[0]);
	addrs[n++] = (uint64_t)(uintptr_t)p[0];
	t.naddrs = n;
	reader_drain(&r, &t);
	CHECK(t.frees == 1 && t.last_size == 5000, "realloc: frees %lu last size %lu",
	      (unsigned long)t.frees, (unsigned long)t.last_size);
	for (size_t i = 0; i < n - 1; i++)
		free(p[i]);
	reader_drain(&r, &t);
	CHECK(t.frees == n, "%lu FREE records for %zu frees", (unsigned long)t.frees, n);
	CHECK(r.hdr->dropped == 0 && r.hdr->untracked == 0);
	CHECK(agent_stop() == 0);
	CHECK(control->state == CP_AGENT_OFF && r.hdr->state == CP_AGENT_OFF);
	CHECK(*slot == orig, "the GOT entry for malloc was not restored");
	CHECK(agent_stop() == 0, "a second stop");
	reader_close(&r);
}

/* Poisson sampling by bytes: the count of samples of N equal blocks, within 8 sigma. */
static void test_poisson(void)
{
	const uint64_t rate = 4096, size = 256, nblocks = 200000;
	double p = 1 - exp(-(double)size / rate), mean = nblocks * p;
	double sigma = sqrt(nblocks * p * (1 - p)), est;
	struct reader r;
	struct tally t;
	int fd = agent_start(getpid(), rate, 64, 8 << 20);

	CHECK(fd >= 0, "start: %s", strerror(-fd));
	if (fd < 0)
		return;
	CHECK(reader_open(&r, fd) == 0);
	agent_range(&t);
	t.want_size = size;
	for (uint64_t i = 0; i < nblocks; i++) {
		void *b = malloc(size);

		use(b);
		free(b);
		if (i % 1000 == 0)
			reader_drain(&r, &t);
	}
	reader_drain(&r, &t);
	est = (double)t.allocs * size / p;
	CHECK(fabs(t.allocs - mean) < 8 * sigma, "%lu samples, expected %.0f +- %.0f",
	      (unsigned long)t.allocs, mean, 8 * sigma);
	CHECK(fabs(est - (double)nblocks * size) < 0.1 * nblocks * size,
	      "estimated %.0f bytes of %lu", est, (unsigned long)(nblocks * size));
	CHECK(t.frees >= t.allocs * 99 / 100, "%lu frees of %lu sampled blocks",
	      (unsigned long)t.frees, (unsigned long)t.allocs);
	CHECK(r.hdr->dropped == 0, "%lu dropped", (unsigned long)r.hdr->dropped);
	CHECK(t.bad == 0);
	printf("poisson: %lu samples (expected %.0f), estimate %.0f of %lu bytes\n",
	       (unsigned long)t.allocs, mean, est, (unsigned long)(nblocks * size));
	agent_stop();
	reader_close(&r);
}

/*
 * libstdc++ loaded after start (patched at the first sample 10 ms or more later): operator
 * new and delete.
 */
static void test_cxx_dlopen(void)
{
	void *(*op_new)(size_t);
	void (*op_delete)(void *);
	struct reader r;
	struct tally t;
	uint64_t addr;
	void *lib, *obj;
	int fd = agent_start(getpid(), 1, 1024, 1 << 20);

	CHECK(fd >= 0, "start: %s", strerror(-fd));
	if (fd < 0)
		return;
	CHECK(reader_open(&r, fd) == 0);
	uint64_t modules = r.hdr->modules;

	lib = dlopen("libstdc++.so.6", RTLD_NOW);
	CHECK(lib != NULL, "dlopen libstdc++: %s", dlerror());
	if (!lib)
		goto out;
	for (int i = 0; i < 10000 && r.hdr->modules == modules; i++) {
		free(malloc(16));
		usleep(1000);
	}
	CHECK(r.hdr->modules > modules, "libstdc++ not patched: %lu modules, %lu skipped, %lu entries",
	      (unsigned long)r.hdr->modules, (unsigned long)r.hdr->skipped_modules,
	      (unsigned long)r.hdr->patched);
	/*
	 * A thread's first countdown of a session may still come from the last session's rate
	 * (the agent draws a thread's next countdown when the last runs out): allocate until one
	 * sample of this session is seen, so that the countdown is one of rate 1.
	 */
	{
		struct tally any = { 0 };

		for (int i = 0; i < 1000000 && !any.allocs; i++) {
			free(malloc(16));
			if (i % 64 == 0)
				reader_drain(&r, &any);
		}
		reader_drain(&r, &any);
		CHECK(any.allocs > 0, "no sample at rate 1");
	}
	op_new = (void *(*)(size_t))dlsym(lib, "_Znwm");
	op_delete = (void (*)(void *))dlsym(lib, "_ZdlPv");
	CHECK(op_new && op_delete);
	if (!op_new || !op_delete)
		goto out;
	obj = op_new(12345);
	addr = (uint64_t)(uintptr_t)obj;
	agent_range(&t);
	t.addrs = &addr;
	t.naddrs = 1;
	reader_drain(&r, &t);
	CHECK(t.allocs == 1 && t.last_size == 12345, "operator new: %lu records",
	      (unsigned long)t.allocs);
	op_delete(obj);
	reader_drain(&r, &t);
	CHECK(t.frees == 1, "operator delete: %lu FREE records", (unsigned long)t.frees);
out:
	agent_stop();
	reader_close(&r);
}

static long rss_kib(void)
{
	long pages = 0, rss = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	if (f) {
		if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
			rss = 0;
		fclose(f);
	}
	return rss * (sysconf(_SC_PAGESIZE) / 1024);
}

/* 100 sessions: the same region and fd every time, no growth of resident memory. */
static void test_cycles(void)
{
	struct got_query q;
	uint64_t *slot = got_slot("free", &q), orig = slot ? *slot : 0;
	long rss10 = 0;
	int fd0 = -1;

	for (int i = 0; i < 100; i++) {
		int fd = agent_start(getpid(), 512, 2048, 1 << 20);

		if (fd < 0) {
			FAIL("start %d: %s", i, strerror(-fd));
			return;
		}
		if (fd0 < 0)
			fd0 = fd;
		CHECK(fd == fd0, "cycle %d: fd %d, first %d", i, fd, fd0);
		static void *keep[2000];

		for (int k = 0; k < 2000; k++) {
			keep[k] = malloc(64 + k % 512);
			use(keep[k]);
			if (k % 3)
				free(keep[k]);
		}
		for (int k = 0; k < 2000; k += 3)
			free(keep[k]);
		CHECK(agent_stop() == 0);
		if (slot)
			CHECK(*slot == orig, "cycle %d: GOT entry for free not restored", i);
		if (i == 9)
			rss10 = rss_kib();
	}
	CHECK(rss_kib() - rss10 < 2048, "RSS grew from %ld to %ld KiB over 90 cycles", rss10,
	      rss_kib());
	printf("cycles: RSS %ld KiB after 10, %ld KiB after 100\n", rss10, rss_kib());
}

/* The agent goes OFF by itself: when its reader exits, and when the header says STOP. */
static void test_off_by_itself(void)
{
	struct got_query q;
	uint64_t *slot = got_slot("malloc", &q), orig = slot ? *slot : 0;
	struct reader r;
	pid_t child = fork();
	int fd;

	if (child == 0) {
		pause();
		_exit(0);
	}
	fd = agent_start(child, 1, 256, 1 << 20);
	CHECK(fd >= 0, "start: %s", strerror(-fd));
	if (fd < 0)
		goto out;
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	child = -1;
	/*
	 * A countdown drawn in an earlier session runs out first (at most a few rates' bytes), and
	 * the agent polls its reader's pidfd at most every 10 ms: allocate until it notices.
	 */
	for (int i = 0; i < 10000 && control->state == CP_AGENT_ON; i++) {
		free(malloc(1000));
		usleep(1000);
	}
	CHECK(control->state == CP_AGENT_OFF, "state %u after the reader died", control->state);
	CHECK(reader_open(&r, fd) == 0);
	CHECK(!strcmp(r.hdr->error, "reader exited"), "error \"%s\"", r.hdr->error);
	if (slot)
		CHECK(*slot == orig);
	CHECK(agent_stop() == 0);
	CHECK(!strcmp(r.hdr->error, "reader exited"), "a later stop changed the reason: \"%s\"",
	      r.hdr->error);
	reader_close(&r);

	fd = agent_start(getpid(), 1, 256, 1 << 20);
	CHECK(fd >= 0, "start: %s", strerror(-fd));
	if (fd < 0 || reader_open(&r, fd) < 0)
		goto out;
	__atomic_store_n(&r.hdr->state, CP_AGENT_STOP, __ATOMIC_RELEASE);
	for (int i = 0; i < 1000 && control->state != CP_AGENT_OFF; i++)
		free(malloc(1000));
	CHECK(control->state == CP_AGENT_OFF && r.hdr->state == CP_AGENT_OFF);
	CHECK(r.hdr->error[0] == 0, "error \"%s\"", r.hdr->error);
	if (slot)
		CHECK(*slot == orig);
	reader_close(&r);
	CHECK(agent_stop() == 0);
out:
	if (child > 0) {
		kill(child, SIGKILL);
		waitpid(child, NULL, 0);
	}
}

static void *churn(void *arg)
{
	uint64_t sum = 0;

	for (int i = 0; i < 200000; i++) {
		unsigned char *b = malloc(16 + (i * 7) % 4000);

		b[0] = (unsigned char)i;
		sum += b[0];
		free(b);
	}
	return (void *)(uintptr_t)sum;
}

/* Threads allocating while the ring is read and a full ring drops: nothing malformed. */
static void test_threads(void)
{
	pthread_t th[4];
	struct reader r;
	struct tally t;
	int fd = agent_start(getpid(), 8192, 512, 64 << 10);

	CHECK(fd >= 0);
	if (fd < 0)
		return;
	CHECK(reader_open(&r, fd) == 0);
	agent_range(&t);
	for (int i = 0; i < 4; i++)
		pthread_create(&th[i], NULL, churn, NULL);
	for (int k = 0; k < 50; k++) {
		reader_drain(&r, &t);
		usleep(1000);
	}
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	reader_drain(&r, &t);
	CHECK(t.bad == 0, "%lu malformed records", (unsigned long)t.bad);
	CHECK(t.allocs > 0 && t.allocs + r.hdr->dropped >= r.hdr->samples,
	      "%lu read, %lu dropped, %lu sampled", (unsigned long)t.allocs,
	      (unsigned long)r.hdr->dropped, (unsigned long)r.hdr->samples);
	CHECK(r.hdr->reserved == r.hdr->consumed);
	CHECK(t.stack_ok == t.allocs, "%lu of %lu stack copies hold a return address into the test",
	      (unsigned long)t.stack_ok, (unsigned long)t.allocs);
	agent_stop();
	reader_close(&r);
}

/* A forked child shares the region: its agent turns off, its GOT is restored, it writes nothing. */
static void test_fork(void)
{
	struct got_query q;
	uint64_t *slot = got_slot("malloc", &q), orig = slot ? *slot : 0;
	struct reader r;
	struct tally t;
	int fd = agent_start(getpid(), 1, 512, 1 << 20), status = 0;
	pid_t child;

	CHECK(fd >= 0);
	if (fd < 0 || reader_open(&r, fd) < 0)
		return;
	agent_range(&t);
	reader_drain(&r, &t);
	child = fork();
	if (child == 0) {
		for (int i = 0; i < 100; i++)
			free(malloc(100 + i));
		/* Restored; a lazily bound entry may have been bound since (a call in the child). */
		uint64_t real = (uint64_t)(uintptr_t)dlsym(RTLD_DEFAULT, "malloc");
		int restored = !slot || *slot == orig || *slot == real;

		_exit(control->state == CP_AGENT_OFF && restored ? 0 : 1);
	}
	waitpid(child, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	      "the child's agent is on or its GOT still patched (status %#x)", status);
	memset(&t, 0, sizeof(t));
	agent_range(&t);
	reader_drain(&r, &t);
	CHECK(t.allocs == 0 && t.frees == 0, "the child wrote %lu records",
	      (unsigned long)(t.allocs + t.frees));
	CHECK(control->state == CP_AGENT_ON, "the parent's agent went off");
	agent_stop();
	reader_close(&r);
}

static ucontext_t main_ctx, co_ctx;
static void *co_block;

static void coroutine(void)
{
	co_block = malloc(777);
	use(co_block);
}

/* An allocation on a stack that is not the thread's own (a coroutine's): still copied. */
static void test_other_stack(void)
{
	size_t size = 256 << 10;
	void *stack = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct reader r;
	struct tally t;
	uint64_t addr;
	int fd;

	CHECK(stack != MAP_FAILED);
	if (stack == MAP_FAILED)
		return;
	fd = agent_start(getpid(), 1, 4096, 1 << 20);
	CHECK(fd >= 0);
	if (fd < 0 || reader_open(&r, fd) < 0)
		goto out;
	getcontext(&co_ctx);
	co_ctx.uc_stack.ss_sp = stack;
	co_ctx.uc_stack.ss_size = size;
	co_ctx.uc_link = &main_ctx;
	makecontext(&co_ctx, coroutine, 0);
	swapcontext(&main_ctx, &co_ctx);
	addr = (uint64_t)(uintptr_t)co_block;
	agent_range(&t);
	t.addrs = &addr;
	t.naddrs = 1;
	reader_drain(&r, &t);
	CHECK(t.allocs == 1 && t.stack_ok == 1 && t.bad == 0,
	      "coroutine: %lu records, %lu with a stack", (unsigned long)t.allocs,
	      (unsigned long)t.stack_ok);
	free(co_block);
	agent_stop();
	reader_close(&r);
out:
	munmap(stack, size);
}

int main(int argc, char **argv)
{
	const char *path = getenv("CPROF_AGENT_LIB");
	void *lib;

	if (!path)
		path = CP_AGENT_LIB_PATH;
	lib = dlopen(path, RTLD_NOW);
	if (!lib) {
		FAIL("dlopen %s: %s", path, dlerror());
		return check_done("test_agent");
	}
	agent_start = (int (*)(int, uint64_t, uint32_t, uint64_t))dlsym(lib, CP_AGENT_START_SYMBOL);
	agent_stop = (int (*)(void))dlsym(lib, CP_AGENT_STOP_SYMBOL);
	control = dlsym(lib, CP_AGENT_CONTROL_SYMBOL);
	CHECK(agent_start && agent_stop && control);
	if (!agent_start || !agent_stop || !control)
		return check_done("test_agent");
	CHECK(control->magic == CP_AGENT_MAGIC && control->version == CP_AGENT_VERSION);
	CHECK(control->memfd == -1 && control->state == CP_AGENT_OFF);
	test_every_call();
	test_poisson();
	test_cxx_dlopen();
	test_cycles();
	test_off_by_itself();
	test_threads();
	test_other_stack();
	test_fork();
	return check_done(argc > 0 ? argv[0] : "test_agent");
}
