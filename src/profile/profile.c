/* The profile model: interned strings, mappings, locations, functions and aggregated samples. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "maps.h"
#include "profile_internal.h"

/* Intern into the profile's table; *out receives the index. */
static int intern(struct cp_profile *prof, const char *s, uint32_t *out)
{
	int64_t idx = cp_strtab_intern(&prof->str, s);

	/* An -errno: kept negative through the narrowing (the compiler checks that too). */
	if (idx < 0)
		return idx >= -4095 ? (int)idx : -ENOMEM;
	*out = (uint32_t)idx;
	return 0;
}

/* ---- the profile ---- */

struct cp_profile *cp_profile_new_empty(void)
{
	struct cp_profile *prof = calloc(1, sizeof(*prof));

	if (!prof)
		return NULL;
	if (cp_strtab_init(&prof->str, CP_STRTAB_UTF8) < 0 ||
	    intern(prof, "thread", &prof->s_thread) < 0 ||
	    intern(prof, "tid", &prof->s_tid) < 0 || intern(prof, "pid", &prof->s_pid) < 0 ||
	    cp_grow((void **)&prof->nodes, &prof->nodes_alloc, 1, sizeof(*prof->nodes)) < 0) {
		cp_profile_free(prof);
		return NULL;
	}
	/* The root of the stack trie: the empty stack. */
	prof->nodes[0] = (struct cp_pnode){ 0, 0 };
	prof->nnodes = 1;
	return prof;
}

struct cp_profile *cp_profile_new(void)
{
	struct cp_profile *prof = cp_profile_new_empty();
	uint32_t s_samples, s_count, s_cpu, s_ns;

	if (!prof)
		return NULL;
	prof->types = calloc(2, sizeof(*prof->types));
	prof->totals = calloc(2, sizeof(*prof->totals));
	if (!prof->types || !prof->totals || intern(prof, "samples", &s_samples) < 0 ||
	    intern(prof, "count", &s_count) < 0 || intern(prof, "cpu", &s_cpu) < 0 ||
	    intern(prof, "nanoseconds", &s_ns) < 0) {
		cp_profile_free(prof);
		return NULL;
	}
	prof->ntypes = 2;
	prof->types[0] = (struct cp_pvaluetype){ s_samples, s_count };
	prof->types[1] = (struct cp_pvaluetype){ s_cpu, s_ns };
	prof->period_type = (struct cp_pvaluetype){ s_cpu, s_ns };
	prof->default_type = s_cpu;
	prof->cpu_from_count = true;
	/* 99 Hz until told otherwise, so that cpu values are never zero by accident. */
	prof->period = 1000000000 / 99;
	return prof;
}

void cp_profile_free(struct cp_profile *prof)
{
	if (!prof)
		return;
	cp_strtab_release(&prof->str);
	free(prof->types);
	free(prof->totals);
	free(prof->comments);
	free(prof->mappings);
	cp_htab_release(&prof->mapping_h);
	free(prof->locations);
	cp_htab_release(&prof->location_h);
	free(prof->lines);
	free(prof->functions);
	cp_htab_release(&prof->function_h);
	free(prof->special);
	free(prof->nodes);
	cp_itab_release(&prof->node_h);
	free(prof->labels);
	free(prof->labelsets);
	cp_htab_release(&prof->labelset_h);
	free(prof->sample_keys);
	cp_itab_release(&prof->sample_h);
	free(prof->values);
	free(prof);
}

static int add_comment(struct cp_profile *prof, const char *text)
{
	uint32_t idx;
	int err;

	err = intern(prof, text, &idx);
	if (err < 0)
		return err;
	if (cp_grow((void **)&prof->comments, &prof->comments_alloc, prof->ncomments + 1,
		    sizeof(*prof->comments)) < 0)
		return -ENOMEM;
	prof->comments[prof->ncomments++] = idx;
	return 0;
}

void cp_profile_set_meta(struct cp_profile *prof, const struct cp_profile_meta *meta)
{
	char lost[64];

	prof->time_nanos = (int64_t)meta->time_nanos;
	prof->duration_nanos = (int64_t)meta->duration_nanos;
	if (meta->period > 0 && meta->period != prof->period) {
		prof->period = meta->period;
		/*
		 * Sessions learn the final period late (set_meta at the end): keep cpu = count *
		 * period true for the samples already added.
		 */
		if (prof->cpu_from_count) {
			prof->totals[1] = 0;
			for (size_t i = 0; i < prof->nsamples; i++) {
				int64_t *v = &prof->values[i * 2];

				v[1] = (int64_t)((uint64_t)v[0] * (uint64_t)prof->period);
				prof->totals[1] =
					(int64_t)((uint64_t)prof->totals[1] + (uint64_t)v[1]);
			}
		}
	}
	prof->lost_samples = meta->lost_samples;
	/*
	 * The comments are rebuilt from meta each time; strings of an earlier call stay in the
	 * table unused, which pprof allows. Out of memory only loses a comment: the interface
	 * has no way to fail, and the profile itself is intact.
	 */
	prof->ncomments = 0;
	if (meta->comment && *meta->comment)
		add_comment(prof, meta->comment);
	if (meta->lost_samples) {
		snprintf(lost, sizeof(lost), "lost samples: %" PRIu64 " (dropped by the kernel)",
			 meta->lost_samples);
		add_comment(prof, lost);
	}
}

/* ---- mappings ---- */

struct mapkey {
	int pid;
	uint64_t start;
	uint32_t file;
};

static uint32_t map_hash(int pid, uint64_t start, uint32_t file)
{
	return (uint32_t)cp_hash_mix(cp_hash_mix(cp_hash_mix(1, (uint64_t)pid), start), file);
}

static bool map_eq(const void *ctx, uint32_t idx, const void *key)
{
	const struct cp_pmapping *m = &((const struct cp_profile *)ctx)->mappings[idx];
	const struct mapkey *k = key;

	return m->pid == k->pid && m->start == k->start && m->file == k->file;
}

int cp_profile_append_mapping(struct cp_profile *prof, const struct cp_pmapping *m, uint64_t *id)
{
	if (prof->nmappings >= CP_PROFILE_MAX_ENTRIES)
		return -E2BIG;
	if (cp_grow((void **)&prof->mappings, &prof->mappings_alloc, prof->nmappings + 1,
		    sizeof(*prof->mappings)) < 0)
		return -ENOMEM;
	prof->mappings[prof->nmappings++] = *m;
	*id = prof->nmappings;
	return 0;
}

int cp_profile_add_mapping(struct cp_profile *prof, int pid, const struct cp_map *map,
			   const char *build_id, bool has_functions, bool has_lines, uint64_t *id)
{
	struct cp_pmapping m = { 0 };
	struct mapkey key;
	uint32_t hash;
	int64_t idx;
	int err;

	if (!map)
		return -EINVAL;
	/*
	 * Anonymous memory (JIT code, stubs) gets a bracketed name: pprof complains about a
	 * mapping without file name but knows not to look for files named "[...]".
	 */
	err = intern(prof, map->path && *map->path ? map->path : "[anon]", &m.file);
	if (err < 0)
		return err;
	key = (struct mapkey){ pid, map->start, m.file };
	hash = map_hash(pid, map->start, m.file);
	idx = cp_htab_find(&prof->mapping_h, hash, map_eq, prof, &key);
	if (idx >= 0) {
		*id = (uint64_t)idx + 1;
		return 0;
	}
	err = intern(prof, build_id, &m.build_id);
	if (err < 0)
		return err;
	m.start = map->start;
	m.limit = map->end;
	m.offset = map->offset;
	m.pid = pid;
	/* What symbolization could do for this file; write time narrows it to what it did. */
	m.has_functions = has_functions;
	m.has_filenames = has_lines;
	m.has_line_numbers = has_lines;
	m.has_inline_frames = has_lines;
	m.deleted = map->deleted;
	err = cp_profile_append_mapping(prof, &m, id);
	if (err < 0)
		return err;
	if (cp_htab_insert(&prof->mapping_h, hash, (uint32_t)(*id - 1)) < 0) {
		prof->nmappings--;
		return -ENOMEM;
	}
	return 0;
}

static uint64_t swapped_id(uint64_t v, uint64_t a, uint64_t b)
{
	return v == a ? b : v == b ? a : v;
}

int cp_profile_set_main_mapping(struct cp_profile *prof, uint64_t id)
{
	struct cp_pmapping first;

	if (!id || id > prof->nmappings)
		return -EINVAL;
	if (id == 1)
		return 0;
	first = prof->mappings[0];
	prof->mappings[0] = prof->mappings[id - 1];
	prof->mappings[id - 1] = first;
	for (size_t i = 0; i < prof->nlocations; i++)
		prof->locations[i].mapping_id = swapped_id(prof->locations[i].mapping_id, 1, id);
	prof->kernel_mapping = swapped_id(prof->kernel_mapping, 1, id);
	cp_htab_swap(&prof->mapping_h, 0, (uint32_t)(id - 1));
	return 0;
}

int cp_profile_kernel_mapping(struct cp_profile *prof, uint64_t *id)
{
	struct cp_pmapping m = { 0 };
	int err;

	if (prof->kernel_mapping) {
		*id = prof->kernel_mapping;
		return 0;
	}
	err = intern(prof, "[kernel]", &m.file);
	if (err < 0)
		return err;
	/* The kernel half of x86-64 addresses; pprof does not try to symbolize "[...]" files. */
	m.start = 0xffff800000000000ull;
	m.limit = UINT64_MAX;
	m.pid = -1;
	m.has_functions = true;
	err = cp_profile_append_mapping(prof, &m, id);
	if (err < 0)
		return err;
	prof->kernel_mapping = *id;
	return 0;
}

/* ---- functions ---- */

static uint32_t func_hash(const struct cp_pfunction *f)
{
	uint64_t h = cp_hash_mix(2, f->name);

	h = cp_hash_mix(h, f->system_name);
	h = cp_hash_mix(h, f->filename);
	return (uint32_t)cp_hash_mix(h, (uint64_t)f->start_line);
}

static bool func_eq(const void *ctx, uint32_t idx, const void *key)
{
	const struct cp_pfunction *a = &((const struct cp_profile *)ctx)->functions[idx];
	const struct cp_pfunction *b = key;

	return a->name == b->name && a->system_name == b->system_name &&
	       a->filename == b->filename && a->start_line == b->start_line;
}

int cp_profile_intern_function(struct cp_profile *prof, const struct cp_pfunction *f,
			       uint64_t *id)
{
	uint32_t hash = func_hash(f);
	int64_t idx = cp_htab_find(&prof->function_h, hash, func_eq, prof, f);

	if (idx >= 0) {
		*id = (uint64_t)idx + 1;
		return 0;
	}
	if (prof->nfunctions >= CP_PROFILE_MAX_ENTRIES)
		return -E2BIG;
	if (cp_grow((void **)&prof->functions, &prof->functions_alloc, prof->nfunctions + 1,
		    sizeof(*prof->functions)) < 0)
		return -ENOMEM;
	if (cp_htab_insert(&prof->function_h, hash, (uint32_t)prof->nfunctions) < 0)
		return -ENOMEM;
	prof->functions[prof->nfunctions++] = *f;
	*id = prof->nfunctions;
	return 0;
}

/* ---- locations ---- */

struct lockey {
	int pid;
	uint64_t address;
};

static uint32_t loc_hash(int pid, uint64_t address)
{
	return (uint32_t)cp_hash_mix(cp_hash_mix(3, (uint64_t)pid), address);
}

static bool loc_eq(const void *ctx, uint32_t idx, const void *key)
{
	const struct cp_plocation *l = &((const struct cp_profile *)ctx)->locations[idx];
	const struct lockey *k = key;

	return l->address == k->address && l->pid == k->pid;
}

uint64_t cp_profile_find_location(const struct cp_profile *prof, int pid, uint64_t address)
{
	struct lockey k = { pid, address };
	int64_t idx = cp_htab_find(&prof->location_h, loc_hash(pid, address), loc_eq, prof, &k);

	return idx >= 0 ? (uint64_t)idx + 1 : 0;
}

int cp_profile_append_location(struct cp_profile *prof, uint64_t address, uint64_t mapping_id,
			       const struct cp_pline *lines, size_t nlines, bool is_folded,
			       uint64_t *id)
{
	struct cp_plocation *l;

	if (prof->nlocations >= CP_PROFILE_MAX_ENTRIES ||
	    nlines > CP_PROFILE_MAX_ENTRIES - prof->nlines)
		return -E2BIG;
	if (mapping_id > prof->nmappings)
		return -EINVAL;
	if (cp_grow((void **)&prof->locations, &prof->locations_alloc, prof->nlocations + 1,
		    sizeof(*prof->locations)) < 0 ||
	    cp_grow((void **)&prof->lines, &prof->lines_alloc, prof->nlines + nlines,
		    sizeof(*prof->lines)) < 0)
		return -ENOMEM;
	l = &prof->locations[prof->nlocations];
	l->address = address;
	l->mapping_id = mapping_id;
	l->pid = 0;
	l->line_off = (uint32_t)prof->nlines;
	l->nlines = (uint32_t)nlines;
	l->is_folded = is_folded;
	if (nlines)
		memcpy(&prof->lines[prof->nlines], lines, nlines * sizeof(*lines));
	prof->nlines += nlines;
	*id = ++prof->nlocations;
	return 0;
}

static void fallback_name(const struct cp_profile *prof, const struct cp_plocation *l, char *buf,
			  size_t size);

/* Cap on inlined frames per location: DWARF of another process is untrusted input. */
#define MAX_LINES_PER_LOCATION 256

int cp_profile_add_location(struct cp_profile *prof, int pid, uint64_t address,
			    uint64_t mapping_id, const struct cp_profile_line *lines, size_t nlines,
			    uint64_t *id)
{
	struct cp_pline pl[MAX_LINES_PER_LOCATION];
	struct lockey key = { pid, address };
	uint32_t hash = loc_hash(pid, address);
	int64_t idx;
	int err;

	idx = cp_htab_find(&prof->location_h, hash, loc_eq, prof, &key);
	if (idx >= 0) {
		*id = (uint64_t)idx + 1;
		return 0;
	}
	if (nlines > MAX_LINES_PER_LOCATION)
		nlines = MAX_LINES_PER_LOCATION;	/* keeps the innermost frames */
	if (mapping_id > prof->nmappings)
		return -EINVAL;
	for (size_t i = 0; i < nlines; i++) {
		struct cp_pfunction f = { 0 };
		const char *name = lines[i].function ? lines[i].function : lines[i].system_name;
		const char *sys = lines[i].system_name ? lines[i].system_name : name;
		char unnamed[64];

		if (!name || !*name) {
			/*
			 * A file and line without a function: name it module+offset, as readers
			 * do, with an empty system_name that tells the pprof writer it is made up.
			 */
			struct cp_plocation l = { .address = address, .mapping_id = mapping_id };

			fallback_name(prof, &l, unnamed, sizeof(unnamed));
			name = unnamed;
			sys = "";
		}
		if ((err = intern(prof, name, &f.name)) < 0 ||
		    (err = intern(prof, sys, &f.system_name)) < 0 ||
		    (err = intern(prof, lines[i].file, &f.filename)) < 0)
			return err;
		f.start_line = lines[i].start_line > 0 ? lines[i].start_line : 0;
		err = cp_profile_intern_function(prof, &f, &pl[i].function_id);
		if (err < 0)
			return err;
		pl[i].line = lines[i].line > 0 ? lines[i].line : 0;
	}
	err = cp_profile_append_location(prof, address, mapping_id, pl, nlines, false, id);
	if (err < 0)
		return err;
	if (cp_htab_insert(&prof->location_h, hash, (uint32_t)(*id - 1)) < 0) {
		prof->nlocations--;
		prof->nlines -= nlines;
		return -ENOMEM;
	}
	prof->locations[*id - 1].pid = pid;
	return 0;
}

int cp_profile_special_location(struct cp_profile *prof, const char *name, uint64_t *id)
{
	struct cp_pfunction f = { 0 };
	struct cp_pline line = { 0 };
	int err;

	if (!name || !*name)
		return -EINVAL;
	err = intern(prof, name, &f.name);
	if (err < 0)
		return err;
	f.system_name = f.name;
	err = cp_profile_intern_function(prof, &f, &line.function_id);
	if (err < 0)
		return err;
	/* One location per name, without mapping, at address 0; there are only a few names. */
	for (size_t i = 0; i < prof->nspecial; i++) {
		if (prof->special[i].function_id == line.function_id) {
			*id = prof->special[i].location_id;
			return 0;
		}
	}
	if (cp_grow((void **)&prof->special, &prof->special_alloc, prof->nspecial + 1,
		    sizeof(*prof->special)) < 0)
		return -ENOMEM;
	err = cp_profile_append_location(prof, 0, 0, &line, 1, false, id);
	if (err < 0)
		return err;
	prof->special[prof->nspecial].function_id = line.function_id;
	prof->special[prof->nspecial++].location_id = *id;
	return 0;
}

/* ---- samples ---- */

static uint32_t node_hash(uint32_t parent, uint32_t loc)
{
	return (uint32_t)cp_hash_mix(((uint64_t)parent << 32) | loc, 4);
}

static uint32_t node_hash_of(const void *ctx, uint32_t idx)
{
	const struct cp_pnode *n = &((const struct cp_profile *)ctx)->nodes[idx];

	return node_hash(n->parent, n->loc);
}

static bool node_eq(const void *ctx, uint32_t idx, const void *key)
{
	const struct cp_pnode *a = &((const struct cp_profile *)ctx)->nodes[idx];
	const struct cp_pnode *b = key;

	return a->parent == b->parent && a->loc == b->loc;
}

/*
 * The trie node of the stack loc_ids (innermost first, ids already checked), added as needed.
 * On failure the nodes added so far stay: they are prefixes no sample names, never written.
 */
static int stack_node(struct cp_profile *prof, const uint64_t *loc_ids, size_t n, uint32_t *out)
{
	uint32_t node = 0;

	for (size_t i = n; i-- > 0;) {
		struct cp_pnode key = { node, (uint32_t)loc_ids[i] };
		uint32_t hash = node_hash(key.parent, key.loc);
		int64_t idx = cp_itab_find(&prof->node_h, hash, node_eq, prof, &key);

		if (idx < 0) {
			if (prof->nnodes >= CP_PROFILE_MAX_ENTRIES)
				return -E2BIG;
			if (cp_grow((void **)&prof->nodes, &prof->nodes_alloc, prof->nnodes + 1,
				    sizeof(*prof->nodes)) < 0 ||
			    cp_itab_insert(&prof->node_h, hash, (uint32_t)prof->nnodes, node_hash_of,
					prof) < 0)
				return -ENOMEM;
			prof->nodes[prof->nnodes] = key;
			idx = (int64_t)prof->nnodes++;
		}
		node = (uint32_t)idx;
	}
	*out = node;
	return 0;
}

struct labelkey {
	const struct cp_plabel *labels;
	size_t n;
};

static uint32_t labelset_hash(const struct labelkey *k)
{
	uint64_t h = cp_hash_mix(5, k->n);

	for (size_t i = 0; i < k->n; i++) {
		const struct cp_plabel *l = &k->labels[i];

		h = cp_hash_mix(h, ((uint64_t)l->key << 32) | l->str);
		h = cp_hash_mix(h, ((uint64_t)l->unit << 32) ^ (uint64_t)l->num);
	}
	return (uint32_t)h;
}

static bool labelset_eq(const void *ctx, uint32_t idx, const void *key)
{
	const struct cp_profile *prof = ctx;
	const struct cp_plabelset *ls = &prof->labelsets[idx];
	const struct labelkey *k = key;

	if (ls->n != k->n)
		return false;
	for (size_t i = 0; i < k->n; i++) {
		const struct cp_plabel *a = &prof->labels[ls->off + i], *b = &k->labels[i];

		if (a->key != b->key || a->str != b->str || a->num != b->num || a->unit != b->unit)
			return false;
	}
	return true;
}

/* The id of the label set labels[0..n), interned. 0 or -errno. */
static int intern_labelset(struct cp_profile *prof, const struct cp_plabel *labels, size_t n,
			   uint32_t *out)
{
	struct labelkey key = { labels, n };
	uint32_t hash = labelset_hash(&key);
	int64_t idx = cp_htab_find(&prof->labelset_h, hash, labelset_eq, prof, &key);

	if (idx >= 0) {
		*out = (uint32_t)idx;
		return 0;
	}
	if (prof->nlabelsets >= CP_PROFILE_MAX_ENTRIES ||
	    n > CP_PROFILE_MAX_ENTRIES - prof->nlabels)
		return -E2BIG;
	if (cp_grow((void **)&prof->labelsets, &prof->labelsets_alloc, prof->nlabelsets + 1,
		    sizeof(*prof->labelsets)) < 0 ||
	    cp_grow((void **)&prof->labels, &prof->labels_alloc, prof->nlabels + n,
		    sizeof(*prof->labels)) < 0 ||
	    cp_htab_insert(&prof->labelset_h, hash, (uint32_t)prof->nlabelsets) < 0)
		return -ENOMEM;
	if (n)
		memcpy(&prof->labels[prof->nlabels], labels, n * sizeof(*labels));
	prof->labelsets[prof->nlabelsets] = (struct cp_plabelset){ (uint32_t)prof->nlabels,
								   (uint32_t)n };
	prof->nlabels += n;
	*out = (uint32_t)prof->nlabelsets++;
	return 0;
}

static uint32_t sample_hash(uint32_t node, uint32_t labelset)
{
	return (uint32_t)cp_hash_mix(((uint64_t)labelset << 32) | node, 6);
}

static uint32_t sample_hash_of(const void *ctx, uint32_t idx)
{
	const struct cp_psample_key *k = &((const struct cp_profile *)ctx)->sample_keys[idx];

	return sample_hash(k->node, k->labelset);
}

static bool sample_eq(const void *ctx, uint32_t idx, const void *key)
{
	const struct cp_psample_key *a = &((const struct cp_profile *)ctx)->sample_keys[idx];
	const struct cp_psample_key *b = key;

	return a->node == b->node && a->labelset == b->labelset;
}

int cp_profile_add_sample_values(struct cp_profile *prof, const uint64_t *loc_ids, size_t n,
				 const struct cp_plabel *labels, size_t nlabels,
				 const int64_t *values)
{
	struct cp_psample_key key;
	uint32_t hash;
	int64_t idx;
	int err;

	for (size_t i = 0; i < n; i++)
		if (loc_ids[i] == 0 || loc_ids[i] > prof->nlocations)
			return -EINVAL;
	if ((err = stack_node(prof, loc_ids, n, &key.node)) < 0 ||
	    (err = intern_labelset(prof, labels, nlabels, &key.labelset)) < 0)
		return err;
	hash = sample_hash(key.node, key.labelset);
	idx = cp_itab_find(&prof->sample_h, hash, sample_eq, prof, &key);
	if (idx < 0) {
		if (prof->nsamples >= CP_PROFILE_MAX_ENTRIES)
			return -E2BIG;
		if (cp_grow((void **)&prof->sample_keys, &prof->sample_keys_alloc,
			    prof->nsamples + 1, sizeof(*prof->sample_keys)) < 0 ||
		    cp_grow((void **)&prof->values, &prof->values_alloc,
			    (prof->nsamples + 1) * prof->ntypes, sizeof(*prof->values)) < 0 ||
		    cp_itab_insert(&prof->sample_h, hash, (uint32_t)prof->nsamples, sample_hash_of,
				prof) < 0)
			return -ENOMEM;
		prof->sample_keys[prof->nsamples] = key;
		memset(&prof->values[prof->nsamples * prof->ntypes], 0,
		       prof->ntypes * sizeof(*prof->values));
		idx = (int64_t)prof->nsamples++;
	}
	for (size_t t = 0; t < prof->ntypes; t++) {
		/* Unsigned arithmetic: wrapping is defined, and the reader takes any int64. */
		int64_t *v = &prof->values[(size_t)idx * prof->ntypes + t];

		*v = (int64_t)((uint64_t)*v + (uint64_t)values[t]);
		prof->totals[t] = (int64_t)((uint64_t)prof->totals[t] + (uint64_t)values[t]);
	}
	return 0;
}

int64_t cp_profile_sample_locations(const struct cp_profile *prof, size_t i, uint64_t **buf,
				    size_t *alloc)
{
	uint32_t node = prof->sample_keys[i].node;
	size_t n = 0;

	for (uint32_t k = node; k; k = prof->nodes[k].parent)
		n++;
	if (cp_grow((void **)buf, alloc, n ? n : 1, sizeof(**buf)) < 0)
		return -ENOMEM;
	n = 0;
	for (uint32_t k = node; k; k = prof->nodes[k].parent)
		(*buf)[n++] = prof->nodes[k].loc;
	return (int64_t)n;
}

const struct cp_plabel *cp_profile_sample_labels(const struct cp_profile *prof, size_t i,
						 size_t *n)
{
	const struct cp_plabelset *ls = &prof->labelsets[prof->sample_keys[i].labelset];

	*n = ls->n;
	return ls->n ? &prof->labels[ls->off] : NULL;
}

int cp_profile_add_sample(struct cp_profile *prof, const uint64_t *loc_ids, size_t n, int pid,
			  int tid, const char *thread_name, uint64_t count)
{
	struct cp_plabel labels[3] = { { 0 } };
	int64_t values[2];
	uint32_t name;
	int err;

	/* This entry point fills samples/count and cpu/nanoseconds: the types of cp_profile_new. */
	if (!prof->cpu_from_count)
		return -EINVAL;
	err = intern(prof, thread_name ? thread_name : "", &name);
	if (err < 0)
		return err;
	labels[0] = (struct cp_plabel){ .key = prof->s_thread, .str = name };
	labels[1] = (struct cp_plabel){ .key = prof->s_tid, .num = tid };
	labels[2] = (struct cp_plabel){ .key = prof->s_pid, .num = pid };
	values[0] = (int64_t)count;
	values[1] = (int64_t)(count * (uint64_t)prof->period);
	return cp_profile_add_sample_values(prof, loc_ids, n, labels, 3, values);
}

uint64_t cp_profile_sample_total(const struct cp_profile *prof)
{
	if (!prof->ntypes)
		return 0;
	return (uint64_t)prof->totals[cp_profile_count_index(prof)];
}

size_t cp_profile_default_index(const struct cp_profile *prof)
{
	if (!prof->ntypes)
		return 0;
	if (prof->default_type)
		for (size_t i = 0; i < prof->ntypes; i++)
			if (prof->types[i].type == prof->default_type)
				return i;
	return prof->ntypes - 1;
}

size_t cp_profile_count_index(const struct cp_profile *prof)
{
	for (size_t i = 0; i < prof->ntypes; i++)
		if (!strcmp(prof->str.v[prof->types[i].type], "samples") &&
		    !strcmp(prof->str.v[prof->types[i].unit], "count"))
			return i;
	return cp_profile_default_index(prof);
}

/* ---- display names for the text formats ---- */

/* Copy s into a buffer with the characters that would break a line format replaced. */
static void sanitize(char *dst, size_t size, const char *s)
{
	size_t i;

	for (i = 0; s[i] && i + 1 < size; i++) {
		unsigned char c = (unsigned char)s[i];

		dst[i] = (c < 0x20 || c == 0x7f) ? '?' : c == ';' ? ':' : (char)c;
	}
	dst[i] = '\0';
}

static const char *basename_of(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash && slash[1] ? slash + 1 : path;
}

/* The name of a frame without a function name: module+0xoffset, as perf and eu-stack print. */
static void fallback_name(const struct cp_profile *prof, const struct cp_plocation *l, char *buf,
			  size_t size)
{
	if (l->mapping_id && l->mapping_id == prof->kernel_mapping) {
		/* Kernel addresses mean more to people than offsets into the kernel half. */
		snprintf(buf, size, "[kernel]+0x%" PRIx64, l->address);
	} else if (l->mapping_id) {
		const struct cp_pmapping *m = &prof->mappings[l->mapping_id - 1];
		const char *file = prof->str.v[m->file];

		snprintf(buf, size, "%s+0x%" PRIx64, *file ? basename_of(file) : "[unknown]",
			 l->address - m->start + m->offset);
	} else {
		snprintf(buf, size, "0x%" PRIx64, l->address);
	}
}

int cp_profile_frames_build(const struct cp_profile *prof, struct cp_profile_frames *fr)
{
	size_t nframes = 0, k = 0;
	char *buf = NULL;
	int err;

	memset(fr, 0, sizeof(*fr));
	for (size_t i = 0; i < prof->nlocations; i++)
		nframes += prof->locations[i].nlines ? prof->locations[i].nlines : 1;
	err = cp_strtab_init(&fr->names, CP_STRTAB_UTF8);
	if (err < 0)
		return err;
	/* The name of empty stacks, interned now so that the table no longer grows later. */
	if (cp_strtab_intern(&fr->names, "[unknown]") < 0) {
		cp_profile_frames_release(fr);
		return -ENOMEM;
	}
	buf = malloc(CP_PROFILE_MAX_STRING + 1);
	fr->frame = calloc(nframes ? nframes : 1, sizeof(*fr->frame));
	fr->loc_off = calloc(prof->nlocations ? prof->nlocations : 1, sizeof(*fr->loc_off));
	fr->loc_n = calloc(prof->nlocations ? prof->nlocations : 1, sizeof(*fr->loc_n));
	if (!buf || !fr->frame || !fr->loc_off || !fr->loc_n) {
		err = -ENOMEM;
		goto fail;
	}
	for (size_t i = 0; i < prof->nlocations; i++) {
		const struct cp_plocation *l = &prof->locations[i];

		fr->loc_off[i] = (uint32_t)k;
		fr->loc_n[i] = l->nlines ? l->nlines : 1;
		for (uint32_t j = 0; j < fr->loc_n[i]; j++) {
			const char *name = NULL;
			int64_t idx;

			if (l->nlines) {
				const struct cp_pline *pl = &prof->lines[l->line_off + j];
				const struct cp_pfunction *f;

				f = &prof->functions[pl->function_id - 1];
				name = prof->str.v[f->name];
				if (!*name)
					name = prof->str.v[f->system_name];
			}
			if (name && *name)
				sanitize(buf, CP_PROFILE_MAX_STRING + 1, name);
			else
				fallback_name(prof, l, buf, CP_PROFILE_MAX_STRING + 1);
			idx = cp_strtab_intern(&fr->names, buf);
			if (idx < 0) {
				err = (int)idx;
				goto fail;
			}
			fr->frame[k++] = (uint32_t)idx;
		}
	}
	free(buf);
	return 0;

fail:
	free(buf);
	cp_profile_frames_release(fr);
	return err;
}

void cp_profile_frames_release(struct cp_profile_frames *fr)
{
	cp_strtab_release(&fr->names);
	free(fr->frame);
	free(fr->loc_off);
	free(fr->loc_n);
	memset(fr, 0, sizeof(*fr));
}

int64_t cp_profile_sample_frames(const struct cp_profile *prof, const struct cp_profile_frames *fr,
				 size_t i, uint32_t **buf, size_t *alloc)
{
	uint32_t leaf = prof->sample_keys[i].node;
	size_t n = 0;

	/* The path from the leaf up to the root is the stack, innermost first. */
	for (uint32_t k = leaf; k; k = prof->nodes[k].parent)
		n += fr->loc_n[prof->nodes[k].loc - 1];
	if (cp_grow((void **)buf, alloc, n ? n : 1, sizeof(**buf)) < 0)
		return -ENOMEM;
	if (!leaf) {
		(*buf)[0] = (uint32_t)cp_strtab_lookup(&fr->names, "[unknown]");
		return 1;
	}
	n = 0;
	for (uint32_t k = leaf; k; k = prof->nodes[k].parent) {
		uint32_t loc = prof->nodes[k].loc - 1;

		memcpy(*buf + n, fr->frame + fr->loc_off[loc], fr->loc_n[loc] * sizeof(**buf));
		n += fr->loc_n[loc];
	}
	return (int64_t)n;
}

/* ---- output ---- */

int cp_profile_write(const struct cp_profile *prof, enum cp_profile_format format, FILE *f,
		     size_t top)
{
	int err;

	switch (format) {
	case CP_PROFILE_PPROF:
		err = cp_profile_write_pprof(prof, f);
		break;
	case CP_PROFILE_FOLDED:
		err = cp_profile_write_folded(prof, f);
		break;
	case CP_PROFILE_SVG:
		err = cp_profile_write_svg(prof, f);
		break;
	case CP_PROFILE_TEXT:
		err = cp_profile_write_text(prof, f, top);
		break;
	default:
		return -EINVAL;
	}
	if (err < 0)
		return err;
	if (fflush(f) != 0 || ferror(f))
		return -EIO;
	return 0;
}
