/* Symbolizing a dump's unwound stacks: each pc once (a memo), each distinct stack once (shared). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dump_run.h"
#include "symbolize.h"

/* Intern a module path in the dump so frames can borrow it beyond the maps' lifetime. */
static const char *intern(struct cp_dump *d, const char *s)
{
	/* The table is set up on first use: a dump built by hand (tests) has none yet. */
	if (!d->has_strings) {
		if (cp_strtab_init(&d->strings, 0) < 0)
			return NULL;
		d->has_strings = true;
	}
	return cp_strtab_str(&d->strings, s);
}

static bool pc_memo_eq(const void *ctx, uint32_t idx, const void *key)
{
	return ((const struct pc_memo *)ctx)->e[idx].key == *(const uint64_t *)key;
}

static const struct pc_memo_entry *pc_memo_find(const struct pc_memo *m, uint64_t pc,
						bool exact)
{
	uint64_t key = cp_stack_pc_key(pc, exact);
	int64_t i = cp_htab_find(&m->h, (uint32_t)cp_hash_mix(0, key), pc_memo_eq, m, &key);

	return i < 0 ? NULL : &m->e[i];
}

/* Remember pc's k frames; silently not when out of memory (a memo, not a record). */
static void pc_memo_add(struct pc_memo *m, uint64_t pc, bool exact, const struct cp_frame *f,
			size_t k)
{
	uint64_t key = cp_stack_pc_key(pc, exact);

	if (m->ne >= UINT32_MAX || m->npool > UINT32_MAX - k ||
	    cp_grow((void **)&m->e, &m->e_alloc, m->ne + 1, sizeof(*m->e)) < 0 ||
	    cp_grow((void **)&m->pool, &m->pool_cap, m->npool + k, sizeof(*m->pool)) < 0)
		return;
	m->e[m->ne] = (struct pc_memo_entry){ key, (uint32_t)m->npool, (uint32_t)k };
	if (cp_htab_insert(&m->h, (uint32_t)cp_hash_mix(0, key), (uint32_t)m->ne) < 0)
		return;
	memcpy(&m->pool[m->npool], f, k * sizeof(*f));
	m->npool += k;
	m->ne++;
}

/*
 * The frames of one pc into out (room for CP_SYM_MAX_INLINE): the function, file and line
 * and the functions inlined there, or module+offset. How many, at least 1; 0 on ENOMEM.
 */
static size_t symbolize_pc(struct dump_run *run, const struct cp_maps *maps, uint64_t pc,
			   bool exact, struct cp_frame *out)
{
	uint64_t lookup = exact ? pc : pc - 1;
	const struct cp_map *map = maps ? cp_maps_find(maps, lookup) : NULL;
	struct cp_sym_result res;
	struct cp_frame base = { .pc = pc };
	size_t k;

	if (map) {
		base.module = intern(run->d, map->path[0] ? map->path : "[anon]");
		if (!base.module)
			return 0;
		base.offset = pc - map->start + map->offset;
		base.has_offset = true;
	}
	/* cp_sym_resolve fills res whole when it succeeds; only n counts otherwise. */
	if (!map || !run->sym || cp_sym_resolve(run->sym, run->pid, map, lookup, &res) < 0)
		res.n = 0;
	if (res.n == 0) {
		out[0] = base;
		return 1;
	}
	for (k = 0; k < res.n && k < CP_SYM_MAX_INLINE; k++) {
		struct cp_frame f = base;

		f.function = res.frames[k].function ? res.frames[k].function
						    : res.frames[k].system_name;
		f.file = res.frames[k].file;
		f.line = res.frames[k].line;
		f.inlined = res.frames[k].inlined;
		out[k] = f;
	}
	return k;
}

/* Turn an unwound stack (pcs and their flags) into source-level frames, inlined calls expanded. */
static int symbolize_stack(struct dump_run *run, const struct cp_maps *maps, const uint64_t *pcs,
			   const uint8_t *flags, size_t npcs, struct cp_dump_thread *th)
{
	size_t cap = npcs * CP_SYM_MAX_INLINE, n = 0;
	struct cp_frame *fr;

	if (!npcs)
		return 0;
	/*
	 * Built in a scratch array sized for the worst case (every frame inlined 16 deep), then
	 * copied at its true size: a worst-case array per thread would be megabytes of fresh
	 * pages on a dump of a thousand threads.
	 */
	if (cap > run->scratch_cap) {
		struct cp_frame *v = realloc(run->scratch, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		run->scratch = v;
		run->scratch_cap = cap;
	}
	fr = run->scratch;
	for (size_t i = 0; i < npcs; i++) {
		uint64_t pc = pcs[i];
		bool exact = cp_stack_frame_exact(pcs, flags, i);
		const struct pc_memo_entry *hit = pc_memo_find(&run->pcs, pc, exact);
		size_t k;

		if (!hit) {
			k = symbolize_pc(run, maps, pc, exact, &fr[n]);
			if (!k)
				return -ENOMEM;
			pc_memo_add(&run->pcs, pc, exact, &fr[n], k);
		} else {
			k = hit->n;
			memcpy(&fr[n], &run->pcs.pool[hit->off], k * sizeof(*fr));
		}
		n += k;
	}
	th->frames = malloc(n * sizeof(*fr));
	if (!th->frames)
		return -ENOMEM;
	memcpy(th->frames, fr, n * sizeof(*fr));
	th->nframes = n;
	return 0;
}

int dump_symbolize_thread(struct dump_run *run, const struct thread_work *tw,
			  struct cp_dump_thread *th)
{
	/*
	 * The maps read before the captures: the stacks were unwound against them already, and
	 * symbolizing against the same view keeps the two consistent.
	 */
	const struct cp_maps *maps = run->have_maps ? &run->maps : NULL;
	const uint64_t *pcs = tw->unwound_pcs;
	const uint8_t *flags = tw->unwound_flags;
	size_t n = tw->nunwound, idx = (size_t)(th - run->d->threads);
	uint32_t hash;
	int64_t owner;
	int err;

	if (!n)
		return 0;
	hash = cp_stack_memo_hash(pcs, flags, n);
	owner = cp_stack_memo_find(&run->stacks, pcs, flags, n, hash);
	if (owner >= 0) {
		const struct cp_dump_thread *o = &run->d->threads[owner];

		th->frames = o->frames;
		th->nframes = o->nframes;
		th->frames_shared = true;
		return 0;
	}
	err = symbolize_stack(run, maps, pcs, flags, n, th);
	if (err == 0 && idx < UINT32_MAX)
		cp_stack_memo_add(&run->stacks, pcs, flags, n, hash, (uint32_t)idx);
	return err;
}

int dump_symbolize_extra(struct dump_run *run, const struct thread_work *tw,
			 struct cp_dump_thread *th)
{
	return symbolize_stack(run, run->have_maps ? &run->maps : NULL, tw->unwound_pcs,
			       tw->unwound_flags, tw->nunwound, th);
}

void dump_symbolize_release(struct dump_run *run)
{
	free(run->scratch);
	run->scratch = NULL;
	run->scratch_cap = 0;
	cp_htab_release(&run->pcs.h);
	free(run->pcs.e);
	free(run->pcs.pool);
	memset(&run->pcs, 0, sizeof(run->pcs));
	cp_stack_memo_release(&run->stacks);
}
