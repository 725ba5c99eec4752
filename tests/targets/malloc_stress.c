/*
 * Allocation stress fixture: 16 threads (--threads N) allocate through every function of the
 * malloc family, fill each block with a pattern of its own, check it before freeing, and
 * count. On SIGUSR1 the main thread (waiting in sigwait) prints "CHECK ops=N bad=M": M blocks
 * whose pattern changed (memory damaged) and N operations so far. --pace US: each thread
 * sleeps US microseconds every 1000 operations (a lighter load). Prints "READY pid=PID".
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

int main(int argc, char **argv)
{
	long threads = 16;
	sigset_t set;
	int sig;

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
