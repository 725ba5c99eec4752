/* Parsing and searching JIT symbol maps (/tmp/perf-PID.map). */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "perfmap.h"
#include "proc.h"
#include "util.h"

struct entry {
	uint64_t start;
	uint64_t end;
	uint32_t seq;		/* line order: a later line wins */
	uint32_t name;		/* offset into names */
};

struct cp_perfmap {
	struct entry *v;
	size_t n, alloc;
	char *names;
	size_t names_len, names_alloc;
};

/* How far back a lookup walks from the last entry that starts at or below the address. */
#define OVERLAP_WALK 64

static bool parse_hex(const char **p, const char *end, uint64_t *out)
{
	const char *s = *p;
	uint64_t v = 0;
	int digits = 0;

	if (end - s > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
		s += 2;
	for (; s < end; s++, digits++) {
		int d;

		if (*s >= '0' && *s <= '9')
			d = *s - '0';
		else if (*s >= 'a' && *s <= 'f')
			d = *s - 'a' + 10;
		else if (*s >= 'A' && *s <= 'F')
			d = *s - 'A' + 10;
		else
			break;
		if (digits == 16)
			return false;
		v = v << 4 | (uint64_t)d;
	}
	if (!digits || s == end || *s != ' ')
		return false;
	*p = s + 1;
	*out = v;
	return true;
}

/* Add one "START SIZE NAME" line; false when it is malformed (skipped). */
static int add_line(struct cp_perfmap *m, const char *s, const char *end)
{
	uint64_t start, size;
	size_t nlen;
	struct entry *e;

	while (end > s && (end[-1] == '\r' || end[-1] == ' '))
		end--;
	if (!parse_hex(&s, end, &start) || !parse_hex(&s, end, &size) || s >= end || !size ||
	    start + size < start)
		return 0;
	nlen = (size_t)(end - s);
	if (nlen > CP_PERFMAP_MAX_NAME)
		nlen = CP_PERFMAP_MAX_NAME;
	if (m->n >= UINT32_MAX || m->names_len + nlen + 1 > UINT32_MAX)
		return 0;
	if (cp_grow((void **)&m->v, &m->alloc, m->n + 1, sizeof(*m->v)) < 0 ||
	    cp_grow((void **)&m->names, &m->names_alloc, m->names_len + nlen + 1, 1) < 0)
		return -ENOMEM;
	e = &m->v[m->n];
	*e = (struct entry){ start, start + size, (uint32_t)m->n, (uint32_t)m->names_len };
	memcpy(m->names + m->names_len, s, nlen);
	/* The target chose the name: no control characters reach a terminal. */
	for (size_t i = 0; i < nlen; i++)
		if ((unsigned char)m->names[m->names_len + i] < 0x20)
			m->names[m->names_len + i] = '?';
	m->names[m->names_len + nlen] = '\0';
	m->names_len += nlen + 1;
	m->n++;
	return 0;
}

static int cmp_entry(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;

	if (x->start != y->start)
		return x->start < y->start ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

int cp_perfmap_parse(const char *text, size_t len, struct cp_perfmap **out)
{
	struct cp_perfmap *m = calloc(1, sizeof(*m));
	const char *p = text, *end = text + len;

	if (!m)
		return -ENOMEM;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *eol = nl ? nl : end;

		if (add_line(m, p, eol) < 0) {
			cp_perfmap_free(m);
			return -ENOMEM;
		}
		p = eol + 1;
	}
	if (m->n > 1)
		qsort(m->v, m->n, sizeof(*m->v), cmp_entry);
	*out = m;
	return 0;
}

int cp_perfmap_load(int pid, int ns_pid, uid_t owner_uid, struct cp_perfmap **out)
{
	char path[96], *buf;
	struct stat st;
	ssize_t got;
	size_t len = 0;
	int fd, err;

	err = cp_proc_dir(pid, path, sizeof(path));
	if (err < 0)
		return err;
	snprintf(path + strlen(path), sizeof(path) - strlen(path), "/root/tmp/perf-%d.map",
		 ns_pid);
	/* The target owns /tmp's content: no links, no FIFOs that would block the open. */
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return errno == ELOOP ? -EPERM : -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    (st.st_uid != 0 && st.st_uid != owner_uid) || st.st_size > CP_PERFMAP_MAX_BYTES) {
		close(fd);
		return -EPERM;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	/* The runtime may still be appending: read what was there at fstat time. */
	while (len < (size_t)st.st_size) {
		got = read(fd, buf + len, (size_t)st.st_size - len);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			break;
		len += (size_t)got;
	}
	close(fd);
	err = cp_perfmap_parse(buf, len, out);
	free(buf);
	return err;
}

const char *cp_perfmap_lookup(const struct cp_perfmap *m, uint64_t addr, uint64_t *offset)
{
	const struct entry *best = NULL;
	size_t lo = 0, hi, walk = 0;

	if (!m || !m->n)
		return NULL;
	/* The first entry that starts above addr. */
	hi = m->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (m->v[mid].start <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t i = lo; i-- > 0 && walk < OVERLAP_WALK; walk++) {
		const struct entry *e = &m->v[i];

		if (addr < e->end && (!best || e->seq > best->seq))
			best = e;
	}
	if (!best)
		return NULL;
	if (offset)
		*offset = addr - best->start;
	return m->names + best->name;
}

size_t cp_perfmap_count(const struct cp_perfmap *m)
{
	return m ? m->n : 0;
}

void cp_perfmap_free(struct cp_perfmap *m)
{
	if (!m)
		return;
	free(m->v);
	free(m->names);
	free(m);
}
