/*
 * CPU sampling with perf_event_open: cpu-clock on every thread of the targets, following new
 * threads (and, for record, child processes), with user registers and a copy of the user stack
 * per sample (DWARF mode) or the kernel's frame-pointer callchain (fp mode). Samples are
 * handed to a callback as they are read from the ring buffers.
 */
#ifndef CP_SAMPLER_H
#define CP_SAMPLER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "snapshot.h"

#define CP_SAMPLER_STACK_DEFAULT (32u << 10)

struct cp_sampler;

struct cp_sampler_opts {
	const int *pids;	/* borrowed */
	size_t npids;
	int hz;
	bool dwarf;		/* sample regs + user stack; else fp callchains */
	size_t stack_size;	/* bytes of user stack per sample (dwarf mode) */
	bool kernel;		/* include kernel callchains */
	bool follow_children;	/* record: inherited events follow forks */
};

struct cp_sample {
	int pid;
	int tid;
	uint64_t time;
	struct cp_regs regs;		/* dwarf mode */
	struct cp_stack stack;		/* dwarf mode; data borrowed for the callback */
	const uint64_t *callchain;	/* kernel's callchain, with PERF_CONTEXT_* markers */
	size_t ncallchain;
};

struct cp_sampler_events {
	void (*sample)(void *ctx, const struct cp_sample *s);
	void (*mmap)(void *ctx, int pid, uint64_t start, uint64_t len, uint64_t pgoff,
		     const char *path);
	void (*comm)(void *ctx, int pid, int tid, const char *name);
	void (*fork)(void *ctx, int pid, int tid, int ppid);
	void (*exit)(void *ctx, int pid, int tid);
	void (*lost)(void *ctx, uint64_t count);
};

int cp_sampler_open(const struct cp_sampler_opts *opts, struct cp_sampler **out);
/* Read whatever is in the rings, waiting up to timeout_ms for more. 0 or -errno. */
int cp_sampler_poll(struct cp_sampler *s, int timeout_ms, const struct cp_sampler_events *ev,
		    void *ctx);
void cp_sampler_free(struct cp_sampler *s);

#endif
