/*
 * Benchmark target: a fixed amount of CPU work (sorting through libc's qsort, hashing in
 * noinline functions) on T threads, reporting its own wall and CPU time, so the cost of a
 * profiler watching it is the difference in run time. With "forever" it loops until killed.
 * With "nosort" after that it only fills and hashes: a small, fixed set of stacks, where
 * qsort's recursive merge sort makes new distinct stacks without end.
 *
 *   fixed_work [THREADS [ROUNDS|forever [nosort]]]
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>

static long rounds = 2000;
static int forever, nosort;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmp_u32(const void *a, const void *b)
{
	unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;

	return (x > y) - (x < y);
}

__attribute__((noinline)) static unsigned hash_block(const unsigned *v, size_t n)
{
	unsigned h = 2166136261u;

	for (size_t i = 0; i < n; i++)
		h = (h ^ v[i]) * 16777619u;
	return h;
}

__attribute__((noinline)) static void fill(unsigned *v, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		v[i] = seed;
	}
}

__attribute__((noinline)) static unsigned one_round(unsigned *v, size_t n, unsigned seed)
{
	fill(v, n, seed);
	if (!nosort)
		qsort(v, n, sizeof(*v), cmp_u32);
	return hash_block(v, n);
}

static void *worker(void *arg)
{
	size_t n = 20000;
	unsigned *v = malloc(n * sizeof(*v));
	unsigned h = (unsigned)(long)arg;
	char name[16];

	snprintf(name, sizeof(name), "work-%ld", (long)arg);
	prctl(PR_SET_NAME, name);
	for (long r = 0; forever || r < rounds; r++)
		h ^= one_round(v, n, h + (unsigned)r);
	free(v);
	return (void *)(long)h;
}

int main(int argc, char **argv)
{
	int threads = argc > 1 ? atoi(argv[1]) : 1;
	pthread_t t[64];
	struct rusage ru;
	double t0;

	if (argc > 2 && !strcmp(argv[2], "forever"))
		forever = 1;
	else if (argc > 2)
		rounds = atol(argv[2]);
	if (argc > 3 && !strcmp(argv[3], "nosort"))
		nosort = 1;
	if (threads < 1 || threads > 64)
		return 2;
	printf("READY\n");
	fflush(stdout);
	t0 = now();
	for (int i = 0; i < threads; i++)
		pthread_create(&t[i], NULL, worker, (void *)(long)i);
	for (int i = 0; i < threads; i++)
		pthread_join(t[i], NULL);
	getrusage(RUSAGE_SELF, &ru);
	printf("work_seconds=%.4f cpu_seconds=%.4f\n", now() - t0,
	       ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6);
	return 0;
}
