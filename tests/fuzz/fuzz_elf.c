/*
 * libFuzzer target: the ELF module loader of unwind/ (headers, segments, .eh_frame_hdr,
 * .debug_frame and .eh_frame rewritten into a table) and the symbolizer's count of what a
 * file's compressed sections inflate to, on an in-memory image.
 */
#include <gelf.h>
#include <libelf.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cfi.h"
#include "modules.h"
#include "sym_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *copy = malloc(size ? size : 1);
	struct cp_cfi_index *x = NULL;
	struct cp_module *m;
	uint64_t inflated;
	Elf *elf;

	if (!copy)
		return 0;
	memcpy(copy, data, size);
	m = cp_module_new_image(copy, size);
	if (m && !m->err && cp_cfi_index_build(m, 0, &x) == 0)
		cp_cfi_index_free(x);
	cp_module_free(m);

	elf_version(EV_CURRENT);
	copy = malloc(size ? size : 1);
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	elf = elf_memory((char *)copy, size);
	if (elf && elf_kind(elf) == ELF_K_ELF)
		(void)cp_sym_check_inflate(elf, size, &inflated);
	elf_end(elf);
	free(copy);
	return 0;
}
