/* The --stuck watch: which threads made no progress (CPU time, context switches) meanwhile. */
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "dump_run.h"

static int cmp_progress(const void *a, const void *b)
{
	int x = ((const struct progress *)a)->tid, y = ((const struct progress *)b)->tid;

	return (x > y) - (x < y);
}

static int read_progress(int pid, int tid, struct progress *p)
{
	struct cp_task_stat st;
	struct cp_task_status ts;
	int err;

	err = cp_proc_read_stat(pid, tid, &st);
	if (err < 0)
		return err;
	err = cp_proc_read_status(pid, tid, &ts);
	if (err < 0)
		return err;
	p->tid = tid;
	p->cpu = st.utime + st.stime;
	p->ctxt = ts.voluntary_ctxt_switches + ts.nonvoluntary_ctxt_switches;
	return 0;
}

/* Every thread's progress counters, sorted by tid. */
static int read_progress_all(int pid, struct progress **out, size_t *nout)
{
	struct progress *v;
	int *tids = NULL;
	size_t n = 0, nv = 0;
	int err;

	err = cp_proc_list_tasks(pid, &tids, &n);
	if (err < 0)
		return err;
	v = calloc(n + 1, sizeof(*v));
	if (!v) {
		free(tids);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++)
		if (read_progress(pid, tids[i], &v[nv]) == 0)
			nv++;
	free(tids);
	qsort(v, nv, sizeof(*v), cmp_progress);
	*out = v;
	*nout = nv;
	return 0;
}

/* Sleep s seconds in short steps so that a cancel request is honoured quickly. */
static int watch_sleep(const struct dump_run *run, int s)
{
	uint64_t end = cp_now_ns() + (uint64_t)s * 1000000000ull;

	while (cp_now_ns() < end) {
		struct timespec ts = { 0, 50 * 1000 * 1000 };

		if (dump_cancelled(run))
			return -EINTR;
		nanosleep(&ts, NULL);
	}
	return dump_cancelled(run) ? -EINTR : 0;
}

void dump_stuck_mark(struct dump_run *run)
{
	for (size_t i = 0; i < run->nwork; i++) {
		struct thread_work *tw = &run->work[i];
		struct progress key = { .tid = tw->tid };
		const struct progress *a, *b;

		a = bsearch(&key, run->progress_before, run->nprogress_before, sizeof(key),
			    cmp_progress);
		b = bsearch(&key, run->progress_after, run->nprogress_after, sizeof(key),
			    cmp_progress);
		/* A thread born during the watch made progress by being born. */
		if (!a || !b)
			tw->stuck = 0;
		else
			tw->stuck = a->cpu == b->cpu && a->ctxt == b->ctxt;
	}
}

int dump_stuck_watch(struct dump_run *run)
{
	int err;

	err = read_progress_all(run->pid, &run->progress_before, &run->nprogress_before);
	if (err < 0)
		return dump_is_gone(err) ? -ESRCH : err;
	err = watch_sleep(run, run->d->stuck_seconds);
	if (err < 0)
		return err;
	err = read_progress_all(run->pid, &run->progress_after, &run->nprogress_after);
	if (err < 0)
		return dump_is_gone(err) ? -ESRCH : err;
	return 0;
}
