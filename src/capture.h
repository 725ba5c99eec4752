/*
 * Capture of one thread: stop it only as long as it takes to copy its registers and the live
 * part of its stack, then let it go. Never leaves a thread stopped or traced, on any path.
 */
#ifndef CP_CAPTURE_H
#define CP_CAPTURE_H

#include <stdbool.h>
#include <stdint.h>

#include "snapshot.h"

enum cp_capture_flags {
	CP_CAPTURE_STOP = 1u << 0,	/* always stop the thread (PTRACE_SEIZE + INTERRUPT) */
};

struct cp_capture_opts {
	size_t stack_max;		/* bytes of stack to copy, 0 = CP_STACK_COPY_MAX */
	unsigned int flags;		/* enum cp_capture_flags */
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
 * (ptrace refused), -EBUSY (already traced by someone else). out is written only on success.
 * Blocks SIGINT/SIGTERM/SIGHUP for the short window in which the thread is stopped, so a
 * signal to cprof is handled only after the thread runs again.
 */
int cp_capture_thread(int pid, int tid, const struct cp_capture_opts *opts,
		      struct cp_thread_snap *out);
void cp_thread_snap_release(struct cp_thread_snap *snap);

/* Read target memory with process_vm_readv; returns bytes read (may be short) or -errno. */
long cp_capture_read_mem(int pid, uint64_t addr, void *buf, size_t len);

#endif
