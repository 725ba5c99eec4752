/*
 * Leaks at exit for record --leaks: `exit_leak MODE [clean]` starts a thread that blocks on a
 * pipe and is never joined, and opens a socket pair it never closes, then leaves by MODE:
 * "exit" (exit()), "return" (return from main) or "_exit" (_exit()). With "clean" it joins
 * its thread and closes its fds first: nothing leaks.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdbool.h>
#include <sys/socket.h>

#include "fixture.h"

static int pipefd[2];

/* The leaked thread: waits forever for a byte nobody writes. */
static __attribute__((noinline)) void *leaked_worker(void *arg)
{
	char c;

	(void)arg;
	if (read(pipefd[0], &c, 1) < 0)
		return NULL;
	return NULL;
}

/* Where the thread is created: a frame of our own, to be found in its creation stack. */
static __attribute__((noinline)) pthread_t spawn_worker(void)
{
	pthread_t t;

	if (pthread_create(&t, NULL, leaked_worker, NULL) != 0)
		die("pthread_create");
	return t;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "exit";
	bool clean = argc > 2 && !strcmp(argv[2], "clean");
	int sv[2];
	pthread_t t;

	if (pipe(pipefd) < 0 || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		die("pipe");
	t = spawn_worker();
	usleep(100000);	/* let it block in read */
	if (clean) {
		if (write(pipefd[1], "x", 1) != 1)
			die("write");
		pthread_join(t, NULL);
		close(pipefd[0]);
		close(pipefd[1]);
		close(sv[0]);
		close(sv[1]);
	}
	printf("exit_leak: leaving by %s\n", mode);
	fflush(stdout);
	if (!strcmp(mode, "_exit"))
		_exit(0);
	if (!strcmp(mode, "return"))
		return 0;
	exit(0);
}
