/*
 * cpu_split: burns CPU 3:1 between work_a and work_b, both through the common leaf
 * spin_leaf, so a profile must split 75/25 and every leaf sample must reach main through the
 * right caller. SIGUSR1 starts a thread named "late"; SIGUSR2 makes the process exit(0).
 * Usage: cpu_split [--threads N] [--seconds S] [--cpu-seconds C] [--deep D]
 *   N extra "worker-K" threads; S = run time; C = run until the process used C s of CPU
 *   (as long on a busy machine as on an idle one, in samples); D = the main thread works D frames deep (in
 *   recurse(), about 256 bytes of stack each), for stacks longer than a sample's copy.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/*
 * About 5 ms of work per unit: phases several sampling periods long (at 999 Hz), so samples
 * cannot alias with the loop (a loop as long as the period would skew the split), and short
 * enough that a profile of a few seconds holds hundreds of loops.
 */
#define UNIT 4000000u

static volatile uint64_t sink;
static volatile sig_atomic_t want_late, want_exit;
static double cpu_until;

__attribute__((noinline, noclone)) void spin_leaf(unsigned int n)
{
	uint64_t x = sink;

	for (unsigned int i = 0; i < n; i++) x = x * 6364136223846793005ull + 1; /* LEAF_LINE */
	sink = x;
}

/* The statement after each call keeps it a call, not a tail jump. */
__attribute__((noinline, noclone)) void work_a(void)
{
	spin_leaf(3 * UNIT);
	sink = sink + 1;
}

__attribute__((noinline, noclone)) void work_b(void)
{
	spin_leaf(UNIT);
	sink = sink + 1;
}

__attribute__((noinline, noclone)) void late_burn(void)
{
	for (;;) {
		spin_leaf(UNIT);
		sink = sink + 1;
	}
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Whether the process used its --cpu-seconds of CPU (never without the option). */
static int cpu_done(void)
{
	struct timespec ts;

	if (cpu_until <= 0)
		return 0;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9 >= cpu_until;
}

static void *late_main(void *arg)
{
	(void)arg;
	late_burn();
	return NULL;
}

static void loop(double until)
{
	while (!want_exit && !cpu_done() && (until <= 0 || now() < until)) {
		work_a();
		work_b();
		if (want_late) {
			pthread_t t;

			want_late = 0;
			if (pthread_create(&t, NULL, late_main, NULL) == 0) {
				pthread_setname_np(t, "late");
				printf("LATE %d\n", 0);
				fflush(stdout);
			}
		}
	}
}

/* D frames of recursion, each with stack the compiler cannot drop, then the work loop. */
__attribute__((noinline, noclone)) void recurse(int depth, double until)
{
	volatile char pad[240];

	pad[0] = (char)depth;
	if (depth > 0)
		recurse(depth - 1, until);
	else
		loop(until);
	pad[1] = pad[0];
}

static void *worker_main(void *arg)
{
	loop(*(double *)arg);
	return NULL;
}

static void on_signal(int sig)
{
	if (sig == SIGUSR1)
		want_late = 1;
	else
		want_exit = 1;
}

int main(int argc, char **argv)
{
	int threads = 0, deep = 0;
	double seconds = 0, until;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--threads") && i + 1 < argc)
			threads = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
			seconds = atof(argv[++i]);
		else if (!strcmp(argv[i], "--cpu-seconds") && i + 1 < argc)
			cpu_until = atof(argv[++i]);
		else if (!strcmp(argv[i], "--deep") && i + 1 < argc)
			deep = atoi(argv[++i]);
	}
	signal(SIGUSR1, on_signal);
	signal(SIGUSR2, on_signal);
	until = seconds > 0 ? now() + seconds : 0;
	for (int i = 0; i < threads; i++) {
		pthread_t t;
		char name[16];

		if (pthread_create(&t, NULL, worker_main, &until) != 0)
			return 1;
		snprintf(name, sizeof(name), "worker-%d", (i + 1) % 1000);
		pthread_setname_np(t, name);
	}
	printf("READY %d\n", (int)getpid());
	fflush(stdout);
	if (deep > 0)
		recurse(deep, until);
	else
		loop(until);
	return 0;
}
