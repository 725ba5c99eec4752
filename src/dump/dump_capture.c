/* Taking a dump's captures: list the threads, sweep them in batches on a few threads of cprof. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dump_run.h"

/*
 * All stack copies are held until the last thread is captured: bound their sum, so that a
 * process with thousands of threads gets shorter copies (the unwinder reads what a copy lacks
 * from the live process) instead of cprof running out of memory.
 */
#define STACK_COPY_BUDGET (512u << 20)
#define STACK_COPY_MIN (16u << 10)

/* Lines of /proc/PID/task/TID/stack we keep; the kernel itself stops at 64. */
#define KSTACK_MAX_FRAMES 64
#define KSTACK_FILE_MAX (16u << 10)

static int cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;

	return (x > y) - (x < y);
}

/*
 * Parse /proc/PID/task/TID/stack: lines "[<0>] futex_wait_queue+0x63/0xa0". The addresses are
 * zeroed for non-root readers anyway; keep the symbol part.
 */
static int read_kernel_stack(int pid, int tid, char ***out, size_t *n)
{
	char path[64];
	char *text = NULL;
	char **v = NULL;
	size_t len, nv = 0;
	int err;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/stack", pid, tid);
	err = cp_read_file_alloc(path, KSTACK_FILE_MAX, &text, &len);
	if (err < 0)
		return err;
	v = calloc(KSTACK_MAX_FRAMES, sizeof(*v));
	if (!v) {
		free(text);
		return -ENOMEM;
	}
	for (char *line = text, *next; line && *line && nv < KSTACK_MAX_FRAMES; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		char *sym = line;

		if (*sym == '[') {
			char *close = strstr(sym, "] ");

			if (close)
				sym = close + 2;
		}
		if (!*sym)
			continue;
		v[nv] = strdup(sym);
		if (!v[nv]) {
			dump_free_strv(v, nv);
			free(text);
			return -ENOMEM;
		}
		nv++;
	}
	free(text);
	*out = v;
	*n = nv;
	return 0;
}

static bool seen_has(const struct dump_run *run, int tid)
{
	return bsearch(&tid, run->seen, run->nseen, sizeof(int), cmp_int) != NULL;
}

static int seen_add(struct dump_run *run, const int *tids, size_t n)
{
	int *v = realloc(run->seen, (run->nseen + n + 1) * sizeof(int));

	if (!v)
		return -ENOMEM;
	memcpy(v + run->nseen, tids, n * sizeof(int));
	run->seen = v;
	run->nseen += n;
	qsort(run->seen, run->nseen, sizeof(int), cmp_int);
	return 0;
}

/*
 * Where tid sleeps in the kernel, into *out (malloc'd) unless read already; left NULL when
 * unknown or empty. A pointer, not an array in every thread_work: most threads never need it.
 */
static void read_wchan(int pid, int tid, char **out)
{
	char buf[WCHAN_MAX];

	if (!*out && cp_proc_read_wchan(pid, tid, buf, sizeof(buf)) == 0 && buf[0])
		*out = strdup(buf);
}

/*
 * Read one thread's /proc state and capture it, into tw (whose tid is set). Touches nothing
 * but tw, so that several threads of cprof can capture different threads at once; what the
 * outcome means for the dump is decided afterwards, in tid order, by resolve_captures(). In a
 * live capture the thread is never stopped, so its state may be read around it; a stop changes
 * what /proc says (a stopped thread reads 't', its wchan becomes ptrace_stop), so with
 * CP_DUMP_STOP_ALL the state is read first.
 */
static void capture_one(struct dump_run *run, struct thread_work *tw, int pre)
{
	bool stop_all = run->opts->flags & CP_DUMP_STOP_ALL;
	struct cp_capture_opts copts = {
		.stack_max = run->stack_max,
		.flags = stop_all ? CP_CAPTURE_STOP : CP_CAPTURE_LIVE | CP_CAPTURE_TRACED,
		.maps = run->have_maps ? &run->maps : NULL,
		.mem = &run->mem,
	};
	bool have_st = false;
	int tid = tw->tid, err;

	/* A live capture reads the state and name itself (status): one file less per thread. */
	if (stop_all) {
		err = cp_proc_read_stat(run->pid, tid, &tw->st);
		if (err < 0) {
			tw->drop = dump_is_gone(err);
			tw->err = tw->drop ? 0 : err;
			return;
		}
		have_st = true;
	}
	if (run->opts->flags & CP_DUMP_KERNEL) {
		err = read_kernel_stack(run->pid, tid, &tw->kernel_frames, &tw->nkernel_frames);
		if (err == -ENOMEM) {
			tw->err = err;
			return;
		}
		if (err < 0 && !dump_is_gone(err))
			tw->kernel_error = err;
	}
	if (have_st && (tw->st.state == 'Z' || tw->st.state == 'X')) {
		tw->zombie = true;
		tw->has_sc = cp_proc_read_syscall(run->pid, tid, &tw->sc) == 0;
		return;
	}
	if (stop_all) {
		tw->has_sc = cp_proc_read_syscall(run->pid, tid, &tw->sc) == 0;
		read_wchan(run->pid, tid, &tw->wchan);
	}
	copts.stat = have_st ? &tw->st : NULL;
	/* pre: what capture_many() already did for tw (0: captured; -EAGAIN: not tried). */
	err = pre == -EAGAIN ? cp_capture_thread(run->pid, tid, &copts, &tw->snap) : pre;
	if (err == 0) {
		tw->captured = true;
		/* The capture read the syscall line before touching the thread: reuse it. */
		if (tw->snap.has_syscall) {
			tw->sc = tw->snap.sc;
			tw->has_sc = true;
		}
		if (!have_st && tw->snap.has_state) {
			tw->st.tid = tid;
			tw->st.state = tw->snap.state;
			snprintf(tw->st.comm, sizeof(tw->st.comm), "%s", tw->snap.comm);
			have_st = true;
		}
	}
	if (!have_st) {
		int serr = cp_proc_read_stat(run->pid, tid, &tw->st);

		if (serr < 0) {
			thread_work_release(tw);
			tw->drop = dump_is_gone(serr);
			tw->err = tw->drop ? 0 : serr;
			return;
		}
		if (tw->st.state == 'Z' || tw->st.state == 'X') {
			thread_work_release(tw);
			tw->zombie = true;
			tw->has_sc = cp_proc_read_syscall(run->pid, tid, &tw->sc) == 0;
			return;
		}
	}
	if (!tw->has_sc)
		tw->has_sc = cp_proc_read_syscall(run->pid, tid, &tw->sc) == 0;
	/* Most waits are told by their syscall alone: read wchan only where it counts. */
	if (!stop_all && !tw->wchan &&
	    cp_wait_needs_wchan(tw->st.state, tw->has_sc ? &tw->sc : NULL))
		read_wchan(run->pid, tid, &tw->wchan);
	if (err == 0)
		return;
	if (dump_is_gone(err)) {
		tw->drop = true;
		return;
	}
	if (err == -EBUSY) {
		struct cp_task_status ts;
		int serr = cp_proc_read_status(run->pid, tid, &ts);

		/* Traced by someone else and never still: listed without a stack, and by whom. */
		if (dump_is_gone(serr)) {
			tw->drop = true;
			return;
		}
		tw->capture_error = err;
		tw->tracer = serr == 0 ? ts.tracer_pid : 0;
		return;
	}
	if (err == -EBUSY || err == -EPERM || err == -EACCES) {
		struct cp_task_stat now;
		int serr = cp_proc_read_stat(run->pid, tid, &now);

		/* The kernel refuses to trace a thread that is exiting: that is a vanished one. */
		if (dump_is_gone(serr) || (serr == 0 && (now.state == 'Z' || now.state == 'X'))) {
			tw->drop = true;
			return;
		}
	}
	if (err == -EBUSY || err == -EPERM || err == -EACCES || err == -ENOMEM) {
		tw->err = err;
		return;
	}
	/* Anything else: list the thread without a stack, and say why. */
	tw->capture_error = err;
}

/*
 * Decide, in tid order, what the captures of work [from, nwork) mean, and drop the threads
 * that vanished. A refusal is the answer for the whole process when it comes first; once
 * other threads were captured, it only concerns this one thread (say, one traced by a tracer
 * that left it by the time its status was read again).
 */
static int resolve_captures(struct dump_run *run, size_t from)
{
	size_t out = from;
	int ret = 0;

	for (size_t i = from; i < run->nwork; i++) {
		struct thread_work *tw = &run->work[i];
		int err = tw->err;

		if (tw->drop || ret < 0) {
			thread_work_release(tw);
			free(tw->wchan);	/* not kept: past run->nwork, dump_run_release skips it */
			continue;
		}
		if (err == -EBUSY || err == -EPERM || err == -EACCES) {
			if (run->ncaptured) {
				tw->capture_error = err;
				err = 0;
			}
		}
		if (err < 0) {
			thread_work_release(tw);
			free(tw->wchan);
			ret = err;
			continue;
		}
		if (tw->captured)
			run->ncaptured++;
		if (tw->kernel_error && !run->d->kernel_error)
			run->d->kernel_error = tw->kernel_error;
		if (out != i)
			run->work[out] = *tw;
		out++;
	}
	run->nwork = out;
	return ret;
}

/*
 * On a process with many threads and a machine with CPUs to spare, several threads of cprof
 * share the captures out (each thread is captured by exactly one of them, which alone waits
 * for its ptrace stops).
 */
#define CAPTURE_THREADS_MAX 8
#define CAPTURE_THREADS_PER 64	/* target threads per capturing thread, at least */
#define CAPTURE_BATCH 32	/* threads taken in one sweep (at most CP_CAPTURE_MANY_MAX) */

/* One call of capture_tids: the threads to capture, shared out by batches. */
struct capture_work {
	struct dump_run *run;
	struct thread_work *work;
	size_t n;
	atomic_size_t next;
};

/*
 * Threads work[0, n) in one sweep of cp_capture_live_many (pre[i] 0 or -errno), or all -EAGAIN
 * when each must be captured on its own (CP_DUMP_STOP_ALL: states read before any stop).
 */
static void capture_many(struct dump_run *run, struct thread_work *work, size_t n, int *pre)
{
	struct cp_capture_opts copts = {
		.stack_max = run->stack_max,
		.flags = CP_CAPTURE_LIVE,
		.maps = run->have_maps ? &run->maps : NULL,
		.switches = run->have_switches ? &run->switches : NULL,
		.mem = &run->mem,
	};
	struct cp_thread_snap snaps[CP_CAPTURE_MANY_MAX];
	int tids[CP_CAPTURE_MANY_MAX];

	for (size_t i = 0; i < n; i++) {
		pre[i] = -EAGAIN;
		tids[i] = work[i].tid;
	}
	if (run->opts->flags & CP_DUMP_STOP_ALL)
		return;
	if (cp_capture_live_many(run->pid, tids, n, &copts, snaps, pre) < 0) {
		for (size_t i = 0; i < n; i++)
			pre[i] = -EAGAIN;
		return;
	}
	for (size_t i = 0; i < n; i++)
		if (pre[i] == 0)
			work[i].snap = snaps[i];
}

static void *capture_worker(void *arg)
{
	struct capture_work *w = arg;
	int pre[CAPTURE_BATCH];
	struct stack_walker wk;
	bool walking = stack_walker_init(&wk, &w->run->mem,
					 w->run->have_maps ? &w->run->maps : NULL) == 0;

	for (;;) {
		size_t i = atomic_fetch_add(&w->next, CAPTURE_BATCH), n;

		if (i >= w->n || dump_cancelled(w->run))
			break;
		n = w->n - i < CAPTURE_BATCH ? w->n - i : CAPTURE_BATCH;
		capture_many(w->run, &w->work[i], n, pre);
		for (size_t j = 0; j < n; j++) {
			if (dump_cancelled(w->run)) {
				/* Swept but not looked at: nothing of them is kept. */
				for (size_t k = j; k < n; k++) {
					if (pre[k] == 0)
						cp_thread_snap_release(&w->work[i + k].snap);
					w->work[i + k].drop = true;
				}
				break;
			}
			capture_one(w->run, &w->work[i + j], pre[j]);
		}
		/*
		 * The batch's stacks are unwound now, on the copies, and freed: the next batch
		 * reuses their memory, where copies of every thread kept until the end would
		 * touch a fresh page for each. Failures are left to dump_unwind_pending(), which
		 * unwinds whatever is not done yet.
		 */
		for (size_t j = 0; j < n && walking && !dump_cancelled(w->run); j++)
			if (!w->work[i + j].drop &&
			    stack_walker_unwind(w->run, &w->work[i + j], &wk) < 0)
				break;
	}
	if (walking)
		stack_walker_release(&wk);
	return NULL;
}

/*
 * How many threads of cprof capture (and unwind): at most half the CPUs. A capture is system
 * calls, and a target worth dumping often keeps CPUs busy itself: more capturing threads
 * than that only contend in the kernel.
 */
size_t dump_helper_count(size_t n)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	size_t k = n / CAPTURE_THREADS_PER;

	if (cpus < 2)
		cpus = 2;
	if (k > (size_t)cpus / 2)
		k = (size_t)cpus / 2;
	if (k > CAPTURE_THREADS_MAX)
		k = CAPTURE_THREADS_MAX;
	return k ? k : 1;
}

/*
 * Run fn(arg) on k threads: k - 1 helpers, which take no signals (the main thread's handlers
 * see them), and the calling thread; return when all are done. Fewer helpers when a thread
 * cannot be created: the work is shared out by fn itself, so it still all gets done.
 */
void dump_parallel(void *(*fn)(void *), void *arg, size_t k)
{
	pthread_t th[CAPTURE_THREADS_MAX];
	size_t started;
	sigset_t all, old;

	if (k > CAPTURE_THREADS_MAX)
		k = CAPTURE_THREADS_MAX;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	for (started = 0; started + 1 < k; started++)
		if (pthread_create(&th[started], NULL, fn, arg) != 0)
			break;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	fn(arg);
	for (size_t i = 0; i < started; i++)
		pthread_join(th[i], NULL);
}

/* Capture tids (not seen before) as new threads of the dump; then resolve their outcomes. */
static int capture_tids(struct dump_run *run, const int *tids, size_t n)
{
	struct capture_work w = { .run = run };
	size_t from = run->nwork;

	if (!n)
		return 0;
	if (run->work_alloc - run->nwork < n) {
		size_t na = run->nwork + n;
		struct thread_work *v = realloc(run->work, na * sizeof(*v));

		if (!v)
			return -ENOMEM;
		run->work = v;
		run->work_alloc = na;
	}
	w.work = &run->work[from];
	w.n = n;
	atomic_init(&w.next, 0);
	memset(w.work, 0, n * sizeof(*w.work));
	for (size_t i = 0; i < n; i++) {
		w.work[i].tid = tids[i];
		w.work[i].stuck = -1;
	}
	run->nwork += n;
	dump_parallel(capture_worker, &w, dump_helper_count(n));
	/* Threads not reached after a cancel: nothing was read for them. */
	for (size_t i = atomic_load(&w.next); i < n; i++)
		w.work[i].drop = true;
	if (dump_cancelled(run)) {
		resolve_captures(run, from);
		return -EINTR;
	}
	return resolve_captures(run, from);
}

/*
 * Threads per CPU from which the dump watches the CPUs' context-switch records: they spare
 * each live capture its second look at the thread's status, but cost an event and a ring per
 * CPU to open, map, unmap and close. Without the privilege CPU-wide events need, the captures
 * ask every thread.
 */
#define SWITCH_WATCH_PER_CPU 256

static void watch_switches(struct dump_run *run, size_t nthreads)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	if ((run->opts->flags & CP_DUMP_STOP_ALL) || cpus < 1 ||
	    nthreads < (size_t)cpus * SWITCH_WATCH_PER_CPU)
		return;
	run->have_switches = cp_switch_watch_open(&run->switches) == 0;
	run->d->switch_records = run->have_switches;
}

int dump_capture_all(struct dump_run *run)
{
	int *tids = NULL;
	size_t n = 0;
	int err;

	err = cp_proc_list_tasks(run->pid, &tids, &n);
	if (err < 0)
		return err;
	run->stack_max = run->opts->stack_max;
	if (!run->stack_max) {
		run->stack_max = CP_STACK_COPY_MAX;
		if (n && STACK_COPY_BUDGET / n < run->stack_max)
			run->stack_max = STACK_COPY_BUDGET / n;
		if (run->stack_max < STACK_COPY_MIN)
			run->stack_max = STACK_COPY_MIN;
	}
	watch_switches(run, n);
	err = seen_add(run, tids, n);
	if (!err)
		err = dump_cancelled(run) ? -EINTR : capture_tids(run, tids, n);
	free(tids);
	return err;
}

/*
 * Threads created while the others were being captured: capture them once. Listing the
 * threads again is dear (the kernel looks every entry up), so the process's thread count
 * decides first: when it equals the threads just
 * captured, nothing was created, unless one of them exited meanwhile just as another
 * started, and a thread created a moment later would be missed all the same.
 */
int dump_capture_newcomers(struct dump_run *run)
{
	int *tids = NULL, *fresh = NULL;
	size_t n = 0, nfresh = 0;
	struct cp_task_stat st;
	int err;

	/* The leader's own stat: the process's sums over every thread are not needed. */
	err = cp_proc_read_stat(run->pid, run->pid, &st);
	if (err < 0)
		return dump_is_gone(err) ? 0 : err;
	if (st.num_threads == (long)run->nwork)
		return 0;
	err = cp_proc_list_tasks(run->pid, &tids, &n);
	if (err < 0)
		return dump_is_gone(err) ? 0 : err;
	fresh = calloc(n + 1, sizeof(*fresh));
	if (!fresh) {
		free(tids);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++)
		if (!seen_has(run, tids[i]))
			fresh[nfresh++] = tids[i];
	free(tids);
	err = seen_add(run, fresh, nfresh);
	if (!err)
		err = dump_cancelled(run) ? -EINTR : capture_tids(run, fresh, nfresh);
	free(fresh);
	return err;
}

