/* The perf ring reader: passes over a ring's records, wrapped records made contiguous. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "perf_ring.h"

void cp_perf_ring_init(struct cp_perf_ring *r, void *base, size_t page, size_t data_bytes)
{
	memset(r, 0, sizeof(*r));
	r->base = base;
	r->data = (uint8_t *)base + page;
	r->size = data_bytes;
}

int cp_perf_ring_map(struct cp_perf_ring *r, int fd, size_t data_bytes, bool populate)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t len = page + data_bytes;
	int flags = MAP_SHARED | (populate ? MAP_POPULATE : 0);
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, flags, fd, 0);

	if (p == MAP_FAILED)
		return -errno;
	cp_perf_ring_init(r, p, page, data_bytes);
	r->map_len = len;
	return 0;
}

void cp_perf_ring_view(struct cp_perf_ring *view, const struct cp_perf_ring *r)
{
	memset(view, 0, sizeof(*view));
	view->base = r->base;
	view->data = r->data;
	view->size = r->size;
}

void cp_perf_ring_release(struct cp_perf_ring *r)
{
	if (r->base && r->map_len)
		munmap(r->base, r->map_len);
	free(r->copy);
	memset(r, 0, sizeof(*r));
}

static struct perf_event_mmap_page *meta(const struct cp_perf_ring *r)
{
	return (struct perf_event_mmap_page *)r->base;
}

uint64_t cp_perf_ring_head(const struct cp_perf_ring *r)
{
	return __atomic_load_n(&meta(r)->data_head, __ATOMIC_ACQUIRE);
}

void cp_perf_ring_read_init(struct cp_perf_ring *r)
{
	r->head = cp_perf_ring_head(r);
	r->at = meta(r)->data_tail;
}

void cp_perf_ring_read_init_at(struct cp_perf_ring *r, uint64_t from)
{
	r->head = cp_perf_ring_head(r);
	r->at = from;
}

int cp_perf_ring_read_event(struct cp_perf_ring *r, const struct perf_event_header **h)
{
	uint64_t off = r->at & (r->size - 1), first;
	struct perf_event_header hd;

	if (r->at >= r->head)
		return 0;
	/* Records are 8-byte aligned and the size is a power of two: a header never wraps. */
	if (r->head - r->at < sizeof(hd))
		return -EBADMSG;
	memcpy(&hd, r->data + off, sizeof(hd));
	if (hd.size < sizeof(hd) || hd.size > r->head - r->at)
		return -EBADMSG;
	if (off + hd.size <= r->size) {
		*h = (const struct perf_event_header *)(r->data + off);
	} else {
		if (!r->copy) {
			r->copy = malloc(CP_PERF_RECORD_MAX);
			if (!r->copy)
				return -ENOMEM;
		}
		first = r->size - off;
		memcpy(r->copy, r->data + off, first);
		memcpy(r->copy + first, r->data, hd.size - first);
		*h = (const struct perf_event_header *)r->copy;
	}
	r->at += hd.size;
	return 1;
}

void cp_perf_ring_consume(struct cp_perf_ring *r)
{
	__atomic_store_n(&meta(r)->data_tail, r->at, __ATOMIC_RELEASE);
}

void cp_perf_ring_read_done(struct cp_perf_ring *r)
{
	r->at = r->head;
	cp_perf_ring_consume(r);
}
