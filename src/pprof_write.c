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

/* All the message structs of one profile, allocated in arrays and freed together. */
struct pb {
	Perftools__Profiles__Profile p;
	Perftools__Profiles__ValueType period_type;
	Perftools__Profiles__ValueType *vt, **vtp;
	Perftools__Profiles__Sample *s, **sp;
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
	free(b->s);
	free(b->sp);
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
	b->s = alloc_n(prof->nsamples, sizeof(*b->s));
	b->sp = alloc_n(prof->nsamples, sizeof(*b->sp));
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
	if (!b->seen || !b->vt || !b->vtp || !b->s || !b->sp || !b->lb || !b->lbp || !b->m ||
	    !b->mp || !b->l || !b->lp || !b->ln || !b->lnp || !b->f || !b->fp || !b->comments)
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

	for (size_t i = 0; i < prof->nlabels; i++) {
		perftools__profiles__label__init(&b->lb[i]);
		b->lb[i].key = prof->labels[i].key;
		b->lb[i].str = prof->labels[i].str;
		b->lb[i].num = prof->labels[i].num;
		b->lb[i].num_unit = prof->labels[i].unit;
		b->lbp[i] = &b->lb[i];
	}
	for (size_t i = 0; i < prof->nsamples; i++) {
		const struct cp_psample *s = &prof->samples[i];

		perftools__profiles__sample__init(&b->s[i]);
		/* protobuf-c only reads through these pointers while packing. */
		b->s[i].n_location_id = s->nlocs;
		b->s[i].location_id = s->nlocs ? &prof->stack_ids[s->loc_off] : NULL;
		b->s[i].n_value = prof->ntypes;
		b->s[i].value = &prof->values[i * prof->ntypes];
		b->s[i].n_label = s->nlabels;
		b->s[i].label = s->nlabels ? &b->lbp[s->label_off] : NULL;
		b->sp[i] = &b->s[i];
	}
	p->n_sample = prof->nsamples;
	p->sample = b->sp;

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

/* gzip (deflate with a gzip header, as pprof and `gzip -d` expect) buf to f. */
static int write_gzip(const uint8_t *buf, size_t len, FILE *f)
{
	unsigned char out[64 << 10];
	z_stream z;
	int zr, err = 0;

	memset(&z, 0, sizeof(z));
	/* windowBits 15 + 16 selects the gzip wrapper. */
	if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) !=
	    Z_OK)
		return -ENOMEM;
	z.next_in = (Bytef *)buf;
	do {
		/* avail_in is 32 bits: feed huge buffers in pieces. */
		size_t chunk = len > (1u << 30) ? (1u << 30) : len;
		int flush = chunk == len ? Z_FINISH : Z_NO_FLUSH;

		z.avail_in = (uInt)chunk;
		do {
			z.next_out = out;
			z.avail_out = sizeof(out);
			zr = deflate(&z, flush);
			if (zr == Z_STREAM_ERROR) {
				err = -EIO;
				goto out;
			}
			size_t n = sizeof(out) - z.avail_out;

			if (fwrite(out, 1, n, f) != n) {
				err = -EIO;
				goto out;
			}
		} while (z.avail_out == 0);
		len -= chunk;
	} while (len > 0 || zr != Z_STREAM_END);
out:
	deflateEnd(&z);
	return err;
}

int cp_profile_write_pprof(const struct cp_profile *prof, FILE *f)
{
	struct pb b;
	uint8_t *buf = NULL;
	size_t len;
	int err;

	memset(&b, 0, sizeof(b));
	err = pb_build(prof, &b);
	if (err < 0)
		goto out;
	len = perftools__profiles__profile__get_packed_size(&b.p);
	buf = malloc(len ? len : 1);
	if (!buf) {
		err = -ENOMEM;
		goto out;
	}
	if (perftools__profiles__profile__pack(&b.p, buf) != len) {
		err = -EIO;
		goto out;
	}
	err = write_gzip(buf, len, f);
out:
	free(buf);
	pb_release(&b);
	return err;
}
