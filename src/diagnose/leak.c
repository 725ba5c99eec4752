/* Evidence for a thread leak: group size, how the group's threads were created over time. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "leak.h"

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

/* The most creation times that fall in one window of CP_LEAK_BURST_NS (t sorted). */
static size_t largest_burst(const uint64_t *t, size_t n)
{
	size_t best = 0, lo = 0;

	for (size_t hi = 0; hi < n; hi++) {
		while (t[hi] - t[lo] > CP_LEAK_BURST_NS)
			lo++;
		if (hi - lo + 1 > best)
			best = hi - lo + 1;
	}
	return best;
}

int cp_leak_judge(const struct cp_leak_group *g, uint64_t now_ns, struct cp_leak_verdict *out)
{
	struct cp_leak_verdict v = { 0 };
	uint64_t *t;

	if (g->count >= CP_LEAK_MIN_THREADS && g->grown > 0) {
		v.leak = true;
		v.by_growth = true;
	}
	if (g->start_ns && g->nstart > 0) {
		t = malloc(g->nstart * sizeof(*t));
		if (!t)
			return -ENOMEM;
		memcpy(t, g->start_ns, g->nstart * sizeof(*t));
		qsort(t, g->nstart, sizeof(*t), cmp_u64);
		v.span_ns = t[g->nstart - 1] - t[0];
		v.newest_age_ns = now_ns > t[g->nstart - 1] ? now_ns - t[g->nstart - 1] : 0;
		if (g->count >= CP_LEAK_MIN_THREADS && g->nstart >= CP_LEAK_MIN_THREADS &&
		    v.span_ns >= CP_LEAK_MIN_SPAN_NS && largest_burst(t, g->nstart) * 2 <= g->nstart)
			v.leak = true;
		free(t);
	}
	*out = v;
	return 0;
}

void cp_leak_format_duration(uint64_t ns, char *buf, size_t size)
{
	uint64_t s = ns / 1000000000ull;

	if (ns < 1000000000ull)
		snprintf(buf, size, "%llums", (unsigned long long)(ns / 1000000));
	else if (s < 60)
		snprintf(buf, size, "%llu.%llus", (unsigned long long)s,
			 (unsigned long long)(ns % 1000000000ull / 100000000ull));
	else if (s < 3600)
		snprintf(buf, size, "%llum%02llus", (unsigned long long)(s / 60),
			 (unsigned long long)(s % 60));
	else if (s < 86400)
		snprintf(buf, size, "%lluh%02llum", (unsigned long long)(s / 3600),
			 (unsigned long long)(s % 3600 / 60));
	else
		snprintf(buf, size, "%llud%02lluh", (unsigned long long)(s / 86400),
			 (unsigned long long)(s % 86400 / 3600));
}
