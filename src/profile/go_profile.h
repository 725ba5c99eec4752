/*
 * Profiles of a Go program made from its runtime's own records, without injecting anything
 * and without sampling: its goroutines by stack (goroutine/count), the memory-profile buckets
 * as of the last GC (heap, allocs: Go's four sample types, scaled as Go scales them, label
 * bytes) and the block and mutex buckets (contentions/count, delay/nanoseconds) — what the
 * program's own /debug/pprof/goroutine?debug=0, heap, allocs, block and mutex would return.
 */
#ifndef CP_GO_PROFILE_H
#define CP_GO_PROFILE_H

#include <stdbool.h>
#include <stddef.h>

#include "profile.h"

struct cp_symbolizer;
struct cp_go_profiler;

enum cp_go_profile_type {
	CP_GO_PROFILE_GOROUTINE,
	CP_GO_PROFILE_HEAP,	/* default sample type inuse_space */
	CP_GO_PROFILE_ALLOCS,	/* the same, default alloc_space */
	CP_GO_PROFILE_BLOCK,
	CP_GO_PROFILE_MUTEX,
};

/* The type named name ("goroutine", "heap", "allocs", "block", "mutex"). 0 or -EINVAL. */
int cp_go_profile_type_parse(const char *name, enum cp_go_profile_type *out);

/*
 * Open the Go runtime of pid for profiles. sym is borrowed (used by one thread at a time) and
 * may be NULL (one of its own is made). 0, -ENOENT (not a Go program), -ENOTSUP (a Go whose
 * runtime cannot be read: why says which) or -errno. *out is written only on success.
 */
int cp_go_profiler_open(int pid, struct cp_symbolizer *sym, struct cp_go_profiler **out,
			char *why, size_t whylen);
/* NULL is a no-op. */
void cp_go_profiler_free(struct cp_go_profiler *gp);
/* The program's Go version ("go1.19.8"). */
const char *cp_go_profiler_version(const struct cp_go_profiler *gp);

/*
 * Begin a window for type (heap, allocs, block, mutex): the records read now are subtracted
 * from those of the next cp_go_profiler_take of that type, which then holds what happened in
 * between, as Go's ?seconds=N does. 0 or -errno as cp_go_profiler_take.
 */
int cp_go_profiler_begin(struct cp_go_profiler *gp, enum cp_go_profile_type type, char *why,
			 size_t whylen);
/*
 * The profile of type read now (since cp_go_profiler_begin when called). 0, or 1 when why
 * holds a note for the user (a rate of 0 that left old records, records cut at a cap), or
 * -errno: -ENOTSUP when the program does not record that profile (memory profiling disabled
 * by the linker, MemProfileRate 0, block or mutex profile never enabled): why says so and how
 * to enable it; -ENOENT when a runtime global is not found (why names it). *out is written
 * only on success; the caller frees it.
 */
int cp_go_profiler_take(struct cp_go_profiler *gp, enum cp_go_profile_type type,
			struct cp_profile **out, char *why, size_t whylen);

/* The goroutines counted by wait reason (its status, "running", "runnable", when none). */
struct cp_go_state_count {
	const char *state;		/* borrowed from the profiler: lives as long as it */
	size_t n;
};

/*
 * Count the program's goroutines as runtime.NumGoroutine does (system goroutines left out)
 * into *total, and by wait reason into *out (malloc'd, *n entries). Nothing is unwound. 0 or
 * -errno.
 */
int cp_go_profiler_states(struct cp_go_profiler *gp, struct cp_go_state_count **out, size_t *n,
			  size_t *total);

/* Goroutines read by the last goroutine profile: all, and those Go's own profile counts. */
void cp_go_profiler_goroutine_counts(const struct cp_go_profiler *gp, size_t *all,
				     size_t *user);

#endif
