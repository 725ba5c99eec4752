/* Starting a fixture from tests/targets for the diagnose unit tests, and reading its lines. */
#ifndef CP_TEST_DIAG_FIXTURE_H
#define CP_TEST_DIAG_FIXTURE_H

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

#define FIX_MAX_LINES 512

struct fixture {
	pid_t pid;
	int out;		/* read end of its stdout */
	char *lines[FIX_MAX_LINES];
	int nlines;
};

/* The fixture called name in check_targets_dir(). */
static inline void fixture_path(const char *name, char *buf, size_t size)
{
	char dir[PATH_MAX];

	check_targets_dir(dir, sizeof(dir));
	/* Built piecewise: a formatted copy of a PATH_MAX path trips -Wformat-truncation. */
	buf[0] = '\0';
	if (strlen(dir) + 1 + strlen(name) < size) {
		strcat(buf, dir);
		strcat(buf, "/");
		strcat(buf, name);
	}
}

/* Start it and read stdout until a line containing READY. 0, or -1 with the reason printed. */
static inline int fixture_start(struct fixture *f, const char *name, char *const extra[])
{
	char path[PATH_MAX], buf[8192];
	char *argv[16];
	size_t used = 0;
	int p[2], i = 1;
	time_t deadline;

	memset(f, 0, sizeof(*f));
	fixture_path(name, path, sizeof(path));
	if (access(path, X_OK) < 0) {
		printf("fixture %s not built (%s)\n", path, strerror(errno));
		return -1;
	}
	argv[0] = path;
	while (extra && extra[i - 1] && i < 15) {
		argv[i] = extra[i - 1];
		i++;
	}
	argv[i] = NULL;
	if (pipe(p) < 0)
		return -1;
	f->pid = fork();
	if (f->pid < 0)
		return -1;
	if (f->pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
		dup2(p[1], 1);
		close(p[0]);
		close(p[1]);
		execv(path, argv);
		_exit(127);
	}
	close(p[1]);
	f->out = p[0];
	deadline = time(NULL) + 30;
	while (time(NULL) < deadline) {
		struct pollfd pfd = { .fd = f->out, .events = POLLIN };
		char *nl;
		ssize_t n;

		if (poll(&pfd, 1, 200) <= 0)
			continue;
		n = read(f->out, buf + used, sizeof(buf) - 1 - used);
		if (n <= 0)
			break;
		used += (size_t)n;
		buf[used] = '\0';
		while ((nl = strchr(buf, '\n'))) {
			*nl = '\0';
			if (f->nlines < FIX_MAX_LINES)
				f->lines[f->nlines++] = strdup(buf);
			if (strstr(buf, "READY"))
				return 0;
			used -= (size_t)(nl + 1 - buf);
			memmove(buf, nl + 1, used + 1);
		}
	}
	printf("fixture %s did not get READY\n", name);
	return -1;
}

static inline void fixture_stop(struct fixture *f)
{
	int i;

	if (f->pid > 0) {
		kill(f->pid, SIGKILL);
		waitpid(f->pid, NULL, 0);
		f->pid = 0;
	}
	if (f->out > 0)
		close(f->out);
	f->out = -1;
	for (i = 0; i < f->nlines; i++)
		free(f->lines[i]);
	f->nlines = 0;
}

/* The value after "<tag> <key> " in the fixture's output (e.g. "TID abba-1 123"), or NULL. */
static inline const char *fixture_value(const struct fixture *f, const char *tag, const char *key)
{
	size_t tl = strlen(tag), kl = strlen(key);
	int i;

	for (i = 0; i < f->nlines; i++) {
		const char *l = f->lines[i];

		if (!strncmp(l, tag, tl) && l[tl] == ' ' && !strncmp(l + tl + 1, key, kl) &&
		    l[tl + 1 + kl] == ' ')
			return l + tl + 1 + kl + 1;
	}
	return NULL;
}

static inline long fixture_long(const struct fixture *f, const char *tag, const char *key)
{
	const char *v = fixture_value(f, tag, key);

	return v ? strtol(v, NULL, 0) : -1;
}

static inline unsigned long long fixture_addr(const struct fixture *f, const char *key)
{
	const char *v = fixture_value(f, "MUTEX", key);

	return v ? strtoull(v, NULL, 16) : 0;
}

#endif
