/*
 * The thresholds of `cprof watch`: which values crossed since the last look, each reported once
 * per crossing and re-armed when its value falls back to the threshold or below.
 */
#ifndef CP_SERVE_WATCH_H
#define CP_SERVE_WATCH_H

#include <stdbool.h>
#include <stdint.h>

enum cp_watch_metric {
	CP_WATCH_THREADS,
	CP_WATCH_FDS,
	CP_WATCH_BLOCKED,
	CP_WATCH_RSS,
	CP_WATCH__COUNT,
};

struct cp_watch {
	uint64_t threshold[CP_WATCH__COUNT];
	bool enabled[CP_WATCH__COUNT];
	bool fired[CP_WATCH__COUNT];	/* above since the last crossing: not reported again */
};

/* "threads", "fds", "blocked", "rss": the REASON of the dump's file name. */
const char *cp_watch_metric_name(enum cp_watch_metric m);
/* Watch metric m: a value above threshold is a crossing. */
void cp_watch_set(struct cp_watch *w, enum cp_watch_metric m, uint64_t threshold);
/* The cp_metrics_collect flags the enabled metrics need. */
unsigned int cp_watch_metrics_flags(const struct cp_watch *w);
/*
 * Compare values (indexed by metric) with the thresholds: returns the bitmask (1u << metric)
 * of enabled metrics that went above their threshold since the last call (or are above it on
 * the first), and re-arms those at or below it.
 */
unsigned int cp_watch_check(struct cp_watch *w, const uint64_t *values);

/*
 * Parse a size: bytes, or a number with K, M, G or T (powers of 1024; "KiB", "KB", "k" all
 * the same). 0 or -EINVAL / -ERANGE.
 */
int cp_watch_parse_size(const char *s, uint64_t *out);

#endif
