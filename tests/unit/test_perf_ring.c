/* Unit tests for src/target/perf_ring.c: a ring filled by hand, then a real perf event's ring. */
#include <errno.h>
#include <linux/perf_event.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "perf_ring.h"

#define PAGE 4096
#define DATA 256

/* A ring in ordinary memory: the metadata page, then DATA bytes of records. */
struct fake {
	uint8_t *mem;
	struct perf_event_mmap_page *meta;
	uint8_t *data;
};

static void fake_init(struct fake *f)
{
	f->mem = aligned_alloc(PAGE, 2 * PAGE);
	memset(f->mem, 0, PAGE + DATA);
	f->meta = (struct perf_event_mmap_page *)f->mem;
	f->data = f->mem + PAGE;
}

/*
 * Write a record of size bytes (a multiple of 8) of type type at position pos, as the kernel
 * does: wrapping the end of the data area. Its body is bytes seed, seed + 1, ...
 */
static uint64_t put(struct fake *f, uint64_t pos, uint32_t type, uint16_t size, uint8_t seed)
{
	uint8_t rec[512];
	struct perf_event_header h = { .type = type, .misc = 0, .size = size };

	memcpy(rec, &h, sizeof(h));
	for (size_t i = sizeof(h); i < size; i++)
		rec[i] = (uint8_t)(seed + i);
	for (size_t i = 0; i < size; i++)
		f->data[(pos + i) % DATA] = rec[i];
	return pos + size;
}

/* Whether h is the record put() wrote with these arguments. */
static bool is_record(const struct perf_event_header *h, uint32_t type, uint16_t size,
		      uint8_t seed)
{
	const uint8_t *p = (const uint8_t *)h;

	if (h->type != type || h->size != size)
		return false;
	for (size_t i = sizeof(*h); i < size; i++)
		if (p[i] != (uint8_t)(seed + i))
			return false;
	return true;
}

static void test_by_hand(void)
{
	const struct perf_event_header *h;
	struct cp_perf_ring r, view;
	struct fake f;
	uint64_t head;

	fake_init(&f);
	cp_perf_ring_init(&r, f.mem, PAGE, DATA);

	/* Empty: nothing to read. */
	cp_perf_ring_read_init(&r);
	CHECK(cp_perf_ring_read_event(&r, &h) == 0);

	/* Three records, read in order, in place. */
	head = put(&f, 0, 1, 64, 10);
	head = put(&f, head, 2, 32, 20);
	head = put(&f, head, 3, 96, 30);
	f.meta->data_head = head;
	cp_perf_ring_read_init(&r);
	CHECK(cp_perf_ring_read_event(&r, &h) == 1 && is_record(h, 1, 64, 10));
	CHECK((const uint8_t *)h == f.data);
	CHECK(cp_perf_ring_read_event(&r, &h) == 1 && is_record(h, 2, 32, 20));
	cp_perf_ring_consume(&r);
	CHECK(f.meta->data_tail == 96, "tail %llu", (unsigned long long)f.meta->data_tail);
	CHECK(cp_perf_ring_read_event(&r, &h) == 1 && is_record(h, 3, 96, 30));
	CHECK(cp_perf_ring_read_event(&r, &h) == 0);
	CHECK(f.meta->data_tail == 96, "not consumed yet");

	/* A new pass starts at data_tail: the third record again. */
	cp_perf_ring_read_init(&r);
	CHECK(cp_perf_ring_read_event(&r, &h) == 1 && is_record(h, 3, 96, 30));
	cp_perf_ring_consume(&r);
	CHECK(f.meta->data_tail == 192);

	/* A record across the end of the ring comes out whole, from the copy buffer. */
	head = put(&f, head, 4, 40, 40);	/* 192..232 */
	head = put(&f, head, 5, 48, 50);	/* 232..280: wraps */
	head = put(&f, head, 6, 16, 60);	/* 280..296 */
	f.meta->data_head = head;
	cp_perf_ring_read_init(&r);
	CHECK(cp_perf_ring_read_event(&r, &h) == 1 && is_record(h, 4, 40, 40));
	CHECK(cp_perf_ring_read_event(&r, &h) == 1 && is_record(h, 5, 48, 50), "wrapped record");
	CHECK(r.copy && (const uint8_t *)h == r.copy);
	CHECK(cp_perf_ring_read_event(&r, &h) == 1 && is_record(h, 6, 16, 60));
	CHECK((const uint8_t *)h == f.data + 280 - DATA);
	CHECK(cp_perf_ring_read_event(&r, &h) == 0);
	cp_perf_ring_consume(&r);
	CHECK(f.meta->data_tail == head);

	/* A reader that never consumes looks back to a mark, through a view of its own. */
	cp_perf_ring_view(&view, &r);
	cp_perf_ring_read_init_at(&view, 192);
	CHECK(cp_perf_ring_read_event(&view, &h) == 1 && is_record(h, 4, 40, 40));
	CHECK(cp_perf_ring_read_event(&view, &h) == 1 && is_record(h, 5, 48, 50));
	CHECK(view.copy && view.copy != r.copy, "the view has its own copy buffer");
	CHECK(cp_perf_ring_read_event(&view, &h) == 1 && is_record(h, 6, 16, 60));
	CHECK(cp_perf_ring_read_event(&view, &h) == 0);
	CHECK(f.meta->data_tail == head, "a view's pass leaves data_tail alone");
	cp_perf_ring_release(&view);

	/* Malformed: a size below the header's, or past the head. */
	head = put(&f, head, 7, 8, 70);
	memset(f.data + head % DATA, 0, 8);
	((struct perf_event_header *)(f.data + head % DATA))->size = 4;
	f.meta->data_head = head + 8;
	cp_perf_ring_read_init(&r);
	CHECK(cp_perf_ring_read_event(&r, &h) == 1 && h->type == 7);
	CHECK(cp_perf_ring_read_event(&r, &h) == -EBADMSG, "size 4");
	((struct perf_event_header *)(f.data + head % DATA))->size = 16;
	CHECK(cp_perf_ring_read_event(&r, &h) == -EBADMSG, "runs past the head");

	/* read_done gives back the whole pass, read or not. */
	cp_perf_ring_read_done(&r);
	CHECK(f.meta->data_tail == head + 8);
	cp_perf_ring_read_init(&r);
	CHECK(cp_perf_ring_read_event(&r, &h) == 0);

	cp_perf_ring_release(&r);
	CHECK(r.base == NULL && r.copy == NULL);
	free(f.mem);
}

/* PERF_RECORD_SWITCH with sample_id_all, PERF_SAMPLE_TID and PERF_SAMPLE_TIME: 24 bytes. */
struct switch_rec {
	struct perf_event_header h;
	uint32_t pid, tid;
	uint64_t time;
};

/*
 * A real ring: this thread's context switches into one page of records, read and consumed
 * until the kernel's writes have gone round the ring a few times (so that records wrap).
 */
static void test_real(void)
{
	struct timespec us = { 0, 1000 };
	struct perf_event_attr a;
	struct cp_perf_ring r;
	int tid = (int)syscall(SYS_gettid);
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	uint64_t records = 0, bad = 0;
	int fd, err;

	memset(&a, 0, sizeof(a));
	a.size = sizeof(a);
	a.type = PERF_TYPE_SOFTWARE;
	a.config = PERF_COUNT_SW_DUMMY;
	a.sample_type = PERF_SAMPLE_TID | PERF_SAMPLE_TIME;
	a.sample_id_all = 1;
	a.context_switch = 1;
	a.exclude_kernel = 1;
	a.exclude_hv = 1;
	fd = (int)syscall(SYS_perf_event_open, &a, 0, -1, -1, PERF_FLAG_FD_CLOEXEC);
	if (fd < 0) {
		printf("note: no perf events here (%s): the real ring is not tested\n",
		       strerror(errno));
		return;
	}
	err = cp_perf_ring_map(&r, fd, page, false);
	CHECK(err == 0, "map: %d", err);
	if (err) {
		close(fd);
		return;
	}
	for (int round = 0; round < 2000 && cp_perf_ring_head(&r) < 3 * page; round++) {
		const struct perf_event_header *h;

		for (int i = 0; i < 20; i++)
			nanosleep(&us, NULL);
		cp_perf_ring_read_init(&r);
		while ((err = cp_perf_ring_read_event(&r, &h)) > 0) {
			struct switch_rec rec;

			records++;
			if (h->type != PERF_RECORD_SWITCH || h->size != sizeof(rec)) {
				bad++;
				continue;
			}
			memcpy(&rec, h, sizeof(rec));
			if ((int)rec.tid != tid)
				bad++;
		}
		CHECK(err == 0, "read_event: %d", err);
		cp_perf_ring_consume(&r);
	}
	CHECK(cp_perf_ring_head(&r) >= 3 * page, "the ring went round: head %llu",
	      (unsigned long long)cp_perf_ring_head(&r));
	CHECK(records > 0 && bad == 0, "%llu records, %llu not this thread's switches",
	      (unsigned long long)records, (unsigned long long)bad);
	CHECK(r.copy != NULL, "24-byte records in a page: some wrapped");
	cp_perf_ring_release(&r);
	close(fd);
}

int main(void)
{
	test_by_hand();
	test_real();
	return check_done("test_perf_ring");
}
