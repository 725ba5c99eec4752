/*
 * Running code inside a live process: a thread parked at a safe point (blocked in a system
 * call, no allocator or dynamic-loader frame on its stack) calls a function of the target
 * (dlopen of a library of ours, then that library's entry points), and resumes exactly as it
 * was: registers, FPU state, signal mask, an interrupted system call restarted, signals that
 * arrived meanwhile delivered afterwards. A cprof killed at any moment leaves the thread to
 * finish the call and resume by itself. Refuses, with a one-line reason and no change to the
 * target: static binaries, libcs other than glibc, seccomp filters, a target already traced.
 *
 * Each load or call parks a thread, runs, and lets it go before returning: between calls the
 * target is not traced. The thread that calls these functions is the tracer for their
 * duration, and waits for the parked thread by its tid (waitpid(tid, __WALL)): another thread
 * of the caller must not reap its children with waitpid(-1) meanwhile. A call cannot be
 * interrupted (a parked thread is waited for until the function returns, however long).
 */
#ifndef CP_INJECT_H
#define CP_INJECT_H

#include <stddef.h>
#include <stdint.h>

struct cp_inject;

struct cp_inject_opts {
	int timeout_ms;		/* how long to look for a safe thread; 0 = 2000 */
	int tid;		/* park only this thread of the target; 0 = any that qualifies */
};

/*
 * Check that pid can be called into and find what that takes (dlopen in its libc). 0 or
 * -errno; on failure why (may be NULL) receives the reason in one line ("static binary: no
 * dynamic loader", "traced by process 123 (gdb)", "seccomp filter", "musl libc", ...).
 */
int cp_inject_open(int pid, const struct cp_inject_opts *opts, struct cp_inject **out,
		   char *why, size_t whylen);
void cp_inject_close(struct cp_inject *in);

/*
 * Load the shared library path (a path in cprof's own mount namespace) into the target with
 * dlopen(RTLD_NOW), through /proc/PID/root or a memfd when the target does not see the same
 * file. *base receives the library's load address in the target. Loading an already loaded
 * library is cheap and gives the same base. 0 or -errno (-ETIMEDOUT: no safe thread in time).
 */
int cp_inject_load(struct cp_inject *in, const char *path, uint64_t *base, char *why,
		   size_t whylen);

/*
 * The value of the dynamic symbol name (a function or object) in the ELF file open as fd, and
 * the file's lowest PT_LOAD address, page aligned (what its mapping at file offset 0 starts
 * at, before the load bias). 0, -ENOENT, -ENOTSUP (an IFUNC) or -ENOEXEC; the file is read as
 * hostile input.
 */
int cp_inject_elf_dynsym(int fd, const char *name, uint64_t *value, uint64_t *load_vaddr);

/*
 * Whether the ELF program at path can have the sampler preloaded (record's launch path): its
 * loader must be glibc's. 0 (also for what is not ELF, a script: its interpreter decides),
 * or -ENOTSUP with the reason in why: a static binary, musl or another libc.
 */
int cp_inject_check_program(const char *path, char *why, size_t whylen);

/* The target address of the dynamic symbol name of the library loaded at base. 0 or -ENOENT. */
int cp_inject_symbol(struct cp_inject *in, uint64_t base, const char *name, uint64_t *addr);

/*
 * Call fn(args[0], ..., args[nargs - 1]) (nargs <= 6, integer arguments) on a thread parked
 * at a safe point; *ret receives its return value. 0 or -errno.
 */
int cp_inject_call(struct cp_inject *in, uint64_t fn, const uint64_t *args, size_t nargs,
		   uint64_t *ret, char *why, size_t whylen);

/*
 * The thread the last load or call ran on and how long parking it took (finding a thread at a
 * safe point and stopping it), for tests and measurements; 0 before any.
 */
int cp_inject_last_tid(const struct cp_inject *in);
uint64_t cp_inject_last_park_ns(const struct cp_inject *in);

#endif
