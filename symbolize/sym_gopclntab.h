/* Go's .gopclntab read as hostile bytes: pc to function, file, line and inlined frames. */
#ifndef CP_SYM_GOPCLNTAB_H
#define CP_SYM_GOPCLNTAB_H

#include <gelf.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The pcHeader layouts read: Go 1.16-1.17 (magic 0xfffffffa: functab of pointer-sized
 * absolute entries), 1.18-1.19 (0xfffffff0: 32-bit entries off pcHeader.textStart) and 1.20+
 * (0xfffffff1: _func and the inline tree carry start lines). Every offset is checked against
 * the section; a corrupt table gives no frames, never a read outside the bytes given.
 */
enum cp_gopcln_version { CP_GOPCLN_116 = 116, CP_GOPCLN_118 = 118, CP_GOPCLN_120 = 120 };

/* Most ELF sections kept for reading the inline trees that funcdata points to. */
#define CP_GOPCLN_MAX_SECTIONS 48

/* A loaded section of the file: its ELF address range and bytes. */
struct cp_gopcln_sect {
	uint64_t vaddr;
	uint64_t size;
	const uint8_t *data;
};

/* One parsed .gopclntab. The bytes are borrowed: they must outlive the table. */
struct cp_gopclntab {
	const uint8_t *data;
	uint64_t size;
	uint64_t vaddr;			/* ELF address of the section (the pcHeader) */
	enum cp_gopcln_version version;
	unsigned ptrsize, quantum;
	uint64_t nfunc, text_start;
	uint64_t funcname, cutab, filetab, pctab, pcln;	/* offsets from the section start */
	/* Where inline trees are: Go 1.18+ gives funcdata as offsets from moduledata.gofunc. */
	bool has_gofunc;
	uint64_t gofunc;
	struct cp_gopcln_sect sects[CP_GOPCLN_MAX_SECTIONS];
	size_t nsects;
};

/* One frame found; strings point into the section (NUL-terminated there). */
struct cp_gopcln_frame {
	const char *function;
	const char *file;		/* NULL when the table gives none */
	int line;			/* 0 when unknown */
	int start_line;			/* Go 1.20+ only, else 0 */
	bool inlined;			/* inlined into the next frame */
	uint64_t pc;			/* the pc its file:line was looked up at (for an inlined
					   call's caller: the call site, entry + parentPc) */
};

/*
 * Parse the pcHeader of the section bytes data[0..size) loaded at ELF address vaddr. 0, or
 * -EINVAL when they are no pclntab of a layout we read. Inline trees need sections added.
 */
int cp_gopclntab_init(struct cp_gopclntab *t, const void *data, uint64_t size, uint64_t vaddr);

/*
 * The .gopclntab (.data.rel.ro.gopclntab when position-independent) of a Go file (one with
 * a .note.go.buildid note or a .go.buildinfo section), with its loaded sections and, for Go
 * 1.18+, moduledata.gofunc found in .noptrdata for inline trees. 0, -ENOENT (not Go, no
 * section headers or no table) or -EINVAL.
 */
int cp_gopclntab_from_elf(struct cp_gopclntab *t, Elf *elf);

/*
 * Frames for ELF address pc, innermost (inlined) first, the function containing pc last: how
 * many were written to frames[0..max), 0 when no function of the table holds pc.
 */
size_t cp_gopclntab_lookup(const struct cp_gopclntab *t, uint64_t pc,
			   struct cp_gopcln_frame *frames, size_t max);

/* One function of the table. */
struct cp_gopcln_func {
	uint64_t entry, end;		/* ELF addresses, end exclusive */
	const char *name;		/* points into the section */
	uint8_t funcid;			/* the runtime's funcID (goexit, mstart, wrappers...) */
};

/*
 * The function containing ELF address pc, and with spdelta non-NULL the frame size its pcsp
 * table gives at pc (bytes below the caller's sp, without the return address), as the
 * runtime's funcspdelta. False when no function holds pc or its tables are bad.
 */
bool cp_gopclntab_func_at(const struct cp_gopclntab *t, uint64_t pc, struct cp_gopcln_func *out,
			  int32_t *spdelta);

/* The function named name (a linear search: for a few known runtime functions). */
bool cp_gopclntab_func_named(const struct cp_gopclntab *t, const char *name,
			     struct cp_gopcln_func *out);

/* The section of elf named name, its header in *sh; NULL when there is none. */
Elf_Scn *cp_elf_section_named(Elf *elf, const char *name, GElf_Shdr *sh);

#endif
