/*
 * What the parts of the wait classifier share (private to src/diagnose): the call being
 * classified, the per-dump cache, the detail and timeout helpers (wait_detail.c), and the
 * classifiers of futex and lock waits (wait_lock.c) and of fd waits (wait_fd.c) that
 * wait.c's syscall table dispatches to.
 */
#ifndef CP_WAIT_CLASSIFY_H
#define CP_WAIT_CLASSIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "wait.h"

#define NAME_MAX_LEN 128
#define NS_PER_SEC 1000000000LL

/* What the classification works on: the syscall to interpret and whether its arguments are real. */
struct call {
	long nr;
	const uint64_t *args;	/* NULL when only the stack told us the call */
	bool restarted;		/* the kernel is in restart_syscall on behalf of nr */
	bool remaining;		/* timeout_ns is what is left of an absolute deadline */
};

/* Entries each memo of a cp_wait_cache keeps at most. */
#define WAIT_CACHE_MAX 4096

struct fd_memo;
struct lock_memo;

struct cp_wait_cache {
	struct fd_memo *v;		/* wait_fd.c */
	size_t n, alloc;
	struct lock_memo *locks;	/* wait_lock.c */
	size_t nlocks, locks_alloc;
	struct cp_pipe_index *pipes;	/* who holds the pipes' other ends */
	struct cp_net_index *net;	/* the target's sockets by inode */
};

static inline bool starts_with(const char *s, const char *prefix)
{
	return !strncmp(s, prefix, strlen(prefix));
}

/* wait.c */
/*
 * A function name reduced to what identifies the libc entry point behind it ("__GI___libc_read"
 * -> "read"), in buf.
 */
const char *wait_base_name(const char *fn, char *buf, size_t size);

/* wait_detail.c */
/*
 * Read len bytes at addr of the thread's process into buf: the one place the classifier
 * reads target memory. 0, or -errno (-EFAULT when only part was readable).
 */
int wait_read_target(const struct cp_wait_input *in, uint64_t addr, void *buf, size_t len);
/* Replace w->detail; -ENOMEM leaves the old detail in place. */
int wait_set_detail(struct cp_wait *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "1.500s". */
void wait_format_duration(char *buf, size_t size, int64_t ns);
/* The timeout clause of a detail: "no timeout", "timeout 1.500s", "1.500s remaining". */
void wait_format_timeout(char *buf, size_t size, const struct cp_wait *w, bool remaining);
/*
 * Set w's timeout from a timespec / timeval pointer argument; NULL means unbounded. With
 * absolute, the value is a deadline on clock and the timeout becomes the time left.
 */
void wait_timeout_from_ptr(const struct cp_wait_input *in, struct call *c, struct cp_wait *w,
			   uint64_t addr, bool usec, bool absolute, clockid_t clock);
/* Milliseconds in an int argument (poll, epoll_wait); negative means unbounded. */
void wait_timeout_from_ms(struct cp_wait *w, uint64_t arg);
/* "SIGUSR1 SIGTERM" from a sigset in the target; "" when unreadable. */
void wait_format_sigset(const struct cp_wait_input *in, uint64_t addr, char *buf, size_t size);

/* wait_lock.c */
/*
 * Which synchronization object a futex wait belongs to, from the stack; CP_WAIT__COUNT when
 * none. *label receives the function for the detail.
 */
enum cp_wait_kind wait_futex_kind(const struct cp_wait_input *in, char *label, size_t size);
/* A futex or futex_waitv call: its object, lock owner and timeout. 0 or -ENOMEM. */
int wait_classify_futex(const struct cp_wait_input *in, struct call *c, struct cp_wait *w);

/* wait_fd.c */
/* A read, write, accept or connect on the fd in the call's first argument. 0 or -ENOMEM. */
int wait_classify_fd(const struct cp_wait_input *in, const struct call *c, struct cp_wait *w,
		     enum cp_wait_kind kind, bool for_write);
/* poll, select and the epoll waits. 0 or -ENOMEM. */
int wait_classify_poll(const struct cp_wait_input *in, struct call *c, struct cp_wait *w);

#endif
