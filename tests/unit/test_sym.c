/*
 * Unit tests for symbolize/: names, lines and inlined frames in fixture processes, libc
 * through libc6-dbg, separate debug files (.gnu_debuglink by build ID and by CRC), deleted
 * binaries, symbol-table fallback, corrupt and truncated files, demangling, and timings.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "maps.h"
#include "symbolize.h"
#include "util.h"

#define MAX_PROBES 8

struct probe {
	char tag[32];
	uint64_t ra;	/* return address printed by the fixture */
	int line;
	int extra;
};

struct fixture {
	pid_t pid;
	int stdin_fd;	/* write end of its stdin; closing it ends the fixture */
	struct probe probes[MAX_PROBES];
	size_t nprobes;
	int decl_inlined;
};

static char targets[2048];
static char tmpdir[256];

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/* CPU time: the machine running the tests is often busy, wall time would measure that. */
static double cpu_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static const struct probe *probe(const struct fixture *f, const char *tag)
{
	for (size_t i = 0; i < f->nprobes; i++)
		if (!strcmp(f->probes[i].tag, tag))
			return &f->probes[i];
	return NULL;
}

/*
 * Start path (inside root when root is not NULL, as a container would) with pipes on stdin
 * and stdout; read its probe lines until READY.
 */
static int fixture_start_in(const char *root, const char *path, struct fixture *f)
{
	int in[2], out[2];
	char buf[8192];
	size_t len = 0;
	double deadline = now_us() + 60e6;

	memset(f, 0, sizeof(*f));
	if (pipe(in) || pipe(out))
		return -errno;
	f->pid = fork();
	if (f->pid < 0)
		return -errno;
	if (f->pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		close(in[0]);
		close(in[1]);
		close(out[0]);
		close(out[1]);
		if (root && (chroot(root) || chdir("/")))
			_exit(126);
		execl(path, path, (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	f->stdin_fd = in[1];
	for (;;) {
		struct pollfd pfd = { out[0], POLLIN, 0 };
		ssize_t r;

		if (now_us() > deadline || len >= sizeof(buf) - 1)
			break;
		if (poll(&pfd, 1, 1000) <= 0)
			continue;
		r = read(out[0], buf + len, sizeof(buf) - 1 - len);
		if (r <= 0)
			break;
		len += (size_t)r;
		buf[len] = '\0';
		if (strstr(buf, "READY\n"))
			break;
	}
	close(out[0]);
	buf[len] = '\0';
	if (!strstr(buf, "READY\n")) {
		printf("fixture %s did not get ready; output: %s\n", path, buf);
		return -EIO;
	}
	for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
		struct probe p;
		unsigned long long ra;

		if (sscanf(line, "decl sym_inlined %d", &f->decl_inlined) == 1)
			continue;
		if (f->nprobes < MAX_PROBES &&
		    sscanf(line, "%31s %llx %d %d", p.tag, &ra, &p.line, &p.extra) == 4) {
			p.ra = ra;
			f->probes[f->nprobes++] = p;
		}
	}
	return 0;
}

static int fixture_start(const char *path, struct fixture *f)
{
	return fixture_start_in(NULL, path, f);
}

static void fixture_stop(struct fixture *f)
{
	if (f->pid <= 0)
		return;
	kill(f->pid, SIGKILL);
	waitpid(f->pid, NULL, 0);
	close(f->stdin_fd);
	f->pid = 0;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t a = s ? strlen(s) : 0, b = strlen(suffix);

	return s && a >= b && !strcmp(s + a - b, suffix);
}

static bool streq(const char *a, const char *b)
{
	return a && b && !strcmp(a, b);
}

static const char *str(const char *s)
{
	return s ? s : "(null)";
}

static void print_result(const struct cp_sym_result *r)
{
	printf("  %s+0x%" PRIx64 " build-id %s, %zu frames\n", r->module, r->offset,
	       str(r->build_id), r->n);
	for (size_t i = 0; i < r->n; i++) {
		const struct cp_sym_frame *f = &r->frames[i];

		printf("    #%zu %s [%s] %s:%d (decl %d)%s\n", i, str(f->function),
		       str(f->system_name), str(f->file), f->line, f->start_line,
		       f->inlined ? " (inlined)" : "");
	}
}

/* Symbolize pc of pid: read its maps, find the mapping, resolve. */
static int resolve(struct cp_symbolizer *sym, int pid, uint64_t pc, struct cp_sym_result *r,
		   struct cp_map *map_out)
{
	struct cp_maps maps;
	const struct cp_map *m;
	int err = cp_maps_read(pid, &maps);

	if (err)
		return err;
	m = cp_maps_find(&maps, pc);
	if (!m) {
		cp_maps_release(&maps);
		return -ENOENT;
	}
	err = cp_sym_resolve(sym, pid, m, pc, r);
	if (map_out) {
		*map_out = *m;
		map_out->path = NULL;
	}
	cp_maps_release(&maps);
	return err;
}

/*
 * The symfix checks: the inlined probe is sym_inlined (inlined) in sym_outer at the call
 * site; the outer probe is sym_outer alone, with its declaration line.
 */
static void check_symfix(struct cp_symbolizer *sym, const struct fixture *f, const char *what,
			 bool expect_build_id)
{
	const struct probe *inl = probe(f, "inlined"), *out = probe(f, "outer");
	struct cp_sym_result r;
	int err;

	CHECK(inl && out, "%s: fixture printed its probes", what);
	if (!inl || !out)
		return;
	err = resolve(sym, f->pid, inl->ra - 1, &r, NULL);
	CHECK(err == 0, "%s: resolve: %s", what, strerror(-err));
	if (err)
		return;
	printf("%s, inlined probe:\n", what);
	print_result(&r);
	CHECK(r.n == 2, "%s: inlined probe has 2 frames, got %zu", what, r.n);
	CHECK(expect_build_id == (r.build_id != NULL), "%s: build id %s", what, str(r.build_id));
	if (r.n == 2) {
		CHECK(streq(r.frames[0].function, "sym_inlined"), "%s: %s", what,
		      str(r.frames[0].function));
		CHECK(r.frames[0].inlined, "%s: frame 0 is marked inlined", what);
		CHECK(r.frames[0].line == inl->line, "%s: line %d, want %d", what,
		      r.frames[0].line, inl->line);
		CHECK(ends_with(r.frames[0].file, "/tests/targets/symfix.c") &&
			      r.frames[0].file[0] == '/' && !strstr(r.frames[0].file, "/../"),
		      "%s: full path of symfix.c, got %s", what, str(r.frames[0].file));
		CHECK(r.frames[0].start_line == f->decl_inlined, "%s: decl line %d, want %d", what,
		      r.frames[0].start_line, f->decl_inlined);
		CHECK(streq(r.frames[1].function, "sym_outer"), "%s: %s", what,
		      str(r.frames[1].function));
		CHECK(streq(r.frames[1].system_name, "sym_outer"), "%s: system name %s", what,
		      str(r.frames[1].system_name));
		CHECK(!r.frames[1].inlined, "%s: frame 1 is the real function", what);
		CHECK(r.frames[1].line == inl->extra, "%s: call site line %d, want %d", what,
		      r.frames[1].line, inl->extra);
		CHECK(ends_with(r.frames[1].file, "symfix.c"), "%s: call site file %s", what,
		      str(r.frames[1].file));
		CHECK(r.frames[1].start_line == out->extra, "%s: sym_outer decl %d, want %d", what,
		      r.frames[1].start_line, out->extra);
	}

	err = resolve(sym, f->pid, out->ra - 1, &r, NULL);
	CHECK(err == 0, "%s: resolve outer: %s", what, strerror(-err));
	if (err)
		return;
	printf("%s, outer probe:\n", what);
	print_result(&r);
	CHECK(r.n == 1 && streq(r.frames[0].function, "sym_outer") && !r.frames[0].inlined &&
		      r.frames[0].line == out->line && r.frames[0].start_line == out->extra,
	      "%s: outer probe is sym_outer at line %d", what, out->line);
}

/* Lowest PT_LOAD virtual address of the ELF file at path (0 for PIE). */
static uint64_t first_load_vaddr(const char *path)
{
	int fd = open(path, O_RDONLY);
	uint64_t v = UINT64_MAX;
	GElf_Phdr ph;
	Elf *elf;

	if (fd < 0)
		return 0;
	elf_version(EV_CURRENT);
	elf = elf_begin(fd, ELF_C_READ, NULL);
	for (int i = 0; elf && gelf_getphdr(elf, i, &ph); i++)
		if (ph.p_type == PT_LOAD && ph.p_vaddr < v)
			v = ph.p_vaddr;
	elf_end(elf);
	close(fd);
	return v == UINT64_MAX ? 0 : v;
}

/* Module facts of the fixture's executable: bias is where its first PT_LOAD went, minus its
 * vaddr (0 for a non-PIE executable). */
static void check_module_info(struct cp_symbolizer *sym, const struct fixture *f,
			      const char *path, const char *what, bool expect_debug)
{
	const struct probe *out = probe(f, "outer");
	struct cp_maps maps;
	const struct cp_map *m;
	const char *bid = NULL;
	uint64_t bias = 1, lowest = UINT64_MAX;
	bool has_debug = !expect_debug;
	int err;

	if (!out || cp_maps_read(f->pid, &maps))
		return;
	m = cp_maps_find(&maps, out->ra);
	for (size_t i = 0; m && i < maps.n; i++)
		if (maps.v[i].inode == m->inode && maps.v[i].start < lowest)
			lowest = maps.v[i].start;
	err = m ? cp_sym_module_info(sym, f->pid, m, &bid, &bias, &has_debug) : -ENOENT;
	CHECK(err == 0, "%s: module info: %s", what, strerror(-err));
	lowest -= first_load_vaddr(path);
	CHECK(bias == lowest, "%s: bias 0x%" PRIx64 " want 0x%" PRIx64, what, bias, lowest);
	CHECK(has_debug == expect_debug, "%s: has debug info %d", what, has_debug);
	cp_maps_release(&maps);
}

static void run_symfix(const char *path, const char *what, bool build_id, bool debug)
{
	struct cp_symbolizer *sym = cp_sym_new();
	struct fixture f;
	int err = fixture_start(path, &f);

	CHECK(err == 0, "%s: start %s", what, path);
	if (!err) {
		check_symfix(sym, &f, what, build_id);
		check_module_info(sym, &f, path, what, debug);
	}
	fixture_stop(&f);
	cp_sym_free(sym);
}

static int copy_file(const char *from, const char *to, mode_t mode)
{
	char buf[65536];
	ssize_t r;
	int in = open(from, O_RDONLY), out;

	if (in < 0)
		return -errno;
	out = open(to, O_WRONLY | O_CREAT | O_TRUNC, mode);
	if (out < 0) {
		close(in);
		return -errno;
	}
	while ((r = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)r) != r)
			break;
	close(in);
	close(out);
	return r == 0 ? 0 : -EIO;
}

static void test_basic(void)
{
	char p[PATH_MAX];

	snprintf(p, sizeof(p), "%s/symfix", targets);
	run_symfix(p, "symfix (own DWARF)", true, true);
	snprintf(p, sizeof(p), "%s/symfix-noaranges", targets);
	run_symfix(p, "symfix-noaranges (CUs found without .debug_aranges)", true, true);
	snprintf(p, sizeof(p), "%s/symfix-nopie", targets);
	run_symfix(p, "symfix-nopie (ET_EXEC)", true, true);
	/* The debug file next to it, found by .gnu_debuglink and checked by build ID... */
	snprintf(p, sizeof(p), "%s/symfix-stripped", targets);
	run_symfix(p, "symfix-stripped (debuglink, build ID)", true, true);
	/* ...and by CRC when there is no build ID. */
	snprintf(p, sizeof(p), "%s/symfix-nobid-stripped", targets);
	run_symfix(p, "symfix-nobid-stripped (debuglink, CRC)", false, true);
}

/* Debug file in .debug/ beside the binary; and a wrong file of the right name is refused. */
/* Empty the on-disk results (symbolize/sym_cache.h) of earlier symbolizers. */
static void forget_results(void)
{
	char cmd[4200];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s/cache/sym1'", tmpdir);
	CHECK(system(cmd) == 0, "%s", cmd);
}

static void test_debuglink_dirs(void)
{
	char bin[PATH_MAX], dbg[PATH_MAX], src[PATH_MAX];
	struct cp_symbolizer *sym;
	struct fixture f;
	struct cp_sym_result r;
	const struct probe *inl;

	snprintf(dbg, sizeof(dbg), "%s/.debug", tmpdir);
	mkdir(dbg, 0755);
	snprintf(bin, sizeof(bin), "%s/symfix-stripped", tmpdir);
	snprintf(src, sizeof(src), "%s/symfix-stripped", targets);
	CHECK(copy_file(src, bin, 0755) == 0, "copy %s", src);
	snprintf(src, sizeof(src), "%s/symfix-stripped.debug", targets);
	snprintf(dbg, sizeof(dbg), "%s/.debug/symfix-stripped.debug", tmpdir);
	CHECK(copy_file(src, dbg, 0644) == 0, "copy %s", src);
	run_symfix(bin, "symfix-stripped, debug file in .debug/", true, true);

	/* The nobid debug file under the name the build-ID binary links to: rejected, so the
	 * symbol table names the function and no line is made up. */
	snprintf(src, sizeof(src), "%s/symfix-nobid-stripped.debug", targets);
	CHECK(copy_file(src, dbg, 0644) == 0, "copy %s", src);
	/*
	 * First, a new symbolizer still knows the build from the on-disk results of the run
	 * above (the build ID names the code, whatever debug file is around now).
	 */
	sym = cp_sym_new();
	if (fixture_start(bin, &f) == 0 && (inl = probe(&f, "inlined"))) {
		CHECK(resolve(sym, f.pid, inl->ra - 1, &r, NULL) == 0, "resolve");
		CHECK(r.n == 2 && streq(r.frames[0].function, "sym_inlined") && r.frames[0].inlined &&
			      r.frames[0].file && strstr(r.frames[0].file, "symfix.c") &&
			      streq(r.frames[1].function, "sym_outer"),
		      "results of an earlier process, from the disk");
	}
	fixture_stop(&f);
	cp_sym_free(sym);
	forget_results();
	sym = cp_sym_new();
	if (fixture_start(bin, &f) == 0 && (inl = probe(&f, "inlined"))) {
		CHECK(resolve(sym, f.pid, inl->ra - 1, &r, NULL) == 0, "resolve");
		printf("mismatched debug file:\n");
		print_result(&r);
		CHECK(r.n == 1 && streq(r.frames[0].function, "sym_outer") && !r.frames[0].file,
		      "mismatched debug file ignored, symtab used");
	}
	fixture_stop(&f);
	cp_sym_free(sym);
	unlink(dbg);

	/* No debug file, only a FIFO of its name (which a hostile container could plant): no
	 * hang in open(), and .symtab still names the functions. */
	snprintf(dbg, sizeof(dbg), "%s/symfix-stripped.debug", tmpdir);
	CHECK(mkfifo(dbg, 0644) == 0, "mkfifo %s", dbg);
	forget_results();
	sym = cp_sym_new();
	if (fixture_start(bin, &f) == 0 && (inl = probe(&f, "outer"))) {
		CHECK(resolve(sym, f.pid, inl->ra - 1, &r, NULL) == 0, "resolve");
		printf("stripped, no debug file:\n");
		print_result(&r);
		CHECK(r.n == 1 && streq(r.frames[0].function, "sym_outer") && !r.frames[0].file &&
			      r.frames[0].line == 0,
		      "symtab fallback names sym_outer");
	}
	fixture_stop(&f);
	cp_sym_free(sym);
	unlink(dbg);
	unlink(bin);
}

/* The text of the on-disk results for build_id, or NULL (malloc'd). */
static char *results_file(const char *build_id)
{
	char path[4200], *text = NULL;
	size_t len = 0;

	snprintf(path, sizeof(path), "%s/cache/sym1/%s", tmpdir, build_id);
	if (cp_read_file_alloc(path, 16u << 20, &text, &len) < 0)
		return NULL;
	return text;
}

/* An address in the mapping of m's file at offset 0, the ELF header: no function there. */
static uint64_t elf_header_pc(const struct cp_maps *maps, const struct cp_map *m)
{
	for (size_t i = 0; m && i < maps->n; i++)
		if (maps->v[i].inode == m->inode && maps->v[i].offset == 0)
			return maps->v[i].start + 0x20;
	return 0;
}

/*
 * What the disk results keep besides answers: that the build has DWARF, so that a later
 * process can flag the mapping without opening the debug file (it is gone here, and the flag
 * still holds), and that DWARF and the symbol table know nothing at an address (the ELF
 * header's), so that a later process meeting it does not read every unit of the DWARF again.
 */
static void test_disk_facts(void)
{
	char bin[PATH_MAX], dbg[PATH_MAX], src[PATH_MAX], line[64];
	struct cp_symbolizer *sym;
	struct cp_sym_result r;
	struct cp_maps maps;
	const struct cp_map *m;
	const struct probe *out;
	struct fixture f;
	const char *bid = NULL;
	char *text;
	uint64_t bias, header_pc = 0;
	bool has_debug;

	snprintf(bin, sizeof(bin), "%s/symfix-stripped", tmpdir);
	snprintf(src, sizeof(src), "%s/symfix-stripped", targets);
	CHECK(copy_file(src, bin, 0755) == 0, "copy %s", src);
	snprintf(dbg, sizeof(dbg), "%s/symfix-stripped.debug", tmpdir);
	snprintf(src, sizeof(src), "%s/symfix-stripped.debug", targets);
	CHECK(copy_file(src, dbg, 0644) == 0, "copy %s", src);
	forget_results();

	sym = cp_sym_new();
	if (fixture_start(bin, &f) == 0 && (out = probe(&f, "outer")) &&
	    cp_maps_read(f.pid, &maps) == 0) {
		m = cp_maps_find(&maps, out->ra);
		has_debug = false;
		CHECK(m && cp_sym_module_info(sym, f.pid, m, &bid, &bias, &has_debug) == 0 &&
			      has_debug && bid,
		      "debug file found");
		header_pc = elf_header_pc(&maps, m);
		cp_maps_release(&maps);
		CHECK(header_pc && resolve(sym, f.pid, header_pc, &r, NULL) == 0 && r.n == 0,
		      "nothing at the ELF header");
		text = bid ? results_file(bid) : NULL;
		snprintf(line, sizeof(line), "\n%" PRIx64 " 0\n", header_pc - bias);
		CHECK(text && (strstr(text, line) || !strncmp(text, line + 1, strlen(line + 1))),
		      "an empty answer is kept: %s", text ? text : "(no file)");
		CHECK(text && (strstr(text, "\n=dwarf\n") || !strncmp(text, "=dwarf\n", 7)),
		      "that the build has DWARF is kept");
		free(text);
		CHECK(resolve(sym, f.pid, out->ra - 1, &r, NULL) == 0 && r.n == 1 && r.frames[0].file,
		      "sym_outer from DWARF");
	}
	fixture_stop(&f);
	cp_sym_free(sym);

	/* The debug file gone: the disk says there is DWARF, and what it said. */
	unlink(dbg);
	sym = cp_sym_new();
	if (fixture_start(bin, &f) == 0 && (out = probe(&f, "outer")) &&
	    cp_maps_read(f.pid, &maps) == 0) {
		m = cp_maps_find(&maps, out->ra);
		has_debug = false;
		CHECK(m && cp_sym_module_info(sym, f.pid, m, NULL, NULL, &has_debug) == 0 &&
			      has_debug,
		      "has DWARF, from the disk");
		header_pc = elf_header_pc(&maps, m);
		cp_maps_release(&maps);
		CHECK(resolve(sym, f.pid, header_pc, &r, NULL) == 0 && r.n == 0,
		      "still nothing at the ELF header");
		CHECK(resolve(sym, f.pid, out->ra - 1, &r, NULL) == 0 && r.n == 1 &&
			      streq(r.frames[0].function, "sym_outer") && r.frames[0].file &&
			      r.frames[0].line == out->line,
		      "sym_outer with its line, from the disk");
	}
	fixture_stop(&f);
	cp_sym_free(sym);

	/* Without the disk results, and without the debug file: no DWARF, symbols only. */
	forget_results();
	sym = cp_sym_new();
	if (fixture_start(bin, &f) == 0 && (out = probe(&f, "outer")) &&
	    cp_maps_read(f.pid, &maps) == 0) {
		m = cp_maps_find(&maps, out->ra);
		has_debug = true;
		CHECK(m && cp_sym_module_info(sym, f.pid, m, &bid, NULL, &has_debug) == 0 &&
			      !has_debug,
		      "no DWARF without the debug file");
		cp_maps_release(&maps);
		CHECK(resolve(sym, f.pid, out->ra - 1, &r, NULL) == 0 && r.n == 1 &&
			      streq(r.frames[0].function, "sym_outer") && !r.frames[0].file,
		      "sym_outer from the symbol table");
		/* No DWARF: nothing is kept, debug information installed later must count. */
		text = bid ? results_file(bid) : NULL;
		CHECK(!text, "nothing kept without DWARF: %s", text);
		free(text);
	}
	fixture_stop(&f);
	cp_sym_free(sym);
	unlink(bin);
}

/* A binary deleted after it started is read through /proc/PID/map_files. */
static void test_deleted(void)
{
	char bin[PATH_MAX], dbg[PATH_MAX], src[PATH_MAX];
	struct cp_symbolizer *sym = cp_sym_new();
	struct cp_sym_result r;
	struct cp_map map;
	struct fixture f;
	const struct probe *out;

	/* Unstripped, and stripped with its debug file next to the (deleted) path. */
	for (int stripped = 0; stripped < 2; stripped++) {
		snprintf(bin, sizeof(bin), "%s/deleted-symfix%s", tmpdir,
			 stripped ? "-stripped" : "");
		snprintf(src, sizeof(src), "%s/symfix%s", targets, stripped ? "-stripped" : "");
		CHECK(copy_file(src, bin, 0755) == 0, "copy %s", src);
		if (stripped) {
			snprintf(dbg, sizeof(dbg), "%s/symfix-stripped.debug", tmpdir);
			snprintf(src, sizeof(src), "%s/symfix-stripped.debug", targets);
			CHECK(copy_file(src, dbg, 0644) == 0, "copy %s", src);
		}
		if (fixture_start(bin, &f)) {
			CHECK(0, "start %s", bin);
			continue;
		}
		unlink(bin);
		out = probe(&f, "outer");
		if (out) {
			CHECK(resolve(sym, f.pid, out->ra - 1, &r, &map) == 0, "resolve");
			printf("deleted binary%s:\n", stripped ? " (stripped)" : "");
			print_result(&r);
			CHECK(map.deleted, "the mapping is marked deleted");
			CHECK(r.n == 1 && streq(r.frames[0].function, "sym_outer") &&
				      r.frames[0].line == out->line,
			      "deleted binary symbolized with DWARF");
		}
		check_symfix(sym, &f, stripped ? "deleted stripped" : "deleted", true);
		fixture_stop(&f);
		if (stripped)
			unlink(dbg);
		/* A fresh symbolizer per case: the second would otherwise hit the cache. */
		cp_sym_free(sym);
		sym = cp_sym_new();
	}
	cp_sym_free(sym);
}

/* /proc/PID/task/TID/syscall of a thread blocked in syscall nr: its user pc. */
static uint64_t blocked_pc(int pid, long nr1, long nr2)
{
	char path[PATH_MAX], buf[512];

	for (int tries = 0; tries < 600; tries++) {
		DIR *d;
		struct dirent *e;

		snprintf(path, sizeof(path), "/proc/%d/task", pid);
		d = opendir(path);
		if (!d)
			return 0;
		while ((e = readdir(d))) {
			FILE *fp;
			long nr;
			char *last;

			if (e->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "/proc/%d/task/%s/syscall", pid, e->d_name);
			fp = fopen(path, "r");
			if (!fp)
				continue;
			if (!fgets(buf, sizeof(buf), fp) || sscanf(buf, "%ld", &nr) != 1)
				nr = -1;
			fclose(fp);
			last = strrchr(buf, ' ');
			if ((nr == nr1 || nr == nr2) && last) {
				closedir(d);
				return strtoull(last + 1, NULL, 16);
			}
		}
		closedir(d);
		usleep(50000);
	}
	return 0;
}

static bool any_frame_has_line(const struct cp_sym_result *r)
{
	for (size_t i = 0; i < r->n; i++)
		if (r->frames[i].file && r->frames[i].line > 0)
			return true;
	return false;
}

static bool any_function_contains(const struct cp_sym_result *r, const char *s)
{
	for (size_t i = 0; i < r->n; i++)
		if (r->frames[i].function && strstr(r->frames[i].function, s))
			return true;
	return false;
}

/* libc frames get names and file:line from libc6-dbg's build-ID debug file. */
static void test_libc(void)
{
	struct cp_symbolizer *sym = cp_sym_new();
	struct cp_sym_result r;
	struct fixture f;
	char p[PATH_MAX];
	uint64_t pc;

	snprintf(p, sizeof(p), "%s/symfix", targets);
	if (fixture_start(p, &f)) {
		CHECK(0, "start symfix");
		cp_sym_free(sym);
		return;
	}
	pc = blocked_pc(f.pid, 0 /* read */, -2);
	CHECK(pc != 0, "a thread blocked in read");
	if (pc && resolve(sym, f.pid, pc, &r, NULL) == 0) {
		printf("libc read:\n");
		print_result(&r);
		CHECK(strstr(r.module, "libc.so.6") != NULL, "in libc: %s", r.module);
		CHECK(r.build_id != NULL, "libc has a build ID");
		CHECK(r.n >= 1 && strstr(str(r.frames[r.n - 1].function), "read"),
		      "function named read");
		CHECK(any_frame_has_line(&r), "libc read has file:line from libc6-dbg");
	}
	pc = blocked_pc(f.pid, 35 /* nanosleep */, 230 /* clock_nanosleep */);
	CHECK(pc != 0, "a thread blocked in nanosleep");
	if (pc && resolve(sym, f.pid, pc, &r, NULL) == 0) {
		printf("libc nanosleep:\n");
		print_result(&r);
		CHECK(any_function_contains(&r, "nanosleep"), "function named nanosleep");
		CHECK(any_frame_has_line(&r), "libc nanosleep has file:line");
	}
	fixture_stop(&f);
	cp_sym_free(sym);
}

/*
 * A process in its own root (a chroot standing in for a container): its files are read
 * through /proc/PID/root, its debug file is found under that root's /usr/lib/debug + the
 * binary's directory, and its libc's debug file by build ID on the host.
 */
static void test_chroot(void)
{
	static const char *const dirs[] = { "/lib64", "/lib", "/lib/x86_64-linux-gnu", "/usr",
					    "/usr/lib", "/usr/lib/debug", "/usr/lib/debug/bin",
					    "/bin" };
	static const char *const libs[] = { "/lib64/ld-linux-x86-64.so.2",
					    "/lib/x86_64-linux-gnu/libc.so.6" };
	char root[512], a[PATH_MAX], b[PATH_MAX];
	struct cp_symbolizer *sym;
	struct cp_sym_result r;
	struct fixture f;
	uint64_t pc;
	bool ok = true;

	snprintf(root, sizeof(root), "%s/root", tmpdir);
	mkdir(root, 0755);
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		snprintf(a, sizeof(a), "%s%s", root, dirs[i]);
		mkdir(a, 0755);
	}
	for (size_t i = 0; i < sizeof(libs) / sizeof(libs[0]); i++) {
		snprintf(a, sizeof(a), "%s%s", root, libs[i]);
		ok = ok && copy_file(libs[i], a, 0755) == 0;
	}
	snprintf(a, sizeof(a), "%s/symfix-stripped", targets);
	snprintf(b, sizeof(b), "%s/bin/symfix-stripped", root);
	ok = ok && copy_file(a, b, 0755) == 0;
	snprintf(a, sizeof(a), "%s/symfix-stripped.debug", targets);
	snprintf(b, sizeof(b), "%s/usr/lib/debug/bin/symfix-stripped.debug", root);
	ok = ok && copy_file(a, b, 0644) == 0;
	if (!ok) {
		printf("chroot check not run: cannot copy the loader and libc\n");
		return;
	}
	sym = cp_sym_new();
	if (fixture_start_in(root, "/bin/symfix-stripped", &f) == 0) {
		check_symfix(sym, &f, "chroot, debug file in ROOT/usr/lib/debug/bin", true);
		pc = blocked_pc(f.pid, 0 /* read */, -2);
		if (pc && resolve(sym, f.pid, pc, &r, NULL) == 0) {
			printf("chroot libc read:\n");
			print_result(&r);
			/* The kernel shows our view of the path, under the chroot's directory. */
			CHECK(ends_with(r.module, "/root/lib/x86_64-linux-gnu/libc.so.6"), "module %s",
			      r.module);
			CHECK(any_function_contains(&r, "read") && any_frame_has_line(&r),
			      "libc in a chroot symbolized");
		}
	} else {
		CHECK(0, "start symfix-stripped in a chroot");
	}
	fixture_stop(&f);
	cp_sym_free(sym);
	/* Tidy up what we made; a failed unlink only leaves files in our temporary dir. */
	for (size_t i = 0; i < sizeof(libs) / sizeof(libs[0]); i++) {
		snprintf(a, sizeof(a), "%s%s", root, libs[i]);
		unlink(a);
	}
	unlink(b);
	snprintf(a, sizeof(a), "%s/bin/symfix-stripped", root);
	unlink(a);
	for (size_t i = sizeof(dirs) / sizeof(dirs[0]); i > 0; i--) {
		snprintf(a, sizeof(a), "%s%s", root, dirs[i - 1]);
		rmdir(a);
	}
	rmdir(root);
}

static void test_cxx(void)
{
	struct cp_symbolizer *sym = cp_sym_new();
	struct cp_sym_result r;
	struct fixture f;
	const struct probe *pr;
	char p[PATH_MAX];

	snprintf(p, sizeof(p), "%s/symfix_cxx", targets);
	if (fixture_start(p, &f)) {
		CHECK(0, "start symfix_cxx");
		cp_sym_free(sym);
		return;
	}
	pr = probe(&f, "cxx");
	CHECK(pr != NULL, "cxx probe");
	if (pr && resolve(sym, f.pid, pr->ra - 1, &r, NULL) == 0) {
		printf("C++ template method:\n");
		print_result(&r);
		CHECK(r.n == 1, "one frame");
		CHECK(streq(r.frames[r.n - 1].function, "ns::Worker<int>::run()"), "demangled %s",
		      str(r.frames[r.n - 1].function));
		CHECK(streq(r.frames[r.n - 1].system_name, "_ZN2ns6WorkerIiE3runEv"), "raw %s",
		      str(r.frames[r.n - 1].system_name));
		CHECK(r.frames[0].line == pr->line && ends_with(r.frames[0].file, "symfix_cxx.cc"),
		      "line %d file %s", r.frames[0].line, str(r.frames[0].file));
		CHECK(r.frames[r.n - 1].start_line == pr->extra, "decl line %d want %d",
		      r.frames[r.n - 1].start_line, pr->extra);
	}
	fixture_stop(&f);
	cp_sym_free(sym);
}

static void test_demangle(void)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{ "_ZN2ns6WorkerIiE3runEv", "ns::Worker<int>::run()" },
		{ "_Z3fooPKci", "foo(char const*, int)" },
		{ "_ZNSt6vectorIiSaIiEE9push_backERKi",
		  "std::vector<int, std::allocator<int> >::push_back(int const&)" },
		{ "_ZN3foo3barEv.cold", "foo::bar() [clone .cold]" },
		{ "_ZN4core3fmt9Formatter3pad17h0123456789abcdefE", "core::fmt::Formatter::pad" },
		{ "_ZN57_$LT$core..str..Utf8Error$u20$as$u20$core..fmt..Debug$GT$3fmt17h9a8b7c6d5e4f3a2bE",
		  "<core::str::Utf8Error as core::fmt::Debug>::fmt" },
		{ "_ZN3std2rt10lang_start28_$u7b$$u7b$closure$u7d$$u7d$17h1111111111111111E.llvm.42",
		  "std::rt::lang_start::{{closure}}" },
		{ "_ZN4main4main17haaaaaaaaaaaaaaaaE", "main::main" },
	};
	static const char *not_mangled[] = {
		"main", "", "_Z", "_Zgarbage!", "_ZN3foo", "_ZN999999999999999999999fooE",
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *d = cp_sym_demangle(cases[i].in);

		CHECK(streq(d, cases[i].out), "demangle %s: got %s", cases[i].in, str(d));
		free(d);
	}
	for (size_t i = 0; i < sizeof(not_mangled) / sizeof(not_mangled[0]); i++) {
		char *d = cp_sym_demangle(not_mangled[i]);

		CHECK(d == NULL, "%s is not demangled: got %s", not_mangled[i], str(d));
		free(d);
	}
	CHECK(cp_sym_demangle(NULL) == NULL, "NULL");
}

/* Touch every string of a result so that ASan sees any dangling pointer. */
static size_t touch(const struct cp_sym_result *r)
{
	size_t sum = strlen(r->module);

	if (r->build_id)
		sum += strlen(r->build_id);
	for (size_t i = 0; i < r->n && i < CP_SYM_MAX_INLINE; i++) {
		const struct cp_sym_frame *f = &r->frames[i];

		sum += (f->function ? strlen(f->function) : 0) +
		       (f->system_name ? strlen(f->system_name) : 0) + (f->file ? strlen(f->file) : 0);
	}
	return sum;
}

/* Where .debug_info (or another section) lies in the ELF file at path. */
static bool section_range(const char *path, const char *name, off_t *off, size_t *size)
{
	int fd = open(path, O_RDONLY);
	Elf *elf;
	Elf_Scn *scn = NULL;
	size_t shstrndx;
	bool found = false;

	if (fd < 0)
		return false;
	elf_version(EV_CURRENT);
	elf = elf_begin(fd, ELF_C_READ, NULL);
	if (elf && elf_getshdrstrndx(elf, &shstrndx) == 0) {
		while ((scn = elf_nextscn(elf, scn))) {
			GElf_Shdr sh;
			const char *n;

			if (!gelf_getshdr(scn, &sh))
				continue;
			n = elf_strptr(elf, shstrndx, sh.sh_name);
			if (n && !strcmp(n, name)) {
				*off = (off_t)sh.sh_offset;
				*size = sh.sh_size;
				found = true;
			}
		}
	}
	elf_end(elf);
	close(fd);
	return found;
}

/*
 * Symbolize the fixture's probes against a damaged copy standing in for its executable
 * (as if the file on disk had been replaced): never a crash, never garbage strings.
 */
static struct cp_symbolizer *resolve_against(const struct fixture *f, const struct cp_map *real, const char *copy,
			    struct cp_sym_result *rs, size_t nrs)
{
	struct cp_symbolizer *sym = cp_sym_new();
	struct cp_map map = *real;
	struct stat st;
	const char *bid;
	uint64_t bias;
	bool dbg;

	if (!sym || stat(copy, &st))
		return sym;
	map.path = (char *)copy;
	map.inode = st.st_ino;
	map.dev_major = major(st.st_dev);
	map.dev_minor = minor(st.st_dev);
	map.deleted = false;
	for (size_t i = 0; i < f->nprobes && i < nrs; i++) {
		int err = cp_sym_resolve(sym, f->pid, &map, f->probes[i].ra - 1, &rs[i]);

		CHECK(err == 0, "damaged %s: resolve returns 0, got %d", copy, err);
		if (err)
			memset(&rs[i], 0, sizeof(rs[i]));
		else
			CHECK(rs[i].n <= CP_SYM_MAX_INLINE && touch(&rs[i]) > 0, "sane result");
	}
	(void)cp_sym_module_info(sym, f->pid, &map, &bid, &bias, &dbg);
	return sym;
}

static void test_corrupt(void)
{
	char src[PATH_MAX], copy[PATH_MAX];
	struct cp_sym_result rs[MAX_PROBES];
	struct cp_map real;
	struct fixture f;
	struct stat st;
	off_t info_off = 0, abbrev_off = 0, line_off = 0;
	size_t info_size = 0, abbrev_size = 0, line_size = 0;
	const struct probe *out;
	struct cp_symbolizer *sym;
	unsigned seed = 12345;
	/* CPROF_SYM_FUZZ=N runs N rounds of each kind (and seeds them differently) for a soak. */
	const char *fuzz = getenv("CPROF_SYM_FUZZ");
	int rounds = fuzz ? atoi(fuzz) : 0;
	int fd;

	if (rounds > 0)
		seed = (unsigned)rounds;
	else
		rounds = 250;

	snprintf(src, sizeof(src), "%s/symfix", targets);
	snprintf(copy, sizeof(copy), "%s/corrupt-symfix", tmpdir);
	if (fixture_start(src, &f)) {
		CHECK(0, "start symfix");
		return;
	}
	out = probe(&f, "outer");
	sym = cp_sym_new();
	CHECK(out && resolve(sym, f.pid, out->ra - 1, &rs[0], &real) == 0, "real map");
	cp_sym_free(sym);
	if (!out || stat(src, &st) || !section_range(src, ".debug_info", &info_off, &info_size) ||
	    !section_range(src, ".debug_abbrev", &abbrev_off, &abbrev_size) ||
	    !section_range(src, ".debug_line", &line_off, &line_size)) {
		CHECK(0, "fixture has .debug_info, .debug_abbrev, .debug_line");
		fixture_stop(&f);
		return;
	}

	/* Unchanged copy first: the stand-in mechanism itself works. */
	CHECK(copy_file(src, copy, 0644) == 0, "copy");
	sym = resolve_against(&f, &real, copy, rs, MAX_PROBES);
	CHECK(any_function_contains(&rs[0], "sym_") && any_frame_has_line(&rs[0]),
	      "the intact copy symbolizes");
	cp_sym_free(sym);

	/* Truncated at many lengths, from nothing to one byte short. */
	static const double fractions[] = { 0, 0.001, 0.01, 0.1, 0.25, 0.5, 0.6, 0.75, 0.9, 0.99 };
	for (size_t i = 0; i <= sizeof(fractions) / sizeof(fractions[0]); i++) {
		off_t len = i < sizeof(fractions) / sizeof(fractions[0]) ?
				    (off_t)(st.st_size * fractions[i]) : st.st_size - 1;

		CHECK(copy_file(src, copy, 0644) == 0 && truncate(copy, len) == 0, "truncate");
		cp_sym_free(resolve_against(&f, &real, copy, rs, MAX_PROBES));
	}
	/* Cut in the middle of .debug_info: the section headers (at the end) are gone. */
	CHECK(copy_file(src, copy, 0644) == 0 && truncate(copy, info_off + (off_t)info_size / 2) == 0,
	      "truncate");
	cp_sym_free(resolve_against(&f, &real, copy, rs, MAX_PROBES));

	/* .debug_info zeroed: DWARF unusable, .symtab still names the function. */
	CHECK(copy_file(src, copy, 0644) == 0, "copy");
	fd = open(copy, O_WRONLY);
	if (fd >= 0) {
		char *zeros = calloc(1, info_size);

		if (zeros && pwrite(fd, zeros, info_size, info_off) != (ssize_t)info_size)
			CHECK(0, "pwrite");
		free(zeros);
		close(fd);
	}
	sym = resolve_against(&f, &real, copy, rs, MAX_PROBES);
	for (size_t i = 0; i < f.nprobes; i++) {
		if (strcmp(f.probes[i].tag, "outer"))
			continue;
		printf("zeroed .debug_info:\n");
		print_result(&rs[i]);
		CHECK(rs[i].n == 1 && streq(rs[i].frames[0].function, "sym_outer"),
		      "zeroed .debug_info: symtab names sym_outer");
	}
	cp_sym_free(sym);

	/* Random bytes flipped in .debug_info (and some in .debug_abbrev and .debug_line). */
	for (int iter = 0; iter < rounds; iter++) {
		int nflips = 1 + (int)(rand_r(&seed) % 16);

		CHECK(copy_file(src, copy, 0644) == 0, "copy");
		fd = open(copy, O_WRONLY);
		if (fd < 0)
			continue;
		for (int k = 0; k < nflips; k++) {
			unsigned which = rand_r(&seed) % 10;
			off_t base = which < 7 ? info_off : which < 9 ? abbrev_off : line_off;
			size_t size = which < 7 ? info_size : which < 9 ? abbrev_size : line_size;
			off_t at = base + (off_t)(rand_r(&seed) % size);
			unsigned char b = (unsigned char)rand_r(&seed);

			if (pwrite(fd, &b, 1, at) != 1)
				CHECK(0, "pwrite");
		}
		close(fd);
		cp_sym_free(resolve_against(&f, &real, copy, rs, MAX_PROBES));
	}
	/* Random bytes anywhere in the file, headers included. */
	for (int iter = 0; iter < rounds; iter++) {
		CHECK(copy_file(src, copy, 0644) == 0, "copy");
		fd = open(copy, O_WRONLY);
		if (fd < 0)
			continue;
		for (int k = 0; k < 8; k++) {
			off_t at = (off_t)(rand_r(&seed) % (unsigned)st.st_size);
			unsigned char b = (unsigned char)rand_r(&seed);

			if (pwrite(fd, &b, 1, at) != 1)
				CHECK(0, "pwrite");
		}
		close(fd);
		cp_sym_free(resolve_against(&f, &real, copy, rs, MAX_PROBES));
	}
	unlink(copy);
	fixture_stop(&f);
	printf("corrupt files: no crash\n");
}

/* Edge cases of the interface itself. */
static void test_api(void)
{
	struct cp_symbolizer *sym = cp_sym_new();
	struct cp_sym_result r;
	struct cp_map stack = { .start = 0x7ffd00000000, .end = 0x7ffd00021000,
				.perms = "rw-p", .path = (char *)"[stack]" };
	struct cp_map missing = { .start = 0x400000, .end = 0x401000, .perms = "r-xp",
				  .inode = 42, .dev_major = 8, .path = (char *)"/nonexistent/x" };

	cp_sym_free(NULL);
	CHECK(sym != NULL, "cp_sym_new");
	CHECK(cp_sym_resolve(NULL, 1, &stack, 0, &r) == -EINVAL, "NULL symbolizer");
	CHECK(cp_sym_resolve(sym, 1, NULL, 0, &r) == -EINVAL, "NULL map");
	CHECK(cp_sym_resolve(sym, getpid(), &stack, stack.start + 0x10, &r) == 0 && r.n == 0 &&
		      streq(r.module, "[stack]") && r.offset == 0x10,
	      "[stack] gives module+offset");
	CHECK(cp_sym_resolve(sym, getpid(), &missing, 0x400123, &r) == 0 && r.n == 0 &&
		      r.offset == 0x123,
	      "missing file gives module+offset");
	CHECK(cp_sym_module_info(sym, getpid(), &missing, NULL, NULL, NULL) < 0,
	      "module info of a missing file fails");
	cp_sym_free(sym);
}

/* The vDSO is symbolized from the process's memory: our own clock_gettime. */
static void test_vdso(void)
{
	struct cp_symbolizer *sym = cp_sym_new();
	struct cp_sym_result r;
	struct cp_maps maps;
	const struct cp_map *vdso = NULL;
	uint64_t want = 0;

	if (cp_maps_read(getpid(), &maps)) {
		CHECK(0, "read own maps");
		cp_sym_free(sym);
		return;
	}
	for (size_t i = 0; i < maps.n; i++)
		if (!strcmp(maps.v[i].path, "[vdso]"))
			vdso = &maps.v[i];
	if (vdso) {
		/* Find __vdso_clock_gettime in its .dynsym ourselves, to know the answer. */
		Elf *elf = elf_memory((char *)(uintptr_t)vdso->start, vdso->end - vdso->start);
		Elf_Scn *scn = NULL;
		uint64_t bias = vdso->start;
		GElf_Phdr ph;

		for (int i = 0; elf && gelf_getphdr(elf, i, &ph); i++)
			if (ph.p_type == PT_LOAD) {
				bias = vdso->start - ph.p_vaddr;
				break;
			}
		while (elf && (scn = elf_nextscn(elf, scn))) {
			GElf_Shdr sh;
			Elf_Data *d;

			if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_DYNSYM ||
			    !(d = elf_getdata(scn, NULL)) || !sh.sh_entsize)
				continue;
			for (size_t k = 0; k < sh.sh_size / sh.sh_entsize; k++) {
				GElf_Sym es;
				const char *n;

				if (!gelf_getsym(d, (int)k, &es))
					continue;
				n = elf_strptr(elf, sh.sh_link, es.st_name);
				if (n && !strcmp(n, "__vdso_clock_gettime"))
					want = es.st_value + bias;
			}
		}
		elf_end(elf);
	}
	if (!vdso || !want) {
		printf("no vdso or no __vdso_clock_gettime in it: vdso check not run\n");
	} else {
		CHECK(cp_sym_resolve(sym, getpid(), vdso, want + 1, &r) == 0, "resolve vdso");
		printf("vdso:\n");
		print_result(&r);
		CHECK(r.n >= 1 && strstr(str(r.frames[r.n - 1].function), "clock_gettime"),
		      "vdso clock_gettime named");
		CHECK(streq(r.module, "[vdso]"), "module [vdso]");
	}
	cp_maps_release(&maps);
	cp_sym_free(sym);
}

/* CPU microseconds per lookup: cold (first time) and warm (cached), on libc's text. */
static void test_timing(void)
{
	struct cp_symbolizer *sym = cp_sym_new();
	struct cp_sym_result r;
	struct cp_maps maps;
	struct fixture f, g;
	const struct cp_map *text = NULL;
	char p[PATH_MAX];
	enum { N = 2000 };
	double t0, cold, warm, second;
	size_t named = 0;

	snprintf(p, sizeof(p), "%s/symfix", targets);
	if (fixture_start(p, &f)) {
		CHECK(0, "start symfix");
		cp_sym_free(sym);
		return;
	}
	if (cp_maps_read(f.pid, &maps) == 0) {
		for (size_t i = 0; i < maps.n; i++)
			if (strstr(maps.v[i].path, "libc.so.6") && maps.v[i].perms[2] == 'x')
				text = &maps.v[i];
		CHECK(text != NULL, "libc text mapping");
		if (text) {
			uint64_t step = (text->end - text->start) / N;
			double load;

			/* The first lookup loads the module: libc's debug file, decompressed. */
			t0 = cpu_us();
			cp_sym_resolve(sym, f.pid, text, text->start + step / 2, &r);
			load = cpu_us() - t0;
			t0 = cpu_us();
			for (int i = 0; i < N; i++) {
				cp_sym_resolve(sym, f.pid, text, text->start + i * step, &r);
				named += r.n > 0;
			}
			cold = (cpu_us() - t0) / N;
			t0 = cpu_us();
			for (int i = 0; i < N; i++)
				cp_sym_resolve(sym, f.pid, text, text->start + i * step, &r);
			warm = (cpu_us() - t0) / N;
			printf("libc, CPU time: module load %.0f us; lookups: cold %.1f us, warm %.2f us per "
			       "lookup (%zu of %d named)\n", load, cold, warm, named, N);
			CHECK(named > N / 2, "most libc addresses get a name (%zu of %d)", named, N);
			/* A second process of the same binary: the module and results are reused. */
			if (fixture_start(p, &g) == 0) {
				t0 = cpu_us();
				for (int i = 0; i < N; i++)
					cp_sym_resolve(sym, g.pid, text, text->start + i * step, &r);
				second = (cpu_us() - t0) / N;
				printf("second process: %.2f us per lookup\n", second);
				fixture_stop(&g);
			}
		}
		cp_maps_release(&maps);
	}
	fixture_stop(&f);
	cp_sym_free(sym);
}

int main(void)
{
	char tmpl[] = "/tmp/cprof-test-sym-XXXXXX", cache[4200];

	check_targets_dir(targets, sizeof(targets));
	if (!mkdtemp(tmpl)) {
		printf("FAIL: mkdtemp: %s\n", strerror(errno));
		return 1;
	}
	snprintf(tmpdir, sizeof(tmpdir), "%s", tmpl);
	/* The caches on disk of this run only, not the user's. */
	snprintf(cache, sizeof(cache), "%s/cache", tmpdir);
	setenv("CPROF_CACHE_DIR", cache, 1);
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);

	test_demangle();
	test_api();
	test_basic();
	test_cxx();
	test_libc();
	test_debuglink_dirs();
	test_disk_facts();
	test_deleted();
	test_chroot();
	test_vdso();
	test_corrupt();
	test_timing();

	{
		char cmd[4200];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s/cache'", tmpdir);
		CHECK(system(cmd) == 0, "%s", cmd);
	}
	rmdir(tmpdir);
	/* .debug may be left behind by a failed check */
	{
		char d[PATH_MAX + 8];

		snprintf(d, sizeof(d), "%s/.debug", tmpdir);
		rmdir(d);
		rmdir(tmpdir);
	}
	return check_done("sym");
}
