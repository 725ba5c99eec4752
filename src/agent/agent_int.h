/* The agent's internals shared by its three files: session state, hooks and GOT patching. */
#ifndef CP_AGENT_INT_H
#define CP_AGENT_INT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "agent_proto.h"

/*
 * The agent is one per process by nature (it patches the process' GOTs), so its state is
 * global, hidden from other modules. Everything here is built -fvisibility=hidden; only the
 * three names of agent_proto.h are exported.
 */
#define AGENT_EXPORT __attribute__((visibility("default")))

/* The malloc family as this process' global scope resolves it (dlsym). */
struct agent_real {
	void *(*malloc)(size_t);
	void (*free)(void *);
	void *(*calloc)(size_t, size_t);
	void *(*realloc)(void *, size_t);
	void *(*reallocarray)(void *, size_t, size_t);
	int (*posix_memalign)(void **, size_t, size_t);
	void *(*aligned_alloc)(size_t, size_t);
	void *(*memalign)(size_t, size_t);
	void *(*valloc)(size_t);
	void *(*pvalloc)(size_t);
};

/*
 * One hooked symbol: its name, the real function (its first definition in load order: libc's,
 * or an allocator's such as jemalloc) and the hook that replaces it. canonical: what the
 * global lookup (dlsym) gives, which differs from real in a program built without PIE that
 * takes the function's address (its PLT entry is then the function's address for every
 * module: python3.11 on Debian); a GOT entry holding either is the global allocator's.
 */
struct agent_hook {
	const char *name;
	void *real;
	void *canonical;
	void *hook;
};

/* The malloc family, then dlsym and dlvsym (new modules are redirected as a program looks
 * into a library it has just loaded). */
#define AGENT_NHOOKS 12

extern struct agent_real agent_real;
/* The real dlsym and dlvsym, which the hooks (hooks.c) jump to. */
extern void *agent_real_dlsym, *agent_real_dlvsym;
/* Redirect the modules loaded since the last look, while a session is on (cheap otherwise). */
void agent_patch_new(void);
extern struct agent_hook agent_hooks[AGENT_NHOOKS];

/* The session: the shared region, the ring, and whether sampling is on. */
struct agent_session {
	struct cp_agent_header *hdr;	/* the memfd region, mapped once, never unmapped */
	uint8_t *ring;
	uint64_t ring_mask;
	uint64_t rate;
	uint32_t stack_bytes;
	int pidfd;			/* the reader's pidfd, -1 when none */
	int on;				/* atomic: the hooks record */
	int stop_pending;		/* atomic: someone asked to go OFF, restore still to do */
	uint64_t generation;		/* atomic: the session's number, threads redraw on change */
	int busy;			/* atomic: threads inside a sampled path */
	int vm_readv_broken;		/* process_vm_readv refused: samples carry no stack */
	uint64_t stack_end;		/* the main thread's __libc_stack_end (argc), 0 if unknown */
	int pid;			/* getpid(), set by start and in a forked child */
};

extern struct agent_session agent_sess;

/* What malloc's and free's generated fast paths are made of (stubs.c). */
struct agent_stub_spec {
	void *real_malloc, *real_free;	/* jumped to by rel32: the page goes within reach */
	void *slow_malloc;		/* entered with the countdown already subtracted */
	void *slow_free;		/* the compiled free hook */
	int64_t countdown_tls;		/* the countdown's offset from the thread pointer */
	const uint8_t *filter;		/* the 64 KiB filter of sampled blocks */
};

/*
 * Generate the two fast paths in a page of their own next to the allocator (once per process:
 * the page stays, as the agent does). 0, or -errno when no page within 2 GiB of it could be
 * mapped or made executable: the compiled hooks are used then.
 */
int agent_stubs_make(const struct agent_stub_spec *spec, void **malloc_stub, void **free_stub);

/* 1 when malloc and free are redirected to generated fast paths, 0 when to compiled ones. */
extern int agent_fast_paths;

/* Resolve the real functions (dlsym) and fill agent_hooks. 0 or -errno. */
int agent_hooks_init(void);

/* The address of the first definition of the function name in load order, 0 if none. */
uint64_t agent_symbol_definition(const char *name);

/* Map (or reuse) the tables of sampled blocks, cleared. 0 or -errno. */
int agent_blocks_reset(void);

/* Give the pages of the tables of sampled blocks back to the kernel (they stay mapped). */
void agent_blocks_release(void);

/*
 * Redirect the hooked symbols in the GOT of every loaded module not yet patched (the agent and
 * ld.so excepted). Called with the patch lock held. Returns how many modules were left for a
 * later pass because the loader had not relocated them yet.
 */
int agent_got_patch_all(void);

/* Put back every GOT entry agent_got_patch_all changed that still holds our hook. */
void agent_got_restore_all(void);

/* Counts of the current patching: entries, modules patched, modules skipped. */
void agent_got_counts(uint64_t *entries, uint64_t *modules, uint64_t *skipped);

/*
 * Go OFF: restore the GOTs, set the states, write why (NULL: the reader asked). When the patch
 * lock is busy and wait is 0, leaves the work to its holder (stop_pending) and returns.
 */
void agent_go_off(const char *why, int wait);

/*
 * Copy up to len bytes of this thread's stack from sp into dst, stopping at the end of the
 * stack's mapping; the bytes copied (0 when it cannot be read).
 */
uint32_t agent_copy_stack(uint8_t *dst, uint64_t sp, uint32_t len);

/* In a forked child: forget what the forking thread cached (its thread id). */
void agent_thread_forked(void);

/*
 * The sampled path's look at the world: 1 with *why set (NULL: the reader asked) when the
 * agent must go OFF. At most every 10 ms it also polls the reader's pidfd and patches modules
 * loaded since the last look (dlopen is not hooked: glibc's dlopen takes its caller's return
 * address to find the RUNPATH and namespace to search, and a hook would become the caller).
 */
int agent_poll(const char **why);

#endif
