/* Per-file unwind facts (bytes, PT_LOADs, .eh_frame_hdr), found once and cached by identity. */
#include "modules.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "maps.h"

/* DWARF pointer encodings used by .eh_frame_hdr (LSB "DW_EH_PE_*"). */
#define PE_OMIT 0xff
#define PE_ABSPTR 0x00
#define PE_UDATA2 0x02
#define PE_UDATA4 0x03
#define PE_UDATA8 0x04
#define PE_SDATA2 0x0a
#define PE_SDATA4 0x0b
#define PE_SDATA8 0x0c
#define PE_PCREL 0x10
#define PE_DATAREL 0x30

/* Page granularity of mappings: the kernel maps segments in whole 4 KiB pages on x86-64. */
#define PAGE_MASK_4K (~(uint64_t)0xfff)

/* Files larger than this are not mapped: no real ELF object is, and it bounds our address use. */
#define MODULE_FILE_MAX ((uint64_t)4 << 30)

struct cp_modules {
	struct cp_module **v;
	size_t n;
	size_t alloc;
};

struct cp_modules *cp_modules_new(void)
{
	return calloc(1, sizeof(struct cp_modules));
}

void cp_module_free(struct cp_module *m)
{
	if (!m)
		return;
	if (m->data) {
		if (m->mapped)
			munmap((void *)m->data, m->size);
		else
			free((void *)m->data);
	}
	free(m->path);
	free(m);
}

void cp_modules_free(struct cp_modules *mods)
{
	if (!mods)
		return;
	for (size_t i = 0; i < mods->n; i++)
		cp_module_free(mods->v[i]);
	free(mods->v);
	free(mods);
}

/* Bounds-checked copy out of the file image: false when [off, off + len) is not inside it. */
static bool image_read(const struct cp_module *m, uint64_t off, void *buf, size_t len)
{
	if (off > m->size || len > m->size - off)
		return false;
	memcpy(buf, m->data + off, len);
	return true;
}

/*
 * Read one encoded pointer of the .eh_frame_hdr at file offset *off (ELF vaddr at_vaddr).
 * Only the encodings that linkers emit there are accepted; anything else means "no table".
 */
static bool read_encoded(const struct cp_module *m, uint64_t *off, uint64_t at_vaddr,
			 uint64_t hdr_vaddr, uint8_t enc, uint64_t *val)
{
	uint64_t v;
	size_t len;

	switch (enc & 0x0f) {
	case PE_ABSPTR:
	case PE_UDATA8:
	case PE_SDATA8: {
		uint64_t u;

		len = 8;
		if (!image_read(m, *off, &u, len))
			return false;
		v = u;
		break;
	}
	case PE_UDATA4: {
		uint32_t u;

		len = 4;
		if (!image_read(m, *off, &u, len))
			return false;
		v = u;
		break;
	}
	case PE_SDATA4: {
		int32_t s;

		len = 4;
		if (!image_read(m, *off, &s, len))
			return false;
		v = (uint64_t)(int64_t)s;
		break;
	}
	case PE_UDATA2: {
		uint16_t u;

		len = 2;
		if (!image_read(m, *off, &u, len))
			return false;
		v = u;
		break;
	}
	case PE_SDATA2: {
		int16_t s;

		len = 2;
		if (!image_read(m, *off, &s, len))
			return false;
		v = (uint64_t)(int64_t)s;
		break;
	}
	default:
		return false;
	}
	switch (enc & 0x70) {
	case 0:
		break;
	case PE_PCREL:
		v += at_vaddr;
		break;
	case PE_DATAREL:
		v += hdr_vaddr;
		break;
	default:
		return false;
	}
	*off += len;
	*val = v;
	return true;
}

/* The file offset of ELF virtual address vaddr, through the PT_LOAD that holds it in the file. */
static bool vaddr_to_offset(const struct cp_module *m, uint64_t vaddr, uint64_t *off)
{
	for (size_t i = 0; i < m->nload; i++) {
		const struct cp_module_load *l = &m->load[i];

		if (vaddr >= l->vaddr && vaddr - l->vaddr < l->filesz) {
			*off = l->offset + (vaddr - l->vaddr);
			return true;
		}
	}
	return false;
}

/*
 * Locate the binary search table of .eh_frame_hdr. A header we do not understand leaves
 * has_eh_table false; the frames of that module then have no CFI (libunwind falls back to
 * its frame-pointer heuristics).
 */
static void parse_eh_frame_hdr(struct cp_module *m, const Elf64_Phdr *ph)
{
	uint8_t h[4];
	uint64_t off, start, eh_frame, count, hdr_vaddr = ph->p_vaddr;
	uint64_t avail;

	/* Read through the PT_LOAD mapping rather than p_offset: that is what libunwind reads. */
	if (!vaddr_to_offset(m, hdr_vaddr, &start))
		return;
	off = start;
	if (!image_read(m, off, h, sizeof(h)))
		return;
	off += sizeof(h);
	if (h[0] != 1)			/* version */
		return;
	if (h[1] == PE_OMIT || h[2] == PE_OMIT)
		return;
	/* libunwind's remote lookup reads (int32 start, int32 fde) pairs relative to the header. */
	if (h[3] != (PE_DATAREL | PE_SDATA4))
		return;
	if (!read_encoded(m, &off, hdr_vaddr + (off - start), hdr_vaddr, h[1], &eh_frame))
		return;
	if (!read_encoded(m, &off, hdr_vaddr + (off - start), hdr_vaddr, h[2], &count))
		return;
	/* A corrupt count must not send the search past the section: keep what fits. */
	avail = (ph->p_filesz > off - start) ? ph->p_filesz - (off - start) : 0;
	if (off < m->size && m->size - off < avail)
		avail = m->size - off;
	if (count > avail / 8)
		count = avail / 8;
	if (count == 0)
		return;
	m->has_eh_table = true;
	m->eh_hdr_vaddr = hdr_vaddr;
	m->eh_table_vaddr = hdr_vaddr + (off - start);
	m->fde_count = count;
}

/* Parse the ELF header and program headers. 0 or -ENOEXEC for anything but x86-64 ELF64. */
/* Whether the PT_NOTE segment ph holds Go's build ID note (name "Go", type 4). */
static bool has_go_note(const struct cp_module *m, const Elf64_Phdr *ph)
{
	uint64_t off = ph->p_offset, end = ph->p_offset + ph->p_filesz;

	if (end < off || end > m->size)
		return false;
	while (end - off >= sizeof(Elf64_Nhdr)) {
		Elf64_Nhdr nh;
		uint64_t name = off + sizeof(nh), desc, next;

		memcpy(&nh, m->data + off, sizeof(nh));
		desc = name + ((nh.n_namesz + 3ull) & ~3ull);
		next = desc + ((nh.n_descsz + 3ull) & ~3ull);
		if (next > end)
			return false;
		if (nh.n_type == 4 && (nh.n_namesz == 3 || nh.n_namesz == 4) &&
		    !memcmp(m->data + name, "Go", 3))
			return true;
		off = next;
	}
	return false;
}

static int parse_elf(struct cp_module *m)
{
	Elf64_Ehdr eh;
	Elf64_Phdr ph, eh_frame_ph = { 0 };
	bool have_eh_frame = false;

	if (!image_read(m, 0, &eh, sizeof(eh)))
		return -ENOEXEC;
	if (memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh.e_ident[EI_DATA] != ELFDATA2LSB || eh.e_machine != EM_X86_64)
		return -ENOEXEC;
	if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 || eh.e_phnum == PN_XNUM)
		return -ENOEXEC;

	m->min_vaddr = UINT64_MAX;
	m->max_vaddr = 0;
	for (unsigned int i = 0; i < eh.e_phnum; i++) {
		uint64_t off = eh.e_phoff + (uint64_t)i * sizeof(ph);

		if (off < eh.e_phoff || !image_read(m, off, &ph, sizeof(ph)))
			return -ENOEXEC;
		if (ph.p_type == PT_LOAD && m->nload < CP_MODULE_MAX_LOADS) {
			struct cp_module_load *l = &m->load[m->nload];

			if (ph.p_vaddr + ph.p_memsz < ph.p_vaddr || ph.p_filesz > ph.p_memsz)
				continue;
			l->vaddr = ph.p_vaddr;
			l->memsz = ph.p_memsz;
			l->offset = ph.p_offset;
			l->filesz = ph.p_filesz;
			l->exec = ph.p_flags & PF_X;
			m->nload++;
			if (ph.p_vaddr < m->min_vaddr)
				m->min_vaddr = ph.p_vaddr;
			if (ph.p_vaddr + ph.p_memsz > m->max_vaddr)
				m->max_vaddr = ph.p_vaddr + ph.p_memsz;
		} else if (ph.p_type == PT_NOTE && !m->is_go) {
			m->is_go = has_go_note(m, &ph);
		} else if (ph.p_type == PT_GNU_EH_FRAME && !have_eh_frame) {
			eh_frame_ph = ph;
			have_eh_frame = true;
		}
	}
	if (m->nload == 0)
		return -ENOEXEC;
	if (have_eh_frame)
		parse_eh_frame_hdr(m, &eh_frame_ph);
	return 0;
}

/* Section i's header, bounds-checked. */
static bool section(const struct cp_module *m, const Elf64_Ehdr *eh, unsigned int i,
		    Elf64_Shdr *sh)
{
	if (i >= eh->e_shnum || !image_read(m, eh->e_shoff + (uint64_t)i * sizeof(*sh), sh,
					    sizeof(*sh)))
		return false;
	return sh->sh_offset <= m->size && sh->sh_size <= m->size - sh->sh_offset;
}

/* The [start, end) of the functions cp_module_go_root names, from .symtab. */
static void load_go_roots(struct cp_module *m)
{
	static const char *const names[] = {
		"runtime.goexit.abi0", "runtime.goexit", "runtime.mstart.abi0", "runtime.mstart",
		"runtime.rt0_go.abi0", "runtime.rt0_go", "runtime.mcall",
	};
	Elf64_Ehdr eh;
	Elf64_Shdr sh, str;

	m->go_roots_loaded = true;
	if (!m->data || !image_read(m, 0, &eh, sizeof(eh)) || eh.e_shentsize != sizeof(sh))
		return;
	for (unsigned int i = 0; i < eh.e_shnum; i++) {
		if (!section(m, &eh, i, &sh) || sh.sh_type != SHT_SYMTAB ||
		    sh.sh_entsize != sizeof(Elf64_Sym) || !section(m, &eh, sh.sh_link, &str))
			continue;
		for (uint64_t k = 0; k < sh.sh_size / sizeof(Elf64_Sym); k++) {
			const uint8_t *p = m->data + sh.sh_offset + k * sizeof(Elf64_Sym);
			Elf64_Sym sym;
			const char *name;
			size_t room;

			memcpy(&sym, p, sizeof(sym));
			if (ELF64_ST_TYPE(sym.st_info) != STT_FUNC || sym.st_name >= str.sh_size)
				continue;
			name = (const char *)m->data + str.sh_offset + sym.st_name;
			room = str.sh_size - sym.st_name;
			for (size_t j = 0; j < sizeof(names) / sizeof(*names); j++) {
				if (strnlen(name, room) != strlen(names[j]) || strcmp(name, names[j]) ||
				    m->ngo_roots == CP_MODULE_GO_ROOTS)
					continue;
				m->go_root[m->ngo_roots][0] = sym.st_value;
				m->go_root[m->ngo_roots][1] = sym.st_value + (sym.st_size ? sym.st_size : 1);
				m->ngo_roots++;
			}
		}
		return;
	}
}

bool cp_module_go_root(struct cp_module *m, uint64_t vaddr)
{
	if (!m->is_go)
		return false;
	if (!m->go_roots_loaded)
		load_go_roots(m);
	for (size_t i = 0; i < m->ngo_roots; i++)
		if (vaddr >= m->go_root[i][0] && vaddr < m->go_root[i][1])
			return true;
	return false;
}

int cp_module_bias(const struct cp_module *m, const struct cp_map *map, uint64_t *bias)
{
	/*
	 * The kernel maps the page holding the segment's first file byte at the page holding
	 * its first vaddr, so (vaddr - offset) is preserved within the segment.
	 */
	const struct cp_module_load *l, *found = NULL;

	/* A mapping starts where a segment starts, except after partial munmap/mprotect. */
	for (size_t i = 0; i < m->nload && !found; i++) {
		l = &m->load[i];
		if ((l->offset & PAGE_MASK_4K) == map->offset)
			found = l;
	}
	for (size_t i = 0; i < m->nload && !found; i++) {
		l = &m->load[i];
		if (map->offset >= (l->offset & PAGE_MASK_4K) && map->offset - l->offset < l->filesz)
			found = l;
	}
	if (!found)
		return -ENOENT;
	*bias = map->start - map->offset - (found->vaddr - found->offset);
	return 0;
}

struct cp_module *cp_module_new_image(uint8_t *data, size_t size)
{
	struct cp_module *m = calloc(1, sizeof(*m));

	if (!m) {
		free(data);
		return NULL;
	}
	m->data = data;
	m->size = size;
	m->mapped = false;
	m->err = parse_elf(m);
	return m;
}

static int module_open(struct cp_module *m, int pid, const struct cp_map *map)
{
	char path[4096];
	struct stat st;
	void *p;
	int fd, r;

	fd = cp_map_open(pid, map, path, sizeof(path));
	if (fd < 0)
		return fd;
	if (fstat(fd, &st) != 0) {
		r = -errno;
		goto out;
	}
	if (st.st_size <= 0 || (uint64_t)st.st_size > MODULE_FILE_MAX) {
		r = -EFBIG;
		goto out;
	}
	p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (p == MAP_FAILED) {
		r = -errno;
		goto out;
	}
	m->data = p;
	m->size = (size_t)st.st_size;
	m->mapped = true;
	r = parse_elf(m);
out:
	close(fd);
	return r;
}

static bool same_file(const struct cp_module *m, const struct cp_map *map)
{
	if (m->inode != map->inode || m->dev_major != map->dev_major ||
	    m->dev_minor != map->dev_minor)
		return false;
	return map->inode != 0 || strcmp(m->path, map->path) == 0;
}

int cp_modules_get(struct cp_modules *mods, int pid, const struct cp_map *map,
		   struct cp_module **out)
{
	struct cp_module *m;

	for (size_t i = 0; i < mods->n; i++) {
		if (same_file(mods->v[i], map)) {
			*out = mods->v[i];
			return 0;
		}
	}
	if (mods->n >= CP_MODULES_MAX)
		return -ENOSPC;
	if (mods->n == mods->alloc) {
		size_t alloc = mods->alloc ? mods->alloc * 2 : 32;
		struct cp_module **v = realloc(mods->v, alloc * sizeof(*v));

		if (!v)
			return -ENOMEM;
		mods->v = v;
		mods->alloc = alloc;
	}
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->path = strdup(map->path ? map->path : "");
	if (!m->path) {
		free(m);
		return -ENOMEM;
	}
	m->dev_major = map->dev_major;
	m->dev_minor = map->dev_minor;
	m->inode = map->inode;
	m->err = module_open(m, pid, map);
	if (m->err < 0 && m->data) {
		/* Keep the failure, drop the bytes: nothing will read them. */
		if (m->mapped)
			munmap((void *)m->data, m->size);
		m->data = NULL;
		m->size = 0;
	}
	mods->v[mods->n++] = m;
	*out = m;
	return 0;
}
