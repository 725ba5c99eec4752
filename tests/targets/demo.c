/* Demo workload: a hot call chain and threads blocked in every common way, all named. */
/*
 * Threads (names as cprof shows them):
 *   hot          burns CPU in hot_outer -> hot_middle -> hot_inner (noinline)
 *   w-holder     holds demo_lock and sleeps
 *   w-mutex      blocked on demo_lock (held by w-holder)
 *   w-cond       pthread_cond_wait on a condvar nobody signals
 *   w-sleep      nanosleep for an hour at a time
 *   w-pipe       read() of a pipe nobody writes (no timeout)
 *   w-poll       poll() on that pipe with a 10 s timeout, again and again
 *   dl-1, dl-2   a lock-order deadlock (A then B, B then A)
 *   conn-N       a pool of identical threads reading sockets without a timeout (a leak)
 *   ticker       increments a counter every 100 ms; with --ticks prints "tick N" (progress probe);
 *                each tick it also leaks 16 KiB in cache_remember (kept in a list, never freed)
 *                and churns 64 KiB in 64-byte blocks in request_scratch (freed at once)
 * Options: --threads N adds N idle threads (condvar waiters) for big-process tests;
 *          --no-deadlock leaves dl-1/dl-2 out; --conns N sets the pool size (default 12);
 *          --ticks prints the ticker's counter; --exit-after MS exits (every thread at once)
 *          MS milliseconds after READY, for "target exits during the dump" tests;
 *          --churn adds "churner", which starts a short-lived "ephemeral" thread every 0.5 ms.
 * Prints "READY pid=PID" when every thread is in place.
 */
#define _GNU_SOURCE
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t demo_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t lock_a = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t lock_b = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t cond_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t never = PTHREAD_COND_INITIALIZER;
static pthread_mutex_t idle_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t idle_cond = PTHREAD_COND_INITIALIZER;
static pthread_barrier_t ready;
static int quiet_pipe[2];
static volatile double sink;
static volatile unsigned long ticks;
static int print_ticks;

static void name_self(const char *name)
{
	pthread_setname_np(pthread_self(), name);
}

static void forever_sleep(void)
{
	for (;;)
		sleep(3600);
}

__attribute__((noinline)) static double hot_inner(double x)
{
	for (int i = 0; i < 1000; i++)
		x = x * 1.0000001 + 0.5 / (x + 1.0);
	return x;
}

__attribute__((noinline)) static double hot_middle(double x)
{
	for (int i = 0; i < 100; i++)
		x = hot_inner(x);
	return x;
}

__attribute__((noinline)) static void hot_outer(void)
{
	double x = 1.0;

	for (;;) {
		x = hot_middle(x);
		sink = x;
		if (x > 1e12)
			x = 1.0;
	}
}

static void *hot_main(void *arg)
{
	name_self("hot");
	pthread_barrier_wait(&ready);
	hot_outer();
	return NULL;
}

static void *holder_main(void *arg)
{
	name_self("w-holder");
	pthread_mutex_lock(&demo_lock);
	pthread_barrier_wait(&ready);
	forever_sleep();
	return NULL;
}

__attribute__((noinline)) static void take_demo_lock(void)
{
	pthread_mutex_lock(&demo_lock); /* BLOCK: mutex */
	pthread_mutex_unlock(&demo_lock);
}

static void *mutex_main(void *arg)
{
	name_self("w-mutex");
	pthread_barrier_wait(&ready);
	/* Let w-holder take the lock first: it did, before the barrier. */
	take_demo_lock();
	return NULL;
}

static void *cond_main(void *arg)
{
	name_self("w-cond");
	pthread_mutex_lock(&cond_lock);
	pthread_barrier_wait(&ready);
	for (;;)
		pthread_cond_wait(&never, &cond_lock); /* BLOCK: condvar */
	return NULL;
}

static void *sleep_main(void *arg)
{
	name_self("w-sleep");
	pthread_barrier_wait(&ready);
	forever_sleep(); /* BLOCK: sleep */
	return NULL;
}

__attribute__((noinline)) static void read_quiet_pipe(void)
{
	char c;

	while (read(quiet_pipe[0], &c, 1) > 0) /* BLOCK: pipe */
		;
}

static void *pipe_main(void *arg)
{
	name_self("w-pipe");
	pthread_barrier_wait(&ready);
	read_quiet_pipe();
	return NULL;
}

static void *poll_main(void *arg)
{
	struct pollfd p = { .fd = quiet_pipe[0], .events = POLLIN };

	name_self("w-poll");
	pthread_barrier_wait(&ready);
	for (;;)
		poll(&p, 1, 10000); /* BLOCK: poll */
	return NULL;
}

static pthread_barrier_t dl_both_hold;

static void *dl1_main(void *arg)
{
	name_self("dl-1");
	pthread_mutex_lock(&lock_a);
	pthread_barrier_wait(&dl_both_hold);
	pthread_barrier_wait(&ready);
	pthread_mutex_lock(&lock_b); /* BLOCK: deadlock */
	return NULL;
}

static void *dl2_main(void *arg)
{
	name_self("dl-2");
	pthread_mutex_lock(&lock_b);
	pthread_barrier_wait(&dl_both_hold);
	pthread_barrier_wait(&ready);
	pthread_mutex_lock(&lock_a);
	return NULL;
}

__attribute__((noinline)) static void serve_connection(int fd)
{
	char buf[256];

	while (read(fd, buf, sizeof(buf)) > 0) /* BLOCK: socket */
		;
}

static void *conn_main(void *arg)
{
	int sv[2];
	char name[16];

	snprintf(name, sizeof(name), "conn-%d", (int)(long)arg);
	name_self(name);
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) {
		perror("socketpair");
		exit(1);
	}
	pthread_barrier_wait(&ready);
	serve_connection(sv[0]);
	return NULL;
}

static void *idle_main(void *arg)
{
	pthread_barrier_wait(&ready);
	pthread_mutex_lock(&idle_lock);
	for (;;)
		pthread_cond_wait(&idle_cond, &idle_lock);
	return NULL;
}

/* A cache that only grows: the leak a heap profile finds. */
struct cache_entry {
	struct cache_entry *next;
	char data[16384 - sizeof(void *)];
};

static struct cache_entry *cache;

__attribute__((noinline)) static void cache_remember(unsigned long tick)
{
	struct cache_entry *e = malloc(sizeof(*e));

	if (!e)
		return;
	memset(e->data, (int)tick, sizeof(e->data));
	e->next = cache;
	cache = e;
}

/* Short-lived buffers, freed at once: allocs shows them, heap does not. */
__attribute__((noinline)) static void request_scratch(void)
{
	for (int i = 0; i < 1024; i++) {
		char *volatile p = malloc(64);

		if (p)
			p[0] = (char)i;
		free(p);
	}
}

static void *ticker_main(void *arg)
{
	struct timespec ts = { 0, 100 * 1000 * 1000 };

	name_self("ticker");
	pthread_barrier_wait(&ready);
	for (;;) {
		ticks++;
		cache_remember(ticks);
		request_scratch();
		if (print_ticks) {
			printf("tick %lu\n", ticks);
			fflush(stdout);
		}
		nanosleep(&ts, NULL);
	}
	return NULL;
}

static void *ephemeral_main(void *arg)
{
	struct timespec ts = { 0, 2 * 1000 * 1000 };

	name_self("ephemeral");
	nanosleep(&ts, NULL);
	return NULL;
}

/* Threads appearing and vanishing all the time, as in a server with a thread per request. */
static void *churn_main(void *arg)
{
	struct timespec ts = { 0, 500 * 1000 };
	pthread_attr_t attr;

	name_self("churner");
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 64 << 10);
	pthread_barrier_wait(&ready);
	for (;;) {
		pthread_t t;

		pthread_create(&t, &attr, ephemeral_main, NULL);
		nanosleep(&ts, NULL);
	}
	return NULL;
}

static void start(void *(*fn)(void *), void *arg)
{
	pthread_t t;
	pthread_attr_t attr;

	pthread_attr_init(&attr);
	/* Small stacks: the big-process mode starts hundreds of threads. */
	pthread_attr_setstacksize(&attr, 256 << 10);
	if (pthread_create(&t, &attr, fn, arg) != 0) {
		fprintf(stderr, "demo: pthread_create failed\n");
		exit(1);
	}
	pthread_attr_destroy(&attr);
}

int main(int argc, char **argv)
{
	int extra = 0, conns = 12, deadlock = 1, exit_after_ms = -1, churn = 0, nthreads;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--threads") && i + 1 < argc)
			extra = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--conns") && i + 1 < argc)
			conns = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--no-deadlock"))
			deadlock = 0;
		else if (!strcmp(argv[i], "--ticks"))
			print_ticks = 1;
		else if (!strcmp(argv[i], "--churn"))
			churn = 1;
		else if (!strcmp(argv[i], "--exit-after") && i + 1 < argc)
			exit_after_ms = atoi(argv[++i]);
		else {
			fprintf(stderr, "usage: demo [--threads N] [--conns N] [--no-deadlock] "
					"[--ticks]\n"
					"            [--exit-after MS] [--churn]\n");
			return 2;
		}
	}
	if (pipe(quiet_pipe) < 0) {
		perror("pipe");
		return 1;
	}
	/* hot, holder, mutex, cond, sleep, pipe, poll, ticker + main */
	nthreads = 8 + (deadlock ? 2 : 0) + conns + extra + churn + 1;
	pthread_barrier_init(&ready, NULL, (unsigned int)nthreads);
	pthread_barrier_init(&dl_both_hold, NULL, 2);
	start(holder_main, NULL);
	start(hot_main, NULL);
	start(mutex_main, NULL);
	start(cond_main, NULL);
	start(sleep_main, NULL);
	start(pipe_main, NULL);
	start(poll_main, NULL);
	if (deadlock) {
		start(dl1_main, NULL);
		start(dl2_main, NULL);
	}
	for (int i = 0; i < conns; i++)
		start(conn_main, (void *)(long)i);
	for (int i = 0; i < extra; i++)
		start(idle_main, NULL);
	start(ticker_main, NULL);
	if (churn)
		start(churn_main, NULL);
	pthread_barrier_wait(&ready);
	/* Give the blocked threads a moment to reach their waits after the barrier. */
	usleep(200 * 1000);
	printf("READY pid=%d threads=%d\n", (int)getpid(), nthreads);
	fflush(stdout);
	if (exit_after_ms >= 0) {
		usleep((useconds_t)exit_after_ms * 1000);
		exit(0);
	}
	for (;;)
		pause();
	return 0;
}
