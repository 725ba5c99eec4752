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

/* Whether w[from, to) were all found. */
static bool all_found(const struct go_dwarf_want *w, size_t from, size_t to)
{
	for (size_t i = from; i < to; i++)
		if (!w[i].found)
			return false;
	return true;
}

int cp_go_diag_layout_dwarf(struct cp_go_runtime *rt, struct cp_go_diag_layout *out)
{
	struct cp_go_diag_layout l = { 0 };
	/* p.timers: a slice of timers before Go 1.23 (its length is what is read). */
#define W(t, at, f, af, d) { .type = t, .alt_type = at, .field = f, .alt_field = af, .dst = d }
	struct go_dwarf_want w[] = {
		W("runtime.hchan", NULL, "qcount", NULL, &l.chan_qcount),
		W("runtime.hchan", NULL, "dataqsiz", NULL, &l.chan_dataqsiz),
		W("runtime.hchan", NULL, "closed", NULL, &l.chan_closed),
		W("runtime.hchan", NULL, "elemtype", NULL, &l.chan_elemtype),
		W("runtime._type", "internal/abi.Type", "tflag", "TFlag", &l.type_tflag),
		W("runtime._type", "internal/abi.Type", "str", "Str", &l.type_str),
		W("runtime.moduledata", NULL, "types", NULL, &l.module_types),
		W("runtime.pollDesc", NULL, "fd", NULL, &l.pd_fd),
		W("runtime.pollDesc", NULL, "rg", NULL, &l.pd_rg),
		W("runtime.pollDesc", NULL, "wg", NULL, &l.pd_wg),
		W("runtime.pollDesc", NULL, "rd", NULL, &l.pd_rd),
		W("runtime.pollDesc", NULL, "wd", NULL, &l.pd_wd),
		{ .type = "runtime.p", .field = "timers", .dst = &l.p_timers_len, .slice_len = true },
	};
#undef W
	struct go_dwarf_size size[] = { { "runtime.pollDesc", &l.pd_size } };
	Dwarf *dw = rt->has_dwarf ? dwarf_begin_elf(rt->elf, DWARF_C_READ, NULL) : NULL;

	if (!dw)
		return -ENOTSUP;
	go_dwarf_read(dw, w, CP_ARRAY_SIZE(w), size, 1);
	dwarf_end(dw);
	if (l.pd_size > 4096)
		l.pd_size = 0;
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
