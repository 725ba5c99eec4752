/*
 * Benchmark target: N threads blocked in a mix of ways (mutex, condvar, sleep, pipe read, recv
 * with SO_RCVTIMEO, epoll_wait, poll, accept, rwlock, semaphore), one busy thread and one
 * heartbeat thread that measures its own largest stall. Threads whose blocking call can fail
 * with EINTR count every EINTR they see: a profiler that stops them shows up here.
 * The main thread reads commands on stdin: "stats" prints and resets the counters.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static atomic_long eintr_count;
static atomic_long max_gap_ns;
static atomic_long busy_work;
static pthread_mutex_t held_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t cond_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t never_cond = PTHREAD_COND_INITIALIZER;
static pthread_rwlock_t held_rwlock = PTHREAD_RWLOCK_INITIALIZER;
static sem_t never_sem;
static int pipe_fds[2];
static int sock_pair[2];
static int listen_fd;
static int epoll_fd;

static long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

static void name_self(const char *kind, long i)
{
	char name[16];

	snprintf(name, sizeof(name), "%s-%ld", kind, i);
	prctl(PR_SET_NAME, name);
}

__attribute__((noinline)) static void wait_mutex(void)
{
	pthread_mutex_lock(&held_mutex);
	pthread_mutex_unlock(&held_mutex);
}

__attribute__((noinline)) static void wait_condvar(void)
{
	pthread_mutex_lock(&cond_mutex);
	for (;;)
		pthread_cond_wait(&never_cond, &cond_mutex);
}

__attribute__((noinline)) static void wait_sleep(void)
{
	for (;;) {
		struct timespec ts = { 3600, 0 };

		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			atomic_fetch_add(&eintr_count, 1);
	}
}

__attribute__((noinline)) static void wait_pipe(void)
{
	char c;

	for (;;)
		if (read(pipe_fds[0], &c, 1) < 0 && errno == EINTR)
			atomic_fetch_add(&eintr_count, 1);
}

__attribute__((noinline)) static void wait_recv(void)
{
	char c;

	for (;;)
		if (recv(sock_pair[0], &c, 1, 0) < 0 && errno == EINTR)
			atomic_fetch_add(&eintr_count, 1);
}

__attribute__((noinline)) static void wait_epoll(void)
{
	struct epoll_event ev;

	for (;;)
		if (epoll_wait(epoll_fd, &ev, 1, -1) < 0 && errno == EINTR)
			atomic_fetch_add(&eintr_count, 1);
}

__attribute__((noinline)) static void wait_poll(void)
{
	struct pollfd p = { .fd = pipe_fds[0], .events = 0 };

	for (;;)
		if (poll(&p, 1, 3600 * 1000) < 0 && errno == EINTR)
			atomic_fetch_add(&eintr_count, 1);
}

__attribute__((noinline)) static void wait_accept(void)
{
	for (;;)
		if (accept(listen_fd, NULL, NULL) < 0 && errno == EINTR)
			atomic_fetch_add(&eintr_count, 1);
}

__attribute__((noinline)) static void wait_rwlock(void)
{
	pthread_rwlock_rdlock(&held_rwlock);
	pthread_rwlock_unlock(&held_rwlock);
}

__attribute__((noinline)) static void wait_sem(void)
{
	for (;;)
		if (sem_wait(&never_sem) < 0 && errno == EINTR)
			atomic_fetch_add(&eintr_count, 1);
}

typedef void (*wait_fn)(void);
static const struct {
	const char *name;
	wait_fn fn;
} kinds[] = {
	{ "mutex", wait_mutex },   { "condvar", wait_condvar }, { "sleep", wait_sleep },
	{ "pipe", wait_pipe },	   { "recv", wait_recv },	{ "epoll", wait_epoll },
	{ "poll", wait_poll },	   { "accept", wait_accept },	{ "rwlock", wait_rwlock },
	{ "sem", wait_sem },
};

static void *blocked_main(void *arg)
{
	long i = (long)arg;
	size_t k = (size_t)i % (sizeof(kinds) / sizeof(kinds[0]));

	name_self(kinds[k].name, i);
	kinds[k].fn();
	return NULL;
}

__attribute__((noinline)) static long busy_leaf(long x)
{
	for (int i = 0; i < 1000; i++)
		x = x * 6364136223846793005L + 1442695040888963407L;
	return x;
}

static void *busy_main(void *arg)
{
	long x = 1;

	prctl(PR_SET_NAME, "busy");
	for (;;) {
		x = busy_leaf(x);
		atomic_fetch_add(&busy_work, 1);
	}
	return arg;
}

/* Wakes every millisecond; the largest lateness is the longest it was held up. */
static void *heartbeat_main(void *arg)
{
	long prev = now_ns();

	prctl(PR_SET_NAME, "heartbeat");
	for (;;) {
		struct timespec ts = { 0, 1000000 };

		if (nanosleep(&ts, NULL) < 0 && errno == EINTR)
			atomic_fetch_add(&eintr_count, 1);
		long t = now_ns();
		long gap = t - prev - 1000000;
		long cur = atomic_load(&max_gap_ns);

		while (gap > cur && !atomic_compare_exchange_weak(&max_gap_ns, &cur, gap))
			;
		prev = t;
	}
	return arg;
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 16;
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct timeval tv = { 3600, 0 };
	struct epoll_event ev = { .events = EPOLLIN };
	pthread_attr_t attr;
	pthread_t t;
	char line[64];

	sem_init(&never_sem, 0, 0);
	if (pipe(pipe_fds) < 0 || socketpair(AF_UNIX, SOCK_STREAM, 0, sock_pair) < 0)
		return 1;
	setsockopt(sock_pair[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	listen_fd = socket(AF_INET, SOCK_STREAM, 0);
	if (listen_fd < 0 || bind(listen_fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
	    listen(listen_fd, 16) < 0)
		return 1;
	epoll_fd = epoll_create1(0);
	epoll_ctl(epoll_fd, EPOLL_CTL_ADD, pipe_fds[0], &ev);
	pthread_mutex_lock(&held_mutex);
	pthread_rwlock_wrlock(&held_rwlock);

	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 256 << 10);
	for (long i = 0; i < n; i++)
		if (pthread_create(&t, &attr, blocked_main, (void *)i) != 0)
			return 1;
	pthread_create(&t, &attr, busy_main, NULL);
	pthread_create(&t, &attr, heartbeat_main, NULL);
	usleep(300000);
	atomic_store(&max_gap_ns, 0);
	atomic_store(&eintr_count, 0);
	printf("READY %ld threads\n", n + 3);
	fflush(stdout);
	while (fgets(line, sizeof(line), stdin)) {
		if (!strncmp(line, "stats", 5)) {
			printf("eintr=%ld max_gap_us=%ld busy=%ld\n", atomic_exchange(&eintr_count, 0),
			       atomic_exchange(&max_gap_ns, 0) / 1000, atomic_load(&busy_work));
			fflush(stdout);
		}
	}
	return 0;
}
