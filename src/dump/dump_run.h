/*
 * The state of one cp_dump_take between its stages (private to src/dump): the threads being
 * captured (dump_capture.c), unwound (dump_unwind.c), symbolized (dump_symbolize.c) and
 * watched for progress (dump_stuck.c), before dump.c assembles them into the dump.
 */
#ifndef CP_DUMP_RUN_H
#define CP_DUMP_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "capture.h"
#include "dump.h"
#include "goruntime.h"
#include "maps.h"
#include "mem.h"
#include "pidns.h"
#include "proc.h"
#include "stack_memo.h"
#include "unwind.h"
#include "util.h"

/* A kernel symbol name: 128 bytes (KSYM_NAME_LEN) before Linux 6.1. */
#define WCHAN_MAX 512

/* Everything known about one thread between its capture and its place in the dump. */
struct thread_work {
	int tid;
	struct cp_task_stat st;
	struct cp_task_syscall sc;
	bool has_sc;
	char *wchan;		/* owned; NULL: not read, or empty */
	bool zombie;
	bool captured;
	int capture_error;
	int tracer;		/* with capture_error -EBUSY: who traces it */
	struct cp_thread_snap snap;
	char **kernel_frames;	/* owned; with CP_DUMP_KERNEL */
	size_t nkernel_frames;
	int stuck;		/* -1 null, 0, 1 */
	/* The walk of its stack, done (in parallel) before symbolization: */
	uint64_t *unwound_pcs;		/* owned; innermost first */
	uint8_t *unwound_flags;		/* owned; enum cp_frame_flags */
	size_t nunwound;
	int unwind_error;		/* 0, or why the walk ended early */
	bool unwind_truncated;		/* depth cap reached */
	bool unwound;
	/* Left by the capture for resolve_captures(): */
	bool drop;		/* vanished: not listed */
	int err;		/* a refusal or -ENOMEM, which may fail the whole dump */
	int kernel_error;	/* why its kernel stack could not be read */
};

/* One reading of a thread's progress counters for --stuck. */
struct progress {
	int tid;
	uint64_t cpu;
	uint64_t ctxt;
};

/*
 * The frames each pc of this dump symbolized to. Threads of one process share most of their
 * pcs (a hundred workers blocked at the same call), so a pc is looked up once a dump:
 * entries by (pc, exact) in a cp_htab, frames kept in one pool.
 */
struct pc_memo_entry {
	uint64_t key;		/* cp_stack_pc_key(pc, exact) */
	uint32_t off;		/* into pool */
	uint32_t n;
};

struct pc_memo {
	struct cp_htab h;
	struct pc_memo_entry *e;
	size_t ne, e_alloc;
	struct cp_frame *pool;
	size_t npool, pool_cap;
};

/* One cp_dump_take: its inputs, the threads in the making, and what the stages share. */
struct dump_run {
	int pid;
	const struct cp_dump_opts *opts;	/* without CP_DUMP_STOP_ALL when traced */
	struct cp_symbolizer *sym;
	struct cp_dump *d;
	struct thread_work *work;	/* one per listed thread */
	size_t nwork;
	size_t work_alloc;
	int *seen;		/* sorted tids listed so far */
	size_t nseen;
	struct progress *progress_before;	/* --stuck: the readings before the watch */
	size_t nprogress_before;
	struct progress *progress_after;	/* and after it */
	size_t nprogress_after;
	struct cp_maps maps;	/* read before the captures, to find stack ends */
	bool have_maps;
	size_t stack_max;	/* per-thread copy limit for this dump */
	size_t ncaptured;
	struct cp_frame *scratch;	/* symbolize_stack()'s work array */
	size_t scratch_cap;
	struct pc_memo pcs;		/* symbolize_stack()'s answers by pc */
	/* Stacks symbolized so far, by their unwound pcs; the id is the thread's index. */
	struct cp_stack_memo stacks;
	struct cp_switch_watch switches;	/* the CPUs' context switches, for big dumps */
	bool have_switches;
	struct cp_mem mem;		/* the target's memory, open while the dump lasts */
	/* How the target's PID namespace numbers its threads, read after the captures. */
	struct cp_pidns_map pidns;
	bool have_pidns;
	/* --stuck on a Go program: its goroutines at the first look (dump_go_diag.c). */
	struct cp_goroutine *go_before;
	size_t ngo_before;
};

/* dump.c */
bool dump_cancelled(const struct dump_run *run);
bool dump_is_gone(int err);
void dump_free_strv(char **v, size_t n);
/* Free what tw holds of its capture and walk (not its wchan). */
void thread_work_release(struct thread_work *tw);

/* dump_capture.c */
/* How many threads of cprof share out n target threads' captures or walks. */
size_t dump_helper_count(size_t n);
/* Run fn(arg) on k threads, the caller's among them; fn shares the work out itself. */
void dump_parallel(void *(*fn)(void *), void *arg, size_t k);
/* List the threads and capture each (unwinding as it goes). 0 or -errno (see cp_dump_take). */
int dump_capture_all(struct dump_run *run);
/* Capture the threads created meanwhile, once. 0 or -errno. */
int dump_capture_newcomers(struct dump_run *run);

/* dump_unwind.c */
struct cp_stack_shapes;
/* What one thread of cprof needs to unwind: its own unwinder, result and stack shapes. */
struct stack_walker {
	struct cp_unwinder *uw;		/* NULL when the maps could not be read */
	struct cp_unwind_result *ur;
	struct cp_stack_shapes *shapes;
	const struct cp_maps *maps;
};

/* maps borrowed, may be NULL. 0 or -ENOMEM. */
int stack_walker_init(struct stack_walker *wk, const struct cp_mem *mem,
		      const struct cp_maps *maps);
void stack_walker_release(struct stack_walker *wk);
/* Unwind tw's captured stack unless that is done already, and free the copy. 0 or -ENOMEM. */
int stack_walker_unwind(struct dump_run *run, struct thread_work *tw, struct stack_walker *wk);
/* Unwind and symbolize opts->extra into d->extra. 0 or -ENOMEM. */
int dump_unwind_extra(struct dump_run *run);
/* Unwind whatever the capturing threads left. 0, -ENOMEM or -EINTR. */
int dump_unwind_pending(struct dump_run *run);

/* dump_symbolize.c */
/* th's frames from tw's walk: borrowed from an earlier thread with the same stack, or new. */
int dump_symbolize_thread(struct dump_run *run, const struct thread_work *tw,
			  struct cp_dump_thread *th);
void dump_symbolize_release(struct dump_run *run);
/* The same for a stack that is not one of the dump's threads (no sharing). */
int dump_symbolize_extra(struct dump_run *run, const struct thread_work *tw,
			 struct cp_dump_thread *th);

/* dump_stuck.c */
/*
 * Read every thread's progress, wait the dump's stuck_seconds, read again (before any
 * capture: stopping a thread switches it out). 0 or -errno (-ESRCH gone, -EINTR cancelled).
 */
int dump_stuck_watch(struct dump_run *run);
/* Set each thread's stuck flag from the two readings. */
void dump_stuck_mark(struct dump_run *run);
/*
 * For waits on locks that record no owner, the waiting thread whose stack holds a reference
 * to the lock (inferred_owner_tid). 0 or -ENOMEM.
 */
int dump_infer_lock_holders(struct dump_run *run);
/* Judge the groups of threads with one stack as leaks or not (d->leaks). 0 or -ENOMEM. */
int dump_find_leaks(struct dump_run *run);

#endif
