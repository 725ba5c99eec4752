/*
 * An on-disk cache of symbolization results per build ID: what DWARF said about each address
 * of a module (function, file, line, inlined frames), so that a later cprof process that meets
 * the same addresses of the same build never loads that module's DWARF at all. One text file
 * per build ID, a line per address, appended as results are found, plus facts about the build
 * (it has DWARF) that spare a later process opening the debug file; a line that does not
 * parse (a torn write, a damaged file) is skipped, never trusted.
 */
#ifndef CP_SYM_CACHE_H
#define CP_SYM_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "symbolize.h"

/* Reading: the file for build_id, whole (malloc'd, NUL-terminated). -ENOENT when none. */
int cp_sym_cache_read(const char *build_id, char **text, size_t *len);

/* What a line of the file is, as cp_sym_cache_scan() and cp_sym_cache_next() say. */
enum cp_sym_cache_kind {
	CP_SYM_CACHE_END = -1,		/* no line left */
	CP_SYM_CACHE_SKIP = 0,		/* a line that does not parse: ignore it */
	CP_SYM_CACHE_ADDR = 1,		/* what DWARF said about an address (n == 0: nothing) */
	CP_SYM_CACHE_HAS_DWARF = 2,	/* the build has DWARF (a debug file was found) */
};

/*
 * Split off the line at *cursor (advanced past it; the text is modified) and read only its
 * kind and, for CP_SYM_CACHE_ADDR, its address; *record is the line, for
 * cp_sym_cache_parse() when the address is needed. Cheap: a reader can index a whole file
 * and parse the few records it meets.
 */
int cp_sym_cache_scan(char **cursor, uint64_t *addr, char **record);

/*
 * Parse a CP_SYM_CACHE_ADDR line from cp_sym_cache_scan() into addr and frames[0..*n); the
 * strings point into the line, which the call modifies (parse a line once). 1, or 0 when it
 * does not parse.
 */
int cp_sym_cache_parse(char *record, uint64_t *addr, struct cp_sym_frame *frames, size_t *n);

/* cp_sym_cache_scan() and, for an address, cp_sym_cache_parse() in one. */
int cp_sym_cache_next(char **cursor, uint64_t *addr, struct cp_sym_frame *frames, size_t *n);

/*
 * Append the record of addr to build_id's file, opening it into *fd the first time (*fd
 * starts at -1; the caller closes it). n == 0 records that DWARF (and the symbol table) know
 * nothing at addr, final for this build. Records whose strings could not be read back
 * (control characters, over-long) are not written. 0 or -errno; failure only costs the cache.
 */
int cp_sym_cache_append(int *fd, const char *build_id, uint64_t addr,
			const struct cp_sym_frame *frames, size_t n);

/* Append that build_id has DWARF (CP_SYM_CACHE_HAS_DWARF), as cp_sym_cache_append(). */
int cp_sym_cache_append_has_dwarf(int *fd, const char *build_id);

#endif
