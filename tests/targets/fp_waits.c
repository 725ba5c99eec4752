/*
 * Fixture for frame-pointer code blocked in system calls: built -O0 and -O2
 * -fno-omit-frame-pointer, so every function of its own keeps rbp as the frame base and its
 * callers' CFA depends on rbp, which a live capture does not have. Threads block in read (a
 * pipe), recv with SO_RCVTIMEO, epoll_wait, nanosleep and a mutex, each three calls deep, and
 * count the EINTRs they see; SIGUSR1 makes the main thread print "COUNT eintr=N". READY when set.
 */
#define _GNU_SOURCE
#include <errno.h>
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

#include "fixture.h"

static atomic_long eintr_count;
static atomic_int ready;
static int pipe_fds[2];
static int sock_pair[2];
static int epoll_fd;
static pthread_mutex_t held = PTHREAD_MUTEX_INITIALIZER;

static void counted(long ret)
{
	if (ret < 0 && errno == EINTR)
		atomic_fetch_add(&eintr_count, 1);
}

__attribute__((noinline)) void fp_read_leaf(void)
{
	char c;

	for (;;)
		counted(read(pipe_fds[0], &c, 1)); /* FP:read */
}

__attribute__((noinline)) void fp_recv_leaf(void)
{
	char c;

	for (;;)
		counted(recv(sock_pair[0], &c, 1, 0)); /* FP:recv */
}

__attribute__((noinline)) void fp_epoll_leaf(void)
{
	struct epoll_event ev;

	for (;;)
		counted(epoll_wait(epoll_fd, &ev, 1, -1)); /* FP:epoll */
}

__attribute__((noinline)) void fp_sleep_leaf(void)
{
	struct timespec ts = { 3600, 0 };

	for (;;)
		counted(nanosleep(&ts, NULL)); /* FP:sleep */
}

__attribute__((noinline)) void fp_mutex_leaf(void)
{
	pthread_mutex_lock(&held); /* FP:mutex */
	pthread_mutex_unlock(&held);
}

/* Two more frames of our own above each leaf: the chain the unwinder must recover. */
__attribute__((noinline)) void fp_middle(void (*leaf)(void))
{
	leaf(); /* FP:middle */
	__asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) void fp_outer(void (*leaf)(void))
{
	fp_middle(leaf); /* FP:outer */
	__asm__ volatile("" ::: "memory");
}

struct job {
	const char *name;
	void (*leaf)(void);
};

static void *thread_main(void *arg)
{
	const struct job *j = arg;

	prctl(PR_SET_NAME, j->name);
	atomic_fetch_add(&ready, 1);
	fp_outer(j->leaf); /* FP:thread */
	return NULL;
}

int main(void)
{
	static const struct job jobs[] = {
		{ "fp-read", fp_read_leaf },	 { "fp-recv-tmo", fp_recv_leaf },
		{ "fp-epoll", fp_epoll_leaf },	 { "fp-sleep", fp_sleep_leaf },
		{ "fp-mutex", fp_mutex_leaf },
	};
	struct timeval tmo = { 3600, 0 };
	struct epoll_event ev = { .events = EPOLLIN };
	pthread_t th;
	sigset_t usr1;
	size_t n = sizeof(jobs) / sizeof(jobs[0]);

	if (pipe(pipe_fds) < 0 || socketpair(AF_UNIX, SOCK_STREAM, 0, sock_pair) < 0)
		die("pipe");
	if (setsockopt(sock_pair[0], SOL_SOCKET, SO_RCVTIMEO, &tmo, sizeof(tmo)) < 0)
		die("SO_RCVTIMEO");
	epoll_fd = epoll_create1(0);
	ev.data.fd = pipe_fds[0];
	if (epoll_fd < 0 || epoll_ctl(epoll_fd, EPOLL_CTL_ADD, sock_pair[1], &ev) < 0)
		die("epoll");
	/* SIGUSR1 stays blocked everywhere: only the main thread's sigwaitinfo() takes it. */
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &usr1, NULL);
	pthread_mutex_lock(&held);
	for (size_t i = 0; i < n; i++)
		if (pthread_create(&th, NULL, thread_main, (void *)&jobs[i]) != 0)
			die("pthread_create");
	while (atomic_load(&ready) < (int)n)
		usleep(1000);
	/* Every thread in its blocking call (or on the mutex's futex) before READY. */
	for (int tries = 0; tries < 5000; tries++) {
		int blocked = 0;
		char path[64];

		for (int tid = getpid() + 1; tid <= getpid() + (int)n + 4; tid++) {
			long nr;

			snprintf(path, sizeof(path), "/proc/self/task/%d", tid);
			if (access(path, F_OK) < 0)
				continue;
			nr = task_syscall(tid);
			blocked += nr >= 0;
		}
		if (blocked >= (int)n)
			break;
		usleep(1000);
	}
	printf("READY\n");
	fflush(stdout);
	for (;;) {
		if (sigwaitinfo(&usr1, NULL) < 0) {
			counted(-1);
			continue;
		}
		printf("COUNT eintr=%ld\n", atomic_load(&eintr_count));
		fflush(stdout);
	}
}
