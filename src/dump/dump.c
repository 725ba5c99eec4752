/*
 * Taking a thread dump: check the process, watch it (--stuck), capture every thread
 * (dump_capture.c, unwinding as it goes: dump_unwind.c), then assemble the dump: frames
 * (dump_symbolize.c), wait kinds, deadlocks, groups.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deadlock.h"
#include "dump_go.h"
#include "dump_run.h"

bool dump_cancelled(const struct dump_run *run)
{
	return run->opts->cancel && *run->opts->cancel;
}

static int cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;

	return (x > y) - (x < y);
}

static int cmp_thread_work(const void *a, const void *b)
{
	return cmp_int(&((const struct thread_work *)a)->tid,
		       &((const struct thread_work *)b)->tid);
}

void dump_free_strv(char **v, size_t n)
{
	if (!v)
		return;
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void thread_work_release(struct thread_work *tw)
{
	if (tw->captured)
		cp_thread_snap_release(&tw->snap);
	tw->captured = false;
	free(tw->unwound_pcs);
	free(tw->unwound_flags);
	tw->unwound_pcs = NULL;
	tw->unwound_flags = NULL;
	tw->nunwound = 0;
	tw->unwound = false;
	dump_free_strv(tw->kernel_frames, tw->nkernel_frames);
	tw->kernel_frames = NULL;
	tw->nkernel_frames = 0;
}

static void dump_run_release(struct dump_run *run)
{
	dump_symbolize_release(run);
	for (size_t i = 0; i < run->nwork; i++) {
		thread_work_release(&run->work[i]);
		free(run->work[i].wchan);
	}
	free(run->work);
	free(run->seen);
	free(run->progress_before);
	free(run->progress_after);
	if (run->have_maps)
		cp_maps_release(&run->maps);
	run->have_maps = false;
	if (run->have_switches)
		cp_switch_watch_close(&run->switches);
	run->have_switches = false;
	cp_mem_close(&run->mem);
	if (run->have_pidns)
		cp_pidns_map_release(&run->pidns);
	run->have_pidns = false;
	run->work = NULL;
	run->seen = NULL;
	run->progress_before = NULL;
	run->progress_after = NULL;
	run->nwork = run->nseen = run->nprogress_before = run->nprogress_after = 0;
	dump_go_diag_release(run, NULL);
}

bool dump_is_gone(int err)
{
	return err == -ESRCH || err == -ENOENT;
}

/* th's wait kind, from tw's /proc state and th's frames. 0 or -ENOMEM. */
static int classify(const struct dump_run *run, const struct thread_work *tw,
		    struct cp_dump_thread *th, const int *tids, size_t ntids,
		    struct cp_wait_cache *cache)
{
	const char **fn = NULL;
	struct cp_wait_input in;
	char wchan[WCHAN_MAX];
	int err;

	if (tw->zombie) {
		th->wait.kind = CP_WAIT_ZOMBIE;
		th->wait.detail = strdup(tw->tid == run->pid
						 ? "main thread exited; the process lives on"
						 : "exited");
		return th->wait.detail ? 0 : -ENOMEM;
	}
	if (th->nframes) {
		fn = calloc(th->nframes, sizeof(*fn));
		if (!fn)
			return -ENOMEM;
		for (size_t i = 0; i < th->nframes; i++)
			fn[i] = th->frames[i].function ? th->frames[i].function : "";
	}
	memset(&in, 0, sizeof(in));
	in.pid = run->pid;
	in.tid = tw->tid;
	in.stat = &tw->st;
	in.sc = tw->has_sc ? &tw->sc : NULL;
	in.wchan = tw->wchan ? tw->wchan : "";
	in.functions = fn;
	in.nfunctions = fn ? th->nframes : 0;
	in.tids = tids;
	in.ntids = ntids;
	in.cache = cache;
	in.mem = &run->mem;
	in.pidns = run->have_pidns ? &run->pidns : NULL;
	err = cp_wait_classify(&in, &th->wait);
	if (err == 0 && th->wait.kind == CP_WAIT_SYSCALL && !tw->wchan &&
	    (tw->st.state == 'S' || tw->st.state == 'D') &&
	    cp_proc_read_wchan(run->pid, tw->tid, wchan, sizeof(wchan)) == 0 && wchan[0]) {
		/* Skipped at capture as not needed (a restarted call whose stack says nothing). */
		cp_wait_release(&th->wait);
		in.wchan = wchan;
		err = cp_wait_classify(&in, &th->wait);
	}
	free(fn);
	/* A thread the classifier could not read is still listed, as unknown. */
	if (err == -ENOMEM)
		return err;
	return 0;
}

/* The dump of a zombie process: its leader alone. */
static int assemble_zombie_process(struct dump_run *run, const struct cp_task_stat *pst)
{
	struct cp_dump *d = run->d;
	struct cp_dump_thread *th = calloc(1, sizeof(*th));
	char buf[96];

	if (!th)
		return -ENOMEM;
	th->tid = run->pid;
	snprintf(th->name, sizeof(th->name), "%s", pst->comm);
	th->state = pst->state;
	th->stuck = run->opts->stuck_seconds > 0 ? 0 : -1;
	cp_wait_init(&th->wait);
	th->wait.kind = CP_WAIT_ZOMBIE;
	snprintf(buf, sizeof(buf), "exited, not yet reaped by its parent %d", pst->ppid);
	th->wait.detail = strdup(buf);
	if (!th->wait.detail) {
		free(th);
		return -ENOMEM;
	}
	d->threads = th;
	d->nthreads = 1;
	return 0;
}

/* The number the target's PID namespace gives host id tid, when that differs; else 0. */
static int ns_number(const struct dump_run *run, int tid)
{
	int ns;

	if (!run->have_pidns || run->pidns.same_ns)
		return 0;
	ns = cp_pidns_to_ns(&run->pidns, tid);
	return ns > 0 && ns != tid ? ns : 0;
}

/* The name of process tracer into buf: the dump's tracer's as read, else from its stat. */
static void tracer_name(const struct cp_dump *d, int tracer, char *buf, size_t size)
{
	struct cp_task_stat st;

	if (tracer == d->tracer_pid)
		snprintf(buf, size, "%s", d->tracer_name);
	else if (cp_proc_read_stat(tracer, 0, &st) == 0)
		snprintf(buf, size, "%s", st.comm);
	else
		snprintf(buf, size, "?");
}

/* A dump thread from tw: its state, and its frames once unwound. 0 or -errno. */
static int assemble_thread(struct dump_run *run, struct thread_work *tw,
			   struct cp_dump_thread *th)
{
	struct cp_dump *d = run->d;
	int err;

	th->tid = tw->tid;
	th->ns_tid = ns_number(run, tw->tid);
	snprintf(th->name, sizeof(th->name), "%s", tw->st.comm);
	th->state = tw->st.state;
	th->stuck = tw->stuck;
	cp_wait_init(&th->wait);
	th->kernel_frames = tw->kernel_frames;
	th->nkernel_frames = tw->nkernel_frames;
	tw->kernel_frames = NULL;
	tw->nkernel_frames = 0;
	th->unwind_error = tw->capture_error;
	if (!tw->captured) {
		th->capture_error = tw->capture_error;
		th->tracer_pid = tw->tracer;
		if (tw->tracer)
			tracer_name(d, tw->tracer, th->tracer_name, sizeof(th->tracer_name));
	}
	if (!tw->captured || !tw->unwound)
		return 0;
	th->stopped = tw->snap.stopped;
	th->sampled = tw->snap.sampled;
	th->stopped_ns = tw->snap.stopped_ns;
	if (tw->snap.stopped_ns > d->max_stop_ns)
		d->max_stop_ns = tw->snap.stopped_ns;
	d->total_stop_ns += tw->snap.stopped_ns;
	d->ncaptured++;
	/* A walk that reached the stack's start lost nothing to the copy's limit. */
	th->truncated = (tw->snap.stack.truncated && tw->unwind_error != 0) ||
			tw->unwind_truncated;
	th->unwind_error = tw->unwind_error;
	err = dump_symbolize_thread(run, tw, th);
	if (err < 0)
		return err;
	thread_work_release(tw);
	return 0;
}

/* Everything after the captures; only a register refill may still stop a thread here. */
static int assemble_threads(struct dump_run *run)
{
	struct cp_dump *d = run->d;
	struct cp_wait_cache *wcache = NULL;
	int *tids = NULL;
	uint64_t t0, t1;
	int err = 0;

	qsort(run->work, run->nwork, sizeof(*run->work), cmp_thread_work);
	d->threads = calloc(run->nwork + 1, sizeof(*d->threads));
	tids = calloc(run->nwork + 1, sizeof(*tids));
	if (!d->threads || !tids) {
		err = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < run->nwork; i++)
		tids[i] = run->work[i].tid;
	t0 = cp_now_ns();
	err = dump_unwind_pending(run);
	if (err < 0)
		goto out;
	t1 = cp_now_ns();
	d->unwind_ns = t1 - t0;

	for (size_t i = 0; i < run->nwork; i++) {
		err = assemble_thread(run, &run->work[i], &d->threads[d->nthreads++]);
		if (err < 0)
			goto out;
		if (dump_cancelled(run)) {
			err = -EINTR;
			goto out;
		}
	}
	t0 = cp_now_ns();
	d->symbolize_ns = t0 - t1;
	wcache = cp_wait_cache_new();
	for (size_t i = 0; i < run->nwork; i++) {
		err = classify(run, &run->work[i], &d->threads[i], tids, run->nwork, wcache);
		if (err < 0)
			goto out;
	}
	d->classify_ns = cp_now_ns() - t0;
out:
	cp_wait_cache_free(wcache);
	free(tids);
	return err;
}

/* Gone, or a zombie: a leader in state Z with no other thread left. */
static bool process_dead(int pid)
{
	struct cp_task_stat st;
	int *tids = NULL;
	size_t n = 0;
	bool dead;
	int err;

	err = cp_proc_read_stat(pid, 0, &st);
	if (err < 0)
		return dump_is_gone(err);
	if (st.state != 'Z' && st.state != 'X')
		return false;
	err = cp_proc_list_tasks(pid, &tids, &n);
	dead = err < 0 || n == 0 || (n == 1 && tids[0] == pid);
	free(tids);
	return dead;
}

static int read_identity(int pid, struct cp_dump *d)
{
	char exe[4096];
	size_t argc = 0;
	int err;

	if (cp_proc_read_exe(pid, exe, sizeof(exe)) == 0) {
		d->exe = strdup(exe);
		if (!d->exe)
			return -ENOMEM;
	}
	err = cp_proc_read_cmdline(pid, &d->cmdline, &argc);
	if (err == -ENOMEM)
		return err;
	if (err < 0 || !d->cmdline) {
		d->cmdline = calloc(1, sizeof(char *));
		if (!d->cmdline)
			return -ENOMEM;
	}
	return 0;
}

/*
 * Whether pid can be dumped, and whether it is a zombie process (only its leader left, in
 * state Z; a leader that called pthread_exit also reads Z while its other threads live on).
 * 0 or -errno as cp_dump_take.
 */
static int check_process(int pid, struct cp_task_stat *pst, bool *zombie)
{
	int err;

	err = cp_proc_read_stat(pid, 0, pst);
	if (err < 0)
		return dump_is_gone(err) ? -ESRCH : err;
	if (cp_proc_is_kernel_thread(pst))
		return -EINVAL;
	*zombie = cp_proc_is_zombie(pid, pst);
	return 0;
}

/*
 * Capture every thread, those created meanwhile too, and mark the stuck ones: the dump's
 * threads in the making, in run->work. 0 or -errno as cp_dump_take.
 */
static int capture_threads(struct dump_run *run)
{
	struct cp_dump *d = run->d;
	uint64_t t0;
	int err;

	d->time_ns = cp_wall_ns();
	t0 = cp_now_ns();
	if (cp_fd_count(run->pid, &d->fds) == 0)
		d->has_fds = true;
	run->have_maps = cp_maps_read(run->pid, &run->maps) == 0;
	cp_mem_open(&run->mem, run->pid);
	err = dump_capture_all(run);
	if (!err)
		err = dump_capture_newcomers(run);
	d->capture_ns = cp_now_ns() - t0;
	if (err == -ESRCH || err == -ENOENT)
		err = 0;
	if (err < 0)
		return err;

	/*
	 * What the target stores of its threads' ids is in its own PID namespace's numbers: read
	 * them once the threads are known (nothing is read when it shares cprof's namespace).
	 */
	err = cp_pidns_map_read(run->pid, &run->pidns);
	if (err == -ENOMEM)
		return err;
	run->have_pidns = err == 0;
	if (run->have_pidns)
		d->ns_pid = ns_number(run, run->pid);
	err = 0;

	if (process_dead(run->pid)) {
		bool any = false;

		for (size_t i = 0; i < run->nwork; i++)
			any = any || run->work[i].captured;
		if (!any)
			return -ESRCH;
		d->process_exited = true;
	}
	if (run->nwork == 0)
		return -ESRCH;
	if (d->stuck_seconds)
		dump_stuck_mark(run);
	return 0;
}

int cp_dump_take(int pid, const struct cp_dump_opts *opts, struct cp_symbolizer *sym,
		 struct cp_dump *out)
{
	static const struct cp_dump_opts no_opts;
	struct cp_dump_opts traced_opts;
	struct cp_dump d;
	struct dump_run run;
	struct cp_task_stat pst;
	struct cp_task_status pstatus;
	bool zombie;
	int err;

	if (!opts)
		opts = &no_opts;
	memset(&d, 0, sizeof(d));
	memset(&run, 0, sizeof(run));
	run.pid = pid;
	run.mem = CP_MEM_BY_PID(pid);
	run.opts = opts;
	run.sym = sym;
	run.d = &d;
	d.pid = pid;
	d.stuck_seconds = opts->stuck_seconds > 0 ? opts->stuck_seconds : 0;

	err = check_process(pid, &pst, &zombie);
	if (err < 0)
		return err;
	err = read_identity(pid, &d);
	if (err < 0)
		goto fail;
	if (zombie) {
		d.time_ns = cp_wall_ns();
		err = assemble_zombie_process(&run, &pst);
		if (err < 0)
			goto fail;
		goto grouped;
	}

	/*
	 * Traced by gdb or strace: no stop is possible (one tracer only), so every thread is
	 * captured live or by a sample, --stop-all or not.
	 */
	if (cp_proc_read_status(pid, 0, &pstatus) == 0 && pstatus.tracer_pid > 0) {
		struct cp_task_stat tst;

		d.tracer_pid = pstatus.tracer_pid;
		snprintf(d.tracer_name, sizeof(d.tracer_name), "%s",
			 cp_proc_read_stat(d.tracer_pid, 0, &tst) == 0 ? tst.comm : "?");
		traced_opts = *opts;
		traced_opts.flags &= ~CP_DUMP_STOP_ALL;
		run.opts = &traced_opts;
	}
	if (d.stuck_seconds) {
		err = dump_go_first_look(&run);
		if (err < 0)
			goto fail;
		err = dump_stuck_watch(&run);
		if (err < 0)
			goto fail;
	}
	err = capture_threads(&run);
	if (err < 0)
		goto fail;

	err = assemble_threads(&run);
	if (err < 0)
		goto fail;
	err = dump_unwind_extra(&run);
	if (err < 0)
		goto fail;
	err = dump_go_read(&run);
	if (err < 0)
		goto fail;
	err = dump_infer_lock_holders(&run);
	if (err < 0)
		goto fail;
	err = cp_dump_find_deadlocks(&d);
	if (err == -ENOMEM)
		goto fail;
	err = dump_find_leaks(&run);
	if (err < 0)
		goto fail;
grouped:
	if (opts->flags & CP_DUMP_GROUP) {
		err = cp_dump_group(&d);
		if (err < 0)
			goto fail;
	}
	dump_run_release(&run);
	*out = d;
	return 0;
fail:
	dump_run_release(&run);
	cp_dump_release(&d);
	return err;
}

static bool is_lock_wait(const struct cp_dump_thread *th)
{
	const struct cp_wait *w = &th->wait;

	return (w->kind == CP_WAIT_MUTEX || w->kind == CP_WAIT_RWLOCK) &&
	       (w->owner_tid > 0 || th->inferred_owner_tid > 0);
}

int cp_dump_find_deadlocks(struct cp_dump *dump)
{
	struct cp_wait_graph g = { 0 };
	struct cp_lock_wait *waits = NULL;
	struct cp_deadlock *found = NULL;
	size_t nfound = 0;
	int *tids = NULL;
	bool sorted = true;
	int err;

	if (!dump)
		return -EINVAL;
	if (dump->nthreads && dump->threads) {
		waits = calloc(dump->nthreads, sizeof(*waits));
		tids = calloc(dump->nthreads, sizeof(*tids));
		if (!waits || !tids) {
			err = -ENOMEM;
			goto out;
		}
		for (size_t i = 0; i < dump->nthreads; i++) {
			const struct cp_dump_thread *th = &dump->threads[i];
			const struct cp_wait *w = &th->wait;

			tids[i] = th->tid;
			sorted = sorted && (i == 0 || tids[i - 1] < tids[i]);
			if (!is_lock_wait(th))
				continue;
			waits[g.nwaits++] = (struct cp_lock_wait){
				.waiter_tid = th->tid,
				.waiter_name = th->name,
				.owner_tid = w->owner_tid > 0 ? w->owner_tid : th->inferred_owner_tid,
				.owner_inferred = w->owner_tid <= 0,
				.address = w->address,
				.has_address = w->has_address,
				.rwlock = w->kind == CP_WAIT_RWLOCK,
			};
		}
		if (!sorted)
			qsort(tids, dump->nthreads, sizeof(*tids), cmp_int);
	}
	g.pid = dump->pid;
	g.waits = waits;
	g.tids = tids;
	g.ntids = tids ? dump->nthreads : 0;
	g.process_exited = dump->process_exited;
	err = cp_deadlock_find(&g, &found, &nfound);
	if (err < 0)
		goto out;
	/* Findings from an earlier call are replaced, not duplicated. */
	cp_deadlock_free(dump->deadlocks, dump->ndeadlocks);
	dump->deadlocks = found;
	dump->ndeadlocks = nfound;
out:
	free(waits);
	free(tids);
	return err;
}

void cp_dump_release(struct cp_dump *d)
{
	if (!d)
		return;
	free(d->exe);
	cp_proc_free_argv(d->cmdline);
	for (size_t i = 0; i < d->nthreads; i++) {
		struct cp_dump_thread *th = &d->threads[i];

		cp_wait_release(&th->wait);
		if (!th->frames_shared)
			free(th->frames);
		dump_free_strv(th->kernel_frames, th->nkernel_frames);
	}
	free(d->threads);
	for (size_t i = 0; i < d->nextra; i++) {
		cp_wait_release(&d->extra[i].wait);
		free(d->extra[i].frames);
	}
	free(d->extra);
	for (size_t i = 0; i < d->ngroups; i++)
		free(d->groups[i].tids);
	free(d->groups);
	cp_deadlock_free(d->deadlocks, d->ndeadlocks);
	for (size_t i = 0; i < d->nleaks; i++)
		free(d->leaks[i].tids);
	free(d->leaks);
	dump_go_release(d);
	dump_go_diag_release(NULL, d);
	if (d->has_strings)
		cp_strtab_release(&d->strings);
	memset(d, 0, sizeof(*d));
}

