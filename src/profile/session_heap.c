/*
 * Heap and allocs sessions: the allocation sampler's ring read into the heap model, each
 * sampled allocation unwound from its registers and stack copy and symbolized as a CPU
 * sample is (the session's unwinders and location cache), minus the sampler's own frames.
 */
#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "heap_agent.h"
#include "heap_model.h"
#include "heap_ring.h"
#include "session_internal.h"
#include "util.h"

/* Records read per call before the caller gets control back. */
#define BATCH 4096
/* How often the ring is looked at while waiting (ms): it holds far more than that. */
#define RING_CHECK_MS 10
/* How often the module map may be re-read for a pc outside it (dlopen since), in ns. */
#define MAPS_REREAD_NS 1000000000ull

struct cp_heap_session {
	struct cp_heap_agent agent;
	struct cp_heap_ring ring;
	struct cp_heap_model model;
	char path[4096];
	bool connected;		/* the region is mapped and read */
	bool agent_stopped;
	bool emitted;		/* the model went into the profile */
	int wake_fd;
	int sock;		/* record: the handover socket, -1 when none */
	uint64_t last_reread;
	uint64_t last_exec_check;
	uint32_t stack_bytes;
	int err;		/* a failure that ended reading for good */
	/* The header's counters at the last look: the stats of a region already let go. */
	struct {
		bool seen;
		bool fast_paths;
		uint64_t dropped, patched, modules, skipped;
		size_t ring_bytes;
	} last;
};

/* Keep what the sampler's header says, for stats asked after the region is let go. */
static void remember_header(struct cp_heap_session *h)
{
	const struct cp_agent_header *hdr = h->ring.hdr;

	h->last.seen = true;
	h->last.dropped = __atomic_load_n(&hdr->dropped, __ATOMIC_RELAXED);
	h->last.ring_bytes = h->ring.ring_bytes;
	h->last.patched = __atomic_load_n(&hdr->patched, __ATOMIC_RELAXED);
	h->last.modules = __atomic_load_n(&hdr->modules, __ATOMIC_RELAXED);
	h->last.skipped = __atomic_load_n(&hdr->skipped_modules, __ATOMIC_RELAXED);
	h->last.fast_paths = __atomic_load_n(&hdr->fast_paths, __ATOMIC_RELAXED) != 0;
}

static void on_alloc(void *ctx, const struct cp_agent_alloc *rec)
{
	struct cp_session *s = ctx;
	struct cp_heap_session *h = s->heap;
	struct cp_sample smp;
	struct cp_thread *t = NULL;
	uint32_t node;
	size_t n;

	memset(&smp, 0, sizeof(smp));
	smp.pid = h->agent.pid;
	smp.tid = rec->tid;
	smp.user_regs = true;
	memcpy(smp.regs.r, rec->regs, sizeof(smp.regs.r));
	/* What the sampler captures: the callee-saved registers, rsp and its own rip. */
	smp.regs.valid = 1u << CP_REG_RBX | 1u << CP_REG_RBP | 1u << CP_REG_RSP |
			 1u << CP_REG_R12 | 1u << CP_REG_R13 | 1u << CP_REG_R14 |
			 1u << CP_REG_R15 | 1u << CP_REG_RIP;
	smp.stack.start = rec->stack_start;
	smp.stack.len = rec->stack_len;
	smp.stack.data = (uint8_t *)rec->stack;
	smp.stack.truncated = rec->stack_len >= h->stack_bytes;
	n = cp_session_sample_stack(s, &smp, true, &t);
	if (cp_profile_stack(s->prof, s->locs, n, &node) < 0 ||
	    cp_heap_model_alloc(&h->model, node, smp.pid, rec->tid,
				t && t->name[0] ? t->name : NULL, rec->addr, rec->size) < 0)
		return;
	s->stats.samples++;
}

static void on_free(void *ctx, uint64_t addr)
{
	struct cp_session *s = ctx;

	cp_heap_model_free(&s->heap->model, addr);
}

static const struct cp_heap_ring_ops ring_ops = {
	.alloc = on_alloc,
	.free = on_free,
};

/* The sampler's own code in the target: its frames are dropped from the top of each stack. */
static void agent_range(struct cp_session *s, struct cp_heap_session *h)
{
	struct cp_proc *p = cp_procs_get(&s->procs, h->agent.pid, true);

	if (!p)
		return;
	cp_proc_load_maps(p);
	if (!h->agent.injected)
		cp_session_exec_main(s, p);
	for (size_t i = 0; i < p->maps.n; i++) {
		const struct cp_map *m = &p->maps.v[i];
		const char *slash = m->path ? strrchr(m->path, '/') : NULL;

		if (!slash || strcmp(slash + 1, CP_AGENT_LIBRARY))
			continue;
		if (!s->skip_lo || m->start < s->skip_lo)
			s->skip_lo = m->start;
		if (m->end > s->skip_hi)
			s->skip_hi = m->end;
	}
}

static int connected(struct cp_session *s, struct cp_heap_session *h)
{
	int err = cp_heap_ring_init(&h->ring, h->agent.region, h->agent.region_bytes);

	if (err < 0) {
		snprintf(s->heap_why, sizeof(s->heap_why), "the sampler's memory is malformed");
		return err;
	}
	h->stack_bytes = h->ring.hdr->stack_bytes;
	h->connected = true;
	agent_range(s, h);
	return 0;
}

int cp_session_heap_open(struct cp_session *s)
{
	struct cp_heap_session *h = calloc(1, sizeof(*h));
	const struct cp_session_opts *o = &s->opts;
	uint32_t stack = o->stack_size ? (uint32_t)o->stack_size : CP_SAMPLER_STACK_DEFAULT;
	int err;

	if (!h)
		return -ENOMEM;
	s->heap = h;
	cp_heap_model_init(&h->model);
	h->agent.fd = -1;
	h->wake_fd = -1;
	h->sock = o->has_agent_sock ? o->agent_sock : -1;
	h->stack_bytes = stack;
	if (o->npids != 1) {
		snprintf(s->heap_why, sizeof(s->heap_why), "heap profiles take one process");
		return -EINVAL;
	}
	if (o->agent_path)
		snprintf(h->path, sizeof(h->path), "%s", o->agent_path);
	else if (cp_heap_agent_path(h->path, sizeof(h->path)) < 0) {
		snprintf(s->heap_why, sizeof(s->heap_why),
			 "%s not found (next to cprof, or set CPROF_AGENT_LIBRARY)",
			 CP_AGENT_LIBRARY);
		return -ENOENT;
	}
	if (o->enable_on_exec)
		return 0;	/* record: the preload starts it; poll finds it */
	err = cp_heap_agent_inject(&h->agent, o->pids[0], h->path, o->rate ? o->rate : 524288,
				   stack, o->inject_timeout_ms, s->heap_why,
				   sizeof(s->heap_why));
	if (err < 0)
		return err;
	return connected(s, h);
}

/*
 * Record: read the region just handed over or found (err: how that went, 0 when h->agent has
 * it). A sampler that handed its region over waits for our byte (handed): its module map is
 * read now, it may go on. A failed start does not wait.
 */
static void take(struct cp_session *s, struct cp_heap_session *h, int err, bool handed)
{
	bool mapped = err == 0;

	if (err == 0)
		err = connected(s, h);
	if (handed && mapped)
		(void)send(h->sock, "k", 1, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (err < 0 && err != -EAGAIN && err != -ESRCH)
		h->err = err;
}

/*
 * Record: take the region the preloaded sampler handed over, or look for it in /proc (no
 * socket, or a program that closed the inherited one before it exec'd).
 */
static void try_connect(struct cp_session *s, struct cp_heap_session *h)
{
	int err = -EAGAIN;

	if (h->sock >= 0)
		err = cp_heap_agent_receive(&h->agent, h->sock, s->opts.pids[0], h->path,
					    s->heap_why, sizeof(s->heap_why));
	if (err != -EAGAIN) {
		take(s, h, err, true);
		return;
	}
	take(s, h,
	     cp_heap_agent_find(&h->agent, s->opts.pids[0], h->path, s->heap_why,
				sizeof(s->heap_why)),
	     false);
}

/* At most this many handovers are read after the end (a sender that never stops: bounded). */
#define MAX_LATE_REGIONS 64

/* How often record looks for an exec of the command that replaced the sampler, in ns. */
#define EXEC_CHECK_NS 10000000ull

/* Read what the ring holds to its end and let it go. */
static void finish_region(struct cp_session *s, struct cp_heap_session *h)
{
	while (cp_heap_ring_read(&h->ring, 0, &ring_ops, s) > 0)
		;
	remember_header(h);
	cp_heap_ring_release(&h->ring);
	cp_heap_agent_release(&h->agent);
	h->connected = false;
	s->skip_lo = s->skip_hi = 0;
}

/* Whether two mapped regions are the same memfd. */
static bool same_region(const struct cp_heap_agent *a, const struct cp_heap_agent *b)
{
	struct stat sa, sb;

	return fstat(a->fd, &sa) == 0 && fstat(b->fd, &sb) == 0 && sa.st_ino == sb.st_ino &&
	       sa.st_dev == sb.st_dev;
}

/*
 * Record: the command exec'd (a shell's exec, a version manager's shim) and the program it
 * became started a sampler of its own. What the old ring holds is read, then the new one:
 * handed over on the socket (only a well-formed handover from the command counts, what else
 * comes is dropped), or, when the old region is gone from the process, found by the next poll.
 */
static void follow_exec(struct cp_session *s, struct cp_heap_session *h)
{
	struct cp_heap_agent next;
	char why[160];
	uint64_t now = cp_now_ns();

	if (h->agent.injected)
		return;
	if (h->sock >= 0 && cp_heap_agent_pending(h->sock) &&
	    cp_heap_agent_receive(&next, h->sock, s->opts.pids[0], h->path, why,
				  sizeof(why)) == 0) {
		if (same_region(&next, &h->agent)) {
			/* Found in /proc before its handover was read: only the answer is due. */
			cp_heap_agent_release(&next);
			(void)send(h->sock, "k", 1, MSG_DONTWAIT | MSG_NOSIGNAL);
			return;
		}
		finish_region(s, h);
		h->agent = next;
		take(s, h, 0, true);
		return;
	}
	if (now - h->last_exec_check < EXEC_CHECK_NS)
		return;
	h->last_exec_check = now;
	if (cp_heap_agent_replaced(&h->agent))
		finish_region(s, h);
}

/* Re-read the module map when a pc falls outside it, at most once a second (dlopen). */
static void allow_reread(struct cp_session *s, struct cp_heap_session *h)
{
	uint64_t now = cp_now_ns();
	struct cp_proc *p;

	if (now - h->last_reread < MAPS_REREAD_NS)
		return;
	h->last_reread = now;
	p = cp_procs_find(&s->procs, h->agent.pid);
	if (p)
		p->reread = false;
}

/* Read a batch: 1 when records are left, 0 when drained, or -errno. */
static int read_batch(struct cp_session *s, struct cp_heap_session *h)
{
	long n;

	if (!h->connected || h->err)
		return h->err;
	follow_exec(s, h);
	if (!h->connected)
		return 0;
	allow_reread(s, h);
	n = cp_heap_ring_read(&h->ring, BATCH, &ring_ops, s);
	if (n < 0) {
		h->err = (int)n;
		snprintf(s->heap_why, sizeof(s->heap_why), "the sampler's ring is malformed");
		return h->err;
	}
	return n == BATCH ? 1 : 0;
}

int cp_session_heap_poll(struct cp_session *s, int timeout_ms)
{
	struct cp_heap_session *h = s->heap;
	uint64_t deadline = cp_now_ns() + (timeout_ms > 0 ? (uint64_t)timeout_ms * 1000000 : 0);

	for (;;) {
		/* The wake fd, and the handover socket (record: a sampler waits for our answer). */
		struct pollfd pfd[2] = { { .fd = h->wake_fd, .events = POLLIN },
					 { .fd = h->sock, .events = POLLIN } };
		uint64_t now;
		int err, ms;

		if (!h->connected && !h->err && !s->disabled)
			try_connect(s, h);
		err = read_batch(s, h);
		if (err != 0 || s->disabled)
			return err;
		now = cp_now_ns();
		if (now >= deadline)
			return 0;
		ms = (int)((deadline - now + 999999) / 1000000);
		ms = ms < RING_CHECK_MS ? ms : RING_CHECK_MS;
		if (poll(pfd, 2, ms) > 0) {
			if (!h->connected && !h->err && !s->disabled)
				try_connect(s, h);
			return read_batch(s, h);
		}
	}
}

void cp_session_heap_wake_on(struct cp_session *s, int fd)
{
	s->heap->wake_fd = fd;
}

void cp_session_heap_disable(struct cp_session *s)
{
	struct cp_heap_session *h = s->heap;

	if (!h || h->agent_stopped)
		return;
	h->agent_stopped = true;
	while (read_batch(s, h) == 1)
		;
	(void)cp_heap_agent_stop(&h->agent);
	/* What was committed while it stopped. */
	while (read_batch(s, h) == 1)
		;
	/*
	 * Regions handed over and not read yet (record: the command exec'd, and the programs it
	 * became may have exited already): each is read to its end, oldest first.
	 */
	for (int i = 0; i < MAX_LATE_REGIONS && h->sock >= 0 && !h->err &&
			cp_heap_agent_pending(h->sock); i++) {
		if (h->connected)
			follow_exec(s, h);
		else
			try_connect(s, h);
		if (!h->connected)
			break;
		(void)cp_heap_agent_stop(&h->agent);
		while (read_batch(s, h) == 1)
			;
	}
	if (h->connected)
		cp_heap_agent_free_ring(&h->agent);
}

void cp_session_heap_stats(const struct cp_session *s, struct cp_session_stats *out)
{
	struct cp_heap_session *h = s->heap;

	if (!h)
		return;
	if (h->connected)
		remember_header(h);
	if (h->last.seen) {
		out->lost = h->last.dropped;
		out->ring_bytes = h->last.ring_bytes;
		out->rings = 1;
		out->heap_patched = h->last.patched;
		out->heap_modules = h->last.modules;
		out->heap_skipped = h->last.skipped;
		out->heap_fast_paths = h->last.fast_paths;
	}
	out->heap_frees = h->model.frees;
	out->heap_untracked = h->model.untracked;
	out->heap_live = h->model.nblocks;
	out->heap_connected = h->connected;
}

const char *cp_session_heap_error(const struct cp_session *s)
{
	return s->heap && s->heap->err && s->heap_why[0] ? s->heap_why : NULL;
}

int cp_session_heap_emit(struct cp_session *s)
{
	struct cp_heap_session *h = s->heap;

	if (h->emitted)
		return 0;
	h->emitted = true;
	return cp_heap_model_emit(&h->model, s->prof, s->opts.rate ? s->opts.rate : 524288);
}

void cp_session_heap_free(struct cp_session *s)
{
	struct cp_heap_session *h = s->heap;

	if (!h)
		return;
	cp_session_heap_disable(s);
	cp_heap_ring_release(&h->ring);
	cp_heap_agent_release(&h->agent);
	cp_heap_model_release(&h->model);
	free(h);
	s->heap = NULL;
}
