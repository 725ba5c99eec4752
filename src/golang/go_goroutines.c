/* Every goroutine of a Go program read from its memory, and each one's stack unwound. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "go_internal.h"
#include "mem.h"

/* Caps on what the target's memory may ask of us. */
#define MAX_GOROUTINES (4u << 20)
#define MAX_STACK_COPY (64u << 10)
#define MAX_RUN (1u << 20)
/* Two gs closer than this are read in one go. */
#define COALESCE_GAP 4096
/* How often a goroutine that moved while read is read again. */
#define MAX_REREADS 3

/* The runtime's goroutine states (runtime2.go), the _Gscan bit apart. */
enum { G_IDLE = 0, G_RUNNING = 2, G_SYSCALL = 3, G_WAITING = 4, G_DEAD = 6, G_SCAN = 0x1000 };

/* One range of target memory to read into dst. */
struct span {
	uint64_t addr;
	size_t len;
	uint8_t *dst;
	bool ok;
};

static int span_cmp(const void *a, const void *b)
{
	const struct span *x = a, *y = b;

	return x->addr < y->addr ? -1 : x->addr > y->addr;
}

/* Read every span, neighbours (sorted) in one read; each span's ok says whether it was read. */
static void read_spans(const struct cp_go_runtime *rt, struct span *v, size_t n, uint8_t *tmp)
{
	qsort(v, n, sizeof(*v), span_cmp);
	for (size_t i = 0; i < n;) {
		size_t j = i + 1;
		uint64_t end = v[i].addr + v[i].len;
		long got;

		while (j < n && v[j].addr >= end && v[j].addr - end <= COALESCE_GAP &&
		       v[j].addr + v[j].len - v[i].addr <= MAX_RUN) {
			end = v[j].addr + v[j].len;
			j++;
		}
		got = j - i > 1 ? cp_mem_read(rt->mem, v[i].addr, tmp, end - v[i].addr) : -1;
		for (size_t k = i; k < j; k++) {
			if (got >= 0 && v[k].addr + v[k].len - v[i].addr <= (uint64_t)got) {
				memcpy(v[k].dst, tmp + (v[k].addr - v[i].addr), v[k].len);
				v[k].ok = true;
			} else {
				v[k].ok = cp_mem_read(rt->mem, v[k].addr, v[k].dst, v[k].len) ==
					(long)v[k].len;
			}
		}
		i = j;
	}
}

static uint64_t rd64(const uint8_t *g, uint32_t off)
{
	return go_le64(g + off);
}

/* The g pointers of allgs: allgptr/allglen as the runtime's atomicAllG, else allgs. */
static int read_allgs(const struct cp_go_runtime *rt, uint64_t **out, size_t *n)
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
	if (hdr[1] > MAX_GOROUTINES || (hdr[1] && !hdr[0]))
		return -EFAULT;
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

/* The channel sudog s waits on, 0 when none or unreadable. */
static uint64_t sudog_chan(const struct cp_go_runtime *rt, uint64_t s)
{
	uint64_t c;

	if (!s || cp_mem_read(rt->mem, s + rt->layout.sudog_c, &c, 8) != 8)
		return 0;
	return c;
}

/* True when the goroutine's startpc is a runtime function Go's dump hides. */
static bool is_system(const struct cp_go_runtime *rt, uint64_t startpc)
{
	struct cp_gopcln_func f;

	if (!cp_gopclntab_func_at(&rt->pcln, startpc - rt->bias, &f, NULL))
		return false;
	if (!strcmp(f.name, "runtime.main") || !strcmp(f.name, "runtime.handleAsyncEvent"))
		return false;
	return !strncmp(f.name, "runtime.", 8);
}

/* Decode the g read into bytes b into *out. False for dead or idle gs. */
static bool decode_g(const struct cp_go_runtime *rt, const uint8_t *b, struct cp_goroutine *out)
{
	const struct go_layout *l = &rt->layout;
	uint32_t status = go_le32(b + l->g_atomicstatus) & ~(uint32_t)G_SCAN;
	uint8_t reason = b[l->g_waitreason];
	uint64_t lockedm = rd64(b, l->g_lockedm);

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

/* The fields whose change means the g moved while read. */
static bool same_g(const struct go_layout *l, const uint8_t *a, const uint8_t *b)
{
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
	struct span *spans;
	uint8_t *tmp;
};

static void gread_release(struct gread *r)
{
	free(r->gptrs);
	free(r->first);
	free(r->second);
	free(r->spans);
	free(r->tmp);
}

/* Read every g into buf (n * g_size bytes); unread ones are zeroed (dead). */
static void read_all_gs(const struct cp_go_runtime *rt, struct gread *r, uint8_t *buf)
{
	uint32_t gs = rt->layout.g_size;

	for (size_t i = 0; i < r->n; i++)
		r->spans[i] = (struct span){ r->gptrs[i], gs, buf + i * gs, false };
	read_spans(rt, r->spans, r->n, r->tmp);
	for (size_t i = 0; i < r->n; i++)
		if (!r->spans[i].ok)
			memset(r->spans[i].dst, 0, gs);
}

/* Forget the stack copies of the last call. */
static void drop_stacks(struct cp_go_runtime *rt)
{
	for (size_t i = 0; i < rt->nstacks; i++)
		free(rt->stacks[i].bytes);
	free(rt->stacks);
	rt->stacks = NULL;
	rt->nstacks = 0;
}

/* Copy g's live stack [sp, min(hi, sp + cap)) into c. */
static void copy_stack(const struct cp_go_runtime *rt, const struct cp_goroutine *g,
		       struct go_stack_copy *c)
{
	uint64_t len = g->stack_hi > g->sp ? g->stack_hi - g->sp : 0;
	long got;

	memset(c, 0, sizeof(*c));
	if (!g->sp || g->sp < g->stack_lo || len == 0)
		return;
	if (len > MAX_STACK_COPY)
		len = MAX_STACK_COPY;
	c->bytes = malloc(len);
	if (!c->bytes)
		return;
	got = cp_mem_read(rt->mem, g->sp, c->bytes, len);
	if (got <= 0) {
		free(c->bytes);
		c->bytes = NULL;
		return;
	}
	c->sp = g->sp;
	c->len = (size_t)got;
}

static int copy_cmp(const void *a, const void *b)
{
	const struct go_stack_copy *x = a, *y = b;

	return x->sp < y->sp ? -1 : x->sp > y->sp;
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
		free(c->bytes);
		c->bytes = NULL;
		if (cp_mem_read(rt->mem, r->gptrs[i], a, gs) != (long)gs)
			break;
		*alive = decode_g(rt, a, g);
		if (!*alive)
			return true;
		copy_stack(rt, g, c);
		if (cp_mem_read(rt->mem, r->gptrs[i], b, gs) != (long)gs)
			break;
		if (same_g(&rt->layout, a, b))
			return true;
	}
	return false;
}

/* The thread and channel of the g read into b: g.m (else g.lockedm) and g.waiting's. */
static void resolve(const struct cp_go_runtime *rt, const uint8_t *b, struct cp_goroutine *g)
{
	const struct go_layout *l = &rt->layout;
	uint64_t m = rd64(b, l->g_m);

	g->tid = m_tid(rt, m ? m : rd64(b, l->g_lockedm));
	g->waiting_chan = g->status == G_WAITING ? sudog_chan(rt, rd64(b, l->g_waiting)) : 0;
}

int cp_go_goroutines(struct cp_go_runtime *rt, struct cp_goroutine **out, size_t *nout)
{
	struct gread r = { 0 };
	struct cp_goroutine *v = NULL;
	struct go_stack_copy *copies = NULL;
	size_t *gidx = NULL, n = 0, kept = 0;
	uint32_t gs = rt->layout.g_size;
	int err;

	drop_stacks(rt);
	err = read_allgs(rt, &r.gptrs, &r.n);
	if (err)
		return err;
	r.first = malloc(r.n * gs + 1);
	r.second = malloc(r.n * gs + 1);
	r.spans = malloc((r.n + 1) * sizeof(*r.spans));
	r.tmp = malloc(MAX_RUN);
	v = calloc(r.n + 1, sizeof(*v));
	copies = calloc(r.n + 1, sizeof(*copies));
	gidx = malloc((r.n + 1) * sizeof(*gidx));
	if (!r.first || !r.second || !r.spans || !r.tmp || !v || !copies || !gidx) {
		err = -ENOMEM;
		goto fail;
	}
	/* Read every g, copy the live stacks, read every g again: what moved is read anew. */
	read_all_gs(rt, &r, r.first);
	for (size_t i = 0; i < r.n; i++) {
		if (!decode_g(rt, r.first + i * gs, &v[n]))
			continue;
		copy_stack(rt, &v[n], &copies[n]);
		gidx[n++] = i;
	}
	read_all_gs(rt, &r, r.second);
	for (size_t k = 0; k < n; k++) {
		size_t i = gidx[k];
		bool alive = true;

		if (!same_g(&rt->layout, r.first + i * gs, r.second + i * gs) &&
		    !reread(rt, &r, i, &v[k], &copies[k], &alive))
			v[k].torn = true;
		if (!alive) {
			free(copies[k].bytes);
			continue;
		}
		resolve(rt, r.first + i * gs, &v[k]);
		v[kept] = v[k];
		copies[kept++] = copies[k];
	}
	qsort(copies, kept, sizeof(*copies), copy_cmp);
	rt->stacks = copies;
	rt->nstacks = kept;
	gread_release(&r);
	free(gidx);
	*out = v;
	*nout = kept;
	return 0;
fail:
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

/* The functions a goroutine's stack ends at (the runtime's topofstack). */
static bool top_of_stack(const char *name)
{
	static const char *const tops[] = { "runtime.goexit", "runtime.mstart", "runtime.mcall",
		"runtime.morestack", "runtime.rt0_go" };

	for (size_t i = 0; i < sizeof(tops) / sizeof(tops[0]); i++)
		if (!strcmp(name, tops[i]))
			return true;
	return false;
}

size_t cp_go_unwind(struct cp_go_runtime *rt, const struct cp_goroutine *g, uint64_t *pcs,
		    size_t max)
{
	uint64_t pc = g->pc, sp = g->sp;
	size_t n = 0;

	if (!sp || !pc)
		return 0;
	while (n < max) {
		struct cp_gopcln_func f;
		int32_t delta;
		uint64_t fp, lr;

		pcs[n++] = pc;
		if (!cp_gopclntab_func_at(&rt->pcln, pc - rt->bias, &f, &delta) || delta < 0 ||
		    top_of_stack(f.name))
			break;
		fp = sp + (uint64_t)delta + 8;
		if (fp > g->stack_hi || !read_word(rt, fp - 8, &lr) || lr == 0)
			break;
		sp = fp;
		pc = lr;
	}
	return n;
}

/* Go's showframe at GOTRACEBACK=single: runtime internals are hidden, exported ones shown. */
static bool shown(const char *name)
{
	if (!strchr(name, '.'))
		return false;
	if (strncmp(name, "runtime.", 8))
		return true;
	return name[8] >= 'A' && name[8] <= 'Z';
}

#define MAX_INLINE 32

size_t cp_go_frames(const struct cp_go_runtime *rt, const uint64_t *pcs, size_t npcs,
		    bool first_exact, bool all, struct cp_go_frame *out, size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i < npcs && n < max; i++) {
		struct cp_gopcln_frame fr[MAX_INLINE];
		struct cp_gopcln_func f;
		uint64_t pc = pcs[i] - rt->bias, tracepc = pc;
		size_t k;

		if (!cp_gopclntab_func_at(&rt->pcln, pc, &f, NULL))
			continue;
		/* Go hides runtime internals and wrappers (the go statement's closure, say). */
		if (!all && (!shown(f.name) || f.funcid == GO_FUNCID_WRAPPER))
			continue;
		if ((i > 0 || !first_exact) && pc > f.entry)
			tracepc--;
		k = cp_gopclntab_lookup(&rt->pcln, tracepc, fr, MAX_INLINE);
		for (size_t j = 0; j < k && n < max; j++) {
			out[n] = (struct cp_go_frame){
				.pc = pcs[i], .function = fr[j].function, .file = fr[j].file,
				.line = fr[j].line, .inlined = fr[j].inlined,
				.entry_off = fr[j].inlined ? 0 : pc - f.entry,
			};
			n++;
		}
	}
	return n;
}

bool cp_go_created_by(const struct cp_go_runtime *rt, const struct cp_goroutine *g,
		      struct cp_go_frame *out)
{
	struct cp_gopcln_frame fr[MAX_INLINE];
	struct cp_gopcln_func f;
	uint64_t pc = g->gopc - rt->bias, tracepc = pc;
	size_t k;

	if (!g->gopc || g->id == 1 || !cp_gopclntab_func_at(&rt->pcln, pc, &f, NULL) ||
	    !shown(f.name))
		return false;
	if (pc > f.entry)
		tracepc--;
	k = cp_gopclntab_lookup(&rt->pcln, tracepc, fr, MAX_INLINE);
	*out = (struct cp_go_frame){ .pc = g->gopc, .function = f.name,
		.file = k ? fr[0].file : NULL, .line = k ? fr[0].line : 0,
		.entry_off = pc - f.entry };
	return true;
}
