/* Unit tests of JIT symbol maps: parsing, lookups, later lines winning, hostile files. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "perfmap.h"

static const char *lookup(const struct cp_perfmap *m, uint64_t addr, uint64_t *off)
{
	return cp_perfmap_lookup(m, addr, off);
}

static void test_parse(void)
{
	static const char text[] =
		"7f0000001000 100 LazyCompile:~foo /app/a.js:1\n"
		"0x7f0000002000 0x40 Builtin:bar\n"
		"garbage line\n"
		"7f0000003000 0 zero_size\n"
		"7f0000004000 zz bad_size\n"
		"\n"
		"7f0000001080 10 later_inner\r\n"
		"ffffffffffffffff 10 wraps\n"
		"7f0000005000 8 ctl\x01name";
	struct cp_perfmap *m = NULL;
	uint64_t off = 0;
	const char *n;

	CHECK(cp_perfmap_parse(text, sizeof(text) - 1, &m) == 0);
	CHECK(cp_perfmap_count(m) == 4, "count %zu", cp_perfmap_count(m));
	n = lookup(m, 0x7f0000001010, &off);
	CHECK(n && !strcmp(n, "LazyCompile:~foo /app/a.js:1") && off == 0x10);
	/* A later line covering the same address wins. */
	n = lookup(m, 0x7f0000001084, &off);
	CHECK(n && !strcmp(n, "later_inner") && off == 4, "%s", n ? n : "(none)");
	n = lookup(m, 0x7f0000001090, &off);
	CHECK(n && !strcmp(n, "LazyCompile:~foo /app/a.js:1"));
	CHECK(!lookup(m, 0x7f0000001100, NULL), "end is exclusive");
	n = lookup(m, 0x7f000000203f, &off);
	CHECK(n && !strcmp(n, "Builtin:bar") && off == 0x3f);
	CHECK(!lookup(m, 0x7f0000000fff, NULL));
	CHECK(!lookup(m, 0x7f0000003000, NULL), "zero-size entry kept");
	n = lookup(m, 0x7f0000005000, NULL);
	CHECK(n && !strcmp(n, "ctl?name"), "control character reached the name");
	cp_perfmap_free(m);

	CHECK(cp_perfmap_parse("", 0, &m) == 0 && cp_perfmap_count(m) == 0);
	CHECK(!lookup(m, 1, NULL));
	cp_perfmap_free(m);
	cp_perfmap_free(NULL);
}

static void test_long_name(void)
{
	char text[2048];
	struct cp_perfmap *m = NULL;
	const char *n;

	memset(text, 'a', sizeof(text));
	memcpy(text, "1000 10 ", 8);
	CHECK(cp_perfmap_parse(text, sizeof(text), &m) == 0);
	n = lookup(m, 0x1000, NULL);
	CHECK(n && strlen(n) == CP_PERFMAP_MAX_NAME);
	cp_perfmap_free(m);
}

static void test_load(void)
{
	char path[64], link[80];
	struct cp_perfmap *m = NULL;
	int pid = (int)getpid();
	FILE *f;

	snprintf(path, sizeof(path), "/tmp/perf-%d.map", pid);
	unlink(path);
	CHECK(cp_perfmap_load(pid, pid, getuid(), &m) == -ENOENT);
	f = fopen(path, "w");
	CHECK(f != NULL);
	if (!f)
		return;
	fprintf(f, "5000 100 jit_fn\n");
	fclose(f);
	CHECK(cp_perfmap_load(pid, pid, getuid(), &m) == 0);
	CHECK(m && lookup(m, 0x5010, NULL) && !strcmp(lookup(m, 0x5010, NULL), "jit_fn"));
	cp_perfmap_free(m);
	/* Owned by someone else than the target (and not root): refused. */
	if (getuid() == 0 && chown(path, 12345, 12345) == 0) {
		CHECK(cp_perfmap_load(pid, pid, 0, &m) == -EPERM);
		CHECK(cp_perfmap_load(pid, pid, 12345, &m) == 0);
		cp_perfmap_free(m);
	}
	/* A link planted in its place is not followed. */
	snprintf(link, sizeof(link), "%s.real", path);
	CHECK(rename(path, link) == 0);
	CHECK(symlink(link, path) == 0);
	CHECK(cp_perfmap_load(pid, pid, getuid(), &m) == -EPERM);
	unlink(path);
	unlink(link);
	/* Nor is a FIFO opened as a map (it would block). */
	CHECK(mkfifo(path, 0600) == 0);
	CHECK(cp_perfmap_load(pid, pid, getuid(), &m) == -EPERM);
	unlink(path);
}

int main(void)
{
	test_parse();
	test_long_name();
	test_load();
	return check_done("perfmap");
}
