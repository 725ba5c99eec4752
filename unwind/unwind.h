/*
 * Stack unwinding with libunwind's remote API over a captured snapshot (registers plus a
 * stack copy). Unwind tables (.eh_frame_hdr / .debug_frame) are found once per module file
 * and cached for the life of the unwinder.
 */
#ifndef CP_UNWIND_H
#define CP_UNWIND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "maps.h"
#include "mem.h"
#include "snapshot.h"

#define CP_UNWIND_MAX_FRAMES 256

struct cp_unwinder;

enum cp_frame_flags {
	CP_FRAME_SIGNAL = 1u << 0,	/* this frame was interrupted by a signal: pc is exact */
	/* The signal trampoline (__restore_rt) itself; also has CP_FRAME_SIGNAL: its pc was
	 * set by the kernel, not pushed by a call, so it is exact too. */
	CP_FRAME_SIGTRAMP = 1u << 1,
};

struct cp_unwind_result {
	uint64_t pc[CP_UNWIND_MAX_FRAMES];	/* innermost first; raw return addresses */
	uint8_t flags[CP_UNWIND_MAX_FRAMES];	/* enum cp_frame_flags */
	/* Stack pointer of each frame (a caller's is its callee's CFA): lets a caller tell
	 * where return addresses were found, relative to the innermost sp. */
	uint64_t sp[CP_UNWIND_MAX_FRAMES];
	size_t n;
	bool truncated;		/* stopped at the depth cap */
	int stop_reason;	/* 0 = reached the outermost frame; else -errno-ish reason */
};

/*
 * An unwinder belongs to one process and is used by one thread at a time.
 * Create an unwinder for process pid. maps is borrowed and must outlive the unwinder (or be
 * replaced with cp_unwind_set_maps). Returns NULL on allocation failure.
 * live_memory: when the copy does not cover an address, read it from the live process
 * (thread dumps) instead of failing (profiles: only the sample's copy is trustworthy).
 */
struct cp_unwinder *cp_unwind_new(int pid, const struct cp_maps *maps, bool live_memory);
void cp_unwind_free(struct cp_unwinder *uw);
/*
 * Read the target's memory through mem, opened by the caller for the process of the unwinder
 * (without it, reads go by pid). The file stays the caller's and must stay open while the
 * unwinder is used.
 */
void cp_unwind_set_mem(struct cp_unwinder *uw, const struct cp_mem *mem);
/* Point the unwinder at a newer map (after dlopen/mmap); cached modules are kept by file. */
void cp_unwind_set_maps(struct cp_unwinder *uw, const struct cp_maps *maps);

/* Unwind one snapshot. 0 or -errno; a partial stack is still a success (see stop_reason). */
int cp_unwind(struct cp_unwinder *uw, const struct cp_regs *regs, const struct cp_stack *stack,
	      struct cp_unwind_result *out);

#endif
