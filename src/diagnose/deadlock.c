/* Deadlocks in a wait-for graph: cycles of lock waits, and locks held by exited threads. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "deadlock.h"
#include "util.h"

/* A cycle longer than this is described by its first members only (its tids are complete). */
#define DESCRIBE_MAX_MEMBERS 32

struct tid_index {
	int tid;
	size_t idx;
};

static int cmp_tid_index(const void *a, const void *b)
{
	const struct tid_index *x = a, *y = b;

	return (x->tid > y->tid) - (x->tid < y->tid);
}

static int cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;

	return (x > y) - (x < y);
}

static long lookup(const struct tid_index *ix, size_t n, int tid)
{
	struct tid_index key = { .tid = tid };
	const struct tid_index *hit = bsearch(&key, ix, n, sizeof(*ix), cmp_tid_index);

	return hit ? (long)hit->idx : -1;
}

static bool listed(const struct cp_wait_graph *g, int tid)
{
	return bsearch(&tid, g->tids, g->ntids, sizeof(int), cmp_int) != NULL;
}

static const char *lock_word(const struct cp_lock_wait *w)
{
	return w->rwlock ? "rwlock" : "mutex";
}

static void add_thread(struct cp_strbuf *sb, const struct cp_lock_wait *w)
{
	cp_strbuf_addf(sb, "thread %d \"%s\"", w->waiter_tid, w->waiter_name ? w->waiter_name : "");
}

static void add_lock(struct cp_strbuf *sb, const struct cp_lock_wait *w)
{
	if (w->has_address)
		cp_strbuf_addf(sb, "%s 0x%" PRIx64, lock_word(w), w->address);
	else
		cp_strbuf_addf(sb, "a %s", lock_word(w));
}

/* Append one finding to the list (which owns the arrays from then on). */
static int push(struct cp_deadlock **v, size_t *n, size_t *alloc, int *tids, size_t ntids,
		char *description, bool leaked)
{
	if (*n == *alloc) {
		size_t na = *alloc ? *alloc * 2 : 4;
		struct cp_deadlock *nv = realloc(*v, na * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		*v = nv;
		*alloc = na;
	}
	(*v)[*n] = (struct cp_deadlock){ .tids = tids, .ntids = ntids,
					 .description = description, .leaked_owner = leaked };
	(*n)++;
	return 0;
}

void cp_deadlock_free(struct cp_deadlock *v, size_t n)
{
	size_t i;

	if (!v)
		return;
	for (i = 0; i < n; i++) {
		free(v[i].tids);
		free(v[i].description);
	}
	free(v);
}

/* The cycle through start, following edge[], rotated to begin at its lowest tid. */
static int report_cycle(const struct cp_wait_graph *g, const long *edge, size_t start,
			struct cp_deadlock **v, size_t *n, size_t *alloc)
{
	struct cp_strbuf sb = CP_STRBUF_INIT;
	size_t len = 0, i, low = 0, j;
	size_t *members;
	int *tids;
	char *desc;

	j = start;
	do {
		len++;
		j = (size_t)edge[j];
	} while (j != start);

	members = calloc(len, sizeof(*members));
	tids = calloc(len, sizeof(*tids));
	if (!members || !tids) {
		free(members);
		free(tids);
		return -ENOMEM;
	}
	j = start;
	for (i = 0; i < len; i++) {
		members[i] = j;
		if (g->waits[j].waiter_tid < g->waits[members[low]].waiter_tid)
			low = i;
		j = (size_t)edge[j];
	}
	for (i = 0; i < len; i++)
		tids[i] = g->waits[members[(low + i) % len]].waiter_tid;

	if (len == 1) {
		const struct cp_lock_wait *t = &g->waits[members[0]];

		add_thread(&sb, t);
		cp_strbuf_adds(&sb, " waits for ");
		add_lock(&sb, t);
		cp_strbuf_adds(&sb, " that it already holds itself");
	} else {
		for (i = 0; i < len && i < DESCRIBE_MAX_MEMBERS; i++) {
			const struct cp_lock_wait *t = &g->waits[members[(low + i) % len]];
			const struct cp_lock_wait *o = &g->waits[members[(low + i + 1) % len]];

			if (i == 0) {
				add_thread(&sb, t);
				cp_strbuf_adds(&sb, " waits for ");
			} else {
				cp_strbuf_adds(&sb, ", which waits for ");
			}
			add_lock(&sb, t);
			cp_strbuf_adds(&sb, t->owner_inferred ? " (no owner recorded) probably held by " :
								  " held by ");
			add_thread(&sb, o);
		}
		if (len > DESCRIBE_MAX_MEMBERS)
			cp_strbuf_addf(&sb, ", ... (%zu threads in the cycle)", len);
	}
	free(members);
	if (sb.err) {
		cp_strbuf_release(&sb);
		free(tids);
		return -ENOMEM;
	}
	desc = cp_strbuf_detach(&sb);
	if (!desc || push(v, n, alloc, tids, len, desc, false) < 0) {
		free(desc);
		free(tids);
		return -ENOMEM;
	}
	return 0;
}

/*
 * Whether tid is gone for good, as opposed to a thread that appeared after the dump listed
 * the threads or a thread of another process sharing a process-shared mutex.
 */
static bool owner_exited(int pid, int tid)
{
	char path[64], buf[4096];
	const char *tg;

	snprintf(path, sizeof(path), "/proc/%d/task/%d", pid, tid);
	if (access(path, F_OK) == 0)
		return false;
	snprintf(path, sizeof(path), "/proc/%d/status", tid);
	if (cp_read_file(path, buf, sizeof(buf), NULL) < 0)
		return true;
	tg = strstr(buf, "\nTgid:");
	/* A live thread of some other process: the lock is shared with it, or the tid was
	 * recycled; either way this is not proof of a leaked lock. */
	return tg == NULL;
}

struct leak {
	uint64_t address;
	int owner;
	size_t idx;
};

static int cmp_leak(const void *a, const void *b)
{
	const struct leak *x = a, *y = b;

	if (x->address != y->address)
		return x->address < y->address ? -1 : 1;
	if (x->owner != y->owner)
		return (x->owner > y->owner) - (x->owner < y->owner);
	return (x->idx > y->idx) - (x->idx < y->idx);
}

/* One finding per lock: every thread waiting on it, then the dead owner, in tids. */
static int report_leaks(const struct cp_wait_graph *g, struct leak *lk, size_t nlk,
			struct cp_deadlock **v, size_t *n, size_t *alloc)
{
	size_t i = 0;

	qsort(lk, nlk, sizeof(*lk), cmp_leak);
	while (i < nlk) {
		struct cp_strbuf sb = CP_STRBUF_INIT;
		size_t j = i, k, m;
		int *tids;
		char *desc;

		while (j < nlk && lk[j].address == lk[i].address && lk[j].owner == lk[i].owner)
			j++;
		m = j - i;
		tids = calloc(m + 1, sizeof(*tids));
		if (!tids)
			return -ENOMEM;
		for (k = 0; k < m && k < DESCRIBE_MAX_MEMBERS; k++) {
			if (k)
				cp_strbuf_adds(&sb, k + 1 == m ? " and " : ", ");
			add_thread(&sb, &g->waits[lk[i + k].idx]);
		}
		if (m > DESCRIBE_MAX_MEMBERS)
			cp_strbuf_addf(&sb, " and %zu more threads", m - DESCRIBE_MAX_MEMBERS);
		for (k = 0; k < m; k++)
			tids[k] = g->waits[lk[i + k].idx].waiter_tid;
		tids[m] = lk[i].owner;
		cp_strbuf_adds(&sb, m == 1 ? " waits for " : " wait for ");
		add_lock(&sb, &g->waits[lk[i].idx]);
		cp_strbuf_addf(&sb, " held by thread %d, which has exited", lk[i].owner);
		if (sb.err) {
			cp_strbuf_release(&sb);
			free(tids);
			return -ENOMEM;
		}
		desc = cp_strbuf_detach(&sb);
		if (!desc || push(v, n, alloc, tids, m + 1, desc, true) < 0) {
			free(desc);
			free(tids);
			return -ENOMEM;
		}
		i = j;
	}
	return 0;
}

int cp_deadlock_find(const struct cp_wait_graph *g, struct cp_deadlock **out, size_t *nout)
{
	struct cp_deadlock *v = NULL;
	size_t nv = 0, av = 0, nw = g->nwaits, i, nlk = 0;
	struct tid_index *ix = NULL;
	struct leak *lk = NULL;
	long *edge = NULL;
	size_t *walk = NULL;
	int err = -ENOMEM;
	bool check_leaks;

	if (nw == 0 || !g->waits)
		goto done;

	ix = calloc(nw, sizeof(*ix));
	edge = calloc(nw, sizeof(*edge));
	walk = calloc(nw, sizeof(*walk));
	lk = calloc(nw, sizeof(*lk));
	if (!ix || !edge || !walk || !lk)
		goto out;
	for (i = 0; i < nw; i++) {
		ix[i].tid = g->waits[i].waiter_tid;
		ix[i].idx = i;
	}
	qsort(ix, nw, sizeof(*ix), cmp_tid_index);

	/* When the whole process went away, every owner looks dead: say nothing then. */
	{
		char path[32];

		snprintf(path, sizeof(path), "/proc/%d", g->pid);
		check_leaks = !g->process_exited && access(path, F_OK) == 0;
	}

	/* Each thread waits for at most one lock, so the graph is a functional graph. */
	for (i = 0; i < nw; i++) {
		const struct cp_lock_wait *w = &g->waits[i];

		edge[i] = lookup(ix, nw, w->owner_tid);
		if (edge[i] < 0 && check_leaks && !listed(g, w->owner_tid) &&
		    owner_exited(g->pid, w->owner_tid)) {
			lk[nlk].address = w->has_address ? w->address : 0;
			lk[nlk].owner = w->owner_tid;
			lk[nlk].idx = i;
			nlk++;
		}
	}

	/* Walk from each unvisited thread; meeting a thread of the same walk closes a cycle. */
	for (i = 0; i < nw; i++) {
		long j = (long)i;

		if (walk[i])
			continue;
		while (j >= 0 && !walk[j]) {
			walk[j] = i + 1;
			j = edge[j];
		}
		if (j >= 0 && walk[j] == i + 1 &&
		    report_cycle(g, edge, (size_t)j, &v, &nv, &av) < 0)
			goto out;
	}
	if (nlk && report_leaks(g, lk, nlk, &v, &nv, &av) < 0)
		goto out;

done:
	*out = v;
	*nout = nv;
	v = NULL;
	nv = 0;
	err = 0;
out:
	cp_deadlock_free(v, nv);
	free(ix);
	free(edge);
	free(walk);
	free(lk);
	return err;
}
