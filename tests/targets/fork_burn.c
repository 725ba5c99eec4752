/*
 * fork_burn: the parent forks a child that burns CPU in child_burn() for about S seconds
 * (argument, default 1.5), while the parent burns in parent_burn() for a third of that and
 * then waits; exits with the child's exit code (0). For `cprof record` following children.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile uint64_t sink;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

__attribute__((noinline, noclone)) void child_burn(double seconds)
{
	for (double end = now() + seconds; now() < end;)
		for (int i = 0; i < 100000; i++)
			sink = sink * 3 + 1;
}

__attribute__((noinline, noclone)) void parent_burn(double seconds)
{
	for (double end = now() + seconds; now() < end;)
		for (int i = 0; i < 100000; i++)
			sink = sink * 5 + 1;
}

int main(int argc, char **argv)
{
	double seconds = argc > 1 ? atof(argv[1]) : 1.5;
	int status;
	pid_t pid = fork();

	if (pid < 0)
		return 1;
	if (pid == 0) {
		prctl(PR_SET_NAME, "fb-child");
		child_burn(seconds);
		_exit(0);
	}
	parent_burn(seconds / 3);
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status))
		return 1;
	return WEXITSTATUS(status);
}
