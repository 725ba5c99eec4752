/*
 * Fixture for the cost of off-CPU profiles: two threads pass a byte back and forth over two
 * pipes, so each round trip is two context switches out of blocking reads. With an argument
 * RATE, at most RATE round trips a second (paced every millisecond). Prints READY, then every
 * second "ROUNDS n" (round trips in that second).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "fixture.h"

static int ping[2], pong[2];
static _Atomic unsigned long rounds;
static unsigned long rate;

static void *echo(void *arg)
{
	char c;

	(void)arg;
	pthread_setname_np(pthread_self(), "echo");
	for (;;) {
		if (read(ping[0], &c, 1) != 1 || write(pong[1], &c, 1) != 1)
			die("echo");
	}
	return NULL;
}

static void *serve(void *arg)
{
	struct timespec next;
	unsigned long in_ms = 0;
	char c = 'x';

	(void)arg;
	pthread_setname_np(pthread_self(), "serve");
	clock_gettime(CLOCK_MONOTONIC, &next);
	for (;;) {
		if (write(ping[1], &c, 1) != 1 || read(pong[0], &c, 1) != 1)
			die("serve");
		rounds++;
		if (rate && ++in_ms >= (rate + 999) / 1000) {
			in_ms = 0;
			next.tv_nsec += 1000000;
			if (next.tv_nsec >= 1000000000) {
				next.tv_nsec -= 1000000000;
				next.tv_sec++;
			}
			clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
		}
	}
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t t;

	if (argc > 1)
		rate = strtoul(argv[1], NULL, 10);
	if (pipe(ping) < 0 || pipe(pong) < 0)
		die("pipe");
	if (pthread_create(&t, NULL, echo, NULL) || pthread_create(&t, NULL, serve, NULL))
		die("pthread_create");
	printf("READY\n");
	fflush(stdout);
	for (;;) {
		unsigned long before = rounds;

		sleep(1);
		printf("ROUNDS %lu\n", rounds - before);
		fflush(stdout);
	}
}
