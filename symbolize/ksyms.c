/* The kernel's text symbols: parsed from /proc/kallsyms or mapped from the cache, searched. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ksym_cache.h"
#include "ksyms.h"

/* Bytes read from kallsyms at a time; a longer line means the file is not kallsyms. */
#define READ_CHUNK (256u << 10)
/* Longest name kept (the rest is cut). */
#define MAX_NAME 255

/* The table: parsed into syms/names, or mapped read-only from the cache (map.base set). */
struct cp_ksyms {
	struct cp_ksym *syms;	/* text symbols by address */
	size_t n;
	size_t cap;
	char *names;		/* their names, NUL-terminated, one after another */
	size_t names_len;
	size_t names_cap;
	struct cp_ksym_map map;	/* the table mapped from the cache, or empty */
};

static int ksym_cmp(const void *a, const void *b)
{
	const struct cp_ksym *x = a, *y = b;

	return x->addr < y->addr ? -1 : x->addr > y->addr;
}

static bool is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/*
 * One line of /proc/kallsyms, "ADDR TYPE NAME[\t[MODULE]]": the text symbols (t, T, w, W)
 * with a non-zero address go into the table, their names into one arena. -ENOMEM or 0.
 */
static int add_line(struct cp_ksyms *ks, const char *line, const char *end)
{
	const char *p = line, *name;
	uint64_t addr = 0;
	size_t len;
	char type;

	for (; p < end && is_hex(*p); p++)
		addr = addr << 4 | (uint64_t)(*p <= '9' ? *p - '0' : (*p | 0x20) - 'a' + 10);
	if (p == line || p + 3 > end || p[0] != ' ' || p[2] != ' ' || !addr)
		return 0;
	type = p[1];
	if (type != 't' && type != 'T' && type != 'w' && type != 'W')
		return 0;
	name = p + 3;
	for (len = 0; name + len < end && name[len] != '\t' && name[len] != ' '; len++)
		;
	if (!len || ks->names_len + len + 1 > UINT32_MAX)
		return 0;
	if (len > MAX_NAME)
		len = MAX_NAME;
	if (ks->n == ks->cap) {
		size_t ncap = ks->cap ? ks->cap * 2 : 16384;
		struct cp_ksym *v = realloc(ks->syms, ncap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		ks->syms = v;
		ks->cap = ncap;
	}
	if (ks->names_len + len + 1 > ks->names_cap) {
		size_t ncap = ks->names_cap ? ks->names_cap * 2 : 1u << 20;
		char *v = realloc(ks->names, ncap);

		if (!v)
			return -ENOMEM;
		ks->names = v;
		ks->names_cap = ncap;
	}
	memcpy(ks->names + ks->names_len, name, len);
	ks->names[ks->names_len + len] = '\0';
	ks->syms[ks->n].addr = addr;
	ks->syms[ks->n].name_off = (uint32_t)ks->names_len;
	ks->syms[ks->n].reserved = 0;
	ks->names_len += len + 1;
	ks->n++;
	return 0;
}

/*
 * Parse the open kallsyms file fd by hand in chunks (the kernel formats every line on each
 * read, and sscanf or a strdup per symbol would cost more than that), then shrink the table to
 * what is used and sort it. Stops at the first allocation failure, keeping what was read.
 */
static void parse_fd(struct cp_ksyms *ks, int fd)
{
	size_t have = 0;
	bool sorted = true;
	char *buf = malloc(READ_CHUNK);

	if (!buf)
		return;
	for (;;) {
		ssize_t n = read(fd, buf + have, READ_CHUNK - have);
		char *p = buf, *end, *nl;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		end = buf + have + n;
		while ((nl = memchr(p, '\n', (size_t)(end - p)))) {
			if (add_line(ks, p, nl) < 0)
				goto out;
			p = nl + 1;
		}
		have = (size_t)(end - p);
		if (have == READ_CHUNK)
			have = 0;	/* a line longer than the buffer: not kallsyms */
		memmove(buf, p, have);
	}
out:
	free(buf);
	/* Shrink to what is used: the table lives as long as its user. */
	if (ks->n) {
		struct cp_ksym *v = realloc(ks->syms, ks->n * sizeof(*v));
		char *names = realloc(ks->names, ks->names_len);

		if (v) {
			ks->syms = v;
			ks->cap = ks->n;
		}
		if (names) {
			ks->names = names;
			ks->names_cap = ks->names_len;
		}
	}
	for (size_t i = 1; i < ks->n && sorted; i++)
		sorted = ks->syms[i - 1].addr <= ks->syms[i].addr;
	if (!sorted)
		qsort(ks->syms, ks->n, sizeof(*ks->syms), ksym_cmp);
}

int cp_ksyms_load_file(const char *path, struct cp_ksyms **out)
{
	struct cp_ksyms *ks;
	int fd;

	*out = NULL;
	ks = calloc(1, sizeof(*ks));
	if (!ks)
		return -ENOMEM;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int err = -errno;

		free(ks);
		return err;
	}
	parse_fd(ks, fd);
	close(fd);
	*out = ks;
	return 0;
}

int cp_ksyms_load(struct cp_ksyms **out)
{
	struct cp_ksym_map map;
	int err;

	*out = NULL;
	if (cp_ksym_cache_map(&map) == 0) {
		struct cp_ksyms *ks = calloc(1, sizeof(*ks));

		if (!ks) {
			cp_ksym_cache_unmap(&map);
			return -ENOMEM;
		}
		ks->map = map;
		*out = ks;
		return 0;
	}
	err = cp_ksyms_load_file("/proc/kallsyms", out);
	/* For the next sessions of this boot (only real addresses: none are kept for non-root). */
	if (err == 0 && (*out)->n)
		(void)cp_ksym_cache_write((*out)->syms, (*out)->n, (*out)->names,
					  (*out)->names_len);
	return err;
}

const char *cp_ksyms_map_addr(const struct cp_ksyms *ks, uint64_t addr)
{
	const struct cp_ksym *syms;
	const char *names;
	size_t lo = 0, hi, names_len;

	if (!ks)
		return NULL;
	if (ks->map.base) {
		/* The table from the cache: used in place, so every name offset is checked. */
		syms = ks->map.syms;
		names = ks->map.names;
		names_len = ks->map.names_len;
		hi = ks->map.n;
	} else {
		syms = ks->syms;
		names = ks->names;
		names_len = ks->names_len;
		hi = ks->n;
	}
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (syms[mid].addr <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (!lo || syms[lo - 1].name_off >= names_len)
		return NULL;
	return names + syms[lo - 1].name_off;
}

void cp_ksyms_free(struct cp_ksyms *ks)
{
	if (!ks)
		return;
	cp_ksym_cache_unmap(&ks->map);
	free(ks->syms);
	free(ks->names);
	free(ks);
}
