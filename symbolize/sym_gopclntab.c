/* Go's .gopclntab: functab search, _func records, pcvalue tables and inline trees. */
#include <errno.h>
#include <string.h>

#include "sym_gopclntab.h"

#define MAGIC_116 0xfffffffau
#define MAGIC_118 0xfffffff0u
#define MAGIC_120 0xfffffff1u
/* The pcdata and funcdata slots that name a pc's inlined call (runtime/symtab.go). */
#define PCDATA_INL_TREE_INDEX 2
#define FUNCDATA_INL_TREE 3
/* Caps on what hostile bytes may ask of us. */
#define MAX_FUNCS (16u << 20)
#define MAX_NAME 4096
#define MAX_INLINE_INDEX (1u << 20)
#define MAX_PCDATA 1024
/* Where moduledata.gofunc is, in pointers from its start: Go 1.18-1.19 and 1.20+. */
#define MODULEDATA_TEXT 22
#define MODULEDATA_GOFUNC_118 38
#define MODULEDATA_GOFUNC_120 40

/* Little-endian reads of n bytes at off in data[0..size); false when out of range. */
static bool get_le(const uint8_t *data, uint64_t size, uint64_t off, unsigned n, uint64_t *v)
{
	uint64_t x = 0;

	if (off > size || size - off < n)
		return false;
	for (unsigned i = 0; i < n; i++)
		x |= (uint64_t)data[off + i] << (8 * i);
	*v = x;
	return true;
}

static bool rd32(const struct cp_gopclntab *t, uint64_t off, uint32_t *v)
{
	uint64_t x;

	if (!get_le(t->data, t->size, off, 4, &x))
		return false;
	*v = (uint32_t)x;
	return true;
}

static bool rdptr(const struct cp_gopclntab *t, uint64_t off, uint64_t *v)
{
	return get_le(t->data, t->size, off, t->ptrsize, v);
}

/* The NUL-terminated string at off of the section, or NULL when it runs out of bounds. */
static const char *str_at(const struct cp_gopclntab *t, uint64_t off)
{
	uint64_t n;

	if (off >= t->size)
		return NULL;
	n = t->size - off < MAX_NAME ? t->size - off : MAX_NAME;
	return memchr(t->data + off, 0, n) ? (const char *)t->data + off : NULL;
}

/* Add u to off without overflow; false when it would. */
static bool add_off(uint64_t off, uint64_t u, uint64_t *out)
{
	if (u > UINT64_MAX - off)
		return false;
	*out = off + u;
	return true;
}

int cp_gopclntab_init(struct cp_gopclntab *t, const void *data, uint64_t size, uint64_t vaddr)
{
	uint64_t magic, w[8];
	unsigned nw;
	const uint8_t *b = data;

	memset(t, 0, sizeof(*t));
	if (!data || size < 16 || !get_le(b, size, 0, 4, &magic))
		return -EINVAL;
	if (magic == MAGIC_116)
		t->version = CP_GOPCLN_116;
	else if (magic == MAGIC_118)
		t->version = CP_GOPCLN_118;
	else if (magic == MAGIC_120)
		t->version = CP_GOPCLN_120;
	else
		return -EINVAL;
	if (b[4] || b[5] || (b[6] != 1 && b[6] != 2 && b[6] != 4) || (b[7] != 4 && b[7] != 8))
		return -EINVAL;
	t->data = b;
	t->size = size;
	t->vaddr = vaddr;
	t->quantum = b[6];
	t->ptrsize = b[7];
	/* nfunc, nfiles, [textStart,] then the offsets of the five tables. */
	nw = t->version == CP_GOPCLN_116 ? 7 : 8;
	for (unsigned i = 0; i < nw; i++)
		if (!rdptr(t, 8 + (uint64_t)i * t->ptrsize, &w[i]))
			return -EINVAL;
	t->nfunc = w[0];
	if (t->version != CP_GOPCLN_116)
		t->text_start = w[2];
	t->funcname = w[nw - 5];
	t->cutab = w[nw - 4];
	t->filetab = w[nw - 3];
	t->pctab = w[nw - 2];
	t->pcln = w[nw - 1];
	if (t->nfunc == 0 || t->nfunc > MAX_FUNCS || t->funcname >= size || t->cutab >= size ||
	    t->filetab >= size || t->pctab >= size || t->pcln >= size)
		return -EINVAL;
	return 0;
}

/* The size of one functab entry: a pair of pointers (1.16-1.17) or of uint32s. */
static uint64_t ftab_entry_size(const struct cp_gopclntab *t)
{
	return t->version == CP_GOPCLN_116 ? 2ull * t->ptrsize : 8;
}

/* Entry pc and _func offset (from pclntable) of functab entry i; false when out of bounds. */
static bool ftab_get(const struct cp_gopclntab *t, uint64_t i, uint64_t *entry, uint64_t *funcoff)
{
	uint64_t at = t->pcln + i * ftab_entry_size(t);
	uint32_t e, f;

	if (t->version == CP_GOPCLN_116)
		return rdptr(t, at, entry) && (!funcoff || rdptr(t, at + t->ptrsize, funcoff));
	if (!rd32(t, at, &e) || (funcoff && !rd32(t, at + 4, &f)))
		return false;
	*entry = t->text_start + e;
	if (funcoff)
		*funcoff = f;
	return true;
}

/* A _func record: what lookups need of it. */
struct gofunc {
	uint64_t off;		/* of the record in the section */
	uint64_t entry;
	int32_t nameoff;
	uint32_t pcsp, pcfile, pcln, npcdata, cu;
	int32_t start_line;
	uint8_t nfuncdata, funcid;
	uint64_t fixed;		/* size of the fixed part: pcdata follow it */
};

/* The functab index of the function containing pc; false when none does. */
static bool func_index(const struct cp_gopclntab *t, uint64_t pc, uint64_t *idx)
{
	uint64_t lo = 0, hi = t->nfunc, entry, end;

	if (!ftab_get(t, 0, &entry, NULL) || pc < entry || !ftab_get(t, t->nfunc, &end, NULL) ||
	    pc >= end)
		return false;
	/* The last entry whose pc is <= pc. */
	while (hi - lo > 1) {
		uint64_t mid = lo + (hi - lo) / 2;

		if (!ftab_get(t, mid, &entry, NULL))
			return false;
		if (entry <= pc)
			lo = mid;
		else
			hi = mid;
	}
	*idx = lo;
	return true;
}

/* The _func of functab entry i; false when the record is bad. */
static bool func_read(const struct cp_gopclntab *t, uint64_t i, struct gofunc *f)
{
	uint64_t entry, funcoff, base;
	uint32_t v[9];

	if (!ftab_get(t, i, &entry, &funcoff) || !add_off(t->pcln, funcoff, &f->off) ||
	    f->off >= t->size)
		return false;
	f->entry = entry;
	base = t->version == CP_GOPCLN_116 ? t->ptrsize : 4;
	for (unsigned k = 0; k < 9; k++)
		if (!rd32(t, f->off + base + 4ull * k, &v[k]))
			return false;
	f->nameoff = (int32_t)v[0];
	f->pcsp = v[3];
	f->pcfile = v[4];
	f->pcln = v[5];
	f->npcdata = v[6];
	f->cu = v[7];
	f->start_line = 0;
	f->fixed = base + 36;
	if (t->version == CP_GOPCLN_120) {
		if (!rd32(t, f->off + base + 32, &v[8]))
			return false;
		f->start_line = (int32_t)v[8];
		f->fixed += 4;
	}
	if (f->off + f->fixed > t->size || f->npcdata > MAX_PCDATA)
		return false;
	f->nfuncdata = t->data[f->off + f->fixed - 1];
	f->funcid = t->data[f->off + f->fixed - 4];
	return true;
}

/* The _func of the function containing pc; false when none does or the record is bad. */
static bool func_find(const struct cp_gopclntab *t, uint64_t pc, struct gofunc *f)
{
	uint64_t i;

	return func_index(t, pc, &i) && func_read(t, i, f);
}

/* A varint of at most 5 bytes (Go's pcvalue tables hold uint32s) at *p below end. */
static bool read_varint(const uint8_t **p, const uint8_t *end, uint32_t *v)
{
	uint32_t x = 0;

	for (unsigned shift = 0; shift < 35 && *p < end; shift += 7) {
		uint8_t b = *(*p)++;

		x |= (uint32_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*v = x;
			return true;
		}
	}
	return false;
}

/*
 * The value the pcvalue table at pctab offset off gives for targetpc in f, as the runtime's
 * pcvalue: (value delta zig-zag, pc delta * quantum) pairs from (-1, entry). False: none.
 */
static bool pcvalue(const struct cp_gopclntab *t, const struct gofunc *f, uint32_t off,
		    uint64_t targetpc, int32_t *out)
{
	uint64_t at, pc = f->entry;
	const uint8_t *p, *end = t->data + t->size;
	int32_t val = -1;

	if (off == 0 || !add_off(t->pctab, off, &at) || at >= t->size)
		return false;
	p = t->data + at;
	for (bool first = true; p < end; first = false) {
		uint32_t uv, pcd;

		if (!read_varint(&p, end, &uv) || (uv == 0 && !first))
			return false;
		val += (int32_t)((uv & 1) ? ~(uv >> 1) : (uv >> 1));
		if (!read_varint(&p, end, &pcd))
			return false;
		pc += (uint64_t)pcd * t->quantum;
		if (targetpc < pc) {
			*out = val;
			return true;
		}
	}
	return false;
}

/* File and line of pc in f (the innermost inlined position); file NULL when unknown. */
static void func_line(const struct cp_gopclntab *t, const struct gofunc *f, uint64_t pc,
		      const char **file, int *line)
{
	int32_t fileno, ln;
	uint32_t foff;
	uint64_t at;

	*file = NULL;
	*line = 0;
	if (pcvalue(t, f, f->pcln, pc, &ln) && ln > 0)
		*line = ln;
	if (!pcvalue(t, f, f->pcfile, pc, &fileno) || fileno < 0)
		return;
	if (!add_off(t->cutab, ((uint64_t)f->cu + (uint32_t)fileno) * 4, &at) ||
	    !rd32(t, at, &foff) || foff == UINT32_MAX)
		return;
	*file = add_off(t->filetab, foff, &at) ? str_at(t, at) : NULL;
}

/* The function name at nameoff of the function name table, or NULL. */
static const char *func_name(const struct cp_gopclntab *t, int32_t nameoff)
{
	uint64_t at;

	if (nameoff < 0 || !add_off(t->funcname, (uint64_t)nameoff, &at))
		return NULL;
	return str_at(t, at);
}

/* n bytes at ELF address vaddr of a loaded section, or NULL. */
static const uint8_t *sect_bytes(const struct cp_gopclntab *t, uint64_t vaddr, uint64_t n)
{
	for (size_t i = 0; i < t->nsects; i++) {
		const struct cp_gopcln_sect *s = &t->sects[i];

		if (vaddr >= s->vaddr && vaddr - s->vaddr <= s->size && s->size - (vaddr -
		    s->vaddr) >= n)
			return s->data + (vaddr - s->vaddr);
	}
	return NULL;
}

/* ELF address of f's inline tree, or 0 when it has none (or we cannot find it). */
static uint64_t inline_tree(const struct cp_gopclntab *t, const struct gofunc *f)
{
	uint64_t at = f->off + f->fixed + 4ull * f->npcdata, v;
	uint32_t off;

	if (f->nfuncdata <= FUNCDATA_INL_TREE)
		return 0;
	if (t->version == CP_GOPCLN_116) {
		/* Absolute pointers, aligned to 8 by address on 64-bit targets. */
		if (t->ptrsize == 8 && ((t->vaddr + at) & 4))
			at += 4;
		return rdptr(t, at + (uint64_t)FUNCDATA_INL_TREE * t->ptrsize, &v) ? v : 0;
	}
	if (!t->has_gofunc || !rd32(t, at + 4ull * FUNCDATA_INL_TREE, &off) || off == UINT32_MAX)
		return 0;
	return t->gofunc + off;
}

/* Inline tree entry ix at tree: its function name offset, parentPc and start line. */
static bool inline_entry(const struct cp_gopclntab *t, uint64_t tree, int32_t ix,
			 int32_t *nameoff, int32_t *parent_pc, int32_t *start_line)
{
	uint64_t sz = t->version == CP_GOPCLN_120 ? 16 : 20, v[3];
	const uint8_t *e;

	if (ix < 0 || (uint32_t)ix >= MAX_INLINE_INDEX)
		return false;
	e = sect_bytes(t, tree + (uint64_t)ix * sz, sz);
	if (!e)
		return false;
	if (t->version == CP_GOPCLN_120) {
		/* funcID, pad[3], nameOff, parentPc, startLine */
		get_le(e, sz, 4, 4, &v[0]);
		get_le(e, sz, 8, 4, &v[1]);
		get_le(e, sz, 12, 4, &v[2]);
	} else {
		/* parent, funcID, pad, file, line, func_, parentPc */
		get_le(e, sz, 12, 4, &v[0]);
		get_le(e, sz, 16, 4, &v[1]);
		v[2] = 0;
	}
	*nameoff = (int32_t)v[0];
	*parent_pc = (int32_t)v[1];
	*start_line = (int32_t)v[2];
	return true;
}

/* The pcdata table offset of slot i of f, or 0 when it has none. */
static uint32_t pcdata_off(const struct cp_gopclntab *t, const struct gofunc *f, uint32_t i)
{
	uint32_t off;

	if (i >= f->npcdata || !rd32(t, f->off + f->fixed + 4ull * i, &off))
		return 0;
	return off;
}

size_t cp_gopclntab_lookup(const struct cp_gopclntab *t, uint64_t pc,
			   struct cp_gopcln_frame *frames, size_t max)
{
	struct gofunc f;
	uint64_t tree;
	uint32_t inl;
	size_t n = 0;

	if (!t || !t->data || max == 0 || !func_find(t, pc, &f))
		return 0;
	tree = inline_tree(t, &f);
	inl = tree ? pcdata_off(t, &f, PCDATA_INL_TREE_INDEX) : 0;
	/* As the runtime's traceback: each inlined call's site is the position at its parentPc. */
	while (inl && n + 1 < max) {
		struct cp_gopcln_frame *fr = &frames[n];
		int32_t ix, nameoff, parent_pc, start;

		if (!pcvalue(t, &f, inl, pc, &ix) || ix < 0 ||
		    !inline_entry(t, tree, ix, &nameoff, &parent_pc, &start) || parent_pc < 0)
			break;
		fr->function = func_name(t, nameoff);
		if (!fr->function)
			break;
		func_line(t, &f, pc, &fr->file, &fr->line);
		fr->start_line = start > 0 ? start : 0;
		fr->inlined = true;
		fr->pc = pc;
		n++;
		pc = f.entry + (uint32_t)parent_pc;
	}
	frames[n].function = func_name(t, f.nameoff);
	if (!frames[n].function)
		return 0;
	func_line(t, &f, pc, &frames[n].file, &frames[n].line);
	frames[n].start_line = f.start_line > 0 ? f.start_line : 0;
	frames[n].inlined = false;
	frames[n].pc = pc;
	return n + 1;
}

/* The public view of f (functab entry i). */
static bool func_public(const struct cp_gopclntab *t, uint64_t i, const struct gofunc *f,
			struct cp_gopcln_func *out)
{
	uint64_t end;

	out->name = func_name(t, f->nameoff);
	if (!out->name || !ftab_get(t, i + 1, &end, NULL) || end < f->entry)
		return false;
	out->entry = f->entry;
	out->end = end;
	out->funcid = f->funcid;
	return true;
}

bool cp_gopclntab_func_at(const struct cp_gopclntab *t, uint64_t pc, struct cp_gopcln_func *out,
			  int32_t *spdelta)
{
	struct gofunc f;
	uint64_t i;

	if (!t || !t->data || !func_index(t, pc, &i) || !func_read(t, i, &f) ||
	    !func_public(t, i, &f, out))
		return false;
	if (spdelta && !pcvalue(t, &f, f.pcsp, pc, spdelta))
		return false;
	return true;
}

bool cp_gopclntab_func_named(const struct cp_gopclntab *t, const char *name,
			     struct cp_gopcln_func *out)
{
	struct gofunc f;

	if (!t || !t->data)
		return false;
	for (uint64_t i = 0; i < t->nfunc; i++) {
		const char *nm;

		if (!func_read(t, i, &f))
			continue;
		nm = func_name(t, f.nameoff);
		if (nm && !strcmp(nm, name))
			return func_public(t, i, &f, out);
	}
	return false;
}

Elf_Scn *cp_elf_section_named(Elf *elf, const char *name, GElf_Shdr *sh)
{
	size_t shstrndx;
	Elf_Scn *scn = NULL;

	if (elf_getshdrstrndx(elf, &shstrndx) < 0)
		return NULL;
	while ((scn = elf_nextscn(elf, scn))) {
		const char *nm;

		if (!gelf_getshdr(scn, sh))
			continue;
		nm = elf_strptr(elf, shstrndx, sh->sh_name);
		if (nm && !strcmp(nm, name))
			return scn;
	}
	return NULL;
}

/* Keep the allocated sections with bytes in the file, for reading funcdata by address. */
static void load_sections(struct cp_gopclntab *t, Elf *elf)
{
	Elf_Scn *scn = NULL;
	GElf_Shdr sh;

	while ((scn = elf_nextscn(elf, scn)) && t->nsects < CP_GOPCLN_MAX_SECTIONS) {
		Elf_Data *d;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type == SHT_NOBITS ||
		    !(sh.sh_flags & SHF_ALLOC))
			continue;
		d = elf_rawdata(scn, NULL);
		if (!d || !d->d_buf || d->d_size < sh.sh_size)
			continue;
		t->sects[t->nsects++] = (struct cp_gopcln_sect){ sh.sh_addr, sh.sh_size, d->d_buf };
	}
}

/*
 * moduledata.gofunc (Go 1.18+), from runtime.firstmoduledata in .noptrdata: the words that
 * point at the pcHeader and at its function name table, then the text start it also holds.
 */
static void find_gofunc(struct cp_gopclntab *t, Elf *elf)
{
	unsigned ps = t->ptrsize, gofunc_word = t->version == CP_GOPCLN_120 ?
		MODULEDATA_GOFUNC_120 : MODULEDATA_GOFUNC_118;
	GElf_Shdr sh;
	Elf_Scn *scn = cp_elf_section_named(elf, ".noptrdata", &sh);
	Elf_Data *d = scn && sh.sh_type != SHT_NOBITS ? elf_rawdata(scn, NULL) : NULL;
	uint64_t need = (uint64_t)(gofunc_word + 1) * ps;

	if (!d || !d->d_buf || t->version == CP_GOPCLN_116)
		return;
	for (uint64_t off = 0; off + need <= d->d_size; off += ps) {
		uint64_t hdr, names, text, gofunc;

		get_le(d->d_buf, d->d_size, off, ps, &hdr);
		if (hdr != t->vaddr)
			continue;
		get_le(d->d_buf, d->d_size, off + ps, ps, &names);
		get_le(d->d_buf, d->d_size, off + (uint64_t)MODULEDATA_TEXT * ps, ps, &text);
		if (names != t->vaddr + t->funcname || text != t->text_start)
			continue;
		get_le(d->d_buf, d->d_size, off + (uint64_t)gofunc_word * ps, ps, &gofunc);
		t->gofunc = gofunc;
		t->has_gofunc = gofunc != 0;
		return;
	}
}

int cp_gopclntab_from_elf(struct cp_gopclntab *t, Elf *elf)
{
	GElf_Shdr sh, other;
	Elf_Scn *scn;
	Elf_Data *d;
	int err;

	if (!elf)
		return -ENOENT;
	if (!cp_elf_section_named(elf, ".note.go.buildid", &other) &&
	    !cp_elf_section_named(elf, ".go.buildinfo", &other))
		return -ENOENT;
	/* Position-independent builds put the table among the relocated read-only data. */
	scn = cp_elf_section_named(elf, ".gopclntab", &sh);
	if (!scn)
		scn = cp_elf_section_named(elf, ".data.rel.ro.gopclntab", &sh);
	if (!scn || sh.sh_type == SHT_NOBITS)
		return -ENOENT;
	d = elf_rawdata(scn, NULL);
	if (!d || !d->d_buf)
		return -ENOENT;
	err = cp_gopclntab_init(t, d->d_buf, d->d_size, sh.sh_addr);
	if (err)
		return err;
	load_sections(t, elf);
	find_gofunc(t, elf);
	return 0;
}
