/* What the files of src/golang share: the runtime handle, the layouts and the binary's view. */
#ifndef CP_GO_INTERNAL_H
#define CP_GO_INTERNAL_H

#include <gelf.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "goruntime.h"
#include "sym_gopclntab.h"

/* Byte offsets of the runtime's struct fields we read; 0 for "absent" only where noted. */
struct go_layout {
	uint32_t g_size;
	uint32_t g_stack_lo, g_stack_hi, g_m, g_sched, g_syscallsp, g_syscallpc;
	uint32_t g_atomicstatus, g_goid, g_waitsince, g_waitreason, g_lockedm, g_gopc;
	uint32_t g_startpc, g_waiting;
	uint32_t g_parentgoid;		/* 0: this version records no parent (before 1.21) */
	uint32_t gobuf_sp, gobuf_pc, gobuf_bp;
	uint32_t m_procid, m_curg;
	uint32_t sudog_c;
};

/* How a stripped binary's global is found: the nth data address its code refers to. */
struct go_global_recipe {
	const char *name;		/* "runtime.allgs" */
	const char *function;		/* a runtime function that refers to it */
	unsigned nth;			/* 0-based, counting every RIP-relative data reference */
	int64_t adjust;			/* added to the address referred to (a field of it) */
};

/* One supported Go version: its layouts and recipes (go_layout.c). */
struct go_version_table {
	const char *prefix;		/* "go1.19" matches go1.19 and go1.19.N */
	struct go_layout layout;
	const struct go_global_recipe *recipes;
	size_t nrecipes;
	size_t nwait_reasons;		/* entries of waitReasonStrings */
	size_t nstatus_strings;		/* entries of gStatusStrings */
};

/* An address range of the binary (ELF vaddr), with its bytes when the file holds them. */
struct go_section {
	uint64_t addr, size;
	const uint8_t *data;		/* NULL for .bss / .noptrbss */
};

/* A global found, by name. */
struct go_global {
	char *name;
	uint64_t addr;			/* runtime address */
};

#define GO_MAX_STRINGS 256

struct cp_go_runtime {
	int pid;
	const struct cp_maps *maps;
	const struct cp_mem *mem;
	int fd;
	Elf *elf;
	uint64_t bias;			/* runtime = ELF vaddr + bias */
	char version[64];
	bool has_symtab, has_dwarf, layout_from_dwarf;
	struct go_layout layout;
	const struct go_version_table *table;	/* NULL when the layout came from DWARF */
	struct cp_gopclntab pcln;
	bool has_pcln;
	struct go_section text, data, noptrdata, bss, noptrbss, rodata;
	struct go_global *globals;
	size_t nglobals;
	/* The target's status and wait reason strings, read at open. */
	char *status_strs[GO_MAX_STRINGS];
	size_t nstatus;
	char *reason_strs[GO_MAX_STRINGS];
	size_t nreasons;
	/* The last cp_go_goroutines' stack copies, by cp_goroutine.snap (go_goroutines.c). */
	struct go_stack_copy *stacks;
	size_t nstacks;
};

/* A copy of a parked goroutine's live stack, [sp, sp + len), taken with its g. */
struct go_stack_copy {
	uint64_t sp;
	size_t len;
	uint8_t *bytes;			/* owned */
};

/* go_layout.c */
/* The table entry for version ("go1.19.8"), or NULL. */
const struct go_version_table *go_version_find(const char *version);
/* The layouts from the binary's DWARF. 0, -ENOENT (no DWARF or a type missing) or -errno. */
int go_layout_from_dwarf(Elf *elf, struct go_layout *out);

/* go_globals.c */
/* Record global name at runtime address addr. 0 or -ENOMEM. */
int go_global_add(struct cp_go_runtime *rt, const char *name, uint64_t addr);
/* Every global of .symtab named runtime.*. 0, -ENOENT (no .symtab) or -ENOMEM. */
int go_globals_from_symtab(struct cp_go_runtime *rt);
/*
 * The globals of rt->table's recipes, from the runtime's code read through .gopclntab: the
 * data addresses its RIP-relative instructions refer to. Returns how many were found.
 */
size_t go_globals_from_code(struct cp_go_runtime *rt);
/*
 * The data addresses (ELF vaddrs in .data/.noptrdata/.bss/.noptrbss) the x86-64 code
 * code[0..len), loaded at vaddr, refers to RIP-relatively, in order: how many were written.
 */
size_t go_code_data_refs(const struct cp_go_runtime *rt, const uint8_t *code, size_t len,
			 uint64_t vaddr, uint64_t *out, size_t max);

/* Little-endian reads from a buffer the caller bounds-checked. */
static inline uint64_t go_le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static inline uint32_t go_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

#endif
