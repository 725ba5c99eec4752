/*
 * Which threads ran, without asking each of them: the kernel's context-switch records from
 * every CPU (a perf dummy event per CPU with context_switch set).
 *
 * The live capture copies a blocked thread's stack and must then know that the thread did
 * not run meanwhile. Asking the thread costs a second read of its status file for every
 * thread. A thread that ran was switched in on some CPU, and the switch
 * is recorded before the thread runs a single instruction of its own: a thread named by no
 * record since a mark taken before its first look did not run since.
 *
 * Opening costs an event and a ring per CPU, and needs what CPU-wide events need
 * (CAP_PERFMON, or perf_event_paranoid <= 0): worth it for a dump of hundreds of threads on
 * few CPUs; without it the capture asks each thread.
 *
 * The rings are read through perf_ring.h but never consumed while the dump lasts: every
 * batch of the sweep looks back to its own mark (cp_perf_ring_read_init_at), and a full ring
 * stops the kernel's writes instead of losing what a mark still needs.
 */
#ifndef CP_SWITCH_WATCH_H
#define CP_SWITCH_WATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "perf_ring.h"

struct cp_switch_ring {
	int fd;
	struct cp_perf_ring pr;	/* read from marks through views, never consumed */
};

struct cp_switch_watch {
	struct cp_switch_ring *ring;	/* one per online CPU */
	size_t n;
	size_t data_size;		/* bytes of records a ring holds */
};

/* Watch every online CPU from now on. 0, or -errno (nothing is left open). */
int cp_switch_watch_open(struct cp_switch_watch *w);
void cp_switch_watch_close(struct cp_switch_watch *w);

/* Whether every ring still has a quarter of its room: enough for a sweep. */
bool cp_switch_watch_room(const struct cp_switch_watch *w);

/* Where every ring is now, into heads (w->n entries). */
void cp_switch_watch_mark(const struct cp_switch_watch *w, uint64_t *heads);

/*
 * Which of tids[0, n) were switched in or out on any CPU since the mark heads: ran[i]. 0,
 * or -EOVERFLOW when records since the mark may be missing (a ring filled up: the rings are
 * never emptied during a dump, so every batch can look back to its own mark): then nothing
 * is known and the caller must ask the threads.
 */
int cp_switch_watch_ran(const struct cp_switch_watch *w, const uint64_t *heads,
			const int *tids, size_t n, bool *ran);

#endif
