/*
 * Fixture for calls injected into a live process: one thread blocked in each kind of call a
 * thread may be parked in (futex with and without timeout, a pipe read that checks its
 * callee-saved and vector registers across the call, nanosleep, clock_nanosleep, poll,
 * epoll_wait, accept), each counting the EINTRs it sees, and a busy thread checking its sums.
 * Prints "TID name tid" per thread, then READY. Signals: SIGUSR1 prints "COUNT eintr=N usr2=M
 * usr2_tid=T usr2_ns=NS bad=B"; SIGHUP wakes every waiting thread once (each prints "WOKE
 * name ok|bad"); SIGUSR2 is counted (SA_RESTART, unblocked in every thread).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static atomic_long eintr_count, usr2_count, usr2_tid, usr2_ns, bad_count;
static atomic_int ready;
static int pipe_a[2], pipe_b[2], pipe_c[2], self_pipe[2];
static int listen_fd, epoll_fd;
static struct sockaddr_in listen_addr;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int generation;

static const char *const names[] = { "i-futex", "i-futex-tmo", "i-pipe", "i-sleep", "i-clock",
				     "i-poll", "i-epoll", "i-accept", "i-busy" };
#define NTHREADS 9

static void counted(long ret)
{
	if (ret < 0 && errno == EINTR)
		atomic_fetch_add(&eintr_count, 1);
}

static void woke(const char *name, bool ok)
{
	char buf[64];
	int n = snprintf(buf, sizeof(buf), "WOKE %s %s\n", name, ok ? "ok" : "bad");

	if (!ok)
		atomic_fetch_add(&bad_count, 1);
	if (write(1, buf, (size_t)n) < 0)
		return;
}

__attribute__((noinline)) static void block_futex(bool timed)
{
	pthread_mutex_lock(&mu);
	for (;;) {
		int seen = generation;

		while (generation == seen) {
			if (timed) {
				struct timespec ts;

				clock_gettime(CLOCK_REALTIME, &ts);
				ts.tv_sec += 3600;
				pthread_cond_timedwait(&cv, &mu, &ts);
			} else {
				pthread_cond_wait(&cv, &mu);
			}
		}
		woke(timed ? "i-futex-tmo" : "i-futex", true);
	}
}

/*
 * read(2) of one byte with r12-r15 and ymm8/ymm15 (xmm8/xmm15 without AVX) holding known
 * values across the system call; ok says whether they still hold them after it.
 */
__attribute__((noinline, target("avx"))) static long read_checked_avx(int fd, char *c, bool *ok)
{
	static const uint64_t pat[4] = { 0x1111222233334444ull, 0x5555666677778888ull,
					 0x99990000aaaabbbbull, 0xccccddddeeeeffffull };
	uint64_t o1[4], o2[4];
	register uint64_t r12 __asm__("r12") = 0x1212121212121212ull;
	register uint64_t r13 __asm__("r13") = 0x1313131313131313ull;
	register uint64_t r14 __asm__("r14") = 0x1414141414141414ull;
	register uint64_t r15 __asm__("r15") = 0x1515151515151515ull;
	long ret;

	__asm__ volatile("vmovdqu %[pat], %%ymm8\n\t"
			 "vmovdqu %[pat], %%ymm15\n\t"
			 "syscall\n\t"
			 "vmovdqu %%ymm8, %[o1]\n\t"
			 "vmovdqu %%ymm15, %[o2]\n\t"
			 : "=a"(ret), "+r"(r12), "+r"(r13), "+r"(r14), "+r"(r15), [o1] "=m"(o1),
			   [o2] "=m"(o2)
			 : "0"((long)SYS_read), "D"((long)fd), "S"(c), "d"(1L), [pat] "m"(pat)
			 : "rcx", "r11", "memory", "xmm8", "xmm15");
	*ok = r12 == 0x1212121212121212ull && r13 == 0x1313131313131313ull &&
	      r14 == 0x1414141414141414ull && r15 == 0x1515151515151515ull &&
	      memcmp(o1, pat, sizeof(pat)) == 0 && memcmp(o2, pat, sizeof(pat)) == 0;
	return ret;
}

__attribute__((noinline)) static long read_checked_sse(int fd, char *c, bool *ok)
{
	static const uint64_t pat[2] = { 0x1111222233334444ull, 0x5555666677778888ull };
	uint64_t o1[2];
	register uint64_t r12 __asm__("r12") = 0x1212121212121212ull;
	long ret;

	__asm__ volatile("movdqu %[pat], %%xmm8\n\t"
			 "syscall\n\t"
			 "movdqu %%xmm8, %[o1]\n\t"
			 : "=a"(ret), "+r"(r12), [o1] "=m"(o1)
			 : "0"((long)SYS_read), "D"((long)fd), "S"(c), "d"(1L), [pat] "m"(pat)
			 : "rcx", "r11", "memory", "xmm8");
	*ok = r12 == 0x1212121212121212ull && memcmp(o1, pat, sizeof(pat)) == 0;
	return ret;
}

__attribute__((noinline)) static void block_pipe(void)
{
	bool avx = __builtin_cpu_supports("avx");

	for (;;) {
		bool ok = false;
		char c = 0;
		long r = avx ? read_checked_avx(pipe_a[0], &c, &ok) :
			read_checked_sse(pipe_a[0], &c, &ok);

		if (r == -EINTR)
			atomic_fetch_add(&eintr_count, 1);
		else if (r == 1)
			woke("i-pipe", ok && c == 'p');
	}
}

__attribute__((noinline)) static void block_sleep(bool clock)
{
	struct timespec ts = { 3600, 0 };

	for (;;) {
		if (clock) {
			int e = clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL);

			if (e == EINTR)
				atomic_fetch_add(&eintr_count, 1);
		} else {
			counted(nanosleep(&ts, NULL));
		}
	}
}

__attribute__((noinline)) static void block_poll(void)
{
	struct pollfd p = { .fd = pipe_b[0], .events = POLLIN };
	char c;

	for (;;) {
		int r = poll(&p, 1, 3600 * 1000);

		counted(r);
		if (r == 1 && read(pipe_b[0], &c, 1) == 1)
			woke("i-poll", c == 'p');
	}
}

__attribute__((noinline)) static void block_epoll(void)
{
	struct epoll_event ev;
	char c;

	for (;;) {
		int r = epoll_wait(epoll_fd, &ev, 1, -1);

		counted(r);
		if (r == 1 && read(pipe_c[0], &c, 1) == 1)
			woke("i-epoll", c == 'p');
	}
}

__attribute__((noinline)) static void block_accept(void)
{
	for (;;) {
		int fd = accept(listen_fd, NULL, NULL);

		counted(fd);
		if (fd >= 0) {
			woke("i-accept", true);
			close(fd);
		}
	}
}

/* Sums that must come out the same every time: a changed register or stack would show. */
__attribute__((noinline)) static void busy(void)
{
	double expect = 0;

	for (int i = 1; i <= 1000; i++)
		expect += 1.0 / i;
	for (;;) {
		double s = 0;

		for (int i = 1; i <= 1000; i++)
			s += 1.0 / i;
		if (s != expect)
			atomic_fetch_add(&bad_count, 1);
		usleep(100);
	}
}

static void *thread_main(void *arg)
{
	long kind = (long)arg;
	char buf[64];
	int n;

	prctl(PR_SET_NAME, names[kind]);
	n = snprintf(buf, sizeof(buf), "TID %s %ld\n", names[kind], (long)syscall(SYS_gettid));
	if (write(1, buf, (size_t)n) < 0)
		return NULL;
	atomic_fetch_add(&ready, 1);
	switch (kind) {
	case 0: block_futex(false); break;
	case 1: block_futex(true); break;
	case 2: block_pipe(); break;
	case 3: block_sleep(false); break;
	case 4: block_sleep(true); break;
	case 5: block_poll(); break;
	case 6: block_epoll(); break;
	case 7: block_accept(); break;
	default: busy();
	}
	return NULL;
}

static void on_usr2(int sig)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	atomic_fetch_add(&usr2_count, 1);
	atomic_store(&usr2_tid, (long)syscall(SYS_gettid));
	atomic_store(&usr2_ns, (long)ts.tv_sec * 1000000000L + ts.tv_nsec);
}

static void on_main_signal(int sig)
{
	char c = sig == SIGUSR1 ? 'c' : 'p';
	int e = errno;

	if (write(self_pipe[1], &c, 1) < 0)
		atomic_fetch_add(&bad_count, 1);
	errno = e;
}

static void poke(void)
{
	int s;

	pthread_mutex_lock(&mu);
	generation++;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
	if (write(pipe_a[1], "p", 1) < 0 || write(pipe_b[1], "p", 1) < 0 ||
	    write(pipe_c[1], "p", 1) < 0)
		atomic_fetch_add(&bad_count, 1);
	s = socket(AF_INET, SOCK_STREAM, 0);
	if (s < 0 || connect(s, (struct sockaddr *)&listen_addr, sizeof(listen_addr)) < 0)
		atomic_fetch_add(&bad_count, 1);
	if (s >= 0)
		close(s);
}

static int setup(void)
{
	struct epoll_event ev = { .events = EPOLLIN };
	socklen_t len = sizeof(listen_addr);

	if (pipe(pipe_a) < 0 || pipe(pipe_b) < 0 || pipe(pipe_c) < 0 || pipe(self_pipe) < 0)
		return -1;
	listen_addr.sin_family = AF_INET;
	listen_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	listen_fd = socket(AF_INET, SOCK_STREAM, 0);
	if (listen_fd < 0 || bind(listen_fd, (struct sockaddr *)&listen_addr, len) < 0 ||
	    listen(listen_fd, 4) < 0 ||
	    getsockname(listen_fd, (struct sockaddr *)&listen_addr, &len) < 0)
		return -1;
	epoll_fd = epoll_create1(0);
	ev.data.fd = pipe_c[0];
	return epoll_fd < 0 || epoll_ctl(epoll_fd, EPOLL_CTL_ADD, pipe_c[0], &ev) < 0 ? -1 : 0;
}

int main(void)
{
	struct sigaction sa = { .sa_handler = on_usr2, .sa_flags = SA_RESTART };
	sigset_t set;
	pthread_t t;

	if (setup() < 0)
		return 1;
	sigaction(SIGUSR2, &sa, NULL);
	sa.sa_handler = on_main_signal;
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	/* The threads inherit SIGUSR1 and SIGHUP blocked: only main takes them. */
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	for (long k = 0; k < NTHREADS; k++)
		if (pthread_create(&t, NULL, thread_main, (void *)k) != 0)
			return 1;
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	while (atomic_load(&ready) < NTHREADS)
		usleep(1000);
	usleep(200000);
	printf("TID main %ld\nREADY\n", (long)getpid());
	fflush(stdout);
	for (;;) {
		char c;
		ssize_t r = read(self_pipe[0], &c, 1);

		counted(r);
		if (r != 1)
			continue;
		if (c == 'p') {
			poke();
			continue;
		}
		printf("COUNT eintr=%ld usr2=%ld usr2_tid=%ld usr2_ns=%ld bad=%ld\n",
		       atomic_load(&eintr_count), atomic_load(&usr2_count), atomic_load(&usr2_tid),
		       atomic_load(&usr2_ns), atomic_load(&bad_count));
		fflush(stdout);
	}
}
