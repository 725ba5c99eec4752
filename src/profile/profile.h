/*
 * The profile model: mappings, locations (each with its source lines, inlined first),
 * functions and aggregated samples, deduplicated as they arrive, so that memory grows with the
 * number of distinct stacks, not with the number of samples. Written as pprof, folded stacks,
 * an SVG flame graph or a top table; read back from any pprof file.
 */
#ifndef CP_PROFILE_H
#define CP_PROFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct cp_profile;
struct cp_map;

/* One source line of a location. Strings are copied into the profile. */
struct cp_profile_line {
	const char *function;		/* demangled name; NULL = unknown */
	const char *system_name;	/* raw name; NULL = same as function */
	const char *file;		/* NULL = unknown */
	int64_t line;
	int64_t start_line;
};

struct cp_profile_meta {
	uint64_t time_nanos;		/* wall clock at start */
	uint64_t duration_nanos;
	int64_t period;			/* ns between samples: 1e9 / HZ */
	uint64_t lost_samples;		/* reported by the kernel (or the sampler: lost_why) */
	const char *comment;		/* optional; copied */
	const char *lost_why;		/* NULL: "dropped by the kernel" */
};

/*
 * Sample types: a new profile has two, samples/count and cpu/nanoseconds (docs/FORMATS.md);
 * cp_profile_add_sample's count fills both (cpu = count * period). NULL when out of memory.
 * Every string handed to this module is copied (and cut at 64 KiB); no pointer is kept.
 */
struct cp_profile *cp_profile_new(void);
/* NULL is a no-op. */
void cp_profile_free(struct cp_profile *prof);
/*
 * Time, duration, period, lost samples and comment. May be called at any time, also after the
 * samples: a new period rescales the cpu values of the samples already added. The lost-sample
 * count becomes a comment ("lost samples: N ...") in pprof and in the text table.
 */
void cp_profile_set_meta(struct cp_profile *prof, const struct cp_profile_meta *meta);

/*
 * Mapping for map of process pid, deduplicated by (pid, start, path). The first mapping added
 * must be the main executable (pprof's mapping 1). build_id: hex or NULL. *id receives a
 * non-zero id. 0 or -errno. has_functions / has_lines say what symbolization can do for the
 * file; the pprof writer sets has_functions, has_filenames, has_line_numbers and
 * has_inline_frames only where the mapping's locations really got them.
 */
int cp_profile_add_mapping(struct cp_profile *prof, int pid, const struct cp_map *map,
			   const char *build_id, bool has_functions, bool has_lines, uint64_t *id);
/* A mapping for kernel frames ("[kernel]"). */
int cp_profile_kernel_mapping(struct cp_profile *prof, uint64_t *id);
/*
 * Make mapping id the first (pprof's main binary) when it was not added first: it trades
 * places and ids with mapping 1, and every location follows. Ids a caller keeps are stale
 * after this: call it when the profile is complete. 0 or -EINVAL.
 */
int cp_profile_set_main_mapping(struct cp_profile *prof, uint64_t id);

/* The location id for (pid, address), or 0 when not yet added. A hash lookup. */
uint64_t cp_profile_find_location(const struct cp_profile *prof, int pid, uint64_t address);
/*
 * Add the location of address (the address pprof shows: return address - 1 for caller frames)
 * in process pid. mapping_id 0 = none. lines innermost (inlined) first; nlines may be 0
 * (unsymbolized: readers show module+offset); a line without function is named that way too.
 * 0 or -errno; *id receives the new id, or the existing one when (pid, address) was added
 * before (the first lines stay).
 */
int cp_profile_add_location(struct cp_profile *prof, int pid, uint64_t address,
			    uint64_t mapping_id, const struct cp_profile_line *lines, size_t nlines,
			    uint64_t *id);
/* A pseudo location named name ("[truncated]", "[unknown]"), one per name. */
int cp_profile_special_location(struct cp_profile *prof, const char *name, uint64_t *id);
/* The function of location id's outermost line (the caller of its inlined frames), or NULL. */
const char *cp_profile_location_outer_function(const struct cp_profile *prof, uint64_t id);

/*
 * Add count samples of the stack loc_ids (innermost first; n may be 0) with labels thread,
 * tid and pid. Merged with the sample of identical stack and labels, so memory grows with
 * distinct stacks. -EINVAL for an unknown location id, or on a profile from cp_profile_read
 * (whose sample types are the file's).
 */
int cp_profile_add_sample(struct cp_profile *prof, const uint64_t *loc_ids, size_t n, int pid,
			  int tid, const char *thread_name, uint64_t count);

/* What a profile measures: its sample types, units and period type (docs/FORMATS.md). */
enum cp_profile_kind {
	CP_PROFILE_KIND_CPU,	/* samples/count, cpu/nanoseconds (cp_profile_new) */
	CP_PROFILE_KIND_WALL,	/* samples/count, wall/nanoseconds; period wall/nanoseconds */
	CP_PROFILE_KIND_DELAY,	/* contentions/count, delay/nanoseconds; period contentions 1 */
	CP_PROFILE_KIND_COUNT,	/* threadcreate/count; period threadcreate/count 1 */
	/*
	 * alloc_objects/count, alloc_space/bytes, inuse_objects/count, inuse_space/bytes;
	 * period type space/bytes (set the period, the sampling rate, with cp_profile_set_meta).
	 * HEAP's default sample type is inuse_space, ALLOCS' alloc_space (Go's heap, allocs).
	 */
	CP_PROFILE_KIND_HEAP,
	CP_PROFILE_KIND_ALLOCS,
};

/*
 * A new profile of kind. A WALL profile's wall values are samples * period, kept so by
 * cp_profile_set_meta as a CPU profile's are. NULL when out of memory or kind is unknown.
 */
struct cp_profile *cp_profile_new_kind(enum cp_profile_kind kind);
/*
 * The stack loc_ids (innermost first) interned: *node names it from now on, for samples added
 * later with cp_profile_add_stack_sample. 0 or -errno (-EINVAL for an unknown location).
 */
int cp_profile_stack(struct cp_profile *prof, const uint64_t *loc_ids, size_t n, uint32_t *node);
/*
 * Add values (one per sample type) to the sample of stack node with labels thread, tid, pid
 * and, when key is not NULL, the string label key = value; tid 0 (a record of the process,
 * such as the Go runtime's, not of one thread): pid and key only. 0 or -errno.
 */
int cp_profile_add_stack_sample(struct cp_profile *prof, uint32_t node, int pid, int tid,
				const char *thread_name, const char *key, const char *value,
				const int64_t *values);
/*
 * As cp_profile_add_stack_sample, with the numeric label key = num instead of a string one
 * (a heap sample's "bytes", the allocation size, as Go labels it). 0 or -errno.
 */
int cp_profile_add_stack_sample_num(struct cp_profile *prof, uint32_t node, int pid, int tid,
				    const char *thread_name, const char *key, int64_t num,
				    const int64_t *values);
/*
 * The function names of stack node's frames, innermost first, inlined frames included ("" when
 * unknown), up to max into names. Returns their count. The strings live as long as the profile.
 */
size_t cp_profile_stack_functions(const struct cp_profile *prof, uint32_t node,
				  const char **names, size_t max);
/*
 * A profile of one sample type, type/unit (Go's "goroutine"/"count"), period 1: a snapshot of
 * things counted by stack, not time. Fed by cp_profile_add_count. NULL when out of memory.
 */
struct cp_profile *cp_profile_new_count(const char *type, const char *unit);
/*
 * Add count to the stack loc_ids of a profile from cp_profile_new_count, labelled with thread,
 * tid and pid (tid 0: pid only). 0 or -errno (-EINVAL on another kind of profile).
 */
int cp_profile_add_count(struct cp_profile *prof, const uint64_t *loc_ids, size_t n, int pid,
			 int tid, const char *thread_name, uint64_t count);

/* Samples added so far (the samples/count total; for other profiles, the default type's). */
uint64_t cp_profile_sample_total(const struct cp_profile *prof);

enum cp_profile_format {
	CP_PROFILE_PPROF,
	CP_PROFILE_FOLDED,
	CP_PROFILE_SVG,
	CP_PROFILE_TEXT,
};

/*
 * Write prof to f in format. top: rows for the text table (0 = all). 0, 1 when a sum or value
 * would overflow int64 and was held at its limit instead (to be said), or -errno.
 * PPROF: gzipped profile.proto. FOLDED: "root;...;leaf count" per distinct stack, sorted,
 * in samples. SVG: a self-contained interactive flame graph (samples). TEXT: the top table
 * of the default sample type (cpu), like `go tool pprof -top`.
 */
int cp_profile_write(const struct cp_profile *prof, enum cp_profile_format format, FILE *f,
		     size_t top);

/*
 * Read a pprof file (gzipped or not, any producer). Returns 0 or -errno: -EINVAL (empty, or
 * no pprof string table: not a profile), -EBADMSG (corrupt or truncated: bad gzip or wire
 * format, ids that are zero, duplicated or missing, string indexes out of range, values not
 * matching the sample types), -EFBIG (over 256 MiB uncompressed, or more decoded messages
 * than a budget proportional to the size allows), -ENOMEM. *out is written only on success;
 * the profile can then be written in any format.
 */
int cp_profile_read(const void *data, size_t len, struct cp_profile **out);

#endif
