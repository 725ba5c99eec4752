/*
 * The sampled allocations of a heap session: one bucket per (stack, size, thread) with the
 * samples allocated and the samples still in use, the live sampled blocks by address (a free
 * of one makes it not in use), and the bucket's values scaled back as Go's runtime scales its
 * heap samples (alloc_objects, alloc_space, inuse_objects, inuse_space).
 */
#ifndef CP_HEAP_MODEL_H
#define CP_HEAP_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "proc.h"
#include "profile.h"
#include "util.h"

/* Live sampled blocks tracked at most; a sample beyond that counts as allocated, never freed. */
#define CP_HEAP_MAX_BLOCKS (4u << 20)
/* Buckets at most: (stack, size, thread) triples; samples beyond that are counted as dropped. */
#define CP_HEAP_MAX_BUCKETS (4u << 20)

struct cp_heap_bucket {
	uint32_t node;		/* the profile's stack node */
	int pid;
	int tid;
	uint64_t size;		/* bytes asked for */
	uint64_t allocs;	/* samples allocated */
	uint64_t inuse;		/* of those, not freed yet */
	char name[CP_COMM_LEN];	/* the thread's name at its first sample here */
};

/* A sampled block: its address (0 = empty slot) and its bucket. */
struct cp_heap_block {
	uint64_t addr;
	uint32_t bucket;
};

/* Embedded in its owner: cp_heap_model_init / _release. */
struct cp_heap_model {
	struct cp_heap_bucket *bucket;
	size_t nbuckets;
	size_t buckets_cap;
	struct cp_htab bucket_index;
	struct cp_heap_block *block;	/* open addressing, linear probing; cap a power of two */
	size_t nblocks;
	size_t blocks_cap;
	uint64_t untracked;	/* samples whose block could not be tracked (table full) */
	uint64_t dropped;	/* samples not counted (too many buckets, out of memory) */
	uint64_t frees;		/* frees of tracked blocks */
};

void cp_heap_model_init(struct cp_heap_model *m);
void cp_heap_model_release(struct cp_heap_model *m);

/*
 * A sampled allocation of size bytes at addr by thread tid (named name, may be NULL) of pid,
 * at stack node. A block already tracked at addr was freed unseen: it stops being in use.
 * 0 or -errno (-ENOMEM, -ENOSPC: too many buckets; the sample is then counted as dropped).
 */
int cp_heap_model_alloc(struct cp_heap_model *m, uint32_t node, int pid, int tid,
			const char *name, uint64_t addr, uint64_t size);
/* The free of the block at addr: not in use from now on. 1 when it was tracked, else 0. */
int cp_heap_model_free(struct cp_heap_model *m, uint64_t addr);

/*
 * count objects of size bytes in total, sampled at rate, scaled back to the estimated true
 * count and bytes as Go's scaleHeapSample does: each sample of an object of avg bytes stands
 * for 1 / (1 - exp(-avg / rate)) objects. rate <= 1: unscaled.
 */
void cp_heap_scale(uint64_t count, uint64_t bytes, uint64_t rate, int64_t *count_out,
		   int64_t *bytes_out);

/*
 * Add every bucket to prof (a CP_PROFILE_KIND_HEAP or _ALLOCS profile whose stack nodes the
 * buckets name) as one sample with values alloc_objects, alloc_space, inuse_objects,
 * inuse_space scaled at rate, the numeric label bytes = size and the thread labels. Call it
 * once. 0 or -errno.
 */
int cp_heap_model_emit(const struct cp_heap_model *m, struct cp_profile *prof, uint64_t rate);

#endif
