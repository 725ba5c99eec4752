/* Unit tests of the profile kinds (wall, delay, count): sample types, stacks by node, labels. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "maps.h"
#include "profile.h"

static char *render(const struct cp_profile *prof, enum cp_profile_format format)
{
	char *buf = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&buf, &n);
	int err;

	if (!f)
		exit(1);
	err = cp_profile_write(prof, format, f, 0);
	fclose(f);
	CHECK(err == 0, "write format %d: %d", (int)format, err);
	return buf;
}

/* A profile of kind with the stack main -> reader -> read (innermost first: read). */
static struct cp_profile *with_stack(enum cp_profile_kind kind, uint32_t *node)
{
	struct cp_profile *prof = cp_profile_new_kind(kind);
	struct cp_map map = { 0x1000, 0x100000, 0, 1, 1, 1, "r-xp", (char *)"/bin/x", false };
	const char *names[] = { "__libc_read", "reader", "main" };
	uint64_t mid, locs[3];

	CHECK(prof, "new kind %d", (int)kind);
	if (!prof)
		exit(1);
	CHECK(cp_profile_add_mapping(prof, 1, &map, NULL, true, false, &mid) == 0, "mapping");
	for (int i = 0; i < 3; i++) {
			/* reader's location has an inlined frame, "inl", inside reader. */
		struct cp_profile_line line[2] = { { i == 1 ? "inl" : names[i], NULL, NULL, 0, 0 },
						   { names[i], NULL, NULL, 0, 0 } };

		CHECK(cp_profile_add_location(prof, 1, 0x2000 + (uint64_t)i * 16, mid,
					      i == 1 ? line : line + 1, i == 1 ? 2 : 1, &locs[i]) == 0,
		      "location %d", i);
	}
	CHECK(cp_profile_stack(prof, locs, 3, node) == 0 && *node, "stack");
	return prof;
}

static void test_delay(void)
{
	uint32_t node, again;
	struct cp_profile *prof = with_stack(CP_PROFILE_KIND_DELAY, &node);
	const char *names[5];
	int64_t v[2] = { 1, 250000000 };
	uint64_t bad = 99;
	char *folded;
	size_t n, npb = 0;
	struct cp_profile *back = NULL;

	n = cp_profile_stack_functions(prof, node, names, 4);
	CHECK(n == 4 && !strcmp(names[0], "__libc_read") && !strcmp(names[1], "inl") &&
	      !strcmp(names[2], "reader") && !strcmp(names[3], "main"),
	      "functions of the stack: %zu", n);
	CHECK(cp_profile_stack_functions(prof, node, names, 1) == 1, "max respected");
	CHECK(cp_profile_stack(prof, &bad, 1, &again) == -EINVAL, "unknown location refused");
	CHECK(cp_profile_add_stack_sample(prof, node, 1, 2, "t", "wait", "io-read", v) == 0, "add");
	CHECK(cp_profile_add_stack_sample(prof, node, 1, 2, "t", "wait", "io-read", v) == 0, "add");
	CHECK(cp_profile_add_stack_sample(prof, 12345, 1, 2, "t", NULL, NULL, v) == -EINVAL,
	      "unknown node refused");
	/* Folded and text report the default type, delay in nanoseconds. */
	folded = render(prof, CP_PROFILE_FOLDED);
	CHECK(!strcmp(folded, "main;reader;inl;__libc_read 500000000\n"), "folded: %s", folded);
	free(folded);
	npb = 0;
	{
		FILE *m = NULL;
		char *buf = NULL;
		size_t len = 0;

		m = open_memstream(&buf, &len);
		CHECK(m && cp_profile_write(prof, CP_PROFILE_PPROF, m, 0) == 0, "pprof");
		fclose(m);
		CHECK(cp_profile_read(buf, len, &back) == 0, "read back");
		npb = len;
		free(buf);
	}
	CHECK(npb > 0 && back, "round trip");
	if (back) {
		char *text = render(back, CP_PROFILE_TEXT);

		CHECK(strstr(text, "Type: delay") != NULL, "text type: %s", text);
		free(text);
		cp_profile_free(back);
	}
	cp_profile_free(prof);
}

static void test_wall_and_count(void)
{
	uint32_t node;
	struct cp_profile *prof = with_stack(CP_PROFILE_KIND_WALL, &node);
	struct cp_profile_meta meta = { .period = 10000000, .duration_nanos = 1 };
	int64_t v[2] = { 3, 30000000 };
	char *text;

	cp_profile_set_meta(prof, &meta);
	CHECK(cp_profile_add_stack_sample(prof, node, 1, 2, "t", "state", "io-read", v) == 0, "add");
	CHECK(cp_profile_sample_total(prof) == 3, "samples counted");
	text = render(prof, CP_PROFILE_TEXT);
	CHECK(strstr(text, "Type: wall") && strstr(text, "30ms"), "wall text: %s", text);
	free(text);
	cp_profile_free(prof);

	prof = with_stack(CP_PROFILE_KIND_COUNT, &node);
	v[0] = 2;
	CHECK(cp_profile_add_stack_sample(prof, node, 1, 2, "t", NULL, NULL, v) == 0, "add");
	text = render(prof, CP_PROFILE_FOLDED);
	CHECK(!strcmp(text, "main;reader;inl;__libc_read 2\n"), "count folded: %s", text);
	free(text);
	cp_profile_free(prof);
	CHECK(cp_profile_new_kind((enum cp_profile_kind)42) == NULL, "unknown kind");
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	test_delay();
	test_wall_and_count();
	return check_done("profile_kinds");
}
