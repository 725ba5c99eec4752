/* Unit tests for symbolize/debug_cache.c: a decompressed copy of a debug file, by build ID. */
#include <dirent.h>
#include <elfutils/libdw.h>
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "cache_dir.h"
#include "debug_cache.h"
#include "maps.h"
#include "symbolize.h"

/* Compressed and total .debug_* bytes of an ELF file. */
static void debug_sections(int fd, size_t *ncompressed, size_t *ndebug)
{
	Elf *elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	size_t shstrndx;
	Elf_Scn *scn = NULL;

	*ncompressed = *ndebug = 0;
	if (!elf || elf_getshdrstrndx(elf, &shstrndx) < 0) {
		elf_end(elf);
		return;
	}
	while ((scn = elf_nextscn(elf, scn))) {
		GElf_Shdr sh;
		const char *name;

		if (!gelf_getshdr(scn, &sh))
			continue;
		name = elf_strptr(elf, shstrndx, sh.sh_name);
		if (!name || strncmp(name, ".debug_", 7))
			continue;
		(*ndebug)++;
		if (sh.sh_flags & SHF_COMPRESSED)
			(*ncompressed)++;
	}
	elf_end(elf);
}

/* The separate debug file of libc (libc6-dbg), by libc's build ID; 0 or -ENOENT. */
static int libc_debug_file(char *path, size_t size, char *build_id, size_t idsize)
{
	struct cp_maps maps;
	const char *libc = NULL;
	struct cp_symbolizer *sym;
	const char *bid = NULL;
	uint64_t bias;
	bool has_debug;
	int ret = -ENOENT;

	if (cp_maps_read(getpid(), &maps) < 0)
		return -ENOENT;
	sym = cp_sym_new();
	for (size_t i = 0; sym && i < maps.n; i++) {
		if (!strstr(maps.v[i].path, "/libc.so") || maps.v[i].perms[2] != 'x')
			continue;
		libc = maps.v[i].path;
		if (cp_sym_module_info(sym, getpid(), &maps.v[i], &bid, &bias, &has_debug) == 0 &&
		    bid && strlen(bid) > 2) {
			snprintf(build_id, idsize, "%s", bid);
			snprintf(path, size, "/usr/lib/debug/.build-id/%.2s/%s.debug", bid,
				 bid + 2);
			ret = access(path, R_OK) == 0 ? 0 : -ENOENT;
		}
		break;
	}
	(void)libc;
	cp_sym_free(sym);
	cp_maps_release(&maps);
	return ret;
}

static void rm_rf(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char p[4096];

	if (!d)
		return;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		unlink(p);
	}
	closedir(d);
	rmdir(dir);
}

static void test_paths(void)
{
	char buf[4096];

	setenv("CPROF_CACHE_DIR", "/tmp", 1);		/* sticky and writable by all: refused */
	CHECK(cp_debug_cache_path("abcdef12", buf, sizeof(buf)) == -EPERM);
	setenv("CPROF_CACHE_DIR", "/usr", 1);
	CHECK(cp_debug_cache_path("abcdef12", buf, sizeof(buf)) == 0);
	CHECK(!strcmp(buf, "/usr/abcdef12.debug"), "%s", buf);
	/* Not hex, too short: never a path built from it. */
	CHECK(cp_debug_cache_path("../etc", buf, sizeof(buf)) == -EINVAL);
	CHECK(cp_debug_cache_path("ab", buf, sizeof(buf)) == -EINVAL);
	setenv("CPROF_CACHE_DIR", "", 1);
	CHECK(cp_debug_cache_path("abcdef12", buf, sizeof(buf)) == -ENOENT);
	unsetenv("CPROF_CACHE_DIR");
	setenv("XDG_CACHE_HOME", "/xdg", 1);
	CHECK(cp_cache_dir(buf, sizeof(buf)) == 0 && !strcmp(buf, "/xdg/cprof"));
	unsetenv("XDG_CACHE_HOME");
}

static void test_store(void)
{
	char src[4096], dst[4096], bid[128], dir[] = "/tmp/cprof-test-cache-XXXXXX";
	size_t ncomp, ndebug, ncomp2, ndebug2;
	Dwarf *dw;
	int fd, out;

	if (libc_debug_file(src, sizeof(src), bid, sizeof(bid)) < 0) {
		printf("note: no libc6-dbg debug file for libc here; store not tested\n");
		return;
	}
	fd = open(src, O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0);
	if (fd < 0)
		return;
	debug_sections(fd, &ncomp, &ndebug);
	if (ncomp == 0) {
		printf("note: %s is not compressed; nothing to cache\n", src);
		close(fd);
		return;
	}
	CHECK(mkdtemp(dir) != NULL);
	setenv("CPROF_CACHE_DIR", dir, 1);
	CHECK(cp_debug_cache_store(fd, bid) == 0);
	CHECK(cp_debug_cache_path(bid, dst, sizeof(dst)) == 0);
	out = open(dst, O_RDONLY | O_CLOEXEC);
	CHECK(out >= 0);
	if (out >= 0) {
		/* Same sections, none compressed, and libdw reads its units. */
		debug_sections(out, &ncomp2, &ndebug2);
		CHECK(ncomp2 == 0 && ndebug2 == ndebug);
		dw = dwarf_begin(out, DWARF_C_READ);
		CHECK(dw != NULL);
		if (dw) {
			Dwarf_Off off = 0, next;
			size_t hsize, units = 0;

			while (dwarf_nextcu(dw, off, &next, &hsize, NULL, NULL, NULL) == 0) {
				units++;
				off = next;
			}
			CHECK(units > 100);
			dwarf_end(dw);
		}
		close(out);
	}
	/* No temporary file is left next to it. */
	{
		DIR *d = opendir(dir);
		struct dirent *e;
		int files = 0;

		while (d && (e = readdir(d)))
			files += e->d_name[0] != '.';
		if (d)
			closedir(d);
		CHECK(files == 1);
	}
	/* A file with little or nothing compressed is not worth a copy. */
	{
		int self = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);

		CHECK(self >= 0 && cp_debug_cache_store(self, "00112233") == -ENOENT);
		if (self >= 0)
			close(self);
	}
	unsetenv("CPROF_CACHE_DIR");
	rm_rf(dir);
	close(fd);
}

int main(void)
{
	elf_version(EV_CURRENT);
	test_paths();
	test_store();
	return check_done("debug_cache");
}
