/* Whole unwound stacks met before, by their frames' (pc, exact) keys. */
#include <stdlib.h>
#include <string.h>

#include "stack_memo.h"

/* A stack being looked up: cp_htab_find's key. */
struct stack_key {
	const uint64_t *pc;
	const uint8_t *flags;
	size_t n;
};

void cp_stack_memo_release(struct cp_stack_memo *m)
{
	cp_htab_release(&m->h);
	free(m->e);
	free(m->keys);
	memset(m, 0, sizeof(*m));
}

uint32_t cp_stack_memo_hash(const uint64_t *pc, const uint8_t *flags, size_t n)
{
	uint64_t h = n;

	for (size_t i = 0; i < n; i++)
		h = cp_hash_mix(h, cp_stack_pc_key(pc[i], cp_stack_frame_exact(pc, flags, i)));
	return (uint32_t)h;
}

static bool entry_eq(const void *ctx, uint32_t idx, const void *key)
{
	const struct cp_stack_memo *m = ctx;
	const struct cp_stack_memo_entry *e = &m->e[idx];
	const struct stack_key *k = key;

	if (e->n != k->n)
		return false;
	for (size_t i = 0; i < k->n; i++)
		if (m->keys[e->off + i] !=
		    cp_stack_pc_key(k->pc[i], cp_stack_frame_exact(k->pc, k->flags, i)))
			return false;
	return true;
}

int64_t cp_stack_memo_find(const struct cp_stack_memo *m, const uint64_t *pc,
			   const uint8_t *flags, size_t n, uint32_t hash)
{
	struct stack_key k = { pc, flags, n };
	int64_t i = cp_htab_find(&m->h, hash, entry_eq, m, &k);

	return i < 0 ? -1 : (int64_t)m->e[i].id;
}

void cp_stack_memo_add(struct cp_stack_memo *m, const uint64_t *pc, const uint8_t *flags,
		       size_t n, uint32_t hash, uint32_t id)
{
	if (m->ne >= UINT32_MAX || m->nkeys > UINT32_MAX - n ||
	    cp_grow((void **)&m->e, &m->e_alloc, m->ne + 1, sizeof(*m->e)) < 0 ||
	    cp_grow((void **)&m->keys, &m->keys_cap, m->nkeys + n, sizeof(*m->keys)) < 0)
		return;
	m->e[m->ne] = (struct cp_stack_memo_entry){ id, (uint32_t)m->nkeys, (uint32_t)n };
	if (cp_htab_insert(&m->h, hash, (uint32_t)m->ne) < 0)
		return;
	for (size_t i = 0; i < n; i++)
		m->keys[m->nkeys++] = cp_stack_pc_key(pc[i], cp_stack_frame_exact(pc, flags, i));
	m->ne++;
}
