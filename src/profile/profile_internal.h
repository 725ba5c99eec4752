/* Internals of the profile model, shared by its writers and its reader; not for other modules. */
#ifndef CP_PROFILE_INTERNAL_H
#define CP_PROFILE_INTERNAL_H

#include "profile.h"
#include "strtab.h"
#include "util.h"

/* Longest string the profile keeps (strtab.h): a longer name is cut, then deduplicated. */
#define CP_PROFILE_MAX_STRING CP_STRTAB_UTF8_MAX
/* Decompressed size accepted by the reader: pprof files of real programs are far smaller. */
#define CP_PROFILE_MAX_DECOMPRESSED (256u << 20)
/* A gzipped profile inflates to at most this many times its size (or the floor). */
#define CP_PROFILE_INFLATE_RATIO 64u
#define CP_PROFILE_INFLATE_FLOOR (16u << 20)
/* Entries of any one table: indexes are 32-bit. */
#define CP_PROFILE_MAX_ENTRIES (UINT32_MAX / 2)

struct cp_pvaluetype {
	uint32_t type;		/* string indexes */
	uint32_t unit;
};

struct cp_pmapping {
	uint64_t start;
	uint64_t limit;
	uint64_t offset;
	int pid;
	uint32_t file;
	uint32_t build_id;
	bool has_functions;
	bool has_filenames;
	bool has_line_numbers;
	bool has_inline_frames;
	bool from_file;		/* read from a pprof file: flags are copied, not derived */
	bool deleted;		/* the file was deleted or replaced: no reader can open it */
};

struct cp_pline {
	uint64_t function_id;
	int64_t line;
};

struct cp_plocation {
	uint64_t address;
	uint64_t mapping_id;	/* 0 = none */
	int pid;
	uint32_t line_off;	/* into prof->lines */
	uint32_t nlines;
	bool is_folded;
};

struct cp_pfunction {
	uint32_t name;
	uint32_t system_name;
	uint32_t filename;
	int64_t start_line;
};

struct cp_plabel {
	uint32_t key;
	uint32_t str;		/* 0 for numeric labels */
	uint32_t unit;
	int64_t num;
};

/*
 * A node of the stack trie: the stack from the outermost frame down to location loc, its
 * prefix (the caller's stack) being node parent. Stacks share their prefixes, so a new distinct
 * stack costs only the frames where it parts from the stacks seen before. Node 0 is the root,
 * the empty stack; a stack is named by its innermost node, and its locations, innermost first,
 * are the path from that node up to the root.
 */
struct cp_pnode {
	uint32_t parent;
	uint32_t loc;		/* location id */
};

/* A label set (labels[off .. off + n)), interned: the samples of one thread share one. */
struct cp_plabelset {
	uint32_t off;
	uint32_t n;
};

/* What makes a sample distinct: its stack (trie node) and its label set. */
struct cp_psample_key {
	uint32_t node;
	uint32_t labelset;
};

struct cp_profile {
	struct cp_strtab str;

	struct cp_pvaluetype *types;
	size_t ntypes;
	int64_t *totals;		/* per type, over all samples */
	bool saturated;			/* a value or total was held at the int64 limit */
	struct cp_pvaluetype period_type;
	int64_t period;
	int64_t time_nanos;
	int64_t duration_nanos;
	uint32_t default_type;		/* string index; 0 = unset */
	uint64_t lost_samples;
	bool cpu_from_count;		/* cp_profile_new's types: cpu = count * period */
	uint32_t *comments;		/* string indexes */
	size_t ncomments, comments_alloc;

	struct cp_pmapping *mappings;	/* id = index + 1 */
	size_t nmappings, mappings_alloc;
	struct cp_htab mapping_h;
	uint64_t kernel_mapping;

	struct cp_plocation *locations;	/* id = index + 1 */
	size_t nlocations, locations_alloc;
	struct cp_htab location_h;
	struct cp_pline *lines;
	size_t nlines, lines_alloc;
	struct cp_pspecial {
		uint64_t function_id;
		uint64_t location_id;
	} *special;			/* "[truncated]", "[unknown]" */
	size_t nspecial, special_alloc;

	struct cp_pfunction *functions;	/* id = index + 1 */
	size_t nfunctions, functions_alloc;
	struct cp_htab function_h;

	struct cp_pnode *nodes;		/* the stack trie; node 0 is the root */
	size_t nnodes, nodes_alloc;
	struct cp_itab node_h;		/* by (parent, loc) */
	struct cp_plabel *labels;	/* of all label sets */
	size_t nlabels, labels_alloc;
	struct cp_plabelset *labelsets;
	size_t nlabelsets, labelsets_alloc;
	struct cp_htab labelset_h;
	struct cp_psample_key *sample_keys;	/* sample i: its stack and labels */
	size_t nsamples, sample_keys_alloc;
	struct cp_itab sample_h;
	int64_t *values;		/* ntypes per sample */
	size_t values_alloc;

	/* Frequently used strings, interned once. */
	uint32_t s_thread, s_tid, s_pid;
};

/* A profile with no sample types, for the reader. NULL on ENOMEM. */
struct cp_profile *cp_profile_new_empty(void);
/* The index of s (NULL = "") in prof's string table, added when new. 0 or -errno. */
int cp_profile_intern(struct cp_profile *prof, const char *s, uint32_t *out);
/* Append a mapping without deduplication (reader). 0 or -errno; *id the new id. */
int cp_profile_append_mapping(struct cp_profile *prof, const struct cp_pmapping *m, uint64_t *id);
/* The id of the function (deduplicated). 0 or -errno. */
int cp_profile_intern_function(struct cp_profile *prof, const struct cp_pfunction *f,
			       uint64_t *id);
/* Append a location without the (pid, address) index (reader). 0 or -errno. */
int cp_profile_append_location(struct cp_profile *prof, uint64_t address, uint64_t mapping_id,
			       const struct cp_pline *lines, size_t nlines, bool is_folded,
			       uint64_t *id);
/* Add a sample with ntypes values; merged with an identical stack and label set. */
int cp_profile_add_sample_values(struct cp_profile *prof, const uint64_t *loc_ids, size_t n,
				 const struct cp_plabel *labels, size_t nlabels,
				 const int64_t *values);

/*
 * The location ids of sample i, innermost first, into *buf (grown as needed): the count
 * (0 for an empty stack) or -ENOMEM.
 */
int64_t cp_profile_sample_locations(const struct cp_profile *prof, size_t i, uint64_t **buf,
				    size_t *alloc);
/* The labels of sample i; *n receives their count. */
const struct cp_plabel *cp_profile_sample_labels(const struct cp_profile *prof, size_t i,
						 size_t *n);

/* The sample type the table reports: default_sample_type when it names one, else the last. */
size_t cp_profile_default_index(const struct cp_profile *prof);
/* The sample type that counts samples (samples/count), else the default. */
size_t cp_profile_count_index(const struct cp_profile *prof);

/*
 * Display names of frames for the text writers: every location expanded into its frames
 * (inlined innermost first), each frame a name id in names. Names are sanitized for the
 * line-oriented formats (no control characters, no ';').
 */
struct cp_profile_frames {
	struct cp_strtab names;
	uint32_t *frame;	/* name ids of all locations' frames */
	uint32_t *loc_off;	/* per location: first frame in frame[] */
	uint32_t *loc_n;	/* per location: number of frames (>= 1) */
};

int cp_profile_frames_build(const struct cp_profile *prof, struct cp_profile_frames *fr);
void cp_profile_frames_release(struct cp_profile_frames *fr);
/*
 * The frames of sample i, innermost first, into *buf (grown as needed). Returns the count
 * (>= 1: a sample without locations is one "[unknown]" frame) or -errno.
 */
int64_t cp_profile_sample_frames(const struct cp_profile *prof, const struct cp_profile_frames *fr,
				 size_t i, uint32_t **buf, size_t *alloc);

/*
 * The name of a frame without a function name into buf: module+0xoffset, as perf and eu-stack
 * print; [kernel]+0xaddress for kernel frames; 0xaddress without a mapping.
 */
void cp_profile_fallback_name(const struct cp_profile *prof, const struct cp_plocation *l,
			      char *buf, size_t size);

/* The writers behind cp_profile_write's format switch. 0 or -errno. */
int cp_profile_write_pprof(const struct cp_profile *prof, FILE *f);
int cp_profile_write_folded(const struct cp_profile *prof, FILE *f);
int cp_profile_write_svg(const struct cp_profile *prof, FILE *f);
int cp_profile_write_text(const struct cp_profile *prof, FILE *f, size_t top);

#endif
