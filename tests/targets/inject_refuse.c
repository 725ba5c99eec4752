/*
 * Fixture for targets cprof must not call into, by argv[1]: "seccomp" installs a seccomp filter
 * (allowing everything: cprof cannot tell) and sleeps; "unsafe" has no thread at a safe point:
 * one thread blocked writing malloc_info's report to a full pipe, one blocked in a fork prepare
 * handler (inside fork), one blocked on a stack of its own in the heap (a coroutine's: where
 * it ends cannot be known), one busy, and the main thread busy too; "loader" is the same with the
 * main thread blocked in a read inside a dl_iterate_phdr callback (the loader's lock held).
 * Prints READY when set up.
 */
#define _GNU_SOURCE
#include <link.h>
#include <linux/filter.h>
#include <fcntl.h>
#include <linux/seccomp.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <stdlib.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

static int block_fds[2];
static int full_fds[2];
static volatile int blocked;

static int install_filter(void)
{
	struct sock_filter allow[] = { BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW) };
	struct sock_fprog prog = { .len = 1, .filter = allow };

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -1;
	return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0);
}

__attribute__((noinline)) static int blocking_callback(struct dl_phdr_info *info, size_t size,
						       void *data)
{
	char c;

	printf("READY\n");
	fflush(stdout);
	while (read(block_fds[0], &c, 1) != 0)
		;
	return 1;
}

/* A pipe of one page, full: the next write to it blocks. */
static FILE *full_pipe(void)
{
	char page[4096] = { 0 };
	FILE *f;

	if (pipe2(full_fds, O_NONBLOCK) < 0 || fcntl(full_fds[1], F_SETPIPE_SZ, 4096) < 0)
		return NULL;
	while (write(full_fds[1], page, sizeof(page)) > 0)
		;
	fcntl(full_fds[1], F_SETFL, 0);
	f = fdopen(full_fds[1], "w");
	if (f)
		setvbuf(f, NULL, _IONBF, 0);
	return f;
}

__attribute__((noinline)) static void *report_malloc(void *arg)
{
	__sync_fetch_and_add(&blocked, 1);
	malloc_info(0, arg);
	return NULL;
}

__attribute__((noinline)) static void prepare_blocks(void)
{
	char c;

	__sync_fetch_and_add(&blocked, 1);
	while (read(block_fds[0], &c, 1) != 0)
		;
}

static ucontext_t co_ctx, co_back;

__attribute__((noinline)) static void coroutine(void)
{
	prepare_blocks();
}

/* Run coroutine() on a stack malloc'd in the heap, as coroutine libraries without guards do. */
__attribute__((noinline)) static void *on_heap_stack(void *arg)
{
	size_t size = 256 << 10;

	if (getcontext(&co_ctx) < 0)
		return NULL;
	co_ctx.uc_stack.ss_sp = malloc(size);
	co_ctx.uc_stack.ss_size = size;
	co_ctx.uc_link = &co_back;
	makecontext(&co_ctx, coroutine, 0);
	swapcontext(&co_back, &co_ctx);
	return NULL;
}

__attribute__((noinline)) static void *forker(void *arg)
{
	pthread_atfork(prepare_blocks, NULL, NULL);
	fork();
	return NULL;
}

__attribute__((noinline)) static void *spin(void *arg)
{
	volatile unsigned long x = 1;

	for (;;)
		x = x * 6364136223846793005ul + 1;
	return NULL;
}

int main(int argc, char **argv)
{
	struct timespec ts = { 3600, 0 };
	pthread_t t;

	if (argc > 1 && strcmp(argv[1], "seccomp") == 0) {
		if (install_filter() < 0)
			return 1;
		printf("READY\n");
		fflush(stdout);
		for (;;)
			nanosleep(&ts, NULL);
	}
	FILE *full = full_pipe();

	if (!full || pipe(block_fds) < 0 || pthread_create(&t, NULL, spin, NULL) != 0 ||
	    pthread_create(&t, NULL, report_malloc, full) != 0 ||
	    pthread_create(&t, NULL, forker, NULL) != 0 ||
	    pthread_create(&t, NULL, on_heap_stack, NULL) != 0)
		return 1;
	while (blocked < 3)
		usleep(1000);
	usleep(100000);
	if (argc > 1 && strcmp(argv[1], "loader") == 0)
		dl_iterate_phdr(blocking_callback, NULL);
	printf("READY\n");
	fflush(stdout);
	spin(NULL);
	return 0;
}
