/* The kernel's text symbols behind three calls: load, map an address to a name, free. */
#ifndef CP_KSYMS_H
#define CP_KSYMS_H

#include <stdint.h>

struct cp_ksyms;

/*
 * Load the kernel's text symbols: the cached table for this boot and these modules
 * (ksym_cache.h) when there is one, else /proc/kallsyms, stored in the cache for the next
 * sessions. 0 and *out (empty when the kernel shows no addresses), or -errno (*out NULL).
 */
int cp_ksyms_load(struct cp_ksyms **out);

/*
 * Load from a file in /proc/kallsyms's format, without the cache. 0 and *out, or -errno. The
 * table keeps what was read before an allocation failure.
 */
int cp_ksyms_load_file(const char *path, struct cp_ksyms **out);

/*
 * The name of the symbol at or below addr, owned by ks (lives until cp_ksyms_free), or NULL
 * when none is (or ks is NULL).
 */
const char *cp_ksyms_map_addr(const struct cp_ksyms *ks, uint64_t addr);

/* Free ks; NULL is a no-op. */
void cp_ksyms_free(struct cp_ksyms *ks);

#endif
