/* On-disk cache of debug files with their compressed DWARF sections inflated once. */
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "atomic_file.h"
#include "cache_dir.h"
#include "debug_cache.h"

/* Below this much compressed DWARF the inflate costs less than opening a second file. */
#define CACHE_MIN_COMPRESSED (256u << 10)
/* The copy is written to disk: refuse absurd sizes a hostile header could ask for. */
#define CACHE_MAX_INFLATED (1ull << 30)

static int cache_file(const char *build_id, char *buf, size_t size, bool create_dir)
{
	char name[NAME_MAX + 1];

	if (!build_id || strlen(build_id) < 4 || strspn(build_id, "0123456789abcdef") !=
							  strlen(build_id))
		return -EINVAL;
	if (snprintf(name, sizeof(name), "%s.debug", build_id) >= (int)sizeof(name))
		return -ENAMETOOLONG;
	return cp_cache_path(buf, size, NULL, name, create_dir);
}

int cp_debug_cache_path(const char *build_id, char *buf, size_t size)
{
	return cache_file(build_id, buf, size, false);
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
	char path[4096 + 80];
	struct cp_atomic_file out;
	uint64_t packed, inflated;
	Elf *in;
	int err;

	if (!build_id || strlen(build_id) < 4 || strspn(build_id, "0123456789abcdef") !=
							  strlen(build_id))
		return -EINVAL;
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
	err = cache_file(build_id, path, sizeof(path), true);
	if (err == 0)
		err = cp_atomic_file_open(&out, path, 0600);
	if (err < 0) {
		elf_end(in);
		return err;
	}
	err = write_inflated(in, out.fd);
	elf_end(in);
	if (err < 0) {
		cp_atomic_file_abort(&out);
		return err;
	}
	return cp_atomic_file_commit(&out);
}
