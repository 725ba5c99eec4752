/*
 * Wait classification: why a thread is blocked, from /proc data, its stack and target memory.
 * The thread's state first, then the syscall it sleeps in (the table of calls with a rule of
 * their own: futexes in wait_lock.c, fds in wait_fd.c, the rest here), then wchan.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "pidns.h"
#include "proc.h"
#include "wait_classify.h"

/* How many of the innermost frames may name the syscall wrapper. */
#define WRAPPER_FRAMES 6

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

/*
 * A function name reduced to what identifies the libc entry point behind it: leading
 * underscores, glibc's "GI_" and "libc_" internal prefixes, symbol versions and compiler
 * clone suffixes go ("__GI___libc_read" -> "read", "___pthread_mutex_lock" ->
 * "pthread_mutex_lock", "__new_sem_wait_slow64.constprop.0" -> "new_sem_wait_slow64").
 */
const char *wait_base_name(const char *fn, char *buf, size_t size)
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
	/* Go's own system calls (runtime.usleep, runtime.epollwait, runtime.write1). */
	{ "usleep", SYS_nanosleep }, { "epollwait", SYS_epoll_wait }, { "write1", SYS_write },
};

/*
 * The call a Go frame names: Go makes its system calls itself, without libc, in functions
 * of its runtime (runtime.futex, runtime.usleep, runtime.epollwait, runtime.read) or of
 * package syscall (syscall.read, syscall.accept4, under syscall.Syscall). NULL for others.
 */
static const char *go_call_name(const char *fn)
{
	if (!fn || (strncmp(fn, "runtime.", 8) && strncmp(fn, "syscall.", 8)))
		return NULL;
	return strrchr(fn, '.') + 1;
}

/* The syscall the innermost libc wrapper on the stack makes, or -1. */
static long guess_syscall(const struct cp_wait_input *in)
{
	char buf[NAME_MAX_LEN];
	size_t i, j;

	for (i = 0; in->functions && i < in->nfunctions && i < WRAPPER_FRAMES; i++) {
		const char *go = go_call_name(in->functions[i]);
		const char *name = go ? go : wait_base_name(in->functions[i], buf, sizeof(buf));

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

static int classify_sleep(const struct cp_wait_input *in, struct call *c, struct cp_wait *w)
{
	const char *sys = w->syscall ? w->syscall : "sleep";
	char d[48];

	w->kind = CP_WAIT_SLEEP;
	if (!c->args) {
		w->timeout_unknown = true;
		return wait_set_detail(w, "%s, duration unknown", sys);
	}
	if (c->nr == SYS_nanosleep)
		wait_timeout_from_ptr(in, c, w, c->args[0], false, false, 0);
	else
		wait_timeout_from_ptr(in, c, w, c->args[2], false, c->args[1] & TIMER_ABSTIME,
				      (clockid_t)c->args[0]);
	if (w->timeout_unknown)
		return wait_set_detail(w, "%s, duration unknown", sys);
	if (w->timeout_ns < 0)
		return wait_set_detail(w, "%s", sys);
	wait_format_duration(d, sizeof(d), w->timeout_ns);
	if (c->remaining)
		return wait_set_detail(w, "%s %s remaining", sys, d);
	return wait_set_detail(w, "%s for %s", sys, d);
}

/*
 * A child's pid or a process group as the call names them: in the numbers of the target's PID
 * namespace, which say so when they are not cprof's (the child is no thread of the target, so
 * the thread map cannot translate it).
 */
static int classify_wait_child(const struct cp_wait_input *in, struct call *c, struct cp_wait *w)
{
	const char *sys = w->syscall ? w->syscall : "wait";
	const char *ns = in->pidns && !in->pidns->same_ns ? " in its namespace" : "";

	w->kind = CP_WAIT_WAIT_CHILD;
	if (!c->args)
		return wait_set_detail(w, "%s for a child", sys);
	if (c->nr == SYS_wait4) {
		int pid = (int)c->args[0];

		if (pid > 0)
			return wait_set_detail(w, "%s for child %d%s", sys, pid, ns);
		if (pid == -1)
			return wait_set_detail(w, "%s for any child", sys);
		if (pid == 0)
			return wait_set_detail(w, "%s for any child in its process group", sys);
		return wait_set_detail(w, "%s for any child in process group %d%s", sys,
				       -pid, ns);
	}
	switch ((int)c->args[0]) {
	case P_PID:
		return wait_set_detail(w, "%s for child %d%s", sys, (int)c->args[1], ns);
	case P_PGID:
		return wait_set_detail(w, "%s for any child in process group %d%s", sys,
				       (int)c->args[1], ns);
#ifdef P_PIDFD
	case P_PIDFD:
		return wait_set_detail(w, "%s for the child of pidfd %d", sys, (int)c->args[1]);
#endif
	default:
		return wait_set_detail(w, "%s for any child", sys);
	}
}

static int classify_signal(const struct cp_wait_input *in, struct call *c, struct cp_wait *w)
{
	const char *sys = w->syscall ? w->syscall : "signal wait";
	char tmo[64], sigs[200];

	w->kind = CP_WAIT_SIGNAL;
	if (c->nr == SYS_pause)
		return wait_set_detail(w, "pause until any signal");
	if (c->nr == SYS_rt_sigsuspend)
		return wait_set_detail(w, "sigsuspend until an unblocked signal");
	if (!c->args) {
		w->timeout_unknown = true;
		return wait_set_detail(w, "%s, timeout unknown", sys);
	}
	wait_timeout_from_ptr(in, c, w, c->args[2], false, false, 0);
	wait_format_timeout(tmo, sizeof(tmo), w, false);
	wait_format_sigset(in, c->args[0], sigs, sizeof(sigs));
	if (*sigs)
		return wait_set_detail(w, "%s for %s, %s", sys, sigs, tmo);
	return wait_set_detail(w, "%s, %s", sys, tmo);
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
		return wait_classify_futex(in, c, w);
	case RULE_SLEEP:
		return classify_sleep(in, c, w);
	case RULE_POLL:
		return wait_classify_poll(in, c, w);
	case RULE_READ:
		return wait_classify_fd(in, c, w, CP_WAIT_IO_READ, false);
	case RULE_WRITE:
		return wait_classify_fd(in, c, w, CP_WAIT_IO_WRITE, true);
	case RULE_ACCEPT:
		/* accept honours SO_RCVTIMEO, connect SO_SNDTIMEO. */
		return wait_classify_fd(in, c, w, CP_WAIT_ACCEPT, false);
	case RULE_CONNECT:
		return wait_classify_fd(in, c, w, CP_WAIT_CONNECT, true);
	case RULE_WAIT_CHILD:
		return classify_wait_child(in, c, w);
	case RULE_SIGNAL:
		return classify_signal(in, c, w);
	case RULE_NONE:
		break;
	}
	w->kind = CP_WAIT_SYSCALL;
	if (w->syscall)
		return wait_set_detail(w, "blocked in %s%s%s", w->syscall,
				       in->wchan && *in->wchan ? " at " : "",
				       in->wchan ? in->wchan : "");
	return wait_set_detail(w, "blocked in syscall %ld", c->nr);
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
		return wait_set_detail(w, "sleeping %s; no syscall or wait channel readable",
				       where);
	for (i = 0; i < sizeof(wchan_kinds) / sizeof(wchan_kinds[0]); i++) {
		if (strstr(in->wchan, wchan_kinds[i].part)) {
			w->kind = wchan_kinds[i].kind;
			break;
		}
	}
	if (w->kind == CP_WAIT_FUTEX) {
		kind = wait_futex_kind(in, label, sizeof(label));
		if (kind != CP_WAIT__COUNT)
			w->kind = kind;
	}
	return wait_set_detail(w, "sleeping %s at %s", where, in->wchan);
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
		return wait_set_detail(w, "on a CPU or runnable%s%s", fn ? " in " : "",
				       fn ? fn : "");
	case 'T':
		w->kind = CP_WAIT_STOPPED;
		return wait_set_detail(w, "stopped by a signal%s%s", w->syscall ? " in " : "",
				       w->syscall ? w->syscall : "");
	case 't':
		w->kind = CP_WAIT_STOPPED;
		return wait_set_detail(w, "stopped by a tracer%s%s", w->syscall ? " in " : "",
				       w->syscall ? w->syscall : "");
	case 'Z':
		w->kind = CP_WAIT_ZOMBIE;
		w->syscall = NULL;
		return wait_set_detail(w, "zombie: exited, not yet reaped");
	default:
		w->kind = CP_WAIT_ZOMBIE;
		w->syscall = NULL;
		return wait_set_detail(w, "dead");
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
		ret = wait_set_detail(w, "%s (restarted)", w->detail ? w->detail : "");
	if (ret < 0 || state != 'D')
		return ret;

	/* Uninterruptible: the kind is disk, the rest (syscall, fd, object) still applies. */
	w->kind = CP_WAIT_DISK;
	wchan = in->wchan && *in->wchan && !(w->detail && strstr(w->detail, in->wchan)) ?
			in->wchan : NULL;
	return wait_set_detail(w, "uninterruptible sleep%s%s%s%s%s", w->detail ? ": " : "",
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

enum cp_wait_kind cp_wait_kind_of_stack(const char *const *functions, size_t n)
{
	struct cp_wait_input in = { .functions = functions, .nfunctions = n };
	enum cp_wait_kind kind;
	char label[NAME_MAX_LEN];
	long nr = guess_syscall(&in);

	if (nr < 0)
		return CP_WAIT_UNKNOWN;
	switch (call_rule(nr)) {
	case RULE_FUTEX:
		kind = wait_futex_kind(&in, label, sizeof(label));
		return kind == CP_WAIT__COUNT ? CP_WAIT_FUTEX : kind;
	case RULE_SLEEP:
		return CP_WAIT_SLEEP;
	case RULE_POLL:
		return CP_WAIT_POLL;
	case RULE_READ:
		return CP_WAIT_IO_READ;
	case RULE_WRITE:
		return CP_WAIT_IO_WRITE;
	case RULE_ACCEPT:
		return CP_WAIT_ACCEPT;
	case RULE_CONNECT:
		return CP_WAIT_CONNECT;
	case RULE_WAIT_CHILD:
		return CP_WAIT_WAIT_CHILD;
	case RULE_SIGNAL:
		return CP_WAIT_SIGNAL;
	case RULE_NONE:
		break;
	}
	return CP_WAIT_SYSCALL;
}
