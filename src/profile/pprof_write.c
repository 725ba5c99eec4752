/* Write the profile as pprof: profile.proto encoded with protobuf-c, gzipped with zlib. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "profile.pb-c.h"
#include "profile_internal.h"

/*
 * The has_* flags of a mapping, as pprof reads them: "this mapping was symbolized to that
 * resolution". A mapping that asked for functions but where nothing resolved was not really
 * symbolized, so say so and let pprof try with the binary; one unresolved address among many
 * (a stub, a hand-written routine) does not make the rest untrue.
 */
/* What the locations of each mapping turned out to have, in one pass over the locations. */
enum { SEEN_USED = 1, SEEN_FUNC = 2, SEEN_FILE = 4, SEEN_LINE = 8 };

static uint8_t *mapping_seen(const struct cp_profile *prof)
{
	uint8_t *seen = calloc(prof->nmappings + 1, 1);

	if (!seen)
		return NULL;
	for (size_t i = 0; i < prof->nlocations; i++) {
		const struct cp_plocation *l = &prof->locations[i];
		uint8_t *bits = &seen[l->mapping_id];

		*bits |= SEEN_USED;
		for (uint32_t j = 0; j < l->nlines; j++) {
			const struct cp_pline *pl = &prof->lines[l->line_off + j];
			const struct cp_pfunction *f = &prof->functions[pl->function_id - 1];

			/* Made-up names (module+offset) have no system_name. */
			if (f->name && f->system_name)
				*bits |= SEEN_FUNC;
			if (f->filename)
				*bits |= SEEN_FILE;
			if (pl->line > 0)
				*bits |= SEEN_LINE;
		}
	}
	return seen;
}

static void mapping_flags(const struct cp_pmapping *m, uint8_t seen,
			  Perftools__Profiles__Mapping *pm)
{
	if (m->from_file) {
		pm->has_functions = m->has_functions;
		pm->has_filenames = m->has_filenames;
		pm->has_line_numbers = m->has_line_numbers;
		pm->has_inline_frames = m->has_inline_frames;
		return;
	}
	/*
	 * Unused mappings, and files that are gone (pprof would only warn that it cannot open
	 * them), keep what symbolization was asked to do.
	 */
	if (!(seen & SEEN_USED) || m->deleted)
		seen = SEEN_FUNC | SEEN_FILE | SEEN_LINE;
	pm->has_functions = m->has_functions && (seen & SEEN_FUNC);
	pm->has_filenames = m->has_filenames && (seen & SEEN_FILE);
	pm->has_line_numbers = m->has_line_numbers && (seen & SEEN_LINE);
	/* Inlined frames come from the same DWARF as the line numbers. */
	pm->has_inline_frames = m->has_inline_frames && (seen & SEEN_LINE);
}

/*
 * The message structs of everything but the samples, allocated in arrays and freed together.
 * Samples are packed one at a time (pack_samples): they are the bulk of a profile, and a
 * struct each, with its own array of location ids, would cost more than the profile model.
 */
struct pb {
	Perftools__Profiles__Profile p;
	Perftools__Profiles__ValueType period_type;
	Perftools__Profiles__ValueType *vt, **vtp;
	Perftools__Profiles__Label *lb, **lbp;
	Perftools__Profiles__Mapping *m, **mp;
	Perftools__Profiles__Location *l, **lp;
	Perftools__Profiles__Line *ln, **lnp;
	Perftools__Profiles__Function *f, **fp;
	int64_t *comments;
	uint8_t *seen;
};

static void pb_release(struct pb *b)
{
	free(b->vt);
	free(b->vtp);
	free(b->lb);
	free(b->lbp);
	free(b->m);
	free(b->mp);
	free(b->l);
	free(b->lp);
	free(b->ln);
	free(b->lnp);
	free(b->f);
	free(b->fp);
	free(b->comments);
	free(b->seen);
}

/* calloc that never returns NULL for n == 0, so that NULL always means ENOMEM. */
static void *alloc_n(size_t n, size_t size)
{
	return calloc(n ? n : 1, size);
}

static int pb_build(const struct cp_profile *prof, struct pb *b)
{
	Perftools__Profiles__Profile *p = &b->p;

	b->vt = alloc_n(prof->ntypes, sizeof(*b->vt));
	b->vtp = alloc_n(prof->ntypes, sizeof(*b->vtp));
	b->lb = alloc_n(prof->nlabels, sizeof(*b->lb));
	b->lbp = alloc_n(prof->nlabels, sizeof(*b->lbp));
	b->m = alloc_n(prof->nmappings, sizeof(*b->m));
	b->mp = alloc_n(prof->nmappings, sizeof(*b->mp));
	b->l = alloc_n(prof->nlocations, sizeof(*b->l));
	b->lp = alloc_n(prof->nlocations, sizeof(*b->lp));
	b->ln = alloc_n(prof->nlines, sizeof(*b->ln));
	b->lnp = alloc_n(prof->nlines, sizeof(*b->lnp));
	b->f = alloc_n(prof->nfunctions, sizeof(*b->f));
	b->fp = alloc_n(prof->nfunctions, sizeof(*b->fp));
	b->comments = alloc_n(prof->ncomments, sizeof(*b->comments));
	b->seen = mapping_seen(prof);
	if (!b->seen || !b->vt || !b->vtp || !b->lb || !b->lbp || !b->m || !b->mp || !b->l ||
	    !b->lp || !b->ln || !b->lnp || !b->f || !b->fp || !b->comments)
		return -ENOMEM;

	perftools__profiles__profile__init(p);
	for (size_t i = 0; i < prof->ntypes; i++) {
		perftools__profiles__value_type__init(&b->vt[i]);
		b->vt[i].type = prof->types[i].type;
		b->vt[i].unit = prof->types[i].unit;
		b->vtp[i] = &b->vt[i];
	}
	p->n_sample_type = prof->ntypes;
	p->sample_type = b->vtp;

	/* The labels of all label sets: a sample points at its set's run of them. */
	for (size_t i = 0; i < prof->nlabels; i++) {
		perftools__profiles__label__init(&b->lb[i]);
		b->lb[i].key = prof->labels[i].key;
		b->lb[i].str = prof->labels[i].str;
		b->lb[i].num = prof->labels[i].num;
		b->lb[i].num_unit = prof->labels[i].unit;
		b->lbp[i] = &b->lb[i];
	}

	for (size_t i = 0; i < prof->nmappings; i++) {
		const struct cp_pmapping *m = &prof->mappings[i];

		perftools__profiles__mapping__init(&b->m[i]);
		b->m[i].id = i + 1;
		b->m[i].memory_start = m->start;
		b->m[i].memory_limit = m->limit;
		b->m[i].file_offset = m->offset;
		b->m[i].filename = m->file;
		b->m[i].build_id = m->build_id;
		mapping_flags(m, b->seen[i + 1], &b->m[i]);
		b->mp[i] = &b->m[i];
	}
	p->n_mapping = prof->nmappings;
	p->mapping = b->mp;

	for (size_t i = 0; i < prof->nlines; i++) {
		perftools__profiles__line__init(&b->ln[i]);
		b->ln[i].function_id = prof->lines[i].function_id;
		b->ln[i].line = prof->lines[i].line;
		b->lnp[i] = &b->ln[i];
	}
	for (size_t i = 0; i < prof->nlocations; i++) {
		const struct cp_plocation *l = &prof->locations[i];

		perftools__profiles__location__init(&b->l[i]);
		b->l[i].id = i + 1;
		b->l[i].mapping_id = l->mapping_id;
		b->l[i].address = l->address;
		b->l[i].n_line = l->nlines;
		b->l[i].line = l->nlines ? &b->lnp[l->line_off] : NULL;
		b->l[i].is_folded = l->is_folded;
		b->lp[i] = &b->l[i];
	}
	p->n_location = prof->nlocations;
	p->location = b->lp;

	for (size_t i = 0; i < prof->nfunctions; i++) {
		const struct cp_pfunction *f = &prof->functions[i];

		perftools__profiles__function__init(&b->f[i]);
		b->f[i].id = i + 1;
		b->f[i].name = f->name;
		b->f[i].system_name = f->system_name;
		b->f[i].filename = f->filename;
		b->f[i].start_line = f->start_line;
		b->fp[i] = &b->f[i];
	}
	p->n_function = prof->nfunctions;
	p->function = b->fp;

	p->n_string_table = prof->str.n;
	p->string_table = prof->str.v;
	p->time_nanos = prof->time_nanos;
	p->duration_nanos = prof->duration_nanos;
	perftools__profiles__value_type__init(&b->period_type);
	b->period_type.type = prof->period_type.type;
	b->period_type.unit = prof->period_type.unit;
	if (prof->period_type.type || prof->period_type.unit)
		p->period_type = &b->period_type;
	p->period = prof->period;
	for (size_t i = 0; i < prof->ncomments; i++)
		b->comments[i] = prof->comments[i];
	p->n_comment = prof->ncomments;
	p->comment = b->comments;
	p->default_sample_type = prof->default_type;
	return 0;
}

/*
 * A ProtobufCBuffer that gzips (deflate with a gzip header, as pprof and `gzip -d` expect)
 * what protobuf-c appends, through a small input buffer, to f: the encoded profile is never
 * whole in memory. The first error is kept, and later appends are ignored.
 */
struct gz_out {
	ProtobufCBuffer base;		/* first: protobuf-c hands back &base */
	z_stream z;
	FILE *f;
	int err;
	size_t nin;
	unsigned char in[64 << 10];
	unsigned char out[64 << 10];
};

static int gz_deflate(struct gz_out *g, int flush)
{
	int zr;

	g->z.next_in = g->in;
	g->z.avail_in = (uInt)g->nin;
	do {
		size_t n;

		g->z.next_out = g->out;
		g->z.avail_out = sizeof(g->out);
		zr = deflate(&g->z, flush);
		if (zr == Z_STREAM_ERROR)
			return -EIO;
		n = sizeof(g->out) - g->z.avail_out;
		if (fwrite(g->out, 1, n, g->f) != n)
			return -EIO;
	} while (flush == Z_FINISH ? zr != Z_STREAM_END : g->z.avail_out == 0);
	g->nin = 0;
	return 0;
}

static void gz_append(ProtobufCBuffer *buf, size_t len, const uint8_t *data)
{
	struct gz_out *g = (struct gz_out *)buf;

	while (len > 0 && !g->err) {
		size_t chunk = sizeof(g->in) - g->nin;

		if (chunk > len)
			chunk = len;
		memcpy(g->in + g->nin, data, chunk);
		g->nin += chunk;
		data += chunk;
		len -= chunk;
		if (g->nin == sizeof(g->in))
			g->err = gz_deflate(g, Z_NO_FLUSH);
	}
}

static int gz_open(struct gz_out *g, FILE *f)
{
	memset(&g->z, 0, sizeof(g->z));
	g->base.append = gz_append;
	g->f = f;
	g->err = 0;
	g->nin = 0;
	/* windowBits 15 + 16 selects the gzip wrapper. */
	if (deflateInit2(&g->z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8,
			 Z_DEFAULT_STRATEGY) != Z_OK)
		return -ENOMEM;
	return 0;
}

/* Flush and end the stream (also after an error: deflateEnd frees zlib's state). */
static int gz_close(struct gz_out *g)
{
	if (!g->err)
		g->err = gz_deflate(g, Z_FINISH);
	deflateEnd(&g->z);
	return g->err;
}

/* A varint, as protobuf encodes lengths. */
static void append_varint(ProtobufCBuffer *buf, uint64_t v)
{
	uint8_t b[10];
	size_t n = 0;

	do {
		b[n++] = (uint8_t)((v & 0x7f) | (v >= 0x80 ? 0x80 : 0));
		v >>= 7;
	} while (v);
	buf->append(buf, n, b);
}

/*
 * Profile.sample (field 2), one message at a time, exactly as protobuf-c would have packed them
 * in place: tag, length, message. The stack comes from the trie into one reused array.
 */
static int pack_samples(const struct cp_profile *prof, const struct pb *b, ProtobufCBuffer *buf)
{
	uint64_t *locs = NULL;
	size_t locs_alloc = 0;

	for (size_t i = 0; i < prof->nsamples; i++) {
		Perftools__Profiles__Sample s;
		int64_t n = cp_profile_sample_locations(prof, i, &locs, &locs_alloc);
		size_t nlabels;
		const struct cp_plabel *lab = cp_profile_sample_labels(prof, i, &nlabels);

		if (n < 0) {
			free(locs);
			return (int)n;
		}
		perftools__profiles__sample__init(&s);
		/* protobuf-c only reads through these pointers while packing. */
		s.n_location_id = (size_t)n;
		s.location_id = n ? locs : NULL;
		s.n_value = prof->ntypes;
		s.value = &prof->values[i * prof->ntypes];
		s.n_label = nlabels;
		s.label = nlabels ? &b->lbp[lab - prof->labels] : NULL;
		append_varint(buf, (2 << 3) | 2);	/* field 2, length-delimited */
		append_varint(buf, perftools__profiles__sample__get_packed_size(&s));
		perftools__profiles__sample__pack_to_buffer(&s, buf);
	}
	free(locs);
	return 0;
}

int cp_profile_write_pprof(const struct cp_profile *prof, FILE *f)
{
	Perftools__Profiles__Profile head;
	struct gz_out *g = NULL;
	struct pb b;
	int err;

	memset(&b, 0, sizeof(b));
	err = pb_build(prof, &b);
	if (err < 0)
		goto out;
	g = malloc(sizeof(*g));
	if (!g) {
		err = -ENOMEM;
		goto out;
	}
	err = gz_open(g, f);
	if (err < 0) {
		free(g);
		g = NULL;
		goto out;
	}
	/*
	 * protobuf-c packs fields in the order of their numbers: sample_type (1), then sample (2),
	 * then the rest. So the head with only the sample types, the samples, and the profile
	 * without both, one after the other, are the bytes of the whole profile packed at once.
	 */
	perftools__profiles__profile__init(&head);
	head.n_sample_type = b.p.n_sample_type;
	head.sample_type = b.p.sample_type;
	b.p.n_sample_type = 0;
	b.p.sample_type = NULL;
	perftools__profiles__profile__pack_to_buffer(&head, &g->base);
	err = pack_samples(prof, &b, &g->base);
	if (err < 0)
		g->err = g->err ? g->err : err;
	if (!g->err)
		perftools__profiles__profile__pack_to_buffer(&b.p, &g->base);
	err = gz_close(g);
out:
	free(g);
	pb_release(&b);
	return err;
}
