/* Fixture: threads blocked on sockets, pipes and epoll whose other ends are known. */
/*
 * Threads: TCP recv with SO_RCVTIMEO=7s and
 * without, reads on pipes whose writer is this process or a child, accept, epoll_wait, and an
 * IPv6 recv where the kernel has IPv6; idle fds of other kinds (eventfd, timerfd, signalfd, a
 * file at offset 100, a named pipe, UDP and unix sockets). Prints "PORT", "CHILD", "FD <label> <n>"
 * and "TID" lines, then READY once every thread sleeps in its call.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "fixture.h"

#define MAX_THREADS 16

struct job {
	const char *name;
	int fd;
	int kind;		/* 0 recv, 1 read, 2 accept, 3 epoll_wait */
	long nr[2];		/* the syscall it sleeps in */
	int tid;
};

static struct job jobs[MAX_THREADS];
static int njobs;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static __attribute__((noinline)) void do_recv(int fd)
{
	char buf[64];

	/* With SO_RCVTIMEO the call returns EAGAIN every 7 s: go back to waiting. */
	for (;;)
		if (recv(fd, buf, sizeof(buf), 0) == 0) /* BLOCK:recv */
			pause();
}

static __attribute__((noinline)) void do_read(int fd)
{
	char buf[64];

	for (;;)
		if (read(fd, buf, sizeof(buf)) == 0) /* BLOCK:read */
			pause();
}

static __attribute__((noinline)) void do_accept(int fd)
{
	for (;;) {
		int c = accept(fd, NULL, NULL); /* BLOCK:accept */

		if (c >= 0)
			close(c);
	}
}

static __attribute__((noinline)) void do_epoll(int fd)
{
	struct epoll_event ev[4];

	for (;;)
		epoll_wait(fd, ev, 4, -1); /* BLOCK:epoll */
}

static void *job_main(void *arg)
{
	struct job *j = arg;

	prctl(PR_SET_NAME, j->name, 0, 0, 0);
	pthread_mutex_lock(&lock);
	j->tid = (int)syscall(SYS_gettid);
	printf("TID %s %d\n", j->name, j->tid);
	fflush(stdout);
	pthread_mutex_unlock(&lock);
	switch (j->kind) {
	case 0:
		do_recv(j->fd);
		break;
	case 1:
		do_read(j->fd);
		break;
	case 2:
		do_accept(j->fd);
		break;
	default:
		do_epoll(j->fd);
		break;
	}
	return NULL;
}

static void add_job(const char *name, int fd, int kind, long nr0, long nr1)
{
	struct job *j = &jobs[njobs++];
	pthread_t th;

	j->name = name;
	j->fd = fd;
	j->kind = kind;
	j->nr[0] = nr0;
	j->nr[1] = nr1;
	if (pthread_create(&th, NULL, job_main, j))
		die("pthread_create");
	pthread_detach(th);
}

static void print_fd(const char *label, int fd)
{
	printf("FD %s %d\n", label, fd);
}

/* The loopback address of family at port into ss; returns its length. */
static socklen_t loopback(int family, int port, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		sin->sin_family = AF_INET;
		sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sin->sin_port = htons(port);
		return sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_addr = in6addr_loopback;
		sin6->sin6_port = htons(port);
		return sizeof(*sin6);
	}
}

static int listener(int family, int *port)
{
	struct sockaddr_storage ss;
	socklen_t len = loopback(family, 0, &ss);
	int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 16) < 0) {
		close(fd);
		return -1;
	}
	len = sizeof(ss);
	getsockname(fd, (struct sockaddr *)&ss, &len);
	*port = ntohs(family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
					: ((struct sockaddr_in6 *)&ss)->sin6_port);
	return fd;
}

/* A connected pair over lfd: *client and *server. */
static int connect_pair(int lfd, int family, int port, int *client, int *server)
{
	struct sockaddr_storage ss;
	socklen_t len = loopback(family, port, &ss);
	int c = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (c < 0)
		return -1;
	if (connect(c, (struct sockaddr *)&ss, len) < 0) {
		close(c);
		return -1;
	}
	*server = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (*server < 0) {
		close(c);
		return -1;
	}
	*client = c;
	return 0;
}

static int thread_in(const struct job *j)
{
	long nr;

	if (!j->tid)
		return 0;
	nr = task_syscall(j->tid);
	return nr == j->nr[0] || nr == j->nr[1];
}

int main(void)
{
	int port, port6 = 0, l4, l6, ca, sa, cb, sb, c6 = -1, s6 = -1;
	int p_self[2], p_child[2], p_ep[2], ep, efd, tfd, sfd, file, fifo_r, fifo_w;
	int udp, udp_port, unix_pair, unix_listen;
	struct itimerspec its = { .it_value = { .tv_sec = 1000 } };
	struct timeval tv = { .tv_sec = 7 };
	struct epoll_event ev = { .events = EPOLLIN };
	sigset_t mask;
	pid_t child;

	/* Blocked in every thread (set before any is created) so signalfd owns it. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &mask, NULL);

	l4 = listener(AF_INET, &port);
	if (l4 < 0)
		die("listen");
	if (connect_pair(l4, AF_INET, port, &ca, &sa) < 0 ||
	    connect_pair(l4, AF_INET, port, &cb, &sb) < 0)
		die("connect");
	if (setsockopt(ca, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
		die("SO_RCVTIMEO");
	l6 = listener(AF_INET6, &port6);
	if (l6 >= 0 && connect_pair(l6, AF_INET6, port6, &c6, &s6) < 0)
		c6 = -1;

	if (pipe2(p_self, O_CLOEXEC) < 0 || pipe2(p_child, O_CLOEXEC) < 0 ||
	    pipe2(p_ep, O_CLOEXEC) < 0)
		die("pipe");
	child = fork();
	if (child < 0)
		die("fork");
	if (child == 0) {
		/* Holds the write end of p_child and nothing else. */
		prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
		prctl(PR_SET_NAME, "pipe-writer", 0, 0, 0);
		for (int fd = 3; fd < 1024; fd++)
			if (fd != p_child[1])
				close(fd);
		for (;;)
			pause();
	}
	close(p_child[1]);

	ep = epoll_create1(EPOLL_CLOEXEC);
	ev.data.fd = p_ep[0];
	epoll_ctl(ep, EPOLL_CTL_ADD, p_ep[0], &ev);
	ev.data.fd = sb;
	epoll_ctl(ep, EPOLL_CTL_ADD, sb, &ev);

	efd = eventfd(3, EFD_CLOEXEC);
	tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
	timerfd_settime(tfd, 0, &its, NULL);
	sfd = signalfd(-1, &mask, SFD_CLOEXEC);
	file = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	if (efd < 0 || tfd < 0 || sfd < 0 || file < 0)
		die("fds");
	lseek(file, 100, SEEK_SET);
	{
		/* A named pipe, both ends held here; the name is removed at once. */
		char fifo[64];

		snprintf(fifo, sizeof(fifo), "/tmp/cprof-fifo-%d", (int)getpid());
		unlink(fifo);
		if (mkfifo(fifo, 0600) < 0)
			die("mkfifo");
		fifo_r = open(fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
		fifo_w = open(fifo, O_WRONLY | O_CLOEXEC);
		unlink(fifo);
		if (fifo_r < 0 || fifo_w < 0)
			die("fifo");
	}

	{
		/* Idle sockets of the other families /proc/net lists: UDP and unix. */
		struct sockaddr_in sin = { .sin_family = AF_INET };
		struct sockaddr_un sun = { .sun_family = AF_UNIX };
		socklen_t len = sizeof(sin);
		int sp[2];

		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (udp < 0 || bind(udp, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
		    getsockname(udp, (struct sockaddr *)&sin, &len) < 0)
			die("udp");
		udp_port = ntohs(sin.sin_port);
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
			die("socketpair");
		unix_pair = sp[0];
		/* Abstract name: "@cprof-test-PID" in /proc/net/unix. */
		snprintf(sun.sun_path + 1, sizeof(sun.sun_path) - 1, "cprof-test-%d", (int)getpid());
		unix_listen = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (unix_listen < 0 ||
		    bind(unix_listen, (struct sockaddr *)&sun,
			 (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 +
				     strlen(sun.sun_path + 1))) < 0 ||
		    listen(unix_listen, 4) < 0)
			die("unix listen");
	}

	printf("PORT %d\n", port);
	printf("UDPPORT %d\n", udp_port);
	printf("PORT6 %d\n", c6 >= 0 ? port6 : 0);
	printf("CHILD %d\n", (int)child);
	print_fd("listen", l4);
	print_fd("recv-timeo", ca);
	print_fd("recv-timeo-peer", sa);
	print_fd("recv-notimeo", cb);
	print_fd("recv-notimeo-peer", sb);
	print_fd("pipe-self-r", p_self[0]);
	print_fd("pipe-self-w", p_self[1]);
	print_fd("pipe-child-r", p_child[0]);
	print_fd("epoll", ep);
	print_fd("epoll-pipe-r", p_ep[0]);
	print_fd("eventfd", efd);
	print_fd("timerfd", tfd);
	print_fd("signalfd", sfd);
	print_fd("file", file);
	print_fd("fifo-r", fifo_r);
	print_fd("fifo-w", fifo_w);
	print_fd("udp", udp);
	print_fd("unix-pair", unix_pair);
	print_fd("unix-listen", unix_listen);
	if (c6 >= 0)
		print_fd("recv6", c6);
	fflush(stdout);

	add_job("recv-timeo", ca, 0, SYS_recvfrom, SYS_recvfrom);
	add_job("recv-notimeo", cb, 0, SYS_recvfrom, SYS_recvfrom);
	add_job("pipe-self", p_self[0], 1, SYS_read, SYS_read);
	add_job("pipe-child", p_child[0], 1, SYS_read, SYS_read);
	add_job("acceptor", l4, 2, SYS_accept, SYS_accept4);
	add_job("epoller", ep, 3, SYS_epoll_wait, SYS_epoll_pwait);
	if (c6 >= 0)
		add_job("recv6", c6, 0, SYS_recvfrom, SYS_recvfrom);

	for (int tries = 0;; tries++) {
		int ok = 0;

		pthread_mutex_lock(&lock);
		for (int i = 0; i < njobs; i++)
			ok += thread_in(&jobs[i]);
		pthread_mutex_unlock(&lock);
		if (ok == njobs)
			break;
		if (tries > 20000) {
			fprintf(stderr, "sockets: threads did not block\n");
			return 1;
		}
		usleep(1000);
	}
	printf("READY pid %d\n", (int)getpid());
	fflush(stdout);
	for (;;)
		pause();
}
