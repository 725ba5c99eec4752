/* libburn.so: a library dlopen_burn loads while it is being profiled; burns CPU in its own code. */
#include <stdint.h>

static volatile uint64_t lib_sink;

__attribute__((noinline)) void burn_in_library(double seconds_of_work)
{
	uint64_t x = lib_sink;
	uint64_t n = (uint64_t)(seconds_of_work * 2e8);

	for (uint64_t i = 0; i < n; i++)
		x = x * 2862933555777941757ull + 3037000493ull;
	lib_sink = x;
}
