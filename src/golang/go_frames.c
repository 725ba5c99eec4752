/* Naming goroutines' pcs as Go's traceback names them, each pc looked up once per runtime. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "go_internal.h"

#define MAX_INLINE 32
#define MEMO_MIN_SLOTS 4096u

/* Go's showframe at GOTRACEBACK=single: runtime internals are hidden, exported ones shown. */
static bool shown(const char *name)
{
	if (!strchr(name, '.'))
		return false;
	if (strncmp(name, "runtime.", 8))
		return true;
	return name[8] >= 'A' && name[8] <= 'Z';
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

static uint64_t memo_hash(uint64_t key)
{
	key ^= key >> 33;
	key *= 0xff51afd7ed558ccdull;
	key ^= key >> 33;
	return key;
}

/* Room for one more entry: the table doubled (rehashed) at half full. 0 or -ENOMEM. */
static int memo_grow(struct cp_go_runtime *rt)
{
	size_t nslots = rt->memo_slots ? rt->memo_slots * 2 : MEMO_MIN_SLOTS;
	struct go_pc_info *v;

	if (rt->memo_used + 1 <= rt->memo_slots / 2)
		return 0;
	v = calloc(nslots, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < rt->memo_slots; i++) {
		size_t j;

		if (!rt->memo[i].key)
			continue;
		j = memo_hash(rt->memo[i].key) & (nslots - 1);
		while (v[j].key)
			j = (j + 1) & (nslots - 1);
		v[j] = rt->memo[i];
	}
	free(rt->memo);
	rt->memo = v;
	rt->memo_slots = nslots;
	return 0;
}

/* Append k frames to the pool; their offset, or -1 when out of memory. */
static int64_t pool_add(struct cp_go_runtime *rt, const struct cp_go_frame *f, size_t k)
{
	if (rt->npool + k > rt->pool_cap) {
		size_t cap = rt->pool_cap ? rt->pool_cap * 2 : 4096;
		struct cp_go_frame *p;

		while (cap < rt->npool + k)
			cap *= 2;
		p = realloc(rt->pool, cap * sizeof(*p));
		if (!p)
			return -1;
		rt->pool = p;
		rt->pool_cap = cap;
	}
	memcpy(rt->pool + rt->npool, f, k * sizeof(*f));
	rt->npool += k;
	return (int64_t)(rt->npool - k);
}

/* Fill pi for runtime address pc (exact: not a return address). */
static void compute(struct cp_go_runtime *rt, uint64_t pc, bool exact, struct go_pc_info *pi)
{
	struct cp_gopcln_frame fr[MAX_INLINE];
	struct cp_go_frame out[MAX_INLINE];
	struct cp_gopcln_func f;
	uint64_t epc = pc - rt->bias, tracepc = epc;
	int32_t delta;
	size_t k;
	int64_t off;

	pi->valid = cp_gopclntab_func_at(&rt->pcln, epc, &f, &delta);
	if (!pi->valid)
		return;
	pi->spdelta = delta;
	pi->top = top_of_stack(f.name);
	pi->wrapper = f.funcid == rt->funcid_wrapper;
	pi->shown = shown(f.name) && !pi->wrapper;
	pi->entry = f.entry + rt->bias;
	pi->name = f.name;
	if (!exact && epc > f.entry)
		tracepc--;
	k = cp_gopclntab_lookup(&rt->pcln, tracepc, fr, MAX_INLINE);
	for (size_t j = 0; j < k; j++)
		out[j] = (struct cp_go_frame){ .pc = pc, .function = fr[j].function,
			.file = fr[j].file, .line = fr[j].line, .inlined = fr[j].inlined,
			.entry_off = fr[j].inlined ? 0 : epc - f.entry,
			.frame_pc = fr[j].pc + rt->bias, .frame_off = fr[j].pc - f.entry };
	off = k ? pool_add(rt, out, k) : 0;
	pi->nframes = off >= 0 ? (uint32_t)k : 0;
	pi->frames = off >= 0 ? (size_t)off : 0;
}

const struct go_pc_info *go_pc_info(struct cp_go_runtime *rt, uint64_t pc, bool exact)
{
	uint64_t key = (pc << 1 | exact) + 1;
	size_t j;

	if (rt->memo_slots) {
		j = memo_hash(key) & (rt->memo_slots - 1);
		for (; rt->memo[j].key; j = (j + 1) & (rt->memo_slots - 1))
			if (rt->memo[j].key == key)
				return &rt->memo[j];
	}
	if (memo_grow(rt) < 0)
		return NULL;
	j = memo_hash(key) & (rt->memo_slots - 1);
	while (rt->memo[j].key)
		j = (j + 1) & (rt->memo_slots - 1);
	memset(&rt->memo[j], 0, sizeof(rt->memo[j]));
	rt->memo[j].key = key;
	rt->memo_used++;
	compute(rt, pc, exact, &rt->memo[j]);
	return &rt->memo[j];
}

size_t cp_go_frames(struct cp_go_runtime *rt, const uint64_t *pcs, size_t npcs,
		    bool first_exact, bool all, struct cp_go_frame *out, size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i < npcs && n < max; i++) {
		const struct go_pc_info *pi = go_pc_info(rt, pcs[i], i == 0 && first_exact);

		/* Go hides runtime internals and wrappers (the go statement's closure, say). */
		if (!pi || !pi->valid || pi->wrapper || (!all && !pi->shown))
			continue;
		for (size_t j = 0; j < pi->nframes && n < max; j++)
			out[n++] = rt->pool[pi->frames + j];
	}
	return n;
}

bool cp_go_created_by(struct cp_go_runtime *rt, const struct cp_goroutine *g,
		      struct cp_go_frame *out)
{
	const struct go_pc_info *pi;

	if (!g->gopc || g->id == 1)
		return false;
	pi = go_pc_info(rt, g->gopc, false);
	if (!pi || !pi->valid || !shown(pi->name) || !pi->nframes)
		return false;
	*out = rt->pool[pi->frames];
	out->function = pi->name;
	out->inlined = false;
	out->entry_off = g->gopc - pi->entry;
	return true;
}
