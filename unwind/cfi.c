/* Search tables for .debug_frame and header-less .eh_frame, in a form libunwind can search. */
#include "cfi.h"

#include <elf.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* DWARF pointer encodings (LSB DW_EH_PE_*). */
#define PE_ABSPTR 0x00
#define PE_ULEB128 0x01
#define PE_UDATA2 0x02
#define PE_UDATA4 0x03
#define PE_UDATA8 0x04
#define PE_SLEB128 0x09
#define PE_SDATA2 0x0a
#define PE_SDATA4 0x0b
#define PE_SDATA8 0x0c
#define PE_PCREL 0x10
#define PE_OMIT 0xff

/* Largest CIE augmentation string we accept; real ones are a handful of letters. */
#define AUG_MAX 16

/* A bounds-checked reader over one section of the image. Any overrun sets err. */
struct rd {
	const uint8_t *p;
	uint64_t pos, end;
	uint64_t vaddr;		/* section address of p[0], for pc-relative pointers */
	bool err;
};

static bool rd_bytes(struct rd *r, void *out, size_t n)
{
	if (r->err || r->pos > r->end || n > r->end - r->pos) {
		r->err = true;
		return false;
	}
	memcpy(out, r->p + r->pos, n);
	r->pos += n;
	return true;
}

static uint8_t rd_u8(struct rd *r)
{
	uint8_t v = 0;

	rd_bytes(r, &v, 1);
	return v;
}

static uint32_t rd_u32(struct rd *r)
{
	uint32_t v = 0;

	rd_bytes(r, &v, 4);
	return v;
}

static uint64_t rd_u64(struct rd *r)
{
	uint64_t v = 0;

	rd_bytes(r, &v, 8);
	return v;
}

static uint64_t rd_uleb(struct rd *r)
{
	uint64_t v = 0;
	unsigned int shift = 0;
	uint8_t b;

	do {
		b = rd_u8(r);
		if (r->err)
			return 0;
		if (shift < 64)
			v |= (uint64_t)(b & 0x7f) << shift;
		shift += 7;
	} while (b & 0x80);
	return v;
}

static int64_t rd_sleb(struct rd *r)
{
	uint64_t v = 0;
	unsigned int shift = 0;
	uint8_t b;

	do {
		b = rd_u8(r);
		if (r->err)
			return 0;
		if (shift < 64)
			v |= (uint64_t)(b & 0x7f) << shift;
		shift += 7;
	} while (b & 0x80);
	if (shift < 64 && (b & 0x40))
		v |= ~(uint64_t)0 << shift;
	return (int64_t)v;
}

/* An encoded pointer: pc-relative or absolute only; other applications are not addresses. */
static bool rd_encoded(struct rd *r, uint8_t enc, bool apply, uint64_t *val)
{
	uint64_t at = r->vaddr + r->pos, v;

	switch (enc & 0x0f) {
	case PE_ABSPTR:
	case PE_UDATA8:
	case PE_SDATA8:
		v = rd_u64(r);
		break;
	case PE_UDATA4:
		v = rd_u32(r);
		break;
	case PE_SDATA4:
		v = (uint64_t)(int64_t)(int32_t)rd_u32(r);
		break;
	case PE_UDATA2: {
		uint16_t u = 0;

		rd_bytes(r, &u, 2);
		v = u;
		break;
	}
	case PE_SDATA2: {
		int16_t s = 0;

		rd_bytes(r, &s, 2);
		v = (uint64_t)(int64_t)s;
		break;
	}
	case PE_ULEB128:
		v = rd_uleb(r);
		break;
	case PE_SLEB128:
		v = (uint64_t)rd_sleb(r);
		break;
	default:
		return false;
	}
	if (r->err)
		return false;
	if (apply) {
		switch (enc & 0x70) {
		case 0:
			break;
		case PE_PCREL:
			v += at;
			break;
		default:
			return false;
		}
		if (enc & 0x80)		/* indirect: the value is in target memory */
			return false;
	}
	*val = v;
	return true;
}

struct cie {
	uint64_t code_align;
	int64_t data_align;
	uint64_t ra_reg;
	uint8_t fde_enc;
	bool has_z;
	bool signal;
	uint64_t instr, instr_end;	/* initial instructions, section offsets */
};

/* Parse the CIE at section offset off. is_eh: .eh_frame layout, else .debug_frame. */
static bool parse_cie(const struct rd *sec, uint64_t off, bool is_eh, struct cie *c)
{
	struct rd r = *sec;
	uint64_t len, id, end;
	char aug[AUG_MAX];
	size_t n = 0;
	uint8_t version;
	bool dwarf64 = false, unknown = false;

	r.pos = off;
	len = rd_u32(&r);
	if (len == 0xffffffffu) {
		len = rd_u64(&r);
		dwarf64 = true;
	}
	if (r.err || len > r.end - r.pos)
		return false;
	end = r.pos + len;
	id = dwarf64 ? rd_u64(&r) : rd_u32(&r);
	if (is_eh ? id != 0 : id != (dwarf64 ? ~(uint64_t)0 : 0xffffffffu))
		return false;
	version = rd_u8(&r);
	if (version != 1 && version != 3 && version != 4)
		return false;
	do {
		if (n == sizeof(aug))
			return false;
		aug[n] = (char)rd_u8(&r);
	} while (!r.err && aug[n++] != '\0');
	if (version == 4) {
		uint8_t addr_size = rd_u8(&r), seg_size = rd_u8(&r);

		if (addr_size != 8 || seg_size != 0)
			return false;
	}
	memset(c, 0, sizeof(*c));
	c->code_align = rd_uleb(&r);
	c->data_align = rd_sleb(&r);
	c->ra_reg = version == 1 ? rd_u8(&r) : rd_uleb(&r);
	c->fde_enc = PE_ABSPTR;
	if (aug[0] == 'z') {
		uint64_t alen = rd_uleb(&r), aend;

		if (r.err || alen > end - r.pos)
			return false;
		aend = r.pos + alen;
		c->has_z = true;
		for (const char *a = aug + 1; *a && !r.err && !unknown; a++) {
			uint64_t ignored;

			switch (*a) {
			case 'R':
				c->fde_enc = rd_u8(&r);
				break;
			case 'L':
				rd_u8(&r);	/* LSDA encoding: exception handling only */
				break;
			case 'P':
				/* The personality routine does not matter for unwinding. */
				if (!rd_encoded(&r, rd_u8(&r) & 0x7f, false, &ignored))
					return false;
				break;
			case 'S':
				c->signal = true;
				break;
			case 'B':
			case 'G':
				break;
			default:
				/* 'z' says where the data ends: the rest can be skipped. */
				unknown = true;
				break;
			}
		}
		r.pos = aend;
	} else if (aug[0] != '\0') {
		/* Without 'z' an unknown augmentation leaves the rest unparseable. */
		return false;
	}
	if (r.err || r.pos > end || c->ra_reg > 255)
		return false;
	c->instr = r.pos;
	c->instr_end = end;
	return true;
}

/* A growable output buffer; err latches allocation failure and the size cap. */
struct out {
	uint8_t *p;
	size_t len, alloc;
	bool err;
};

static void out_add(struct out *o, const void *data, size_t n)
{
	if (o->err)
		return;
	if (n > CP_CFI_MAX_BYTES - o->len) {
		o->err = true;
		return;
	}
	if (o->len + n > o->alloc) {
		size_t alloc = o->alloc ? o->alloc : 4096;
		uint8_t *p;

		while (alloc < o->len + n)
			alloc *= 2;
		p = realloc(o->p, alloc);
		if (!p) {
			o->err = true;
			return;
		}
		o->p = p;
		o->alloc = alloc;
	}
	memcpy(o->p + o->len, data, n);
	o->len += n;
}

static void out_u8(struct out *o, uint8_t v)
{
	out_add(o, &v, 1);
}

static void out_uleb(struct out *o, uint64_t v)
{
	do {
		uint8_t b = v & 0x7f;

		v >>= 7;
		out_u8(o, b | (v ? 0x80 : 0));
	} while (v);
}

static void out_sleb(struct out *o, int64_t v)
{
	bool more;

	do {
		uint8_t b = v & 0x7f;

		v >>= 7;	/* arithmetic shift: gcc and clang on every target we build for */
		more = !((v == 0 && !(b & 0x40)) || (v == -1 && (b & 0x40)));
		out_u8(o, b | (more ? 0x80 : 0));
	} while (more);
}

static void out_set_u32(struct out *o, size_t at, uint32_t v)
{
	if (!o->err)
		memcpy(o->p + at, &v, 4);
}

/* Pad with DW_CFA_nop to a multiple of 8, as libunwind's FDE parser expects of entries. */
static void out_pad(struct out *o, size_t entry_start)
{
	while (!o->err && (o->len - entry_start) % 8)
		out_u8(o, 0);
}

struct entry {
	int32_t start;		/* initial location - ip_base */
	int32_t fde;		/* FDE offset in the output buffer */
};

struct builder {
	const struct cp_module *m;
	uint64_t bias;
	uint64_t ip_base;
	struct out o;
	struct entry *v;
	size_t n, alloc;
	bool full;
};

/* Emit a canonical CIE + FDE pair for one source FDE. */
static void emit(struct builder *b, const struct rd *sec, const struct cie *c, uint64_t start,
		 uint64_t range, uint64_t instr, uint64_t instr_end)
{
	struct out *o = &b->o;
	size_t cie_at, fde_at, mark = o->len;
	uint64_t rt = start + b->bias;

	if (b->n == b->alloc) {
		size_t alloc = b->alloc ? b->alloc * 2 : 256;
		struct entry *v;

		if (alloc > CP_CFI_MAX_FDES) {
			b->full = true;
			return;
		}
		v = realloc(b->v, alloc * sizeof(*v));
		if (!v) {
			o->err = true;
			return;
		}
		b->v = v;
		b->alloc = alloc;
	}

	cie_at = o->len;
	out_add(o, "\0\0\0\0", 4);		/* length, patched below */
	out_add(o, "\0\0\0\0", 4);		/* CIE id 0: .eh_frame */
	out_u8(o, 1);				/* version */
	out_add(o, c->signal ? "zRS" : "zR", c->signal ? 4 : 3);
	out_uleb(o, c->code_align);
	out_sleb(o, c->data_align);
	out_u8(o, (uint8_t)c->ra_reg);
	out_uleb(o, 1);				/* augmentation data: the FDE encoding */
	out_u8(o, PE_UDATA8);
	out_add(o, sec->p + c->instr, c->instr_end - c->instr);
	out_pad(o, cie_at);
	out_set_u32(o, cie_at, (uint32_t)(o->len - cie_at - 4));

	fde_at = o->len;
	out_add(o, "\0\0\0\0", 4);
	{
		/* The CIE pointer counts back from this field to the CIE. */
		uint32_t back = (uint32_t)(o->len - cie_at);

		out_add(o, &back, 4);
	}
	out_add(o, &rt, 8);
	out_add(o, &range, 8);
	out_uleb(o, 0);				/* no augmentation data */
	out_add(o, sec->p + instr, instr_end - instr);
	out_pad(o, fde_at);
	out_set_u32(o, fde_at, (uint32_t)(o->len - fde_at - 4));
	if (o->err || o->len > INT32_MAX) {
		/* Drop the half-written pair; the entries so far stay usable. */
		o->len = mark;
		o->err = true;
		return;
	}
	b->v[b->n].start = (int32_t)(start - b->ip_base);
	b->v[b->n].fde = (int32_t)fde_at;	/* rebased past the table at the end */
	b->n++;
}

/* Walk one section's entries (is_eh: .eh_frame rules, else .debug_frame rules). */
static void add_section(struct builder *b, const struct rd *sec, bool is_eh)
{
	struct rd r = *sec;

	while (!r.err && r.pos < r.end && !b->o.err && !b->full) {
		uint64_t len, end, id_at, id, start, range;
		bool dwarf64 = false;
		struct cie c;
		struct rd f;

		len = rd_u32(&r);
		if (len == 0) {
			if (is_eh)
				break;	/* .eh_frame terminator */
			continue;
		}
		if (len == 0xffffffffu) {
			len = rd_u64(&r);
			dwarf64 = true;
		}
		if (r.err || len > r.end - r.pos)
			break;
		end = r.pos + len;
		id_at = r.pos;
		id = dwarf64 ? rd_u64(&r) : rd_u32(&r);
		if (r.err)
			break;
		/* CIEs are parsed when an FDE points at them. */
		if (is_eh ? id == 0 : id == (dwarf64 ? ~(uint64_t)0 : 0xffffffffu)) {
			r.pos = end;
			continue;
		}
		if (is_eh ? (id > id_at) : (id >= sec->end)) {
			r.pos = end;
			continue;
		}
		if (!parse_cie(sec, is_eh ? id_at - id : id, is_eh, &c)) {
			r.pos = end;
			continue;
		}
		f = r;
		f.end = end;
		if (!rd_encoded(&f, c.fde_enc, true, &start) ||
		    !rd_encoded(&f, c.fde_enc & 0x0f, false, &range)) {
			r.pos = end;
			continue;
		}
		if (c.has_z) {
			uint64_t alen = rd_uleb(&f);

			if (f.err || alen > f.end - f.pos) {
				r.pos = end;
				continue;
			}
			f.pos += alen;
		}
		/* Only code of this module, in reach of the table's 32-bit offsets. */
		if (range > 0 && start >= b->ip_base && start < b->m->max_vaddr &&
		    start - b->ip_base <= INT32_MAX && range <= b->m->max_vaddr - start)
			emit(b, sec, &c, start, range, f.pos, end);
		r.pos = end;
	}
}

/* Inflate an SHF_COMPRESSED section (zlib, the only kind toolchains emit) into *owned. */
static bool inflate_section(const uint8_t *p, uint64_t size, struct rd *out, uint8_t **owned)
{
	Elf64_Chdr ch;
	uLongf dlen;
	uint8_t *buf;

	if (size < sizeof(ch))
		return false;
	memcpy(&ch, p, sizeof(ch));
	if (ch.ch_type != ELFCOMPRESS_ZLIB || ch.ch_size == 0 || ch.ch_size > CP_CFI_MAX_BYTES)
		return false;
	buf = malloc(ch.ch_size);
	if (!buf)
		return false;
	dlen = (uLongf)ch.ch_size;
	if (uncompress(buf, &dlen, p + sizeof(ch), (uLong)(size - sizeof(ch))) != Z_OK ||
	    dlen != ch.ch_size) {
		free(buf);
		return false;
	}
	out->p = buf;
	out->end = dlen;
	*owned = buf;
	return true;
}

/*
 * The section called name, from the image's section headers; false when absent or odd.
 * A compressed section is inflated into *owned (caller frees), else *owned stays NULL.
 */
static bool find_section(const struct cp_module *m, const char *name, struct rd *out,
			 uint8_t **owned)
{
	Elf64_Ehdr eh;
	Elf64_Shdr sh, strtab;
	size_t nlen = strlen(name) + 1;

	*owned = NULL;
	if (m->size < sizeof(eh))
		return false;
	memcpy(&eh, m->data, sizeof(eh));
	if (eh.e_shentsize != sizeof(sh) || eh.e_shnum == 0 || eh.e_shstrndx >= eh.e_shnum ||
	    eh.e_shoff > m->size || (uint64_t)eh.e_shnum * sizeof(sh) > m->size - eh.e_shoff)
		return false;
	memcpy(&strtab, m->data + eh.e_shoff + (uint64_t)eh.e_shstrndx * sizeof(sh), sizeof(sh));
	if (strtab.sh_offset > m->size || strtab.sh_size > m->size - strtab.sh_offset)
		return false;
	for (unsigned int i = 0; i < eh.e_shnum; i++) {
		memcpy(&sh, m->data + eh.e_shoff + (uint64_t)i * sizeof(sh), sizeof(sh));
		if (sh.sh_type != SHT_PROGBITS || sh.sh_name >= strtab.sh_size ||
		    nlen > strtab.sh_size - sh.sh_name ||
		    memcmp(m->data + strtab.sh_offset + sh.sh_name, name, nlen) != 0)
			continue;
		if (sh.sh_offset > m->size || sh.sh_size > m->size - sh.sh_offset)
			return false;
		memset(out, 0, sizeof(*out));
		out->vaddr = sh.sh_addr;
		/* Go and some distributions compress their DWARF, .debug_frame included. */
		if (sh.sh_flags & SHF_COMPRESSED)
			return inflate_section(m->data + sh.sh_offset, sh.sh_size, out, owned);
		out->p = m->data + sh.sh_offset;
		out->end = sh.sh_size;
		return true;
	}
	return false;
}

static int cmp_entry(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;

	if (x->start != y->start)
		return x->start < y->start ? -1 : 1;
	return x->fde < y->fde ? -1 : x->fde > y->fde;
}

void cp_cfi_index_free(struct cp_cfi_index *x)
{
	if (!x)
		return;
	free(x->buf);
	free(x);
}

int cp_cfi_index_build(const struct cp_module *m, uint64_t bias, struct cp_cfi_index **out)
{
	struct builder b = { .m = m, .bias = bias, .ip_base = m->min_vaddr };
	struct cp_cfi_index *x = NULL;
	size_t table, total;
	uint8_t *owned = NULL;
	struct rd sec;
	int r = 0;

	if (!m->data || m->nload == 0)
		return -ENOENT;
	if (find_section(m, ".debug_frame", &sec, &owned))
		add_section(&b, &sec, false);
	free(owned);
	owned = NULL;
	if (!m->has_eh_table && find_section(m, ".eh_frame", &sec, &owned))
		add_section(&b, &sec, true);
	free(owned);
	/* Past a cap or an allocation failure the entries made so far are still good. */
	if (b.n == 0) {
		r = b.o.err ? -ENOMEM : -ENOENT;
		goto out;
	}
	qsort(b.v, b.n, sizeof(*b.v), cmp_entry);

	/* Table first, then the entries, so that FDE offsets are small and positive. */
	table = b.n * sizeof(struct entry);
	total = table + b.o.len;
	if (total > INT32_MAX) {
		r = -EFBIG;
		goto out;
	}
	x = calloc(1, sizeof(*x));
	if (!x) {
		r = -ENOMEM;
		goto out;
	}
	x->buf = malloc(total);
	if (!x->buf) {
		free(x);
		x = NULL;
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < b.n; i++) {
		struct entry e = { b.v[i].start, (int32_t)(b.v[i].fde + (int64_t)table) };

		memcpy(x->buf + i * sizeof(e), &e, sizeof(e));
	}
	memcpy(x->buf + table, b.o.p, b.o.len);
	x->len = total;
	x->count = b.n;
	x->bias = bias;
	x->ip_base = b.ip_base;
	*out = x;
out:
	free(b.o.p);
	free(b.v);
	return r;
}
