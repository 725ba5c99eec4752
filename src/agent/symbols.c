/* The agent's symbol lookup: where a function is defined, not where its canonical address is. */
#include <elf.h>
#include <link.h>
#include <stdint.h>
#include <string.h>
#include <sys/auxv.h>

#include "agent_int.h"

struct lookup {
	const char *name;
	uint64_t addr;		/* the first definition in load order, 0 while none */
};

static uint32_t gnu_hash(const char *s)
{
	uint32_t h = 5381;

	for (; *s; s++)
		h = h * 33 + (uint8_t)*s;
	return h;
}

static uint32_t sysv_hash(const char *s)
{
	uint32_t h = 0, g;

	for (; *s; s++) {
		h = (h << 4) + (uint8_t)*s;
		g = h & 0xf0000000;
		if (g)
			h ^= g >> 24;
		h &= ~g;
	}
	return h;
}

static int defined(const ElfW(Sym) *sym)
{
	int type = ELF64_ST_TYPE(sym->st_info);

	return sym->st_shndx != SHN_UNDEF && sym->st_value && (type == STT_FUNC) &&
	       ELF64_ST_BIND(sym->st_info) != STB_LOCAL;
}

/* name's defined symbol in a module's dynamic symbol table, through its hash table. */
static const ElfW(Sym) *find_in(const ElfW(Sym) *symtab, const char *strtab,
				const uint32_t *gnu, const uint32_t *sysv, const char *name)
{
	if (gnu) {
		uint32_t nbuckets = gnu[0], symoffset = gnu[1], bloom_size = gnu[2];
		const uint32_t *buckets = gnu + 4 + bloom_size * (sizeof(ElfW(Addr)) / 4);
		const uint32_t *chain = buckets + nbuckets;
		uint32_t h = gnu_hash(name), i;

		if (!nbuckets)
			return NULL;
		i = buckets[h % nbuckets];
		if (i < symoffset)
			return NULL;
		for (;; i++) {
			uint32_t h2 = chain[i - symoffset];

			if ((h | 1) == (h2 | 1) && !strcmp(strtab + symtab[i].st_name, name) &&
			    defined(&symtab[i]))
				return &symtab[i];
			if (h2 & 1)
				return NULL;
		}
	}
	if (sysv) {
		uint32_t nbucket = sysv[0];
		const uint32_t *bucket = sysv + 2, *chain = bucket + nbucket;

		if (!nbucket)
			return NULL;
		for (uint32_t i = bucket[sysv_hash(name) % nbucket]; i; i = chain[i])
			if (!strcmp(strtab + symtab[i].st_name, name) && defined(&symtab[i]))
				return &symtab[i];
	}
	return NULL;
}

static int lookup_module(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct lookup *l = arg;
	const ElfW(Dyn) *dyn = NULL;
	const ElfW(Sym) *symtab = NULL, *sym;
	const uint32_t *gnu = NULL, *sysv = NULL;
	const char *strtab = NULL;
	uint64_t base = info->dlpi_addr, self = (uint64_t)(uintptr_t)&lookup_module;
	int mine = 0;

	(void)size;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];

		if (ph->p_type == PT_DYNAMIC)
			dyn = (const ElfW(Dyn) *)(base + ph->p_vaddr);
		if (ph->p_type == PT_LOAD && self >= base + ph->p_vaddr &&
		    self < base + ph->p_vaddr + ph->p_memsz)
			mine = 1;
	}
	if (!dyn || mine || (base && base == getauxval(AT_BASE)) ||
	    (info->dlpi_name && !strncmp(info->dlpi_name, "linux-vdso", 10)))
		return 0;
	for (; dyn->d_tag != DT_NULL; dyn++) {
		uint64_t v = dyn->d_un.d_ptr < base ? dyn->d_un.d_ptr + base : dyn->d_un.d_ptr;

		if (dyn->d_tag == DT_SYMTAB)
			symtab = (const ElfW(Sym) *)v;
		else if (dyn->d_tag == DT_STRTAB)
			strtab = (const char *)v;
		else if (dyn->d_tag == DT_GNU_HASH)
			gnu = (const uint32_t *)v;
		else if (dyn->d_tag == DT_HASH)
			sysv = (const uint32_t *)v;
	}
	if (!symtab || !strtab)
		return 0;
	sym = find_in(symtab, strtab, gnu, sysv, l->name);
	if (!sym)
		return 0;
	l->addr = base + sym->st_value;
	return 1;
}

uint64_t agent_symbol_definition(const char *name)
{
	struct lookup l = { .name = name, .addr = 0 };

	dl_iterate_phdr(lookup_module, &l);
	return l.addr;
}
