/* Fixture: a thread leak, hundreds of threads blocked in the same recv with no timeout. */
/*
 * N threads (argv[1], default 300), all named "conn-handler", each
 * blocked in the same recv on its own loopback TCP connection with no timeout — the classic
 * shape of a server whose peers went silent. Prints READY once all of them sleep in recv.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "fixture.h"

#define MAX_HANDLERS 2000

static int tids[MAX_HANDLERS];
static int fds[MAX_HANDLERS];

static __attribute__((noinline)) void handle_request(int fd)
{
	char buf[256];

	for (;;)
		if (recv(fd, buf, sizeof(buf), 0) <= 0) /* BLOCK:leak-recv */
			pause();
}

static void *handler(void *arg)
{
	long i = (long)arg;

	prctl(PR_SET_NAME, "conn-handler", 0, 0, 0);
	__atomic_store_n(&tids[i], (int)syscall(SYS_gettid), __ATOMIC_RELEASE);
	handle_request(fds[i]);
	return NULL;
}

int main(int argc, char **argv)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);
	pthread_attr_t attr;
	long n = argc > 1 ? strtol(argv[1], NULL, 10) : 300, i;
	int lfd;

	if (n < 1 || n > MAX_HANDLERS) {
		fprintf(stderr, "leak: thread count must be 1..%d\n", MAX_HANDLERS);
		return 2;
	}
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
	    listen(lfd, 128) < 0 || getsockname(lfd, (struct sockaddr *)&sin, &len) < 0)
		die("listen");

	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 128 * 1024);
	for (i = 0; i < n; i++) {
		int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		pthread_t th;

		/* The client end stays open and silent: the server side waits forever. */
		if (c < 0 || connect(c, (struct sockaddr *)&sin, sizeof(sin)) < 0)
			die("connect");
		fds[i] = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fds[i] < 0)
			die("accept");
		if (pthread_create(&th, &attr, handler, (void *)i))
			die("pthread_create");
		pthread_detach(th);
	}
	for (int tries = 0;; tries++) {
		long ok = 0;

		for (i = 0; i < n; i++) {
			int tid = __atomic_load_n(&tids[i], __ATOMIC_ACQUIRE);

			ok += tid && task_syscall(tid) == SYS_recvfrom;
		}
		if (ok == n)
			break;
		if (tries > 5000) {
			fprintf(stderr, "leak: handlers did not block\n");
			return 1;
		}
		usleep(2000);
	}
	printf("PORT %d\n", ntohs(sin.sin_port));
	printf("READY pid %d threads %ld\n", (int)getpid(), n);
	fflush(stdout);
	for (;;)
		pause();
}
