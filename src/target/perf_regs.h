/* x86-64 user registers as perf samples carry them (PERF_SAMPLE_REGS_USER), in DWARF numbering. */
#ifndef CP_PERF_REGS_H
#define CP_PERF_REGS_H

#include <stddef.h>
#include <stdint.h>

#include "snapshot.h"

/* perf register numbers (arch/x86/include/uapi/asm/perf_regs.h). */
enum {
	CP_PREG_AX = 0, CP_PREG_BX, CP_PREG_CX, CP_PREG_DX, CP_PREG_SI, CP_PREG_DI, CP_PREG_BP,
	CP_PREG_SP, CP_PREG_IP, CP_PREG_FLAGS, CP_PREG_CS, CP_PREG_SS, CP_PREG_DS, CP_PREG_ES,
	CP_PREG_FS, CP_PREG_GS, CP_PREG_R8, CP_PREG_R9, CP_PREG_R10, CP_PREG_R11, CP_PREG_R12,
	CP_PREG_R13, CP_PREG_R14, CP_PREG_R15,
};

/*
 * The registers unwinding needs, in the order the kernel writes them (ascending perf number),
 * with their DWARF numbers. FLAGS and the segment registers are left out.
 */
static const struct {
	int perf;
	int dwarf;
} cp_perf_regs[] = {
	{ CP_PREG_AX, CP_REG_RAX },   { CP_PREG_BX, CP_REG_RBX },   { CP_PREG_CX, CP_REG_RCX },
	{ CP_PREG_DX, CP_REG_RDX },   { CP_PREG_SI, CP_REG_RSI },   { CP_PREG_DI, CP_REG_RDI },
	{ CP_PREG_BP, CP_REG_RBP },   { CP_PREG_SP, CP_REG_RSP },   { CP_PREG_IP, CP_REG_RIP },
	{ CP_PREG_R8, CP_REG_R8 },    { CP_PREG_R9, CP_REG_R9 },    { CP_PREG_R10, CP_REG_R10 },
	{ CP_PREG_R11, CP_REG_R11 },  { CP_PREG_R12, CP_REG_R12 },  { CP_PREG_R13, CP_REG_R13 },
	{ CP_PREG_R14, CP_REG_R14 },  { CP_PREG_R15, CP_REG_R15 },
};

#define CP_PERF_NREGS (sizeof(cp_perf_regs) / sizeof(cp_perf_regs[0]))

/* perf_event_attr.sample_regs_user for cp_perf_regs. */
static inline uint64_t cp_perf_regs_mask(void)
{
	uint64_t mask = 0;

	for (size_t i = 0; i < CP_PERF_NREGS; i++)
		mask |= 1ull << cp_perf_regs[i].perf;
	return mask;
}

#endif
