/* Unit tests for src/target/tracer.c: fd listings, and a traced child stopped at its exit_group. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "tracer.h"
#include "util.h"

static void test_fd_entries(void)
{
	struct cp_fd_entry *v = NULL;
	size_t n = 0;
	int p[2], found = 0;

	CHECK(pipe(p) == 0);
	CHECK(cp_fd_entries_read(getpid(), &v, &n) == 0);
	for (size_t i = 0; i < n; i++) {
		if (i)
			CHECK(v[i - 1].fd < v[i].fd, "not sorted at %zu", i);
		if (v[i].fd == p[0] || v[i].fd == p[1]) {
			CHECK(!strncmp(v[i].link, "pipe:[", 6), "fd %d is %s", v[i].fd, v[i].link);
			found++;
		}
	}
	CHECK(found == 2, "found %d of the pipe's fds", found);
	cp_fd_entries_free(v, n);
	close(p[0]);
	close(p[1]);
	CHECK(cp_fd_entries_read(999999999, &v, &n) < 0);
}

static void *sleeper(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

/* A thread made by clone() rather than pthread_create's clone3(): it only sleeps. */
static int raw_sleeper(void *arg)
{
	(void)arg;
	for (;;)
		syscall(SYS_pause);
	return 0;
}

/*
 * The child: wait for the tracer, install the filter, leave two threads (clone3 and clone)
 * and an fd, _exit(5).
 */
static __attribute__((noreturn)) void child(int go)
{
	static char stack[65536] __attribute__((aligned(16)));
	pthread_t t;
	char c;
	int p[2];

	if (read(go, &c, 1) != 1 || cp_tracer_child_prepare() < 0)
		_exit(100);
	if (pipe(p) < 0 || pthread_create(&t, NULL, sleeper, NULL) != 0)
		_exit(101);
	if (clone(raw_sleeper, stack + sizeof(stack),
		  CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM,
		  NULL) < 0)
		_exit(102);
	usleep(50000);
	_exit(5);	/* exit_group; no atexit handlers (LeakSanitizer would use ptrace) */
}

static void test_exit_group_stop(void)
{
	struct cp_trace_event ev;
	struct cp_tracer *tr = NULL;
	const struct cp_fd_entry *fds;
	bool exiting = false, gone = false;
	size_t nfds;
	int go[2], pid, tids = 0;
	uint64_t t0;

	CHECK(pipe(go) == 0);
	pid = fork();
	if (pid == 0) {
		close(go[1]);
		child(go[0]);
	}
	close(go[0]);
	CHECK(cp_tracer_new(pid, &tr) == 0);
	if (!tr) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return;
	}
	CHECK(cp_tracer_start_fds(tr, pid, &fds, &nfds), "no start fds for the root");
	CHECK(write(go[1], "g", 1) == 1);
	t0 = cp_now_ns();
	while (!gone && cp_now_ns() - t0 < 20000000000ull) {
		int r = cp_tracer_next(tr, &ev);

		if (r == 0) {
			usleep(1000);
			continue;
		}
		if (r < 0)
			break;
		if (ev.kind == CP_TRACE_EXITING) {
			char path[64];
			int creator = 0;
			const struct cp_thread_snap *s;

			exiting = true;
			CHECK(ev.pid == pid && ev.tid == pid && ev.code == 5, "pid %d tid %d code %d",
			      ev.pid, ev.tid, ev.code);
			/* The other thread is still there, and was seen being created. */
			for (int tid = pid + 1; tid < pid + 64; tid++) {
				snprintf(path, sizeof(path), "/proc/%d/task/%d", pid, tid);
				if (access(path, F_OK) != 0)
					continue;
				tids++;
				s = cp_tracer_creation(tr, tid, &creator);
				CHECK(s && creator == pid, "no creation stack for %d", tid);
				CHECK(s && s->stack.len > 0 && (s->regs.valid & (1u << CP_REG_RIP)));
			}
			CHECK(tids == 2, "%d other threads alive at exit_group", tids);
			cp_tracer_resume(tr, &ev);
		} else if (ev.kind == CP_TRACE_ROOT_GONE) {
			gone = true;
			CHECK(WIFEXITED(ev.status) && WEXITSTATUS(ev.status) == 5, "status %#x",
			      ev.status);
		}
	}
	CHECK(exiting && gone, "exiting %d gone %d", exiting, gone);
	if (!gone) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, __WALL);
	}
	close(go[1]);
	cp_tracer_free(tr);
}

int main(void)
{
	test_fd_entries();
	test_exit_group_stop();
	return check_done("test_tracer");
}
