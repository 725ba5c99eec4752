/* Go profiles from the runtime's own records: goroutines by stack, heap, allocs, block, mutex. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capture.h"
#include "go_prof.h"
#include "go_profile.h"
#include "goruntime.h"
#include "maps.h"
#include "mem.h"
#include "proc.h"
#include "symbolize.h"
#include "util.h"

/* Frames per goroutine stack, as Go's goroutine profile keeps (and a margin). */
#define GO_STACK_MAX 512

/* Go's _Gidle and _Gdead: not goroutines Go's profile or NumGoroutine counts. */
#define G_IDLE 0
#define G_RUNNING 2
#define G_DEAD 6
/* How long to wait for a running goroutine's thread to be sampled on its CPU (ms). */
#define RUNNING_SAMPLE_MS 500

struct cp_go_profiler {
	int pid;
	struct cp_maps maps;
	struct cp_mem mem;
	struct cp_go_runtime *rt;
	struct cp_symbolizer *sym;
	bool own_sym;
	/* The records read by cp_go_profiler_begin, per record kind. */
	struct cp_go_records base[3];
	bool has_base[3];
	uint64_t base_wall_ns[3], base_mono_ns[3];	/* when they were read */
	size_t g_all, g_user;
};

/* The profile being built and what is cached for it. */
struct build {
	struct cp_go_profiler *gp;
	struct cp_profile *prof;
	uint64_t *map_ids;	/* per map of gp->maps; 0 = not added yet */
};

static const struct {
	const char *name;
	enum cp_go_profile_type type;
} type_names[] = {
	{ "goroutine", CP_GO_PROFILE_GOROUTINE }, { "heap", CP_GO_PROFILE_HEAP },
	{ "allocs", CP_GO_PROFILE_ALLOCS },	  { "block", CP_GO_PROFILE_BLOCK },
	{ "mutex", CP_GO_PROFILE_MUTEX },
};

int cp_go_profile_type_parse(const char *name, enum cp_go_profile_type *out)
{
	for (size_t i = 0; i < CP_ARRAY_SIZE(type_names); i++) {
		if (!strcmp(name, type_names[i].name)) {
			*out = type_names[i].type;
			return 0;
		}
	}
	return -EINVAL;
}

static enum cp_go_prof_kind record_kind(enum cp_go_profile_type type)
{
	if (type == CP_GO_PROFILE_BLOCK)
		return CP_GO_PROF_BLOCK;
	return type == CP_GO_PROFILE_MUTEX ? CP_GO_PROF_MUTEX : CP_GO_PROF_MEM;
}

int cp_go_profiler_open(int pid, struct cp_symbolizer *sym, struct cp_go_profiler **out,
			char *why, size_t whylen)
{
	struct cp_go_profiler *gp = calloc(1, sizeof(*gp));
	int err;

	if (whylen)
		why[0] = '\0';
	if (!gp)
		return -ENOMEM;
	gp->pid = pid;
	gp->mem = CP_MEM_BY_PID(pid);
	err = cp_maps_read(pid, &gp->maps);
	if (err == 0)
		err = cp_mem_open(&gp->mem, pid);
	if (err == 0)
		err = cp_go_open(pid, &gp->maps, &gp->mem, &gp->rt, why, whylen);
	if (err == 0 && !sym) {
		sym = cp_sym_new();
		gp->own_sym = true;
		if (!sym)
			err = -ENOMEM;
	}
	if (err < 0) {
		cp_go_profiler_free(gp);
		return err;
	}
	gp->sym = sym;
	*out = gp;
	return 0;
}

void cp_go_profiler_free(struct cp_go_profiler *gp)
{
	if (!gp)
		return;
	for (size_t i = 0; i < CP_ARRAY_SIZE(gp->base); i++)
		cp_go_records_release(&gp->base[i]);
	if (gp->rt)
		cp_go_close(gp->rt);
	if (gp->own_sym)
		cp_sym_free(gp->sym);
	cp_mem_close(&gp->mem);
	cp_maps_release(&gp->maps);
	free(gp);
}

const char *cp_go_profiler_version(const struct cp_go_profiler *gp)
{
	return cp_go_version(gp->rt);
}

void cp_go_profiler_goroutine_counts(const struct cp_go_profiler *gp, size_t *all, size_t *user)
{
	*all = gp->g_all;
	*user = gp->g_user;
}

/* The profile id of gp->maps.v[i], added on first use. 0 when it cannot be added. */
static uint64_t mapping_id(struct build *b, size_t i)
{
	const struct cp_map *m = &b->gp->maps.v[i];
	const char *build_id = NULL;
	uint64_t bias, id = 0;
	bool has_debug = false;

	if (b->map_ids[i])
		return b->map_ids[i];
	if (cp_sym_module_info(b->gp->sym, b->gp->pid, m, &build_id, &bias, &has_debug) < 0)
		build_id = NULL;
	if (cp_profile_add_mapping(b->prof, b->gp->pid, m, build_id, true, true, &id) < 0)
		return 0;
	b->map_ids[i] = id;
	return id;
}

/* The executable's first executable mapping first: pprof's mapping 1. */
static void main_mapping(struct build *b)
{
	char exe[4096];
	int n = cp_proc_read_exe(b->gp->pid, exe, sizeof(exe));

	for (size_t i = 0; n >= 0 && i < b->gp->maps.n; i++) {
		const struct cp_map *m = &b->gp->maps.v[i];

		if (m->perms[2] == 'x' && cp_map_is_file(m) &&
		    !strncmp(exe, m->path, strlen(m->path))) {
			mapping_id(b, i);
			return;
		}
	}
}

/*
 * The location of return address pc (looked up at pc - 1, inside the call, as Go writes
 * them). *runtime says whether its innermost function is in package runtime. 0, 1 for
 * runtime.goexit (the end of every goroutine, which Go's profiles leave out) or -errno.
 */
/* The source frames of a location, innermost first (symbolizer-owned strings). */
struct frames {
	const char *fn[CP_SYM_MAX_INLINE];
	int64_t line[CP_SYM_MAX_INLINE];
	size_t n;			/* 0 when unsymbolized */
};

static int location(struct build *b, uint64_t pc, uint64_t *id, bool *runtime,
		    struct frames *fr)
{
	struct cp_profile_line lines[CP_SYM_MAX_INLINE];
	uint64_t addr = pc - 1, mid = 0;
	const struct cp_map *m = cp_maps_find(&b->gp->maps, addr);
	struct cp_sym_result res = { 0 };
	char unnamed[128];
	size_t nl = 0;

	*runtime = false;
	fr->n = 0;
	if (m && cp_sym_resolve(b->gp->sym, b->gp->pid, m, addr, &res) == 0) {
		for (size_t i = 0; i < res.n && i < CP_SYM_MAX_INLINE; i++) {
			const struct cp_sym_frame *f = &res.frames[i];

			if (!f->function && !f->file)
				continue;
			lines[nl++] = (struct cp_profile_line){ .function = f->function,
								.system_name = f->system_name,
								.file = f->file,
								.line = f->line,
								.start_line = f->start_line };
		}
		fr->n = 0;
		for (size_t i = 0; i < nl && lines[i].function; i++, fr->n++) {
			fr->fn[i] = lines[i].function;
			fr->line[i] = lines[i].line;
		}
		*runtime = nl && lines[0].function && !strncmp(lines[0].function, "runtime.", 8);
		if (*runtime && lines[nl - 1].function &&
		    !strcmp(lines[nl - 1].function, "runtime.goexit"))
			return 1;
	}
	*id = cp_profile_find_location(b->prof, b->gp->pid, addr);
	if (*id)
		return 0;
	if (m && cp_map_is_file(m))
		mid = mapping_id(b, (size_t)(m - b->gp->maps.v));
	if (nl == 0 && m) {
		snprintf(unnamed, sizeof(unnamed), "%s+0x%" PRIx64, cp_map_basename(m),
			 pc - m->start + m->offset);
		lines[0] = (struct cp_profile_line){ .function = unnamed };
		nl = 1;
	}
	return cp_profile_add_location(b->prof, b->gp->pid, addr, mid, lines, nl, id);
}

/*
 * The locations of stack pcs[0..n) into ids. Heap stacks drop their leading runtime frames
 * as Go's writeHeapProto does, unless every frame is one. *out receives the count. 0/-errno.
 */
/*
 * Whether cur is the outer part of prev's inlined frames: Go's stacks hold, after a pc in
 * inlined code, a pc at the inlining call site in the caller (its inline mark), which Go's
 * profile builder folds into the location before it.
 */
static bool inline_mark_of(const struct frames *prev, const struct frames *cur)
{
	if (!cur->n || cur->n >= prev->n)
		return false;
	for (size_t i = 0; i < cur->n; i++) {
		size_t j = prev->n - cur->n + i;

		if (strcmp(cur->fn[i], prev->fn[j]) || cur->line[i] != prev->line[j])
			return false;
	}
	return true;
}

static int stack_ids(struct build *b, const uint64_t *pcs, size_t n, bool hide_runtime,
		     uint64_t *ids, size_t *out)
{
	struct frames fr[2] = { { .n = 0 } };
	size_t k = 0;
	bool seen_user = !hide_runtime;
	int err;

	for (size_t i = 0; i < n; i++) {
		struct frames *cur = &fr[i & 1], *prev = &fr[!(i & 1)];
		bool runtime;

		err = location(b, pcs[i], &ids[k], &runtime, cur);
		if (err < 0)
			return err;
		if (err == 1)
			continue;
		if (i && inline_mark_of(prev, cur)) {
			/* Keep comparing with the location that holds the inlined frames. */
			*cur = *prev;
			continue;
		}
		if (!seen_user && runtime)
			continue;
		seen_user = true;
		k++;
	}
	if (k == 0 && n && hide_runtime)
		return stack_ids(b, pcs, n, false, ids, out);
	*out = k;
	return 0;
}

/* Go's scaleHeapSample: unsample count objects of size bytes taken at one per rate bytes. */
static void scale_heap(int64_t count, int64_t size, int64_t rate, int64_t *c, int64_t *s)
{
	double scale;

	if (count == 0 || size == 0) {
		*c = *s = 0;
		return;
	}
	if (rate <= 1) {
		*c = count;
		*s = size;
		return;
	}
	scale = 1 / (1 - exp(-((double)size / (double)count) / (double)rate));
	*c = (int64_t)((double)count * scale);
	*s = (int64_t)((double)size * scale);
}

/* One bucket's values as Go's heap and count-cycle profiles write them. */
static void bucket_values(const struct cp_go_records *r, const struct cp_go_bucket *bk,
			  int64_t v[4], int64_t *block_size)
{
	const int64_t *x = bk->v;

	*block_size = 0;
	if (r->kind == CP_GO_PROF_MEM) {
		scale_heap(x[CP_GO_MEM_ALLOCS], x[CP_GO_MEM_ALLOC_BYTES], r->rate, &v[0], &v[1]);
		scale_heap(x[CP_GO_MEM_ALLOCS] - x[CP_GO_MEM_FREES],
			   x[CP_GO_MEM_ALLOC_BYTES] - x[CP_GO_MEM_FREE_BYTES], r->rate, &v[2],
			   &v[3]);
		if (x[CP_GO_MEM_ALLOCS] > 0)
			*block_size = x[CP_GO_MEM_ALLOC_BYTES] / x[CP_GO_MEM_ALLOCS];
		return;
	}
	/* printCountCycleProfile: cycles to ns at the runtime's tick rate; mutex x rate. */
	double ns = r->ticks_per_sec > 0 ?
			    (double)x[CP_GO_BLOCK_CYCLES] / ((double)r->ticks_per_sec / 1e9) :
			    (double)x[CP_GO_BLOCK_CYCLES];

	v[0] = x[CP_GO_BLOCK_COUNT];
	if (r->kind == CP_GO_PROF_MUTEX && r->rate > 1) {
		v[0] *= r->rate;
		ns *= (double)r->rate;
	}
	v[1] = ns < 9e18 ? (int64_t)ns : INT64_MAX;
}

static int add_records(struct build *b, const struct cp_go_records *r)
{
	uint64_t *ids = malloc((CP_GO_PROF_MAX_STACK + 1) * sizeof(*ids));
	int err = ids ? 0 : -ENOMEM;

	for (size_t i = 0; err == 0 && i < r->n; i++) {
		const struct cp_go_bucket *bk = &r->b[i];
		int64_t v[4], block_size;
		uint32_t node;
		size_t n;

		bucket_values(r, bk, v, &block_size);
		err = stack_ids(b, r->pcs + bk->stk, bk->nstk, r->kind == CP_GO_PROF_MEM, ids, &n);
		if (err == 0)
			err = cp_profile_stack(b->prof, ids, n, &node);
		if (err < 0)
			break;
		if (block_size)
			err = cp_profile_add_stack_sample_num(b->prof, node, b->gp->pid, 0, NULL,
							      "bytes", block_size, v);
		else
			err = cp_profile_add_stack_sample(b->prof, node, b->gp->pid, 0, NULL, NULL,
							  NULL, v);
	}
	free(ids);
	return err;
}

/*
 * Whether the program records kind at all: -ENOTSUP with why saying so and how to enable it
 * when it does not and there is nothing recorded; 1 with a note when it does not now but
 * did before; else 0.
 */
static int check_enabled(const struct cp_go_records *r, char *why, size_t whylen)
{
	if (r->kind == CP_GO_PROF_MEM && r->disabled) {
		snprintf(why, whylen, "memory profiling is disabled in this program: the linker "
				      "set runtime.disableMemoryProfiling (nothing in it reads "
				      "heap profiles; importing runtime/pprof keeps them)");
		return -ENOTSUP;
	}
	if (r->rate > 0)
		return 0;
	if (r->kind == CP_GO_PROF_MEM)
		snprintf(why, whylen, "runtime.MemProfileRate is 0: the program turned memory "
				      "profiling off");
	else if (r->kind == CP_GO_PROF_BLOCK)
		snprintf(why, whylen, "the program did not enable the block profile: it must "
				      "call runtime.SetBlockProfileRate(1) (1 records every "
				      "blocking event; N, one per N ns blocked)");
	else
		snprintf(why, whylen, "the program did not enable the mutex profile: it must "
				      "call runtime.SetMutexProfileFraction(N) (1 records every "
				      "contention; N, one in N)");
	if (r->n == 0)
		return -ENOTSUP;
	snprintf(why + strlen(why), whylen - strlen(why), "; showing what it recorded before");
	return 1;
}

static struct cp_profile *new_profile(enum cp_go_profile_type type)
{
	switch (type) {
	case CP_GO_PROFILE_HEAP:
		return cp_profile_new_kind(CP_PROFILE_KIND_HEAP);
	case CP_GO_PROFILE_ALLOCS:
		return cp_profile_new_kind(CP_PROFILE_KIND_ALLOCS);
	case CP_GO_PROFILE_BLOCK:
	case CP_GO_PROFILE_MUTEX:
		return cp_profile_new_kind(CP_PROFILE_KIND_DELAY);
	default:
		return cp_profile_new_count("goroutine", "count");
	}
}

int cp_go_profiler_begin(struct cp_go_profiler *gp, enum cp_go_profile_type type, char *why,
			 size_t whylen)
{
	enum cp_go_prof_kind k = record_kind(type);
	struct cp_go_records r;
	int err;

	if (type == CP_GO_PROFILE_GOROUTINE)
		return 0;
	err = cp_go_records_read(gp->rt, &gp->mem, k, &r, why, whylen);
	if (err < 0)
		return err;
	err = check_enabled(&r, why, whylen);
	if (err < 0) {
		cp_go_records_release(&r);
		return err;
	}
	cp_go_records_release(&gp->base[k]);
	gp->base[k] = r;
	gp->has_base[k] = true;
	gp->base_wall_ns[k] = cp_wall_ns();
	gp->base_mono_ns[k] = cp_now_ns();
	return 0;
}

/* Leave out the wrapper frames Go's tracebacks elide. Returns the pcs left. */
static size_t drop_wrappers(const struct cp_go_runtime *rt, uint64_t *pcs, size_t n)
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++)
		if (!cp_go_pc_is_wrapper(rt, pcs[i]))
			pcs[k++] = pcs[i];
	return k;
}

/*
 * The stack of a goroutine that runs on its thread: the thread's registers from one perf
 * sample (it is not stopped), unwound on the goroutine's own stack as a parked one would be.
 * 0 pcs when it cannot be sampled (no perf events, it blocked meanwhile) or runs on another
 * stack (the scheduler's, a signal's).
 */
static size_t running_stack(struct cp_go_runtime *rt, const struct cp_goroutine *g,
			    uint64_t *pcs, size_t max)
{
	struct cp_thread_snap snap;
	struct cp_goroutine at = *g;
	uint64_t ip, sp;
	size_t n = 0;

	if (!g->tid || cp_capture_by_sample(g->tid, 64, RUNNING_SAMPLE_MS, &snap) < 0)
		return 0;
	ip = snap.regs.r[CP_REG_RIP];
	sp = snap.regs.r[CP_REG_RSP];
	if ((snap.regs.valid & (1u << CP_REG_RIP)) && (snap.regs.valid & (1u << CP_REG_RSP)) &&
	    sp >= g->stack_lo && sp < g->stack_hi && ip) {
		/* An exact pc: + 1, as Go's tracebacks store it, so that pc - 1 names it. */
		at.pc = ip + 1;
		at.sp = sp;
		at.bp = snap.regs.r[CP_REG_RBP];
		n = cp_go_unwind(rt, &at, pcs, max);
	}
	cp_thread_snap_release(&snap);
	return n;
}

/* The goroutine profile: Go's goroutine/count by stack, its system goroutines left out. */
static int add_goroutines(struct build *b)
{
	struct cp_goroutine *gs = NULL;
	uint64_t *pcs = malloc(GO_STACK_MAX * sizeof(*pcs));
	uint64_t *ids = malloc((GO_STACK_MAX + 1) * sizeof(*ids));
	size_t ng = 0, n, k;
	int err = pcs && ids ? cp_go_goroutines(b->gp->rt, &gs, &ng) : -ENOMEM;

	b->gp->g_all = b->gp->g_user = 0;
	for (size_t i = 0; err == 0 && i < ng; i++) {
		const struct cp_goroutine *g = &gs[i];

		if (g->status == G_IDLE || g->status == G_DEAD)
			continue;
		b->gp->g_all++;
		if (g->system)
			continue;
		b->gp->g_user++;
		if (g->sp)
			n = cp_go_unwind(b->gp->rt, g, pcs, GO_STACK_MAX);
		else if (g->status == G_RUNNING)
			n = running_stack(b->gp->rt, g, pcs, GO_STACK_MAX);
		else
			n = 0;
		n = drop_wrappers(b->gp->rt, pcs, n);
		err = stack_ids(b, pcs, n, false, ids, &k);
		if (err == 0 && k == 0)
			err = cp_profile_special_location(b->prof, g->status == 2 ? "[running]" :
										    "[unknown]",
							  &ids[k++]);
		if (err == 0)
			err = cp_profile_add_count(b->prof, ids, k, b->gp->pid, 0, NULL, 1);
	}
	free(gs);
	free(pcs);
	free(ids);
	return err;
}

int cp_go_profiler_states(struct cp_go_profiler *gp, struct cp_go_state_count **out, size_t *n,
			  size_t *total)
{
	struct cp_goroutine *gs = NULL;
	struct cp_go_state_count *v = NULL;
	size_t ng = 0, nv = 0;
	int err = cp_go_goroutines(gp->rt, &gs, &ng);

	*total = 0;
	if (err == 0 && ng) {
		v = calloc(ng, sizeof(*v));
		err = v ? 0 : -ENOMEM;
	}
	for (size_t i = 0; err == 0 && i < ng; i++) {
		const struct cp_goroutine *g = &gs[i];
		const char *st = g->wait_reason && g->wait_reason[0] ? g->wait_reason :
				 g->status_str ? g->status_str : "unknown";
		size_t k = 0;

		if (g->status == G_IDLE || g->status == G_DEAD || g->system)
			continue;
		(*total)++;
		while (k < nv && strcmp(v[k].state, st))
			k++;
		if (k == nv)
			v[nv++] = (struct cp_go_state_count){ .state = st };
		v[k].n++;
	}
	free(gs);
	if (err < 0) {
		free(v);
		return err;
	}
	*out = v;
	*n = nv;
	return 0;
}

int cp_go_profiler_take(struct cp_go_profiler *gp, enum cp_go_profile_type type,
			struct cp_profile **out, char *why, size_t whylen)
{
	struct build b = { .gp = gp };
	struct cp_profile_meta meta = { .time_nanos = cp_wall_ns(), .period = 1 };
	enum cp_go_prof_kind k = record_kind(type);
	struct cp_go_records r = { 0 };
	int err, note = 0;

	if (whylen)
		why[0] = '\0';
	b.prof = new_profile(type);
	b.map_ids = calloc(gp->maps.n + 1, sizeof(*b.map_ids));
	if (!b.prof || !b.map_ids) {
		err = -ENOMEM;
		goto done;
	}
	main_mapping(&b);
	if (type == CP_GO_PROFILE_GOROUTINE) {
		err = add_goroutines(&b);
		goto done;
	}
	err = cp_go_records_read(gp->rt, &gp->mem, k, &r, why, whylen);
	if (err < 0)
		goto done;
	note = err = check_enabled(&r, why, whylen);
	if (err < 0)
		goto done;
	if (r.truncated) {
		snprintf(why, whylen, "more than %u buckets: the profile holds the first ones",
			 CP_GO_PROF_MAX_BUCKETS);
		note = 1;
	}
	if (gp->has_base[k]) {
		cp_go_records_subtract(&r, &gp->base[k]);
		meta.time_nanos = gp->base_wall_ns[k];
		meta.duration_nanos = cp_now_ns() - gp->base_mono_ns[k];
	}
	if (r.kind == CP_GO_PROF_MEM)
		meta.period = r.rate;
	err = add_records(&b, &r);
done:
	cp_go_records_release(&r);
	free(b.map_ids);
	if (err < 0) {
		cp_profile_free(b.prof);
		return err;
	}
	cp_profile_set_meta(b.prof, &meta);
	*out = b.prof;
	return note;
}
