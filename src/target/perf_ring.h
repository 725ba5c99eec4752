/*
 * Reading a perf event's ring buffer: the one reader for every ring cprof maps (sampling, the
 * one-sample capture, the context-switch records). Modelled on libperf's perf_mmap__read_*:
 *
 *	cp_perf_ring_read_init(r);                      where the kernel's writes stand now
 *	while (cp_perf_ring_read_event(r, &h) > 0) {    one record at a time, contiguous
 *		...;
 *		cp_perf_ring_consume(r);                hand its bytes back to the kernel
 *	}
 *	cp_perf_ring_read_done(r);                      hand back what is left of the pass
 *
 * A reader that keeps the records (the switch watcher looks back to a mark) starts a pass with
 * cp_perf_ring_read_init_at(r, mark) and never consumes: the kernel then stops writing when
 * the ring is full instead of overwriting.
 * One reader at a time per struct cp_perf_ring; cp_perf_ring_view gives another one.
 */
#ifndef CP_PERF_RING_H
#define CP_PERF_RING_H

#include <linux/perf_event.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A record is at most 64 KiB (its size is a u16). */
#define CP_PERF_RECORD_MAX 65536

struct cp_perf_ring {
	uint8_t *base;		/* the mapping: a metadata page, then data; NULL when none */
	size_t map_len;		/* bytes mapped, for munmap; 0 when base is not ours */
	uint8_t *data;		/* base + one page */
	uint64_t size;		/* bytes of data: a power of two */
	uint64_t head;		/* the end of the pass: data_head as read_init saw it */
	uint64_t at;		/* the next record of the pass */
	/*
	 * Owned, CP_PERF_RECORD_MAX bytes, allocated when a record first wraps the end of the
	 * ring: such a record is copied here to be handed out in one piece.
	 */
	uint8_t *copy;
};

/*
 * Map fd's ring: one metadata page and data_bytes of records (a power of two number of
 * pages), writable so that the kernel keeps what is unread. populate: fault every page in
 * now (MAP_POPULATE). 0 or -errno (-EPERM/-ENOMEM: over the locked-memory limit).
 */
int cp_perf_ring_map(struct cp_perf_ring *r, int fd, size_t data_bytes, bool populate);
/*
 * Read a ring laid out in memory the caller owns (a mapping made elsewhere, or a test's
 * buffer): base is the metadata page of page bytes, then data_bytes of records.
 */
void cp_perf_ring_init(struct cp_perf_ring *r, void *base, size_t page, size_t data_bytes);
/*
 * A second reader of r's records with its own pass and copy buffer, for readers that never
 * consume: several may read one ring at once (the switch watcher's sweeps run in parallel).
 * r is borrowed and must outlive the view; release the view with cp_perf_ring_release.
 */
void cp_perf_ring_view(struct cp_perf_ring *view, const struct cp_perf_ring *r);
/* Unmap the ring if cp_perf_ring_map mapped it, free the copy buffer. r is left empty. */
void cp_perf_ring_release(struct cp_perf_ring *r);

/* Where the kernel has written up to (data_head), with acquire order for the records. */
uint64_t cp_perf_ring_head(const struct cp_perf_ring *r);

/* Start a pass over what the kernel wrote since the last consume (data_tail) up to now. */
void cp_perf_ring_read_init(struct cp_perf_ring *r);
/* Start a pass from position from (a head noted earlier) up to now; data_tail is not read. */
void cp_perf_ring_read_init_at(struct cp_perf_ring *r, uint64_t from);

/*
 * The next record of the pass into *h, in one piece: in the ring, or in r->copy when it wraps
 * the end. *h stays valid until the next read_event on r, or until its bytes are consumed.
 * Returns 1, 0 at the end of the pass, -EBADMSG for a malformed record (a size that is too
 * small or runs past the head: the rest of the pass cannot be trusted), -ENOMEM.
 */
int cp_perf_ring_read_event(struct cp_perf_ring *r, const struct perf_event_header **h);
/* Hand the records read so far back to the kernel (data_tail). */
void cp_perf_ring_consume(struct cp_perf_ring *r);
/* End the pass: hand back everything up to its end, read or not. */
void cp_perf_ring_read_done(struct cp_perf_ring *r);

#endif
