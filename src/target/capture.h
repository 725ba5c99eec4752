/*
 * Capture of one thread: stop it only as long as it takes to copy its registers and the live
 * part of its stack, then let it go. Never leaves a thread stopped or traced, on any path.
 */
#ifndef CP_CAPTURE_H
#define CP_CAPTURE_H

#include <stdbool.h>
#include <stdint.h>

#include "maps.h"
#include "mem.h"
#include "proc.h"
#include "snapshot.h"
#include "switch_watch.h"

enum cp_capture_flags {
	CP_CAPTURE_STOP = 1u << 0,	/* always stop the thread (PTRACE_SEIZE + INTERRUPT) */
	/*
	 * Capture a thread that is off CPU without stopping it (see cp_capture_thread); stop
	 * only threads that are running. Ignored with CP_CAPTURE_STOP.
	 */
	CP_CAPTURE_LIVE = 1u << 1,
	/*
	 * With CP_CAPTURE_LIVE: a thread another process traces (gdb, strace) is captured too
	 * when it does not run (off CPU, or in that tracer's stop) or from a perf sample; it is
	 * never stopped (ptrace allows one tracer): -EBUSY when nothing else takes it.
	 */
	CP_CAPTURE_TRACED = 1u << 2,
	/*
	 * With CP_CAPTURE_LIVE: a stopped thread (SIGSTOP, job control) is copied in place too,
	 * from the sp and pc /proc gives (it cannot run meanwhile), instead of being left to a
	 * stop: a profile's off-CPU threads never need one.
	 */
	CP_CAPTURE_STOPPED = 1u << 3,
};

struct cp_capture_opts {
	size_t stack_max;		/* bytes of stack to copy, 0 = CP_STACK_COPY_MAX */
	unsigned int flags;		/* enum cp_capture_flags */
	/* Borrowed, may be NULL: the process's maps, to find the end of the stack mapping
	 * without reading /proc/PID/maps for every thread. Re-read when sp is not in it. */
	const struct cp_maps *maps;
	/*
	 * Borrowed, may be NULL: the thread's stat, just read by the caller (saves a read). A
	 * live capture without it takes the state and name from the status file it reads anyway
	 * (snap.state, snap.comm).
	 */
	const struct cp_task_stat *stat;
	/*
	 * Borrowed, may be NULL: context-switch records of every CPU. cp_capture_live_many then
	 * takes a thread that no record names since before its first look as not having run,
	 * without reading its status a second time.
	 */
	const struct cp_switch_watch *switches;
	/*
	 * Borrowed, may be NULL: the target's memory, open for the dump (a faster read than
	 * process_vm_readv by pid, which is used without it).
	 */
	const struct cp_mem *mem;
};

struct cp_thread_snap {
	int tid;
	struct cp_regs regs;
	struct cp_stack stack;		/* data owned by the snapshot */
	bool stopped;			/* the thread had to be stopped to capture it */
	bool sampled;			/* taken from a perf sample while it ran */
	uint64_t stopped_ns;		/* how long it was stopped (0 if never) */
	/*
	 * /proc/PID/task/TID/syscall as read before the capture (before any stop, which would
	 * change it); has_syscall is false when it was not read or unreadable.
	 */
	struct cp_task_syscall sc;
	bool has_syscall;
	/* Captured live: regs hold only what /proc shows (see above). verified: the thread
	 * provably did not run while its stack was copied (a D-state copy that kept changing
	 * is not). */
	bool live;
	bool verified;
	/* State letter and name as the capture saw them first (has_state), before any stop. */
	bool has_state;
	char state;
	char comm[CP_COMM_LEN];
	int tracer;			/* another process that traced it at the first look, or 0 */
};

/*
 * Capture thread tid of process pid. Returns 0 or -errno: -ESRCH (thread gone), -EPERM
 * (ptrace refused), -EBUSY (traced by someone else, see CP_CAPTURE_TRACED), -EAGAIN
 * (CP_CAPTURE_STOP asked for a thread in uninterruptible sleep, which cannot stop until the
 * kernel lets it go).
 * out is written only on success. The thread is taken by the first of these that applies:
 * - blocked: without CP_CAPTURE_LIVE or CP_CAPTURE_STOP, a thread in state D is captured
 *   without stopping it: regs then hold only RSP and RIP, and in a system call its argument
 *   registers (RDI RSI RDX R10 R8 R9), from /proc/PID/task/TID/syscall (valid says which).
 * - live: with CP_CAPTURE_LIVE, a thread that is off CPU (blocked in a system call, or
 *   preempted) is captured the same way, its stack copied while it sleeps and the copy kept
 *   only if the thread provably did not run meanwhile (its schedule count and /proc syscall
 *   line unchanged), or if it keeps waking up during the copy and sits in a call that a stop
 *   would fail with EINTR (cp_capture_syscall_may_eintr), or in state D.
 * - sample: with CP_CAPTURE_LIVE, a thread on a CPU, from one perf sample
 *   (cp_capture_by_sample): all registers, and it never stops.
 * - stop: every other thread is stopped (PTRACE_SEIZE + PTRACE_INTERRUPT) and let go at once.
 *   SIGINT/SIGTERM/SIGHUP/SIGQUIT are blocked for the short window in which it is stopped, so
 *   a signal to cprof is handled only after the thread runs again.
 */
int cp_capture_thread(int pid, int tid, const struct cp_capture_opts *opts,
		      struct cp_thread_snap *out);
void cp_thread_snap_release(struct cp_thread_snap *snap);

/*
 * Capture up to CP_CAPTURE_MANY_MAX threads of pid live, as CP_CAPTURE_LIVE does, in one
 * sweep (cheaper than one by one: one process_vm_readv for all the stacks). For each i,
 * ret[i] is 0 with out[i] filled (verified), -EAGAIN when the thread needs cp_capture_thread
 * (running, woke up during the copy, traced, no stack found), or -errno (-ESRCH: gone). No
 * thread is ever stopped. Returns 0, or -errno for the whole sweep (-EINVAL; the maps of
 * pid unreadable when opts gives none: -ESRCH when it is gone).
 */
#define CP_CAPTURE_MANY_MAX 64
int cp_capture_live_many(int pid, const int *tids, size_t n, const struct cp_capture_opts *opts,
			 struct cp_thread_snap *out, int *ret);

/*
 * Would a ptrace stop make system call nr fail with EINTR in the target instead of restarting
 * it transparently? (epoll_wait, rt_sigtimedwait, and socket calls under SO_RCVTIMEO or
 * SO_SNDTIMEO; read/write and friends count, as the fd may be such a socket.)
 */
bool cp_capture_syscall_may_eintr(long nr);

/*
 * Capture thread tid while it runs, from one perf sample (a task-clock event on that thread):
 * all user registers and up to min(stack_max, 60 KiB) of stack from sp, taken in the timer
 * interrupt; the thread is never stopped. 0 with out filled (stopped false, verified true),
 * -EAGAIN when no sample came within timeout_ms (the thread blocked, or is stopped),
 * -EOPNOTSUPP when perf events are not available, -ESRCH, -ENOMEM.
 */
int cp_capture_by_sample(int tid, size_t stack_max, int timeout_ms, struct cp_thread_snap *out);

struct user_regs_struct;
/* A ptrace register set in cp_regs form (DWARF numbering), every register valid. */
void cp_capture_regs_from_user(const struct user_regs_struct *u, struct cp_regs *r);

#endif
