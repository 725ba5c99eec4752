/* Tests of the kernel symbol table cached per boot: round trip, damage, refusals. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "ksym_cache.h"

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
