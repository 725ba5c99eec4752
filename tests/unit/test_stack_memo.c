/* Unit tests for unwind/stack_memo: whole stacks found again by their (pc, exact) keys. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "stack_memo.h"

static void test_keys(void)
{
	uint64_t pc[3] = { 0x1000, 0x2000, 0 };
	uint8_t flags[3] = { 0, CP_FRAME_SIGNAL, 0 };

	CHECK(cp_stack_frame_exact(pc, flags, 0), "the innermost frame is exact");
	CHECK(cp_stack_frame_exact(pc, flags, 1), "a frame a signal interrupted is exact");
	CHECK(cp_stack_frame_exact(pc, flags, 2), "pc 0 is exact");
	flags[1] = 0;
	CHECK(!cp_stack_frame_exact(pc, flags, 1), "a return address is not exact");
	CHECK(cp_stack_pc_key(0, false) != 0, "keys are never 0");
	CHECK(cp_stack_pc_key(0x1000, true) != cp_stack_pc_key(0x1000, false),
	      "exact and not exact differ");
}

static void test_find(void)
{
	struct cp_stack_memo m;
	uint64_t a[3] = { 0x401000, 0x402000, 0x403000 };
	uint64_t b[3] = { 0x401000, 0x402000, 0x403004 };
	uint8_t fa[3] = { 0, 0, 0 }, fs[3] = { 0, CP_FRAME_SIGNAL, 0 };
	uint32_t ha = cp_stack_memo_hash(a, fa, 3);

	memset(&m, 0, sizeof(m));
	CHECK(cp_stack_memo_find(&m, a, fa, 3, ha) == -1, "empty memo");
	cp_stack_memo_add(&m, a, fa, 3, ha, 7);
	CHECK(cp_stack_memo_find(&m, a, fa, 3, ha) == 7, "found again under its id");
	CHECK(cp_stack_memo_hash(a, fa, 3) == ha, "the hash is a function of the stack");
	CHECK(cp_stack_memo_find(&m, a, fa, 2, cp_stack_memo_hash(a, fa, 2)) == -1,
	      "a prefix is another stack");
	CHECK(cp_stack_memo_find(&m, b, fa, 3, cp_stack_memo_hash(b, fa, 3)) == -1,
	      "another pc is another stack");
	/* Same pcs, but frame 1 looked up exactly: symbolized differently, so not the same. */
	CHECK(cp_stack_memo_find(&m, a, fs, 3, cp_stack_memo_hash(a, fs, 3)) == -1,
	      "another lookup is another stack");
	/* Under a colliding hash, equality still decides. */
	CHECK(cp_stack_memo_find(&m, b, fa, 3, ha) == -1, "equal hashes, different stacks");

	/* Many stacks: the table grows and keeps them all. */
	for (uint32_t i = 0; i < 5000; i++) {
		uint64_t pc[2] = { 0x500000 + i, 0x600000 };

		cp_stack_memo_add(&m, pc, fa, 2, cp_stack_memo_hash(pc, fa, 2), 100 + i);
	}
	for (uint32_t i = 0; i < 5000; i += 7) {
		uint64_t pc[2] = { 0x500000 + i, 0x600000 };
		int64_t id = cp_stack_memo_find(&m, pc, fa, 2, cp_stack_memo_hash(pc, fa, 2));

		if (id != 100 + (int64_t)i) {
			CHECK(0, "stack %u: got %lld", i, (long long)id);
			break;
		}
	}
	CHECK(cp_stack_memo_find(&m, a, fa, 3, ha) == 7, "the first stack survives the growth");
	cp_stack_memo_release(&m);
	CHECK(m.ne == 0 && cp_stack_memo_find(&m, a, fa, 3, ha) == -1, "released is empty");
	cp_stack_memo_release(&m);
}

int main(void)
{
	test_keys();
	test_find();
	return check_done("stack_memo");
}
