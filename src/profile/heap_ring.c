/* The reader of the allocation sampler's ring: copy out, check, hand over, zero, give back. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "heap_ring.h"
#include "util.h"

int cp_heap_ring_init(struct cp_heap_ring *r, void *region, size_t len)
{
	struct cp_agent_header *h = region;
	uint64_t hb, rb;
	uint32_t sb;

	memset(r, 0, sizeof(*r));
	if (len < sizeof(*h))
		return -EBADMSG;
	hb = __atomic_load_n(&h->header_bytes, __ATOMIC_ACQUIRE);
	rb = __atomic_load_n(&h->ring_bytes, __ATOMIC_RELAXED);
	sb = __atomic_load_n(&h->stack_bytes, __ATOMIC_RELAXED);
	if (__atomic_load_n(&h->magic, __ATOMIC_RELAXED) != CP_AGENT_MAGIC ||
	    h->version != CP_AGENT_VERSION || hb < sizeof(*h) || hb % 8 || rb < 4096 ||
	    (rb & (rb - 1)) || hb > len || rb > len - hb || sb > CP_HEAP_STACK_MAX)
		return -EBADMSG;
	r->region = region;
	r->len = len;
	r->hdr = h;
	r->ring = (uint8_t *)region + hb;
	r->ring_bytes = rb;
	r->scratch_len = sizeof(struct cp_agent_alloc) + CP_HEAP_STACK_MAX;
	r->scratch = malloc(r->scratch_len);
	return r->scratch ? 0 : -ENOMEM;
}

void cp_heap_ring_release(struct cp_heap_ring *r)
{
	free(r->scratch);
	memset(r, 0, sizeof(*r));
}

/* The committed size word at ring offset off: the record's bytes, 0 when not committed yet. */
static uint32_t committed_size(const struct cp_heap_ring *r, uint64_t off)
{
	uint32_t w = __atomic_load_n((uint32_t *)(r->ring + off), __ATOMIC_ACQUIRE);

	return (w & CP_AGENT_REC_COMMIT) ? (w & ~CP_AGENT_REC_COMMIT) : 0;
}

/* Hand the copied record in r->scratch (size bytes) to ops. false when it is malformed. */
static bool dispatch(struct cp_heap_ring *r, uint32_t size, const struct cp_heap_ring_ops *ops,
		     void *ctx)
{
	const struct cp_agent_rec *h = (const struct cp_agent_rec *)r->scratch;

	switch (h->type) {
	case CP_AGENT_REC_PAD:
		return true;
	case CP_AGENT_REC_ALLOC: {
		struct cp_agent_alloc *a = (struct cp_agent_alloc *)r->scratch;

		if (size < sizeof(*a) || a->stack_len > size - sizeof(*a))
			return false;
		if (ops->alloc && a->addr)
			ops->alloc(ctx, a);
		return true;
	}
	case CP_AGENT_REC_FREE: {
		const struct cp_agent_free *f = (const struct cp_agent_free *)r->scratch;

		if (size < sizeof(*f))
			return false;
		if (ops->free)
			ops->free(ctx, f->addr);
		return true;
	}
	default:
		return true;	/* a type of a later version: skipped */
	}
}

long cp_heap_ring_read(struct cp_heap_ring *r, size_t max, const struct cp_heap_ring_ops *ops,
		       void *ctx)
{
	struct cp_agent_header *h = r->hdr;
	uint64_t consumed = __atomic_load_n(&h->consumed, __ATOMIC_RELAXED);
	long n = 0;

	if (!r->scratch)
		return -EBADMSG;
	__atomic_store_n(&h->reader_heartbeat_ns, cp_now_ns(), __ATOMIC_RELAXED);
	while (!max || (size_t)n < max) {
		uint64_t off = consumed & (r->ring_bytes - 1);
		uint64_t reserved = __atomic_load_n(&h->reserved, __ATOMIC_ACQUIRE);
		uint32_t size;
		bool ok;

		if (reserved - consumed < sizeof(struct cp_agent_rec) || reserved - consumed >
		    r->ring_bytes)
			break;
		size = committed_size(r, off);
		if (!size)
			break;
		if (size < sizeof(struct cp_agent_rec) || size % 8 || size > r->ring_bytes - off ||
		    size > reserved - consumed) {
			free(r->scratch);
			r->scratch = NULL;
			return -EBADMSG;
		}
		/* Only what dispatch can use is copied: a pad may be as long as the ring. */
		memcpy(r->scratch, r->ring + off, size < r->scratch_len ? size : r->scratch_len);
		((struct cp_agent_rec *)r->scratch)->size = size;
		ok = dispatch(r, size < r->scratch_len ? size : (uint32_t)r->scratch_len, ops, ctx);
		memset(r->ring + off, 0, size);
		consumed += size;
		__atomic_store_n(&h->consumed, consumed, __ATOMIC_RELEASE);
		r->bytes += size;
		r->records++;
		n++;
		if (!ok) {
			free(r->scratch);
			r->scratch = NULL;
			return -EBADMSG;
		}
	}
	return n;
}

int cp_heap_ring_pending(const struct cp_heap_ring *r)
{
	uint64_t consumed = __atomic_load_n(&r->hdr->consumed, __ATOMIC_RELAXED);

	if (!r->scratch)
		return 0;
	return committed_size(r, consumed & (r->ring_bytes - 1)) != 0;
}
