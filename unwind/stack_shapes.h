/*
 * Stack shapes: walks replayed instead of unwound. In a thread pool hundreds of threads block
 * at the same place through the same calls: the same pcs, with return addresses at the same
 * offsets from the stack pointer. Once one such stack has been walked from sp and pc alone
 * (every step relative to sp), a stack at the same pc that holds those same return addresses
 * at those same offsets has that same walk: checking a few words replaces the unwinder.
 */
#ifndef CP_STACK_SHAPES_H
#define CP_STACK_SHAPES_H

#include <stdbool.h>

#include "snapshot.h"
#include "unwind.h"

/* A bounded set of learned shapes; one user at a time (one per unwinding thread). */
struct cp_stack_shapes;

/* NULL when out of memory. */
struct cp_stack_shapes *cp_stack_shapes_new(void);
void cp_stack_shapes_free(struct cp_stack_shapes *sh);

/*
 * Learn the shape of ur, the walk of the snapshot (regs, stack) made from sp and pc alone
 * (a live capture), when it is a clean walk of plain calls; silently not when full or out of
 * memory.
 */
void cp_stack_shapes_learn(struct cp_stack_shapes *sh, const struct cp_regs *regs,
			   const struct cp_stack *stack, const struct cp_unwind_result *ur);

/* Write into ur the walk of (regs, stack) if it has a learned shape; false when it has not. */
bool cp_stack_shapes_match(const struct cp_stack_shapes *sh, const struct cp_regs *regs,
			   const struct cp_stack *stack, struct cp_unwind_result *ur);

#endif
