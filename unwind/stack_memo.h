/*
 * Whole unwound stacks met before, by their frames' (pc, exact) keys: threads parked at one
 * place (a pool's hundred workers) are recognised as having the same stack, so that what was
 * derived from the first (its symbolized frames) is shared instead of redone.
 */
#ifndef CP_STACK_MEMO_H
#define CP_STACK_MEMO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "unwind.h"
#include "util.h"

/*
 * Whether frame i of an unwound stack (pcs and enum cp_frame_flags) is looked up at its pc
 * exactly: the innermost frame and frames a signal interrupted. A caller's pc is a return
 * address, looked up at the call instruction before it.
 */
static inline bool cp_stack_frame_exact(const uint64_t *pc, const uint8_t *flags, size_t i)
{
	return i == 0 || (flags[i] & CP_FRAME_SIGNAL) || pc[i] == 0;
}

/* A pc and how it is looked up, as one key that is never 0. */
static inline uint64_t cp_stack_pc_key(uint64_t pc, bool exact)
{
	return ((pc << 1) | exact) + 1;
}

struct cp_stack_memo_entry {
	uint32_t id;		/* what the stack was registered under */
	uint32_t off;		/* into keys */
	uint32_t n;
};

/* Zero-initialised is empty. One user at a time. */
struct cp_stack_memo {
	struct cp_htab h;
	struct cp_stack_memo_entry *e;
	size_t ne, e_alloc;
	uint64_t *keys;
	size_t nkeys, keys_cap;
};

void cp_stack_memo_release(struct cp_stack_memo *m);

/* The hash of the stack of n frames (pc[i], flags[i]) that find and add take. */
uint32_t cp_stack_memo_hash(const uint64_t *pc, const uint8_t *flags, size_t n);

/* The id the same stack was added under, or -1. */
int64_t cp_stack_memo_find(const struct cp_stack_memo *m, const uint64_t *pc,
			   const uint8_t *flags, size_t n, uint32_t hash);

/* Remember the stack (not yet present) under id; silently not when out of memory. */
void cp_stack_memo_add(struct cp_stack_memo *m, const uint64_t *pc, const uint8_t *flags,
		       size_t n, uint32_t hash, uint32_t id);

#endif
