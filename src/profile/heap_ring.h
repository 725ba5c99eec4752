/*
 * Reading the allocation sampler's ring (agent_proto.h) from cprof's mapping of the agent's
 * memfd: records in order, each copied out of the shared memory before it is looked at (the
 * target can write that memory at any time), checked, handed to a callback, then zeroed and
 * given back to the producers.
 */
#ifndef CP_HEAP_RING_H
#define CP_HEAP_RING_H

#include <stddef.h>
#include <stdint.h>

#include "agent_proto.h"

/* The most stack bytes per record cprof accepts from an agent. */
#define CP_HEAP_STACK_MAX (64u << 10)

/* A region mapped by the owner; borrowed for the life of the ring. */
struct cp_heap_ring {
	uint8_t *region;
	size_t len;
	struct cp_agent_header *hdr;
	uint8_t *ring;
	uint64_t ring_bytes;	/* read once: the target may change its header */
	uint8_t *scratch;	/* one record, copied out */
	size_t scratch_len;
	uint64_t records;	/* records read */
	uint64_t bytes;		/* ring bytes consumed */
};

/* Callbacks; the record is a private copy, valid during the call. */
struct cp_heap_ring_ops {
	void (*alloc)(void *ctx, const struct cp_agent_alloc *rec);
	void (*free)(void *ctx, uint64_t addr);
};

/*
 * A ring over region (len bytes): its header is checked (magic, version, sizes that fit).
 * 0 or -errno (-EBADMSG: not an agent region of this version, -ENOMEM).
 */
int cp_heap_ring_init(struct cp_heap_ring *r, void *region, size_t len);
void cp_heap_ring_release(struct cp_heap_ring *r);

/*
 * Read up to max committed records (0 = all that are ready), handing each to ops, and give
 * their bytes back to the producers. Stamps the header's reader heartbeat. Returns the records
 * read, or -EBADMSG when the ring holds something that is not a valid record (reading stops
 * there for good).
 */
long cp_heap_ring_read(struct cp_heap_ring *r, size_t max, const struct cp_heap_ring_ops *ops,
		       void *ctx);

/* Whether committed records are waiting. */
int cp_heap_ring_pending(const struct cp_heap_ring *r);

#endif
