/* The profile as a self-contained interactive SVG flame graph (no external resources). */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "profile_internal.h"

#define SVG_WIDTH 1200
#define SVG_PAD 10
#define FRAME_H 16
#define HEADER_H 40
#define FOOTER_H 30
/* Frames narrower than this many pixels are not drawn (nor their callees): unreadable. */
#define MIN_WIDTH 0.1
/* Approximate advance of a 12px monospace character. */
#define CHAR_W 7.2

/* A node of the call tree: one (caller path, frame name) pair. */
struct fnode {
	uint32_t parent;	/* index + 1; 0 for the root */
	uint32_t name;		/* in frames.names; the root has 0 */
	uint32_t depth;
	int64_t value;
};

struct tree {
	struct fnode *v;
	size_t n, alloc;
	struct cp_htab h;
};

struct nodekey {
	uint32_t parent;
	uint32_t name;
};

static uint32_t node_hash(uint32_t parent, uint32_t name)
{
	return (uint32_t)cp_hash_mix(cp_hash_mix(5, parent), name);
}

static bool node_eq(const void *ctx, uint32_t idx, const void *key)
{
	const struct fnode *nd = &((const struct tree *)ctx)->v[idx];
	const struct nodekey *k = key;

	return nd->parent == k->parent && nd->name == k->name;
}

/* The child name of node parent (index + 1), created when new. >= 0 index or -errno. */
static int64_t tree_child(struct tree *t, uint32_t parent, uint32_t name)
{
	struct nodekey k = { parent, name };
	uint32_t hash = node_hash(parent, name);
	int64_t idx = cp_htab_find(&t->h, hash, node_eq, t, &k);

	if (idx >= 0)
		return idx;
	if (t->n >= CP_PROFILE_MAX_ENTRIES)
		return -E2BIG;
	if (cp_grow((void **)&t->v, &t->alloc, t->n + 1, sizeof(*t->v)) < 0)
		return -ENOMEM;
	if (cp_htab_insert(&t->h, hash, (uint32_t)t->n) < 0)
		return -ENOMEM;
	t->v[t->n] = (struct fnode){ parent, name, parent ? t->v[parent - 1].depth + 1 : 0, 0 };
	return (int64_t)t->n++;
}

/* Children sorted by (parent, name) so that each node's callees are adjacent, by name. */
static int cmp_children(const void *a, const void *b, void *ctx)
{
	const struct tree *t = ((const void **)ctx)[0];
	const struct cp_strtab *names = ((const void **)ctx)[1];
	const struct fnode *x = &t->v[*(const uint32_t *)a], *y = &t->v[*(const uint32_t *)b];

	if (x->parent != y->parent)
		return x->parent < y->parent ? -1 : 1;
	return strcmp(names->v[x->name], names->v[y->name]);
}

/* Write at most max characters of s, escaped for XML text and attributes. */
static void xml_escape(FILE *f, const char *s, size_t max)
{
	const unsigned char *p = (const unsigned char *)s;

	for (size_t chars = 0; *p && chars < max; chars++) {
		size_t n;

		switch (*p) {
		case '&':
			fputs("&amp;", f);
			p++;
			continue;
		case '<':
			fputs("&lt;", f);
			p++;
			continue;
		case '>':
			fputs("&gt;", f);
			p++;
			continue;
		case '"':
			fputs("&quot;", f);
			p++;
			continue;
		case '\'':
			fputs("&apos;", f);
			p++;
			continue;
		default:
			break;
		}
		n = cp_utf8_len(p);
		if (n == 0 || *p < 0x20) {
			fputc('?', f);
			p++;
			continue;
		}
		fwrite(p, 1, n, f);
		p += n;
	}
}

static size_t utf8_chars(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			n++;
	return n;
}

/* The label drawn in a frame w pixels wide; the script redoes this when zooming. */
static void write_label(FILE *f, const char *name, double w)
{
	long max = (long)((w - 6) / CHAR_W);
	size_t len = utf8_chars(name);

	if (max < 3)
		return;
	if (len <= (size_t)max) {
		xml_escape(f, name, len);
		return;
	}
	xml_escape(f, name, (size_t)max - 2);
	fputs("..", f);
}

/* A warm colour derived from the name, so that a function keeps its colour across graphs. */
static void frame_color(const char *name, char *buf, size_t size)
{
	uint32_t h = cp_hash_bytes(name, strlen(name), 7);

	if (name[0] == '[')
		snprintf(buf, size, "rgb(%u,%u,%u)", 160 + h % 30, 160 + h % 30, 170 + h % 30);
	else
		snprintf(buf, size, "rgb(%u,%u,%u)", 205 + h % 50, (h >> 8) % 230, (h >> 16) % 55);
}

static const char svg_script[] =
	"var frames = [], details, matchedEl, resetBtn, searchBtn, total = 0, zoomed = null;\n"
	"var W = %d, PAD = %d, FW = W - 2 * PAD, CHAR_W = %.1f, searchRe = null, UNIT = '%s';\n"
	"function nameOf(g) {\n"
	"  var t = g.getElementsByTagName('title')[0].textContent, i = t.lastIndexOf(' (');\n"
	"  return i < 0 ? t : t.substring(0, i);\n"
	"}\n"
	"function pct(n, d) { return d ? (100 * n / d).toFixed(2) : '0.00'; }\n"
	"function show(g) {\n"
	"  var s = g.cpName + ' (' + g.cpN + ' ' + UNIT + ', ' + pct(g.cpN, total) + '%%';\n"
	"  if (zoomed && zoomed !== g) s += ', ' + pct(g.cpN, zoomed.cpN) + '%% of zoomed';\n"
	"  details.textContent = s + ')';\n"
	"}\n"
	"function fit(g, w) {\n"
	"  var max = Math.floor((w - 6) / CHAR_W), s = g.cpName;\n"
	"  if (max < 3) s = ''; else if (s.length > max) s = s.substring(0, max - 2) + '..';\n"
	"  g.getElementsByTagName('text')[0].textContent = s;\n"
	"}\n"
	"function place(g, s0, n0) {\n"
	"  var r = g.getElementsByTagName('rect')[0], t = g.getElementsByTagName('text')[0];\n"
	"  var x = PAD + (g.cpS - s0) / n0 * FW, w = g.cpN / n0 * FW;\n"
	"  if (x < PAD) { w -= PAD - x; x = PAD; }\n"
	"  if (x + w > PAD + FW) w = PAD + FW - x;\n"
	"  if (w < 0) w = 0;\n"
	"  r.setAttribute('x', x.toFixed(2)); r.setAttribute('width', w.toFixed(2));\n"
	"  t.setAttribute('x', (x + 3).toFixed(2));\n"
	"  fit(g, w);\n"
	"}\n"
	"function zoom(g) {\n"
	"  zoomed = g;\n"
	"  resetBtn.setAttribute('visibility', 'visible');\n"
	"  frames.forEach(function (f) {\n"
	"    var inside = f.cpD >= g.cpD && f.cpS >= g.cpS && f.cpS + f.cpN <= g.cpS + g.cpN;\n"
	"    var above = f.cpD < g.cpD && f.cpS <= g.cpS && f.cpS + f.cpN >= g.cpS + g.cpN;\n"
	"    if (inside || above) {\n"
	"      f.style.display = '';\n"
	"      f.setAttribute('opacity', above ? '0.5' : '1');\n"
	"      place(f, g.cpS, g.cpN);\n"
	"    } else {\n"
	"      f.style.display = 'none';\n"
	"    }\n"
	"  });\n"
	"}\n"
	"function unzoom() {\n"
	"  zoomed = null;\n"
	"  resetBtn.setAttribute('visibility', 'hidden');\n"
	"  frames.forEach(function (f) {\n"
	"    f.style.display = ''; f.setAttribute('opacity', '1'); place(f, 0, total);\n"
	"  });\n"
	"}\n"
	"function clearSearch() {\n"
	"  searchRe = null;\n"
	"  frames.forEach(function (f) {\n"
	"    if (f.cpFill) { f.getElementsByTagName('rect')[0].setAttribute('fill', f.cpFill);"
	" f.cpFill = null; }\n"
	"  });\n"
	"  matchedEl.textContent = ' ';\n"
	"  searchBtn.textContent = 'Search';\n"
	"}\n"
	"function highlight(re) {\n"
	"  var spans = [], covered = 0, end = -1;\n"
	"  clearSearch();\n"
	"  searchRe = re;\n"
	"  frames.forEach(function (f) {\n"
	"    if (f.cpD === 0 || !re.test(f.cpName)) return;\n"
	"    var r = f.getElementsByTagName('rect')[0];\n"
	"    f.cpFill = r.getAttribute('fill');\n"
	"    r.setAttribute('fill', 'rgb(230,0,230)');\n"
	"    spans.push([f.cpS, f.cpS + f.cpN]);\n"
	"  });\n"
	"  /* A match inside another match is not counted twice. */\n"
	"  spans.sort(function (a, b) { return a[0] - b[0]; });\n"
	"  spans.forEach(function (s) {\n"
	"    if (s[0] >= end) { covered += s[1] - s[0]; end = s[1]; }\n"
	"    else if (s[1] > end) { covered += s[1] - end; end = s[1]; }\n"
	"  });\n"
	"  matchedEl.textContent = 'Matched: ' + pct(covered, total) + '%%';\n"
	"  searchBtn.textContent = 'Clear search';\n"
	"}\n"
	"function search() {\n"
	"  if (searchRe) { clearSearch(); return; }\n"
	"  var term = window.prompt('Search frames (regular expression):', '');\n"
	"  if (!term) return;\n"
	"  try { highlight(new RegExp(term)); }\n"
	"  catch (e) { window.alert('Invalid regular expression: ' + e.message); }\n"
	"}\n"
	"function init() {\n"
	"  var all = document.getElementsByTagName('g');\n"
	"  details = document.getElementById('details');\n"
	"  matchedEl = document.getElementById('matched');\n"
	"  resetBtn = document.getElementById('reset');\n"
	"  searchBtn = document.getElementById('search');\n"
	"  total = +document.getElementById('frames').getAttribute('data-total');\n"
	"  for (var i = 0; i < all.length; i++) {\n"
	"    var g = all[i];\n"
	"    if (g.getAttribute('class') !== 'f') continue;\n"
	"    g.cpName = nameOf(g);\n"
	"    g.cpS = +g.getAttribute('data-s');\n"
	"    g.cpN = +g.getAttribute('data-n');\n"
	"    g.cpD = +g.getAttribute('data-d');\n"
	"    g.addEventListener('mouseover', show.bind(null, g));\n"
	"    g.addEventListener('mouseout', function () { details.textContent = ' '; });\n"
	"    g.addEventListener('click', zoom.bind(null, g));\n"
	"    frames.push(g);\n"
	"  }\n"
	"  resetBtn.addEventListener('click', unzoom);\n"
	"  searchBtn.addEventListener('click', search);\n"
	"  document.addEventListener('keydown', function (e) {\n"
	"    if ((e.ctrlKey || e.metaKey) && e.key === 'f') { e.preventDefault(); search(); }\n"
	"    else if (e.key === 'Escape') { unzoom(); clearSearch(); }\n"
	"  });\n"
	"}\n"
	"window.addEventListener('load', init);\n";

struct drawn {
	uint32_t node;
	int64_t start;		/* in samples, from the left edge */
};

/*
 * What a frame's value counts, in one word: the unit (nanoseconds, bytes), or for a count the
 * sample type (samples, contentions). Letters, digits and '_' only: it goes into the script.
 */
static void unit_word(const struct cp_profile *prof, char *buf, size_t size)
{
	const char *w = "samples";
	size_t i;

	if (prof->ntypes) {
		const struct cp_pvaluetype *vt = &prof->types[cp_profile_count_index(prof)];

		w = strcmp(prof->str.v[vt->unit], "count") && *prof->str.v[vt->unit] ?
			    prof->str.v[vt->unit] : prof->str.v[vt->type];
	}
	for (i = 0; w[i] && i + 1 < size; i++)
		buf[i] = isalnum((unsigned char)w[i]) ? w[i] : '_';
	buf[i] = '\0';
	if (!i)
		snprintf(buf, size, "samples");
}

static void write_svg(const struct cp_profile *prof, const struct cp_strtab *names,
		      const struct tree *t, const struct drawn *d, size_t nd, uint32_t maxdepth,
		      int64_t total, FILE *f)
{
	int height = HEADER_H + (int)(maxdepth + 1) * FRAME_H + FOOTER_H;
	double scale = total ? (double)(SVG_WIDTH - 2 * SVG_PAD) / (double)total : 0;
	const char *type = "samples";
	char unit[32];

	if (prof->ntypes)
		type = prof->str.v[prof->types[cp_profile_count_index(prof)].type];

	fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\n"
		   "<svg version=\"1.1\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
		   "height=\"%d\" viewBox=\"0 0 %d %d\">\n",
		SVG_WIDTH, height, SVG_WIDTH, height);
	fputs("<style type=\"text/css\">\n"
	      "text { font-family: monospace; font-size: 12px; fill: #000; }\n"
	      "g.f { cursor: pointer; }\n"
	      "g.f:hover rect { stroke: #000; stroke-width: 0.5; }\n"
	      "#title { font-size: 17px; }\n"
	      ".btn { cursor: pointer; fill: #333; text-decoration: underline; }\n"
	      "</style>\n",
	      f);
	fputs("<script type=\"text/ecmascript\"><![CDATA[\n", f);
	unit_word(prof, unit, sizeof(unit));
	fprintf(f, svg_script, SVG_WIDTH, SVG_PAD, CHAR_W, unit);
	fputs("]]></script>\n", f);
	fprintf(f, "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"#f6f6ee\"/>\n",
		SVG_WIDTH, height);
	fprintf(f, "<text id=\"title\" x=\"%d\" y=\"24\" text-anchor=\"middle\">Flame graph (",
		SVG_WIDTH / 2);
	xml_escape(f, type, 64);
	fprintf(f, ": %" PRId64 ")</text>\n", total);
	fprintf(f, "<text id=\"reset\" class=\"btn\" x=\"%d\" y=\"24\" visibility=\"hidden\">"
		   "Reset Zoom</text>\n",
		SVG_PAD);
	fprintf(f, "<text id=\"search\" class=\"btn\" x=\"%d\" y=\"24\" text-anchor=\"end\">"
		   "Search</text>\n",
		SVG_WIDTH - SVG_PAD);
	fprintf(f, "<text id=\"details\" x=\"%d\" y=\"%d\"> </text>\n", SVG_PAD, height - 10);
	fprintf(f, "<text id=\"matched\" x=\"%d\" y=\"%d\" text-anchor=\"end\"> </text>\n",
		SVG_WIDTH - SVG_PAD, height - 10);
	fprintf(f, "<g id=\"frames\" data-total=\"%" PRId64 "\">\n", total);
	for (size_t i = 0; i < nd; i++) {
		const struct fnode *node = &t->v[d[i].node];
		const char *name = node->parent ? names->v[node->name] : "all";
		double x = SVG_PAD + (double)d[i].start * scale;
		double w = (double)node->value * scale;
		/* Flame graphs grow upwards: the root at the bottom. */
		int y = height - FOOTER_H - (int)(node->depth + 1) * FRAME_H;
		char color[32];

		frame_color(name, color, sizeof(color));
		fprintf(f, "<g class=\"f\" data-s=\"%" PRId64 "\" data-n=\"%" PRId64 "\" "
			   "data-d=\"%u\"><title>",
			d[i].start, node->value, node->depth);
		xml_escape(f, name, SIZE_MAX);
		fprintf(f, " (%" PRId64 " %s, %.2f%%)</title>", node->value, unit,
			total ? 100.0 * (double)node->value / (double)total : 0.0);
		fprintf(f, "<rect x=\"%.2f\" y=\"%d\" width=\"%.2f\" height=\"%d\" fill=\"%s\" "
			   "rx=\"2\"/>",
			x, y, w, FRAME_H - 1, color);
		fprintf(f, "<text x=\"%.2f\" y=\"%d\">", x + 3, y + FRAME_H - 4);
		write_label(f, name, w);
		fputs("</text></g>\n", f);
	}
	fputs("</g>\n</svg>\n", f);
}

int cp_profile_write_svg(const struct cp_profile *prof, FILE *f)
{
	struct cp_profile_frames fr;
	struct tree t;
	uint32_t *stack = NULL, *order = NULL, *first = NULL;
	size_t stack_alloc = 0, vi = cp_profile_count_index(prof), nd = 0, sp = 0;
	struct drawn *d = NULL, *todo = NULL;
	uint32_t maxdepth = 0;
	int64_t total;
	double scale;
	int err;
	bool sat = false;

	memset(&t, 0, sizeof(t));
	err = cp_profile_frames_build(prof, &fr);
	if (err < 0)
		return err;
	/* Node 0 is the root, "all". */
	if (tree_child(&t, 0, 0) < 0) {
		err = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < prof->nsamples && prof->ntypes; i++) {
		int64_t v = prof->values[i * prof->ntypes + vi];
		int64_t n = cp_profile_sample_frames(prof, &fr, i, &stack, &stack_alloc);
		uint32_t node = 0;

		if (n < 0) {
			err = (int)n;
			goto out;
		}
		if (v <= 0)
			continue;
		t.v[0].value = cp_add_sat(t.v[0].value, v, &sat);
		for (int64_t j = n - 1; j >= 0; j--) {
			int64_t c = tree_child(&t, node + 1, stack[j]);

			if (c < 0) {
				err = (int)c;
				goto out;
			}
			node = (uint32_t)c;
			t.v[node].value = cp_add_sat(t.v[node].value, v, &sat);
		}
	}
	total = t.v[0].value;
	scale = total ? (double)(SVG_WIDTH - 2 * SVG_PAD) / (double)total : 0;

	/* Children of each node adjacent and by name; first[i] is where node i's start. */
	order = calloc(t.n, sizeof(*order));
	first = calloc(t.n + 1, sizeof(*first));
	d = calloc(t.n, sizeof(*d));
	todo = calloc(t.n, sizeof(*todo));
	if (!order || !first || !d || !todo) {
		err = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < t.n; i++)
		order[i] = (uint32_t)i;
	{
		const void *ctx[2] = { &t, &fr.names };

		qsort_r(order + 1, t.n - 1, sizeof(*order), cmp_children, ctx);
	}
	/* first[p] = position in order of the first child of node p (parent index p + 1). */
	for (size_t i = t.n; i-- > 1;)
		first[t.v[order[i]].parent - 1] = (uint32_t)i;

	/* Depth-first with an explicit stack: call stacks can be thousands of frames deep. */
	todo[sp++] = (struct drawn){ 0, 0 };
	while (sp) {
		struct drawn cur = todo[--sp];
		const struct fnode *node = &t.v[cur.node];
		int64_t x = cur.start;
		size_t kids = 0;

		if (total && (double)node->value * scale < MIN_WIDTH)
			continue;
		d[nd++] = cur;
		if (node->depth > maxdepth)
			maxdepth = node->depth;
		if (!first[cur.node])
			continue;
		while (first[cur.node] + kids < t.n &&
		       t.v[order[first[cur.node] + kids]].parent == cur.node + 1)
			kids++;
		/* Pushed in reverse so that they are drawn left to right. */
		for (size_t i = first[cur.node]; i < first[cur.node] + kids; i++) {
			todo[sp + (first[cur.node] + kids - 1 - i)] = (struct drawn){ order[i], x };
			x += t.v[order[i]].value;
		}
		sp += kids;
	}
	write_svg(prof, &fr.names, &t, d, nd, maxdepth, total, f);
	err = ferror(f) ? -EIO : sat;
out:
	free(stack);
	free(order);
	free(first);
	free(d);
	free(todo);
	free(t.v);
	cp_htab_release(&t.h);
	cp_profile_frames_release(&fr);
	return err;
}
