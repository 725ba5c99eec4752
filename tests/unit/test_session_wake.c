/*
 * Tests of how a profiling session waits: a wake fd (the command's pidfd in `cprof record`)
 * ends cp_session_poll()'s wait at once, so callers can wait long between reads; and the
 * rings are sized for about half a second of samples (512 KiB per CPU at 99 Hz).
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "session.h"

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(void)
{
	struct cp_session_opts o = { 0 };
	struct cp_session_stats st;
	struct cp_session *sess = NULL;
	int wake[2], status, err;
	double t0, waited;
	pid_t pid;

	/* A target that never runs: no sample wakes a poll, only the timeout or the wake fd. */
	pid = fork();
	if (pid < 0)
		return 1;
	if (pid == 0) {
		for (;;)
			pause();
	}
	o.pids = &pid;
	o.npids = 1;
	o.hz = 99;
	o.dwarf = true;
	o.kernel = true;
	err = cp_session_new(&o, &sess);
	if (err == -EACCES || err == -EPERM || err == -ENOENT || err == -EOPNOTSUPP) {
		printf("skip: perf_event_open refused here (%s)\n", strerror(-err));
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		return 77;
	}
	CHECK(err == 0, "cp_session_new: %s", strerror(-err));
	if (err < 0 || pipe(wake) < 0) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		return check_done("session_wake");
	}

	cp_session_get_stats(sess, &st);
	CHECK(st.ring_bytes > 0 && st.ring_bytes <= (512u << 10),
	      "99 Hz: %zu bytes of ring per CPU, want at most 512 KiB", st.ring_bytes);

	/* Nothing to read and no wake fd: the wait is the timeout. */
	t0 = now_s();
	CHECK(cp_session_poll(sess, 200) == 0, "poll");
	waited = now_s() - t0;
	CHECK(waited >= 0.15, "waited %.3f s of 0.2", waited);

	/* A readable wake fd ends a long wait at once. */
	cp_session_wake_on(sess, wake[0]);
	CHECK(write(wake[1], "x", 1) == 1, "write");
	t0 = now_s();
	CHECK(cp_session_poll(sess, 20000) == 0, "poll");
	waited = now_s() - t0;
	CHECK(waited < 5.0, "a readable wake fd: waited %.3f s of 20", waited);

	/* Removed, it no longer ends the wait. */
	cp_session_wake_on(sess, -1);
	t0 = now_s();
	CHECK(cp_session_poll(sess, 200) == 0, "poll");
	waited = now_s() - t0;
	CHECK(waited >= 0.15, "wake fd removed: waited %.3f s of 0.2", waited);

	cp_session_stop(sess);
	cp_session_free(sess);
	close(wake[0]);
	close(wake[1]);
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	return check_done("session_wake");
}
