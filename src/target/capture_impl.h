/*
 * Private to src/target's capture: one request passed along a table of capture backends
 * (live, sample, stop), and the helpers they share. cp_capture_thread (capture.c) is the
 * chooser: it tries, in order, each backend that applies, until one returns anything but
 * -EAGAIN.
 */
#ifndef CP_CAPTURE_IMPL_H
#define CP_CAPTURE_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "capture.h"
#include "mem.h"

/* What the live capture takes from status (or stat: no count). */
struct cp_live_status {
	uint64_t count;			/* voluntary + nonvoluntary context switches */
	bool has_count;
	int tracer;			/* who traces the thread (status only), 0 if none */
	char state;
	char comm[CP_COMM_LEN];
};

/* One cp_capture_thread call, as the backends see it. */
struct cp_capture_req {
	int pid;
	int tid;
	unsigned int flags;		/* enum cp_capture_flags */
	bool live;			/* CP_CAPTURE_LIVE without CP_CAPTURE_STOP */
	size_t max;			/* bytes of stack to copy */
	const struct cp_maps *given;	/* the caller's maps, may be NULL */
	struct cp_maps *own;		/* read when given is NULL or misses the stack */
	const struct cp_mem *mem;	/* the target's memory */
	struct cp_task_stat st;		/* the caller's stat, or what was read; zero when neither */
	/*
	 * The live backend's first look at the thread, before anything touched it: later
	 * backends report it (snap.sc, snap.state, snap.comm) when have_first.
	 */
	bool have_first;
	struct cp_task_syscall sc_first;
	struct cp_live_status first;
};

/*
 * A way to capture a thread. capture returns 0 with out filled, -EAGAIN to leave the thread
 * to the next backend, or another -errno: the result of cp_capture_thread.
 */
struct cp_capture_backend {
	const char *name;
	bool (*applies)(const struct cp_capture_req *req);
	int (*capture)(struct cp_capture_req *req, struct cp_thread_snap *out);
};

/* A thread in uninterruptible sleep, copied without stopping it (capture_live.c). */
extern const struct cp_capture_backend cp_capture_backend_blocked;
/* A thread off CPU, copied while it sleeps and verified not to have run (capture_live.c). */
extern const struct cp_capture_backend cp_capture_backend_live;
/* A thread on a CPU, from one perf sample (capture_sample.c). */
extern const struct cp_capture_backend cp_capture_backend_sample;
/* Any thread, stopped with PTRACE_SEIZE + PTRACE_INTERRUPT (capture_stop.c). */
extern const struct cp_capture_backend cp_capture_backend_stop;

/*
 * The mapping that holds sp. The caller's maps may predate the thread (its stack mapped
 * since); then read them again into own (once).
 */
const struct cp_map *cp_capture_stack_map(int pid, const struct cp_maps *given,
					  struct cp_maps *own, uint64_t sp);
/* Bytes to copy from sp: to the end of its mapping m (NULL: 0), at most max. */
size_t cp_capture_stack_span(const struct cp_map *m, uint64_t sp, size_t max, bool *truncated);
/* Hand buf, of which got bytes were read, to stack, shrunk to fit; buf is taken. */
void cp_capture_stack_finish(struct cp_stack *stack, uint8_t *buf, long got);
/* The registers /proc/PID/task/TID/syscall shows (see capture_live.c). */
void cp_capture_regs_from_syscall(const struct cp_task_syscall *sc, struct cp_regs *r);

/* The /proc files a live look reads, open. */
struct cp_live_files {
	int sc_fd;		/* .../syscall */
	int status_fd;		/* .../status, or .../stat when stat_only */
	bool stat_only;
};

/*
 * Open tid's syscall and status (stat_only: stat) files, relative to taskfd (/proc/PID/task,
 * -1 for none: a path from the start, two lookups more). 0 or -errno.
 */
int cp_live_open(int taskfd, int pid, int tid, bool stat_only, struct cp_live_files *lf);
void cp_live_close(struct cp_live_files *lf);
/* Read status (or stat) into ls; ls->tracer names another process that traces the thread. */
int cp_live_read_status(const struct cp_live_files *lf, struct cp_live_status *ls);
/* Read the syscall line into text (kept for comparison) and sc. */
int cp_live_read_syscall(const struct cp_live_files *lf, char *text, size_t size,
			 struct cp_task_syscall *sc);

#endif
