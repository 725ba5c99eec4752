/* Wait classification: why a thread is blocked, from /proc data, its stack and target memory. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mem.h"
#include "fdinfo.h"
#include "lockinfo.h"
#include "proc.h"
#include "util.h"
#include "wait.h"

/* How many of the innermost frames may name the syscall wrapper or the lock function. */
#define WRAPPER_FRAMES 6
#define LOCK_FRAMES 16
#define NAME_MAX_LEN 128
#define NS_PER_SEC 1000000000LL

static const char *const kind_names[CP_WAIT__COUNT] = {
	[CP_WAIT_UNKNOWN] = "unknown",
	[CP_WAIT_RUNNING] = "running",
	[CP_WAIT_MUTEX] = "mutex",
	[CP_WAIT_RWLOCK] = "rwlock",
	[CP_WAIT_CONDVAR] = "condvar",
	[CP_WAIT_FUTEX] = "futex",
	[CP_WAIT_SLEEP] = "sleep",
	[CP_WAIT_POLL] = "poll",
	[CP_WAIT_IO_READ] = "io-read",
	[CP_WAIT_IO_WRITE] = "io-write",
	[CP_WAIT_ACCEPT] = "accept",
	[CP_WAIT_CONNECT] = "connect",
	[CP_WAIT_WAIT_CHILD] = "wait-child",
	[CP_WAIT_SIGNAL] = "signal",
	[CP_WAIT_DISK] = "disk",
	[CP_WAIT_STOPPED] = "stopped",
	[CP_WAIT_ZOMBIE] = "zombie",
	[CP_WAIT_SYSCALL] = "syscall",
};

const char *cp_wait_kind_name(enum cp_wait_kind kind)
{
	if ((int)kind < 0 || kind >= CP_WAIT__COUNT)
		return "unknown";
	return kind_names[kind];
}

void cp_wait_init(struct cp_wait *w)
{
	memset(w, 0, sizeof(*w));
	w->kind = CP_WAIT_UNKNOWN;
	w->fd = -1;
	w->timeout_ns = -1;
}

void cp_wait_release(struct cp_wait *w)
{
	if (!w)
		return;
	free(w->detail);
	free(w->object);
	cp_wait_init(w);
}

/* What classify() works on: the syscall to interpret and whether its arguments are real. */
struct call {
	long nr;
	const uint64_t *args;	/* NULL when only the stack told us the call */
	bool restarted;		/* the kernel is in restart_syscall on behalf of nr */
	bool remaining;		/* timeout_ns is what is left of an absolute deadline */
};

static char *vformat(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));
static char *vformat(const char *fmt, va_list ap)
{
	char *s;

	if (vasprintf(&s, fmt, ap) < 0)
		return NULL;
	return s;
}

/* Replace w->detail; -ENOMEM leaves the old detail in place. */
static int set_detail(struct cp_wait *w, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int set_detail(struct cp_wait *w, const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	s = vformat(fmt, ap);
	va_end(ap);
	if (!s)
		return -ENOMEM;
	free(w->detail);
	w->detail = s;
	return 0;
}

/* "1.500s"; a duration no one would wait for still prints, just not usefully. */
static void format_duration(char *buf, size_t size, int64_t ns)
{
	snprintf(buf, size, "%lld.%03llds", (long long)(ns / NS_PER_SEC),
		 (long long)(ns % NS_PER_SEC / 1000000));
}

/* The timeout clause of a detail: "no timeout", "timeout 1.500s", "1.500s remaining". */
static void format_timeout(char *buf, size_t size, const struct cp_wait *w, bool remaining)
{
	char d[48];

	if (w->timeout_unknown) {
		snprintf(buf, size, "timeout unknown");
	} else if (w->timeout_ns < 0) {
		snprintf(buf, size, "no timeout");
	} else {
		format_duration(d, sizeof(d), w->timeout_ns);
		snprintf(buf, size, remaining ? "%s remaining" : "timeout %s", d);
	}
}

/*
 * A function name reduced to what identifies the libc entry point behind it: leading
 * underscores, glibc's "GI_" and "libc_" internal prefixes, symbol versions and compiler
 * clone suffixes go ("__GI___libc_read" -> "read", "___pthread_mutex_lock" ->
 * "pthread_mutex_lock", "__new_sem_wait_slow64.constprop.0" -> "new_sem_wait_slow64").
 */
static const char *base_name(const char *fn, char *buf, size_t size)
{
	size_t n;

	if (!fn)
		return "";
	while (*fn == '_')
		fn++;
	if (!strncmp(fn, "GI_", 3)) {
		fn += 3;
		while (*fn == '_')
			fn++;
	}
	if (!strncmp(fn, "libc_", 5))
		fn += 5;
	n = strcspn(fn, "@.(");
	if (n >= size)
		n = size - 1;
	memcpy(buf, fn, n);
	buf[n] = 0;
	return buf;
}

static bool starts_with(const char *s, const char *prefix)
{
	return !strncmp(s, prefix, strlen(prefix));
}

/* libc wrappers whose frame tells which syscall a thread is in. */
static const struct {
	const char *name;
	long nr;
} wrappers[] = {
	{ "read", SYS_read }, { "readv", SYS_readv }, { "pread64", SYS_pread64 },
	{ "pread", SYS_pread64 }, { "preadv", SYS_preadv }, { "preadv2", SYS_preadv2 },
	{ "recv", SYS_recvfrom }, { "recvfrom", SYS_recvfrom }, { "recvmsg", SYS_recvmsg },
	{ "recvmmsg", SYS_recvmmsg },
	{ "write", SYS_write }, { "writev", SYS_writev }, { "pwrite64", SYS_pwrite64 },
	{ "pwrite", SYS_pwrite64 }, { "pwritev", SYS_pwritev }, { "pwritev2", SYS_pwritev2 },
	{ "send", SYS_sendto }, { "sendto", SYS_sendto }, { "sendmsg", SYS_sendmsg },
	{ "sendmmsg", SYS_sendmmsg },
	{ "clock_nanosleep", SYS_clock_nanosleep }, { "nanosleep", SYS_nanosleep },
	{ "poll", SYS_poll }, { "ppoll", SYS_ppoll }, { "select", SYS_select },
	{ "pselect", SYS_pselect6 }, { "pselect64", SYS_pselect6 },
	{ "epoll_wait", SYS_epoll_wait }, { "epoll_pwait", SYS_epoll_pwait },
	{ "epoll_pwait2", SYS_epoll_pwait2 },
	{ "accept", SYS_accept }, { "accept4", SYS_accept4 }, { "connect", SYS_connect },
	{ "wait4", SYS_wait4 }, { "waitpid", SYS_wait4 }, { "wait", SYS_wait4 },
	{ "waitid", SYS_waitid },
	{ "pause", SYS_pause }, { "sigsuspend", SYS_rt_sigsuspend },
	{ "sigtimedwait", SYS_rt_sigtimedwait }, { "sigwaitinfo", SYS_rt_sigtimedwait },
	{ "sigwait", SYS_rt_sigtimedwait },
	{ "lll_lock_wait", SYS_futex }, { "lll_lock_wait_private", SYS_futex },
};

/* The syscall the innermost libc wrapper on the stack makes, or -1. */
static long guess_syscall(const struct cp_wait_input *in)
{
	char buf[NAME_MAX_LEN];
	size_t i, j;

	for (i = 0; in->functions && i < in->nfunctions && i < WRAPPER_FRAMES; i++) {
		const char *name = base_name(in->functions[i], buf, sizeof(buf));

		if (!*name)
			continue;
		if (strstr(name, "futex"))
			return SYS_futex;
		for (j = 0; j < sizeof(wrappers) / sizeof(wrappers[0]); j++)
			if (!strcmp(name, wrappers[j].name))
				return wrappers[j].nr;
	}
	return -1;
}

/*
 * Which synchronization object a futex wait belongs to, from the innermost pthread / semaphore
 * function on the stack. Innermost wins: pthread_cond_wait re-taking its mutex is a mutex wait.
 * *label receives the function (normalized) for the detail; "" when none is known.
 */
static enum cp_wait_kind futex_kind(const struct cp_wait_input *in, char *label, size_t size)
{
	char buf[NAME_MAX_LEN];
	size_t i;

	*label = 0;
	if (!in->functions)
		return CP_WAIT__COUNT;
	for (i = 0; i < in->nfunctions && i < LOCK_FRAMES; i++) {
		const char *name = base_name(in->functions[i], buf, sizeof(buf));
		enum cp_wait_kind kind = CP_WAIT__COUNT;

		if (starts_with(name, "pthread_mutex_") && strstr(name, "lock"))
			kind = CP_WAIT_MUTEX;
		else if (starts_with(name, "pthread_rwlock_"))
			kind = CP_WAIT_RWLOCK;
		else if (starts_with(name, "pthread_cond_"))
			kind = CP_WAIT_CONDVAR;
		else if (starts_with(name, "sem_") || starts_with(name, "new_sem_") ||
			 starts_with(name, "old_sem_") || starts_with(name, "pthread_join") ||
			 starts_with(name, "pthread_timedjoin") ||
			 starts_with(name, "pthread_clockjoin") ||
			 starts_with(name, "pthread_barrier_") ||
			 starts_with(name, "pthread_once") ||
			 starts_with(name, "call_once"))
			kind = CP_WAIT_FUTEX;
		if (kind == CP_WAIT__COUNT)
			continue;
		/* Name the public entry point: the outermost of the run of frames of this kind
		 * (__pthread_cond_wait_common -> pthread_cond_timedwait). */
		snprintf(label, size, "%s", name);
		for (i++; i < in->nfunctions && i < LOCK_FRAMES; i++) {
			name = base_name(in->functions[i], buf, sizeof(buf));
			if (!(kind == CP_WAIT_MUTEX ? starts_with(name, "pthread_mutex_") :
			      kind == CP_WAIT_RWLOCK ? starts_with(name, "pthread_rwlock_") :
			      kind == CP_WAIT_CONDVAR ? starts_with(name, "pthread_cond_") :
			      starts_with(name, "sem_") || starts_with(name, "pthread_")))
				break;
			snprintf(label, size, "%s", name);
		}
		/* glibc's internal semaphore slow path stands for the call the program made. */
		if (starts_with(label, "new_sem_") || starts_with(label, "old_sem_"))
			snprintf(label, size, "sem_wait");
		return kind;
	}
	return CP_WAIT__COUNT;
}

/* Target clocks differ from ours inside another time namespace (monotonic, boottime only). */
static int64_t timens_offset(int pid, clockid_t clock)
{
	char path[64], text[256], *line;
	struct stat self, other;
	const char *want;
	FILE *f;
	int64_t off = 0;
	size_t n;

	if (clock == CLOCK_MONOTONIC)
		want = "monotonic";
	else if (clock == CLOCK_BOOTTIME)
		want = "boottime";
	else
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/ns/time", pid);
	if (stat(path, &other) || stat("/proc/self/ns/time", &self) || self.st_ino == other.st_ino)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/timens_offsets", pid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = 0;
	for (line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
		char name[16];
		long long sec, nsec;

		if (sscanf(line, "%15s %lld %lld", name, &sec, &nsec) == 3 && !strcmp(name, want) &&
		    sec > -INT32_MAX && sec < INT32_MAX)
			off = sec * NS_PER_SEC + nsec;
	}
	return off;
}

/* The target's memory: the dump's open context, or reads by pid. */
static struct cp_mem input_mem(const struct cp_wait_input *in)
{
	return in->mem ? *in->mem : CP_MEM_BY_PID(in->pid);
}

/* Read a struct timespec (or timeval when usec) from the target into ns. 0 or -errno. */
static int read_time(const struct cp_wait_input *in, uint64_t addr, bool usec, int64_t *ns)
{
	struct cp_mem mem = input_mem(in);
	int64_t t[2];
	long n = cp_mem_read(&mem, addr, t, sizeof(t));
	int64_t unit = usec ? 1000 : 1;

	if (n < 0)
		return (int)n;
	if (n != (long)sizeof(t))
		return -EFAULT;
	if (t[0] < 0 || t[1] < 0 || t[1] >= NS_PER_SEC / unit)
		return -EINVAL;
	if (t[0] >= INT64_MAX / NS_PER_SEC)
		*ns = INT64_MAX;
	else
		*ns = t[0] * NS_PER_SEC + t[1] * unit;
	return 0;
}

/*
 * Set w's timeout from a timespec / timeval pointer argument; NULL means unbounded. With
 * absolute, the value is a deadline on clock and the timeout becomes the time left.
 */
static void timeout_from_ptr(const struct cp_wait_input *in, struct call *c, struct cp_wait *w,
			     uint64_t addr, bool usec, bool absolute, clockid_t clock)
{
	struct timespec now;
	int64_t ns = 0, now_ns;

	w->timeout_ns = -1;
	w->timeout_unknown = false;
	if (!addr)
		return;
	if (read_time(in, addr, usec, &ns) < 0) {
		w->timeout_unknown = true;
		return;
	}
	if (absolute) {
		if (clock != CLOCK_REALTIME && clock != CLOCK_MONOTONIC &&
		    clock != CLOCK_BOOTTIME && clock != CLOCK_TAI) {
			w->timeout_unknown = true;
			return;
		}
		if (clock_gettime(clock, &now)) {
			w->timeout_unknown = true;
			return;
		}
		now_ns = (int64_t)now.tv_sec * NS_PER_SEC + now.tv_nsec +
			 timens_offset(in->pid, clock);
		ns = ns > now_ns ? ns - now_ns : 0;
		c->remaining = true;
	}
	w->timeout_ns = ns;
}

/* Milliseconds in an int argument (poll, epoll_wait); negative means unbounded. */
static void timeout_from_ms(struct cp_wait *w, uint64_t arg)
{
	int ms = (int)arg;

	w->timeout_unknown = false;
	w->timeout_ns = ms < 0 ? -1 : (int64_t)ms * 1000000;
}

/*
 * What one dump learnt about the process's fds. Hundreds of threads blocked on the same
 * socket or pipe are common (worker pools); describing the fd once instead of once per thread
 * saves a walk of /proc/PID/net, a pidfd_getfd and fdinfo reads each time. Only successful
 * descriptions are kept; the cache lives as long as the dump.
 */
#define WAIT_CACHE_MAX 4096

struct fd_memo {
	int pid;
	int fd;
	bool for_write;
	struct cp_fd_desc d;
};

/*
 * What a lock word said, for the other threads of the dump that wait on the same lock: a
 * hundred threads on one mutex cost one read of the target's memory, not a hundred, and
 * all of them are told the same owner.
 */
struct lock_memo {
	uint64_t futex;
	int kind;
	int ret;
	struct cp_lock_info li;
};

struct cp_wait_cache {
	struct fd_memo *v;
	size_t n, alloc;
	struct lock_memo *locks;
	size_t nlocks, locks_alloc;
};

struct cp_wait_cache *cp_wait_cache_new(void)
{
	return calloc(1, sizeof(struct cp_wait_cache));
}

void cp_wait_cache_free(struct cp_wait_cache *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n; i++)
		cp_fd_desc_release(&c->v[i].d);
	free(c->v);
	free(c->locks);
	free(c);
}

/* The owner of the lock whose futex word is at addr, asked once a dump (when cache is set). */
static int lock_owner(const struct cp_wait_input *in, int kind, uint64_t addr,
		      struct cp_lock_info *li)
{
	struct cp_wait_cache *c = in->cache;
	struct cp_mem mem = input_mem(in);
	struct lock_memo *m;
	int ret;

	for (size_t i = 0; c && i < c->nlocks; i++) {
		if (c->locks[i].futex == addr && c->locks[i].kind == kind) {
			*li = c->locks[i].li;
			return c->locks[i].ret;
		}
	}
	if (kind == CP_WAIT_MUTEX)
		ret = cp_lock_mutex_owner(&mem, addr, in->tids, in->ntids, li);
	else
		ret = cp_lock_rwlock_writer(&mem, addr, in->tids, in->ntids, li);
	if (!c || c->nlocks >= WAIT_CACHE_MAX)
		return ret;
	if (cp_grow((void **)&c->locks, &c->locks_alloc, c->nlocks + 1, sizeof(*c->locks)) < 0)
		return ret;
	m = &c->locks[c->nlocks++];
	m->futex = addr;
	m->kind = kind;
	m->ret = ret;
	m->li = *li;
	return ret;
}

static const struct fd_memo *memo_find(const struct cp_wait_cache *c, int pid, int fd,
				       bool for_write)
{
	for (size_t i = 0; c && i < c->n; i++)
		if (c->v[i].fd == fd && c->v[i].pid == pid && c->v[i].for_write == for_write)
			return &c->v[i];
	return NULL;
}

/* Keep a copy of d; silently not when full or out of memory (a cache, not a record). */
static void memo_add(struct cp_wait_cache *c, int pid, int fd, bool for_write,
		     const struct cp_fd_desc *d)
{
	struct fd_memo *m;

	if (!c || c->n >= WAIT_CACHE_MAX || !d->object)
		return;
	if (c->n == c->alloc) {
		size_t na = c->alloc ? c->alloc * 2 : 16;
		struct fd_memo *v = realloc(c->v, na * sizeof(*v));

		if (!v)
			return;
		c->v = v;
		c->alloc = na;
	}
	m = &c->v[c->n];
	m->pid = pid;
	m->fd = fd;
	m->for_write = for_write;
	m->d = *d;
	m->d.object = strdup(d->object);
	m->d.detail = d->detail ? strdup(d->detail) : NULL;
	if (!m->d.object || (d->detail && !m->d.detail)) {
		cp_fd_desc_release(&m->d);
		return;
	}
	c->n++;
}

/* A copy of the description of (pid, fd), from the cache or from /proc. */
static int fd_describe_cached(const struct cp_wait_input *in, int fd, bool for_write,
			      struct cp_fd_desc *d)
{
	const struct fd_memo *m = memo_find(in->cache, in->pid, fd, for_write);
	int ret;

	if (m) {
		cp_fd_desc_init(d);
		*d = m->d;
		d->object = strdup(m->d.object);
		d->detail = m->d.detail ? strdup(m->d.detail) : NULL;
		if (!d->object || (m->d.detail && !d->detail)) {
			cp_fd_desc_release(d);
			return -ENOMEM;
		}
		return 0;
	}
	ret = cp_fd_describe(in->pid, fd, for_write, d);
	if (ret == 0)
		memo_add(in->cache, in->pid, fd, for_write, d);
	return ret;
}

/*
 * Fill fd, object and (for sockets) the timeout of an fd wait; *desc receives a readable
 * description (owned) or NULL.
 */
static int describe_fd(const struct cp_wait_input *in, int fd, bool for_write, struct cp_wait *w,
		       char **desc)
{
	struct cp_fd_desc d;
	char link[256];

	*desc = NULL;
	w->fd = fd;
	cp_fd_desc_init(&d);
	if (fd_describe_cached(in, fd, for_write, &d) == 0 && d.object) {
		w->object = d.object;
		d.object = NULL;
		*desc = d.detail;
		d.detail = NULL;
		if (d.is_socket) {
			w->timeout_ns = d.timeout_ns;
			w->timeout_unknown = d.timeout_unknown;
		}
		cp_fd_desc_release(&d);
		return 0;
	}
	cp_fd_desc_release(&d);
	if (cp_proc_read_fd_link(in->pid, fd, link, sizeof(link)) < 0)
		return 0;
	w->object = strdup(link);
	if (!w->object)
		return -ENOMEM;
	/* A socket's SO_RCVTIMEO / SO_SNDTIMEO was not readable: do not claim "no timeout". */
	if (starts_with(link, "socket:"))
		w->timeout_unknown = true;
	return 0;
}

/* Detail of an fd wait: "read fd 5 pipe:[123] no timeout". */
static int fd_detail(struct cp_wait *w, const char *sys, const char *desc)
{
	char tmo[64];

	format_timeout(tmo, sizeof(tmo), w, false);
	if (w->fd < 0)
		return set_detail(w, "%s on an unknown fd, %s", sys, tmo);
	return set_detail(w, "%s fd %d %s, %s", sys, w->fd,
			  desc && *desc ? desc : (w->object ? w->object : "(unknown)"), tmo);
}

static int classify_fd(const struct cp_wait_input *in, const struct call *c, struct cp_wait *w,
		       enum cp_wait_kind kind, bool for_write)
{
	char *desc = NULL;
	int ret = 0;

	w->kind = kind;
	w->timeout_ns = -1;
	if (c->args)
		ret = describe_fd(in, (int)c->args[0], for_write, w, &desc);
	else
		w->timeout_unknown = true;
	if (ret == 0)
		ret = fd_detail(w, w->syscall ? w->syscall : "io", desc);
	free(desc);
	return ret;
}

static int classify_futex(const struct cp_wait_input *in, struct call *c, struct cp_wait *w)
{
	char label[NAME_MAX_LEN], tmo[64], owner[96];
	struct cp_lock_info li;
	enum cp_wait_kind kind;
	uint64_t addr = 0;
	int op = -1, cmd = -1;
	bool realtime = false;

	if (c->args) {
		op = (int)c->args[1];
		cmd = op & FUTEX_CMD_MASK;
		realtime = op & FUTEX_CLOCK_REALTIME;
		addr = c->args[0];
		w->address = addr;
		w->has_address = true;
	}
	if (c->nr == SYS_futex && c->args) {
		switch (cmd) {
		case FUTEX_WAIT:
			/* Relative even with FUTEX_CLOCK_REALTIME. */
			timeout_from_ptr(in, c, w, c->args[3], false, false, 0);
			break;
		case FUTEX_LOCK_PI:
			timeout_from_ptr(in, c, w, c->args[3], false, true, CLOCK_REALTIME);
			break;
		case FUTEX_WAIT_BITSET:
		case FUTEX_WAIT_REQUEUE_PI:
		case FUTEX_LOCK_PI2:
			timeout_from_ptr(in, c, w, c->args[3], false, true,
					 realtime ? CLOCK_REALTIME : CLOCK_MONOTONIC);
			break;
		default:
			w->timeout_unknown = true;
			break;
		}
	}
#ifdef SYS_futex_waitv
	else if (c->nr == SYS_futex_waitv && c->args) {
		/* struct futex_waitv { u64 val; u64 uaddr; u32 flags; u32 reserved; }[nr] */
		struct cp_mem mem = input_mem(in);
		uint64_t first[2];

		w->has_address = false;
		if (cp_mem_read(&mem, c->args[0], first, sizeof(first)) ==
		    (long)sizeof(first)) {
			w->address = first[1];
			w->has_address = true;
		}
		timeout_from_ptr(in, c, w, c->args[3], false, true, (clockid_t)c->args[4]);
	}
#endif
	else {
		w->timeout_unknown = true;
	}

	kind = futex_kind(in, label, sizeof(label));
	if (kind == CP_WAIT__COUNT) {
		/* Without a recognizable caller, only the PI operations tell what the word is. */
		if (cmd == FUTEX_LOCK_PI || cmd == FUTEX_LOCK_PI2)
			kind = CP_WAIT_MUTEX;
		else if (cmd == FUTEX_WAIT_REQUEUE_PI)
			kind = CP_WAIT_CONDVAR;
		else
			kind = CP_WAIT_FUTEX;
	}
	w->kind = kind;
	format_timeout(tmo, sizeof(tmo), w, c->remaining);

	if (!w->has_address)
		return set_detail(w, "%s%s%s, %s",
				  kind == CP_WAIT_FUTEX ? "futex" : kind_names[kind],
				  *label ? " in " : "", label, tmo);

	if (kind == CP_WAIT_MUTEX || kind == CP_WAIT_RWLOCK) {
		int ret;

		memset(&li, 0, sizeof(li));
		ret = lock_owner(in, kind, addr, &li);
		if (ret == 0 && li.address)
			w->address = li.address;
		if (ret == 0 && li.owner_tid > 0) {
			w->owner_tid = li.owner_tid;
			w->owner_in_process = li.owner_alive;
			snprintf(owner, sizeof(owner), "held by %sthread %d%s",
				 kind == CP_WAIT_RWLOCK ? "writer " : "", li.owner_tid,
				 li.owner_tid == in->tid ? " (itself)" :
				 li.owner_alive ? "" : ", which has exited");
		} else if (ret == 0) {
			snprintf(owner, sizeof(owner), "%s",
				 kind == CP_WAIT_RWLOCK ? "held by readers" : "owner not recorded");
		} else {
			snprintf(owner, sizeof(owner), "owner unknown");
		}
		/* The SPEC's exact form for a plain lock; a time limit is added only when set. */
		if (w->timeout_ns < 0 && !w->timeout_unknown)
			return set_detail(w, "0x%llx %s", (unsigned long long)w->address, owner);
		return set_detail(w, "0x%llx %s, %s", (unsigned long long)w->address, owner, tmo);
	}
	if (kind == CP_WAIT_CONDVAR)
		return set_detail(w, "%s (futex 0x%llx), %s", *label ? label : "condvar",
				  (unsigned long long)w->address, tmo);
	return set_detail(w, "futex 0x%llx%s%s, %s", (unsigned long long)w->address,
			  *label ? " in " : "", label, tmo);
}

static int classify_sleep(const struct cp_wait_input *in, struct call *c, struct cp_wait *w)
{
	const char *sys = w->syscall ? w->syscall : "sleep";
	char d[48];

	w->kind = CP_WAIT_SLEEP;
	if (!c->args) {
		w->timeout_unknown = true;
		return set_detail(w, "%s, duration unknown", sys);
	}
	if (c->nr == SYS_nanosleep)
		timeout_from_ptr(in, c, w, c->args[0], false, false, 0);
	else
		timeout_from_ptr(in, c, w, c->args[2], false, c->args[1] & TIMER_ABSTIME,
				 (clockid_t)c->args[0]);
	if (w->timeout_unknown)
		return set_detail(w, "%s, duration unknown", sys);
	if (w->timeout_ns < 0)
		return set_detail(w, "%s", sys);
	format_duration(d, sizeof(d), w->timeout_ns);
	if (c->remaining)
		return set_detail(w, "%s %s remaining", sys, d);
	return set_detail(w, "%s for %s", sys, d);
}

static int classify_poll(const struct cp_wait_input *in, struct call *c, struct cp_wait *w)
{
	const char *sys = w->syscall ? w->syscall : "poll";
	char tmo[64], *desc = NULL;
	int ret = 0;

	w->kind = CP_WAIT_POLL;
	if (!c->args) {
		w->timeout_unknown = true;
		return set_detail(w, "%s, timeout unknown", sys);
	}
	switch (c->nr) {
	case SYS_poll:
	case SYS_ppoll:
		if (c->nr == SYS_poll)
			timeout_from_ms(w, c->args[2]);
		else
			timeout_from_ptr(in, c, w, c->args[2], false, false, 0);
		format_timeout(tmo, sizeof(tmo), w, false);
		return set_detail(w, "%s on %llu fds, %s", sys, (unsigned long long)c->args[1],
				  tmo);
	case SYS_select:
	case SYS_pselect6:
		timeout_from_ptr(in, c, w, c->args[4], c->nr == SYS_select, false, 0);
		format_timeout(tmo, sizeof(tmo), w, false);
		return set_detail(w, "%s on fds below %d, %s", sys, (int)c->args[0], tmo);
	default:
		/* epoll: the epoll fd is the object waited on. */
		if (c->nr == SYS_epoll_pwait2)
			timeout_from_ptr(in, c, w, c->args[3], false, false, 0);
		else
			timeout_from_ms(w, c->args[3]);
		{
			int64_t t = w->timeout_ns;
			bool unknown = w->timeout_unknown;

			ret = describe_fd(in, (int)c->args[0], false, w, &desc);
			w->timeout_ns = t;
			w->timeout_unknown = unknown;
		}
		if (ret == 0) {
			format_timeout(tmo, sizeof(tmo), w, false);
			const char *what = desc && *desc ? desc : w->object;

			ret = set_detail(w, "%s on fd %d %s, %s", sys, w->fd,
					 what ? what : "(unknown)", tmo);
		}
		free(desc);
		return ret;
	}
}

static int classify_wait_child(struct call *c, struct cp_wait *w)
{
	const char *sys = w->syscall ? w->syscall : "wait";

	w->kind = CP_WAIT_WAIT_CHILD;
	if (!c->args)
		return set_detail(w, "%s for a child", sys);
	if (c->nr == SYS_wait4) {
		int pid = (int)c->args[0];

		if (pid > 0)
			return set_detail(w, "%s for child %d", sys, pid);
		if (pid == -1)
			return set_detail(w, "%s for any child", sys);
		if (pid == 0)
			return set_detail(w, "%s for any child in its process group", sys);
		return set_detail(w, "%s for any child in process group %d", sys, -pid);
	}
	switch ((int)c->args[0]) {
	case P_PID:
		return set_detail(w, "%s for child %d", sys, (int)c->args[1]);
	case P_PGID:
		return set_detail(w, "%s for any child in process group %d", sys, (int)c->args[1]);
#ifdef P_PIDFD
	case P_PIDFD:
		return set_detail(w, "%s for the child of pidfd %d", sys, (int)c->args[1]);
#endif
	default:
		return set_detail(w, "%s for any child", sys);
	}
}

/* "SIGUSR1 SIGTERM" from a sigset in the target; "" when unreadable. */
static void format_sigset(const struct cp_wait_input *in, uint64_t addr, char *buf,
			  size_t size)
{
	struct cp_mem mem = input_mem(in);
	uint64_t set;
	size_t len = 0;
	int sig, shown = 0;

	buf[0] = 0;
	if (!addr || cp_mem_read(&mem, addr, &set, sizeof(set)) != (long)sizeof(set))
		return;
	for (sig = 1; sig <= 64 && len + 24 < size; sig++) {
		const char *abbrev;

		if (!(set & (1ULL << (sig - 1))))
			continue;
		if (shown++ == 8) {
			snprintf(buf + len, size - len, " ...");
			return;
		}
		abbrev = sig < SIGRTMIN ? sigabbrev_np(sig) : NULL;
		if (abbrev)
			len += snprintf(buf + len, size - len, "%sSIG%s", len ? " " : "", abbrev);
		else
			len += snprintf(buf + len, size - len, "%ssignal %d", len ? " " : "", sig);
	}
}

static int classify_signal(const struct cp_wait_input *in, struct call *c, struct cp_wait *w)
{
	const char *sys = w->syscall ? w->syscall : "signal wait";
	char tmo[64], sigs[200];

	w->kind = CP_WAIT_SIGNAL;
	if (c->nr == SYS_pause)
		return set_detail(w, "pause until any signal");
	if (c->nr == SYS_rt_sigsuspend)
		return set_detail(w, "sigsuspend until an unblocked signal");
	if (!c->args) {
		w->timeout_unknown = true;
		return set_detail(w, "%s, timeout unknown", sys);
	}
	timeout_from_ptr(in, c, w, c->args[2], false, false, 0);
	format_timeout(tmo, sizeof(tmo), w, false);
	format_sigset(in, c->args[0], sigs, sizeof(sigs));
	if (*sigs)
		return set_detail(w, "%s for %s, %s", sys, sigs, tmo);
	return set_detail(w, "%s, %s", sys, tmo);
}

/* The system calls with a rule of their own in classify_call(); the others are told by wchan. */
enum call_rule {
	RULE_NONE,
	RULE_FUTEX,
	RULE_SLEEP,
	RULE_POLL,
	RULE_READ,
	RULE_WRITE,
	RULE_ACCEPT,
	RULE_CONNECT,
	RULE_WAIT_CHILD,
	RULE_SIGNAL,
};

static enum call_rule call_rule(long nr)
{
	switch (nr) {
	case SYS_futex:
#ifdef SYS_futex_waitv
	case SYS_futex_waitv:
#endif
		return RULE_FUTEX;
	case SYS_nanosleep:
	case SYS_clock_nanosleep:
		return RULE_SLEEP;
	case SYS_poll:
	case SYS_ppoll:
	case SYS_select:
	case SYS_pselect6:
	case SYS_epoll_wait:
	case SYS_epoll_pwait:
	case SYS_epoll_pwait2:
		return RULE_POLL;
	case SYS_read:
	case SYS_readv:
	case SYS_pread64:
	case SYS_preadv:
	case SYS_preadv2:
	case SYS_recvfrom:
	case SYS_recvmsg:
	case SYS_recvmmsg:
		return RULE_READ;
	case SYS_write:
	case SYS_writev:
	case SYS_pwrite64:
	case SYS_pwritev:
	case SYS_pwritev2:
	case SYS_sendto:
	case SYS_sendmsg:
	case SYS_sendmmsg:
		return RULE_WRITE;
	case SYS_accept:
	case SYS_accept4:
		return RULE_ACCEPT;
	case SYS_connect:
		return RULE_CONNECT;
	case SYS_wait4:
	case SYS_waitid:
		return RULE_WAIT_CHILD;
	case SYS_pause:
	case SYS_rt_sigsuspend:
	case SYS_rt_sigtimedwait:
		return RULE_SIGNAL;
	default:
		return RULE_NONE;
	}
}

bool cp_wait_needs_wchan(char state, const struct cp_task_syscall *sc)
{
	if (state && strchr("RTtZX", state))
		return false;
	if (sc && sc->running && state != 'D')
		return false;
	if (state == 'D' || !sc || !sc->in_syscall)
		return true;
	/*
	 * The calls with a rule are named without looking at wchan, and so is a call the kernel
	 * restarted after a stop (an earlier debugger): the stack names it. A caller that gets
	 * CP_WAIT_SYSCALL back may still read wchan and ask again.
	 */
	return call_rule(sc->nr) == RULE_NONE && sc->nr != SYS_restart_syscall;
}

/* Classify by the syscall c->nr (with or without its arguments). */
static int classify_call(const struct cp_wait_input *in, struct call *c, struct cp_wait *w)
{
	w->syscall = cp_syscall_name(c->nr);
	switch (call_rule(c->nr)) {
	case RULE_FUTEX:
		return classify_futex(in, c, w);
	case RULE_SLEEP:
		return classify_sleep(in, c, w);
	case RULE_POLL:
		return classify_poll(in, c, w);
	case RULE_READ:
		return classify_fd(in, c, w, CP_WAIT_IO_READ, false);
	case RULE_WRITE:
		return classify_fd(in, c, w, CP_WAIT_IO_WRITE, true);
	case RULE_ACCEPT:
		/* accept honours SO_RCVTIMEO, connect SO_SNDTIMEO. */
		return classify_fd(in, c, w, CP_WAIT_ACCEPT, false);
	case RULE_CONNECT:
		return classify_fd(in, c, w, CP_WAIT_CONNECT, true);
	case RULE_WAIT_CHILD:
		return classify_wait_child(c, w);
	case RULE_SIGNAL:
		return classify_signal(in, c, w);
	case RULE_NONE:
		break;
	}
	w->kind = CP_WAIT_SYSCALL;
	if (w->syscall)
		return set_detail(w, "blocked in %s%s%s", w->syscall,
				  in->wchan && *in->wchan ? " at " : "", in->wchan ? in->wchan : "");
	return set_detail(w, "blocked in syscall %ld", c->nr);
}

/* Kernel functions a thread sleeps in (wchan) that tell the wait kind without a syscall. */
static const struct {
	const char *part;
	enum cp_wait_kind kind;
} wchan_kinds[] = {
	{ "futex", CP_WAIT_FUTEX },
	{ "nanosleep", CP_WAIT_SLEEP },
	{ "poll", CP_WAIT_POLL },
	{ "select", CP_WAIT_POLL },
	{ "epoll", CP_WAIT_POLL },
	{ "pipe_read", CP_WAIT_IO_READ },
	{ "recvmsg", CP_WAIT_IO_READ },
	{ "read_generic", CP_WAIT_IO_READ },
	{ "pipe_write", CP_WAIT_IO_WRITE },
	{ "wait_memory", CP_WAIT_IO_WRITE },
	{ "accept", CP_WAIT_ACCEPT },
	{ "wait_for_connect", CP_WAIT_CONNECT },
	{ "do_wait", CP_WAIT_WAIT_CHILD },
	{ "sigsuspend", CP_WAIT_SIGNAL },
	{ "sigtimedwait", CP_WAIT_SIGNAL },
	{ "sys_pause", CP_WAIT_SIGNAL },
};

/* No syscall to go by: the kernel's wchan (and the stack, for futexes) is all that is left. */
static int classify_wchan(const struct cp_wait_input *in, struct cp_wait *w)
{
	const char *where = in->sc ? "in the kernel outside a syscall" : "in the kernel";
	char label[NAME_MAX_LEN];
	enum cp_wait_kind kind;
	size_t i;

	w->timeout_unknown = true;
	if (!in->wchan || !*in->wchan || !strcmp(in->wchan, "0"))
		return set_detail(w, "sleeping %s; no syscall or wait channel readable", where);
	for (i = 0; i < sizeof(wchan_kinds) / sizeof(wchan_kinds[0]); i++) {
		if (strstr(in->wchan, wchan_kinds[i].part)) {
			w->kind = wchan_kinds[i].kind;
			break;
		}
	}
	if (w->kind == CP_WAIT_FUTEX) {
		kind = futex_kind(in, label, sizeof(label));
		if (kind != CP_WAIT__COUNT)
			w->kind = kind;
	}
	return set_detail(w, "sleeping %s at %s", where, in->wchan);
}

/* The innermost symbolized function, for the running detail; NULL when none. */
static const char *innermost_function(const struct cp_wait_input *in)
{
	size_t i;

	for (i = 0; in->functions && i < in->nfunctions; i++)
		if (in->functions[i] && *in->functions[i])
			return in->functions[i];
	return NULL;
}

static int classify_state(const struct cp_wait_input *in, char state, struct cp_wait *w)
{
	const struct cp_task_syscall *sc = in->sc;
	const char *fn = innermost_function(in);

	if (sc && sc->in_syscall && sc->nr >= 0)
		w->syscall = cp_syscall_name(sc->nr);
	switch (state) {
	case 'R':
		w->kind = CP_WAIT_RUNNING;
		return set_detail(w, "on a CPU or runnable%s%s", fn ? " in " : "", fn ? fn : "");
	case 'T':
		w->kind = CP_WAIT_STOPPED;
		return set_detail(w, "stopped by a signal%s%s", w->syscall ? " in " : "",
				  w->syscall ? w->syscall : "");
	case 't':
		w->kind = CP_WAIT_STOPPED;
		return set_detail(w, "stopped by a tracer%s%s", w->syscall ? " in " : "",
				  w->syscall ? w->syscall : "");
	case 'Z':
		w->kind = CP_WAIT_ZOMBIE;
		w->syscall = NULL;
		return set_detail(w, "zombie: exited, not yet reaped");
	default:
		w->kind = CP_WAIT_ZOMBIE;
		w->syscall = NULL;
		return set_detail(w, "dead");
	}
}

/*
 * The classification proper; w starts initialized. The thread's state comes first (it was
 * read before cprof stopped the thread, so a 't' here is someone else's tracer); then the
 * syscall it sleeps in with its arguments; then the libc wrapper on its stack; then wchan.
 */
static int classify(const struct cp_wait_input *in, struct cp_wait *w)
{
	const struct cp_task_syscall *sc = in->sc;
	char state = in->stat ? in->stat->state : 0;
	struct call c = { .nr = -1 };
	const char *wchan;
	int ret;

	if (state && strchr("RTtZX", state))
		return classify_state(in, state, w);
	if (sc && sc->running && state != 'D')
		return classify_state(in, 'R', w);

	if (sc && sc->in_syscall && sc->nr >= 0) {
		c.nr = sc->nr;
		c.args = sc->args;
		if (c.nr == SYS_restart_syscall) {
			/*
			 * A sleep or timed wait interrupted by a stop (a debugger, an earlier
			 * dump) continues in restart_syscall. The registers still hold the
			 * original call's arguments; the stack names the original call.
			 */
			long nr = guess_syscall(in);

			if (nr >= 0) {
				c.nr = nr;
				c.restarted = true;
			}
		}
	} else if (!sc) {
		/* /proc/PID/task/TID/syscall unreadable: the libc wrapper on the stack tells. */
		c.nr = guess_syscall(in);
	}
	/* Otherwise the thread sleeps in the kernel outside any syscall (a page fault, say):
	 * a wrapper on its stack would be a guess against what /proc says. */

	if (c.nr >= 0)
		ret = classify_call(in, &c, w);
	else
		ret = classify_wchan(in, w);
	/* A relative timeout of a restarted call is the original one, not what is left. */
	if (ret == 0 && c.restarted)
		ret = set_detail(w, "%s (restarted)", w->detail ? w->detail : "");
	if (ret < 0 || state != 'D')
		return ret;

	/* Uninterruptible: the kind is disk, the rest (syscall, fd, object) still applies. */
	w->kind = CP_WAIT_DISK;
	wchan = in->wchan && *in->wchan && !(w->detail && strstr(w->detail, in->wchan)) ?
			in->wchan : NULL;
	return set_detail(w, "uninterruptible sleep%s%s%s%s%s", w->detail ? ": " : "",
			  w->detail ? w->detail : "", wchan ? " (at " : "", wchan ? wchan : "",
			  wchan ? ")" : "");
}

int cp_wait_classify(const struct cp_wait_input *in, struct cp_wait *out)
{
	int ret;

	cp_wait_init(out);
	if (!in)
		return -EINVAL;
	ret = classify(in, out);
	if (ret < 0) {
		cp_wait_release(out);
		return ret;
	}
	return 0;
}
