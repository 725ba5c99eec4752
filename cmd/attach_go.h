/* cprof attach's snapshot profiles: a Go program's runtime records, a native program's threads. */
#ifndef CP_CMD_ATTACH_GO_H
#define CP_CMD_ATTACH_GO_H

#include <signal.h>
#include <stddef.h>

#include "profiling.h"

/*
 * Take o->type from the runtime of a Go target (goroutine, heap, allocs, block, mutex:
 * --seconds 0 at once, else the difference over the window; goroutine always at once) or,
 * for goroutine on a native one, its threads by stack; write it and say so. The exit code,
 * or -1 when the profile is to be sampled as usual (not such a type, --native, a native
 * target's block or mutex profile).
 */
int cp_attach_snapshot(const struct cp_prof_options *o, const int *pids, size_t npids,
		       const volatile sig_atomic_t *stop_count);

#endif
