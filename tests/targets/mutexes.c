/*
 * Fixture for mutex profiles. "mutex" (default): 8 threads take turns on one pthread mutex,
 * each holding it 10 ms asleep in hold_and_release(); the time they spend in
 * pthread_mutex_lock, measured with their own clock (finished waits and the part of the
 * current ones), is printed every 50 ms as "WAITED realtime_ns total_ns". "cond": 8 threads wait on a condition variable that the main thread
 * signals every 10 ms, after its unlock (the mutex is hardly ever contended). Prints READY when started.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fixture.h"

#define THREADS 8

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static _Atomic unsigned long long waited_ns;
static unsigned long ticks;

static unsigned long long now(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec;
}

__attribute__((noinline)) static void hold_and_release(void)
{
	usleep(10000);
	pthread_mutex_unlock(&lock);
	__asm__ volatile("" ::: "memory");
}

/* When each contender began its current wait for the lock (0: not waiting). */
static _Atomic unsigned long long wait_start[THREADS];

static void *contender(void *arg)
{
	_Atomic unsigned long long *start = arg;

	pthread_setname_np(pthread_self(), "contender");
	for (;;) {
		unsigned long long t0 = now(CLOCK_MONOTONIC);

		*start = t0;
		pthread_mutex_lock(&lock);
		*start = 0;
		waited_ns += now(CLOCK_MONOTONIC) - t0;
		hold_and_release();
	}
	return NULL;
}

/* The waiting so far: the finished waits and the part of the current ones already waited. */
static unsigned long long waited_so_far(void)
{
	unsigned long long t = now(CLOCK_MONOTONIC), sum = waited_ns;

	for (int i = 0; i < THREADS; i++) {
		unsigned long long s = wait_start[i];

		if (s && s < t)
			sum += t - s;
	}
	return sum;
}

__attribute__((noinline)) static void wait_for_tick(void)
{
	unsigned long seen;

	pthread_mutex_lock(&lock);
	seen = ticks;
	while (ticks == seen)
		pthread_cond_wait(&cond, &lock);
	pthread_mutex_unlock(&lock);
}

static void *cond_waiter(void *arg)
{
	(void)arg;
	pthread_setname_np(pthread_self(), "cond_waiter");
	for (;;)
		wait_for_tick();
	return NULL;
}

int main(int argc, char **argv)
{
	bool cond_mode = argc > 1 && !strcmp(argv[1], "cond");
	pthread_t t;

	for (int i = 0; i < THREADS; i++)
		if (pthread_create(&t, NULL, cond_mode ? cond_waiter : contender,
				   (void *)&wait_start[i]))
			die("pthread_create");
	if (!cond_mode)
		printf("WAITED %llu %llu\n", now(CLOCK_REALTIME), waited_so_far());
	printf("READY\n");
	fflush(stdout);
	for (;;) {
		if (cond_mode) {
			usleep(10000);
			/* Signalled after the unlock: the one waiter woken finds the mutex free. */
			pthread_mutex_lock(&lock);
			ticks++;
			pthread_mutex_unlock(&lock);
			pthread_cond_signal(&cond);
			continue;
		}
		usleep(50000);
		printf("WAITED %llu %llu\n", now(CLOCK_REALTIME), waited_so_far());
		fflush(stdout);
	}
}
