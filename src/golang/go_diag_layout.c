/* Where the Go diagnosis finds hchan, type names, pollDesc and timers: per version, else DWARF. */
#include <dwarf.h>
#include <elfutils/libdw.h>
#include <errno.h>
#include <string.h>

#include "go_diag.h"
#include "go_internal.h"
#include "util.h"

/* A version's layout, from the runtime's DWARF of a build of it (test_go_diag compares). */
struct diag_version {
	const char *prefix;	/* "go1.19": go1.19 and go1.19.N */
	struct cp_go_diag_layout layout;
};

static const struct diag_version diag_versions[] = {
	{ "go1.19", { .have_chan = true, .have_type = true, .have_pd = true, .have_timers = true,
		      .chan_qcount = 0, .chan_dataqsiz = 8, .chan_closed = 28,
		      .chan_elemtype = 32, .type_tflag = 20, .type_str = 40, .module_types = 280,
		      .pd_fd = 8, .pd_rg = 24, .pd_wg = 32, .pd_rd = 136, .pd_wd = 224,
		      .pd_size = 240, .p_timers_len = 8848 } },
};

/* A field the layout needs: its struct (or an alternative name), member, destination. */
struct want {
	const char *type, *alt_type, *field, *alt_field;
	uint32_t *dst;
	bool found;
};

static bool is(const char *name, const char *a, const char *b)
{
	return (a && !strcmp(name, a)) || (b && !strcmp(name, b));
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

/* Record the members of struct die (named name) that want asks for. */
static void read_struct(Dwarf_Die *die, const char *name, struct want *w, size_t nw,
			struct cp_go_diag_layout *l)
{
	Dwarf_Die child;

	if (!strcmp(name, "runtime.pollDesc")) {
		int sz = dwarf_bytesize(die);

		l->pd_size = sz > 0 && sz <= 4096 ? (uint32_t)sz : 0;
	}
	if (dwarf_child(die, &child) != 0)
		return;
	do {
		const char *fn = dwarf_diename(&child);

		if (dwarf_tag(&child) != DW_TAG_member || !fn)
			continue;
		for (size_t i = 0; i < nw; i++) {
			if (w[i].found || !is(name, w[i].type, w[i].alt_type) ||
			    !is(fn, w[i].field, w[i].alt_field) || !go_dwarf_member_offset(&child, w[i].dst))
				continue;
			w[i].found = true;
			/* p.timers as a slice of timers (before Go 1.23): its len follows the
			 * pointer; any other shape is a layout we do not know. */
			if (w[i].dst == &l->p_timers_len) {
				const char *t = member_type(&child);

				w[i].found = t && !strncmp(t, "[]", 2);
				l->p_timers_len += 8;
			}
		}
	} while (dwarf_siblingof(&child, &child) == 0);
}

/* Whether w[from, to) were all found. */
static bool all_found(const struct want *w, size_t from, size_t to)
{
	for (size_t i = from; i < to; i++)
		if (!w[i].found)
			return false;
	return true;
}

int cp_go_diag_layout_dwarf(struct cp_go_runtime *rt, struct cp_go_diag_layout *out)
{
	struct cp_go_diag_layout l = { 0 };
	struct want w[] = {
		{ "runtime.hchan", NULL, "qcount", NULL, &l.chan_qcount, false },
		{ "runtime.hchan", NULL, "dataqsiz", NULL, &l.chan_dataqsiz, false },
		{ "runtime.hchan", NULL, "closed", NULL, &l.chan_closed, false },
		{ "runtime.hchan", NULL, "elemtype", NULL, &l.chan_elemtype, false },
		{ "runtime._type", "internal/abi.Type", "tflag", "TFlag", &l.type_tflag, false },
		{ "runtime._type", "internal/abi.Type", "str", "Str", &l.type_str, false },
		{ "runtime.moduledata", NULL, "types", NULL, &l.module_types, false },
		{ "runtime.pollDesc", NULL, "fd", NULL, &l.pd_fd, false },
		{ "runtime.pollDesc", NULL, "rg", NULL, &l.pd_rg, false },
		{ "runtime.pollDesc", NULL, "wg", NULL, &l.pd_wg, false },
		{ "runtime.pollDesc", NULL, "rd", NULL, &l.pd_rd, false },
		{ "runtime.pollDesc", NULL, "wd", NULL, &l.pd_wd, false },
		{ "runtime.p", NULL, "timers", NULL, &l.p_timers_len, false },
	};
	Dwarf *dw = rt->has_dwarf ? dwarf_begin_elf(rt->elf, DWARF_C_READ, NULL) : NULL;
	Dwarf_Off off = 0, next;
	size_t hsize;

	if (!dw)
		return -ENOTSUP;
	while (dwarf_nextcu(dw, off, &next, &hsize, NULL, NULL, NULL) == 0) {
		Dwarf_Die cu, die;

		if (dwarf_offdie(dw, off + hsize, &cu) && dwarf_child(&cu, &die) == 0) {
			do {
				const char *nm = dwarf_diename(&die);

				if (dwarf_tag(&die) == DW_TAG_structure_type && nm &&
				    (!strncmp(nm, "runtime.", 8) ||
				     !strcmp(nm, "internal/abi.Type")))
					read_struct(&die, nm, w, CP_ARRAY_SIZE(w), &l);
			} while (dwarf_siblingof(&die, &die) == 0);
		}
		off = next;
	}
	dwarf_end(dw);
	l.have_chan = all_found(w, 0, 4);
	l.have_type = all_found(w, 4, 7);
	l.have_pd = all_found(w, 7, 12) && l.pd_size && l.pd_fd + 8 <= l.pd_size &&
		    l.pd_rg + 8 <= l.pd_size && l.pd_wg + 8 <= l.pd_size &&
		    l.pd_rd + 8 <= l.pd_size && l.pd_wd + 8 <= l.pd_size;
	l.have_timers = all_found(w, 12, 13);
	if (!l.have_chan && !l.have_type && !l.have_pd && !l.have_timers)
		return -ENOTSUP;
	*out = l;
	return 0;
}

int cp_go_diag_layout(struct cp_go_runtime *rt, struct cp_go_diag_layout *out)
{
	const char *v = cp_go_version(rt);

	for (size_t i = 0; v && i < CP_ARRAY_SIZE(diag_versions); i++) {
		size_t len = strlen(diag_versions[i].prefix);

		if (!strncmp(v, diag_versions[i].prefix, len) &&
		    (v[len] == '.' || v[len] == '\0' || v[len] == ' ')) {
			*out = diag_versions[i].layout;
			return 0;
		}
	}
	return cp_go_diag_layout_dwarf(rt, out);
}
