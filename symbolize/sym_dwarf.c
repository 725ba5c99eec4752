/* DWARF lookups: the unit of an address (aranges, unit ranges), its line, its inlined frames. */
#include <dwarf.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sym_internal.h"

/* DIE trees nested deeper than this are cut (corrupt DWARF can nest without end). */
#define MAX_SCOPE_DEPTH 64
/* Unit ranges and aranges entries kept per module. */
#define MAX_CU_RANGES (4u << 20)

static bool is_scope_with_code(int tag)
{
	return tag == DW_TAG_subprogram || tag == DW_TAG_inlined_subroutine ||
	       tag == DW_TAG_lexical_block || tag == DW_TAG_entry_point;
}

/*
 * Walk the DIE tree under parent down to pc: chain[depth..] receives the subprogram and
 * inlined-subroutine DIEs that contain pc, outermost first. Only scopes with code are
 * entered, and namespaces when enter_ns (GCC and Clang put out-of-line definitions at the CU
 * level, so namespaces, std's above all, are big and only worth a second look);
 * dwarf_siblingof skips the rest. Returns the new depth.
 */
static int find_scopes(Dwarf_Die *parent, Dwarf_Addr pc, Dwarf_Die *chain, int depth, int level,
		       bool enter_ns)
{
	Dwarf_Die child;

	if (level >= MAX_SCOPE_DEPTH || dwarf_child(parent, &child) != 0)
		return depth;
	do {
		int tag = dwarf_tag(&child);

		if (is_scope_with_code(tag)) {
			if (dwarf_haspc(&child, pc) != 1)
				continue;
			if ((tag == DW_TAG_subprogram || tag == DW_TAG_inlined_subroutine) &&
			    depth < MAX_SCOPE_DEPTH)
				chain[depth++] = child;
			return find_scopes(&child, pc, chain, depth, level + 1, enter_ns);
		}
		if (enter_ns && (tag == DW_TAG_namespace || tag == DW_TAG_module)) {
			int d = find_scopes(&child, pc, chain, depth, level + 1, enter_ns);

			if (d > depth)
				return d;
		}
	} while (dwarf_siblingof(&child, &child) == 0);
	return depth;
}

/*
 * C++ functions GCC gives no linkage name (a lambda's operator(), members of some class
 * templates): their DW_AT_name alone is "operator()" or "_M_run". The scopes the declaration
 * sits in (namespaces, classes) qualify it, as a demangled name would; the declaration is
 * reached through DW_AT_specification and DW_AT_abstract_origin. Its enclosing DIEs are found
 * by offset: a DIE's subtree lies between its own offset and its next sibling's. NULL when
 * it is not a C++ unit or nothing encloses the declaration.
 */
static bool cxx_unit(Dwarf_Die *cu)
{
	int lang = dwarf_srclang(cu);

	return lang == DW_LANG_C_plus_plus || lang == DW_LANG_C_plus_plus_03 ||
	       lang == DW_LANG_C_plus_plus_11 || lang == DW_LANG_C_plus_plus_14;
}

/* What qualifies a name: namespaces, classes, and a function for its local classes (lambdas). */
static bool is_named_scope(int tag)
{
	return tag == DW_TAG_namespace || tag == DW_TAG_class_type ||
	       tag == DW_TAG_structure_type || tag == DW_TAG_union_type ||
	       tag == DW_TAG_subprogram;
}

static const char *qualified_name(struct cp_symbolizer *sym, Dwarf_Die *die, const char *name)
{
	Dwarf_Die decl = *die, cu, child, next;
	Dwarf_Attribute a;
	char buf[1024];
	size_t len = 0;
	Dwarf_Off target;

	for (int i = 0; i < 8 && (dwarf_attr(&decl, DW_AT_specification, &a) ||
				  dwarf_attr(&decl, DW_AT_abstract_origin, &a)); i++)
		if (!dwarf_formref_die(&a, &decl))
			return NULL;
	if (!dwarf_diecu(&decl, &cu, NULL, NULL) || !cxx_unit(&cu))
		return NULL;
	target = dwarf_dieoffset(&decl);
	buf[0] = '\0';
	for (int level = 0; level < MAX_SCOPE_DEPTH && dwarf_child(&cu, &child) == 0; level++) {
		bool inside = false;

		do {
			bool last = dwarf_siblingof(&child, &next) != 0;
			Dwarf_Off end = last ? (Dwarf_Off)-1 : dwarf_dieoffset(&next);

			if (dwarf_dieoffset(&child) == target)
				goto done;
			if (dwarf_dieoffset(&child) < target && target < end) {
				inside = is_named_scope(dwarf_tag(&child));
				break;
			}
			if (last)
				break;
			child = next;
		} while (1);
		if (!inside)
			return NULL;
		{
			const char *n = dwarf_diename(&child);
			int w = snprintf(buf + len, sizeof(buf) - len, "%s::",
					 n ? n : "(anonymous namespace)");

			if (w < 0 || (size_t)w >= sizeof(buf) - len)
				return NULL;
			len += (size_t)w;
		}
		cu = child;
	}
	return NULL;
done:
	if (!len || snprintf(buf + len, sizeof(buf) - len, "%s", name) >= (int)(sizeof(buf) - len))
		return NULL;
	return cp_sym_intern(sym, buf);
}

static void die_names(struct cp_symbolizer *sym, Dwarf_Die *die, struct cp_sym_frame *f)
{
	Dwarf_Attribute a;
	const char *link = NULL, *name = NULL;
	int line;

	if (dwarf_attr_integrate(die, DW_AT_linkage_name, &a) ||
	    dwarf_attr_integrate(die, DW_AT_MIPS_linkage_name, &a))
		link = dwarf_formstring(&a);
	if (dwarf_attr_integrate(die, DW_AT_name, &a))
		name = dwarf_formstring(&a);
	/* A linkage name that is not mangled is an asm label (glibc's __GI_ aliases): the
	 * source name is what users know; the raw one stays in system_name. */
	if (link && (!name || !strncmp(link, "_Z", 2) || !strncmp(link, "_R", 2))) {
		f->system_name = cp_sym_intern(sym, link);
		f->function = cp_sym_intern_demangled(sym, link);
	} else if (link) {
		f->system_name = cp_sym_intern(sym, link);
		f->function = cp_sym_intern(sym, name);
	} else if (name) {
		const char *q = qualified_name(sym, die, name);

		f->system_name = cp_sym_intern(sym, name);
		f->function = q ? q : f->system_name;
	}
	if (dwarf_decl_line(die, &line) == 0 && line > 0)
		f->start_line = line;
}

/*
 * Lexically clean path in place: drop "." and empty components, fold "dir/..". Symlinks
 * are not consulted: the path is a build machine's, not ours.
 */
static void clean_path(char *path)
{
	char *comp[PATH_MAX / 2];
	size_t n = 0, len;
	bool abs = path[0] == '/';
	char *save = NULL, *out;

	for (char *c = strtok_r(path, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
		if (!strcmp(c, "."))
			continue;
		if (!strcmp(c, "..") && n > 0 && strcmp(comp[n - 1], ".."))
			n--;
		else if (!(abs && n == 0 && !strcmp(c, "..")) && n < CP_ARRAY_SIZE(comp))
			comp[n++] = c;
	}
	/* Components only move left: copy them down over the original string. */
	out = path;
	if (abs)
		*out++ = '/';
	for (size_t i = 0; i < n; i++) {
		len = strlen(comp[i]);
		memmove(out, comp[i], len);
		out += len;
		if (i + 1 < n)
			*out++ = '/';
	}
	if (out == path)
		*out++ = '.';
	*out = '\0';
}

/* name made absolute with the CU's compilation directory and cleaned, interned. */
static const char *source_path(struct cp_symbolizer *sym, Dwarf_Die *cudie, const char *name)
{
	char buf[PATH_MAX];
	Dwarf_Attribute a;
	const char *dir = NULL;
	int n;

	if (!name)
		return NULL;
	if (name[0] != '/' && dwarf_attr(cudie, DW_AT_comp_dir, &a))
		dir = dwarf_formstring(&a);
	if (dir && *dir)
		n = snprintf(buf, sizeof(buf), "%s/%s", dir, name);
	else
		n = snprintf(buf, sizeof(buf), "%s", name);
	if (n < 0 || n >= (int)sizeof(buf))
		return cp_sym_intern(sym, name);
	clean_path(buf);
	return cp_sym_intern(sym, buf);
}

/* File name number idx of the CU's line program, or NULL. */
static const char *cu_file(Dwarf_Die *cudie, Dwarf_Word idx)
{
	Dwarf_Files *files;
	size_t nfiles;

	if (dwarf_getsrcfiles(cudie, &files, &nfiles) != 0 || idx >= nfiles)
		return NULL;
	return dwarf_filesrc(files, idx, NULL, NULL);
}

static void call_site(struct cp_symbolizer *sym, Dwarf_Die *cudie, Dwarf_Die *inl,
		      struct cp_sym_frame *f)
{
	Dwarf_Attribute a;
	Dwarf_Word w;

	if (dwarf_attr(inl, DW_AT_call_file, &a) && dwarf_formudata(&a, &w) == 0)
		f->file = source_path(sym, cudie, cu_file(cudie, w));
	if (dwarf_attr(inl, DW_AT_call_line, &a) && dwarf_formudata(&a, &w) == 0 && w <= INT_MAX)
		f->line = (int)w;
}

static int cu_range_cmp(const void *a, const void *b)
{
	const struct cu_range *x = a, *y = b;

	return (x->lo > y->lo) - (x->lo < y->lo);
}

/* Index every compile unit of m by its address ranges. Once per module. */
static void load_cu_ranges(struct module *m)
{
	Dwarf *dw;
	Dwarf_CU *cu = NULL;
	Dwarf_Die cudie;
	uint8_t type;
	size_t cap = 0;

	m->cus_loaded = true;
	dw = dwfl_module_getdwarf(m->dmod, &m->dwbias);
	if (!dw)
		return;
	while (dwarf_get_units(dw, cu, &cu, NULL, &type, &cudie, NULL) == 0) {
		Dwarf_Addr base, lo, hi;
		ptrdiff_t off = 0;

		if (type != DW_UT_compile || dwarf_tag(&cudie) != DW_TAG_compile_unit)
			continue;
		while ((off = dwarf_ranges(&cudie, off, &base, &lo, &hi)) > 0) {
			if (lo >= hi)
				continue;
			if (m->ncus == cap) {
				size_t ncap = cap ? cap * 2 : 64;
				struct cu_range *n;

				if (ncap > MAX_CU_RANGES)
					goto done;
				n = realloc(m->cus, ncap * sizeof(*n));
				if (!n)
					goto done;
				m->cus = n;
				cap = ncap;
			}
			m->cus[m->ncus++] = (struct cu_range){ lo, hi, cudie };
		}
	}
done:
	if (m->ncus)
		qsort(m->cus, m->ncus, sizeof(*m->cus), cu_range_cmp);
}

/* The CU whose ranges hold ELF address addr, from our own index; NULL when none. */
static Dwarf_Die *cu_find(struct module *m, uint64_t addr, Dwarf_Addr *dbias)
{
	Dwarf_Addr pc;
	size_t lo = 0, hi;

	if (!m->cus_loaded)
		load_cu_ranges(m);
	pc = addr - m->dwbias;
	hi = m->ncus;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (m->cus[mid].lo <= pc)
			lo = mid + 1;
		else
			hi = mid;
	}
	/* Ranges of different CUs rarely overlap; a few steps back settle it. */
	for (size_t j = lo, steps = 0; j > 0 && steps < 8; j--, steps++) {
		if (pc < m->cus[j - 1].hi) {
			*dbias = m->dwbias;
			return &m->cus[j - 1].cudie;
		}
	}
	return NULL;
}

static int arange_cmp(const void *a, const void *b)
{
	const struct arange *x = a, *y = b;

	if (x->lo != y->lo)
		return x->lo < y->lo ? -1 : 1;
	return (x->hi > y->hi) - (x->hi < y->hi);
}

static uint64_t read_uint(const uint8_t *p, size_t size, bool swap)
{
	uint64_t v = 0;

	for (size_t i = 0; i < size; i++)
		v |= (uint64_t)p[swap ? size - 1 - i : i] << (8 * i);
	return v;
}

/*
 * Parse .debug_aranges (DWARF 2-5, 32- and 64-bit) into a sorted table of address ranges and
 * unit offsets. libdw's dwarf_getaranges reads every unit's DIE (and so its abbreviations)
 * on the way, every unit of libc's thousands where a dump needs a handful.
 * Hostile input: every length is checked against the section; garbage ends the parse.
 */
static void load_aranges(struct module *m)
{
	Dwarf *dw;
	Elf *elf;
	Elf_Scn *scn = NULL;
	Elf_Data *data = NULL;
	size_t shstrndx, cap = 0;
	GElf_Ehdr eh;
	bool swap;
	const uint8_t *p, *end;

	m->aranges_loaded = true;
	dw = dwfl_module_getdwarf(m->dmod, &m->dwbias);
	if (!dw || !(elf = dwarf_getelf(dw)) || !gelf_getehdr(elf, &eh) ||
	    elf_getshdrstrndx(elf, &shstrndx) < 0)
		return;
	swap = eh.e_ident[EI_DATA] != ELFDATA2LSB;
	while ((scn = elf_nextscn(elf, scn))) {
		GElf_Shdr sh;
		const char *name;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type == SHT_NOBITS)
			continue;
		name = elf_strptr(elf, shstrndx, sh.sh_name);
		if (name && !strcmp(name, ".debug_aranges")) {
			/* Compressed sections were inflated by libdw when it opened the file. */
			if (sh.sh_flags & SHF_COMPRESSED)
				return;
			data = elf_getdata(scn, NULL);
			break;
		}
	}
	if (!data || !data->d_buf)
		return;
	p = data->d_buf;
	end = p + data->d_size;
	while (end - p >= 4) {
		uint64_t len = read_uint(p, 4, swap), cu;
		const uint8_t *set, *set_end;
		size_t offsize = 4, asize, tuple;
		unsigned int version;

		p += 4;
		if (len == 0xffffffff) {
			if (end - p < 8)
				break;
			len = read_uint(p, 8, swap);
			p += 8;
			offsize = 8;
		}
		if (len > (uint64_t)(end - p) || len < 2 + offsize + 2)
			break;
		set = p;
		set_end = p + len;
		p = set_end;
		version = (unsigned int)read_uint(set, 2, swap);
		cu = read_uint(set + 2, offsize, swap);
		asize = set[2 + offsize];
		if (version < 2 || version > 5 || set[3 + offsize] != 0 ||
		    (asize != 4 && asize != 8))
			continue;
		tuple = 2 * asize;
		/* Tuples start at a multiple of their size from the start of the set's header. */
		{
			size_t hdr = (size_t)(set - (const uint8_t *)data->d_buf) -
				     (offsize == 8 ? 12 : 4);
			size_t at = (size_t)(set + 4 + offsize - (const uint8_t *)data->d_buf);

			at = hdr + ((at - hdr + tuple - 1) / tuple) * tuple;
			set = (const uint8_t *)data->d_buf + at;
		}
		for (; set_end - set >= (ptrdiff_t)tuple; set += tuple) {
			uint64_t lo = read_uint(set, asize, swap);
			uint64_t n = read_uint(set + asize, asize, swap);

			if (lo == 0 && n == 0)
				break;
			if (n == 0 || lo + n < lo)
				continue;
			if (m->naranges == cap) {
				size_t ncap = cap ? cap * 2 : 256;
				struct arange *v;

				if (ncap > MAX_CU_RANGES)
					goto done;
				v = realloc(m->aranges, ncap * sizeof(*v));
				if (!v)
					goto done;
				m->aranges = v;
				cap = ncap;
			}
			m->aranges[m->naranges++] = (struct arange){ lo, lo + n, cu };
		}
	}
done:
	if (m->naranges)
		qsort(m->aranges, m->naranges, sizeof(*m->aranges), arange_cmp);
}

/* The compile unit DIE for ELF address addr, through our .debug_aranges table; NULL when the
 * table does not say (the caller falls back to libdw's own lookup). */
static Dwarf_Die *arange_find(struct module *m, uint64_t addr, Dwarf_Addr *dbias, Dwarf_Die *out)
{
	Dwarf *dw;
	Dwarf_Addr pc;
	Dwarf_Off next;
	size_t lo = 0, hi, hsize;
	uint8_t unit_type = 0;
	Dwarf_Half version;

	if (!m->aranges_loaded)
		load_aranges(m);
	if (!m->naranges)
		return NULL;
	dw = dwfl_module_getdwarf(m->dmod, dbias);
	if (!dw)
		return NULL;
	pc = addr - *dbias;
	hi = m->naranges;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (m->aranges[mid].lo <= pc)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t j = lo, steps = 0; j > 0 && steps < 8; j--, steps++) {
		const struct arange *a = &m->aranges[j - 1];

		if (pc >= a->hi)
			continue;
		/* Only plain compile units: skeletons and partial units go through libdw. */
		if (dwarf_next_unit(dw, a->cu, &next, &hsize, &version, NULL, NULL, NULL, NULL,
				    NULL) != 0 || version < 2 || version > 5)
			return NULL;
		if (!dwarf_offdie(dw, a->cu + hsize, out) || dwarf_tag(out) != DW_TAG_compile_unit)
			return NULL;
		if (version >= 5 && (dwarf_cu_info(out->cu, NULL, &unit_type, NULL, NULL, NULL,
						   NULL, NULL) != 0 || unit_type != DW_UT_compile))
			return NULL;
		return out;
	}
	return NULL;
}

size_t cp_sym_dwarf_lookup(struct cp_symbolizer *sym, struct module *m, uint64_t addr,
			   struct cp_sym_frame *frames)
{
	Dwarf_Die chain[MAX_SCOPE_DEPTH];
	Dwarf_Addr dbias = 0;
	Dwarf_Die cu_copy;
	Dwarf_Die *cudie = arange_find(m, addr, &dbias, &cu_copy);
	Dwarf_Addr pc;
	Dwarf_Line *line;
	const char *file = NULL;
	int lineno = 0;
	int depth, first;
	size_t n = 0;

	/*
	 * libdw's answer is checked: in a cgo binary, .debug_aranges lists only the C units and
	 * libdw then names one of them for any Go pc.
	 */
	if (!cudie && (cudie = dwfl_module_addrdie(m->dmod, addr, &dbias)) &&
	    dwarf_haspc(cudie, addr - dbias) <= 0)
		cudie = NULL;
	if (!cudie) {
		cudie = cu_find(m, addr, &dbias);
		if (!cudie)
			return 0;
	}
	/* libdw may hand out a DIE inside its own lookup state: keep a copy. */
	cu_copy = *cudie;
	cudie = &cu_copy;
	pc = addr - dbias;
	line = dwarf_getsrc_die(cudie, pc);
	if (line) {
		file = dwarf_linesrc(line, NULL, NULL);
		if (dwarf_lineno(line, &lineno) != 0 || lineno < 0)
			lineno = 0;
	}
	depth = find_scopes(cudie, pc, chain, 0, 0, false);
	if (depth == 0)
		depth = find_scopes(cudie, pc, chain, 0, 0, true);
	/* The real function is the innermost subprogram; outer ones are GNU nested functions. */
	for (first = depth - 1; first >= 0; first--)
		if (dwarf_tag(&chain[first]) == DW_TAG_subprogram)
			break;
	if (first < 0) {
		/* Line info without a function (assembly): let the symbol table name it. */
		if (!file)
			return 0;
		frames[0] = (struct cp_sym_frame){ .file = source_path(sym, cudie, file), .line = lineno };
		return 1;
	}
	for (int i = depth - 1; i >= first && n < CP_SYM_MAX_INLINE; i--, n++) {
		struct cp_sym_frame *f = &frames[n];

		*f = (struct cp_sym_frame){ 0 };
		die_names(sym, &chain[i], f);
		f->inlined = i > first;
		if (n == 0) {
			f->file = source_path(sym, cudie, file);
			f->line = lineno;
		} else {
			call_site(sym, cudie, &chain[i + 1], f);
		}
	}
	return n;
}
