/*
 * Unit tests for the profile model: aggregation, ids, the pprof writer and reader (round trip,
 * corrupt input), folded, text and SVG output. With --write DIR, also writes the hand-built
 * profile as DIR/ours.{pb.gz,folded,txt,svg} for tests/integration/test_report.py.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "maps.h"
#include "profile.h"
#include "profile.pb-c.h"
#include "profile_internal.h"

#define PERIOD 10101010 /* 99 Hz */

/* Addresses in the two mappings of the hand-built profile. */
#define MAIN_START 0x555555554000ull
#define MAIN_END 0x555555558000ull
#define MAIN_OFF 0x1000ull
#define LIB_START 0x7ffff7dd0000ull
#define LIB_END 0x7ffff7f50000ull
#define LIB_OFF 0x26000ull

struct built {
	struct cp_profile *prof;
	uint64_t main_id, lib_id, loc_main, loc_compute, loc_memcpy, loc_unsym, loc_kernel;
	uint64_t loc_trunc, loc_unknown;
	uint64_t total;
};

static char self_path[4096];

static char *render(const struct cp_profile *prof, enum cp_profile_format format, size_t top,
		    size_t *len);

/*
 * main -> compute (with helper inlined into it) -> memcpy in the library; a stack cut short
 * in the library; a kernel frame; an empty stack. Many samples, few distinct stacks.
 */
static void build(struct built *b)
{
	struct cp_map main_map = { MAIN_START, MAIN_END, MAIN_OFF, 1, 8, 1, "r-xp", self_path,
				   false };
	struct cp_map lib_map = { LIB_START, LIB_END, LIB_OFF, 2, 8, 1, "r-xp",
				  (char *)"/usr/lib/x86_64-linux-gnu/libc.so.6", false };
	struct cp_profile_line main_line = { "main", NULL, "src/app.c", 40, 30 };
	/* Innermost first: helper was inlined into compute at app.c:22. */
	struct cp_profile_line compute_lines[2] = {
		{ "helper", "_Z6helperv", "src/app.c", 12, 10 },
		{ "compute", NULL, "src/app.c", 22, 20 },
	};
	struct cp_profile_line memcpy_line = { "__memcpy_avx_unaligned", NULL, NULL, 0, 0 };
	struct cp_profile_line kernel_line = { "do_syscall_64", NULL, NULL, 0, 0 };
	struct cp_profile_meta meta = { 1700000000000000000ull, 2000000000ull, PERIOD, 7,
					"test profile", NULL };
	uint64_t id, stack[8];
	int err;

	memset(b, 0, sizeof(*b));
	b->prof = cp_profile_new();
	CHECK(b->prof, "cp_profile_new");
	if (!b->prof)
		exit(1);
	err = cp_profile_add_mapping(b->prof, 100, &main_map, "0123abcd", true, true, &b->main_id);
	CHECK(err == 0 && b->main_id == 1, "main mapping: err %d id %lu", err,
	      (unsigned long)b->main_id);
	err = cp_profile_add_mapping(b->prof, 100, &lib_map, NULL, true, false, &b->lib_id);
	CHECK(err == 0 && b->lib_id == 2, "lib mapping: err %d id %lu", err,
	      (unsigned long)b->lib_id);
	err = cp_profile_add_mapping(b->prof, 100, &main_map, "0123abcd", true, true, &id);
	CHECK(err == 0 && id == b->main_id, "same mapping twice: %lu", (unsigned long)id);

	CHECK(cp_profile_find_location(b->prof, 100, MAIN_START + 0x10) == 0, "found before add");
	err = cp_profile_add_location(b->prof, 100, MAIN_START + 0x10, b->main_id, &main_line, 1,
				      &b->loc_main);
	CHECK(err == 0 && b->loc_main, "main location %d", err);
	CHECK(cp_profile_find_location(b->prof, 100, MAIN_START + 0x10) == b->loc_main,
	      "find after add");
	CHECK(cp_profile_find_location(b->prof, 101, MAIN_START + 0x10) == 0,
	      "location of another pid found");
	err = cp_profile_add_location(b->prof, 100, MAIN_START + 0x200, b->main_id, compute_lines,
				      2, &b->loc_compute);
	CHECK(err == 0, "compute location %d", err);
	err = cp_profile_add_location(b->prof, 100, LIB_START + 0x300, b->lib_id, &memcpy_line, 1,
				      &b->loc_memcpy);
	CHECK(err == 0, "memcpy location %d", err);
	err = cp_profile_add_location(b->prof, 100, LIB_START + 0x4567, b->lib_id, NULL, 0,
				      &b->loc_unsym);
	CHECK(err == 0, "unsymbolized location %d", err);
	{
		/* A line without a function is named after module+offset. */
		struct cp_profile_line anon = { NULL, NULL, "src/anon.c", 7, 0 };
		uint64_t anon_id;
		char *folded;
		struct cp_profile *p2 = cp_profile_new();
		uint64_t m2;

		CHECK(cp_profile_add_mapping(p2, 100, &lib_map, NULL, true, true, &m2) == 0, "m2");
		err = cp_profile_add_location(p2, 100, LIB_START + 0x10, m2, &anon, 1, &anon_id);
		CHECK(err == 0, "anonymous line %d", err);
		CHECK(cp_profile_add_sample(p2, &anon_id, 1, 100, 100, "t", 2) == 0, "anon sample");
		folded = render(p2, CP_PROFILE_FOLDED, 0, NULL);
		CHECK(!strcmp(folded, "libc.so.6+0x26010 2\n"), "anonymous line: %s", folded);
		free(folded);
		cp_profile_free(p2);
	}
	err = cp_profile_kernel_mapping(b->prof, &id);
	CHECK(err == 0 && id == 3, "kernel mapping %d id %lu", err, (unsigned long)id);
	err = cp_profile_add_location(b->prof, 0, 0xffffffff81000123ull, id, &kernel_line, 1,
				      &b->loc_kernel);
	CHECK(err == 0, "kernel location %d", err);
	err = cp_profile_special_location(b->prof, "[truncated]", &b->loc_trunc);
	CHECK(err == 0, "truncated %d", err);
	err = cp_profile_special_location(b->prof, "[unknown]", &b->loc_unknown);
	CHECK(err == 0, "unknown %d", err);
	err = cp_profile_special_location(b->prof, "[truncated]", &id);
	CHECK(err == 0 && id == b->loc_trunc, "special location not deduplicated");
	id = 0;
	err = cp_profile_add_location(b->prof, 100, MAIN_START + 0x10, b->main_id, &main_line, 1,
				      &id);
	CHECK(err == 0 && id == b->loc_main, "location added twice");

	/* Stack A, thread worker: 1000 single samples. */
	stack[0] = b->loc_compute;
	stack[1] = b->loc_main;
	for (int i = 0; i < 1000; i++)
		CHECK(cp_profile_add_sample(b->prof, stack, 2, 100, 101, "worker", 1) == 0, "A");
	/* Same stack, another thread: a separate sample (labels differ). */
	CHECK(cp_profile_add_sample(b->prof, stack, 2, 100, 102, "other", 40) == 0, "A'");
	/* Stack B: main -> compute -> memcpy. */
	stack[0] = b->loc_memcpy;
	stack[1] = b->loc_compute;
	stack[2] = b->loc_main;
	for (int i = 0; i < 300; i++)
		CHECK(cp_profile_add_sample(b->prof, stack, 3, 100, 101, "worker", 1) == 0, "B");
	/* Stack C: cut short in the library. */
	stack[0] = b->loc_unsym;
	stack[1] = b->loc_trunc;
	CHECK(cp_profile_add_sample(b->prof, stack, 2, 100, 101, "worker", 50) == 0, "C");
	/* Stack D: a system call from main. */
	stack[0] = b->loc_kernel;
	stack[1] = b->loc_main;
	CHECK(cp_profile_add_sample(b->prof, stack, 2, 100, 102, "other", 20) == 0, "D");
	/* Stack E: nothing could be unwound. */
	stack[0] = b->loc_unknown;
	CHECK(cp_profile_add_sample(b->prof, stack, 1, 100, 102, "other", 5) == 0, "E");
	b->total = 1000 + 40 + 300 + 50 + 20 + 5;

	/* A location id that does not exist is refused. */
	stack[0] = 999;
	CHECK(cp_profile_add_sample(b->prof, stack, 1, 100, 102, "other", 1) == -EINVAL,
	      "bad location id accepted");
	cp_profile_set_meta(b->prof, &meta);
}

/* Write prof in format into a malloc'd buffer. */
static char *render(const struct cp_profile *prof, enum cp_profile_format format, size_t top,
		    size_t *len)
{
	char *buf = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&buf, &n);
	int err;

	if (!f)
		exit(1);
	err = cp_profile_write(prof, format, f, top);
	fclose(f);
	CHECK(err == 0, "write format %d: %d", (int)format, err);
	if (len)
		*len = n;
	return buf;
}

static const char expected_folded[] =
	"[truncated];libc.so.6+0x2a567 50\n"
	"[unknown] 5\n"
	"main;compute;helper 1040\n"
	"main;compute;helper;__memcpy_avx_unaligned 300\n"
	"main;do_syscall_64 20\n";

/* The one format switch: each format reaches its writer; an unknown one writes nothing. */
static void test_format_switch(const struct built *b)
{
	char *pprof, *folded, *svg, *text, *buf = NULL;
	size_t npprof, nsvg, n = 0;
	FILE *f;
	int err;

	pprof = render(b->prof, CP_PROFILE_PPROF, 0, &npprof);
	folded = render(b->prof, CP_PROFILE_FOLDED, 0, NULL);
	svg = render(b->prof, CP_PROFILE_SVG, 0, &nsvg);
	text = render(b->prof, CP_PROFILE_TEXT, 1, NULL);
	CHECK(npprof > 2 && (unsigned char)pprof[0] == 0x1f && (unsigned char)pprof[1] == 0x8b,
	      "pprof is gzipped");
	CHECK(folded && !strcmp(folded, expected_folded));
	CHECK(svg && nsvg > 5 && strstr(svg, "<svg") != NULL);
	CHECK(text && strstr(text, "flat") != NULL && strstr(text, "helper") != NULL);
	f = open_memstream(&buf, &n);
	if (!f)
		exit(1);
	err = cp_profile_write(b->prof, (enum cp_profile_format)99, f, 0);
	fclose(f);
	CHECK(err == -EINVAL && n == 0, "unknown format: %d, %zu bytes", err, n);
	free(buf);
	free(text);
	free(svg);
	free(folded);
	free(pprof);
}

static void test_aggregation(const struct built *b)
{
	char *folded, *text;

	CHECK(cp_profile_sample_total(b->prof) == b->total, "total %lu want %lu",
	      (unsigned long)cp_profile_sample_total(b->prof), (unsigned long)b->total);
	folded = render(b->prof, CP_PROFILE_FOLDED, 0, NULL);
	CHECK(folded && !strcmp(folded, expected_folded), "folded:\n%s", folded);
	free(folded);

	text = render(b->prof, CP_PROFILE_TEXT, 0, NULL);
	/* helper: flat 1040, cum 1340 of 1415 samples; cpu values in seconds. */
	CHECK(strstr(text, "Type: cpu\n"), "%s", text);
	CHECK(strstr(text, "Showing nodes accounting for 14.29s, 100% of 14.29s total"),
	      "%s", text);
	CHECK(strstr(text, "    10.51s 73.50% 73.50%     13.54s 94.70%  helper (inline)\n"),
	      "%s", text);
	CHECK(strstr(text, "     3.03s 21.20% 94.70%      3.03s 21.20%  __memcpy_avx_unaligned\n"),
	      "%s", text);
	CHECK(strstr(text, "         0     0%   100%     13.74s 96.11%  main\n"), "%s", text);
	CHECK(strstr(text, "Comment: lost samples: 7"), "%s", text);
	CHECK(strstr(text, "      flat  flat%   sum%        cum   cum%\n"), "%s", text);
	free(text);

	text = render(b->prof, CP_PROFILE_TEXT, 2, NULL);
	CHECK(strstr(text, "Showing top 2 nodes out of 8\n"), "%s", text);
	CHECK(!strstr(text, "do_syscall_64"), "top 2 shows more: %s", text);
	free(text);
}

static void test_round_trip(const struct built *b)
{
	struct cp_profile *back = NULL, *again = NULL;
	char *pb, *pb2, *a, *c;
	size_t len, len2;
	int err;

	pb = render(b->prof, CP_PROFILE_PPROF, 0, &len);
	CHECK(len > 20 && (unsigned char)pb[0] == 0x1f && (unsigned char)pb[1] == 0x8b,
	      "not gzip");
	err = cp_profile_read(pb, len, &back);
	CHECK(err == 0 && back, "read back: %d", err);
	if (!back) {
		free(pb);
		return;
	}
	CHECK(cp_profile_sample_total(back) == b->total, "total after read %lu",
	      (unsigned long)cp_profile_sample_total(back));
	a = render(b->prof, CP_PROFILE_FOLDED, 0, NULL);
	c = render(back, CP_PROFILE_FOLDED, 0, NULL);
	CHECK(!strcmp(a, c), "folded differs after round trip:\n%s---\n%s", a, c);
	free(a);
	free(c);
	a = render(b->prof, CP_PROFILE_TEXT, 0, NULL);
	c = render(back, CP_PROFILE_TEXT, 0, NULL);
	CHECK(!strcmp(a, c), "text differs after round trip:\n%s---\n%s", a, c);
	free(a);
	free(c);

	/* Writing what was read gives the same bytes: nothing is lost or renumbered. */
	pb2 = render(back, CP_PROFILE_PPROF, 0, &len2);
	CHECK(len == len2 && !memcmp(pb, pb2, len), "pprof differs after round trip (%zu, %zu)",
	      len, len2);
	err = cp_profile_read(pb2, len2, &again);
	CHECK(err == 0, "read twice: %d", err);
	cp_profile_free(again);
	free(pb2);
	cp_profile_free(back);
	free(pb);
}

/* Decompressed protobuf of the profile, for the corruption tests. */
static unsigned char *raw_protobuf(const struct built *b, size_t *len)
{
	/* The writer always gzips; get the plain bytes with zlib through a second profile. */
	char cmd[] = "gzip -dc";
	char *pb;
	size_t n;
	char tmp[] = "/tmp/test_profile.XXXXXX";
	int fd = mkstemp(tmp);
	FILE *p;
	unsigned char *out = NULL;
	size_t alloc = 0, got = 0;
	char line[512];

	pb = render(b->prof, CP_PROFILE_PPROF, 0, &n);
	if (fd < 0 || write(fd, pb, n) != (ssize_t)n) {
		free(pb);
		return NULL;
	}
	close(fd);
	free(pb);
	snprintf(line, sizeof(line), "%s < %s", cmd, tmp);
	p = popen(line, "r");
	if (!p) {
		unlink(tmp);
		return NULL;
	}
	for (;;) {
		if (got == alloc) {
			alloc = alloc ? alloc * 2 : 4096;
			out = realloc(out, alloc);
			if (!out)
				exit(1);
		}
		n = fread(out + got, 1, alloc - got, p);
		if (n == 0)
			break;
		got += n;
	}
	pclose(p);
	unlink(tmp);
	*len = got;
	return out;
}

static void try_read(const void *data, size_t len, int *ok, int *bad)
{
	struct cp_profile *prof = NULL;
	int err = cp_profile_read(data, len, &prof);

	if (err == 0) {
		/* Whatever was accepted must be writable in every format. */
		char *s;

		CHECK(prof != NULL, "read returned 0 without a profile");
		for (int f = CP_PROFILE_PPROF; f <= CP_PROFILE_TEXT; f++) {
			s = render(prof, (enum cp_profile_format)f, 0, NULL);
			free(s);
		}
		cp_profile_free(prof);
		(*ok)++;
	} else {
		CHECK(err == -EBADMSG || err == -EINVAL, "unexpected error %d", err);
		(*bad)++;
	}
}

static void test_corrupt(const struct built *b)
{
	struct cp_profile *prof = (struct cp_profile *)0x1;
	unsigned char *raw, *copy;
	char *pb;
	size_t len, rawlen = 0;
	int ok = 0, bad = 0, err;
	static const char text[] = "this is not a profile\n";

	err = cp_profile_read("", 0, &prof);
	CHECK(err == -EINVAL && prof == (struct cp_profile *)0x1, "empty input: %d", err);
	err = cp_profile_read(text, sizeof(text) - 1, &prof);
	CHECK(err < 0 && prof == (struct cp_profile *)0x1, "text input: %d", err);

	pb = render(b->prof, CP_PROFILE_PPROF, 0, &len);
	/* Every truncation of the gzip stream is refused. */
	for (size_t cut = 1; cut < len; cut += (cut < 64 ? 1 : 7)) {
		err = cp_profile_read(pb, cut, &prof);
		CHECK(err == -EBADMSG, "truncated at %zu of %zu: %d", cut, len, err);
	}
	/* Trailing garbage after the gzip member. */
	copy = malloc(len + 3);
	memcpy(copy, pb, len);
	memcpy(copy + len, "xyz", 3);
	err = cp_profile_read(copy, len + 3, &prof);
	CHECK(err == -EBADMSG, "trailing garbage: %d", err);
	free(copy);
	free(pb);

	raw = raw_protobuf(b, &rawlen);
	CHECK(raw && rawlen > 100, "gzip -dc failed");
	if (!raw)
		return;
	/* Uncompressed profiles are read too. */
	err = cp_profile_read(raw, rawlen, &prof);
	CHECK(err == 0, "uncompressed: %d", err);
	if (err == 0)
		cp_profile_free(prof);
	/* Truncated protobuf: refused or, when cut at a field boundary, a smaller profile. */
	ok = bad = 0;
	for (size_t cut = 1; cut < rawlen; cut++)
		try_read(raw, cut, &ok, &bad);
	CHECK(bad > 0, "no truncation of the protobuf was refused");
	/* Random corruption never crashes (ASan watches), and what is accepted is consistent. */
	copy = malloc(rawlen);
	srand(1234);
	ok = bad = 0;
	for (int round = 0; round < 3000; round++) {
		memcpy(copy, raw, rawlen);
		for (int k = 0; k < 1 + round % 4; k++)
			copy[(size_t)rand() % rawlen] = (unsigned char)rand();
		try_read(copy, rawlen, &ok, &bad);
	}
	CHECK(ok > 0 && bad > 0, "corruption: %d accepted, %d refused", ok, bad);
	free(copy);
	free(raw);
}

static void test_bounded_memory(void)
{
	struct cp_profile *prof = cp_profile_new();
	struct cp_map map = { 0x1000, 0x100000, 0, 1, 1, 1, "r-xp", (char *)"/bin/x", false };
	struct cp_profile_line line = { "f", NULL, NULL, 0, 0 };
	uint64_t mid, locs[64], id;
	char *folded;
	int err;

	err = cp_profile_add_mapping(prof, 1, &map, NULL, true, false, &mid);
	CHECK(err == 0, "mapping");
	for (int i = 0; i < 64; i++) {
		err = cp_profile_add_location(prof, 1, 0x2000 + (uint64_t)i * 16, mid, &line, 1,
					      &locs[i]);
		CHECK(err == 0, "location %d", i);
	}
	/* 200000 samples of 3 distinct stacks, looking locations up as the sampler does. */
	for (int i = 0; i < 200000; i++) {
		uint64_t st[40];
		int depth = 10 + (i % 3) * 10;

		for (int j = 0; j < depth; j++) {
			id = cp_profile_find_location(prof, 1, 0x2000 + (uint64_t)j * 16);
			st[j] = id;
		}
		err = cp_profile_add_sample(prof, st, (size_t)depth, 1, 1, "t", 1);
		if (err) {
			CHECK(err == 0, "sample %d: %d", i, err);
			break;
		}
	}
	CHECK(cp_profile_sample_total(prof) == 200000, "total");
	folded = render(prof, CP_PROFILE_FOLDED, 0, NULL);
	/* One line per distinct stack: memory grew with stacks, not with samples. */
	{
		int lines = 0;

		for (char *p = folded; *p; p++)
			lines += *p == '\n';
		CHECK(lines == 3, "%d distinct folded lines, want 3", lines);
	}
	free(folded);
	cp_profile_free(prof);
	cp_profile_free(NULL);
}

static void test_svg(const struct built *b)
{
	char *svg = render(b->prof, CP_PROFILE_SVG, 0, NULL);

	CHECK(strstr(svg, "<svg ") && strstr(svg, "</svg>\n"), "svg frame");
	CHECK(strstr(svg, "<script") && strstr(svg, "function zoom"), "svg script");
	CHECK(strstr(svg, "<title>helper (1340 samples, 94.70%)</title>"), "helper frame");
	CHECK(strstr(svg, "<title>all (1415 samples, 100.00%)</title>"), "root frame");
	CHECK(!strstr(svg, "http://") || strstr(svg, "xmlns=\"http://www.w3.org/2000/svg\""),
	      "external reference");
	free(svg);
}

/* The string table: "" first, no duplicates, valid UTF-8 whatever comes in, capped. */
static void test_strings(void)
{
	struct cp_strtab t;
	char *big = malloc(70001);
	int64_t a, b, c, d, e;

	CHECK(cp_strtab_init(&t, CP_STRTAB_UTF8) == 0 && t.n == 1 && !strcmp(t.v[0], ""), "init");
	a = cp_strtab_intern(&t, "h\xc3\xa9llo");
	b = cp_strtab_intern(&t, "h\xc3\xa9llo");
	CHECK(a == 1 && b == 1 && t.n == 2, "dedupe: %ld %ld", (long)a, (long)b);
	CHECK(cp_strtab_intern(&t, NULL) == 0 && cp_strtab_intern(&t, "") == 0, "empty is 0");
	c = cp_strtab_intern(&t, "a\xff" "b");
	CHECK(c > 0 && !strcmp(t.v[c], "a\xef\xbf\xbd" "b"), "bad byte: %s", t.v[c]);
	d = cp_strtab_intern(&t, "x\xe2\x82");
	CHECK(d > 0 && !strcmp(t.v[d], "x\xef\xbf\xbd\xef\xbf\xbd"), "cut sequence: %s", t.v[d]);
	CHECK(cp_strtab_intern(&t, "\xed\xa0\x80") > 0, "surrogate");
	CHECK(!strcmp(t.v[t.n - 1], "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"), "surrogate: %s",
	      t.v[t.n - 1]);
	/* 70000 bytes of 2-byte characters: cut at 64 KiB, on a character boundary. */
	for (int i = 0; i < 70000; i += 2)
		big[i] = (char)0xc3, big[i + 1] = (char)0xa9;
	big[70000] = '\0';
	e = cp_strtab_intern(&t, big);
	CHECK(e > 0 && strlen(t.v[e]) == 65536, "cap: %zu", strlen(t.v[e]));
	CHECK(cp_strtab_intern(&t, big) == e, "capped string not deduplicated");
	cp_strtab_release(&t);
	free(big);
}

/*
 * A profile as another producer could write it, built with protobuf-c: ids not in order and
 * not dense, a location without mapping or lines, labels of other kinds. mutate() breaks one
 * rule of pprof's at a time.
 */
enum mutation {
	M_NONE,
	M_DUP_MAPPING_ID,
	M_ZERO_LOCATION_ID,
	M_MISSING_MAPPING,
	M_MISSING_FUNCTION,
	M_MISSING_LOCATION,
	M_VALUE_COUNT,
	M_STRING_RANGE,
	M_STRING_NEGATIVE,
	M_FIRST_STRING,
	M_LABEL_STRING,
	M_COUNT,
};

static int read_foreign(enum mutation mut, char **folded)
{
	char *strings[] = { (char *)"", (char *)"samples", (char *)"count", (char *)"cpu",
			    (char *)"nanoseconds", (char *)"/usr/bin/server", (char *)"main.main",
			    (char *)"main.work", (char *)"main.go", (char *)"span" };
	Perftools__Profiles__ValueType vt[2] = { PERFTOOLS__PROFILES__VALUE_TYPE__INIT,
						 PERFTOOLS__PROFILES__VALUE_TYPE__INIT };
	Perftools__Profiles__ValueType *vtp[2] = { &vt[0], &vt[1] };
	Perftools__Profiles__Mapping m[2] = { PERFTOOLS__PROFILES__MAPPING__INIT,
					      PERFTOOLS__PROFILES__MAPPING__INIT };
	Perftools__Profiles__Mapping *mp[2] = { &m[0], &m[1] };
	Perftools__Profiles__Function fn[2] = { PERFTOOLS__PROFILES__FUNCTION__INIT,
						PERFTOOLS__PROFILES__FUNCTION__INIT };
	Perftools__Profiles__Function *fp[2] = { &fn[0], &fn[1] };
	Perftools__Profiles__Line ln[2] = { PERFTOOLS__PROFILES__LINE__INIT,
					    PERFTOOLS__PROFILES__LINE__INIT };
	Perftools__Profiles__Line *lnp0[1] = { &ln[0] }, *lnp1[1] = { &ln[1] };
	Perftools__Profiles__Location loc[3] = { PERFTOOLS__PROFILES__LOCATION__INIT,
						 PERFTOOLS__PROFILES__LOCATION__INIT,
						 PERFTOOLS__PROFILES__LOCATION__INIT };
	Perftools__Profiles__Location *locp[3] = { &loc[0], &loc[1], &loc[2] };
	Perftools__Profiles__Label lb = PERFTOOLS__PROFILES__LABEL__INIT;
	Perftools__Profiles__Label *lbp[1] = { &lb };
	Perftools__Profiles__Sample smp[2] = { PERFTOOLS__PROFILES__SAMPLE__INIT,
					       PERFTOOLS__PROFILES__SAMPLE__INIT };
	Perftools__Profiles__Sample *smpp[2] = { &smp[0], &smp[1] };
	uint64_t stack0[2] = { 40, 30 }, stack1[1] = { 20 };
	int64_t val0[2] = { 7, 70000000 }, val1[2] = { 3, 30000000 };
	Perftools__Profiles__Profile p = PERFTOOLS__PROFILES__PROFILE__INIT;
	struct cp_profile *prof = NULL;
	uint8_t *buf;
	size_t len;
	int err;

	vt[0].type = 1, vt[0].unit = 2, vt[1].type = 3, vt[1].unit = 4;
	m[0].id = 9, m[0].memory_start = 0x400000, m[0].memory_limit = 0x500000, m[0].filename = 5;
	m[0].has_functions = 1;
	m[1].id = 4, m[1].memory_start = 0x7f0000000000, m[1].memory_limit = 0x7f0000100000;
	fn[0].id = 1000, fn[0].name = 6, fn[0].system_name = 6, fn[0].filename = 8;
	fn[1].id = 77, fn[1].name = 7, fn[1].system_name = 7, fn[1].filename = 8;
	ln[0].function_id = 1000, ln[0].line = 10;
	ln[1].function_id = 77, ln[1].line = 20;
	loc[0].id = 30, loc[0].mapping_id = 9, loc[0].address = 0x401000, loc[0].n_line = 1;
	loc[0].line = lnp0;
	loc[1].id = 40, loc[1].mapping_id = 9, loc[1].address = 0x402000, loc[1].n_line = 1;
	loc[1].line = lnp1;
	/* No mapping, no lines: named by its address. */
	loc[2].id = 20, loc[2].address = 0x1234;
	lb.key = 9, lb.str = 6;
	smp[0].n_location_id = 2, smp[0].location_id = stack0, smp[0].n_value = 2;
	smp[0].value = val0, smp[0].n_label = 1, smp[0].label = lbp;
	smp[1].n_location_id = 1, smp[1].location_id = stack1, smp[1].n_value = 2;
	smp[1].value = val1;
	p.n_sample_type = 2, p.sample_type = vtp;
	p.n_mapping = 2, p.mapping = mp;
	p.n_function = 2, p.function = fp;
	p.n_location = 3, p.location = locp;
	p.n_sample = 2, p.sample = smpp;
	p.n_string_table = sizeof(strings) / sizeof(strings[0]), p.string_table = strings;

	switch (mut) {
	case M_NONE:
	case M_COUNT:
		break;
	case M_DUP_MAPPING_ID:
		m[1].id = 9;
		break;
	case M_ZERO_LOCATION_ID:
		loc[1].id = 0;
		break;
	case M_MISSING_MAPPING:
		loc[0].mapping_id = 5;
		break;
	case M_MISSING_FUNCTION:
		ln[1].function_id = 78;
		break;
	case M_MISSING_LOCATION:
		stack0[1] = 31;
		break;
	case M_VALUE_COUNT:
		smp[1].n_value = 1;
		break;
	case M_STRING_RANGE:
		fn[1].filename = 10;
		break;
	case M_STRING_NEGATIVE:
		m[0].build_id = -1;
		break;
	case M_FIRST_STRING:
		strings[0] = (char *)"x";
		break;
	case M_LABEL_STRING:
		lb.str = 1000;
		break;
	}
	len = perftools__profiles__profile__get_packed_size(&p);
	buf = malloc(len);
	perftools__profiles__profile__pack(&p, buf);
	err = cp_profile_read(buf, len, &prof);
	free(buf);
	if (err == 0 && folded)
		*folded = render(prof, CP_PROFILE_FOLDED, 0, NULL);
	cp_profile_free(prof);
	return err;
}

/*
 * Millions of tiny samples: small on disk, huge if each became a struct. They are decoded one
 * at a time into the profile, where identical ones merge, so memory stays near the file's size.
 */
static void test_decode_budget(void)
{
	size_t n = 4u << 20, head = 11, len = head + 4 * n;
	unsigned char *buf = malloc(len);
	struct cp_profile *prof = NULL;
	int err;

	/* string_table = ["", "x"], sample_type {type 1, unit 1}, then n samples {value: [1]}. */
	memcpy(buf, "\x32\x00\x32\x01x\x0a\x04\x08\x01\x10\x01", head);
	for (size_t i = 0; i < n; i++)
		memcpy(buf + head + 4 * i, "\x12\x02\x10\x01", 4);
	err = cp_profile_read(buf, len, &prof);
	CHECK(err == 0 && prof, "many samples: %d", err);
	CHECK(prof && cp_profile_sample_total(prof) == n, "many samples: total %llu",
	      prof ? (unsigned long long)cp_profile_sample_total(prof) : 0ULL);
	cp_profile_free(prof);
	prof = NULL;
	/* Without a sample type the samples measure nothing: refused. */
	memcpy(buf + 5, "\x32\x00\x32\x00\x32\x00", 6);
	err = cp_profile_read(buf, len, &prof);
	CHECK(err == -EBADMSG && !prof, "no sample type: %d", err);
	free(buf);
}

static void test_foreign(void)
{
	char *folded = NULL;
	int err = read_foreign(M_NONE, &folded);

	CHECK(err == 0, "foreign profile: %d", err);
	CHECK(folded && !strcmp(folded, "0x1234 3\nmain.main;main.work 7\n"), "foreign folded:\n%s",
	      folded);
	free(folded);
	for (int m = M_DUP_MAPPING_ID; m < M_COUNT; m++) {
		if (m == M_MISSING_MAPPING)
			continue;
		err = read_foreign((enum mutation)m, NULL);
		CHECK(err == (m == M_FIRST_STRING ? -EINVAL : -EBADMSG), "mutation %d read as %d",
		      m, err);
	}
	/* A location whose mapping id names no mapping: read without one, as go tool pprof does. */
	err = read_foreign(M_MISSING_MAPPING, &folded);
	CHECK(err == 0 && folded && strstr(folded, "main.main;main.work 7"), "%d %s", err,
	      folded ? folded : "");
	free(folded);
}

/*
 * A profile with code in anonymous memory (JIT) and in a deleted binary, which pprof must read
 * without warnings.
 */
static int write_anon(const char *dir)
{
	struct cp_map main_map = { MAIN_START, MAIN_END, MAIN_OFF, 1, 8, 1, "r-xp", self_path,
				   false };
	struct cp_map anon_map = { 0x7f0000000000ull, 0x7f0000010000ull, 0, 0, 0, 0, "rwxp",
				   (char *)"", false };
	struct cp_map gone_map = { 0x7f1000000000ull, 0x7f1000010000ull, 0x2000, 9, 8, 1, "r-xp",
				   (char *)"/nonexistent/cprof-test/deleted-app", true };
	struct cp_profile_line main_line = { "main", NULL, "src/app.c", 40, 30 };
	struct cp_profile *prof = cp_profile_new();
	uint64_t mid, aid, gid, stack[2];
	char path[4096];
	FILE *f;
	int err = 0;

	err |= cp_profile_add_mapping(prof, 7, &main_map, NULL, true, true, &mid);
	err |= cp_profile_add_mapping(prof, 7, &anon_map, NULL, false, false, &aid);
	err |= cp_profile_add_location(prof, 7, MAIN_START + 0x10, mid, &main_line, 1, &stack[1]);
	err |= cp_profile_add_location(prof, 7, 0x7f0000000123ull, aid, NULL, 0, &stack[0]);
	err |= cp_profile_add_sample(prof, stack, 2, 7, 7, "jit", 9);
	err |= cp_profile_add_mapping(prof, 7, &gone_map, NULL, true, false, &gid);
	err |= cp_profile_add_location(prof, 7, 0x7f1000000456ull, gid, NULL, 0, &stack[0]);
	err |= cp_profile_add_sample(prof, stack, 2, 7, 7, "jit", 4);
	snprintf(path, sizeof(path), "%s/anon.pb.gz", dir);
	f = fopen(path, "w");
	if (!f || err) {
		cp_profile_free(prof);
		return 1;
	}
	err = cp_profile_write(prof, CP_PROFILE_PPROF, f, 0);
	if (fclose(f) != 0 || err)
		err = 1;
	cp_profile_free(prof);
	return err ? 1 : 0;
}

/* The hand-built profile in every format, for the integration test. */
static int write_files(const struct built *b, const char *dir)
{
	static const struct {
		enum cp_profile_format format;
		const char *name;
	} outs[] = {
		{ CP_PROFILE_PPROF, "ours.pb.gz" },
		{ CP_PROFILE_FOLDED, "ours.folded" },
		{ CP_PROFILE_TEXT, "ours.txt" },
		{ CP_PROFILE_SVG, "ours.svg" },
	};
	char path[4096];

	for (size_t i = 0; i < sizeof(outs) / sizeof(outs[0]); i++) {
		FILE *f;
		int err;

		snprintf(path, sizeof(path), "%s/%s", dir, outs[i].name);
		f = fopen(path, "w");
		if (!f) {
			perror(path);
			return 1;
		}
		err = cp_profile_write(b->prof, outs[i].format, f, 0);
		if (fclose(f) != 0 || err) {
			fprintf(stderr, "%s: write failed: %d\n", path, err);
			return 1;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct built b;
	ssize_t n = readlink("/proc/self/exe", self_path, sizeof(self_path) - 1);

	if (n <= 0)
		return 1;
	self_path[n] = '\0';
	build(&b);
	if (argc == 3 && !strcmp(argv[1], "--write")) {
		int rc = write_files(&b, argv[2]) || write_anon(argv[2]);

		cp_profile_free(b.prof);
		return rc || failures ? 1 : 0;
	}
	test_aggregation(&b);
	test_format_switch(&b);
	test_round_trip(&b);
	test_svg(&b);
	test_corrupt(&b);
	test_foreign();
	test_strings();
	test_decode_budget();
	test_bounded_memory();
	cp_profile_free(b.prof);
	return check_done("profile");
}
