/* Stack shapes: walks of plain calls learned once and replayed on stacks that hold the same. */
#include <stdlib.h>
#include <string.h>

#include "stack_shapes.h"

/* Shapes kept per set: a pool's few distinct places, not every stack. */
#define SHAPES_MAX 64

struct stack_shape {
	size_t n;
	uint64_t *pc;		/* pc[0] is where the thread is; pc[i] its return addresses */
	uint64_t *off;		/* off[i]: frame i's sp minus the innermost sp */
};

struct cp_stack_shapes {
	struct stack_shape v[SHAPES_MAX];
	size_t n;
};

struct cp_stack_shapes *cp_stack_shapes_new(void)
{
	return calloc(1, sizeof(struct cp_stack_shapes));
}

void cp_stack_shapes_free(struct cp_stack_shapes *sh)
{
	if (!sh)
		return;
	for (size_t i = 0; i < sh->n; i++) {
		free(sh->v[i].pc);
		free(sh->v[i].off);
	}
	free(sh);
}

static bool word_at(const struct cp_stack *st, uint64_t off, uint64_t *v)
{
	if (!st->data || off > st->len || st->len - off < sizeof(*v))
		return false;
	memcpy(v, st->data + off, sizeof(*v));
	return true;
}

void cp_stack_shapes_learn(struct cp_stack_shapes *sh, const struct cp_regs *regs,
			   const struct cp_stack *stack, const struct cp_unwind_result *ur)
{
	uint64_t sp0 = regs->r[CP_REG_RSP], v;
	struct stack_shape *s;

	if (sh->n >= SHAPES_MAX || ur->n < 2 || ur->truncated || ur->stop_reason)
		return;
	if (stack->start != sp0 || ur->sp[0] != sp0)
		return;
	for (size_t i = 1; i < ur->n; i++) {
		/* Plain calls only: the return address sits just below the caller's sp. */
		if (ur->flags[i] || ur->sp[i] <= ur->sp[i - 1] ||
		    !word_at(stack, ur->sp[i] - sp0 - 8, &v) || v != ur->pc[i])
			return;
	}
	s = &sh->v[sh->n];
	s->pc = malloc(ur->n * sizeof(*s->pc));
	s->off = malloc(ur->n * sizeof(*s->off));
	if (!s->pc || !s->off) {
		free(s->pc);
		free(s->off);
		return;
	}
	for (size_t i = 0; i < ur->n; i++) {
		s->pc[i] = ur->pc[i];
		s->off[i] = ur->sp[i] - sp0;
	}
	s->n = ur->n;
	sh->n++;
}

bool cp_stack_shapes_match(const struct cp_stack_shapes *sh, const struct cp_regs *regs,
			   const struct cp_stack *stack, struct cp_unwind_result *ur)
{
	uint64_t sp0 = regs->r[CP_REG_RSP], pc0 = regs->r[CP_REG_RIP], v;

	if (stack->start != sp0 || !(regs->valid & (1u << CP_REG_RIP)))
		return false;
	for (size_t k = 0; k < sh->n; k++) {
		const struct stack_shape *s = &sh->v[k];
		size_t i;

		if (s->pc[0] != pc0)
			continue;
		for (i = 1; i < s->n; i++)
			if (!word_at(stack, s->off[i] - 8, &v) || v != s->pc[i])
				break;
		if (i < s->n)
			continue;
		/* Only the header and the frames: every reader stops at n. */
		ur->truncated = false;
		ur->stop_reason = 0;
		for (i = 0; i < s->n; i++) {
			ur->pc[i] = s->pc[i];
			ur->sp[i] = sp0 + s->off[i];
			ur->flags[i] = 0;
		}
		ur->n = s->n;
		return true;
	}
	return false;
}
