/* Every goroutine of a Go program read from its memory, and each one's stack unwound. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "go_internal.h"
#include "mem.h"

/* Caps on what the target's memory may ask of us. */
/* Goroutines read at most (the first of allgs); more are left out. */
#define MAX_GOROUTINES (1u << 20)
/* Bytes of live stacks copied in all; the stacks past it are read live when unwound. */
#define MAX_STACK_ARENA (256u << 20)
#define MAX_STACK_COPY (64u << 10)
/* Most bytes one coalesced read covers, and the gaps it may read over. */
#define MAX_RUN (4u << 20)
#define G_GAP 4096
#define STACK_GAP 0
/* How often a goroutine that moved while read is read again. */
#define MAX_REREADS 5

/* The runtime's goroutine states (runtime2.go), the _Gscan bit apart. */
enum { G_IDLE = 0, G_RUNNING = 2, G_SYSCALL = 3, G_WAITING = 4, G_DEAD = 6, G_SCAN = 0x1000 };

static int span_addr_cmp(const void *a, const void *b)
{
	const struct cp_mem_span *x = *(const struct cp_mem_span *const *)a;
	const struct cp_mem_span *y = *(const struct cp_mem_span *const *)b;

	return x->addr < y->addr ? -1 : x->addr > y->addr;
}

/*
 * Read the spans v[0..n) (setting each one's ok) with neighbours less than gap bytes apart
 * read as one range: a thousand gs of one heap span cost one range, not a thousand. 0 or
 * -ENOMEM (then nothing was read).
 */
static int read_coalesced(const struct cp_go_runtime *rt, struct cp_mem_span *v, size_t n,
			  uint64_t gap)
{
	struct cp_mem_span **by = malloc((n + 1) * sizeof(*by)), *runs;
	size_t nruns = 0, total = 0;
	uint8_t *buf;

	runs = malloc((n + 1) * sizeof(*runs));
	if (!by || !runs) {
		free(by);
		free(runs);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++)
		by[i] = &v[i];
	qsort(by, n, sizeof(*by), span_addr_cmp);
	for (size_t i = 0; i < n;) {
		size_t j = i + 1;
		uint64_t end = by[i]->addr + by[i]->len;

		while (j < n && by[j]->addr <= end + gap && by[j]->addr + by[j]->len - by[i]->addr <=
		       MAX_RUN) {
			if (by[j]->addr + by[j]->len > end)
				end = by[j]->addr + by[j]->len;
			j++;
		}
		runs[nruns++] = (struct cp_mem_span){ by[i]->addr, end - by[i]->addr,
			(void *)(uintptr_t)i, false };
		total += end - by[i]->addr;
		i = j;
	}
	buf = malloc(total + 1);
	if (!buf) {
		free(by);
		free(runs);
		return -ENOMEM;
	}
	total = 0;
	for (size_t r = 0; r < nruns; r++) {
		runs[r].dst = buf + total;
		total += runs[r].len;
	}
	cp_mem_readv(rt->mem, runs, nruns);
	for (size_t r = 0, i = 0; r < nruns; r++) {
		uint64_t end = runs[r].addr + runs[r].len;

		for (; i < n && by[i]->addr + by[i]->len <= end && by[i]->addr >= runs[r].addr; i++) {
			if (runs[r].ok)
				memcpy(by[i]->dst, (uint8_t *)runs[r].dst + (by[i]->addr - runs[r].addr),
				       by[i]->len);
			by[i]->ok = runs[r].ok;
		}
	}
	/* A run that could not be read whole: its spans one by one. */
	for (size_t i = 0; i < n; i++)
		if (!v[i].ok)
			v[i].ok = cp_mem_read(rt->mem, v[i].addr, v[i].dst, v[i].len) == (long)v[i].len;
	free(buf);
	free(by);
	free(runs);
	return 0;
}

static uint64_t rd64(const uint8_t *g, uint32_t off)
{
	return go_le64(g + off);
}

/* The g pointers of allgs: allgptr/allglen as the runtime's atomicAllG, else allgs. */
static int read_allgs(const struct cp_go_runtime *rt, size_t max, uint64_t **out, size_t *n)
{
	uint64_t lenaddr, ptraddr, hdr[2] = { 0, 0 }, len, ptr;
	uint64_t *v;
	long want;

	if (cp_go_global(rt, "runtime.allglen", &lenaddr) == 0 &&
	    cp_go_global(rt, "runtime.allgptr", &ptraddr) == 0 &&
	    cp_mem_read(rt->mem, lenaddr, &len, 8) == 8 &&
	    cp_mem_read(rt->mem, ptraddr, &ptr, 8) == 8 && ptr && len) {
		hdr[0] = ptr;
		hdr[1] = len;
	} else if (cp_go_global(rt, "runtime.allgs", &ptraddr) < 0 ||
		   cp_mem_read(rt->mem, ptraddr, hdr, sizeof(hdr)) != (long)sizeof(hdr)) {
		return -EFAULT;
	}
	if (hdr[1] && !hdr[0])
		return -EFAULT;
	if (hdr[1] > max)
		hdr[1] = max;
	v = malloc((hdr[1] ? hdr[1] : 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	want = (long)(hdr[1] * 8);
	if (hdr[1] && cp_mem_read(rt->mem, hdr[0], v, hdr[1] * 8) != want) {
		free(v);
		return -EFAULT;
	}
	*out = v;
	*n = hdr[1];
	return 0;
}

/* The OS thread id of m (its procid), 0 when unreadable. */
static int m_tid(const struct cp_go_runtime *rt, uint64_t m)
{
	uint64_t procid;

	if (!m || cp_mem_read(rt->mem, m + rt->layout.m_procid, &procid, 8) != 8 ||
	    procid > INT32_MAX)
		return 0;
	return (int)procid;
}

/* True when the goroutine's startpc is a runtime function Go's dump hides. */
static bool is_system(struct cp_go_runtime *rt, uint64_t startpc)
{
	const struct go_pc_info *pi = go_pc_info(rt, startpc, true);

	if (!pi || !pi->valid)
		return false;
	if (!strcmp(pi->name, "runtime.main") || !strcmp(pi->name, "runtime.handleAsyncEvent"))
		return false;
	/* The finalizer goroutine is shown while it runs finalizers (user code). */
	if (!strcmp(pi->name, "runtime.runfinq")) {
		uint64_t addr;
		uint8_t running = 0;

		return cp_go_global(rt, "runtime.fingRunning", &addr) < 0 ||
		       cp_mem_read(rt->mem, addr, &running, 1) != 1 || !running;
	}
	return !strncmp(pi->name, "runtime.", 8);
}

/* Decode the g read into bytes b into *out. False for dead or idle gs. */
static bool decode_g(struct cp_go_runtime *rt, const uint8_t *b, struct cp_goroutine *out)
{
	const struct go_layout *l = &rt->layout;
	uint32_t status = go_le32(b + l->g_atomicstatus) & ~(uint32_t)G_SCAN;
	uint8_t reason = b[l->g_waitreason];
	uint64_t lockedm = l->g_lockedm ? rd64(b, l->g_lockedm) : 0;

	if (status == G_DEAD || status == G_IDLE)
		return false;
	memset(out, 0, sizeof(*out));
	out->id = (int64_t)rd64(b, l->g_goid);
	out->status = status;
	out->status_str = status < rt->nstatus ? rt->status_strs[status] : "???";
	out->wait_reason = status == G_WAITING && reason && reason < rt->nreasons ?
		rt->reason_strs[reason] : "";
	out->wait_since_ns = (int64_t)rd64(b, l->g_waitsince);
	out->locked_to_thread = lockedm != 0;
	out->stack_lo = rd64(b, l->g_stack_lo);
	out->stack_hi = rd64(b, l->g_stack_hi);
	out->gopc = rd64(b, l->g_gopc);
	out->parent_id = l->g_parentgoid ? (int64_t)rd64(b, l->g_parentgoid) : 0;
	out->system = is_system(rt, rd64(b, l->g_startpc));
	if (status != G_RUNNING) {
		uint64_t ssp = rd64(b, l->g_syscallsp);

		out->sp = ssp ? ssp : rd64(b, l->g_sched + l->gobuf_sp);
		out->pc = ssp ? rd64(b, l->g_syscallpc) : rd64(b, l->g_sched + l->gobuf_pc);
		out->bp = ssp ? 0 : rd64(b, l->g_sched + l->gobuf_bp);
	}
	return true;
}

/*
 * The fields whose change means the g moved while read. A goroutine that ran and parked again
 * at the same place between two reads (a loop) has the same status and sched: trackingSeq,
 * bumped whenever it stops running, tells.
 */
static bool same_g(const struct go_layout *l, const uint8_t *a, const uint8_t *b)
{
	if (l->g_trackingseq && a[l->g_trackingseq] != b[l->g_trackingseq])
		return false;
	return go_le32(a + l->g_atomicstatus) == go_le32(b + l->g_atomicstatus) &&
		rd64(a, l->g_goid) == rd64(b, l->g_goid) &&
		rd64(a, l->g_sched + l->gobuf_sp) == rd64(b, l->g_sched + l->gobuf_sp) &&
		rd64(a, l->g_sched + l->gobuf_pc) == rd64(b, l->g_sched + l->gobuf_pc) &&
		rd64(a, l->g_syscallsp) == rd64(b, l->g_syscallsp);
}

/* The state of one cp_go_goroutines. */
struct gread {
	uint64_t *gptrs;
	size_t n;
	uint8_t *first, *second;	/* n gs of layout.g_size bytes, read twice */
	struct cp_mem_span *spans;
};

static void gread_release(struct gread *r)
{
	free(r->gptrs);
	free(r->first);
	free(r->second);
	free(r->spans);
}

/* Read every g into buf (n * g_size bytes); unread ones are zeroed (dead). */
static void read_all_gs(const struct cp_go_runtime *rt, struct gread *r, uint8_t *buf)
{
	uint32_t gs = rt->layout.g_size;

	for (size_t i = 0; i < r->n; i++)
		r->spans[i] = (struct cp_mem_span){ r->gptrs[i], gs, buf + i * gs, false };
	if (read_coalesced(rt, r->spans, r->n, G_GAP) < 0)
		cp_mem_readv(rt->mem, r->spans, r->n);
	for (size_t i = 0; i < r->n; i++)
		if (!r->spans[i].ok)
			memset(buf + i * gs, 0, gs);
}

/* Forget the stack copies of the last call. */
static void drop_stacks(struct cp_go_runtime *rt)
{
	free(rt->stacks);
	free(rt->stack_arena);
	rt->stacks = NULL;
	rt->stack_arena = NULL;
	rt->nstacks = 0;
}

/* How many bytes of g's live stack [sp, hi) we copy. */
static size_t stack_len(const struct cp_goroutine *g)
{
	uint64_t len = g->stack_hi > g->sp ? g->stack_hi - g->sp : 0;

	if (!g->sp || g->sp < g->stack_lo)
		return 0;
	return len > MAX_STACK_COPY ? MAX_STACK_COPY : (size_t)len;
}

/*
 * Copy the live stacks of v[0..n) into one arena (rt->stack_arena), in few system calls;
 * copies[k] says where goroutine k's is. 0 or -ENOMEM.
 */
static int copy_stacks(struct cp_go_runtime *rt, const struct cp_goroutine *v, size_t n,
		       struct go_stack_copy *copies)
{
	struct cp_mem_span *spans = malloc((n + 1) * sizeof(*spans));
	size_t total = 0, ns = 0;

	if (!spans)
		return -ENOMEM;
	for (size_t k = 0; k < n && total <= MAX_STACK_ARENA; k++)
		total += stack_len(&v[k]);
	rt->stack_arena = malloc((total < MAX_STACK_ARENA ? total : MAX_STACK_ARENA) + 1);
	if (!rt->stack_arena) {
		free(spans);
		return -ENOMEM;
	}
	total = 0;
	for (size_t k = 0; k < n; k++) {
		size_t len = stack_len(&v[k]);

		if (len > MAX_STACK_ARENA - total)
			len = 0;
		copies[k] = (struct go_stack_copy){ v[k].sp, len, len, rt->stack_arena + total };
		if (len)
			spans[ns++] = (struct cp_mem_span){ v[k].sp, len, rt->stack_arena + total,
								      false };
		total += len;
	}
	if (read_coalesced(rt, spans, ns, STACK_GAP) < 0)
		cp_mem_readv(rt->mem, spans, ns);
	for (size_t k = 0, j = 0; k < n; k++)
		if (copies[k].cap && !spans[j++].ok)
			copies[k].len = 0;
	free(spans);
	return 0;
}

/* Copy g's stack again into its slot c (as much of it as the slot holds). */
static void recopy_stack(const struct cp_go_runtime *rt, const struct cp_goroutine *g,
			 struct go_stack_copy *c)
{
	size_t len = stack_len(g);
	long got;

	if (len > c->cap)
		len = c->cap;
	c->sp = g->sp;
	got = len ? cp_mem_read(rt->mem, g->sp, c->bytes, len) : 0;
	c->len = got > 0 ? (size_t)got : 0;
}

static int copy_cmp(const void *a, const void *b)
{
	const struct go_stack_copy *x = a, *y = b;

	return x->sp < y->sp ? -1 : x->sp > y->sp;
}

/*
 * Whether g, read as not running, has the saved context it must have to be unwound: a read
 * that caught its status after a change and its context before (gogo zeroes sched.sp while
 * it runs) has none, and is read again.
 */
static bool has_context(const struct cp_goroutine *g)
{
	return g->status == G_RUNNING || (g->sp && g->pc);
}

/*
 * Goroutine i of r again, alone, until two reads around its stack copy agree (at most
 * MAX_REREADS times): false when it kept moving (torn) or died.
 */
static bool reread(struct cp_go_runtime *rt, struct gread *r, size_t i, struct cp_goroutine *g,
		   struct go_stack_copy *c, bool *alive)
{
	uint32_t gs = rt->layout.g_size;
	uint8_t *a = r->first + i * gs, *b = r->second + i * gs;

	for (int k = 0; k < MAX_REREADS; k++) {
		if (cp_mem_read(rt->mem, r->gptrs[i], a, gs) != (long)gs)
			break;
		*alive = decode_g(rt, a, g);
		if (!*alive)
			return true;
		recopy_stack(rt, g, c);
		if (cp_mem_read(rt->mem, r->gptrs[i], b, gs) != (long)gs)
			break;
		if (same_g(&rt->layout, a, b) && has_context(g))
			return true;
	}
	return false;
}

/*
 * The threads (g.m, else g.lockedm), channels (g.waiting's sudog.c) and g addresses of
 * v[0..n), whose gs are in r at gidx: the sudogs read in few system calls. 0 or -ENOMEM.
 */
static int resolve(const struct cp_go_runtime *rt, const struct gread *r, const size_t *gidx,
		   struct cp_goroutine *v, size_t n)
{
	const struct go_layout *l = &rt->layout;
	struct cp_mem_span *spans = malloc((n + 1) * sizeof(*spans));
	uint64_t *chans = calloc(n + 1, sizeof(*chans));
	size_t ns = 0;

	if (!spans || !chans) {
		free(spans);
		free(chans);
		return -ENOMEM;
	}
	for (size_t k = 0; k < n; k++) {
		const uint8_t *b = r->first + gidx[k] * l->g_size;
		uint64_t m = rd64(b, l->g_m), s = l->g_waiting ? rd64(b, l->g_waiting) : 0;
		uint64_t lm = l->g_lockedm ? rd64(b, l->g_lockedm) : 0;

		v[k].tid = m || lm ? m_tid(rt, m ? m : lm) : 0;
		v[k].addr = r->gptrs[gidx[k]];
		v[k].waiting_chan = 0;
		if (v[k].status == G_WAITING && s && l->sudog_c)
			spans[ns++] = (struct cp_mem_span){ s + l->sudog_c, 8, &chans[k], false };
	}
	if (read_coalesced(rt, spans, ns, G_GAP) < 0)
		cp_mem_readv(rt->mem, spans, ns);
	for (size_t k = 0; k < n; k++)
		v[k].waiting_chan = chans[k];
	free(spans);
	free(chans);
	return 0;
}

int cp_go_goroutines(struct cp_go_runtime *rt, struct cp_goroutine **out, size_t *nout)
{
	return go_goroutines_first(rt, MAX_GOROUTINES, out, nout);
}

int go_goroutines_first(struct cp_go_runtime *rt, size_t max, struct cp_goroutine **out,
			size_t *nout)
{
	struct gread r = { 0 };
	struct cp_goroutine *v = NULL;
	struct go_stack_copy *copies = NULL;
	size_t *gidx = NULL, n = 0, kept = 0;
	uint32_t gs = rt->layout.g_size;
	int err;

	drop_stacks(rt);
	err = read_allgs(rt, max, &r.gptrs, &r.n);
	if (err)
		return err;
	r.first = malloc(r.n * gs + 1);
	r.second = malloc(r.n * gs + 1);
	r.spans = malloc((r.n + 1) * sizeof(*r.spans));
	v = calloc(r.n + 1, sizeof(*v));
	copies = calloc(r.n + 1, sizeof(*copies));
	gidx = malloc((r.n + 1) * sizeof(*gidx));
	err = -ENOMEM;
	if (!r.first || !r.second || !r.spans || !v || !copies || !gidx)
		goto fail;
	/* Read every g, copy the live stacks, read every g again: what moved is read anew. */
	read_all_gs(rt, &r, r.first);
	for (size_t i = 0; i < r.n; i++)
		if (decode_g(rt, r.first + i * gs, &v[n]))
			gidx[n++] = i;
	if (copy_stacks(rt, v, n, copies) < 0)
		goto fail;
	read_all_gs(rt, &r, r.second);
	for (size_t k = 0; k < n; k++) {
		size_t i = gidx[k];
		bool alive = true;

		if ((!same_g(&rt->layout, r.first + i * gs, r.second + i * gs) ||
		     !has_context(&v[k])) &&
		    !reread(rt, &r, i, &v[k], &copies[k], &alive))
			v[k].torn = true;
		if (!alive)
			continue;
		v[kept] = v[k];
		gidx[kept] = i;
		copies[kept++] = copies[k];
	}
	if (resolve(rt, &r, gidx, v, kept) < 0)
		goto fail;
	qsort(copies, kept, sizeof(*copies), copy_cmp);
	rt->stacks = copies;
	rt->nstacks = kept;
	gread_release(&r);
	free(gidx);
	*out = v;
	*nout = kept;
	return 0;
fail:
	drop_stacks(rt);
	gread_release(&r);
	free(v);
	free(copies);
	free(gidx);
	return err;
}

/* The word at addr: from the stack copies of the last cp_go_goroutines, else live memory. */
static bool read_word(const struct cp_go_runtime *rt, uint64_t addr, uint64_t *v)
{
	size_t lo = 0, hi = rt->nstacks;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct go_stack_copy *c = &rt->stacks[mid];

		if (addr < c->sp) {
			hi = mid;
		} else if (addr - c->sp >= c->len) {
			lo = mid + 1;
		} else {
			if (c->bytes && c->len - (addr - c->sp) >= 8) {
				*v = go_le64(c->bytes + (addr - c->sp));
				return true;
			}
			break;
		}
	}
	return cp_mem_read(rt->mem, addr, v, 8) == 8;
}

size_t cp_go_unwind(struct cp_go_runtime *rt, const struct cp_goroutine *g, uint64_t *pcs,
		    size_t max)
{
	uint64_t pc = g->pc, sp = g->sp;
	size_t n = 0;

	if (!sp || !pc)
		return 0;
	while (n < max) {
		const struct go_pc_info *pi = go_pc_info(rt, pc, false);
		uint64_t fp, lr;
		int32_t delta;

		pcs[n++] = pc;
		if (!pi || !pi->valid || pi->spdelta < 0 || pi->top)
			break;
		delta = pi->spdelta;
		fp = sp + (uint64_t)delta + 8;
		if (fp > g->stack_hi || !read_word(rt, fp - 8, &lr) || lr == 0)
			break;
		sp = fp;
		pc = lr;
	}
	return n;
}

