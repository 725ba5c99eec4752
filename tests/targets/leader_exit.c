/*
 * A process whose main thread has exited (pthread_exit in main) while two threads live on:
 * orphan_spin burns CPU, orphan_wait blocks reading a pipe. /proc/PID's maps, mem, root, exe
 * and fd went with the leader; /proc/PID/task/TID of a live thread still has them.
 * Prints "READY pid=N" once the leader is gone; runs at most 120 s.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <time.h>

#include "fixture.h"

static volatile unsigned long spins;
static int pipefd[2];

__attribute__((noinline)) static void orphan_spin(void)
{
	time_t start = time(NULL);

	while (time(NULL) - start < 120)
		spins++;
}

__attribute__((noinline)) static void orphan_wait(void)
{
	char c;

	if (read(pipefd[0], &c, 1) < 0)
		die("read");
}

static void *spinner(void *arg)
{
	orphan_spin();
	exit(0);
	return arg;
}

static void *waiter(void *arg)
{
	orphan_wait();
	return arg;
}

static void *announcer(void *arg)
{
	int pid = getpid();
	char st[64] = "";

	/* READY once the leader reads Z: a dump before that would see an ordinary process. */
	while (read_task_line(pid, pid, "stat", st, sizeof(st)) == 0 && !strstr(st, ") Z"))
		usleep(1000);
	printf("READY pid=%d\n", pid);
	fflush(stdout);
	return arg;
}

int main(void)
{
	pthread_t t;

	if (pipe(pipefd) < 0)
		die("pipe");
	if (pthread_create(&t, NULL, spinner, NULL) || pthread_create(&t, NULL, waiter, NULL) ||
	    pthread_create(&t, NULL, announcer, NULL))
		die("pthread_create");
	pthread_exit(NULL);
}
