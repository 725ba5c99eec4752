/* What makes a parked thread safe to call on: no allocator or loader frame, a restartable call. */
#include <stdbool.h>
#include <string.h>
#include <sys/syscall.h>

#include "inject_internal.h"
#include "util.h"

static bool has_prefix(const char *s, const char *p)
{
	return strncmp(s, p, strlen(p)) == 0;
}

/*
 * Whether name is one of exact[] or starts with one of prefix[], as written or without
 * glibc's __GI_ alias prefix and leading '_'s.
 */
static bool name_in(const char *name, const char *const *exact, size_t nexact,
		    const char *const *prefix, size_t nprefix)
{
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < nexact; i++)
			if (strcmp(name, exact[i]) == 0)
				return true;
		for (size_t i = 0; i < nprefix; i++)
			if (has_prefix(name, prefix[i]))
				return true;
		if (has_prefix(name, "__GI_"))
			name += 5;
		name += strspn(name, "_");
	}
	return false;
}

/*
 * The malloc family (glibc's public names and its internals, jemalloc's and tcmalloc's), the
 * dynamic loader (_dl_*, dl_*, dlopen and friends), fork (it holds the allocator's locks across
 * the clone) and pthread_create (the loader's TLS lock): a thread stopped inside any of them may
 * hold a lock that dlopen or malloc in the called code takes, and would deadlock.
 */
bool inject_unsafe_function(const char *name)
{
	static const char *const exact[] = {
		"malloc", "free", "calloc", "realloc", "cfree", "reallocarray", "posix_memalign",
		"aligned_alloc", "memalign", "valloc", "pvalloc", "mallinfo", "mallinfo2",
		"mallocx", "rallocx", "xallocx", "sallocx", "dallocx", "sdallocx", "nallocx",
		"sysmalloc", "systrim", "heap_trim", "mtrim", "unlink_chunk", "fork", "_Fork",
		"__fork", "__libc_fork", "vfork", "__vfork", "pthread_create", "__pthread_create_2_1",
		"dlopen", "dlclose", "dlsym", "dlvsym", "dlmopen", "dladdr", "dladdr1", "dlinfo",
		"dlerror", "sbrk", "__sbrk", "__brk",
	};
	static const char *const prefix[] = {
		"_int_", "tcache", "arena_", "malloc_", "__malloc", "__libc_malloc",
		"__libc_free", "__libc_calloc", "__libc_realloc", "__libc_memalign",
		"__libc_valloc", "__libc_pvalloc", "__libc_alloc", "__libc_dl", "ptmalloc_",
		"je_", "tc_", "tcmalloc", "TCMalloc", "tcmalloc::", "_dl_", "_dl", "dl_",
		"__GI__dl", "__GI___libc_malloc", "__GI___libc_free", "operator new",
		"operator delete", "_Znw", "_Zna", "_Zdl", "_Zda", "__pthread_create",
	};

	if (!name || !*name)
		return false;
	return name_in(name, exact, CP_ARRAY_SIZE(exact), prefix, CP_ARRAY_SIZE(prefix));
}

/* The dynamic loader itself and allocator libraries: any frame inside them is unsafe. */
bool inject_unsafe_module(const char *path)
{
	const char *base;

	if (!path)
		return false;
	base = strrchr(path, '/');
	base = base ? base + 1 : path;
	return inject_loader_module(path) || has_prefix(base, "libjemalloc") ||
	       has_prefix(base, "libtcmalloc") || has_prefix(base, "libmimalloc");
}

bool inject_loader_module(const char *path)
{
	const char *base;

	if (!path)
		return false;
	base = strrchr(path, '/');
	base = base ? base + 1 : path;
	return has_prefix(base, "ld-linux") || has_prefix(base, "ld-2.") || has_prefix(base, "ld.so");
}

/*
 * Calls that an interruption by ptrace either makes restart (-ERESTARTSYS, -ERESTARTNOHAND,
 * -ERESTART_RESTARTBLOCK) or fail with -EINTR having done nothing (epoll_wait, sigtimedwait, a
 * socket with a receive timeout), which cprof turns into the same call issued again, as if it
 * had not yet been made. Left out: calls that run with a temporary signal mask (ppoll, pselect6,
 * epoll_pwait, sigsuspend: setting the mask would lose the saved one), connect (a reissued
 * connect fails with EALREADY), and device or queue calls whose EINTR may follow partial work.
 */
bool inject_parkable_syscall(long nr)
{
	switch (nr) {
	case SYS_read:
	case SYS_write:
	case SYS_readv:
	case SYS_writev:
	case SYS_pread64:
	case SYS_pwrite64:
	case SYS_poll:
	case SYS_select:
	case SYS_pause:
	case SYS_nanosleep:
	case SYS_clock_nanosleep:
	case SYS_wait4:
	case SYS_waitid:
	case SYS_accept:
	case SYS_accept4:
	case SYS_recvfrom:
	case SYS_recvmsg:
	case SYS_sendto:
	case SYS_sendmsg:
	case SYS_futex:
	case SYS_epoll_wait:
	case SYS_rt_sigtimedwait:
	case SYS_flock:
	case SYS_open:
	case SYS_openat:
		return true;
	default:
		return false;
	}
}

/*
 * Calls that an interruption fails with EINTR (rather than a restart code), issued again from
 * the start: their timeout starts over. A thread in one is parked only when no other can be.
 */
bool inject_syscall_reissued(long nr)
{
	return nr == SYS_epoll_wait || nr == SYS_rt_sigtimedwait;
}

/* The dynamic loader's own functions (a subset of inject_unsafe_function): dlopen waits on them. */
bool inject_loader_function(const char *name)
{
	static const char *const prefix[] = { "_dl", "dl_", "__libc_dl", "dlopen", "dlclose",
					      "dlsym", "dlvsym", "dlmopen", "dladdr", "dlinfo" };

	if (!name)
		return false;
	return name_in(name, NULL, 0, prefix, CP_ARRAY_SIZE(prefix));
}
