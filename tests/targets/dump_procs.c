/* Process-level fixture for dump error tests: an unreaped zombie child, or a traced child. */
/*
 * dump_procs zombie: forks a child that exits at once and is never reaped; prints
 *   "READY child=PID" once the child is a zombie, then waits forever.
 * dump_procs traced: forks a child that pauses, PTRACE_SEIZEs it (a parent may trace its
 *   child whatever ptrace_scope 1 says) and prints "READY child=PID tracer=PID".
 *   The tracer exits (and the kernel detaches) when killed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fixture.h"

int main(int argc, char **argv)
{
	pid_t child;

	if (argc != 2 || (strcmp(argv[1], "zombie") && strcmp(argv[1], "traced"))) {
		fprintf(stderr, "usage: dump_procs zombie|traced\n");
		return 2;
	}
	child = fork();
	if (child < 0) {
		perror("fork");
		return 1;
	}
	if (child == 0) {
		if (!strcmp(argv[1], "zombie"))
			_exit(0);
		/* Die with the fixture, so that a test that kills it leaves nothing behind. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() == 1)
			_exit(0);
		for (;;)
			pause();
	}
	if (!strcmp(argv[1], "zombie")) {
		while (task_state(child, child) != 'Z')
			usleep(10 * 1000);
		printf("READY child=%d\n", (int)child);
	} else {
		if (ptrace(PTRACE_SEIZE, child, 0, 0) < 0) {
			fprintf(stderr, "dump_procs: PTRACE_SEIZE: %s\n", strerror(errno));
			kill(child, SIGKILL);
			return 1;
		}
		printf("READY child=%d tracer=%d\n", (int)child, (int)getpid());
	}
	fflush(stdout);
	for (;;)
		pause();
}
