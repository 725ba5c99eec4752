/*
 * CPU sampling with perf_event_open: cpu-clock on every thread of the targets, following new
 * threads (and, for record, child processes), with user registers and a copy of the user stack
 * per sample (DWARF mode) or the kernel's frame-pointer callchain (fp mode). Records are
 * handed to callbacks as they are read from the ring buffers, in time order across CPUs.
 *
 * How events are laid out (the choice the kernel leaves us): one cpu-clock event per thread
 * per allowed CPU, with inherit=1 so that threads (and processes) the thread creates later are
 * followed by the kernel itself. The kernel refuses to mmap an inherited event opened with
 * cpu = -1, hence one event per CPU; every event of a CPU writes into that CPU's ring
 * (PERF_EVENT_IOC_SET_OUTPUT), so the number of rings is the number of CPUs, not of threads.
 * Threads created between the listing of /proc/PID/task and the opening of their creator's
 * events are caught by re-scanning the task list until it is stable; a thread found by the
 * re-scan that also inherited an event (its FORK record says so) has its extra events closed
 * when the record is read, so its samples are not counted twice.
 */
#ifndef CP_SAMPLER_H
#define CP_SAMPLER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "snapshot.h"

/*
 * Bytes of user stack copied per sample in DWARF mode, perf's own default. 8 KiB holds 20-80
 * frames of ordinary code (a frame is typically 50-500 bytes); deeper stacks end in
 * [truncated] and need --stack-size. The copy runs in the sampled thread's interrupt and goes
 * on past the top of the stack until it meets a page that is not present: on a shallow thread
 * stack a 16 or 32 KiB copy reaches one (glibc puts its thread stacks just below other
 * mappings), and the failed access costs the target a fault per sample; up to 12 KiB cost
 * what registers alone cost.
 */
#define CP_SAMPLER_STACK_DEFAULT (8u << 10)
#define CP_SAMPLER_STACK_MIN 512u
#define CP_SAMPLER_STACK_MAX 65000u
#define CP_SAMPLER_HZ_MAX 10000

struct cp_sampler;

struct cp_sampler_opts {
	const int *pids;	/* borrowed; processes to sample */
	size_t npids;
	int hz;
	bool dwarf;		/* sample regs + user stack; else fp callchains */
	size_t stack_size;	/* bytes of user stack per sample (dwarf mode); 0 = default */
	bool kernel;		/* kernel callchains (user-only when refused) */
	bool follow_children;	/* keep samples of processes the targets fork (record) */
	bool enable_on_exec;	/* start counting when the (single) target execs (record) */
	/*
	 * Also a sample (period 1, user stack) at every context switch out of a target thread,
	 * and the switch records (the cswitch callback); times are then CLOCK_MONOTONIC.
	 */
	bool switches;
	bool no_cpu_clock;	/* with switches: no cpu-clock event (only the switches) */
	/*
	 * Instead of cpu-clock: a sample (period 1, user stack) at every hit of these tracepoints
	 * (ids from cp_tracefs_event_id) in a target thread.
	 */
	long tracepoints[2];
	size_t ntracepoints;
	bool raw;		/* with tracepoints: their fields too (cp_sample.raw) */
};

struct cp_sample {
	int pid;
	int tid;
	int cpu;
	uint64_t time;
	uint64_t ip;
	uint64_t period;		/* 1: a context switch out; else cpu-clock ns */
	bool user_regs;			/* regs and stack valid (dwarf mode, user context) */
	struct cp_regs regs;		/* dwarf mode, DWARF numbering */
	struct cp_stack stack;		/* dwarf mode; data borrowed for the callback */
	const uint64_t *callchain;	/* kernel's callchain, with PERF_CONTEXT_* markers */
	size_t ncallchain;
	const uint8_t *raw;		/* a tracepoint's record (its format file); borrowed */
	size_t raw_size;
};

struct cp_sampler_mmap {
	int pid;
	int tid;
	uint64_t start;
	uint64_t len;
	uint64_t pgoff;
	uint64_t inode;
	unsigned int dev_major;
	unsigned int dev_minor;
	unsigned int prot;	/* PROT_* */
	unsigned int flags;	/* MAP_* */
	const char *path;	/* borrowed for the callback */
};

/* Callbacks may be NULL. Pointers passed to them are valid only during the call. */
struct cp_sampler_events {
	void (*sample)(void *ctx, const struct cp_sample *s);
	void (*mmap)(void *ctx, const struct cp_sampler_mmap *m);
	void (*comm)(void *ctx, int pid, int tid, const char *name, bool exec);
	void (*fork)(void *ctx, int pid, int tid, int ppid, int ptid);
	void (*exit)(void *ctx, int pid, int tid);
	void (*lost)(void *ctx, uint64_t count);
	/* A context switch of thread tid at time: out (preempt: it was still runnable) or in. */
	void (*cswitch)(void *ctx, int pid, int tid, uint64_t time, bool out, bool preempt);
};

struct cp_sampler_stats {
	uint64_t samples;	/* sample records read */
	uint64_t lost;		/* samples the kernel dropped (ring full) */
	uint64_t dropped;	/* samples of processes that are not followed */
	size_t events;		/* perf events open */
	size_t rings;		/* ring buffers (one per CPU) */
	size_t ring_bytes;	/* data bytes per ring */
	bool kernel_refused;	/* kernel sampling was refused; user-only */
};

/*
 * Open the events. Returns 0 or -errno: -ESRCH (every target gone), -EACCES/-EPERM (perf
 * events refused even user-only: perf_event_paranoid or a security policy), -ENOENT /
 * -EOPNOTSUPP (no cpu-clock event), -EMFILE (too many threads x CPUs for the fd limit).
 * *out is written only on success.
 */
int cp_sampler_open(const struct cp_sampler_opts *opts, struct cp_sampler **out);
/*
 * Read whatever is in the rings, waiting up to timeout_ms (0 = don't wait, < 0 = forever) for
 * data. Returns 0 when the rings are drained, 1 when it stopped after its time budget (a
 * quarter second of processing) with records left, or -errno; a signal interrupting the wait
 * is not an error.
 */
int cp_sampler_poll(struct cp_sampler *s, int timeout_ms, const struct cp_sampler_events *ev,
		    void *ctx);
/*
 * Also end cp_sampler_poll()'s wait when fd becomes readable (a pidfd: the command exited),
 * so the caller can wait long between reads. fd is borrowed; -1 removes it.
 */
void cp_sampler_set_wake_fd(struct cp_sampler *s, int fd);
/* Stop counting (the rings keep what they hold; poll with timeout 0 to drain). */
void cp_sampler_disable(struct cp_sampler *s);
void cp_sampler_get_stats(const struct cp_sampler *s, struct cp_sampler_stats *out);
void cp_sampler_free(struct cp_sampler *s);

#endif
