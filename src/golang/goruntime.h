/*
 * A Go program's runtime read from the outside, through its memory, without stopping it for
 * long: the Go version, the runtime's globals (from DWARF or .symtab when present; in a
 * stripped binary from .gopclntab and the runtime's own code), the layout of g and m (from
 * DWARF; without it, a table per supported Go version), every goroutine with its status, wait
 * reason, thread and stack, and the runtime's profiling records.
 */
#ifndef CP_GORUNTIME_H
#define CP_GORUNTIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "maps.h"
#include "mem.h"

struct cp_go_runtime;

/*
 * Open the Go runtime of process pid. maps and mem are borrowed and must outlive it. 0,
 * -ENOENT (not a Go program), -ENOTSUP (a Go version whose layout we cannot learn: why says
 * which) or -errno.
 */
int cp_go_open(int pid, const struct cp_maps *maps, const struct cp_mem *mem,
	       struct cp_go_runtime **out, char *why, size_t whylen);
void cp_go_close(struct cp_go_runtime *rt);

/*
 * Whether pid runs a Go program, and its version ("go1.24.3", "unknown" when unreadable)
 * into version: for saying which Go a program whose runtime cp_go_open cannot read runs.
 * 0 or -ENOENT (not a Go program).
 */
int cp_go_probe(int pid, const struct cp_maps *maps, char *version, size_t len);

/* "go1.19.8": from .go.buildinfo (or runtime.buildVersion). */
const char *cp_go_version(const struct cp_go_runtime *rt);

/* The target address of runtime global name ("runtime.allgs", "runtime.mbuckets"). 0/-ENOENT. */
int cp_go_global(const struct cp_go_runtime *rt, const char *name, uint64_t *addr);

/* One goroutine as read; strings live as long as the runtime handle. */
struct cp_goroutine {
	int64_t id;
	uint64_t addr;			/* the g's own address (what a pollDesc's rg holds) */
	uint32_t status;		/* _Gidle.._Gpreempted, the _Gscan bit cleared */
	const char *status_str;		/* the target's gStatusStrings ("waiting", "runnable") */
	const char *wait_reason;	/* the target's waitReasonStrings; "" when none */
	int64_t wait_since_ns;		/* runtime nanotime (CLOCK_MONOTONIC) it began; 0 = unknown */
	bool locked_to_thread;		/* lockedm set */
	int tid;			/* the OS thread running it or in a syscall with it; 0 = none */
	bool system;			/* a runtime goroutine Go's own dump hides (isSystemGoroutine) */
	/* Where its stack is unwound from: sched for parked goroutines, the syscall sp/pc
	 * for ones in a system call; 0 for running ones (their thread's stack holds them). */
	uint64_t pc, sp, bp;
	uint64_t stack_lo, stack_hi;
	uint64_t gopc;			/* pc of the go statement that created it */
	int64_t parent_id;		/* goroutine that created it (Go 1.21+); 0 = unknown */
	uint64_t waiting_chan;		/* the channel it waits on (from its sudog), 0 = none */
	bool torn;			/* it moved while read, twice: the stack may be wrong */
};

/*
 * Every goroutine (the first million of allgs at most), read consistently (a goroutine whose
 * status or sched changed while read is read again). *out is malloc'ed (free it). 0 or
 * -errno.
 */
int cp_go_goroutines(struct cp_go_runtime *rt, struct cp_goroutine **out, size_t *n);

/*
 * Unwind goroutine g's stack from its saved context with the frame sizes of .gopclntab (pcsp),
 * innermost first, return addresses raw: how many pcs were written (at most max).
 */
size_t cp_go_unwind(struct cp_go_runtime *rt, const struct cp_goroutine *g, uint64_t *pcs,
		    size_t max);

/* One frame as Go's traceback prints it. */
struct cp_go_frame {
	uint64_t pc;			/* as unwound (return address for callers) */
	const char *function;		/* borrowed from the binary's .gopclntab */
	const char *file;		/* NULL when unknown */
	int line;			/* 0 when unknown */
	uint64_t entry_off;		/* pc - function entry (Go's "+0x"); 0 for inlined frames */
	bool inlined;			/* inlined into the next frame */
	/*
	 * The pc this frame's file:line is for, as runtime.CallersFrames gives Frame.PC: pc - 1
	 * for a return address, and for the caller of an inlined call the call site; Go's
	 * goroutine profile records it + 1 (what debug=1 prints after "@").
	 */
	uint64_t frame_pc;
	uint64_t frame_off;		/* frame_pc - its physical function's entry */
};

/*
 * The frames of pcs (innermost first; callers' pcs are return addresses, the first is exact
 * when first_exact) named from .gopclntab with their inlined calls, as Go's traceback names
 * them (file:line of pc - 1 for return addresses). Unless all, the frames Go's own dump
 * hides (unexported runtime functions, wrappers) are left out. Each pc is looked up once
 * per runtime handle. Returns how many were written.
 */
size_t cp_go_frames(struct cp_go_runtime *rt, const uint64_t *pcs, size_t npcs,
		    bool first_exact, bool all, struct cp_go_frame *out, size_t max);

/* The go statement that created g, as Go's "created by" line; false when Go shows none. */
bool cp_go_created_by(struct cp_go_runtime *rt, const struct cp_goroutine *g,
		      struct cp_go_frame *out);

#endif
