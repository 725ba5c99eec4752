/*
 * Whether a group of threads with one stack and wait kind looks like a leak. Thread pools
 * share a stack too, so size alone is no evidence: the threads must have been created over a
 * long span, not in one burst, or the group must have grown while cprof watched (--stuck).
 */
#ifndef CP_LEAK_H
#define CP_LEAK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A group smaller than this is never called a leak (redis' 3 bio threads, Node's 4 workers). */
#define CP_LEAK_MIN_THREADS 10
/* Creation times must spread over at least this long... */
#define CP_LEAK_MIN_SPAN_NS (3ull * 1000000000ull)
/* ...with no window of this length holding more than half of the group (a pool's burst). */
#define CP_LEAK_BURST_NS (1000000000ull)

struct cp_leak_group {
	size_t count;			/* threads in the group */
	const uint64_t *start_ns;	/* each thread's creation time, ns since boot; may be NULL */
	size_t nstart;			/* entries in start_ns (threads whose stat was read) */
	size_t grown;			/* threads the group gained between the two looks of --stuck */
};

struct cp_leak_verdict {
	bool leak;
	bool by_growth;			/* the evidence is growth during the watch */
	uint64_t span_ns;		/* newest creation - oldest, when start times were known */
	uint64_t newest_age_ns;		/* now - newest creation */
};

/*
 * Judge group g at now_ns (ns since boot, the clock of start_ns). start_ns need not be sorted
 * and is not changed. Returns 0 with *out filled, -ENOMEM.
 */
int cp_leak_judge(const struct cp_leak_group *g, uint64_t now_ns, struct cp_leak_verdict *out);

/* "3h12m", "4.2s", "850ms": a duration for "created over X, the last Y ago". */
void cp_leak_format_duration(uint64_t ns, char *buf, size_t size);

#endif
