/* A dynamic symbol's value in an ELF file (.dynsym), read with libelf as hostile input. */
#include <errno.h>
#include <gelf.h>
#include <libelf.h>
#include <string.h>

#include "inject_internal.h"

/* The lowest PT_LOAD address, page aligned: what the mapping at file offset 0 starts at. */
static int load_vaddr_of(Elf *elf, uint64_t *out)
{
	size_t n;
	bool found = false;
	uint64_t low = 0;

	if (elf_getphdrnum(elf, &n) != 0)
		return -ENOEXEC;
	for (size_t i = 0; i < n; i++) {
		GElf_Phdr ph;

		if (!gelf_getphdr(elf, (int)i, &ph) || ph.p_type != PT_LOAD)
			continue;
		if (!found || ph.p_vaddr < low)
			low = ph.p_vaddr;
		found = true;
	}
	if (!found)
		return -ENOEXEC;
	*out = low & ~0xfffull;
	return 0;
}

static int find_dynsym(Elf *elf, const char *name, uint64_t *value)
{
	Elf_Scn *scn = NULL;

	while ((scn = elf_nextscn(elf, scn))) {
		GElf_Shdr sh;
		Elf_Data *data;
		size_t n;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_DYNSYM || !sh.sh_entsize)
			continue;
		data = elf_getdata(scn, NULL);
		if (!data)
			return -ENOEXEC;
		n = data->d_size / sh.sh_entsize;
		for (size_t i = 0; i < n; i++) {
			GElf_Sym s;
			const char *sn;

			if (!gelf_getsym(data, (int)i, &s) || s.st_shndx == SHN_UNDEF ||
			    !s.st_value)
				continue;
			if (GELF_ST_TYPE(s.st_info) != STT_FUNC &&
			    GELF_ST_TYPE(s.st_info) != STT_GNU_IFUNC &&
			    GELF_ST_TYPE(s.st_info) != STT_OBJECT)
				continue;
			sn = elf_strptr(elf, sh.sh_link, s.st_name);
			if (sn && strcmp(sn, name) == 0) {
				if (GELF_ST_TYPE(s.st_info) == STT_GNU_IFUNC)
					return -ENOTSUP;
				*value = s.st_value;
				return 0;
			}
		}
	}
	return -ENOENT;
}

int cp_inject_elf_dynsym(int fd, const char *name, uint64_t *value, uint64_t *load_vaddr)
{
	Elf *elf;
	int err;

	if (elf_version(EV_CURRENT) == EV_NONE)
		return -ENOTSUP;
	elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	if (!elf)
		return -ENOEXEC;
	err = elf_kind(elf) == ELF_K_ELF ? 0 : -ENOEXEC;
	if (!err)
		err = load_vaddr_of(elf, load_vaddr);
	if (!err)
		err = find_dynsym(elf, name, value);
	elf_end(elf);
	return err;
}
