/* The unit tests' checks (count and print failures, skip, end with a verdict); fixtures' home. */
#ifndef CP_TEST_CHECK_H
#define CP_TEST_CHECK_H

#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

/* Failed checks so far; check_done() turns it into the exit status. */
static int failures;

/*
 * The message of a failed check, printf-style. A failed check often prints the very pointer it
 * found NULL, which glibc shows as "(null)": GCC's warning about a null %s is not wanted here
 * (and only here, not in the rest of a test).
 */
static inline __attribute__((format(printf, 1, 2))) void check_printf(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
}

#define CHECK_PRINTF(...)                                                                          \
	_Pragma("GCC diagnostic push");                                                            \
	_Pragma("GCC diagnostic ignored \"-Wformat-overflow\"");                                   \
	check_printf(__VA_ARGS__);                                                                 \
	_Pragma("GCC diagnostic pop");

/*
 * CHECK(cond) or CHECK(cond, fmt, ...): when cond is false, count a failure and print
 * "FAIL file:line: cond", followed by ": " and the message when there is one. The test goes
 * on, so one run shows every failed check.
 */
#define CHECK(cond, ...)                                                                           \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			failures++;                                                                \
			printf("FAIL %s:%d: %s", __FILE__, __LINE__, #cond);                       \
			__VA_OPT__(printf(": "); CHECK_PRINTF(__VA_ARGS__))                        \
			printf("\n");                                                              \
		}                                                                                  \
	} while (0)

/* A failure found without a single condition to show: "FAIL file:line: message". */
#define FAIL(...)                                                                                  \
	do {                                                                                       \
		failures++;                                                                        \
		printf("FAIL %s:%d: ", __FILE__, __LINE__);                                        \
		CHECK_PRINTF(__VA_ARGS__)                                                          \
		printf("\n");                                                                      \
	} while (0)

/* Exit 77: the runner shows the last line printed, so the reason comes last. */
static inline __attribute__((noreturn, format(printf, 1, 2))) void skip(const char *fmt, ...)
{
	va_list ap;

	printf("skip: ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	exit(77);
}

/* main()'s exit status: 1 after saying how many checks failed, else 0. */
static inline int check_done(const char *what)
{
	if (failures) {
		printf("%s: %d checks failed\n", what, failures);
		return 1;
	}
	printf("%s: all checks passed\n", what);
	return 0;
}

/* The fixture programs' directory: CPROF_TARGETS, else tests/targets of this test's build. */
static inline void check_targets_dir(char *buf, size_t size)
{
	static const char rel[] = "/../targets";
	const char *env = getenv("CPROF_TARGETS");
	char self[PATH_MAX];
	ssize_t n;

	if (env && *env) {
		snprintf(buf, size, "%s", env);
		return;
	}
	/* BUILD/tests/unit/test_x -> BUILD/tests/targets */
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	self[n < 0 ? 0 : n] = '\0';
	if (strrchr(self, '/'))
		*strrchr(self, '/') = '\0';
	/* Built piecewise: a formatted copy of a PATH_MAX path trips -Wformat-truncation. */
	buf[0] = '\0';
	if (strlen(self) + sizeof(rel) <= size) {
		strcat(buf, self);
		strcat(buf, rel);
	}
}

/* A shell command's exit status, -1 when it could not run. */
static inline int check_sh(const char *cmd)
{
	int r = system(cmd);

	return r == -1 ? -1 : WEXITSTATUS(r);
}

/*
 * Start exe with one argument (none when arg is NULL), its stdout a pipe read until it prints
 * READY: its pid, or -1 (a fixture that never says READY is killed and reaped).
 */
static inline pid_t check_start(const char *exe, const char *arg)
{
	char buf[512];
	size_t got = 0;
	int fd[2];
	pid_t pid;

	if (pipe(fd) < 0)
		return -1;
	pid = fork();
	if (pid == 0) {
		dup2(fd[1], 1);
		close(fd[0]);
		execl(exe, exe, arg, (char *)NULL);
		_exit(127);
	}
	close(fd[1]);
	while (pid > 0 && got < sizeof(buf) - 1) {
		ssize_t r = read(fd[0], buf + got, sizeof(buf) - 1 - got);

		if (r <= 0)
			break;
		got += (size_t)r;
		buf[got] = 0;
		if (strstr(buf, "READY"))
			break;
	}
	close(fd[0]);
	buf[got] = 0;
	if (pid > 0 && !strstr(buf, "READY")) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return -1;
	}
	return pid;
}

#endif
