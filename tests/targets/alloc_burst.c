/*
 * alloc_burst N: N malloc/free pairs of 0 to 4999 bytes (size i % 5000) as fast as it can,
 * then exits: about 2.5 KB a pair, so that a heap profile at the default rate samples faster
 * than a reader keeps up, and the process is gone before cprof's last look. Prints
 * "bytes=B" (the total asked for).
 */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
	long n = argc > 1 ? strtol(argv[1], NULL, 10) : 2000000;
	unsigned long long bytes = 0;

	for (long i = 0; i < n; i++) {
		void *p = malloc((size_t)(i % 5000));

		__asm__ volatile("" : : "r"(p) : "memory");
		bytes += (unsigned long long)(i % 5000);
		free(p);
	}
	printf("bytes=%llu\n", bytes);
	return 0;
}
