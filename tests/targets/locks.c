/* Fixture: threads blocked on glibc locks in known configurations (deadlocks, owners). */
/*
 * Modes selected by argv (none = all): abba, cycle3, self, leaked, live, robust, recursive,
 * errorcheck, pi, rwlock, timed.
 * Prints "MUTEX <label> <address>" and "TID <name> <tid>" lines, then READY once every
 * waiter is asleep in the futex call.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "fixture.h"

#define MAX_WAITERS 64

struct role {
	const char *name;
	pthread_mutex_t *first;	/* taken and held */
	pthread_mutex_t *second;	/* then blocked on (NULL: hold forever) */
	pthread_barrier_t *barrier;	/* between first and second, if set */
	int busy;		/* owner keeps computing instead of sleeping */
	int exit_holding;	/* the thread ends with first still locked */
	int relock;		/* take first a second time (recursive mutexes) */
	int timed;		/* block on second with pthread_mutex_timedlock (10 min) */
};

static int waiter_tids[MAX_WAITERS];
static int nwaiters;
static pthread_mutex_t tid_lock = PTHREAD_MUTEX_INITIALIZER;
static volatile unsigned long sink;

static void name_self(const char *name)
{
	prctl(PR_SET_NAME, name, 0, 0, 0);
}

static int publish_tid(const char *name, int waits)
{
	int tid = (int)syscall(SYS_gettid);

	pthread_mutex_lock(&tid_lock);
	printf("TID %s %d\n", name, tid);
	fflush(stdout);
	if (waits && nwaiters < MAX_WAITERS)
		waiter_tids[nwaiters++] = tid;
	pthread_mutex_unlock(&tid_lock);
	return tid;
}

static __attribute__((noinline)) void hold_forever(int busy)
{
	for (;;) {
		if (busy) {
			/* Make progress for a while, rest a little: a live, working owner. */
			for (unsigned long i = 0; i < 2000000; i++)
				sink += i;
			usleep(10000);
		} else {
			sleep(1000);
		}
	}
}

static __attribute__((noinline)) void block_on(pthread_mutex_t *m)
{
	pthread_mutex_lock(m); /* BLOCK:mutex */
	/* Not reached in a deadlock; reached only if the fixture is broken. */
	fprintf(stderr, "locks: lock unexpectedly acquired\n");
}

static __attribute__((noinline)) void block_on_timed(pthread_mutex_t *m)
{
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 600;
	pthread_mutex_timedlock(m, &until); /* BLOCK:timedlock */
}

static void *role_main(void *arg)
{
	struct role *r = arg;

	name_self(r->name);
	publish_tid(r->name, r->second != NULL);
	pthread_mutex_lock(r->first);
	if (r->relock)
		pthread_mutex_lock(r->first);
	if (r->exit_holding)
		return NULL;
	if (r->barrier)
		pthread_barrier_wait(r->barrier);
	if (r->second && r->timed)
		block_on_timed(r->second);
	else if (r->second)
		block_on(r->second);
	hold_forever(r->busy);
	return NULL;
}

static void start(struct role *r)
{
	pthread_t th;

	if (pthread_create(&th, NULL, role_main, r)) {
		perror("pthread_create");
		exit(1);
	}
	pthread_detach(th);
}

static void print_mutex(const char *label, void *addr)
{
	printf("MUTEX %s %p\n", label, addr);
}

static pthread_mutex_t *new_mutex(int type, int robust, int protocol)
{
	pthread_mutex_t *m = calloc(1, sizeof(*m));
	pthread_mutexattr_t a;

	pthread_mutexattr_init(&a);
	pthread_mutexattr_settype(&a, type);
	if (robust)
		pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
	if (protocol)
		pthread_mutexattr_setprotocol(&a, protocol);
	if (pthread_mutex_init(m, &a)) {
		fprintf(stderr, "locks: pthread_mutex_init failed\n");
		exit(1);
	}
	pthread_mutexattr_destroy(&a);
	return m;
}

static pthread_barrier_t *new_barrier(unsigned n)
{
	pthread_barrier_t *b = malloc(sizeof(*b));

	pthread_barrier_init(b, NULL, n);
	return b;
}

static struct role *role(const char *name, pthread_mutex_t *first, pthread_mutex_t *second,
			 pthread_barrier_t *b)
{
	struct role *r = calloc(1, sizeof(*r));

	r->name = name;
	r->first = first;
	r->second = second;
	r->barrier = b;
	return r;
}

static void mode_abba(void)
{
	pthread_mutex_t *a = new_mutex(PTHREAD_MUTEX_NORMAL, 0, 0);
	pthread_mutex_t *b = new_mutex(PTHREAD_MUTEX_NORMAL, 0, 0);
	pthread_barrier_t *bar = new_barrier(2);

	print_mutex("abba-a", a);
	print_mutex("abba-b", b);
	start(role("abba-1", a, b, bar));
	start(role("abba-2", b, a, bar));
}

static void mode_cycle3(void)
{
	pthread_mutex_t *m[3];
	pthread_barrier_t *bar = new_barrier(3);
	static const char *const names[] = { "cyc-1", "cyc-2", "cyc-3" };
	static const char *const labels[] = { "cyc-m1", "cyc-m2", "cyc-m3" };

	for (int i = 0; i < 3; i++) {
		m[i] = new_mutex(PTHREAD_MUTEX_NORMAL, 0, 0);
		print_mutex(labels[i], m[i]);
	}
	for (int i = 0; i < 3; i++)
		start(role(names[i], m[i], m[(i + 1) % 3], bar));
}

static void mode_self(void)
{
	pthread_mutex_t *m = new_mutex(PTHREAD_MUTEX_NORMAL, 0, 0);

	print_mutex("self-m", m);
	/* A normal mutex locked twice by the same thread: a deadlock of one. */
	start(role("self-lock", m, m, NULL));
}

static void mode_leaked(void)
{
	pthread_mutex_t *m = new_mutex(PTHREAD_MUTEX_NORMAL, 0, 0);
	struct role *owner = role("leak-owner", m, NULL, NULL);
	pthread_t th;

	print_mutex("leak-m", m);
	owner->exit_holding = 1;
	if (pthread_create(&th, NULL, role_main, owner)) {
		perror("pthread_create");
		exit(1);
	}
	/* Joined: the owner's tid is gone for good before anyone waits. */
	pthread_join(th, NULL);
	start(role("leak-wait", new_mutex(PTHREAD_MUTEX_NORMAL, 0, 0), m, NULL));
}

static void wait_held(pthread_mutex_t *m);

static void mode_live(void)
{
	pthread_mutex_t *m = new_mutex(PTHREAD_MUTEX_NORMAL, 0, 0);
	struct role *owner = role("live-owner", m, NULL, NULL);

	print_mutex("live-m", m);
	owner->busy = 1;
	start(owner);
	wait_held(m);
	start(role("live-wait", new_mutex(PTHREAD_MUTEX_NORMAL, 0, 0), m, NULL));
}

/* A timed wait for a mutex a sleeping thread holds: the owner is named as for any wait. */
static void mode_timed(void)
{
	pthread_mutex_t *m = new_mutex(PTHREAD_MUTEX_NORMAL, 0, 0);
	struct role *waiter;

	print_mutex("timed-m", m);
	start(role("timed-owner", m, NULL, NULL));
	wait_held(m);
	waiter = role("timed-wait", new_mutex(PTHREAD_MUTEX_NORMAL, 0, 0), m, NULL);
	waiter->timed = 1;
	start(waiter);
}

/* Until another thread holds m: the waiter must find it held. */
static void wait_held(pthread_mutex_t *m)
{
	int rc;

	while ((rc = pthread_mutex_trylock(m)) == 0) {
		pthread_mutex_unlock(m);
		usleep(1000);
	}
	if (rc != EBUSY) {
		fprintf(stderr, "locks: trylock: %s\n", strerror(rc));
		exit(1);
	}
}

/* One owner holding a mutex of the given kind forever and one thread waiting for it. */
static void mode_kind(const char *own, const char *wait, const char *label, int type, int robust,
		      int protocol, int relock)
{
	pthread_mutex_t *m = new_mutex(type, robust, protocol);
	struct role *owner = role(own, m, NULL, NULL);

	print_mutex(label, m);
	owner->relock = relock;
	start(owner);
	wait_held(m);
	start(role(wait, new_mutex(PTHREAD_MUTEX_NORMAL, 0, 0), m, NULL));
}

static pthread_rwlock_t rw = PTHREAD_RWLOCK_INITIALIZER;

static void *rw_writer(void *arg)
{
	name_self("rw-writer");
	publish_tid("rw-writer", 0);
	pthread_rwlock_wrlock(&rw);
	hold_forever(0);
	return NULL;
}

static __attribute__((noinline)) void rw_block(int write)
{
	if (write)
		pthread_rwlock_wrlock(&rw); /* BLOCK:rwlock-write */
	else
		pthread_rwlock_rdlock(&rw); /* BLOCK:rwlock-read */
}

static void *rw_waiter(void *arg)
{
	int write = arg != NULL;
	const char *name = write ? "rw-wwait" : "rw-reader";

	name_self(name);
	publish_tid(name, 1);
	rw_block(write);
	hold_forever(0);
	return NULL;
}

static void mode_rwlock(void)
{
	pthread_t th;

	print_mutex("rw-lock", &rw);
	pthread_create(&th, NULL, rw_writer, NULL);
	pthread_detach(th);
	while (pthread_rwlock_tryrdlock(&rw) == 0) {
		pthread_rwlock_unlock(&rw);
		usleep(1000);
	}
	pthread_create(&th, NULL, rw_waiter, NULL);
	pthread_detach(th);
	pthread_create(&th, NULL, rw_waiter, (void *)1);
	pthread_detach(th);
}

/* Until every waiter is asleep in futex(2), as /proc/self/task/TID/syscall tells. */
static void wait_blocked(void)
{
	for (int tries = 0; tries < 20000; tries++) {
		int n, blocked = 0;

		pthread_mutex_lock(&tid_lock);
		n = nwaiters;
		for (int i = 0; i < n; i++)
			if (task_syscall(waiter_tids[i]) == SYS_futex)
				blocked++;
		pthread_mutex_unlock(&tid_lock);
		if (blocked == n)
			return;
		usleep(1000);
	}
	fprintf(stderr, "locks: waiters did not block\n");
	exit(1);
}

int main(int argc, char **argv)
{
	static const char *const all[] = { "abba",	 "cycle3",     "self", "leaked", "live",
					   "robust",	 "recursive",  "errorcheck", "pi",
					   "rwlock",	 "timed" };
	const char *const *modes = (const char *const *)argv + 1;
	int nmodes = argc - 1, expect = 0;

	if (nmodes == 0) {
		modes = all;
		nmodes = sizeof(all) / sizeof(all[0]);
	}
	for (int i = 0; i < nmodes; i++) {
		const char *m = modes[i];

		if (!strcmp(m, "abba")) {
			mode_abba();
			expect += 2;
		} else if (!strcmp(m, "cycle3")) {
			mode_cycle3();
			expect += 3;
		} else if (!strcmp(m, "self")) {
			mode_self();
			expect += 1;
		} else if (!strcmp(m, "leaked")) {
			mode_leaked();
			expect += 1;
		} else if (!strcmp(m, "timed")) {
			mode_timed();
			expect += 1;
		} else if (!strcmp(m, "live")) {
			mode_live();
			expect += 1;
		} else if (!strcmp(m, "robust")) {
			mode_kind("rob-own", "rob-wait", "robust-m", PTHREAD_MUTEX_NORMAL, 1, 0, 0);
			expect += 1;
		} else if (!strcmp(m, "recursive")) {
			mode_kind("rec-own", "rec-wait", "recursive-m", PTHREAD_MUTEX_RECURSIVE, 0,
				  0, 1);
			expect += 1;
		} else if (!strcmp(m, "errorcheck")) {
			mode_kind("ec-own", "ec-wait", "errorcheck-m", PTHREAD_MUTEX_ERRORCHECK, 0,
				  0, 0);
			expect += 1;
		} else if (!strcmp(m, "pi")) {
			mode_kind("pi-own", "pi-wait", "pi-m", PTHREAD_MUTEX_NORMAL, 0,
				  PTHREAD_PRIO_INHERIT, 0);
			expect += 1;
		} else if (!strcmp(m, "rwlock")) {
			mode_rwlock();
			expect += 2;
		} else {
			fprintf(stderr, "locks: unknown mode %s\n", m);
			return 2;
		}
	}
	/* Every waiter must have published its tid before we can watch it block. */
	while (1) {
		int n;

		pthread_mutex_lock(&tid_lock);
		n = nwaiters;
		pthread_mutex_unlock(&tid_lock);
		if (n >= expect)
			break;
		usleep(1000);
	}
	wait_blocked();
	printf("READY pid %d\n", (int)getpid());
	fflush(stdout);
	for (;;)
		pause();
}
