/*
 * An on-disk cache of separate debug files whose DWARF sections are compressed (Debian's
 * libc6-dbg, most -gz builds): libdw inflates every compressed section each time a process
 * opens the file, which dominates a short dump. The cache keeps one decompressed copy per
 * build ID, which later processes map without any work.
 */
#ifndef CP_DEBUG_CACHE_H
#define CP_DEBUG_CACHE_H

#include <stddef.h>

/*
 * Path of the cached copy for build_id (hex) in buf: 0, or -ENOENT when caching is off,
 * -ENAMETOOLONG.
 */
int cp_debug_cache_path(const char *build_id, char *buf, size_t size);

/*
 * If the ELF file open as fd has compressed .debug_* sections worth caching, write a copy with
 * them decompressed to the cache under build_id (atomic_file.h: never seen half written).
 * 0 when the copy is in place (at cp_debug_cache_path()), -ENOENT when there is nothing worth
 * caching or caching is off, other -errno on failure. fd is borrowed. The caller still checks
 * that the copy is the file it wants (build ID), as for any debug file.
 */
int cp_debug_cache_store(int fd, const char *build_id);

#endif
