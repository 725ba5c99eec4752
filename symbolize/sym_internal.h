/* Internals shared by the symbolizer's files; not for other modules. */
#ifndef CP_SYM_INTERNAL_H
#define CP_SYM_INTERNAL_H

#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <gelf.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "maps.h"
#include "sym_gopclntab.h"
#include "strtab.h"
#include "symbolize.h"
#include "util.h"

/*
 * The files: symbolize.c (the symbolizer, its strings, the results remembered in memory and on
 * disk), sym_module.c (the module behind a mapping), sym_debugfile.c (its separate debug
 * file), sym_dwarf.c (DWARF lookup), sym_symtab.c (symbol tables and, through
 * sym_gopclntab.c, a Go build's pc tables).
 */

/* Notes kept (cp_sym_notes): more are dropped. */
#define CP_SYM_MAX_NOTES 16
/*
 * sym_limits.c: DWARF sections may inflate to CP_SYM_INFLATE_RATIO times the file's size (at
 * least CP_SYM_INFLATE_FLOOR, at most CP_SYM_INFLATE_MAX), counted from their headers
 * (Elf64_Chdr.ch_size, the size after "ZLIB" of .zdebug_*) before libdw inflates any.
 */
#define CP_SYM_INFLATE_RATIO 32ull
#define CP_SYM_INFLATE_FLOOR (64ull << 20)
#define CP_SYM_INFLATE_MAX (2ull << 30)
/* Time one module's DWARF lookups may take in all before the symbol table answers alone. */
#define CP_SYM_DWARF_BUDGET_NS (10ull * 1000000000ull)

/* Longest build ID accepted from a file; hex buffers hold 2 * this + 1. */
#define MAX_BUILD_ID_BYTES 64

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

/* An address line of the disk cache, not parsed yet; record NULL once it has been. */
struct disk_ref {
	uint64_t addr;
	char *record;
};

/* A remembered result: frames[off .. off + n) of the module's frame pool for addr. */
struct addr_entry {
	uint64_t addr;
	uint32_t off;
	uint32_t n;
};

/* One ELF file, shared by every process that maps it. */
struct module {
	char *key;		/* "b:BUILDID" or "f:DEV:INO:SIZE:MTIME" */
	const char *build_id;	/* interned hex, or NULL */
	const char *cache_id;	/* names its sym_cache file: build_id, a Go build ID, or NULL */
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
	/* A Go file's .gopclntab, for a build without DWARF; NULL when it has none. */
	struct cp_gopclntab *gopcln;
	bool gopcln_loaded;
	/* Results by ELF address: entries indexed by addr_h, their frames in one pool. */
	struct addr_entry *addrs;
	size_t naddrs, addrs_alloc;
	struct cp_htab addr_h;
	struct cp_sym_frame *frames;
	size_t nframes, frames_alloc;
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
	/* Its DWARF inflates past cp_sym_inflate_limit: not read, the symbol table only. */
	bool dwarf_refused;
	uint64_t dwarf_ns;	/* time spent in its DWARF lookups */
	struct cp_symbolizer *sym;
};

/* Which module a (process, mapped file) pair is; mod NULL with err when unusable. */
struct binding {
	int pid;
	uint64_t dev;
	uint64_t ino;
	const char *path;	/* interned */
	struct module *mod;
	int err;
};

struct cp_symbolizer {
	struct module **mods;		/* by mod_h (key) */
	size_t nmods, mods_alloc;
	struct cp_htab mod_h;
	struct binding *binds;		/* by bind_h (pid, dev, inode, path) */
	size_t nbinds, binds_alloc;
	struct cp_htab bind_h;
	/* Result strings; they outlive the modules, so earlier results stay valid. */
	struct cp_strtab strings;
	/* Per string: 0 not demangled yet, 1 not mangled, else the demangled string's index + 2. */
	uint32_t *demangled;
	size_t ndemangled, demangled_alloc;
	size_t naddrs;		/* remembered results over all modules */
	size_t disk_bytes;	/* disk_len over all modules */
	uint64_t page_size;
	struct cp_sym_jit *jit;	/* JIT maps of the processes met (sym_jit.c) */
	/* What was not done, and why (cp_sym_notes), interned. */
	const char *notes[CP_SYM_MAX_NOTES];
	size_t nnotes;
};

/*
 * sym_jit.c: the name /tmp/perf-PID.map gives the JIT code at pc of pid (*off from its start),
 * or NULL. The map is loaded on first use and again when it grew, at most once a second.
 */
const char *cp_sym_jit_lookup(struct cp_symbolizer *sym, int pid, uint64_t pc, uint64_t *off);
void cp_sym_jit_free(struct cp_symbolizer *sym);

/* sym_limits.c: what the compressed sections of a file of file_size bytes may inflate to. */
uint64_t cp_sym_inflate_limit(uint64_t file_size);
/* Their total into *inflated; -EFBIG when it is over the limit, else 0. */
int cp_sym_check_inflate(Elf *elf, uint64_t file_size, uint64_t *inflated);
/* Keep a note of what was not done (printf format), up to CP_SYM_MAX_NOTES. */
void cp_sym_note(struct cp_symbolizer *sym, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Mark m's DWARF as not to be read (what: the file), with a note saying why. */
void cp_sym_refuse_dwarf(struct module *m, const char *what, uint64_t inflated, uint64_t size);

/* symbolize.c: the interned copy of s, or NULL for NULL or out of memory (field unknown). */
const char *cp_sym_intern(struct cp_symbolizer *sym, const char *s);
/* Demangled form of a raw symbol name, interned; the raw name when it is not mangled. */
const char *cp_sym_intern_demangled(struct cp_symbolizer *sym, const char *raw);

/* sym_debugfile.c: hex build ID of elf into buf (2 * MAX_BUILD_ID_BYTES + 1); false: none. */
bool cp_sym_build_id_hex(Elf *elf, char *buf);
/* The libdwfl callbacks of every module: ELF files are reported open; debug files searched. */
extern const Dwfl_Callbacks cp_sym_dwfl_callbacks;

/*
 * sym_module.c: the module of map (a file or the vDSO) in process pid; *out NULL (and 0
 * returned) when it cannot be used, with the reason in *why. *path: map->path interned, lives
 * as long as sym. -ENOMEM only.
 */
int cp_sym_module_for_map(struct cp_symbolizer *sym, int pid, const struct cp_map *map,
			  struct module **out, int *why, const char **path);
/*
 * Load bias for file offset off of map: runtime address = ELF vaddr + bias. The segment
 * holding off decides (the kernel maps segments at page-aligned offsets).
 */
bool cp_sym_module_bias(const struct cp_symbolizer *sym, const struct module *m,
			const struct cp_map *map, uint64_t off, uint64_t *bias);
/* Whether map is the vDSO (read from the process's memory, not a file). */
bool cp_sym_is_vdso(const struct cp_map *map);
/* Drop every binding, and with modules every module (and the results they remember). */
void cp_sym_modules_drop(struct cp_symbolizer *sym, bool modules);

/* sym_dwarf.c: frames for ELF address addr of m from DWARF; how many (0: DWARF has none). */
size_t cp_sym_dwarf_lookup(struct cp_symbolizer *sym, struct module *m, uint64_t addr,
			   struct cp_sym_frame *frames);

/*
 * sym_symtab.c: frames for addr of a Go module from its .gopclntab (sym_gopclntab.h), names
 * and files interned; how many (0: not Go, or no function there).
 */
size_t cp_sym_gopclntab_lookup(struct cp_symbolizer *sym, struct module *m, uint64_t addr,
			       struct cp_sym_frame *frames);

/* sym_symtab.c: the name from .symtab / .dynsym (or .gnu_debugdata) for addr into f. */
bool cp_sym_symtab_lookup(struct cp_symbolizer *sym, struct module *m, uint64_t addr,
			  struct cp_sym_frame *f);

#endif
