/* Go programs in a dump: the goroutines read from the runtime, tied to the dump's threads. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <time.h>

#include "util.h"

#include "dump_go.h"
#include "goruntime.h"

/* Go's traceback prints at most 100 frames; we keep a few more pcs for --group. */
#define GO_MAX_PCS 256
#define GO_MAX_FRAMES 512
/* The runtime's _Grunning: a goroutine on a CPU, whose frames come from its thread. */
#define GO_STATUS_RUNNING 2

const char *dump_go_intern(struct cp_dump *d, const char *s)
{
	if (!s)
		return NULL;
	if (!d->has_strings) {
		if (cp_strtab_init(&d->strings, 0) < 0)
			return NULL;
		d->has_strings = true;
	}
	return cp_strtab_str(&d->strings, s);
}

/* CLOCK_MONOTONIC in ns: the runtime's nanotime, which waitsince counts in. */
static int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The dump's thread whose id in the target's namespace is tid, or NULL. */
static struct cp_dump_thread *thread_of(struct cp_dump *d, int tid)
{
	if (tid <= 0)
		return NULL;
	for (size_t i = 0; i < d->nthreads; i++) {
		struct cp_dump_thread *th = &d->threads[i];

		if ((th->ns_tid > 0 ? th->ns_tid : th->tid) == tid)
			return th;
	}
	return NULL;
}

/* The physical frames' pcs of a thread's stack (its inlined frames share them). */
static size_t thread_pcs(const struct cp_dump_thread *th, uint64_t *pcs, size_t max)
{
	size_t n = 0;

	for (size_t i = 0; th && i < th->nframes && n < max; i++)
		if (!th->frames[i].inlined)
			pcs[n++] = th->frames[i].pc;
	return n;
}

/* A Go frame as a dump frame, its strings interned, module and offset from the maps. */
static void to_frame(struct dump_run *run, const struct cp_go_frame *g, struct cp_frame *f)
{
	const struct cp_map *map = run->have_maps ? cp_maps_find(&run->maps, g->pc) : NULL;

	memset(f, 0, sizeof(*f));
	f->pc = g->pc;
	f->function = dump_go_intern(run->d, g->function);
	f->file = dump_go_intern(run->d, g->file);
	f->line = g->line;
	f->inlined = g->inlined;
	f->entry_offset = g->entry_off;
	if (map) {
		f->module = dump_go_intern(run->d, map->path[0] ? map->path : "[anon]");
		f->offset = g->pc - map->start + map->offset;
		f->has_offset = true;
	}
}

/* Frames of pcs into gr: as Go's dump shows them, and with --group as its profile records them. */
static int set_frames(struct dump_run *run, struct cp_go_runtime *rt,
		      struct cp_dump_goroutine *gr, const uint64_t *pcs, size_t npcs,
		      struct cp_go_frame *tmp)
{
	size_t nf = cp_go_frames(rt, pcs, npcs, gr->from_thread, false, tmp, GO_MAX_FRAMES);

	gr->frames = calloc(nf ? nf : 1, sizeof(*gr->frames));
	if (!gr->frames)
		return -ENOMEM;
	for (size_t i = 0; i < nf; i++)
		to_frame(run, &tmp[i], &gr->frames[i]);
	gr->nframes = nf;
	if (!(run->opts->flags & CP_DUMP_GROUP))
		return 0;
	nf = cp_go_frames(rt, pcs, npcs, gr->from_thread, true, tmp, GO_MAX_FRAMES);
	gr->stack = calloc(nf ? nf : 1, sizeof(*gr->stack));
	if (!gr->stack)
		return -ENOMEM;
	for (size_t i = 0; i < nf; i++) {
		to_frame(run, &tmp[i], &gr->stack[i]);
		gr->stack[i].pc = tmp[i].frame_pc;
		gr->stack[i].entry_offset = tmp[i].frame_off;
	}
	gr->nstack = nf;
	return 0;
}

/* One goroutine g into gr. 0 or -ENOMEM. */
static int add_goroutine(struct dump_run *run, struct cp_go_runtime *rt,
			 const struct cp_goroutine *g, struct cp_dump_goroutine *gr,
			 int64_t now, uint64_t *pcs, struct cp_go_frame *tmp)
{
	struct cp_dump_thread *th = thread_of(run->d, g->tid);
	struct cp_go_frame cb;
	size_t npcs;
	int err;

	memset(gr, 0, sizeof(*gr));
	gr->id = g->id;
	gr->status = dump_go_intern(run->d, g->status_str ? g->status_str : "???");
	gr->wait_reason = g->wait_reason && *g->wait_reason ? dump_go_intern(run->d, g->wait_reason) :
		NULL;
	gr->wait_minutes = -1;
	if ((g->status == 3 || g->status == 4) && g->wait_since_ns > 0 && now >= g->wait_since_ns)
		gr->wait_minutes = (now - g->wait_since_ns) / 60000000000LL;
	gr->locked_to_thread = g->locked_to_thread;
	gr->tid = th ? th->tid : g->tid;
	gr->parent_id = g->parent_id;
	gr->waiting_chan = g->waiting_chan;
	gr->torn = g->torn;
	if (th)
		th->goroutine = g->id;
	if (g->sp) {
		npcs = cp_go_unwind(rt, g, pcs, GO_MAX_PCS);
	} else {
		npcs = thread_pcs(th, pcs, GO_MAX_PCS);
		gr->from_thread = npcs > 0;
	}
	if (cp_go_created_by(rt, g, &cb))
		to_frame(run, &cb, &gr->created_by);
	err = set_frames(run, rt, gr, pcs, npcs, tmp);
	/* A parked goroutine always has frames: none means its stack was not read whole. */
	if (!err && !gr->nframes && !gr->from_thread && g->status != GO_STATUS_RUNNING)
		gr->torn = true;
	return err;
}

/* Read the goroutines of an opened runtime into the dump. 0 or -ENOMEM. */
static int read_goroutines(struct dump_run *run, struct cp_go_runtime *rt)
{
	struct cp_dump *d = run->d;
	struct cp_goroutine *gs = NULL;
	uint64_t *pcs = malloc(GO_MAX_PCS * sizeof(*pcs));
	struct cp_go_frame *tmp = malloc(GO_MAX_FRAMES * sizeof(*tmp));
	size_t n = 0;
	int64_t now;
	int err = -ENOMEM;

	if (!pcs || !tmp)
		goto out;
	err = cp_go_goroutines(rt, &gs, &n);
	if (err == -ENOMEM)
		goto out;
	if (err) {
		d->go_error = err;
		snprintf(d->go_why, sizeof(d->go_why), "the goroutines could not be read (%s)",
			 strerror(-err));
		err = 0;
		goto out;
	}
	now = mono_ns();
	d->goroutines = calloc(n ? n : 1, sizeof(*d->goroutines));
	err = d->goroutines ? 0 : -ENOMEM;
	for (size_t i = 0; i < n && !err; i++) {
		if (gs[i].system) {
			d->go_hidden++;
			continue;
		}
		err = add_goroutine(run, rt, &gs[i], &d->goroutines[d->ngoroutines++], now, pcs,
				    tmp);
	}
	if (!err)
		err = dump_go_diagnose(run, rt, gs, n);
out:
	free(gs);
	free(pcs);
	free(tmp);
	return err;
}

int dump_go_read(struct dump_run *run)
{
	struct cp_go_runtime *rt = NULL;
	struct cp_dump *d = run->d;
	char why[sizeof(d->go_why)];
	uint64_t t0 = cp_now_ns();
	int err;

	if (!run->have_maps)
		return 0;
	err = cp_go_open(run->pid, &run->maps, &run->mem, &rt, why, sizeof(why));
	if (err == -ENOENT)
		return 0;
	if (err == -ENOMEM)
		return err;
	if (err) {
		char version[64];

		if (cp_go_probe(run->pid, &run->maps, version, sizeof(version)) < 0)
			snprintf(version, sizeof(version), "unknown");
		d->go_version = dump_go_intern(d, version);
		d->go_error = err;
		snprintf(d->go_why, sizeof(d->go_why), "%s", why[0] ? why : strerror(-err));
		return d->go_version ? 0 : -ENOMEM;
	}
	d->go_version = dump_go_intern(d, cp_go_version(rt));
	err = d->go_version ? read_goroutines(run, rt) : -ENOMEM;
	cp_go_close(rt);
	d->go_ns = cp_now_ns() - t0;
	return err;
}

void dump_go_release(struct cp_dump *d)
{
	for (size_t i = 0; i < d->ngoroutines; i++) {
		free(d->goroutines[i].frames);
		free(d->goroutines[i].stack);
	}
	free(d->goroutines);
	d->goroutines = NULL;
	d->ngoroutines = 0;
}
