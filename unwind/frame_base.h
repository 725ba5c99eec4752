/*
 * Recovering the frame pointer (rbp) of a frame-pointer function when the capture did not
 * record it: a thread captured live, from /proc/TID/syscall, has sp and pc only.
 */
#ifndef CP_FRAME_BASE_H
#define CP_FRAME_BASE_H

#include <stdbool.h>
#include <stdint.h>

#include "snapshot.h"

/* What the search may look at: the stack copy, code bytes, and which addresses are code. */
struct cp_frame_base_probe {
	uint64_t sp;			/* the frame's sp: its callee's CFA */
	uint64_t func_start;		/* first byte of the frame's function (its FDE's start) */
	const struct cp_stack *stack;	/* borrowed: the only memory scanned for the chain */
	/* Is addr inside executable, file-backed code? */
	bool (*is_code)(void *arg, uint64_t addr);
	/* Read len bytes of code (or of a GOT slot a call goes through) at addr: 0 or -errno. */
	int (*read_code)(void *arg, uint64_t addr, void *buf, size_t len);
	/*
	 * May be NULL. With base as the frame's rbp, does unwinding two frames by their CFI
	 * reach a return address that follows a call, or the end of the stack? Without it, the
	 * saved frame pointer's own link is checked instead.
	 */
	bool (*caller_ok)(void *arg, uint64_t base);
	void *arg;
};

/* How a recovered frame base was validated. */
enum cp_frame_base_proof {
	/* The return address above it follows a direct call of the frame's own function. */
	CP_FRAME_BASE_DIRECT_CALL = 1,
	/*
	 * It follows a call whose target is unknown (or another function, reached by a tail
	 * call), and the caller unwound from there by its CFI (caller_ok) returns to an address
	 * that follows a call too, or ends the stack.
	 */
	CP_FRAME_BASE_CHAIN = 2,
	/*
	 * The frame's size, read from its function's prologue (push %rbp; mov %rsp,%rbp; pushes;
	 * sub $N,%rsp), puts rbp at sp + size, and a return address after a call lies above it.
	 */
	CP_FRAME_BASE_PROLOGUE = 3,
};

/*
 * Find the frame base of a function that keeps rbp as its frame pointer (push %rbp; mov
 * %rsp,%rbp): an 8-byte slot A at or above sp in the stack copy where [A+8] is a return
 * address that a call instruction put there and [A] is a saved frame pointer above A (or 0).
 * First the slot the function's prologue predicts; else the lowest slot after a direct call
 * of the frame's own function; else the lowest after another call whose caller unwinds on
 * (caller_ok). Never guesses: a slot
 * passes only with a proof (enum cp_frame_base_proof), which is returned (> 0) with *base
 * set; -ENOENT when no slot passes.
 */
int cp_frame_base_find(const struct cp_frame_base_probe *p, uint64_t *base);

/* Does a call instruction end right before ret (code read through p)? */
bool cp_frame_base_follows_call(const struct cp_frame_base_probe *p, uint64_t ret);

/* How many bytes above sp are searched. */
#define CP_FRAME_BASE_SCAN_MAX (16u << 10)

#endif
