/* The perf event attributes of the sampler's events (cpu-clock, context switches) and ring size. */
#include <string.h>
#include <time.h>

#include "perf_regs.h"
#include "sampler_internal.h"

void cp_sampler_setup_attr(struct perf_event_attr *a, const struct cp_sampler_opts *o,
			   size_t stack_size, bool kernel, enum cp_sampler_event_kind kind,
			   size_t i, bool records)
{
	memset(a, 0, sizeof(*a));
	a->size = sizeof(*a);
	a->type = PERF_TYPE_SOFTWARE;
	if (kind == CP_SAMPLER_TRACEPOINT) {
		a->type = PERF_TYPE_TRACEPOINT;
		a->config = (uint64_t)o->tracepoints[i];
		a->sample_period = 1;
		if (o->raw)
			a->sample_type |= PERF_SAMPLE_RAW;
	} else if (kind == CP_SAMPLER_SWITCHES) {
		a->config = PERF_COUNT_SW_CONTEXT_SWITCHES;
		a->sample_period = 1;
		a->context_switch = 1;
	} else {
		a->config = PERF_COUNT_SW_CPU_CLOCK;
		a->freq = 1;
		a->sample_freq = (uint64_t)o->hz;
	}
	a->sample_type |= PERF_SAMPLE_IP | PERF_SAMPLE_TID | PERF_SAMPLE_TIME | PERF_SAMPLE_PERIOD;
	a->inherit = 1;
	a->disabled = o->enable_on_exec;
	a->enable_on_exec = o->enable_on_exec;
	/* mmap selects executable mappings; mmap2 only makes them MMAP2 records (with inodes). */
	a->mmap = records;
	a->mmap2 = records;
	a->mmap_data = 0;
	a->comm = records;
	a->comm_exec = records;
	a->task = records;
	a->sample_id_all = 1;
	a->exclude_hv = 1;
	a->exclude_kernel = !kernel;
	a->exclude_callchain_kernel = !kernel;
	if (o->switches || o->ntracepoints) {
		/* One time line for every event (the tracepoints of a thread pair up by time). */
		/*
		 * The switch sample is taken in the scheduler, a tracepoint's in its kernel code:
		 * excluding the kernel would drop them. Their stack is the user one: the kernel's
		 * frames are left out.
		 */
		a->exclude_kernel = 0;
		a->exclude_callchain_kernel = 1;
		kernel = false;
		a->use_clockid = 1;
		a->clockid = CLOCK_MONOTONIC;
	}
	/* Wake the reader when a quarter of the ring is used, not per sample. */
	a->watermark = 1;
	if (o->dwarf) {
		a->sample_type |= PERF_SAMPLE_REGS_USER | PERF_SAMPLE_STACK_USER;
		a->sample_regs_user = cp_perf_regs_mask();
		a->sample_stack_user = (uint32_t)stack_size;
		if (kernel) {
			/* Kernel frames from the kernel; user frames from our own unwinding. */
			a->sample_type |= PERF_SAMPLE_CALLCHAIN;
			a->exclude_callchain_user = 1;
		}
	} else {
		a->sample_type |= PERF_SAMPLE_CALLCHAIN;
	}
}

size_t cp_sampler_ring_bytes(const struct cp_sampler_opts *o, size_t stack_size, size_t ncpus)
{
	size_t per_sample = o->dwarf ? stack_size + 256 : 1100;
	size_t rate = o->switches && o->hz < 10000 ? 10000 : (size_t)o->hz;
	size_t want = per_sample * rate / 2;
	size_t cap = (128u << 20) / (ncpus ? ncpus : 1);
	size_t bytes = 64u << 10;

	if (cap > (32u << 20))
		cap = 32u << 20;
	/* The nearest power of two: 512 KiB at 99 Hz, 4 MiB at 999 Hz with 8 KiB stacks. */
	while (bytes + bytes / 2 < want && bytes * 2 <= cap)
		bytes <<= 1;
	return bytes;
}
