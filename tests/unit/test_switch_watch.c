/* Unit tests for src/switch_watch.c on real threads and the real kernel's switch records. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "switch_watch.h"

struct sleeper {
	int fd;			/* blocked reading it (a pipe) */
	atomic_int tid;
};

static void *blocked_reader(void *arg)
{
	struct sleeper *s = arg;
	char c;

	atomic_store(&s->tid, (int)syscall(SYS_gettid));
	while (read(s->fd, &c, 1) < 0 && errno == EINTR)
		;
	return NULL;
}

static atomic_int ticker_tid, ticker_stop;

static void *ticker(void *arg)
{
	struct timespec ms = { 0, 1000000 };

	(void)arg;
	atomic_store(&ticker_tid, (int)syscall(SYS_gettid));
	while (!atomic_load(&ticker_stop))
		nanosleep(&ms, NULL);
	return NULL;
}

static void wait_tid(atomic_int *tid)
{
	struct timespec ms = { 0, 1000000 };

	while (!atomic_load(tid))
		nanosleep(&ms, NULL);
	/* Let it reach its blocking call. */
	for (int i = 0; i < 20; i++)
		nanosleep(&ms, NULL);
}

/* Two threads handing a byte back and forth: a switch (two records) per hand-over. */
static int ping[2], pong[2];

static void *ponger(void *arg)
{
	char c;

	(void)arg;
	while (read(ping[0], &c, 1) == 1 && c)
		if (write(pong[1], &c, 1) != 1)
			break;
	return NULL;
}

int main(void)
{
	struct cp_switch_watch w;
	struct sleeper a = { .fd = -1 }, b = { .fd = -1 };
	int pa[2], pb[2] = { -1, -1 }, err;
	pthread_t ta, tb, tt, tp;
	uint64_t *heads;
	int tids[3];
	bool ran[3];

	err = cp_switch_watch_open(&w);
	if (err == -EACCES || err == -EPERM) {
		if (geteuid() == 0)
			FAIL("CPU-wide perf events refused to root: %s", strerror(-err));
		else
			printf("SKIP: CPU-wide perf events need CAP_PERFMON (%s)\n", strerror(-err));
		return geteuid() == 0 ? check_done("switch_watch") : 77;
	}
	CHECK(err == 0, "open: %s", strerror(-err));
	if (err)
		return check_done("switch_watch");
	CHECK(w.n >= 1 && w.ring && w.data_size > 0);
	heads = calloc(w.n, sizeof(*heads));
	CHECK(heads != NULL);
	if (!heads || pipe(pa) || pipe(ping) || pipe(pong))
		return check_done("switch_watch");

	a.fd = pa[0];
	pthread_create(&ta, NULL, blocked_reader, &a);
	pthread_create(&tt, NULL, ticker, NULL);
	wait_tid(&a.tid);
	wait_tid(&ticker_tid);

	/*
	 * Since the mark: a stays blocked, b is woken once, the ticker runs every millisecond.
	 * The rings hold every switch of their CPU: on a machine busy with other work one can
	 * fill within the 30 ms, and the answer is then "unknown" (-EOVERFLOW), rightly: the
	 * round is tried again with a new b.
	 */
	for (int attempt = 0; attempt < 20; attempt++) {
		b = (struct sleeper){ .fd = -1 };
		if (pipe(pb))
			break;
		b.fd = pb[0];
		pthread_create(&tb, NULL, blocked_reader, &b);
		wait_tid(&b.tid);
		cp_switch_watch_mark(&w, heads);
		CHECK(write(pb[1], "x", 1) == 1);
		usleep(30000);
		tids[0] = atomic_load(&a.tid);
		tids[1] = atomic_load(&b.tid);
		tids[2] = atomic_load(&ticker_tid);
		err = cp_switch_watch_ran(&w, heads, tids, 3, ran);
		pthread_join(tb, NULL);
		close(pb[0]);
		close(pb[1]);
		if (err != -EOVERFLOW)
			break;
		/* A ring that filled stays full (nothing consumes it): start afresh. */
		cp_switch_watch_close(&w);
		if (cp_switch_watch_open(&w) < 0)
			break;
	}
	CHECK(err == 0, "ran: %s", strerror(-err));
	CHECK(!ran[0], "a thread blocked all along is named");
	CHECK(ran[1], "a thread woken once is not named");
	CHECK(ran[2], "a thread that runs every millisecond is not named");

	/* A later mark knows nothing of what came before it. */
	atomic_store(&ticker_stop, 1);
	pthread_join(tt, NULL);
	for (int attempt = 0; attempt < 20; attempt++) {
		cp_switch_watch_mark(&w, heads);
		err = cp_switch_watch_ran(&w, heads, tids, 3, ran);
		if (err != -EOVERFLOW)
			break;
		cp_switch_watch_close(&w);
		if (cp_switch_watch_open(&w) < 0)
			break;
	}
	CHECK(err == 0 && !ran[0] && !ran[1] && !ran[2], "fresh mark: %d %d %d (%d)", ran[0],
	      ran[1], ran[2], err);

	/* Filling a ring: the answer is "unknown", never a silent "did not run". */
	pthread_create(&tp, NULL, ponger, NULL);
	for (int i = 0; i < 20000 && err == 0; i++) {
		char c = 1;

		if (write(ping[1], &c, 1) != 1 || read(pong[0], &c, 1) != 1)
			break;
		if (i % 1000 == 999)
			err = cp_switch_watch_ran(&w, heads, tids, 3, ran);
	}
	CHECK(err == -EOVERFLOW, "20000 hand-overs did not fill a ring: %d", err);
	{
		char c = 0;

		CHECK(write(ping[1], &c, 1) == 1);
	}
	pthread_join(tp, NULL);

	CHECK(write(pa[1], "x", 1) == 1);
	pthread_join(ta, NULL);
	cp_switch_watch_close(&w);
	CHECK(w.ring == NULL && w.n == 0);
	cp_switch_watch_close(&w);
	free(heads);
	return check_done("switch_watch");
}
