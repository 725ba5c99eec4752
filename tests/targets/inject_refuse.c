/*
 * Fixture for targets cprof must not call into, by argv[1]: "seccomp" installs a seccomp filter
 * (allowing everything: cprof cannot tell) and sleeps; "unsafe" has its main thread blocked in
 * a read inside a dl_iterate_phdr callback (the loader's lock held) and another thread busy,
 * so that no thread is at a safe point. Prints READY when set up.
 */
#define _GNU_SOURCE
#include <link.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

static int block_fds[2];

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
	if (pipe(block_fds) < 0 || pthread_create(&t, NULL, spin, NULL) != 0)
		return 1;
	dl_iterate_phdr(blocking_callback, NULL);
	return 0;
}
