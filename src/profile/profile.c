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
	if (cp_strtab_init(&prof->str, CP_STRTAB_UTF8) < 0 || intern(prof, "thread", &prof->s_thread) < 0 ||
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

/* Sample types (type, unit pairs), period type and default of each kind, as Go writes them. */
static const struct {
	const char *types[4][2];
	size_t ntypes;
	const char *period_type[2];
	size_t default_type;		/* index into types */
} kinds[] = {
	[CP_PROFILE_KIND_CPU] = { { { "samples", "count" }, { "cpu", "nanoseconds" } }, 2,
				  { "cpu", "nanoseconds" }, 1 },
	[CP_PROFILE_KIND_WALL] = { { { "samples", "count" }, { "wall", "nanoseconds" } }, 2,
				   { "wall", "nanoseconds" }, 1 },
	[CP_PROFILE_KIND_DELAY] = { { { "contentions", "count" }, { "delay", "nanoseconds" } }, 2,
				    { "contentions", "count" }, 1 },
	[CP_PROFILE_KIND_COUNT] = { { { "threadcreate", "count" } }, 1,
				    { "threadcreate", "count" }, 0 },
	[CP_PROFILE_KIND_HEAP] = { { { "alloc_objects", "count" }, { "alloc_space", "bytes" },
				     { "inuse_objects", "count" }, { "inuse_space", "bytes" } }, 4,
				   { "space", "bytes" }, 3 },
	[CP_PROFILE_KIND_ALLOCS] = { { { "alloc_objects", "count" }, { "alloc_space", "bytes" },
				       { "inuse_objects", "count" }, { "inuse_space", "bytes" } }, 4,
				     { "space", "bytes" }, 1 },
};

struct cp_profile *cp_profile_new_kind(enum cp_profile_kind kind)
{
	struct cp_profile *prof;
	size_t n;
	uint32_t t, u;

	if (kind == CP_PROFILE_KIND_CPU)
		return cp_profile_new();
	if ((size_t)kind >= CP_ARRAY_SIZE(kinds))
		return NULL;
	n = kinds[kind].ntypes;
	prof = cp_profile_new_empty();
	if (!prof)
		return NULL;
	prof->types = calloc(n, sizeof(*prof->types));
	prof->totals = calloc(n, sizeof(*prof->totals));
	if (!prof->types || !prof->totals)
		goto fail;
	for (size_t i = 0; i < n; i++) {
		if (intern(prof, kinds[kind].types[i][0], &t) < 0 ||
		    intern(prof, kinds[kind].types[i][1], &u) < 0)
			goto fail;
		prof->types[i] = (struct cp_pvaluetype){ t, u };
	}
	prof->ntypes = n;
	if (intern(prof, kinds[kind].period_type[0], &t) < 0 ||
	    intern(prof, kinds[kind].period_type[1], &u) < 0)
		goto fail;
	prof->period_type = (struct cp_pvaluetype){ t, u };
	prof->default_type = prof->types[kinds[kind].default_type].type;
	prof->period = kind == CP_PROFILE_KIND_WALL ? 1000000000 / 99 : 1;
	/* wall: wall = samples * period, as cpu = samples * period. */
	prof->cpu_from_count = kind == CP_PROFILE_KIND_WALL;
	return prof;
fail:
	cp_profile_free(prof);
	return NULL;
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

int cp_profile_intern(struct cp_profile *prof, const char *s, uint32_t *out)
{
	return intern(prof, s, out);
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
				prof->totals[1] = cp_add_sat(prof->totals[1], v[1],
							     &prof->saturated);
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
		snprintf(lost, sizeof(lost), "lost samples: %" PRIu64 " (%s)", meta->lost_samples,
			 meta->lost_why ? meta->lost_why : "dropped by the kernel");
		add_comment(prof, lost);
	}
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

static int add_node_values(struct cp_profile *prof, uint32_t node, const struct cp_plabel *labels,
			   size_t nlabels, const int64_t *values);

int cp_profile_add_sample_values(struct cp_profile *prof, const uint64_t *loc_ids, size_t n,
				 const struct cp_plabel *labels, size_t nlabels,
				 const int64_t *values)
{
	struct cp_psample_key key;
	int err;

	for (size_t i = 0; i < n; i++)
		if (loc_ids[i] == 0 || loc_ids[i] > prof->nlocations)
			return -EINVAL;
	if ((err = stack_node(prof, loc_ids, n, &key.node)) < 0)
		return err;
	return add_node_values(prof, key.node, labels, nlabels, values);
}

/* The sample (node, labels) gets values added (made when new). 0 or -errno. */
static int add_node_values(struct cp_profile *prof, uint32_t node, const struct cp_plabel *labels,
			   size_t nlabels, const int64_t *values)
{
	struct cp_psample_key key = { .node = node };
	uint32_t hash;
	int64_t idx;
	int err;

	if ((err = intern_labelset(prof, labels, nlabels, &key.labelset)) < 0)
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
		/* Held at the int64 limit rather than wrapped (cp_profile_write says so). */
		int64_t *v = &prof->values[(size_t)idx * prof->ntypes + t];

		*v = cp_add_sat(*v, values[t], &prof->saturated);
		prof->totals[t] = cp_add_sat(prof->totals[t], values[t], &prof->saturated);
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

int cp_profile_stack(struct cp_profile *prof, const uint64_t *loc_ids, size_t n, uint32_t *node)
{
	for (size_t i = 0; i < n; i++)
		if (loc_ids[i] == 0 || loc_ids[i] > prof->nlocations)
			return -EINVAL;
	return stack_node(prof, loc_ids, n, node);
}

int cp_profile_add_stack_sample(struct cp_profile *prof, uint32_t node, int pid, int tid,
				const char *thread_name, const char *key, const char *value,
				const int64_t *values)
{
	struct cp_plabel labels[4] = { { 0 } };
	uint32_t name, k = 0, v = 0;
	int err;

	if (node >= prof->nnodes || !prof->ntypes)
		return -EINVAL;
	if ((err = intern(prof, thread_name ? thread_name : "", &name)) < 0 ||
	    (key && ((err = intern(prof, key, &k)) < 0 || (err = intern(prof, value, &v)) < 0)))
		return err;
	labels[0] = (struct cp_plabel){ .key = prof->s_thread, .str = name };
	labels[1] = (struct cp_plabel){ .key = prof->s_tid, .num = tid };
	labels[2] = (struct cp_plabel){ .key = prof->s_pid, .num = pid };
	labels[3] = (struct cp_plabel){ .key = k, .str = v };
	if (tid == 0)
		return add_node_values(prof, node, &labels[2], key ? 2 : 1, values);
	return add_node_values(prof, node, labels, key ? 4 : 3, values);
}

int cp_profile_add_stack_sample_num(struct cp_profile *prof, uint32_t node, int pid, int tid,
				    const char *thread_name, const char *key, int64_t num,
				    const int64_t *values)
{
	struct cp_plabel labels[4] = { { 0 } };
	uint32_t name, k;
	int err;

	if (node >= prof->nnodes || !prof->ntypes)
		return -EINVAL;
	if ((err = intern(prof, thread_name ? thread_name : "", &name)) < 0 ||
	    (err = intern(prof, key, &k)) < 0)
		return err;
	labels[0] = (struct cp_plabel){ .key = prof->s_thread, .str = name };
	labels[1] = (struct cp_plabel){ .key = prof->s_tid, .num = tid };
	labels[2] = (struct cp_plabel){ .key = prof->s_pid, .num = pid };
	labels[3] = (struct cp_plabel){ .key = k, .num = num };
	/* tid 0: a record of the process, not of a thread (the Go runtime's): pid only. */
	if (tid == 0)
		return add_node_values(prof, node, &labels[2], 2, values);
	return add_node_values(prof, node, labels, 4, values);
}

size_t cp_profile_stack_functions(const struct cp_profile *prof, uint32_t node,
				  const char **names, size_t max)
{
	size_t n = 0;

	for (uint32_t k = node; k && k < prof->nnodes && n < max; k = prof->nodes[k].parent) {
		const struct cp_plocation *l = &prof->locations[prof->nodes[k].loc - 1];

		if (!l->nlines)
			names[n++] = "";
		/* The location's frames, inlined ones first. */
		for (uint32_t i = 0; i < l->nlines && n < max; i++) {
			uint64_t f = prof->lines[l->line_off + i].function_id;

			names[n++] = f && f <= prof->nfunctions ?
					     prof->str.v[prof->functions[f - 1].name] : "";
		}
	}
	return n;
}
