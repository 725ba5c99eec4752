/*
 * Symbolization of code addresses with elfutils libdw: function, file, line and inlined
 * frames from DWARF (the ELF's own, separate debug files by build ID or .gnu_debuglink),
 * falling back to a Go build's .gopclntab (function, file, line, inlined calls, for Go builds
 * without DWARF), then .symtab / .dynsym, then module+offset. Modules are cached by build ID
 * (or by device, inode and size when there is none), so a second process of the same binary
 * is nearly free. Results are cached per (module, address). A symbolizer is not thread-safe:
 * one thread uses it at a time.
 */
#ifndef CP_SYMBOLIZE_H
#define CP_SYMBOLIZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "maps.h"

#define CP_SYM_MAX_INLINE 16

struct cp_symbolizer;

/* One source-level frame. Strings are owned by the symbolizer and live as long as it. */
struct cp_sym_frame {
	const char *function;		/* demangled name, NULL when unknown */
	const char *system_name;	/* raw (mangled) name, NULL when unknown */
	const char *file;		/* source path as DWARF gives it, NULL when unknown */
	int line;			/* 0 when unknown */
	int start_line;			/* line of the function's declaration, 0 when unknown */
	bool inlined;			/* inlined into the next frame */
};

struct cp_sym_result {
	/* Innermost first: inlined callees, then the real function that contains pc. */
	struct cp_sym_frame frames[CP_SYM_MAX_INLINE];
	size_t n;			/* 0 when nothing was found: print module+offset */
	const char *module;		/* path of the mapped file, or "[vdso]" etc. Owned by the symbolizer. */
	uint64_t offset;		/* file offset of pc within module */
	const char *build_id;		/* hex, NULL when none */
};

struct cp_symbolizer *cp_sym_new(void);
void cp_sym_free(struct cp_symbolizer *sym);

/*
 * What the symbolizer did not do and why, one sentence each (a module whose DWARF would
 * inflate past the limit, read from its symbol table only): up to max into notes; returns how
 * many there are. The strings live as long as sym.
 */
size_t cp_sym_notes(const struct cp_symbolizer *sym, const char **notes, size_t max);

/*
 * Symbolize pc of process pid, which lies in map (from that process's maps).
 * pc is the address to look up: callers pass return address - 1 for caller frames.
 * Returns 0 (out filled, maybe with n == 0) or -errno (-EINVAL, -ENOMEM only: a file that
 * cannot be opened or parsed is a success with n == 0). Never crashes on corrupt ELF/DWARF.
 * Handles file mappings and [vdso] (read from the process's memory).
 */
int cp_sym_resolve(struct cp_symbolizer *sym, int pid, const struct cp_map *map, uint64_t pc,
		   struct cp_sym_result *out);

/*
 * Facts about the file behind map, for pprof mappings and the unwinder: hex build ID (NULL
 * when none) and the load bias (runtime address = ELF vaddr + bias). 0 or -errno.
 */
int cp_sym_module_info(struct cp_symbolizer *sym, int pid, const struct cp_map *map,
		       const char **build_id, uint64_t *bias, bool *has_debug_info);

/* Demangle a C++ or Rust symbol; returns a malloc'd string or NULL when s is not mangled. */
char *cp_sym_demangle(const char *s);

#endif
