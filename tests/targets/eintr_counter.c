/*
 * Fixture for the zero-EINTR guarantee: threads blocked in calls that a ptrace stop would fail
 * with EINTR instead of restarting (epoll_wait, recv/read/accept under SO_RCVTIMEO,
 * sigtimedwait), each counting the EINTRs it sees, plus a busy thread. SIGUSR1 makes the main
 * thread print "COUNT eintr=N" (N summed over every thread); it prints READY when set up.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static atomic_long eintr_count;
static atomic_int ready;
static int pipe_fds[2];
static int sock_pair[2];
static int sock_pair2[2];
static int listen_fd;
static int epoll_fd;

static void counted(long ret)
{
	if (ret < 0 && errno == EINTR)
		atomic_fetch_add(&eintr_count, 1);
}

__attribute__((noinline)) static void block_epoll(int timeout_ms)
{
	struct epoll_event ev;

	for (;;)
		counted(epoll_wait(epoll_fd, &ev, 1, timeout_ms)); /* EINTR:epoll */
}

__attribute__((noinline)) static void block_recv(void)
{
	char c;

	for (;;)
		counted(recv(sock_pair[0], &c, 1, 0)); /* EINTR:recv */
}

__attribute__((noinline)) static void block_read(void)
{
	char c;

	for (;;)
		counted(read(sock_pair2[0], &c, 1)); /* EINTR:read */
}

__attribute__((noinline)) static void block_accept(void)
{
	for (;;)
		counted(accept(listen_fd, NULL, NULL)); /* EINTR:accept */
}

__attribute__((noinline)) static void block_sigtimedwait(void)
{
	struct timespec ts = { 3600, 0 };
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGUSR2);
	for (;;)
		counted(sigtimedwait(&set, NULL, &ts)); /* EINTR:sigtimedwait */
}

__attribute__((noinline)) static long spin(long x)
{
	for (int i = 0; i < 1000; i++)
		x = x * 6364136223846793005L + 1442695040888963407L;
	return x;
}

static void *thread_main(void *arg)
{
	long kind = (long)arg;
	static const char *const names[] = { "e-epoll", "e-epoll-tmo", "e-recv-tmo",
					     "e-read-tmo", "e-accept-tmo", "e-sigwait",
					     "e-busy" };
	volatile long sink = 1;

	prctl(PR_SET_NAME, names[kind]);
	atomic_fetch_add(&ready, 1);
	switch (kind) {
	case 0:
		block_epoll(-1);
		break;
	case 1:
		block_epoll(3600 * 1000);
		break;
	case 2:
		block_recv();
		break;
	case 3:
		block_read();
		break;
	case 4:
		block_accept();
		break;
	case 5:
		block_sigtimedwait();
		break;
	default:
		for (;;)
			sink = spin(sink);
	}
	return NULL;
}

int main(void)
{
	struct sockaddr_in addr = { .sin_family = AF_INET,
				    .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct timeval tv = { 3600, 0 };
	struct epoll_event ev = { .events = EPOLLIN };
	sigset_t set;
	pthread_t t;

	if (pipe(pipe_fds) < 0 || socketpair(AF_UNIX, SOCK_STREAM, 0, sock_pair) < 0 ||
	    socketpair(AF_UNIX, SOCK_STREAM, 0, sock_pair2) < 0)
		return 1;
	setsockopt(sock_pair[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(sock_pair2[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	listen_fd = socket(AF_INET, SOCK_STREAM, 0);
	if (listen_fd < 0 || bind(listen_fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
	    listen(listen_fd, 4) < 0)
		return 1;
	setsockopt(listen_fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	epoll_fd = epoll_create1(0);
	if (epoll_fd < 0 || epoll_ctl(epoll_fd, EPOLL_CTL_ADD, pipe_fds[0], &ev) < 0)
		return 1;

	/* Every thread inherits SIGUSR1/2 blocked: only sigwaitinfo below takes SIGUSR1. */
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	for (long k = 0; k < 7; k++)
		if (pthread_create(&t, NULL, thread_main, (void *)k) != 0)
			return 1;
	while (atomic_load(&ready) < 7)
		usleep(1000);
	/* Let every thread reach its blocking call. */
	usleep(200000);
	printf("READY\n");
	fflush(stdout);
	sigdelset(&set, SIGUSR2);
	for (;;) {
		int sig = sigwaitinfo(&set, NULL); /* EINTR:main */

		if (sig < 0) {
			counted(sig);
			continue;
		}
		printf("COUNT eintr=%ld\n", atomic_load(&eintr_count));
		fflush(stdout);
	}
}
