/* Remote libunwind over a captured snapshot: registers, a stack copy and the target's files. */
#include "unwind.h"

#include <errno.h>
#include <libunwind.h>
#include <link.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"
#include "cfi.h"
#include "unwind_internal.h"
#include "maps.h"
#include "modules.h"

/* libunwind exports the table search for remote address spaces under this name only. */
extern int _Ux86_64_dwarf_search_unwind_table(unw_addr_space_t as, unw_word_t ip,
					      unw_dyn_info_t *di, unw_proc_info_t *pi,
					      int need_unwind_info, void *arg);

/*
 * Rewritten CFI (cfi.h) is served at SYNTH_BASE + (id << 32) + offset: addresses that are not
 * canonical on x86-64, so no target memory can ever be mistaken for them.
 */
#define SYNTH_BASE (1ull << 63)
#define SYNTH_MAX 4096			/* rewritten tables per unwinder */

static struct map_slot *slot_of(struct cp_unwinder *uw, const struct cp_map *map)
{
	size_t i = (size_t)(map - uw->maps->v);

	return i < uw->nslots ? &uw->slots[i] : NULL;
}

bool cp_unwind_is_vdso(const struct cp_map *map)
{
	return map->path && strcmp(map->path, "[vdso]") == 0;
}

static struct cp_module *vdso_module(struct cp_unwinder *uw, const struct cp_map *map)
{
	uint8_t *buf;
	size_t len;
	long n;

	if (uw->vdso_state == 1)
		return uw->vdso;
	if (uw->vdso_state < 0)
		return NULL;
	/*
	 * The vdso is code the kernel maps, the same for the life of the process: reading it
	 * once is fine even for profiles, which otherwise trust only the sample's copy.
	 */
	len = map->end - map->start;
	if (map->end <= map->start || len > CP_MODULE_IMAGE_MAX) {
		uw->vdso_state = -EFBIG;
		return NULL;
	}
	buf = malloc(len);
	if (!buf) {
		/* Not cached: a later unwind may have memory again. */
		return NULL;
	}
	n = cp_mem_read(&uw->mem, map->start, buf, len);
	if (n < 0 || (size_t)n != len) {
		free(buf);
		uw->vdso_state = n < 0 ? (int)n : -EIO;
		return NULL;
	}
	uw->vdso = cp_module_new_image(buf, len);
	if (!uw->vdso)
		return NULL;
	uw->vdso_state = 1;
	return uw->vdso;
}

/* The module behind map (and its bias), or NULL: anonymous memory, unreadable file. */
static struct map_slot *map_module(struct cp_unwinder *uw, const struct cp_map *map)
{
	struct map_slot *s = slot_of(uw, map);
	struct cp_module *m = NULL;
	int r;

	if (!s)
		return NULL;
	if (s->state > 0)
		return s;
	if (s->state < 0)
		return NULL;
	if (cp_unwind_is_vdso(map)) {
		m = vdso_module(uw, map);
		if (!m)
			return NULL;	/* retried next time only if it was out of memory */
	} else if (cp_map_is_file(map)) {
		r = cp_modules_get(uw->mods, uw->pid, map, &m);
		if (r < 0) {
			if (r != -ENOMEM)
				s->state = r;
			return NULL;
		}
	} else {
		s->state = -ENOENT;
		return NULL;
	}
	if (m->err < 0 && !m->data) {
		s->state = m->err;
		return NULL;
	}
	s->mod = m;
	s->has_bias = m->err == 0 && cp_module_bias(m, map, &s->bias) == 0;
	s->state = 1;
	return s;
}

/*
 * Copy up to len bytes at addr from one source, without crossing a source's edge. Returns
 * the number of bytes copied (> 0) or -errno.
 */
static long read_piece(struct unwind_ctx *c, uint64_t addr, uint8_t *buf, size_t len)
{
	struct cp_unwinder *uw = c->uw;
	const struct cp_stack *st = c->stack;
	const struct cp_map *map;
	struct map_slot *s;
	uint64_t n;

	if (addr >= SYNTH_BASE && addr - SYNTH_BASE < ((uint64_t)SYNTH_MAX << 32)) {
		uint64_t id = (addr - SYNTH_BASE) >> 32, off = addr & 0xffffffffu;
		const struct cp_cfi_index *x = id < uw->nsynth ? uw->synth[id].x : NULL;

		if (!x || off >= x->len)
			return -EFAULT;
		n = x->len - off;
		n = n < len ? n : len;
		memcpy(buf, x->buf + off, n);
		return (long)n;
	}
	if (st && st->data && addr >= st->start && addr - st->start < st->len) {
		n = st->len - (addr - st->start);
		n = n < len ? n : len;
		memcpy(buf, st->data + (addr - st->start), n);
		return (long)n;
	}
	if (uw->last_data && addr >= uw->last_start && addr < uw->last_end) {
		n = uw->last_end - addr;
		n = n < len ? n : len;
		memcpy(buf, uw->last_data + (addr - uw->last_start), n);
		return (long)n;
	}
	map = uw->maps ? cp_maps_find(uw->maps, addr) : NULL;
	/* Writable file mappings hold relocated or modified data the file does not have. */
	if (map && !(map->perms[1] == 'w' && uw->live_memory)) {
		s = map_module(uw, map);
		if (s && s->mod->data) {
			/* The vdso image starts at the mapping; files at the mapping's offset. */
			uint64_t base = s->mod->mapped ? map->offset : 0;
			uint64_t end;

			if (base < s->mod->size) {
				end = map->end - map->start;
				if (end > s->mod->size - base)
					end = s->mod->size - base;
				end += map->start;
				if (addr < end) {
					uw->last_start = map->start;
					uw->last_end = end;
					uw->last_data = s->mod->data + base;
					n = end - addr;
					n = n < len ? n : len;
					memcpy(buf, uw->last_data + (addr - map->start), n);
					return (long)n;
				}
			}
		}
	}
	if (uw->live_memory) {
		long r = cp_mem_read(&uw->mem, addr, buf, len);

		if (r > 0)
			return r;
		return r < 0 ? r : -EFAULT;
	}
	return -EFAULT;
}

int cp_unwind_read_mem(struct unwind_ctx *c, uint64_t addr, void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len > 0) {
		long n;

		if (addr + len < addr)
			return -EFAULT;
		n = read_piece(c, addr, p, len);
		if (n <= 0)
			return n < 0 ? (int)n : -EFAULT;
		p += n;
		addr += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

/* libunwind accessors. They return 0 or a negative UNW_E* code. */

/*
 * The rewritten .debug_frame / header-less .eh_frame table of the module behind slot s,
 * built on first need and kept per (file, bias) for the life of the unwinder.
 */
static const struct cp_cfi_index *slot_cfi(struct cp_unwinder *uw, struct map_slot *s)
{
	struct cp_cfi_index *x = NULL;
	struct synth *sy;
	int r;

	if (s->cfi_state)
		return s->cfi;
	for (size_t i = 0; i < uw->nsynth; i++) {
		sy = &uw->synth[i];
		if (sy->mod == s->mod && sy->bias == s->bias) {
			s->cfi = sy->x;
			s->cfi_state = sy->x ? 1 : -ENOENT;
			return s->cfi;
		}
	}
	if (uw->nsynth >= SYNTH_MAX) {
		s->cfi_state = -ENOSPC;
		return NULL;
	}
	if (uw->nsynth == uw->synth_alloc) {
		size_t alloc = uw->synth_alloc ? uw->synth_alloc * 2 : 16;
		struct synth *v = realloc(uw->synth, alloc * sizeof(*v));

		if (!v)
			return NULL;
		uw->synth = v;
		uw->synth_alloc = alloc;
	}
	r = cp_cfi_index_build(s->mod, s->bias, &x);
	if (r == -ENOMEM)
		return NULL;	/* not remembered: memory may come back */
	if (r < 0)
		x = NULL;
	else
		x->id = (uint32_t)uw->nsynth;
	uw->synth[uw->nsynth++] = (struct synth){ .mod = s->mod, .bias = s->bias, .x = x };
	s->cfi = x;
	s->cfi_state = x ? 1 : -ENOENT;
	return x;
}

int cp_unwind_find_proc_info(unw_addr_space_t as, unw_word_t ip, unw_proc_info_t *pi,
			     int need_unwind_info, void *arg)
{
	struct unwind_ctx *c = arg;
	struct cp_unwinder *uw = c->uw;
	const struct cp_cfi_index *x;
	const struct cp_map *map;
	const struct cp_module *m;
	struct map_slot *s;
	unw_dyn_info_t di;
	int r = -UNW_ENOINFO;

	map = uw->maps ? cp_maps_find(uw->maps, ip) : NULL;
	if (!map)
		return -UNW_ENOINFO;
	s = map_module(uw, map);
	if (!s || !s->has_bias)
		return -UNW_ENOINFO;
	m = s->mod;
	memset(&di, 0, sizeof(di));
	di.start_ip = m->min_vaddr + s->bias;
	di.end_ip = m->max_vaddr + s->bias;
	/* libunwind asserts the ip is inside the table's range. */
	if (ip < di.start_ip || ip >= di.end_ip)
		return -UNW_ENOINFO;
	if (m->has_eh_table) {
		di.format = UNW_INFO_FORMAT_REMOTE_TABLE;
		di.u.rti.segbase = m->eh_hdr_vaddr + s->bias;
		di.u.rti.table_data = m->eh_table_vaddr + s->bias;
		/* table_len counts unw_word_t units; one entry is two int32 = one word. */
		di.u.rti.table_len = m->fde_count * 8 / sizeof(unw_word_t);
		r = _Ux86_64_dwarf_search_unwind_table(as, ip, &di, pi, need_unwind_info, arg);
		if (r != -UNW_ENOINFO)
			return r;
	}
	/* Code the .eh_frame_hdr does not cover: .debug_frame, or .eh_frame alone. */
	x = slot_cfi(uw, s);
	if (!x)
		return r;
	di.format = UNW_INFO_FORMAT_IP_OFFSET;
	/* Start offsets are relative to start_ip (x->ip_base + bias), FDEs to segbase. */
	di.start_ip = x->ip_base + s->bias;
	di.u.rti.segbase = SYNTH_BASE + ((uint64_t)x->id << 32);
	di.u.rti.table_data = di.u.rti.segbase;
	di.u.rti.table_len = x->count * 8 / sizeof(unw_word_t);
	if (ip < di.start_ip)
		return -UNW_ENOINFO;
	return _Ux86_64_dwarf_search_unwind_table(as, ip, &di, pi, need_unwind_info, arg);
}

static void put_unwind_info(unw_addr_space_t as, unw_proc_info_t *pi, void *arg)
{
	/* libunwind frees what dwarf_search_unwind_table allocated itself. */
}

static int get_dyn_info_list_addr(unw_addr_space_t as, unw_word_t *dilap, void *arg)
{
	return -UNW_ENOINFO;
}

static int access_mem(unw_addr_space_t as, unw_word_t addr, unw_word_t *valp, int write,
		      void *arg)
{
	unw_word_t v;

	if (write)
		return -UNW_EREADONLYREG;
	if (cp_unwind_read_mem(arg, addr, &v, sizeof(v)) < 0)
		return -UNW_EINVAL;
	*valp = v;
	return 0;
}

static int access_reg(unw_addr_space_t as, unw_regnum_t reg, unw_word_t *valp, int write,
		      void *arg)
{
	const struct unwind_ctx *c = arg;

	if (write)
		return -UNW_EREADONLYREG;
	/* libunwind's x86-64 numbering is the DWARF one that cp_regs uses. */
	if (reg < 0 || reg >= CP_NREGS || !(c->regs->valid & (1u << reg)))
		return -UNW_EBADREG;
	*valp = c->regs->r[reg];
	return 0;
}

static int access_fpreg(unw_addr_space_t as, unw_regnum_t reg, unw_fpreg_t *val, int write,
			void *arg)
{
	return -UNW_EBADREG;
}

static int resume(unw_addr_space_t as, unw_cursor_t *cu, void *arg)
{
	return -UNW_EINVAL;
}

static int get_proc_name(unw_addr_space_t as, unw_word_t addr, char *buf, size_t len,
			 unw_word_t *offp, void *arg)
{
	/* Names come from symbolize/, with DWARF; libunwind never needs them to step. */
	return -UNW_ENOINFO;
}

static unw_accessors_t accessors = {
	.find_proc_info = cp_unwind_find_proc_info,
	.put_unwind_info = put_unwind_info,
	.get_dyn_info_list_addr = get_dyn_info_list_addr,
	.access_mem = access_mem,
	.access_reg = access_reg,
	.access_fpreg = access_fpreg,
	.resume = resume,
	.get_proc_name = get_proc_name,
};

static int reset_slots(struct cp_unwinder *uw, const struct cp_maps *maps)
{
	size_t n = maps ? maps->n : 0;
	struct map_slot *slots = NULL;

	if (n) {
		slots = calloc(n, sizeof(*slots));
		if (!slots)
			return -ENOMEM;
	}
	free(uw->slots);
	uw->slots = slots;
	uw->nslots = n;
	uw->maps = maps;
	uw->last_data = NULL;
	uw->last_start = uw->last_end = 0;
	return 0;
}

struct cp_unwinder *cp_unwind_new(int pid, const struct cp_maps *maps, bool live_memory)
{
	struct cp_unwinder *uw = calloc(1, sizeof(*uw));

	if (!uw)
		return NULL;
	uw->pid = pid;
	uw->mem = CP_MEM_BY_PID(pid);
	uw->live_memory = live_memory;
	uw->mods = cp_modules_new();
	if (!uw->mods)
		goto fail;
	if (reset_slots(uw, maps) < 0)
		goto fail;
	uw->as = unw_create_addr_space(&accessors, 0);
	if (!uw->as)
		goto fail;
	/* Per-pc unwind rules stay valid as long as the same code is mapped at the same place. */
	unw_set_caching_policy(uw->as, UNW_CACHE_GLOBAL);
	return uw;
fail:
	cp_unwind_free(uw);
	return NULL;
}

void cp_unwind_free(struct cp_unwinder *uw)
{
	if (!uw)
		return;
	if (uw->as)
		unw_destroy_addr_space(uw->as);
	for (size_t i = 0; i < uw->nsynth; i++)
		cp_cfi_index_free(uw->synth[i].x);
	free(uw->synth);
	cp_module_free(uw->vdso);
	cp_modules_free(uw->mods);
	free(uw->slots);
	free(uw);
}

void cp_unwind_set_mem(struct cp_unwinder *uw, const struct cp_mem *mem)
{
	uw->mem = *mem;
}

void cp_unwind_set_maps(struct cp_unwinder *uw, const struct cp_maps *maps)
{
	if (reset_slots(uw, maps) < 0) {
		/* Without slots every lookup fails cleanly; better than a stale table. */
		free(uw->slots);
		uw->slots = NULL;
		uw->nslots = 0;
		uw->maps = maps;
	}
	/* Code may have been unmapped and other code mapped at the same addresses. */
	unw_flush_cache(uw->as, 0, 0);
}

/*
 * Is pc the rt_sigreturn trampoline (glibc's and musl's __restore_rt, the vdso's)? Its caller
 * is the frame the signal interrupted. We look at the code ourselves (as libunwind's own
 * x86-64 check does) because which frame unw_is_signal_frame() flags depends on the version:
 * 1.6 answers true for the frame after the trampoline, not for the trampoline.
 */
static bool is_sigreturn_trampoline(struct unwind_ctx *c, uint64_t pc)
{
	/* mov $15, %rax (rt_sigreturn); syscall */
	static const uint8_t code[9] = { 0x48, 0xc7, 0xc0, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05 };
	const struct cp_map *map = c->uw->maps ? cp_maps_find(c->uw->maps, pc) : NULL;
	uint8_t buf[sizeof(code)];

	/* Trampolines live in libc or the vdso: JIT code is not worth a read of live memory. */
	if (map && !cp_map_is_file(map) && !cp_unwind_is_vdso(map))
		return false;
	return cp_unwind_read_mem(c, pc, buf, sizeof(buf)) == 0 && memcmp(buf, code, sizeof(code)) == 0;
}

/* Is pc in an executable mapping? Without maps we cannot tell and trust libunwind. */
static bool pc_executable(const struct cp_unwinder *uw, uint64_t pc)
{
	const struct cp_map *map;

	if (!uw->maps || uw->maps->n == 0)
		return true;
	map = cp_maps_find(uw->maps, pc);
	return map && map->perms[2] == 'x';
}

/*
 * Whether the frame at pc is where a Go stack begins (cp_module_go_root). exact: pc is where
 * the frame is (the innermost, or one a signal interrupted), else a return address.
 */
static bool at_go_root(struct cp_unwinder *uw, uint64_t pc, bool exact)
{
	const struct cp_map *map = uw->maps ? cp_maps_find(uw->maps, pc) : NULL;
	struct map_slot *s = map ? map_module(uw, map) : NULL;

	if (!s || !s->has_bias || !s->mod->is_go)
		return false;
	return cp_module_go_root(s->mod, pc - s->bias - (exact ? 0 : 1));
}

/* libunwind's error codes as -errno for stop_reason. */
static int unw_to_errno(int r)
{
	switch (-r) {
	case UNW_ENOINFO:
		return -ENOENT;
	case UNW_EBADREG:
	case UNW_EREADONLYREG:
		return -ENODATA;
	case UNW_ENOMEM:
		return -ENOMEM;
	case UNW_EINVALIDIP:
	case UNW_EBADFRAME:
	case UNW_EINVAL:
		return -EFAULT;
	case UNW_ESTOPUNWIND:
		return 0;
	default:
		return -EIO;
	}
}

int cp_unwind(struct cp_unwinder *uw, const struct cp_regs *regs, const struct cp_stack *stack,
	      struct cp_unwind_result *out)
{
	struct unwind_ctx c = { .uw = uw, .regs = regs, .stack = stack };
	struct cp_regs fp_regs;
	bool recovered = false;
	unw_cursor_t cursor;
	unw_word_t pc, sp, prev_sp = 0;
	bool prev_signal = false, same_sp = false, backwards, sigtramp;
	int r;

	if (!(regs->valid & (1u << CP_REG_RIP)) || !(regs->valid & (1u << CP_REG_RSP)))
		return -EINVAL;
	r = unw_init_remote(&cursor, uw->as, &c);
	if (r < 0)
		return unw_to_errno(r) ? unw_to_errno(r) : -EIO;

	out->n = 0;
	out->truncated = false;
	out->stop_reason = 0;
	for (;;) {
		if (unw_get_reg(&cursor, UNW_REG_IP, &pc) < 0 ||
		    unw_get_reg(&cursor, UNW_REG_SP, &sp) < 0) {
			out->stop_reason = -ENODATA;
			break;
		}
		if (pc == 0) {
			/*
			 * A return address of 0 read from the stack. The ABI's end of stack is a
			 * frame whose CFI leaves the return address undefined (unw_step says 0,
			 * below); a 0 read as data is memory that held no frame (an sp pointing at
			 * zeroed memory): say the stack ended there unexplained.
			 */
			if (out->n > 0)
				out->stop_reason = -ENODATA;
			break;
		}
		/*
		 * Every call pushes, so a caller's sp is above its callee's. Only a signal frame
		 * may jump anywhere (sigaltstack). Anything else is a loop or garbage. Equal is
		 * allowed once, for a new pc: a function that popped its return address into a
		 * register (__vfork keeps it in rdi) has its caller's sp already.
		 */
		backwards = sp < prev_sp ||
			    (sp == prev_sp && (same_sp || pc == out->pc[out->n - 1]));
		if (out->n > 0 && !prev_signal && backwards) {
			out->stop_reason = -ELOOP;
			break;
		}
		/*
		 * A return address outside executable memory is garbage from a guess (libunwind's
		 * frame-pointer fallback over code without CFI): end the stack, do not show it.
		 */
		if (out->n > 0 && !pc_executable(uw, pc)) {
			out->stop_reason = -EFAULT;
			break;
		}
		if (out->n == CP_UNWIND_MAX_FRAMES) {
			out->truncated = true;
			out->stop_reason = -E2BIG;
			break;
		}
		out->pc[out->n] = pc;
		out->sp[out->n] = sp;
		/*
		 * The frame a signal interrupted resumes at its exact pc, not after a call; so
		 * does the trampoline, where the kernel pointed the handler's return.
		 */
		sigtramp = is_sigreturn_trampoline(&c, pc);
		out->flags[out->n] = (prev_signal || sigtramp ? CP_FRAME_SIGNAL : 0) |
				     (sigtramp ? CP_FRAME_SIGTRAMP : 0);
		out->n++;
		same_sp = out->n > 1 && sp == prev_sp;
		prev_sp = sp;
		if (at_go_root(uw, pc, out->n == 1 || prev_signal))
			break;	/* outermost frame of a Go stack */
		prev_signal = sigtramp;

		r = unw_step(&cursor);
		/*
		 * A live capture has no rbp: a caller whose CFA is rbp-based (frame-pointer code)
		 * cannot be stepped. Recover its rbp once, with proof, and go on from there.
		 */
		if (r == -UNW_EBADREG && !recovered && !(c.regs->valid & (1u << CP_REG_RBP)) &&
		    out->n > 1 && cp_unwind_recover_frame_base(&c, pc, sp, &fp_regs) == 0) {
			recovered = true;
			c.regs = &fp_regs;
			r = unw_init_remote(&cursor, uw->as, &c);
			if (r == 0)
				r = unw_step(&cursor);
		}
		if (r == 0)
			break;
		if (r < 0) {
			out->stop_reason = unw_to_errno(r);
			break;
		}
	}
	return 0;
}

/*
 * libunwind 1.6 (Debian 12) blocks every signal around its cache lock, a sigprocmask() pair
 * per step (cost: docs/PERFORMANCE.md, "libunwind"), in case a handler unwinds; cprof's
 * handlers never do. So libunwind's calls leave the mask alone, and every other caller gets
 * glibc's pthread_sigmask. This definition interposes on libc's for the shared libraries.
 */

#define LIBUNWIND_RANGES 8

static struct {
	pthread_once_t once;
	size_t n;
	uintptr_t start[LIBUNWIND_RANGES], end[LIBUNWIND_RANGES];
} libunwind_text = { .once = PTHREAD_ONCE_INIT };

static int note_libunwind(struct dl_phdr_info *info, size_t size, void *arg)
{
	(void)size;
	(void)arg;
	if (!info->dlpi_name || !strstr(info->dlpi_name, "/libunwind"))
		return 0;
	for (int i = 0; i < info->dlpi_phnum && libunwind_text.n < LIBUNWIND_RANGES; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];

		if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X))
			continue;
		libunwind_text.start[libunwind_text.n] = info->dlpi_addr + ph->p_vaddr;
		libunwind_text.end[libunwind_text.n] = info->dlpi_addr + ph->p_vaddr + ph->p_memsz;
		libunwind_text.n++;
	}
	return 0;
}

static void find_libunwind(void)
{
	dl_iterate_phdr(note_libunwind, NULL);
}

static bool called_from_libunwind(uintptr_t ra)
{
	pthread_once(&libunwind_text.once, find_libunwind);
	for (size_t i = 0; i < libunwind_text.n; i++)
		if (ra >= libunwind_text.start[i] && ra < libunwind_text.end[i])
			return true;
	return false;
}

int sigprocmask(int how, const sigset_t *set, sigset_t *old)
{
	int err;

	if (called_from_libunwind((uintptr_t)__builtin_return_address(0)))
		return 0;
	err = pthread_sigmask(how, set, old);
	if (err) {
		errno = err;
		return -1;
	}
	return 0;
}
