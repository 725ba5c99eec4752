/* Unit tests for src/wait.c: kind names, rules, timeout decoding, and the waits fixture. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "diag_fixture.h"
#include "pidns.h"
#include "proc.h"
#include "wait.h"

#define SEC 1000000000LL

static bool contains(const char *s, const char *part)
{
	return s && strstr(s, part);
}

static bool str_eq(const char *a, const char *b)
{
	return a && b && !strcmp(a, b);
}

/* A synthetic thread of this process: state, optional syscall, stack, wchan. */
struct fake {
	struct cp_task_stat st;
	struct cp_task_syscall sc;
	bool has_sc;
	const char *wchan;
	const char *const *functions;
	size_t nfunctions;
	int tid;		/* 0: this process's main thread */
};

static void fake_init(struct fake *f, char state, long nr, uint64_t a0, uint64_t a1, uint64_t a2,
		      uint64_t a3)
{
	memset(f, 0, sizeof(*f));
	f->st.tid = getpid();
	f->st.state = state;
	f->wchan = "";
	if (nr == -2)
		return;
	f->has_sc = true;
	f->sc.nr = nr;
	f->sc.in_syscall = nr >= 0;
	f->sc.args[0] = a0;
	f->sc.args[1] = a1;
	f->sc.args[2] = a2;
	f->sc.args[3] = a3;
}

static int classify_fake(const struct fake *f, struct cp_wait *w)
{
	struct cp_wait_input in = {
		.pid = getpid(),
		.tid = f->tid ? f->tid : getpid(),
		.stat = &f->st,
		.sc = f->has_sc ? &f->sc : NULL,
		.wchan = f->wchan,
		.functions = f->functions,
		.nfunctions = f->nfunctions,
	};
	int tid = getpid();

	in.tids = &tid;
	in.ntids = 1;
	return cp_wait_classify(&in, w);
}

/* Classify and report the result on failure, for readable test output. */
static void expect(const struct fake *f, enum cp_wait_kind kind, const char *syscall,
		   struct cp_wait *w, int line)
{
	int ret = classify_fake(f, w);

	if (ret != 0 || w->kind != kind || (syscall && !str_eq(w->syscall, syscall)) ||
	    (!syscall && w->syscall) || !w->detail) {
		FAIL("line %d: ret %d kind %s syscall %s detail %s (want %s %s)", line, ret,
		     cp_wait_kind_name(w->kind), w->syscall ? w->syscall : "null",
		     w->detail ? w->detail : "null", cp_wait_kind_name(kind),
		     syscall ? syscall : "null");
	}
}

#define EXPECT(f, kind, sys, w) expect(f, kind, sys, w, __LINE__)

static void test_names(void)
{
	static const char *const want[] = {
		"unknown", "running", "mutex", "rwlock", "condvar", "futex", "sleep", "poll",
		"io-read", "io-write", "accept", "connect", "wait-child", "signal", "disk",
		"stopped", "zombie", "syscall",
	};
	struct cp_wait w;
	int k;

	CHECK(sizeof(want) / sizeof(want[0]) == CP_WAIT__COUNT);
	for (k = 0; k < CP_WAIT__COUNT; k++)
		CHECK(str_eq(cp_wait_kind_name(k), want[k]), "kind %d is %s", k,
		      cp_wait_kind_name(k));
	CHECK(str_eq(cp_wait_kind_name(CP_WAIT__COUNT), "unknown"));
	CHECK(str_eq(cp_wait_kind_name((enum cp_wait_kind)-1), "unknown"));

	cp_wait_release(NULL);
	cp_wait_init(&w);
	CHECK(w.fd == -1 && w.timeout_ns == -1 && !w.detail && !w.object && w.owner_tid == 0);
	cp_wait_release(&w);
	CHECK(cp_wait_classify(NULL, &w) == -EINVAL);
	cp_wait_release(&w);
}

static void test_states(void)
{
	static const char *const spin[] = { "spin_loop", "main" };
	struct cp_wait w;
	struct fake f;

	fake_init(&f, 'R', -2, 0, 0, 0, 0);
	f.functions = spin;
	f.nfunctions = 2;
	EXPECT(&f, CP_WAIT_RUNNING, NULL, &w);
	CHECK(contains(w.detail, "spin_loop"));
	cp_wait_release(&w);

	/* Woke between the stat and syscall reads: the later look wins. */
	fake_init(&f, 'S', -1, 0, 0, 0, 0);
	f.sc.running = true;
	EXPECT(&f, CP_WAIT_RUNNING, NULL, &w);
	cp_wait_release(&w);

	fake_init(&f, 'T', SYS_read, 0, 0, 0, 0);
	EXPECT(&f, CP_WAIT_STOPPED, "read", &w);
	CHECK(contains(w.detail, "signal"));
	cp_wait_release(&w);

	fake_init(&f, 't', -2, 0, 0, 0, 0);
	EXPECT(&f, CP_WAIT_STOPPED, NULL, &w);
	CHECK(contains(w.detail, "tracer"));
	cp_wait_release(&w);

	fake_init(&f, 'Z', -2, 0, 0, 0, 0);
	EXPECT(&f, CP_WAIT_ZOMBIE, NULL, &w);
	cp_wait_release(&w);
	fake_init(&f, 'X', -2, 0, 0, 0, 0);
	EXPECT(&f, CP_WAIT_ZOMBIE, NULL, &w);
	cp_wait_release(&w);

	/* D keeps what the syscall says (fd, syscall) but the kind is disk. */
	fake_init(&f, 'D', SYS_fsync, 0, 0, 0, 0);
	f.wchan = "jbd2_log_wait_commit";
	EXPECT(&f, CP_WAIT_DISK, "fsync", &w);
	CHECK(contains(w.detail, "uninterruptible") && contains(w.detail, "jbd2_log_wait_commit"));
	cp_wait_release(&w);
	/* The wait channel is said once. */
	fake_init(&f, 'D', SYS_vfork, 0, 0, 0, 0);
	f.wchan = "kernel_clone";
	EXPECT(&f, CP_WAIT_DISK, "vfork", &w);
	CHECK(str_eq(w.detail, "uninterruptible sleep: blocked in vfork at kernel_clone"), "%s",
	      w.detail);
	cp_wait_release(&w);

	/* Nothing readable at all. */
	fake_init(&f, 'S', -2, 0, 0, 0, 0);
	EXPECT(&f, CP_WAIT_UNKNOWN, NULL, &w);
	CHECK(w.fd == -1 && w.timeout_ns == -1);
	cp_wait_release(&w);

	/* Only wchan: still a kind. */
	fake_init(&f, 'S', -2, 0, 0, 0, 0);
	f.wchan = "futex_wait_queue";
	EXPECT(&f, CP_WAIT_FUTEX, NULL, &w);
	cp_wait_release(&w);
	fake_init(&f, 'S', -1, 0, 0, 0, 0);
	f.wchan = "do_wait";
	EXPECT(&f, CP_WAIT_WAIT_CHILD, NULL, &w);
	cp_wait_release(&w);

	/* Another syscall: kind syscall with its name. */
	fake_init(&f, 'S', SYS_flock, 3, LOCK_EX, 0, 0);
	f.wchan = "locks_lock_inode_wait";
	EXPECT(&f, CP_WAIT_SYSCALL, "flock", &w);
	CHECK(contains(w.detail, "flock"));
	cp_wait_release(&w);
}


struct self_lock {
	pthread_mutex_t *m;
	volatile int tid;
};

static void *self_deadlock(void *arg)
{
	struct self_lock *sl = arg;

	sl->tid = (int)syscall(SYS_gettid);
	pthread_mutex_lock(sl->m);
	pthread_mutex_lock(sl->m);	/* never returns: the thread holds it */
	return NULL;
}

/* A thread asleep re-locking m, which it holds (left so: the test exits); its tid, or -1. */
static int start_self_deadlock(pthread_mutex_t *m, pthread_t *t)
{
	static struct self_lock sl;
	struct cp_task_syscall sc;

	sl.m = m;
	if (pthread_create(t, NULL, self_deadlock, &sl))
		return -1;
	for (int i = 0; i < 5000; i++) {
		if (sl.tid && cp_proc_read_syscall(getpid(), sl.tid, &sc) == 0 && sc.in_syscall &&
		    sc.nr == SYS_futex && sc.args[0] == (uint64_t)(uintptr_t)m)
			return sl.tid;
		usleep(1000);
	}
	return -1;
}

static void test_futex_kinds(void)
{
	static const char *const mutex_stack[] = {
		"__futex_abstimed_wait_common", "__lll_lock_wait", "___pthread_mutex_lock",
		"worker", "start_thread",
	};
	static const char *const rwlock_stack[] = {
		"__futex_abstimed_wait_common", "___pthread_rwlock_rdlock", "reader",
	};
	static const char *const cond_stack[] = {
		"__futex_abstimed_wait_common", "__pthread_cond_wait_common",
		"___pthread_cond_timedwait64", "waiter",
	};
	/* pthread_cond_wait re-taking its mutex: a mutex wait. */
	static const char *const cond_relock[] = {
		"__lll_lock_wait", "__pthread_mutex_cond_lock", "___pthread_cond_wait", "waiter",
	};
	static const char *const sem_stack[] = {
		"__futex_abstimed_wait_common", "__new_sem_wait_slow64.constprop.0", "sem_wait",
	};
	static const char *const cxx_stack[] = {
		"__futex_abstimed_wait_common", "__lll_lock_wait", "___pthread_mutex_lock",
		"std::mutex::lock()", "worker(int)",
	};
	static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
	uint64_t maddr = (uint64_t)(uintptr_t)&m;
	struct cp_wait w;
	struct fake f;

	pthread_mutex_lock(&m);
	fake_init(&f, 'S', SYS_futex, maddr, FUTEX_WAIT_PRIVATE, 2, 0);
	f.functions = mutex_stack;
	f.nfunctions = 5;
	f.tid = getpid() + 1;	/* another thread waits for the mutex we hold */
	EXPECT(&f, CP_WAIT_MUTEX, "futex", &w);
	CHECK(w.has_address && w.address == maddr);
	CHECK(w.timeout_ns == -1 && !w.timeout_unknown);
	/* The owner comes from lockinfo: this thread holds the mutex. */
	CHECK(w.owner_tid == getpid() && w.owner_in_process, "owner %d", w.owner_tid);
	{
		char want[96];

		snprintf(want, sizeof(want), "0x%llx held by thread %d", (unsigned long long)maddr,
			 getpid());
		CHECK(str_eq(w.detail, want), "detail %s", w.detail);
	}
	cp_wait_release(&w);

	f.functions = cxx_stack;
	EXPECT(&f, CP_WAIT_MUTEX, "futex", &w);
	cp_wait_release(&w);

	/*
	 * The owner is the waiter, which is running now: it took the lock after its stack was
	 * captured (the dump reads the owner later), no self-deadlock.
	 */
	f.tid = getpid();
	EXPECT(&f, CP_WAIT_MUTEX, "futex", &w);
	CHECK(!contains(w.detail, "(itself)") && contains(w.detail, "as the dump looked"), "%s",
	      w.detail);
	cp_wait_release(&w);
	pthread_mutex_unlock(&m);

	/* Re-locking a mutex one holds, asleep on it: the classic self-deadlock says so. */
	{
		static pthread_mutex_t self_m = PTHREAD_MUTEX_INITIALIZER;
		uint64_t saddr = (uint64_t)(uintptr_t)&self_m;
		pthread_t t;
		int tid;

		tid = start_self_deadlock(&self_m, &t);
		CHECK(tid > 0, "self-deadlocking thread did not block");
		fake_init(&f, 'S', SYS_futex, saddr, FUTEX_WAIT_PRIVATE, 2, 0);
		f.functions = mutex_stack;
		f.nfunctions = 5;
		f.tid = tid;
		EXPECT(&f, CP_WAIT_MUTEX, "futex", &w);
		CHECK(contains(w.detail, "(itself)"), "%s", w.detail);
		cp_wait_release(&w);
	}

	f.functions = rwlock_stack;
	f.nfunctions = 3;
	EXPECT(&f, CP_WAIT_RWLOCK, "futex", &w);
	cp_wait_release(&w);

	fake_init(&f, 'S', SYS_futex, 0x1000, FUTEX_WAIT_BITSET_PRIVATE | FUTEX_CLOCK_REALTIME, 0,
		  0);
	f.functions = cond_stack;
	f.nfunctions = 4;
	EXPECT(&f, CP_WAIT_CONDVAR, "futex", &w);
	CHECK(w.address == 0x1000 && w.timeout_ns == -1);
	CHECK(contains(w.detail, "pthread_cond_timedwait") && contains(w.detail, "no timeout"));
	cp_wait_release(&w);

	f.functions = cond_relock;
	EXPECT(&f, CP_WAIT_MUTEX, "futex", &w);
	cp_wait_release(&w);

	f.functions = sem_stack;
	f.nfunctions = 3;
	EXPECT(&f, CP_WAIT_FUTEX, "futex", &w);
	CHECK(contains(w.detail, "sem_wait") && contains(w.detail, "0x1000"));
	cp_wait_release(&w);

	/* No stack: a plain futex wait, except PI locks which only mutexes use. */
	fake_init(&f, 'S', SYS_futex, 0x2000, FUTEX_WAIT, 0, 0);
	EXPECT(&f, CP_WAIT_FUTEX, "futex", &w);
	cp_wait_release(&w);
	fake_init(&f, 'S', SYS_futex, 0x2000, FUTEX_LOCK_PI_PRIVATE, 0, 0);
	EXPECT(&f, CP_WAIT_MUTEX, "futex", &w);
	CHECK(w.address == 0x2000);
	cp_wait_release(&w);

	/* No syscall state, but the stack says it: kind from the stack, nothing invented. */
	fake_init(&f, 'S', -2, 0, 0, 0, 0);
	f.functions = mutex_stack;
	f.nfunctions = 5;
	EXPECT(&f, CP_WAIT_MUTEX, "futex", &w);
	CHECK(!w.has_address && w.timeout_unknown);
	cp_wait_release(&w);
}

static int64_t now_ns(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (int64_t)ts.tv_sec * SEC + ts.tv_nsec;
}

static struct timespec ts_at(int64_t ns)
{
	struct timespec ts = { .tv_sec = ns / SEC, .tv_nsec = ns % SEC };

	return ts;
}

/*
 * A target in a PID namespace of its own: the owner in the lock word (this thread, numbered
 * getpid() "in the namespace") is shown as cprof's number with the namespace's beside it; an
 * owner the namespace has no thread for is named by its number there only.
 */
static void test_namespace_numbers(void)
{
	static const char *const mutex_stack[] = { "__lll_lock_wait", "___pthread_mutex_lock",
						   "worker" };
	static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
	uint64_t maddr = (uint64_t)(uintptr_t)&m;
	int me = getpid(), host = getpid() + 1;
	struct cp_pidns_tid v[1] = { { .ns_tid = me, .tid = host } }, by_tid[1] = { v[0] };
	struct cp_pidns_map ns = { .same_ns = false, .v = v, .by_tid = by_tid, .n = 1 };
	struct fake f;
	struct cp_wait_input in;
	struct cp_wait w;
	char want[160];

	pthread_mutex_lock(&m);
	fake_init(&f, 'S', SYS_futex, maddr, FUTEX_WAIT_PRIVATE, 2, 0);
	memset(&in, 0, sizeof(in));
	in.pid = me;
	in.tid = me + 2;
	in.stat = &f.st;
	in.sc = &f.sc;
	in.wchan = "";
	in.functions = mutex_stack;
	in.nfunctions = 3;
	in.tids = &host;
	in.ntids = 1;
	in.pidns = &ns;
	cp_wait_init(&w);
	CHECK(cp_wait_classify(&in, &w) == 0 && w.kind == CP_WAIT_MUTEX, "mutex in a namespace");
	CHECK(w.owner_tid == host && w.owner_in_process, "owner %d, want %d", w.owner_tid, host);
	snprintf(want, sizeof(want), "0x%llx held by thread %d (%d in its namespace)",
		 (unsigned long long)maddr, host, me);
	CHECK(str_eq(w.detail, want), "detail %s, want %s", w.detail, want);
	cp_wait_release(&w);

	/* The namespace has no thread by that number: no host tid is made up. */
	v[0].ns_tid = by_tid[0].ns_tid = me + 3;
	cp_wait_init(&w);
	CHECK(cp_wait_classify(&in, &w) == 0 && w.kind == CP_WAIT_MUTEX, "unmapped owner");
	snprintf(want, sizeof(want), "0x%llx held by thread %d in its namespace, not a thread of "
		 "this process (exited, or of another process)", (unsigned long long)maddr, me);
	CHECK(w.owner_tid == 0 && str_eq(w.detail, want), "owner %d detail %s", w.owner_tid,
	      w.detail);
	cp_wait_release(&w);
	pthread_mutex_unlock(&m);

	/* A child waited for is named by the caller's number. */
	fake_init(&f, 'S', SYS_wait4, 4321, 0, 0, 0);
	in.sc = &f.sc;
	in.functions = NULL;
	in.nfunctions = 0;
	cp_wait_init(&w);
	CHECK(cp_wait_classify(&in, &w) == 0 &&
	      str_eq(w.detail, "wait4 for child 4321 in its namespace"), "wait4: %s", w.detail);
	cp_wait_release(&w);
}

static void test_timeouts(void)
{
	static const char *const sleep_stack[] = { "__GI___clock_nanosleep", "__nanosleep", "f" };
	struct timespec rel = { .tv_sec = 5, .tv_nsec = 500000000 };
	struct timespec bad = { .tv_sec = 1, .tv_nsec = 1000000000 };
	struct timeval tv = { .tv_sec = 1, .tv_usec = 500000 };
	struct timespec mono, real, past;
	uint64_t sigs = 1ULL << (SIGUSR1 - 1);
	struct cp_wait w;
	struct fake f;

	mono = ts_at(now_ns(CLOCK_MONOTONIC) + 600 * SEC);
	real = ts_at(now_ns(CLOCK_REALTIME) + 30 * SEC);
	past = ts_at(now_ns(CLOCK_MONOTONIC) - 5 * SEC);

	/* futex: FUTEX_WAIT is relative; BITSET absolute on CLOCK_MONOTONIC unless REALTIME. */
	fake_init(&f, 'S', SYS_futex, 0x1000, FUTEX_WAIT_PRIVATE, 0, (uintptr_t)&rel);
	EXPECT(&f, CP_WAIT_FUTEX, "futex", &w);
	CHECK(w.timeout_ns == 5500000000LL, "%lld", (long long)w.timeout_ns);
	CHECK(contains(w.detail, "timeout 5.500s"));
	cp_wait_release(&w);

	fake_init(&f, 'S', SYS_futex, 0x1000, FUTEX_WAIT_BITSET_PRIVATE, 0, (uintptr_t)&mono);
	EXPECT(&f, CP_WAIT_FUTEX, "futex", &w);
	CHECK(w.timeout_ns > 500 * SEC && w.timeout_ns <= 600 * SEC, "%lld",
	      (long long)w.timeout_ns);
	CHECK(contains(w.detail, "remaining"));
	cp_wait_release(&w);

	fake_init(&f, 'S', SYS_futex, 0x1000, FUTEX_WAIT_BITSET | FUTEX_CLOCK_REALTIME, 0,
		  (uintptr_t)&real);
	EXPECT(&f, CP_WAIT_FUTEX, "futex", &w);
	CHECK(w.timeout_ns > 0 && w.timeout_ns <= 30 * SEC, "%lld", (long long)w.timeout_ns);
	cp_wait_release(&w);

	/* A deadline already past is 0 left, not negative. */
	fake_init(&f, 'S', SYS_futex, 0x1000, FUTEX_WAIT_BITSET, 0, (uintptr_t)&past);
	EXPECT(&f, CP_WAIT_FUTEX, "futex", &w);
	CHECK(w.timeout_ns == 0 && !w.timeout_unknown);
	cp_wait_release(&w);

	/* LOCK_PI: absolute CLOCK_REALTIME, always. */
	fake_init(&f, 'S', SYS_futex, 0x1000, FUTEX_LOCK_PI, 0, (uintptr_t)&real);
	EXPECT(&f, CP_WAIT_MUTEX, "futex", &w);
	CHECK(w.timeout_ns > 0 && w.timeout_ns <= 30 * SEC, "%lld", (long long)w.timeout_ns);
	cp_wait_release(&w);

	/* Garbage in target memory, unreadable pointers: unknown, never a wrong number. */
	fake_init(&f, 'S', SYS_futex, 0x1000, FUTEX_WAIT, 0, (uintptr_t)&bad);
	EXPECT(&f, CP_WAIT_FUTEX, "futex", &w);
	CHECK(w.timeout_unknown && w.timeout_ns == -1 && contains(w.detail, "timeout unknown"));
	cp_wait_release(&w);
	fake_init(&f, 'S', SYS_futex, 0x1000, FUTEX_WAIT, 0, 0x10);
	EXPECT(&f, CP_WAIT_FUTEX, "futex", &w);
	CHECK(w.timeout_unknown && w.timeout_ns == -1);
	cp_wait_release(&w);

	/* poll / epoll: int milliseconds, negative is forever. */
	fake_init(&f, 'S', SYS_poll, 0x1000, 3, 600000, 0);
	EXPECT(&f, CP_WAIT_POLL, "poll", &w);
	CHECK(w.timeout_ns == 600 * SEC);
	CHECK(str_eq(w.detail, "poll on 3 fds, timeout 600.000s"), "%s", w.detail);
	cp_wait_release(&w);
	fake_init(&f, 'S', SYS_poll, 0x1000, 3, 0xffffffffu, 0);
	EXPECT(&f, CP_WAIT_POLL, "poll", &w);
	CHECK(w.timeout_ns == -1 && !w.timeout_unknown && contains(w.detail, "no timeout"));
	cp_wait_release(&w);
	fake_init(&f, 'S', SYS_ppoll, 0x1000, 1, (uintptr_t)&rel, 0);
	EXPECT(&f, CP_WAIT_POLL, "ppoll", &w);
	CHECK(w.timeout_ns == 5500000000LL);
	cp_wait_release(&w);
	fake_init(&f, 'S', SYS_ppoll, 0x1000, 1, 0, 0);
	EXPECT(&f, CP_WAIT_POLL, "ppoll", &w);
	CHECK(w.timeout_ns == -1 && !w.timeout_unknown);
	cp_wait_release(&w);
	fake_init(&f, 'S', SYS_epoll_wait, 99999, 0x1000, 1, 0xffffffffu);
	EXPECT(&f, CP_WAIT_POLL, "epoll_wait", &w);
	CHECK(w.timeout_ns == -1 && w.fd == 99999);
	cp_wait_release(&w);
	fake_init(&f, 'S', SYS_epoll_pwait, 99999, 0x1000, 1, 250);
	EXPECT(&f, CP_WAIT_POLL, "epoll_pwait", &w);
	CHECK(w.timeout_ns == 250000000LL);
	cp_wait_release(&w);
	fake_init(&f, 'S', SYS_epoll_pwait2, 99999, 0x1000, 1, (uintptr_t)&rel);
	EXPECT(&f, CP_WAIT_POLL, "epoll_pwait2", &w);
	CHECK(w.timeout_ns == 5500000000LL);
	cp_wait_release(&w);

	/* select takes a timeval, pselect6 a timespec. */
	fake_init(&f, 'S', SYS_select, 4, 0, 0, 0);
	f.sc.args[4] = (uintptr_t)&tv;
	EXPECT(&f, CP_WAIT_POLL, "select", &w);
	CHECK(w.timeout_ns == 1500000000LL, "%lld", (long long)w.timeout_ns);
	cp_wait_release(&w);
	fake_init(&f, 'S', SYS_pselect6, 4, 0, 0, 0);
	f.sc.args[4] = (uintptr_t)&rel;
	EXPECT(&f, CP_WAIT_POLL, "pselect6", &w);
	CHECK(w.timeout_ns == 5500000000LL);
	cp_wait_release(&w);
	fake_init(&f, 'S', SYS_pselect6, 4, 0, 0, 0);
	EXPECT(&f, CP_WAIT_POLL, "pselect6", &w);
	CHECK(w.timeout_ns == -1);
	cp_wait_release(&w);

	/* Sleeps: relative, or absolute (TIMER_ABSTIME) reported as what is left. */
	fake_init(&f, 'S', SYS_nanosleep, (uintptr_t)&rel, 0, 0, 0);
	EXPECT(&f, CP_WAIT_SLEEP, "nanosleep", &w);
	CHECK(w.timeout_ns == 5500000000LL);
	CHECK(str_eq(w.detail, "nanosleep for 5.500s"), "%s", w.detail);
	cp_wait_release(&w);
	fake_init(&f, 'S', SYS_clock_nanosleep, CLOCK_REALTIME, 0, (uintptr_t)&rel, 0);
	EXPECT(&f, CP_WAIT_SLEEP, "clock_nanosleep", &w);
	CHECK(w.timeout_ns == 5500000000LL);
	cp_wait_release(&w);
	fake_init(&f, 'S', SYS_clock_nanosleep, CLOCK_MONOTONIC, TIMER_ABSTIME, (uintptr_t)&mono,
		  0);
	EXPECT(&f, CP_WAIT_SLEEP, "clock_nanosleep", &w);
	CHECK(w.timeout_ns > 500 * SEC && w.timeout_ns <= 600 * SEC);
	CHECK(contains(w.detail, "remaining"));
	cp_wait_release(&w);
	/* A CPU-time clock of the target cannot be compared with ours. */
	fake_init(&f, 'S', SYS_clock_nanosleep, CLOCK_PROCESS_CPUTIME_ID, TIMER_ABSTIME,
		  (uintptr_t)&mono, 0);
	EXPECT(&f, CP_WAIT_SLEEP, "clock_nanosleep", &w);
	CHECK(w.timeout_unknown);
	cp_wait_release(&w);

	/* restart_syscall after a stop: the stack names the call, the registers keep its args. */
	fake_init(&f, 'S', SYS_restart_syscall, CLOCK_REALTIME, 0, (uintptr_t)&rel, 0);
	f.functions = sleep_stack;
	f.nfunctions = 3;
	EXPECT(&f, CP_WAIT_SLEEP, "clock_nanosleep", &w);
	CHECK(w.timeout_ns == 5500000000LL && contains(w.detail, "restarted"));
	cp_wait_release(&w);
	fake_init(&f, 'S', SYS_restart_syscall, 0, 0, 0, 0);
	EXPECT(&f, CP_WAIT_SYSCALL, "restart_syscall", &w);
	cp_wait_release(&w);

	/* Signals: rt_sigtimedwait names its set and carries a relative timeout. */
	fake_init(&f, 'S', SYS_rt_sigtimedwait, (uintptr_t)&sigs, 0, (uintptr_t)&rel, 8);
	EXPECT(&f, CP_WAIT_SIGNAL, "rt_sigtimedwait", &w);
	CHECK(w.timeout_ns == 5500000000LL && contains(w.detail, "SIGUSR1"));
	cp_wait_release(&w);
	fake_init(&f, 'S', SYS_rt_sigtimedwait, (uintptr_t)&sigs, 0, 0, 8);
	EXPECT(&f, CP_WAIT_SIGNAL, "rt_sigtimedwait", &w);
	CHECK(w.timeout_ns == -1 && contains(w.detail, "no timeout"));
	cp_wait_release(&w);
	fake_init(&f, 'S', SYS_pause, 0, 0, 0, 0);
	EXPECT(&f, CP_WAIT_SIGNAL, "pause", &w);
	cp_wait_release(&w);
	fake_init(&f, 'S', SYS_rt_sigsuspend, 0, 8, 0, 0);
	EXPECT(&f, CP_WAIT_SIGNAL, "rt_sigsuspend", &w);
	cp_wait_release(&w);
}

static void test_fds(void)
{
	static const char *const read_stack[] = { "__GI___libc_read", "reader" };
	struct timeval tv = { .tv_sec = 7, .tv_usec = 0 };
	char want[64];
	int p[2], s[2];
	struct cp_wait w;
	struct fake f;

	if (pipe(p) || socketpair(AF_UNIX, SOCK_STREAM, 0, s)) {
		FAIL("pipe/socketpair: %s", strerror(errno));
		return;
	}
	setsockopt(s[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));

	fake_init(&f, 'S', SYS_read, p[0], 0x1000, 1, 0);
	EXPECT(&f, CP_WAIT_IO_READ, "read", &w);
	CHECK(w.fd == p[0] && w.timeout_ns == -1 && !w.timeout_unknown);
	CHECK(w.object && !strncmp(w.object, "pipe:[", 6));
	snprintf(want, sizeof(want), "read fd %d pipe:[", p[0]);
	CHECK(w.detail && !strncmp(w.detail, want, strlen(want)) &&
		  contains(w.detail, "no timeout"),
	      "%s", w.detail);
	cp_wait_release(&w);

	fake_init(&f, 'S', SYS_write, p[1], 0x1000, 1, 0);
	EXPECT(&f, CP_WAIT_IO_WRITE, "write", &w);
	CHECK(w.fd == p[1] && w.object && !strncmp(w.object, "pipe:[", 6));
	cp_wait_release(&w);

	/* A socket's SO_RCVTIMEO bounds the read (read from the target by fdinfo). */
	fake_init(&f, 'S', SYS_recvfrom, s[0], 0x1000, 1, 0);
	EXPECT(&f, CP_WAIT_IO_READ, "recvfrom", &w);
	CHECK(w.fd == s[0] && w.object && !strncmp(w.object, "socket:[", 8));
	CHECK(w.timeout_ns == 7 * SEC && !w.timeout_unknown, "timeout %lld unknown %d",
	      (long long)w.timeout_ns, w.timeout_unknown);
	cp_wait_release(&w);
	fake_init(&f, 'S', SYS_sendto, s[1], 0x1000, 1, 0);
	EXPECT(&f, CP_WAIT_IO_WRITE, "sendto", &w);
	CHECK(w.timeout_ns == -1 && !w.timeout_unknown, "timeout %lld unknown %d",
	      (long long)w.timeout_ns, w.timeout_unknown);
	cp_wait_release(&w);

	fake_init(&f, 'S', SYS_accept4, s[0], 0, 0, 0);
	EXPECT(&f, CP_WAIT_ACCEPT, "accept4", &w);
	CHECK(w.fd == s[0]);
	cp_wait_release(&w);
	fake_init(&f, 'S', SYS_connect, s[1], 0, 0, 0);
	EXPECT(&f, CP_WAIT_CONNECT, "connect", &w);
	CHECK(w.fd == s[1]);
	cp_wait_release(&w);

	/* A closed fd: still io-read with the fd, no object. */
	fake_init(&f, 'S', SYS_read, 9999, 0x1000, 1, 0);
	EXPECT(&f, CP_WAIT_IO_READ, "read", &w);
	CHECK(w.fd == 9999 && !w.object);
	cp_wait_release(&w);

	/* No syscall state: the wrapper on the stack gives the kind, not the fd. */
	fake_init(&f, 'S', -2, 0, 0, 0, 0);
	f.functions = read_stack;
	f.nfunctions = 2;
	EXPECT(&f, CP_WAIT_IO_READ, "read", &w);
	CHECK(w.fd == -1 && !w.object && w.timeout_unknown);
	cp_wait_release(&w);

	/* /proc says the thread is not in a syscall: the read wrapper on the stack is not
	 * believed over it. */
	fake_init(&f, 'S', -1, 0, 0, 0, 0);
	f.functions = read_stack;
	f.nfunctions = 2;
	f.wchan = "";
	EXPECT(&f, CP_WAIT_UNKNOWN, NULL, &w);
	CHECK(contains(w.detail, "outside a syscall"));
	cp_wait_release(&w);

	/* Children. */
	fake_init(&f, 'S', SYS_wait4, 4321, 0, 0, 0);
	EXPECT(&f, CP_WAIT_WAIT_CHILD, "wait4", &w);
	CHECK(contains(w.detail, "4321"));
	cp_wait_release(&w);
	fake_init(&f, 'S', SYS_wait4, (uint64_t)-1, 0, 0, 0);
	EXPECT(&f, CP_WAIT_WAIT_CHILD, "wait4", &w);
	CHECK(contains(w.detail, "any child"));
	cp_wait_release(&w);
	fake_init(&f, 'S', SYS_waitid, P_PID, 77, 0, 0);
	EXPECT(&f, CP_WAIT_WAIT_CHILD, "waitid", &w);
	CHECK(contains(w.detail, "77"));
	cp_wait_release(&w);

	close(p[0]);
	close(p[1]);
	close(s[0]);
	close(s[1]);
}

/* Garbage from /proc and target memory never crashes or leaks (ASan watches). */
static void test_garbage(void)
{
	static const char *const names[] = {
		NULL, "", "___pthread_mutex_lock", "__GI___libc_read", "pthread_cond_wait",
		"____________", "__GI_", "x@@GLIBC_2.2.5", "__futex_abstimed_wait_common",
		"pthread_rwlock_wrlock",
	};
	static const char states[] = "RSDTtZXIWP?";
	const char *stack[8];
	unsigned int seed = 12345;
	struct cp_wait w;
	struct fake f;
	int i, j;

	for (i = 0; i < 20000; i++) {
		char state = states[rand_r(&seed) % (sizeof(states) - 1)];
		long nr = (long)(rand_r(&seed) % 470) - 2;

		fake_init(&f, state, nr, 0, 0, 0, 0);
		for (j = 0; j < 6; j++) {
			/* Small values, pointers into our stack, and wild words. */
			unsigned int r = rand_r(&seed) % 4;

			if (r == 0)
				f.sc.args[j] = rand_r(&seed) % 64;
			else if (r == 1)
				f.sc.args[j] = (uintptr_t)&f + rand_r(&seed) % 64;
			else if (r == 2)
				f.sc.args[j] = (uint64_t)-(rand_r(&seed) % 3);
			else
				f.sc.args[j] = ((uint64_t)rand_r(&seed) << 33) ^ rand_r(&seed);
		}
		f.sc.running = rand_r(&seed) % 10 == 0;
		f.nfunctions = rand_r(&seed) % 9;
		for (j = 0; j < (int)f.nfunctions; j++)
			stack[j] = names[rand_r(&seed) % (sizeof(names) / sizeof(names[0]))];
		f.functions = rand_r(&seed) % 20 ? stack : NULL;
		f.wchan = rand_r(&seed) % 2 ? "futex_wait_queue" : "";
		if (classify_fake(&f, &w) != 0 || !w.detail || w.kind >= CP_WAIT__COUNT) {
			FAIL("garbage %d: state %c nr %ld", i, state, nr);
		}
		cp_wait_release(&w);
	}
}

/*
 * A dump skips reading wchan where cp_wait_needs_wchan() says the classifier will not look at
 * it: for every syscall number, that must be exactly the calls classified without it.
 */
static void test_needs_wchan(void)
{
	struct cp_task_syscall running = { .running = true, .nr = -1 };
	struct cp_wait w1, w2;
	struct fake f;
	long nr;
	int rules = 0;

	CHECK(!cp_wait_needs_wchan('R', NULL) && !cp_wait_needs_wchan('Z', NULL));
	CHECK(!cp_wait_needs_wchan('S', &running) && cp_wait_needs_wchan('D', &running));
	CHECK(cp_wait_needs_wchan('S', NULL));
	for (nr = 0; nr < 512; nr++) {
		bool needs;

		if (nr == SYS_restart_syscall)
			continue;	/* below: the stack names it */
		fake_init(&f, 'S', nr, 0, 0, 0, 0);
		needs = cp_wait_needs_wchan('S', &f.sc);
		CHECK(classify_fake(&f, &w1) == 0, "syscall %ld", nr);
		f.wchan = "some_kernel_wait";
		CHECK(classify_fake(&f, &w2) == 0, "syscall %ld", nr);
		if (needs) {
			/* Named calls say where they sleep; numbers unknown to cprof do not. */
			CHECK(w2.kind == CP_WAIT_SYSCALL &&
				      (!w2.syscall || contains(w2.detail, "some_kernel_wait")),
			      "syscall %ld: %s %s", nr, cp_wait_kind_name(w2.kind), w2.detail);
		} else {
			rules++;
			CHECK(w1.kind != CP_WAIT_SYSCALL && w1.kind == w2.kind &&
				      str_eq(w1.detail, w2.detail),
			      "syscall %ld: %s \"%s\" with wchan %s \"%s\"", nr,
			      cp_wait_kind_name(w1.kind), w1.detail, cp_wait_kind_name(w2.kind),
			      w2.detail);
			/* Uninterruptible, the wchan is part of the detail again. */
			CHECK(cp_wait_needs_wchan('D', &f.sc), "syscall %ld in D", nr);
		}
		cp_wait_release(&w1);
		cp_wait_release(&w2);
	}
	CHECK(rules >= 30, "%d syscalls classified without wchan", rules);

	/*
	 * restart_syscall (a sleep resumed after a stop): the wrapper on the stack names the
	 * call, without wchan; with no stack the answer is CP_WAIT_SYSCALL, and a caller that
	 * skipped wchan reads it and asks again (the dump does).
	 */
	{
		static const char *const sleeper[] = { "__GI___clock_nanosleep", "__GI___nanosleep",
						       "main" };

		fake_init(&f, 'S', SYS_restart_syscall, 0, 0, 0, 0);
		CHECK(!cp_wait_needs_wchan('S', &f.sc));
		f.functions = sleeper;
		f.nfunctions = 3;
		CHECK(classify_fake(&f, &w1) == 0 && w1.kind == CP_WAIT_SLEEP, "%s %s",
		      cp_wait_kind_name(w1.kind), w1.detail);
		cp_wait_release(&w1);
		f.functions = NULL;
		f.nfunctions = 0;
		CHECK(classify_fake(&f, &w1) == 0 && w1.kind == CP_WAIT_SYSCALL);
		f.wchan = "hrtimer_nanosleep_restart";
		CHECK(classify_fake(&f, &w2) == 0 && contains(w2.detail, "hrtimer_nanosleep_restart"),
		      "%s", w2.detail);
		cp_wait_release(&w1);
		cp_wait_release(&w2);
	}
}

/* ---- the waits fixture, classified from its real /proc data ---- */

static unsigned long long fixture_key(const struct fixture *fx, const char *key)
{
	size_t n = strlen(key);
	int i;

	for (i = 0; i < fx->nlines; i++)
		if (!strncmp(fx->lines[i], key, n) && fx->lines[i][n] == '=')
			return strtoull(fx->lines[i] + n + 1, NULL, 0);
	FAIL("fixture printed no %s", key);
	return 0;
}

/* The innermost frames of each fixture thread, as cprof symbolizes them with glibc 2.36. */
struct expectation {
	const char *name;
	enum cp_wait_kind kind;
	const char *syscall;	/* NULL: do not check */
	const char *functions[4];
};

static const struct expectation expectations[] = {
	{ "w-running", CP_WAIT_RUNNING, NULL, { "block_running", "thread_main" } },
	{ "w-mutex", CP_WAIT_MUTEX, "futex",
	  { "futex_wait", "__GI___lll_lock_wait", "lll_mutex_lock_optimized",
	    "___pthread_mutex_lock" } },
	{ "w-rwlock", CP_WAIT_RWLOCK, "futex",
	  { "__futex_abstimed_wait_common", "__pthread_rwlock_rdlock_full64",
	    "___pthread_rwlock_rdlock", "block_rwlock" } },
	{ "w-condvar", CP_WAIT_CONDVAR, "futex",
	  { "__futex_abstimed_wait_common64", "__futex_abstimed_wait_common",
	    "__pthread_cond_wait_common", "___pthread_cond_wait" } },
	{ "w-futex", CP_WAIT_FUTEX, "futex",
	  { "__futex_abstimed_wait_common64", "__futex_abstimed_wait_common",
	    "__new_sem_wait_slow64", "block_futex" } },
	{ "w-nanosleep", CP_WAIT_SLEEP, "clock_nanosleep",
	  { "__GI___clock_nanosleep", "__GI___nanosleep", "block_nanosleep" } },
	{ "w-clocksleep", CP_WAIT_SLEEP, "clock_nanosleep",
	  { "__GI___clock_nanosleep", "block_clock_nanosleep" } },
	{ "w-poll", CP_WAIT_POLL, "poll", { "__GI___poll", "block_poll" } },
	{ "w-epoll", CP_WAIT_POLL, "epoll_wait", { "epoll_wait", "block_epoll" } },
	{ "w-select", CP_WAIT_POLL, "pselect6", { "__GI___select", "block_select" } },
	{ "w-read", CP_WAIT_IO_READ, "read",
	  { "__GI___libc_read", "__GI___libc_read", "block_read" } },
	{ "w-recv", CP_WAIT_IO_READ, "recvfrom", { "__libc_recv", "__libc_recv", "block_recv" } },
	{ "w-tcp-read", CP_WAIT_IO_READ, "read",
	  { "__GI___libc_read", "__GI___libc_read", "block_tcp_read" } },
	{ "w-write", CP_WAIT_IO_WRITE, "write",
	  { "__GI___libc_write", "__GI___libc_write", "block_write" } },
	{ "w-accept", CP_WAIT_ACCEPT, "accept", { "__libc_accept", "block_accept" } },
	{ "w-connect", CP_WAIT_CONNECT, "connect", { "__libc_connect", "block_connect" } },
	{ "w-waitpid", CP_WAIT_WAIT_CHILD, "wait4", { "__GI___wait4", "block_waitpid" } },
	{ "w-sigwait", CP_WAIT_SIGNAL, "rt_sigtimedwait",
	  { "__GI___sigtimedwait", "block_sigwaitinfo" } },
	{ "w-sigtimedwait", CP_WAIT_SIGNAL, "rt_sigtimedwait",
	  { "__GI___sigtimedwait", "block_sigtimedwait" } },
	{ "waits", CP_WAIT_SIGNAL, "pause", { "__libc_pause", "block_main", "main" } },
	{ "w-vfork", CP_WAIT_DISK, "vfork", { "__vfork", "block_vfork" } },
};

static void check_fixture_thread(const struct fixture *fx, const struct expectation *e,
				 const struct cp_wait *w)
{
	const char *n = e->name;

	if (!strcmp(n, "w-mutex")) {
		CHECK(w->address == fixture_key(fx, "mutex"));
		CHECK(w->owner_tid == fx->pid && w->owner_in_process, "mutex owner %d",
		      w->owner_tid);
	} else if (!strcmp(n, "w-rwlock")) {
		CHECK(w->owner_tid == fx->pid, "rwlock writer %d", w->owner_tid);
		CHECK(w->address == fixture_key(fx, "rwlock"), "rwlock address %llx",
		      (unsigned long long)w->address);
	} else if (!strcmp(n, "w-condvar")) {
		CHECK(w->has_address && w->timeout_ns == -1 && !w->timeout_unknown);
	} else if (!strcmp(n, "w-futex")) {
		CHECK(w->address == fixture_key(fx, "sem") && w->timeout_ns == -1);
		CHECK(contains(w->detail, "in sem_wait"), "%s", w->detail);
	} else if (!strcmp(n, "w-nanosleep")) {
		CHECK(w->timeout_ns == 500 * SEC);
	} else if (!strcmp(n, "w-clocksleep")) {
		CHECK(w->timeout_ns > 300 * SEC && w->timeout_ns <= 600 * SEC, "%lld",
		      (long long)w->timeout_ns);
	} else if (!strcmp(n, "w-poll")) {
		CHECK(w->timeout_ns == 600 * SEC);
		CHECK(str_eq(w->detail, "poll on 2 fds, timeout 600.000s"), "%s", w->detail);
	} else if (!strcmp(n, "w-epoll")) {
		CHECK(w->timeout_ns == -1 && !w->timeout_unknown);
		CHECK((unsigned long long)w->fd == fixture_key(fx, "epoll"));
	} else if (!strcmp(n, "w-select")) {
		CHECK(w->timeout_ns == 450 * SEC);
	} else if (!strcmp(n, "w-read")) {
		CHECK((unsigned long long)w->fd == fixture_key(fx, "idle_pipe_read"));
		CHECK(w->object && !strncmp(w->object, "pipe:[", 6));
		CHECK(w->timeout_ns == -1 && contains(w->detail, "no timeout"));
	} else if (!strcmp(n, "w-recv")) {
		CHECK((unsigned long long)w->fd == fixture_key(fx, "pair_read"));
		CHECK(w->object && !strncmp(w->object, "socket:[", 8));
		CHECK(w->timeout_ns == 700 * SEC, "recv timeout %lld", (long long)w->timeout_ns);
	} else if (!strcmp(n, "w-tcp-read")) {
		CHECK((unsigned long long)w->fd == fixture_key(fx, "tcp_read"));
		CHECK(w->object && !strncmp(w->object, "socket:[", 8));
		CHECK(w->timeout_ns == -1 && !w->timeout_unknown, "tcp timeout %lld unknown %d",
		      (long long)w->timeout_ns, w->timeout_unknown);
		CHECK(contains(w->detail, "127.0.0.1"), "%s", w->detail);
	} else if (!strcmp(n, "w-write")) {
		CHECK((unsigned long long)w->fd == fixture_key(fx, "full_pipe_write"));
		CHECK(w->object && !strncmp(w->object, "pipe:[", 6));
	} else if (!strcmp(n, "w-accept")) {
		CHECK((unsigned long long)w->fd == fixture_key(fx, "listen"));
	} else if (!strcmp(n, "w-connect")) {
		CHECK(w->fd >= 0 && w->object && !strncmp(w->object, "socket:[", 8));
	} else if (!strcmp(n, "w-waitpid")) {
		char want[32];

		snprintf(want, sizeof(want), "child %llu", fixture_key(fx, "child"));
		CHECK(contains(w->detail, want), "%s", w->detail);
	} else if (!strcmp(n, "w-sigwait")) {
		CHECK(w->timeout_ns == -1 && contains(w->detail, "SIGUSR1"));
	} else if (!strcmp(n, "w-sigtimedwait")) {
		CHECK(w->timeout_ns == 800 * SEC && contains(w->detail, "SIGUSR2"));
	}
}

static void test_fixture(void)
{
	struct fixture fx;
	int *tids = NULL;
	size_t ntids = 0, i, j, seen = 0;

	if (fixture_start(&fx, "waits", NULL) < 0) {
		FAIL("the waits fixture did not start");
		fixture_stop(&fx);
		return;
	}
	/* READY comes just before the main thread's pause(): give it a moment to get there. */
	for (i = 0; i < 100; i++) {
		struct cp_task_stat st;

		if (cp_proc_read_stat(fx.pid, fx.pid, &st) == 0 && st.state == 'S')
			break;
		usleep(50000);
	}
	if (cp_proc_list_tasks(fx.pid, &tids, &ntids) < 0) {
		FAIL("cannot list the fixture's threads");
		fixture_stop(&fx);
		return;
	}
	for (i = 0; i < ntids; i++) {
		const struct expectation *e = NULL;
		struct cp_task_stat st;
		struct cp_task_syscall sc;
		struct cp_wait_input in;
		struct cp_wait w;
		char wchan[128] = "";
		size_t nf = 0;

		if (cp_proc_read_stat(fx.pid, tids[i], &st) < 0)
			continue;
		for (j = 0; j < sizeof(expectations) / sizeof(expectations[0]); j++)
			if (!strcmp(st.comm, expectations[j].name))
				e = &expectations[j];
		if (!e) {
			FAIL("unexpected fixture thread %s", st.comm);
			continue;
		}
		while (nf < 4 && e->functions[nf])
			nf++;
		memset(&in, 0, sizeof(in));
		in.pid = fx.pid;
		in.tid = tids[i];
		in.stat = &st;
		in.sc = cp_proc_read_syscall(fx.pid, tids[i], &sc) == 0 ? &sc : NULL;
		cp_proc_read_wchan(fx.pid, tids[i], wchan, sizeof(wchan));
		in.wchan = wchan;
		in.functions = e->functions;
		in.nfunctions = nf;
		in.tids = tids;
		in.ntids = ntids;
		CHECK(cp_wait_classify(&in, &w) == 0);
		CHECK(w.kind == e->kind && (!e->syscall || str_eq(w.syscall, e->syscall)) &&
			  w.detail,
		      "%s: kind %s syscall %s detail %s", e->name, cp_wait_kind_name(w.kind),
		      w.syscall ? w.syscall : "null", w.detail ? w.detail : "null");
		check_fixture_thread(&fx, e, &w);
		printf("  %-15s %-10s %-16s %s\n", e->name, cp_wait_kind_name(w.kind),
		       w.syscall ? w.syscall : "-", w.detail ? w.detail : "-");
		cp_wait_release(&w);
		seen++;
	}
	CHECK(seen == sizeof(expectations) / sizeof(expectations[0]), "saw %zu threads", seen);
	free(tids);
	fixture_stop(&fx);
}

/* The kind a stack alone tells, for stacks taken as a thread went off CPU. */
static void test_kind_of_stack(void)
{
	static const char *const rd[] = { "__libc_read", "read_idle_pipe", "reader" };
	static const char *const sl[] = { "__clock_nanosleep", "__nanosleep", "sleep_step" };
	static const char *const mx[] = { "__futex_abstimed_wait_common", "__lll_lock_wait",
					  "___pthread_mutex_lock", "worker" };
	static const char *const cv[] = { "__futex_abstimed_wait_common",
					  "__pthread_cond_wait_common", "___pthread_cond_wait" };
	static const char *const ep[] = { "epoll_wait", "loop" };
	static const char *const none[] = { "compute", "main" };

	CHECK(cp_wait_kind_of_stack(rd, 3) == CP_WAIT_IO_READ);
	CHECK(cp_wait_kind_of_stack(sl, 3) == CP_WAIT_SLEEP);
	CHECK(cp_wait_kind_of_stack(mx, 4) == CP_WAIT_MUTEX);
	CHECK(cp_wait_kind_of_stack(cv, 3) == CP_WAIT_CONDVAR);
	CHECK(cp_wait_kind_of_stack(ep, 2) == CP_WAIT_POLL);
	CHECK(cp_wait_kind_of_stack(none, 2) == CP_WAIT_UNKNOWN);
	CHECK(cp_wait_kind_of_stack(NULL, 0) == CP_WAIT_UNKNOWN);
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	test_names();
	test_states();
	test_futex_kinds();
	test_namespace_numbers();
	test_timeouts();
	test_fds();
	test_garbage();
	test_needs_wchan();
	test_fixture();
	test_kind_of_stack();
	return check_done("wait");
}
