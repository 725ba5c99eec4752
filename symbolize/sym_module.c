/* Modules: the ELF file behind a mapping, found once per build and shared by processes. */
#include <elfutils/libdwelf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proc.h"
#include "sym_internal.h"

/*
 * Caps on what we accept from files that belong to someone else: a module with more program
 * headers than this is not something a dynamic loader would map; a vDSO is small.
 */
#define MAX_PHDRS 512
#define MAX_VDSO_BYTES (1u << 20)
/*
 * A session that follows many processes (a build under `cprof record`) meets many (process,
 * file) pairs and files: past these counts the bindings, and then the modules, are dropped
 * and rebuilt on demand. Result strings live in the symbolizer's string table, not in the
 * modules, so earlier results stay valid.
 */
#define MAX_BINDINGS 65536
#define MAX_MODULES 1024

static void module_free(struct module *m)
{
	cp_htab_release(&m->addr_h);
	free(m->addrs);
	free(m->frames);
	if (m->disk_fd >= 0)
		close(m->disk_fd);
	free(m->disk_refs);
	free(m->disk_text);
	if (m->sym)
		m->sym->disk_bytes -= m->disk_len;
	if (m->dwfl)
		dwfl_end(m->dwfl);
	free(m->segs);
	free(m->syms);
	free(m->cus);
	free(m->aranges);
	free(m->gopcln);
	free(m->key);
	free(m->path);
	free(m->root);
	free(m->debuglink);
	free(m);
}

void cp_sym_modules_drop(struct cp_symbolizer *sym, bool modules)
{
	free(sym->binds);
	sym->binds = NULL;
	sym->nbinds = sym->binds_alloc = 0;
	cp_htab_release(&sym->bind_h);
	if (!modules)
		return;
	for (size_t i = 0; i < sym->nmods; i++)
		module_free(sym->mods[i]);
	free(sym->mods);
	sym->mods = NULL;
	sym->nmods = sym->mods_alloc = 0;
	cp_htab_release(&sym->mod_h);
	sym->naddrs = 0;
}

static bool module_key_eq(const void *ctx, uint32_t idx, const void *key)
{
	return !strcmp(((const struct cp_symbolizer *)ctx)->mods[idx]->key, key);
}

static struct module *module_lookup(struct cp_symbolizer *sym, const char *key, uint32_t hash)
{
	int64_t i = cp_htab_find(&sym->mod_h, hash, module_key_eq, sym, key);

	return i < 0 ? NULL : sym->mods[i];
}

/* Add m, not yet present, under its key's hash. 0 or -ENOMEM (m is then not taken). */
static int module_insert(struct cp_symbolizer *sym, struct module *m, uint32_t hash)
{
	if (cp_grow((void **)&sym->mods, &sym->mods_alloc, sym->nmods + 1, sizeof(*sym->mods)) < 0 ||
	    cp_htab_insert(&sym->mod_h, hash, (uint32_t)sym->nmods) < 0)
		return -ENOMEM;
	sym->mods[sym->nmods++] = m;
	return 0;
}

static int read_segments(Elf *elf, struct module *m)
{
	size_t n;

	if (elf_getphdrnum(elf, &n) || n > MAX_PHDRS)
		return -ENOEXEC;
	m->segs = calloc(n ? n : 1, sizeof(*m->segs));
	if (!m->segs)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		GElf_Phdr ph;

		if (!gelf_getphdr(elf, (int)i, &ph) || ph.p_type != PT_LOAD)
			continue;
		m->segs[m->nsegs++] = (struct segment){ ph.p_vaddr, ph.p_offset, ph.p_filesz };
	}
	return m->nsegs ? 0 : -ENOEXEC;
}

/*
 * Hand fd to libdwfl. Failure is not an error for the module: it keeps its build ID and
 * segments, and lookups return nothing.
 */
static void module_report(struct module *m, int fd, const char *open_path)
{
	void **userdata;

	m->dwfl = dwfl_begin(&cp_sym_dwfl_callbacks);
	if (!m->dwfl) {
		close(fd);
		return;
	}
	dwfl_report_begin(m->dwfl);
	/* Base 0 with add_p_vaddr: libdwfl addresses are then the file's own ELF addresses. */
	m->dmod = dwfl_report_elf(m->dwfl, m->path, open_path, fd, 0, true);
	if (!m->dmod || dwfl_report_end(m->dwfl, NULL, NULL) != 0) {
		if (!m->dmod)
			close(fd);
		dwfl_end(m->dwfl);
		m->dwfl = NULL;
		m->dmod = NULL;
		return;
	}
	dwfl_module_info(m->dmod, &userdata, NULL, NULL, NULL, NULL, NULL, NULL);
	*userdata = m;
}

/*
 * The kernel prints map paths relative to the reader's root: for a process chrooted below
 * ours they start with its root directory, which we strip to get the path its debug links
 * are relative to. In another mount namespace (a container) the path is already its own.
 */
static char *path_in_root(const char *root, const char *path)
{
	char link[PATH_MAX];
	ssize_t n = readlink(root, link, sizeof(link) - 1);

	if (n > 1 && (size_t)n < sizeof(link) - 1) {
		link[n] = '\0';
		if (!strncmp(path, link, (size_t)n) && path[n] == '/')
			return strdup(path + n);
	}
	return strdup(path);
}

/* Longest Go build ID used as a cache name: 2 * 112 + 16 hex digits stay under NAME_MAX. */
#define GO_BUILD_ID_MAX 112

/*
 * Whether id is a Go build ID as the go command writes it: "ACTION/CONTENT" hashes (two or
 * four), each about 20 characters of URL-safe base64, the last a hash of the file's content.
 */
static bool go_build_id_ok(const char *id, size_t n)
{
	static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t part = 0, parts = 0;

	for (size_t i = 0; i <= n; i++) {
		if (i < n && id[i] != '/') {
			if (!id[i] || !strchr(b64, id[i]))
				return false;
			part++;
			continue;
		}
		if (part < 16)
			return false;
		parts++;
		part = 0;
	}
	return parts >= 2;
}

/*
 * The name of the sym_cache file of a binary without a GNU build ID that Go's linker wrote:
 * its Go build ID (the note "Go" of type 4, in .note.go.buildid) in hex, then the file's size
 * in 16 hex digits (a length no GNU build ID has). An ID of another form (a build system that
 * sets -buildid to a constant) could name two builds alike: no name then. False when none.
 */
static bool go_cache_id(Elf *elf, uint64_t size, char *buf)
{
	Elf_Scn *scn = NULL;

	while ((scn = elf_nextscn(elf, scn)) != NULL) {
		GElf_Shdr sh;
		GElf_Nhdr nh;
		size_t off = 0, name_off, desc_off;
		Elf_Data *d;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_NOTE ||
		    (d = elf_getdata(scn, NULL)) == NULL)
			continue;
		while ((off = gelf_getnote(d, off, &nh, &name_off, &desc_off)) > 0) {
			const char *id = (const char *)d->d_buf + desc_off;

			/* The name is "Go" padded with NULs to 4 bytes, its size counting them. */
			if (nh.n_type != 4 || nh.n_namesz < 3 || nh.n_namesz > 4 ||
			    memcmp((const char *)d->d_buf + name_off, "Go", 3))
				continue;
			if (nh.n_descsz > GO_BUILD_ID_MAX || !go_build_id_ok(id, nh.n_descsz))
				return false;
			for (size_t i = 0; i < nh.n_descsz; i++)
				sprintf(buf + 2 * i, "%02x", (unsigned char)id[i]);
			sprintf(buf + 2 * nh.n_descsz, "%016llx", (unsigned long long)size);
			return true;
		}
	}
	return false;
}

/* A module whose own compressed DWARF would inflate past the limit: its symbol table only. */
static void check_inflate(struct module *m, Elf *elf, uint64_t size)
{
	uint64_t inflated;

	if (cp_sym_check_inflate(elf, size, &inflated) < 0)
		cp_sym_refuse_dwarf(m, m->path, inflated, size);
}

/*
 * Open the file behind map and find (or create) its module. The fd is consumed. Returns 0
 * and *out, or -errno (-ENOEXEC: not an ELF file we can use).
 */
static int module_open(struct cp_symbolizer *sym, int pid, const struct cp_map *map, int fd,
		       const char *open_path, struct module **out)
{
	char hex[2 * MAX_BUILD_ID_BYTES + 1];
	char go_id[2 * GO_BUILD_ID_MAX + 17];
	bool has_go_id = false;
	char key[2 * MAX_BUILD_ID_BYTES + 96];
	char dir[64];
	struct module *m;
	struct stat st;
	GElf_Ehdr eh;
	bool has_id;
	const char *link;
	GElf_Word crc = 0;
	uint32_t hash;
	Elf *elf;
	int err;

	if (fstat(fd, &st)) {
		err = -errno;
		close(fd);
		return err;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return -ENOEXEC;
	}
	elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	if (!elf) {
		close(fd);
		return -ENOEXEC;
	}
	if (elf_kind(elf) != ELF_K_ELF || !gelf_getehdr(elf, &eh)) {
		err = -ENOEXEC;
		goto fail_elf;
	}
	has_id = cp_sym_build_id_hex(elf, hex);
	if (!has_id)
		has_go_id = go_cache_id(elf, (uint64_t)st.st_size, go_id);
	if (has_id)
		snprintf(key, sizeof(key), "b:%s", hex);
	else
		snprintf(key, sizeof(key), "f:%llu:%llu:%lld:%lld.%09ld",
			 (unsigned long long)st.st_dev, (unsigned long long)st.st_ino,
			 (long long)st.st_size, (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
	hash = cp_hash_bytes(key, strlen(key), 0);
	m = module_lookup(sym, key, hash);
	if (m) {
		elf_end(elf);
		close(fd);
		*out = m;
		return 0;
	}

	m = calloc(1, sizeof(*m));
	if (m)
		m->disk_fd = -1;
	if (!m) {
		err = -ENOMEM;
		goto fail_elf;
	}
	m->sym = sym;
	m->dev = st.st_dev;
	m->ino = st.st_ino;
	m->key = strdup(key);
	if (cp_proc_dir(pid, dir, sizeof(dir)) < 0 || asprintf(&m->root, "%s/root", dir) < 0)
		m->root = NULL;
	else
		m->path = path_in_root(m->root, map->path);
	link = dwelf_elf_gnu_debuglink(elf, &crc);
	if (link) {
		m->debuglink = strndup(link, NAME_MAX);
		m->debuglink_crc = crc;
	}
	if (!m->key || !m->path || !m->root || (link && !m->debuglink)) {
		err = -ENOMEM;
		goto fail_mod;
	}
	if (has_id) {
		m->build_id = cp_sym_intern(sym, hex);
		if (!m->build_id) {
			err = -ENOMEM;
			goto fail_mod;
		}
		m->cache_id = m->build_id;
	} else if (has_go_id) {
		m->cache_id = cp_sym_intern(sym, go_id);
		if (!m->cache_id) {
			err = -ENOMEM;
			goto fail_mod;
		}
	}
	err = read_segments(elf, m);
	if (err)
		goto fail_mod;
	check_inflate(m, elf, (uint64_t)st.st_size);
	elf_end(elf);
	elf = NULL;

	err = module_insert(sym, m, hash);
	if (err) {
		close(fd);
		module_free(m);
		return err;
	}
	module_report(m, fd, open_path);
	*out = m;
	return 0;

fail_mod:
	module_free(m);
fail_elf:
	if (elf)
		elf_end(elf);
	close(fd);
	return err;
}

static uint64_t map_dev(const struct cp_map *map)
{
	return ((uint64_t)map->dev_major << 32) | map->dev_minor;
}

/*
 * The vDSO is not a file: copy its image out of the process into a memfd, which libdwfl can
 * read like one. Returns an fd or -errno.
 */
static int vdso_fd(int pid, const struct cp_map *map)
{
	char path[64];
	size_t size = map->end - map->start;
	void *buf;
	ssize_t r;
	int mem, fd;

	if (map->end <= map->start || size > MAX_VDSO_BYTES)
		return -EFBIG;
	if (cp_proc_dir(pid, path, sizeof(path) - 4) < 0)
		return -ESRCH;
	strcat(path, "/mem");
	mem = open(path, O_RDONLY | O_CLOEXEC);
	if (mem < 0)
		return -errno;
	buf = malloc(size);
	if (!buf) {
		close(mem);
		return -ENOMEM;
	}
	r = pread(mem, buf, size, (off_t)map->start);
	close(mem);
	if (r != (ssize_t)size) {
		free(buf);
		return r < 0 ? -errno : -EIO;
	}
	fd = memfd_create("cprof-vdso", MFD_CLOEXEC);
	if (fd < 0) {
		fd = -errno;
	} else if (write(fd, buf, size) != (ssize_t)size) {
		close(fd);
		fd = -EIO;
	}
	free(buf);
	return fd;
}

bool cp_sym_is_vdso(const struct cp_map *map)
{
	return !strcmp(map->path, "[vdso]");
}

/* What a binding is looked up by: the process and the mapped file as its maps name it. */
struct binding_key {
	int pid;
	uint64_t dev;
	uint64_t ino;
	const char *path;
};

static bool binding_eq(const void *ctx, uint32_t idx, const void *key)
{
	const struct binding *b = &((const struct cp_symbolizer *)ctx)->binds[idx];
	const struct binding_key *k = key;

	return b->pid == k->pid && b->dev == k->dev && b->ino == k->ino && !strcmp(b->path, k->path);
}

/* Open the file behind map (or the vDSO's image) and find or make its module in *m. */
static int module_of_file(struct cp_symbolizer *sym, int pid, const struct cp_map *map,
			  struct module **m)
{
	char open_path[PATH_MAX];
	int fd = -1, err;

	if (cp_sym_is_vdso(map)) {
		snprintf(open_path, sizeof(open_path), "[vdso]");
		err = fd = vdso_fd(pid, map);
	} else {
		/* Race-free: the mapped file itself, never what its path names meanwhile. */
		err = fd = cp_map_open(pid, map, open_path, sizeof(open_path));
	}
	if (err >= 0)
		err = module_open(sym, pid, map, fd, open_path, m);
	return err;
}

int cp_sym_module_for_map(struct cp_symbolizer *sym, int pid, const struct cp_map *map,
			  struct module **out, int *why, const char **path)
{
	struct binding_key k = { pid, map_dev(map), map->inode, map->path };
	uint32_t h = cp_hash_bytes(map->path, strlen(map->path),
				   cp_hash_mix(cp_hash_mix((uint64_t)(unsigned)pid, k.dev), k.ino));
	int64_t i = cp_htab_find(&sym->bind_h, h, binding_eq, sym, &k);
	struct module *m = NULL;
	struct binding *b;
	int err;

	if (i >= 0) {
		b = &sym->binds[i];
		*out = b->mod;
		*why = b->err;
		*path = b->path;
		return 0;
	}
	if (sym->nbinds >= MAX_BINDINGS || sym->nmods >= MAX_MODULES)
		cp_sym_modules_drop(sym, sym->nmods >= MAX_MODULES);
	err = module_of_file(sym, pid, map, &m);
	if (err == -ENOMEM)
		return err;
	if (cp_grow((void **)&sym->binds, &sym->binds_alloc, sym->nbinds + 1,
		    sizeof(*sym->binds)) < 0)
		return -ENOMEM;
	b = &sym->binds[sym->nbinds];
	*b = (struct binding){ pid, k.dev, k.ino, cp_sym_intern(sym, map->path), m, err };
	if (!b->path || cp_htab_insert(&sym->bind_h, h, (uint32_t)sym->nbinds) < 0)
		return -ENOMEM;
	sym->nbinds++;
	*out = m;
	*why = err;
	*path = b->path;
	return 0;
}

bool cp_sym_module_bias(const struct cp_symbolizer *sym, const struct module *m,
			const struct cp_map *map, uint64_t off, uint64_t *bias)
{
	for (size_t i = 0; i < m->nsegs; i++) {
		const struct segment *s = &m->segs[i];
		uint64_t aligned = s->offset & ~(sym->page_size - 1);

		if (off >= aligned && off - aligned < s->filesz + (s->offset - aligned)) {
			*bias = map->start - map->offset - s->vaddr + s->offset;
			return true;
		}
	}
	return false;
}
