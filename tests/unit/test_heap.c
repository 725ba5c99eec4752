/* Unit tests of heap sessions' parts: Go's scaling, the model of sampled blocks, the ring. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "heap_model.h"
#include "heap_ring.h"
#include "maps.h"
#include "profile.h"

static void test_scale(void)
{
	int64_t c, b;

	/* 1 MiB objects at 512 KiB: each sample stands for 1 / (1 - e^-2) objects. */
	cp_heap_scale(100, 100u << 20, 512u << 10, &c, &b);
	CHECK(c == (int64_t)(100 / (1 - exp(-2.0))), "count scaled: %lld", (long long)c);
	CHECK(b == (int64_t)((double)(100u << 20) / (1 - exp(-2.0))), "bytes scaled: %lld",
	      (long long)b);
	/* Small objects: each sample stands for about rate / size of them. */
	cp_heap_scale(1000, 64000, 512u << 10, &c, &b);
	CHECK(llabs(b - 1000LL * (512 << 10)) < 1000LL * 64, "64 B: about rate bytes per sample: %lld",
	      (long long)b);
	cp_heap_scale(3, 300, 1, &c, &b);
	CHECK(c == 3 && b == 300, "rate 1: unscaled");
	cp_heap_scale(0, 0, 512, &c, &b);
	CHECK(c == 0 && b == 0, "nothing");
}

/* A HEAP or ALLOCS profile with two stacks (nodes[0], nodes[1]). */
static struct cp_profile *two_stacks(enum cp_profile_kind kind, uint32_t nodes[2])
{
	struct cp_profile *prof = cp_profile_new_kind(kind);
	struct cp_map map = { 0x1000, 0x100000, 0, 1, 1, 1, "r-xp", (char *)"/bin/x", false };
	uint64_t mid, locs[2];

	if (!prof)
		exit(1);
	CHECK(cp_profile_add_mapping(prof, 1, &map, NULL, true, false, &mid) == 0, "mapping");
	for (int i = 0; i < 2; i++) {
		struct cp_profile_line line = { i ? "leak_a" : "churn_b", NULL, NULL, 0, 0 };

		CHECK(cp_profile_add_location(prof, 1, 0x2000 + (uint64_t)i * 16, mid, &line, 1,
					      &locs[i]) == 0,
		      "location");
		CHECK(cp_profile_stack(prof, &locs[i], 1, &nodes[i]) == 0, "stack");
	}
	return prof;
}

static void test_model(void)
{
	struct cp_heap_model m;
	uint32_t nodes[2];
	struct cp_profile *heap = two_stacks(CP_PROFILE_KIND_HEAP, nodes);
	struct cp_profile *allocs = two_stacks(CP_PROFILE_KIND_ALLOCS, nodes);
	uint64_t total;

	cp_heap_model_init(&m);
	/* leak_a: 10 blocks of 1000 bytes, never freed; churn_b: 1000 of 64, all freed. */
	for (uint64_t i = 0; i < 10; i++)
		CHECK(cp_heap_model_alloc(&m, nodes[1], 1, 1, "main", 0x100000 + i * 4096, 1000) == 0,
		      "alloc leak");
	for (uint64_t i = 0; i < 1000; i++) {
		CHECK(cp_heap_model_alloc(&m, nodes[0], 1, 2, "worker", 0x900000 + (i % 7) * 64,
					  64) == 0,
		      "alloc churn");
		if (i % 7 == 6 || i == 999)
			for (uint64_t k = 0; k < 7; k++)
				cp_heap_model_free(&m, 0x900000 + k * 64);
	}
	CHECK(m.nbuckets == 2, "two buckets: %zu", m.nbuckets);
	CHECK(m.bucket[0].allocs == 10 && m.bucket[0].inuse == 10, "leak in use");
	CHECK(m.bucket[1].allocs == 1000 && m.bucket[1].inuse == 0,
	      "churn freed (also when a tracked address is reused unseen): %llu",
	      (unsigned long long)m.bucket[1].inuse);
	CHECK(m.nblocks == 10, "10 live blocks: %zu", m.nblocks);
	CHECK(cp_heap_model_free(&m, 0x424242) == 0, "free of an unsampled block");
	/* Many blocks: the table grows and deletes keep every other block findable. */
	for (uint64_t i = 0; i < 50000; i++)
		cp_heap_model_alloc(&m, nodes[0], 1, 3, NULL, 0x10000000 + i * 16, 16);
	for (uint64_t i = 0; i < 50000; i += 2)
		CHECK(cp_heap_model_free(&m, 0x10000000 + i * 16) == 1, "free %llu",
		      (unsigned long long)i);
	for (uint64_t i = 1; i < 50000; i += 2)
		CHECK(cp_heap_model_free(&m, 0x10000000 + i * 16) == 1, "free odd %llu",
		      (unsigned long long)i);
	CHECK(m.nblocks == 10, "back to 10 live blocks: %zu", m.nblocks);

	CHECK(cp_heap_model_emit(&m, heap, 1) == 0, "emit heap");
	total = cp_profile_sample_total(heap);
	CHECK(total == 10000, "heap: inuse_space is the leak, 10000: %llu",
	      (unsigned long long)total);
	CHECK(cp_heap_model_emit(&m, allocs, 1) == 0, "emit allocs");
	total = cp_profile_sample_total(allocs);
	CHECK(total == 10000 + 64000 + 50000 * 16, "allocs: alloc_space of all: %llu",
	      (unsigned long long)total);
	cp_heap_model_release(&m);
	cp_profile_free(heap);
	cp_profile_free(allocs);
}

/* --- the ring --- */

#define RING (64u << 10)

struct region {
	struct cp_agent_header h;
	uint8_t pad[512 - sizeof(struct cp_agent_header)];
	uint8_t ring[RING];
};

struct seen {
	int allocs, frees;
	uint64_t last_addr, last_size, stack_sum;
	int tid;
};

static void seen_alloc(void *ctx, const struct cp_agent_alloc *a)
{
	struct seen *s = ctx;

	s->allocs++;
	s->last_addr = a->addr;
	s->last_size = a->size;
	s->tid = a->tid;
	for (uint32_t i = 0; i < a->stack_len; i++)
		s->stack_sum += a->stack[i];
}

static void seen_free(void *ctx, uint64_t addr)
{
	struct seen *s = ctx;

	s->frees++;
	s->last_addr = addr;
}

static const struct cp_heap_ring_ops seen_ops = { seen_alloc, seen_free };

/* Append a record as a producer does: reserve, write, commit. Returns its offset. */
static uint64_t produce(struct region *r, uint16_t type, const void *body, uint32_t body_len,
			bool commit)
{
	uint32_t size = (uint32_t)((sizeof(struct cp_agent_rec) + body_len + 7) & ~7u);
	uint64_t at = r->h.reserved, off = at % RING;
	struct cp_agent_rec *rec;

	if (off + size > RING) {
		/* A pad to the end of the ring first. */
		rec = (struct cp_agent_rec *)(r->ring + off);
		rec->type = CP_AGENT_REC_PAD;
		rec->size = (uint32_t)(RING - off) | CP_AGENT_REC_COMMIT;
		r->h.reserved += RING - off;
		at = r->h.reserved;
		off = 0;
	}
	rec = (struct cp_agent_rec *)(r->ring + off);
	memcpy(rec + 1, body, body_len);
	rec->type = type;
	rec->size = size | (commit ? CP_AGENT_REC_COMMIT : 0);
	r->h.reserved += size;
	return off;
}

static void produce_alloc(struct region *r, uint64_t addr, uint64_t size, uint32_t stack_len)
{
	uint8_t buf[sizeof(struct cp_agent_alloc) + 4096];
	struct cp_agent_alloc *a = (struct cp_agent_alloc *)buf;

	memset(buf, 0, sizeof(buf));
	a->tid = 77;
	a->addr = addr;
	a->size = size;
	a->stack_len = stack_len;
	for (uint32_t i = 0; i < stack_len; i++)
		a->stack[i] = 1;
	produce(r, CP_AGENT_REC_ALLOC, buf + sizeof(struct cp_agent_rec),
		(uint32_t)(sizeof(*a) - sizeof(struct cp_agent_rec)) + stack_len, true);
}

static void test_ring(void)
{
	struct region *r = calloc(1, sizeof(*r));
	struct cp_heap_ring ring;
	struct seen s = { 0 };
	uint64_t addr = 0x5000;
	long n;

	r->h.magic = CP_AGENT_MAGIC;
	r->h.version = CP_AGENT_VERSION;
	r->h.header_bytes = 512;
	r->h.ring_bytes = RING;
	r->h.stack_bytes = 4096;
	CHECK(cp_heap_ring_init(&ring, r, sizeof(*r) - 1) == -EBADMSG, "region too short");
	r->h.version = 99;
	CHECK(cp_heap_ring_init(&ring, r, sizeof(*r)) == -EBADMSG, "other version");
	r->h.version = CP_AGENT_VERSION;
	CHECK(cp_heap_ring_init(&ring, r, sizeof(*r)) == 0, "init");

	produce_alloc(r, 0x1000, 100, 256);
	produce(r, CP_AGENT_REC_FREE, &addr, sizeof(addr), true);
	produce_alloc(r, 0x2000, 200, 0);
	CHECK(cp_heap_ring_pending(&ring), "pending");
	n = cp_heap_ring_read(&ring, 0, &seen_ops, &s);
	CHECK(n == 3 && s.allocs == 2 && s.frees == 1, "3 records: %ld", n);
	CHECK(s.last_addr == 0x2000 && s.last_size == 200 && s.tid == 77, "fields");
	CHECK(s.stack_sum == 256, "stack copied: %llu", (unsigned long long)s.stack_sum);
	CHECK(r->h.consumed == r->h.reserved, "consumed all");
	CHECK(r->ring[0] == 0 && r->ring[8] == 0, "consumed bytes zeroed");
	CHECK(r->h.reader_heartbeat_ns != 0, "heartbeat");

	/* Wrapping: records until the ring has gone round twice, read in batches. */
	memset(&s, 0, sizeof(s));
	for (int i = 0; i < 100; i++) {
		produce_alloc(r, 0x3000 + (uint64_t)i, 1, 2000);
		if (i % 10 == 9)
			n = cp_heap_ring_read(&ring, 4, &seen_ops, &s) +
			    cp_heap_ring_read(&ring, 0, &seen_ops, &s);
	}
	CHECK(n > 0 && s.allocs == 100, "100 allocs across wraps: %d", s.allocs);
	CHECK(r->h.consumed == r->h.reserved && r->h.reserved > 2 * RING, "went round");

	/* An uncommitted record stops the reader; committed later, it is read. */
	memset(&s, 0, sizeof(s));
	{
		uint64_t off = produce(r, CP_AGENT_REC_FREE, &addr, sizeof(addr), false);

		produce(r, CP_AGENT_REC_FREE, &addr, sizeof(addr), true);
		CHECK(cp_heap_ring_read(&ring, 0, &seen_ops, &s) == 0, "waits for the commit");
		((struct cp_agent_rec *)(r->ring + off))->size |= CP_AGENT_REC_COMMIT;
		CHECK(cp_heap_ring_read(&ring, 0, &seen_ops, &s) == 2 && s.frees == 2, "then both");
	}

	/* Malformed: an alloc whose stack_len runs past its record ends reading for good. */
	{
		uint8_t buf[sizeof(struct cp_agent_alloc)];
		struct cp_agent_alloc *a = (struct cp_agent_alloc *)buf;

		memset(buf, 0, sizeof(buf));
		a->addr = 1;
		a->stack_len = 100000;
		produce(r, CP_AGENT_REC_ALLOC, buf + sizeof(struct cp_agent_rec),
			(uint32_t)(sizeof(buf) - sizeof(struct cp_agent_rec)), true);
		CHECK(cp_heap_ring_read(&ring, 0, &seen_ops, &s) == -EBADMSG, "malformed");
		CHECK(cp_heap_ring_read(&ring, 0, &seen_ops, &s) == -EBADMSG, "and stays so");
	}
	cp_heap_ring_release(&ring);

	/* A size word that is not a multiple of 8 is malformed too. */
	memset(r, 0, sizeof(*r));
	r->h.magic = CP_AGENT_MAGIC;
	r->h.version = CP_AGENT_VERSION;
	r->h.header_bytes = 512;
	r->h.ring_bytes = RING;
	CHECK(cp_heap_ring_init(&ring, r, sizeof(*r)) == 0, "init again");
	((struct cp_agent_rec *)r->ring)->size = 12 | CP_AGENT_REC_COMMIT;
	r->h.reserved = 16;
	CHECK(cp_heap_ring_read(&ring, 0, &seen_ops, &s) == -EBADMSG, "odd size");
	cp_heap_ring_release(&ring);
	free(r);
}

int main(void)
{
	test_scale();
	test_model();
	test_ring();
	return check_done("heap");
}
