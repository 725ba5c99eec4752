/* The symbolizer: results per (module, address), remembered in memory and on disk. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sym_cache.h"
#include "sym_internal.h"

/* The address cache stops growing after this many entries: later lookups are computed. */
#define MAX_CACHED_ADDRS (1u << 20)
/* The disk results kept in memory (as read, indexed) over all modules; beyond, not read. */
#define MAX_DISK_BYTES (64u << 20)

const char *cp_sym_intern(struct cp_symbolizer *sym, const char *s)
{
	return s ? cp_strtab_str(&sym->strings, s) : NULL;
}

const char *cp_sym_intern_demangled(struct cp_symbolizer *sym, const char *raw)
{
	int64_t i = cp_strtab_intern(&sym->strings, raw);
	uint32_t *d;

	if (i < 0)
		return NULL;
	if (sym->ndemangled < sym->strings.n) {
		if (cp_grow((void **)&sym->demangled, &sym->demangled_alloc, sym->strings.n,
			    sizeof(*sym->demangled)) < 0)
			return NULL;
		memset(sym->demangled + sym->ndemangled, 0,
		       (sym->strings.n - sym->ndemangled) * sizeof(*sym->demangled));
		sym->ndemangled = sym->strings.n;
	}
	d = &sym->demangled[i];
	if (!*d) {
		char *text = cp_sym_demangle(raw);
		int64_t j = text ? cp_strtab_intern(&sym->strings, text) : -1;

		/* d stays valid: interning grows the string table, not this array. */
		*d = j >= 0 ? (uint32_t)j + 2 : 1;
		free(text);
	}
	return sym->strings.v[*d > 1 ? *d - 2 : (uint32_t)i];
}

struct cp_symbolizer *cp_sym_new(void)
{
	struct cp_symbolizer *sym = calloc(1, sizeof(*sym));
	long ps;

	if (!sym)
		return NULL;
	if (cp_strtab_init(&sym->strings, 0) < 0) {
		free(sym);
		return NULL;
	}
	ps = sysconf(_SC_PAGESIZE);
	sym->page_size = ps > 0 ? (uint64_t)ps : 4096;
	elf_version(EV_CURRENT);
	return sym;
}

void cp_sym_free(struct cp_symbolizer *sym)
{
	if (!sym)
		return;
	cp_sym_modules_drop(sym, true);
	cp_sym_jit_free(sym);
	cp_strtab_release(&sym->strings);
	free(sym->demangled);
	free(sym);
}

static bool addr_eq(const void *ctx, uint32_t idx, const void *key)
{
	return ((const struct module *)ctx)->addrs[idx].addr == *(const uint64_t *)key;
}

static const struct addr_entry *addr_lookup(const struct module *m, uint64_t addr, uint32_t h)
{
	int64_t i = cp_htab_find(&m->addr_h, h, addr_eq, m, &addr);

	return i < 0 ? NULL : &m->addrs[i];
}

/* Remember frames[0..n) for addr of m (in memory). */
static void addr_remember(struct cp_symbolizer *sym, struct module *m, uint64_t addr, uint32_t h,
			  const struct cp_sym_frame *frames, size_t n)
{
	if (sym->naddrs >= MAX_CACHED_ADDRS || m->nframes + n > UINT32_MAX)
		return;
	if (cp_grow((void **)&m->addrs, &m->addrs_alloc, m->naddrs + 1, sizeof(*m->addrs)) < 0 ||
	    cp_grow((void **)&m->frames, &m->frames_alloc, m->nframes + n, sizeof(*m->frames)) < 0)
		return;
	if (cp_htab_insert(&m->addr_h, h, (uint32_t)m->naddrs) < 0)
		return;
	m->addrs[m->naddrs++] = (struct addr_entry){ addr, (uint32_t)m->nframes, (uint32_t)n };
	if (n)
		memcpy(m->frames + m->nframes, frames, n * sizeof(*frames));
	m->nframes += n;
	sym->naddrs++;
}

static int disk_ref_cmp(const void *a, const void *b)
{
	const struct disk_ref *x = a, *y = b;

	if (x->addr != y->addr)
		return x->addr < y->addr ? -1 : 1;
	return (x->record > y->record) - (x->record < y->record);
}

/*
 * Index the results earlier cprof processes found for m's build (sym_cache.h): only the
 * addresses; a record is parsed, its strings interned, when its address is met. libc's file
 * has thousands of records, of which a profile meets tens.
 */
static void disk_load(struct module *m)
{
	struct disk_ref *refs = NULL;
	size_t len, n = 0, cap = 0;
	char *cursor, *record;
	uint64_t addr;
	int kind;

	m->disk_loaded = true;
	if (!m->cache_id || cp_sym_cache_read(m->cache_id, &m->disk_text, &len) < 0)
		return;
	if (m->sym->disk_bytes + len > MAX_DISK_BYTES) {
		free(m->disk_text);
		m->disk_text = NULL;
		return;
	}
	m->disk_len = len;
	m->sym->disk_bytes += len;
	cursor = m->disk_text;
	while ((kind = cp_sym_cache_scan(&cursor, &addr, &record)) != CP_SYM_CACHE_END) {
		if (kind == CP_SYM_CACHE_HAS_DWARF)
			m->disk_has_dwarf = true;
		if (kind != CP_SYM_CACHE_ADDR)
			continue;
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 256;
			struct disk_ref *v = realloc(refs, ncap * sizeof(*v));

			if (!v)
				break;	/* what is indexed so far still counts */
			refs = v;
			cap = ncap;
		}
		refs[n++] = (struct disk_ref){ addr, record };
	}
	/* Stable by place: the first good record of an address wins, as it was written first. */
	if (n)
		qsort(refs, n, sizeof(*refs), disk_ref_cmp);
	m->disk_refs = refs;
	m->ndisk_refs = n;
}

/*
 * What the disk cache says about addr of m: true with frames[0..*n) (n may be 0: nothing is
 * there), false when it does not say. Each record is parsed at most once.
 */
static bool disk_find(struct cp_symbolizer *sym, struct module *m, uint64_t addr,
		      struct cp_sym_frame *frames, size_t *nframes)
{
	size_t lo = 0, hi = m->ndisk_refs;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (m->disk_refs[mid].addr < addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (; lo < m->ndisk_refs && m->disk_refs[lo].addr == addr; lo++) {
		char *record = m->disk_refs[lo].record;
		uint64_t a;
		size_t n;
		bool ok = true;

		m->disk_refs[lo].record = NULL;
		if (!record || !cp_sym_cache_parse(record, &a, frames, &n) || a != addr)
			continue;
		for (size_t i = 0; i < n && ok; i++) {
			struct cp_sym_frame *f = &frames[i];
			const char *fn = f->function, *sys = f->system_name, *file = f->file;

			/* Names as stored are already demangled: interned as they are. */
			f->function = fn ? cp_sym_intern(sym, fn) : NULL;
			f->system_name = sys ? cp_sym_intern(sym, sys) : NULL;
			f->file = file ? cp_sym_intern(sym, file) : NULL;
			ok = (f->function || !fn) && (f->system_name || !sys) && (f->file || !file);
		}
		if (ok) {
			*nframes = n;
			return true;
		}
	}
	return false;
}

/*
 * Whether m has DWARF. The disk cache may say so: then the debug file is not opened, which
 * for a separate one (libc's) is most of what a module costs a short profile.
 */
static bool module_has_dwarf(struct module *m)
{
	Dwarf_Addr b;

	if (!m->dmod || m->dwarf_refused)
		return false;
	if (!m->disk_loaded)
		disk_load(m);
	if (m->disk_has_dwarf)
		return true;
	if (!dwfl_module_getdwarf(m->dmod, &b))
		return false;
	/* Only a yes is kept: debug information installed later must still count. */
	if (m->cache_id && cp_sym_cache_append_has_dwarf(&m->disk_fd, m->cache_id) == 0)
		m->disk_has_dwarf = true;
	return true;
}

/*
 * cp_sym_dwarf_lookup, nothing once m's DWARF is refused; a module whose lookups took over
 * CP_SYM_DWARF_BUDGET_NS in all is refused from then on (its symbol table only), with a note.
 */
static size_t dwarf_lookup_timed(struct cp_symbolizer *sym, struct module *m, uint64_t addr,
				 struct cp_sym_frame *frames)
{
	uint64_t t0;
	size_t n;

	if (m->dwarf_refused)
		return 0;
	t0 = cp_now_ns();
	n = cp_sym_dwarf_lookup(sym, m, addr, frames);
	m->dwarf_ns += cp_now_ns() - t0;
	if (m->dwarf_ns > CP_SYM_DWARF_BUDGET_NS) {
		m->dwarf_refused = true;
		cp_sym_note(sym, "%s: DWARF lookups took over %llu s: symbol table only from here",
			    m->path ? m->path : "a module",
			    (unsigned long long)(CP_SYM_DWARF_BUDGET_NS / 1000000000ull));
	}
	return n;
}

/* Symbolize ELF address addr of m into frames; returns the frame count. Cached. */
static size_t module_symbolize(struct cp_symbolizer *sym, struct module *m, uint64_t addr,
			       struct cp_sym_frame *frames)
{
	uint32_t h = (uint32_t)cp_hash_mix(0, addr);
	const struct addr_entry *hit = addr_lookup(m, addr, h);
	bool from_dwarf = false, from_go = false;
	size_t n = 0;

	if (hit) {
		if (hit->n)
			memcpy(frames, m->frames + hit->off, hit->n * sizeof(*frames));
		return hit->n;
	}
	if (!m->disk_loaded)
		disk_load(m);
	if (disk_find(sym, m, addr, frames, &n)) {
		addr_remember(sym, m, addr, h, frames, n);
		return n;
	}
	if (m->dmod) {
		n = dwarf_lookup_timed(sym, m, addr, frames);
		if (n == 0) {
			Dwarf_Addr b;

			/*
			 * No unit of the DWARF covers addr (assembly such as glibc's memmove, or a
			 * PLT stub): the symbol table's answer, or that there is none, is final
			 * for this build, worth keeping: finding that out read every unit of the
			 * DWARF. Without DWARF it is not: debug information may be installed later.
			 */
			from_dwarf = !m->dwarf_refused && dwfl_module_getdwarf(m->dmod, &b) != NULL;
			/* A Go build without DWARF: its own pc tables name its code, for good. */
			if (!from_dwarf)
				n = cp_sym_gopclntab_lookup(sym, m, addr, frames);
			from_go = n > 0;
			if (n == 0) {
				frames[0] = (struct cp_sym_frame){ 0 };
				if (cp_sym_symtab_lookup(sym, m, addr, &frames[0]))
					n = 1;
			}
		} else if (!frames[n - 1].function) {
			/* DWARF without a usable name: the symbol table may still have one. */
			struct cp_sym_frame s = { 0 };

			if (cp_sym_symtab_lookup(sym, m, addr, &s)) {
				frames[n - 1].function = s.function;
				frames[n - 1].system_name = s.system_name;
			} else if (n == 1 && !frames[0].file) {
				n = 0;
			}
		}
		for (size_t i = 0; i < n && !from_go; i++)
			from_dwarf = from_dwarf || frames[i].file;
	}
	/*
	 * Only what DWARF said (or, for addresses it does not cover, what it left to the symbol
	 * table) goes to disk: a symbol-table answer for a module without DWARF would hide debug
	 * information installed later (libc6-dbg). A Go build's .gopclntab answer is final (it is
	 * what the Go runtime itself prints) but says nothing of DWARF.
	 */
	if ((from_dwarf || from_go) && m->cache_id) {
		(void)cp_sym_cache_append(&m->disk_fd, m->cache_id, addr, frames, n);
		if (from_dwarf && !m->disk_has_dwarf && cp_sym_cache_append_has_dwarf(&m->disk_fd,
									 m->cache_id) == 0)
			m->disk_has_dwarf = true;
	}
	addr_remember(sym, m, addr, h, frames, n);
	return n;
}

int cp_sym_resolve(struct cp_symbolizer *sym, int pid, const struct cp_map *map, uint64_t pc,
		   struct cp_sym_result *out)
{
	struct cp_sym_result r;
	struct module *m = NULL;
	uint64_t off, bias;
	int err, why;

	if (!sym || !map || !out || !map->path)
		return -EINVAL;
	memset(&r, 0, sizeof(r));
	off = pc - map->start + map->offset;
	r.offset = off;
	/* The module name is ours, not the caller's: maps are re-read and freed often. */
	if (cp_map_is_file(map) || cp_sym_is_vdso(map)) {
		err = cp_sym_module_for_map(sym, pid, map, &m, &why, &r.module);
		if (err)
			return err;
	} else {
		const char *jit = NULL;

		r.module = cp_sym_intern(sym, map->path[0] ? map->path : "[anon]");
		if (!r.module)
			return -ENOMEM;
		/* Code generated at run time, named by its runtime as perf reads it. */
		if (map->perms[2] == 'x')
			jit = cp_sym_jit_lookup(sym, pid, pc, NULL);
		if (jit) {
			r.frames[0].function = cp_sym_intern(sym, jit);
			r.frames[0].system_name = r.frames[0].function;
			r.n = r.frames[0].function ? 1 : 0;
		}
	}
	if (m) {
		r.build_id = m->build_id;
		if (cp_sym_module_bias(sym, m, map, off, &bias) ||
		    cp_sym_module_bias(sym, m, map, map->offset, &bias))
			r.n = module_symbolize(sym, m, pc - bias, r.frames);
	}
	*out = r;
	return 0;
}

int cp_sym_module_info(struct cp_symbolizer *sym, int pid, const struct cp_map *map,
		       const char **build_id, uint64_t *bias, bool *has_debug_info)
{
	struct module *m = NULL;
	const char *path;
	uint64_t b;
	int err, why = -ENOENT;

	if (!sym || !map || !map->path)
		return -EINVAL;
	if (!cp_map_is_file(map))
		return -ENOENT;
	err = cp_sym_module_for_map(sym, pid, map, &m, &why, &path);
	if (err)
		return err;
	if (!m)
		return why ? why : -ENOEXEC;
	if (!cp_sym_module_bias(sym, m, map, map->offset, &b))
		return -ENOEXEC;
	if (build_id)
		*build_id = m->build_id;
	if (bias)
		*bias = b;
	if (has_debug_info)
		*has_debug_info = module_has_dwarf(m);
	return 0;
}

