/* Tests of the .gopclntab reader: agreement with `go tool addr2line`, inline trees, damage. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>

#include "check.h"
#include "sym_gopclntab.h"

#define MAX_PCS 3000

static char dir[] = "/tmp/cprof-test-gopcln-XXXXXX";
static const char go_env[] = "GOCACHE=/tmp/cprof-gocache GOPATH=/tmp/cprof-gopath GOPROXY=off "
			     "GOFLAGS= GO111MODULE=auto CGO_ENABLED=0 GOTOOLCHAIN=local";

static uint64_t pcs[MAX_PCS];
static char pc_names[MAX_PCS][512];	/* the symbol go tool nm gives for each */
static size_t npcs;

/* Pcs to check: entry, middle and last byte of every third text symbol of the twin full. */
static void collect_pcs(const char *full)
{
	char cmd[512], line[1024];
	FILE *f;
	size_t k = 0;

	npcs = 0;
	snprintf(cmd, sizeof(cmd), "%s go tool nm -size -sort address %s", go_env, full);
	f = popen(cmd, "r");
	CHECK(f != NULL);
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		uint64_t addr, size;
		char type, name[512];

		if (sscanf(line, "%" SCNx64 " %" SCNu64 " %c %511s", &addr, &size, &type,
			   name) != 4)
			continue;
		if ((type != 'T' && type != 't') || size < 2 || k++ % 3 || npcs + 3 > MAX_PCS)
			continue;
		for (int j = 0; j < 3; j++)
			snprintf(pc_names[npcs + j], sizeof(pc_names[0]), "%s", name);
		pcs[npcs++] = addr;
		pcs[npcs++] = addr + size / 2;
		pcs[npcs++] = addr + size - 1;
	}
	pclose(f);
}

static Elf *open_elf(const char *path, int *fd)
{
	*fd = open(path, O_RDONLY);
	return *fd < 0 ? NULL : elf_begin(*fd, ELF_C_READ_MMAP, NULL);
}

/* The name of a DWARF function or of the function an inlined call's abstract origin is. */
static const char *die_name(Dwarf_Die *d)
{
	Dwarf_Attribute a;
	Dwarf_Die origin;

	if (dwarf_attr(d, DW_AT_abstract_origin, &a) && dwarf_formref_die(&a, &origin))
		return dwarf_diename(&origin);
	return dwarf_diename(d);
}

/* Append to names[*n] the inlined calls under die that hold pc, outermost first. */
static void descend(Dwarf_Die *die, uint64_t pc, const char **names, int *n, int depth)
{
	Dwarf_Die child;

	if (depth > 32 || dwarf_child(die, &child) != 0)
		return;
	do {
		int tag = dwarf_tag(&child);

		if ((tag != DW_TAG_inlined_subroutine && tag != DW_TAG_lexical_block) ||
		    dwarf_haspc(&child, pc) != 1)
			continue;
		if (tag == DW_TAG_inlined_subroutine && *n < 16)
			names[(*n)++] = die_name(&child);
		descend(&child, pc, names, n, depth + 1);
		return;
	} while (dwarf_siblingof(&child, &child) == 0);
}

/*
 * The inline chain of pc (innermost first) from the DWARF of full, as names joined by " < ";
 * empty when DWARF has no function there. Go writes no .debug_aranges: units by their ranges.
 */
static void dwarf_chain(Dwfl_Module *mod, uint64_t pc, char *out, size_t size)
{
	Dwarf_Addr bias;
	Dwarf *dw = dwfl_module_getdwarf(mod, &bias);
	Dwarf_Die cu, fn;
	Dwarf_Off off = 0, next;
	const char *names[16];
	size_t hsize;
	int n = 0;

	out[0] = '\0';
	while (dw && !n && dwarf_nextcu(dw, off, &next, &hsize, NULL, NULL, NULL) == 0) {
		if (dwarf_offdie(dw, off + hsize, &cu) && dwarf_haspc(&cu, pc - bias) == 1 &&
		    dwarf_child(&cu, &fn) == 0) {
			do {
				if (dwarf_tag(&fn) == DW_TAG_subprogram &&
				    dwarf_haspc(&fn, pc - bias) == 1) {
					names[n++] = die_name(&fn);
					descend(&fn, pc - bias, names, &n, 0);
					break;
				}
			} while (dwarf_siblingof(&fn, &fn) == 0);
		}
		off = next;
	}
	for (int i = n - 1; i >= 0; i--)
		snprintf(out + strlen(out), size - strlen(out), "%s%s", i < n - 1 ? " < " : "",
			 names[i] ? names[i] : "?");
}

/* Inlined frames against the DWARF of the unstripped twin: the same chain of functions. */
static void test_inline_vs_dwarf(const struct cp_gopclntab *t, const char *full)
{
	static const Dwfl_Callbacks cb = { .find_elf = dwfl_build_id_find_elf,
					   .find_debuginfo = dwfl_standard_find_debuginfo };
	Dwfl *dwfl = dwfl_begin(&cb);
	Dwfl_Module *mod = dwfl ? dwfl_report_offline(dwfl, "full", full, -1) : NULL;
	size_t checked = 0, same = 0;

	CHECK(mod != NULL);
	for (size_t i = 0; mod && i < npcs; i++) {
		struct cp_gopcln_frame fr[16];
		size_t n = cp_gopclntab_lookup(t, pcs[i], fr, 16);
		char ours[2048] = "", theirs[2048];

		if (n < 2)
			continue;
		for (size_t j = 0; j < n; j++)
			snprintf(ours + strlen(ours), sizeof(ours) - strlen(ours), "%s%s",
				 j ? " < " : "", fr[j].function);
		dwarf_chain(mod, pcs[i], theirs, sizeof(theirs));
		checked++;
		if (!strcmp(ours, theirs))
			same++;
		else
			printf("pc %#" PRIx64 ": %s; DWARF: %s\n", pcs[i], ours, theirs);
	}
	if (dwfl)
		dwfl_end(dwfl);
	printf("%zu of %zu inlined chains agree with DWARF\n", same, checked);
	CHECK(checked > 10 && same == checked, "%zu of %zu", same, checked);
}

/* Our answers against addr2line's on file (the same table): name and innermost line. */
static void test_agreement(const struct cp_gopclntab *t, const char *stripped)
{
	char cmd[512], in[128], fn[1024], pos[1024];
	size_t same = 0, inlined = 0;
	FILE *f;

	snprintf(in, sizeof(in), "%s/pcs", dir);
	f = fopen(in, "w");
	for (size_t i = 0; f && i < npcs; i++)
		fprintf(f, "0x%" PRIx64 "\n", pcs[i]);
	if (f)
		fclose(f);
	snprintf(cmd, sizeof(cmd), "%s go tool addr2line %s < %s", go_env, stripped, in);
	f = popen(cmd, "r");
	CHECK(f != NULL);
	for (size_t i = 0; f && i < npcs; i++) {
		struct cp_gopcln_frame fr[16];
		size_t n;
		char want[1100];

		if (!fgets(fn, sizeof(fn), f) || !fgets(pos, sizeof(pos), f)) {
			FAIL("addr2line stopped at pc %zu of %zu", i, npcs);
			break;
		}
		fn[strcspn(fn, "\n")] = pos[strcspn(pos, "\n")] = '\0';
		n = cp_gopclntab_lookup(t, pcs[i], fr, 16);
		if (!n) {
			CHECK(!strcmp(fn, "?"), "pc %#" PRIx64 ": none, addr2line %s", pcs[i], fn);
			continue;
		}
		inlined += n > 1;
		snprintf(want, sizeof(want), "%s:%d", fr[0].file ? fr[0].file : "?", fr[0].line);
		if (!strcmp(fn, fr[n - 1].function) && !strcmp(pos, want))
			same++;
		else
			FAIL("pc %#" PRIx64 ": %s %s, addr2line %s %s", pcs[i], fr[n - 1].function,
			     want, fn, pos);
		for (size_t j = 0; j + 1 < n; j++)
			CHECK(fr[j].inlined && fr[j].function && fr[j].line > 0);
		CHECK(!fr[n - 1].inlined);
	}
	if (f)
		pclose(f);
	printf("%zu of %zu pcs agree with go tool addr2line, %zu in inlined code\n", same, npcs,
	       inlined);
	CHECK(npcs > 300 && same == npcs);
	CHECK(inlined > 10, "inline trees read: %zu", inlined);
}

/* Whether the table's name a is the symbol b: symbols add ".abi0" and spell "·" as ".". */
static bool same_function(const char *a, const char *b)
{
	size_t nb = strlen(b);

	if (nb > 5 && !strcmp(b + nb - 5, ".abi0"))
		nb -= 5;
	while (*a && nb) {
		if (!strncmp(a, "\u00b7", 2) && *b == '.') {
			a += 2;
		} else if (*a == *b) {
			a++;
		} else {
			return false;
		}
		b++;
		nb--;
	}
	return !*a && !nb;
}

/* The function of each pc against the symbol go tool nm gives (addr2line cannot read PIEs). */
static void test_names_vs_nm(const struct cp_gopclntab *t)
{
	size_t same = 0;

	for (size_t i = 0; i < npcs; i++) {
		struct cp_gopcln_frame fr[16];
		size_t n = cp_gopclntab_lookup(t, pcs[i], fr, 16);

		if (n && same_function(fr[n - 1].function, pc_names[i]))
			same++;
		else
			FAIL("pc %#" PRIx64 ": %s, nm %s", pcs[i], n ? fr[n - 1].function : "none",
			     pc_names[i]);
	}
	printf("%zu of %zu pcs named as go tool nm names them\n", same, npcs);
	CHECK(npcs > 300 && same == npcs);
}

/* Addresses outside every function, and room for no frame or only one. */
static void test_outside(const struct cp_gopclntab *t)
{
	struct cp_gopcln_frame fr[4];

	CHECK(cp_gopclntab_lookup(t, 0, fr, 4) == 0);
	CHECK(cp_gopclntab_lookup(t, UINT64_MAX, fr, 4) == 0);
	CHECK(cp_gopclntab_lookup(t, pcs[0], fr, 0) == 0);
	CHECK(cp_gopclntab_lookup(t, pcs[0], fr, 1) == 1 && !fr[0].inlined);
}

/* Truncated and corrupted copies: no crash, no read outside (ASan watches), answers or none. */
static void test_damage(const struct cp_gopclntab *good)
{
	uint8_t *copy = malloc(good->size);
	struct cp_gopcln_frame fr[16];
	unsigned seed = 1;
	size_t found = 0;

	if (!copy)
		return;
	for (uint64_t len = 0; len < good->size; len = len < 256 ? len + 1 : len * 3 / 2 + 7) {
		uint8_t *cut = malloc(len ? len : 1);
		struct cp_gopclntab t;

		memcpy(cut, good->data, len);
		if (cp_gopclntab_init(&t, cut, len, good->vaddr) == 0)
			for (size_t i = 0; i < npcs; i += 7)
				found += cp_gopclntab_lookup(&t, pcs[i], fr, 16) > 0;
		free(cut);
	}
	for (int round = 0; round < 300; round++) {
		struct cp_gopclntab t;

		memcpy(copy, good->data, good->size);
		for (int k = 0; k < 64; k++) {
			uint64_t at = (uint64_t)rand_r(&seed) * 7919u % good->size;

			/* The header and the functab are hit often: they hold the offsets. */
			if (k < 4)
				at %= 64;
			else if (k < 8)
				at = (good->pcln + at % ((good->nfunc + 1) * 8)) % good->size;
			copy[at] = (uint8_t)rand_r(&seed);
		}
		if (cp_gopclntab_init(&t, copy, good->size, good->vaddr) != 0)
			continue;
		memcpy(t.sects, good->sects, sizeof(t.sects));
		t.nsects = good->nsects;
		t.gofunc = good->gofunc;
		t.has_gofunc = good->has_gofunc;
		for (size_t i = 0; i < npcs; i += 5)
			found += cp_gopclntab_lookup(&t, pcs[i], fr, 16) > 0;
	}
	free(copy);
	printf("damaged copies: %zu lookups still answered\n", found);
	CHECK(found > 0);
}

static void put(uint8_t *b, size_t off, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		b[off + i] = (uint8_t)(v >> (8 * i));
}

/*
 * A table written by hand in the layout of version (no Go toolchain of 1.16-1.17 or 1.20+
 * here): one function main.f at 0x1000..0x1040 of /src/a.go, line 10 then 12 from 0x1010.
 */
static void test_layout(enum cp_gopcln_version version)
{
	static const uint8_t pctab[] = { 0, 2, 0x40, 0, 22, 0x10, 4, 0x30, 0 };
	uint8_t b[512] = { 0 };
	size_t hdr = version == CP_GOPCLN_116 ? 64 : 72, names = 128, cutab = 144, files = 152,
	       pctab_at = 176, ftab = 192, w = 8;
	uint64_t fn = ftab + (version == CP_GOPCLN_116 ? 32 : 16);
	uint32_t magic = version == CP_GOPCLN_116 ? 0xfffffffa :
			 version == CP_GOPCLN_118 ? 0xfffffff0 : 0xfffffff1;
	struct cp_gopcln_frame fr[4];
	struct cp_gopclntab t;
	size_t f32;

	put(b, 0, magic, 4);
	b[6] = 1;
	b[7] = 8;
	put(b, w, 1, 8);					/* nfunc */
	put(b, w + 8, 1, 8);					/* nfiles */
	if (version != CP_GOPCLN_116)
		put(b, w + 16, 0x1000, 8);			/* textStart */
	put(b, hdr - 40, names, 8);
	put(b, hdr - 32, cutab, 8);
	put(b, hdr - 24, files, 8);
	put(b, hdr - 16, pctab_at, 8);
	put(b, hdr - 8, ftab, 8);
	memcpy(b + names, "\0main.f", 8);
	put(b, cutab, 2, 4);
	memcpy(b + files, "x\0/src/a.go", 12);
	memcpy(b + pctab_at, pctab, sizeof(pctab));
	if (version == CP_GOPCLN_116) {
		put(b, ftab, 0x1000, 8);
		put(b, ftab + 8, fn - ftab, 8);
		put(b, ftab + 16, 0x1040, 8);
		put(b, fn, 0x1000, 8);
		f32 = fn + 8;
	} else {
		put(b, ftab, 0, 4);
		put(b, ftab + 4, fn - ftab, 4);
		put(b, ftab + 8, 0x40, 4);
		f32 = fn + 4;
	}
	put(b, f32, 1, 4);					/* nameoff */
	put(b, f32 + 16, 1, 4);					/* pcfile */
	put(b, f32 + 20, 4, 4);					/* pcln */
	if (version == CP_GOPCLN_120)
		put(b, f32 + 32, 9, 4);				/* startLine */
	CHECK(cp_gopclntab_init(&t, b, sizeof(b), 0x500000) == 0, "version %d", (int)version);
	CHECK(t.version == version);
	CHECK(cp_gopclntab_lookup(&t, 0x1005, fr, 4) == 1 && !strcmp(fr[0].function, "main.f") &&
	      fr[0].file && !strcmp(fr[0].file, "/src/a.go") && fr[0].line == 10 &&
	      fr[0].start_line == (version == CP_GOPCLN_120 ? 9 : 0), "version %d", (int)version);
	CHECK(cp_gopclntab_lookup(&t, 0x1020, fr, 4) == 1 && fr[0].line == 12);
	CHECK(cp_gopclntab_lookup(&t, 0x1040, fr, 4) == 0);
	CHECK(cp_gopclntab_lookup(&t, 0xfff, fr, 4) == 0);
}

static void test_refusals(void)
{
	static const uint8_t bad[64] = { 0xf0, 0xff, 0xff, 0xff, 0, 0, 3, 8 };
	struct cp_gopclntab t;

	CHECK(cp_gopclntab_init(&t, NULL, 0, 0) == -EINVAL);
	CHECK(cp_gopclntab_init(&t, bad, sizeof(bad), 0) == -EINVAL);	/* quantum 3 */
	CHECK(cp_gopclntab_init(&t, bad, 8, 0) == -EINVAL);
	CHECK(cp_gopclntab_from_elf(&t, NULL) == -ENOENT);
}

/*
 * Build gowaits for goarch (NULL: this machine) with flags, with and without -s -w, and
 * compare; arm64 has 4-byte instructions (pc quantum 4), 386 4-byte pointers, a PIE build
 * its table in .data.rel.ro.gopclntab. Damage is tried on the native one.
 */
static void test_arch(const char *goarch, const char *flags, bool damage)
{
	const char *src = CP_SRC_ROOT "/tests/targets/gowaits/main.go";
	const char *arch = flags ? "pie" : goarch ? goarch : "native";
	char cmd[1024], full[128], stripped[128], env[64] = "";
	struct cp_gopclntab t;
	int fd;
	Elf *elf;

	printf("%s:\n", arch);
	if (goarch)
		snprintf(env, sizeof(env), "GOARCH=%s", goarch);
	snprintf(full, sizeof(full), "%s/%s-full", dir, arch);
	snprintf(stripped, sizeof(stripped), "%s/%s-stripped", dir, arch);
	if (!flags)
		flags = "";
	snprintf(cmd, sizeof(cmd), "cd %s && %s %s go build %s -o %s %s && %s %s go build %s "
		 "-ldflags='-s -w' -o %s %s", dir, go_env, env, flags, full, src, go_env, env,
		 flags, stripped, src);
	if (check_sh(cmd) != 0) {
		FAIL("%s", cmd);
		return;
	}
	collect_pcs(full);
	/* A PIE build's text moves when stripped: its table is read from the twin itself. */
	elf = open_elf(*flags ? full : stripped, &fd);
	CHECK(elf != NULL);
	if (elf && cp_gopclntab_from_elf(&t, elf) == 0) {
		CHECK(t.version >= CP_GOPCLN_118 && t.has_gofunc, "version %d", (int)t.version);
		CHECK(t.quantum == (goarch && !strcmp(goarch, "arm64") ? 4u : 1u));
		CHECK(t.ptrsize == (goarch && !strcmp(goarch, "386") ? 4u : 8u));
		if (*flags)
			test_names_vs_nm(&t);
		else
			test_agreement(&t, stripped);
		if (!goarch && !*flags)
			test_inline_vs_dwarf(&t, full);
		test_outside(&t);
		if (damage)
			test_damage(&t);
	} else {
		FAIL("no .gopclntab read from %s", stripped);
	}
	if (elf)
		elf_end(elf);
	if (fd >= 0)
		close(fd);
}

int main(void)
{
	char cmd[128];

	test_refusals();
	test_layout(CP_GOPCLN_116);
	test_layout(CP_GOPCLN_118);
	test_layout(CP_GOPCLN_120);
	if (check_sh("command -v go >/dev/null 2>&1") != 0)
		skip("go is not installed (make test installs golang-go)");
	if (!mkdtemp(dir))
		skip("mkdtemp failed");
	elf_version(EV_CURRENT);
	test_arch(NULL, NULL, true);
	test_arch(NULL, "-buildmode=pie", false);
	test_arch("arm64", NULL, false);
	test_arch("386", NULL, false);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (check_sh(cmd) != 0)
		printf("could not remove %s\n", dir);
	return check_done("gopclntab");
}
