/* CPU sampling with perf_event_open: per-thread, per-CPU inherited cpu-clock events and rings. */
#include <errno.h>
#include <limits.h>
#include <linux/perf_event.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "perf_regs.h"
#include "perf_ring.h"
#include "proc.h"
#include "sampler.h"
#include "sampler_internal.h"
#include "util.h"

#define MAX_CPUS CP_MAX_CPUS
/* Task list re-scans after opening, until no thread is new (a thread-spawning storm). */
#define MAX_RESCANS 16
/* Processing time per cp_sampler_poll call before it returns with records left. */
#define POLL_BUDGET_NS 250000000ull

struct ring {
	int cpu;
	int fd;			/* the event whose buffer this is */
	struct cp_perf_ring pr;
	/* While cp_sampler_poll merges the rings: the ring's next record, read, not consumed. */
	const struct perf_event_header *next;
	uint64_t next_time;
};

struct event {
	int fd;
	int tid;
	int cpu;
	bool ring_owner;
};

/* A set of thread ids (never removes): the ids in v, found through the shared table. */
struct tidset {
	int *v;
	size_t n, alloc;
	struct cp_htab index;	/* indexes of v */
};

struct cp_sampler {
	int *pids;
	size_t npids;
	bool follow_children;
	struct perf_event_attr attr;
	struct perf_event_attr attr2;	/* a second event per thread and CPU (setup_attrs) */
	bool has_attr2;
	size_t stack_size;
	int *cpus;
	size_t ncpus;
	struct ring *rings;	/* one per entry of cpus, index matches */
	struct event *events;
	size_t nevents;
	size_t events_cap;
	struct tidset opened;	/* threads we opened events for ourselves */
	struct tidset inherited;	/* threads that got events from their creator */
	size_t ring_bytes;
	int wake_fd;		/* also ends a poll's wait when readable, or -1 */
	struct cp_sampler_stats stats;
};

static int perf_open(struct perf_event_attr *attr, int tid, int cpu)
{
	long fd = syscall(SYS_perf_event_open, attr, tid, cpu, -1, PERF_FLAG_FD_CLOEXEC);

	return fd < 0 ? -errno : (int)fd;
}

static uint32_t hash_tid(int tid)
{
	return (uint32_t)tid * 2654435761u;
}

static bool tid_eq(const void *ctx, uint32_t idx, const void *key)
{
	const struct tidset *set = ctx;

	return set->v[idx] == *(const int *)key;
}

static bool tidset_has(const struct tidset *set, int tid)
{
	return cp_htab_find(&set->index, hash_tid(tid), tid_eq, set, &tid) >= 0;
}

static int tidset_add(struct tidset *set, int tid)
{
	int err;

	if (tidset_has(set, tid))
		return 0;
	err = cp_grow((void **)&set->v, &set->alloc, set->n + 1, sizeof(*set->v));
	if (err < 0)
		return err;
	err = cp_htab_insert(&set->index, hash_tid(tid), (uint32_t)set->n);
	if (err < 0)
		return err;
	set->v[set->n++] = tid;
	return 0;
}

static void tidset_release(struct tidset *set)
{
	free(set->v);
	cp_htab_release(&set->index);
	memset(set, 0, sizeof(*set));
}

/*
 * Every online CPU. Not only those a target may run on now: its affinity changes under it
 * (a command started through taskset inherits cprof's own CPUs at fork, then moves; a
 * program pins its threads; a cpuset is edited), and a CPU without a ring sees none of its
 * samples. perf record opens a ring on every CPU too.
 */
static int find_cpus(struct cp_sampler *s)
{
	int *cpus = NULL;
	size_t n = 0;
	int err = cp_online_cpus(&cpus, &n);

	if (err < 0)
		return err;
	s->cpus = cpus;
	s->ncpus = n;
	s->rings = calloc(s->ncpus, sizeof(*s->rings));
	if (!s->rings)
		return -ENOMEM;
	for (size_t i = 0; i < s->ncpus; i++) {
		s->rings[i].cpu = s->cpus[i];
		s->rings[i].fd = -1;
	}
	return 0;
}

static int ring_map(struct cp_sampler *s, struct ring *r, int fd)
{
	long page = sysconf(_SC_PAGESIZE);
	size_t bytes = s->ring_bytes;

	/*
	 * Without CAP_IPC_LOCK the kernel limits locked ring memory (perf_event_mlock_kb plus
	 * RLIMIT_MEMLOCK): halve until it fits rather than fail.
	 */
	for (;;) {
		int err = cp_perf_ring_map(&r->pr, fd, bytes, false);

		if (err == 0) {
			r->fd = fd;
			s->stats.ring_bytes = bytes;
			return 0;
		}
		if ((err != -EPERM && err != -ENOMEM) || bytes <= (size_t)page * 2)
			return err;
		bytes /= 2;
	}
}

static int push_event(struct cp_sampler *s, int fd, int tid, int cpu, bool owner)
{
	if (s->nevents == s->events_cap) {
		size_t cap = s->events_cap ? s->events_cap * 2 : 64;
		struct event *v = realloc(s->events, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		s->events = v;
		s->events_cap = cap;
	}
	s->events[s->nevents++] = (struct event){ .fd = fd, .tid = tid, .cpu = cpu,
						  .ring_owner = owner };
	s->stats.events = s->nevents;
	return 0;
}

/* The second event of thread tid on r's CPU (attr2), writing into r's ring. */
static int open_second(struct cp_sampler *s, struct ring *r, int tid)
{
	int fd = perf_open(&s->attr2, tid, r->cpu), err;

	if (fd < 0)
		return fd;
	if (ioctl(fd, PERF_EVENT_IOC_SET_OUTPUT, r->fd) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	err = push_event(s, fd, tid, r->cpu, false);
	if (err < 0)
		close(fd);
	return err;
}

/*
 * Open one event per CPU for thread tid. -ESRCH when the thread is gone (not an error for the
 * caller unless nothing at all could be opened).
 */
static int open_thread(struct cp_sampler *s, int tid)
{
	int err;

	for (size_t i = 0; i < s->ncpus; i++) {
		struct ring *r = &s->rings[i];
		int fd = perf_open(&s->attr, tid, r->cpu);

		if (fd < 0)
			return fd;
		if (r->fd < 0) {
			err = ring_map(s, r, fd);
			if (err < 0) {
				close(fd);
				return err;
			}
			err = push_event(s, fd, tid, r->cpu, true);
		} else {
			if (ioctl(fd, PERF_EVENT_IOC_SET_OUTPUT, r->fd) < 0) {
				err = -errno;
				close(fd);
				return err;
			}
			err = push_event(s, fd, tid, r->cpu, false);
		}
		if (err < 0) {
			close(fd);
			return err;
		}
		if (s->has_attr2 && (err = open_second(s, r, tid)) < 0)
			return err;
	}
	return tidset_add(&s->opened, tid);
}

/*
 * The time of a record: samples carry it after ip and pid/tid; every other record ends with
 * the sample_id trailer {pid, tid, time}.
 */
static uint64_t record_time(const struct perf_event_header *h)
{
	uint64_t t;

	if (h->size < sizeof(*h) + 16)
		return 0;
	if (h->type == PERF_RECORD_SAMPLE)
		memcpy(&t, (const uint8_t *)h + sizeof(*h) + 16, sizeof(t));
	else
		memcpy(&t, (const uint8_t *)h + h->size - 8, sizeof(t));
	return t;
}

/* Mark threads that inherited events (FORK records not yet read) without consuming them. */
static int peek_forks(struct cp_sampler *s)
{
	for (size_t i = 0; i < s->ncpus; i++) {
		struct cp_perf_ring *r = &s->rings[i].pr;
		const struct perf_event_header *h;

		if (!r->base)
			continue;
		/* A pass that consumes nothing: cp_sampler_poll reads these records again. */
		cp_perf_ring_read_init(r);
		while (cp_perf_ring_read_event(r, &h) > 0) {
			if (h->type == PERF_RECORD_FORK && h->size >= sizeof(*h) + 16) {
				uint32_t v[4];

				memcpy(v, h + 1, sizeof(v));
				if (tidset_add(&s->inherited, (int)v[2]) < 0)
					return -ENOMEM;
			}
		}
	}
	return 0;
}

/* Open events for every thread of pid not yet covered. *added counts new threads. */
static int open_process(struct cp_sampler *s, int pid, size_t *added)
{
	int *tids = NULL;
	size_t n = 0;
	int err, opened = 0;

	err = cp_proc_list_tasks(pid, &tids, &n);
	if (err < 0)
		return err;
	for (size_t i = 0; i < n; i++) {
		if (tidset_has(&s->opened, tids[i]) || tidset_has(&s->inherited, tids[i]))
			continue;
		err = open_thread(s, tids[i]);
		if (err == -ESRCH) {
			/* Exited meanwhile: not the process (a last tid gone must not say so). */
			err = 0;
			continue;
		}
		if (err < 0)
			break;
		opened++;
		err = 0;
	}
	free(tids);
	*added += (size_t)opened;
	return err;
}

static void raise_fd_limit(size_t need)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= need + 64)
		return;
	rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > need + 64 ? need + 64 :
										   rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
}

static int open_all(struct cp_sampler *s)
{
	size_t total = 0;
	int err = 0;

	for (int round = 0; round < MAX_RESCANS; round++) {
		size_t added = 0;
		bool any_alive = false;

		if (round > 0) {
			err = peek_forks(s);
			if (err < 0)
				return err;
		}
		for (size_t i = 0; i < s->npids; i++) {
			size_t nthreads = s->opened.n + 64;

			raise_fd_limit(nthreads * s->ncpus * 2);
			err = open_process(s, s->pids[i], &added);
			if (err == -ESRCH || err == -ENOENT)
				continue;
			if (err < 0)
				return err;
			any_alive = true;
		}
		if (!any_alive)
			return -ESRCH;
		total += added;
		if (!added && round > 0)
			break;
	}
	return total ? 0 : -ESRCH;
}

void cp_sampler_free(struct cp_sampler *s)
{
	if (!s)
		return;
	/* Close events before unmapping rings: nothing is left attached to the targets. */
	for (size_t i = 0; i < s->nevents; i++)
		if (s->events[i].fd >= 0 && !s->events[i].ring_owner)
			close(s->events[i].fd);
	for (size_t i = 0; i < s->ncpus && s->rings; i++) {
		cp_perf_ring_release(&s->rings[i].pr);
		if (s->rings[i].fd >= 0)
			close(s->rings[i].fd);
	}
	free(s->rings);
	free(s->events);
	free(s->cpus);
	free(s->pids);
	tidset_release(&s->opened);
	tidset_release(&s->inherited);
	free(s);
}

static void close_events(struct cp_sampler *s)
{
	for (size_t i = 0; i < s->nevents; i++)
		if (!s->events[i].ring_owner && s->events[i].fd >= 0)
			close(s->events[i].fd);
	for (size_t i = 0; i < s->ncpus; i++) {
		struct ring *r = &s->rings[i];

		cp_perf_ring_release(&r->pr);
		if (r->fd >= 0)
			close(r->fd);
		r->fd = -1;
	}
	s->nevents = 0;
	tidset_release(&s->opened);
	tidset_release(&s->inherited);
}

/*
 * The first event of each thread carries the task records; the second one, if any, counts
 * context switches (beside cpu-clock) or the second tracepoint.
 */
static void setup_attrs(struct cp_sampler *s, const struct cp_sampler_opts *o, bool kernel)
{
	bool only_switches = o->switches && o->no_cpu_clock;

	if (o->ntracepoints) {
		cp_sampler_setup_attr(&s->attr, o, s->stack_size, kernel, CP_SAMPLER_TRACEPOINT, 0,
				      true);
		s->has_attr2 = o->ntracepoints > 1;
		if (s->has_attr2)
			cp_sampler_setup_attr(&s->attr2, o, s->stack_size, kernel,
					      CP_SAMPLER_TRACEPOINT, 1, false);
		return;
	}
	cp_sampler_setup_attr(&s->attr, o, s->stack_size, kernel,
			      only_switches ? CP_SAMPLER_SWITCHES : CP_SAMPLER_CPU_CLOCK, 0, true);
	s->has_attr2 = o->switches && !only_switches;
	if (s->has_attr2)
		cp_sampler_setup_attr(&s->attr2, o, s->stack_size, kernel, CP_SAMPLER_SWITCHES, 0,
				      false);
}

int cp_sampler_open(const struct cp_sampler_opts *opts, struct cp_sampler **out)
{
	struct cp_sampler *s;
	int err;

	if (!opts->npids || opts->hz <= 0 || opts->hz > CP_SAMPLER_HZ_MAX)
		return -EINVAL;
	if (opts->enable_on_exec && opts->npids != 1)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->pids = malloc(opts->npids * sizeof(*s->pids));
	if (!s->pids) {
		free(s);
		return -ENOMEM;
	}
	memcpy(s->pids, opts->pids, opts->npids * sizeof(*s->pids));
	s->npids = opts->npids;
	s->wake_fd = -1;
	s->follow_children = opts->follow_children;
	s->stack_size = opts->stack_size ? opts->stack_size : CP_SAMPLER_STACK_DEFAULT;
	if (s->stack_size < CP_SAMPLER_STACK_MIN)
		s->stack_size = CP_SAMPLER_STACK_MIN;
	if (s->stack_size > CP_SAMPLER_STACK_MAX)
		s->stack_size = CP_SAMPLER_STACK_MAX;
	s->stack_size &= ~(size_t)7;
	err = find_cpus(s);
	if (err < 0)
		goto fail;
	s->ring_bytes = cp_sampler_ring_bytes(opts, s->stack_size, s->ncpus);
	setup_attrs(s, opts, opts->kernel);
	err = open_all(s);
	if ((err == -EACCES || err == -EPERM) && opts->kernel) {
		/* perf_event_paranoid >= 2 without CAP_PERFMON: user space only. */
		close_events(s);
		s->stats.kernel_refused = true;
		setup_attrs(s, opts, false);
		err = open_all(s);
	}
	if (err < 0)
		goto fail;
	s->stats.rings = s->ncpus;
	*out = s;
	return 0;
fail:
	cp_sampler_free(s);
	return err;
}

void cp_sampler_set_wake_fd(struct cp_sampler *s, int fd)
{
	if (s)
		s->wake_fd = fd;
}

void cp_sampler_disable(struct cp_sampler *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->nevents; i++)
		if (s->events[i].fd >= 0)
			ioctl(s->events[i].fd, PERF_EVENT_IOC_DISABLE, 0);
}

void cp_sampler_get_stats(const struct cp_sampler *s, struct cp_sampler_stats *out)
{
	*out = s->stats;
}

static bool followed(const struct cp_sampler *s, int pid)
{
	if (s->follow_children)
		return true;
	for (size_t i = 0; i < s->npids; i++)
		if (s->pids[i] == pid)
			return true;
	return false;
}

/* A FORK record for a thread we opened events for ourselves: drop our extra events. */
static void drop_duplicate(struct cp_sampler *s, int tid)
{
	for (size_t i = 0; i < s->nevents; i++) {
		struct event *e = &s->events[i];

		if (e->tid != tid || e->fd < 0)
			continue;
		if (e->ring_owner) {
			/* Its fd holds the ring: keep it, but stop it counting. */
			ioctl(e->fd, PERF_EVENT_IOC_DISABLE, 0);
		} else {
			close(e->fd);
			e->fd = -1;
		}
	}
}

static void parse_sample(struct cp_sampler *s, const struct ring *r,
			 const struct perf_event_header *h, const struct cp_sampler_events *ev,
			 void *ctx)
{
	const uint8_t *p = (const uint8_t *)(h + 1);
	const uint8_t *end = (const uint8_t *)h + h->size;
	uint64_t type = s->attr.sample_type;
	struct cp_sample smp;
	uint32_t pt[2];

	memset(&smp, 0, sizeof(smp));
	smp.cpu = r->cpu;
#define NEED(n)                                    \
	do {                                       \
		if ((size_t)(end - p) < (size_t)(n)) \
			return;                    \
	} while (0)
	NEED(8 + 8 + 8 + 8);
	memcpy(&smp.ip, p, 8);
	p += 8;
	memcpy(pt, p, 8);
	smp.pid = (int)pt[0];
	smp.tid = (int)pt[1];
	p += 8;
	memcpy(&smp.time, p, 8);
	p += 8;
	memcpy(&smp.period, p, 8);
	p += 8;
	if (type & PERF_SAMPLE_CALLCHAIN) {
		uint64_t nr;

		NEED(8);
		memcpy(&nr, p, 8);
		p += 8;
		if (nr > (uint64_t)(end - p) / 8)
			return;
		smp.callchain = (const uint64_t *)p;	/* 8-aligned within the record */
		smp.ncallchain = nr;
		p += nr * 8;
	}
	if (type & PERF_SAMPLE_RAW) {
		uint32_t size;

		NEED(4);
		memcpy(&size, p, 4);
		if (size > (size_t)(end - p) - 4)
			return;
		smp.raw = p + 4;
		smp.raw_size = size;
		p += 4 + size;	/* the u32 and the data end 8-aligned */
	}
	if (type & PERF_SAMPLE_REGS_USER) {
		uint64_t abi, v;

		NEED(8);
		memcpy(&abi, p, 8);
		p += 8;
		if (abi != PERF_SAMPLE_REGS_ABI_NONE) {
			NEED(8 * CP_PERF_NREGS);
			for (size_t i = 0; i < CP_PERF_NREGS; i++) {
				memcpy(&v, p, 8);
				p += 8;
				smp.regs.r[cp_perf_regs[i].dwarf] = v;
				smp.regs.valid |= 1u << cp_perf_regs[i].dwarf;
			}
			smp.user_regs = abi == PERF_SAMPLE_REGS_ABI_64;
		}
	}
	if (type & PERF_SAMPLE_STACK_USER) {
		uint64_t size, dyn;

		NEED(8);
		memcpy(&size, p, 8);
		p += 8;
		if (size) {
			if (size > (uint64_t)(end - p) || (uint64_t)(end - p) - size < 8)
				return;
			memcpy(&dyn, p + size, 8);
			if (dyn > size)
				dyn = size;
			smp.stack.data = (uint8_t *)p;
			smp.stack.len = dyn;
			smp.stack.start = smp.regs.r[CP_REG_RSP];
			/* A full copy: the live stack probably went on beyond it. */
			smp.stack.truncated = dyn == s->stack_size;
			p += size + 8;
		}
	}
#undef NEED
	if (!smp.stack.data)
		smp.user_regs = false;
	s->stats.samples++;
	if (!followed(s, smp.pid)) {
		s->stats.dropped++;
		return;
	}
	if (ev->sample)
		ev->sample(ctx, &smp);
}

static void handle_record(struct cp_sampler *s, const struct ring *r,
			  const struct perf_event_header *h, const struct cp_sampler_events *ev,
			  void *ctx)
{
	const uint8_t *body = (const uint8_t *)(h + 1);
	size_t blen = h->size - sizeof(*h);
	uint32_t v[4];

	switch (h->type) {
	case PERF_RECORD_SAMPLE:
		parse_sample(s, r, h, ev, ctx);
		break;
	case PERF_RECORD_MMAP2: {
		struct cp_sampler_mmap m;
		uint64_t q[3];
		uint32_t d[2], pf[2];
		const char *name = (const char *)body + 64;
		size_t maxname;

		/* pid tid | addr len pgoff | maj min ino ino_gen | prot flags | filename */
		if (blen < 64 + 16 + 1)
			break;
		memcpy(v, body, 8);
		memcpy(q, body + 8, 24);
		memcpy(d, body + 32, 8);
		memset(&m, 0, sizeof(m));
		m.pid = (int)v[0];
		m.tid = (int)v[1];
		m.start = q[0];
		m.len = q[1];
		m.pgoff = q[2];
		m.dev_major = d[0];
		m.dev_minor = d[1];
		memcpy(&m.inode, body + 40, 8);
		memcpy(pf, body + 56, 8);
		m.prot = pf[0];
		m.flags = pf[1];
		maxname = blen - 64 - 16;	/* minus the sample_id trailer */
		if (!memchr(name, '\0', maxname))
			break;
		m.path = name;
		if (ev->mmap && followed(s, m.pid))
			ev->mmap(ctx, &m);
		break;
	}
	case PERF_RECORD_COMM: {
		const char *name = (const char *)body + 8;

		if (blen < 8 + 16 + 1 || !memchr(name, '\0', blen - 8 - 16))
			break;
		memcpy(v, body, 8);
		if (ev->comm && followed(s, (int)v[0]))
			ev->comm(ctx, (int)v[0], (int)v[1], name,
				 (h->misc & PERF_RECORD_MISC_COMM_EXEC) != 0);
		break;
	}
	case PERF_RECORD_FORK:
		if (blen < 16)
			break;
		memcpy(v, body, 16);	/* pid ppid tid ptid */
		if (tidset_has(&s->opened, (int)v[2]) && !tidset_has(&s->inherited, (int)v[2]))
			drop_duplicate(s, (int)v[2]);
		tidset_add(&s->inherited, (int)v[2]);
		if (ev->fork && followed(s, (int)v[0]))
			ev->fork(ctx, (int)v[0], (int)v[2], (int)v[1], (int)v[3]);
		break;
	case PERF_RECORD_EXIT:
		if (blen < 16)
			break;
		memcpy(v, body, 16);
		if (ev->exit && followed(s, (int)v[0]))
			ev->exit(ctx, (int)v[0], (int)v[2]);
		break;
	case PERF_RECORD_SWITCH:
		/* Only the sample_id trailer: pid tid time. */
		if (blen < 16)
			break;
		memcpy(v, body, 8);
		if (ev->cswitch && followed(s, (int)v[0]))
			ev->cswitch(ctx, (int)v[0], (int)v[1], record_time(h),
				    (h->misc & PERF_RECORD_MISC_SWITCH_OUT) != 0,
				    (h->misc & PERF_RECORD_MISC_SWITCH_OUT_PREEMPT) != 0);
		break;
	case PERF_RECORD_LOST: {
		uint64_t lost;

		if (blen < 16)
			break;
		memcpy(&lost, body + 8, 8);
		s->stats.lost += lost;
		if (ev->lost)
			ev->lost(ctx, lost);
		break;
	}
	default:
		break;
	}
}

int cp_sampler_poll(struct cp_sampler *s, int timeout_ms, const struct cp_sampler_events *ev,
		    void *ctx)
{
	struct pollfd pfd[MAX_CPUS + 1];
	size_t n = 0;
	uint64_t t0;

	for (size_t i = 0; i < s->ncpus; i++) {
		if (s->rings[i].fd < 0)
			continue;
		pfd[n].fd = s->rings[i].fd;
		pfd[n].events = POLLIN;
		pfd[n].revents = 0;
		n++;
	}
	if (n && s->wake_fd >= 0) {
		pfd[n].fd = s->wake_fd;
		pfd[n].events = POLLIN;
		pfd[n].revents = 0;
		n++;
	}
	if (timeout_ms != 0 && n) {
		if (poll(pfd, n, timeout_ms) < 0 && errno != EINTR)
			return -errno;
	}
	t0 = cp_now_ns();
	for (size_t i = 0; i < s->ncpus; i++) {
		s->rings[i].next = NULL;
		if (s->rings[i].pr.base)
			cp_perf_ring_read_init(&s->rings[i].pr);
	}
	/*
	 * Merge the rings by time: a sample on one CPU may use a mapping whose MMAP2 record sits
	 * in another CPU's ring. Each ring is already in time order.
	 */
	for (size_t nrec = 0;; nrec++) {
		struct ring *best = NULL;

		/* Give the caller back control now and then (deadline, Ctrl-C); the rest waits. */
		if ((nrec & 63) == 63 && cp_now_ns() - t0 > POLL_BUDGET_NS)
			return 1;

		for (size_t i = 0; i < s->ncpus; i++) {
			struct ring *r = &s->rings[i];

			if (!r->pr.base)
				continue;
			if (!r->next) {
				int got = cp_perf_ring_read_event(&r->pr, &r->next);

				/* Malformed or unreadable: skip what is left of this ring. */
				if (got < 0) {
					cp_perf_ring_read_done(&r->pr);
					r->next = NULL;
				}
				if (got <= 0)
					continue;
				r->next_time = record_time(r->next);
			}
			if (!best || r->next_time < best->next_time)
				best = r;
		}
		if (!best)
			break;
		handle_record(s, best, best->next, ev, ctx);
		best->next = NULL;
		cp_perf_ring_consume(&best->pr);
	}
	return 0;
}
