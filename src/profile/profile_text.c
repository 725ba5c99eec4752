/* The line formats of a profile: a top table like `go tool pprof -top`, and folded stacks. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "profile_internal.h"
#include "util.h"

/* ---- value formatting, as pprof scales them ---- */

/* "%.2f" without a trailing ".00", as pprof prints scaled values. */
static void fmt_scaled(char *buf, size_t size, double v, const char *unit)
{
	char num[64];
	size_t len;

	snprintf(num, sizeof(num), "%.2f", v);
	len = strlen(num);
	if (len > 3 && !strcmp(num + len - 3, ".00"))
		num[len - 3] = '\0';
	if (!strcmp(num, "0") || !strcmp(num, "-0"))
		snprintf(buf, size, "0");
	else
		snprintf(buf, size, "%s%s", num, unit);
}

static void fmt_value(char *buf, size_t size, int64_t v, const char *unit)
{
	double a = v < 0 ? -(double)v : (double)v;

	if (!strcmp(unit, "nanoseconds") || !strcmp(unit, "ns")) {
		if (a >= 1e9)
			fmt_scaled(buf, size, (double)v / 1e9, "s");
		else if (a >= 1e6)
			fmt_scaled(buf, size, (double)v / 1e6, "ms");
		else if (a >= 1e3)
			fmt_scaled(buf, size, (double)v / 1e3, "us");
		else
			fmt_scaled(buf, size, (double)v, "ns");
	} else if (!strcmp(unit, "bytes") || !strcmp(unit, "B")) {
		if (a >= 1024.0 * 1024 * 1024)
			fmt_scaled(buf, size, (double)v / (1024.0 * 1024 * 1024), "GB");
		else if (a >= 1024.0 * 1024)
			fmt_scaled(buf, size, (double)v / (1024.0 * 1024), "MB");
		else if (a >= 1024.0)
			fmt_scaled(buf, size, (double)v / 1024.0, "kB");
		else
			fmt_scaled(buf, size, (double)v, "B");
	} else {
		snprintf(buf, size, "%" PRId64, v);
	}
}

static double pct(int64_t part, int64_t whole)
{
	return whole ? 100.0 * (double)part / (double)whole : 0.0;
}

/* A percentage as pprof prints it: "  100%", "12.34%", "0.071%", "    0%". */
static const char *fmt_pct(char *buf, size_t size, int64_t part, int64_t whole)
{
	double r = pct(part, whole);

	if (r < 0)
		r = -r;
	if (r >= 99.95 && r <= 100.05)
		snprintf(buf, size, "  100%%");
	else if (r >= 1.0)
		snprintf(buf, size, "%5.2f%%", r);
	else
		snprintf(buf, size, "%5.2g%%", r);
	return buf;
}

/* ---- top table ---- */

struct node {
	bool called_inlined;	/* reached through an inlined call */
	bool called_outlined;	/* reached through a real call */
	int64_t flat;
	int64_t cum;
	uint32_t name;
	size_t seen;		/* last sample (+1) that counted toward cum */
};

static int cmp_node(const void *a, const void *b, void *ctx)
{
	const struct node *x = a, *y = b;
	const struct cp_strtab *names = ctx;

	if (x->flat != y->flat)
		return x->flat > y->flat ? -1 : 1;
	if (x->cum != y->cum)
		return x->cum > y->cum ? -1 : 1;
	return strcmp(names->v[x->name], names->v[y->name]);
}

static void write_header(const struct cp_profile *prof, FILE *f, size_t vi, int64_t total)
{
	const char *unit = prof->ntypes ? prof->str.v[prof->types[vi].unit] : "";
	char buf[64];

	/* pprof names the main binary after mapping 1. */
	if (prof->nmappings && *prof->str.v[prof->mappings[0].file]) {
		const char *file = prof->str.v[prof->mappings[0].file];
		const char *slash = strrchr(file, '/');

		fprintf(f, "File: %s\n", slash && slash[1] ? slash + 1 : file);
	}
	if (prof->ntypes)
		fprintf(f, "Type: %s\n", prof->str.v[prof->types[vi].type]);
	if (prof->time_nanos > 0) {
		time_t t = (time_t)(prof->time_nanos / 1000000000);
		struct tm tm;
		char when[64];

		if (localtime_r(&t, &tm) &&
		    strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S %Z", &tm))
			fprintf(f, "Time: %s\n", when);
	}
	if (prof->duration_nanos > 0) {
		fmt_value(buf, sizeof(buf), prof->duration_nanos, "nanoseconds");
		fprintf(f, "Duration: %s", buf);
		if (!strcmp(unit, "nanoseconds")) {
			char tot[64], p[32];

			fmt_value(tot, sizeof(tot), total, unit);
			fmt_pct(p, sizeof(p), total, prof->duration_nanos);
			fprintf(f, ", Total samples = %s (%s)", tot, p + strspn(p, " "));
		}
		fputc('\n', f);
	}
	for (size_t i = 0; i < prof->ncomments; i++)
		fprintf(f, "Comment: %s\n", prof->str.v[prof->comments[i]]);
}

/*
 * How each frame of sample i was called: inlined into its caller (every line of a location
 * but the last) or through a real call. pprof labels a row "(inline)" when all its calls
 * were inlined, "(partial-inline)" when some were.
 */
static int mark_inlined(const struct cp_profile *prof, const struct cp_profile_frames *fr,
			size_t i, const uint32_t *stack, int64_t n, struct node *nodes, uint64_t **locs,
			size_t *locs_alloc)
{
	int64_t nlocs = cp_profile_sample_locations(prof, i, locs, locs_alloc);
	int64_t k = 0;

	if (nlocs < 0)
		return (int)nlocs;
	for (int64_t j = 0; j < nlocs; j++) {
		uint32_t nf = fr->loc_n[(*locs)[j] - 1];

		for (uint32_t m = 0; m < nf && k < n; m++, k++) {
			/* The outermost frame has no caller in this stack. */
			if (k == n - 1)
				break;
			if (m + 1 < nf)
				nodes[stack[k]].called_inlined = true;
			else
				nodes[stack[k]].called_outlined = true;
		}
	}
	return 0;
}

int cp_profile_write_text(const struct cp_profile *prof, FILE *f, size_t top)
{
	struct cp_profile_frames fr;
	struct node *nodes = NULL;
	uint32_t *stack = NULL;
	uint64_t *locs = NULL;
	size_t stack_alloc = 0, nnodes = 0, vi = cp_profile_default_index(prof), shown;
	size_t locs_alloc = 0;
	int64_t total = 0, shown_flat = 0, sum = 0;
	bool sat = false;
	const char *unit;
	char a[64], b[64], p1[32], p2[32], p3[32];
	int err;

	err = cp_profile_frames_build(prof, &fr);
	if (err < 0)
		return err;
	nodes = calloc(fr.names.n, sizeof(*nodes));
	if (!nodes) {
		err = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < prof->nsamples && prof->ntypes; i++) {
		int64_t v = prof->values[i * prof->ntypes + vi];
		int64_t n = cp_profile_sample_frames(prof, &fr, i, &stack, &stack_alloc);

		if (n < 0) {
			err = (int)n;
			goto out;
		}
		total = cp_add_sat(total, v, &sat);
		nodes[stack[0]].flat = cp_add_sat(nodes[stack[0]].flat, v, &sat);
		err = mark_inlined(prof, &fr, i, stack, n, nodes, &locs, &locs_alloc);
		if (err < 0)
			goto out;
		/* cum counts a sample once per function, however often it recurses. */
		for (int64_t j = 0; j < n; j++) {
			struct node *nd = &nodes[stack[j]];

			if (nd->seen != i + 1) {
				nd->seen = i + 1;
				nd->cum = cp_add_sat(nd->cum, v, &sat);
			}
		}
	}
	/* Compact the nodes that have a value, remembering their names. */
	for (size_t i = 0; i < fr.names.n; i++) {
		if (!nodes[i].flat && !nodes[i].cum)
			continue;
		nodes[nnodes] = nodes[i];
		nodes[nnodes++].name = (uint32_t)i;
	}
	qsort_r(nodes, nnodes, sizeof(*nodes), cmp_node, &fr.names);
	shown = top && top < nnodes ? top : nnodes;
	for (size_t i = 0; i < shown; i++)
		shown_flat = cp_add_sat(shown_flat, nodes[i].flat, &sat);

	unit = prof->ntypes ? prof->str.v[prof->types[vi].unit] : "";
	write_header(prof, f, vi, total);
	fmt_value(a, sizeof(a), shown_flat, unit);
	fmt_value(b, sizeof(b), total, unit);
	fprintf(f, "Showing nodes accounting for %s, %s of %s total\n", a,
		fmt_pct(p1, sizeof(p1), shown_flat, total) + strspn(p1, " "), b);
	if (shown < nnodes)
		fprintf(f, "Showing top %zu nodes out of %zu\n", shown, nnodes);
	fprintf(f, "%10s %5s%% %5s%% %10s %5s%%\n", "flat", "flat", "sum", "cum", "cum");
	for (size_t i = 0; i < shown; i++) {
		const struct node *nd = &nodes[i];

		sum = cp_add_sat(sum, nd->flat, &sat);
		fmt_value(a, sizeof(a), nd->flat, unit);
		fmt_value(b, sizeof(b), nd->cum, unit);
		fprintf(f, "%10s %s %s %10s %s  %s%s\n", a,
			fmt_pct(p1, sizeof(p1), nd->flat, total),
			fmt_pct(p2, sizeof(p2), sum, total), b,
			fmt_pct(p3, sizeof(p3), nd->cum, total), fr.names.v[nd->name],
			!nd->called_inlined ? "" :
			nd->called_outlined ? " (partial-inline)" : " (inline)");
	}
	err = ferror(f) ? -EIO : sat;
out:
	free(stack);
	free(locs);
	free(nodes);
	cp_profile_frames_release(&fr);
	return err;
}

/* ---- folded stacks ---- */

struct folded_line {
	const char *text;
	int64_t count;
};

static int cmp_folded(const void *a, const void *b)
{
	return strcmp(((const struct folded_line *)a)->text, ((const struct folded_line *)b)->text);
}

/*
 * A folded line longer than the string table keeps (CP_STRTAB_UTF8_MAX) ends, at a frame
 * boundary, in ";[truncated]": never cut silently (the table would cut it anywhere).
 */
static void fold_cut(struct cp_strbuf *sb)
{
	static const char mark[] = ";[truncated]";
	size_t keep;

	if (sb->len <= CP_STRTAB_UTF8_MAX)
		return;
	keep = CP_STRTAB_UTF8_MAX - (sizeof(mark) - 1);
	while (keep > 0 && sb->buf[keep] != ';')
		keep--;
	memcpy(sb->buf + keep, keep ? mark : mark + 1, sizeof(mark) - (keep ? 0 : 1));
	sb->len = keep + strlen(sb->buf + keep);
}

int cp_profile_write_folded(const struct cp_profile *prof, FILE *f)
{
	struct cp_profile_frames fr;
	struct cp_strtab lines;
	struct cp_strbuf sb = CP_STRBUF_INIT;
	struct folded_line *out = NULL;
	int64_t *counts = NULL;
	size_t counts_alloc = 0, ncounts = 0, nout = 0, vi = cp_profile_count_index(prof);
	uint32_t *stack = NULL;
	size_t stack_alloc = 0;
	bool sat = false;
	int err;

	err = cp_profile_frames_build(prof, &fr);
	if (err < 0)
		return err;
	err = cp_strtab_init(&lines, CP_STRTAB_UTF8);
	if (err < 0) {
		cp_profile_frames_release(&fr);
		return err;
	}
	for (size_t i = 0; i < prof->nsamples && prof->ntypes; i++) {
		int64_t v = prof->values[i * prof->ntypes + vi];
		int64_t n = cp_profile_sample_frames(prof, &fr, i, &stack, &stack_alloc);
		int64_t idx;

		if (n < 0) {
			err = (int)n;
			goto out;
		}
		/* Root first: the stack is innermost first. */
		sb.len = 0;
		for (int64_t j = n - 1; j >= 0; j--) {
			cp_strbuf_adds(&sb, fr.names.v[stack[j]]);
			if (j)
				cp_strbuf_addc(&sb, ';');
		}
		if (sb.err) {
			err = sb.err;
			goto out;
		}
		/* Lines longer than the string cap are cut visibly, and merge with lines cut so. */
		fold_cut(&sb);
		idx = cp_strtab_intern(&lines, sb.buf);
		if (idx < 0) {
			err = (int)idx;
			goto out;
		}
		if (cp_grow((void **)&counts, &counts_alloc, (size_t)idx + 1,
			    sizeof(*counts)) < 0) {
			err = -ENOMEM;
			goto out;
		}
		/* New lines start at zero (cp_grow leaves memory uninitialized). */
		while (ncounts < lines.n)
			counts[ncounts++] = 0;
		counts[idx] = cp_add_sat(counts[idx], v, &sat);
	}
	out = calloc(lines.n ? lines.n : 1, sizeof(*out));
	if (!out) {
		err = -ENOMEM;
		goto out;
	}
	for (size_t i = 1; i < lines.n; i++) {
		if (counts[i] <= 0)
			continue;
		out[nout].text = lines.v[i];
		out[nout++].count = counts[i];
	}
	qsort(out, nout, sizeof(*out), cmp_folded);
	for (size_t i = 0; i < nout; i++)
		fprintf(f, "%s %" PRId64 "\n", out[i].text, out[i].count);
	err = ferror(f) ? -EIO : sat;
out:
	free(out);
	free(counts);
	cp_strbuf_release(&sb);
	free(stack);
	cp_strtab_release(&lines);
	cp_profile_frames_release(&fr);
	return err;
}
