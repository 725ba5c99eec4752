/* The thresholds of cprof watch: crossings reported once, re-armed below. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "metrics.h"
#include "watch.h"

static const char *const names[CP_WATCH__COUNT] = {
	[CP_WATCH_THREADS] = "threads",
	[CP_WATCH_FDS] = "fds",
	[CP_WATCH_BLOCKED] = "blocked",
	[CP_WATCH_RSS] = "rss",
};

const char *cp_watch_metric_name(enum cp_watch_metric m)
{
	return m < CP_WATCH__COUNT ? names[m] : "unknown";
}

void cp_watch_set(struct cp_watch *w, enum cp_watch_metric m, uint64_t threshold)
{
	w->threshold[m] = threshold;
	w->enabled[m] = true;
	w->fired[m] = false;
}

unsigned int cp_watch_metrics_flags(const struct cp_watch *w)
{
	return (w->enabled[CP_WATCH_FDS] ? CP_METRICS_FDS : 0) |
	       (w->enabled[CP_WATCH_BLOCKED] ? CP_METRICS_WAITS : 0);
}

unsigned int cp_watch_check(struct cp_watch *w, const uint64_t *values)
{
	unsigned int crossed = 0;

	for (int m = 0; m < CP_WATCH__COUNT; m++) {
		if (!w->enabled[m])
			continue;
		if (values[m] <= w->threshold[m]) {
			w->fired[m] = false;
			continue;
		}
		if (!w->fired[m])
			crossed |= 1u << m;
		w->fired[m] = true;
	}
	return crossed;
}

int cp_watch_parse_size(const char *s, uint64_t *out)
{
	static const char units[] = "KMGT";
	unsigned long long v;
	const char *u;
	char *end;
	int shift = 0;

	if (!s || !isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -ERANGE;
	if (*end) {
		u = strchr(units, toupper((unsigned char)*end));
		if (!u)
			return -EINVAL;
		shift = 10 * (int)(u - units + 1);
		end++;
		if (strcasecmp(end, "") && strcasecmp(end, "b") && strcasecmp(end, "ib"))
			return -EINVAL;
	}
	if (shift && v > (~0ull >> shift))
		return -ERANGE;
	*out = (uint64_t)v << shift;
	return 0;
}
