/* Small helpers shared by every layer: bounded file reads, a growable string, hash tables, time. */
#ifndef CP_UTIL_H
#define CP_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CP_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/*
 * Read at most size - 1 bytes of the file at path into buf and NUL-terminate it.
 * *len (may be NULL) receives the byte count. Returns 0 or -errno.
 * Files larger than the buffer are truncated silently; callers size buffers for /proc files.
 */
int cp_read_file(const char *path, char *buf, size_t size, size_t *len);

/*
 * Read a whole file of unknown size (e.g. /proc/PID/maps) into a malloc'd, NUL-terminated
 * buffer, at most max bytes. Returns 0 and sets *out (caller frees) and *len, or -errno
 * (-EFBIG when the file is longer than max).
 */
int cp_read_file_alloc(const char *path, size_t max, char **out, size_t *len);

/*
 * Grow *v (an array of elements of size elem, *alloc of them) by doubling so that it holds
 * at least need. 0 or -ENOMEM, *v untouched then.
 */
int cp_grow(void **v, size_t *alloc, size_t need, size_t elem);

/*
 * A growable string. Invariant: buf is NULL or NUL-terminated at len. On allocation failure
 * err becomes -ENOMEM, later appends are ignored, and the caller checks err once at the end.
 */
struct cp_strbuf {
	char *buf;
	size_t len;
	size_t alloc;
	int err;
};

#define CP_STRBUF_INIT { NULL, 0, 0, 0 }

void cp_strbuf_init(struct cp_strbuf *sb);
void cp_strbuf_release(struct cp_strbuf *sb);
void cp_strbuf_add(struct cp_strbuf *sb, const void *data, size_t len);
void cp_strbuf_adds(struct cp_strbuf *sb, const char *s);
void cp_strbuf_addc(struct cp_strbuf *sb, char c);
void cp_strbuf_addf(struct cp_strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cp_strbuf_vaddf(struct cp_strbuf *sb, const char *fmt, va_list ap);
/* Append v in decimal, and in hexadecimal after "0x": the hot paths of the dump writers. */
void cp_strbuf_add_int(struct cp_strbuf *sb, long long v);
void cp_strbuf_add_hex(struct cp_strbuf *sb, uint64_t v);
/* Append s as a JSON string literal (with quotes); NULL appends null. */
void cp_strbuf_add_json_str(struct cp_strbuf *sb, const char *s);
/* Hand the buffer to the caller (never NULL on success: "" when empty); sb is reset. */
char *cp_strbuf_detach(struct cp_strbuf *sb);
/*
 * Write sb's text to f and empty it, keeping the buffer. Writers flush whenever len reaches
 * CP_STRBUF_FLUSH_AT: one small buffer reused, not the whole output in memory (a fresh page
 * is dear to touch in a virtual machine). 0 or -errno (sb's -ENOMEM, or -EIO).
 */
#define CP_STRBUF_FLUSH_AT (16u << 10)
int cp_strbuf_flush(struct cp_strbuf *sb, FILE *f);

/*
 * An open-addressing hash table of indexes into an array kept elsewhere. Each slot keeps the
 * 32-bit hash of its entry, so the table grows without asking its owner to rehash.
 */
struct cp_hslot {
	uint32_t idx1;		/* index + 1; 0 = empty */
	uint32_t hash;
};

struct cp_htab {
	struct cp_hslot *slot;
	size_t cap;		/* power of two, or 0 */
	size_t n;
};

/* The index of the entry equal to key (eq says so), or -1. */
int64_t cp_htab_find(const struct cp_htab *h, uint32_t hash,
		     bool (*eq)(const void *ctx, uint32_t idx, const void *key), const void *ctx,
		     const void *key);
/* Insert idx (not yet present) under hash. 0 or -ENOMEM. */
int cp_htab_insert(struct cp_htab *h, uint32_t hash, uint32_t idx);
/* Entries a and b traded places in the array the table indexes. */
void cp_htab_swap(struct cp_htab *h, uint32_t a, uint32_t b);
void cp_htab_release(struct cp_htab *h);

/*
 * An open-addressing table of 32-bit indexes (index + 1; 0 = empty) into an array kept
 * elsewhere, 4 bytes a slot: the hash is recomputed from the entry when the table grows. For
 * tables that grow with their entries (the profile's distinct stacks and samples), where
 * cp_htab's 8-byte slots at half load would cost as much as the entries.
 */
struct cp_itab {
	uint32_t *slot;
	size_t cap;		/* power of two, or 0 */
	size_t n;
};

/* The index of the entry equal to key (eq says so), or -1. */
int64_t cp_itab_find(const struct cp_itab *t, uint32_t hash,
		     bool (*eq)(const void *ctx, uint32_t idx, const void *key), const void *ctx,
		     const void *key);
/* Insert idx (not yet present) under hash; hash_of gives the hash of any entry. 0 or -ENOMEM. */
int cp_itab_insert(struct cp_itab *t, uint32_t hash, uint32_t idx,
		   uint32_t (*hash_of)(const void *ctx, uint32_t idx), const void *ctx);
void cp_itab_release(struct cp_itab *t);

uint32_t cp_hash_bytes(const void *data, size_t len, uint64_t seed);
uint64_t cp_hash_mix(uint64_t h, uint64_t v);

/* Monotonic and wall clocks in nanoseconds. */
uint64_t cp_now_ns(void);
uint64_t cp_wall_ns(void);

/* Parse a decimal integer that must fill the whole string; returns 0 or -EINVAL / -ERANGE. */
int cp_parse_long(const char *s, long min, long max, long *out);

/* Write the whole buffer to fd, retrying on EINTR and short writes. 0 or -errno. */
int cp_write_all(int fd, const void *buf, size_t len);

/* strdup that returns NULL for NULL. */
char *cp_strdup_or_null(const char *s);

/* Populate about `bytes` of heap now, in one system call, for the mallocs to come. */
void cp_heap_prefault(size_t bytes);

/* a + b, held at INT64_MAX or INT64_MIN when it would overflow (then *sat is set). */
static inline int64_t cp_add_sat(int64_t a, int64_t b, bool *sat)
{
	int64_t r;

	if (!__builtin_add_overflow(a, b, &r))
		return r;
	*sat = true;
	return b > 0 ? INT64_MAX : INT64_MIN;
}

#endif
