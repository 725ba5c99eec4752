/* Unit tests of frame-base recovery: proofs by direct and indirect calls, and no guesses. */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "frame_base.h"

/* A fake code segment at CODE, and a stack copy at STACK. */
#define CODE 0x400000ull
#define STACK 0x7ff000000000ull
#define FUNC (CODE + 0x100)	/* the frame's function */
#define OTHER (CODE + 0x300)	/* some other function */

static uint8_t code[0x1000];
static uint64_t words[64];

static bool is_code(void *arg, uint64_t addr)
{
	return addr >= CODE && addr < CODE + sizeof(code);
}

static int read_code(void *arg, uint64_t addr, void *buf, size_t len)
{
	if (!is_code(arg, addr) || addr + len > CODE + sizeof(code))
		return -EFAULT;
	memcpy(buf, code + (addr - CODE), len);
	return 0;
}

/* A direct call of target ending at ret. */
static void put_direct_call(uint64_t ret, uint64_t target)
{
	int32_t rel = (int32_t)(target - ret);

	code[ret - CODE - 5] = 0xe8;
	memcpy(code + (ret - CODE - 4), &rel, 4);
}

/* call *%rax ending at ret. */
static void put_indirect_call(uint64_t ret)
{
	code[ret - CODE - 2] = 0xff;
	code[ret - CODE - 1] = 0xd0;
}

static struct cp_stack stack(void)
{
	return (struct cp_stack){ .start = STACK, .len = sizeof(words), .data = (uint8_t *)words };
}

static int find(uint64_t sp, uint64_t *base)
{
	struct cp_stack st = stack();
	struct cp_frame_base_probe p = {
		.sp = sp, .func_start = FUNC, .stack = &st, .is_code = is_code,
		.read_code = read_code,
	};

	return cp_frame_base_find(&p, base);
}

static void reset(void)
{
	memset(code, 0x90, sizeof(code));	/* nops: no call anywhere */
	memset(words, 0, sizeof(words));
}

int main(void)
{
	uint64_t base = 0;

	/* A direct call of FUNC: its return address at words[5], the saved rbp below it. */
	reset();
	put_direct_call(CODE + 0x520, FUNC);
	words[2] = CODE + 0x800;	/* a code address no call precedes: a local, not a link */
	words[4] = STACK + 8 * 20;
	words[5] = CODE + 0x520;
	CHECK(find(STACK, &base) == CP_FRAME_BASE_DIRECT_CALL);
	CHECK(base == STACK + 8 * 4);

	/* A direct call of another function proves nothing: no base at all. */
	reset();
	put_direct_call(CODE + 0x520, OTHER);
	words[4] = STACK + 8 * 20;
	words[5] = CODE + 0x520;
	base = 0;
	CHECK(find(STACK, &base) == -ENOENT);
	CHECK(base == 0);

	/* An indirect call needs the next link to follow a call too. */
	reset();
	put_indirect_call(CODE + 0x520);
	put_direct_call(CODE + 0x620, OTHER);
	words[4] = STACK + 8 * 10;
	words[5] = CODE + 0x520;
	words[10] = 0;
	words[11] = CODE + 0x620;
	CHECK(find(STACK, &base) == CP_FRAME_BASE_CHAIN);
	CHECK(base == STACK + 8 * 4);

	/* ... and without it, the slot is not taken. */
	reset();
	put_indirect_call(CODE + 0x520);
	words[4] = STACK + 8 * 10;
	words[5] = CODE + 0x520;
	words[11] = CODE + 0x700;	/* no call before it */
	CHECK(find(STACK, &base) == -ENOENT);

	/* Without the caller's CFI, a chain's saved frame pointer must lie above its slot. */
	reset();
	put_indirect_call(CODE + 0x520);
	words[4] = STACK;		/* points below itself */
	words[5] = CODE + 0x520;
	CHECK(find(STACK, &base) == -ENOENT);

	/* A direct call proves the slot whatever the caller keeps in rbp. */
	reset();
	put_direct_call(CODE + 0x520, FUNC);
	words[4] = 0x1234567;		/* an odd value: the caller uses rbp for data */
	words[5] = CODE + 0x520;
	CHECK(find(STACK, &base) == CP_FRAME_BASE_DIRECT_CALL && base == STACK + 8 * 4);

	/*
	 * The prologue sizes the frame (push %rbp; mov %rsp,%rbp; push %rbx; sub $0x18,%rsp:
	 * rbp = sp + 0x20): that slot is taken over a lower stale pair after a direct call.
	 */
	reset();
	memcpy(code + (FUNC - CODE), "\x55\x48\x89\xe5\x53\x48\x83\xec\x18", 9);
	put_direct_call(CODE + 0x520, FUNC);
	put_indirect_call(CODE + 0x620);
	words[0] = STACK + 8 * 30;	/* a stale pair, proved by a direct call */
	words[1] = CODE + 0x520;
	words[4] = 0x77;		/* the real one: the caller keeps data in rbp */
	words[5] = CODE + 0x620;
	CHECK(find(STACK, &base) == CP_FRAME_BASE_PROLOGUE && base == STACK + 0x20,
	      "base %#llx", (unsigned long long)base);
	/* A slot where the prologue points that holds no return address: the search decides. */
	words[5] = CODE + 0x700;
	CHECK(find(STACK, &base) == CP_FRAME_BASE_DIRECT_CALL && base == STACK);

	/* sp outside the copy, or no copy: nothing. */
	reset();
	CHECK(find(STACK + sizeof(words), &base) == -ENOENT);
	CHECK(find(STACK - 8, &base) == -ENOENT);

	/* The end of the chain (saved rbp 0) after a direct call is a proof. */
	reset();
	put_direct_call(CODE + 0x520, FUNC);
	words[60] = 0;
	words[61] = CODE + 0x520;
	CHECK(find(STACK + 8, &base) == CP_FRAME_BASE_DIRECT_CALL);
	CHECK(base == STACK + 8 * 60);
	return check_done("frame_base");
}
