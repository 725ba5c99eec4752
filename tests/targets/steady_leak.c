/*
 * Fixture: a thread leak in progress. A new "conn-handler" thread is made every INTERVAL ms
 * (argv[1], default 300), each blocked in the same read of a pipe nobody writes. READY is
 * printed once COUNT threads (argv[2], default 12) sleep there; the leak then goes on.
 * "pool" as argv[3] instead makes COUNT threads at once and no more: a fixed pool.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "fixture.h"

static int pipe_fds[2];
static _Atomic int tids[4096];
static _Atomic int ntids;

static __attribute__((noinline)) void handle_connection(void)
{
	char c;

	while (read(pipe_fds[0], &c, 1) > 0) /* LEAK: read */
		;
}

static void *handler_main(void *arg)
{
	int slot = atomic_fetch_add(&ntids, 1);

	(void)arg;
	if (slot < 4096)
		tids[slot] = (int)gettid();
	prctl(PR_SET_NAME, "conn-handler");
	handle_connection();
	return NULL;
}

static void spawn(void)
{
	pthread_t th;

	if (pthread_create(&th, NULL, handler_main, NULL) != 0)
		die("pthread_create");
}

/* How many of the handler threads sleep in read (syscall 0). */
static int blocked_in_read(void)
{
	int n = 0, made = atomic_load(&ntids);

	for (int i = 0; i < made && i < 4096; i++)
		n += tids[i] && task_syscall(tids[i]) == 0;
	return n;
}

int main(int argc, char **argv)
{
	int interval_ms = argc > 1 ? atoi(argv[1]) : 300;
	int count = argc > 2 ? atoi(argv[2]) : 12;
	bool pool = argc > 3 && strcmp(argv[3], "pool") == 0;
	struct timespec ts = { interval_ms / 1000, (long)(interval_ms % 1000) * 1000000L };
	int made = 0;

	if (pipe(pipe_fds) < 0)
		die("pipe");
	if (pool)
		for (; made < count; made++)
			spawn();
	for (;;) {
		if (!pool) {
			spawn();
			made++;
		}
		if (made == count) {
			while (blocked_in_read() < count)
				usleep(1000);
			printf("READY\n");
			fflush(stdout);
		}
		if (pool && made >= count)
			pause();
		nanosleep(&ts, NULL);
	}
}
