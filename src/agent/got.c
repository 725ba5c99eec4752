/* The agent's GOT patching: every loaded module's entries for the malloc family, and back. */
#include <elf.h>
#include <errno.h>
#include <link.h>
#include <stdint.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>

#include "agent_int.h"

#define MAX_MODULES 1024
#define MAX_ENTRIES 8192
#define MAX_MODULE_SLOTS 128

/* A module seen by a patching: the identity of its load (base, program headers, name). */
struct module_seen {
	uint64_t base;
	const void *phdr;
	const char *name;
	int skipped;		/* its GOT held another malloc than ours: left alone */
};

/* A patched GOT entry: where, what it held, which hook it holds now. */
struct entry {
	uint64_t *slot;
	uint64_t orig;
	uint64_t base;		/* the module's base, to check it is still loaded at restore */
	uint32_t hook;		/* index in agent_hooks */
	uint32_t module;	/* index in modules[] */
};

static struct module_seen modules[MAX_MODULES];
static unsigned nmodules;
static struct entry entries[MAX_ENTRIES];
static unsigned nentries;
static uint64_t modules_patched, modules_skipped;
/* Modules of the last pass whose GOT was not relocated yet (still being loaded). */
static unsigned modules_not_ready;

#define MAX_WRITABLE 4

struct module_view {
	uint64_t base, lo, hi;		/* load bias, lowest and highest mapped address */
	uint64_t relro_lo, relro_hi;	/* page-rounded RELRO range, empty when none */
	uint64_t w_lo[MAX_WRITABLE], w_hi[MAX_WRITABLE];	/* writable PT_LOAD segments */
	int nw;
	const ElfW(Dyn) *dyn;
};

/* Where a dynamic-section pointer points: glibc relocates most of them, not all. */
static uint64_t dyn_ptr(const struct module_view *m, uint64_t v)
{
	return v < m->base ? v + m->base : v;
}

static void module_view(const struct dl_phdr_info *info, struct module_view *m)
{
	uint64_t page = getauxval(AT_PAGESZ) ? getauxval(AT_PAGESZ) : 4096;

	memset(m, 0, sizeof(*m));
	m->base = info->dlpi_addr;
	m->lo = UINT64_MAX;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		uint64_t a = info->dlpi_addr + ph->p_vaddr;

		if (ph->p_type == PT_LOAD) {
			if (a < m->lo)
				m->lo = a;
			if (a + ph->p_memsz > m->hi)
				m->hi = a + ph->p_memsz;
			if ((ph->p_flags & PF_W) && m->nw < MAX_WRITABLE) {
				m->w_lo[m->nw] = a;
				m->w_hi[m->nw++] = a + ph->p_memsz;
			}
		} else if (ph->p_type == PT_DYNAMIC) {
			m->dyn = (const ElfW(Dyn) *)a;
		} else if (ph->p_type == PT_GNU_RELRO) {
			m->relro_lo = a & ~(page - 1);
			m->relro_hi = (a + ph->p_memsz) & ~(page - 1);
		}
	}
}

/*
 * Store v at slot, making a RELRO page writable for the store and read-only again. 0 or
 * -errno; -EACCES for a slot in neither RELRO nor a writable segment (text relocations).
 */
static int store_slot(const struct module_view *m, uint64_t *slot, uint64_t v)
{
	uint64_t a = (uint64_t)(uintptr_t)slot, page = getauxval(AT_PAGESZ);
	int writable = 0;
	void *pg;

	if (!page)
		page = 4096;
	pg = (void *)(uintptr_t)(a & ~(page - 1));
	if (a >= m->relro_lo && a < m->relro_hi) {
		if (mprotect(pg, page, PROT_READ | PROT_WRITE) < 0)
			return -errno;
		__atomic_store_n(slot, v, __ATOMIC_RELEASE);
		mprotect(pg, page, PROT_READ);
		return 0;
	}
	for (int i = 0; i < m->nw; i++)
		if (a >= m->w_lo[i] && a + 8 <= m->w_hi[i])
			writable = 1;
	if (!writable)
		return -EACCES;
	__atomic_store_n(slot, v, __ATOMIC_RELEASE);
	return 0;
}

static int hook_index(const char *name)
{
	for (int i = 0; i < AGENT_NHOOKS; i++)
		if (!strcmp(agent_hooks[i].name, name))
			return agent_hooks[i].real ? i : -1;
	return -1;
}

struct slot_ref {
	uint64_t *slot;
	int hook;
	int jump_slot;
};

/* The module's GOT entries for hooked symbols (JUMP_SLOT and GLOB_DAT), at most max. */
static int find_slots(const struct module_view *m, struct slot_ref *out, int max)
{
	const ElfW(Sym) *symtab = NULL;
	const char *strtab = NULL;
	const ElfW(Rela) *tabs[2] = { NULL, NULL };
	uint64_t sizes[2] = { 0, 0 }, strsz = 0;
	int n = 0, pltrel_rela = 1;

	for (const ElfW(Dyn) *d = m->dyn; d && d->d_tag != DT_NULL; d++) {
		switch (d->d_tag) {
		case DT_SYMTAB:
			symtab = (const ElfW(Sym) *)dyn_ptr(m, d->d_un.d_ptr);
			break;
		case DT_STRTAB:
			strtab = (const char *)dyn_ptr(m, d->d_un.d_ptr);
			break;
		case DT_STRSZ:
			strsz = d->d_un.d_val;
			break;
		case DT_RELA:
			tabs[0] = (const ElfW(Rela) *)dyn_ptr(m, d->d_un.d_ptr);
			break;
		case DT_RELASZ:
			sizes[0] = d->d_un.d_val;
			break;
		case DT_JMPREL:
			tabs[1] = (const ElfW(Rela) *)dyn_ptr(m, d->d_un.d_ptr);
			break;
		case DT_PLTRELSZ:
			sizes[1] = d->d_un.d_val;
			break;
		case DT_PLTREL:
			pltrel_rela = d->d_un.d_val == DT_RELA;
			break;
		}
	}
	if (!symtab || !strtab || !pltrel_rela)
		return 0;
	for (int t = 0; t < 2; t++) {
		for (uint64_t i = 0; tabs[t] && i < sizes[t] / sizeof(ElfW(Rela)); i++) {
			const ElfW(Rela) *r = &tabs[t][i];
			uint32_t type = ELF64_R_TYPE(r->r_info), sym = ELF64_R_SYM(r->r_info);
			int h;

			if ((type != R_X86_64_JUMP_SLOT && type != R_X86_64_GLOB_DAT) || !sym)
				continue;
			if (symtab[sym].st_name >= strsz)
				continue;
			h = hook_index(strtab + symtab[sym].st_name);
			if (h < 0 || n == max)
				continue;
			out[n].slot = (uint64_t *)(m->base + r->r_offset);
			out[n].hook = h;
			out[n].jump_slot = type == R_X86_64_JUMP_SLOT;
			n++;
		}
	}
	return n;
}

/* The agent itself and the dynamic loader are never patched (nor the vDSO: nothing to patch). */
static int module_excluded(const struct dl_phdr_info *info, const struct module_view *m)
{
	uint64_t self = (uint64_t)(uintptr_t)&agent_got_patch_all;

	if (self >= m->lo && self < m->hi)
		return 1;
	if (info->dlpi_addr && info->dlpi_addr == getauxval(AT_BASE))
		return 1;
	return info->dlpi_name && !strncmp(info->dlpi_name, "linux-vdso", 10);
}

static int module_known(const struct dl_phdr_info *info)
{
	for (unsigned i = 0; i < nmodules; i++)
		if (modules[i].base == info->dlpi_addr && modules[i].phdr == info->dlpi_phdr &&
		    modules[i].name == info->dlpi_name)
			return 1;
	return 0;
}

static int patch_module(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct slot_ref refs[MAX_MODULE_SLOTS];
	struct module_view m;
	struct module_seen *seen;
	int n, patched = 0;

	(void)size;
	(void)arg;
	if (module_known(info) || nmodules == MAX_MODULES)
		return 0;
	module_view(info, &m);
	if (!m.dyn || module_excluded(info, &m))
		return 0;
	seen = &modules[nmodules];
	seen->base = info->dlpi_addr;
	seen->phdr = info->dlpi_phdr;
	seen->name = info->dlpi_name;
	seen->skipped = 0;
	n = find_slots(&m, refs, MAX_MODULE_SLOTS);
	/* A GOT bound to another allocator than the global one (RTLD_DEEPBIND, ...): hands off. */
	for (int i = 0; i < n; i++) {
		uint64_t v = __atomic_load_n(refs[i].slot, __ATOMIC_ACQUIRE);
		const struct agent_hook *h = &agent_hooks[refs[i].hook];
		int lazy = refs[i].jump_slot && v >= m.lo && v < m.hi;

		if (v != (uint64_t)(uintptr_t)h->real && v != (uint64_t)(uintptr_t)h->canonical &&
		    !lazy) {
			/*
			 * Not relocated yet (0, or a link-time address: within the module's
			 * extent counted from 0): the loader is still at it (a pass run from an
			 * allocation inside dlopen). Left unrecorded, for a later pass.
			 */
			if (v == 0 || (m.base && v < m.hi - m.base)) {
				modules_not_ready++;
				return 0;
			}
			seen->skipped = 1;
			modules_skipped++;
			nmodules++;
			return 0;
		}
	}
	for (int i = 0; i < n && nentries < MAX_ENTRIES; i++) {
		struct entry *e = &entries[nentries];

		e->slot = refs[i].slot;
		e->orig = __atomic_load_n(refs[i].slot, __ATOMIC_ACQUIRE);
		e->base = m.base;
		e->hook = refs[i].hook;
		e->module = nmodules;
		if (store_slot(&m, e->slot, (uint64_t)(uintptr_t)agent_hooks[e->hook].hook) < 0)
			continue;
		nentries++;
		patched++;
	}
	if (patched)
		modules_patched++;
	nmodules++;
	return 0;
}

int agent_got_patch_all(void)
{
	modules_not_ready = 0;
	dl_iterate_phdr(patch_module, NULL);
	return (int)modules_not_ready;
}

/* Restore the entries of one loaded module (the loader lock held: it cannot go away). */
static int restore_module(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct module_view m;
	int found = 0;

	(void)size;
	(void)arg;
	for (unsigned i = 0; i < nmodules; i++)
		if (modules[i].base == info->dlpi_addr && modules[i].phdr == info->dlpi_phdr &&
		    modules[i].name == info->dlpi_name)
			found = 1;
	if (!found)
		return 0;
	module_view(info, &m);
	for (unsigned i = 0; i < nentries; i++) {
		struct entry *e = &entries[i];
		const struct module_seen *ms = &modules[e->module];

		if (ms->base != info->dlpi_addr || ms->phdr != info->dlpi_phdr ||
		    ms->name != info->dlpi_name)
			continue;
		if (__atomic_load_n(e->slot, __ATOMIC_ACQUIRE) ==
		    (uint64_t)(uintptr_t)agent_hooks[e->hook].hook)
			store_slot(&m, e->slot, e->orig);
	}
	return 0;
}

void agent_got_restore_all(void)
{
	dl_iterate_phdr(restore_module, NULL);
	nentries = 0;
	nmodules = 0;
	modules_patched = 0;
	modules_skipped = 0;
}

void agent_got_counts(uint64_t *n, uint64_t *patched, uint64_t *skipped)
{
	*n = nentries;
	*patched = modules_patched;
	*skipped = modules_skipped;
}
