/* What the files of src/inject share: the session, a parked thread and the remote operations. */
#ifndef CP_INJECT_INTERNAL_H
#define CP_INJECT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/user.h>

#include "inject.h"

struct cp_symbolizer;

/* One target, opened by cp_inject_open: where its libc is and what cprof uses from it. */
struct cp_inject {
	int pid;
	int only_tid;			/* opts->tid: park this thread only (0 = any) */
	int timeout_ms;
	uint64_t libc_start;		/* first address of libc's mapping */
	uint64_t dlopen;		/* dlopen, or __libc_dlopen_mode when dlopen_mode */
	bool dlopen_mode;		/* __libc_dlopen_mode: flags need __RTLD_DLOPEN */
	uint64_t restore_rt;		/* mov $15,%rax; syscall: rt_sigreturn (__restore_rt) */
	uint64_t syscall_ret;		/* syscall; ret */
	struct cp_symbolizer *sym;	/* for the safe-point check; made on first use */
	uint64_t last_park_ns;		/* how long the last park took (tests and notes) */
	int last_tid;			/* the thread the last operation ran on */
	/* Libraries loaded, by base: their file in cprof's namespace (a memfd copy has none). */
	struct {
		uint64_t base;
		char *path;
	} loaded[8];
	size_t nloaded;
	/*
	 * Threads this session left in restart_syscall (a timed wait continued exactly) and the
	 * call they were in: parked again, they resume that call should cprof die (rt_sigreturn
	 * resets the restart block, so restart_syscall itself would then fail with EINTR).
	 */
	struct {
		int tid;
		long nr;
	} restarted[16];
	size_t nrestarted;
};

/*
 * A thread of the target stopped by cprof (PTRACE_SEIZE + PTRACE_INTERRUPT) in a blocking
 * system call, with what it takes to put it back: its registers as the kernel will resume them
 * (the interrupted call restarted exactly), its extended FPU state and signal mask, and the
 * rt_sigframe written below its stack pointer through which it resumes by itself should cprof
 * die while the thread runs code for it.
 */
struct inject_park {
	int pid;
	int tid;
	int memfd;			/* /proc/PID/mem opened read-write */
	struct user_regs_struct exact;	/* resume registers, restart applied, orig_rax -1 */
	struct user_regs_struct fallback; /* the same with a restart-block call reissued */
	long nr;			/* the call it was parked in (not restart_syscall) */
	uint8_t *xstate;		/* NT_X86_XSTATE as read */
	size_t xlen;
	uint64_t mask;			/* signal mask as stopped */
	uint64_t frame;			/* address of the rt_sigframe (its return-address slot) */
	uint64_t stub;			/* the code page mapped for calls, 0 when none */
	bool masked;			/* the mask was set to block everything */
	bool dirty;			/* registers were changed since the stop */
};

/* True for a function name that belongs to an allocator or the dynamic loader (unsafe). */
bool inject_unsafe_function(const char *name);
/* True for a module (path or basename) that is an allocator or the dynamic loader. */
bool inject_unsafe_module(const char *path);
/* The dynamic loader alone: its functions and its module (what a dlopen would wait for). */
bool inject_loader_function(const char *name);
bool inject_loader_module(const char *path);
/* True for a system call a thread may be parked in: interrupted, it restarts exactly. */
bool inject_parkable_syscall(long nr);
/* True for a parkable call that is issued again from the start (its timeout starts over). */
bool inject_syscall_reissued(long nr);

/*
 * Find a thread at a safe point and stop it there (inject_park.c), within in->timeout_ms.
 * 0, or -errno with why filled (-ETIMEDOUT: no thread qualified, the reasons seen).
 */
int inject_park(struct cp_inject *in, struct inject_park *pk, char *why, size_t whylen);
/* Put the thread back exactly as it was stopped and detach. 0 or -errno (-ESRCH: gone). */
int inject_unpark(struct cp_inject *in, struct inject_park *pk);

struct cp_maps;
struct cp_unwind_result;
/*
 * Whether the walked stack ur of a thread of pid is unsafe to call on (loader_only: whether it
 * is inside the dynamic loader), the reason in buf. A frame in a signal handler or in no
 * mapping is unsafe too, unless loader_only.
 */
bool inject_frames_unsafe(struct cp_inject *in, int pid, const struct cp_maps *maps,
			  const struct cp_unwind_result *ur, bool loader_only, char *buf, size_t size);
/*
 * Whether a thread other than except, blocked in a system call, is inside the dynamic loader
 * (a dlopen would wait for it, perhaps for ever): -EBUSY with why, else 0. Captured without a
 * stop; threads whose stack cannot be walked are not counted.
 */
int inject_loader_busy(struct cp_inject *in, char *why, size_t whylen);

/* Remote operations on a parked thread (inject_remote.c). 0 or -errno, why filled. */
int inject_remote_syscall(struct cp_inject *in, struct inject_park *pk, long nr,
			  const uint64_t *args, size_t nargs, int64_t *ret, char *why, size_t whylen);
int inject_remote_call(struct cp_inject *in, struct inject_park *pk, uint64_t fn,
		       const uint64_t *args, size_t nargs, uint64_t *ret, char *why, size_t whylen);
/* Write len bytes into the call page at offset off (after the code); its target address. */
int inject_stub_data(struct cp_inject *in, struct inject_park *pk, size_t off, const void *data,
		     size_t len, uint64_t *addr, char *why, size_t whylen);
/* Unmap the call page, if any. */
int inject_stub_drop(struct cp_inject *in, struct inject_park *pk);

/* Write into the target's memory through the parked thread's /proc/PID/mem. 0 or -errno. */
int inject_mem_write(struct inject_park *pk, uint64_t addr, const void *data, size_t len);


/* printf into why (may be NULL); returns err so that callers can `return fail(...)`. */
int inject_why(char *why, size_t whylen, int err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#endif
