/* Read any pprof file (gzipped or not, ours or another producer's) into the profile model. */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "profile.pb-c.h"
#include "profile_internal.h"

/*
 * How far a gzipped profile of len bytes may inflate: real profiles compress a few times, a
 * bomb a thousand times. CP_PROFILE_INFLATE_RATIO times its size, at least
 * CP_PROFILE_INFLATE_FLOOR, at most CP_PROFILE_MAX_DECOMPRESSED: memory stays near the input's
 * size, and a stream that inflates past it stops there.
 */
static size_t inflate_cap(size_t len)
{
	size_t cap = len > CP_PROFILE_MAX_DECOMPRESSED / CP_PROFILE_INFLATE_RATIO
			     ? CP_PROFILE_MAX_DECOMPRESSED
			     : len * CP_PROFILE_INFLATE_RATIO;

	return cap < CP_PROFILE_INFLATE_FLOOR ? CP_PROFILE_INFLATE_FLOOR : cap;
}

/*
 * Inflate a gzip stream (one or more members, as `cat a.gz b.gz` makes) into a malloc'd
 * buffer of at most inflate_cap(len) bytes. 0, -EBADMSG (corrupt, truncated), -EFBIG (too
 * large) or -ENOMEM.
 */
static int gunzip(const uint8_t *in, size_t len, uint8_t **out, size_t *outlen)
{
	size_t alloc = len < (64u << 10) ? (256u << 10) : 4 * len, n = 0, left = len;
	size_t cap = inflate_cap(len);
	uint8_t *buf;
	z_stream z;
	int zr, err = 0;

	if (alloc > cap)
		alloc = cap;
	buf = malloc(alloc);
	if (!buf)
		return -ENOMEM;
	memset(&z, 0, sizeof(z));
	/* windowBits 15 + 16: a gzip wrapper, whose CRC and length inflate checks. */
	if (inflateInit2(&z, 15 + 16) != Z_OK) {
		free(buf);
		return -ENOMEM;
	}
	z.next_in = (Bytef *)in;
	for (;;) {
		uInt room;

		if (z.avail_in == 0 && left) {
			/* avail_in is 32 bits: feed huge inputs in pieces. */
			z.avail_in = (uInt)(left > (1u << 30) ? (1u << 30) : left);
			left -= z.avail_in;
		}
		if (n == alloc) {
			uint8_t *nb;

			if (alloc >= cap) {
				err = -EFBIG;
				break;
			}
			if (alloc > cap / 2)
				alloc = cap;
			else
				alloc *= 2;
			nb = realloc(buf, alloc);
			if (!nb) {
				err = -ENOMEM;
				break;
			}
			buf = nb;
		}
		z.next_out = buf + n;
		room = (uInt)(alloc - n > (1u << 30) ? (1u << 30) : alloc - n);
		z.avail_out = room;
		zr = inflate(&z, Z_NO_FLUSH);
		n += room - z.avail_out;
		if (zr == Z_STREAM_END) {
			if (z.avail_in == 0 && left == 0)
				break;
			/* Another member may follow (cat a.gz b.gz); anything else is corrupt. */
			if (z.avail_in < 2 || z.next_in[0] != 0x1f || z.next_in[1] != 0x8b ||
			    inflateReset(&z) != Z_OK) {
				err = -EBADMSG;
				break;
			}
			continue;
		}
		if (zr == Z_MEM_ERROR) {
			err = -ENOMEM;
			break;
		}
		if (zr != Z_OK && zr != Z_BUF_ERROR) {
			err = -EBADMSG;
			break;
		}
		/* Room to write and nothing left to read, yet the stream is not over: truncated. */
		if (z.avail_in == 0 && left == 0 && z.avail_out > 0) {
			err = -EBADMSG;
			break;
		}
	}
	inflateEnd(&z);
	if (err < 0) {
		free(buf);
		return err;
	}
	/* Give back the room guessed for and not used. */
	if (n && n < alloc) {
		uint8_t *nb = realloc(buf, n);

		if (nb)
			buf = nb;
	}
	*out = buf;
	*outlen = n;
	return 0;
}

/*
 * protobuf-c allocates a struct per message: a 2-byte empty sample becomes ~80 bytes, so a
 * hostile file could ask for 40 times its size. Decoding draws on a budget instead, and a
 * file that exceeds it is refused like one that is too large.
 */
#define DECODE_BUDGET_FACTOR 16
#define DECODE_BUDGET_BASE (64u << 20)
#define DECODE_BUDGET_MAX ((size_t)1 << 30)
#define HDR _Alignof(max_align_t)

struct budget {
	size_t used;
	size_t max;
	bool exceeded;
};

static void *budget_alloc(void *data, size_t size)
{
	struct budget *b = data;
	unsigned char *p;

	if (size > b->max - b->used || size > SIZE_MAX - HDR) {
		b->exceeded = true;
		return NULL;
	}
	p = malloc(size + HDR);
	if (!p)
		return NULL;
	memcpy(p, &size, sizeof(size));
	b->used += size;
	return p + HDR;
}

static void budget_free(void *data, void *ptr)
{
	struct budget *b = data;
	unsigned char *p = ptr;
	size_t size;

	if (!p)
		return;
	p -= HDR;
	memcpy(&size, p, sizeof(size));
	b->used -= size;
	free(p);
}

/* A sorted (file id -> our id) table, to validate and translate the ids a file uses. */
struct idmap {
	uint64_t *file_id;
	uint64_t *our_id;
	size_t *order;
	size_t n;
};

static int cmp_order(const void *a, const void *b, void *ctx)
{
	const struct idmap *m = ctx;
	uint64_t x = m->file_id[*(const size_t *)a];
	uint64_t y = m->file_id[*(const size_t *)b];

	return x < y ? -1 : x > y;
}

static int idmap_init(struct idmap *m, size_t n)
{
	memset(m, 0, sizeof(*m));
	m->file_id = calloc(n ? n : 1, sizeof(*m->file_id));
	m->our_id = calloc(n ? n : 1, sizeof(*m->our_id));
	m->order = calloc(n ? n : 1, sizeof(*m->order));
	m->n = n;
	return m->file_id && m->our_id && m->order ? 0 : -ENOMEM;
}

static void idmap_release(struct idmap *m)
{
	free(m->file_id);
	free(m->our_id);
	free(m->order);
	memset(m, 0, sizeof(*m));
}

/* Sort; ids must be non-zero and unique (pprof's rules). 0 or -EBADMSG. */
static int idmap_seal(struct idmap *m)
{
	for (size_t i = 0; i < m->n; i++) {
		if (m->file_id[i] == 0)
			return -EBADMSG;
		m->order[i] = i;
	}
	qsort_r(m->order, m->n, sizeof(*m->order), cmp_order, m);
	for (size_t i = 1; i < m->n; i++)
		if (m->file_id[m->order[i]] == m->file_id[m->order[i - 1]])
			return -EBADMSG;
	return 0;
}

/* The position (in file order) of file id, or -1. */
static int64_t idmap_find(const struct idmap *m, uint64_t id)
{
	size_t lo = 0, hi = m->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		uint64_t v = m->file_id[m->order[mid]];

		if (v == id)
			return (int64_t)m->order[mid];
		if (v < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

/*
 * The top-level fields of a profile.proto message, one at a time: *field and the bytes of its
 * value (for a length-delimited field, its payload). 1 for a field, 0 at the end, -EBADMSG
 * for a malformed one. Samples are decoded one by one through this instead of all at once, so
 * that a file of many samples does not become a struct per sample in memory.
 */
static int wire_next(const uint8_t *buf, size_t len, size_t *off, uint32_t *field,
		     const uint8_t **val, size_t *vlen, size_t *field_start)
{
	uint64_t key = 0, n = 0;
	size_t p = *off;
	unsigned shift;

	if (p >= len)
		return 0;
	*field_start = p;
	for (shift = 0;; shift += 7) {
		if (p >= len || shift > 63)
			return -EBADMSG;
		key |= (uint64_t)(buf[p] & 0x7f) << shift;
		if (!(buf[p++] & 0x80))
			break;
	}
	if ((key >> 3) == 0 || (key >> 3) > UINT32_MAX)
		return -EBADMSG;
	*field = (uint32_t)(key >> 3);
	switch (key & 7) {
	case 0:	/* varint */
		*val = buf + p;
		while (p < len && (buf[p] & 0x80))
			p++;
		if (p++ >= len)
			return -EBADMSG;
		*vlen = (size_t)(buf + p - *val);
		break;
	case 1:	/* 64-bit */
	case 5:	/* 32-bit */
		n = (key & 7) == 1 ? 8 : 4;
		if (len - p < n)
			return -EBADMSG;
		*val = buf + p;
		*vlen = n;
		p += n;
		break;
	case 2:	/* length-delimited */
		for (shift = 0;; shift += 7) {
			if (p >= len || shift > 63)
				return -EBADMSG;
			n |= (uint64_t)(buf[p] & 0x7f) << shift;
			if (!(buf[p++] & 0x80))
				break;
		}
		if (n > len - p)
			return -EBADMSG;
		*val = buf + p;
		*vlen = (size_t)n;
		p += n;
		break;
	default:	/* groups are not in profile.proto */
		return -EBADMSG;
	}
	*off = p;
	return 1;
}

/* Profile's repeated message fields that are decoded one at a time (read_each). */
#define PPROF_FIELD_SAMPLE 2
#define PPROF_FIELD_LOCATION 4
#define PPROF_FIELD_FUNCTION 5

static bool streamed_field(uint32_t field)
{
	return field == PPROF_FIELD_SAMPLE || field == PPROF_FIELD_LOCATION ||
	       field == PPROF_FIELD_FUNCTION;
}

/*
 * The message without its samples, locations and functions, in *out (malloc'ed); how many
 * locations and functions it had in *nloc, *nfunc. 0, -EBADMSG or -ENOMEM.
 */
static int strip_streamed(const uint8_t *buf, size_t len, uint8_t **out, size_t *outlen,
			  size_t *nloc, size_t *nfunc)
{
	size_t off = 0, start, vlen, n = 0;
	const uint8_t *val;
	uint32_t field;
	uint8_t *copy = malloc(len ? len : 1);
	int r;

	if (!copy)
		return -ENOMEM;
	*nloc = *nfunc = 0;
	while ((r = wire_next(buf, len, &off, &field, &val, &vlen, &start)) > 0) {
		*nloc += field == PPROF_FIELD_LOCATION;
		*nfunc += field == PPROF_FIELD_FUNCTION;
		if (streamed_field(field))
			continue;
		memcpy(copy + n, buf + start, off - start);
		n += off - start;
	}
	if (r < 0) {
		free(copy);
		return r;
	}
	*out = copy;
	*outlen = n;
	return 0;
}

struct reader {
	const Perftools__Profiles__Profile *pb;	/* the message without its samples */
	const uint8_t *bytes;		/* the whole message, for its samples */
	size_t len;
	ProtobufCAllocator *alloc;
	size_t nloc, nfunc;		/* locations and functions in the message */
	struct cp_profile *prof;
	uint32_t *smap;			/* file string index -> ours */
	struct idmap mappings, functions, locations;
	uint64_t *stack;		/* scratch */
	size_t stack_alloc;
	struct cp_plabel *labels;	/* scratch */
	size_t labels_alloc;
	struct cp_pline *lines;		/* scratch */
	size_t lines_alloc;
};

/* A string index from the file, checked and translated. */
static int str_ref(const struct reader *r, int64_t idx, uint32_t *out)
{
	if (idx < 0 || (uint64_t)idx >= r->pb->n_string_table)
		return -EBADMSG;
	*out = r->smap[idx];
	return 0;
}

static int read_strings(struct reader *r)
{
	const Perftools__Profiles__Profile *pb = r->pb;

	/* pprof's rule, and what tells a profile from other protobuf data: table[0] is "". */
	if (pb->n_string_table == 0 || !pb->string_table[0] || pb->string_table[0][0] != '\0')
		return -EINVAL;
	r->smap = calloc(pb->n_string_table, sizeof(*r->smap));
	if (!r->smap)
		return -ENOMEM;
	for (size_t i = 0; i < pb->n_string_table; i++) {
		int64_t idx = cp_strtab_intern(&r->prof->str, pb->string_table[i]);

		if (idx < 0)
			return (int)idx;
		r->smap[i] = (uint32_t)idx;
	}
	return 0;
}

static int read_header(struct reader *r)
{
	const Perftools__Profiles__Profile *pb = r->pb;
	struct cp_profile *prof = r->prof;
	int err;

	prof->types = calloc(pb->n_sample_type ? pb->n_sample_type : 1, sizeof(*prof->types));
	prof->totals = calloc(pb->n_sample_type ? pb->n_sample_type : 1, sizeof(*prof->totals));
	if (!prof->types || !prof->totals)
		return -ENOMEM;
	for (size_t i = 0; i < pb->n_sample_type; i++) {
		if ((err = str_ref(r, pb->sample_type[i]->type, &prof->types[i].type)) < 0 ||
		    (err = str_ref(r, pb->sample_type[i]->unit, &prof->types[i].unit)) < 0)
			return err;
	}
	prof->ntypes = pb->n_sample_type;
	if (pb->n_sample && !prof->ntypes)
		return -EBADMSG;
	if (pb->period_type) {
		if ((err = str_ref(r, pb->period_type->type, &prof->period_type.type)) < 0 ||
		    (err = str_ref(r, pb->period_type->unit, &prof->period_type.unit)) < 0)
			return err;
	}
	prof->period = pb->period;
	prof->time_nanos = pb->time_nanos;
	prof->duration_nanos = pb->duration_nanos;
	if ((err = str_ref(r, pb->default_sample_type, &prof->default_type)) < 0)
		return err;
	prof->comments = calloc(pb->n_comment ? pb->n_comment : 1, sizeof(*prof->comments));
	if (!prof->comments)
		return -ENOMEM;
	prof->comments_alloc = pb->n_comment ? pb->n_comment : 1;
	for (size_t i = 0; i < pb->n_comment; i++)
		if ((err = str_ref(r, pb->comment[i], &prof->comments[i])) < 0)
			return err;
	prof->ncomments = pb->n_comment;
	return 0;
}

static int read_mappings(struct reader *r)
{
	const Perftools__Profiles__Profile *pb = r->pb;
	int err = idmap_init(&r->mappings, pb->n_mapping);

	if (err < 0)
		return err;
	for (size_t i = 0; i < pb->n_mapping; i++) {
		const Perftools__Profiles__Mapping *pm = pb->mapping[i];
		struct cp_pmapping m = { 0 };

		if ((err = str_ref(r, pm->filename, &m.file)) < 0 ||
		    (err = str_ref(r, pm->build_id, &m.build_id)) < 0)
			return err;
		m.start = pm->memory_start;
		m.limit = pm->memory_limit;
		m.offset = pm->file_offset;
		m.has_functions = pm->has_functions;
		m.has_filenames = pm->has_filenames;
		m.has_line_numbers = pm->has_line_numbers;
		m.has_inline_frames = pm->has_inline_frames;
		m.from_file = true;
		err = cp_profile_append_mapping(r->prof, &m, &r->mappings.our_id[i]);
		if (err < 0)
			return err;
		r->mappings.file_id[i] = pm->id;
	}
	return idmap_seal(&r->mappings);
}

static int read_function(struct reader *r, const void *msg, size_t i)
{
	const Perftools__Profiles__Function *pf = msg;
	struct cp_pfunction f = { 0 };
	int err;

	if ((err = str_ref(r, pf->name, &f.name)) < 0 ||
	    (err = str_ref(r, pf->system_name, &f.system_name)) < 0 ||
	    (err = str_ref(r, pf->filename, &f.filename)) < 0)
		return err;
	f.start_line = pf->start_line;
	err = cp_profile_intern_function(r->prof, &f, &r->functions.our_id[i]);
	if (err < 0)
		return err;
	r->functions.file_id[i] = pf->id;
	return 0;
}

static int read_location(struct reader *r, const void *msg, size_t i)
{
	const Perftools__Profiles__Location *pl = msg;
	uint64_t mapping = 0;
	int err;

	/* A mapping id no mapping has: no mapping, as go tool pprof reads it. */
	if (pl->mapping_id) {
		int64_t k = idmap_find(&r->mappings, pl->mapping_id);

		mapping = k < 0 ? 0 : r->mappings.our_id[k];
	}
	if (pl->n_line > CP_PROFILE_MAX_ENTRIES)
		return -EBADMSG;
	if (cp_grow((void **)&r->lines, &r->lines_alloc, pl->n_line ? pl->n_line : 1,
		    sizeof(*r->lines)) < 0)
		return -ENOMEM;
	for (size_t j = 0; j < pl->n_line; j++) {
		int64_t k = idmap_find(&r->functions, pl->line[j]->function_id);

		/* pprof rejects lines without a function too. */
		if (k < 0)
			return -EBADMSG;
		r->lines[j].function_id = r->functions.our_id[k];
		r->lines[j].line = pl->line[j]->line;
	}
	err = cp_profile_append_location(r->prof, pl->address, mapping, r->lines, pl->n_line,
					 pl->is_folded, &r->locations.our_id[i]);
	if (err < 0)
		return err;
	r->locations.file_id[i] = pl->id;
	return 0;
}

static int read_sample(struct reader *r, const void *msg, size_t i)
{
	const Perftools__Profiles__Sample *ps = msg;
	int err;

	(void)i;
	/* Samples without sample types measure nothing: not a profile pprof accepts either. */
	if (!r->prof->ntypes || ps->n_value != r->prof->ntypes)
		return -EBADMSG;
	if (ps->n_location_id > CP_PROFILE_MAX_ENTRIES || ps->n_label > CP_PROFILE_MAX_ENTRIES)
		return -EBADMSG;
	if (cp_grow((void **)&r->stack, &r->stack_alloc,
		    ps->n_location_id ? ps->n_location_id : 1, sizeof(*r->stack)) < 0 ||
	    cp_grow((void **)&r->labels, &r->labels_alloc, ps->n_label ? ps->n_label : 1,
		    sizeof(*r->labels)) < 0)
		return -ENOMEM;
	for (size_t j = 0; j < ps->n_location_id; j++) {
		int64_t k = idmap_find(&r->locations, ps->location_id[j]);

		if (k < 0)
			return -EBADMSG;
		r->stack[j] = r->locations.our_id[k];
	}
	for (size_t j = 0; j < ps->n_label; j++) {
		const Perftools__Profiles__Label *pl = ps->label[j];
		struct cp_plabel *l = &r->labels[j];

		memset(l, 0, sizeof(*l));
		if ((err = str_ref(r, pl->key, &l->key)) < 0 ||
		    (err = str_ref(r, pl->str, &l->str)) < 0 ||
		    (err = str_ref(r, pl->num_unit, &l->unit)) < 0)
			return err;
		l->num = pl->num;
	}
	err = cp_profile_add_sample_values(r->prof, r->stack, ps->n_location_id, r->labels,
					   ps->n_label, ps->value);
	return err == -EINVAL ? -EBADMSG : err;
}

/*
 * Each field number field of the whole message, decoded alone as a desc message and handed to
 * fn with its index among them, then freed: memory holds one at a time, not one struct each.
 */
static int read_each(struct reader *r, uint32_t field, const ProtobufCMessageDescriptor *desc,
		     int (*fn)(struct reader *r, const void *msg, size_t i))
{
	size_t off = 0, start, vlen, i = 0;
	const uint8_t *val;
	uint32_t f;
	int more, err;

	while ((more = wire_next(r->bytes, r->len, &off, &f, &val, &vlen, &start)) > 0) {
		ProtobufCMessage *m;

		if (f != field)
			continue;
		m = protobuf_c_message_unpack(desc, r->alloc, vlen, val);
		if (!m)
			return -EBADMSG;
		err = fn(r, m, i++);
		protobuf_c_message_free_unpacked(m, r->alloc);
		if (err < 0)
			return err;
	}
	return more;
}

static int read_functions(struct reader *r)
{
	int err = idmap_init(&r->functions, r->nfunc);

	if (err < 0 || (err = read_each(r, PPROF_FIELD_FUNCTION,
					&perftools__profiles__function__descriptor, read_function)) < 0)
		return err;
	return idmap_seal(&r->functions);
}

static int read_locations(struct reader *r)
{
	int err = idmap_init(&r->locations, r->nloc);

	if (err < 0 || (err = read_each(r, PPROF_FIELD_LOCATION,
					&perftools__profiles__location__descriptor, read_location)) < 0)
		return err;
	return idmap_seal(&r->locations);
}

static int read_samples(struct reader *r)
{
	return read_each(r, PPROF_FIELD_SAMPLE, &perftools__profiles__sample__descriptor,
			 read_sample);
}

int cp_profile_read(const void *data, size_t len, struct cp_profile **out)
{
	const uint8_t *bytes = data;
	uint8_t *plain = NULL, *rest = NULL;
	size_t restlen;
	Perftools__Profiles__Profile *pb = NULL;
	struct budget budget = { 0, DECODE_BUDGET_MAX, false };
	ProtobufCAllocator alloc = { budget_alloc, budget_free, &budget };
	struct reader r;
	int err;

	memset(&r, 0, sizeof(r));
	if (!data || len == 0)
		return -EINVAL;
	if (len >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b) {
		err = gunzip(bytes, len, &plain, &len);
		if (err < 0)
			return err;
		bytes = plain;
	} else if (len > CP_PROFILE_MAX_DECOMPRESSED) {
		return -EFBIG;
	}
	if (len < (DECODE_BUDGET_MAX - DECODE_BUDGET_BASE) / DECODE_BUDGET_FACTOR)
		budget.max = DECODE_BUDGET_BASE + DECODE_BUDGET_FACTOR * len;
	/*
	 * protobuf-c checks the wire format and that every length stays inside the buffer; the
	 * samples, most of a large profile, are decoded one at a time later (read_samples).
	 */
	if ((err = strip_streamed(bytes, len, &rest, &restlen, &r.nloc, &r.nfunc)) < 0)
		goto out;
	pb = perftools__profiles__profile__unpack(&alloc, restlen, rest);
	if (!pb) {
		err = budget.exceeded ? -EFBIG : -EBADMSG;
		goto out;
	}
	r.pb = pb;
	r.bytes = bytes;
	r.len = len;
	r.alloc = &alloc;
	r.prof = cp_profile_new_empty();
	if (!r.prof) {
		err = -ENOMEM;
		goto out;
	}
	if ((err = read_strings(&r)) < 0 || (err = read_header(&r)) < 0 ||
	    (err = read_mappings(&r)) < 0 || (err = read_functions(&r)) < 0 ||
	    (err = read_locations(&r)) < 0 || (err = read_samples(&r)) < 0)
		goto out;
	*out = r.prof;
	r.prof = NULL;
	err = 0;
out:
	cp_profile_free(r.prof);
	free(r.smap);
	idmap_release(&r.mappings);
	idmap_release(&r.functions);
	idmap_release(&r.locations);
	free(r.stack);
	free(r.labels);
	free(r.lines);
	if (pb)
		perftools__profiles__profile__free_unpacked(pb, &alloc);
	free(rest);
	free(plain);
	return err;
}
