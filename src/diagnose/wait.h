/*
 * Why a thread is blocked: the wait kinds of docs/FORMATS.md ("Wait kinds"), decided from
 * /proc (state, syscall and its arguments, wchan), the symbolized stack, and target memory
 * (timespecs, mutex owners), with fds named from /proc/PID/fd, fdinfo and /proc/PID/net.
 */
#ifndef CP_WAIT_H
#define CP_WAIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proc.h"

enum cp_wait_kind {
	CP_WAIT_UNKNOWN = 0,
	CP_WAIT_RUNNING,
	CP_WAIT_MUTEX,
	CP_WAIT_RWLOCK,
	CP_WAIT_CONDVAR,
	CP_WAIT_FUTEX,
	CP_WAIT_SLEEP,
	CP_WAIT_POLL,
	CP_WAIT_IO_READ,
	CP_WAIT_IO_WRITE,
	CP_WAIT_ACCEPT,
	CP_WAIT_CONNECT,
	CP_WAIT_WAIT_CHILD,
	CP_WAIT_SIGNAL,
	CP_WAIT_DISK,
	CP_WAIT_STOPPED,
	CP_WAIT_ZOMBIE,
	CP_WAIT_SYSCALL,
	CP_WAIT__COUNT,
};

/* "running", "mutex", ..., "io-read", ... exactly as in docs/FORMATS.md, "Wait kinds". */
const char *cp_wait_kind_name(enum cp_wait_kind kind);

struct cp_wait {
	enum cp_wait_kind kind;
	char *detail;		/* owned; NULL = null */
	const char *syscall;	/* static name; NULL = null */
	uint64_t address;	/* futex / lock address */
	bool has_address;
	int owner_tid;		/* 0 = null */
	bool owner_in_process;	/* owner_tid is a live thread of this process */
	bool owner_unrecorded;	/* a lock that records no owner (Rust's std locks) */
	int fd;			/* -1 = null */
	char *object;		/* owned; "socket:[123]", "pipe:[77]", a path; NULL = null */
	int64_t timeout_ns;	/* -1 = null (unbounded, or none carried) */
	bool timeout_unknown;	/* could not tell (e.g. socket timeout unreadable) */
};

struct cp_wait_cache;
struct cp_mem;
struct cp_pidns_map;

/* Everything the classifier looks at for one thread. Borrowed. */
struct cp_wait_input {
	int pid;
	int tid;
	const struct cp_task_stat *stat;
	const struct cp_task_syscall *sc;	/* NULL when unreadable */
	const char *wchan;			/* may be "" */
	const char *const *functions;		/* symbolized names, innermost first */
	size_t nfunctions;
	const int *tids;			/* all threads of the process, sorted */
	size_t ntids;
	/* May be NULL: what earlier threads of the same dump taught about fds, locks, pipes. */
	struct cp_wait_cache *cache;
	/* May be NULL: the process's memory, open for the dump; else it is read by pid. */
	const struct cp_mem *mem;
	/*
	 * May be NULL (ids as cprof sees them): how the process's own PID namespace numbers its
	 * threads. What the target stores (a lock's owner) and passes to system calls (a child's
	 * pid) is in its numbers; tid, tids and owner_tid are in cprof's.
	 */
	const struct cp_pidns_map *pidns;
};

/*
 * A memo of fd descriptions, lock owners and pipe holders for the threads of one dump (one
 * user at a time). NULL when out of memory.
 */
struct cp_wait_cache *cp_wait_cache_new(void);
void cp_wait_cache_free(struct cp_wait_cache *c);

void cp_wait_init(struct cp_wait *w);
void cp_wait_release(struct cp_wait *w);

/*
 * Whether classifying a thread in this state and syscall may look at its wchan; when not,
 * a dump need not read /proc/.../wchan for it (one file read less per thread).
 */
bool cp_wait_needs_wchan(char state, const struct cp_task_syscall *sc);

/*
 * The wait kind the symbolized stack alone tells (functions innermost first: the libc
 * wrapper, and for a futex the pthread function above it), without /proc or target memory:
 * for stacks taken as a thread went off CPU. CP_WAIT_UNKNOWN when no wrapper names the call.
 */
enum cp_wait_kind cp_wait_kind_of_stack(const char *const *functions, size_t n);

/* Classify one thread. 0 or -errno (out always left in a releasable state). */
int cp_wait_classify(const struct cp_wait_input *in, struct cp_wait *out);

#endif
