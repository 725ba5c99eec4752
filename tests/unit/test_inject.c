/* Unit tests of src/inject's safe-point rules: unsafe frames, parkable calls, refusals. */
#include <errno.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "check.h"
#include "inject_internal.h"

static void test_unsafe_functions(void)
{
	static const char *const unsafe[] = {
		"malloc", "free", "calloc", "realloc", "_int_malloc", "_int_free", "tcache_get",
		"arena_get2", "__libc_malloc", "__GI___libc_free", "__libc_calloc", "malloc_consolidate",
		"je_malloc", "tc_malloc", "operator new(unsigned long)", "operator delete(void*)",
		"_Znwm", "_dl_open", "_dl_catch_exception", "dl_iterate_phdr", "__dl_iterate_phdr",
		"__GI___dl_iterate_phdr", "dlopen", "__libc_dlopen_mode", "fork", "__libc_fork",
		"_Fork", "pthread_create", "posix_memalign", "__malloc_arena_thread_freeres",
	};
	static const char *const safe[] = {
		"main", "read", "__libc_read", "pthread_cond_wait", "__futex_abstimed_wait_common",
		"epoll_wait", "nanosleep", "start_thread", "__clone3", "freeaddrinfo_x",
		"block_futex", "realpath", "dladdr_like_user_fn_not", "", NULL,
	};

	for (size_t i = 0; i < sizeof(unsafe) / sizeof(unsafe[0]); i++)
		CHECK(inject_unsafe_function(unsafe[i]), "%s should be unsafe", unsafe[i]);
	for (size_t i = 0; i < sizeof(safe) / sizeof(safe[0]); i++)
		CHECK(!inject_unsafe_function(safe[i]), "%s should be safe",
		      safe[i] ? safe[i] : "NULL");
}

static void test_loader_functions(void)
{
	CHECK(inject_loader_function("__GI___dl_iterate_phdr"));
	CHECK(inject_loader_function("_dl_open") && inject_loader_function("dl_open_worker"));
	CHECK(inject_loader_function("dlopen") && inject_loader_function("__libc_dlopen_mode"));
	CHECK(!inject_loader_function("malloc") && !inject_loader_function("read"));
	CHECK(!inject_loader_function("fork") && !inject_loader_function(NULL));
	CHECK(inject_loader_module("/lib64/ld-linux-x86-64.so.2"));
	CHECK(!inject_loader_module("/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"));
}

static void test_unsafe_modules(void)
{
	CHECK(inject_unsafe_module("/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"));
	CHECK(inject_unsafe_module("/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"));
	CHECK(inject_unsafe_module("libtcmalloc_minimal.so.4"));
	CHECK(!inject_unsafe_module("/usr/lib/x86_64-linux-gnu/libc.so.6"));
	CHECK(!inject_unsafe_module("/usr/bin/redis-server"));
	CHECK(!inject_unsafe_module(NULL));
}

static void test_parkable(void)
{
	static const long yes[] = { SYS_read, SYS_futex, SYS_nanosleep, SYS_clock_nanosleep,
				    SYS_poll, SYS_epoll_wait, SYS_accept, SYS_accept4, SYS_wait4 };
	static const long no[] = { SYS_ppoll, SYS_pselect6, SYS_epoll_pwait, SYS_rt_sigsuspend,
				   SYS_connect, SYS_ioctl, SYS_restart_syscall, SYS_io_getevents,
				   SYS_semop, -1 };

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		CHECK(inject_parkable_syscall(yes[i]), "syscall %ld should be parkable", yes[i]);
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		CHECK(!inject_parkable_syscall(no[i]), "syscall %ld should not be", no[i]);
	CHECK(inject_syscall_reissued(SYS_epoll_wait) && !inject_syscall_reissued(SYS_futex));
}

/* Refusals that need no fixture: no such process, a kernel thread, ourselves traced by none. */
static void test_refusals(void)
{
	struct cp_inject *in = NULL;
	char why[256] = "";

	CHECK(cp_inject_open(0, NULL, &in, why, sizeof(why)) == -EINVAL);
	CHECK(cp_inject_open(2, NULL, &in, why, sizeof(why)) < 0 && in == NULL);
	CHECK(strstr(why, "kernel thread") != NULL, "why: %s", why);
	CHECK(cp_inject_open(0x3ffffff0, NULL, &in, why, sizeof(why)) < 0 && in == NULL);
	CHECK(strstr(why, "no process") != NULL, "why: %s", why);
	/* This test itself is ASan-instrumented glibc code: open works and finds dlopen. */
	CHECK(cp_inject_open(getpid(), NULL, &in, why, sizeof(why)) == 0, "why: %s", why);
	if (in) {
		CHECK(in->dlopen != 0 && in->restore_rt != 0 && in->syscall_ret != 0);
		cp_inject_close(in);
	}
	cp_inject_close(NULL);
}

int main(void)
{
	test_unsafe_functions();
	test_unsafe_modules();
	test_loader_functions();
	test_parkable();
	test_refusals();
	return check_done("test_inject");
}
