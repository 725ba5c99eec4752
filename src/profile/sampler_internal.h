/* Internals of the sampler shared by its files (sampler.c, sampler_attr.c); not for other modules. */
#ifndef CP_SAMPLER_INTERNAL_H
#define CP_SAMPLER_INTERNAL_H

#include <linux/perf_event.h>
#include <stdbool.h>
#include <stddef.h>

#include "sampler.h"

/* Which event of a thread an attribute describes. */
enum cp_sampler_event_kind {
	CP_SAMPLER_CPU_CLOCK,	/* cpu-clock at opts->hz */
	CP_SAMPLER_SWITCHES,	/* a sample at every context switch out, and SWITCH records */
	CP_SAMPLER_TRACEPOINT,	/* a sample at every hit of tracepoint opts->tracepoints[i] */
};

/*
 * The attribute of one event of a thread: kind (tracepoint i), carrying the task records (MMAP2, COMM, FORK,
 * EXIT) when records. Every event of a sampler has the same sample_type (one parser), and in
 * a sampler with context switches every event stamps CLOCK_MONOTONIC (one time line for the
 * merge of the rings, and the session's start and end).
 */
void cp_sampler_setup_attr(struct perf_event_attr *a, const struct cp_sampler_opts *o,
			   size_t stack_size, bool kernel, enum cp_sampler_event_kind kind,
			   size_t i, bool records);

/*
 * Bytes of ring per CPU: about half a second of samples at full rate (a CPU takes at most hz
 * samples a second, however many threads share it; with context switches, as if at 10 kHz),
 * so that a reader kept off the CPU for a while (a loaded machine, the first DWARF lookups)
 * loses nothing; a power of two, at most 32 MiB per ring and 128 MiB over all CPUs (locked
 * memory). No more than that: every page is allocated and cleared by the kernel up front,
 * which costs the mmap time in proportion (dear on virtual machines).
 */
size_t cp_sampler_ring_bytes(const struct cp_sampler_opts *o, size_t stack_size, size_t ncpus);

#endif
