/* The other threads of a target before a dlopen: none may be inside the dynamic loader. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capture.h"
#include "inject_internal.h"
#include "maps.h"
#include "mem.h"
#include "proc.h"
#include "unwind.h"

/* How many threads are looked at, at most (a dump's cap is higher; this is a precaution). */
#define OTHERS_MAX 4096

/*
 * Which of the n threads tids (blocked in a system call) is inside the loader: their stacks
 * copied in one sweep while they sleep (a thread that runs meanwhile is skipped, never
 * stopped), walked, named. Its index, or -1; the frame in buf.
 */
static long in_loader(struct cp_inject *in, struct cp_unwinder *uw, const struct cp_maps *maps,
		      const struct cp_mem *mem, const int *tids, size_t n,
		      struct cp_unwind_result *ur, char *buf, size_t size)
{
	struct cp_capture_opts copts = {
		.stack_max = 256u << 10,
		.flags = CP_CAPTURE_LIVE,
		.maps = maps,
		.mem = mem,
	};
	struct cp_thread_snap *snaps = calloc(n, sizeof(*snaps));
	int rets[CP_CAPTURE_MANY_MAX];
	long found = -1;

	if (!snaps || cp_capture_live_many(in->pid, tids, n, &copts, snaps, rets) < 0) {
		free(snaps);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		if (rets[i] < 0)
			continue;
		memset(ur, 0, sizeof(*ur));
		if (found < 0 && cp_unwind(uw, &snaps[i].regs, &snaps[i].stack, ur) == 0 &&
		    ur->n && inject_frames_unsafe(in, in->pid, maps, ur, true, buf, size))
			found = (long)i;
		cp_thread_snap_release(&snaps[i]);
	}
	free(snaps);
	return found;
}

int inject_loader_busy(struct cp_inject *in, char *why, size_t whylen)
{
	struct cp_unwind_result *ur = malloc(sizeof(*ur));
	struct cp_unwinder *uw = NULL;
	struct cp_maps maps = { 0 };
	struct cp_mem mem;
	int *tids = NULL;
	size_t n = 0;
	int ret;

	cp_mem_open(&mem, in->pid);
	ret = ur ? cp_maps_read(in->pid, &maps) : -ENOMEM;
	if (ret == 0)
		ret = cp_proc_list_tasks(in->pid, &tids, &n);
	if (ret == 0 && !(uw = cp_unwind_new(in->pid, &maps, true)))
		ret = -ENOMEM;
	if (uw)
		cp_unwind_set_mem(uw, &mem);
	for (size_t i = 0; ret == 0 && i < n && i < OTHERS_MAX;) {
		int batch[CP_CAPTURE_MANY_MAX];
		size_t nb = 0;
		char buf[160];
		long hit;

		/* A running thread leaves the loader soon; only a blocked one can hold it long. */
		for (; i < n && i < OTHERS_MAX && nb < CP_CAPTURE_MANY_MAX; i++) {
			struct cp_task_syscall sc;

			if (cp_proc_read_syscall(in->pid, tids[i], &sc) == 0 && !sc.running &&
			    sc.in_syscall)
				batch[nb++] = tids[i];
		}
		if (nb && (hit = in_loader(in, uw, &maps, &mem, batch, nb, ur, buf,
					   sizeof(buf))) >= 0)
			ret = inject_why(why, whylen, -EBUSY,
					 "thread %d is blocked %s: a dlopen would wait for it",
					 batch[hit], buf);
	}
	cp_unwind_free(uw);
	free(tids);
	free(ur);
	cp_maps_release(&maps);
	cp_mem_close(&mem);
	return ret == -EBUSY || ret == 0 ? ret : 0;
}
