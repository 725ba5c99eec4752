/*
 * The Go runtime's own profiling records read from the outside, without injecting anything:
 * the memory-profile buckets (runtime.mbuckets, as of the last GC), the block and mutex
 * buckets (runtime.bbuckets, xbuckets) and the rates that say how they were sampled. What
 * runtime.MemProfile, BlockProfile and MutexProfile would return, read while the program runs.
 */
#ifndef CP_GO_PROF_H
#define CP_GO_PROF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "goruntime.h"
#include "mem.h"

/* Caps on what is read from the target: buckets per list, pcs per bucket. */
#define CP_GO_PROF_MAX_BUCKETS (1u << 20)
#define CP_GO_PROF_MAX_STACK 1024

enum cp_go_prof_kind {
	CP_GO_PROF_MEM,		/* runtime.mbuckets: memRecord */
	CP_GO_PROF_BLOCK,	/* runtime.bbuckets: blockRecord */
	CP_GO_PROF_MUTEX,	/* runtime.xbuckets: blockRecord */
};

/* The values of one bucket, by kind. */
enum {
	CP_GO_MEM_ALLOCS = 0,	/* objects allocated (sampled, not scaled) */
	CP_GO_MEM_ALLOC_BYTES,
	CP_GO_MEM_FREES,
	CP_GO_MEM_FREE_BYTES,
	CP_GO_BLOCK_COUNT = 0,	/* events, as BlockProfile reports them (at least 1) */
	CP_GO_BLOCK_CYCLES,	/* cputicks spent */
};

/* One bucket: a distinct stack and its counts. */
struct cp_go_bucket {
	uint64_t addr;		/* the bucket's address: the same bucket in a later read */
	size_t stk;		/* index of its first pc in cp_go_records.pcs */
	size_t nstk;
	int64_t v[4];		/* by the enum above */
};

/* One list of buckets as read, with the rates that say how it was sampled. */
struct cp_go_records {
	enum cp_go_prof_kind kind;
	struct cp_go_bucket *b;	/* owned; in list order (newest first, as the runtime has them) */
	size_t n;
	uint64_t *pcs;		/* owned; the buckets' stacks: return addresses, innermost first */
	size_t npcs;
	/*
	 * MEM: runtime.MemProfileRate (bytes; 0 = off). BLOCK: runtime.blockprofilerate
	 * (cputicks; 0 = off). MUTEX: runtime.mutexprofilerate (1 in N events; 0 = off).
	 */
	int64_t rate;
	/* MEM: runtime.disableMemoryProfiling, set by the linker when nothing reads profiles. */
	bool disabled;
	/* BLOCK, MUTEX: cputicks per second (runtime.ticks, else measured here); 0 = unknown. */
	int64_t ticks_per_sec;
	bool truncated;		/* a list longer than CP_GO_PROF_MAX_BUCKETS was cut there */
};

/*
 * Read the records of kind from the runtime of rt, through mem (borrowed, of the same
 * process). MEM values are those of the published ("active") heap profile cycle, with the
 * cycle being flushed added, and every cycle added when none is published yet, as
 * runtime.MemProfile does (without changing the target). 0, -ENOENT (a runtime global is not
 * found: why says which), -EPROTO (the records make no sense: a layout we do not know) or
 * -errno. *out is written only on success; release it with cp_go_records_release.
 */
int cp_go_records_read(struct cp_go_runtime *rt, const struct cp_mem *mem,
		       enum cp_go_prof_kind kind, struct cp_go_records *out, char *why,
		       size_t whylen);
/* Free what r holds; r is then empty. NULL is a no-op. */
void cp_go_records_release(struct cp_go_records *r);

/*
 * Make r the difference r - base, bucket by bucket (matched by address; buckets are never
 * freed by the runtime): what happened between the two reads. Buckets left with no counts
 * are dropped.
 */
void cp_go_records_subtract(struct cp_go_records *r, const struct cp_go_records *base);

/*
 * Parse one bucket of kind from buf (len bytes read at its address): its header, nstk pcs
 * and its record. 0 with *nstk, pcs (up to max) and v filled; -EAGAIN when len is too short
 * for the bucket's stack (*nstk says how long it is); -EPROTO when it is not a bucket of kind.
 * *next receives the allnext pointer.
 */
int cp_go_bucket_parse(const uint8_t *buf, size_t len, enum cp_go_prof_kind kind,
		       uint64_t *next, size_t *nstk, uint64_t *pcs, size_t max, int64_t v[4]);

/*
 * Whether pc (a return address) is in a wrapper function (funcID_wrapper: the closure of a go
 * statement with arguments, a method-value wrapper) that Go's tracebacks, and so its
 * goroutine profile, leave out.
 */
bool cp_go_pc_is_wrapper(const struct cp_go_runtime *rt, uint64_t pc);

/*
 * Cputicks per second of this machine, measured for ms milliseconds as the Go runtime does
 * (rdtsc against CLOCK_MONOTONIC); the TSC is shared by every process. 0 when unknown.
 */
int64_t cp_go_measure_ticks(int ms);

#endif
