/*
 * A tiny test suite with one deadlocking test, for record --timeout: `hang_suite` runs
 * test_arith and test_strings (which pass), then test_transfer, whose two threads take two
 * mutexes in opposite orders and deadlock; main waits in pthread_join for ever. With
 * "--fork" each test runs in a child process, as test runners do.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdbool.h>
#include <sys/wait.h>

#include "fixture.h"

static pthread_mutex_t account_a = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t account_b = PTHREAD_MUTEX_INITIALIZER;
static pthread_barrier_t both_locked;

static __attribute__((noinline)) void *transfer_a_to_b(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&account_a);
	pthread_barrier_wait(&both_locked);
	pthread_mutex_lock(&account_b);
	return NULL;
}

static __attribute__((noinline)) void *transfer_b_to_a(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&account_b);
	pthread_barrier_wait(&both_locked);
	pthread_mutex_lock(&account_a);
	return NULL;
}

static int test_arith(void)
{
	return 2 + 2 == 4;
}

static int test_strings(void)
{
	return strlen("cprof") == 5;
}

static __attribute__((noinline)) int test_transfer(void)
{
	pthread_t a, b;

	pthread_barrier_init(&both_locked, NULL, 2);
	pthread_create(&a, NULL, transfer_a_to_b, NULL);
	pthread_create(&b, NULL, transfer_b_to_a, NULL);
	pthread_join(a, NULL);
	pthread_join(b, NULL);
	return 1;
}

static const struct {
	const char *name;
	int (*fn)(void);
} tests[] = {
	{ "test_arith", test_arith },
	{ "test_strings", test_strings },
	{ "test_transfer", test_transfer },
};

int main(int argc, char **argv)
{
	bool fork_each = argc > 1 && !strcmp(argv[1], "--fork");

	for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
		int ok;

		printf("RUN %s\n", tests[i].name);
		fflush(stdout);
		if (fork_each) {
			int st;
			pid_t p = fork();

			if (p == 0)
				_exit(tests[i].fn() ? 0 : 1);
			waitpid(p, &st, 0);
			ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
		} else {
			ok = tests[i].fn();
		}
		printf("%s %s\n", ok ? "PASS" : "FAIL", tests[i].name);
		fflush(stdout);
	}
	return 0;
}
