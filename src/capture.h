/*
 * Capture of one thread: stop it only as long as it takes to copy its registers and the live
 * part of its stack, then let it go. Never leaves a thread stopped or traced, on any path.
 */
#ifndef CP_CAPTURE_H
#define CP_CAPTURE_H

#include <stdbool.h>
#include <stdint.h>

#include "maps.h"
#include "snapshot.h"

enum cp_capture_flags {
	CP_CAPTURE_STOP = 1u << 0,	/* always stop the thread (PTRACE_SEIZE + INTERRUPT) */
};

struct cp_capture_opts {
	size_t stack_max;		/* bytes of stack to copy, 0 = CP_STACK_COPY_MAX */
	unsigned int flags;		/* enum cp_capture_flags */
	/* Borrowed, may be NULL: the process's maps, to find the end of the stack mapping
	 * without reading /proc/PID/maps for every thread. Re-read when sp is not in it. */
	const struct cp_maps *maps;
};

struct cp_thread_snap {
	int tid;
	struct cp_regs regs;
	struct cp_stack stack;		/* data owned by the snapshot */
	bool stopped;			/* the thread had to be stopped to capture it */
	uint64_t stopped_ns;		/* how long it was stopped (0 if never) */
};

/*
 * Capture thread tid of process pid. Returns 0 or -errno: -ESRCH (thread gone), -EPERM
 * (ptrace refused), -EBUSY (already traced by someone else), -EAGAIN (CP_CAPTURE_STOP asked
 * for a thread in uninterruptible sleep, which cannot stop until the kernel lets it go).
 * out is written only on success.
 * Without CP_CAPTURE_STOP a thread in state D is captured without stopping it: regs then
 * hold only RSP and RIP (valid says so), from /proc/PID/task/TID/syscall, and stopped is
 * false. Every other thread is stopped.
 * Blocks SIGINT/SIGTERM/SIGHUP for the short window in which the thread is stopped, so a
 * signal to cprof is handled only after the thread runs again.
 */
int cp_capture_thread(int pid, int tid, const struct cp_capture_opts *opts,
		      struct cp_thread_snap *out);
void cp_thread_snap_release(struct cp_thread_snap *snap);

/* Read target memory with process_vm_readv; returns bytes read (may be short) or -errno. */
long cp_capture_read_mem(int pid, uint64_t addr, void *buf, size_t len);

#endif
