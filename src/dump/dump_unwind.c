/* Unwinding a dump's captured stacks: on the capturing threads as they go, then what is left. */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "dump_run.h"
#include "stack_shapes.h"

/*
 * A live capture has only sp and pc. Most stacks unwind from those alone (CFA from rsp, callee-
 * saved registers restored from the stack), but a frame whose CFA is rbp-based, with no inner
 * frame having saved rbp, needs the real register.
 */
static bool needs_registers(const struct thread_work *tw, int uerr,
			    const struct cp_unwind_result *ur)
{
	if (!tw->snap.live)
		return false;
	return uerr == -ENODATA || (uerr == 0 && ur->stop_reason == -ENODATA);
}

/*
 * Then stop the thread once to get all its registers, unless it sits in a call a stop would
 * fail with EINTR (or in uninterruptible sleep): there the partial stack stands. Returns true
 * when tw->snap was replaced by a stopped capture.
 */
static bool refill_registers(struct dump_run *run, struct thread_work *tw,
			     const struct cp_maps *maps)
{
	struct cp_capture_opts copts = {
		.stack_max = run->stack_max,
		.flags = CP_CAPTURE_STOP,
		.maps = maps,
		.mem = &run->mem,
	};
	struct cp_task_syscall now;
	struct cp_thread_snap snap;

	/* Nor one in uninterruptible sleep, nor one another process traces (one tracer only). */
	if (tw->st.state == 'D' || tw->snap.tracer || run->d->tracer_pid)
		return false;
	if (tw->has_sc && tw->sc.in_syscall && cp_capture_syscall_may_eintr(tw->sc.nr))
		return false;
	/* Where it is now, a moment before the stop. */
	if (cp_proc_read_syscall(run->pid, tw->tid, &now) < 0 ||
	    (now.in_syscall && cp_capture_syscall_may_eintr(now.nr)))
		return false;
	if (cp_capture_thread(run->pid, tw->tid, &copts, &snap) < 0)
		return false;
	cp_thread_snap_release(&tw->snap);
	tw->snap = snap;
	return true;
}

/* Empty ur for a new stack: only its header, since every reader stops at n. */
static void result_reset(struct cp_unwind_result *ur)
{
	ur->n = 0;
	ur->truncated = false;
	ur->stop_reason = 0;
}

/*
 * Walk one captured stack (stopping the thread once if the live registers are not enough)
 * and keep the pcs in tw; the copy of the stack is freed right after. 0 or -ENOMEM.
 */
static int unwind_thread(struct dump_run *run, struct thread_work *tw, struct stack_walker *wk)
{
	struct cp_unwind_result *ur = wk->ur;
	struct cp_unwinder *uw = wk->uw;
	int uerr = 0;

	result_reset(ur);
	if (uw && cp_stack_shapes_match(wk->shapes, &tw->snap.regs, &tw->snap.stack, ur)) {
		tw->unwind_error = 0;
	} else if (uw) {
		uerr = cp_unwind(uw, &tw->snap.regs, &tw->snap.stack, ur);
		if (uerr == 0 && tw->snap.live)
			cp_stack_shapes_learn(wk->shapes, &tw->snap.regs, &tw->snap.stack, ur);
		if (needs_registers(tw, uerr, ur) && refill_registers(run, tw, wk->maps)) {
			result_reset(ur);
			uerr = cp_unwind(uw, &tw->snap.regs, &tw->snap.stack, ur);
		}
		if (uerr < 0) {
			tw->unwind_error = uerr;
			ur->n = 0;
		} else {
			tw->unwind_error = ur->stop_reason < 0 ? ur->stop_reason : 0;
			tw->unwind_truncated = ur->truncated;
		}
	}
	if (ur->n == 0 && (tw->snap.regs.valid & (1u << CP_REG_RIP))) {
		/* Without a walk the current pc is still worth showing. */
		ur->pc[0] = tw->snap.regs.r[CP_REG_RIP];
		ur->flags[0] = 0;
		ur->n = 1;
	}
	if (ur->n > CP_UNWIND_MAX_FRAMES)
		ur->n = CP_UNWIND_MAX_FRAMES;
	if (ur->n) {
		tw->unwound_pcs = malloc(ur->n * sizeof(*tw->unwound_pcs));
		tw->unwound_flags = malloc(ur->n);
		if (!tw->unwound_pcs || !tw->unwound_flags)
			return -ENOMEM;
		memcpy(tw->unwound_pcs, ur->pc, ur->n * sizeof(*tw->unwound_pcs));
		memcpy(tw->unwound_flags, ur->flags, ur->n);
	}
	tw->nunwound = ur->n;
	tw->unwound = true;
	/* The copy is no longer needed; free it early on dumps of many threads. */
	free(tw->snap.stack.data);
	tw->snap.stack.data = NULL;
	tw->snap.stack.len = 0;
	return 0;
}

/*
 * Unwinding is per thread and independent: on a process with many threads a few helpers
 * share it out, each with its own unwinder (libunwind address space and module views; the
 * files are mapped, not copied). Symbolization, which caches across threads, stays serial.
 */
struct unwind_work {
	struct dump_run *run;
	atomic_size_t next;
	atomic_int err;
};

int stack_walker_init(struct stack_walker *wk, const struct cp_mem *mem,
		      const struct cp_maps *maps)
{
	memset(wk, 0, sizeof(*wk));
	wk->maps = maps;
	wk->ur = malloc(sizeof(*wk->ur));
	wk->shapes = cp_stack_shapes_new();
	if (!wk->ur || !wk->shapes || (maps && !(wk->uw = cp_unwind_new(mem->pid, maps, true)))) {
		free(wk->ur);
		cp_stack_shapes_free(wk->shapes);
		return -ENOMEM;
	}
	return 0;
}

void stack_walker_release(struct stack_walker *wk)
{
	cp_stack_shapes_free(wk->shapes);
	cp_unwind_free(wk->uw);
	free(wk->ur);
	memset(wk, 0, sizeof(*wk));
}

int stack_walker_unwind(struct dump_run *run, struct thread_work *tw, struct stack_walker *wk)
{
	if (!tw->captured || tw->unwound)
		return 0;
	return unwind_thread(run, tw, wk);
}

static void *unwind_worker(void *arg)
{
	struct unwind_work *w = arg;
	struct dump_run *run = w->run;
	struct stack_walker wk;

	if (stack_walker_init(&wk, &run->mem, run->have_maps ? &run->maps : NULL) < 0) {
		atomic_store(&w->err, -ENOMEM);
		return NULL;
	}
	for (;;) {
		size_t i = atomic_fetch_add(&w->next, 1);

		if (i >= run->nwork || dump_cancelled(run) || atomic_load(&w->err))
			break;
		if (stack_walker_unwind(run, &run->work[i], &wk) < 0)
			atomic_store(&w->err, -ENOMEM);
	}
	stack_walker_release(&wk);
	return NULL;
}

/* What the capturing threads left is a walker that could not be set up, or -ENOMEM. */
int dump_unwind_pending(struct dump_run *run)
{
	struct unwind_work w = { .run = run };
	size_t pending = 0;

	for (size_t i = 0; i < run->nwork; i++)
		pending += run->work[i].captured && !run->work[i].unwound;
	if (!pending)
		return 0;
	atomic_init(&w.next, 0);
	atomic_init(&w.err, 0);
	dump_parallel(unwind_worker, &w, dump_helper_count(pending));
	if (atomic_load(&w.err))
		return atomic_load(&w.err);
	return dump_cancelled(run) ? -EINTR : 0;
}


int dump_unwind_extra(struct dump_run *run)
{
	const struct cp_dump_opts *o = run->opts;
	struct stack_walker wk;
	int err = 0;

	if (!o->nextra || !o->extra)
		return 0;
	run->d->extra = calloc(o->nextra, sizeof(*run->d->extra));
	if (!run->d->extra)
		return -ENOMEM;
	if (stack_walker_init(&wk, &run->mem, run->have_maps ? &run->maps : NULL) < 0)
		return -ENOMEM;
	for (size_t i = 0; i < o->nextra && err == 0; i++) {
		const struct cp_thread_snap *s = o->extra[i];
		struct cp_dump_thread *th = &run->d->extra[run->d->nextra++];
		struct thread_work tw = { .tid = s->tid, .captured = true, .snap = *s };

		th->tid = s->tid;
		cp_wait_init(&th->wait);
		/* The copy is borrowed: the walk frees tw's, so it gets one of its own. */
		tw.snap.stack.data = s->stack.len ? malloc(s->stack.len) : NULL;
		if (s->stack.len && !tw.snap.stack.data) {
			err = -ENOMEM;
			break;
		}
		if (s->stack.len)
			memcpy(tw.snap.stack.data, s->stack.data, s->stack.len);
		err = stack_walker_unwind(run, &tw, &wk);
		if (err == 0) {
			th->unwind_error = tw.unwind_error;
			th->truncated = tw.unwind_truncated;
			err = dump_symbolize_extra(run, &tw, th);
		}
		thread_work_release(&tw);
	}
	stack_walker_release(&wk);
	return err;
}
