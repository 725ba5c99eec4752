/*
 * Unwinding fixture: threads blocked in read() at known depths, built without frame pointers.
 *   main:     main -> deep_a -> deep_b -> deep_c -> deep_d -> read
 *   "signal": deep_sig_thread -> deep_sig_raise -> raise(SIGUSR1) ~> deep_handler -> read
 *   "recurse": deep_rec_thread -> deep_recurse x DEEP_RECURSION -> read
 * Prints "READY main=TID signal=TID recurse=TID" once the two threads are blocked or about to.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define DEEP_RECURSION 1000
#define NOINLINE __attribute__((noinline, noclone))

static int block_fd;		/* read end of a pipe whose write end stays open: blocks forever */
static volatile int sink;
static sem_t ready;
static volatile pid_t sig_tid, rec_tid;

static int tid(void)
{
	return (int)syscall(SYS_gettid);
}

NOINLINE int deep_d(int x)
{
	char c;
	ssize_t n = read(block_fd, &c, 1);

	/* Work after the call keeps it a call, not a tail jump. */
	return (int)n + x + sink;
}

NOINLINE int deep_c(int x)
{
	return deep_d(x + 1) + sink;
}

NOINLINE int deep_b(int x)
{
	return deep_c(x + 1) + sink;
}

NOINLINE int deep_a(int x)
{
	return deep_b(x + 1) + sink;
}

NOINLINE void deep_handler(int sig)
{
	char c;

	sem_post(&ready);
	sink += (int)read(block_fd, &c, 1) + sig;
}

NOINLINE int deep_sig_raise(int x)
{
	raise(SIGUSR1);
	return x + sink;
}

static void *deep_sig_thread(void *arg)
{
	sig_tid = tid();
	sink += deep_sig_raise(1);
	return arg;
}

NOINLINE int deep_recurse(int n)
{
	volatile char frame[16];
	char c;
	int r;

	frame[0] = (char)n;
	if (n == 0) {
		sem_post(&ready);
		return (int)read(block_fd, &c, 1) + sink;
	}
	r = deep_recurse(n - 1);
	/* Using the local after the call defeats tail-call and accumulator optimizations. */
	return r + frame[0];
}

static void *deep_rec_thread(void *arg)
{
	rec_tid = tid();
	sink += deep_recurse(DEEP_RECURSION);
	return arg;
}

int main(void)
{
	struct sigaction sa;
	pthread_t t1, t2;
	int fds[2];

	if (pipe(fds) != 0 || sem_init(&ready, 0, 0) != 0)
		return 1;
	block_fd = fds[0];
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = deep_handler;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR1, &sa, NULL) != 0)
		return 1;
	if (pthread_create(&t1, NULL, deep_sig_thread, NULL) != 0 ||
	    pthread_create(&t2, NULL, deep_rec_thread, NULL) != 0)
		return 1;
	pthread_setname_np(t1, "signal");
	pthread_setname_np(t2, "recurse");
	while (sem_wait(&ready) != 0)
		;
	while (sem_wait(&ready) != 0)
		;
	printf("READY main=%d signal=%d recurse=%d\n", tid(), (int)sig_tid, (int)rec_tid);
	fflush(stdout);
	return deep_a(0) == 12345 ? 2 : 0;
}
