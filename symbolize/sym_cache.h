/*
 * An on-disk cache of symbolization results per build ID: what DWARF said about each address
 * of a module (function, file, line, inlined frames), so that a later cprof process that meets
 * the same addresses of the same build never loads that module's DWARF at all. One text file
 * per build ID, a line per address, appended as results are found; a line that does not
 * parse (a torn write, a damaged file) is skipped, never trusted.
 */
#ifndef CP_SYM_CACHE_H
#define CP_SYM_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "symbolize.h"

/* Reading: the file for build_id, whole (malloc'd, NUL-terminated). -ENOENT when none. */
int cp_sym_cache_read(const char *build_id, char **text, size_t *len);

/*
 * Parse the line at *cursor (advanced past it) into addr and frames[0..*n); the strings
 * point into the text, which the call modifies. 1 for a record, 0 for a line to skip, -1 at
 * the end of the text.
 */
int cp_sym_cache_next(char **cursor, uint64_t *addr, struct cp_sym_frame *frames, size_t *n);

/*
 * Append the record of addr to build_id's file, opening it into *fd the first time (*fd
 * starts at -1; the caller closes it). Records whose strings could not be read back
 * (control characters, over-long) are not written. 0 or -errno; failure only costs the cache.
 */
int cp_sym_cache_append(int *fd, const char *build_id, uint64_t addr,
			const struct cp_sym_frame *frames, size_t n);

#endif
