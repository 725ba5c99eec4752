/*
 * Fixture for wall and block profiles: thread "sleeper" in a nanosleep(100 ms) loop, thread
 * "reader" blocked in read() on a pipe nobody writes (since before READY), thread "spinner"
 * burning CPU. Prints READY once every thread has its name, the reader sits in read() and the
 * others run (a thread not yet named is still "offcpu": its samples would be charged to main's
 * name). With the
 * argument "spawn", the main thread then creates (and joins) a short-lived thread every 20 ms
 * from spawn_one(), printing "SPAWNED n realtime_ns" every 10 threads; else it waits in pause().
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "fixture.h"

static int pipe_fds[2];
static volatile int reader_tid;
static int named;		/* atomic: threads that have set their names */
static volatile unsigned long spins;

__attribute__((noinline)) static void sleep_step(void)
{
	struct timespec ts = { 0, 100 * 1000 * 1000 };

	nanosleep(&ts, NULL);
	__asm__ volatile("" ::: "memory");
}

static void *sleeper(void *arg)
{
	(void)arg;
	pthread_setname_np(pthread_self(), "sleeper");
	__atomic_fetch_add(&named, 1, __ATOMIC_RELEASE);
	for (;;)
		sleep_step();
	return NULL;
}

__attribute__((noinline)) static void read_idle_pipe(void)
{
	char c;

	if (read(pipe_fds[0], &c, 1) < 0)
		die("read");
	__asm__ volatile("" ::: "memory");
}

static void *reader(void *arg)
{
	(void)arg;
	pthread_setname_np(pthread_self(), "reader");
	__atomic_fetch_add(&named, 1, __ATOMIC_RELEASE);
	reader_tid = (int)syscall(SYS_gettid);
	read_idle_pipe();
	return NULL;
}

__attribute__((noinline)) static void spin_forever(void)
{
	for (;;)
		spins++;
}

static void *spinner(void *arg)
{
	(void)arg;
	pthread_setname_np(pthread_self(), "spinner");
	__atomic_fetch_add(&named, 1, __ATOMIC_RELEASE);
	spin_forever();
	return NULL;
}

static void *short_lived(void *arg)
{
	return arg;
}

__attribute__((noinline)) static void spawn_one(void)
{
	pthread_t t;

	if (pthread_create(&t, NULL, short_lived, NULL))
		die("pthread_create");
	pthread_join(t, NULL);
	__asm__ volatile("" ::: "memory");
}

static void spawn_loop(void)
{
	for (unsigned long n = 1;; n++) {
		spawn_one();
		if (n % 10 == 0) {
			struct timespec ts;

			clock_gettime(CLOCK_REALTIME, &ts);
			printf("SPAWNED %lu %lld\n", n, (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
			fflush(stdout);
		}
		usleep(20000);
	}
}

int main(int argc, char **argv)
{
	pthread_t t[3];

	if (pipe(pipe_fds) < 0)
		die("pipe");
	if (pthread_create(&t[0], NULL, sleeper, NULL) || pthread_create(&t[1], NULL, reader, NULL) ||
	    pthread_create(&t[2], NULL, spinner, NULL))
		die("pthread_create");
	while (!reader_tid || task_syscall(reader_tid) != SYS_read ||
	       __atomic_load_n(&named, __ATOMIC_ACQUIRE) < 3)
		usleep(1000);
	printf("READY\n");
	fflush(stdout);
	if (argc > 1 && !strcmp(argv[1], "spawn"))
		spawn_loop();
	for (;;)
		pause();
}
