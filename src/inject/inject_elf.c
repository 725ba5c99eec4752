/* A dynamic symbol's value in an ELF file (.dynsym), read with libelf as hostile input. */
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <string.h>
#include <unistd.h>

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

/* The PT_INTERP string of elf into buf ("" when it has none). 0 or -ENOEXEC. */
static int interp_of(Elf *elf, int fd, char *buf, size_t size)
{
	size_t n;

	buf[0] = '\0';
	if (elf_getphdrnum(elf, &n) != 0)
		return -ENOEXEC;
	for (size_t i = 0; i < n; i++) {
		GElf_Phdr ph;
		ssize_t got;

		if (!gelf_getphdr(elf, (int)i, &ph) || ph.p_type != PT_INTERP)
			continue;
		if (ph.p_filesz == 0 || ph.p_filesz >= size)
			return -ENOEXEC;
		got = pread(fd, buf, ph.p_filesz, (off_t)ph.p_offset);
		if (got != (ssize_t)ph.p_filesz)
			return -ENOEXEC;
		buf[got] = '\0';
		return 0;
	}
	return 0;
}

int cp_inject_check_program(const char *path, char *why, size_t whylen)
{
	char interp[256];
	const char *base;
	Elf *elf;
	int fd, err;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return 0;	/* the exec says why */
	if (elf_version(EV_CURRENT) == EV_NONE || !(elf = elf_begin(fd, ELF_C_READ_MMAP, NULL))) {
		close(fd);
		return 0;
	}
	/* Not ELF (a script): its interpreter is what runs, and the loader decides there. */
	err = elf_kind(elf) == ELF_K_ELF ? interp_of(elf, fd, interp, sizeof(interp)) : -ENOEXEC;
	elf_end(elf);
	close(fd);
	if (err < 0)
		return 0;
	if (!interp[0])
		return inject_why(why, whylen, -ENOTSUP, "static binary: no dynamic loader to "
				  "preload the sampler with");
	base = strrchr(interp, '/') ? strrchr(interp, '/') + 1 : interp;
	if (strncmp(base, "ld-linux", 8) != 0)
		return inject_why(why, whylen, -ENOTSUP, "%s libc (loader %s): only glibc is "
				  "supported", strncmp(base, "ld-musl", 7) == 0 ? "musl" : "another",
				  interp);
	return 0;
}
