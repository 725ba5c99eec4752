/*
 * What a process leaves behind when it exits (record --leaks; docs/FORMATS.md "CI"): the
 * threads other than the exiting one still alive, with their stacks, wait kinds and the
 * stacks that created them, and the fds open now that were not open when it started.
 */
#ifndef CP_EXIT_LEAKS_H
#define CP_EXIT_LEAKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "dump.h"
#include "tracer.h"

/* A leaked fd and what it is. */
struct cp_exit_fd {
	int fd;
	char *object;		/* owned; the /proc/PID/fd link */
	char *detail;		/* owned, may be NULL: peer, pipe's other end, path details */
};

/* A leaked thread: index into dump.threads, and the stack that created it. */
struct cp_exit_thread {
	size_t index;
	int creator;			/* tid of the creating thread; 0 unknown */
	const struct cp_dump_thread *created;	/* into dump.extra; NULL unknown */
};

struct cp_exit_leaks {
	int pid;
	int tid;			/* the thread that called exit_group */
	int code;			/* its exit code */
	struct cp_dump dump;		/* the whole process at its exit_group */
	bool has_dump;
	struct cp_exit_thread *threads;	/* owned */
	size_t nthreads;
	struct cp_exit_fd *fds;		/* owned */
	size_t nfds;
	bool fds_known;			/* false: its fds at start were not seen */
	bool go_runtime;		/* a Go program: its runtime's threads are not counted */
};

/*
 * Look at process pid, whose thread tid is stopped by tr entering exit_group(code): dump it
 * (sym borrowed, as cp_dump_take), keep the threads other than tid and the fds not open at
 * its start. 0 or -errno; out is releasable on every path.
 */
int cp_exit_leaks_take(int pid, int tid, int code, const struct cp_tracer *tr,
		       struct cp_symbolizer *sym, struct cp_exit_leaks *out);
void cp_exit_leaks_release(struct cp_exit_leaks *l);
static inline bool cp_exit_leaks_any(const struct cp_exit_leaks *l)
{
	return l->nthreads || l->nfds;
}

/* The text report of l (nothing when it leaked nothing). 0 or -errno. */
int cp_exit_leaks_write_text(const struct cp_exit_leaks *l, FILE *f);
/* l as one JSON object (docs/FORMATS.md), without a final newline. 0 or -errno. */
int cp_exit_leaks_write_json(const struct cp_exit_leaks *l, FILE *f);

#endif
