/*
 * A thread dump: the model, how it is taken (capture every thread, then unwind, symbolize and
 * classify the copies), and its writers (text and JSON, SPEC section 3).
 */
#ifndef CP_DUMP_H
#define CP_DUMP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "proc.h"
#include "fdinfo.h"
#include "wait.h"

struct cp_frame {
	uint64_t pc;		/* as unwound (return address for caller frames) */
	const char *function;	/* borrowed from the symbolizer; NULL = null */
	const char *file;
	int line;		/* 0 = null */
	const char *module;	/* path of the mapped file; NULL = null */
	uint64_t offset;	/* file offset of pc in module */
	bool has_offset;
	bool inlined;
};

struct cp_dump_thread {
	int tid;
	char name[CP_COMM_LEN];
	char state;
	struct cp_wait wait;
	int stuck;		/* -1 = null, 0 = false, 1 = true */
	struct cp_frame *frames;	/* owned array */
	size_t nframes;
	bool truncated;		/* depth cap or stack copy cap reached */
	int unwind_error;	/* 0, or why the stack ends early */
	char **kernel_frames;	/* owned; with --kernel */
	size_t nkernel_frames;
	bool stopped;		/* cprof stopped it to capture it */
	uint64_t stopped_ns;	/* for how long */
};

struct cp_dump_group {
	size_t count;
	int *tids;		/* owned */
	size_t first;		/* index of a representative thread */
};

struct cp_deadlock {
	int *tids;		/* owned; the cycle in order */
	size_t ntids;
	char *description;	/* owned; one sentence */
	bool leaked_owner;	/* a lock whose owner thread no longer exists */
};

struct cp_dump {
	int pid;
	char *exe;
	char **cmdline;		/* NULL-terminated */
	uint64_t time_ns;	/* wall clock at the start of the dump */
	struct cp_dump_thread *threads;
	size_t nthreads;
	struct cp_dump_group *groups;	/* NULL unless grouped */
	size_t ngroups;
	struct cp_deadlock *deadlocks;
	size_t ndeadlocks;
	struct cp_fd_counts fds;
	bool has_fds;
	int stuck_seconds;	/* 0 unless --stuck */
	bool process_exited;	/* the target exited during the dump */
	uint64_t max_stop_ns;	/* longest single-thread stop */
	uint64_t total_stop_ns;
};

enum cp_dump_flags {
	CP_DUMP_KERNEL = 1u << 0,	/* read kernel stacks */
	CP_DUMP_GROUP = 1u << 1,	/* build groups */
	CP_DUMP_STOP_ALL = 1u << 2,	/* stop every thread to capture it */
};

struct cp_dump_opts {
	unsigned int flags;		/* enum cp_dump_flags */
	int stuck_seconds;		/* 0 = off */
	size_t stack_max;		/* 0 = default */
};

struct cp_symbolizer;

/*
 * Take a dump of pid. sym is borrowed (its cache may be shared across dumps).
 * Returns 0 or -errno: -ESRCH no such process, -EPERM not allowed, -EBUSY already traced
 * (*tracer receives the tracer's pid), -EINVAL kernel thread.
 */
int cp_dump_take(int pid, const struct cp_dump_opts *opts, struct cp_symbolizer *sym,
		 struct cp_dump *out, int *tracer);
void cp_dump_release(struct cp_dump *dump);

/* Merge threads with identical stacks and wait kind (SPEC --group). */
int cp_dump_group(struct cp_dump *dump);
/* Find deadlock cycles and locks held by vanished owners. */
int cp_dump_find_deadlocks(struct cp_dump *dump);

/* Writers. color: ANSI colours (text only). 0 or -errno. */
int cp_dump_write_text(const struct cp_dump *dump, FILE *f, bool color);
int cp_dump_write_json(const struct cp_dump *dump, FILE *f);

#endif
