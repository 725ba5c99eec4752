/* What the fixture programs share: dying with a message, and what /proc says of a thread. */
#ifndef CP_FIXTURE_H
#define CP_FIXTURE_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * "FIXTURE: what: strerror(errno)" on stderr, and exit 1: a fixture that cannot set itself up
 * never prints READY, and the test that waits for it says why.
 */
static inline __attribute__((noreturn)) void die(const char *what)
{
	fprintf(stderr, "%s: %s: %s\n", program_invocation_short_name, what, strerror(errno));
	exit(1);
}

/* The first line of /proc/PID/task/TID/NAME into buf (cut to size); -1 when it is gone. */
static inline int read_task_line(int pid, int tid, const char *name, char *buf, size_t size)
{
	char path[64];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/%s", pid, tid, name);
	f = fopen(path, "r");
	if (!f)
		return -1;
	if (!fgets(buf, (int)size, f))
		buf[0] = '\0';
	fclose(f);
	return 0;
}

/*
 * The system call thread tid of this process sleeps in; -1 when it is blocked outside one, -2
 * when it is running or gone. Fixtures poll this until their threads sit where the tests
 * expect them, before they print READY.
 */
static inline long task_syscall(int tid)
{
	char buf[64];
	long nr;

	if (read_task_line((int)getpid(), tid, "syscall", buf, sizeof(buf)) < 0 ||
	    sscanf(buf, "%ld", &nr) != 1)
		return -2;
	return nr;
}

/* The state letter of a thread (R, S, D, Z, t...), or 0 when it cannot be read. */
static inline char task_state(int pid, int tid)
{
	char buf[512];
	const char *p;

	if (read_task_line(pid, tid, "stat", buf, sizeof(buf)) < 0)
		return 0;
	/* After the last ')': the name in parentheses may hold anything. */
	p = strrchr(buf, ')');
	return p && p[1] == ' ' ? p[2] : 0;
}

#endif
