/* The Go diagnosis in a dump: the goroutines' first look for --stuck, leaks, channels, deadlock. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dump_go.h"
#include "go_diag.h"

int dump_go_first_look(struct dump_run *run)
{
	struct cp_go_runtime *rt = NULL;
	struct cp_goroutine *gs = NULL;
	struct cp_maps maps;
	struct cp_mem mem;
	size_t n = 0;
	char why[64];
	int err;

	/* The dump's maps and memory are opened at the capture, after the watch: our own. */
	if (cp_maps_read(run->pid, &maps) < 0)
		return 0;
	cp_mem_open(&mem, run->pid);
	err = cp_go_open(run->pid, &maps, &mem, &rt, why, sizeof(why));
	if (!err) {
		err = cp_go_goroutines(rt, &gs, &n);
		/* The strings the goroutines borrow from rt must outlive it: the dump's copies. */
		for (size_t i = 0; !err && i < n; i++) {
			gs[i].status_str = NULL;
			gs[i].wait_reason = dump_go_intern(run->d, gs[i].wait_reason ? gs[i].wait_reason :
						   "");
			if (!gs[i].wait_reason)
				err = -ENOMEM;
		}
		cp_go_close(rt);
	}
	cp_mem_close(&mem);
	cp_maps_release(&maps);
	if (err) {
		free(gs);
		return err == -ENOMEM ? err : 0;	/* not Go, or not readable: no first look */
	}
	run->go_before = gs;
	run->ngo_before = n;
	run->d->go_watched = true;
	return 0;
}

/* The name of the function at pc (the outermost of its inlined frames), for the deadlock. */
static const char *name_pc(void *arg, uint64_t pc)
{
	struct cp_go_runtime *rt = arg;
	struct cp_go_frame f[8];
	size_t n = cp_go_frames(rt, &pc, 1, true, true, f, 8);

	return n ? f[n - 1].function : NULL;
}

/* Where each leak's goroutines were created (a member's "created by"). 0 or -ENOMEM. */
static int leak_sites(struct dump_run *run, struct cp_go_runtime *rt,
		      const struct cp_goroutine *gs, size_t n)
{
	struct cp_dump *d = run->d;

	d->go_leak_sites = calloc(d->ngo_leaks ? d->ngo_leaks : 1, sizeof(*d->go_leak_sites));
	if (!d->go_leak_sites)
		return -ENOMEM;
	for (size_t k = 0; k < d->ngo_leaks; k++) {
		struct cp_frame *site = &d->go_leak_sites[k];
		struct cp_go_frame cb;

		for (size_t i = 0; i < n; i++) {
			if (gs[i].id != d->go_leaks[k].ids[0])
				continue;
			if (cp_go_created_by(rt, &gs[i], &cb)) {
				site->pc = cb.pc;
				site->function = dump_go_intern(d, cb.function);
				site->file = dump_go_intern(d, cb.file);
				site->line = cb.line;
				site->entry_offset = cb.entry_off;
			}
			break;
		}
	}
	return 0;
}

int dump_go_diagnose(struct dump_run *run, struct cp_go_runtime *rt,
		     const struct cp_goroutine *gs, size_t n)
{
	struct cp_dump *d = run->d;
	struct cp_go_diag_layout lo = { .have_chan = false };
	int err, found;

	d->go_diagnosed = true;
	cp_go_diag_layout(rt, &lo);	/* unknown: the parts that need it are left out */
	err = cp_go_find_leaks(gs, n, run->go_before, run->ngo_before, cp_go_nanotime(),
			       &d->go_leaks, &d->ngo_leaks);
	/* Their wait reasons are rt's, which is closed before the dump is written. */
	for (size_t k = 0; !err && k < d->ngo_leaks; k++) {
		d->go_leaks[k].wait_reason = dump_go_intern(d, d->go_leaks[k].wait_reason);
		if (!d->go_leaks[k].wait_reason)
			err = -ENOMEM;
	}
	if (!err)
		err = leak_sites(run, rt, gs, n);
	if (!err)
		err = cp_go_find_chans(gs, n, &d->go_chans, &d->ngo_chans);
	if (!err && cp_go_read_chans(rt, &lo, &run->mem, d->go_chans, d->ngo_chans) == -ENOMEM)
		err = -ENOMEM;
	if (err)
		return err;
	err = cp_go_find_netwaits(&lo, &run->mem, run->pid, gs, n, &d->go_netwaits,
				  &d->ngo_netwaits);
	if (err == -ENOMEM)
		return err;
	d->go_timers = cp_go_count_timers(rt, &lo, &run->mem);
	found = cp_go_find_deadlock(gs, n, d->go_timers, name_pc, rt, &d->go_deadlock,
				    &d->ngo_deadlock);
	return found < 0 ? found : 0;
}

void dump_go_diag_release(struct dump_run *run, struct cp_dump *d)
{
	if (run) {
		free(run->go_before);
		run->go_before = NULL;
		run->ngo_before = 0;
	}
	if (!d)
		return;
	cp_go_leaks_free(d->go_leaks, d->ngo_leaks);
	free(d->go_leak_sites);
	cp_go_chans_free(d->go_chans, d->ngo_chans);
	cp_go_netwaits_free(d->go_netwaits, d->ngo_netwaits);
	free(d->go_deadlock);
	d->go_leaks = NULL;
	d->go_leak_sites = NULL;
	d->go_chans = NULL;
	d->go_netwaits = NULL;
	d->go_deadlock = NULL;
	d->ngo_leaks = d->ngo_chans = d->ngo_netwaits = d->ngo_deadlock = 0;
}
