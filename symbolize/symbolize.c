/* Symbolization with elfutils libdwfl: one Dwfl per module file, cached by build ID. */
#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwelf.h>
#include <elfutils/libdwfl.h>
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "symbolize.h"
#include "debug_cache.h"
#include "sym_cache.h"
#include "util.h"

/*
 * Caps on what we accept from files that belong to someone else: a module with more program
 * headers than this is not something a dynamic loader would map; the address cache stops
 * growing after MAX_CACHED_ADDRS entries (later lookups are computed, not remembered); DIE
 * trees nested deeper than MAX_SCOPE_DEPTH are cut (corrupt DWARF can nest without end).
 */
#define MAX_PHDRS 512
#define MAX_BUILD_ID_BYTES 64
#define MAX_CACHED_ADDRS (1u << 20)
#define MAX_SCOPE_DEPTH 64
#define MAX_SYMBOLS (8u << 20)
#define MAX_CU_RANGES (4u << 20)
#define MAX_VDSO_BYTES (1u << 20)
/*
 * A session that follows many processes (a build under `cprof record`) meets many (process,
 * file) pairs and files: past these counts the bindings, and then the modules, are dropped
 * and rebuilt on demand. Result strings live in the symbolizer's string pool, not in the
 * modules, so earlier results stay valid.
 */
#define MAX_BINDINGS 65536
#define MAX_MODULES 1024
/* The disk results kept in memory (as read, indexed) over all modules; beyond, not read. */
#define MAX_DISK_BYTES (64u << 20)

/* An intrusive chained hash table: nodes embed struct hnode as their first member. */
struct hnode {
	struct hnode *next;
	uint64_t hash;
};

struct htab {
	struct hnode **b;
	size_t cap;	/* power of two, or 0 before the first insert */
	size_t n;
};

/* An interned string; demangled is computed once, on first use, for mangled names. */
struct str_entry {
	struct hnode node;
	const char *demangled;	/* NULL: not mangled (or not demangled yet, see done) */
	bool demangle_done;
	char s[];
};

/* A PT_LOAD header: enough to turn a file offset into an ELF virtual address. */
struct segment {
	uint64_t vaddr;
	uint64_t offset;
	uint64_t filesz;
};

/* A function symbol, from .symtab / .dynsym / .gnu_debugdata, sorted by address. */
struct symbol {
	uint64_t addr;
	uint64_t size;
	const char *name;	/* in libdwfl's string table: lives as long as the Dwfl */
	int rank;		/* lower is the better name among aliases */
};

/* An address range of a compile unit, for DWARF without (complete) .debug_aranges. */
struct cu_range {
	Dwarf_Addr lo;		/* DWARF addresses: ELF address - dwbias */
	Dwarf_Addr hi;
	Dwarf_Die cudie;
};

/* One entry of .debug_aranges: the unit is looked up only when an address falls in it. */
struct arange {
	Dwarf_Addr lo;		/* DWARF addresses */
	Dwarf_Addr hi;
	Dwarf_Off cu;		/* offset of the unit header in .debug_info */
};

/* One ELF file, shared by every process that maps it. */
struct module {
	struct hnode node;
	char *key;		/* "b:BUILDID" or "f:DEV:INO:SIZE:MTIME" */
	const char *build_id;	/* interned hex, or NULL */
	const char *cache_id;	/* names its sym_cache file: build_id, go_cache_id(), or NULL */
	/* Where the file was found first: used (lazily) to look for its separate debug file. */
	char *path;		/* path inside the process's root */
	char *root;		/* "/proc/PID/root" of that process */
	char *debuglink;	/* .gnu_debuglink file name, or NULL */
	GElf_Word debuglink_crc;
	dev_t dev;
	ino_t ino;
	Dwfl *dwfl;		/* NULL when libdwfl refused the file */
	Dwfl_Module *dmod;
	struct segment *segs;
	size_t nsegs;
	/* libdwfl's symbol lookup scans the whole table each time: we sort it once. */
	struct symbol *syms;
	size_t nsyms;
	bool syms_loaded;
	/* libdw finds CUs by .debug_aranges only, which Clang and rustc do not write. */
	struct cu_range *cus;
	size_t ncus;
	bool cus_loaded;
	/* Our reading of .debug_aranges (libdw's parses every unit's abbreviations first). */
	struct arange *aranges;
	size_t naranges;
	bool aranges_loaded;
	Dwarf_Addr dwbias;
	struct htab addrs;	/* struct addr_entry by ELF address */
	/*
	 * The on-disk results of earlier processes (sym_cache.h), read at the first need and
	 * indexed by address; a record is parsed when its address is first looked up.
	 */
	bool disk_loaded;
	bool disk_has_dwarf;	/* the file says (or we wrote) that the build has DWARF */
	char *disk_text;
	size_t disk_len;
	struct disk_ref *disk_refs;	/* by address, then by place in the file */
	size_t ndisk_refs;
	int disk_fd;		/* open for appending new results, or -1 */
	struct cp_symbolizer *sym;
};

/* An address line of the disk cache, not parsed yet; record NULL once it has been. */
struct disk_ref {
	uint64_t addr;
	char *record;
};

/* Which module a (process, mapped file) pair is; mod NULL with err when unusable. */
struct binding {
	struct hnode node;
	int pid;
	uint64_t dev;
	uint64_t ino;
	const char *path;	/* interned */
	struct module *mod;
	int err;
};

struct addr_entry {
	struct hnode node;
	uint64_t addr;
	size_t n;
	struct cp_sym_frame frames[];
};

struct cp_symbolizer {
	struct htab modules;
	struct htab bindings;
	struct htab strings;
	size_t naddrs;
	size_t disk_bytes;	/* disk_len over all modules */
	uint64_t page_size;
};

static uint64_t hash_bytes(uint64_t h, const void *data, size_t len)
{
	const unsigned char *p = data;

	/* FNV-1a: keys are short and we only need a decent spread. */
	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

#define HASH_INIT 0xcbf29ce484222325ull

static struct hnode *htab_chain(const struct htab *t, uint64_t hash)
{
	if (!t->cap)
		return NULL;
	return t->b[hash & (t->cap - 1)];
}

static int htab_insert(struct htab *t, struct hnode *node)
{
	if (t->n >= t->cap) {
		size_t ncap = t->cap ? t->cap * 2 : 64;
		struct hnode **nb = calloc(ncap, sizeof(*nb));

		if (!nb)
			return -ENOMEM;
		for (size_t i = 0; i < t->cap; i++) {
			struct hnode *e = t->b[i], *next;

			for (; e; e = next) {
				next = e->next;
				e->next = nb[e->hash & (ncap - 1)];
				nb[e->hash & (ncap - 1)] = e;
			}
		}
		free(t->b);
		t->b = nb;
		t->cap = ncap;
	}
	node->next = t->b[node->hash & (t->cap - 1)];
	t->b[node->hash & (t->cap - 1)] = node;
	t->n++;
	return 0;
}

/* Free every node with fn (which must not touch the table), then the table. */
static void htab_release(struct htab *t, void (*fn)(struct hnode *))
{
	for (size_t i = 0; i < t->cap; i++) {
		struct hnode *e = t->b[i], *next;

		for (; e; e = next) {
			next = e->next;
			fn(e);
		}
	}
	free(t->b);
	t->b = NULL;
	t->cap = t->n = 0;
}

static void free_node(struct hnode *n)
{
	free(n);
}

static struct str_entry *intern_entry(struct cp_symbolizer *sym, const char *s)
{
	size_t len = strlen(s);
	uint64_t h = hash_bytes(HASH_INIT, s, len);
	struct str_entry *e;

	for (struct hnode *n = htab_chain(&sym->strings, h); n; n = n->next) {
		e = (struct str_entry *)n;
		if (n->hash == h && !strcmp(e->s, s))
			return e;
	}
	e = calloc(1, sizeof(*e) + len + 1);
	if (!e)
		return NULL;
	e->node.hash = h;
	memcpy(e->s, s, len + 1);
	if (htab_insert(&sym->strings, &e->node)) {
		free(e);
		return NULL;
	}
	return e;
}

/* The interned copy of s, or NULL for NULL or out of memory (the field is then unknown). */
static const char *intern(struct cp_symbolizer *sym, const char *s)
{
	struct str_entry *e;

	if (!s)
		return NULL;
	e = intern_entry(sym, s);
	return e ? e->s : NULL;
}

/* Demangled form of a raw symbol name, interned; the raw name when it is not mangled. */
static const char *intern_demangled(struct cp_symbolizer *sym, const char *raw)
{
	struct str_entry *e = intern_entry(sym, raw);

	if (!e)
		return NULL;
	if (!e->demangle_done) {
		char *d = cp_sym_demangle(raw);

		/* e stays valid while d is interned: the table grows, entries never move. */
		if (d) {
			e->demangled = intern(sym, d);
			free(d);
		}
		e->demangle_done = true;
	}
	return e->demangled ? e->demangled : e->s;
}

static void module_free_node(struct hnode *n)
{
	struct module *m = (struct module *)n;

	htab_release(&m->addrs, free_node);
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
	free(m->key);
	free(m->path);
	free(m->root);
	free(m->debuglink);
	free(m);
}

static void binding_free_node(struct hnode *n)
{
	free(n);
}

struct cp_symbolizer *cp_sym_new(void)
{
	struct cp_symbolizer *sym = calloc(1, sizeof(*sym));
	long ps;

	if (!sym)
		return NULL;
	ps = sysconf(_SC_PAGESIZE);
	sym->page_size = ps > 0 ? (uint64_t)ps : 4096;
	elf_version(EV_CURRENT);
	return sym;
}

void cp_sym_free(struct cp_symbolizer *sym)
{
	if (!sym)
		return;
	htab_release(&sym->bindings, binding_free_node);
	htab_release(&sym->modules, module_free_node);
	htab_release(&sym->strings, free_node);
	free(sym);
}

/* ---- separate debug files ---- */

/* Hex build ID of an ELF into buf (at least 2 * MAX_BUILD_ID_BYTES + 1); false when none. */
static bool elf_build_id_hex(Elf *elf, char *buf)
{
	const void *id;
	ssize_t len = dwelf_elf_gnu_build_id(elf, &id);

	if (len <= 0 || len > MAX_BUILD_ID_BYTES)
		return false;
	for (ssize_t i = 0; i < len; i++)
		sprintf(buf + 2 * i, "%02x", ((const unsigned char *)id)[i]);
	return true;
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
		bool has_id = elf_build_id_hex(elf, hex);

		if (m->build_id && has_id)
			ok = !strcmp(hex, m->build_id);
		else if (!by_build_id && m->debuglink)
			ok = file_crc32(fd) == m->debuglink_crc;
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
	c = cp_debug_cache_store(fd, m->build_id);
	if (c < 0)
		return fd;
	close(c);
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

static const Dwfl_Callbacks dwfl_callbacks = {
	.find_elf = find_elf_none,
	.find_debuginfo = find_debuginfo,
	.section_address = dwfl_offline_section_address,
};

/* ---- modules ---- */

static struct module *module_lookup(struct cp_symbolizer *sym, const char *key)
{
	uint64_t h = hash_bytes(HASH_INIT, key, strlen(key));

	for (struct hnode *n = htab_chain(&sym->modules, h); n; n = n->next) {
		struct module *m = (struct module *)n;

		if (n->hash == h && !strcmp(m->key, key))
			return m;
	}
	return NULL;
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

	m->dwfl = dwfl_begin(&dwfl_callbacks);
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

/*
 * Open the file behind map and find (or create) its module. The fd is consumed. Returns 0
 * and *out, or -errno (-ENOEXEC: not an ELF file we can use).
 */
static int module_open(struct cp_symbolizer *sym, int pid, const struct cp_map *map, int fd,
		       const char *open_path, struct module **out)
{
	char hex[2 * MAX_BUILD_ID_BYTES + 1];
	char key[2 * MAX_BUILD_ID_BYTES + 96];
	char go_id[2 * GO_BUILD_ID_MAX + 17];
	bool has_go_id = false;
	struct module *m;
	struct stat st;
	GElf_Ehdr eh;
	bool has_id;
	const char *link;
	GElf_Word crc = 0;
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
	has_id = elf_build_id_hex(elf, hex);
	if (has_id)
		snprintf(key, sizeof(key), "b:%s", hex);
	else
		snprintf(key, sizeof(key), "f:%llu:%llu:%lld:%lld.%09ld",
			 (unsigned long long)st.st_dev, (unsigned long long)st.st_ino,
			 (long long)st.st_size, (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
	m = module_lookup(sym, key);
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
	if (asprintf(&m->root, "/proc/%d/root", pid) < 0)
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
		m->build_id = intern(sym, hex);
		if (!m->build_id) {
			err = -ENOMEM;
			goto fail_mod;
		}
		m->cache_id = m->build_id;
	} else {
		has_go_id = go_cache_id(elf, (uint64_t)st.st_size, go_id);
	}
	if (has_go_id) {
		m->cache_id = intern(sym, go_id);
		if (!m->cache_id) {
			err = -ENOMEM;
			goto fail_mod;
		}
	}
	err = read_segments(elf, m);
	if (err)
		goto fail_mod;
	elf_end(elf);
	elf = NULL;

	m->node.hash = hash_bytes(HASH_INIT, key, strlen(key));
	err = htab_insert(&sym->modules, &m->node);
	if (err) {
		close(fd);
		module_free_node(&m->node);
		return err;
	}
	module_report(m, fd, open_path);
	*out = m;
	return 0;

fail_mod:
	module_free_node(&m->node);
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
 * The module of map in process pid; *out NULL (and 0 returned) when it cannot be used, with
 * the reason in *why. *path: our copy of map->path, which lives as long as sym.
 */
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
	snprintf(path, sizeof(path), "/proc/%d/mem", pid);
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

static bool is_vdso(const struct cp_map *map)
{
	return !strcmp(map->path, "[vdso]");
}

static void flush_cache(struct cp_symbolizer *sym, bool modules)
{
	htab_release(&sym->bindings, binding_free_node);
	if (modules) {
		htab_release(&sym->modules, module_free_node);
		sym->naddrs = 0;
	}
}

/*
 * The module of map (a file or the vDSO) in process pid; *out NULL (and 0 returned) when it
 * cannot be used, with the reason in *why. *path: map->path interned, lives as long as sym.
 */
static int module_for_map(struct cp_symbolizer *sym, int pid, const struct cp_map *map,
			  struct module **out, int *why, const char **path)
{
	uint64_t h = cp_hash_mix(cp_hash_mix((uint64_t)(unsigned)pid, map_dev(map)), map->inode);
	char open_path[PATH_MAX];
	struct binding *b;
	struct module *m = NULL;
	int fd = -1, err;

	h = hash_bytes(h, map->path, strlen(map->path));
	for (struct hnode *n = htab_chain(&sym->bindings, h); n; n = n->next) {
		b = (struct binding *)n;
		if (n->hash == h && b->pid == pid && b->dev == map_dev(map) &&
		    b->ino == map->inode && !strcmp(b->path, map->path)) {
			*out = b->mod;
			*why = b->err;
			*path = b->path;
			return 0;
		}
	}

	if (sym->bindings.n >= MAX_BINDINGS || sym->modules.n >= MAX_MODULES)
		flush_cache(sym, sym->modules.n >= MAX_MODULES);
	if (is_vdso(map)) {
		snprintf(open_path, sizeof(open_path), "[vdso]");
		err = fd = vdso_fd(pid, map);
	} else {
		err = cp_map_open_path(pid, map, open_path, sizeof(open_path));
		if (!err) {
			/* The path may have been swapped since maps was read: see above. */
			fd = open(open_path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
			err = fd < 0 ? -errno : 0;
		}
	}
	if (err >= 0)
		err = module_open(sym, pid, map, fd, open_path, &m);
	if (err == -ENOMEM)
		return err;

	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->node.hash = h;
	b->pid = pid;
	b->dev = map_dev(map);
	b->ino = map->inode;
	b->path = intern(sym, map->path);
	b->mod = m;
	b->err = err;
	if (!b->path || htab_insert(&sym->bindings, &b->node)) {
		binding_free_node(&b->node);
		return -ENOMEM;
	}
	*out = m;
	*why = err;
	*path = b->path;
	return 0;
}

/*
 * Load bias for file offset off of map: runtime address = ELF vaddr + bias. The segment
 * holding off decides (the kernel maps segments at page-aligned offsets).
 */
static bool module_bias(const struct cp_symbolizer *sym, const struct module *m,
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

/* ---- DWARF lookups ---- */

static bool is_scope_with_code(int tag)
{
	return tag == DW_TAG_subprogram || tag == DW_TAG_inlined_subroutine ||
	       tag == DW_TAG_lexical_block || tag == DW_TAG_entry_point;
}

/*
 * Walk the DIE tree under parent down to pc: chain[depth..] receives the subprogram and
 * inlined-subroutine DIEs that contain pc, outermost first. Only scopes with code are
 * entered, and namespaces when enter_ns (GCC and Clang put out-of-line definitions at the CU
 * level, so namespaces, std's above all, are big and only worth a second look);
 * dwarf_siblingof skips the rest. Returns the new depth.
 */
static int find_scopes(Dwarf_Die *parent, Dwarf_Addr pc, Dwarf_Die *chain, int depth, int level,
		       bool enter_ns)
{
	Dwarf_Die child;

	if (level >= MAX_SCOPE_DEPTH || dwarf_child(parent, &child) != 0)
		return depth;
	do {
		int tag = dwarf_tag(&child);

		if (is_scope_with_code(tag)) {
			if (dwarf_haspc(&child, pc) != 1)
				continue;
			if ((tag == DW_TAG_subprogram || tag == DW_TAG_inlined_subroutine) &&
			    depth < MAX_SCOPE_DEPTH)
				chain[depth++] = child;
			return find_scopes(&child, pc, chain, depth, level + 1, enter_ns);
		}
		if (enter_ns && (tag == DW_TAG_namespace || tag == DW_TAG_module)) {
			int d = find_scopes(&child, pc, chain, depth, level + 1, enter_ns);

			if (d > depth)
				return d;
		}
	} while (dwarf_siblingof(&child, &child) == 0);
	return depth;
}

static void die_names(struct cp_symbolizer *sym, Dwarf_Die *die, struct cp_sym_frame *f)
{
	Dwarf_Attribute a;
	const char *link = NULL, *name = NULL;
	int line;

	if (dwarf_attr_integrate(die, DW_AT_linkage_name, &a) ||
	    dwarf_attr_integrate(die, DW_AT_MIPS_linkage_name, &a))
		link = dwarf_formstring(&a);
	if (dwarf_attr_integrate(die, DW_AT_name, &a))
		name = dwarf_formstring(&a);
	/* A linkage name that is not mangled is an asm label (glibc's __GI_ aliases): the
	 * source name is what users know; the raw one stays in system_name. */
	if (link && (!name || !strncmp(link, "_Z", 2) || !strncmp(link, "_R", 2))) {
		f->system_name = intern(sym, link);
		f->function = intern_demangled(sym, link);
	} else if (link) {
		f->system_name = intern(sym, link);
		f->function = intern(sym, name);
	} else if (name) {
		f->system_name = intern(sym, name);
		f->function = f->system_name;
	}
	if (dwarf_decl_line(die, &line) == 0 && line > 0)
		f->start_line = line;
}

/*
 * Lexically clean path in place: drop "." and empty components, fold "dir/..". Symlinks
 * are not consulted: the path is a build machine's, not ours.
 */
static void clean_path(char *path)
{
	char *comp[PATH_MAX / 2];
	size_t n = 0, len;
	bool abs = path[0] == '/';
	char *save = NULL, *out;

	for (char *c = strtok_r(path, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
		if (!strcmp(c, "."))
			continue;
		if (!strcmp(c, "..") && n > 0 && strcmp(comp[n - 1], ".."))
			n--;
		else if (!(abs && n == 0 && !strcmp(c, "..")) && n < CP_ARRAY_SIZE(comp))
			comp[n++] = c;
	}
	/* Components only move left: copy them down over the original string. */
	out = path;
	if (abs)
		*out++ = '/';
	for (size_t i = 0; i < n; i++) {
		len = strlen(comp[i]);
		memmove(out, comp[i], len);
		out += len;
		if (i + 1 < n)
			*out++ = '/';
	}
	if (out == path)
		*out++ = '.';
	*out = '\0';
}

/* name made absolute with the CU's compilation directory and cleaned, interned. */
static const char *source_path(struct cp_symbolizer *sym, Dwarf_Die *cudie, const char *name)
{
	char buf[PATH_MAX];
	Dwarf_Attribute a;
	const char *dir = NULL;
	int n;

	if (!name)
		return NULL;
	if (name[0] != '/' && dwarf_attr(cudie, DW_AT_comp_dir, &a))
		dir = dwarf_formstring(&a);
	if (dir && *dir)
		n = snprintf(buf, sizeof(buf), "%s/%s", dir, name);
	else
		n = snprintf(buf, sizeof(buf), "%s", name);
	if (n < 0 || n >= (int)sizeof(buf))
		return intern(sym, name);
	clean_path(buf);
	return intern(sym, buf);
}

/* File name number idx of the CU's line program, or NULL. */
static const char *cu_file(Dwarf_Die *cudie, Dwarf_Word idx)
{
	Dwarf_Files *files;
	size_t nfiles;

	if (dwarf_getsrcfiles(cudie, &files, &nfiles) != 0 || idx >= nfiles)
		return NULL;
	return dwarf_filesrc(files, idx, NULL, NULL);
}

static void call_site(struct cp_symbolizer *sym, Dwarf_Die *cudie, Dwarf_Die *inl,
		      struct cp_sym_frame *f)
{
	Dwarf_Attribute a;
	Dwarf_Word w;

	if (dwarf_attr(inl, DW_AT_call_file, &a) && dwarf_formudata(&a, &w) == 0)
		f->file = source_path(sym, cudie, cu_file(cudie, w));
	if (dwarf_attr(inl, DW_AT_call_line, &a) && dwarf_formudata(&a, &w) == 0 && w <= INT_MAX)
		f->line = (int)w;
}

static int cu_range_cmp(const void *a, const void *b)
{
	const struct cu_range *x = a, *y = b;

	return (x->lo > y->lo) - (x->lo < y->lo);
}

/* Index every compile unit of m by its address ranges. Once per module. */
static void load_cu_ranges(struct module *m)
{
	Dwarf *dw;
	Dwarf_CU *cu = NULL;
	Dwarf_Die cudie;
	uint8_t type;
	size_t cap = 0;

	m->cus_loaded = true;
	dw = dwfl_module_getdwarf(m->dmod, &m->dwbias);
	if (!dw)
		return;
	while (dwarf_get_units(dw, cu, &cu, NULL, &type, &cudie, NULL) == 0) {
		Dwarf_Addr base, lo, hi;
		ptrdiff_t off = 0;

		if (type != DW_UT_compile || dwarf_tag(&cudie) != DW_TAG_compile_unit)
			continue;
		while ((off = dwarf_ranges(&cudie, off, &base, &lo, &hi)) > 0) {
			if (lo >= hi)
				continue;
			if (m->ncus == cap) {
				size_t ncap = cap ? cap * 2 : 64;
				struct cu_range *n;

				if (ncap > MAX_CU_RANGES)
					goto done;
				n = realloc(m->cus, ncap * sizeof(*n));
				if (!n)
					goto done;
				m->cus = n;
				cap = ncap;
			}
			m->cus[m->ncus++] = (struct cu_range){ lo, hi, cudie };
		}
	}
done:
	if (m->ncus)
		qsort(m->cus, m->ncus, sizeof(*m->cus), cu_range_cmp);
}

/* The CU whose ranges hold ELF address addr, from our own index; NULL when none. */
static Dwarf_Die *cu_find(struct module *m, uint64_t addr, Dwarf_Addr *dbias)
{
	Dwarf_Addr pc;
	size_t lo = 0, hi;

	if (!m->cus_loaded)
		load_cu_ranges(m);
	pc = addr - m->dwbias;
	hi = m->ncus;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (m->cus[mid].lo <= pc)
			lo = mid + 1;
		else
			hi = mid;
	}
	/* Ranges of different CUs rarely overlap; a few steps back settle it. */
	for (size_t j = lo, steps = 0; j > 0 && steps < 8; j--, steps++) {
		if (pc < m->cus[j - 1].hi) {
			*dbias = m->dwbias;
			return &m->cus[j - 1].cudie;
		}
	}
	return NULL;
}

static int arange_cmp(const void *a, const void *b)
{
	const struct arange *x = a, *y = b;

	if (x->lo != y->lo)
		return x->lo < y->lo ? -1 : 1;
	return (x->hi > y->hi) - (x->hi < y->hi);
}

static uint64_t read_uint(const uint8_t *p, size_t size, bool swap)
{
	uint64_t v = 0;

	for (size_t i = 0; i < size; i++)
		v |= (uint64_t)p[swap ? size - 1 - i : i] << (8 * i);
	return v;
}

/*
 * Parse .debug_aranges (DWARF 2-5, 32- and 64-bit) into a sorted table of address ranges and
 * unit offsets. libdw's dwarf_getaranges reads every unit's DIE (and so its abbreviations)
 * on the way, which costs tens of milliseconds for libc's 2000 units; a dump needs a handful.
 * Hostile input: every length is checked against the section; garbage ends the parse.
 */
static void load_aranges(struct module *m)
{
	Dwarf *dw;
	Elf *elf;
	Elf_Scn *scn = NULL;
	Elf_Data *data = NULL;
	size_t shstrndx, cap = 0;
	GElf_Ehdr eh;
	bool swap;
	const uint8_t *p, *end;

	m->aranges_loaded = true;
	dw = dwfl_module_getdwarf(m->dmod, &m->dwbias);
	if (!dw || !(elf = dwarf_getelf(dw)) || !gelf_getehdr(elf, &eh) ||
	    elf_getshdrstrndx(elf, &shstrndx) < 0)
		return;
	swap = eh.e_ident[EI_DATA] != ELFDATA2LSB;
	while ((scn = elf_nextscn(elf, scn))) {
		GElf_Shdr sh;
		const char *name;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type == SHT_NOBITS)
			continue;
		name = elf_strptr(elf, shstrndx, sh.sh_name);
		if (name && !strcmp(name, ".debug_aranges")) {
			/* Compressed sections were inflated by libdw when it opened the file. */
			if (sh.sh_flags & SHF_COMPRESSED)
				return;
			data = elf_getdata(scn, NULL);
			break;
		}
	}
	if (!data || !data->d_buf)
		return;
	p = data->d_buf;
	end = p + data->d_size;
	while (end - p >= 4) {
		uint64_t len = read_uint(p, 4, swap), cu;
		const uint8_t *set, *set_end;
		size_t offsize = 4, asize, tuple;
		unsigned int version;

		p += 4;
		if (len == 0xffffffff) {
			if (end - p < 8)
				break;
			len = read_uint(p, 8, swap);
			p += 8;
			offsize = 8;
		}
		if (len > (uint64_t)(end - p) || len < 2 + offsize + 2)
			break;
		set = p;
		set_end = p + len;
		p = set_end;
		version = (unsigned int)read_uint(set, 2, swap);
		cu = read_uint(set + 2, offsize, swap);
		asize = set[2 + offsize];
		if (version < 2 || version > 5 || set[3 + offsize] != 0 ||
		    (asize != 4 && asize != 8))
			continue;
		tuple = 2 * asize;
		/* Tuples start at a multiple of their size from the start of the set's header. */
		{
			size_t hdr = (size_t)(set - (const uint8_t *)data->d_buf) -
				     (offsize == 8 ? 12 : 4);
			size_t at = (size_t)(set + 4 + offsize - (const uint8_t *)data->d_buf);

			at = hdr + ((at - hdr + tuple - 1) / tuple) * tuple;
			set = (const uint8_t *)data->d_buf + at;
		}
		for (; set_end - set >= (ptrdiff_t)tuple; set += tuple) {
			uint64_t lo = read_uint(set, asize, swap);
			uint64_t n = read_uint(set + asize, asize, swap);

			if (lo == 0 && n == 0)
				break;
			if (n == 0 || lo + n < lo)
				continue;
			if (m->naranges == cap) {
				size_t ncap = cap ? cap * 2 : 256;
				struct arange *v;

				if (ncap > MAX_CU_RANGES)
					goto done;
				v = realloc(m->aranges, ncap * sizeof(*v));
				if (!v)
					goto done;
				m->aranges = v;
				cap = ncap;
			}
			m->aranges[m->naranges++] = (struct arange){ lo, lo + n, cu };
		}
	}
done:
	if (m->naranges)
		qsort(m->aranges, m->naranges, sizeof(*m->aranges), arange_cmp);
}

/* The compile unit DIE for ELF address addr, through our .debug_aranges table; NULL when the
 * table does not say (the caller falls back to libdw's own lookup). */
static Dwarf_Die *arange_find(struct module *m, uint64_t addr, Dwarf_Addr *dbias, Dwarf_Die *out)
{
	Dwarf *dw;
	Dwarf_Addr pc;
	Dwarf_Off next;
	size_t lo = 0, hi, hsize;
	uint8_t unit_type = 0;
	Dwarf_Half version;

	if (!m->aranges_loaded)
		load_aranges(m);
	if (!m->naranges)
		return NULL;
	dw = dwfl_module_getdwarf(m->dmod, dbias);
	if (!dw)
		return NULL;
	pc = addr - *dbias;
	hi = m->naranges;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (m->aranges[mid].lo <= pc)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t j = lo, steps = 0; j > 0 && steps < 8; j--, steps++) {
		const struct arange *a = &m->aranges[j - 1];

		if (pc >= a->hi)
			continue;
		/* Only plain compile units: skeletons and partial units go through libdw. */
		if (dwarf_next_unit(dw, a->cu, &next, &hsize, &version, NULL, NULL, NULL, NULL,
				    NULL) != 0 || version < 2 || version > 5)
			return NULL;
		if (!dwarf_offdie(dw, a->cu + hsize, out) || dwarf_tag(out) != DW_TAG_compile_unit)
			return NULL;
		if (version >= 5 && (dwarf_cu_info(out->cu, NULL, &unit_type, NULL, NULL, NULL,
						   NULL, NULL) != 0 || unit_type != DW_UT_compile))
			return NULL;
		return out;
	}
	return NULL;
}

/* Frames for addr from DWARF; returns how many (0 when DWARF does not cover addr). */
static size_t lookup_dwarf(struct cp_symbolizer *sym, struct module *m, uint64_t addr,
			   struct cp_sym_frame *frames)
{
	Dwarf_Die chain[MAX_SCOPE_DEPTH];
	Dwarf_Addr dbias = 0;
	Dwarf_Die cu_copy;
	Dwarf_Die *cudie = arange_find(m, addr, &dbias, &cu_copy);
	Dwarf_Addr pc;
	Dwarf_Line *line;
	const char *file = NULL;
	int lineno = 0;
	int depth, first;
	size_t n = 0;

	if (!cudie)
		cudie = dwfl_module_addrdie(m->dmod, addr, &dbias);
	if (!cudie) {
		cudie = cu_find(m, addr, &dbias);
		if (!cudie)
			return 0;
	}
	/* libdw may hand out a DIE inside its own lookup state: keep a copy. */
	cu_copy = *cudie;
	cudie = &cu_copy;
	pc = addr - dbias;
	line = dwarf_getsrc_die(cudie, pc);
	if (line) {
		file = dwarf_linesrc(line, NULL, NULL);
		if (dwarf_lineno(line, &lineno) != 0 || lineno < 0)
			lineno = 0;
	}
	depth = find_scopes(cudie, pc, chain, 0, 0, false);
	if (depth == 0)
		depth = find_scopes(cudie, pc, chain, 0, 0, true);
	/* The real function is the innermost subprogram; outer ones are GNU nested functions. */
	for (first = depth - 1; first >= 0; first--)
		if (dwarf_tag(&chain[first]) == DW_TAG_subprogram)
			break;
	if (first < 0) {
		/* Line info without a function (assembly): let the symbol table name it. */
		if (!file)
			return 0;
		frames[0] = (struct cp_sym_frame){ .file = source_path(sym, cudie, file), .line = lineno };
		return 1;
	}
	for (int i = depth - 1; i >= first && n < CP_SYM_MAX_INLINE; i--, n++) {
		struct cp_sym_frame *f = &frames[n];

		*f = (struct cp_sym_frame){ 0 };
		die_names(sym, &chain[i], f);
		f->inlined = i > first;
		if (n == 0) {
			f->file = source_path(sym, cudie, file);
			f->line = lineno;
		} else {
			call_site(sym, cudie, &chain[i + 1], f);
		}
	}
	return n;
}

/* Among aliases, global beats weak beats local, and "read" beats "__read". */
static int symbol_rank(const GElf_Sym *s, const char *name)
{
	int bind = GELF_ST_BIND(s->st_info);
	int r = bind == STB_GLOBAL ? 0 : bind == STB_WEAK ? 100 : 200;

	while (*name == '_' && r % 100 < 99) {
		r++;
		name++;
	}
	return r;
}

static int symbol_cmp(const void *a, const void *b)
{
	const struct symbol *x = a, *y = b;

	if (x->addr != y->addr)
		return x->addr < y->addr ? -1 : 1;
	return (x->rank > y->rank) - (x->rank < y->rank);
}

/* Collect the function symbols of m, sorted by address, one per address. Once. */
static void load_symbols(struct module *m)
{
	int n;
	size_t k = 0, out = 0;

	m->syms_loaded = true;
	n = dwfl_module_getsymtab(m->dmod);
	if (n <= 1 || (unsigned)n > MAX_SYMBOLS)
		return;
	m->syms = malloc((size_t)n * sizeof(*m->syms));
	if (!m->syms)
		return;
	for (int i = 1; i < n; i++) {
		GElf_Sym s;
		GElf_Addr addr;
		GElf_Word shndx;
		const char *name = dwfl_module_getsym_info(m->dmod, i, &s, &addr, &shndx, NULL,
							   NULL);
		int type;

		if (!name || !*name || shndx == SHN_UNDEF)
			continue;
		type = GELF_ST_TYPE(s.st_info);
		if (type != STT_FUNC && type != STT_GNU_IFUNC)
			continue;
		m->syms[k++] = (struct symbol){ addr, s.st_size, name, symbol_rank(&s, name) };
	}
	if (k)
		qsort(m->syms, k, sizeof(*m->syms), symbol_cmp);
	/* Keep the best-ranked alias at each address, with the largest size seen there. */
	for (size_t i = 0; i < k; i++) {
		if (out && m->syms[out - 1].addr == m->syms[i].addr) {
			if (m->syms[i].size > m->syms[out - 1].size)
				m->syms[out - 1].size = m->syms[i].size;
			continue;
		}
		m->syms[out++] = m->syms[i];
	}
	m->nsyms = out;
}

/* The function symbol containing addr (or the nearest sizeless one below it), or NULL. */
static const struct symbol *symbol_find(struct module *m, uint64_t addr)
{
	size_t lo = 0, hi;

	if (!m->syms_loaded)
		load_symbols(m);
	hi = m->nsyms;
	/* First symbol above addr. */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (m->syms[mid].addr <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0)
		return NULL;
	/* Nested symbols are rare; a few steps back find the one that contains addr. */
	for (size_t j = lo, steps = 0; j > 0 && steps < 8; j--, steps++) {
		const struct symbol *s = &m->syms[j - 1];

		if (addr - s->addr < s->size)
			return s;
	}
	return m->syms[lo - 1].size == 0 ? &m->syms[lo - 1] : NULL;
}

/* Name from .symtab / .dynsym (or .gnu_debugdata) when DWARF had none. */
static bool lookup_symtab(struct cp_symbolizer *sym, struct module *m, uint64_t addr,
			  struct cp_sym_frame *f)
{
	const struct symbol *s = symbol_find(m, addr);

	if (!s)
		return false;
	f->system_name = intern(sym, s->name);
	f->function = intern_demangled(sym, s->name);
	return f->function != NULL;
}

static const struct addr_entry *addr_lookup(struct module *m, uint64_t addr, uint64_t h)
{
	for (struct hnode *n = htab_chain(&m->addrs, h); n; n = n->next) {
		const struct addr_entry *e = (const struct addr_entry *)n;

		if (n->hash == h && e->addr == addr)
			return e;
	}
	return NULL;
}

/* Remember frames[0..n) for addr of m (in memory). */
static void addr_remember(struct cp_symbolizer *sym, struct module *m, uint64_t addr, uint64_t h,
			  const struct cp_sym_frame *frames, size_t n)
{
	struct addr_entry *e;

	if (sym->naddrs >= MAX_CACHED_ADDRS)
		return;
	e = malloc(sizeof(*e) + n * sizeof(e->frames[0]));
	if (!e)
		return;
	e->node.hash = h;
	e->addr = addr;
	e->n = n;
	memcpy(e->frames, frames, n * sizeof(*frames));
	if (htab_insert(&m->addrs, &e->node))
		free(e);
	else
		sym->naddrs++;
}

static int disk_ref_cmp(const void *a, const void *b)
{
	const struct disk_ref *x = a, *y = b;

	if (x->addr != y->addr)
		return x->addr < y->addr ? -1 : 1;
	return (x->record > y->record) - (x->record < y->record);
}

/*
 * Index the results earlier cprof processes found for m's build (sym_cache.h): only the
 * addresses; a record is parsed, its strings interned, when its address is met. libc's file
 * has thousands of records, of which a profile meets tens.
 */
static void disk_load(struct module *m)
{
	struct disk_ref *refs = NULL;
	size_t len, n = 0, cap = 0;
	char *cursor, *record;
	uint64_t addr;
	int kind;

	m->disk_loaded = true;
	if (!m->cache_id || cp_sym_cache_read(m->cache_id, &m->disk_text, &len) < 0)
		return;
	if (m->sym->disk_bytes + len > MAX_DISK_BYTES) {
		free(m->disk_text);
		m->disk_text = NULL;
		return;
	}
	m->disk_len = len;
	m->sym->disk_bytes += len;
	cursor = m->disk_text;
	while ((kind = cp_sym_cache_scan(&cursor, &addr, &record)) != CP_SYM_CACHE_END) {
		if (kind == CP_SYM_CACHE_HAS_DWARF)
			m->disk_has_dwarf = true;
		if (kind != CP_SYM_CACHE_ADDR)
			continue;
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 256;
			struct disk_ref *v = realloc(refs, ncap * sizeof(*v));

			if (!v)
				break;	/* what is indexed so far still counts */
			refs = v;
			cap = ncap;
		}
		refs[n++] = (struct disk_ref){ addr, record };
	}
	/* Stable by place: the first good record of an address wins, as it was written first. */
	if (n)
		qsort(refs, n, sizeof(*refs), disk_ref_cmp);
	m->disk_refs = refs;
	m->ndisk_refs = n;
}

/*
 * What the disk cache says about addr of m: true with frames[0..*n) (n may be 0: nothing is
 * there), false when it does not say. Each record is parsed at most once.
 */
static bool disk_find(struct cp_symbolizer *sym, struct module *m, uint64_t addr,
		      struct cp_sym_frame *frames, size_t *nframes)
{
	size_t lo = 0, hi = m->ndisk_refs;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (m->disk_refs[mid].addr < addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (; lo < m->ndisk_refs && m->disk_refs[lo].addr == addr; lo++) {
		char *record = m->disk_refs[lo].record;
		uint64_t a;
		size_t n;
		bool ok = true;

		m->disk_refs[lo].record = NULL;
		if (!record || !cp_sym_cache_parse(record, &a, frames, &n) || a != addr)
			continue;
		for (size_t i = 0; i < n && ok; i++) {
			struct cp_sym_frame *f = &frames[i];
			const char *fn = f->function, *sys = f->system_name, *file = f->file;

			/* Names as stored are already demangled: interned as they are. */
			f->function = fn ? intern(sym, fn) : NULL;
			f->system_name = sys ? intern(sym, sys) : NULL;
			f->file = file ? intern(sym, file) : NULL;
			ok = (f->function || !fn) && (f->system_name || !sys) && (f->file || !file);
		}
		if (ok) {
			*nframes = n;
			return true;
		}
	}
	return false;
}

/*
 * Whether m has DWARF. The disk cache may say so: then the debug file is not opened, which
 * for a separate one (libc's) is most of what a module costs a short profile.
 */
static bool module_has_dwarf(struct module *m)
{
	Dwarf_Addr b;

	if (!m->dmod)
		return false;
	if (!m->disk_loaded)
		disk_load(m);
	if (m->disk_has_dwarf)
		return true;
	if (!dwfl_module_getdwarf(m->dmod, &b))
		return false;
	/* Only a yes is kept: debug information installed later must still count. */
	if (m->cache_id && cp_sym_cache_append_has_dwarf(&m->disk_fd, m->cache_id) == 0)
		m->disk_has_dwarf = true;
	return true;
}

/* Symbolize ELF address addr of m into frames; returns the frame count. Cached. */
static size_t module_symbolize(struct cp_symbolizer *sym, struct module *m, uint64_t addr,
			       struct cp_sym_frame *frames)
{
	uint64_t h = cp_hash_mix(0, addr);
	const struct addr_entry *hit = addr_lookup(m, addr, h);
	bool from_dwarf = false;
	size_t n = 0;

	if (hit) {
		memcpy(frames, hit->frames, hit->n * sizeof(*frames));
		return hit->n;
	}
	if (!m->disk_loaded)
		disk_load(m);
	if (disk_find(sym, m, addr, frames, &n)) {
		addr_remember(sym, m, addr, h, frames, n);
		return n;
	}
	if (m->dmod) {
		n = lookup_dwarf(sym, m, addr, frames);
		if (n == 0) {
			Dwarf_Addr b;

			/*
			 * No unit of the DWARF covers addr (assembly such as glibc's memmove, or a
			 * PLT stub): the symbol table's answer, or that there is none, is final
			 * for this build, worth keeping: finding that out read every unit of the
			 * DWARF. Without DWARF it is not: debug information may be installed later.
			 */
			from_dwarf = dwfl_module_getdwarf(m->dmod, &b) != NULL;
			frames[0] = (struct cp_sym_frame){ 0 };
			if (lookup_symtab(sym, m, addr, &frames[0]))
				n = 1;
		} else if (!frames[n - 1].function) {
			/* DWARF without a usable name: the symbol table may still have one. */
			struct cp_sym_frame s = { 0 };

			if (lookup_symtab(sym, m, addr, &s)) {
				frames[n - 1].function = s.function;
				frames[n - 1].system_name = s.system_name;
			} else if (n == 1 && !frames[0].file) {
				n = 0;
			}
		}
		for (size_t i = 0; i < n; i++)
			from_dwarf = from_dwarf || frames[i].file;
	}
	/*
	 * Only what DWARF said (or, for addresses it does not cover, what it left to the symbol
	 * table) goes to disk: a symbol-table answer for a module without DWARF would hide debug
	 * information installed later (libc6-dbg).
	 */
	if (from_dwarf && m->cache_id) {
		(void)cp_sym_cache_append(&m->disk_fd, m->cache_id, addr, frames, n);
		if (!m->disk_has_dwarf && cp_sym_cache_append_has_dwarf(&m->disk_fd,
									 m->cache_id) == 0)
			m->disk_has_dwarf = true;
	}
	addr_remember(sym, m, addr, h, frames, n);
	return n;
}


int cp_sym_resolve(struct cp_symbolizer *sym, int pid, const struct cp_map *map, uint64_t pc,
		   struct cp_sym_result *out)
{
	struct cp_sym_result r;
	struct module *m = NULL;
	uint64_t off, bias;
	int err, why;

	if (!sym || !map || !out || !map->path)
		return -EINVAL;
	memset(&r, 0, sizeof(r));
	off = pc - map->start + map->offset;
	r.offset = off;
	/* The module name is ours, not the caller's: maps are re-read and freed often. */
	if (cp_map_is_file(map) || is_vdso(map)) {
		err = module_for_map(sym, pid, map, &m, &why, &r.module);
		if (err)
			return err;
	} else {
		r.module = intern(sym, map->path[0] ? map->path : "[anon]");
		if (!r.module)
			return -ENOMEM;
	}
	if (m) {
		r.build_id = m->build_id;
		if (module_bias(sym, m, map, off, &bias) ||
		    module_bias(sym, m, map, map->offset, &bias))
			r.n = module_symbolize(sym, m, pc - bias, r.frames);
	}
	*out = r;
	return 0;
}

int cp_sym_module_info(struct cp_symbolizer *sym, int pid, const struct cp_map *map,
		       const char **build_id, uint64_t *bias, bool *has_debug_info)
{
	struct module *m = NULL;
	const char *path;
	uint64_t b;
	int err, why = -ENOENT;

	if (!sym || !map || !map->path)
		return -EINVAL;
	if (!cp_map_is_file(map))
		return -ENOENT;
	err = module_for_map(sym, pid, map, &m, &why, &path);
	if (err)
		return err;
	if (!m)
		return why ? why : -ENOEXEC;
	if (!module_bias(sym, m, map, map->offset, &b))
		return -ENOEXEC;
	if (build_id)
		*build_id = m->build_id;
	if (bias)
		*bias = b;
	if (has_debug_info)
		*has_debug_info = module_has_dwarf(m);
	return 0;
}
