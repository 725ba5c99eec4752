/* What unwind.c shares with unwind_recover.c: the unwinder's state and its memory access. */
#ifndef CP_UNWIND_INTERNAL_H
#define CP_UNWIND_INTERNAL_H

#include <libunwind.h>
#include <stdbool.h>
#include <stdint.h>

#include "cfi.h"
#include "maps.h"
#include "mem.h"
#include "modules.h"
#include "unwind.h"

/* What we know about one mapping of the current maps, found on first use. */
struct map_slot {
	int state;			/* 0 not looked at, 1 module found, -errno none */
	struct cp_module *mod;		/* borrowed from the module cache (or the vdso) */
	uint64_t bias;
	bool has_bias;
	int cfi_state;			/* 0 not looked at, 1 cfi set, -errno none */
	const struct cp_cfi_index *cfi;	/* borrowed from the unwinder's list */
};

/* A rewritten table, or the fact that a module has none, for one load bias. */
struct synth {
	const struct cp_module *mod;
	uint64_t bias;
	struct cp_cfi_index *x;		/* owned; NULL: nothing to add for this module */
};

struct cp_unwinder {
	int pid;
	struct cp_mem mem;		/* the target's memory; its file is the caller's */
	bool live_memory;
	const struct cp_maps *maps;
	struct map_slot *slots;		/* parallel to maps->v */
	size_t nslots;
	struct cp_modules *mods;
	struct synth *synth;		/* index = id of the rewritten table */
	size_t nsynth, synth_alloc;
	struct cp_module *vdso;		/* the target's vdso, copied once */
	int vdso_state;			/* 0 not tried, 1 copied, -errno failed */
	unw_addr_space_t as;

	/* The last file-backed region read: most reads hit the same table or FDE area. */
	uint64_t last_start, last_end;
	const uint8_t *last_data;	/* bytes of last_start */
};

/* One unwind in progress: the accessors' arg. */
struct unwind_ctx {
	struct cp_unwinder *uw;
	const struct cp_regs *regs;
	const struct cp_stack *stack;
};

/* Is map the vdso? */
bool cp_unwind_is_vdso(const struct cp_map *map);
/* Read len bytes at addr: the stack copy, module files, or the live process. 0 or -errno. */
int cp_unwind_read_mem(struct unwind_ctx *c, uint64_t addr, void *buf, size_t len);
/* libunwind's find_proc_info over our modules (arg is the unwind_ctx). */
int cp_unwind_find_proc_info(unw_addr_space_t as, unw_word_t ip, unw_proc_info_t *pi,
			     int need_unwind_info, void *arg);

/*
 * unwind_recover.c: the frame at pc/sp could not be stepped because its CFA is rbp-based and
 * the capture has no rbp (a live capture). Find rbp from the stack copy, validated by the
 * call that made the frame (cp_frame_base_find), for libunwind to restart there: *regs_out
 * gets pc, sp and the recovered rbp. 0, or -ENODATA when nothing could be proven.
 */
int cp_unwind_recover_frame_base(struct unwind_ctx *c, uint64_t pc, uint64_t sp,
				 struct cp_regs *regs_out);

#endif
