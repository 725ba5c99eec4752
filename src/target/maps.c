/* The memory map of a process, parsed from /proc/PID/maps. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "maps.h"
#include "proc.h"
#include "util.h"

#define DELETED_SUFFIX " (deleted)"

static int parse_hex(const char **p, char stop, uint64_t *out)
{
	const char *s = *p;
	uint64_t v = 0;
	int digits = 0;

	for (;; s++, digits++) {
		unsigned int d;

		if (*s >= '0' && *s <= '9')
			d = (unsigned int)(*s - '0');
		else if (*s >= 'a' && *s <= 'f')
			d = (unsigned int)(*s - 'a' + 10);
		else if (*s >= 'A' && *s <= 'F')
			d = (unsigned int)(*s - 'A' + 10);
		else
			break;
		if (v >> 60)
			return -EINVAL;
		v = (v << 4) | d;
	}
	if (digits == 0 || *s != stop)
		return -EINVAL;
	*out = v;
	*p = s + 1;
	return 0;
}

/*
 * One line "start-end perms offset major:minor inode   path" (line without its newline).
 * On success m->path is malloc'd.
 */
static int parse_line(const char *line, size_t len, struct cp_map *m)
{
	const char *p = line, *path;
	uint64_t major, minor;
	size_t plen;

	memset(m, 0, sizeof(*m));
	if (parse_hex(&p, '-', &m->start) < 0 || parse_hex(&p, ' ', &m->end) < 0)
		return -EINVAL;
	if (m->end < m->start)
		return -EINVAL;
	if ((size_t)(line + len - p) < 5 || p[4] != ' ')
		return -EINVAL;
	memcpy(m->perms, p, 4);
	m->perms[4] = '\0';
	p += 5;
	if (parse_hex(&p, ' ', &m->offset) < 0 || parse_hex(&p, ':', &major) < 0 ||
	    parse_hex(&p, ' ', &minor) < 0)
		return -EINVAL;
	if (major > UINT32_MAX || minor > UINT32_MAX)
		return -EINVAL;
	m->dev_major = (unsigned int)major;
	m->dev_minor = (unsigned int)minor;
	/* The inode is the last fixed field: followed by padding and a path, or end of line. */
	if (p >= line + len)
		return -EINVAL;
	{
		const char *q = p;
		uint64_t v = 0;
		int digits = 0;

		for (; q < line + len && *q >= '0' && *q <= '9'; q++, digits++) {
			if (v > (UINT64_MAX - 9) / 10)
				return -EINVAL;
			v = v * 10 + (uint64_t)(*q - '0');
		}
		if (digits == 0 || (q < line + len && *q != ' '))
			return -EINVAL;
		m->inode = v;
		p = q;
	}
	while (p < line + len && *p == ' ')
		p++;
	path = p;
	plen = (size_t)(line + len - path);
	/* Paths keep any inner and trailing spaces; only the kernel's suffix is taken off. */
	if (plen >= strlen(DELETED_SUFFIX) &&
	    memcmp(path + plen - strlen(DELETED_SUFFIX), DELETED_SUFFIX,
		   strlen(DELETED_SUFFIX)) == 0) {
		m->deleted = true;
		plen -= strlen(DELETED_SUFFIX);
	}
	m->path = malloc(plen + 1);
	if (!m->path)
		return -ENOMEM;
	memcpy(m->path, path, plen);
	m->path[plen] = '\0';
	return 0;
}

static int cmp_map(const void *a, const void *b)
{
	const struct cp_map *x = a, *y = b;

	return (x->start > y->start) - (x->start < y->start);
}

static void free_entries(struct cp_map *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(v[i].path);
	free(v);
}

/* Entries parsed so far, line by line (from one string, or from a file read in pieces). */
struct maps_builder {
	struct cp_map *v;
	size_t n, alloc;
	bool sorted, truncated;
};

/* Add one line (without its newline). 0, 1 when full (the rest is ignored), or -errno. */
static int builder_add(struct maps_builder *b, const char *line, size_t len)
{
	int ret;

	if (len == 0)
		return 0;
	if (b->n >= CP_MAPS_MAX_ENTRIES) {
		b->truncated = true;
		return 1;
	}
	if (cp_grow((void **)&b->v, &b->alloc, b->n + 1, sizeof(*b->v)) < 0)
		return -ENOMEM;
	ret = parse_line(line, len, &b->v[b->n]);
	if (ret < 0)
		return ret;
	if (b->n > 0 && b->v[b->n].start < b->v[b->n - 1].start)
		b->sorted = false;
	b->n++;
	return 0;
}

/* Add every complete line of text[0, len); how many bytes were used, or -errno. */
static long builder_add_lines(struct maps_builder *b, const char *text, size_t len, bool last)
{
	size_t off = 0;

	while (off < len) {
		const char *nl = memchr(text + off, '\n', len - off);
		size_t llen;
		int ret;

		if (!nl && !last)
			break;
		llen = nl ? (size_t)(nl - (text + off)) : len - off;
		ret = builder_add(b, text + off, llen);
		if (ret < 0)
			return ret;
		if (ret > 0)
			return (long)len;
		off += llen + (nl ? 1 : 0);
	}
	return (long)off;
}

static void builder_finish(struct maps_builder *b, struct cp_maps *out)
{
	/* The kernel prints in address order; sort only text that came from elsewhere. */
	if (!b->sorted)
		qsort(b->v, b->n, sizeof(*b->v), cmp_map);
	out->pid = 0;
	out->v = b->v;
	out->n = b->n;
	out->truncated = b->truncated;
}

int cp_maps_parse(const char *text, struct cp_maps *out)
{
	struct maps_builder b = { .sorted = true };
	long used;

	if (!text || !out)
		return -EINVAL;
	used = builder_add_lines(&b, text, strlen(text), true);
	if (used < 0) {
		free_entries(b.v, b.n);
		return (int)used;
	}
	builder_finish(&b, out);
	return 0;
}

/*
 * Read in pieces through one buffer and parsed as it comes: the maps of a process with many
 * threads are large, and reading them whole (doubling the buffer as it grows) touches many
 * fresh pages (docs/PERFORMANCE.md, "Design figures").
 */
int cp_maps_read(int pid, struct cp_maps *out)
{
	const size_t size = 64u << 10;
	struct maps_builder b = { .sorted = true };
	size_t have = 0, total = 0;
	char path[64], *buf;
	int fd, ret = 0;

	if (pid <= 0 || !out)
		return -EINVAL;
	ret = cp_proc_dir(pid, path, sizeof(path) - 5);
	if (ret < 0)
		return ret;
	strcat(path, "/maps");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -ESRCH : -errno;
	buf = malloc(size);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	for (;;) {
		ssize_t r = read(fd, buf + have, size - have);
		long used;

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			ret = -errno;
			break;
		}
		total += (size_t)r;
		if (total > CP_MAPS_MAX_BYTES) {
			ret = -EFBIG;
			break;
		}
		have += (size_t)r;
		used = builder_add_lines(&b, buf, have, r == 0);
		if (used < 0) {
			ret = (int)used;
			break;
		}
		if (r == 0 || b.truncated)
			break;
		if ((size_t)used == 0 && have == size) {
			ret = -EINVAL;	/* a line longer than the buffer: not a maps file */
			break;
		}
		memmove(buf, buf + used, have - (size_t)used);
		have -= (size_t)used;
	}
	free(buf);
	close(fd);
	if (ret < 0) {
		free_entries(b.v, b.n);
		return ret;
	}
	builder_finish(&b, out);
	out->pid = pid;
	return 0;
}

void cp_maps_release(struct cp_maps *maps)
{
	if (!maps)
		return;
	free_entries(maps->v, maps->n);
	maps->v = NULL;
	maps->n = 0;
	maps->truncated = false;
}

const struct cp_map *cp_maps_find(const struct cp_maps *maps, uint64_t addr)
{
	size_t lo = 0, hi;

	if (!maps || !maps->v)
		return NULL;
	hi = maps->n;
	/* Find the last map with start <= addr, then check that it covers addr. */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (maps->v[mid].start <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0)
		return NULL;
	if (addr < maps->v[lo - 1].end)
		return &maps->v[lo - 1];
	return NULL;
}

bool cp_map_is_file(const struct cp_map *map)
{
	/* Paths the kernel invents for shared anonymous memory, and devices: opening these
	 * to read ELF would at best fail, at worst block or have side effects. */
	static const char *const not_files[] = {
		"/memfd:", "/SYSV", "/dev/", "/anon_hugepage", "/[aio]", "/drm mm object",
	};
	size_t i;

	if (!map || !map->path || map->path[0] != '/' || map->inode == 0)
		return false;
	for (i = 0; i < CP_ARRAY_SIZE(not_files); i++)
		if (strncmp(map->path, not_files[i], strlen(not_files[i])) == 0)
			return false;
	return true;
}

const char *cp_map_basename(const struct cp_map *map)
{
	const char *slash;

	if (!map || !map->path || !map->path[0])
		return "[anon]";
	if (map->path[0] == '[')
		return map->path;
	slash = strrchr(map->path, '/');
	if (!slash || !slash[1])
		return map->path;
	return slash + 1;
}

static int map_files_path(int pid, const struct cp_map *map, char *buf, size_t size)
{
	int n = snprintf(buf, size, "/proc/%d/map_files/%" PRIx64 "-%" PRIx64, pid, map->start,
			 map->end);

	if (n < 0 || (size_t)n >= size)
		return -ENAMETOOLONG;
	return 0;
}

/* path as the target sees it: through its root, so files in containers and chroots are right. */
static int root_path(int pid, const char *path, char *buf, size_t size)
{
	char dir[64];
	int n, err = cp_proc_dir(pid, dir, sizeof(dir));

	if (err < 0)
		return err;
	n = snprintf(buf, size, "%s/root%s", dir, path);
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

int cp_map_open_path(int pid, const struct cp_map *map, char *buf, size_t size)
{
	struct stat st;
	int n;

	if (!map || !buf || size == 0 || pid <= 0)
		return -EINVAL;
	if (!cp_map_is_file(map))
		return -ENOENT;
	if (map->deleted)
		return map_files_path(pid, map, buf, size);
	n = root_path(pid, map->path, buf, size);
	if (n < 0)
		return n;
	/* A file replaced in place (a package upgrade renames a new file over the old one)
	 * is not marked deleted when the old inode lives on elsewhere; the mapping's own
	 * dev/inode tell. map_files always reaches the mapped object itself. */
	if (stat(buf, &st) != 0 || st.st_ino != map->inode ||
	    major(st.st_dev) != map->dev_major || minor(st.st_dev) != map->dev_minor)
		return map_files_path(pid, map, buf, size);
	return 0;
}

/* fd when it is a regular file with map's device and inode (any when check_id is false). */
static int keep_if_mapped(int fd, const struct cp_map *map, bool check_id)
{
	struct stat st;
	int err = 0;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) != 0)
		err = -errno;
	else if (!S_ISREG(st.st_mode))
		err = -ENOEXEC;
	else if (check_id && (st.st_ino != map->inode || major(st.st_dev) != map->dev_major ||
			      minor(st.st_dev) != map->dev_minor))
		err = -ESTALE;
	if (err < 0) {
		close(fd);
		return err;
	}
	return fd;
}

int cp_map_open(int pid, const struct cp_map *map, char *buf, size_t size)
{
	const int flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
	int fd, n;

	if (!map || !buf || size == 0 || pid <= 0)
		return -EINVAL;
	if (!cp_map_is_file(map))
		return -ENOENT;
	fd = map_files_path(pid, map, buf, size);
	if (fd < 0)
		return fd;
	fd = keep_if_mapped(open(buf, flags), map, false);
	if (fd >= 0 || fd == -ENOEXEC || map->deleted)
		return fd;
	n = root_path(pid, map->path, buf, size);
	if (n < 0)
		return n;
	return keep_if_mapped(open(buf, flags), map, true);
}
