/* Unit tests for unwind/stack_shapes: walks of plain calls learned once, replayed on others. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "stack_shapes.h"

#define SP0 0x7ffd0000ull

/* A 256-byte stack at sp: return addresses 0x402000 at +0x18 and 0x403000 at +0x58. */
static void make_stack(uint64_t sp, uint8_t *data, struct cp_regs *regs, struct cp_stack *st)
{
	uint64_t ra1 = 0x402000, ra2 = 0x403000;

	memset(data, 0xee, 256);
	memcpy(data + 0x18, &ra1, 8);
	memcpy(data + 0x58, &ra2, 8);
	memset(regs, 0, sizeof(*regs));
	regs->r[CP_REG_RSP] = sp;
	regs->r[CP_REG_RIP] = 0x401000;
	regs->valid = (1u << CP_REG_RSP) | (1u << CP_REG_RIP);
	*st = (struct cp_stack){ .start = sp, .len = 256, .data = data };
}

/* The walk an unwinder would give for make_stack's stack. */
static void make_walk(uint64_t sp, struct cp_unwind_result *ur)
{
	memset(ur, 0, sizeof(*ur));
	ur->n = 3;
	ur->pc[0] = 0x401000;
	ur->pc[1] = 0x402000;
	ur->pc[2] = 0x403000;
	ur->sp[0] = sp;
	ur->sp[1] = sp + 0x20;
	ur->sp[2] = sp + 0x60;
}

int main(void)
{
	struct cp_unwind_result *walk = malloc(sizeof(*walk)), *got = malloc(sizeof(*got));
	struct cp_stack_shapes *sh = cp_stack_shapes_new();
	uint8_t a[256], b[256];
	struct cp_regs ra, rb;
	struct cp_stack sa, sb;
	uint64_t other = 0x404000;

	CHECK(walk && got && sh, "allocations");
	if (!walk || !got || !sh)
		return check_done("stack_shapes");

	make_stack(SP0, a, &ra, &sa);
	make_stack(SP0 - 0x1000, b, &rb, &sb);
	CHECK(!cp_stack_shapes_match(sh, &rb, &sb, got), "nothing learned yet");

	/* A walk that did not reach the outermost frame is not learned. */
	make_walk(SP0, walk);
	walk->stop_reason = -1;
	cp_stack_shapes_learn(sh, &ra, &sa, walk);
	CHECK(!cp_stack_shapes_match(sh, &rb, &sb, got), "a partial walk is not a shape");
	/* Nor one through a signal frame. */
	make_walk(SP0, walk);
	walk->flags[1] = CP_FRAME_SIGNAL;
	cp_stack_shapes_learn(sh, &ra, &sa, walk);
	CHECK(!cp_stack_shapes_match(sh, &rb, &sb, got), "a signal frame is not a plain call");

	make_walk(SP0, walk);
	cp_stack_shapes_learn(sh, &ra, &sa, walk);
	memset(got, 0x55, sizeof(*got));
	CHECK(cp_stack_shapes_match(sh, &rb, &sb, got), "the same shape at another sp");
	CHECK(got->n == 3 && got->pc[0] == 0x401000 && got->pc[1] == 0x402000 &&
		      got->pc[2] == 0x403000,
	      "the pcs replayed");
	CHECK(got->sp[0] == SP0 - 0x1000 && got->sp[2] == SP0 - 0x1000 + 0x60,
	      "the sps moved with the stack");
	CHECK(!got->truncated && got->stop_reason == 0 && got->flags[1] == 0, "a clean walk");

	/* Another return address where the shape has one: unwind it for real. */
	memcpy(b + 0x58, &other, 8);
	CHECK(!cp_stack_shapes_match(sh, &rb, &sb, got), "a different caller");
	memcpy(b + 0x58, a + 0x58, 8);
	rb.r[CP_REG_RIP] = 0x401004;
	CHECK(!cp_stack_shapes_match(sh, &rb, &sb, got), "a different pc");
	rb.r[CP_REG_RIP] = 0x401000;
	rb.valid &= ~(1u << CP_REG_RIP);
	CHECK(!cp_stack_shapes_match(sh, &rb, &sb, got), "no pc, no match");
	rb.valid |= 1u << CP_REG_RIP;
	sb.len = 0x50;
	CHECK(!cp_stack_shapes_match(sh, &rb, &sb, got), "a copy too short for the shape");

	cp_stack_shapes_free(sh);
	cp_stack_shapes_free(NULL);
	free(walk);
	free(got);
	return check_done("stack_shapes");
}
