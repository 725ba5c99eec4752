/* Unit tests for src/target/capture*.c: capture one thread, and leave no trace. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "capture.h"
#include "mem.h"
#include "maps.h"
#include "proc.h"
#include "util.h"

#define NTHREADS 4	/* main (pause), spin, sleep, read on a pipe */

/* Shared with the child: what it tells us and what it counts. */
struct shared {
	atomic_int ready;
	int tids[NTHREADS];
	atomic_ulong spins;
	atomic_int rt_signals;		/* SIGRTMIN handled by the sleeper thread */
	atomic_int sent;		/* SIGRTMIN sent by the sender process */
	atomic_int sending;
	unsigned long probe;		/* a known value at a known address */
};

static struct shared *sh;
static pid_t child = -1;

static void on_rt(int sig)
{
	(void)sig;
	atomic_fetch_add(&sh->rt_signals, 1);
}

static void *spin_main(void *arg)
{
	sh->tids[1] = (int)syscall(SYS_gettid);
	pthread_setname_np(pthread_self(), "spin");
	atomic_fetch_add(&sh->ready, 1);
	for (;;)
		atomic_fetch_add(&sh->spins, 1);
	return arg;
}

static void *sleep_main(void *arg)
{
	sh->tids[2] = (int)syscall(SYS_gettid);
	pthread_setname_np(pthread_self(), "sleeper");
	atomic_fetch_add(&sh->ready, 1);
	for (;;) {
		struct timespec ts = { 0, 2000000 };

		nanosleep(&ts, NULL);
	}
	return arg;
}

static void *read_main(void *arg)
{
	int *fds = arg;
	char c;

	sh->tids[3] = (int)syscall(SYS_gettid);
	pthread_setname_np(pthread_self(), "reader");
	atomic_fetch_add(&sh->ready, 1);
	while (read(fds[0], &c, 1) != 0)
		;
	return NULL;
}

static void child_main(void)
{
	static int fds[2];
	sigset_t rt;
	pthread_t th;
	struct sigaction sa;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_rt;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGRTMIN, &sa, NULL);
	/* Only the sleeper takes SIGRTMIN (tgkill aims at it anyway). */
	sigemptyset(&rt);
	sigaddset(&rt, SIGRTMIN);
	if (pipe(fds) != 0)
		_exit(2);
	sh->tids[0] = getpid();
	sh->probe = 0x1122334455667788ul;
	pthread_create(&th, NULL, spin_main, NULL);
	pthread_create(&th, NULL, sleep_main, NULL);
	pthread_sigmask(SIG_BLOCK, &rt, NULL);
	pthread_create(&th, NULL, read_main, fds);
	atomic_fetch_add(&sh->ready, 1);
	for (;;)
		pause();
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

/* Every task of pid untraced, and none stopped unless allow_stopped. */
static void check_untouched(int pid, bool allow_stopped, const char *when)
{
	int *tids = NULL;
	size_t n = 0, i;

	if (cp_proc_list_tasks(pid, &tids, &n) != 0) {
		FAIL("%s: cannot list tasks", when);
		return;
	}
	for (i = 0; i < n; i++) {
		struct cp_task_status ts;
		struct cp_task_stat st;

		if (cp_proc_read_status(pid, tids[i], &ts) == 0 && ts.tracer_pid != 0) {
			FAIL("%s: task %d traced by %d", when, tids[i], ts.tracer_pid);
		}
		/* 't' (tracing stop) is never acceptable; 'T' only in the group-stop test. */
		if (cp_proc_read_stat(pid, tids[i], &st) == 0 &&
		    (st.state == 't' || (st.state == 'T' && !allow_stopped))) {
			FAIL("%s: task %d in state %c", when, tids[i], st.state);
		}
	}
	free(tids);
}

static bool sigmask_has_exit_signals(void)
{
	sigset_t cur;

	pthread_sigmask(SIG_SETMASK, NULL, &cur);
	return sigismember(&cur, SIGINT) || sigismember(&cur, SIGTERM) ||
	       sigismember(&cur, SIGHUP) || sigismember(&cur, SIGQUIT);
}

static void check_snap(const struct cp_maps *maps, const struct cp_thread_snap *s, int tid)
{
	const struct cp_map *sm, *pm;
	uint64_t sp = s->regs.r[CP_REG_RSP], ip = s->regs.r[CP_REG_RIP];

	CHECK(s->tid == tid);
	CHECK(s->regs.valid == (1u << CP_NREGS) - 1);
	sm = cp_maps_find(maps, sp);
	pm = cp_maps_find(maps, ip);
	CHECK(sm != NULL && sm->perms[0] == 'r' && sm->perms[1] == 'w');
	CHECK(pm != NULL && pm->perms[2] == 'x');
	CHECK(s->stack.start == sp);
	CHECK(s->stack.len > 0 && s->stack.data != NULL);
	/* To the end of the mapping, as the default limit is far above these stacks. */
	CHECK(sm && s->stack.len == sm->end - sp && !s->stack.truncated);
	CHECK(s->stopped && s->stopped_ns > 0);
}

static void test_threads(void)
{
	struct cp_capture_opts opts = { 0 };
	struct cp_maps maps;
	struct cp_mem mem;
	int i, round;

	CHECK(cp_maps_read(child, &maps) == 0);
	CHECK(cp_mem_open(&mem, child) == 0);
	for (round = 0; round < 3; round++) {
		for (i = 0; i < NTHREADS; i++) {
			struct cp_thread_snap s;
			int tid = sh->tids[i];
			int ret;

			/*
			 * Second round hands in the maps and the open memory, third reads the
			 * maps itself again and the memory by pid.
			 */
			opts.maps = round == 1 ? &maps : NULL;
			opts.mem = round == 1 ? &mem : NULL;
			memset(&s, 0, sizeof(s));
			ret = cp_capture_thread(child, tid, &opts, &s);
			if (ret == -EPERM && round == 0 && i == 0) {
				kill(child, SIGKILL);
				skip("ptrace refused (need CAP_SYS_PTRACE or ptrace_scope 0)");
			}
			CHECK(ret == 0);
			if (ret != 0) {
				printf("capture of %d: %s\n", tid, strerror(-ret));
				continue;
			}
			check_snap(&maps, &s, tid);
			if (round == 0)
				printf("thread %d (%s): stopped %.1f us, stack %zu bytes\n", tid,
				       (const char *[]){ "main/pause", "spin", "sleep", "read" }[i],
				       s.stopped_ns / 1000.0, s.stack.len);
			/*
			 * A blocked thread's frames do not change: the copy must equal them. Only
			 * the first KiB: higher up a thread's stack mapping lies its descriptor
			 * (struct pthread, TLS), which other threads may write.
			 */
			if (i == 0 || i == 3) {
				uint8_t *now = malloc(s.stack.len);
				long n = cp_mem_read_pid(child, s.stack.start, now, s.stack.len);
				size_t cmp = s.stack.len < 1024 ? s.stack.len : 1024;

				CHECK(n == (long)s.stack.len);
				CHECK(n > 64 && memcmp(now + 64, s.stack.data + 64, cmp - 64) == 0);
				free(now);
			}
			cp_thread_snap_release(&s);
			CHECK(s.stack.data == NULL);
			cp_thread_snap_release(&s);
			CHECK(!sigmask_has_exit_signals());
			check_untouched(child, false, "after capture");
		}
	}
	cp_maps_release(&maps);
	cp_mem_close(&mem);
	cp_thread_snap_release(NULL);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

/* Not a pass/fail criterion (machines differ): the numbers for people to read. */
static void report_stop_times(void)
{
	static const char *const names[NTHREADS] = { "main/pause", "spin", "sleep", "read" };
	enum { N = 200 };
	uint64_t t[N];
	int i, k;

	for (i = 0; i < NTHREADS; i++) {
		int got = 0;

		for (k = 0; k < N; k++) {
			struct cp_thread_snap s;

			if (cp_capture_thread(child, sh->tids[i], NULL, &s) != 0)
				continue;
			t[got++] = s.stopped_ns;
			cp_thread_snap_release(&s);
		}
		CHECK(got == N);
		if (got == 0)
			continue;
		qsort(t, (size_t)got, sizeof(t[0]), cmp_u64);
		printf("stop time %-10s over %d captures: median %.1f us, p90 %.1f us, max %.1f us\n",
		       names[i], got, t[got / 2] / 1000.0, t[got * 9 / 10] / 1000.0,
		       t[got - 1] / 1000.0);
	}
	check_untouched(child, false, "after timing captures");
}

static void test_keeps_running(void)
{
	unsigned long before = atomic_load(&sh->spins);
	int i;

	/* No timing bound: only that it moves again at all within a generous wait. */
	for (i = 0; i < 500 && atomic_load(&sh->spins) == before; i++)
		sleep_ms(10);
	CHECK(atomic_load(&sh->spins) != before);
}

static void test_truncated(void)
{
	struct cp_capture_opts opts = { .stack_max = 64 };
	struct cp_thread_snap s;

	CHECK(cp_capture_thread(child, sh->tids[0], &opts, &s) == 0);
	CHECK(s.stack.len == 64 && s.stack.truncated);
	cp_thread_snap_release(&s);
	check_untouched(child, false, "after truncated capture");
}

/* Maps handed in that do not hold the stack (made before the thread existed): read again. */
static void test_stale_maps(void)
{
	struct cp_maps empty = { 0 };
	struct cp_capture_opts opts = { .maps = &empty };
	struct cp_thread_snap s;

	CHECK(cp_capture_thread(child, sh->tids[3], &opts, &s) == 0);
	CHECK(s.stack.len > 0 && s.stack.data != NULL && !s.stack.truncated);
	cp_thread_snap_release(&s);
	check_untouched(child, false, "after stale-maps capture");
}

/* Open files of this process. */
static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n - 1;	/* the directory's own fd */
}

/* Until tid of the child sleeps (at most 10000 looks a ms apart: a busy machine is slow). */
static void wait_sleeping(int tid)
{
	struct cp_task_stat st;

	for (int i = 0; i < 10000; i++) {
		if (cp_proc_read_stat(child, tid, &st) == 0 && st.state == 'S')
			return;
		sleep_ms(1);
	}
}

/*
 * The sweep over many threads: the reader (blocked in read) and the main thread (pause) are
 * captured live and exactly (their stacks as the kernel sees them, sp and pc as /proc says);
 * the spinner is left to cp_capture_thread; a thread that is not the process's is gone.
 * Nothing is ever stopped.
 */
static void live_many_sweeps(const struct cp_switch_watch *sw)
{
	struct cp_capture_opts opts = { .flags = CP_CAPTURE_LIVE, .switches = sw };
	int tids[4] = { sh->tids[0], sh->tids[1], sh->tids[3], 999999999 };
	struct cp_thread_snap snaps[4];
	int ret[4];

	CHECK(cp_capture_live_many(child, tids, CP_CAPTURE_MANY_MAX + 1, &opts, snaps, ret) ==
	      -EINVAL);
	for (int round = 0; round < 20; round++) {
		struct cp_task_syscall sc;
		/* The sweep closes its files in runs (close_range): a file of ours in the middle
		 * of its numbers must stay open, and none of the sweep's may stay. */
		int keep = open("/dev/null", O_RDONLY | O_CLOEXEC), hole = dup(keep);
		int fds_before;

		close(hole);	/* a free number among the ones the sweep will take */
		fds_before = count_fds();

		/* A thread stopped by an earlier test runs a moment to restart its call. */
		wait_sleeping(tids[0]);
		wait_sleeping(tids[2]);
		CHECK(cp_capture_live_many(child, tids, 4, &opts, snaps, ret) == 0);
		/* The spinner runs: left to cp_capture_thread, unless a busy machine preempted it
		 * for the whole copy (then a live capture is right, and it is verified). */
		CHECK(ret[1] == -EAGAIN || ret[1] == 0, "spinner: %d", ret[1]);
		if (ret[1] == 0) {
			CHECK(snaps[1].tid == tids[1] && snaps[1].live && snaps[1].verified &&
			      !snaps[1].stopped);
			cp_thread_snap_release(&snaps[1]);
		}
		CHECK(ret[3] == -ESRCH, "foreign tid: %d", ret[3]);
		for (int i = 0; i < 3; i += 2) {
			uint8_t now[512];
			long n;

			CHECK(ret[i] == 0, "tid %d: %d", tids[i], ret[i]);
			if (ret[i] != 0)
				continue;
			CHECK(snaps[i].tid == tids[i] && snaps[i].live && snaps[i].verified);
			CHECK(!snaps[i].stopped && snaps[i].has_syscall && snaps[i].has_state);
			CHECK(snaps[i].state == 'S');
			CHECK(cp_proc_read_syscall(child, tids[i], &sc) == 0);
			CHECK(snaps[i].regs.r[CP_REG_RSP] == sc.sp && snaps[i].regs.r[CP_REG_RIP] == sc.pc);
			CHECK(snaps[i].stack.start == sc.sp && snaps[i].stack.len > 64);
			n = cp_mem_read_pid(child, sc.sp, now, sizeof(now));
			CHECK(n > 64 && memcmp(now, snaps[i].stack.data,
					       (size_t)n < snaps[i].stack.len ? (size_t)n
									 : snaps[i].stack.len) == 0);
			cp_thread_snap_release(&snaps[i]);
		}
		CHECK(fcntl(keep, F_GETFD) >= 0, "a file not the sweep's was closed");
		CHECK(count_fds() == fds_before, "fds %d -> %d", fds_before, count_fds());
		close(keep);
	}
	check_untouched(child, false, "after live sweeps");
}

/*
 * Once asking each thread a second time whether it ran, once trusting the CPUs' switch
 * records instead: the same exact stacks, the spinner still refused.
 */
static void test_live_many(void)
{
	struct cp_switch_watch sw;
	int err;

	live_many_sweeps(NULL);
	err = cp_switch_watch_open(&sw);
	if (err < 0 && geteuid() != 0) {
		printf("note: live sweeps with switch records not tested: %s\n", strerror(-err));
		return;
	}
	CHECK(err == 0, "switch watch: %s", strerror(-err));
	if (err == 0) {
		live_many_sweeps(&sw);
		cp_switch_watch_close(&sw);
	}
}

/*
 * A running thread captured from one perf sample: every register, its stack from sp, taken
 * while it keeps running (its counter moves on, it is never stopped or traced); a sleeping
 * thread gives no sample and -EAGAIN.
 */
static void test_by_sample(void)
{
	struct cp_maps maps;
	int ok = 0;

	CHECK(cp_maps_read(child, &maps) == 0);
	for (int i = 0; i < 50; i++) {
		struct cp_thread_snap s;
		const struct cp_map *pm, *sm;
		int ret = cp_capture_by_sample(sh->tids[1], 0, 1000, &s);

		CHECK(ret == 0 || ret == -EAGAIN, "%s", strerror(-ret));
		if (ret != 0)
			continue;
		ok++;
		pm = cp_maps_find(&maps, s.regs.r[CP_REG_RIP]);
		sm = cp_maps_find(&maps, s.regs.r[CP_REG_RSP]);
		CHECK(s.tid == sh->tids[1] && !s.stopped && s.verified && !s.live);
		CHECK(s.regs.valid == (1u << CP_NREGS) - 1);
		CHECK(pm && pm->perms[2] == 'x' && sm && sm->perms[1] == 'w');
		CHECK(s.stack.start == s.regs.r[CP_REG_RSP] && s.stack.len > 0 &&
		      s.stack.data != NULL);
		CHECK(s.stack.len <= (60u << 10));
		cp_thread_snap_release(&s);
	}
	/* The spinner spins: most tries must give a sample. */
	CHECK(ok >= 40, "%d of 50 samples", ok);
	{
		struct cp_thread_snap s;

		wait_sleeping(sh->tids[3]);
		CHECK(cp_capture_by_sample(sh->tids[3], 0, 50, &s) == -EAGAIN);
		CHECK(cp_capture_by_sample(999999999, 0, 50, &s) == -ESRCH);
	}
	cp_maps_release(&maps);
	test_keeps_running();
	check_untouched(child, false, "after samples");
}

static void test_gone(void)
{
	struct cp_thread_snap s;
	pid_t dead = fork();
	int status;

	if (dead == 0)
		_exit(0);
	waitpid(dead, &status, 0);
	memset(&s, 0x5a, sizeof(s));
	CHECK(cp_capture_thread(dead, dead, NULL, &s) == -ESRCH);
	/* A live tid that is not a thread of that process. */
	CHECK(cp_capture_thread(getpid(), sh->tids[1], NULL, &s) == -ESRCH);
	CHECK(cp_capture_thread(child, 0, NULL, &s) == -EINVAL);
	CHECK(s.tid == 0x5a5a5a5a);
	check_untouched(child, false, "after failed captures");
}

static void test_read_mem(void)
{
	unsigned long v = 0;
	long n;
	uint8_t *p, buf[8192];

	n = cp_mem_read_pid(child, (uint64_t)(uintptr_t)&sh->probe, &v, sizeof(v));
	CHECK(n == (long)sizeof(v) && v == 0x1122334455667788ul);
	CHECK(cp_mem_read_pid(child, 16, &v, sizeof(v)) == -EFAULT);
	CHECK(cp_mem_read_pid(999999999, 0x1000, &v, sizeof(v)) == -ESRCH);
	CHECK(cp_mem_read_pid(child, 0x1000, &v, 0) == 0);

	/* The readable prefix of a range that runs off the end of a mapping. */
	p = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(p != MAP_FAILED);
	memset(p, 0xab, 8192);
	munmap(p + 4096, 4096);
	n = cp_mem_read_pid(getpid(), (uint64_t)(uintptr_t)p + 100, buf, sizeof(buf));
	CHECK(n == 4096 - 100 && buf[0] == 0xab && buf[n - 1] == 0xab);

	/* The same through an open context: its mem file, and the same answers. */
	{
		struct cp_mem self, kid;

		CHECK(cp_mem_open(&self, getpid()) == 0 && self.fd >= 0);
		CHECK(cp_mem_open(&kid, child) == 0 && kid.fd >= 0);
		n = cp_mem_read(&self, (uint64_t)(uintptr_t)p + 100, buf, sizeof(buf));
		CHECK(n == 4096 - 100 && buf[0] == 0xab && buf[n - 1] == 0xab);
		v = 0;
		n = cp_mem_read(&kid, (uint64_t)(uintptr_t)&sh->probe, &v, sizeof(v));
		CHECK(n == (long)sizeof(v) && v == 0x1122334455667788ul);
		CHECK(cp_mem_read(&kid, 16, &v, sizeof(v)) == -EFAULT);
		CHECK(cp_mem_read(&kid, 0x1000, &v, 0) == 0);
		cp_mem_close(&kid);
		CHECK(kid.fd == -1 && kid.pid == child, "closed: reads by pid");
		cp_mem_close(&self);
		cp_mem_close(NULL);
		CHECK(cp_mem_open(&kid, 0) == -EINVAL && kid.fd == -1);
	}
	munmap(p, 4096);
}

/*
 * A signal that arrives while the thread is stopped by us must still be delivered. A second
 * process sends real-time signals (never merged) to the thread without pause while we
 * capture it over and over, so that some land between our SEIZE and the stop and come to
 * us as signal-delivery-stops.
 */
static void test_signals_kept(void)
{
	int tid = sh->tids[2], i, status, captures = 0, before;
	pid_t sender;

	atomic_store(&sh->sent, 0);
	atomic_store(&sh->rt_signals, 0);
	before = 0;
	atomic_store(&sh->sending, 1);
	sender = fork();
	if (sender == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		/* Keep a few signals queued at all times until told to stop. */
		while (atomic_load(&sh->sending)) {
			if (atomic_load(&sh->sent) - atomic_load(&sh->rt_signals) > 8) {
				sched_yield();
				continue;
			}
			if (syscall(SYS_tgkill, sh->tids[0], tid, SIGRTMIN) == 0)
				atomic_fetch_add(&sh->sent, 1);
		}
		_exit(0);
	}
	while (captures < 1000) {
		struct cp_thread_snap s;
		int ret = cp_capture_thread(child, tid, NULL, &s);

		CHECK(ret == 0);
		if (ret != 0)
			break;
		cp_thread_snap_release(&s);
		captures++;
	}
	atomic_store(&sh->sending, 0);
	waitpid(sender, &status, 0);
	for (i = 0; i < 3000 && atomic_load(&sh->rt_signals) - before < atomic_load(&sh->sent); i++)
		sleep_ms(10);
	printf("captures %d while signals were sent %d, handled %d\n", captures,
	       atomic_load(&sh->sent), atomic_load(&sh->rt_signals) - before);
	CHECK(atomic_load(&sh->rt_signals) - before == atomic_load(&sh->sent));
	check_untouched(child, false, "after signal captures");
}

/* Capturing a process stopped by SIGSTOP keeps it stopped, and untraced. */
static void test_group_stop(void)
{
	unsigned long spins;
	struct cp_thread_snap s;
	struct cp_task_stat st;
	int i, ret;

	kill(child, SIGSTOP);
	/* Every thread reaches the group-stop on its own: wait for all of them. */
	for (i = 0; i < 1000; i++) {
		int k, stopped = 0;

		for (k = 0; k < NTHREADS; k++)
			if (cp_proc_read_stat(child, sh->tids[k], &st) == 0 && st.state == 'T')
				stopped++;
		if (stopped == NTHREADS)
			break;
		sleep_ms(10);
	}
	CHECK(st.state == 'T');
	spins = atomic_load(&sh->spins);
	ret = cp_capture_thread(child, sh->tids[1], NULL, &s);
	CHECK(ret == 0);
	if (ret == 0)
		cp_thread_snap_release(&s);
	/*
	 * After the detach the kernel wakes the thread so that it re-enters the group-stop
	 * (it shows R until it gets a CPU, without ever reaching user code): wait for T again,
	 * then check that the spinning thread made no progress at all.
	 */
	for (i = 0; i < 1000; i++) {
		if (cp_proc_read_stat(child, sh->tids[1], &st) == 0 && st.state == 'T')
			break;
		sleep_ms(10);
	}
	sleep_ms(20);
	for (i = 0; i < NTHREADS; i++) {
		CHECK(cp_proc_read_stat(child, sh->tids[i], &st) == 0 && st.state == 'T');
	}
	CHECK(atomic_load(&sh->spins) == spins);
	check_untouched(child, true, "after group-stop capture");
	kill(child, SIGCONT);
	for (i = 0; i < 500; i++) {
		if (cp_proc_read_stat(child, sh->tids[1], &st) == 0 && st.state != 'T')
			break;
		sleep_ms(10);
	}
	CHECK(st.state != 'T');
	test_keeps_running();
}

/*
 * cprof killed with SIGKILL in the middle of captures, at whatever point: the kernel must
 * let the thread go, running, untraced, without a stray SIGSTOP (see capture.c).
 */
static void test_killed_tracer(void)
{
	int round, status;

	for (round = 0; round < 30; round++) {
		pid_t capturer = fork();

		if (capturer == 0) {
			for (;;) {
				int i;

				for (i = 0; i < NTHREADS; i++) {
					struct cp_thread_snap s;

					if (cp_capture_thread(child, sh->tids[i], NULL, &s) == 0)
						cp_thread_snap_release(&s);
				}
			}
		}
		sleep_ms(1 + round % 7);
		kill(capturer, SIGKILL);
		waitpid(capturer, &status, 0);
		check_untouched(child, false, "after the capturer was killed");
	}
	/* A stray SIGSTOP would show as state T above or as no progress here. */
	sleep_ms(50);
	check_untouched(child, false, "a while after the capturer was killed");
	test_keeps_running();
}

/*
 * Someone else (a debugger) traces the thread: -EBUSY, unless CP_CAPTURE_TRACED lets a live
 * capture take it; their tracing is undisturbed.
 */
static void test_busy(void)
{
	const struct cp_capture_opts live = { .flags = CP_CAPTURE_LIVE };
	const struct cp_capture_opts traced = { .flags = CP_CAPTURE_LIVE | CP_CAPTURE_TRACED };
	struct cp_task_status ts;
	struct cp_thread_snap s;
	int tid = sh->tids[3], i, status;
	pid_t tracer = fork();

	if (tracer == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (ptrace(PTRACE_SEIZE, tid, NULL, NULL) != 0)
			_exit(3);
		for (;;)
			pause();
	}
	for (i = 0; i < 500; i++) {
		if (cp_proc_read_status(child, tid, &ts) == 0 && ts.tracer_pid == tracer)
			break;
		sleep_ms(10);
	}
	CHECK(ts.tracer_pid == tracer);
	CHECK(cp_capture_thread(child, tid, NULL, &s) == -EBUSY);
	CHECK(cp_proc_read_status(child, tid, &ts) == 0 && ts.tracer_pid == tracer);
	/* Live: refused without CP_CAPTURE_TRACED; with it, the blocked reader is copied live. */
	CHECK(cp_capture_thread(child, tid, &live, &s) == -EBUSY);
	CHECK(cp_capture_thread(child, tid, &traced, &s) == 0);
	CHECK(s.live && s.verified && !s.stopped && s.tracer == tracer);
	CHECK(s.stack.len > 0 && s.regs.r[CP_REG_RSP] == s.stack.start);
	cp_thread_snap_release(&s);
	CHECK(cp_proc_read_status(child, tid, &ts) == 0 && ts.tracer_pid == tracer);
	CHECK(!sigmask_has_exit_signals());
	kill(tracer, SIGKILL);
	waitpid(tracer, &status, 0);
	/* The tracer's death detaches it; the thread must now be capturable again. */
	for (i = 0; i < 500; i++) {
		if (cp_proc_read_status(child, tid, &ts) == 0 && ts.tracer_pid == 0)
			break;
		sleep_ms(10);
	}
	CHECK(cp_capture_thread(child, tid, NULL, &s) == 0);
	cp_thread_snap_release(&s);
	check_untouched(child, false, "after busy");
}

/*
 * A thread in uninterruptible sleep (a vfork parent waits in D until its child execs or
 * exits): captured without stopping from its /proc sp and pc, or -EAGAIN when a stop is
 * demanded, and never a hang either way.
 */
static void test_dstate(void)
{
	struct cp_capture_opts stop = { .flags = CP_CAPTURE_STOP };
	struct cp_thread_snap s;
	struct cp_task_stat st;
	struct cp_maps maps;
	int fds[2], i, ret, status;
	pid_t p;

	if (pipe(fds) != 0) {
		CHECK(0);
		return;
	}
	p = fork();
	if (p == 0) {
		char c;

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		close(fds[1]);
		if (vfork() == 0) {
			/* Only a raw read and _exit here: the vfork child shares our memory. */
			while (read(fds[0], &c, 1) > 0)
				;
			_exit(0);
		}
		_exit(0);
	}
	close(fds[0]);
	for (i = 0; i < 500; i++) {
		if (cp_proc_read_stat(p, p, &st) == 0 && st.state == 'D')
			break;
		sleep_ms(10);
	}
	if (st.state != 'D') {
		printf("note: vfork parent not in D (state %c), D-state capture not tested\n",
		       st.state);
		goto out;
	}
	CHECK(cp_capture_thread(p, p, &stop, &s) == -EAGAIN);
	memset(&s, 0, sizeof(s));
	ret = cp_capture_thread(p, p, NULL, &s);
	CHECK(ret == 0);
	if (ret == 0) {
		CHECK(!s.stopped && s.stopped_ns == 0);
		CHECK((s.regs.valid & ((1u << CP_REG_RSP) | (1u << CP_REG_RIP))) ==
		      ((1u << CP_REG_RSP) | (1u << CP_REG_RIP)));
		/* Nothing /proc does not show: no callee-saved register, no rax. */
		CHECK(!(s.regs.valid & ((1u << CP_REG_RBX) | (1u << CP_REG_RBP) |
					(1u << CP_REG_RAX) | (1u << CP_REG_R12))));
		CHECK(s.stack.start == s.regs.r[CP_REG_RSP] && s.stack.len > 0);
		if (cp_maps_read(p, &maps) == 0) {
			const struct cp_map *m = cp_maps_find(&maps, s.regs.r[CP_REG_RIP]);

			CHECK(m && m->perms[2] == 'x');
			CHECK(cp_maps_find(&maps, s.regs.r[CP_REG_RSP]) != NULL);
			cp_maps_release(&maps);
		}
		cp_thread_snap_release(&s);
	}
	check_untouched(p, false, "after D-state capture");
out:
	close(fds[1]);
	waitpid(p, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/*
 * Live capture: a thread blocked in a system call is captured without being stopped, from
 * its /proc sp and pc, with a copy that equals its stack; a thread that runs is stopped (or
 * caught between two time slices); and no thread is left stopped or traced.
 */
static void test_live(void)
{
	struct cp_capture_opts opts = { .flags = CP_CAPTURE_LIVE };
	static const char *const names[NTHREADS] = { "test_capture", "spin", "sleeper",
						     "reader" };
	struct cp_maps maps;
	int i;

	CHECK(cp_maps_read(child, &maps) == 0);
	for (i = 0; i < NTHREADS; i++) {
		struct cp_thread_snap s;
		const struct cp_map *m;
		int ret;

		memset(&s, 0, sizeof(s));
		ret = cp_capture_thread(child, sh->tids[i], &opts, &s);
		CHECK(ret == 0, "live capture of %s: %s", names[i], strerror(-ret));
		if (ret != 0)
			continue;
		CHECK(s.has_state && s.has_syscall, "%s", names[i]);
		CHECK(!strncmp(s.comm, names[i], 15), "%s named %s", names[i], s.comm);
		if (i == 1) {
			/* Running: one perf sample, unless caught off CPU between two slices. */
			CHECK(!s.stopped && s.verified);
			CHECK(s.live || s.regs.valid == (1u << CP_NREGS) - 1);
			m = cp_maps_find(&maps, s.stack.start);
			CHECK(m && s.stack.len > 0 && s.stack.len <= m->end - s.stack.start);
		} else if (i == 0 || i == 3) {
			/* pause() and read() on an empty pipe: asleep in a syscall all along. */
			CHECK(s.live && s.verified && !s.stopped && s.stopped_ns == 0, "%s",
			      names[i]);
			/* sp, pc and the six argument registers of the syscall, nothing else. */
			CHECK(s.regs.valid == ((1u << CP_REG_RSP) | (1u << CP_REG_RIP) |
					       (1u << CP_REG_RDI) | (1u << CP_REG_RSI) |
					       (1u << CP_REG_RDX) | (1u << CP_REG_R10) |
					       (1u << CP_REG_R8) | (1u << CP_REG_R9)));
			CHECK(s.sc.in_syscall && s.sc.sp == s.regs.r[CP_REG_RSP] &&
			      s.sc.pc == s.regs.r[CP_REG_RIP] && s.sc.args[0] == s.regs.r[CP_REG_RDI]);
			CHECK(s.state == 'S', "%s in state %c", names[i], s.state);
			m = cp_maps_find(&maps, s.regs.r[CP_REG_RSP]);
			CHECK(m && s.stack.start == s.regs.r[CP_REG_RSP] &&
			      s.stack.len == m->end - s.stack.start && !s.stack.truncated);
			m = cp_maps_find(&maps, s.regs.r[CP_REG_RIP]);
			CHECK(m && m->perms[2] == 'x');
			/* The frames just above sp are the sleeping thread's, unchanged. */
			if (s.stack.len > 64) {
				size_t cmp = s.stack.len < 1024 ? s.stack.len : 1024;
				uint8_t *now = malloc(cmp);
				long n = now ? cp_mem_read_pid(child, s.stack.start, now, cmp)
					     : -1;

				CHECK(n == (long)cmp && !memcmp(now, s.stack.data, cmp));
				free(now);
			}
		}
		cp_thread_snap_release(&s);
		check_untouched(child, false, "after live capture");
	}
	cp_maps_release(&maps);
	CHECK(cp_capture_syscall_may_eintr(SYS_epoll_wait));
	CHECK(cp_capture_syscall_may_eintr(SYS_recvfrom));
	CHECK(cp_capture_syscall_may_eintr(SYS_rt_sigtimedwait));
	CHECK(!cp_capture_syscall_may_eintr(SYS_futex));
	CHECK(!cp_capture_syscall_may_eintr(SYS_nanosleep));
}

int main(void)
{
	int i, status;

	/* A hung capture must fail the test, not hang the runner. */
	alarm(120);
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED) {
		printf("mmap failed\n");
		return 1;
	}
	child = fork();
	if (child < 0) {
		printf("fork failed\n");
		return 1;
	}
	if (child == 0)
		child_main();
	for (i = 0; i < 1000 && atomic_load(&sh->ready) < NTHREADS; i++)
		sleep_ms(10);
	if (atomic_load(&sh->ready) < NTHREADS) {
		printf("FAIL child did not start\n");
		kill(child, SIGKILL);
		return 1;
	}
	/* Let the reader and sleeper settle into their blocking calls. */
	sleep_ms(50);

	test_threads();
	test_live();
	test_keeps_running();
	report_stop_times();
	test_truncated();
	test_stale_maps();
	test_live_many();
	test_by_sample();
	test_gone();
	test_read_mem();
	test_signals_kept();
	test_group_stop();
	test_busy();
	test_killed_tracer();
	test_dstate();

	kill(child, SIGKILL);
	waitpid(child, &status, 0);
	return check_done("capture");
}
