/* Small helpers shared by every layer: bounded file reads, a growable string, hash tables, time. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

static int read_retry(int fd, char *buf, size_t len, size_t *got)
{
	size_t off = 0;

	while (off < len) {
		ssize_t r = read(fd, buf + off, len - off);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			break;
		off += (size_t)r;
	}
	*got = off;
	return 0;
}

int cp_read_file(const char *path, char *buf, size_t size, size_t *len)
{
	size_t got = 0;
	int fd, ret;

	if (!buf || size == 0)
		return -EINVAL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ret = read_retry(fd, buf, size - 1, &got);
	close(fd);
	if (ret < 0)
		return ret;
	buf[got] = '\0';
	if (len)
		*len = got;
	return 0;
}

int cp_read_file_alloc(const char *path, size_t max, char **out, size_t *len)
{
	size_t alloc = 4096, off = 0;
	char *buf, *nb;
	int fd, ret = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	buf = malloc(alloc);
	if (!buf) {
		ret = -ENOMEM;
		goto out_close;
	}
	for (;;) {
		ssize_t r;

		if (off + 1 >= alloc) {
			/* /proc files report st_size 0, so grow as we go; off <= max bounds it. */
			alloc *= 2;
			nb = realloc(buf, alloc);
			if (!nb) {
				ret = -ENOMEM;
				goto out_free;
			}
			buf = nb;
		}
		r = read(fd, buf + off, alloc - 1 - off);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			goto out_free;
		}
		if (r == 0)
			break;
		off += (size_t)r;
		if (off > max) {
			ret = -EFBIG;
			goto out_free;
		}
	}
	buf[off] = '\0';
	*out = buf;
	if (len)
		*len = off;
	close(fd);
	return 0;

out_free:
	free(buf);
out_close:
	close(fd);
	return ret;
}

void cp_strbuf_init(struct cp_strbuf *sb)
{
	sb->buf = NULL;
	sb->len = 0;
	sb->alloc = 0;
	sb->err = 0;
}

void cp_strbuf_release(struct cp_strbuf *sb)
{
	if (!sb)
		return;
	free(sb->buf);
	cp_strbuf_init(sb);
}

/* Digits are written from the end of a small array: printf's machinery costs more than this. */
void cp_strbuf_add_int(struct cp_strbuf *sb, long long v)
{
	char d[24];
	size_t i = sizeof(d);
	/* Through unsigned: -LLONG_MIN overflows. */
	unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;

	do {
		d[--i] = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (v < 0)
		d[--i] = '-';
	cp_strbuf_add(sb, d + i, sizeof(d) - i);
}

void cp_strbuf_add_hex(struct cp_strbuf *sb, uint64_t v)
{
	char d[18];
	size_t i = sizeof(d);

	do {
		d[--i] = "0123456789abcdef"[v & 0xf];
		v >>= 4;
	} while (v);
	d[--i] = 'x';
	d[--i] = '0';
	cp_strbuf_add(sb, d + i, sizeof(d) - i);
}

int cp_strbuf_flush(struct cp_strbuf *sb, FILE *f)
{
	if (sb->err)
		return sb->err;
	if (sb->len && fwrite(sb->buf, 1, sb->len, f) != sb->len)
		return -EIO;
	sb->len = 0;
	if (sb->buf)
		sb->buf[0] = '\0';
	return 0;
}

/* Make room for extra more bytes plus the NUL; false (and err set) when that fails. */
static bool strbuf_grow(struct cp_strbuf *sb, size_t extra)
{
	size_t need, alloc;
	char *nb;

	if (sb->err)
		return false;
	if (extra > SIZE_MAX - sb->len - 1) {
		sb->err = -ENOMEM;
		return false;
	}
	need = sb->len + extra + 1;
	if (need <= sb->alloc)
		return true;
	alloc = sb->alloc ? sb->alloc : 64;
	while (alloc < need) {
		if (alloc > SIZE_MAX / 2) {
			alloc = need;
			break;
		}
		alloc *= 2;
	}
	nb = realloc(sb->buf, alloc);
	if (!nb) {
		sb->err = -ENOMEM;
		return false;
	}
	sb->buf = nb;
	sb->alloc = alloc;
	return true;
}

int cp_grow(void **v, size_t *alloc, size_t need, size_t elem)
{
	size_t n = *alloc ? *alloc : 16;
	void *nv;

	if (need <= *alloc)
		return 0;
	while (n < need) {
		if (n > SIZE_MAX / 2 / elem)
			return -ENOMEM;
		n *= 2;
	}
	nv = realloc(*v, n * elem);
	if (!nv)
		return -ENOMEM;
	*v = nv;
	*alloc = n;
	return 0;
}

void cp_strbuf_add(struct cp_strbuf *sb, const void *data, size_t len)
{
	if (!strbuf_grow(sb, len))
		return;
	if (len)
		memcpy(sb->buf + sb->len, data, len);
	sb->len += len;
	sb->buf[sb->len] = '\0';
}

void cp_strbuf_adds(struct cp_strbuf *sb, const char *s)
{
	cp_strbuf_add(sb, s, strlen(s));
}

void cp_strbuf_addc(struct cp_strbuf *sb, char c)
{
	if (sb->len + 1 < sb->alloc && !sb->err) {
		sb->buf[sb->len++] = c;
		sb->buf[sb->len] = '\0';
		return;
	}
	cp_strbuf_add(sb, &c, 1);
}

void cp_strbuf_vaddf(struct cp_strbuf *sb, const char *fmt, va_list ap)
{
	size_t room;
	va_list cp;
	int n;

	/* Formatted once into the room there is; a second time only when it did not fit. */
	if (!strbuf_grow(sb, 64))
		return;
	room = sb->alloc - sb->len;
	va_copy(cp, ap);
	n = vsnprintf(sb->buf + sb->len, room, fmt, cp);
	va_end(cp);
	if (n < 0) {
		sb->buf[sb->len] = '\0';
		sb->err = -EINVAL;
		return;
	}
	if ((size_t)n >= room) {
		if (!strbuf_grow(sb, (size_t)n)) {
			sb->buf[sb->len] = '\0';
			return;
		}
		vsnprintf(sb->buf + sb->len, (size_t)n + 1, fmt, ap);
	}
	sb->len += (size_t)n;
}

void cp_strbuf_addf(struct cp_strbuf *sb, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	cp_strbuf_vaddf(sb, fmt, ap);
	va_end(ap);
}

/*
 * Length of the well-formed UTF-8 sequence at s (1..4), or 0 when the bytes there are not
 * one (overlong forms, surrogates, beyond U+10FFFF, truncated). Thread names and paths
 * come from other processes and may hold any bytes; JSON must stay valid UTF-8.
 */
static size_t utf8_seq_len(const unsigned char *s)
{
	unsigned char c = s[0];

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		return (s[1] & 0xc0) == 0x80 ? 2 : 0;
	if (c >= 0xe0 && c <= 0xef) {
		unsigned char lo = 0x80, hi = 0xbf;

		if (c == 0xe0)
			lo = 0xa0;	/* overlong */
		if (c == 0xed)
			hi = 0x9f;	/* surrogates */
		if (s[1] < lo || s[1] > hi)
			return 0;
		return (s[2] & 0xc0) == 0x80 ? 3 : 0;
	}
	if (c >= 0xf0 && c <= 0xf4) {
		unsigned char lo = 0x80, hi = 0xbf;

		if (c == 0xf0)
			lo = 0x90;	/* overlong */
		if (c == 0xf4)
			hi = 0x8f;	/* > U+10FFFF */
		if (s[1] < lo || s[1] > hi)
			return 0;
		if ((s[2] & 0xc0) != 0x80 || (s[3] & 0xc0) != 0x80)
			return 0;
		return 4;
	}
	return 0;
}

void cp_strbuf_add_json_str(struct cp_strbuf *sb, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	if (!s) {
		cp_strbuf_adds(sb, "null");
		return;
	}
	cp_strbuf_addc(sb, '"');
	while (*p) {
		unsigned char c = *p;
		size_t n;

		/* Printable ASCII needs no escape: a run of it goes in at once. */
		for (n = 0; p[n] >= 0x20 && p[n] < 0x7f && p[n] != '"' && p[n] != '\\'; n++)
			;
		if (n) {
			cp_strbuf_add(sb, p, n);
			p += n;
			continue;
		}
		switch (c) {
		case '"':
			cp_strbuf_adds(sb, "\\\"");
			p++;
			continue;
		case '\\':
			cp_strbuf_adds(sb, "\\\\");
			p++;
			continue;
		case '\n':
			cp_strbuf_adds(sb, "\\n");
			p++;
			continue;
		case '\r':
			cp_strbuf_adds(sb, "\\r");
			p++;
			continue;
		case '\t':
			cp_strbuf_adds(sb, "\\t");
			p++;
			continue;
		case '\b':
			cp_strbuf_adds(sb, "\\b");
			p++;
			continue;
		case '\f':
			cp_strbuf_adds(sb, "\\f");
			p++;
			continue;
		default:
			break;
		}
		if (c < 0x20 || c == 0x7f) {
			cp_strbuf_addf(sb, "\\u%04x", c);
			p++;
			continue;
		}
		/* utf8_seq_len never reads past a NUL: every continuation check fails on it. */
		n = utf8_seq_len(p);
		if (n == 0) {
			/* Not UTF-8: one replacement character per bad byte, as decoders do. */
			cp_strbuf_adds(sb, "\\ufffd");
			p++;
			continue;
		}
		cp_strbuf_add(sb, p, n);
		p += n;
	}
	cp_strbuf_addc(sb, '"');
}

char *cp_strbuf_detach(struct cp_strbuf *sb)
{
	char *r;

	if (sb->err) {
		cp_strbuf_release(sb);
		return NULL;
	}
	if (!sb->buf) {
		r = strdup("");
		cp_strbuf_init(sb);
		return r;
	}
	r = sb->buf;
	cp_strbuf_init(sb);
	return r;
}

static uint64_t clock_ns(clockid_t id)
{
	struct timespec ts;

	if (clock_gettime(id, &ts) != 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t cp_now_ns(void)
{
	return clock_ns(CLOCK_MONOTONIC);
}

uint64_t cp_wall_ns(void)
{
	return clock_ns(CLOCK_REALTIME);
}

int cp_parse_long(const char *s, long min, long max, long *out)
{
	char *end;
	long v;

	/* strtol accepts leading blanks and an empty string as 0; we accept neither. */
	if (!s || !*s || (*s != '-' && *s != '+' && (*s < '0' || *s > '9')))
		return -EINVAL;
	if ((*s == '-' || *s == '+') && (s[1] < '0' || s[1] > '9'))
		return -EINVAL;
	errno = 0;
	v = strtol(s, &end, 10);
	if (*end != '\0')
		return -EINVAL;
	if (errno == ERANGE || v < min || v > max)
		return -ERANGE;
	*out = v;
	return 0;
}

int cp_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t w = write(fd, p, len);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (w == 0)
			return -EIO;
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

char *cp_strdup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23	/* Linux 5.14 */
#endif

/*
 * A first touch of a heap page is a page fault, dear in some virtual machines, and far dearer
 * one page at a time than the kernel filling the range in one madvise(MADV_POPULATE_WRITE)
 * (docs/PERFORMANCE.md has the figures). So a short-lived command that knows roughly how much
 * heap it will use asks for it up front: one malloc from the brk heap, populated, then freed
 * back into the heap, which keeps it (no trim) and serves every later malloc, big buffers
 * included, from it. Best effort: on older kernels the
 * madvise fails and the pages fault in as before. Skipped under AddressSanitizer, whose
 * allocator is not glibc's.
 */
void cp_heap_prefault(size_t bytes)
{
#if defined(__SANITIZE_ADDRESS__)
	(void)bytes;
#else
	const uintptr_t page = 4096;
	uintptr_t a, b;
	void *p;

	if (bytes > (256u << 20))
		bytes = 256u << 20;
	mallopt(M_TRIM_THRESHOLD, (int)(bytes + (64u << 20)));
	mallopt(M_MMAP_THRESHOLD, 32 << 20);
	p = malloc(bytes);
	if (!p)
		return;
	a = ((uintptr_t)p + page - 1) & ~(page - 1);
	b = ((uintptr_t)p + bytes) & ~(page - 1);
	if (b > a)
		(void)madvise((void *)a, b - a, MADV_POPULATE_WRITE);
	free(p);
#endif
}

/* ---- hashing ---- */

uint64_t cp_hash_mix(uint64_t h, uint64_t v)
{
	/* A multiply-xorshift round (splitmix64's finalizer) per word: cheap and well mixed. */
	h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
	h ^= h >> 30;
	h *= 0xbf58476d1ce4e5b9ull;
	h ^= h >> 27;
	h *= 0x94d049bb133111ebull;
	h ^= h >> 31;
	return h;
}

uint32_t cp_hash_bytes(const void *data, size_t len, uint64_t seed)
{
	const unsigned char *p = data;
	uint64_t h = 0xcbf29ce484222325ull ^ seed;

	/* FNV-1a, finished with a mix so that the low bits (the slot) depend on every byte. */
	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ull;
	}
	return (uint32_t)cp_hash_mix(h, len);
}

int64_t cp_htab_find(const struct cp_htab *h, uint32_t hash,
		     bool (*eq)(const void *ctx, uint32_t idx, const void *key), const void *ctx,
		     const void *key)
{
	size_t mask, i;

	if (!h->cap)
		return -1;
	mask = h->cap - 1;
	for (i = hash & mask;; i = (i + 1) & mask) {
		const struct cp_hslot *s = &h->slot[i];

		if (!s->idx1)
			return -1;
		if (s->hash == hash && eq(ctx, s->idx1 - 1, key))
			return s->idx1 - 1;
	}
}

static void htab_place(struct cp_hslot *slot, size_t cap, uint32_t hash, uint32_t idx1)
{
	size_t mask = cap - 1, i;

	for (i = hash & mask; slot[i].idx1; i = (i + 1) & mask)
		;
	slot[i].idx1 = idx1;
	slot[i].hash = hash;
}

int cp_htab_insert(struct cp_htab *h, uint32_t hash, uint32_t idx)
{
	/* Load factor at most 1/2 keeps probe runs short. */
	if ((h->n + 1) * 2 > h->cap) {
		size_t ncap = h->cap ? h->cap * 2 : 64;
		struct cp_hslot *ns;

		if (ncap > SIZE_MAX / sizeof(*ns))
			return -ENOMEM;
		ns = calloc(ncap, sizeof(*ns));
		if (!ns)
			return -ENOMEM;
		for (size_t i = 0; i < h->cap; i++)
			if (h->slot[i].idx1)
				htab_place(ns, ncap, h->slot[i].hash, h->slot[i].idx1);
		free(h->slot);
		h->slot = ns;
		h->cap = ncap;
	}
	htab_place(h->slot, h->cap, hash, idx + 1);
	h->n++;
	return 0;
}

void cp_htab_swap(struct cp_htab *h, uint32_t a, uint32_t b)
{
	for (size_t i = 0; i < h->cap; i++) {
		if (h->slot[i].idx1 == a + 1)
			h->slot[i].idx1 = b + 1;
		else if (h->slot[i].idx1 == b + 1)
			h->slot[i].idx1 = a + 1;
	}
}

void cp_htab_release(struct cp_htab *h)
{
	free(h->slot);
	memset(h, 0, sizeof(*h));
}

int64_t cp_itab_find(const struct cp_itab *t, uint32_t hash,
		     bool (*eq)(const void *ctx, uint32_t idx, const void *key), const void *ctx,
		     const void *key)
{
	size_t mask, i;

	if (!t->cap)
		return -1;
	mask = t->cap - 1;
	for (i = hash & mask; t->slot[i]; i = (i + 1) & mask)
		if (eq(ctx, t->slot[i] - 1, key))
			return t->slot[i] - 1;
	return -1;
}

static void itab_place(uint32_t *slot, size_t cap, uint32_t hash, uint32_t idx1)
{
	size_t mask = cap - 1, i;

	for (i = hash & mask; slot[i]; i = (i + 1) & mask)
		;
	slot[i] = idx1;
}

int cp_itab_insert(struct cp_itab *t, uint32_t hash, uint32_t idx,
		   uint32_t (*hash_of)(const void *ctx, uint32_t idx), const void *ctx)
{
	/* Load factor at most 3/4: the slots are small, and a probe compares one entry. */
	if ((t->n + 1) * 4 > t->cap * 3) {
		size_t ncap = t->cap ? t->cap * 2 : 256;
		uint32_t *ns;

		if (ncap > SIZE_MAX / sizeof(*ns))
			return -ENOMEM;
		ns = calloc(ncap, sizeof(*ns));
		if (!ns)
			return -ENOMEM;
		for (size_t i = 0; i < t->cap; i++)
			if (t->slot[i])
				itab_place(ns, ncap, hash_of(ctx, t->slot[i] - 1), t->slot[i]);
		free(t->slot);
		t->slot = ns;
		t->cap = ncap;
	}
	itab_place(t->slot, t->cap, hash, idx + 1);
	t->n++;
	return 0;
}

void cp_itab_release(struct cp_itab *t)
{
	free(t->slot);
	memset(t, 0, sizeof(*t));
}
