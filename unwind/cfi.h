/*
 * A search table for modules whose CFI libunwind cannot find by itself: .debug_frame (code
 * built without unwind tables, -fno-asynchronous-unwind-tables) and .eh_frame without a
 * .eh_frame_hdr search table. Internal to unwind/.
 *
 * The entries are rewritten into one canonical .eh_frame form (a "zR[S]" CIE with absolute
 * 8-byte addresses before each FDE) preceded by a sorted table of (start, FDE) int32 pairs,
 * the layout libunwind's remote table search (UNW_INFO_FORMAT_IP_OFFSET) reads through
 * access_mem. The unwinder serves these bytes at an address no process can use.
 */
#ifndef CP_UNWIND_CFI_H
#define CP_UNWIND_CFI_H

#include <stddef.h>
#include <stdint.h>

#include "modules.h"

/* Caps on what we build from a target's file. */
#define CP_CFI_MAX_FDES (1u << 20)
#define CP_CFI_MAX_BYTES (256u << 20)

struct cp_cfi_index {
	uint64_t bias;		/* runtime addresses in the FDEs are ELF vaddr + bias */
	uint8_t *buf;		/* table (count int32 pairs), then the CIE/FDE pairs */
	size_t len;
	size_t count;		/* table entries */
	uint64_t ip_base;	/* ELF vaddr the table's start offsets are relative to */
	uint32_t id;		/* set by the unwinder: where it serves buf */
};

/*
 * Build the table of m (loaded at bias) from its .debug_frame, plus its .eh_frame when the
 * module has no usable .eh_frame_hdr. Returns 0 and *out (caller frees), -ENOENT when there
 * is no CFI to add, -ENOMEM. Never reads outside m's bytes, whatever they contain.
 */
int cp_cfi_index_build(const struct cp_module *m, uint64_t bias, struct cp_cfi_index **out);
void cp_cfi_index_free(struct cp_cfi_index *x);

#endif
