/* Fixture: a thread leak: a new thread every interval, each blocked forever on a pipe read. */
/*
 * argv[1]: milliseconds between threads (default 100); argv[2]: the most threads to create
 * (default 500). Every thread is named "leaked" and blocks in read on a pipe nobody writes:
 * the unbounded wait of a leaked connection handler. Prints READY when the first one runs,
 * then "THREADS n" after each creation. Exits when stdin is closed (argv[3] == "stdin").
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "fixture.h"

static int pipe_fds[2];

static __attribute__((noinline)) void leaked_handler(void)
{
	char c;

	for (;;)
		if (read(pipe_fds[0], &c, 1) <= 0) /* BLOCK:leak-read */
			pause();
}

static void *leaked(void *arg)
{
	prctl(PR_SET_NAME, "leaked", 0, 0, 0);
	leaked_handler();
	return NULL;
}

static void *stdin_watch(void *arg)
{
	char buf[64];

	while (read(0, buf, sizeof(buf)) > 0)
		;
	exit(0);
}

int main(int argc, char **argv)
{
	long ms = argc > 1 ? atol(argv[1]) : 100, max = argc > 2 ? atol(argv[2]) : 500;
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };
	pthread_attr_t attr;
	pthread_t t;

	if (pipe(pipe_fds) < 0)
		die("pipe");
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 64 << 10);
	if (argc > 3 && !strcmp(argv[3], "stdin") && pthread_create(&t, &attr, stdin_watch, NULL))
		die("pthread_create");
	for (long i = 0; i < max; i++) {
		if (pthread_create(&t, &attr, leaked, NULL))
			die("pthread_create");
		if (i == 0)
			printf("READY\n");
		printf("THREADS %ld\n", i + 1);
		fflush(stdout);
		nanosleep(&ts, NULL);
	}
	pause();
	return 0;
}
