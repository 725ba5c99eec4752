/* Symbol tables: the function symbols of .symtab / .dynsym / .gnu_debugdata, sorted once. */
#include <stdlib.h>

#include "sym_internal.h"

/* Symbols read from one table at most. */
#define MAX_SYMBOLS (8u << 20)

/* Among aliases, global beats weak beats local, and "read" beats "__read". */
static int symbol_rank(const GElf_Sym *s, const char *name)
{
	int bind = GELF_ST_BIND(s->st_info);
	int r = bind == STB_GLOBAL ? 0 : bind == STB_WEAK ? 100 : 200;

	while (*name == '_' && r % 100 < 99) {
		r++;
		name++;
	}
	return r;
}

static int symbol_cmp(const void *a, const void *b)
{
	const struct symbol *x = a, *y = b;

	if (x->addr != y->addr)
		return x->addr < y->addr ? -1 : 1;
	return (x->rank > y->rank) - (x->rank < y->rank);
}

/* Collect the function symbols of m, sorted by address, one per address. Once. */
static void load_symbols(struct module *m)
{
	int n;
	size_t k = 0, out = 0;

	m->syms_loaded = true;
	n = dwfl_module_getsymtab(m->dmod);
	if (n <= 1 || (unsigned)n > MAX_SYMBOLS)
		return;
	m->syms = malloc((size_t)n * sizeof(*m->syms));
	if (!m->syms)
		return;
	for (int i = 1; i < n; i++) {
		GElf_Sym s;
		GElf_Addr addr;
		GElf_Word shndx;
		const char *name = dwfl_module_getsym_info(m->dmod, i, &s, &addr, &shndx, NULL,
							   NULL);
		int type;

		if (!name || !*name || shndx == SHN_UNDEF)
			continue;
		type = GELF_ST_TYPE(s.st_info);
		if (type != STT_FUNC && type != STT_GNU_IFUNC)
			continue;
		m->syms[k++] = (struct symbol){ addr, s.st_size, name, symbol_rank(&s, name) };
	}
	if (k)
		qsort(m->syms, k, sizeof(*m->syms), symbol_cmp);
	/* Keep the best-ranked alias at each address, with the largest size seen there. */
	for (size_t i = 0; i < k; i++) {
		if (out && m->syms[out - 1].addr == m->syms[i].addr) {
			if (m->syms[i].size > m->syms[out - 1].size)
				m->syms[out - 1].size = m->syms[i].size;
			continue;
		}
		m->syms[out++] = m->syms[i];
	}
	m->nsyms = out;
}

/* The function symbol containing addr (or the nearest sizeless one below it), or NULL. */
static const struct symbol *symbol_find(struct module *m, uint64_t addr)
{
	size_t lo = 0, hi;

	if (!m->syms_loaded)
		load_symbols(m);
	hi = m->nsyms;
	/* First symbol above addr. */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (m->syms[mid].addr <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0)
		return NULL;
	/* Nested symbols are rare; a few steps back find the one that contains addr. */
	for (size_t j = lo, steps = 0; j > 0 && steps < 8; j--, steps++) {
		const struct symbol *s = &m->syms[j - 1];

		if (addr - s->addr < s->size)
			return s;
	}
	return m->syms[lo - 1].size == 0 ? &m->syms[lo - 1] : NULL;
}

bool cp_sym_symtab_lookup(struct cp_symbolizer *sym, struct module *m, uint64_t addr,
			  struct cp_sym_frame *f)
{
	const struct symbol *s = symbol_find(m, addr);

	if (!s)
		return false;
	f->system_name = cp_sym_intern(sym, s->name);
	f->function = cp_sym_intern_demangled(sym, s->name);
	return f->function != NULL;
}

size_t cp_sym_gopclntab_lookup(struct cp_symbolizer *sym, struct module *m, uint64_t addr,
			       struct cp_sym_frame *frames)
{
	struct cp_gopcln_frame gf[CP_SYM_MAX_INLINE];
	size_t n;

	if (!m->gopcln_loaded) {
		GElf_Addr bias;
		Elf *elf = m->dmod ? dwfl_module_getelf(m->dmod, &bias) : NULL;

		m->gopcln_loaded = true;
		m->gopcln = elf ? malloc(sizeof(*m->gopcln)) : NULL;
		if (m->gopcln && cp_gopclntab_from_elf(m->gopcln, elf) < 0) {
			free(m->gopcln);
			m->gopcln = NULL;
		}
	}
	if (!m->gopcln)
		return 0;
	n = cp_gopclntab_lookup(m->gopcln, addr, gf, CP_SYM_MAX_INLINE);
	for (size_t i = 0; i < n; i++) {
		struct cp_sym_frame *f = &frames[i];

		*f = (struct cp_sym_frame){ .line = gf[i].line, .start_line = gf[i].start_line,
					    .inlined = gf[i].inlined };
		f->function = cp_sym_intern(sym, gf[i].function);
		f->system_name = f->function;
		f->file = gf[i].file ? cp_sym_intern(sym, gf[i].file) : NULL;
		if (!f->function)
			return 0;
	}
	return n;
}
