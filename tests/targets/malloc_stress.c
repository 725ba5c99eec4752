/*
 * Allocation stress fixture: 16 threads (--threads N) allocate through every function of the
 * malloc family, fill each block with a pattern of its own, check it before freeing, and
 * count. On SIGUSR1 the main thread (waiting in sigwait) prints "CHECK ops=N bad=M": M blocks
 * whose pattern changed (memory damaged) and N operations so far. --pace US: each thread
 * sleeps US microseconds every 1000 operations (a lighter load). Prints "READY pid=PID".
 * "--pairs N" instead: one thread makes N malloc/free pairs of small sizes and prints
 * "pairs=N wall_ns=W cpu_ns=C ns_per_pair=X" (the loop's own CPU time per pair), the
 * allocation sampler's cost benchmark; "--pairs N --on-signal" prints READY and runs them on
 * each SIGUSR1 (waiting in sigwait, where a profiler can attach), until SIGTERM.
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SLOTS 64

static unsigned long ops[256];
static long pace_us;
static unsigned long bad[256];

struct block {
	unsigned char *p;
	size_t size;
	unsigned char tag;
};

static uint64_t next_rand(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void fill(struct block *b, unsigned char tag)
{
	b->tag = tag;
	memset(b->p, tag, b->size);
}

static int intact(const struct block *b)
{
	for (size_t i = 0; i < b->size; i++)
		if (b->p[i] != b->tag)
			return 0;
	return 1;
}

/* One allocation through a member of the family picked by r. */
__attribute__((noinline)) static void *family_alloc(uint64_t r, size_t size)
{
	void *p = NULL;

	switch (r % 6) {
	case 0:
		return malloc(size);
	case 1:
		return calloc(1, size);
	case 2:
		return posix_memalign(&p, 64, size) ? NULL : p;
	case 3:
		return aligned_alloc(64, (size + 63) & ~(size_t)63);
	case 4:
		return memalign(32, size);
	default:
		return reallocarray(NULL, size, 1);
	}
}

static void *worker(void *arg)
{
	long id = (long)arg;
	uint64_t seed = 0x9e3779b97f4a7c15ull * (uint64_t)(id + 1);
	struct block slot[SLOTS];

	memset(slot, 0, sizeof(slot));
	for (;;) {
		uint64_t r = next_rand(&seed);
		struct block *b = &slot[r % SLOTS];
		size_t size = 1 + (size_t)(next_rand(&seed) % ((r & 0x100) ? 65536 : 256));

		if (b->p) {
			if (!intact(b))
				__atomic_add_fetch(&bad[id], 1, __ATOMIC_RELAXED);
			if (r & 0x200) {
				unsigned char *q = realloc(b->p, size);

				if (q) {
					b->p = q;
					if (size > b->size)
						memset(q + b->size, b->tag, size - b->size);
					b->size = size;
					__atomic_add_fetch(&ops[id], 1, __ATOMIC_RELAXED);
					continue;
				}
			}
			free(b->p);
			b->p = NULL;
		}
		b->p = family_alloc(r >> 12, size);
		if (!b->p)
			continue;
		b->size = size;
		fill(b, (unsigned char)(r >> 24));
		if (__atomic_add_fetch(&ops[id], 1, __ATOMIC_RELAXED) % 1000 == 0 && pace_us)
			usleep((useconds_t)pace_us);
	}
	return NULL;
}

/*
 * N malloc/free pairs as an allocator-bound loop makes them. ns_per_pair is the thread's CPU
 * time (a machine busy with other work stretches the wall time, not this), wall_ns the wall.
 */
__attribute__((noinline)) static int pairs(long n)
{
	static const size_t sizes[8] = { 16, 24, 32, 48, 64, 96, 128, 256 };
	struct timespec w0, w1, c0, c1;
	double wall, cpu;

	clock_gettime(CLOCK_MONOTONIC, &w0);
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
	for (long i = 0; i < n; i++) {
		void *p = malloc(sizes[i & 7]);

		__asm__ volatile("" : : "r"(p) : "memory");
		free(p);
	}
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
	clock_gettime(CLOCK_MONOTONIC, &w1);
	wall = (w1.tv_sec - w0.tv_sec) * 1e9 + (w1.tv_nsec - w0.tv_nsec);
	cpu = (c1.tv_sec - c0.tv_sec) * 1e9 + (c1.tv_nsec - c0.tv_nsec);
	printf("pairs=%ld wall_ns=%.0f cpu_ns=%.0f ns_per_pair=%.3f\n", n, wall, cpu,
	       n > 0 ? cpu / (double)n : 0.0);
	return 0;
}

int main(int argc, char **argv)
{
	long threads = 16;
	sigset_t set;
	int sig;

	if (argc > 3 && !strcmp(argv[1], "--pairs") && !strcmp(argv[3], "--on-signal")) {
		sigemptyset(&set);
		sigaddset(&set, SIGUSR1);
		sigprocmask(SIG_BLOCK, &set, NULL);
		setvbuf(stdout, NULL, _IOLBF, 0);
		printf("READY pid=%d\n", (int)getpid());
		while (sigwait(&set, &sig) == 0)
			pairs(strtol(argv[2], NULL, 10));
		return 1;
	}
	if (argc > 2 && !strcmp(argv[1], "--pairs"))
		return pairs(strtol(argv[2], NULL, 10));
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--threads"))
			threads = strtol(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "--pace"))
			pace_us = strtol(argv[i + 1], NULL, 10);
	}
	if (threads < 1 || threads > 256)
		threads = 16;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, NULL);
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (long i = 0; i < threads; i++) {
		pthread_t t;

		if (pthread_create(&t, NULL, worker, (void *)i) != 0)
			return 1;
	}
	printf("READY pid=%d\n", (int)getpid());
	for (;;) {
		unsigned long n = 0, m = 0;

		if (sigwait(&set, &sig) != 0)
			return 1;
		for (long i = 0; i < threads; i++) {
			n += __atomic_load_n(&ops[i], __ATOMIC_RELAXED);
			m += __atomic_load_n(&bad[i], __ATOMIC_RELAXED);
		}
		printf("CHECK ops=%lu bad=%lu\n", n, m);
	}
}
