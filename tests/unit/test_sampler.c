/* Unit tests for the sampler and the profiling session: CPU lists, live samples of a child. */
#include <errno.h>
#include <linux/perf_event.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "profile.h"
#include "proc.h"
#include "sampler.h"
#include "session.h"
#include "util.h"

static int failures;

#define CHECK(cond, ...)                                                     \
	do {                                                                 \
		if (!(cond)) {                                               \
			failures++;                                          \
			fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
			fprintf(stderr, __VA_ARGS__);                        \
			fputc('\n', stderr);                                 \
		}                                                            \
	} while (0)

static void test_cpulist(void)
{
	uint8_t bm[4];

	CHECK(cp_parse_cpulist("0-3,8,10-11\n", bm, 32) == 0, "valid list");
	CHECK(bm[0] == 0x0f && bm[1] == 0x0d && bm[2] == 0 && bm[3] == 0, "bits %02x %02x", bm[0],
	      bm[1]);
	CHECK(cp_parse_cpulist("5", bm, 32) == 0 && bm[0] == 0x20, "single cpu");
	CHECK(cp_parse_cpulist("0-40", bm, 32) == 0 && bm[3] == 0xff, "clipped at ncpus");
	CHECK(cp_parse_cpulist("3-1", bm, 32) == -EINVAL, "reversed range");
	CHECK(cp_parse_cpulist("a", bm, 32) == -EINVAL, "not a number");
	CHECK(cp_parse_cpulist("1,,2", bm, 32) == -EINVAL, "empty item");
	CHECK(cp_parse_cpulist("1-", bm, 32) == -EINVAL, "open range");
}

static volatile uint64_t sink;

__attribute__((noinline)) static void child_spin(double seconds)
{
	struct timespec a, b;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &a);
	do {
		for (int i = 0; i < 100000; i++)
			sink = sink * 3 + 1;
		clock_gettime(CLOCK_THREAD_CPUTIME_ID, &b);
	} while ((b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9 < seconds);
}

static void *thread_main(void *arg)
{
	prctl(PR_SET_NAME, "kid-thread");
	child_spin(*(double *)arg);
	return NULL;
}

/* A child that waits for a byte on fd, renames itself, starts a thread, and both spin. */
static pid_t start_child(int *gofd, double seconds)
{
	int p[2];
	pid_t pid;

	if (pipe(p) < 0)
		return -1;
	pid = fork();
	if (pid == 0) {
		char c;
		pthread_t t;

		close(p[1]);
		if (read(p[0], &c, 1) != 1)
			_exit(1);
		prctl(PR_SET_NAME, "sampler-kid");
		if (pthread_create(&t, NULL, thread_main, &seconds) != 0)
			_exit(1);
		child_spin(seconds);
		pthread_join(t, NULL);
		_exit(0);
	}
	close(p[0]);
	*gofd = p[1];
	return pid;
}

struct seen {
	int pid;
	int samples;
	int regs_ok;
	int other_tid;
	int callchains;
	bool renamed;
	bool thread_forked;
	bool thread_named;
};

static void on_sample(void *ctx, const struct cp_sample *s)
{
	struct seen *x = ctx;

	if (s->pid != x->pid)
		return;
	x->samples++;
	/* In kernel mode ip is the kernel's; the user registers are those at kernel entry. */
	if (s->user_regs && s->stack.len > 0 && s->stack.start == s->regs.r[CP_REG_RSP] &&
	    (s->regs.valid & (1u << CP_REG_RIP)) &&
	    (s->regs.r[CP_REG_RIP] == s->ip || s->ip >= 0x800000000000ull))
		x->regs_ok++;
	if (s->tid != s->pid)
		x->other_tid++;
	for (size_t i = 0; i < s->ncallchain; i++)
		if (s->callchain[i] == (uint64_t)PERF_CONTEXT_USER)
			x->callchains++;
}

static void on_comm(void *ctx, int pid, int tid, const char *name, bool exec)
{
	struct seen *x = ctx;

	if (pid == x->pid && tid == pid && !strcmp(name, "sampler-kid"))
		x->renamed = true;
	if (pid == x->pid && tid != pid && !strcmp(name, "kid-thread"))
		x->thread_named = true;
}

static void on_fork(void *ctx, int pid, int tid, int ppid, int ptid)
{
	struct seen *x = ctx;

	if (pid == x->pid && tid != pid && ptid == pid)
		x->thread_forked = true;
}

static int sample_child(bool dwarf)
{
	struct cp_sampler_events ev = { .sample = on_sample, .comm = on_comm, .fork = on_fork };
	struct cp_sampler_opts o = { 0 };
	struct cp_sampler_stats st;
	struct cp_sampler *s = NULL;
	struct seen x = { 0 };
	int gofd, status, err;
	pid_t pid = start_child(&gofd, 1.0);

	if (pid < 0)
		return -errno;
	x.pid = pid;
	o.pids = &x.pid;
	o.npids = 1;
	o.hz = 499;
	o.dwarf = dwarf;
	o.kernel = true;
	err = cp_sampler_open(&o, &s);
	if (err == -EACCES || err == -EPERM || err == -ENOENT || err == -EOPNOTSUPP) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		return err;
	}
	CHECK(err == 0, "cp_sampler_open: %s", strerror(-err));
	if (err < 0) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		return 0;
	}
	if (write(gofd, "g", 1) != 1)
		CHECK(0, "cannot start the child");
	close(gofd);
	for (uint64_t end = cp_now_ns() + 60000000000ull; cp_now_ns() < end;) {
		CHECK(cp_sampler_poll(s, 100, &ev, &x) >= 0, "poll");
		if (waitpid(pid, &status, WNOHANG) == pid)
			break;
	}
	cp_sampler_disable(s);
	while (cp_sampler_poll(s, 0, &ev, &x) == 1)
		;
	cp_sampler_get_stats(s, &st);
	cp_sampler_free(s);

	CHECK(x.samples >= 10, "%s: only %d samples of the child", dwarf ? "dwarf" : "fp",
	      x.samples);
	CHECK(st.rings >= 1 && st.events >= st.rings, "rings %zu events %zu", st.rings, st.events);
	if (dwarf)
		CHECK(x.regs_ok == x.samples, "%d of %d samples with consistent regs and stack",
		      x.regs_ok, x.samples);
	else
		CHECK(x.callchains >= x.samples * 9 / 10, "%d of %d samples with user callchains",
		      x.callchains, x.samples);
	CHECK(x.other_tid > 0, "no samples of the thread created after opening (inherit)");
	CHECK(x.renamed, "no COMM record for the rename");
	CHECK(x.thread_forked, "no FORK record for the new thread");
	CHECK(x.thread_named, "no COMM record for the thread name");
	return 0;
}

static int session_child(void)
{
	struct cp_session_opts o = { 0 };
	struct cp_session_stats st;
	struct cp_session *sess = NULL;
	struct cp_profile *prof;
	int gofd, status, err, pid;

	pid = start_child(&gofd, 0.5);
	if (pid < 0)
		return -errno;
	o.pids = &pid;
	o.npids = 1;
	o.hz = 499;
	o.dwarf = true;
	o.kernel = true;
	err = cp_session_new(&o, &sess);
	CHECK(err == 0, "cp_session_new: %s", strerror(-err));
	if (write(gofd, "g", 1) != 1)
		CHECK(0, "cannot start the child");
	close(gofd);
	if (err < 0) {
		waitpid(pid, &status, 0);
		return 0;
	}
	while (waitpid(pid, &status, WNOHANG) != pid)
		CHECK(cp_session_poll(sess, 100) >= 0, "session poll");
	cp_session_stop(sess);
	cp_session_stop(sess);	/* idempotent */
	cp_session_get_stats(sess, &st);
	prof = cp_session_profile(sess);
	CHECK(st.samples > 0 && cp_profile_sample_total(prof) >= st.samples,
	      "session samples %llu, profile %llu", (unsigned long long)st.samples,
	      (unsigned long long)cp_profile_sample_total(prof));
	CHECK(st.threads == 2, "threads with samples: %zu", st.threads);
	CHECK(st.processes == 1, "processes: %zu", st.processes);
	CHECK(st.locations > 0, "no locations");
	cp_session_free(sess);
	cp_session_free(NULL);
	return 0;
}

int main(void)
{
	int err;

	test_cpulist();
	cp_sampler_free(NULL);
	err = sample_child(true);
	if (err == -EACCES || err == -EPERM || err == -ENOENT || err == -EOPNOTSUPP) {
		printf("skip: perf_event_open refused here (%s)\n", strerror(-err));
		return failures ? 1 : 77;
	}
	sample_child(false);
	session_child();
	if (failures) {
		fprintf(stderr, "%d checks failed\n", failures);
		return 1;
	}
	printf("all sampler checks passed\n");
	return 0;
}
