/*
 * The unwinder's view of the ELF files mapped into a target: the file's bytes (mapped
 * read-only), its PT_LOAD segments and the location of its .eh_frame_hdr search table.
 * Internal to unwind/: looked up once per file and cached by the file's identity.
 */
#ifndef CP_UNWIND_MODULES_H
#define CP_UNWIND_MODULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "maps.h"

/* Caps on what we accept from a target's files. */
#define CP_MODULE_MAX_LOADS 32		/* PT_LOAD segments kept per file */
#define CP_MODULES_MAX 4096		/* distinct files cached per unwinder */
#define CP_MODULE_IMAGE_MAX (1u << 20)	/* largest file-less image (the vdso) we copy */
#define CP_MODULE_GO_ROOTS 8		/* Go functions that begin a stack, kept per file */

struct cp_module_load {
	uint64_t vaddr;
	uint64_t memsz;
	uint64_t offset;
	uint64_t filesz;
	bool exec;
};

struct cp_module {
	/* Identity: device and inode, or the path when the inode is 0. */
	unsigned int dev_major;
	unsigned int dev_minor;
	uint64_t inode;
	char *path;			/* owned; the path in the target's namespace */

	int err;			/* 0, or why the file could not be used (-errno) */
	const uint8_t *data;		/* the whole file, read-only; NULL when err */
	size_t size;
	bool mapped;			/* data is an mmap (else malloc'd, e.g. the vdso copy) */

	struct cp_module_load load[CP_MODULE_MAX_LOADS];
	size_t nload;
	uint64_t min_vaddr, max_vaddr;	/* span of the PT_LOAD segments */

	/* .eh_frame_hdr binary search table; ELF virtual addresses (add the load bias). */
	bool has_eh_table;
	uint64_t eh_hdr_vaddr;		/* segbase: table entries are relative to it */
	uint64_t eh_table_vaddr;	/* first entry */
	uint64_t fde_count;

	/* Where Go stacks begin (cp_module_go_root); is_go is set by the open, the rest lazily. */
	bool is_go;			/* a "Go" build ID note: Go's linker wrote the file */
	bool go_roots_loaded;
	uint64_t go_root[CP_MODULE_GO_ROOTS][2];	/* [start, end) ELF vaddrs */
	size_t ngo_roots;
};

struct cp_modules;

struct cp_modules *cp_modules_new(void);
void cp_modules_free(struct cp_modules *mods);

/*
 * The module for the file behind map (a file-backed mapping of process pid): found in the
 * cache or opened (through cp_map_open_path) and parsed. A file that cannot be opened or
 * parsed is cached too, with err set, so that it is not retried on every frame.
 * Returns 0 and sets *out (borrowed, lives as long as mods), or -errno (-ENOMEM, -ENOSPC
 * when the cache is full).
 */
int cp_modules_get(struct cp_modules *mods, int pid, const struct cp_map *map,
		   struct cp_module **out);

/*
 * A module over an in-memory ELF image (the vdso copied out of the target). Takes data
 * (malloc'd) in every case. Returns NULL when out of memory; a module with err set when
 * the image is not a usable ELF.
 */
struct cp_module *cp_module_new_image(uint8_t *data, size_t size);
void cp_module_free(struct cp_module *m);

/*
 * The load bias of m as mapped by map (runtime address = ELF vaddr + bias), from the PT_LOAD
 * segment that covers map's file offset. 0 or -ENOENT.
 */
int cp_module_bias(const struct cp_module *m, const struct cp_map *map, uint64_t *bias);

/*
 * Whether ELF address vaddr of m lies in a function where Go's own traceback ends a stack:
 * runtime.goexit (the bottom of every goroutine's stack), runtime.mstart and runtime.rt0_go
 * (of a thread's g0 stack) and runtime.mcall (which moved from a goroutine's stack to g0:
 * above it the g0 stack holds only stale words). Go's CFI does not mark them on x86-64, so a
 * walk would go on into whatever lies above (cgo's crosscall_amd64, which has no CFI and
 * needs rbp, or garbage). False for files Go's linker did not write; their symbol table is
 * read at the first call.
 */
bool cp_module_go_root(struct cp_module *m, uint64_t vaddr);

#endif
