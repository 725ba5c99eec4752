/* Taking a thread dump: read each thread's state, capture it; then unwind, symbolize, classify. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "capture.h"
#include "dump.h"
#include "maps.h"
#include "proc.h"
#include "symbolize.h"
#include "unwind.h"
#include "util.h"

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

/* Everything known about one thread between its capture and its place in the dump. */
struct item {
	int tid;
	struct cp_task_stat st;
	struct cp_task_syscall sc;
	bool has_sc;
	char *wchan;		/* owned; NULL: not read, or empty */
	bool zombie;
	bool captured;
	int capture_error;
	struct cp_thread_snap snap;
	char **kframes;
	size_t nkframes;
	int stuck;		/* -1 null, 0, 1 */
	/* The walk of its stack, done (in parallel) before symbolization: */
	uint64_t *upc;		/* owned; pcs innermost first */
	uint8_t *uflags;	/* owned; enum cp_frame_flags */
	size_t un;
	int uerr;		/* 0, or why the walk ended early */
	bool utrunc;		/* depth cap reached */
	bool unwound;
	/* Left by capture_one() for settle(): */
	bool drop;		/* vanished: not listed */
	int err;		/* a refusal or -ENOMEM, which may fail the whole dump */
	int kernel_error;	/* why its kernel stack could not be read */
};

/* One look at a thread's progress counters for --stuck. */
struct progress {
	int tid;
	uint64_t cpu;
	uint64_t ctxt;
};

/*
 * The frames each pc of this dump symbolized to. Threads of one process share most of their
 * pcs (a hundred workers blocked at the same call), so a pc is looked up once a dump:
 * entries by (pc, exact) in a cp_htab, frames kept in one pool.
 */
struct pc_memo_entry {
	uint64_t key;		/* memo_key(pc, exact) */
	uint32_t off;		/* into pool */
	uint32_t n;
};

struct pc_memo {
	struct cp_htab h;
	struct pc_memo_entry *e;
	size_t ne, e_alloc;
	struct cp_frame *pool;
	size_t npool, pool_cap;
};

/*
 * Whole stacks met before in this dump, by their unwound (pc, exact) keys: threads parked at
 * one place (a pool's hundred workers) share one frames array instead of a copy each. At
 * 1003 threads in 13 distinct stacks that is 350 KB of fresh pages not touched.
 */
struct stack_memo_entry {
	uint32_t owner;		/* index into the dump's threads */
	uint32_t off;		/* into keys */
	uint32_t n;
};

struct stack_memo {
	struct cp_htab h;
	struct stack_memo_entry *e;
	size_t ne, e_alloc;
	uint64_t *keys;
	size_t nkeys, keys_cap;
};

struct take {
	int pid;
	const struct cp_dump_opts *opts;
	struct cp_symbolizer *sym;
	struct cp_dump *d;
	struct item *items;
	size_t nitems;
	size_t alloc;
	int *seen;		/* sorted tids listed so far */
	size_t nseen;
	struct progress *look1;
	size_t nlook1;
	struct progress *look2;
	size_t nlook2;
	struct cp_maps maps;	/* read before the captures, to find stack ends */
	bool have_maps;
	size_t stack_max;	/* per-thread copy limit for this dump */
	size_t ncaptured;
	struct cp_frame *scratch;	/* symbolize_stack()'s work array */
	size_t scratch_cap;
	struct pc_memo memo;		/* symbolize_stack()'s answers by pc */
	struct stack_memo stacks;	/* analyse()'s stacks by their pcs */
	struct cp_switch_watch switches;	/* the CPUs' context switches, for big dumps */
	bool have_switches;
};

static bool cancelled(const struct take *t)
{
	return t->opts->cancel && *t->opts->cancel;
}

static int cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;

	return (x > y) - (x < y);
}

static int cmp_progress(const void *a, const void *b)
{
	return cmp_int(&((const struct progress *)a)->tid, &((const struct progress *)b)->tid);
}

static int cmp_item(const void *a, const void *b)
{
	return cmp_int(&((const struct item *)a)->tid, &((const struct item *)b)->tid);
}

static void free_strv(char **v, size_t n)
{
	if (!v)
		return;
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static void item_release(struct item *it)
{
	if (it->captured)
		cp_thread_snap_release(&it->snap);
	it->captured = false;
	free(it->upc);
	free(it->uflags);
	it->upc = NULL;
	it->uflags = NULL;
	it->un = 0;
	it->unwound = false;
	free_strv(it->kframes, it->nkframes);
	it->kframes = NULL;
	it->nkframes = 0;
}

static void take_release(struct take *t)
{
	free(t->scratch);
	t->scratch = NULL;
	t->scratch_cap = 0;
	cp_htab_release(&t->memo.h);
	free(t->memo.e);
	free(t->memo.pool);
	memset(&t->memo, 0, sizeof(t->memo));
	cp_htab_release(&t->stacks.h);
	free(t->stacks.e);
	free(t->stacks.keys);
	memset(&t->stacks, 0, sizeof(t->stacks));
	for (size_t i = 0; i < t->nitems; i++) {
		item_release(&t->items[i]);
		free(t->items[i].wchan);
	}
	free(t->items);
	free(t->seen);
	free(t->look1);
	free(t->look2);
	if (t->have_maps)
		cp_maps_release(&t->maps);
	t->have_maps = false;
	if (t->have_switches)
		cp_switch_watch_close(&t->switches);
	t->have_switches = false;
	t->items = NULL;
	t->seen = NULL;
	t->look1 = NULL;
	t->look2 = NULL;
	t->nitems = t->nseen = t->nlook1 = t->nlook2 = 0;
}

static bool is_gone(int err)
{
	return err == -ESRCH || err == -ENOENT;
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
			free_strv(v, nv);
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

static bool seen_has(const struct take *t, int tid)
{
	return bsearch(&tid, t->seen, t->nseen, sizeof(int), cmp_int) != NULL;
}

static int seen_add(struct take *t, const int *tids, size_t n)
{
	int *v = realloc(t->seen, (t->nseen + n + 1) * sizeof(int));

	if (!v)
		return -ENOMEM;
	memcpy(v + t->nseen, tids, n * sizeof(int));
	t->seen = v;
	t->nseen += n;
	qsort(t->seen, t->nseen, sizeof(int), cmp_int);
	return 0;
}

/* A kernel symbol name: 128 bytes (KSYM_NAME_LEN) before Linux 6.1. */
#define WCHAN_MAX 512

/*
 * Where tid sleeps in the kernel, into *out (malloc'd) unless read already; left NULL when
 * unknown or empty. A pointer, not an array in every item: most threads never need it.
 */
static void read_wchan(int pid, int tid, char **out)
{
	char buf[WCHAN_MAX];

	if (!*out && cp_proc_read_wchan(pid, tid, buf, sizeof(buf)) == 0 && buf[0])
		*out = strdup(buf);
}

/*
 * Read one thread's /proc state and capture it, into it (whose tid is set). Touches nothing
 * but it, so that several threads of cprof can capture different threads at once; what the
 * outcome means for the dump is decided afterwards, in tid order, by settle(). In a live
 * capture the thread is never stopped, so its state may be read around it; a stop changes
 * what /proc says (a stopped thread reads 't', its wchan becomes ptrace_stop), so with
 * CP_DUMP_STOP_ALL the state is read first.
 */
static void capture_one(struct take *t, struct item *it, int pre)
{
	bool stop_all = t->opts->flags & CP_DUMP_STOP_ALL;
	struct cp_capture_opts copts = {
		.stack_max = t->stack_max,
		.flags = stop_all ? CP_CAPTURE_STOP : CP_CAPTURE_LIVE,
		.maps = t->have_maps ? &t->maps : NULL,
	};
	bool have_st = false;
	int tid = it->tid, err;

	/* A live capture reads the state and name itself (status): one file less per thread. */
	if (stop_all) {
		err = cp_proc_read_stat(t->pid, tid, &it->st);
		if (err < 0) {
			it->drop = is_gone(err);
			it->err = it->drop ? 0 : err;
			return;
		}
		have_st = true;
	}
	if (t->opts->flags & CP_DUMP_KERNEL) {
		err = read_kernel_stack(t->pid, tid, &it->kframes, &it->nkframes);
		if (err == -ENOMEM) {
			it->err = err;
			return;
		}
		if (err < 0 && !is_gone(err))
			it->kernel_error = err;
	}
	if (have_st && (it->st.state == 'Z' || it->st.state == 'X')) {
		it->zombie = true;
		it->has_sc = cp_proc_read_syscall(t->pid, tid, &it->sc) == 0;
		return;
	}
	if (stop_all) {
		it->has_sc = cp_proc_read_syscall(t->pid, tid, &it->sc) == 0;
		read_wchan(t->pid, tid, &it->wchan);
	}
	copts.stat = have_st ? &it->st : NULL;
	/* pre: what capture_many() already did for it (0: captured; -EAGAIN: not tried). */
	err = pre == -EAGAIN ? cp_capture_thread(t->pid, tid, &copts, &it->snap) : pre;
	if (err == 0) {
		it->captured = true;
		/* The capture read the syscall line before touching the thread: reuse it. */
		if (it->snap.has_syscall) {
			it->sc = it->snap.sc;
			it->has_sc = true;
		}
		if (!have_st && it->snap.has_state) {
			it->st.tid = tid;
			it->st.state = it->snap.state;
			snprintf(it->st.comm, sizeof(it->st.comm), "%s", it->snap.comm);
			have_st = true;
		}
	}
	if (!have_st) {
		int serr = cp_proc_read_stat(t->pid, tid, &it->st);

		if (serr < 0) {
			item_release(it);
			it->drop = is_gone(serr);
			it->err = it->drop ? 0 : serr;
			return;
		}
		if (it->st.state == 'Z' || it->st.state == 'X') {
			item_release(it);
			it->zombie = true;
			it->has_sc = cp_proc_read_syscall(t->pid, tid, &it->sc) == 0;
			return;
		}
	}
	if (!it->has_sc)
		it->has_sc = cp_proc_read_syscall(t->pid, tid, &it->sc) == 0;
	/* Most waits are told by their syscall alone: read wchan only where it counts. */
	if (!stop_all && !it->wchan &&
	    cp_wait_needs_wchan(it->st.state, it->has_sc ? &it->sc : NULL))
		read_wchan(t->pid, tid, &it->wchan);
	if (err == 0)
		return;
	if (is_gone(err)) {
		it->drop = true;
		return;
	}
	if (err == -EBUSY || err == -EPERM || err == -EACCES) {
		struct cp_task_stat now;
		int serr = cp_proc_read_stat(t->pid, tid, &now);

		/* The kernel refuses to trace a thread that is exiting: that is a vanished one. */
		if (is_gone(serr) || (serr == 0 && (now.state == 'Z' || now.state == 'X'))) {
			it->drop = true;
			return;
		}
	}
	if (err == -EBUSY || err == -EPERM || err == -EACCES || err == -ENOMEM) {
		it->err = err;
		return;
	}
	/* Anything else: list the thread without a stack, and say why. */
	it->capture_error = err;
}

/*
 * Decide, in tid order, what the captures of items [from, nitems) mean, and drop the threads
 * that vanished. A refusal is the answer for the whole process when it comes first; once
 * other threads were captured, it only concerns this one thread (say, one traced by
 * strace -p TID).
 */
static int settle(struct take *t, size_t from, int *tracer)
{
	size_t out = from;
	int ret = 0;

	for (size_t i = from; i < t->nitems; i++) {
		struct item *it = &t->items[i];
		int err = it->err;

		if (it->drop || ret < 0) {
			item_release(it);
			continue;
		}
		if (err == -EBUSY || err == -EPERM || err == -EACCES) {
			if (t->ncaptured) {
				it->capture_error = err;
				err = 0;
			}
		}
		if (err < 0) {
			if (err == -EBUSY && tracer) {
				struct cp_task_status ts;

				if (cp_proc_read_status(t->pid, it->tid, &ts) == 0)
					*tracer = ts.tracer_pid;
			}
			item_release(it);
			ret = err;
			continue;
		}
		if (it->captured)
			t->ncaptured++;
		if (it->kernel_error && !t->d->kernel_error)
			t->d->kernel_error = it->kernel_error;
		if (out != i)
			t->items[out] = *it;
		out++;
	}
	t->nitems = out;
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

struct shapes;
/* What one thread of cprof needs to unwind: its own unwinder, result and stack shapes. */
struct walker {
	struct cp_unwinder *uw;		/* NULL when the maps could not be read */
	struct cp_unwind_result *ur;
	struct shapes *sh;
	const struct cp_maps *maps;
};

static int walker_init(struct walker *wk, int pid, const struct cp_maps *maps);
static void walker_release(struct walker *wk);
static int walk_item(struct take *t, struct item *it, struct walker *wk);

struct capture_work {
	struct take *t;
	struct item *items;
	size_t n;
	atomic_size_t next;
};

/*
 * Items [0, n) in one sweep of cp_capture_live_many (pre[i] 0 or -errno), or all -EAGAIN
 * when each must be captured on its own (CP_DUMP_STOP_ALL: states read before any stop).
 */
static void capture_many(struct take *t, struct item *items, size_t n, int *pre)
{
	struct cp_capture_opts copts = {
		.stack_max = t->stack_max,
		.flags = CP_CAPTURE_LIVE,
		.maps = t->have_maps ? &t->maps : NULL,
		.switches = t->have_switches ? &t->switches : NULL,
	};
	struct cp_thread_snap snaps[CP_CAPTURE_MANY_MAX];
	int tids[CP_CAPTURE_MANY_MAX];

	for (size_t i = 0; i < n; i++) {
		pre[i] = -EAGAIN;
		tids[i] = items[i].tid;
	}
	if (t->opts->flags & CP_DUMP_STOP_ALL)
		return;
	if (cp_capture_live_many(t->pid, tids, n, &copts, snaps, pre) < 0) {
		for (size_t i = 0; i < n; i++)
			pre[i] = -EAGAIN;
		return;
	}
	for (size_t i = 0; i < n; i++)
		if (pre[i] == 0)
			items[i].snap = snaps[i];
}

static void *capture_worker(void *arg)
{
	struct capture_work *w = arg;
	int pre[CAPTURE_BATCH];
	struct walker wk;
	bool walking = walker_init(&wk, w->t->pid, w->t->have_maps ? &w->t->maps : NULL) == 0;

	for (;;) {
		size_t i = atomic_fetch_add(&w->next, CAPTURE_BATCH), n;

		if (i >= w->n || cancelled(w->t))
			break;
		n = w->n - i < CAPTURE_BATCH ? w->n - i : CAPTURE_BATCH;
		capture_many(w->t, &w->items[i], n, pre);
		for (size_t j = 0; j < n; j++) {
			if (cancelled(w->t)) {
				/* Swept but not looked at: nothing of them is kept. */
				for (size_t k = j; k < n; k++) {
					if (pre[k] == 0)
						cp_thread_snap_release(&w->items[i + k].snap);
					w->items[i + k].drop = true;
				}
				break;
			}
			capture_one(w->t, &w->items[i + j], pre[j]);
		}
		/*
		 * The batch's stacks are unwound now, on the copies, and freed: the next batch
		 * reuses their memory, where copies of every thread kept until the end would
		 * touch a fresh page for each (dear on some virtual machines). Failures are left
		 * to analyse(), which unwinds whatever is not done yet.
		 */
		for (size_t j = 0; j < n && walking && !cancelled(w->t); j++)
			if (!w->items[i + j].drop && walk_item(w->t, &w->items[i + j], &wk) < 0)
				break;
	}
	if (walking)
		walker_release(&wk);
	return NULL;
}

/*
 * How many threads of cprof capture (and unwind): at most half the CPUs. A capture is system
 * calls, and a target worth dumping often keeps CPUs busy itself: on 2 CPUs with one target
 * thread spinning, 1003 threads took 40 ms and 63 ms of CPU with one capturing thread, 46-50
 * ms and 96 ms with four (they only contended in the kernel).
 */
static size_t capture_threads(size_t n)
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
static void run_shared(void *(*fn)(void *), void *arg, size_t k)
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

/* Capture tids (not seen before) as new items; then settle them. */
static int collect(struct take *t, const int *tids, size_t n, int *tracer)
{
	struct capture_work w = { .t = t };
	size_t from = t->nitems;

	if (!n)
		return 0;
	if (t->alloc - t->nitems < n) {
		size_t na = t->nitems + n;
		struct item *v = realloc(t->items, na * sizeof(*v));

		if (!v)
			return -ENOMEM;
		t->items = v;
		t->alloc = na;
	}
	w.items = &t->items[from];
	w.n = n;
	atomic_init(&w.next, 0);
	memset(w.items, 0, n * sizeof(*w.items));
	for (size_t i = 0; i < n; i++) {
		w.items[i].tid = tids[i];
		w.items[i].stuck = -1;
	}
	t->nitems += n;
	run_shared(capture_worker, &w, capture_threads(n));
	/* Items not reached after a cancel: nothing was read for them. */
	for (size_t i = atomic_load(&w.next); i < n; i++)
		w.items[i].drop = true;
	if (cancelled(t)) {
		settle(t, from, NULL);
		return -EINTR;
	}
	return settle(t, from, tracer);
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

static int look(int pid, struct progress **out, size_t *nout)
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
static int watch_sleep(const struct take *t, int s)
{
	uint64_t end = cp_now_ns() + (uint64_t)s * 1000000000ull;

	while (cp_now_ns() < end) {
		struct timespec ts = { 0, 50 * 1000 * 1000 };

		if (cancelled(t))
			return -EINTR;
		nanosleep(&ts, NULL);
	}
	return cancelled(t) ? -EINTR : 0;
}

static void mark_stuck(struct take *t)
{
	for (size_t i = 0; i < t->nitems; i++) {
		struct item *it = &t->items[i];
		struct progress key = { .tid = it->tid };
		const struct progress *a, *b;

		a = bsearch(&key, t->look1, t->nlook1, sizeof(key), cmp_progress);
		b = bsearch(&key, t->look2, t->nlook2, sizeof(key), cmp_progress);
		/* A thread born during the watch made progress by being born. */
		if (!a || !b)
			it->stuck = 0;
		else
			it->stuck = a->cpu == b->cpu && a->ctxt == b->ctxt;
	}
}

/* Intern a module path in the dump so frames can borrow it beyond the maps' lifetime. */
static const char *intern(struct cp_dump *d, const char *s)
{
	char **v;

	for (size_t i = d->nstrings; i-- > 0;)
		if (!strcmp(d->strings[i], s))
			return d->strings[i];
	v = realloc(d->strings, (d->nstrings + 1) * sizeof(*v));
	if (!v)
		return NULL;
	d->strings = v;
	v[d->nstrings] = strdup(s);
	if (!v[d->nstrings])
		return NULL;
	return v[d->nstrings++];
}

/* A pc and how it is looked up (exactly, or at the call before it): never 0. */
static uint64_t memo_key(uint64_t pc, bool exact)
{
	return ((pc << 1) | exact) + 1;
}

static bool pc_memo_eq(const void *ctx, uint32_t idx, const void *key)
{
	return ((const struct pc_memo *)ctx)->e[idx].key == *(const uint64_t *)key;
}

static const struct pc_memo_entry *memo_find(const struct pc_memo *m, uint64_t pc, bool exact)
{
	uint64_t key = memo_key(pc, exact);
	int64_t i = cp_htab_find(&m->h, (uint32_t)cp_hash_mix(0, key), pc_memo_eq, m, &key);

	return i < 0 ? NULL : &m->e[i];
}

/* Remember pc's k frames; silently not when out of memory (a memo, not a record). */
static void memo_add(struct pc_memo *m, uint64_t pc, bool exact, const struct cp_frame *f,
		     size_t k)
{
	uint64_t key = memo_key(pc, exact);

	if (m->ne >= UINT32_MAX || m->npool > UINT32_MAX - k ||
	    cp_grow((void **)&m->e, &m->e_alloc, m->ne + 1, sizeof(*m->e)) < 0 ||
	    cp_grow((void **)&m->pool, &m->pool_cap, m->npool + k, sizeof(*m->pool)) < 0)
		return;
	m->e[m->ne] = (struct pc_memo_entry){ key, (uint32_t)m->npool, (uint32_t)k };
	if (cp_htab_insert(&m->h, (uint32_t)cp_hash_mix(0, key), (uint32_t)m->ne) < 0)
		return;
	memcpy(&m->pool[m->npool], f, k * sizeof(*f));
	m->npool += k;
	m->ne++;
}

/*
 * The frames of one pc into out (room for CP_SYM_MAX_INLINE): the function, file and line
 * and the functions inlined there, or module+offset. How many, at least 1; 0 on ENOMEM.
 */
static size_t symbolize_pc(struct take *t, const struct cp_maps *maps, uint64_t pc, bool exact,
			   struct cp_frame *out)
{
	uint64_t lookup = exact ? pc : pc - 1;
	const struct cp_map *map = maps ? cp_maps_find(maps, lookup) : NULL;
	struct cp_sym_result res;
	struct cp_frame base = { .pc = pc };
	size_t k;

	if (map) {
		base.module = intern(t->d, map->path[0] ? map->path : "[anon]");
		if (!base.module)
			return 0;
		base.offset = pc - map->start + map->offset;
		base.has_offset = true;
	}
	/* cp_sym_resolve fills res whole when it succeeds; only n counts otherwise. */
	if (!map || !t->sym || cp_sym_resolve(t->sym, t->pid, map, lookup, &res) < 0)
		res.n = 0;
	if (res.n == 0) {
		out[0] = base;
		return 1;
	}
	for (k = 0; k < res.n && k < CP_SYM_MAX_INLINE; k++) {
		struct cp_frame f = base;

		f.function = res.frames[k].function ? res.frames[k].function
						    : res.frames[k].system_name;
		f.file = res.frames[k].file;
		f.line = res.frames[k].line;
		f.inlined = res.frames[k].inlined;
		out[k] = f;
	}
	return k;
}

/* A caller's pc is a return address: it is looked up at the call instruction before it. */
static bool frame_exact(const struct cp_unwind_result *ur, size_t i)
{
	return i == 0 || (ur->flags[i] & CP_FRAME_SIGNAL) || ur->pc[i] == 0;
}

static uint32_t stack_hash(const struct cp_unwind_result *ur)
{
	uint64_t h = ur->n;

	for (size_t i = 0; i < ur->n; i++)
		h = cp_hash_mix(h, memo_key(ur->pc[i], frame_exact(ur, i)));
	return (uint32_t)h;
}

static bool stack_memo_eq(const void *ctx, uint32_t idx, const void *key)
{
	const struct stack_memo *m = ctx;
	const struct stack_memo_entry *e = &m->e[idx];
	const struct cp_unwind_result *ur = key;

	if (e->n != ur->n)
		return false;
	for (size_t i = 0; i < ur->n; i++)
		if (m->keys[e->off + i] != memo_key(ur->pc[i], frame_exact(ur, i)))
			return false;
	return true;
}

/* The index of an earlier thread of this dump with the stack ur, or -1. */
static long stack_find(const struct stack_memo *m, const struct cp_unwind_result *ur,
		       uint32_t hash)
{
	int64_t i = cp_htab_find(&m->h, hash, stack_memo_eq, m, ur);

	return i < 0 ? -1 : (long)m->e[i].owner;
}

/* Remember that thread owner has the stack ur; silently not when out of memory. */
static void stack_add(struct stack_memo *m, const struct cp_unwind_result *ur, uint32_t hash,
		      size_t owner)
{
	if (owner >= UINT32_MAX || m->ne >= UINT32_MAX || m->nkeys > UINT32_MAX - ur->n ||
	    cp_grow((void **)&m->e, &m->e_alloc, m->ne + 1, sizeof(*m->e)) < 0 ||
	    cp_grow((void **)&m->keys, &m->keys_cap, m->nkeys + ur->n, sizeof(*m->keys)) < 0)
		return;
	m->e[m->ne] = (struct stack_memo_entry){ (uint32_t)owner, (uint32_t)m->nkeys,
						 (uint32_t)ur->n };
	if (cp_htab_insert(&m->h, hash, (uint32_t)m->ne) < 0)
		return;
	for (size_t i = 0; i < ur->n; i++)
		m->keys[m->nkeys++] = memo_key(ur->pc[i], frame_exact(ur, i));
	m->ne++;
}

/* Turn an unwound stack into source-level frames (inlined calls expanded). */
static int symbolize_stack(struct take *t, const struct cp_maps *maps,
			   const struct cp_unwind_result *ur, struct cp_dump_thread *th)
{
	size_t cap = ur->n * CP_SYM_MAX_INLINE, n = 0;
	struct cp_frame *fr;

	if (!ur->n)
		return 0;
	/*
	 * Built in a scratch array sized for the worst case (every frame inlined 16 deep), then
	 * copied at its true size: a worst-case array per thread would be megabytes of fresh
	 * pages on a dump of a thousand threads.
	 */
	if (cap > t->scratch_cap) {
		struct cp_frame *v = realloc(t->scratch, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		t->scratch = v;
		t->scratch_cap = cap;
	}
	fr = t->scratch;
	for (size_t i = 0; i < ur->n; i++) {
		uint64_t pc = ur->pc[i];
		bool exact = frame_exact(ur, i);
		const struct pc_memo_entry *hit = memo_find(&t->memo, pc, exact);
		size_t k;

		if (!hit) {
			k = symbolize_pc(t, maps, pc, exact, &fr[n]);
			if (!k)
				return -ENOMEM;
			memo_add(&t->memo, pc, exact, &fr[n], k);
		} else {
			k = hit->n;
			memcpy(&fr[n], &t->memo.pool[hit->off], k * sizeof(*fr));
		}
		n += k;
	}
	th->frames = malloc(n * sizeof(*fr));
	if (!th->frames)
		return -ENOMEM;
	memcpy(th->frames, fr, n * sizeof(*fr));
	th->nframes = n;
	return 0;
}

/* th's frames: borrowed from an earlier thread with the same stack, or symbolized. */
static int symbolize_or_share(struct take *t, const struct cp_maps *maps,
			      const struct cp_unwind_result *ur, struct cp_dump_thread *th)
{
	uint32_t hash;
	long owner;
	int err;

	if (!ur->n)
		return 0;
	hash = stack_hash(ur);
	owner = stack_find(&t->stacks, ur, hash);
	if (owner >= 0) {
		const struct cp_dump_thread *o = &t->d->threads[owner];

		th->frames = o->frames;
		th->nframes = o->nframes;
		th->frames_shared = true;
		return 0;
	}
	err = symbolize_stack(t, maps, ur, th);
	if (err == 0)
		stack_add(&t->stacks, ur, hash, (size_t)(th - t->d->threads));
	return err;
}

static int classify(const struct take *t, const struct item *it, struct cp_dump_thread *th,
		    const int *tids, size_t ntids, struct cp_wait_cache *cache)
{
	const char **fn = NULL;
	struct cp_wait_input in;
	char wchan[WCHAN_MAX];
	int err;

	if (it->zombie) {
		th->wait.kind = CP_WAIT_ZOMBIE;
		th->wait.detail = strdup(it->tid == t->pid
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
	in.pid = t->pid;
	in.tid = it->tid;
	in.stat = &it->st;
	in.sc = it->has_sc ? &it->sc : NULL;
	in.wchan = it->wchan ? it->wchan : "";
	in.functions = fn;
	in.nfunctions = fn ? th->nframes : 0;
	in.tids = tids;
	in.ntids = ntids;
	in.cache = cache;
	err = cp_wait_classify(&in, &th->wait);
	if (err == 0 && th->wait.kind == CP_WAIT_SYSCALL && !it->wchan &&
	    (it->st.state == 'S' || it->st.state == 'D') &&
	    cp_proc_read_wchan(t->pid, it->tid, wchan, sizeof(wchan)) == 0 && wchan[0]) {
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

static int take_zombie_process(struct take *t, const struct cp_task_stat *pst)
{
	struct cp_dump *d = t->d;
	struct cp_dump_thread *th = calloc(1, sizeof(*th));
	char buf[96];

	if (!th)
		return -ENOMEM;
	th->tid = t->pid;
	snprintf(th->name, sizeof(th->name), "%s", pst->comm);
	th->state = pst->state;
	th->stuck = t->opts->stuck_seconds > 0 ? 0 : -1;
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

/*
 * A live capture has only sp and pc. Most stacks unwind from those alone (CFA from rsp, callee-
 * saved registers restored from the stack), but a frame whose CFA is rbp-based, with no inner
 * frame having saved rbp, needs the real register.
 */
static bool needs_registers(const struct item *it, int uerr, const struct cp_unwind_result *ur)
{
	if (!it->snap.live)
		return false;
	return uerr == -ENODATA || (uerr == 0 && ur->stop_reason == -ENODATA);
}

/*
 * Then stop the thread once to get all its registers, unless it sits in a call a stop would
 * fail with EINTR (or in uninterruptible sleep): there the partial stack stands. Returns true
 * when it->snap was replaced by a stopped capture.
 */
static bool refill_registers(struct take *t, struct item *it, const struct cp_maps *maps)
{
	struct cp_capture_opts copts = {
		.stack_max = t->stack_max,
		.flags = CP_CAPTURE_STOP,
		.maps = maps,
	};
	struct cp_task_syscall now;
	struct cp_thread_snap snap;

	if (it->st.state == 'D')
		return false;
	if (it->has_sc && it->sc.in_syscall && cp_capture_syscall_may_eintr(it->sc.nr))
		return false;
	/* Where it is now, a moment before the stop. */
	if (cp_proc_read_syscall(t->pid, it->tid, &now) < 0 ||
	    (now.in_syscall && cp_capture_syscall_may_eintr(now.nr)))
		return false;
	if (cp_capture_thread(t->pid, it->tid, &copts, &snap) < 0)
		return false;
	cp_thread_snap_release(&it->snap);
	it->snap = snap;
	return true;
}

/*
 * Stack shapes. In a thread pool hundreds of threads block at the same place through the same
 * calls: the same pcs, with return addresses at the same offsets from the stack pointer. Once
 * one such stack has been walked from sp and pc alone (so every step was relative to sp), a
 * thread blocked at the same pc whose stack holds those same return addresses at those same
 * offsets has that same walk: checking a few words replaces the unwinder (whose global
 * cache costs two sigprocmask calls per step). Per unwinding helper, bounded.
 */
#define SHAPES_MAX 64

struct shape {
	size_t n;
	uint64_t *pc;		/* pc[0] is where the thread is; pc[i] its return addresses */
	uint64_t *off;		/* off[i]: frame i's sp minus the innermost sp */
};

struct shapes {
	struct shape v[SHAPES_MAX];
	size_t n;
};

static void shapes_release(struct shapes *sh)
{
	for (size_t i = 0; i < sh->n; i++) {
		free(sh->v[i].pc);
		free(sh->v[i].off);
	}
	sh->n = 0;
}

static bool word_at(const struct cp_stack *st, uint64_t off, uint64_t *v)
{
	if (!st->data || off > st->len || st->len - off < sizeof(*v))
		return false;
	memcpy(v, st->data + off, sizeof(*v));
	return true;
}

/* Remember a clean walk made from sp and pc alone. */
static void shape_learn(struct shapes *sh, const struct cp_thread_snap *snap,
			const struct cp_unwind_result *ur)
{
	uint64_t sp0 = snap->regs.r[CP_REG_RSP], v;
	struct shape *s;

	if (sh->n >= SHAPES_MAX || !snap->live || ur->n < 2 || ur->truncated || ur->stop_reason)
		return;
	if (snap->stack.start != sp0 || ur->sp[0] != sp0)
		return;
	for (size_t i = 1; i < ur->n; i++) {
		/* Plain calls only: the return address sits just below the caller's sp. */
		if (ur->flags[i] || ur->sp[i] <= ur->sp[i - 1] ||
		    !word_at(&snap->stack, ur->sp[i] - sp0 - 8, &v) || v != ur->pc[i])
			return;
	}
	s = &sh->v[sh->n];
	s->pc = malloc(ur->n * sizeof(*s->pc));
	s->off = malloc(ur->n * sizeof(*s->off));
	if (!s->pc || !s->off) {
		free(s->pc);
		free(s->off);
		return;
	}
	for (size_t i = 0; i < ur->n; i++) {
		s->pc[i] = ur->pc[i];
		s->off[i] = ur->sp[i] - sp0;
	}
	s->n = ur->n;
	sh->n++;
}

/*
 * Empty ur for a new stack. Only its header: every reader stops at n, and a result is 4 KB,
 * zeroed twice a thread, was 3% of the CPU of a dump of a thousand threads.
 */
static void result_reset(struct cp_unwind_result *ur)
{
	ur->n = 0;
	ur->truncated = false;
	ur->stop_reason = 0;
}

/* The walk of snap if it has a known shape; false when it must be unwound. */
static bool shape_match(const struct shapes *sh, const struct cp_thread_snap *snap,
			struct cp_unwind_result *ur)
{
	uint64_t sp0 = snap->regs.r[CP_REG_RSP], pc0 = snap->regs.r[CP_REG_RIP], v;

	if (snap->stack.start != sp0 || !(snap->regs.valid & (1u << CP_REG_RIP)))
		return false;
	for (size_t k = 0; k < sh->n; k++) {
		const struct shape *s = &sh->v[k];
		size_t i;

		if (s->pc[0] != pc0)
			continue;
		for (i = 1; i < s->n; i++)
			if (!word_at(&snap->stack, s->off[i] - 8, &v) || v != s->pc[i])
				break;
		if (i < s->n)
			continue;
		result_reset(ur);
		for (i = 0; i < s->n; i++) {
			ur->pc[i] = s->pc[i];
			ur->sp[i] = sp0 + s->off[i];
			ur->flags[i] = 0;
		}
		ur->n = s->n;
		return true;
	}
	return false;
}

/*
 * Walk one captured stack (stopping the thread once if the live registers are not enough)
 * and keep the pcs in the item; the copy of the stack is freed right after. 0 or -ENOMEM.
 */
static int unwind_item(struct take *t, struct item *it, struct cp_unwinder *uw,
		       struct cp_unwind_result *ur, const struct cp_maps *maps, struct shapes *sh)
{
	int uerr = 0;

	result_reset(ur);
	if (uw && shape_match(sh, &it->snap, ur)) {
		it->uerr = 0;
	} else if (uw) {
		uerr = cp_unwind(uw, &it->snap.regs, &it->snap.stack, ur);
		if (uerr == 0)
			shape_learn(sh, &it->snap, ur);
		if (needs_registers(it, uerr, ur) && refill_registers(t, it, maps)) {
			result_reset(ur);
			uerr = cp_unwind(uw, &it->snap.regs, &it->snap.stack, ur);
		}
		if (uerr < 0) {
			it->uerr = uerr;
			ur->n = 0;
		} else {
			it->uerr = ur->stop_reason < 0 ? ur->stop_reason : 0;
			it->utrunc = ur->truncated;
		}
	}
	if (ur->n == 0 && (it->snap.regs.valid & (1u << CP_REG_RIP))) {
		/* Without a walk the current pc is still worth showing. */
		ur->pc[0] = it->snap.regs.r[CP_REG_RIP];
		ur->flags[0] = 0;
		ur->n = 1;
	}
	if (ur->n > CP_UNWIND_MAX_FRAMES)
		ur->n = CP_UNWIND_MAX_FRAMES;
	if (ur->n) {
		it->upc = malloc(ur->n * sizeof(*it->upc));
		it->uflags = malloc(ur->n);
		if (!it->upc || !it->uflags)
			return -ENOMEM;
		memcpy(it->upc, ur->pc, ur->n * sizeof(*it->upc));
		memcpy(it->uflags, ur->flags, ur->n);
	}
	it->un = ur->n;
	it->unwound = true;
	/* The copy is no longer needed; free it early on dumps of many threads. */
	free(it->snap.stack.data);
	it->snap.stack.data = NULL;
	it->snap.stack.len = 0;
	return 0;
}

/*
 * Unwinding is per thread and independent: on a process with many threads a few helpers
 * share it out, each with its own unwinder (libunwind address space and module views; the
 * files are mapped, not copied). Symbolization, which caches across threads, stays serial.
 */
struct unwind_work {
	struct take *t;
	const struct cp_maps *maps;	/* NULL when the maps could not be read */
	atomic_size_t next;
	atomic_int err;
};

static int walker_init(struct walker *wk, int pid, const struct cp_maps *maps)
{
	memset(wk, 0, sizeof(*wk));
	wk->maps = maps;
	wk->ur = malloc(sizeof(*wk->ur));
	wk->sh = calloc(1, sizeof(*wk->sh));
	if (!wk->ur || !wk->sh || (maps && !(wk->uw = cp_unwind_new(pid, maps, true)))) {
		free(wk->ur);
		free(wk->sh);
		return -ENOMEM;
	}
	return 0;
}

static void walker_release(struct walker *wk)
{
	shapes_release(wk->sh);
	free(wk->sh);
	cp_unwind_free(wk->uw);
	free(wk->ur);
	memset(wk, 0, sizeof(*wk));
}

/* Unwind it unless that is done already. 0 or -ENOMEM. */
static int walk_item(struct take *t, struct item *it, struct walker *wk)
{
	if (!it->captured || it->unwound)
		return 0;
	return unwind_item(t, it, wk->uw, wk->ur, wk->maps, wk->sh);
}

static void *unwind_worker(void *arg)
{
	struct unwind_work *w = arg;
	struct take *t = w->t;
	struct walker wk;

	if (walker_init(&wk, t->pid, w->maps) < 0) {
		atomic_store(&w->err, -ENOMEM);
		return NULL;
	}
	for (;;) {
		size_t i = atomic_fetch_add(&w->next, 1);

		if (i >= t->nitems || cancelled(t) || atomic_load(&w->err))
			break;
		if (walk_item(t, &t->items[i], &wk) < 0)
			atomic_store(&w->err, -ENOMEM);
	}
	walker_release(&wk);
	return NULL;
}

/* Unwind what the capturing threads left (a walker that could not be set up, -ENOMEM). */
static int unwind_all(struct take *t, const struct cp_maps *maps)
{
	struct unwind_work w = { .t = t, .maps = maps };
	size_t pending = 0;

	for (size_t i = 0; i < t->nitems; i++)
		pending += t->items[i].captured && !t->items[i].unwound;
	if (!pending)
		return 0;
	atomic_init(&w.next, 0);
	atomic_init(&w.err, 0);
	run_shared(unwind_worker, &w, capture_threads(pending));
	if (atomic_load(&w.err))
		return atomic_load(&w.err);
	return cancelled(t) ? -EINTR : 0;
}

/* Everything after the captures; only a register refill may still stop a thread here. */
static int analyse(struct take *t)
{
	struct cp_dump *d = t->d;
	/*
	 * The maps read before the captures: the stacks were unwound against them already, and
	 * symbolizing against the same view keeps the two consistent (a second read cost 1.3
	 * ms at 1003 threads: two mappings a thread).
	 */
	const struct cp_maps *maps = t->have_maps ? &t->maps : NULL;
	struct cp_unwind_result *ur = NULL;
	struct cp_wait_cache *wcache = NULL;
	int *tids = NULL;
	uint64_t t0, t1;
	int err = 0;

	qsort(t->items, t->nitems, sizeof(*t->items), cmp_item);
	d->threads = calloc(t->nitems + 1, sizeof(*d->threads));
	tids = calloc(t->nitems + 1, sizeof(*tids));
	ur = calloc(1, sizeof(*ur));
	if (!d->threads || !tids || !ur) {
		err = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < t->nitems; i++)
		tids[i] = t->items[i].tid;
	t0 = cp_now_ns();
	err = unwind_all(t, maps);
	if (err < 0)
		goto out;
	t1 = cp_now_ns();
	d->unwind_ns = t1 - t0;

	for (size_t i = 0; i < t->nitems; i++) {
		struct item *it = &t->items[i];
		struct cp_dump_thread *th = &d->threads[d->nthreads++];

		th->tid = it->tid;
		snprintf(th->name, sizeof(th->name), "%s", it->st.comm);
		th->state = it->st.state;
		th->stuck = it->stuck;
		cp_wait_init(&th->wait);
		th->kernel_frames = it->kframes;
		th->nkernel_frames = it->nkframes;
		it->kframes = NULL;
		it->nkframes = 0;
		th->unwind_error = it->capture_error;
		if (it->captured && it->unwound) {
			th->stopped = it->snap.stopped;
			th->sampled = it->snap.sampled;
			th->stopped_ns = it->snap.stopped_ns;
			if (it->snap.stopped_ns > d->max_stop_ns)
				d->max_stop_ns = it->snap.stopped_ns;
			d->total_stop_ns += it->snap.stopped_ns;
			d->ncaptured++;
			/* A walk that reached the stack's start lost nothing to the copy's limit. */
			th->truncated = (it->snap.stack.truncated && it->uerr != 0) || it->utrunc;
			th->unwind_error = it->uerr;
			result_reset(ur);
			ur->n = it->un;
			if (it->un) {
				memcpy(ur->pc, it->upc, it->un * sizeof(*it->upc));
				memcpy(ur->flags, it->uflags, it->un);
			}
			err = symbolize_or_share(t, maps, ur, th);
			if (err < 0)
				goto out;
			item_release(it);
		}
		if (cancelled(t)) {
			err = -EINTR;
			goto out;
		}
	}
	t0 = cp_now_ns();
	d->symbolize_ns = t0 - t1;
	wcache = cp_wait_cache_new();
	for (size_t i = 0; i < t->nitems; i++) {
		err = classify(t, &t->items[i], &d->threads[i], tids, t->nitems, wcache);
		if (err < 0)
			goto out;
	}
	d->classify_ns = cp_now_ns() - t0;
out:
	cp_wait_cache_free(wcache);
	free(ur);
	free(tids);
	return err;
}

/*
 * The CPUs' context-switch records spare each live capture its second look at the thread's
 * status (6-7 us of the 40 or so a thread costs) but cost an event and a ring per CPU: 1 to
 * 1.5 ms each to open, map, unmap and close within a dump here, cold. Worth it from about
 * 200 threads a CPU. Measured at 1003 threads on 2 CPUs, 21 alternating runs: 50.4 -> 47.4
 * ms and 71.2 -> 64.0 ms (the machine slow). Without the privilege CPU-wide events need,
 * the captures ask every thread, as before.
 */
#define SWITCH_WATCH_PER_CPU 256

static void watch_switches(struct take *t, size_t nthreads)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	if ((t->opts->flags & CP_DUMP_STOP_ALL) || cpus < 1 ||
	    nthreads < (size_t)cpus * SWITCH_WATCH_PER_CPU)
		return;
	t->have_switches = cp_switch_watch_open(&t->switches) == 0;
	t->d->switch_records = t->have_switches;
}

static int list_and_collect(struct take *t, int *tracer)
{
	int *tids = NULL;
	size_t n = 0;
	int err;

	err = cp_proc_list_tasks(t->pid, &tids, &n);
	if (err < 0)
		return err;
	t->stack_max = t->opts->stack_max;
	if (!t->stack_max) {
		t->stack_max = CP_STACK_COPY_MAX;
		if (n && STACK_COPY_BUDGET / n < t->stack_max)
			t->stack_max = STACK_COPY_BUDGET / n;
		if (t->stack_max < STACK_COPY_MIN)
			t->stack_max = STACK_COPY_MIN;
	}
	watch_switches(t, n);
	err = seen_add(t, tids, n);
	if (!err)
		err = cancelled(t) ? -EINTR : collect(t, tids, n, tracer);
	free(tids);
	return err;
}

/*
 * Threads created while the others were being captured: capture them once. Listing the
 * threads again costs as much as a tenth of a dump of a thousand (the kernel looks every
 * entry up), so the process's thread count decides first: when it equals the threads just
 * captured, nothing was created, unless one of them exited meanwhile just as another
 * started, and a thread created a moment later would be missed all the same.
 */
static int rescan(struct take *t, int *tracer)
{
	int *tids = NULL, *fresh = NULL;
	size_t n = 0, nfresh = 0;
	struct cp_task_stat st;
	int err;

	/* The leader's own stat: the process's sums over every thread are not needed. */
	err = cp_proc_read_stat(t->pid, t->pid, &st);
	if (err < 0)
		return is_gone(err) ? 0 : err;
	if (st.num_threads == (long)t->nitems)
		return 0;
	err = cp_proc_list_tasks(t->pid, &tids, &n);
	if (err < 0)
		return is_gone(err) ? 0 : err;
	fresh = calloc(n + 1, sizeof(*fresh));
	if (!fresh) {
		free(tids);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++)
		if (!seen_has(t, tids[i]))
			fresh[nfresh++] = tids[i];
	free(tids);
	err = seen_add(t, fresh, nfresh);
	if (!err)
		err = cancelled(t) ? -EINTR : collect(t, fresh, nfresh, tracer);
	free(fresh);
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
		return is_gone(err);
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

int cp_dump_take(int pid, const struct cp_dump_opts *opts, struct cp_symbolizer *sym,
		 struct cp_dump *out, int *tracer)
{
	static const struct cp_dump_opts no_opts;
	struct cp_dump d;
	struct take t;
	struct cp_task_stat pst;
	struct cp_task_status pstatus;
	int *tids = NULL;
	size_t ntids = 0;
	bool zombie;
	uint64_t t0;
	int err;

	if (!opts)
		opts = &no_opts;
	memset(&d, 0, sizeof(d));
	memset(&t, 0, sizeof(t));
	t.pid = pid;
	t.opts = opts;
	t.sym = sym;
	t.d = &d;
	d.pid = pid;
	d.stuck_seconds = opts->stuck_seconds > 0 ? opts->stuck_seconds : 0;

	err = cp_proc_read_stat(pid, 0, &pst);
	if (err < 0)
		return is_gone(err) ? -ESRCH : err;
	if (cp_proc_is_kernel_thread(&pst))
		return -EINVAL;

	/* A zombie process has only its leader left, in state Z; a leader that called
	 * pthread_exit also reads Z while its other threads live on. */
	zombie = false;
	if (pst.state == 'Z' || pst.state == 'X') {
		err = cp_proc_list_tasks(pid, &tids, &ntids);
		zombie = err < 0 || ntids == 0 || (ntids == 1 && tids[0] == pid);
		free(tids);
		if (err < 0 && !zombie)
			return is_gone(err) ? -ESRCH : err;
	}

	err = read_identity(pid, &d);
	if (err < 0)
		goto fail;
	if (zombie) {
		d.time_ns = cp_wall_ns();
		err = take_zombie_process(&t, &pst);
		if (err < 0)
			goto fail;
		goto done;
	}

	if (cp_proc_read_status(pid, 0, &pstatus) == 0 && pstatus.tracer_pid > 0) {
		if (tracer)
			*tracer = pstatus.tracer_pid;
		err = -EBUSY;
		goto fail;
	}

	if (d.stuck_seconds) {
		err = look(pid, &t.look1, &t.nlook1);
		if (err < 0)
			goto fail_gone;
		err = watch_sleep(&t, d.stuck_seconds);
		if (err < 0)
			goto fail;
		/* The second look comes before any capture: stopping a thread switches it out. */
		err = look(pid, &t.look2, &t.nlook2);
		if (err < 0)
			goto fail_gone;
	}

	d.time_ns = cp_wall_ns();
	t0 = cp_now_ns();
	if (cp_fd_count(pid, &d.fds) == 0)
		d.has_fds = true;
	t.have_maps = cp_maps_read(pid, &t.maps) == 0;
	err = list_and_collect(&t, tracer);
	if (!err)
		err = rescan(&t, tracer);
	d.capture_ns = cp_now_ns() - t0;
	if (err == -ESRCH || err == -ENOENT)
		err = 0;
	if (err < 0)
		goto fail;

	if (process_dead(pid)) {
		bool any = false;

		for (size_t i = 0; i < t.nitems; i++)
			any = any || t.items[i].captured;
		if (!any) {
			err = -ESRCH;
			goto fail;
		}
		d.process_exited = true;
	}
	if (t.nitems == 0) {
		err = -ESRCH;
		goto fail;
	}
	if (d.stuck_seconds)
		mark_stuck(&t);

	err = analyse(&t);
	if (err < 0)
		goto fail;
	err = cp_dump_find_deadlocks(&d);
	if (err == -ENOMEM)
		goto fail;
	if (opts->flags & CP_DUMP_GROUP) {
		err = cp_dump_group(&d);
		if (err < 0)
			goto fail;
	}
done:
	take_release(&t);
	*out = d;
	return 0;
fail_gone:
	if (is_gone(err))
		err = -ESRCH;
fail:
	take_release(&t);
	cp_dump_release(&d);
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
		free_strv(th->kernel_frames, th->nkernel_frames);
	}
	free(d->threads);
	for (size_t i = 0; i < d->ngroups; i++)
		free(d->groups[i].tids);
	free(d->groups);
	for (size_t i = 0; i < d->ndeadlocks; i++) {
		free(d->deadlocks[i].tids);
		free(d->deadlocks[i].description);
	}
	free(d->deadlocks);
	free_strv(d->strings, d->nstrings);
	memset(d, 0, sizeof(*d));
}
