/* One string interner: each distinct string stored once, named by its index. */
#ifndef CP_STRTAB_H
#define CP_STRTAB_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

/* With CP_STRTAB_UTF8, strings are cut to at most this many bytes (on a character boundary). */
#define CP_STRTAB_UTF8_MAX (64u << 10)
/* Entries a table holds at most: indexes are 32-bit. */
#define CP_STRTAB_MAX_ENTRIES (UINT32_MAX / 2)

enum cp_strtab_flags {
	/*
	 * Strings are made valid UTF-8 (a bad byte becomes U+FFFD) and cut to
	 * CP_STRTAB_UTF8_MAX bytes, as protobuf requires of strings: thread names and symbols
	 * can hold any bytes. Without it strings are kept byte for byte.
	 */
	CP_STRTAB_UTF8 = 1u << 0,
};

/*
 * A string table. v[0] is always "" and no string appears twice (pprof's rules). Each entry
 * is its own allocation, so v[i] stays valid, at the same address, until the table is
 * released: callers may keep the pointers that cp_strtab_str() returns.
 */
struct cp_strtab {
	char **v;
	size_t n;
	size_t alloc;
	struct cp_htab h;
	unsigned flags;		/* enum cp_strtab_flags */
};

/* An empty table (holding ""), flags from enum cp_strtab_flags. 0 or -ENOMEM. */
int cp_strtab_init(struct cp_strtab *t, unsigned flags);
void cp_strtab_release(struct cp_strtab *t);
/* Index of s (added when new); NULL is "". >= 0 or -errno (-ENOMEM, -E2BIG). */
int64_t cp_strtab_intern(struct cp_strtab *t, const char *s);
/* The table's copy of s, which lives as long as the table; NULL is "". NULL on failure. */
const char *cp_strtab_str(struct cp_strtab *t, const char *s);
/* Index of s or -1. */
int64_t cp_strtab_lookup(const struct cp_strtab *t, const char *s);

/* Length of the valid UTF-8 sequence at s (1..4), or 0 (bad byte, overlong, surrogate). */
size_t cp_utf8_len(const unsigned char *s);

#endif
