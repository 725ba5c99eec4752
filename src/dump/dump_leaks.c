/* Leak hints: groups of threads with one stack, judged by src/diagnose/leak.c's evidence. */
#include <errno.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "dump_run.h"
#include "leak.h"

static int cmp_progress_tid(const void *a, const void *b)
{
	int x = ((const struct progress *)a)->tid, y = ((const struct progress *)b)->tid;

	return (x > y) - (x < y);
}

/* Was tid there at the first look of --stuck? (Always, without the watch.) */
static bool seen_before(const struct dump_run *run, int tid)
{
	struct progress key = { .tid = tid };

	if (!run->d->stuck_seconds || !run->progress_before)
		return true;
	return bsearch(&key, run->progress_before, run->nprogress_before, sizeof(key),
		       cmp_progress_tid) != NULL;
}

static uint64_t boottime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_BOOTTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/*
 * Start times read of one group at most: spread evenly over its threads, they show the span
 * and a burst as well as all of them would, and a group of thousands costs no more.
 */
#define START_TIMES_MAX 64

/* Judge group g; 1 with *leak filled when it is a leak, 0 when not, -ENOMEM. */
static int judge_group(const struct dump_run *run, struct cp_dump_group *g, uint64_t now,
		       long ticks, struct cp_dump_leak *leak)
{
	struct cp_leak_group in = { .count = g->count };
	uint64_t *start = calloc(g->count, sizeof(*start));
	struct cp_leak_verdict v;
	int err;

	if (!start)
		return -ENOMEM;
	size_t step = g->count > START_TIMES_MAX ? g->count / START_TIMES_MAX : 1;

	for (size_t i = 0; i < g->count; i++) {
		struct cp_task_stat st;

		if (!seen_before(run, g->tids[i]))
			in.grown++;
		/* A thread's start time never changes: one that exited meanwhile is left out. */
		if (ticks > 0 && i % step == 0 && in.nstart < START_TIMES_MAX &&
		    cp_proc_read_stat(run->pid, g->tids[i], &st) == 0)
			start[in.nstart++] = st.starttime * (1000000000ull / (uint64_t)ticks);
	}
	in.start_ns = start;
	err = cp_leak_judge(&in, now, &v);
	free(start);
	if (err < 0)
		return err;
	if (!v.leak)
		return 0;
	*leak = (struct cp_dump_leak){ .first = g->first, .count = g->count, .tids = g->tids,
				       .verdict = v, .grown = in.grown };
	g->tids = NULL;
	return 1;
}

static bool waiting(const struct cp_dump_thread *th)
{
	return th->wait.kind != CP_WAIT_RUNNING && th->wait.kind != CP_WAIT_STOPPED &&
	       th->wait.kind != CP_WAIT_ZOMBIE;
}

int dump_find_leaks(struct dump_run *run)
{
	struct cp_dump *d = run->d;
	struct cp_dump_group *g = NULL;
	size_t ng = 0;
	long ticks = sysconf(_SC_CLK_TCK);
	uint64_t now = boottime_ns();
	int err;

	if (!(run->opts->flags & CP_DUMP_LEAKS) || d->nthreads < CP_LEAK_MIN_THREADS)
		return 0;
	err = cp_dump_group_compute(d, &g, &ng);
	if (err < 0)
		return err;
	for (size_t i = 0; i < ng && err >= 0; i++) {
		struct cp_dump_leak leak;

		if (g[i].count < CP_LEAK_MIN_THREADS || !waiting(&d->threads[g[i].first]))
			continue;
		err = judge_group(run, &g[i], now, ticks, &leak);
		if (err <= 0)
			continue;
		if (cp_grow((void **)&d->leaks, &d->leaks_alloc, d->nleaks + 1,
			    sizeof(*d->leaks)) < 0) {
			free(leak.tids);
			err = -ENOMEM;
			break;
		}
		d->leaks[d->nleaks++] = leak;
	}
	for (size_t i = 0; i < ng; i++)
		free(g[i].tids);
	free(g);
	return err < 0 ? err : 0;
}
