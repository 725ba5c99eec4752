/* The on-disk cache of symbolization results per build ID (see sym_cache.h). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache_dir.h"
#include "sym_cache.h"
#include "util.h"

/*
 * The layout, one record a line:
 *   ADDR_HEX SP N (TAB function US system_name US file US line US start_line US inlined){N} LF
 * (US = 0x1f; an empty string is NULL); N = 0 (no TAB) when DWARF and the symbol table know
 * nothing at ADDR. And "=dwarf" LF: the build has DWARF. Readers skip lines they do not
 * know. "sym1" names the layout: an incompatible one gets a new name. The first line,
 * "=build-id BUILD_ID REVISION" LF, says which build the file describes and which revision of
 * the symbolizer's results it holds (a fix that changes what a pc resolves to bumps
 * RESULTS_REVISION, so that files of older cprofs are not believed): a file without it, or naming
 * another build, is not read (and is started anew by the next writer).
 */
#define CACHE_SUBDIR "sym1"
#define FIELD_SEP '\x1f'
/* A file is read whole: bound it, and stop appending to it beyond that. */
#define CACHE_FILE_MAX (16u << 20)
#define STRING_MAX 4096
/* A fact line: not an address ("=" is no hex digit), so older readers skip it. */
#define HAS_DWARF_LINE "=dwarf"
#define BUILD_ID_LINE "=build-id "
/*
 * r2: Go units of cgo builds, which .debug_aranges does not list, no longer named as a C unit.
 * r3: C++ functions without a linkage name qualified by their scopes (std::thread::..::_M_run).
 */
#define RESULTS_REVISION " r3"

/* Whether text (len bytes) starts with build_id's header line. */
static bool has_header(const char *text, size_t len, const char *build_id)
{
	size_t hl = strlen(BUILD_ID_LINE), bl = strlen(build_id), rl = strlen(RESULTS_REVISION);

	return len >= hl + bl + rl + 1 && !memcmp(text, BUILD_ID_LINE, hl) &&
	       !memcmp(text + hl, build_id, bl) && !memcmp(text + hl + bl, RESULTS_REVISION, rl) &&
	       text[hl + bl + rl] == '\n';
}

static int cache_file_path(const char *build_id, char *buf, size_t size, bool create_dir)
{
	if (!build_id || strlen(build_id) < 4 ||
	    strspn(build_id, "0123456789abcdef") != strlen(build_id))
		return -EINVAL;
	return cp_cache_path(buf, size, CACHE_SUBDIR, build_id, create_dir);
}

/*
 * Read the file into memory populated in one go: a first touch of each fresh page, one at a
 * time in read(), is dear on a virtual machine, and libc's file is a few hundred KiB. Sized
 * by fstat (appenders in other processes may add to it meanwhile: what is cut off is a torn
 * last line, skipped).
 */
int cp_sym_cache_read(const char *build_id, char **text, size_t *len)
{
	char path[4200];
	struct stat st;
	size_t off = 0, size;
	char *buf;
	int err = cache_file_path(build_id, path, sizeof(path), false), fd;

	if (err < 0)
		return err;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid()) {
		close(fd);
		return -EINVAL;
	}
	if (st.st_size > (off_t)CACHE_FILE_MAX) {
		close(fd);
		return -EFBIG;
	}
	size = (size_t)st.st_size;
	buf = malloc(size + 1);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	if (size >= 4 * 4096) {
		uintptr_t a = ((uintptr_t)buf + 4095) & ~(uintptr_t)4095;
		uintptr_t b = ((uintptr_t)buf + size) & ~(uintptr_t)4095;

		/* Failure (an old kernel) only means the pages fault in one by one. */
		if (b > a)
			(void)madvise((void *)a, b - a, MADV_POPULATE_WRITE);
	}
	while (off < size) {
		ssize_t r = read(fd, buf + off, size - off);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			err = -errno;
			close(fd);
			free(buf);
			return err;
		}
		if (r == 0)
			break;
		off += (size_t)r;
	}
	close(fd);
	buf[off] = '\0';
	if (!has_header(buf, off, build_id)) {
		free(buf);
		return -EINVAL;
	}
	*text = buf;
	if (len)
		*len = off;
	return 0;
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

/*
 * The head of an address line, "ADDR_HEX SP N", then a TAB and the frames, or the end of the
 * line when N is 0. *frames: the text after the TAB, or NULL.
 */
static bool parse_head(char *line, uint64_t *addr, size_t *count, char **frames)
{
	uint64_t a = 0;
	size_t digits = 0, n = 0;
	char *p = line;

	for (; digits < 17; p++, digits++) {
		unsigned d;

		if (*p >= '0' && *p <= '9')
			d = (unsigned)(*p - '0');
		else if (*p >= 'a' && *p <= 'f')
			d = (unsigned)(*p - 'a' + 10);
		else
			break;
		a = a << 4 | d;
	}
	if (digits == 0 || digits > 16 || *p++ != ' ')
		return false;
	if (*p < '0' || *p > '9')
		return false;
	for (digits = 0; *p >= '0' && *p <= '9' && digits < 3; p++, digits++)
		n = n * 10 + (size_t)(*p - '0');
	if (n > CP_SYM_MAX_INLINE || (n == 0 && *p) || (n > 0 && *p != '\t'))
		return false;
	*addr = a;
	*count = n;
	*frames = n ? p + 1 : NULL;
	return true;
}

int cp_sym_cache_scan(char **cursor, uint64_t *addr, char **record)
{
	char *line = *cursor, *end, *frames;
	size_t count;

	if (!line || !*line)
		return CP_SYM_CACHE_END;
	end = strchr(line, '\n');
	if (!end) {
		*cursor = line + strlen(line);	/* a torn last line */
		return CP_SYM_CACHE_SKIP;
	}
	*end = '\0';
	*cursor = end + 1;
	if (!strcmp(line, HAS_DWARF_LINE))
		return CP_SYM_CACHE_HAS_DWARF;
	if (!parse_head(line, addr, &count, &frames))
		return CP_SYM_CACHE_SKIP;
	*record = line;
	return CP_SYM_CACHE_ADDR;
}

int cp_sym_cache_parse(char *record, uint64_t *addr, struct cp_sym_frame *frames, size_t *n)
{
	uint64_t a;
	size_t count, k = 0;
	char *p;

	if (!record || !parse_head(record, &a, &count, &p))
		return 0;
	for (; p && k < count; k++) {
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

int cp_sym_cache_next(char **cursor, uint64_t *addr, struct cp_sym_frame *frames, size_t *n)
{
	char *record = NULL;
	uint64_t a;
	int kind = cp_sym_cache_scan(cursor, &a, &record);

	if (kind != CP_SYM_CACHE_ADDR)
		return kind;
	return cp_sym_cache_parse(record, addr, frames, n) ? CP_SYM_CACHE_ADDR : CP_SYM_CACHE_SKIP;
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

/*
 * A file just opened for appending: a regular file of ours that starts with build_id's header,
 * written now when it is empty, or written anew when it starts with anything else.
 */
static int start_file(int fd, const char *build_id)
{
	char head[300];
	struct stat st;
	ssize_t r;
	int n;

	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid())
		return -EINVAL;
	r = pread(fd, head, sizeof(head), 0);
	if (r > 0 && has_header(head, (size_t)r, build_id))
		return 0;
	if (r != 0 && ftruncate(fd, 0) < 0)
		return -errno;
	/* One write: another appender reading the head meanwhile sees all of it or none. */
	n = snprintf(head, sizeof(head), "%s%s%s\n", BUILD_ID_LINE, build_id, RESULTS_REVISION);
	if (n < 0 || (size_t)n >= sizeof(head))
		return -ENAMETOOLONG;
	return cp_write_all(fd, head, (size_t)n);
}

/* Open build_id's file for appending into *fd, once; -EFBIG when it is full. */
static int open_for_append(int *fd, const char *build_id)
{
	char path[4200];
	struct stat st;
	int err;

	if (*fd < 0) {
		err = cache_file_path(build_id, path, sizeof(path), true);
		if (err < 0)
			return err;
		*fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK,
			   0600);
		if (*fd < 0)
			return -errno;
		err = start_file(*fd, build_id);
		if (err < 0) {
			close(*fd);
			*fd = -1;
			return err;
		}
	}
	if (fstat(*fd, &st) == 0 && st.st_size > (off_t)CACHE_FILE_MAX - 65536)
		return -EFBIG;
	return 0;
}

int cp_sym_cache_append(int *fd, const char *build_id, uint64_t addr,
			const struct cp_sym_frame *frames, size_t n)
{
	struct cp_strbuf sb;
	int err;

	if (!fd || (!frames && n) || n > CP_SYM_MAX_INLINE)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!storable(frames[i].function) || !storable(frames[i].system_name) ||
		    !storable(frames[i].file))
			return -EINVAL;
	err = open_for_append(fd, build_id);
	if (err < 0)
		return err;
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

int cp_sym_cache_append_has_dwarf(int *fd, const char *build_id)
{
	int err;

	if (!fd)
		return -EINVAL;
	err = open_for_append(fd, build_id);
	if (err < 0)
		return err;
	return cp_write_all(*fd, HAS_DWARF_LINE "\n", strlen(HAS_DWARF_LINE "\n"));
}
