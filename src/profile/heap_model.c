/* Sampled allocations by (stack, size, thread), live sampled blocks by address, Go's scaling. */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "heap_model.h"

void cp_heap_model_init(struct cp_heap_model *m)
{
	memset(m, 0, sizeof(*m));
}

void cp_heap_model_release(struct cp_heap_model *m)
{
	free(m->bucket);
	cp_htab_release(&m->bucket_index);
	free(m->block);
	memset(m, 0, sizeof(*m));
}

/* --- buckets --- */

struct bucket_key {
	uint32_t node;
	int pid;
	int tid;
	uint64_t size;
};

static uint32_t bucket_hash(const struct bucket_key *k)
{
	uint64_t h = cp_hash_mix(k->node, k->size);

	h = cp_hash_mix(h, ((uint64_t)(uint32_t)k->pid << 32) | (uint32_t)k->tid);
	return (uint32_t)(h ^ (h >> 32));
}

static bool bucket_eq(const void *ctx, uint32_t idx, const void *key)
{
	const struct cp_heap_model *m = ctx;
	const struct bucket_key *k = key;
	const struct cp_heap_bucket *b = &m->bucket[idx];

	return b->node == k->node && b->pid == k->pid && b->tid == k->tid && b->size == k->size;
}

/* The bucket of k, added when new. Its index, or -errno. */
static int64_t bucket_get(struct cp_heap_model *m, const struct bucket_key *k, const char *name)
{
	uint32_t h = bucket_hash(k);
	int64_t i = cp_htab_find(&m->bucket_index, h, bucket_eq, m, k);
	struct cp_heap_bucket *b;

	if (i >= 0)
		return i;
	if (m->nbuckets >= CP_HEAP_MAX_BUCKETS)
		return -ENOSPC;
	if (cp_grow((void **)&m->bucket, &m->buckets_cap, m->nbuckets + 1, sizeof(*m->bucket)) < 0)
		return -ENOMEM;
	if (cp_htab_insert(&m->bucket_index, h, (uint32_t)m->nbuckets) < 0)
		return -ENOMEM;
	b = &m->bucket[m->nbuckets];
	memset(b, 0, sizeof(*b));
	b->node = k->node;
	b->pid = k->pid;
	b->tid = k->tid;
	b->size = k->size;
	if (name) {
		strncpy(b->name, name, sizeof(b->name) - 1);
		b->name[sizeof(b->name) - 1] = '\0';
	}
	return (int64_t)m->nbuckets++;
}

/* --- blocks: open addressing on the address, deletion by backward shift --- */

static size_t block_slot(uint64_t addr, size_t cap)
{
	return (size_t)(cp_hash_mix(0x9e3779b97f4a7c15ull, addr) & (cap - 1));
}

/* The slot of addr, or the empty slot where it would go. */
static size_t block_find(const struct cp_heap_model *m, uint64_t addr)
{
	size_t i = block_slot(addr, m->blocks_cap);

	while (m->block[i].addr && m->block[i].addr != addr)
		i = (i + 1) & (m->blocks_cap - 1);
	return i;
}

static int blocks_grow(struct cp_heap_model *m)
{
	size_t cap = m->blocks_cap ? m->blocks_cap * 2 : 1024;
	struct cp_heap_block *old = m->block, *nb = calloc(cap, sizeof(*nb));
	size_t old_cap = m->blocks_cap;

	if (!nb)
		return -ENOMEM;
	m->block = nb;
	m->blocks_cap = cap;
	for (size_t i = 0; i < old_cap; i++)
		if (old[i].addr)
			m->block[block_find(m, old[i].addr)] = old[i];
	free(old);
	return 0;
}

static void block_remove(struct cp_heap_model *m, size_t i)
{
	size_t mask = m->blocks_cap - 1, j = i;

	m->block[i].addr = 0;
	m->nblocks--;
	/* Move back every entry of the run after i that may not sit behind the hole. */
	for (;;) {
		size_t want;

		j = (j + 1) & mask;
		if (!m->block[j].addr)
			return;
		want = block_slot(m->block[j].addr, m->blocks_cap);
		if (((j - want) & mask) >= ((j - i) & mask)) {
			m->block[i] = m->block[j];
			m->block[j].addr = 0;
			i = j;
		}
	}
}

int cp_heap_model_free(struct cp_heap_model *m, uint64_t addr)
{
	size_t i;

	if (!addr || !m->nblocks)
		return 0;
	i = block_find(m, addr);
	if (!m->block[i].addr)
		return 0;
	if (m->bucket[m->block[i].bucket].inuse)
		m->bucket[m->block[i].bucket].inuse--;
	block_remove(m, i);
	m->frees++;
	return 1;
}

int cp_heap_model_alloc(struct cp_heap_model *m, uint32_t node, int pid, int tid,
			const char *name, uint64_t addr, uint64_t size)
{
	struct bucket_key k = { .node = node, .pid = pid, .tid = tid, .size = size };
	int64_t b;
	size_t i;

	/* A block still tracked at this address was freed without our seeing it. */
	if (addr && cp_heap_model_free(m, addr))
		m->frees--;
	b = bucket_get(m, &k, name);
	if (b < 0) {
		m->dropped++;
		return (int)b;
	}
	m->bucket[b].allocs++;
	if (!addr)
		return 0;
	if (m->nblocks >= CP_HEAP_MAX_BLOCKS ||
	    ((m->nblocks + 1) * 4 > m->blocks_cap * 3 && blocks_grow(m) < 0)) {
		m->untracked++;		/* allocated, and counted in use to the end */
		m->bucket[b].inuse++;
		return 0;
	}
	i = block_find(m, addr);
	m->block[i].addr = addr;
	m->block[i].bucket = (uint32_t)b;
	m->nblocks++;
	m->bucket[b].inuse++;
	return 0;
}

/* --- values --- */

static int64_t to_int64(double v)
{
	return v >= 9.2e18 ? INT64_MAX : (int64_t)v;
}

void cp_heap_scale(uint64_t count, uint64_t bytes, uint64_t rate, int64_t *count_out,
		   int64_t *bytes_out)
{
	double avg, scale;

	if (count == 0 || bytes == 0) {
		*count_out = 0;
		*bytes_out = 0;
		return;
	}
	if (rate <= 1) {
		*count_out = to_int64((double)count);
		*bytes_out = to_int64((double)bytes);
		return;
	}
	avg = (double)bytes / (double)count;
	scale = 1 / (1 - exp(-avg / (double)rate));
	*count_out = to_int64((double)count * scale);
	*bytes_out = to_int64((double)bytes * scale);
}

/* a * b, held at UINT64_MAX. */
static uint64_t mul_sat(uint64_t a, uint64_t b)
{
	return b && a > UINT64_MAX / b ? UINT64_MAX : a * b;
}

int cp_heap_model_emit(const struct cp_heap_model *m, struct cp_profile *prof, uint64_t rate)
{
	for (size_t i = 0; i < m->nbuckets; i++) {
		const struct cp_heap_bucket *b = &m->bucket[i];
		int64_t v[4];
		int err;

		cp_heap_scale(b->allocs, mul_sat(b->allocs, b->size), rate, &v[0], &v[1]);
		cp_heap_scale(b->inuse, mul_sat(b->inuse, b->size), rate, &v[2], &v[3]);
		err = cp_profile_add_stack_sample_num(prof, b->node, b->pid, b->tid,
						      b->name[0] ? b->name : NULL, "bytes",
						      b->size > INT64_MAX ? INT64_MAX :
									    (int64_t)b->size,
						      v);
		if (err < 0)
			return err;
	}
	return 0;
}
