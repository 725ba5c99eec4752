/* The Go runtime's memory, block and mutex profile buckets read from the outside. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "go_internal.h"
#include "go_prof.h"
#include "util.h"

/*
 * runtime.bucket (Go 1.19 to 1.22: mprof.go): next, allnext, typ, hash, size, nstk, then
 * stk[nstk] and the record. The record is a memRecord {active, future[3]} of memRecordCycle
 * {allocs, frees, alloc_bytes, free_bytes} for memProfile buckets, a blockRecord {count
 * float64, cycles int64} for blockProfile and mutexProfile ones.
 */
#define BUCKET_HDR 48
#define BUCKET_ALLNEXT 8
#define BUCKET_TYP 16
#define BUCKET_NSTK 40
#define MEM_CYCLE 32
#define MEM_RECORD (4 * MEM_CYCLE)
#define BLOCK_RECORD 16
/* A first read this long holds a bucket with a stack of Go's usual 32 pcs at most. */
#define FIRST_READ (BUCKET_HDR + 32 * 8 + MEM_RECORD)

static const char *const list_names[] = {
	[CP_GO_PROF_MEM] = "runtime.mbuckets",
	[CP_GO_PROF_BLOCK] = "runtime.bbuckets",
	[CP_GO_PROF_MUTEX] = "runtime.xbuckets",
};

static const char *const rate_names[] = {
	[CP_GO_PROF_MEM] = "runtime.MemProfileRate",
	[CP_GO_PROF_BLOCK] = "runtime.blockprofilerate",
	[CP_GO_PROF_MUTEX] = "runtime.mutexprofilerate",
};

static uint64_t get64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static size_t record_size(enum cp_go_prof_kind kind)
{
	return kind == CP_GO_PROF_MEM ? MEM_RECORD : BLOCK_RECORD;
}

int cp_go_bucket_parse(const uint8_t *buf, size_t len, enum cp_go_prof_kind kind,
		       uint64_t *next, size_t *nstk, uint64_t *pcs, size_t max, int64_t v[4])
{
	const uint8_t *rec;
	uint64_t n;

	if (len < BUCKET_HDR)
		return -EAGAIN;
	/* bucketType: memProfile 1, blockProfile 2, mutexProfile 3. */
	if (get64(buf + BUCKET_TYP) != (uint64_t)kind + 1)
		return -EPROTO;
	n = get64(buf + BUCKET_NSTK);
	if (n > CP_GO_PROF_MAX_STACK)
		return -EPROTO;
	*nstk = (size_t)n;
	if (len < BUCKET_HDR + n * 8 + record_size(kind))
		return -EAGAIN;
	*next = get64(buf + BUCKET_ALLNEXT);
	for (size_t i = 0; i < n && i < max; i++)
		pcs[i] = get64(buf + BUCKET_HDR + i * 8);
	rec = buf + BUCKET_HDR + n * 8;
	if (kind == CP_GO_PROF_MEM) {
		/* The active cycle here; the future ones are added by the caller. */
		v[CP_GO_MEM_ALLOCS] = (int64_t)get64(rec);
		v[CP_GO_MEM_FREES] = (int64_t)get64(rec + 8);
		v[CP_GO_MEM_ALLOC_BYTES] = (int64_t)get64(rec + 16);
		v[CP_GO_MEM_FREE_BYTES] = (int64_t)get64(rec + 24);
	} else {
		double count;

		memcpy(&count, rec, sizeof(count));
		v[CP_GO_BLOCK_COUNT] = isfinite(count) && count >= 0 && count < 9e18 ?
					       (int64_t)count : 0;
		/* runtime.BlockProfile reports a count of at least 1; MutexProfile does not. */
		if (kind == CP_GO_PROF_BLOCK && v[CP_GO_BLOCK_COUNT] == 0)
			v[CP_GO_BLOCK_COUNT] = 1;
		v[CP_GO_BLOCK_CYCLES] = (int64_t)get64(rec + 8);
		v[2] = v[3] = 0;
	}
	return 0;
}

/* The memRecordCycle at index c (0 active, 1..3 future) of a memory bucket in buf. */
static void mem_cycle(const uint8_t *buf, size_t nstk, int c, int64_t v[4])
{
	const uint8_t *rec = buf + BUCKET_HDR + nstk * 8 + (size_t)c * MEM_CYCLE;

	v[CP_GO_MEM_ALLOCS] = (int64_t)get64(rec);
	v[CP_GO_MEM_FREES] = (int64_t)get64(rec + 8);
	v[CP_GO_MEM_ALLOC_BYTES] = (int64_t)get64(rec + 16);
	v[CP_GO_MEM_FREE_BYTES] = (int64_t)get64(rec + 24);
}

static int read_u64(const struct cp_go_runtime *rt, const struct cp_mem *mem, const char *name,
		    size_t size, uint64_t *out)
{
	uint64_t addr, v = 0;
	int err = cp_go_global(rt, name, &addr);

	if (err < 0)
		return err;
	if (cp_mem_read(mem, addr, &v, size) != (long)size)
		return -EFAULT;
	*out = v;
	return 0;
}

/* Room for one more bucket and its nstk pcs. 0 or -ENOMEM. */
static int grow(struct cp_go_records *r, size_t *cap_b, size_t *cap_pcs, size_t nstk)
{
	if (r->n == *cap_b) {
		size_t nc = *cap_b ? *cap_b * 2 : 256;
		void *p = realloc(r->b, nc * sizeof(*r->b));

		if (!p)
			return -ENOMEM;
		r->b = p;
		*cap_b = nc;
	}
	if (r->npcs + nstk > *cap_pcs) {
		size_t nc = *cap_pcs ? *cap_pcs * 2 : 4096;
		void *p;

		while (nc < r->npcs + nstk)
			nc *= 2;
		p = realloc(r->pcs, nc * sizeof(*r->pcs));
		if (!p)
			return -ENOMEM;
		r->pcs = p;
		*cap_pcs = nc;
	}
	return 0;
}

/*
 * Walk the list from head through allnext into r; for memory buckets, their three future
 * cycles go to fut (one [3][4] per bucket, for the caller). 0 or -errno.
 */
static int walk(const struct cp_mem *mem, uint64_t head, struct cp_go_records *r,
		int64_t (**fut)[3][4])
{
	uint8_t first[FIRST_READ], *big = NULL;
	size_t cap_b = 0, cap_pcs = 0, cap_fut = 0;
	int err = 0;

	for (uint64_t a = head; a; ) {
		const uint8_t *buf = first;
		size_t nstk = 0, need;
		long got = cp_mem_read(mem, a, first, sizeof(first));
		uint64_t next = 0;
		int64_t v[4];

		if (r->n == CP_GO_PROF_MAX_BUCKETS) {
			r->truncated = true;
			break;
		}
		if (got < 0) {
			err = got == -ESRCH ? -ESRCH : -EPROTO;
			break;
		}
		err = cp_go_bucket_parse(first, (size_t)got, r->kind, &next, &nstk, NULL, 0, v);
		if (err == -EAGAIN) {
			need = BUCKET_HDR + nstk * 8 + record_size(r->kind);
			free(big);
			big = malloc(need);
			if (!big) {
				err = -ENOMEM;
				break;
			}
			got = cp_mem_read(mem, a, big, need);
			if (got != (long)need) {
				err = got == -ESRCH ? -ESRCH : -EPROTO;
				break;
			}
			buf = big;
			err = cp_go_bucket_parse(big, need, r->kind, &next, &nstk, NULL, 0, v);
			/* Still short: the bucket changed under us or is not one. */
			if (err == -EAGAIN)
				err = -EPROTO;
		}
		if (err < 0 || (err = grow(r, &cap_b, &cap_pcs, nstk)) < 0)
			break;
		if (fut) {
			if (r->n == cap_fut) {
				void *p = realloc(*fut, cap_b * sizeof(**fut));

				if (!p) {
					err = -ENOMEM;
					break;
				}
				*fut = p;
				cap_fut = cap_b;
			}
			for (int c = 0; c < 3; c++)
				mem_cycle(buf, nstk, 1 + c, (*fut)[r->n][c]);
		}
		r->b[r->n] = (struct cp_go_bucket){ .addr = a, .stk = r->npcs };
		memcpy(r->b[r->n].v, v, sizeof(v));
		for (size_t i = 0; i < nstk; i++) {
			uint64_t pc = get64(buf + BUCKET_HDR + i * 8);

			/* Go's Stack() ends at the first zero. */
			if (!pc)
				break;
			r->pcs[r->npcs++] = pc;
		}
		r->b[r->n].nstk = r->npcs - r->b[r->n].stk;
		r->n++;
		a = next;
	}
	free(big);
	return err;
}

static void add_cycle(struct cp_go_bucket *b, const int64_t f[4])
{
	bool sat = false;

	for (int k = 0; k < 4; k++)
		b->v[k] = cp_add_sat(b->v[k], f[k], &sat);
}

/*
 * As runtime.MemProfile: the cycle being flushed (mProfCycle % 3, fi) is added to the
 * published one; when then nothing is published (no GC so far), the other cycles are too.
 */
static void mem_fold(struct cp_go_records *r, int64_t (*fut)[3][4], int fi)
{
	bool clear = true;

	for (size_t i = 0; i < r->n; i++) {
		if (fi >= 0)
			add_cycle(&r->b[i], fut[i][fi]);
		if (r->b[i].v[CP_GO_MEM_ALLOCS] || r->b[i].v[CP_GO_MEM_FREES])
			clear = false;
	}
	if (!clear)
		return;
	for (size_t i = 0; i < r->n; i++)
		for (int c = 0; c < 3; c++)
			if (c != fi)
				add_cycle(&r->b[i], fut[i][c]);
}

bool cp_go_pc_is_wrapper(const struct cp_go_runtime *rt, uint64_t pc)
{
	struct cp_gopcln_func f;
	int32_t delta;

	if (!rt->has_pcln || pc <= rt->bias)
		return false;
	return cp_gopclntab_func_at(&rt->pcln, pc - 1 - rt->bias, &f, &delta) &&
	       f.funcid == rt->funcid_wrapper;
}

int64_t cp_go_measure_ticks(int ms)
{
#if defined(__x86_64__)
	struct timespec d = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };
	uint64_t t0 = cp_now_ns(), c0 = __builtin_ia32_rdtsc(), t1, c1;

	nanosleep(&d, NULL);
	t1 = cp_now_ns();
	c1 = __builtin_ia32_rdtsc();
	if (t1 <= t0 || c1 <= c0)
		return 0;
	return (int64_t)((double)(c1 - c0) * 1e9 / (double)(t1 - t0));
#else
	/* cputicks is nanotime where there is no cycle counter. */
	(void)ms;
	return 1000000000;
#endif
}

/* The rates and flags that say how the list was sampled. 0 or -errno. */
static int read_rates(struct cp_go_runtime *rt, const struct cp_mem *mem, struct cp_go_records *r,
		      char *why, size_t whylen)
{
	uint64_t v = 0;
	int err = read_u64(rt, mem, rate_names[r->kind], 8, &v);

	if (err < 0) {
		snprintf(why, whylen, "%s not found", rate_names[r->kind]);
		return err;
	}
	r->rate = (int64_t)v;
	if (r->kind == CP_GO_PROF_MEM) {
		/* A bool the linker sets; missing before Go 1.17: never set there. */
		if (read_u64(rt, mem, "runtime.disableMemoryProfiling", 1, &v) == 0)
			r->disabled = v != 0;
		return 0;
	}
	/* runtime.ticks {lock mutex; pad uint32; val uint64}: val at 16, 0 until computed. */
	if (cp_go_global(rt, "runtime.ticks", &v) == 0) {
		uint64_t t = 0;

		if (cp_mem_read(mem, v + 16, &t, 8) == 8 && t > 0 && t < (1ull << 40))
			r->ticks_per_sec = (int64_t)t;
	}
	if (!r->ticks_per_sec)
		r->ticks_per_sec = cp_go_measure_ticks(100);
	return 0;
}

int cp_go_records_read(struct cp_go_runtime *rt, const struct cp_mem *mem,
		       enum cp_go_prof_kind kind, struct cp_go_records *out, char *why,
		       size_t whylen)
{
	struct cp_go_records r = { .kind = kind };
	int64_t (*fut)[3][4] = NULL;
	uint64_t head = 0, cycle = 0;
	int fi = -1, err;

	if ((unsigned)kind > CP_GO_PROF_MUTEX)
		return -EINVAL;
	if (whylen)
		why[0] = '\0';
	err = read_rates(rt, mem, &r, why, whylen);
	if (err < 0)
		return err;
	err = read_u64(rt, mem, list_names[kind], 8, &head);
	if (err < 0) {
		snprintf(why, whylen, "%s %s", list_names[kind],
			 err == -ENOENT ? "not found" : "not readable");
		return err;
	}
	if (kind == CP_GO_PROF_MEM &&
	    read_u64(rt, mem, "runtime.mProfCycle", 4, &cycle) == 0)
		fi = (int)((cycle >> 1) % 3);
	err = walk(mem, head, &r, kind == CP_GO_PROF_MEM ? &fut : NULL);
	if (err == 0 && kind == CP_GO_PROF_MEM)
		mem_fold(&r, fut, fi);
	free(fut);
	if (err < 0) {
		if (err == -EPROTO)
			snprintf(why, whylen, "%s: a bucket that is not one of Go 1.19-1.22's",
				 list_names[kind]);
		cp_go_records_release(&r);
		return err;
	}
	*out = r;
	return 0;
}

void cp_go_records_release(struct cp_go_records *r)
{
	if (!r)
		return;
	free(r->b);
	free(r->pcs);
	r->b = NULL;
	r->pcs = NULL;
	r->n = r->npcs = 0;
}

static int by_addr(const void *a, const void *b)
{
	const struct cp_go_bucket *x = a, *y = b;

	return x->addr < y->addr ? -1 : x->addr > y->addr;
}

void cp_go_records_subtract(struct cp_go_records *r, const struct cp_go_records *base)
{
	struct cp_go_bucket *sorted = NULL;
	size_t out = 0;

	if (base->n) {
		sorted = malloc(base->n * sizeof(*sorted));
		if (sorted) {
			memcpy(sorted, base->b, base->n * sizeof(*sorted));
			qsort(sorted, base->n, sizeof(*sorted), by_addr);
		}
	}
	for (size_t i = 0; i < r->n; i++) {
		struct cp_go_bucket *b = &r->b[i];
		const struct cp_go_bucket *old = NULL;
		bool any = false;

		if (sorted)
			old = bsearch(b, sorted, base->n, sizeof(*sorted), by_addr);
		for (size_t j = 0; !sorted && j < base->n && !old; j++)
			if (base->b[j].addr == b->addr)
				old = &base->b[j];
		for (int k = 0; k < 4; k++) {
			if (old)
				b->v[k] -= old->v[k];
			any |= b->v[k] != 0;
		}
		if (any)
			r->b[out++] = *b;
	}
	r->n = out;
	free(sorted);
}
