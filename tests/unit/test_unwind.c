/* Unit tests for unwind/: real stacks of the deep_stack fixture, cut copies, garbage, speed. */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <inttypes.h>
#include <libelf.h>
#include <limits.h>
#include <linux/capability.h>
#include <signal.h>
#include <sys/auxv.h>
#include <sys/prctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "capture.h"
#include "maps.h"
#include "unwind.h"

static int failures;

#define CHECK(cond)                                                                        \
	do {                                                                               \
		if (!(cond)) {                                                             \
			printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);             \
			failures++;                                                        \
		}                                                                          \
	} while (0)

/* A function's runtime range, resolved from an ELF symbol table and the target's maps. */
struct fn {
	const char *name;
	uint64_t start, end;
	bool found;
};

static const char *fixture_name = "deep_stack";	/* file in the targets directory */
static char fixture_suffix[64] = "/deep_stack";
static pid_t fixture_pid;
static int tid_main, tid_signal, tid_recurse;
static struct cp_maps maps;

static void skip(const char *why)
{
	printf("skip: %s\n", why);
	exit(77);
}

static void stop_fixture(void)
{
	if (fixture_pid > 0) {
		kill(fixture_pid, SIGKILL);
		waitpid(fixture_pid, NULL, 0);
		fixture_pid = 0;
	}
}

/* The fixture: $CPROF_TARGETS/deep_stack, else next to this test in the build tree. */
static void fixture_path(char *buf, size_t size)
{
	const char *dir = getenv("CPROF_TARGETS");
	char self[PATH_MAX];
	ssize_t n;
	char *slash;

	if (dir && *dir) {
		snprintf(buf, size, "%s/%s", dir, fixture_name);
		return;
	}
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		skip("cannot find the deep_stack fixture");
	self[n] = '\0';
	slash = strrchr(self, '/');
	if (slash)
		*slash = '\0';
	snprintf(buf, size, "%s/../targets/%s", self, fixture_name);
}

/* Start the fixture and read its READY line with the thread ids. */
static void start_fixture_at(const char *path)
{
	char line[256];
	int p[2];
	FILE *f;

	if (access(path, X_OK) != 0)
		skip("fixture not built");
	if (pipe(p) != 0)
		exit(1);
	fixture_pid = fork();
	if (fixture_pid < 0)
		exit(1);
	if (fixture_pid == 0) {
		/* Should this test crash, the fixture must not live on blocked forever. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(p[1], 1);
		close(p[0]);
		close(p[1]);
		execl(path, path, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	f = fdopen(p[0], "r");
	if (!f || !fgets(line, sizeof(line), f) ||
	    sscanf(line, "READY main=%d signal=%d recurse=%d", &tid_main, &tid_signal,
		   &tid_recurse) != 3) {
		printf("FAIL: fixture did not start\n");
		stop_fixture();
		exit(1);
	}
	fclose(f);
}

static void start_fixture(void)
{
	char path[PATH_MAX + 64];

	fixture_path(path, sizeof(path));
	start_fixture_at(path);
}

/* Wait (without a deadline the machine's speed could break) until tid sits in read(2). */
static void wait_in_read(int tid)
{
	char path[128], buf[256];

	snprintf(path, sizeof(path), "/proc/%d/task/%d/syscall", fixture_pid, tid);
	for (int i = 0; i < 3000; i++) {
		FILE *f = fopen(path, "r");
		bool in_read = false;

		if (f) {
			in_read = fgets(buf, sizeof(buf), f) && strncmp(buf, "0 ", 2) == 0;
			fclose(f);
		}
		if (in_read)
			return;
		usleep(10000);
	}
	printf("FAIL: thread %d never blocked in read\n", tid);
	failures++;
}

/* Look name up in the .symtab (then .dynsym) of the ELF file at path. */
static bool elf_symbol(const char *path, const char *name, uint64_t *value, uint64_t *size)
{
	bool found = false;
	Elf_Scn *scn = NULL;
	Elf *e;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	e = elf_begin(fd, ELF_C_READ, NULL);
	for (int pass = 0; e && pass < 2 && !found; pass++) {
		while (!found && (scn = elf_nextscn(e, scn)) != NULL) {
			GElf_Shdr sh;
			Elf_Data *d;

			if (!gelf_getshdr(scn, &sh) ||
			    sh.sh_type != (pass == 0 ? SHT_SYMTAB : SHT_DYNSYM))
				continue;
			d = elf_getdata(scn, NULL);
			for (size_t i = 0; d && sh.sh_entsize && i < sh.sh_size / sh.sh_entsize; i++) {
				GElf_Sym sym;
				const char *n;

				if (!gelf_getsym(d, (int)i, &sym) || GELF_ST_TYPE(sym.st_info) != STT_FUNC)
					continue;
				n = elf_strptr(e, sh.sh_link, sym.st_name);
				if (n && strcmp(n, name) == 0 && sym.st_value) {
					*value = sym.st_value;
					*size = sym.st_size;
					found = true;
					break;
				}
			}
		}
		scn = NULL;
	}
	if (e)
		elf_end(e);
	close(fd);
	return found;
}

/* The runtime start of the file whose path ends with suffix (its offset-0 mapping). */
static const struct cp_map *module_map(const char *suffix)
{
	size_t sl = strlen(suffix);

	for (size_t i = 0; i < maps.n; i++) {
		const char *p = maps.v[i].path;
		size_t pl = p ? strlen(p) : 0;

		if (maps.v[i].offset == 0 && pl >= sl && strcmp(p + pl - sl, suffix) == 0)
			return &maps.v[i];
	}
	return NULL;
}

/* libc's symbols: its own tables lack the local ones, the libc6-dbg file by build ID has them. */
static bool libc_symbol_file(const struct cp_map *libc, char *buf, size_t size)
{
	unsigned char id[64];
	size_t idlen = 0;
	Elf_Scn *scn = NULL;
	Elf *e;
	int fd, n;

	fd = open(libc->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	e = elf_begin(fd, ELF_C_READ, NULL);
	while (e && !idlen && (scn = elf_nextscn(e, scn)) != NULL) {
		GElf_Shdr sh;
		Elf_Data *d;
		GElf_Nhdr nh;
		size_t off = 0, name_off, desc_off;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_NOTE)
			continue;
		d = elf_getdata(scn, NULL);
		while (d && (off = gelf_getnote(d, off, &nh, &name_off, &desc_off)) > 0) {
			if (nh.n_type == NT_GNU_BUILD_ID && nh.n_descsz <= sizeof(id)) {
				memcpy(id, (char *)d->d_buf + desc_off, nh.n_descsz);
				idlen = nh.n_descsz;
				break;
			}
		}
	}
	if (e)
		elf_end(e);
	close(fd);
	if (idlen < 2)
		return false;
	n = snprintf(buf, size, "/usr/lib/debug/.build-id/%02x/", id[0]);
	for (size_t i = 1; i < idlen && n > 0 && (size_t)n < size; i++)
		n += snprintf(buf + n, size - (size_t)n, "%02x", id[i]);
	if (n > 0 && (size_t)n < size)
		snprintf(buf + n, size - (size_t)n, ".debug");
	return access(buf, R_OK) == 0;
}

static void resolve(struct fn *f, const char *file, uint64_t bias)
{
	uint64_t v, s;

	f->found = elf_symbol(file, f->name, &v, &s);
	if (f->found) {
		/* Assembler entry points such as __restore_rt have no size: their first byte. */
		f->start = v + bias;
		f->end = v + bias + (s ? s : 1);
	}
}

/* Caller frames hold return addresses: the call itself is the byte before. */
static bool frame_in(const struct cp_unwind_result *r, size_t i, const struct fn *f)
{
	uint64_t pc;

	if (i >= r->n || !f->found)
		return false;
	pc = r->pc[i] - (i > 0 && !(r->flags[i] & CP_FRAME_SIGNAL) ? 1 : 0);
	return pc >= f->start && pc < f->end;
}

static void print_stack(const char *what, const struct cp_unwind_result *r)
{
	printf("%s: %zu frames, stop_reason %d%s\n", what, r->n, r->stop_reason,
	       r->truncated ? " (truncated)" : "");
	for (size_t i = 0; i < r->n && i < 12; i++) {
		const struct cp_map *m = cp_maps_find(&maps, r->pc[i]);

		printf("  #%zu 0x%" PRIx64 " %s+0x%" PRIx64 "%s\n", i, r->pc[i],
		       m ? cp_map_basename(m) : "?", m ? r->pc[i] - m->start + m->offset : 0,
		       r->flags[i] & CP_FRAME_SIGNAL ? " [signal]" : "");
	}
}

/* Copy a thread's registers and stack; it runs again before anything is unwound. */
static int snap_thread(int tid, struct cp_thread_snap *snap)
{
	struct cp_capture_opts opts = { .flags = CP_CAPTURE_STOP, .maps = &maps };

	memset(snap, 0, sizeof(*snap));
	return cp_capture_thread(fixture_pid, tid, &opts, snap);
}

struct fns {
	struct fn read_, d, c, b, a, main_, start_call_main, handler, sig_raise, recurse;
	struct fn restore_rt;
	bool have_libc_locals;
};

static void resolve_all(struct fns *f, const char *fixture)
{
	const struct cp_map *exe = module_map(fixture_suffix), *libc = module_map("/libc.so.6");
	char dbg[PATH_MAX];

	memset(f, 0, sizeof(*f));
	f->read_.name = "read";
	f->d.name = "deep_d";
	f->c.name = "deep_c";
	f->b.name = "deep_b";
	f->a.name = "deep_a";
	f->main_.name = "main";
	f->start_call_main.name = "__libc_start_call_main";
	f->handler.name = "deep_handler";
	f->sig_raise.name = "deep_sig_raise";
	f->recurse.name = "deep_recurse";
	f->restore_rt.name = "__restore_rt";
	CHECK(exe != NULL && libc != NULL);
	if (!exe || !libc)
		return;
	/* Both are ET_DYN with a first PT_LOAD at vaddr 0: the offset-0 mapping is the bias. */
	resolve(&f->d, fixture, exe->start);
	resolve(&f->c, fixture, exe->start);
	resolve(&f->b, fixture, exe->start);
	resolve(&f->a, fixture, exe->start);
	resolve(&f->main_, fixture, exe->start);
	resolve(&f->handler, fixture, exe->start);
	resolve(&f->sig_raise, fixture, exe->start);
	resolve(&f->recurse, fixture, exe->start);
	resolve(&f->read_, libc->path, libc->start);
	if (libc_symbol_file(libc, dbg, sizeof(dbg))) {
		resolve(&f->start_call_main, dbg, libc->start);
		resolve(&f->restore_rt, dbg, libc->start);
		if (!f->read_.found)
			resolve(&f->read_, dbg, libc->start);
	}
	f->have_libc_locals = f->start_call_main.found;
	CHECK(f->d.found && f->c.found && f->b.found && f->a.found && f->main_.found);
	CHECK(f->handler.found && f->sig_raise.found && f->recurse.found && f->read_.found);
	if (!f->have_libc_locals)
		printf("note: no libc debug symbols; __libc_start_call_main not checked by name\n");
}

static uint64_t now_ns(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* main -> deep_a..d -> read: every frame, down to libc's start code. Then the same, timed. */
static void test_main_thread(struct cp_unwinder *uw, const struct fns *f, struct cp_regs *regs,
			     struct cp_stack *st, struct cp_unwind_result *full)
{
	const struct cp_map *libc = module_map("/libc.so.6");
	struct cp_unwind_result r;
	uint64_t t0, t1, c0, c1;
	const int reps = 1000;

	CHECK(cp_unwind(uw, regs, st, full) == 0);
	print_stack("main thread", full);
	CHECK(frame_in(full, 0, &f->read_));
	CHECK(frame_in(full, 1, &f->d));
	CHECK(frame_in(full, 2, &f->c));
	CHECK(frame_in(full, 3, &f->b));
	CHECK(frame_in(full, 4, &f->a));
	CHECK(frame_in(full, 5, &f->main_));
	if (f->have_libc_locals)
		CHECK(frame_in(full, 6, &f->start_call_main));
	else
		CHECK(full->n > 6 && libc && cp_maps_find(&maps, full->pc[6]) &&
		      strcmp(cp_maps_find(&maps, full->pc[6])->path, libc->path) == 0);
	/* __libc_start_main and _start follow; _start marks the end of the stack. */
	CHECK(full->n >= 8 && full->n <= 10);
	CHECK(full->stop_reason == 0 && !full->truncated);
	for (size_t i = 0; i < full->n; i++)
		CHECK(full->flags[i] == 0);

	t0 = now_ns(CLOCK_MONOTONIC);
	c0 = now_ns(CLOCK_THREAD_CPUTIME_ID);
	for (int i = 0; i < reps; i++) {
		if (cp_unwind(uw, regs, st, &r) != 0 || r.n != full->n) {
			CHECK(!"repeated unwinds agree");
			break;
		}
	}
	c1 = now_ns(CLOCK_THREAD_CPUTIME_ID);
	t1 = now_ns(CLOCK_MONOTONIC);
	CHECK(memcmp(r.pc, full->pc, full->n * sizeof(r.pc[0])) == 0);
	/* CPU time is the number to compare: wall time includes waiting for a busy machine. */
	printf("unwind: %.2f us CPU (%.2f us wall) per stack of %zu frames, %d repetitions\n",
	       (double)(c1 - c0) / 1000.0 / reps, (double)(t1 - t0) / 1000.0 / reps, full->n,
	       reps);
}

/* A copy cut anywhere ends the stack early and cleanly, never with invented frames. */
static void test_truncated_copy(struct cp_unwinder *uw, const struct cp_regs *regs,
				const struct cp_stack *st, const struct cp_unwind_result *full)
{
	struct cp_unwind_result r;
	struct cp_stack cut = *st;
	size_t shortest = SIZE_MAX, tried = 0;

	for (size_t len = 0; len <= st->len && len <= 4096; len += 8) {
		cut.len = len;
		cut.truncated = true;
		if (cp_unwind(uw, regs, &cut, &r) != 0) {
			CHECK(!"unwind of a cut copy succeeds");
			break;
		}
		tried++;
		CHECK(r.n >= 1 && r.n <= full->n);
		CHECK(memcmp(r.pc, full->pc, r.n * sizeof(r.pc[0])) == 0);
		if (r.n < full->n)
			CHECK(r.stop_reason != 0);
		if (r.n < shortest)
			shortest = r.n;
	}
	CHECK(tried > 0);
	CHECK(shortest < full->n);
	printf("cut copies: %zu lengths, shortest stack %zu frames\n", tried, shortest);
}

/* Registers from /proc/PID/task/TID/syscall are only sp and pc: the first frame still works. */
static void test_partial_regs(struct cp_unwinder *uw, const struct cp_regs *regs,
			      const struct cp_stack *st, const struct fns *f)
{
	struct cp_unwind_result r;
	struct cp_regs part = { 0 };

	part.r[CP_REG_RIP] = regs->r[CP_REG_RIP];
	part.r[CP_REG_RSP] = regs->r[CP_REG_RSP];
	part.valid = (1u << CP_REG_RIP) | (1u << CP_REG_RSP);
	CHECK(cp_unwind(uw, &part, st, &r) == 0);
	CHECK(r.n >= 1 && frame_in(&r, 0, &f->read_));
	/* Without rip there is nothing to unwind: an error, not a crash. */
	part.valid = 1u << CP_REG_RSP;
	CHECK(cp_unwind(uw, &part, st, &r) == -EINVAL);
}

/* The handler's stack goes through the signal trampoline into the interrupted raise(). */
static void test_signal_thread(struct cp_unwinder *uw, const struct fns *f)
{
	struct cp_unwind_result r;
	struct cp_thread_snap snap;
	size_t i, sig = SIZE_MAX;

	wait_in_read(tid_signal);
	if (snap_thread(tid_signal, &snap) != 0) {
		CHECK(!"capture the signal thread");
		return;
	}
	CHECK(cp_unwind(uw, &snap.regs, &snap.stack, &r) == 0);
	print_stack("signal thread", &r);
	CHECK(frame_in(&r, 0, &f->read_));
	CHECK(frame_in(&r, 1, &f->handler));
	for (i = 0; i < r.n; i++) {
		if (r.flags[i] & CP_FRAME_SIGTRAMP) {
			sig = i;
			break;
		}
	}
	/* Frame 2 is the trampoline (__restore_rt); the frame after it was interrupted. */
	CHECK(sig == 2);
	CHECK(r.n > 3 && r.flags[2] == (CP_FRAME_SIGNAL | CP_FRAME_SIGTRAMP));
	CHECK(r.n > 3 && r.flags[3] == CP_FRAME_SIGNAL);
	if (f->restore_rt.found)
		CHECK(frame_in(&r, 2, &f->restore_rt));
	for (i = 0; i < r.n; i++)
		CHECK(i == 2 || i == 3 || r.flags[i] == 0);
	for (i = sig; i < r.n && !frame_in(&r, i, &f->sig_raise); i++)
		;
	CHECK(i < r.n);
	CHECK(r.stop_reason == 0 && !r.truncated);
	cp_thread_snap_release(&snap);
}

/* 1000 recursive frames: the result stops at the cap and says so. */
static void test_depth_cap(struct cp_unwinder *uw, const struct fns *f)
{
	struct cp_unwind_result r;
	struct cp_thread_snap snap;
	size_t in_recurse = 0;

	wait_in_read(tid_recurse);
	if (snap_thread(tid_recurse, &snap) != 0) {
		CHECK(!"capture the recursing thread");
		return;
	}
	CHECK(cp_unwind(uw, &snap.regs, &snap.stack, &r) == 0);
	CHECK(r.n == CP_UNWIND_MAX_FRAMES && r.truncated);
	for (size_t i = 1; i < r.n; i++)
		in_recurse += frame_in(&r, i, &f->recurse);
	CHECK(in_recurse == r.n - 1);
	printf("recursion: %zu frames, truncated=%d, %zu in deep_recurse\n", r.n, r.truncated,
	       in_recurse);
	cp_thread_snap_release(&snap);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/*
 * Garbage: random registers over random stack bytes, with pcs inside real code so that real
 * CFI is applied to nonsense. Nothing may crash, and the rules of the result must hold.
 */
static void test_garbage(struct cp_unwinder *uw, const struct cp_unwind_result *full)
{
	static uint8_t junk[16384];
	struct cp_stack st = { .data = junk, .len = sizeof(junk), .start = 0x7ffd00000000ull };
	struct cp_unwind_result r;
	struct cp_regs regs;
	int bad = 0;

	for (int iter = 0; iter < 2000; iter++) {
		for (size_t i = 0; i < sizeof(junk); i += 8) {
			uint64_t v = rnd();

			/* Sprinkle plausible return addresses and stack pointers among the noise. */
			if (v % 4 == 0 && full->n)
				v = full->pc[v % full->n] + (v >> 60);
			else if (v % 4 == 1)
				v = st.start + (v >> 20) % sizeof(junk);
			memcpy(junk + i, &v, 8);
		}
		for (int i = 0; i < CP_NREGS; i++)
			regs.r[i] = rnd();
		regs.r[CP_REG_RSP] = st.start + rnd() % sizeof(junk);
		if (iter % 2 == 0 && full->n)
			regs.r[CP_REG_RIP] = full->pc[rnd() % full->n] + rnd() % 64 - 32;
		regs.valid = (uint32_t)rnd() | (1u << CP_REG_RIP) | (1u << CP_REG_RSP);
		if (cp_unwind(uw, &regs, &st, &r) != 0 || r.n < 1 || r.n > CP_UNWIND_MAX_FRAMES ||
		    (r.truncated && r.n != CP_UNWIND_MAX_FRAMES) || r.pc[0] != regs.r[CP_REG_RIP])
			bad++;
		/* Callers are never invented outside code. */
		for (size_t i = 1; i < r.n; i++) {
			const struct cp_map *m = cp_maps_find(&maps, r.pc[i]);

			if (!m || m->perms[2] != 'x')
				bad++;
		}
	}
	CHECK(bad == 0);
}

/*
 * A sample taken on the first instruction of a vdso function called from deep_d: the vdso
 * has no file, so its CFI comes from the copy of the target's vdso. Made from the main
 * thread's stack as if deep_d had called the vdso instead of read(): the result must be the
 * main stack with frame 0 replaced.
 */
static void test_vdso(struct cp_unwinder *uw, const struct cp_regs *regs,
		      const struct cp_stack *st, const struct cp_unwind_result *full)
{
	const struct cp_map *vdso = NULL;
	unsigned long self_vdso = getauxval(AT_SYSINFO_EHDR);
	struct cp_unwind_result r;
	struct cp_regs vr = *regs;
	uint64_t fn = 0, ra_slot = 0;
	Elf_Scn *scn = NULL;
	Elf *e;

	for (size_t i = 0; i < maps.n; i++)
		if (maps.v[i].path && strcmp(maps.v[i].path, "[vdso]") == 0)
			vdso = &maps.v[i];
	if (!vdso || !self_vdso || full->n < 3) {
		printf("note: no vdso, vdso unwinding not tested\n");
		return;
	}
	/* The fixture runs on our kernel: its vdso is the same image as ours. */
	e = elf_memory((char *)self_vdso, vdso->end - vdso->start);
	while (e && !fn && (scn = elf_nextscn(e, scn)) != NULL) {
		GElf_Shdr sh;
		Elf_Data *d;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_DYNSYM || !sh.sh_entsize)
			continue;
		d = elf_getdata(scn, NULL);
		for (size_t i = 0; d && i < sh.sh_size / sh.sh_entsize; i++) {
			GElf_Sym sym;
			const char *n;

			if (!gelf_getsym(d, (int)i, &sym))
				continue;
			n = elf_strptr(e, sh.sh_link, sym.st_name);
			if (n && strcmp(n, "__vdso_clock_gettime") == 0)
				fn = sym.st_value;
		}
	}
	if (e)
		elf_end(e);
	CHECK(fn != 0);
	if (!fn)
		return;

	/* Where read() keeps its return address into deep_d: the stack at the call. */
	for (size_t off = 0; off + 8 <= st->len && !ra_slot; off += 8) {
		uint64_t v;

		memcpy(&v, st->data + off, 8);
		if (v == full->pc[1])
			ra_slot = st->start + off;
	}
	CHECK(ra_slot != 0);
	if (!ra_slot)
		return;
	/*
	 * Just after the function's first instruction, push %rbp: the return address is at
	 * rsp + 8. Only the vdso's own CFI says so; the fallbacks libunwind has without CFI
	 * (return address at rsp, or the rbp chain) give other stacks.
	 */
	vr.r[CP_REG_RSP] = ra_slot - 8;
	vr.r[CP_REG_RIP] = vdso->start + fn + 1;
	CHECK(cp_unwind(uw, &vr, st, &r) == 0);
	print_stack("in the vdso", &r);
	CHECK(r.n == full->n && r.pc[0] == vr.r[CP_REG_RIP]);
	CHECK(r.n > 1 && memcmp(&r.pc[1], &full->pc[1], (r.n - 1) * sizeof(r.pc[0])) == 0);
}

/*
 * File offset of the bytes to damage: the named section (".debug_frame"), or, for NULL, the
 * PT_GNU_EH_FRAME segment (.eh_frame_hdr, with .eh_frame after it). 0 when not found.
 */
static size_t cfi_offset(const uint8_t *img, size_t len, const char *section)
{
	Elf64_Ehdr eh;

	if (len < sizeof(eh))
		return 0;
	memcpy(&eh, img, sizeof(eh));
	for (unsigned int i = 0; !section && i < eh.e_phnum; i++) {
		Elf64_Phdr ph;
		uint64_t off = eh.e_phoff + (uint64_t)i * sizeof(ph);

		if (off + sizeof(ph) > len)
			break;
		memcpy(&ph, img + off, sizeof(ph));
		if (ph.p_type == PT_GNU_EH_FRAME)
			return (size_t)ph.p_offset;
	}
	for (unsigned int i = 0; section && i < eh.e_shnum; i++) {
		Elf64_Shdr sh, str;
		uint64_t off = eh.e_shoff + (uint64_t)i * sizeof(sh);
		uint64_t soff = eh.e_shoff + (uint64_t)eh.e_shstrndx * sizeof(sh);

		if (off + sizeof(sh) > len || soff + sizeof(sh) > len)
			break;
		memcpy(&sh, img + off, sizeof(sh));
		memcpy(&str, img + soff, sizeof(str));
		if (str.sh_offset + sh.sh_name + strlen(section) + 1 <= len &&
		    strcmp((const char *)img + str.sh_offset + sh.sh_name, section) == 0)
			return (size_t)sh.sh_offset;
	}
	return 0;
}

#ifndef CAP_CHECKPOINT_RESTORE
#define CAP_CHECKPOINT_RESTORE 40
#endif

/*
 * Lower (on false) or raise again CAP_SYS_ADMIN and CAP_CHECKPOINT_RESTORE in our effective
 * set: /proc/PID/map_files is then closed to us, as to a cprof with only CAP_SYS_PTRACE, and
 * mapped files are opened by their path (checked against the maps entry's device and inode).
 */
static void map_files_caps(bool on)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];

	if (syscall(SYS_capget, &h, d) != 0)
		return;
	if (on) {
		d[0].effective = d[0].permitted;
		d[1].effective = d[1].permitted;
	} else {
		d[0].effective &= ~(1u << CAP_SYS_ADMIN);
		d[1].effective &= ~(1u << (CAP_CHECKPOINT_RESTORE - 32));
	}
	(void)syscall(SYS_capset, &h, d);
}

/*
 * The fixture's own mappings, but backed by a damaged copy of its file: flipped bytes in
 * its unwind tables (section, or the .eh_frame_hdr segment) and headers, or the file cut
 * short. Unwinding may stop early; it may not
 * crash, hang or lose the first frame. The undamaged copy must give the full stack.
 */
static void test_corrupt_files(const char *fixture, const char *section,
			       const struct cp_regs *regs, const struct cp_stack *st,
			       const struct cp_unwind_result *full)
{
	static uint8_t orig[1 << 20], img[1 << 20];
	char tmp[] = "/tmp/cprof-test-unwind-XXXXXX";
	struct cp_maps fake = maps;
	size_t len, eh_off, bad = 0, shorter = 0;
	ssize_t n;
	int fd, in;

	in = open(fixture, O_RDONLY | O_CLOEXEC);
	n = in >= 0 ? read(in, orig, sizeof(orig)) : -1;
	if (in >= 0)
		close(in);
	fd = mkstemp(tmp);
	fake.v = calloc(maps.n, sizeof(*fake.v));
	CHECK(n > 0 && fd >= 0 && fake.v);
	if (n <= 0 || fd < 0 || !fake.v)
		goto out;
	len = (size_t)n;
	map_files_caps(false);	/* the fake maps' path is what must be read */
	eh_off = cfi_offset(orig, len, section);
	CHECK(eh_off > 0 && eh_off < len);
	for (int iter = 0; iter < 400 && eh_off; iter++) {
		struct cp_unwind_result r;
		struct cp_unwinder *uw;
		struct stat sb;
		size_t cur = len;

		memcpy(img, orig, len);
		if (iter % 10 == 1) {
			cur = rnd() % len;
		} else if (iter > 0) {
			int flips = 1 + (int)(rnd() % 8);

			for (int k = 0; k < flips; k++) {
				uint64_t v = rnd();
				/* Mostly the tables (header, then FDEs and CIEs), sometimes the headers. */
				size_t at = (v % 8 == 0) ? (v >> 8) % 512 : eh_off + (v >> 8) % 0x400;

				if (at < len)
					img[at] = (uint8_t)(v >> 40);
			}
		}
		if (ftruncate(fd, 0) != 0 || pwrite(fd, img, cur, 0) != (ssize_t)cur ||
		    fstat(fd, &sb) != 0) {
			CHECK(!"write the damaged copy");
			break;
		}
		for (size_t i = 0; i < maps.n; i++) {
			fake.v[i] = maps.v[i];
			if (maps.v[i].path && strcmp(maps.v[i].path, module_map(fixture_suffix)->path) == 0) {
				fake.v[i].path = tmp;
				fake.v[i].inode = sb.st_ino;
				fake.v[i].dev_major = major(sb.st_dev);
				fake.v[i].dev_minor = minor(sb.st_dev);
			}
		}
		uw = cp_unwind_new(fixture_pid, &fake, false);
		if (!uw) {
			CHECK(!"unwinder");
			break;
		}
		if (cp_unwind(uw, regs, st, &r) != 0 || r.n < 1 || r.pc[0] != full->pc[0] ||
		    r.n > CP_UNWIND_MAX_FRAMES)
			bad++;
		if (iter == 0)
			CHECK(r.n == full->n && memcmp(r.pc, full->pc, r.n * sizeof(r.pc[0])) == 0);
		else if (r.n < full->n)
			shorter++;
		cp_unwind_free(uw);
	}
	CHECK(bad == 0);
	/* Some damage must have mattered, or the copy was not what got read. */
	CHECK(shorter > 0);
	printf("damaged files: %d unwinds, %zu ended early\n", 400, shorter);
out:
	map_files_caps(true);
	if (fd >= 0) {
		close(fd);
		unlink(tmp);
	}
	free(fake.v);
}

/*
 * The same program built so that libunwind's remote API cannot find its CFI alone: without
 * unwind tables (-fno-asynchronous-unwind-tables: CFI only in .debug_frame), or linked
 * without .eh_frame_hdr (.eh_frame, but no search table). section is where its CFI is.
 */
static void test_variant(const char *name, const char *section)
{
	char what[128];
	struct cp_unwind_result *r = calloc(1, sizeof(*r));
	struct cp_thread_snap snap = { 0 };
	char fixture[PATH_MAX + 64];
	struct cp_unwinder *uw;
	struct fns f;

	fixture_name = name;
	snprintf(what, sizeof(what), "main thread, CFI in %s only", section);
	snprintf(fixture_suffix, sizeof(fixture_suffix), "/%s", fixture_name);
	fixture_path(fixture, sizeof(fixture));
	/* Built with deep_stack: missing is a failure, not a reason to skip. */
	CHECK(r && access(fixture, X_OK) == 0);
	if (access(fixture, X_OK) != 0)
		printf("missing fixture %s\n", fixture);
	if (!r || access(fixture, X_OK) != 0) {
		free(r);
		return;
	}
	start_fixture();
	if (cp_maps_read(fixture_pid, &maps) != 0) {
		CHECK(!"read the maps of the fixture");
		stop_fixture();
		free(r);
		return;
	}
	resolve_all(&f, fixture);
	wait_in_read(tid_main);
	uw = cp_unwind_new(fixture_pid, &maps, false);
	CHECK(uw != NULL);
	if (uw && snap_thread(tid_main, &snap) == 0) {
		CHECK(cp_unwind(uw, &snap.regs, &snap.stack, r) == 0);
		print_stack(what, r);
		CHECK(frame_in(r, 0, &f.read_));
		CHECK(frame_in(r, 1, &f.d));
		CHECK(frame_in(r, 2, &f.c));
		CHECK(frame_in(r, 3, &f.b));
		CHECK(frame_in(r, 4, &f.a));
		CHECK(frame_in(r, 5, &f.main_));
		if (f.have_libc_locals)
			CHECK(frame_in(r, 6, &f.start_call_main));
		CHECK(r->n >= 8 && r->n <= 10 && r->stop_reason == 0);
		test_signal_thread(uw, &f);
		test_depth_cap(uw, &f);
		test_corrupt_files(fixture, section, &snap.regs, &snap.stack, r);
	} else {
		CHECK(!"capture the fixture's main thread");
	}
	cp_thread_snap_release(&snap);
	cp_unwind_free(uw);
	cp_maps_release(&maps);
	stop_fixture();
	free(r);
}

/*
 * A binary deleted after it started (an upgrade in place): its path is gone, and the module
 * must be read through /proc/PID/map_files.
 */
static void test_deleted_binary(void)
{
	static uint8_t img[1 << 20];
	char src[PATH_MAX + 64], tmp[] = "/tmp/cprof-test-deleted-XXXXXX";
	struct cp_unwind_result *r = calloc(1, sizeof(*r));
	struct cp_thread_snap snap = { 0 };
	struct cp_unwinder *uw = NULL;
	const struct cp_map *exe;
	ssize_t n = -1;
	struct fns f;
	int in, out;

	fixture_name = "deep_stack";
	fixture_path(src, sizeof(src));
	in = open(src, O_RDONLY | O_CLOEXEC);
	if (in >= 0) {
		n = read(in, img, sizeof(img));
		close(in);
	}
	out = mkstemp(tmp);
	CHECK(r && n > 0 && out >= 0);
	if (!r || n <= 0 || out < 0 || write(out, img, (size_t)n) != n || fchmod(out, 0700) != 0) {
		if (out >= 0) {
			close(out);
			unlink(tmp);
		}
		free(r);
		return;
	}
	close(out);
	start_fixture_at(tmp);
	unlink(tmp);
	snprintf(fixture_suffix, sizeof(fixture_suffix), "%s", strrchr(tmp, '/'));
	if (cp_maps_read(fixture_pid, &maps) != 0) {
		CHECK(!"read the maps of the deleted fixture");
		stop_fixture();
		free(r);
		return;
	}
	exe = module_map(fixture_suffix);
	CHECK(exe && exe->deleted);
	/* Same bytes as the built fixture: its symbols apply. */
	resolve_all(&f, src);
	wait_in_read(tid_main);
	uw = cp_unwind_new(fixture_pid, &maps, false);
	CHECK(uw != NULL);
	if (uw && snap_thread(tid_main, &snap) == 0) {
		CHECK(cp_unwind(uw, &snap.regs, &snap.stack, r) == 0);
		print_stack("deleted binary", r);
		CHECK(frame_in(r, 1, &f.d) && frame_in(r, 2, &f.c) && frame_in(r, 3, &f.b));
		CHECK(frame_in(r, 4, &f.a) && frame_in(r, 5, &f.main_));
		CHECK(r->n >= 8 && r->n <= 10 && r->stop_reason == 0);
	} else {
		CHECK(!"capture the deleted fixture's main thread");
	}
	cp_thread_snap_release(&snap);
	cp_unwind_free(uw);
	cp_maps_release(&maps);
	stop_fixture();
	free(r);
}

/*
 * cprof's sigprocmask (unwind.c) answers libunwind's calls without a system call; every
 * other caller must still get a real mask change. Unwinding leaves this thread's mask alone.
 */
static void test_sigprocmask(struct cp_unwinder *uw, const struct cp_regs *regs,
			     const struct cp_stack *st, struct cp_unwind_result *r)
{
	sigset_t set, old, now;

	sigemptyset(&set);
	sigaddset(&set, SIGUSR2);
	CHECK(sigprocmask(SIG_BLOCK, &set, &old) == 0);
	CHECK(pthread_sigmask(SIG_SETMASK, NULL, &now) == 0 && sigismember(&now, SIGUSR2));
	CHECK(cp_unwind(uw, regs, st, r) == 0 && r->n > 1);
	CHECK(pthread_sigmask(SIG_SETMASK, NULL, &now) == 0 && sigismember(&now, SIGUSR2) &&
	      !sigismember(&now, SIGUSR1));
	CHECK(sigprocmask(SIG_SETMASK, &old, NULL) == 0);
	CHECK(pthread_sigmask(SIG_SETMASK, NULL, &now) == 0 && !sigismember(&now, SIGUSR2));
	CHECK(sigprocmask(99, &set, NULL) == -1 && errno == EINVAL);
}

int main(void)
{
	struct cp_unwind_result *full = calloc(1, sizeof(*full));
	struct cp_thread_snap snap = { 0 };
	struct cp_unwinder *uw;
	struct fns f;
	char fixture[PATH_MAX + 64];
	struct cp_regs *regs;
	struct cp_stack *st;
	int r;

	if (!full)
		return 1;
	elf_version(EV_CURRENT);
	start_fixture();
	fixture_path(fixture, sizeof(fixture));
	if (cp_maps_read(fixture_pid, &maps) != 0) {
		stop_fixture();
		printf("FAIL: cannot read the fixture's maps\n");
		return 1;
	}
	resolve_all(&f, fixture);

	wait_in_read(tid_main);
	r = snap_thread(tid_main, &snap);
	if (r == -EPERM) {
		stop_fixture();
		skip("ptrace not permitted (yama ptrace_scope or a seccomp sandbox)");
	}
	CHECK(r == 0 && snap.stopped);
	regs = &snap.regs;
	st = &snap.stack;

	/* Profiles: only the copy is trusted, so every frame here came from the copy and files. */
	uw = cp_unwind_new(fixture_pid, &maps, false);
	CHECK(uw != NULL);
	if (uw && r == 0) {
		test_main_thread(uw, &f, regs, st, full);
		test_truncated_copy(uw, regs, st, full);
		test_partial_regs(uw, regs, st, &f);
		test_signal_thread(uw, &f);
		test_depth_cap(uw, &f);
		test_garbage(uw, full);
		test_corrupt_files(fixture, NULL, regs, st, full);
		test_vdso(uw, regs, st, full);
		test_sigprocmask(uw, regs, st, full);
		/* New maps, same files: the module cache survives, the results do not change. */
		cp_unwind_set_maps(uw, &maps);
		struct cp_unwind_result again;

		CHECK(cp_unwind(uw, regs, st, &again) == 0 && again.n == full->n);
	}
	cp_unwind_free(uw);
	cp_unwind_free(NULL);

	/* Thread dumps: live memory fills in what the copy lacks. */
	uw = cp_unwind_new(fixture_pid, &maps, true);
	CHECK(uw != NULL);
	if (uw && r == 0) {
		struct cp_stack cut = *st;
		struct cp_unwind_result lr;

		cut.len = 16;
		CHECK(cp_unwind(uw, regs, &cut, &lr) == 0);
		CHECK(lr.n == full->n && memcmp(lr.pc, full->pc, lr.n * sizeof(lr.pc[0])) == 0);
	}
	cp_unwind_free(uw);

	cp_thread_snap_release(&snap);
	free(full);
	cp_maps_release(&maps);
	stop_fixture();

	test_variant("deep_stack_nocfi", ".debug_frame");
	test_variant("deep_stack_nohdr", ".eh_frame");
	/* Compressed: the damage lands in the zlib stream, and inflating must fail cleanly. */
	test_variant("deep_stack_gz", ".debug_frame");
	test_deleted_binary();
	if (failures) {
		printf("%d check(s) failed\n", failures);
		return 1;
	}
	printf("all unwind tests passed\n");
	return 0;
}
