/*
 * Heap profile fixture: on each SIGUSR1 (or at once with --now), leak_a keeps 200 blocks of
 * 1 MiB (never freed) and churn_b allocates and frees 5 GB (5e9 bytes) in 64-byte blocks
 * (--churn-mb sets the churn's size in 1e6 bytes), then prints "DONE N" (N = rounds so far). With --now it exits after one
 * round. Prints "READY pid=PID" when waiting. The main thread waits in sigwait: a thread
 * blocked in a system call, as injection wants one.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LEAK_BLOCKS 200
#define LEAK_SIZE (1u << 20)

static void *volatile kept[LEAK_BLOCKS * 64];
static size_t nkept;
static volatile unsigned long sink;

__attribute__((noinline)) static void leak_a(void)
{
	for (int i = 0; i < LEAK_BLOCKS; i++) {
		void *p = malloc(LEAK_SIZE);

		if (nkept < sizeof(kept) / sizeof(kept[0]))
			kept[nkept++] = p;
	}
}

__attribute__((noinline)) static void churn_b(unsigned long mb)
{
	unsigned long n = mb * 1000000ul / 64;

	for (unsigned long i = 0; i < n; i++) {
		char *volatile p = malloc(64);

		p[0] = (char)i;
		sink += (unsigned long)p[0];
		free(p);
	}
}

int main(int argc, char **argv)
{
	unsigned long churn_mb = 5000;
	int now = 0, rounds = 0, sig;
	sigset_t set;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--now"))
			now = 1;
		else if (!strcmp(argv[i], "--churn-mb") && i + 1 < argc)
			churn_mb = strtoul(argv[++i], NULL, 10);
	}
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, NULL);
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (;;) {
		if (!now) {
			printf("READY pid=%d\n", (int)getpid());
			if (sigwait(&set, &sig) != 0)
				return 1;
		}
		leak_a();
		churn_b(churn_mb);
		printf("DONE %d\n", ++rounds);
		if (now)
			return 0;
	}
}
