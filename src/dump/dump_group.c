/* Grouping a dump's threads by identical stack and wait kind (goroutine?debug=1 style). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dump.h"

struct key {
	uint64_t hash;
	size_t index;
	const struct cp_dump_thread *th;
};

static uint64_t stack_hash(const struct cp_dump_thread *th)
{
	/* FNV-1a over the wait kind and the pcs. */
	uint64_t h = 1469598103934665603ull;

	h = (h ^ (uint64_t)th->wait.kind) * 1099511628211ull;
	for (size_t i = 0; i < th->nframes; i++)
		h = (h ^ th->frames[i].pc) * 1099511628211ull;
	return (h ^ th->nframes) * 1099511628211ull;
}

bool cp_dump_same_stack(const struct cp_dump_thread *a, const struct cp_dump_thread *b)
{
	if (a->wait.kind != b->wait.kind || a->nframes != b->nframes)
		return false;
	for (size_t i = 0; i < a->nframes; i++)
		if (a->frames[i].pc != b->frames[i].pc)
			return false;
	return true;
}

static int cmp_key(const void *pa, const void *pb)
{
	const struct key *a = pa, *b = pb;

	if (a->hash != b->hash)
		return a->hash < b->hash ? -1 : 1;
	if (a->th->wait.kind != b->th->wait.kind)
		return a->th->wait.kind < b->th->wait.kind ? -1 : 1;
	if (a->th->nframes != b->th->nframes)
		return a->th->nframes < b->th->nframes ? -1 : 1;
	for (size_t i = 0; i < a->th->nframes; i++)
		if (a->th->frames[i].pc != b->th->frames[i].pc)
			return a->th->frames[i].pc < b->th->frames[i].pc ? -1 : 1;
	/* Keep dump order (ascending tid) inside a group. */
	return (a->index > b->index) - (a->index < b->index);
}

static int cmp_group(const void *pa, const void *pb)
{
	const struct cp_dump_group *a = pa, *b = pb;

	if (a->count != b->count)
		return a->count > b->count ? -1 : 1;
	return (a->first > b->first) - (a->first < b->first);
}

int cp_dump_group_compute(const struct cp_dump *dump, struct cp_dump_group **out, size_t *nout)
{
	struct cp_dump_group *g = NULL;
	struct key *k = NULL;
	size_t n = dump->nthreads, ng = 0;

	k = calloc(n + 1, sizeof(*k));
	g = calloc(n + 1, sizeof(*g));
	if (!k || !g)
		goto oom;
	for (size_t i = 0; i < n; i++) {
		k[i].index = i;
		k[i].th = &dump->threads[i];
		k[i].hash = stack_hash(k[i].th);
	}
	qsort(k, n, sizeof(*k), cmp_key);
	for (size_t i = 0; i < n;) {
		size_t j = i + 1;

		while (j < n && k[j].hash == k[i].hash && cp_dump_same_stack(k[i].th, k[j].th))
			j++;
		g[ng].count = j - i;
		g[ng].first = k[i].index;
		g[ng].tids = calloc(j - i, sizeof(int));
		if (!g[ng].tids)
			goto oom;
		for (size_t m = i; m < j; m++)
			g[ng].tids[m - i] = k[m].th->tid;
		ng++;
		i = j;
	}
	qsort(g, ng, sizeof(*g), cmp_group);
	free(k);
	*out = g;
	*nout = ng;
	return 0;
oom:
	if (g)
		for (size_t i = 0; i < ng; i++)
			free(g[i].tids);
	free(g);
	free(k);
	return -ENOMEM;
}

int cp_dump_group(struct cp_dump *dump)
{
	struct cp_dump_group *g;
	size_t ng;
	int err;

	err = cp_dump_group_compute(dump, &g, &ng);
	if (err < 0)
		return err;
	for (size_t i = 0; i < dump->ngroups; i++)
		free(dump->groups[i].tids);
	free(dump->groups);
	dump->groups = g;
	dump->ngroups = ng;
	return 0;
}
