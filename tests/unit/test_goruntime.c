/*
 * Tests of the Go runtime reader on the gogoroutines fixture, built with and without
 * .symtab and DWARF: the version, the globals a stripped build's code gives against the
 * unstripped build's .symtab, the DWARF layout against the Go 1.19 table, the goroutines,
 * their stacks and frames; and the x86-64 reference scanner on known bytes.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "go_internal.h"
#include "goruntime.h"
#include "maps.h"
#include "mem.h"

#define RECEIVERS 1000
#define MAX_PCS 128

static char dir[] = "/tmp/cprof-test-goruntime-XXXXXX";
static const char go_env[] = "HOME=/tmp GOCACHE=/tmp/cprof-gocache GOPATH=/tmp/cprof-gopath "
			     "GOPROXY=off GOFLAGS= GO111MODULE=auto CGO_ENABLED=0 "
			     "GOTOOLCHAIN=local";
static const char *const globals[] = { "runtime.allgs", "runtime.allglen", "runtime.allgptr",
	"runtime.gStatusStrings", "runtime.waitReasonStrings" };

static void stop(pid_t pid)
{
	if (pid > 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
}

/* The address go tool nm gives for name in exe, 0 when none. */
static uint64_t nm_addr(const char *exe, const char *name)
{
	char cmd[1024], line[512], sym[256];
	uint64_t addr = 0, a;
	char t;
	FILE *f;

	snprintf(cmd, sizeof(cmd), "%s go tool nm %s", go_env, exe);
	f = popen(cmd, "r");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%" SCNx64 " %c %255s", &a, &t, sym) == 3 && !strcmp(sym, name))
			addr = a;
	pclose(f);
	return addr;
}

/* Open pid's runtime; checks the goroutines and frames; fills addrs with the globals. */
static void check_process(pid_t pid, const char *what, uint64_t *addrs, bool expect_dwarf)
{
	struct cp_maps maps;
	struct cp_mem mem;
	struct cp_go_runtime *rt = NULL;
	struct cp_goroutine *gs = NULL;
	size_t n = 0, receivers = 0, locked = 0, selects = 0, named = 0, created = 0;
	char why[256];
	int err;

	CHECK(cp_maps_read(pid, &maps) == 0, "%s", what);
	CHECK(cp_mem_open(&mem, pid) == 0, "%s", what);
	err = cp_go_open(pid, &maps, &mem, &rt, why, sizeof(why));
	CHECK(err == 0, "%s: cp_go_open: %d %s", what, err, why);
	if (err)
		goto out;
	CHECK(!strncmp(cp_go_version(rt), "go1.", 4), "%s: version %s", what, cp_go_version(rt));
	CHECK(rt->layout_from_dwarf == expect_dwarf, "%s: layout from dwarf %d", what,
	      rt->layout_from_dwarf);
	/* The Go 1.19 table is what DWARF says, field by field. */
	if (expect_dwarf && go_version_find(cp_go_version(rt))) {
		const struct go_layout *t = &go_version_find(cp_go_version(rt))->layout;

		CHECK(!memcmp(t, &rt->layout, sizeof(*t)), "%s: the table differs from DWARF", what);
		CHECK(rt->layout.g_trackingseq == t->g_trackingseq && t->g_trackingseq,
		      "trackingSeq %u", rt->layout.g_trackingseq);
	}
	for (size_t i = 0; i < sizeof(globals) / sizeof(globals[0]); i++)
		CHECK(cp_go_global(rt, globals[i], &addrs[i]) == 0, "%s: %s", what, globals[i]);
	CHECK(rt->nstatus >= 7 && !strcmp(rt->status_strs[4], "waiting"), "%s: %zu statuses",
	      what, rt->nstatus);
	CHECK(rt->nreasons > 10 && !strcmp(rt->reason_strs[2], "IO wait"), "%s: %zu reasons",
	      what, rt->nreasons);
	err = cp_go_goroutines(rt, &gs, &n);
	CHECK(err == 0 && n >= RECEIVERS + 18, "%s: %d, %zu goroutines", what, err, n);
	for (size_t i = 0; i < n; i++) {
		uint64_t pcs[MAX_PCS];
		struct cp_go_frame fr[MAX_PCS], cb;
		size_t np = cp_go_unwind(rt, &gs[i], pcs, MAX_PCS), nf;

		nf = cp_go_frames(rt, pcs, np, false, false, fr, MAX_PCS);
		if (nf && fr[0].file && fr[0].line > 0)
			named++;
		if (!strcmp(gs[i].wait_reason, "chan receive") && nf &&
		    !strcmp(fr[0].function, "main.receiver"))
			receivers++;
		if (!strcmp(gs[i].wait_reason, "select") && nf &&
		    !strcmp(fr[0].function, "main.selecter"))
			selects++;
		if (gs[i].locked_to_thread && gs[i].tid > 0 && nf &&
		    !strcmp(fr[0].function, "main.lockedWaiter"))
			locked++;
		if (cp_go_created_by(rt, &gs[i], &cb) && !strcmp(cb.function, "main.main") &&
		    cb.file && strstr(cb.file, "gogoroutines/main.go"))
			created++;
		if (getenv("CP_GO_DEBUG")) {
			printf("goroutine %" PRId64 " [%s %s] tid %d chan %#" PRIx64 " torn %d sys %d\n",
			       gs[i].id, gs[i].status_str, gs[i].wait_reason, gs[i].tid,
			       gs[i].waiting_chan, gs[i].torn, gs[i].system);
			for (size_t k = 0; k < nf; k++)
				printf("  %s %s:%d +%#" PRIx64 "%s\n", fr[k].function, fr[k].file,
				       fr[k].line, fr[k].entry_off, fr[k].inlined ? " inl" : "");
		}
	}
	CHECK(receivers == RECEIVERS, "%s: %zu receivers", what, receivers);
	CHECK(selects == 10, "%s: %zu in select", what, selects);
	CHECK(locked == 1, "%s: %zu locked", what, locked);
	CHECK(created >= RECEIVERS + 15, "%s: %zu created by main.main", what, created);
	CHECK(named >= RECEIVERS + 15, "%s: %zu named", what, named);
out:
	free(gs);
	cp_go_close(rt);
	cp_mem_close(&mem);
	cp_maps_release(&maps);
}

/* Every recipe of the Go 1.19 table gives, in the stripped build, what nm gives in full. */
static void check_recipes(pid_t stripped_pid, const char *full)
{
	const struct go_version_table *tb = go_version_find("go1.19.8");
	struct cp_maps maps;
	struct cp_mem mem;
	struct cp_go_runtime *rt = NULL;
	char why[256];

	CHECK(tb != NULL);
	if (!tb || cp_maps_read(stripped_pid, &maps) != 0)
		return;
	cp_mem_open(&mem, stripped_pid);
	CHECK(cp_go_open(stripped_pid, &maps, &mem, &rt, why, sizeof(why)) == 0, "%s", why);
	for (size_t i = 0; rt && i < tb->nrecipes; i++) {
		uint64_t want = nm_addr(full, tb->recipes[i].name), got = 0;

		CHECK(cp_go_global(rt, tb->recipes[i].name, &got) == 0 && got == want,
		      "%s: %#" PRIx64 ", nm %#" PRIx64, tb->recipes[i].name, got, want);
	}
	cp_go_close(rt);
	cp_mem_close(&mem);
	cp_maps_release(&maps);
}

/* The scanner on hand-made code: mov rax,[rip+d]; lea rbx,[rip+d]; cmp byte [rip+d],0. */
static void check_scanner(void)
{
	struct cp_go_runtime rt = { 0 };
	/* 48 8b 05 d32 | 48 8d 1d d32 | 80 3d d32 imm8 | 48 8b 05 d32 (outside the data) */
	uint8_t code[] = { 0x48, 0x8b, 0x05, 0xf9, 0x0f, 0x00, 0x00,
			   0x48, 0x8d, 0x1d, 0xf2, 0x0f, 0x00, 0x00,
			   0x80, 0x3d, 0xed, 0x0f, 0x00, 0x00, 0x00,
			   0x48, 0x8b, 0x05, 0x00, 0x00, 0x10, 0x00 };
	uint64_t refs[8];
	size_t n;

	rt.bss = (struct go_section){ .addr = 0x2000, .size = 0x1000 };
	n = go_code_data_refs(&rt, code, sizeof(code), 0x1000, refs, 8);
	CHECK(n == 3, "%zu refs", n);
	CHECK(n >= 3 && refs[0] == 0x2000 && refs[1] == 0x2000 && refs[2] == 0x2002,
	      "%#" PRIx64 " %#" PRIx64 " %#" PRIx64, refs[0], refs[1], refs[2]);
}

/* The .symtab address and size of global name in rt, false when none. */
static bool symtab_global(const struct cp_go_runtime *rt, const char *name, uint64_t *addr,
			  uint64_t *size)
{
	for (size_t i = 0; i < rt->nglobals; i++)
		if (!strcmp(rt->globals[i].name, name)) {
			*addr = rt->globals[i].addr;
			*size = rt->globals[i].size;
			return true;
		}
	return false;
}

/*
 * test_goruntime --table BINARY: the version table entry of an unstripped Go binary (DWARF,
 * .symtab) of a version cprof has no entry for: its layout from DWARF, and for each global of
 * the go1.19 recipes which data reference of the same function it is in this version. Paste
 * the output into src/golang/go_layout.c.
 */
static int print_table(const char *path)
{
	const struct go_version_table *tb = go_version_find("go1.19");
	struct cp_go_runtime rt = { .fd = open(path, O_RDONLY) };
	struct go_layout l;
	uint64_t refs[4096], a, sz, ns = 0, nw = 0;
	char why[256];
	int err = rt.fd < 0 ? -errno : go_binary_load(&rt, path, why, sizeof(why));

	if (!err)
		err = go_layout_from_dwarf(rt.elf, &l);
	if (!err)
		err = go_globals_from_symtab(&rt);
	if (err) {
		fprintf(stderr, "%s: %s (%d)\n", path, why, err);
		goto out;
	}
	if (symtab_global(&rt, "runtime.gStatusStrings", &a, &ns))
		ns /= 16;
	if (symtab_global(&rt, "runtime.waitReasonStrings", &a, &nw))
		nw /= 16;
	printf("\t{\n\t\t.prefix = \"%.*s\",\n\t\t.layout = {\n", (int)strcspn(rt.version + 5,
	       ".") + 5, rt.version);
	printf("\t\t\t.g_size = %u, .g_stack_lo = %u, .g_stack_hi = %u, .g_m = %u, .g_sched = %u,\n"
	       "\t\t\t.g_syscallsp = %u, .g_syscallpc = %u, .g_atomicstatus = %u,\n"
	       "\t\t\t.g_goid = %u, .g_waitsince = %u, .g_waitreason = %u, .g_lockedm = %u,\n"
	       "\t\t\t.g_gopc = %u, .g_startpc = %u, .g_waiting = %u, .g_parentgoid = %u,\n"
	       "\t\t\t.g_trackingseq = %u,\n"
	       "\t\t\t.gobuf_sp = %u, .gobuf_pc = %u, .gobuf_bp = %u,\n"
	       "\t\t\t.m_procid = %u, .m_curg = %u,\n\t\t\t.sudog_c = %u,\n\t\t},\n",
	       l.g_size, l.g_stack_lo, l.g_stack_hi, l.g_m, l.g_sched, l.g_syscallsp,
	       l.g_syscallpc, l.g_atomicstatus, l.g_goid, l.g_waitsince, l.g_waitreason,
	       l.g_lockedm, l.g_gopc, l.g_startpc, l.g_waiting, l.g_parentgoid, l.g_trackingseq,
	       l.gobuf_sp, l.gobuf_pc, l.gobuf_bp, l.m_procid, l.m_curg, l.sudog_c);
	printf("\t\t.nwait_reasons = %" PRIu64 ",\n\t\t.nstatus_strings = %" PRIu64 ",\n\t},\n",
	       nw, ns);
	printf("recipes:\n");
	for (size_t i = 0; i < tb->nrecipes; i++) {
		const struct go_global_recipe *r = &tb->recipes[i];
		struct cp_gopcln_func f;
		size_t n = 0, k;

		if (!symtab_global(&rt, r->name, &a, &sz) ||
		    !cp_gopclntab_func_named(&rt.pcln, r->function, &f) ||
		    f.entry < rt.text.addr || f.end > rt.text.addr + rt.text.size) {
			printf("\t/* %s: no %s */\n", r->name, r->function);
			continue;
		}
		n = go_code_data_refs(&rt, rt.text.data + (f.entry - rt.text.addr),
				      f.end - f.entry, f.entry, refs, 4096);
		for (k = 0; k < n && refs[k] + (uint64_t)r->adjust != a; k++)
			;
		if (k < n)
			printf("\t{ \"%s\", \"%s\", %zu, %lld },\n", r->name, r->function, k,
			       (long long)r->adjust);
		else
			printf("\t/* %s: not referred to by %s */\n", r->name, r->function);
	}
out:
	for (size_t i = 0; i < rt.nglobals; i++)
		free(rt.globals[i].name);
	free(rt.globals);
	if (rt.elf)
		elf_end(rt.elf);
	if (rt.fd >= 0)
		close(rt.fd);
	return err ? 1 : 0;
}

/* Copy the stripped build to out with its version patched to go9.99.9 (no table has it). */
static bool patch_version(const char *in, const char *out)
{
	FILE *f = fopen(in, "rb");
	char *b = NULL, *p = NULL;
	long n = 0;
	bool ok = false;

	if (f && fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) > 0 && fseek(f, 0, SEEK_SET) == 0)
		b = malloc((size_t)n);
	if (b && fread(b, 1, (size_t)n, f) == (size_t)n)
		p = memmem(b, (size_t)n, "\xff Go buildinf:", 14);
	if (p)
		p = memmem(p, (size_t)(b + n - p), "go1.19.8", 8);
	if (f)
		fclose(f);
	if (p) {
		memcpy(p, "go9.99.9", 8);
		f = fopen(out, "wb");
		ok = f && fwrite(b, 1, (size_t)n, f) == (size_t)n;
		if (f)
			fclose(f);
		ok = ok && chmod(out, 0755) == 0;
	}
	free(b);
	return ok;
}

/* The layout learned from the goroutines of a version without a table is Go 1.19's. */
static void check_learned(const char *future)
{
	const struct go_layout *t = &go_version_find("go1.19")->layout;
	struct cp_maps maps;
	struct cp_mem mem;
	struct cp_go_runtime *rt = NULL;
	char why[256];
	pid_t pid = check_start(future, "1000");

	CHECK(pid > 0, "the patched fixture did not start");
	if (pid <= 0 || cp_maps_read(pid, &maps) != 0) {
		stop(pid);
		return;
	}
	cp_mem_open(&mem, pid);
	CHECK(cp_go_open(pid, &maps, &mem, &rt, why, sizeof(why)) == 0, "%s", why);
	if (rt) {
		const struct go_layout *l = &rt->layout;

		CHECK(rt->layout_learned && !strcmp(cp_go_version(rt), "go9.99.9"));
		CHECK(l->g_goid == t->g_goid && l->g_atomicstatus == t->g_atomicstatus &&
		      l->g_waitsince == t->g_waitsince && l->g_waitreason == t->g_waitreason &&
		      l->g_lockedm == t->g_lockedm && l->g_gopc == t->g_gopc &&
		      l->g_startpc == t->g_startpc && l->g_waiting == t->g_waiting &&
		      l->sudog_c == t->sudog_c && l->g_parentgoid == 0,
		      "learned goid %u status %u reason %u lockedm %u gopc %u startpc %u waiting %u "
		      "sudog.c %u parent %u", l->g_goid, l->g_atomicstatus, l->g_waitreason,
		      l->g_lockedm, l->g_gopc, l->g_startpc, l->g_waiting, l->sudog_c,
		      l->g_parentgoid);
	}
	cp_go_close(rt);
	cp_mem_close(&mem);
	cp_maps_release(&maps);
	stop(pid);
}

/* test_goruntime PID: what the reader finds in a running Go program (for debugging). */
static int show_pid(pid_t pid)
{
	struct cp_maps maps;
	struct cp_mem mem;
	struct cp_go_runtime *rt = NULL;
	struct cp_goroutine *gs = NULL;
	size_t n = 0;
	char why[256];
	int err;

	if (cp_maps_read(pid, &maps) != 0)
		return 1;
	cp_mem_open(&mem, pid);
	err = cp_go_open(pid, &maps, &mem, &rt, why, sizeof(why));
	printf("open: %d %s\n", err, why);
	if (!err) {
		printf("version %s dwarf %d symtab %d learned %d\n", cp_go_version(rt),
		       rt->layout_from_dwarf, rt->has_symtab, rt->layout_learned);
		printf("layout: goid %u status %u waitreason %u lockedm %u gopc %u parent %u "
		       "startpc %u waiting %u sudog_c %u size %u\n", rt->layout.g_goid,
		       rt->layout.g_atomicstatus, rt->layout.g_waitreason, rt->layout.g_lockedm,
		       rt->layout.g_gopc, rt->layout.g_parentgoid, rt->layout.g_startpc,
		       rt->layout.g_waiting, rt->layout.sudog_c, rt->layout.g_size);
		for (size_t i = 0; i < rt->nglobals && i < 64; i++)
			printf("  %s %#" PRIx64 "\n", rt->globals[i].name, rt->globals[i].addr);
		err = cp_go_goroutines(rt, &gs, &n);
		printf("goroutines: %d, %zu\n", err, n);
		for (size_t i = 0; i < n; i++) {
			uint64_t pcs[MAX_PCS];
			struct cp_go_frame fr[MAX_PCS];
			size_t np = cp_go_unwind(rt, &gs[i], pcs, MAX_PCS);
			size_t nf = cp_go_frames(rt, pcs, np, false, true, fr, MAX_PCS);

			printf("goroutine %" PRId64 " [%s %s] tid %d torn %d sys %d\n", gs[i].id,
			       gs[i].status_str, gs[i].wait_reason, gs[i].tid, gs[i].torn,
			       gs[i].system);
			for (size_t k = 0; k < nf; k++)
				printf("  %s %s:%d\n", fr[k].function, fr[k].file, fr[k].line);
		}
	}
	free(gs);
	cp_go_close(rt);
	cp_mem_close(&mem);
	cp_maps_release(&maps);
	return 0;
}

/*
 * --table on the plain fixture prints the Go 1.19 entry src/golang/go_layout.c has: the same
 * counts, and every recipe it prints is a line of the table (the tool and the table agree).
 */
static void check_table_tool(const char *self, const char *full)
{
	char cmd[2048], line[512], *table = NULL;
	size_t len = 0, n = 0;
	FILE *f = fopen(CP_SRC_ROOT "/src/golang/go_layout.c", "r");

	CHECK(f != NULL);
	if (!f)
		return;
	table = calloc(1, 1 << 20);
	len = table ? fread(table, 1, (1 << 20) - 1, f) : 0;
	fclose(f);
	snprintf(cmd, sizeof(cmd), "%s --table %s", self, full);
	f = popen(cmd, "r");
	CHECK(f && table && len > 0);
	while (f && table && fgets(line, sizeof(line), f)) {
		char *p = line + strspn(line, "\t ");

		if (!strncmp(p, ".nwait_reasons", 14) || !strncmp(p, ".nstatus_strings", 16) ||
		    !strncmp(p, "{ \"runtime.", 11)) {
			CHECK(strstr(table, p) != NULL, "not in the table: %s", p);
			n++;
		}
	}
	CHECK(n >= 20, "%zu lines checked", n);
	if (f)
		pclose(f);
	free(table);
}

int main(int argc, char **argv)
{
	char cmd[2048], full[512], stripped[512];
	uint64_t a_full[8] = { 0 }, a_stripped[8] = { 0 };
	pid_t p1, p2;

	if (argc > 2 && !strcmp(argv[1], "--table"))
		return print_table(argv[2]);
	if (argc > 1)
		return show_pid(atoi(argv[1]));

	check_scanner();
	if (check_sh("command -v go >/dev/null") != 0)
		skip("go is not installed (make test installs golang-go)");
	CHECK(mkdtemp(dir) != NULL);
	snprintf(full, sizeof(full), "%s/gg", dir);
	snprintf(stripped, sizeof(stripped), "%s/gg-s", dir);
	snprintf(cmd, sizeof(cmd), "cd %s && %s go build -o %s %s/tests/targets/gogoroutines/main.go"
		 " && %s go build -ldflags='-s -w' -o %s %s/tests/targets/gogoroutines/main.go",
		 dir, go_env, full, CP_SRC_ROOT, go_env, stripped, CP_SRC_ROOT);
	CHECK(check_sh(cmd) == 0, "%s", cmd);
	p1 = check_start(full, "1000");
	p2 = check_start(stripped, "1000");
	CHECK(p1 > 0 && p2 > 0, "fixtures did not start");
	if (p1 > 0 && p2 > 0) {
		check_process(p1, "full", a_full, true);
		check_process(p2, "stripped", a_stripped, false);
		for (size_t i = 0; i < sizeof(globals) / sizeof(globals[0]); i++) {
			uint64_t want = nm_addr(full, globals[i]);

			CHECK(want && a_full[i] == want, "%s: full %#" PRIx64 " nm %#" PRIx64,
			      globals[i], a_full[i], want);
			CHECK(want && a_stripped[i] == want, "%s: from code %#" PRIx64
			      " nm %#" PRIx64, globals[i], a_stripped[i], want);
		}
		check_recipes(p2, full);
		check_table_tool(argv[0], full);
		snprintf(cmd, sizeof(cmd), "%s/gg-future", dir);
		CHECK(patch_version(stripped, cmd), "cannot patch %s", stripped);
		check_learned(cmd);
	}
	stop(p1);
	stop(p2);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	check_sh(cmd);
	return check_done("test_goruntime");
}
