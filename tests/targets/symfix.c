/*
 * Fixture for the symbolizer tests: a noinline function at a known line that calls an
 * always_inline one, and threads blocked in libc's read and nanosleep. Prints one line per
 * probe, "TAG RETURN-ADDRESS LINE EXTRA", then READY; exits when stdin closes.
 */
#include <pthread.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))

volatile int sink;

/* Prints where it returns to: the caller's call instruction is at that address minus one. */
NOINLINE void where(const char *tag, int line, int extra)
{
	printf("%s %p %d %d\n", tag, __builtin_return_address(0), line, extra);
	sink++;
}

static const int sym_inlined_line = __LINE__ + 1;
static inline __attribute__((always_inline)) void sym_inlined(int call_line)
{
	where("inlined", __LINE__, call_line);
	sink++;
}

static const int sym_outer_line = __LINE__ + 1;
NOINLINE void sym_outer(void)
{
	sym_inlined(__LINE__);
	where("outer", __LINE__, sym_outer_line);
	sink++;
}

static void *sleeper(void *arg)
{
	struct timespec ts = { 3600, 0 };

	for (;;)
		nanosleep(&ts, NULL);
	return NULL;
}

int main(void)
{
	pthread_t t;
	char buf[64];

	sym_outer();
	printf("decl sym_inlined %d\n", sym_inlined_line);
	if (pthread_create(&t, NULL, sleeper, NULL))
		return 1;
	printf("READY\n");
	fflush(stdout);
	/* The main thread waits in read(2) until the test closes our stdin. */
	while (read(0, buf, sizeof(buf)) > 0)
		;
	return 0;
}
