/* Frame-base recovery inside an unwind: the glue between cp_unwind and frame_base.c. */
#include <errno.h>
#include <string.h>

#include "frame_base.h"
#include "unwind_internal.h"

/* What frame-base recovery works on: one unwind, and the frame it could not step. */
struct recovery {
	struct unwind_ctx *c;
	uint64_t pc, sp;
	const struct cp_frame_base_probe *probe;
};

/* Frame-base recovery's view of the target: code is executable and file-backed (or vdso). */
static bool probe_is_code(void *arg, uint64_t addr)
{
	const struct recovery *rc = arg;
	const struct cp_maps *maps = rc->c->uw->maps;
	const struct cp_map *map = maps ? cp_maps_find(maps, addr) : NULL;

	return map && map->perms[2] == 'x' && (cp_map_is_file(map) || cp_unwind_is_vdso(map));
}

/*
 * Code comes from the module files; anything else (a GOT slot a call goes through, relocated
 * at load time and then made read-only) only from the live process, in thread dumps.
 */
static int probe_read_code(void *arg, uint64_t addr, void *buf, size_t len)
{
	const struct recovery *rc = arg;
	struct cp_unwinder *uw = rc->c->uw;

	if (probe_is_code(arg, addr))
		return cp_unwind_read_mem(rc->c, addr, buf, len);
	if (!uw->live_memory)
		return -EFAULT;
	return cp_mem_read(&uw->mem, addr, buf, len) == (long)len ? 0 : -EFAULT;
}

static void recovered_regs(const struct recovery *rc, uint64_t base, struct cp_regs *r)
{
	memset(r, 0, sizeof(*r));
	r->r[CP_REG_RIP] = rc->pc;
	r->r[CP_REG_RSP] = rc->sp;
	r->r[CP_REG_RBP] = base;
	r->valid = 1u << CP_REG_RIP | 1u << CP_REG_RSP | 1u << CP_REG_RBP;
}

/*
 * With base as the frame's rbp, unwind two frames by their CFI: the caller's own return
 * address must follow a call (or the stack ends there). A stale pair of words in the frame's
 * locals rarely leads to one.
 */
static bool probe_caller_ok(void *arg, uint64_t base)
{
	const struct recovery *rc = arg;
	struct unwind_ctx trial = *rc->c;
	struct cp_regs r;
	unw_cursor_t cur;
	unw_word_t ip;
	int st;

	recovered_regs(rc, base, &r);
	trial.regs = &r;
	if (unw_init_remote(&cur, trial.uw->as, &trial) < 0 || unw_step(&cur) <= 0)
		return false;
	st = unw_step(&cur);
	if (st == 0)
		return true;
	if (st < 0 || unw_get_reg(&cur, UNW_REG_IP, &ip) < 0)
		return false;
	return ip == 0 || cp_frame_base_follows_call(rc->probe, ip);
}

int cp_unwind_recover_frame_base(struct unwind_ctx *c, uint64_t pc, uint64_t sp,
				 struct cp_regs *regs_out)
{
	struct recovery rc = { .c = c, .pc = pc, .sp = sp };
	struct cp_frame_base_probe probe = {
		.sp = sp, .stack = c->stack, .is_code = probe_is_code,
		.read_code = probe_read_code, .caller_ok = probe_caller_ok, .arg = &rc,
	};
	unw_proc_info_t pi;
	uint64_t base;

	rc.probe = &probe;
	memset(&pi, 0, sizeof(pi));
	/* pc is a return address: the call it follows belongs to the function before it. */
	if (cp_unwind_find_proc_info(c->uw->as, pc - 1, &pi, 0, c) < 0 || !pi.start_ip)
		return -ENODATA;
	probe.func_start = pi.start_ip;
	if (cp_frame_base_find(&probe, &base) <= 0)
		return -ENODATA;
	recovered_regs(&rc, base, regs_out);
	return 0;
}
