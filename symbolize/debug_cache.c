/* On-disk cache of debug files with their compressed DWARF sections inflated once. */
#include "debug_cache.h"

#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Below this much compressed DWARF the inflate costs less than opening a second file. */
#define CACHE_MIN_COMPRESSED (256u << 10)
/* The copy is written to disk: refuse absurd sizes a hostile header could ask for. */
#define CACHE_MAX_INFLATED (1ull << 30)

int cp_debug_cache_mkdir(char *path)
{
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0700) < 0 && errno != EEXIST) {
			*p = '/';
			return -errno;
		}
		*p = '/';
	}
	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

int cp_debug_cache_dir(char *buf, size_t size)
{
	const char *env = getenv("CPROF_CACHE_DIR");
	int n;

	if (env) {
		if (!*env)
			return -ENOENT;
		n = snprintf(buf, size, "%s", env);
	} else if ((env = getenv("XDG_CACHE_HOME")) && *env == '/') {
		n = snprintf(buf, size, "%s/cprof", env);
	} else if ((env = getenv("HOME")) && *env == '/') {
		n = snprintf(buf, size, "%s/.cache/cprof", env);
	} else {
		return -ENOENT;
	}
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

int cp_debug_cache_path(const char *build_id, char *buf, size_t size)
{
	char dir[4096];
	int n, err;

	if (!build_id || strlen(build_id) < 4 || strspn(build_id, "0123456789abcdef") !=
							  strlen(build_id))
		return -EINVAL;
	err = cp_debug_cache_dir(dir, sizeof(dir));
	if (err < 0)
		return err;
	n = snprintf(buf, size, "%s/%s.debug", dir, build_id);
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

/* Compressed bytes of the .debug_* sections, and what they inflate to. */
static void count_compressed(Elf *elf, uint64_t *packed, uint64_t *inflated)
{
	size_t shstrndx;
	Elf_Scn *scn = NULL;

	*packed = *inflated = 0;
	if (elf_getshdrstrndx(elf, &shstrndx) < 0)
		return;
	while ((scn = elf_nextscn(elf, scn))) {
		GElf_Shdr sh;
		GElf_Chdr ch;
		const char *name;

		if (!gelf_getshdr(scn, &sh) || !(sh.sh_flags & SHF_COMPRESSED))
			continue;
		name = elf_strptr(elf, shstrndx, sh.sh_name);
		if (!name || strncmp(name, ".debug_", 7) || !gelf_getchdr(scn, &ch))
			continue;
		*packed += sh.sh_size;
		*inflated += ch.ch_size;
	}
}

/* Write in's sections, decompressed, as a new ELF file on out_fd. */
static int write_inflated(Elf *in, int out_fd)
{
	GElf_Ehdr eh;
	size_t phnum, shstrndx;
	Elf_Scn *scn = NULL;
	Elf *out;
	int err = -EIO;

	if (!gelf_getehdr(in, &eh) || elf_getphdrnum(in, &phnum) < 0 ||
	    elf_getshdrstrndx(in, &shstrndx) < 0 || shstrndx >= SHN_LORESERVE)
		return -ENOTSUP;
	out = elf_begin(out_fd, ELF_C_WRITE, NULL);
	if (!out)
		return -EIO;
	if (!gelf_newehdr(out, gelf_getclass(in)))
		goto done;
	if (phnum) {
		if (!gelf_newphdr(out, phnum))
			goto done;
		for (size_t i = 0; i < phnum; i++) {
			GElf_Phdr ph;

			if (!gelf_getphdr(in, (int)i, &ph) || !gelf_update_phdr(out, (int)i, &ph))
				goto done;
		}
	}
	while ((scn = elf_nextscn(in, scn))) {
		Elf_Scn *ns;
		Elf_Data *d = NULL;
		GElf_Shdr sh;

		if (!gelf_getshdr(scn, &sh))
			goto done;
		if ((sh.sh_flags & SHF_COMPRESSED) && sh.sh_type != SHT_NOBITS) {
			if (elf_compress(scn, 0, 0) < 0 || !gelf_getshdr(scn, &sh))
				goto done;
		}
		ns = elf_newscn(out);
		if (!ns)
			goto done;
		/* The data stays owned by in, which outlives the write. */
		while ((d = elf_getdata(scn, d))) {
			Elf_Data *nd = elf_newdata(ns);

			if (!nd)
				goto done;
			*nd = *d;
		}
		if (!gelf_update_shdr(ns, &sh))
			goto done;
	}
	eh.e_shstrndx = (GElf_Half)shstrndx;
	if (!gelf_update_ehdr(out, &eh))
		goto done;
	if (elf_update(out, ELF_C_WRITE) < 0)
		goto done;
	err = 0;
done:
	elf_end(out);
	return err;
}

int cp_debug_cache_store(int fd, const char *build_id)
{
	char path[4096 + 80], tmp[4096 + 96];
	uint64_t packed, inflated;
	Elf *in;
	int out_fd, err;

	err = cp_debug_cache_path(build_id, path, sizeof(path));
	if (err < 0)
		return err;
	elf_version(EV_CURRENT);
	in = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	if (!in)
		return -EIO;
	if (elf_kind(in) != ELF_K_ELF) {
		elf_end(in);
		return -ENOENT;
	}
	count_compressed(in, &packed, &inflated);
	if (packed < CACHE_MIN_COMPRESSED || inflated > CACHE_MAX_INFLATED) {
		elf_end(in);
		return -ENOENT;
	}
	/* The directory part of path. */
	snprintf(tmp, sizeof(tmp), "%s", path);
	*strrchr(tmp, '/') = '\0';
	err = cp_debug_cache_mkdir(tmp);
	if (err < 0) {
		elf_end(in);
		return err;
	}
	snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path);
	out_fd = mkostemp(tmp, O_CLOEXEC);
	if (out_fd < 0) {
		err = -errno;
		elf_end(in);
		return err;
	}
	err = write_inflated(in, out_fd);
	elf_end(in);
	/* Renamed into place only when complete: readers never see half a file. */
	if (err == 0 && rename(tmp, path) < 0)
		err = -errno;
	if (err < 0) {
		unlink(tmp);
		close(out_fd);
		return err;
	}
	return out_fd;
}
