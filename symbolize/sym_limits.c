/* Bounded work per module: DWARF whose sections inflate past a limit is not read. */
#include <errno.h>
#include <stdarg.h>
#include <gelf.h>
#include <stdio.h>
#include <string.h>

#include "sym_internal.h"

/* Bytes a zlib-compressed .zdebug_* section says it inflates to ("ZLIB" + 8 big-endian). */
static uint64_t zdebug_size(Elf_Scn *scn)
{
	Elf_Data *d = elf_rawdata(scn, NULL);
	const unsigned char *p;
	uint64_t n = 0;

	if (!d || !d->d_buf || d->d_size < 12 || memcmp(d->d_buf, "ZLIB", 4))
		return 0;
	p = (const unsigned char *)d->d_buf + 4;
	for (int i = 0; i < 8; i++)
		n = n << 8 | p[i];
	return n;
}

uint64_t cp_sym_inflate_limit(uint64_t file_size)
{
	uint64_t lim = file_size > CP_SYM_INFLATE_MAX / CP_SYM_INFLATE_RATIO
			       ? CP_SYM_INFLATE_MAX
			       : file_size * CP_SYM_INFLATE_RATIO;

	return lim < CP_SYM_INFLATE_FLOOR ? CP_SYM_INFLATE_FLOOR : lim;
}

int cp_sym_check_inflate(Elf *elf, uint64_t file_size, uint64_t *inflated)
{
	size_t shstrndx;
	Elf_Scn *scn = NULL;
	uint64_t total = 0, lim = cp_sym_inflate_limit(file_size);

	*inflated = 0;
	if (elf_getshdrstrndx(elf, &shstrndx) < 0)
		return 0;
	while ((scn = elf_nextscn(elf, scn))) {
		GElf_Shdr sh;
		GElf_Chdr ch;
		const char *name;
		uint64_t n = 0;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type == SHT_NOBITS)
			continue;
		name = elf_strptr(elf, shstrndx, sh.sh_name);
		if (sh.sh_flags & SHF_COMPRESSED)
			n = gelf_getchdr(scn, &ch) ? ch.ch_size : UINT64_MAX;	/* unreadable */
		else if (name && !strncmp(name, ".zdebug", 7))
			n = zdebug_size(scn);
		total = n > UINT64_MAX - total ? UINT64_MAX : total + n;
	}
	*inflated = total;
	return total > lim ? -EFBIG : 0;
}

void cp_sym_note(struct cp_symbolizer *sym, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	if (sym->nnotes >= CP_SYM_MAX_NOTES)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	sym->notes[sym->nnotes] = cp_sym_intern(sym, buf);
	if (sym->notes[sym->nnotes])
		sym->nnotes++;
}

size_t cp_sym_notes(const struct cp_symbolizer *sym, const char **notes, size_t max)
{
	size_t n = sym->nnotes < max ? sym->nnotes : max;

	for (size_t i = 0; i < n; i++)
		notes[i] = sym->notes[i];
	return sym->nnotes;
}

void cp_sym_refuse_dwarf(struct module *m, const char *what, uint64_t inflated, uint64_t size)
{
	m->dwarf_refused = true;
	cp_sym_note(m->sym, "%s: DWARF not read: its sections inflate to %llu MiB, over the limit "
		    "of %llu MiB for a file of %llu KiB; symbol table only", what,
		    (unsigned long long)(inflated >> 20),
		    (unsigned long long)(cp_sym_inflate_limit(size) >> 20),
		    (unsigned long long)(size >> 10));
}
