/*
 * The kernel's text symbols kept on disk for the boot they belong to: reading /proc/kallsyms
 * means the kernel formats every line anew, the largest fixed cost of a profile that meets a
 * kernel frame. The table parsed once is written to the cache directory
 * under the boot ID, with a hash of /proc/modules, and read back by later sessions of the same
 * boot while no module was loaded or unloaded (KASLR and modules move addresses otherwise).
 */
#ifndef CP_KSYM_CACHE_H
#define CP_KSYM_CACHE_H

#include <stddef.h>
#include <stdint.h>

struct cp_ksym {
	uint64_t addr;
	uint32_t name_off;	/* into the names block */
	uint32_t reserved;	/* 0: the record is written to disk as it is */
};

/* A cached table mapped from its file, read-only. */
struct cp_ksym_map {
	const struct cp_ksym *syms;	/* sorted by address */
	size_t n;
	const char *names;		/* NUL-terminated names; the block ends with a NUL */
	size_t names_len;
	void *base;			/* the mapping */
	size_t len;
};

/*
 * Map the cached table for this boot and these modules. 0, or -ENOENT when there is none
 * that matches (or caching is off), -EINVAL when the file is damaged. The table is used in
 * place, never copied (a fresh page is dear): a reader checks each name_off it follows
 * against names_len.
 */
int cp_ksym_cache_map(struct cp_ksym_map *m);
void cp_ksym_cache_unmap(struct cp_ksym_map *m);

/* Store a table for this boot (atomically: a temporary file renamed). 0 or -errno. */
int cp_ksym_cache_write(const struct cp_ksym *syms, size_t n, const char *names,
			size_t names_len);

#endif
