/* Tests of the on-disk cache of symbolization results: round trip, damage, refusals. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "sym_cache.h"

#define BUILD_ID "0123456789abcdef0123456789abcdef01234567"

static char dir[] = "/tmp/cprof-test-symcache-XXXXXX";

static size_t read_all(struct cp_sym_frame *frames, uint64_t *addrs, size_t max, char **text)
{
	char *cursor;
	size_t len, count = 0, n;
	uint64_t addr;
	int r;

	*text = NULL;
	if (cp_sym_cache_read(BUILD_ID, text, &len) < 0)
		return 0;
	cursor = *text;
	while ((r = cp_sym_cache_next(&cursor, &addr, &frames[count * 2], &n)) >= 0) {
		if (r != CP_SYM_CACHE_ADDR)
			continue;
		CHECK(n <= 2);
		if (count < max)
			addrs[count++] = addr;
	}
	return count;
}

static void test_round_trip(void)
{
	struct cp_sym_frame in[2] = {
		{ .function = "inner", .system_name = "_Z5innerv", .file = "a/b.c", .line = 12,
		  .start_line = 10, .inlined = true },
		{ .function = "std::vector<int>::push_back(int)", .system_name = NULL,
		  .file = NULL, .line = 0, .start_line = 0, .inlined = false },
	};
	struct cp_sym_frame out[16];
	uint64_t addrs[8];
	char *text;
	int fd = -1;
	size_t n;

	CHECK(cp_sym_cache_append(&fd, BUILD_ID, 0x1234, in, 2) == 0);
	CHECK(cp_sym_cache_append(&fd, BUILD_ID, 0xfff0, in + 1, 1) == 0);
	CHECK(fd >= 0);
	/* A string with a control character cannot be read back: not written. */
	in[0].file = "bad\tname";
	CHECK(cp_sym_cache_append(&fd, BUILD_ID, 0x99, in, 2) == -EINVAL);
	in[0].file = "a/b.c";
	close(fd);
	fd = -1;
	CHECK(cp_sym_cache_append(&fd, "not-hex!", 0x99, in, 2) == -EINVAL && fd == -1);

	n = read_all(out, addrs, 8, &text);
	CHECK(n == 2, "%zu records", n);
	CHECK(addrs[0] == 0x1234 && addrs[1] == 0xfff0);
	CHECK(!strcmp(out[0].function, "inner") && !strcmp(out[0].system_name, "_Z5innerv"));
	CHECK(!strcmp(out[0].file, "a/b.c") && out[0].line == 12 && out[0].start_line == 10);
	CHECK(out[0].inlined && !out[1].inlined);
	CHECK(!strcmp(out[1].function, "std::vector<int>::push_back(int)"));
	CHECK(out[1].system_name == NULL && out[1].file == NULL && out[1].line == 0);
	CHECK(!strcmp(out[2].function, "std::vector<int>::push_back(int)"));
	free(text);
}

/* Damaged lines (torn, wrong counts, bad numbers, garbage) are skipped; good ones kept. */
static void test_damage(void)
{
	static const char *const junk[] = {
		"zz 1\tf\x1f\x1f\x1f" "1\x1f" "1\x1f" "0\n",		/* bad address */
		"10 2\tf\x1f\x1f\x1f" "1\x1f" "1\x1f" "0\n",		/* one frame, two said */
		"11 1\tf\x1f\x1f\x1f" "x\x1f" "1\x1f" "0\n",		/* bad line */
		"12 1\tf\x1f\x1f\x1f" "1\x1f" "1\x1f" "7\n",		/* bad inlined */
		"13 1\tf\x1f\x1f" "1\x1f" "1\x1f" "0\n",		/* a field short */
		"14 99\tf\n",						/* too many frames */
		"\n", "no tab at all\n", "\x01\x02\x03\n",
		"15 1\tgood\x1f\x1f" "f.c\x1f" "3\x1f" "1\x1f" "0\n",	/* the good one */
		"16 1\ttorn\x1f\x1f",					/* no newline: torn */
	};
	struct cp_sym_frame out[64];
	uint64_t addrs[16];
	char path[4200], *text;
	size_t n;
	FILE *f;

	snprintf(path, sizeof(path), "%s/sym1/%s", dir, BUILD_ID);
	f = fopen(path, "w");
	CHECK(f != NULL);
	if (!f)
		return;
	fprintf(f, "=build-id %s r3\n", BUILD_ID);
	for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++)
		fputs(junk[i], f);
	fclose(f);
	n = read_all(out, addrs, 16, &text);
	CHECK(n == 1, "%zu records", n);
	CHECK(n >= 1 && addrs[0] == 0x15 && !strcmp(out[0].function, "good") &&
	      !strcmp(out[0].file, "f.c") && out[0].line == 3);
	free(text);
}

/*
 * Empty answers ("nothing at this address", N = 0) and the fact that the build has DWARF; the
 * index pass (scan) sees kinds and addresses, the parse of a record comes later.
 */
static void test_empty_and_facts(void)
{
	struct cp_sym_frame f = { .function = "f", .file = "f.c", .line = 7 }, out[16];
	char path[4200], *text = NULL, *cursor, *record, *records[4];
	uint64_t addr, addrs[4];
	size_t len, n, naddr = 0;
	int fd = -1, kind, dwarf = 0;

	snprintf(path, sizeof(path), "%s/sym1/%s", dir, BUILD_ID);
	unlink(path);
	CHECK(cp_sym_cache_append(&fd, BUILD_ID, 0x26290, NULL, 0) == 0);
	CHECK(cp_sym_cache_append_has_dwarf(&fd, BUILD_ID) == 0);
	CHECK(cp_sym_cache_append(&fd, BUILD_ID, 0x40, &f, 1) == 0);
	CHECK(cp_sym_cache_append(&fd, BUILD_ID, 0x41, NULL, 1) == -EINVAL);
	close(fd);
	CHECK(cp_sym_cache_read(BUILD_ID, &text, &len) == 0);
	if (!text)
		return;
	CHECK(!strcmp(text, "=build-id " BUILD_ID " r3\n26290 0\n=dwarf\n40 1\tf\x1f\x1f" "f.c\x1f" "7\x1f" "0\x1f" "0\n"),
	      "%s", text);
	cursor = text;
	while ((kind = cp_sym_cache_scan(&cursor, &addr, &record)) != CP_SYM_CACHE_END) {
		if (kind == CP_SYM_CACHE_HAS_DWARF)
			dwarf++;
		if (kind == CP_SYM_CACHE_ADDR && naddr < 4) {
			addrs[naddr] = addr;
			records[naddr++] = record;
		}
	}
	CHECK(dwarf == 1 && naddr == 2 && addrs[0] == 0x26290 && addrs[1] == 0x40);
	/* Parsed in any order, after the whole text was scanned. */
	if (naddr == 2) {
		CHECK(cp_sym_cache_parse(records[1], &addr, out, &n) == 1 && addr == 0x40 && n == 1 &&
		      !strcmp(out[0].function, "f") && !strcmp(out[0].file, "f.c") && out[0].line == 7);
		CHECK(cp_sym_cache_parse(records[0], &addr, out, &n) == 1 && addr == 0x26290 &&
		      n == 0);
	}
	CHECK(cp_sym_cache_parse(NULL, &addr, out, &n) == 0);
	free(text);

	/* Near misses of the new lines are skipped, like any damage. */
	{
		static const char *const junk[] = {
			"50 0\tf\x1f\x1f\x1f" "1\x1f" "1\x1f" "0\n",	/* none said, one given */
			"51 1\n",					/* one said, none given */
			"=dwarf2\n", "=dwarf \n", " =dwarf\n", "52\n", "53 \n", "54 x\n",
			"12345678901234567 0\n",			/* over 64 bits */
			"55 0\n",					/* the good one */
		};
		FILE *out_file = fopen(path, "w");

		CHECK(out_file != NULL);
		if (!out_file)
			return;
		fprintf(out_file, "=build-id %s r3\n", BUILD_ID);
		for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++)
			fputs(junk[i], out_file);
		fclose(out_file);
		CHECK(cp_sym_cache_read(BUILD_ID, &text, &len) == 0);
		cursor = text;
		naddr = 0;
		dwarf = 0;
		while ((kind = cp_sym_cache_next(&cursor, &addr, out, &n)) != CP_SYM_CACHE_END) {
			if (kind == CP_SYM_CACHE_ADDR)
				addrs[naddr++ % 4] = addr;
			dwarf += kind == CP_SYM_CACHE_HAS_DWARF;
		}
		CHECK(naddr == 1 && addrs[0] == 0x55 && n == 0 && dwarf == 0, "%zu records",
		      naddr);
		free(text);
	}
}

/*
 * What the file claims is checked: a file naming another build, or none, is not read, and the
 * next writer starts it anew; a file of another user is not read.
 */
static void test_claims(void)
{
	struct cp_sym_frame f = { .function = "mine", .file = "m.c", .line = 2 }, out[16];
	uint64_t addrs[4];
	char path[4200], *text = NULL;
	size_t n;
	int fd = -1;
	FILE *w;

	snprintf(path, sizeof(path), "%s/sym1/%s", dir, BUILD_ID);
	w = fopen(path, "w");
	CHECK(w != NULL);
	if (!w)
		return;
	fputs("=build-id ffffffffffffffffffffffffffffffffffffffff r3\n"
	      "77 1\tATTACKER_FN\x1f\x1f" "evil.c\x1f" "666\x1f" "1\x1f" "0\n", w);
	fclose(w);
	CHECK(cp_sym_cache_read(BUILD_ID, &text, &n) == -EINVAL);
	/* Without the header line at all (an older cprof's file): not read either. */
	w = fopen(path, "w");
	fputs("77 1\tATTACKER_FN\x1f\x1f" "evil.c\x1f" "666\x1f" "1\x1f" "0\n", w);
	fclose(w);
	CHECK(cp_sym_cache_read(BUILD_ID, &text, &n) == -EINVAL);
	/* The next writer starts the file anew, with its header. */
	CHECK(cp_sym_cache_append(&fd, BUILD_ID, 0x78, &f, 1) == 0);
	close(fd);
	n = read_all(out, addrs, 4, &text);
	CHECK(n == 1 && addrs[0] == 0x78 && !strcmp(out[0].function, "mine"), "%zu", n);
	free(text);
	text = NULL;
	/* Owned by another user: refused. */
	CHECK(chown(path, 65534, 65534) == 0);
	CHECK(cp_sym_cache_read(BUILD_ID, &text, &n) == -EINVAL);
	unlink(path);
}

int main(void)
{
	char cmd[256];

	if (!mkdtemp(dir)) {
		printf("mkdtemp failed\n");
		return 1;
	}
	setenv("CPROF_CACHE_DIR", dir, 1);
	test_round_trip();
	test_damage();
	test_empty_and_facts();
	if (geteuid() == 0)
		test_claims();
	/* Caching off: nothing read, nothing written. */
	setenv("CPROF_CACHE_DIR", "", 1);
	{
		struct cp_sym_frame f = { .function = "x", .file = "y.c", .line = 1 };
		char *text = NULL;
		size_t len;
		int fd = -1;

		CHECK(cp_sym_cache_read(BUILD_ID, &text, &len) == -ENOENT);
		CHECK(cp_sym_cache_append(&fd, BUILD_ID, 1, &f, 1) == -ENOENT && fd == -1);
		CHECK(cp_sym_cache_append_has_dwarf(&fd, BUILD_ID) == -ENOENT && fd == -1);
	}
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		printf("could not remove %s\n", dir);
	return check_done("sym_cache");
}
