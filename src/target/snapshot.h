/*
 * What capture hands to unwinding: a thread's registers and a copy of the live part of its
 * stack. Capturing and unwinding are separate steps so that the thread runs again before
 * any unwinding work starts, and so that perf samples (which carry the same two things)
 * go through the same unwinder.
 */
#ifndef CP_SNAPSHOT_H
#define CP_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* x86-64 registers in DWARF numbering, the same as libunwind's UNW_X86_64_* and perf's
 * conversion tables are written against. */
enum cp_reg {
	CP_REG_RAX = 0,
	CP_REG_RDX = 1,
	CP_REG_RCX = 2,
	CP_REG_RBX = 3,
	CP_REG_RSI = 4,
	CP_REG_RDI = 5,
	CP_REG_RBP = 6,
	CP_REG_RSP = 7,
	CP_REG_R8 = 8,
	CP_REG_R9 = 9,
	CP_REG_R10 = 10,
	CP_REG_R11 = 11,
	CP_REG_R12 = 12,
	CP_REG_R13 = 13,
	CP_REG_R14 = 14,
	CP_REG_R15 = 15,
	CP_REG_RIP = 16,
	CP_NREGS = 17,
};

struct cp_regs {
	uint64_t r[CP_NREGS];
	uint32_t valid;		/* bit (1u << reg) set when r[reg] is known */
};

/* A copy of target memory [start, start + len). data is owned by whoever filled it. */
struct cp_stack {
	uint64_t start;		/* target address of data[0]: the stack pointer at capture */
	size_t len;
	uint8_t *data;
	bool truncated;		/* the live stack was longer than the copy limit */
};

/* Default stack copy limit for a thread dump. */
#define CP_STACK_COPY_MAX (256u << 10)

#endif
