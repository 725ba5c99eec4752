/* Internals of the profiling session shared by session.c and session_offcpu.c; not for others. */
#ifndef CP_SESSION_INTERNAL_H
#define CP_SESSION_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proc_model.h"
#include "profile.h"
#include "sampler.h"
#include "session.h"
#include "unwind.h"

/* Frames per sample: the kernel's callchain (perf_event_max_stack, 127 by default) + ours. */
#define MAX_KERNEL_FRAMES 256
#define MAX_FRAMES (MAX_KERNEL_FRAMES + CP_UNWIND_MAX_FRAMES + 1)

struct cp_ksyms;
struct cp_symbolizer;
struct cp_heap_session;

struct cp_session {
	struct cp_session_opts opts;
	int *pids;
	struct cp_sampler *sampler;
	struct cp_profile *prof;
	struct cp_symbolizer *sym;
	struct cp_procs procs;
	bool main_added;	/* the profile's mapping 1 (the main executable) exists */
	bool main_pending_exec;	/* record: take the first exec mapping after exec as main */
	/* record: the program the command exec'd last, when mapping 1 is an earlier one (a
	 * wrapper: env, taskset, nice); made the main mapping when the profile is taken. */
	uint64_t exec_main;
	struct cp_ksyms *ksyms;	/* kernel symbols, loaded at the first kernel frame */
	bool ksyms_loaded;
	uint64_t kernel_mapping;
	bool disabled;		/* events stopped counting; end_mono set */
	bool stopped;		/* and the rings drained */
	bool offcpu_closed;	/* wall, block: the threads still off CPU were charged to the end */
	uint64_t start_wall;
	uint64_t start_mono;
	uint64_t end_mono;
	struct cp_session_stats stats;
	/* wall, block: the wait kind of each stack node seen off CPU, + 1 (0 = not yet told) */
	uint8_t *node_kind;
	size_t node_kind_alloc;
	/* mutex: the last wake of each lock word (by a hash of it), and the futex tracepoints */
	struct cp_futex_wake *wakes;
	long futex_enter, futex_exit;
	/* heap, allocs: the sampler session, its last failure, and the sampler's own code
	 * [skip_lo, skip_hi), whose frames are dropped from the top of each stack */
	struct cp_heap_session *heap;
	char heap_why[256];
	uint64_t skip_lo, skip_hi;
	struct cp_unwind_result ur;	/* scratch: large, kept off the stack */
	uint64_t locs[MAX_FRAMES];
};

/*
 * The stack of sample smp into s->locs (innermost first, ending in a "[truncated]" or
 * "[unknown]" marker when it does): unwound from its registers and stack copy (dwarf), or
 * from the kernel's callchain. Returns the number of frames; *tp receives the thread (or NULL).
 */
size_t cp_session_sample_stack(struct cp_session *s, const struct cp_sample *smp, bool dwarf,
			       struct cp_thread **tp);

/* session_offcpu.c: wall, block and threadcreate sessions. */
/*
 * A sample of a wall or block session: a switch out (period 1) or a cpu-clock tick (wall); of a
 * threadcreate session: a clone call.
 */
void cp_session_offcpu_sample(struct cp_session *s, const struct cp_sample *smp);
/* A context switch record (the sampler's cswitch callback). */
void cp_session_offcpu_switch(void *ctx, int pid, int tid, uint64_t time, bool out, bool preempt);
/*
 * The threads of the targets that are blocked now, taken live (never stopped) and counted off
 * CPU from the session's start. Called once the events are open.
 */
void cp_session_offcpu_seed(struct cp_session *s);
/* Charge the threads still off CPU up to the end of the session. Idempotent. */
void cp_session_offcpu_close(struct cp_session *s);
/* The wait kind (enum cp_wait_kind) of stack node, told from its functions once per node. */
int cp_session_node_kind(struct cp_session *s, uint32_t node);

/* session_mutex.c: mutex sessions. */
/* The futex tracepoints into so and the wake table. 0 or -errno (-EOPNOTSUPP, -ENOMEM). */
int cp_session_mutex_init(struct cp_session *s, struct cp_sampler_opts *so);
/* A sys_enter_futex or sys_exit_futex sample. */
void cp_session_mutex_sample(struct cp_session *s, const struct cp_sample *smp);

/* session_heap.c: heap and allocs sessions. */
/* Start the sampler (attach) or get ready to find it (record). 0 or -errno; s->heap_why. */
/*
 * record: p (maps loaded) is the program the command became by its last exec: its executable
 * becomes the profile's mapping 1 (now, or when the profile is taken).
 */
void cp_session_exec_main(struct cp_session *s, struct cp_proc *p);

int cp_session_heap_open(struct cp_session *s);
int cp_session_heap_poll(struct cp_session *s, int timeout_ms);
void cp_session_heap_wake_on(struct cp_session *s, int fd);
/* Read what is left, then turn the sampler off. Idempotent. */
void cp_session_heap_disable(struct cp_session *s);
void cp_session_heap_stats(const struct cp_session *s, struct cp_session_stats *out);
const char *cp_session_heap_error(const struct cp_session *s);
/* The sampled allocations into s->prof, once. 0 or -errno. */
int cp_session_heap_emit(struct cp_session *s);
/* Stops the sampler if still on. NULL heap is a no-op. */
void cp_session_heap_free(struct cp_session *s);

#endif
