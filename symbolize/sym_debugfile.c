/* Finding a module's separate debug file: by build ID, by .gnu_debuglink, in the cache. */
#include <elfutils/libdwelf.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "debug_cache.h"
#include "sym_internal.h"

bool cp_sym_build_id_hex(Elf *elf, char *buf)
{
	const void *id;
	ssize_t len = dwelf_elf_gnu_build_id(elf, &id);

	if (len <= 0 || len > MAX_BUILD_ID_BYTES)
		return false;
	for (ssize_t i = 0; i < len; i++)
		sprintf(buf + 2 * i, "%02x", ((const unsigned char *)id)[i]);
	return true;
}

static uint32_t file_crc32(int fd)
{
	unsigned char buf[65536];
	uLong crc = crc32(0L, Z_NULL, 0);
	off_t pos = 0;
	ssize_t r;

	while ((r = pread(fd, buf, sizeof(buf), pos)) > 0) {
		crc = crc32(crc, buf, (uInt)r);
		pos += r;
	}
	return (uint32_t)crc;
}

/*
 * Open candidate as the debug file of m: it must be an ELF file other than m itself whose
 * build ID matches m's (or, when either has none, whose CRC matches the debuglink's).
 * Returns an fd or -1.
 */
static int open_debug_candidate(struct module *m, const char *candidate, bool by_build_id)
{
	struct stat st;
	char hex[2 * MAX_BUILD_ID_BYTES + 1];
	bool ok = false;
	Elf *elf;
	/* O_NONBLOCK: a FIFO planted under a container's root must not hang us in open(). */
	int fd = open(candidate, O_RDONLY | O_CLOEXEC | O_NONBLOCK);

	if (fd < 0)
		return -1;
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) || (st.st_dev == m->dev && st.st_ino == m->ino))
		goto fail;
	elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	if (!elf)
		goto fail;
	if (elf_kind(elf) == ELF_K_ELF) {
		bool has_id = cp_sym_build_id_hex(elf, hex);

		uint64_t inflated;

		if (m->build_id && has_id)
			ok = !strcmp(hex, m->build_id);
		else if (!by_build_id && m->debuglink)
			ok = file_crc32(fd) == m->debuglink_crc;
		/* libdw would inflate its compressed sections whole: not past the limit. */
		if (ok && cp_sym_check_inflate(elf, (uint64_t)st.st_size, &inflated) < 0) {
			cp_sym_refuse_dwarf(m, candidate, inflated, (uint64_t)st.st_size);
			m->dwarf_refused = false;	/* the module's own symbol table still serves */
			ok = false;
		}
	}
	elf_end(elf);
	if (ok)
		return fd;
fail:
	close(fd);
	return -1;
}

static int try_debug_path(struct module *m, const char *candidate, bool by_build_id,
			  char **debuginfo_file_name)
{
	int fd = open_debug_candidate(m, candidate, by_build_id);

	if (fd >= 0)
		*debuginfo_file_name = strdup(candidate);
	return fd;
}

/*
 * A debug file found by its build ID whose DWARF is compressed: serve a decompressed copy from
 * the on-disk cache instead (made now, once per build ID), so that libdw maps it rather than
 * inflating every section again in every cprof process. Takes fd; returns the fd to use.
 */
static int prefer_cached_copy(struct module *m, int fd, char **debuginfo_file_name)
{
	char p[PATH_MAX];
	char *name = NULL;
	int c;

	if (!m->build_id || cp_debug_cache_path(m->build_id, p, sizeof(p)) < 0)
		return fd;
	if (cp_debug_cache_store(fd, m->build_id) < 0)
		return fd;
	c = try_debug_path(m, p, true, &name);
	if (c < 0 || !name) {
		if (c >= 0)
			close(c);
		return fd;
	}
	close(fd);
	free(*debuginfo_file_name);
	*debuginfo_file_name = name;
	return c;
}

/*
 * libdwfl's find_debuginfo callback. The standard one would look next to the file we opened
 * (/proc/PID/root/... or /proc/PID/map_files/...) and under /usr/lib/debug + that path,
 * which is wrong for both: we search relative to the file's real path inside the process's
 * root, and in the host's /usr/lib/debug too. libdwfl has already checked the file's own
 * .debug_* sections before calling this.
 */
static int find_debuginfo(Dwfl_Module *dmod, void **userdata, const char *modname,
			  Dwarf_Addr base, const char *file_name, const char *debuglink_file,
			  GElf_Word debuglink_crc, char **debuginfo_file_name)
{
	struct module *m = *userdata;
	char p[PATH_MAX];
	const char *roots[2];
	size_t nroots = 0;
	int fd;

	/* A second call with another name is the dwz alternate file: the standard search
	 * finds it by the build ID recorded in .gnu_debugaltlink. */
	if (!m || (debuglink_file && (!m->debuglink || strcmp(debuglink_file, m->debuglink))))
		return dwfl_standard_find_debuginfo(dmod, userdata, modname, base, file_name,
						    debuglink_file, debuglink_crc,
						    debuginfo_file_name);

	roots[nroots++] = m->root;
	if (strcmp(m->root, ""))
		roots[nroots++] = "";

	if (m->build_id) {
		/* A decompressed copy made by an earlier run (debug_cache.h). */
		if (cp_debug_cache_path(m->build_id, p, sizeof(p)) == 0) {
			fd = try_debug_path(m, p, true, debuginfo_file_name);
			if (fd >= 0)
				return fd;
		}
		for (size_t i = 0; i < nroots; i++) {
			if (snprintf(p, sizeof(p), "%s/usr/lib/debug/.build-id/%.2s/%s.debug",
				     roots[i], m->build_id, m->build_id + 2) >= (int)sizeof(p))
				continue;
			fd = try_debug_path(m, p, true, debuginfo_file_name);
			if (fd >= 0)
				return prefer_cached_copy(m, fd, debuginfo_file_name);
		}
	}
	if (m->debuglink && !strchr(m->debuglink, '/')) {
		char *copy = strdup(m->path);
		const char *dir;

		if (!copy)
			return -1;
		dir = dirname(copy);
		if (!strcmp(dir, "/"))
			dir = "";
		fd = -1;
		/* Next to the file and in its .debug/ exist only inside its root. */
		if (snprintf(p, sizeof(p), "%s%s/%s", m->root, dir, m->debuglink) < (int)sizeof(p))
			fd = try_debug_path(m, p, false, debuginfo_file_name);
		if (fd < 0 && snprintf(p, sizeof(p), "%s%s/.debug/%s", m->root, dir,
				       m->debuglink) < (int)sizeof(p))
			fd = try_debug_path(m, p, false, debuginfo_file_name);
		for (size_t i = 0; fd < 0 && i < nroots; i++) {
			if (snprintf(p, sizeof(p), "%s/usr/lib/debug%s/%s", roots[i], dir,
				     m->debuglink) < (int)sizeof(p))
				fd = try_debug_path(m, p, false, debuginfo_file_name);
		}
		free(copy);
		if (fd >= 0)
			return fd;
	}
	errno = ENOENT;
	return -1;
}

static int find_elf_none(Dwfl_Module *dmod, void **userdata, const char *modname,
			 Dwarf_Addr base, char **file_name, Elf **elfp)
{
	/* Modules are always reported with an open fd; nothing to find. */
	return -1;
}

const Dwfl_Callbacks cp_sym_dwfl_callbacks = {
	.find_elf = find_elf_none,
	.find_debuginfo = find_debuginfo,
	.section_address = dwfl_offline_section_address,
};
