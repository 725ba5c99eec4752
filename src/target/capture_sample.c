/* Capture of a running thread without stopping it: one perf sample of its registers and stack. */
#include <errno.h>
#include <linux/perf_event.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "capture_impl.h"
#include "perf_regs.h"
#include "perf_ring.h"
#include "util.h"

/*
 * A thread that is on a CPU has its registers in the CPU, not in /proc, so the live capture
 * cannot take it, and a ptrace stop holds it for as long as cprof needs to be scheduled
 * twice (long on a loaded machine). A perf event on that one thread, a task
 * clock that fires after 10 us of its CPU time, takes the same snapshot from the timer
 * interrupt: the user registers and a copy of the stack from sp. The thread loses the few
 * microseconds of the copy and never leaves the CPU. If the thread blocks before the timer
 * fires, no sample comes: the caller then finds it off CPU and captures it live.
 */

#define SAMPLE_PERIOD_NS 10000		/* the kernel's floor for timer events */
/* How long a running thread gets to run 10 us of CPU for its sample. */
#define SAMPLE_WAIT_MS 20
/* Rounds of SAMPLE_WAIT_MS waited for a thread that is runnable but gets no CPU. */
#define SAMPLE_WAIT_ROUNDS 10
/* A record's size is a u16: the stack, the registers and headers must fit in 64 KiB. */
#define SAMPLE_STACK_MAX (60u << 10)
/* Room in the ring besides the stack: the record's headers, tid and registers (~200 bytes). */
#define RECORD_OVERHEAD 4096u

static int open_event(int tid, size_t stack, bool kernel)
{
	struct perf_event_attr a;

	memset(&a, 0, sizeof(a));
	a.size = sizeof(a);
	a.type = PERF_TYPE_SOFTWARE;
	a.config = PERF_COUNT_SW_TASK_CLOCK;
	a.sample_period = SAMPLE_PERIOD_NS;
	a.sample_type = PERF_SAMPLE_TID | PERF_SAMPLE_REGS_USER | PERF_SAMPLE_STACK_USER;
	a.sample_regs_user = cp_perf_regs_mask();
	a.sample_stack_user = (uint32_t)stack;
	a.wakeup_events = 1;
	a.exclude_hv = 1;
	/* In a system call the user registers are those of its entry: as good. */
	a.exclude_kernel = !kernel;
	return (int)syscall(SYS_perf_event_open, &a, tid, -1, -1, PERF_FLAG_FD_CLOEXEC);
}

/*
 * Data pages for one record with a stack of stack bytes: a power of two (the kernel's rule).
 * Only the first sample is read; any later one that finds no room is dropped. Sized to the
 * stack, not to the largest stack: the kernel allocates and frees every page of the ring.
 */
static size_t ring_data_pages(size_t stack, size_t page)
{
	size_t need = (stack + RECORD_OVERHEAD + page - 1) / page, n = 1;

	while (n < need)
		n <<= 1;
	return n;
}

/* Parse the first sample of tid in the ring into out. 0, or -EAGAIN when there is none. */
static int take_sample(struct cp_perf_ring *r, int tid, size_t stack, struct cp_thread_snap *out)
{
	const struct perf_event_header *h;

	cp_perf_ring_read_init(r);
	while (cp_perf_ring_read_event(r, &h) > 0) {
		const uint8_t *p = (const uint8_t *)(h + 1), *end = (const uint8_t *)h + h->size;
		uint32_t pid_tid[2];
		uint64_t abi, len, dyn;

		if (h->type != PERF_RECORD_SAMPLE)
			continue;
		if ((size_t)(end - p) < 16 + 8 * CP_PERF_NREGS + 8)
			continue;
		memcpy(pid_tid, p, 8);
		memcpy(&abi, p + 8, 8);
		p += 16;
		if ((int)pid_tid[1] != tid || abi != PERF_SAMPLE_REGS_ABI_64)
			continue;
		memset(out, 0, sizeof(*out));
		for (size_t i = 0; i < CP_PERF_NREGS; i++, p += 8)
			memcpy(&out->regs.r[cp_perf_regs[i].dwarf], p, 8);
		out->regs.valid = (1u << CP_NREGS) - 1;
		memcpy(&len, p, 8);
		p += 8;
		if (len > (uint64_t)(end - p) || (uint64_t)(end - p) - len < 8)
			continue;
		memcpy(&dyn, p + len, 8);
		if (dyn > len)
			dyn = len;
		out->tid = tid;
		out->stack.start = out->regs.r[CP_REG_RSP];
		out->stack.truncated = dyn == stack;
		if (dyn) {
			out->stack.data = malloc(dyn);
			if (!out->stack.data)
				return -ENOMEM;
			memcpy(out->stack.data, p, dyn);
			out->stack.len = dyn;
		}
		out->verified = true;
		out->sampled = true;
		return 0;
	}
	return -EAGAIN;
}

/* CPU time tid has had, in ns; 0 when unreadable. */
static uint64_t run_time(int tid)
{
	uint64_t run = 0, slices;

	return cp_proc_read_schedstat(tid, tid, &run, &slices) == 0 ? run : 0;
}

/*
 * poll() for the sample, timeout_ms at a time. A thread that has not had a sample period of
 * CPU meanwhile waits for a CPU (an overloaded machine): a stop would wait as long for it to
 * run, so the sample is waited for again, up to SAMPLE_WAIT_ROUNDS rounds. One that had its
 * CPU time and gave no sample went to sleep: no more waiting. poll()'s result.
 */
static int wait_for_sample(struct pollfd *pfd, int tid, int timeout_ms)
{
	uint64_t before = run_time(tid);
	int ret = 0;

	for (int round = 0; round < SAMPLE_WAIT_ROUNDS; round++) {
		do
			ret = poll(pfd, 1, timeout_ms);
		while (ret < 0 && errno == EINTR);
		if (ret != 0 || !before || run_time(tid) - before >= SAMPLE_PERIOD_NS)
			break;
	}
	return ret;
}

int cp_capture_by_sample(int tid, size_t stack_max, int timeout_ms, struct cp_thread_snap *out)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t stack = stack_max && stack_max < SAMPLE_STACK_MAX ? stack_max : SAMPLE_STACK_MAX;
	struct cp_thread_snap snap;
	struct cp_perf_ring ring;
	struct pollfd pfd;
	int fd, ret;

	if (tid <= 0 || !out)
		return -EINVAL;
	stack &= ~(size_t)7;
	fd = open_event(tid, stack, true);
	if (fd < 0 && (errno == EACCES || errno == EPERM))
		fd = open_event(tid, stack, false);
	if (fd < 0)
		return errno == ESRCH ? -ESRCH : -EOPNOTSUPP;
	/* Populated now: a first touch of each page would be a fault, each on its own. */
	if (cp_perf_ring_map(&ring, fd, ring_data_pages(stack, page) * page, true) < 0) {
		close(fd);
		return -EOPNOTSUPP;
	}
	pfd.fd = fd;
	pfd.events = POLLIN;
	ret = wait_for_sample(&pfd, tid, timeout_ms);
	ioctl(fd, PERF_EVENT_IOC_DISABLE, 0);
	ret = ret > 0 ? take_sample(&ring, tid, stack, &snap) : -EAGAIN;
	if (ret == 0)
		*out = snap;
	/* POLLHUP alone: the thread exited. */
	if (ret == -EAGAIN && (pfd.revents & POLLHUP) && !(pfd.revents & POLLIN))
		ret = -ESRCH;
	cp_perf_ring_release(&ring);
	close(fd);
	return ret;
}

/* On a CPU: one perf sample takes what a stop would, and the thread keeps running. */
static bool sample_applies(const struct cp_capture_req *req)
{
	return req->live && req->have_first && (req->sc_first.running || req->first.state == 'R');
}

static int sample_capture(struct cp_capture_req *req, struct cp_thread_snap *out)
{
	const struct cp_map *m;
	int ret = cp_capture_by_sample(req->tid, req->max, SAMPLE_WAIT_MS, out);

	/* No perf here, or it went to sleep meanwhile: the stop finds it either way. */
	if (ret < 0)
		return ret == -ENOMEM || ret == -ESRCH ? ret : -EAGAIN;
	/* The kernel copies on past the end of the stack where that is readable. */
	m = cp_capture_stack_map(req->pid, req->given, req->own, out->stack.start);
	if (m && out->stack.len > m->end - out->stack.start) {
		out->stack.len = m->end - out->stack.start;
		out->stack.truncated = false;
	}
	out->sc = req->sc_first;
	out->has_syscall = true;
	out->has_state = true;
	out->state = req->first.state;
	memcpy(out->comm, req->first.comm, sizeof(out->comm));
	out->tracer = req->first.tracer;
	return 0;
}

const struct cp_capture_backend cp_capture_backend_sample = {
	.name = "sample",
	.applies = sample_applies,
	.capture = sample_capture,
};
