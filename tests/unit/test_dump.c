/* Unit tests for the dump model's grouping, deadlocks and writers, on dumps built by hand. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "dump.h"

static const char libc[] = "/usr/lib/x86_64-linux-gnu/libc.so.6";
static const char app[] = "/srv/app";

/* Three threads: two identical reads (a group), one mutex waiter; odd names. */
static void build(struct cp_dump *d)
{
	static const char *const argv[] = { "/srv/app", "--flag", NULL };

	memset(d, 0, sizeof(*d));
	d->pid = 100;
	d->exe = strdup("/srv/app");
	d->cmdline = calloc(3, sizeof(char *));
	for (int i = 0; argv[i]; i++)
		d->cmdline[i] = strdup(argv[i]);
	d->time_ns = 1795791600ull * 1000000000ull; /* 2026-11-27T15:00:00Z */
	d->nthreads = 3;
	d->threads = calloc(3, sizeof(*d->threads));
	for (int i = 0; i < 3; i++) {
		struct cp_dump_thread *th = &d->threads[i];

		th->tid = 100 + i;
		th->state = 'S';
		th->stuck = -1;
		cp_wait_init(&th->wait);
		th->nframes = 2;
		th->frames = calloc(2, sizeof(*th->frames));
		th->frames[0] = (struct cp_frame){ .pc = 0x7f0000001000, .function = "__libc_read",
						   .module = libc, .offset = 0x1000,
						   .has_offset = true };
		th->frames[1] = (struct cp_frame){ .pc = 0x401000 + (i == 2 ? 0x100 : 0),
						   .function = i == 2 ? NULL : "serve",
						   .file = i == 2 ? NULL : "app.c",
						   .line = i == 2 ? 0 : 42,
						   .module = app, .offset = 0x1000,
						   .has_offset = true };
	}
	snprintf(d->threads[0].name, CP_COMM_LEN, "quote\"d");
	snprintf(d->threads[1].name, CP_COMM_LEN, "new\nline");
	snprintf(d->threads[2].name, CP_COMM_LEN, "locker");
	for (int i = 0; i < 2; i++) {
		struct cp_wait *w = &d->threads[i].wait;

		w->kind = CP_WAIT_IO_READ;
		w->fd = 5 + i;
		w->object = strdup("socket:[77]");
		w->detail = strdup("read fd 5 UNIX stream");
		w->timeout_ns = -1;
	}
	d->threads[2].wait.kind = CP_WAIT_MUTEX;
	d->threads[2].wait.address = 0x5000;
	d->threads[2].wait.has_address = true;
	d->threads[2].wait.owner_tid = 100;
	d->threads[2].wait.detail = strdup("0x5000 held by thread 100");
	d->threads[2].wait.timeout_ns = -1;
	d->threads[2].stuck = 1;
	d->stuck_seconds = 3;
}

static char *render(const struct cp_dump *d, int json)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	int err;

	err = json ? cp_dump_write_json(d, f) : cp_dump_write_text(d, f, false);
	fclose(f);
	CHECK(err == 0, "writer returned %d", err);
	/* Shown with the failures it explains: the log keeps the rendering. */
	printf("---- %s ----\n%s\n", json ? "json" : "text", buf);
	return buf;
}

static void test_group(void)
{
	struct cp_dump d;

	build(&d);
	CHECK(cp_dump_same_stack(&d.threads[0], &d.threads[1]), "identical stacks");
	CHECK(!cp_dump_same_stack(&d.threads[0], &d.threads[2]), "different stacks");
	CHECK(cp_dump_group(&d) == 0, "group");
	CHECK(d.ngroups == 2, "ngroups %zu", d.ngroups);
	CHECK(d.groups[0].count == 2 && d.groups[0].tids[0] == 100 && d.groups[0].tids[1] == 101,
	      "big group first, tids in order");
	CHECK(d.groups[1].count == 1 && d.groups[1].tids[0] == 102, "single group");
	/* Regrouping replaces, not leaks (ASan checks). */
	CHECK(cp_dump_group(&d) == 0, "regroup");
	cp_dump_release(&d);
	CHECK(d.threads == NULL && d.nthreads == 0, "release resets");
	cp_dump_release(&d);
	cp_dump_release(NULL);
}

static void test_json(void)
{
	struct cp_dump d;
	char *s;

	build(&d);
	s = render(&d, 1);
	CHECK(strstr(s, "\"name\": \"quote\\\"d\""), "quote escaped");
	CHECK(strstr(s, "\"name\": \"new\\nline\""), "newline escaped");
	CHECK(strstr(s, "\"time\": \"2026-11-27T15:00:00Z\""), "time");
	CHECK(strstr(s, "\"cmdline\": [\"/srv/app\", \"--flag\"]"), "cmdline");
	CHECK(strstr(s, "\"groups\": null"), "groups null");
	CHECK(strstr(s, "\"fds\": null"), "fds null without counts");
	CHECK(strstr(s, "\"deadlocks\": []"), "deadlocks empty list");
	CHECK(strstr(s, "\"function\": null, \"file\": null, \"line\": null"), "null frame fields");
	CHECK(strstr(s, "\"owner_tid\": 100"), "owner");
	CHECK(strstr(s, "\"address\": \"0x5000\""), "address hex");
	CHECK(strstr(s, "\"timeout\": null"), "timeout null");
	CHECK(strstr(s, "\"stuck\": true") && strstr(s, "\"stuck\": null"), "stuck values");
	CHECK(strstr(s, "\"by_wait\": { \"io-read\": 2, \"mutex\": 1 }"), "by_wait");
	CHECK(strstr(s, "\"offset\": \"0x1000\""), "offset hex");
	free(s);
	CHECK(cp_dump_group(&d) == 0, "group");
	s = render(&d, 1);
	CHECK(strstr(s, "\"count\": 2, \"tids\": [100, 101], \"wait_kind\": \"io-read\""),
	      "group entry");
	free(s);
	cp_dump_release(&d);
}

static void test_text(void)
{
	struct cp_dump d;
	char *s;

	build(&d);
	s = render(&d, 0);
	CHECK(!strncmp(s, "process 100 (/srv/app --flag) at 2026-11-27T15:00:00Z: 3 threads\n"
			  "  2 io-read, 1 mutex\n",
		       strlen("process 100 (/srv/app --flag) at 2026-11-27T15:00:00Z: 3 threads\n"
			      "  2 io-read, 1 mutex\n")),
	      "header");
	CHECK(strstr(s, "\nthread 101 \"new\\x0aline\" "
			"[io-read: read fd 5 UNIX stream, no timeout]:\n"),
	      "escaped name, no timeout");
	CHECK(strstr(s, "\nthread 102 \"locker\" [mutex: 0x5000 held by thread 100 \"quote\\\"d\"] "
			"(stuck 3s):\n"),
	      "owner name and stuck mark");
	CHECK(strstr(s, "  #0 __libc_read  libc.so.6+0x1000\n"), "module+offset with function");
	CHECK(strstr(s, "  #1 serve  app.c:42\n"), "file:line");
	CHECK(strstr(s, "  #1 app+0x1000\n"), "module+offset alone");
	CHECK(!strstr(s, "LEAK?"), "no leak indicator for 2 of 3 threads");
	CHECK(!strchr(s, '\033'), "no colour");
	free(s);
	cp_dump_release(&d);
}

/* A traced process: the header names the tracer; a thread it kept running is marked. */
static void test_traced(void)
{
	struct cp_dump d;
	struct cp_dump_thread *th;
	char *s;

	build(&d);
	s = render(&d, 1);
	CHECK(strstr(s, "\"tracer\": null,"), "no tracer: null");
	CHECK(!strstr(s, "\"capture_error\": \""), "captured threads: capture_error null");
	CHECK(strstr(s, "\"kernel_frames\": [],\n      \"capture_error\": null }"),
	      "capture_error after kernel_frames");
	free(s);
	s = render(&d, 0);
	CHECK(!strstr(s, "traced by"), "untraced: no tracer line");
	free(s);

	d.tracer_pid = 4242;
	snprintf(d.tracer_name, sizeof(d.tracer_name), "gdb");
	th = &d.threads[1];
	free(th->frames);
	th->frames = NULL;
	th->nframes = 0;
	th->state = 'R';
	th->capture_error = th->unwind_error = -EBUSY;
	th->tracer_pid = 4242;
	snprintf(th->tracer_name, sizeof(th->tracer_name), "gdb");
	s = render(&d, 1);
	CHECK(strstr(s, "\"tracer\": { \"pid\": 4242, \"name\": \"gdb\" },"), "tracer object");
	CHECK(strstr(s, "\"capture_error\": \"traced by 4242 (gdb)\""), "capture_error names it");
	CHECK(strstr(s, "\"frames\": [],"), "no frames for the uncaptured thread");
	free(s);
	s = render(&d, 0);
	CHECK(strstr(s, "  2 io-read, 1 mutex\n  traced by process 4242 (gdb)"),
	      "header line after the counts");
	CHECK(strstr(s, "\n  (stack not captured: traced by 4242 (gdb) and running)\n"),
	      "thread mark");
	free(s);
	cp_dump_release(&d);
}

static void test_unbounded(void)
{
	struct cp_wait w;

	cp_wait_init(&w);
	w.kind = CP_WAIT_IO_READ;
	w.timeout_ns = -1;
	w.object = (char *)"pipe:[1]";
	CHECK(cp_dump_wait_unbounded(&w), "pipe read without timeout");
	w.timeout_ns = 5000;
	CHECK(!cp_dump_wait_unbounded(&w), "pipe read with timeout");
	w.timeout_ns = -1;
	w.timeout_unknown = true;
	CHECK(!cp_dump_wait_unbounded(&w), "unknown timeout is not flagged");
	w.timeout_unknown = false;
	w.object = (char *)"/var/log/x";
	CHECK(!cp_dump_wait_unbounded(&w), "regular file");
	w.object = NULL;
	w.kind = CP_WAIT_WAIT_CHILD;
	CHECK(cp_dump_wait_unbounded(&w), "wait4 without timeout");
	w.kind = CP_WAIT_POLL;
	CHECK(!cp_dump_wait_unbounded(&w), "poll is not flagged");
}

/* A thread waiting (kind) for a lock at addr held by owner. */
static void set_wait(struct cp_dump_thread *th, int tid, const char *name, enum cp_wait_kind kind,
		     uint64_t addr, int owner)
{
	th->tid = tid;
	snprintf(th->name, sizeof(th->name), "%s", name);
	th->stuck = -1;
	cp_wait_init(&th->wait);
	th->wait.kind = kind;
	th->wait.address = addr;
	th->wait.has_address = true;
	th->wait.owner_tid = owner;
}

/* The dump's lock waits become the wait-for graph: only mutexes and rwlocks are edges. */
static void test_deadlocks(void)
{
	struct cp_dump d;

	memset(&d, 0, sizeof(d));
	d.pid = 1;
	d.nthreads = 4;
	d.threads = calloc(4, sizeof(*d.threads));
	/* Listed out of tid order on purpose. */
	set_wait(&d.threads[0], 20, "b", CP_WAIT_MUTEX, 0x2000, 10);
	set_wait(&d.threads[1], 10, "a", CP_WAIT_RWLOCK, 0x1000, 20);
	/* A condvar's owner field is no edge: 30 and 40 are no cycle. */
	set_wait(&d.threads[2], 30, "c", CP_WAIT_CONDVAR, 0x3000, 40);
	set_wait(&d.threads[3], 40, "d", CP_WAIT_MUTEX, 0x4000, 30);
	CHECK(cp_dump_find_deadlocks(&d) == 0 && d.ndeadlocks == 1, "one cycle, got %zu",
	      d.ndeadlocks);
	if (d.ndeadlocks) {
		CHECK(d.deadlocks[0].ntids == 2 && d.deadlocks[0].tids[0] == 10 &&
			      d.deadlocks[0].tids[1] == 20,
		      "cycle tids");
		CHECK(!strcmp(d.deadlocks[0].description,
			      "thread 10 \"a\" waits for rwlock 0x1000 held by thread 20 \"b\", "
			      "which waits for mutex 0x2000 held by thread 10 \"a\""),
		      "description: %s", d.deadlocks[0].description);
	}
	CHECK(cp_dump_find_deadlocks(&d) == 0 && d.ndeadlocks == 1, "replaced, not doubled");
	CHECK(cp_dump_find_deadlocks(NULL) == -EINVAL, "NULL");
	cp_dump_release(&d);
}

int main(void)
{
	test_deadlocks();
	test_group();
	test_json();
	test_text();
	test_traced();
	test_unbounded();
	return check_done("dump");
}
