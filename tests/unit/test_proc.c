/* Unit tests for src/proc.c and src/syscalls.c: /proc parsers on literal text and on live tasks. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "check.h"
#include "proc.h"

static void test_parse_stat(void)
{
	struct cp_task_stat st;
	/* Real stat lines with the comm edited: 52 fields after the comm on Linux 6.x. */
	const char *tricky = "4243 ((a) b)) S 4242 4242 4242 0 -1 4194368 120 0 0 0 17 5 0 0 20 0 "
			     "3 0 98765 10000000 200 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 "
			     "0 -1 3 0 0 0 0 0 0 0 0 0 0 0 0 0\n";
	const char *kthread = "2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 2 0 0 "
			      "18446744073709551615 0 0 0 0 0 0 0 2147483647 0 0 0 0 17 1 0 0 0 0 "
			      "0 0 0 0 0 0 0 0 0\n";
	const char *kworker = "77 (kworker/1:1-events) I 2 0 0 0 -1 69238880 0 0 0 0 0 12 0 0 20 "
			      "0 1 0 30 0 0 18446744073709551615 0 0 0 0 0 0 0 2147483647 0 0 0 0 "
			      "17 1 0 0 0 0 0\n";
	const char *spaces = "10 (my thread ) R 1 10 10 0 -1 4194560 0 0 0 0 100 200 0 0 20 0 1 0 "
			     "5 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 1 0 0 0 0 0 0\n";
	const char *old = "11 (old) Z 1 11 11 0 -1 0 0 0 0 0 1 2 0 0 20 0 1 0 77";

	memset(&st, 0x5a, sizeof(st));
	CHECK(cp_proc_parse_stat(tricky, &st) == 0);
	CHECK(st.tid == 4243);
	CHECK(strcmp(st.comm, "(a) b)") == 0);
	CHECK(st.state == 'S');
	CHECK(st.ppid == 4242);
	CHECK(st.flags == 4194368);
	CHECK(st.utime == 17 && st.stime == 5);
	CHECK(st.starttime == 98765);
	CHECK(st.processor == 3);
	CHECK(st.num_threads == 3);
	CHECK(!cp_proc_is_kernel_thread(&st));

	CHECK(cp_proc_parse_stat(kthread, &st) == 0);
	CHECK(st.tid == 2 && strcmp(st.comm, "kthreadd") == 0 && st.ppid == 0);
	CHECK(cp_proc_is_kernel_thread(&st));
	CHECK(cp_proc_parse_stat(kworker, &st) == 0);
	CHECK(st.state == 'I' && strcmp(st.comm, "kworker/1:1-events") == 0);
	CHECK(st.flags & 0x00200000u);
	CHECK(cp_proc_is_kernel_thread(&st));

	CHECK(cp_proc_parse_stat(spaces, &st) == 0);
	CHECK(strcmp(st.comm, "my thread ") == 0 && st.state == 'R');
	CHECK(st.utime == 100 && st.stime == 200 && st.processor == 1);

	/* Old kernels stop earlier: up to starttime is required, processor optional. */
	CHECK(cp_proc_parse_stat(old, &st) == 0);
	CHECK(st.state == 'Z' && st.starttime == 77 && st.processor == -1);

	memset(&st, 0x5a, sizeof(st));
	CHECK(cp_proc_parse_stat("", &st) == -EINVAL);
	CHECK(cp_proc_parse_stat("12 noparen S 1", &st) == -EINVAL);
	CHECK(cp_proc_parse_stat("12 (x) S", &st) == -EINVAL);
	CHECK(cp_proc_parse_stat("12 (x) S 1 2 3 4 5 notanumber 1 2 3 4 5 6", &st) == -EINVAL);
	CHECK(cp_proc_parse_stat("x (x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19", &st) ==
	      -EINVAL);
	/* out untouched on failure. */
	CHECK(st.tid == 0x5a5a5a5a);
}

static void test_parse_syscall(void)
{
	struct cp_task_syscall sc;

	CHECK(cp_proc_parse_syscall("running\n", &sc) == 0);
	CHECK(sc.running && !sc.in_syscall && sc.nr == -1);

	CHECK(cp_proc_parse_syscall("-1 0x7ffd5f3a1b28 0x7f0a1c2d3e2d\n", &sc) == 0);
	CHECK(!sc.running && !sc.in_syscall && sc.nr == -1);
	CHECK(sc.sp == 0x7ffd5f3a1b28ull && sc.pc == 0x7f0a1c2d3e2dull);

	CHECK(cp_proc_parse_syscall("202 0x55d1c0c04040 0x80 0x2 0x0 0x0 0xca 0x7f3a1b2ffd10 "
				    "0x7f3a1c291d36\n", &sc) == 0);
	CHECK(!sc.running && sc.in_syscall && sc.nr == 202);
	CHECK(sc.args[0] == 0x55d1c0c04040ull && sc.args[1] == 0x80 && sc.args[2] == 2);
	CHECK(sc.args[5] == 0xca);
	CHECK(sc.sp == 0x7f3a1b2ffd10ull && sc.pc == 0x7f3a1c291d36ull);

	CHECK(cp_proc_parse_syscall("0 0x3 0x7ffe 0x1000 0xffffffffffffffff 0x0 0x0 0x1 0x2", &sc) ==
	      0);
	CHECK(sc.nr == 0 && sc.args[3] == 0xffffffffffffffffull && sc.pc == 2);

	memset(&sc, 0x5a, sizeof(sc));
	CHECK(cp_proc_parse_syscall("", &sc) == -EINVAL);
	CHECK(cp_proc_parse_syscall("runningx", &sc) == -EINVAL);
	CHECK(cp_proc_parse_syscall("-1 0x10", &sc) == -EINVAL);
	CHECK(cp_proc_parse_syscall("202 0x1 0x2 0x3", &sc) == -EINVAL);
	CHECK(cp_proc_parse_syscall("202 0x1 0x2 0x3 0x4 0x5 0x6 0x7 0x8 0x9", &sc) == -EINVAL);
	CHECK(cp_proc_parse_syscall("-2 0x1 0x2", &sc) == -EINVAL);
	CHECK(cp_proc_parse_syscall("7 0xzz 0x2 0x3 0x4 0x5 0x6 0x7 0x8", &sc) == -EINVAL);
	CHECK(sc.nr == 0x5a5a5a5a5a5a5a5aLL);
}

static void test_parse_status(void)
{
	struct cp_task_status st;
	const char *text = "Name:\tcat\nUmask:\t0022\nState:\tR (running)\nTgid:\t5\nPid:\t5\n"
			   "PPid:\t1\nTracerPid:\t4321\nUid:\t0\t0\t0\t0\n"
			   "voluntary_ctxt_switches:\t17\nnonvoluntary_ctxt_switches:\t3\n";

	CHECK(cp_proc_parse_status(text, &st) == 0);
	CHECK(st.tracer_pid == 4321);
	CHECK(st.voluntary_ctxt_switches == 17 && st.nonvoluntary_ctxt_switches == 3);
	CHECK(cp_proc_parse_status("Name:\tx\nTracerPid:\t0\n", &st) == 0);
	CHECK(st.tracer_pid == 0 && st.voluntary_ctxt_switches == 0);
	CHECK(cp_proc_parse_status("Name:\tx\n", &st) == -EINVAL);
	CHECK(cp_proc_parse_status("TracerPid:\tabc\n", &st) == -EINVAL);
	/* Fields must be whole numbers in range, unsigned ones without a sign. */
	CHECK(cp_proc_parse_status("TracerPid:\t12x\n", &st) == -EINVAL);
	CHECK(cp_proc_parse_status("TracerPid:\t99999999999999999999999\n", &st) == -EINVAL);
	CHECK(cp_proc_parse_status("TracerPid:\t0\nvoluntary_ctxt_switches:\t-1\n", &st) ==
	      -EINVAL);
	CHECK(cp_proc_parse_status("TracerPid:\t0\nvoluntary_ctxt_switches:\t+1\n", &st) ==
	      -EINVAL);
	CHECK(cp_proc_parse_status("TracerPid:\t0\nvoluntary_ctxt_switches:\t"
				   "99999999999999999999999\n",
				   &st) == -EINVAL);
	CHECK(cp_proc_parse_status("TracerPid:\t 7\nvoluntary_ctxt_switches: \t 5 \n", &st) == 0 &&
	      st.tracer_pid == 7 && st.voluntary_ctxt_switches == 5);
}

static void test_syscall_names(void)
{
	CHECK(strcmp(cp_syscall_name(0), "read") == 0);
	CHECK(strcmp(cp_syscall_name(202), "futex") == 0);
	CHECK(strcmp(cp_syscall_name(7), "poll") == 0);
	CHECK(strcmp(cp_syscall_name(230), "clock_nanosleep") == 0);
	CHECK(strcmp(cp_syscall_name(281), "epoll_pwait") == 0);
	CHECK(strcmp(cp_syscall_name(288), "accept4") == 0);
	CHECK(strcmp(cp_syscall_name(435), "clone3") == 0);
	CHECK(cp_syscall_name(-1) == NULL);
	CHECK(cp_syscall_name(400) == NULL);
	CHECK(cp_syscall_name(100000) == NULL);
}

static pthread_barrier_t barrier;
static int helper_tid;

static void *helper(void *arg)
{
	helper_tid = (int)syscall(SYS_gettid);
	pthread_setname_np(pthread_self(), "cp (helper)");
	pthread_barrier_wait(&barrier);
	/* Wait for main to look at us, then leave. */
	pthread_barrier_wait(&barrier);
	return arg;
}

static void test_live(void)
{
	int pid = getpid(), *tids = NULL;
	struct cp_task_stat st;
	struct cp_task_status ss;
	struct cp_task_syscall sc;
	size_t n = 0, i, argc = 0;
	char **argv = NULL, buf[4096];
	uint64_t run = 0, slices = 0;
	pthread_t th;
	bool found = false;

	pthread_barrier_init(&barrier, NULL, 2);
	pthread_create(&th, NULL, helper, NULL);
	pthread_barrier_wait(&barrier);

	CHECK(cp_proc_list_tasks(pid, &tids, &n) == 0);
	CHECK(n >= 2);
	for (i = 0; i < n; i++) {
		if (i > 0)
			CHECK(tids[i - 1] < tids[i]);
		if (tids[i] == helper_tid)
			found = true;
	}
	CHECK(found);
	CHECK(n > 0 && tids[0] == pid);
	free(tids);

	CHECK(cp_proc_read_stat(pid, helper_tid, &st) == 0);
	CHECK(st.tid == helper_tid && strcmp(st.comm, "cp (helper)") == 0);
	CHECK(st.ppid == getppid());
	CHECK(!cp_proc_is_kernel_thread(&st));
	CHECK(cp_proc_read_stat(pid, 0, &st) == 0 && st.tid == pid);
	CHECK(cp_proc_read_status(pid, helper_tid, &ss) == 0 && ss.tracer_pid == 0);
	CHECK(cp_proc_read_schedstat(pid, 0, &run, &slices) == 0 && slices > 0);

	/* The helper is blocked in futex (the barrier); /proc/PID/syscall needs ptrace
	 * access, which a process has to itself. */
	{
		int r, tries;

		/* It may still be on its way into the second barrier: wait until it sleeps. */
		for (tries = 0; tries < 5000; tries++) {
			r = cp_proc_read_syscall(pid, helper_tid, &sc);
			if (r != 0 || sc.in_syscall)
				break;
			usleep(1000);
		}
	}
	if (cp_proc_read_syscall(pid, helper_tid, &sc) == 0) {
		CHECK(sc.in_syscall && strcmp(cp_syscall_name(sc.nr), "futex") == 0);
		CHECK(sc.sp != 0 && sc.pc != 0);
	} else {
		printf("note: /proc/self/task/N/syscall not readable\n");
	}
	CHECK(cp_proc_read_wchan(pid, helper_tid, buf, sizeof(buf)) == 0);
	{
		char one[1];
		int r = cp_proc_read_wchan(pid, helper_tid, one, sizeof(one));

		CHECK(buf[0] ? r == -ENAMETOOLONG : (r == 0 && one[0] == '\0'));
	}

	CHECK(cp_proc_read_cmdline(pid, &argv, &argc) == 0);
	CHECK(argc >= 1 && argv[argc] == NULL && strstr(argv[0], "test_proc") != NULL);
	cp_proc_free_argv(argv);
	cp_proc_free_argv(NULL);

	CHECK(cp_proc_read_exe(pid, buf, sizeof(buf)) == 0 && strstr(buf, "test_proc") != NULL);
	CHECK(cp_proc_read_exe(pid, buf, 4) == -ENAMETOOLONG);
	CHECK(cp_proc_read_fd_link(pid, 1, buf, sizeof(buf)) == 0 && buf[0] != '\0');
	CHECK(cp_proc_read_fd_link(pid, 999999, buf, sizeof(buf)) == -ENOENT);

	pthread_barrier_wait(&barrier);
	pthread_join(th, NULL);
	pthread_barrier_destroy(&barrier);

	/* Threads and processes that are gone: ESRCH, not ENOENT. */
	CHECK(cp_proc_read_stat(pid, helper_tid, &st) == -ESRCH);
	CHECK(cp_proc_read_syscall(pid, helper_tid, &sc) == -ESRCH);
	CHECK(cp_proc_read_stat(999999999, 0, &st) == -ESRCH);
	CHECK(cp_proc_list_tasks(999999999, &tids, &n) == -ESRCH);
	CHECK(cp_proc_read_exe(999999999, buf, sizeof(buf)) == -ESRCH);
	CHECK(cp_proc_read_cmdline(999999999, &argv, &argc) == -ESRCH);

	/* kthreadd, when this pid namespace sees it. */
	if (cp_proc_read_stat(2, 0, &st) == 0 && strcmp(st.comm, "kthreadd") == 0) {
		CHECK(cp_proc_is_kernel_thread(&st));
		CHECK(cp_proc_read_cmdline(2, &argv, &argc) == 0 && argc == 0 && argv[0] == NULL);
		cp_proc_free_argv(argv);
		CHECK(cp_proc_read_exe(2, buf, sizeof(buf)) == -ENOENT);
	}
}

int main(void)
{
	test_parse_stat();
	test_parse_syscall();
	test_parse_status();
	test_syscall_names();
	test_live();
	return check_done("proc");
}
