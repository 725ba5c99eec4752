/* Fixture: one named thread blocked in each wait kind a process can produce by itself. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fixture.h"

/*
 * Every blocking call sits on a line with a BLOCK:<name> marker that the tests look up, in a
 * noinline function of its own so that it shows up as a frame. The main thread holds the mutex
 * and the write side of the rwlock, so their owner is the process id. The key=value lines
 * printed before READY tell the tests the addresses and fds to expect. Nothing here is meant
 * to return: each thread blocks for ten minutes or more, and the harness kills the process.
 */

#define NOINLINE __attribute__((noinline))

static pthread_mutex_t held_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_rwlock_t held_rwlock = PTHREAD_RWLOCK_INITIALIZER;
static pthread_mutex_t cond_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t never_cond = PTHREAD_COND_INITIALIZER;
static sem_t never_sem;

static int idle_pipe[2];	/* nobody ever writes: readers wait forever */
static int full_pipe[2];	/* filled to the brim: the writer waits forever */
static int pair[2];		/* socketpair; the reader has SO_RCVTIMEO */
static int tcp_server_fd;	/* accepted end of a loopback TCP connection, never written */
static int tcp_client_fd;
static int listen_fd;		/* nobody connects: accept waits */
static int full_listen_fd;	/* backlog full: connect waits for the handshake */
static struct sockaddr_in full_addr;
static int epoll_fd;

static atomic_int arrived;
static volatile int sink;

#define NTHREADS 20	/* the names in main() and w-waitpid */

static void name_self(const char *name)
{
	prctl(PR_SET_NAME, name, 0, 0, 0);
	atomic_fetch_add(&arrived, 1);
}

static NOINLINE void block_running(void)
{
	for (;;)
		sink++; /* BLOCK:running */
}

/* The volatile store after the lock keeps the call from becoming a tail call, which would
 * take block_mutex off the stack. */
static NOINLINE void block_mutex(void)
{
	pthread_mutex_lock(&held_mutex); /* BLOCK:mutex */
	sink++;
}

static NOINLINE void block_rwlock(void)
{
	pthread_rwlock_rdlock(&held_rwlock); /* BLOCK:rwlock */
	sink++;
}

static NOINLINE void block_condvar(void)
{
	pthread_mutex_lock(&cond_mutex);
	for (;;)
		pthread_cond_wait(&never_cond, &cond_mutex); /* BLOCK:condvar */
}

static NOINLINE void block_futex(void)
{
	while (sem_wait(&never_sem) != 0) /* BLOCK:futex */
		;
}

static NOINLINE void block_nanosleep(void)
{
	struct timespec ts = { .tv_sec = 500, .tv_nsec = 0 };

	for (;;)
		nanosleep(&ts, NULL); /* BLOCK:nanosleep */
}

static NOINLINE void block_clock_nanosleep(void)
{
	const int flags = TIMER_ABSTIME;
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += 600;
	for (;;)
		clock_nanosleep(CLOCK_MONOTONIC, flags, &ts, NULL); /* BLOCK:clock_nanosleep */
}

static NOINLINE void block_poll(void)
{
	struct pollfd pfd[2] = {
		{ .fd = idle_pipe[0], .events = POLLIN },
		{ .fd = pair[1], .events = POLLIN },
	};

	for (;;)
		poll(pfd, 2, 600000); /* BLOCK:poll */
}

static NOINLINE void block_epoll(void)
{
	struct epoll_event ev;

	for (;;)
		epoll_wait(epoll_fd, &ev, 1, -1); /* BLOCK:epoll */
}

static NOINLINE void block_select(void)
{
	for (;;) {
		fd_set rfds;
		struct timeval tv = { .tv_sec = 450, .tv_usec = 0 };

		FD_ZERO(&rfds);
		FD_SET(idle_pipe[0], &rfds);
		select(idle_pipe[0] + 1, &rfds, NULL, NULL, &tv); /* BLOCK:select */
	}
}

static NOINLINE void block_read(void)
{
	char c;

	for (;;)
		read(idle_pipe[0], &c, 1); /* BLOCK:read */
}

static NOINLINE void block_recv(void)
{
	char c;

	for (;;)
		recv(pair[0], &c, 1, 0); /* BLOCK:recv */
}

static NOINLINE void block_tcp_read(void)
{
	char c;

	for (;;)
		read(tcp_client_fd, &c, 1); /* BLOCK:tcp-read */
}

static NOINLINE void block_write(void)
{
	static char buf[4096];

	for (;;)
		write(full_pipe[1], buf, sizeof(buf)); /* BLOCK:write */
}

static NOINLINE void block_accept(void)
{
	for (;;)
		close(accept(listen_fd, NULL, NULL)); /* BLOCK:accept */
}

static NOINLINE void block_connect(void)
{
	/* SYNs to a listener whose accept queue is full are dropped, so connect() keeps
	 * retransmitting for about two minutes; then it fails and we start over. */
	for (;;) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);

		connect(fd, (struct sockaddr *)&full_addr, sizeof(full_addr)); /* BLOCK:connect */
		close(fd);
	}
}

static NOINLINE void block_waitpid(pid_t child)
{
	for (;;)
		waitpid(child, NULL, 0); /* BLOCK:waitpid */
}

static NOINLINE void block_sigwaitinfo(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	for (;;)
		sigwaitinfo(&set, NULL); /* BLOCK:sigwaitinfo */
}

static NOINLINE void block_sigtimedwait(void)
{
	sigset_t set;
	struct timespec ts = { .tv_sec = 800, .tv_nsec = 0 };

	sigemptyset(&set);
	sigaddset(&set, SIGUSR2);
	for (;;)
		sigtimedwait(&set, NULL, &ts); /* BLOCK:sigtimedwait */
}

/*
 * A vfork parent waits for its child to exec or exit in an uninterruptible (killable) sleep:
 * the one "disk" wait a process can produce without a device. The child shares our memory
 * and stack, so it only makes system calls; it dies with the thread that made it.
 */
static NOINLINE void block_vfork(void)
{
	pid_t parent = getpid();

	if (vfork() == 0) { /* BLOCK:disk */
		syscall(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
		if (syscall(SYS_getppid) != parent)
			syscall(SYS_exit, 0);
		for (;;)
			syscall(SYS_pause);
	}
	sink++;
}

static NOINLINE void block_main(void)
{
	for (;;)
		pause(); /* BLOCK:main */
}

static void *thread_main(void *arg)
{
	const char *name = arg;

	name_self(name);
	if (!strcmp(name, "w-running"))
		block_running();
	else if (!strcmp(name, "w-mutex"))
		block_mutex();
	else if (!strcmp(name, "w-rwlock"))
		block_rwlock();
	else if (!strcmp(name, "w-condvar"))
		block_condvar();
	else if (!strcmp(name, "w-futex"))
		block_futex();
	else if (!strcmp(name, "w-nanosleep"))
		block_nanosleep();
	else if (!strcmp(name, "w-clocksleep"))
		block_clock_nanosleep();
	else if (!strcmp(name, "w-poll"))
		block_poll();
	else if (!strcmp(name, "w-epoll"))
		block_epoll();
	else if (!strcmp(name, "w-select"))
		block_select();
	else if (!strcmp(name, "w-read"))
		block_read();
	else if (!strcmp(name, "w-recv"))
		block_recv();
	else if (!strcmp(name, "w-tcp-read"))
		block_tcp_read();
	else if (!strcmp(name, "w-write"))
		block_write();
	else if (!strcmp(name, "w-accept"))
		block_accept();
	else if (!strcmp(name, "w-connect"))
		block_connect();
	else if (!strcmp(name, "w-sigwait"))
		block_sigwaitinfo();
	else if (!strcmp(name, "w-sigtimedwait"))
		block_sigtimedwait();
	else if (!strcmp(name, "w-vfork"))
		block_vfork();
	return NULL;
}

static void *waitpid_main(void *arg)
{
	pid_t parent = getpid();
	pid_t child;

	(void)arg;
	name_self("w-waitpid");
	child = fork();
	if (child == 0) {
		/* Die with the thread that forked us, so the child never outlives the fixture. */
		prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
		if (getppid() != parent)
			_exit(0);
		for (;;)
			pause();
	}
	if (child < 0)
		die("fork");
	printf("child=%d\n", (int)child);
	block_waitpid(child);
	return NULL;
}

static int tcp_listener(int backlog, struct sockaddr_in *addr)
{
	socklen_t len = sizeof(*addr);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd < 0)
		die("socket");
	memset(addr, 0, sizeof(*addr));
	addr->sin_family = AF_INET;
	addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)addr, sizeof(*addr)) || listen(fd, backlog) ||
	    getsockname(fd, (struct sockaddr *)addr, &len))
		die("listen");
	return fd;
}

static void setup(void)
{
	struct sockaddr_in addr;
	struct timeval tv = { .tv_sec = 700, .tv_usec = 0 };
	struct epoll_event ev = { .events = EPOLLIN };
	char buf[4096] = { 0 };
	int fl, i;

	if (sem_init(&never_sem, 0, 0))
		die("sem_init");
	if (pipe(idle_pipe) || pipe(full_pipe))
		die("pipe");
	fl = fcntl(full_pipe[1], F_GETFL);
	fcntl(full_pipe[1], F_SETFL, fl | O_NONBLOCK);
	while (write(full_pipe[1], buf, sizeof(buf)) > 0)
		;
	fcntl(full_pipe[1], F_SETFL, fl);

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, pair))
		die("socketpair");
	if (setsockopt(pair[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)))
		die("SO_RCVTIMEO");

	/* A connected loopback TCP pair; nobody writes on it. */
	i = tcp_listener(1, &addr);
	tcp_client_fd = socket(AF_INET, SOCK_STREAM, 0);
	if (connect(tcp_client_fd, (struct sockaddr *)&addr, sizeof(addr)))
		die("connect");
	tcp_server_fd = accept(i, NULL, NULL);
	if (tcp_server_fd < 0)
		die("accept");
	close(i);

	listen_fd = tcp_listener(16, &addr);

	/* Backlog 0 holds one connection; fill it so the next connect cannot complete. */
	full_listen_fd = tcp_listener(0, &full_addr);
	for (i = 0; i < 2; i++) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);

		connect(fd, (struct sockaddr *)&full_addr, sizeof(full_addr));
	}
	usleep(100000);

	epoll_fd = epoll_create1(0);
	if (epoll_fd < 0 || epoll_ctl(epoll_fd, EPOLL_CTL_ADD, idle_pipe[0], &ev))
		die("epoll");
}

/* Wait until every worker (but the spinner) sleeps in the kernel, for at most ten seconds. */
static void wait_blocked(void)
{
	int tries;

	for (tries = 0; tries < 200; tries++) {
		int sleeping = 0;
		struct dirent *de;
		DIR *dir;

		if (atomic_load(&arrived) == NTHREADS && (dir = opendir("/proc/self/task"))) {
			while ((de = readdir(dir))) {
				char st = task_state(getpid(), atoi(de->d_name));

				if (atoi(de->d_name) != getpid() && (st == 'S' || st == 'D'))
					sleeping++;
			}
			closedir(dir);
			if (sleeping >= NTHREADS - 1)
				return;
		}
		usleep(50000);
	}
}

int main(void)
{
	static const char *const names[] = {
		"w-running", "w-mutex", "w-rwlock", "w-condvar", "w-futex", "w-nanosleep",
		"w-clocksleep", "w-poll", "w-epoll", "w-select", "w-read", "w-recv", "w-tcp-read",
		"w-write", "w-accept", "w-connect", "w-sigwait", "w-sigtimedwait", "w-vfork",
	};
	sigset_t set;
	pthread_t th;
	size_t i;

	setvbuf(stdout, NULL, _IOLBF, 0);
	/* sigwaitinfo needs its signals blocked everywhere; threads inherit this mask. */
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &set, NULL);

	setup();
	pthread_mutex_lock(&held_mutex);
	pthread_rwlock_wrlock(&held_rwlock);

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (pthread_create(&th, NULL, thread_main, (void *)names[i]))
			die("pthread_create");
	if (pthread_create(&th, NULL, waitpid_main, NULL))
		die("pthread_create");

	printf("pid=%d\n", (int)getpid());
	printf("mutex=%p\n", (void *)&held_mutex);
	printf("rwlock=%p\n", (void *)&held_rwlock);
	printf("cond=%p\n", (void *)&never_cond);
	printf("sem=%p\n", (void *)&never_sem);
	printf("idle_pipe_read=%d\n", idle_pipe[0]);
	printf("full_pipe_write=%d\n", full_pipe[1]);
	printf("pair_read=%d\n", pair[0]);
	printf("tcp_read=%d\n", tcp_client_fd);
	printf("listen=%d\n", listen_fd);
	printf("epoll=%d\n", epoll_fd);
	printf("connect_to=127.0.0.1:%d\n", ntohs(full_addr.sin_port));
	wait_blocked();
	usleep(200000);
	printf("READY\n");
	block_main();
	return 0;
}
