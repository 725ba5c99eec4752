/*
 * Probe library that the injection tests load into fixtures: a constructor that counts its
 * loads, an add, a call that sleeps (so that a test can kill the caller mid-call), and one that
 * says on which thread it runs. Writes with write(2) only: no stdio lock is taken.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>

int probe_loads;

__attribute__((constructor)) static void probe_init(void)
{
	probe_loads++;
}

long probe_add(long a, long b)
{
	return a + b;
}

long probe_sum6(long a, long b, long c, long d, long e, long f)
{
	return a + 2 * b + 3 * c + 4 * d + 5 * e + 6 * f;
}

long probe_loaded(void)
{
	return probe_loads;
}

static void say(const char *what, long v)
{
	struct timespec ts;
	char buf[128];
	int n;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	n = snprintf(buf, sizeof(buf), "PROBE %s tid=%ld ns=%lld v=%ld\n", what,
		     (long)syscall(SYS_gettid), (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec, v);
	if (write(1, buf, (size_t)n) < 0)
		return;
}

/* Sleep ms milliseconds on the calling thread, saying when it starts and ends; returns 42. */
long probe_sleep(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	say("begin", ms);
	while (nanosleep(&ts, &ts) < 0)
		;
	say("end", ms);
	return 42;
}

/* Clobber every vector register the ABI lets a function clobber, then return x. */
long probe_clobber(long x)
{
	__asm__ volatile("vpxor %%xmm0, %%xmm0, %%xmm0\n\t"
			 "vpcmpeqd %%ymm1, %%ymm1, %%ymm1\n\t"
			 "vmovdqa %%ymm1, %%ymm8\n\t"
			 "vmovdqa %%ymm1, %%ymm15"
			 ::: "xmm0", "xmm1", "xmm8", "xmm15");
	return x;
}

/* Fault (SIGSEGV): the caller must abandon the call and leave the thread as it was. */
long probe_fault(void)
{
	volatile long *bad;

	/* An address the compiler cannot see as constant: no array-bounds warning. */
	__asm__ volatile("mov $16, %0" : "=r"(bad));
	return *bad;
}
