/* Unit tests of thread ids across PID namespaces, on a real child in a namespace of its own. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "pidns.h"

static void test_parse(void)
{
	int host = 0, ns = 0;

	CHECK(cp_pidns_parse_status("Name:\tx\nNSpid:\t4242\t7\nNSpgid:\t1\n", &host, &ns) == 0);
	CHECK(host == 4242 && ns == 7);
	CHECK(cp_pidns_parse_status("Name:\tx\nNSpid:\t99\n", &host, &ns) == 0);
	CHECK(host == 99 && ns == 99);
	CHECK(cp_pidns_parse_status("Name:\tx\nNSpid:\t10\t5\t1\n", &host, &ns) == 0);
	CHECK(host == 10 && ns == 1);
	CHECK(cp_pidns_parse_status("Name:\tx\nPid:\t3\n", &host, &ns) == -ENOENT);
	CHECK(cp_pidns_parse_status("Name:\tx\nNSpid:\t\n", &host, &ns) == -ENOENT);
	CHECK(cp_pidns_parse_status("Name:\tx\nNSpid:\t-3\n", &host, &ns) == -ENOENT);
	CHECK(cp_pidns_parse_status(NULL, &host, &ns) == -ENOENT);
}

static void test_same_namespace(void)
{
	struct cp_pidns_map m;

	CHECK(cp_pidns_map_read((int)getpid(), &m) == 0);
	CHECK(m.same_ns && m.n == 0);
	CHECK(cp_pidns_to_host(&m, 1234) == 1234 && cp_pidns_to_ns(&m, 77) == 77);
	cp_pidns_map_release(&m);
}

static int pipe_fds[2];

static void *sleeper(void *arg)
{
	(void)arg;
	pause();
	return NULL;
}

/* pid 1 of a new namespace with one more thread; says "ready" on the pipe. */
static void namespace_child(void)
{
	pthread_t th;
	char c = 'r';

	if (pthread_create(&th, NULL, sleeper, NULL) != 0)
		_exit(1);
	if (write(pipe_fds[1], &c, 1) != 1)
		_exit(1);
	pause();
	_exit(0);
}

static void test_other_namespace(void)
{
	struct cp_pidns_map m;
	pid_t child;
	char c;

	if (pipe(pipe_fds) < 0 || unshare(CLONE_NEWPID) < 0) {
		printf("skip part: no PID namespace (%s)\n", strerror(errno));
		return;
	}
	child = fork();
	if (child == 0)
		namespace_child();
	CHECK(child > 0);
	if (child <= 0)
		return;
	CHECK(read(pipe_fds[0], &c, 1) == 1);
	CHECK(cp_pidns_map_read(child, &m) == 0);
	CHECK(!m.same_ns);
	CHECK(m.n == 2, "threads mapped: %zu", m.n);
	/* The child is pid 1 in its namespace, its thread 2. */
	CHECK(cp_pidns_to_host(&m, 1) == child);
	CHECK(cp_pidns_to_ns(&m, child) == 1);
	CHECK(cp_pidns_to_host(&m, 2) > 0 && cp_pidns_to_host(&m, 2) != child);
	CHECK(cp_pidns_to_host(&m, 3) == -1);
	CHECK(cp_pidns_to_ns(&m, 999999999) == -1);
	cp_pidns_map_release(&m);
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
}

/*
 * unshare(CLONE_NEWPID) puts this process's later children in the new namespace, where the
 * first one is pid 1 and its death ends the namespace: LeakSanitizer's own clone at exit would
 * then fail. So a child does that part and reports by its exit status.
 */
static void test_other_namespace_in_child(void)
{
	int status = -1;
	pid_t pid = fork();

	if (pid == 0) {
		test_other_namespace();
		_exit(failures ? 1 : 0);
	}
	CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d", status);
}

int main(void)
{
	test_parse();
	test_same_namespace();
	test_other_namespace_in_child();
	return check_done("pidns");
}
