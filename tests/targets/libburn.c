/*
 * libburn.so: a library dlopen_burn loads while it is being profiled; burns CPU in its own code,
 * or leaks memory from it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static volatile uint64_t lib_sink;

__attribute__((noinline)) void burn_in_library(double seconds_of_work)
{
	uint64_t x = lib_sink;
	uint64_t n = (uint64_t)(seconds_of_work * 2e8);

	for (uint64_t i = 0; i < n; i++)
		x = x * 2862933555777941757ull + 3037000493ull;
	lib_sink = x;
}

static void *volatile lib_kept;

__attribute__((noinline)) static void library_leak_inner(void)
{
	char *p = malloc(1 << 20);

	if (p)
		memset(p, 1, 4096);
	lib_kept = p;
}

/* Leak mb blocks of 1 MiB, each allocated by library_leak_inner. */
__attribute__((noinline)) void leak_in_library(int mb)
{
	for (int i = 0; i < mb; i++)
		library_leak_inner();
}
