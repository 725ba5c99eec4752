/*
 * A stripped Go binary of a version cprof has no table for: the runtime's string tables and
 * allgs found by their shape in its data, and the layout of g learned from the goroutines
 * themselves (goid 1 first, distinct ids, startpc at function entries...), then checked by
 * unwinding every goroutine to runtime.goexit. Refused unless the checks hold.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "go_internal.h"
#include "mem.h"

/* Caps: bytes of data read, gs sampled, bytes of each g looked at. */
#define MAX_SCAN (8u << 20)
#define SAMPLE 2048
#define G_PEEK 1024
#define STACK_PREEMPT 0xfffffffffffffadeull

/* The runtime addresses and bytes of a data section read from the target. */
struct region {
	uint64_t addr;
	size_t len;
	uint8_t *bytes;
};

static bool read_region(const struct cp_go_runtime *rt, const struct go_section *s,
			struct region *r)
{
	long got;

	r->addr = s->addr + rt->bias;
	r->len = s->size < MAX_SCAN ? s->size : MAX_SCAN;
	r->bytes = r->len ? malloc(r->len) : NULL;
	if (!r->bytes)
		return false;
	got = cp_mem_read(rt->mem, r->addr, r->bytes, r->len);
	r->len = got > 0 ? (size_t)got : 0;
	return r->len > 0;
}

/* The Go string whose header is hdr equals want. */
static bool string_is(const struct cp_go_runtime *rt, const uint8_t *hdr, const char *want)
{
	char buf[64];
	uint64_t n = go_le64(hdr + 8);

	if (n != strlen(want) || n >= sizeof(buf))
		return false;
	if (n == 0)
		return true;
	return cp_mem_read(rt->mem, go_le64(hdr), buf, n) == (long)n && !memcmp(buf, want, n);
}

/* An array of string headers starting with first, second in r: its address, or 0. */
static uint64_t find_strings(const struct cp_go_runtime *rt, const struct region *r,
			     const char *first, const char *second)
{
	for (size_t o = 0; o + 48 <= r->len; o += 8) {
		const uint8_t *h = r->bytes + o;

		if (go_le64(h + 8) == strlen(first) && go_le64(h + 24) == strlen(second) &&
		    string_is(rt, h, first) && string_is(rt, h + 16, second))
			return r->addr + o;
	}
	return 0;
}

/* Whether the 64 bytes at g look like a g: a stack of a power-of-two size, its guard in it. */
static bool looks_like_g(const uint8_t *g)
{
	uint64_t lo = go_le64(g), hi = go_le64(g + 8), guard = go_le64(g + 16), size = hi - lo;

	if (!lo && !hi)
		return true;	/* a dead g whose stack went back to the pool */
	if (lo >= hi || size < 2048 || size > (1ull << 30) || (size & (size - 1)))
		return false;
	return (guard >= lo && guard - lo <= 8192) || guard == STACK_PREEMPT;
}

/* allgs: a slice in .bss whose elements point at gs, the first one live. */
static uint64_t find_allgs(const struct cp_go_runtime *rt, const struct region *bss)
{
	for (size_t o = 0; o + 24 <= bss->len; o += 8) {
		const uint8_t *h = bss->bytes + o;
		uint64_t ptr = go_le64(h), len = go_le64(h + 8), cap = go_le64(h + 16);
		uint64_t gp[16];
		size_t n, good = 0;

		if (!ptr || (ptr & 7) || len == 0 || len > cap || cap > (1u << 24))
			continue;
		n = len < 16 ? len : 16;
		if (cp_mem_read(rt->mem, ptr, gp, n * 8) != (long)(n * 8))
			continue;
		for (size_t i = 0; i < n; i++) {
			uint8_t g[64];

			if (gp[i] && !(gp[i] & 7) &&
			    cp_mem_read(rt->mem, gp[i], g, sizeof(g)) == (long)sizeof(g) &&
			    looks_like_g(g) && (i || go_le64(g) < go_le64(g + 8)))
				good++;
		}
		if (good == n && n >= 2)
			return bss->addr + o;
	}
	return 0;
}

/* The sampled gs: their addresses and first G_PEEK bytes. */
struct sample {
	uint64_t addr[SAMPLE];
	uint8_t (*g)[G_PEEK];
	size_t n;
};

static int take_sample(const struct cp_go_runtime *rt, uint64_t allgs, struct sample *s)
{
	uint64_t hdr[2];

	if (cp_mem_read(rt->mem, allgs, hdr, sizeof(hdr)) != (long)sizeof(hdr))
		return -EFAULT;
	s->n = hdr[1] < SAMPLE ? hdr[1] : SAMPLE;
	if (cp_mem_read(rt->mem, hdr[0], s->addr, s->n * 8) != (long)(s->n * 8))
		return -EFAULT;
	s->g = calloc(s->n + 1, G_PEEK);
	if (!s->g)
		return -ENOMEM;
	for (size_t i = 0; i < s->n; i++)
		if (cp_mem_read(rt->mem, s->addr[i], s->g[i], G_PEEK) != G_PEEK)
			memset(s->g[i], 0, G_PEEK);
	return 0;
}

/* goid: the first word that is 1 in the main goroutine and distinct, small, in every g. */
static uint32_t find_goid(const struct sample *s)
{
	for (uint32_t o = 128; o + 8 <= G_PEEK / 2; o += 8) {
		bool ok = go_le64(s->g[0] + o) == 1;

		for (size_t i = 1; ok && i < s->n; i++) {
			uint64_t v = go_le64(s->g[i] + o);

			ok = v > 1 && v < (1ull << 40) && v != go_le64(s->g[i - 1] + o);
		}
		if (ok)
			return o;
	}
	return 0;
}

/* startpc: a word at a function's entry in every g, runtime.main's in the main goroutine. */
static uint32_t find_startpc(struct cp_go_runtime *rt, const struct sample *s, uint32_t from)
{
	for (uint32_t o = from; o + 8 <= G_PEEK; o += 8) {
		const struct go_pc_info *pi = go_pc_info(rt, go_le64(s->g[0] + o), true);
		bool ok = pi && pi->valid && pi->entry == go_le64(s->g[0] + o) &&
			!strcmp(pi->name, "runtime.main");

		for (size_t i = 1; ok && i < s->n && i < 64; i++) {
			uint64_t v = go_le64(s->g[i] + o);

			pi = go_pc_info(rt, v, true);
			ok = pi && pi->valid && pi->entry == v;
		}
		if (ok)
			return o;
	}
	return 0;
}

/* gopc: the nearest word below startpc inside a function, not at its entry, in every g. */
static uint32_t find_gopc(struct cp_go_runtime *rt, const struct sample *s, uint32_t startpc)
{
	for (uint32_t o = startpc - 8; o > 128; o -= 8) {
		bool ok = true;

		for (size_t i = 1; ok && i < s->n && i < 64; i++) {
			uint64_t v = go_le64(s->g[i] + o);
			const struct go_pc_info *pi = go_pc_info(rt, v, false);

			ok = pi && pi->valid && pi->entry != v;
		}
		if (ok)
			return o;
	}
	return 0;
}

/*
 * parentGoid (Go 1.21+): the word before gopc, 0 in the main goroutine and another's goid in
 * every other (Ps take goids in batches: a parent's may be larger). Before 1.21 that word is
 * sigpc, 0 but in goroutines that took a signal, and then far larger than any goid.
 */
static uint32_t find_parent(const struct sample *s, uint32_t goid, uint32_t gopc)
{
	uint64_t maxid = 0;
	size_t hits = 0;

	if (go_le64(s->g[0] + gopc - 8) != 0)
		return 0;
	for (size_t i = 0; i < s->n; i++)
		if (go_le64(s->g[i] + goid) > maxid)
			maxid = go_le64(s->g[i] + goid);
	for (size_t i = 1; i < s->n; i++) {
		uint64_t p = go_le64(s->g[i] + gopc - 8);

		if (p > maxid || p == go_le64(s->g[i] + goid))
			return 0;
		hits += p != 0;
	}
	return hits ? gopc - 8 : 0;
}

/*
 * Whether m looks like an M: its g0 a g with a stack (a thread's own stack for some, of any
 * size), its procid a thread id.
 */
static bool looks_like_m(const struct cp_go_runtime *rt, uint64_t m)
{
	uint64_t g0, procid;
	uint8_t g[64];

	return !(m & 7) && cp_mem_read(rt->mem, m, &g0, 8) == 8 && g0 && !(g0 & 7) &&
	       cp_mem_read(rt->mem, g0, g, sizeof(g)) == (long)sizeof(g) &&
	       go_le64(g) < go_le64(g + 8) && go_le64(g + 8) - go_le64(g) < (1u << 30) &&
	       cp_mem_read(rt->mem, m + 72, &procid, 8) == 8 && procid > 0 &&
	       procid < (1u << 22);
}

/* lockedm: a word between waitreason and gopc that is 0 or an M in every g, not 0 in one. */
static uint32_t find_lockedm(const struct cp_go_runtime *rt, const struct sample *s,
			     uint32_t from, uint32_t to)
{
	for (uint32_t o = (from + 7) & ~7u; o < to; o += 8) {
		size_t hits = 0;
		bool ok = true;

		for (size_t i = 0; ok && i < s->n; i++) {
			uint64_t v = go_le64(s->g[i] + o);

			if (!v)
				continue;
			ok = hits < 8 && looks_like_m(rt, v);
			hits++;
		}
		if (ok && hits)
			return o;
	}
	return 0;
}

/* waiting: a word that is 0 or points at a sudog whose first word is the g itself. */
static uint32_t find_waiting(const struct cp_go_runtime *rt, const struct sample *s,
			     uint32_t from)
{
	for (uint32_t o = from; o + 8 <= G_PEEK; o += 8) {
		size_t hits = 0;
		bool ok = true;

		for (size_t i = 0; ok && i < s->n; i++) {
			uint64_t v = go_le64(s->g[i] + o), back;

			if (!v)
				continue;
			ok = !(v & 7) && cp_mem_read(rt->mem, v, &back, 8) == 8 &&
				back == s->addr[i];
			hits += ok;
		}
		if (ok && hits)
			return o;
	}
	return 0;
}

/* sudog.c: the last word of the waiting gs' sudogs that is a pointer in every one of them. */
static uint32_t find_sudog_c(const struct cp_go_runtime *rt, const struct sample *s,
			     uint32_t waiting)
{
	uint32_t best = 0;

	for (uint32_t o = 24; o < 160; o += 8) {
		size_t hits = 0;
		bool ok = true;

		for (size_t i = 0; ok && i < s->n; i++) {
			uint64_t v = go_le64(s->g[i] + waiting), c;

			if (!v)
				continue;
			ok = cp_mem_read(rt->mem, v + o, &c, 8) == 8 && c && !(c & 7) && c != v &&
				c != s->addr[i];
			hits += ok;
		}
		if (ok && hits)
			best = o;
	}
	return best;
}

/* The layout of g learned from the sample. 0, or -ENOTSUP saying which field was not found. */
static int learn_layout(struct cp_go_runtime *rt, const struct sample *s, char *why,
			size_t whylen)
{
	struct go_layout l = { .g_stack_lo = 0, .g_stack_hi = 8, .g_m = 48, .g_sched = 56,
		.g_syscallsp = 112, .g_syscallpc = 120, .gobuf_sp = 0, .gobuf_pc = 8,
		.gobuf_bp = 48, .m_procid = 72 };
	const char *missing = NULL;

	l.g_goid = find_goid(s);
	if (!l.g_goid)
		missing = "goid";
	l.g_atomicstatus = l.g_goid - 8;
	for (size_t i = 0; !missing && i < s->n; i++)
		if ((go_le32(s->g[i] + l.g_atomicstatus) & ~0x1000u) > 9)
			missing = "atomicstatus";
	l.g_waitsince = l.g_goid + 16;
	l.g_waitreason = l.g_goid + 24;
	for (size_t i = 0; !missing && i < s->n; i++)
		if (s->g[i][l.g_waitreason] >= GO_MAX_STRINGS / 4)
			missing = "waitreason";
	l.g_startpc = missing ? 0 : find_startpc(rt, s, l.g_waitreason + 8);
	if (!missing && !l.g_startpc)
		missing = "startpc";
	l.g_gopc = missing ? 0 : find_gopc(rt, s, l.g_startpc);
	if (!missing && !l.g_gopc)
		missing = "gopc";
	if (missing) {
		snprintf(why, whylen, "%s without DWARF: the layout of its goroutines could not be "
			 "learned (no %s found)", rt->version, missing);
		return -ENOTSUP;
	}
	l.g_parentgoid = find_parent(s, l.g_goid, l.g_gopc);
	l.g_lockedm = find_lockedm(rt, s, l.g_waitreason + 1, l.g_gopc);
	l.g_waiting = find_waiting(rt, s, l.g_startpc + 8);
	l.sudog_c = l.g_waiting ? find_sudog_c(rt, s, l.g_waiting) : 0;
	l.g_size = (l.g_waiting > l.g_startpc ? l.g_waiting : l.g_startpc) + 8;
	rt->layout = l;
	return 0;
}

/*
 * The learned layout holds when nine in ten parked goroutines (of the first SAMPLE) unwind
 * whole, to runtime.goexit. 0, or -ENOTSUP saying how many did.
 */
static int check_layout(struct cp_go_runtime *rt, char *why, size_t whylen)
{
	struct cp_goroutine *gs = NULL;
	uint64_t pcs[256];
	size_t n = 0, parked = 0, whole = 0;
	int err = go_goroutines_first(rt, SAMPLE, &gs, &n);

	if (err)
		return err == -ENOMEM ? err : -ENOTSUP;
	for (size_t i = 0; i < n; i++) {
		size_t np;
		const struct go_pc_info *pi;

		if (!gs[i].sp)
			continue;
		parked++;
		np = cp_go_unwind(rt, &gs[i], pcs, 256);
		pi = np ? go_pc_info(rt, pcs[np - 1], false) : NULL;
		whole += pi && pi->valid && !strcmp(pi->name, "runtime.goexit");
	}
	free(gs);
	if (parked && whole * 10 >= parked * 9)
		return 0;
	snprintf(why, whylen, "%s without DWARF: the layout learned from its goroutines does not "
		 "hold (%zu of %zu stacks whole)", rt->version, whole, parked);
	return -ENOTSUP;
}

int go_discover(struct cp_go_runtime *rt, bool have_layout, char *why, size_t whylen)
{
	struct region data = { 0 }, bss = { 0 };
	struct sample s = { 0 };
	uint64_t a;
	int err = -ENOTSUP;

	if (!read_region(rt, &rt->data, &data) || !read_region(rt, &rt->bss, &bss))
		goto out;
	if (cp_go_global(rt, "runtime.gStatusStrings", &a) < 0 &&
	    (a = find_strings(rt, &data, "idle", "runnable")) != 0)
		go_global_add(rt, "runtime.gStatusStrings", a, 0);
	if (cp_go_global(rt, "runtime.waitReasonStrings", &a) < 0 &&
	    (a = find_strings(rt, &data, "", "GC assist marking")) != 0)
		go_global_add(rt, "runtime.waitReasonStrings", a, 0);
	if (cp_go_global(rt, "runtime.allgs", &a) < 0 && (a = find_allgs(rt, &bss)) != 0)
		go_global_add(rt, "runtime.allgs", a, 0);
	if (cp_go_global(rt, "runtime.allgs", &a) < 0) {
		snprintf(why, whylen, "%s without DWARF or .symtab: runtime.allgs not found",
			 rt->version);
		goto out;
	}
	err = have_layout ? 0 : take_sample(rt, a, &s);
	if (err == -EFAULT)
		snprintf(why, whylen, "%s: runtime.allgs unreadable", rt->version);
	if (!err && !have_layout)
		err = learn_layout(rt, &s, why, whylen);
	if (!err && !have_layout)
		err = check_layout(rt, why, whylen);
out:
	free(data.bytes);
	free(bss.bytes);
	free(s.g);
	return err;
}
