/*
 * A profiling session: perf samples from the sampler, unwound (DWARF) or taken from the
 * kernel's callchains (fp), symbolized once per distinct (pid, address), and aggregated into a
 * profile model as they arrive. Keeps each process's module map current from MMAP2 records
 * (dlopen during profiling), thread names from COMM records, and new processes from FORK.
 * Wall and block sessions also take a sample at every context switch out of a target thread
 * and time the thread off CPU from the switch records (session_offcpu.c). Heap and allocs
 * sessions read the allocation sampler's ring instead of perf's (session_heap.c).
 */
#ifndef CP_SESSION_H
#define CP_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "profile.h"

struct cp_session;

/* What a session profiles (docs/FORMATS.md, "Profile types"). */
enum cp_session_type {
	CP_SESSION_CPU = 0,	/* cpu-clock samples of the threads on CPU */
	CP_SESSION_WALL,	/* every thread at hz, on CPU or not; label state */
	CP_SESSION_BLOCK,	/* time off CPU, not preempted, at the blocking stack; label wait */
	CP_SESSION_THREADCREATE, /* the stacks that called clone/clone3 (syscall tracepoints) */
	CP_SESSION_MUTEX,	/* futex lock waits, charged to the releaser's stack; label waiter */
	/*
	 * Sampled allocations (libcprof-agent.so in the target, loaded through src/inject, or
	 * preloaded by record: enable_on_exec); one process. HEAP's default sample type is
	 * inuse_space, ALLOCS' alloc_space.
	 */
	CP_SESSION_HEAP,
	CP_SESSION_ALLOCS,
	/*
	 * Not sampled by a session: a program's goroutines by stack (a Go program's from its
	 * runtime, go_profile.h; a native one's threads). cp_session_new refuses it.
	 */
	CP_SESSION_GOROUTINE,
};

struct cp_session_opts {
	enum cp_session_type type;
	bool waiters;		/* mutex: charge the waits to the waiters' own stacks instead */
	const int *pids;	/* borrowed; pids[0]'s executable is the profile's mapping 1 */
	size_t npids;
	int hz;
	bool dwarf;		/* --unwind dwarf (default) or fp */
	size_t stack_size;	/* bytes of user stack per sample; 0 = CP_SAMPLER_STACK_DEFAULT */
	bool kernel;		/* try kernel frames (falls back to user-only when refused) */
	bool follow_children;	/* record: processes the target forks are profiled too */
	bool enable_on_exec;	/* record: pids[0] has not exec'd yet; count from its exec */
	/* heap, allocs: */
	uint64_t rate;		/* mean bytes between samples; 0 = 524288 (Go's MemProfileRate) */
	const char *agent_path;	/* the agent library; NULL = cp_heap_agent_path() */
	int inject_timeout_ms;	/* how long to wait for a safe thread; 0 = inject's default */
	bool has_agent_sock;	/* record: the preloaded sampler hands its region over agent_sock */
	int agent_sock;		/* record's end of the handover socketpair (borrowed) */
	char *why;		/* when cp_session_new fails: a one-line reason, or ""; may be NULL */
	size_t whylen;
};

struct cp_session_stats {
	uint64_t samples;	/* samples added to the profile */
	uint64_t lost;		/* samples the kernel dropped */
	uint64_t unknown;	/* stacks that end in [unknown] (unwinding failed) */
	uint64_t truncated;	/* stacks that end in [truncated] (depth or stack copy cap) */
	size_t threads;		/* distinct threads with samples */
	size_t processes;	/* distinct processes with samples */
	size_t locations;	/* distinct (pid, address) symbolized */
	bool kernel_refused;	/* kernel sampling was refused: user frames only */
	size_t events;		/* perf events open (threads x CPUs) */
	size_t rings;		/* ring buffers (one per CPU) */
	size_t ring_bytes;	/* bytes per ring */
	uint64_t cpu_ns;	/* cprof's own CPU time spent reading and processing samples */
	uint64_t unmatched;	/* mutex: woken lock waits left out, their wake not seen */
	/* heap, allocs (lost: records the sampler dropped, its ring full) */
	uint64_t heap_frees;	/* frees of sampled blocks seen */
	uint64_t heap_untracked; /* sampled blocks counted in use to the end (table full) */
	size_t heap_live;	/* sampled blocks in use now */
	bool heap_connected;	/* the sampler's ring is being read (record: once it started) */
	uint64_t heap_patched;	/* GOT entries the sampler redirected (at the last look) */
	uint64_t heap_modules;	/* modules whose GOT it patched */
	uint64_t heap_skipped;	/* modules it left alone (their GOT held another malloc) */
	bool heap_fast_paths;	/* malloc and free run the generated fast paths */
};

/*
 * Open the perf events and start sampling. 0 or -errno as cp_sampler_open (-ESRCH, -EACCES,
 * -EPERM, -ENOENT, -EMFILE, -ENOMEM); threadcreate, mutex: -EOPNOTSUPP when the kernel has
 * no syscalls:sys_enter_clone3/clone or sys_enter/exit_futex tracepoints (or tracefs cannot be
 * mounted). *out is written only on success.
 */
int cp_session_new(const struct cp_session_opts *opts, struct cp_session **out);
/*
 * Read and aggregate the samples that are ready, waiting up to timeout_ms: 0, 1 when some
 * were left for the next call (to keep the caller responsive), or -errno (heap: -EBADMSG,
 * the sampler's ring is malformed, or the preloaded sampler failed; cp_session_error says).
 */
int cp_session_poll(struct cp_session *s, int timeout_ms);
/*
 * Also end cp_session_poll()'s wait when fd becomes readable (a pidfd of the command), so that
 * the caller may wait long between reads (every wakeup costs CPU; the rings wake the reader
 * when half full). fd is borrowed; -1 removes it.
 */
void cp_session_wake_on(struct cp_session *s, int fd);
/*
 * Stop sampling; what the rings hold can still be read with cp_session_poll(s, 0) until it
 * returns 0. Idempotent.
 */
void cp_session_disable(struct cp_session *s);
/* Stop sampling and aggregate what the rings still hold. Idempotent. */
void cp_session_stop(struct cp_session *s);
/* Why the last failed cp_session_poll failed, in one line, or NULL. */
const char *cp_session_error(const struct cp_session *s);
void cp_session_get_stats(const struct cp_session *s, struct cp_session_stats *out);
/*
 * CLOCK_MONOTONIC ns when the events started counting: the profile's duration runs from
 * here, so a --seconds countdown must too (setup after that is already sampled time).
 */
uint64_t cp_session_start_ns(const struct cp_session *s);
/* The events start counting now (record: the command has exec'd). */
void cp_session_mark_start(struct cp_session *s);
/*
 * The profile (owned by the session), with its metadata (time, duration, period, lost) set
 * and its main mapping settled: call it once the sampling is over.
 */
struct cp_profile *cp_session_profile(struct cp_session *s);
void cp_session_free(struct cp_session *s);

#endif
