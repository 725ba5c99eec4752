/* Context-switch records from every CPU: which threads ran since a mark (see switch_watch.h). */
#include <errno.h>
#include <linux/perf_event.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "proc.h"
#include "switch_watch.h"

/*
 * 8 pages of records per CPU, never emptied while the dump lasts: every record here is a
 * 24-byte PERF_RECORD_SWITCH_CPU_WIDE, so a ring holds 1365 (a switch writes two, out and
 * in). A ring that fills only makes the capture ask the threads again. The kernel allocates
 * and frees the whole ring, so it is no larger than a big dump needs.
 */
#define DATA_PAGES 8

/* PERF_RECORD_SWITCH_CPU_WIDE with sample_id_all and PERF_SAMPLE_TID. */
struct switch_record {
	struct perf_event_header h;
	uint32_t next_prev_pid;		/* switching out: the next task; in: the previous one */
	uint32_t next_prev_tid;
	uint32_t pid;			/* sample_id: the task switched out, or in */
	uint32_t tid;
};

static int open_cpu(int cpu)
{
	struct perf_event_attr a;

	memset(&a, 0, sizeof(a));
	a.size = sizeof(a);
	a.type = PERF_TYPE_SOFTWARE;
	a.config = PERF_COUNT_SW_DUMMY;
	a.sample_type = PERF_SAMPLE_TID;
	a.sample_id_all = 1;
	a.context_switch = 1;
	a.exclude_kernel = 1;
	a.exclude_hv = 1;
	return (int)syscall(SYS_perf_event_open, &a, -1, cpu, -1, PERF_FLAG_FD_CLOEXEC);
}

void cp_switch_watch_close(struct cp_switch_watch *w)
{
	if (!w || !w->ring)
		return;

	for (size_t i = 0; i < w->n; i++) {
		cp_perf_ring_release(&w->ring[i].pr);
		if (w->ring[i].fd >= 0)
			close(w->ring[i].fd);
	}
	free(w->ring);
	memset(w, 0, sizeof(*w));
}

int cp_switch_watch_open(struct cp_switch_watch *w)
{
	int *cpus = NULL;
	size_t ncpus = 0;
	int err = cp_online_cpus(&cpus, &ncpus);

	memset(w, 0, sizeof(*w));
	if (err < 0)
		return err;
	w->data_size = DATA_PAGES * (size_t)sysconf(_SC_PAGESIZE);
	w->ring = calloc(ncpus, sizeof(*w->ring));
	if (!w->ring) {
		free(cpus);
		return -ENOMEM;
	}
	w->n = ncpus;
	for (size_t i = 0; i < ncpus; i++)
		w->ring[i].fd = -1;
	for (size_t i = 0; i < ncpus && !err; i++) {
		w->ring[i].fd = open_cpu(cpus[i]);
		if (w->ring[i].fd < 0) {
			err = -errno;
			break;
		}
		/* Writable: the kernel then keeps what is unread (data_tail, left at 0). */
		err = cp_perf_ring_map(&w->ring[i].pr, w->ring[i].fd, w->data_size, false);
	}
	free(cpus);
	if (err < 0)
		cp_switch_watch_close(w);
	return err;
}

bool cp_switch_watch_room(const struct cp_switch_watch *w)
{
	for (size_t i = 0; i < w->n; i++)
		if (cp_perf_ring_head(&w->ring[i].pr) > w->data_size - w->data_size / 4)
			return false;
	return true;
}

void cp_switch_watch_mark(const struct cp_switch_watch *w, uint64_t *heads)
{
	for (size_t i = 0; i < w->n; i++)
		heads[i] = cp_perf_ring_head(&w->ring[i].pr);
}

struct tid_index {
	int tid;
	unsigned int i;
};

static int cmp_tid_index(const void *a, const void *b)
{
	int x = ((const struct tid_index *)a)->tid, y = ((const struct tid_index *)b)->tid;

	return (x > y) - (x < y);
}

static void note(const struct tid_index *idx, size_t n, uint32_t tid, bool *ran)
{
	struct tid_index key = { .tid = (int)tid };
	const struct tid_index *hit = bsearch(&key, idx, n, sizeof(*idx), cmp_tid_index);

	/* Equal tids sit side by side: mark all of them. */
	while (hit && hit > idx && hit[-1].tid == key.tid)
		hit--;
	for (; hit && hit < idx + n && hit->tid == key.tid; hit++)
		ran[hit->i] = true;
}

/*
 * Records of one ring from from to its head. They never wrap: data_tail stays 0, so the
 * kernel stops writing at the end of the ring, and all records have one size, so once one
 * did not fit none did after it. Room left for one more means none was lost.
 */
static int scan(const struct cp_switch_watch *w, const struct cp_switch_ring *r, uint64_t from,
		const struct tid_index *idx, size_t n, bool *ran)
{
	const struct perf_event_header *h;
	struct cp_perf_ring pass;
	int got;

	cp_perf_ring_view(&pass, &r->pr);
	cp_perf_ring_read_init_at(&pass, from);
	if (pass.head > w->data_size || from > pass.head ||
	    w->data_size - pass.head < 2 * sizeof(struct switch_record)) {
		got = -EOVERFLOW;
		goto out;
	}
	while ((got = cp_perf_ring_read_event(&pass, &h)) > 0) {
		struct switch_record rec;

		if (h->type == PERF_RECORD_LOST) {
			got = -EOVERFLOW;
			break;
		}
		if (h->type == PERF_RECORD_SWITCH_CPU_WIDE && h->size >= sizeof(rec)) {
			memcpy(&rec, h, sizeof(rec));
			note(idx, n, rec.next_prev_tid, ran);
			note(idx, n, rec.tid, ran);
		}
	}
out:
	cp_perf_ring_release(&pass);
	return got < 0 ? -EOVERFLOW : 0;
}

int cp_switch_watch_ran(const struct cp_switch_watch *w, const uint64_t *heads,
			const int *tids, size_t n, bool *ran)
{
	struct tid_index stack_idx[64], *idx = stack_idx;
	int err = 0;

	if (n > sizeof(stack_idx) / sizeof(stack_idx[0])) {
		idx = calloc(n, sizeof(*idx));
		if (!idx)
			return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		idx[i].tid = tids[i];
		idx[i].i = (unsigned int)i;
		ran[i] = false;
	}
	qsort(idx, n, sizeof(*idx), cmp_tid_index);
	for (size_t c = 0; c < w->n && !err; c++)
		err = scan(w, &w->ring[c], heads[c], idx, n, ran);
	if (idx != stack_idx)
		free(idx);
	return err;
}
