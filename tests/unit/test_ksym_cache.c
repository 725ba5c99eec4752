/*
 * Tests of the kernel symbols: parsing kallsyms and searching it (ksyms.h), and the table
 * cached per boot (ksym_cache.h): round trip, damage, refusals.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "ksym_cache.h"
#include "ksyms.h"

static char dir[] = "/tmp/cprof-test-ksyms-XXXXXX";

/* The path of this boot's file in the test's cache directory. */
static void boot_file(char *buf, size_t size)
{
	char boot[64] = "";
	FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");

	if (f) {
		if (!fgets(boot, sizeof(boot), f))
			boot[0] = '\0';
		fclose(f);
	}
	boot[strcspn(boot, "\n")] = '\0';
	snprintf(buf, size, "%s/ksyms1/%s", dir, boot);
}

/* A kallsyms-format file: text symbols kept (unsorted input sorted), the rest skipped. */
static void test_parse(void)
{
	char path[4200], longname[400];
	struct cp_ksyms *ks = NULL;
	const char *name;
	FILE *f;

	snprintf(path, sizeof(path), "%s/kallsyms", dir);
	memset(longname, 'x', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	f = fopen(path, "w");
	CHECK(f != NULL);
	if (!f)
		return;
	fprintf(f, "ffffffff81000200 T gamma\n"
		   "ffffffff81000000 t alpha\n"
		   "ffffffff81000100 D data_not_text\n"
		   "0000000000000000 T zero_address\n"
		   "ffffffff81000300 W weak_one\t[some_module]\n"
		   "ffffffff81000400 T %s\n"
		   "garbage line\n"
		   "ffffffff81000080 T beta", longname);
	fclose(f);
	CHECK(cp_ksyms_load_file(path, &ks) == 0 && ks != NULL);
	name = cp_ksyms_map_addr(ks, 0xffffffff81000050ull);
	CHECK(name && !strcmp(name, "alpha"));
	/* The last line has no newline: it is not a whole line and not kept. */
	name = cp_ksyms_map_addr(ks, 0xffffffff81000090ull);
	CHECK(name && !strcmp(name, "alpha"));
	name = cp_ksyms_map_addr(ks, 0xffffffff81000150ull);
	CHECK(name && !strcmp(name, "alpha"));
	name = cp_ksyms_map_addr(ks, 0xffffffff81000200ull);
	CHECK(name && !strcmp(name, "gamma"));
	name = cp_ksyms_map_addr(ks, 0xffffffff81000301ull);
	CHECK(name && !strcmp(name, "weak_one"));
	name = cp_ksyms_map_addr(ks, 0xffffffff81000401ull);
	CHECK(name && strlen(name) == 255 && name[0] == 'x');
	CHECK(cp_ksyms_map_addr(ks, 0xffffffff80000000ull) == NULL);
	CHECK(cp_ksyms_map_addr(NULL, 0xffffffff81000000ull) == NULL);
	cp_ksyms_free(ks);
	cp_ksyms_free(NULL);
	CHECK(cp_ksyms_load_file("/nonexistent/kallsyms", &ks) == -ENOENT && ks == NULL);
	unlink(path);
}

int main(void)
{
	static const char names[] = "alpha\0beta\0gamma";
	struct cp_ksym syms[3] = {
		{ .addr = 0xffffffff81000000ull, .name_off = 0 },
		{ .addr = 0xffffffff81000100ull, .name_off = 6 },
		{ .addr = 0xffffffff81000200ull, .name_off = 11 },
	};
	struct cp_ksym_map m;
	char path[4200], cmd[256];
	FILE *f;

	if (!mkdtemp(dir))
		return 1;
	setenv("CPROF_CACHE_DIR", dir, 1);
	CHECK(cp_ksym_cache_map(&m) == -ENOENT && m.base == NULL);
	CHECK(cp_ksym_cache_write(syms, 3, names, sizeof(names)) == 0);
	CHECK(cp_ksym_cache_map(&m) == 0);
	CHECK(m.n == 3 && m.names_len == sizeof(names));
	CHECK(m.n == 3 && m.syms[1].addr == syms[1].addr && !strcmp(m.names + m.syms[2].name_off,
								       "gamma"));
	cp_ksym_cache_unmap(&m);
	CHECK(m.base == NULL);
	/* cp_ksyms_load takes the cached table when there is one. */
	{
		struct cp_ksyms *ks = NULL;
		const char *name;

		CHECK(cp_ksyms_load(&ks) == 0 && ks != NULL);
		name = cp_ksyms_map_addr(ks, 0xffffffff81000150ull);
		CHECK(name && !strcmp(name, "beta"));
		cp_ksyms_free(ks);
	}
	test_parse();

	/* Names not ending in a NUL are refused when writing. */
	CHECK(cp_ksym_cache_write(syms, 3, "abc", 3) == -EINVAL);

	/* A truncated file is damaged; one with another magic is not ours to read. */
	boot_file(path, sizeof(path));
	CHECK(truncate(path, 50) == 0);
	CHECK(cp_ksym_cache_map(&m) == -EINVAL && m.base == NULL);
	f = fopen(path, "w");
	CHECK(f != NULL);
	if (f) {
		fputs("cprof-ksyms0\n and more bytes to be a header...........", f);
		fclose(f);
	}
	CHECK(cp_ksym_cache_map(&m) == -ENOENT);

	/* Caching off. */
	setenv("CPROF_CACHE_DIR", "", 1);
	CHECK(cp_ksym_cache_map(&m) == -ENOENT);
	CHECK(cp_ksym_cache_write(syms, 3, names, sizeof(names)) == -ENOENT);

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		printf("could not remove %s\n", dir);
	return check_done("ksym_cache");
}
