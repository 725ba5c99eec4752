/* The runtime's struct layouts: from DWARF when the binary has it, else a table per version. */
#include <dwarf.h>
#include <elfutils/libdw.h>
#include <errno.h>
#include <string.h>

#include "go_internal.h"

/*
 * Go 1.19 on amd64. The recipes name, for each global a stripped binary's code must give,
 * a runtime function and which of its RIP-relative data references (0-based, in code
 * order) is the global; the first recipe whose function the binary has wins (the linker
 * drops functions nothing calls). tests/unit/test_goruntime.c checks every recipe against
 * the .symtab of an unstripped build.
 */
static const struct go_global_recipe recipes_119[] = {
	{ "runtime.allgs", "runtime.allgadd", 2, 0 },
	{ "runtime.allglen", "runtime.allgadd", 17, 0 },
	{ "runtime.allgptr", "runtime.allgadd", 12, 0 },
	{ "runtime.gStatusStrings", "runtime.goroutineheader", 0, 0 },
	{ "runtime.waitReasonStrings", "runtime.goroutineheader", 1, 0 },
	{ "runtime.allm", "runtime.mcommoninit", 3, 0 },
	{ "runtime.sched", "runtime.schedinit", 0, -56 },
	{ "runtime.firstmoduledata", "runtime.schedinit", 1, 0 },
	{ "runtime.allp", "runtime.schedinit", 13, 0 },
	{ "runtime.buildVersion", "runtime.schedinit", 18, 0 },
	{ "runtime.fingRunning", "runtime.isSystemGoroutine", 0, 0 },
	{ "runtime.mbuckets", "runtime.mProf_FlushLocked", 0, 0 },
	{ "runtime.bbuckets", "runtime.BlockProfile", 1, 0 },
	{ "runtime.xbuckets", "runtime.MutexProfile", 1, 0 },
	/* Where BlockProfile and MutexProfile are not linked, stkbucket still is. */
	{ "runtime.bbuckets", "runtime.stkbucket", 9, 0 },
	{ "runtime.xbuckets", "runtime.stkbucket", 8, 0 },
	{ "runtime.buckhash", "runtime.stkbucket", 0, 0 },
	{ "runtime.mProfCycle", "runtime.mProf_Malloc", 0, 0 },
	{ "runtime.MemProfileRate", "runtime.profilealloc", 1, 0 },
	{ "runtime.MemProfileRate", "runtime.mallocgc", 13, 0 },
	{ "runtime.disableMemoryProfiling", "runtime.init", 21, 0 },
	{ "runtime.blockprofilerate", "runtime.blockevent", 0, 0 },
	{ "runtime.mutexprofilerate", "runtime.semacquire1", 1, 0 },
	{ "runtime.ticks", "runtime.tickspersecond", 1, 0 },
	{ "runtime.memstats", "runtime.(*pageAlloc).scavengeOne", 3, 0 },
	{ "runtime.epfd", "runtime.netpollinit", 0, 0 },
};

static const struct go_version_table versions[] = {
	{
		.prefix = "go1.19",
		.layout = {
			.g_size = 392, .g_stack_lo = 0, .g_stack_hi = 8, .g_m = 48, .g_sched = 56,
			.g_syscallsp = 112, .g_syscallpc = 120, .g_atomicstatus = 144,
			.g_goid = 152, .g_waitsince = 168, .g_waitreason = 176, .g_lockedm = 232,
			.g_gopc = 296, .g_startpc = 312, .g_waiting = 328, .g_parentgoid = 0,
			.g_trackingseq = 189,
			.gobuf_sp = 0, .gobuf_pc = 8, .gobuf_bp = 48,
			.m_procid = 72, .m_curg = 192,
			.sudog_c = 80,
		},
		.recipes = recipes_119,
		.nrecipes = sizeof(recipes_119) / sizeof(recipes_119[0]),
		.nwait_reasons = 27,
		.nstatus_strings = 10,
	},
};

int go_minor(const char *version)
{
	int minor = 0;

	if (strncmp(version, "go1.", 4))
		return 0;
	for (const char *p = version + 4; *p >= '0' && *p <= '9' && minor < 1000; p++)
		minor = minor * 10 + (*p - '0');
	return minor;
}

bool go_layout_valid(const struct go_layout *l)
{
	uint32_t g8[] = { l->g_stack_lo, l->g_stack_hi, l->g_m, l->g_syscallsp, l->g_syscallpc,
		l->g_atomicstatus, l->g_goid, l->g_waitsince, l->g_lockedm, l->g_gopc,
		l->g_startpc, l->g_waiting, l->g_parentgoid, l->g_sched + l->gobuf_sp,
		l->g_sched + l->gobuf_pc, l->g_sched + l->gobuf_bp };

	if (l->g_size < 64 || l->g_size > 65536 || l->g_waitreason >= l->g_size ||
	    l->g_trackingseq >= l->g_size || l->gobuf_sp > 4096 || l->gobuf_pc > 4096 ||
	    l->gobuf_bp > 4096)
		return false;
	for (size_t i = 0; i < sizeof(g8) / sizeof(g8[0]); i++)
		if (g8[i] > l->g_size - 8)
			return false;
	return true;
}

const struct go_version_table *go_version_find(const char *version)
{
	for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
		size_t n = strlen(versions[i].prefix);

		if (!strncmp(version, versions[i].prefix, n) &&
		    (version[n] == 0 || version[n] == '.'))
			return &versions[i];
	}
	return NULL;
}

/* The offset of DWARF member die (DW_AT_data_member_location), or false. */
static bool member_offset(Dwarf_Die *die, uint32_t *off)
{
	Dwarf_Attribute at;
	Dwarf_Word w;

	if (!dwarf_attr(die, DW_AT_data_member_location, &at) || dwarf_formudata(&at, &w) != 0 ||
	    w > UINT32_MAX)
		return false;
	*off = (uint32_t)w;
	return true;
}

/* The name of the type of member die ("[]*runtime.timer"), or NULL. */
static const char *member_type(Dwarf_Die *die)
{
	Dwarf_Attribute at;
	Dwarf_Die t;

	if (!dwarf_attr(die, DW_AT_type, &at) || !dwarf_formref_die(&at, &t))
		return NULL;
	return dwarf_diename(&t);
}

static bool is(const char *name, const char *a, const char *b)
{
	return (a && !strcmp(name, a)) || (b && !strcmp(name, b));
}

/* Whether member die (named field, of struct type) is w, and its offset read. */
static bool take_member(struct go_dwarf_want *w, const char *type, const char *field,
			Dwarf_Die *die)
{
	const char *t;

	if (w->found || !is(type, w->type, w->alt_type) || !is(field, w->field, w->alt_field) ||
	    !member_offset(die, w->dst))
		return false;
	if (!w->slice_len)
		return true;
	/* A slice is a pointer, its length, its capacity: any other shape is unknown. */
	t = member_type(die);
	*w->dst += 8;
	return t && !strncmp(t, "[]", 2);
}

/* Record the members of struct die (named name) and its size, as w and sz ask. */
static void read_struct(Dwarf_Die *die, const char *name, struct go_dwarf_want *w, size_t nw,
			struct go_dwarf_size *sz, size_t nsz)
{
	Dwarf_Die child;

	for (size_t i = 0; i < nsz; i++) {
		int bytes = dwarf_bytesize(die);

		if (!*sz[i].dst && !strcmp(name, sz[i].type) && bytes > 0)
			*sz[i].dst = (uint32_t)bytes;
	}
	if (dwarf_child(die, &child) != 0)
		return;
	do {
		const char *fn = dwarf_diename(&child);

		if (dwarf_tag(&child) != DW_TAG_member || !fn)
			continue;
		for (size_t i = 0; i < nw; i++)
			if (take_member(&w[i], name, fn, &child))
				w[i].found = true;
	} while (dwarf_siblingof(&child, &child) == 0);
}

/* Whether a struct named name is one w or sz asks about. */
static bool wanted(const char *name, const struct go_dwarf_want *w, size_t nw,
		   const struct go_dwarf_size *sz, size_t nsz)
{
	for (size_t i = 0; i < nw; i++)
		if (is(name, w[i].type, w[i].alt_type))
			return true;
	for (size_t i = 0; i < nsz; i++)
		if (!strcmp(name, sz[i].type))
			return true;
	return false;
}

static bool all_found(const struct go_dwarf_want *w, size_t nw, const struct go_dwarf_size *sz,
		      size_t nsz)
{
	for (size_t i = 0; i < nw; i++)
		if (!w[i].found && !w[i].optional)
			return false;
	for (size_t i = 0; i < nsz; i++)
		if (!*sz[i].dst)
			return false;
	return true;
}

void go_dwarf_read(Dwarf *dw, struct go_dwarf_want *w, size_t nw, struct go_dwarf_size *sz,
		   size_t nsz)
{
	Dwarf_Off off = 0, next;
	size_t hsize;

	while (!all_found(w, nw, sz, nsz) &&
	       dwarf_nextcu(dw, off, &next, &hsize, NULL, NULL, NULL) == 0) {
		Dwarf_Die cu, die;

		if (dwarf_offdie(dw, off + hsize, &cu) && dwarf_child(&cu, &die) == 0) {
			do {
				const char *nm = dwarf_diename(&die);

				if (dwarf_tag(&die) == DW_TAG_structure_type && nm &&
				    wanted(nm, w, nw, sz, nsz))
					read_struct(&die, nm, w, nw, sz, nsz);
			} while (dwarf_siblingof(&die, &die) == 0);
		}
		off = next;
	}
}

int go_layout_from_dwarf(Elf *elf, struct go_layout *out)
{
	struct go_layout l = { 0 };
	uint32_t stack_lo = 0, stack_hi = 0, g_stack = 0;
#define NEED(t, f, d) { t, NULL, f, NULL, d, false, false, false }
#define MAY(t, f, d) { t, NULL, f, NULL, d, false, true, false }
	struct go_dwarf_want want[] = {
		NEED("runtime.g", "stack", &g_stack),
		NEED("runtime.stack", "lo", &stack_lo),
		NEED("runtime.stack", "hi", &stack_hi),
		NEED("runtime.g", "m", &l.g_m),
		NEED("runtime.g", "sched", &l.g_sched),
		NEED("runtime.g", "syscallsp", &l.g_syscallsp),
		NEED("runtime.g", "syscallpc", &l.g_syscallpc),
		NEED("runtime.g", "atomicstatus", &l.g_atomicstatus),
		NEED("runtime.g", "goid", &l.g_goid),
		NEED("runtime.g", "waitsince", &l.g_waitsince),
		NEED("runtime.g", "waitreason", &l.g_waitreason),
		NEED("runtime.g", "lockedm", &l.g_lockedm),
		NEED("runtime.g", "gopc", &l.g_gopc),
		NEED("runtime.g", "startpc", &l.g_startpc),
		NEED("runtime.g", "waiting", &l.g_waiting),
		MAY("runtime.g", "parentGoid", &l.g_parentgoid),
		MAY("runtime.g", "trackingSeq", &l.g_trackingseq),
		NEED("runtime.gobuf", "sp", &l.gobuf_sp),
		NEED("runtime.gobuf", "pc", &l.gobuf_pc),
		NEED("runtime.gobuf", "bp", &l.gobuf_bp),
		NEED("runtime.m", "procid", &l.m_procid),
		NEED("runtime.m", "curg", &l.m_curg),
		NEED("runtime.sudog", "c", &l.sudog_c),
	};
#undef NEED
#undef MAY
	struct go_dwarf_size size[] = { { "runtime.g", &l.g_size } };
	size_t nwant = sizeof(want) / sizeof(want[0]);
	Dwarf *dw = dwarf_begin_elf(elf, DWARF_C_READ, NULL);

	if (!dw)
		return -ENOENT;
	go_dwarf_read(dw, want, nwant, size, 1);
	dwarf_end(dw);
	for (size_t i = 0; i < nwant; i++)
		if (!want[i].found && !want[i].optional)
			return -ENOENT;
	l.g_stack_lo = g_stack + stack_lo;
	l.g_stack_hi = g_stack + stack_hi;
	if (!go_layout_valid(&l))
		return -EINVAL;
	*out = l;
	return 0;
}
