/* Finding the runtime's globals: .symtab when present, else the runtime's own code. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "go_internal.h"

/* Most RIP-relative references one recipe's function is read for. */
#define MAX_REFS 4096
/* Most bytes of one function we scan. */
#define MAX_FUNC_BYTES (1u << 20)

int go_global_add(struct cp_go_runtime *rt, const char *name, uint64_t addr, uint64_t size)
{
	struct go_global *g;
	char *copy;

	if (rt->nglobals % 256 == 0) {
		g = realloc(rt->globals, (rt->nglobals + 256) * sizeof(*g));
		if (!g)
			return -ENOMEM;
		rt->globals = g;
	}
	copy = strdup(name);
	if (!copy)
		return -ENOMEM;
	rt->globals[rt->nglobals++] = (struct go_global){ copy, addr, size };
	return 0;
}

int go_globals_from_symtab(struct cp_go_runtime *rt)
{
	Elf_Scn *scn = NULL;
	GElf_Shdr sh;

	while ((scn = elf_nextscn(rt->elf, scn))) {
		Elf_Data *d;
		size_t n;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_SYMTAB || sh.sh_entsize == 0)
			continue;
		d = elf_getdata(scn, NULL);
		if (!d)
			return -ENOENT;
		n = sh.sh_size / sh.sh_entsize;
		for (size_t i = 0; i < n; i++) {
			GElf_Sym sym;
			const char *nm;

			if (!gelf_getsym(d, (int)i, &sym) || GELF_ST_TYPE(sym.st_info) != STT_OBJECT)
				continue;
			nm = elf_strptr(rt->elf, sh.sh_link, sym.st_name);
			if (nm && *nm && go_global_add(rt, nm, sym.st_value + rt->bias, sym.st_size) < 0)
				return -ENOMEM;
		}
		return 0;
	}
	return -ENOENT;
}

/* True when ELF address a lies in one of the data sections a global may live in. */
static bool in_data(const struct cp_go_runtime *rt, uint64_t a)
{
	const struct go_section *s[] = { &rt->data, &rt->noptrdata, &rt->bss, &rt->noptrbss };

	for (size_t i = 0; i < sizeof(s) / sizeof(s[0]); i++)
		if (s[i]->size && a >= s[i]->addr && a - s[i]->addr < s[i]->size)
			return true;
	return false;
}

/*
 * The length of the immediate that follows the ModRM and disp32 of an instruction with
 * opcode op (0x0f-escaped when esc), operand-size prefix opsize; -1: not one we read.
 */
static int imm_len(uint8_t op, bool esc, bool opsize)
{
	if (esc)
		/* movzx/movsx, cmovcc, setcc, the SSE moves, bt/bts, cmpxchg, xadd */
		return (op == 0xb6 || op == 0xb7 || op == 0xbe || op == 0xbf ||
			(op >= 0x40 && op <= 0x4f) || (op >= 0x90 && op <= 0x9f) ||
			op == 0x10 || op == 0x11 || op == 0x6f || op == 0x7f || op == 0xd6 ||
			op == 0x7e || op == 0xa3 || op == 0xab || op == 0xb1 || op == 0xc1) ? 0 : -1;
	switch (op) {
	case 0x80: case 0x83: case 0xc6: case 0xc1:
		return 1;
	case 0x81: case 0xc7: case 0x69:
		return opsize ? 2 : 4;
	case 0x01: case 0x03: case 0x09: case 0x0b: case 0x21: case 0x23: case 0x29:
	case 0x2b: case 0x31: case 0x33: case 0x39: case 0x3b: case 0x85: case 0x87:
	case 0x88: case 0x89: case 0x8a: case 0x8b: case 0x8d: case 0xff: case 0xf7:
	case 0x38: case 0x3a: case 0x00: case 0x02: case 0x84: case 0x86: case 0xfe:
		return 0;
	default:
		return -1;
	}
}

size_t go_code_data_refs(const struct cp_go_runtime *rt, const uint8_t *code, size_t len,
			 uint64_t vaddr, uint64_t *out, size_t max)
{
	size_t n = 0, i = 0;

	while (i < len && n < max) {
		size_t at = i, ilen;
		bool opsize = false, esc = false;
		uint8_t op;
		int imm;
		int32_t disp;
		uint64_t target;

		while (at < len && (code[at] == 0x66 || code[at] == 0xf0 || code[at] == 0xf2 ||
				    code[at] == 0xf3)) {
			opsize |= code[at] == 0x66;
			at++;
		}
		if (at < len && (code[at] & 0xf0) == 0x40)
			at++;
		if (at < len && code[at] == 0x0f) {
			esc = true;
			at++;
		}
		if (at + 6 > len) {
			i++;
			continue;
		}
		op = code[at];
		imm = imm_len(op, esc, opsize);
		if (imm < 0 || (code[at + 1] & 0xc7) != 0x05) {
			i++;
			continue;
		}
		disp = (int32_t)go_le32(code + at + 2);
		ilen = at + 6 + (size_t)imm - i;
		if (i + ilen > len) {
			i++;
			continue;
		}
		target = vaddr + i + ilen + (uint64_t)(int64_t)disp;
		if (in_data(rt, target)) {
			out[n++] = target;
			i += ilen;
		} else {
			i++;
		}
	}
	return n;
}

size_t go_globals_from_code(struct cp_go_runtime *rt)
{
	const struct go_version_table *tb = rt->table;
	uint64_t *refs = malloc(MAX_REFS * sizeof(*refs));
	size_t found = 0;

	if (!refs || !tb) {
		free(refs);
		return 0;
	}
	for (size_t i = 0; i < tb->nrecipes; i++) {
		const struct go_global_recipe *r = &tb->recipes[i];
		struct cp_gopcln_func f;
		uint64_t have;
		size_t n;

		if (cp_go_global(rt, r->name, &have) == 0)
			continue;
		if (!cp_gopclntab_func_named(&rt->pcln, r->function, &f) ||
		    f.entry < rt->text.addr || f.end > rt->text.addr + rt->text.size ||
		    f.end - f.entry > MAX_FUNC_BYTES)
			continue;
		n = go_code_data_refs(rt, rt->text.data + (f.entry - rt->text.addr),
				      f.end - f.entry, f.entry, refs, MAX_REFS);
		if (r->nth >= n)
			continue;
		if (go_global_add(rt, r->name, refs[r->nth] + (uint64_t)r->adjust + rt->bias, 0) <
		    0)
			break;
		found++;
	}
	free(refs);
	return found;
}
