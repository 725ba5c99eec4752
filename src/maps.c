/* The memory map of a process, parsed from /proc/PID/maps. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "maps.h"
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

int cp_maps_parse(const char *text, struct cp_maps *out)
{
	struct cp_map *v = NULL, *nv;
	size_t n = 0, alloc = 0;
	const char *line = text;
	bool sorted = true, truncated = false;
	int ret;

	if (!text || !out)
		return -EINVAL;
	while (*line) {
		const char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) : strlen(line);

		if (len == 0)
			goto next;
		if (n >= CP_MAPS_MAX_ENTRIES) {
			truncated = true;
			break;
		}
		if (n == alloc) {
			alloc = alloc ? alloc * 2 : 64;
			nv = realloc(v, alloc * sizeof(*v));
			if (!nv) {
				ret = -ENOMEM;
				goto fail;
			}
			v = nv;
		}
		ret = parse_line(line, len, &v[n]);
		if (ret < 0)
			goto fail;
		if (n > 0 && v[n].start < v[n - 1].start)
			sorted = false;
		n++;
next:
		if (!nl)
			break;
		line = nl + 1;
	}
	/* The kernel prints in address order; sort only text that came from elsewhere. */
	if (!sorted)
		qsort(v, n, sizeof(*v), cmp_map);
	out->pid = 0;
	out->v = v;
	out->n = n;
	out->truncated = truncated;
	return 0;

fail:
	free_entries(v, n);
	return ret;
}

int cp_maps_read(int pid, struct cp_maps *out)
{
	char path[64];
	char *text;
	int ret;

	if (pid <= 0)
		return -EINVAL;
	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	ret = cp_read_file_alloc(path, CP_MAPS_MAX_BYTES, &text, NULL);
	if (ret == -ENOENT)
		return -ESRCH;
	if (ret < 0)
		return ret;
	ret = cp_maps_parse(text, out);
	free(text);
	if (ret < 0)
		return ret;
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
	/* Through the target's root, so files in containers and chroots are the right ones. */
	n = snprintf(buf, size, "/proc/%d/root%s", pid, map->path);
	if (n < 0 || (size_t)n >= size)
		return -ENAMETOOLONG;
	/* A file replaced in place (a package upgrade renames a new file over the old one)
	 * is not marked deleted when the old inode lives on elsewhere; the mapping's own
	 * dev/inode tell. map_files always reaches the mapped object itself. */
	if (stat(buf, &st) != 0 || st.st_ino != map->inode ||
	    major(st.st_dev) != map->dev_major || minor(st.st_dev) != map->dev_minor)
		return map_files_path(pid, map, buf, size);
	return 0;
}
