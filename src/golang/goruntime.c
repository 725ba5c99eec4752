/* Opening a Go program's runtime: its binary, version, layouts, globals and status strings. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "go_internal.h"
#include "maps.h"
#include "mem.h"

#define BUILDINFO_MAGIC "\xff Go buildinf:"
#define BUILDINFO_MAGIC_LEN 14
/* Most bytes of one status or wait reason string we read. */
#define MAX_STATUS_LEN 128

/* The mapping of pid's executable at file offset 0, or NULL. */
static const struct cp_map *exe_map(int pid, const struct cp_maps *maps)
{
	char path[64];
	struct stat st;

	snprintf(path, sizeof(path), "/proc/%d/exe", pid);
	if (stat(path, &st) < 0)
		return NULL;
	for (size_t i = 0; i < maps->n; i++) {
		const struct cp_map *m = &maps->v[i];

		if (m->offset == 0 && m->inode == (uint64_t)st.st_ino && cp_map_is_file(m))
			return m;
	}
	return NULL;
}

/* The load bias of a position-independent binary mapped at map (0 for ET_EXEC). */
static int load_bias(Elf *elf, const struct cp_map *map, uint64_t *bias)
{
	GElf_Ehdr eh;
	size_t n;

	*bias = 0;
	if (!gelf_getehdr(elf, &eh))
		return -EINVAL;
	if (eh.e_type == ET_EXEC)
		return 0;
	if (elf_getphdrnum(elf, &n) < 0)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		GElf_Phdr ph;

		if (!gelf_getphdr(elf, (int)i, &ph) || ph.p_type != PT_LOAD)
			continue;
		if (map->offset >= (ph.p_offset & ~0xfffull) &&
		    map->offset < ph.p_offset + ph.p_filesz) {
			*bias = map->start - (ph.p_vaddr - ph.p_offset + map->offset);
			return 0;
		}
	}
	return -EINVAL;
}

/* Fill s from section name (no bytes for SHT_NOBITS); false when there is none. */
static bool load_section(Elf *elf, const char *name, struct go_section *s)
{
	GElf_Shdr sh;
	Elf_Scn *scn = cp_elf_section_named(elf, name, &sh);
	Elf_Data *d;

	memset(s, 0, sizeof(*s));
	if (!scn)
		return false;
	s->addr = sh.sh_addr;
	s->size = sh.sh_size;
	if (sh.sh_type != SHT_NOBITS) {
		d = elf_rawdata(scn, NULL);
		if (d && d->d_buf && d->d_size >= sh.sh_size)
			s->data = d->d_buf;
	}
	return true;
}

/* The Go version from .go.buildinfo's inline form (Go 1.18+); false when not there. */
static bool version_from_buildinfo(struct cp_go_runtime *rt)
{
	struct go_section bi;
	uint64_t len = 0;
	unsigned shift = 0;
	size_t at = 32;

	if (!load_section(rt->elf, ".go.buildinfo", &bi) || !bi.data || bi.size < 33 ||
	    memcmp(bi.data, BUILDINFO_MAGIC, BUILDINFO_MAGIC_LEN) || !(bi.data[15] & 2))
		return false;
	while (at < bi.size && shift < 63) {
		uint8_t b = bi.data[at++];

		len |= (uint64_t)(b & 0x7f) << shift;
		shift += 7;
		if (!(b & 0x80))
			break;
	}
	if (len == 0 || len >= sizeof(rt->version) || len > bi.size - at)
		return false;
	memcpy(rt->version, bi.data + at, len);
	rt->version[len] = 0;
	return true;
}

/* A Go string (header at runtime address addr) read from the target; NULL when bad. */
static char *read_go_string(const struct cp_go_runtime *rt, uint64_t addr, size_t maxlen)
{
	uint8_t hdr[16];
	uint64_t p, n;
	char *s;

	if (cp_mem_read(rt->mem, addr, hdr, sizeof(hdr)) != (long)sizeof(hdr))
		return NULL;
	p = go_le64(hdr);
	n = go_le64(hdr + 8);
	if (n > maxlen || (n && !p))
		return NULL;
	s = malloc(n + 1);
	if (!s)
		return NULL;
	if (n && cp_mem_read(rt->mem, p, s, n) != (long)n) {
		free(s);
		return NULL;
	}
	s[n] = 0;
	for (uint64_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] >= 0x7f) {
			free(s);
			return NULL;
		}
	return s;
}

/*
 * The array of strings at global name: count entries when known, else as many as read as
 * printable strings. Returns how many were read into out.
 */
static size_t read_string_array(const struct cp_go_runtime *rt, const char *name, size_t count,
				char **out)
{
	uint64_t addr;
	size_t n = 0, max;

	if (cp_go_global(rt, name, &addr) < 0)
		return 0;
	/* .symtab's size of the array, else the version's count, else what reads as strings. */
	for (size_t i = 0; !count && i < rt->nglobals; i++)
		if (!strcmp(rt->globals[i].name, name) && rt->globals[i].size % 16 == 0)
			count = rt->globals[i].size / 16;
	max = count ? count : GO_MAX_STRINGS;
	if (max > GO_MAX_STRINGS)
		max = GO_MAX_STRINGS;
	for (; n < max; n++) {
		out[n] = read_go_string(rt, addr + 16 * n, MAX_STATUS_LEN);
		if (!out[n])
			break;
	}
	return n;
}

/* The layouts and globals: DWARF and .symtab when present, else the version's table. */
static int learn_runtime(struct cp_go_runtime *rt, char *why, size_t whylen)
{
	bool have_layout = true;
	int err;

	rt->table = go_version_find(rt->version);
	rt->funcid_wrapper = go_minor(rt->version) >= 23 ? GO_FUNCID_WRAPPER + 1 :
		GO_FUNCID_WRAPPER;
	err = go_layout_from_dwarf(rt->elf, &rt->layout);
	if (err == 0)
		rt->layout_from_dwarf = true;
	else if (rt->table && go_layout_valid(&rt->table->layout))
		rt->layout = rt->table->layout;
	else
		have_layout = false;
	err = go_globals_from_symtab(rt);
	if (err == -ENOMEM)
		return err;
	rt->has_symtab = err == 0;
	if (!rt->has_symtab)
		go_globals_from_code(rt);
	/* A version without a table: what its data and its goroutines show. */
	if (!have_layout || cp_go_global(rt, "runtime.allgs", &(uint64_t){ 0 }) < 0) {
		err = go_discover(rt, have_layout, why, whylen);
		if (err)
			return err;
		rt->layout_learned = !have_layout;
	}
	return go_layout_valid(&rt->layout) ? 0 : -ENOTSUP;
}

int go_binary_load(struct cp_go_runtime *rt, const char *name, char *why, size_t whylen)
{
	GElf_Shdr sh;

	elf_version(EV_CURRENT);
	rt->elf = elf_begin(rt->fd, ELF_C_READ_MMAP, NULL);
	if (!rt->elf || elf_kind(rt->elf) != ELF_K_ELF)
		return -ENOENT;
	if (!cp_elf_section_named(rt->elf, ".go.buildinfo", &sh) && !cp_elf_section_named(rt->elf, ".note.go.buildid", &sh))
		return -ENOENT;
	rt->has_pcln = cp_gopclntab_from_elf(&rt->pcln, rt->elf) == 0;
	rt->has_dwarf = cp_elf_section_named(rt->elf, ".debug_info", &sh) != NULL ||
		cp_elf_section_named(rt->elf, ".zdebug_info", &sh) != NULL;
	load_section(rt->elf, ".text", &rt->text);
	load_section(rt->elf, ".rodata", &rt->rodata);
	load_section(rt->elf, ".data", &rt->data);
	load_section(rt->elf, ".noptrdata", &rt->noptrdata);
	load_section(rt->elf, ".bss", &rt->bss);
	load_section(rt->elf, ".noptrbss", &rt->noptrbss);
	if (!rt->has_pcln || !rt->text.data) {
		snprintf(why, whylen, "%s has no readable .gopclntab", name);
		return -ENOTSUP;
	}
	if (!version_from_buildinfo(rt)) {
		snprintf(why, whylen, "%s: no Go version in .go.buildinfo (before go1.18?)", name);
		return -ENOTSUP;
	}
	return 0;
}

/* Open the binary behind map: ELF, sections, .gopclntab, version, load bias. */
static int open_binary(struct cp_go_runtime *rt, const struct cp_map *map, char *why,
		       size_t whylen)
{
	char path[PATH_MAX];
	int err;

	rt->fd = cp_map_open(rt->pid, map, path, sizeof(path));
	if (rt->fd < 0) {
		snprintf(why, whylen, "cannot open %s", map->path);
		return rt->fd;
	}
	err = go_binary_load(rt, map->path, why, whylen);
	if (err == 0 || err == -ENOTSUP) {
		if (load_bias(rt->elf, map, &rt->bias) < 0)
			return -ENOENT;
	}
	return err;
}

int cp_go_open(int pid, const struct cp_maps *maps, const struct cp_mem *mem,
	       struct cp_go_runtime **out, char *why, size_t whylen)
{
	struct cp_go_runtime *rt;
	const struct cp_map *map;
	char dummy[8];
	int err;

	if (!why || whylen == 0) {
		why = dummy;
		whylen = sizeof(dummy);
	}
	why[0] = 0;
	if (!maps || !mem || !out)
		return -EINVAL;
	map = exe_map(pid, maps);
	if (!map)
		return -ENOENT;
	rt = calloc(1, sizeof(*rt));
	if (!rt)
		return -ENOMEM;
	rt->pid = pid;
	rt->maps = maps;
	rt->mem = mem;
	rt->fd = -1;
	err = open_binary(rt, map, why, whylen);
	if (!err)
		err = learn_runtime(rt, why, whylen);
	if (err) {
		cp_go_close(rt);
		return err;
	}
	rt->nstatus = read_string_array(rt, "runtime.gStatusStrings",
					rt->table ? rt->table->nstatus_strings : 0,
					rt->status_strs);
	rt->nreasons = read_string_array(rt, "runtime.waitReasonStrings",
					 rt->table ? rt->table->nwait_reasons : 0,
					 rt->reason_strs);
	*out = rt;
	return 0;
}

int cp_go_probe(int pid, const struct cp_maps *maps, char *version, size_t len)
{
	struct cp_go_runtime rt = { .pid = pid, .maps = maps, .fd = -1 };
	const struct cp_map *map = maps ? exe_map(pid, maps) : NULL;
	char why[8];
	int err;

	if (!map)
		return -ENOENT;
	err = open_binary(&rt, map, why, sizeof(why));
	if (err != -ENOENT && version && len)
		snprintf(version, len, "%s", rt.version[0] ? rt.version : "unknown");
	if (rt.elf)
		elf_end(rt.elf);
	if (rt.fd >= 0)
		close(rt.fd);
	return err == -ENOENT ? -ENOENT : 0;
}

void cp_go_close(struct cp_go_runtime *rt)
{
	if (!rt)
		return;
	for (size_t i = 0; i < rt->nglobals; i++)
		free(rt->globals[i].name);
	free(rt->globals);
	for (size_t i = 0; i < rt->nstatus; i++)
		free(rt->status_strs[i]);
	for (size_t i = 0; i < rt->nreasons; i++)
		free(rt->reason_strs[i]);
	free(rt->stacks);
	free(rt->stack_arena);
	free(rt->memo);
	free(rt->pool);
	if (rt->elf)
		elf_end(rt->elf);
	if (rt->fd >= 0)
		close(rt->fd);
	free(rt);
}

const char *cp_go_version(const struct cp_go_runtime *rt)
{
	return rt->version;
}

int cp_go_global(const struct cp_go_runtime *rt, const char *name, uint64_t *addr)
{
	for (size_t i = 0; i < rt->nglobals; i++)
		if (!strcmp(rt->globals[i].name, name)) {
			*addr = rt->globals[i].addr;
			return 0;
		}
	return -ENOENT;
}
