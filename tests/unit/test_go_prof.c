/* Unit tests of the Go runtime's profile buckets as read from memory (src/golang/go_prof.c). */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "go_prof.h"

static void put64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, sizeof(v));
}

/* A bucket as Go 1.19 lays it out: header, stk[nstk], record. Returns its length. */
static size_t bucket(uint8_t *buf, uint64_t typ, uint64_t allnext, size_t nstk)
{
	memset(buf, 0, 512);
	put64(buf + 8, allnext);
	put64(buf + 16, typ);
	put64(buf + 40, nstk);
	for (size_t i = 0; i < nstk; i++)
		put64(buf + 48 + 8 * i, 0x401000 + 0x10 * i);
	return 48 + 8 * nstk;
}

static void test_mem_bucket(void)
{
	uint8_t buf[512];
	size_t len = bucket(buf, 1, 0xc000100000, 3), nstk = 0;
	uint64_t next = 0, pcs[4] = { 0 };
	int64_t v[4];
	uint8_t *rec = buf + len;

	/* active {allocs, frees, alloc_bytes, free_bytes}, then future[3]. */
	put64(rec, 10);
	put64(rec + 8, 4);
	put64(rec + 16, 81920);
	put64(rec + 24, 32768);
	put64(rec + 32, 99);
	CHECK(cp_go_bucket_parse(buf, len + 128, CP_GO_PROF_MEM, &next, &nstk, pcs, 4, v) == 0,
	      "a memory bucket parses");
	CHECK(nstk == 3 && next == 0xc000100000 && pcs[0] == 0x401000 && pcs[2] == 0x401020,
	      "its stack and allnext: nstk %zu next %#llx", nstk, (unsigned long long)next);
	CHECK(v[CP_GO_MEM_ALLOCS] == 10 && v[CP_GO_MEM_FREES] == 4 &&
		      v[CP_GO_MEM_ALLOC_BYTES] == 81920 && v[CP_GO_MEM_FREE_BYTES] == 32768,
	      "the active cycle's counts, not the future ones");
	CHECK(cp_go_bucket_parse(buf, len + 100, CP_GO_PROF_MEM, &next, &nstk, pcs, 4, v) ==
		      -EAGAIN && nstk == 3,
	      "a read that stops inside the record asks for more");
	CHECK(cp_go_bucket_parse(buf, 40, CP_GO_PROF_MEM, &next, &nstk, pcs, 4, v) == -EAGAIN,
	      "a read shorter than the header asks for more");
	CHECK(cp_go_bucket_parse(buf, len + 128, CP_GO_PROF_BLOCK, &next, &nstk, pcs, 4, v) ==
		      -EPROTO,
	      "a memory bucket is not a block bucket");
	put64(buf + 40, CP_GO_PROF_MAX_STACK + 1);
	CHECK(cp_go_bucket_parse(buf, sizeof(buf), CP_GO_PROF_MEM, &next, &nstk, pcs, 4, v) ==
		      -EPROTO,
	      "a stack longer than the cap is not a bucket");
}

static void test_block_bucket(void)
{
	uint8_t buf[512];
	size_t len = bucket(buf, 2, 0, 2), nstk;
	uint64_t next = 1, pcs[2];
	int64_t v[4];
	double count = 0.0;

	memcpy(buf + len, &count, sizeof(count));
	put64(buf + len + 8, 123456789);
	CHECK(cp_go_bucket_parse(buf, len + 16, CP_GO_PROF_BLOCK, &next, &nstk, pcs, 2, v) == 0 &&
		      next == 0,
	      "a block bucket parses");
	CHECK(v[CP_GO_BLOCK_COUNT] == 1 && v[CP_GO_BLOCK_CYCLES] == 123456789,
	      "a block count of 0 reads as 1 (runtime.BlockProfile): %lld",
	      (long long)v[CP_GO_BLOCK_COUNT]);
	put64(buf + 16, 3);
	CHECK(cp_go_bucket_parse(buf, len + 16, CP_GO_PROF_MUTEX, &next, &nstk, pcs, 2, v) == 0 &&
		      v[CP_GO_BLOCK_COUNT] == 0,
	      "a mutex count of 0 stays 0 (runtime.MutexProfile)");
	count = 2.75;
	memcpy(buf + len, &count, sizeof(count));
	CHECK(cp_go_bucket_parse(buf, len + 16, CP_GO_PROF_MUTEX, &next, &nstk, pcs, 2, v) == 0 &&
		      v[CP_GO_BLOCK_COUNT] == 2,
	      "a float count is truncated as Go's int64()");
}

static void test_subtract(void)
{
	struct cp_go_bucket now[3] = {
		{ .addr = 0x3000, .v = { 5, 500, 1, 100 } },
		{ .addr = 0x2000, .v = { 7, 700, 0, 0 } },
		{ .addr = 0x1000, .v = { 9, 900, 9, 900 } },
	};
	struct cp_go_bucket before[2] = {
		{ .addr = 0x1000, .v = { 9, 900, 9, 900 } },
		{ .addr = 0x2000, .v = { 3, 300, 0, 0 } },
	};
	struct cp_go_records r = { .kind = CP_GO_PROF_MEM, .b = now, .n = 3 };
	struct cp_go_records base = { .kind = CP_GO_PROF_MEM, .b = before, .n = 2 };

	cp_go_records_subtract(&r, &base);
	CHECK(r.n == 2, "the bucket with nothing new is dropped: %zu left", r.n);
	CHECK(r.b[0].addr == 0x3000 && r.b[0].v[0] == 5 && r.b[0].v[1] == 500,
	      "a new bucket keeps its counts");
	CHECK(r.b[1].addr == 0x2000 && r.b[1].v[0] == 4 && r.b[1].v[1] == 400,
	      "an old bucket keeps the difference");
}

int main(void)
{
	test_mem_bucket();
	test_block_bucket();
	test_subtract();
	CHECK(cp_go_measure_ticks(10) > 0, "the cycle counter ticks");
	return check_done("test_go_prof");
}
