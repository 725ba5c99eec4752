/* Recovering a frame-pointer function's rbp from the stack copy, validated by its call site. */
#include <errno.h>
#include <string.h>

#include "frame_base.h"

/* The 8-byte word at addr in the copy; false when the copy does not hold all of it. */
static bool stack_word(const struct cp_stack *st, uint64_t addr, uint64_t *out)
{
	if (!st->data || addr < st->start || addr - st->start > st->len ||
	    st->len - (addr - st->start) < sizeof(*out))
		return false;
	memcpy(out, st->data + (addr - st->start), sizeof(*out));
	return true;
}

enum call_kind { NOT_A_CALL, DIRECT_CALL, INDIRECT_CALL };

/*
 * Does a call instruction end right before ret? For a direct call (e8 rel32), *target is the
 * called address. Indirect calls are the forms of ff /2 that compilers emit: through a
 * register (with or without REX), through memory addressed by a register with or without an
 * 8- or 32-bit displacement, and rip-relative (-fno-plt, function pointers in data).
 */
static enum call_kind call_before(const struct cp_frame_base_probe *p, uint64_t ret,
				  uint64_t *target)
{
	uint8_t b[7];
	int32_t rel;

	if (ret < sizeof(b) || !p->is_code(p->arg, ret - 1) ||
	    p->read_code(p->arg, ret - sizeof(b), b, sizeof(b)) < 0)
		return NOT_A_CALL;
	/* b[6] is the last byte of the instruction, b[2] the first of a 5-byte one. */
	if (b[2] == 0xe8) {
		memcpy(&rel, b + 3, sizeof(rel));
		*target = ret + (uint64_t)(int64_t)rel;
		return DIRECT_CALL;
	}
	/* ff d0+r (call *%reg), optionally 41 ff d0+r for r8-r15. */
	if (b[5] == 0xff && (b[6] & 0xf8) == 0xd0)
		return INDIRECT_CALL;
	/* ff 10+r (call *(%reg)), not 14 (SIB) nor 15 (rip-relative). */
	if (b[5] == 0xff && (b[6] & 0xf8) == 0x10 && b[6] != 0x14 && b[6] != 0x15)
		return INDIRECT_CALL;
	/* ff 50+r disp8 (call *d8(%reg)); ff 54 SIB disp8. */
	if (b[4] == 0xff && (b[5] & 0xf8) == 0x50 && b[5] != 0x54)
		return INDIRECT_CALL;
	if (b[3] == 0xff && b[4] == 0x54)
		return INDIRECT_CALL;
	/*
	 * ff 15 rel32 (call *rel32(%rip)): through a GOT slot (-fno-plt, Rust's calls across
	 * crates) whose content, when readable, names the target as a direct call does.
	 */
	if (b[1] == 0xff && b[2] == 0x15) {
		uint64_t slot;

		memcpy(&rel, b + 3, sizeof(rel));
		if (p->read_code(p->arg, ret + (uint64_t)(int64_t)rel, &slot, sizeof(slot)) == 0) {
			*target = slot;
			return DIRECT_CALL;
		}
		return INDIRECT_CALL;
	}
	/* ff 90+r disp32. */
	if (b[1] == 0xff && (b[2] & 0xf8) == 0x90 && b[2] != 0x94)
		return INDIRECT_CALL;
	if (b[0] == 0xff && b[1] == 0x94)
		return INDIRECT_CALL;
	return NOT_A_CALL;
}

bool cp_frame_base_follows_call(const struct cp_frame_base_probe *p, uint64_t ret)
{
	uint64_t target;

	return call_before(p, ret, &target) != NOT_A_CALL;
}

/*
 * Without the caller's CFI: does the saved frame pointer at link (read at slot) lead to a
 * return address after a call, or end the chain?
 */
static bool next_link_plausible(const struct cp_frame_base_probe *p, uint64_t slot,
				uint64_t link)
{
	uint64_t ret, target;

	if (link == 0)
		return true;
	/* A saved frame pointer lies above its own slot, aligned. */
	if (link <= slot + 8 || (link & 7))
		return false;
	/* Past the copy: nothing to check it against, so no proof. */
	if (!stack_word(p->stack, link + 8, &ret))
		return false;
	return call_before(p, ret, &target) != NOT_A_CALL;
}

/*
 * The lowest slot in [sp, end) that passes with proof want: the frame's own slot lies below
 * any older caller's, but the frame's locals may hold stale pairs from calls made before.
 */
static int find_with(const struct cp_frame_base_probe *p, uint64_t end,
		     enum cp_frame_base_proof want, uint64_t *base)
{
	const struct cp_stack *st = p->stack;
	uint64_t a, saved, ret, target;

	for (a = (p->sp + 7) & ~7ull; a + 16 <= end; a += 8) {
		enum call_kind kind;

		if (!stack_word(st, a, &saved) || !stack_word(st, a + 8, &ret))
			break;
		if (!p->is_code(p->arg, ret))
			continue;
		kind = call_before(p, ret, &target);
		/* The saved rbp is the caller's, which may use rbp for anything: not checked. */
		if (want == CP_FRAME_BASE_DIRECT_CALL && kind == DIRECT_CALL &&
		    target == p->func_start) {
			*base = a;
			return want;
		}
		if (want == CP_FRAME_BASE_CHAIN && kind != NOT_A_CALL &&
		    (p->caller_ok ? p->caller_ok(p->arg, a) : next_link_plausible(p, a, saved))) {
			*base = a;
			return want;
		}
	}
	return -ENOENT;
}

/*
 * The distance from rbp down to sp inside the function at start, read from its prologue:
 * [endbr64] push %rbp; mov %rsp,%rbp; pushes of callee-saved registers; [sub $N,%rsp]. -1
 * when the prologue has another shape (a frame sized at run time, stack realignment).
 */
static int64_t prologue_frame_size(const struct cp_frame_base_probe *p, uint64_t start)
{
	uint8_t c[32];
	size_t i = 0;
	int64_t size = 0;

	if (p->read_code(p->arg, start, c, sizeof(c)) < 0)
		return -1;
	if (!memcmp(c, "\xf3\x0f\x1e\xfa", 4))	/* endbr64 */
		i = 4;
	if (c[i] != 0x55 || memcmp(c + i + 1, "\x48\x89\xe5", 3))
		return -1;
	i += 4;
	for (;;) {
		if (i + 1 < sizeof(c) && c[i] == 0x41 && c[i + 1] >= 0x54 && c[i + 1] <= 0x57) {
			size += 8, i += 2;	/* push %r12-%r15 */
		} else if (c[i] == 0x53) {
			size += 8, i += 1;	/* push %rbx */
		} else if (i + 4 <= sizeof(c) && !memcmp(c + i, "\x48\x83\xec", 3)) {
			return size + c[i + 3];	/* sub $imm8,%rsp */
		} else if (i + 7 <= sizeof(c) && !memcmp(c + i, "\x48\x81\xec", 3)) {
			int32_t n;

			memcpy(&n, c + i + 3, sizeof(n));
			return n < 0 ? -1 : size + n;	/* sub $imm32,%rsp */
		} else {
			/* Anything else ends the prologue: no sub means no locals below. */
			return size;
		}
		if (i >= sizeof(c) - 1)
			return -1;
	}
}

int cp_frame_base_find(const struct cp_frame_base_probe *p, uint64_t *base)
{
	const struct cp_stack *st = p->stack;
	uint64_t end;
	int64_t size;
	int r;

	if (!st || !st->data || p->sp < st->start || p->sp - st->start >= st->len)
		return -ENOENT;
	end = st->start + st->len;
	if (end - p->sp > CP_FRAME_BASE_SCAN_MAX)
		end = p->sp + CP_FRAME_BASE_SCAN_MAX;
	/*
	 * A direct call of the frame's own function anywhere in range is the stronger proof:
	 * it is taken over another call's chain found lower, which may be a stale pair.
	 */
	/*
	 * Best: the frame's size from its prologue puts rbp at one slot, which must then hold a
	 * return address after a call. A frame sized otherwise (alloca, pushed arguments at the
	 * call) misses and falls through to the search.
	 */
	size = prologue_frame_size(p, p->func_start);
	if (size >= 0 && (p->sp & 7) == 0) {
		uint64_t a = p->sp + (uint64_t)size, ret;

		if (a + 16 <= end && stack_word(st, a + 8, &ret) && p->is_code(p->arg, ret) &&
		    cp_frame_base_follows_call(p, ret)) {
			*base = a;
			return CP_FRAME_BASE_PROLOGUE;
		}
	}
	r = find_with(p, end, CP_FRAME_BASE_DIRECT_CALL, base);
	if (r < 0)
		r = find_with(p, end, CP_FRAME_BASE_CHAIN, base);
	return r;
}
