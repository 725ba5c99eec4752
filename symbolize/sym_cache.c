/* The on-disk cache of symbolization results per build ID (see sym_cache.h). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "debug_cache.h"
#include "sym_cache.h"
#include "util.h"

/*
 * The layout, one record a line:
 *   ADDR_HEX SP N (TAB function US system_name US file US line US start_line US inlined){N} LF
 * (US = 0x1f; an empty string is NULL). "sym1" names the layout: a new one gets a new name.
 */
#define CACHE_SUBDIR "sym1"
#define FIELD_SEP '\x1f'
/* A file is read whole: bound it, and stop appending to it beyond that. */
#define CACHE_FILE_MAX (16u << 20)
#define STRING_MAX 4096

static int cache_file_path(const char *build_id, char *buf, size_t size, bool create_dir)
{
	char dir[4096];
	int n, err;

	if (!build_id || strlen(build_id) < 4 ||
	    strspn(build_id, "0123456789abcdef") != strlen(build_id))
		return -EINVAL;
	err = cp_debug_cache_dir(dir, sizeof(dir));
	if (err < 0)
		return err;
	n = snprintf(buf, size, "%s/" CACHE_SUBDIR, dir);
	if (n < 0 || (size_t)n >= size)
		return -ENAMETOOLONG;
	if (create_dir && (err = cp_debug_cache_mkdir(buf)) < 0)
		return err;
	n = snprintf(buf, size, "%s/" CACHE_SUBDIR "/%s", dir, build_id);
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

int cp_sym_cache_read(const char *build_id, char **text, size_t *len)
{
	char path[4200];
	int err = cache_file_path(build_id, path, sizeof(path), false);

	if (err < 0)
		return err;
	return cp_read_file_alloc(path, CACHE_FILE_MAX, text, len);
}

/* The next field of a frame, ended by FIELD_SEP or the end of the frame; NULL if missing. */
static char *next_field(char **p, bool last)
{
	char *start = *p, *end = strchr(start, last ? '\0' : FIELD_SEP);

	if (!end)
		return NULL;
	if (!last) {
		*end = '\0';
		*p = end + 1;
	} else {
		*p = end;
	}
	return start;
}

static bool parse_int(const char *s, int *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < 0 || v > 100000000)
		return false;
	*out = (int)v;
	return true;
}

/* One frame's text (NUL-terminated, fields split in place) into f. */
static bool parse_frame(char *p, struct cp_sym_frame *f)
{
	char *fn = next_field(&p, false), *sys = fn ? next_field(&p, false) : NULL;
	char *file = sys ? next_field(&p, false) : NULL, *line = file ? next_field(&p, false) : NULL;
	char *start = line ? next_field(&p, false) : NULL, *inl = start ? next_field(&p, true) : NULL;

	if (!inl || !parse_int(line, &f->line) || !parse_int(start, &f->start_line) ||
	    (strcmp(inl, "0") && strcmp(inl, "1")))
		return false;
	f->function = *fn ? fn : NULL;
	f->system_name = *sys ? sys : NULL;
	f->file = *file ? file : NULL;
	f->inlined = inl[0] == '1';
	return true;
}

int cp_sym_cache_next(char **cursor, uint64_t *addr, struct cp_sym_frame *frames, size_t *n)
{
	char *line = *cursor, *end, *p, *tab;
	unsigned long long a, count;
	size_t k = 0;

	if (!line || !*line)
		return -1;
	end = strchr(line, '\n');
	if (!end)
		return (*cursor = line + strlen(line)), 0;	/* a torn last line */
	*end = '\0';
	*cursor = end + 1;
	tab = strchr(line, '\t');
	if (!tab)
		return 0;
	*tab = '\0';
	if (sscanf(line, "%llx %llu", &a, &count) != 2 || count == 0 || count > CP_SYM_MAX_INLINE)
		return 0;
	for (p = tab + 1; p && k < count; k++) {
		char *next = strchr(p, '\t');

		if (next)
			*next++ = '\0';
		memset(&frames[k], 0, sizeof(frames[k]));
		if (!parse_frame(p, &frames[k]))
			return 0;
		p = next;
	}
	if (k != count || p)
		return 0;
	*addr = a;
	*n = k;
	return 1;
}

/* A string the reader gets back unchanged. */
static bool storable(const char *s)
{
	if (!s)
		return true;
	if (strlen(s) > STRING_MAX)
		return false;
	for (; *s; s++)
		if ((unsigned char)*s < 0x20)
			return false;
	return true;
}

int cp_sym_cache_append(int *fd, const char *build_id, uint64_t addr,
			const struct cp_sym_frame *frames, size_t n)
{
	struct cp_strbuf sb;
	char path[4200];
	struct stat st;
	int err;

	if (!fd || !frames || n == 0 || n > CP_SYM_MAX_INLINE)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!storable(frames[i].function) || !storable(frames[i].system_name) ||
		    !storable(frames[i].file))
			return -EINVAL;
	if (*fd < 0) {
		err = cache_file_path(build_id, path, sizeof(path), true);
		if (err < 0)
			return err;
		*fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (*fd < 0)
			return -errno;
	}
	if (fstat(*fd, &st) == 0 && st.st_size > (off_t)CACHE_FILE_MAX - 65536)
		return -EFBIG;
	cp_strbuf_init(&sb);
	cp_strbuf_addf(&sb, "%" PRIx64 " %zu", addr, n);
	for (size_t i = 0; i < n; i++)
		cp_strbuf_addf(&sb, "\t%s%c%s%c%s%c%d%c%d%c%d", frames[i].function ?: "", FIELD_SEP,
			       frames[i].system_name ?: "", FIELD_SEP, frames[i].file ?: "",
			       FIELD_SEP, frames[i].line, FIELD_SEP, frames[i].start_line,
			       FIELD_SEP, frames[i].inlined ? 1 : 0);
	cp_strbuf_addc(&sb, '\n');
	/* One write per record: appenders in other processes do not interleave inside it. */
	err = sb.err ? sb.err : cp_write_all(*fd, sb.buf, sb.len);
	cp_strbuf_release(&sb);
	return err;
}
