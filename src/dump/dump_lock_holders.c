/*
 * Holders of locks that record none (Rust's std Mutex and RwLock), inferred from the waiting
 * threads' stacks: a thread that holds such a lock keeps a guard, a reference to the lock, in
 * its frames. Only threads that wait for such locks themselves are looked at, so that a
 * lock-order deadlock among them shows as a cycle.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dump_run.h"

/* At most this much of each waiting thread's stack is read, and this many waiters. */
#define HOLDER_STACK_MAX (64u << 10)
#define HOLDER_WAITERS_MAX 64

struct waiter {
	struct cp_dump_thread *th;
	uint64_t *words;	/* its stack from sp, read now (the thread sleeps) */
	size_t nwords;
};

static const struct thread_work *work_of(const struct dump_run *run, int tid)
{
	for (size_t i = 0; i < run->nwork; i++)
		if (run->work[i].tid == tid)
			return &run->work[i];
	return NULL;
}

/* Read the stack of a thread blocked in a system call, from its sp to its mapping's end. */
static void read_stack(struct dump_run *run, struct waiter *w)
{
	const struct thread_work *tw = work_of(run, w->th->tid);
	const struct cp_map *map;
	uint64_t sp, len;
	long got;

	if (!tw || !tw->has_sc || !run->have_maps)
		return;
	sp = tw->sc.sp & ~7ull;
	map = cp_maps_find(&run->maps, sp);
	if (!map)
		return;
	len = map->end - sp < HOLDER_STACK_MAX ? map->end - sp : HOLDER_STACK_MAX;
	w->words = malloc(len);
	if (!w->words)
		return;
	got = cp_mem_read(&run->mem, sp, w->words, len);
	w->nwords = got > 0 ? (size_t)got / 8 : 0;
}

static bool holds_reference(const struct waiter *w, uint64_t addr)
{
	for (size_t i = 0; i < w->nwords; i++)
		if (w->words[i] == addr)
			return true;
	return false;
}

int dump_infer_lock_holders(struct dump_run *run)
{
	struct cp_dump *d = run->d;
	struct waiter *v;
	size_t n = 0;

	for (size_t i = 0; i < d->nthreads; i++)
		n += d->threads[i].wait.owner_unrecorded && d->threads[i].wait.has_address;
	if (n < 2)
		return 0;
	if (n > HOLDER_WAITERS_MAX)
		n = HOLDER_WAITERS_MAX;
	v = calloc(n, sizeof(*v));
	if (!v)
		return -ENOMEM;
	n = 0;
	for (size_t i = 0; i < d->nthreads && n < HOLDER_WAITERS_MAX; i++) {
		struct cp_dump_thread *th = &d->threads[i];

		if (!th->wait.owner_unrecorded || !th->wait.has_address)
			continue;
		v[n].th = th;
		read_stack(run, &v[n++]);
	}
	/*
	 * A waiter's own frames hold the lock it waits for: only threads that wait for another
	 * lock are candidates (two waiters of one lock reference it alike; neither holds it).
	 */
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < n; j++) {
			if (v[j].th->wait.address == v[i].th->wait.address ||
			    !holds_reference(&v[j], v[i].th->wait.address))
				continue;
			v[i].th->inferred_owner_tid = v[j].th->tid;
			break;
		}
	for (size_t i = 0; i < n; i++)
		free(v[i].words);
	free(v);
	return 0;
}
