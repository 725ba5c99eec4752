/* Capture of one thread: registers and a copy of its live stack, with the shortest stop. */
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "capture.h"
#include "mem.h"
#include "proc.h"
#include "util.h"

/*
 * Why PTRACE_SEIZE + PTRACE_INTERRUPT and never PTRACE_ATTACH or SIGSTOP:
 *
 * PTRACE_ATTACH stops the tracee by queueing a real SIGSTOP. If cprof dies (SIGKILL, OOM)
 * between the attach and the moment the tracee dequeues that SIGSTOP, the signal is still
 * pending after the kernel detaches, and the whole target process goes into group-stop:
 * a production service frozen by its profiler. Sending SIGSTOP ourselves has the same flaw
 * and also stops every thread, not one.
 *
 * PTRACE_SEIZE attaches without any signal, and PTRACE_INTERRUPT asks for a stop with a
 * job-control trap bit (JOBCTL_TRAP_STOP) instead of a signal. When the tracer exits for any
 * reason, exit_ptrace() calls __ptrace_detach() -> __ptrace_unlink() on each tracee, which
 * clears JOBCTL_TRAP_MASK (so a pending interrupt disappears), reinstates a group-stop only
 * if one really is in effect for the process, and wakes a tracee sitting in TASK_TRACED
 * (ptrace_signal_wake_up(child, true)). The tracee resumes exactly where it was, untraced,
 * with no stray signal. (Read in kernel/ptrace.c, Linux 5.x/6.x.)
 *
 * So the only state cprof can leave behind is "traced and stopped for a little longer", and
 * the kernel undoes even that if cprof is killed.
 */

static void regs_from_user(const struct user_regs_struct *u, struct cp_regs *r)
{
	memset(r, 0, sizeof(*r));
	r->r[CP_REG_RAX] = u->rax;
	r->r[CP_REG_RDX] = u->rdx;
	r->r[CP_REG_RCX] = u->rcx;
	r->r[CP_REG_RBX] = u->rbx;
	r->r[CP_REG_RSI] = u->rsi;
	r->r[CP_REG_RDI] = u->rdi;
	r->r[CP_REG_RBP] = u->rbp;
	r->r[CP_REG_RSP] = u->rsp;
	r->r[CP_REG_R8] = u->r8;
	r->r[CP_REG_R9] = u->r9;
	r->r[CP_REG_R10] = u->r10;
	r->r[CP_REG_R11] = u->r11;
	r->r[CP_REG_R12] = u->r12;
	r->r[CP_REG_R13] = u->r13;
	r->r[CP_REG_R14] = u->r14;
	r->r[CP_REG_R15] = u->r15;
	r->r[CP_REG_RIP] = u->rip;
	r->valid = (1u << CP_NREGS) - 1;
}


/*
 * The window in which a thread is stopped. Signals that would make cprof exit (and detach)
 * are held for it, so that the thread runs again before cprof reacts. And cprof runs it at a
 * real-time priority where allowed: on a loaded machine, a tracer that waits for the stop
 * and is then not scheduled for a few milliseconds keeps the target's thread stopped all that
 * time. Nothing in the window spins (waitpid sleeps), so the boost cannot starve anyone; it is
 * dropped right after the detach.
 */
struct stop_window {
	sigset_t oldmask;
	int policy;
	struct sched_param param;
	bool boosted;
};

static void enter_stop_window(struct stop_window *w)
{
	struct sched_param rt = { .sched_priority = 1 };
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGQUIT);
	pthread_sigmask(SIG_BLOCK, &set, &w->oldmask);
	w->boosted = false;
	/* Per thread: pthread_* act on the calling thread only. */
	if (pthread_getschedparam(pthread_self(), &w->policy, &w->param) == 0 &&
	    w->policy == SCHED_OTHER && pthread_setschedparam(pthread_self(), SCHED_FIFO, &rt) == 0)
		w->boosted = true;
}

static void leave_stop_window(struct stop_window *w)
{
	if (w->boosted)
		pthread_setschedparam(pthread_self(), w->policy, &w->param);
	pthread_sigmask(SIG_SETMASK, &w->oldmask, NULL);
}

/* Does /proc say someone else traces tid? -EBUSY then, else err unchanged. */
static int refine_seize_error(int pid, int tid, int err)
{
	struct cp_task_status ts;
	struct cp_task_stat st;

	if (err != -EPERM)
		return err;
	if (cp_proc_read_status(pid, tid, &ts) == 0 && ts.tracer_pid != 0)
		return -EBUSY;
	/* ptrace refuses zombies (an exited thread group leader) with EPERM too. */
	err = cp_proc_read_stat(pid, tid, &st);
	if (err == -ESRCH || (err == 0 && (st.state == 'Z' || st.state == 'X')))
		return -ESRCH;
	return -EPERM;
}

/*
 * Wait for tid to stop after PTRACE_INTERRUPT. Returns 0 with *detach_sig set to the signal
 * to hand back on detach (0 for the interrupt or a group-stop), or -ESRCH when it exited.
 * This blocks: a seized thread cannot be let go before it stops. It stops within a
 * scheduling latency unless it entered uninterruptible sleep between our look at its state
 * and the interrupt; then it stops when the kernel wakes it. If cprof is killed meanwhile,
 * the kernel unlinks the thread cleanly (see the top of this file).
 * Any thread of the tracer's process can collect these stops: cprof must never call
 * waitpid(-1) or waitpid(tid) for a thread it captures from another thread.
 */
static int wait_for_stop(int tid, int *detach_sig)
{
	int status;

	for (;;) {
		pid_t r = waitpid(tid, &status, __WALL);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			/* ECHILD: the thread is gone and was reaped by its own parent. */
			return errno == ECHILD ? -ESRCH : -errno;
		}
		if (WIFEXITED(status) || WIFSIGNALED(status))
			return -ESRCH;
		if (!WIFSTOPPED(status))
			continue;
		if ((status >> 16) == PTRACE_EVENT_STOP) {
			/*
			 * Our interrupt (SIGTRAP), or a group-stop (SIGSTOP/SIGTSTP/...) that was
			 * in effect or under way: either way a ptrace-stop with valid registers.
			 * After detach the kernel keeps the thread in the group-stop if one is
			 * in effect, so there is nothing to hand back.
			 */
			*detach_sig = 0;
			return 0;
		}
		if ((status >> 16) == 0) {
			/*
			 * Signal-delivery-stop: a signal reached the thread before our interrupt.
			 * The registers are valid here too. The signal is held by ptrace; handing
			 * it back in PTRACE_DETACH's data delivers it as if we were never there.
			 * Our pending interrupt is discarded by the detach.
			 */
			*detach_sig = WSTOPSIG(status);
			return 0;
		}
		/* Other PTRACE_EVENT_* stops need options we never set; treat as stopped. */
		*detach_sig = 0;
		return 0;
	}
}

/*
 * A tracee that dies while traced reports its exit to us, not to its process, and stays a
 * zombie thread in the target until we collect it. Killed tasks exit promptly; wait a
 * little for that, never indefinitely.
 */
static void reap_exited(int tid)
{
	const struct timespec ms = { 0, 1000000 };
	int status, i;

	for (i = 0; i < 200; i++) {
		pid_t r = waitpid(tid, &status, __WALL | WNOHANG);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 || (r == tid && (WIFEXITED(status) || WIFSIGNALED(status))))
			return;
		nanosleep(&ms, NULL);
	}
}

/*
 * The mapping that holds sp. The caller's maps may predate the thread (its stack mapped
 * since); then read them again. That costs a little stop time, but only in that rare case.
 */
static const struct cp_map *stack_map(int pid, const struct cp_maps *given, struct cp_maps *own,
				      uint64_t sp)
{
	const struct cp_map *m = NULL;

	if (given)
		m = cp_maps_find(given, sp);
	if (!m && own->v)
		m = cp_maps_find(own, sp);
	if (!m && given && !own->v && cp_maps_read(pid, own) == 0)
		m = cp_maps_find(own, sp);
	return m;
}

/* Bytes to copy from sp: to the end of its mapping, at most max. */
static size_t stack_span(const struct cp_map *m, uint64_t sp, size_t max, bool *truncated)
{
	uint64_t avail;

	*truncated = false;
	if (!m)
		return 0;
	avail = m->end - sp;
	if (avail > max) {
		*truncated = true;
		return max;
	}
	return (size_t)avail;
}

/* Shrink the copy buffer to what was read, after the thread runs again. */
static void stack_finish(struct cp_stack *stack, uint8_t *buf, long got)
{
	if (got <= 0) {
		free(buf);
		stack->data = NULL;
		stack->len = 0;
		return;
	}
	stack->len = (size_t)got;
	stack->data = realloc(buf, (size_t)got);
	if (!stack->data)
		stack->data = buf;
}

/*
 * Live capture of a thread that is off CPU. While a thread sleeps in the kernel, all its user
 * registers sit in its kernel entry frame; /proc/PID/task/TID/syscall shows two of them, sp
 * and pc (and the argument registers, which unwinding never needs), and its stack cannot
 * change except by other threads' writes (which do not touch return addresses and saved
 * registers). So: read the thread's context switch count, its sp and pc, copy the stack, read
 * both again. A thread that ran in between was switched out again (the count moved) or is
 * running now (the syscall line says so); if neither, the copy is exactly what a stop would
 * have given, minus the other registers. The count comes from status, which also names a
 * tracer: a thread someone else traces is left to the stop path, which reports it.
 */
#define LIVE_TRIES 3
/* How long a running thread gets to run 10 us of CPU for its sample (cp_capture_by_sample). */
#define SAMPLE_WAIT_MS 20

struct live_files {
	int sc_fd;		/* .../syscall */
	int status_fd;		/* .../status, or .../stat when stat_only */
	bool stat_only;
};

static int open_task_file_at(int taskfd, int pid, int tid, const char *name)
{
	char path[64];
	int fd;

	if (taskfd >= 0) {
		snprintf(path, sizeof(path), "%d/%s", tid, name);
		fd = openat(taskfd, path, O_RDONLY | O_CLOEXEC);
	} else {
		snprintf(path, sizeof(path), "/proc/%d/task/%d/%s", pid, tid, name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
	}
	if (fd < 0)
		return errno == ENOENT ? -ESRCH : -errno;
	return fd;
}

/* The whole file from its start; proc's seq files regenerate on a read at offset 0. */
static int pread_text(int fd, char *buf, size_t size)
{
	ssize_t n;

	do
		n = pread(fd, buf, size - 1, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == ESRCH || errno == ENOENT ? -ESRCH : -errno;
	if (n == 0)
		return -ESRCH;	/* the task is being torn down */
	buf[n] = '\0';
	return 0;
}

/* What the live capture takes from status (or stat: no count). */
struct live_status {
	uint64_t count;			/* voluntary + nonvoluntary context switches */
	bool has_count;
	char state;
	char comm[CP_COMM_LEN];
};

/* "Name:" is escaped by the kernel: a newline reads "\n", a backslash "\\". */
static void unescape_name(const char *p, char *out, size_t size)
{
	size_t n = 0;

	while (*p && *p != '\n' && n + 1 < size) {
		if (p[0] == '\\' && p[1] == 'n') {
			out[n++] = '\n';
			p += 2;
		} else if (p[0] == '\\' && p[1] == '\\') {
			out[n++] = '\\';
			p += 2;
		} else {
			out[n++] = *p++;
		}
	}
	out[n] = '\0';
}

/*
 * Parse status; -EBUSY when another process traces the thread. Or stat (lf->stat_only), a
 * third cheaper for the kernel to write (4 us instead of 6): state and name, but no count
 * and no tracer, for a sweep that has the CPUs' switch records to tell whether it ran (and
 * needs no tracer's leave to copy a stack).
 */
static int read_count(const struct live_files *lf, struct live_status *ls)
{
	struct cp_task_status st;
	char buf[16384];
	const char *p;
	int ret = pread_text(lf->status_fd, buf, lf->stat_only ? 1024 : sizeof(buf));

	if (ret < 0)
		return ret;
	if (lf->stat_only) {
		struct cp_task_stat ts;

		if (cp_proc_parse_stat(buf, &ts) < 0)
			return -EINVAL;
		ls->has_count = false;
		ls->state = ts.state;
		memcpy(ls->comm, ts.comm, sizeof(ls->comm));
		return 0;
	}
	if (cp_proc_parse_status(buf, &st) < 0)
		return -EINVAL;
	if (st.tracer_pid != 0)
		return -EBUSY;
	ls->count = st.voluntary_ctxt_switches + st.nonvoluntary_ctxt_switches;
	ls->has_count = true;
	ls->state = '?';
	p = strstr(buf, "\nState:\t");
	if (p)
		ls->state = p[8];
	ls->comm[0] = '\0';
	if (!strncmp(buf, "Name:\t", 6))
		unescape_name(buf + 6, ls->comm, sizeof(ls->comm));
	return 0;
}

static int read_sc(const struct live_files *lf, char *text, size_t size,
		   struct cp_task_syscall *sc)
{
	int ret = pread_text(lf->sc_fd, text, size);

	if (ret < 0)
		return ret;
	return cp_proc_parse_syscall(text, sc) < 0 ? -EINVAL : 0;
}

static void live_close(struct live_files *lf)
{
	if (lf->sc_fd >= 0)
		close(lf->sc_fd);
	if (lf->status_fd >= 0)
		close(lf->status_fd);
	lf->sc_fd = lf->status_fd = -1;
}

/*
 * Open tid's syscall and status files, relative to taskfd (/proc/PID/task, -1 for none: a
 * path from the start, two lookups more).
 */
static int live_openat(int taskfd, int pid, int tid, bool stat_only, struct live_files *lf)
{
	lf->stat_only = stat_only;
	lf->sc_fd = open_task_file_at(taskfd, pid, tid, "syscall");
	if (lf->sc_fd < 0)
		return lf->sc_fd;
	lf->status_fd = open_task_file_at(taskfd, pid, tid, stat_only ? "stat" : "status");
	if (lf->status_fd < 0) {
		int err = lf->status_fd;

		close(lf->sc_fd);
		lf->sc_fd = -1;
		return err;
	}
	return 0;
}

static int live_open(int pid, int tid, struct live_files *lf)
{
	return live_openat(-1, pid, tid, false, lf);
}

bool cp_capture_syscall_may_eintr(long nr)
{
	switch (nr) {
	case SYS_read:
	case SYS_write:
	case SYS_readv:
	case SYS_writev:
	case SYS_recvfrom:
	case SYS_sendto:
	case SYS_recvmsg:
	case SYS_sendmsg:
	case SYS_recvmmsg:
	case SYS_sendmmsg:
	case SYS_accept:
	case SYS_accept4:
	case SYS_connect:
	case SYS_epoll_wait:
	case SYS_epoll_pwait:
	case 441:		/* epoll_pwait2 */
	case SYS_rt_sigtimedwait:
	case SYS_io_getevents:
	case 333:		/* io_pgetevents */
	case 426:		/* io_uring_enter */
	case SYS_semop:
	case SYS_semtimedop:
	case SYS_msgrcv:
	case SYS_msgsnd:
	case SYS_mq_timedreceive:
	case SYS_mq_timedsend:
	case SYS_ioctl:		/* device-specific: some fail with EINTR */
		return true;
	default:
		return false;
	}
}

/*
 * The registers /proc/PID/task/TID/syscall shows: sp and pc, and for a thread in a system
 * call its argument registers as they were at entry, which the kernel leaves untouched for
 * user space (only rax, rcx and r11 change across a syscall). Unwinding seldom needs them,
 * but __vfork keeps its return address in rdi while its parent sleeps.
 */
static void regs_from_syscall(const struct cp_task_syscall *sc, struct cp_regs *r)
{
	static const enum cp_reg args[6] = { CP_REG_RDI, CP_REG_RSI, CP_REG_RDX,
					     CP_REG_R10, CP_REG_R8,  CP_REG_R9 };

	memset(r, 0, sizeof(*r));
	r->r[CP_REG_RSP] = sc->sp;
	r->r[CP_REG_RIP] = sc->pc;
	r->valid = (1u << CP_REG_RSP) | (1u << CP_REG_RIP);
	if (!sc->in_syscall)
		return;
	for (int i = 0; i < 6; i++) {
		r->r[args[i]] = sc->args[i];
		r->valid |= 1u << args[i];
	}
}

/*
 * Try to capture tid live. Returns 0 with *out filled (live, maybe verified), -EAGAIN when
 * the thread has to be stopped instead (running, or it kept running during every copy and a
 * stop is harmless), or -errno. *sc_first receives the first syscall line read, which tells
 * the caller what the thread was doing before anyone touched it.
 */
static int capture_live(int pid, int tid, const struct cp_maps *given, struct cp_maps *own,
			size_t max, struct cp_task_syscall *sc_first, bool *have_first,
			struct live_status *first, struct cp_thread_snap *out)
{
	bool is_d = false;
	struct live_files lf = { .sc_fd = -1, .status_fd = -1 };
	char text1[256], text2[256];
	struct cp_task_syscall sc, sc2;
	uint8_t *buf = NULL;
	size_t buf_size = 0;
	bool truncated = false, verified = false, keep = false;
	long got = 0;
	int ret, tries;

	*have_first = false;
	ret = live_open(pid, tid, &lf);
	if (ret < 0)
		return ret;
	for (tries = 0; tries < LIVE_TRIES; tries++) {
		const struct cp_map *m;
		struct live_status s1, s2;
		size_t span;

		ret = read_count(&lf, &s1);
		if (ret == 0)
			ret = read_sc(&lf, text1, sizeof(text1), &sc);
		if (ret < 0)
			goto out;
		if (!*have_first) {
			*sc_first = sc;
			*first = s1;
			*have_first = true;
		}
		/* Zombies have no stack; stopped and traced ones are the stop path's to handle. */
		if (s1.state == 'Z' || s1.state == 'X') {
			ret = -ESRCH;
			goto out;
		}
		if (s1.state == 'T' || s1.state == 't') {
			ret = -EAGAIN;
			goto out;
		}
		is_d = s1.state == 'D';
		if (sc.running || !sc.sp || !sc.pc) {
			ret = -EAGAIN;
			goto out;
		}
		m = stack_map(pid, given, own, sc.sp);
		span = stack_span(m, sc.sp, max, &truncated);
		if (span > buf_size) {
			uint8_t *nb = realloc(buf, span);

			if (!nb) {
				ret = -ENOMEM;
				goto out;
			}
			buf = nb;
			buf_size = span;
		}
		got = span ? cp_mem_read(pid, sc.sp, buf, span) : 0;
		if (got == -ESRCH) {
			ret = -ESRCH;
			goto out;
		}
		if (got > 0 && (size_t)got < span)
			truncated = true;
		ret = read_sc(&lf, text2, sizeof(text2), &sc2);
		if (ret == 0)
			ret = read_count(&lf, &s2);
		if (ret < 0)
			goto out;
		keep = true;
		if (s1.count == s2.count && !strcmp(text1, text2)) {
			verified = true;
			break;
		}
	}
	/*
	 * It ran during every copy. Stopping it is harmless unless it sits in a call a stop
	 * would fail with EINTR, or in uninterruptible sleep (no stop until the kernel lets it
	 * go): keep the last copy for those.
	 */
	if (!verified && !is_d && !(sc.in_syscall && cp_capture_syscall_may_eintr(sc.nr))) {
		ret = -EAGAIN;
		goto out;
	}
	if (!keep) {
		ret = -EAGAIN;
		goto out;
	}
	memset(out, 0, sizeof(*out));
	out->tid = tid;
	regs_from_syscall(&sc, &out->regs);
	out->stack.start = sc.sp;
	out->stack.truncated = truncated;
	stack_finish(&out->stack, buf, got);
	buf = NULL;
	out->sc = *sc_first;
	out->has_syscall = true;
	out->live = true;
	out->verified = verified;
	out->has_state = true;
	out->state = first->state;
	memcpy(out->comm, first->comm, sizeof(out->comm));
	ret = 0;
out:
	free(buf);
	live_close(&lf);
	return ret;
}

/*
 * The live capture of many threads at once: the steps of capture_live, each over the whole
 * batch. First every thread's status (count, state, tracer) and syscall line (sp, pc); then
 * one process_vm_readv with a vector per thread for all their stacks; then every status
 * again. One call per thread costs about 20 us on a paravirtualised guest whatever its size
 * (it pins the pages of another mm); one call for 64 stacks, 1 to 5 us a stack.
 * The second look reads status only: a thread that ran in between was switched out again
 * (its count moved) or is still on its way (its state is R now). Count and state unchanged
 * mean it never ran, so its syscall line, which the kernel takes from the registers it saved
 * on entry, is unchanged too. Anything else is left to cp_capture_thread (-EAGAIN).
 * With the CPUs' context-switch records (opts->switches), a thread that none of them names
 * since the mark taken before the first looks did not run, and needs no second look: a
 * thread is switched in, and the record written, before it runs an instruction of its own,
 * so a copy that saw the thread's writes is read before a ring head that shows the record
 * (x86's stores are seen in order). The first look then reads stat rather than status
 * (state and name; 4 us for the kernel instead of 6, but no count), and a thread the records
 * name, or every thread of a sweep whose records are incomplete, is left to
 * cp_capture_thread.
 */
struct many_slot {
	struct live_files lf;
	struct live_status s1;
	struct cp_task_syscall sc;
	uint8_t *buf;
	size_t span;
	bool truncated;
	long got;
};

/* Open and take the first look at one thread; 0 when its stack is to be copied. */
static int many_first_look(int taskfd, int pid, int tid, bool stat_only,
			   const struct cp_maps *given, struct cp_maps *own, size_t max,
			   struct many_slot *s)
{
	char text[256];
	const struct cp_map *m;
	int ret = live_openat(taskfd, pid, tid, stat_only, &s->lf);

	if (ret < 0)
		return ret;
	ret = read_count(&s->lf, &s->s1);
	if (ret == 0)
		ret = read_sc(&s->lf, text, sizeof(text), &s->sc);
	if (ret == -EBUSY)
		return -EAGAIN;		/* traced by someone: the stop path reports it */
	if (ret < 0)
		return ret;
	if (s->s1.state == 'Z' || s->s1.state == 'X')
		return -ESRCH;
	if (s->s1.state != 'S' && s->s1.state != 'D')
		return -EAGAIN;
	if (s->sc.running || !s->sc.sp || !s->sc.pc)
		return -EAGAIN;
	m = stack_map(pid, given, own, s->sc.sp);
	s->span = stack_span(m, s->sc.sp, max, &s->truncated);
	if (!s->span)
		return -EAGAIN;
	s->buf = malloc(s->span);
	return s->buf ? 0 : -ENOMEM;
}

static int cmp_fd(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;

	return (x > y) - (x < y);
}

/*
 * Close the sweep's files, up to 64: sorted, they fall in a few unbroken runs of numbers
 * (the gaps are files other code keeps open), and one close_range (Linux 5.9) closes a run.
 * A run of our own numbers holds no one else's file, since each of its numbers is ours.
 */
static void many_close(struct many_slot *slot, size_t n)
{
	int fd[2 * CP_CAPTURE_MANY_MAX];
	size_t count = 0, i = 0;

	for (size_t k = 0; k < n; k++) {
		if (slot[k].lf.sc_fd >= 0)
			fd[count++] = slot[k].lf.sc_fd;
		if (slot[k].lf.status_fd >= 0)
			fd[count++] = slot[k].lf.status_fd;
		slot[k].lf.sc_fd = slot[k].lf.status_fd = -1;
	}
	qsort(fd, count, sizeof(*fd), cmp_fd);
	while (i < count) {
		size_t j = i;

		while (j + 1 < count && fd[j + 1] == fd[j] + 1)
			j++;
		if (j == i || syscall(SYS_close_range, (unsigned int)fd[i], (unsigned int)fd[j],
				      0u) != 0) {
			for (size_t k = i; k <= j; k++)
				close(fd[k]);
		}
		i = j + 1;
	}
}

/* Copy the stacks of the slots with ret 0: one call, then one by one from a fault on. */
static void many_copy(int pid, struct many_slot *slot, const int *ret, size_t n)
{
	struct iovec local[CP_CAPTURE_MANY_MAX], remote[CP_CAPTURE_MANY_MAX];
	size_t idx[CP_CAPTURE_MANY_MAX], k = 0, done = 0;
	ssize_t got;

	for (size_t i = 0; i < n; i++) {
		if (ret[i] != 0)
			continue;
		local[k].iov_base = slot[i].buf;
		local[k].iov_len = slot[i].span;
		remote[k].iov_base = (void *)(uintptr_t)slot[i].sc.sp;
		remote[k].iov_len = slot[i].span;
		idx[k++] = i;
	}
	if (!k)
		return;
	got = process_vm_readv(pid, local, k, remote, k, 0);
	/* The call stops at the first vector it cannot read in full: those before are whole. */
	for (size_t j = 0; j < k && got > 0 && (size_t)got >= slot[idx[j]].span; j++) {
		slot[idx[j]].got = (long)slot[idx[j]].span;
		got -= (ssize_t)slot[idx[j]].span;
		done++;
	}
	for (size_t j = done; j < k; j++) {
		struct many_slot *s = &slot[idx[j]];

		s->got = cp_mem_read(pid, s->sc.sp, s->buf, s->span);
		if (s->got > 0 && (size_t)s->got < s->span)
			s->truncated = true;
	}
}

int cp_capture_live_many(int pid, const int *tids, size_t n, const struct cp_capture_opts *opts,
			 struct cp_thread_snap *out, int *ret)
{
	size_t max = (opts && opts->stack_max) ? opts->stack_max : CP_STACK_COPY_MAX;
	const struct cp_maps *given = opts ? opts->maps : NULL;
	const struct cp_switch_watch *sw = opts ? opts->switches : NULL;
	struct many_slot slot[CP_CAPTURE_MANY_MAX];
	bool ran[CP_CAPTURE_MANY_MAX];
	uint64_t heads[CP_MAX_CPUS];
	bool known = false;
	struct cp_maps own = { 0 };
	char path[64];
	int taskfd;

	if (pid <= 0 || !tids || !out || !ret || n > CP_CAPTURE_MANY_MAX)
		return -EINVAL;
	if (!given) {
		int err = cp_maps_read(pid, &own);

		if (err < 0)
			return err;
	}
	/* A ring three quarters full could fill during the sweep: ask the threads instead. */
	if (sw && (sw->n > CP_MAX_CPUS || !cp_switch_watch_room(sw)))
		sw = NULL;
	if (sw)
		cp_switch_watch_mark(sw, heads);
	memset(slot, 0, n * sizeof(*slot));
	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	taskfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	for (size_t i = 0; i < n; i++) {
		slot[i].lf.sc_fd = slot[i].lf.status_fd = -1;
		ret[i] = many_first_look(taskfd, pid, tids[i], sw != NULL, given, &own, max,
					 &slot[i]);
	}
	if (taskfd >= 0)
		close(taskfd);
	many_copy(pid, slot, ret, n);
	if (sw)
		known = cp_switch_watch_ran(sw, heads, tids, n, ran) == 0;
	for (size_t i = 0; i < n; i++) {
		struct many_slot *s = &slot[i];
		struct live_status s2;

		if (ret[i] == 0 && s->got == -ESRCH)
			ret[i] = -ESRCH;
		else if (ret[i] == 0 && s->got <= 0)
			ret[i] = -EAGAIN;
		if (ret[i] == 0 && !(known && !ran[i]) && !s->s1.has_count)
			ret[i] = -EAGAIN;	/* no count to compare: cp_capture_thread asks */
		if (ret[i] == 0 && !(known && !ran[i])) {
			ret[i] = read_count(&s->lf, &s2);
			if (ret[i] == -EBUSY)
				ret[i] = -EAGAIN;
			else if (ret[i] == 0 && (s2.count != s->s1.count || s2.state != s->s1.state))
				ret[i] = -EAGAIN;
		}
		if (ret[i] != 0) {
			free(s->buf);
			continue;
		}
		memset(&out[i], 0, sizeof(out[i]));
		out[i].tid = tids[i];
		regs_from_syscall(&s->sc, &out[i].regs);
		out[i].stack.start = s->sc.sp;
		out[i].stack.truncated = s->truncated;
		stack_finish(&out[i].stack, s->buf, s->got);
		out[i].sc = s->sc;
		out[i].has_syscall = true;
		out[i].live = true;
		out[i].verified = true;
		out[i].has_state = true;
		out[i].state = s->s1.state;
		memcpy(out[i].comm, s->s1.comm, sizeof(out[i].comm));
	}
	many_close(slot, n);
	cp_maps_release(&own);
	return 0;
}

/* A thread in uninterruptible sleep: its sp and pc from /proc, its stack copied live. */
static int capture_unstopped(int pid, int tid, const struct cp_task_syscall *sc,
			     const struct cp_map *m, size_t max, struct cp_thread_snap *out)
{
	struct cp_thread_snap snap;
	uint8_t *buf = NULL;
	size_t span;
	long got = 0;

	memset(&snap, 0, sizeof(snap));
	snap.tid = tid;
	regs_from_syscall(sc, &snap.regs);
	snap.stack.start = sc->sp;
	span = stack_span(m, sc->sp, max, &snap.stack.truncated);
	if (span) {
		buf = malloc(span);
		if (!buf)
			return -ENOMEM;
		got = cp_mem_read(pid, sc->sp, buf, span);
		if (got == -ESRCH) {
			free(buf);
			return -ESRCH;
		}
		if (got > 0 && (size_t)got < span)
			snap.stack.truncated = true;
	}
	stack_finish(&snap.stack, buf, got);
	*out = snap;
	return 0;
}

int cp_capture_thread(int pid, int tid, const struct cp_capture_opts *opts,
		      struct cp_thread_snap *out)
{
	size_t max = (opts && opts->stack_max) ? opts->stack_max : CP_STACK_COPY_MAX;
	const struct cp_maps *given = opts ? opts->maps : NULL;
	unsigned int flags = opts ? opts->flags : 0;
	struct cp_maps own = { 0 };
	struct cp_thread_snap snap;
	struct user_regs_struct uregs;
	bool live = (flags & CP_CAPTURE_LIVE) && !(flags & CP_CAPTURE_STOP);
	struct cp_task_syscall sc_first;
	struct live_status first = { 0 };
	bool have_first = false;
	struct cp_task_stat st;
	const struct cp_map *m;
	uint8_t *buf = NULL;
	uint64_t t0, t1;
	struct stop_window win;
	size_t span = 0;
	long got = 0;
	int ret, err, detach_sig = 0, saved;

	if (pid <= 0 || tid <= 0 || !out)
		return -EINVAL;
	/*
	 * Also proves tid is a thread of pid: the task directory is per process. A live capture
	 * without the caller's stat learns the state from status, its first read.
	 */
	memset(&st, 0, sizeof(st));
	if (opts && opts->stat && opts->stat->tid == tid) {
		st = *opts->stat;
	} else if (!live) {
		ret = cp_proc_read_stat(pid, tid, &st);
		if (ret < 0)
			return ret;
	}
	if (st.state == 'Z' || st.state == 'X')
		return -ESRCH;
	if (!given) {
		ret = cp_maps_read(pid, &own);
		if (ret < 0)
			return ret;
	}

	/*
	 * A thread in uninterruptible sleep does not take the interrupt until the kernel wakes
	 * it, which may be never (a dead NFS server), and a stop request cannot be withdrawn
	 * without the thread stopping first. So do not try: its sp and pc in /proc are exact
	 * while it sleeps, and its stack does not change under us while it does.
	 */
	if (st.state == 'D' && (flags & CP_CAPTURE_STOP)) {
		ret = -EAGAIN;
		goto out_maps;
	}
	if (st.state == 'D' && !(flags & CP_CAPTURE_LIVE)) {
		struct cp_task_syscall sc;

		ret = cp_proc_read_syscall(pid, tid, &sc);
		if (ret == 0 && !sc.running && sc.sp) {
			m = stack_map(pid, given, &own, sc.sp);
			ret = capture_unstopped(pid, tid, &sc, m, max, out);
			if (ret == 0) {
				out->sc = sc;
				out->has_syscall = true;
			}
			goto out_maps;
		}
		if (ret == -ESRCH)
			goto out_maps;
		/* Running again by now, or unreadable: stop it like any other thread. */
	}
	/* Group-stopped or traced threads: the stop path knows how to leave them as they were. */
	if (live && st.state != 'T' && st.state != 't') {
		ret = capture_live(pid, tid, given, &own, max, &sc_first, &have_first, &first,
				   out);
		if (ret != -EAGAIN)
			goto out_maps;
	}

	/* On a CPU: one perf sample takes what a stop would, and the thread keeps running. */
	if (live && have_first && (sc_first.running || first.state == 'R')) {
		ret = cp_capture_by_sample(tid, max, SAMPLE_WAIT_MS, out);
		if (ret == 0) {
			/* The kernel copies on past the end of the stack where that is readable. */
			m = stack_map(pid, given, &own, out->stack.start);
			if (m && out->stack.len > m->end - out->stack.start) {
				out->stack.len = m->end - out->stack.start;
				out->stack.truncated = false;
			}
			out->sc = sc_first;
			out->has_syscall = true;
			out->has_state = true;
			out->state = first.state;
			memcpy(out->comm, first.comm, sizeof(out->comm));
			goto out_maps;
		}
		if (ret == -ENOMEM || ret == -ESRCH)
			goto out_maps;
		/* No perf here, or it went to sleep meanwhile: the stop finds it either way. */
	}

	/* Allocated before the stop: nothing but ptrace and one copy happens while stopped. */
	buf = malloc(max);
	if (!buf) {
		ret = -ENOMEM;
		goto out_maps;
	}

	memset(&snap, 0, sizeof(snap));
	snap.tid = tid;
	enter_stop_window(&win);
	t0 = cp_now_ns();
	/* No PTRACE_O_* options: no syscall, exec, clone or exit events, only the interrupt
	 * stop (and whatever stop was already on its way). */
	if (ptrace(PTRACE_SEIZE, tid, NULL, NULL) != 0) {
		ret = refine_seize_error(pid, tid, -errno);
		leave_stop_window(&win);
		goto out_buf;
	}
	if (ptrace(PTRACE_INTERRUPT, tid, NULL, NULL) != 0) {
		/* Fails only when the thread is already exiting: nothing to detach from, but
		 * its exit is reported to us now, and must be collected. */
		ret = -errno;
		reap_exited(tid);
		leave_stop_window(&win);
		goto out_buf;
	}
	ret = wait_for_stop(tid, &detach_sig);
	if (ret < 0) {
		/* Exited while we waited: the kernel has already unlinked it. */
		leave_stop_window(&win);
		goto out_buf;
	}

	if (ptrace(PTRACE_GETREGS, tid, NULL, &uregs) != 0) {
		ret = -errno;
	} else {
		regs_from_user(&uregs, &snap.regs);
		snap.stack.start = uregs.rsp;
		m = stack_map(pid, given, &own, uregs.rsp);
		span = stack_span(m, uregs.rsp, max, &snap.stack.truncated);
		if (span) {
			got = cp_mem_read(pid, uregs.rsp, buf, span);
			if (got > 0 && (size_t)got < span)
				snap.stack.truncated = true;
		}
		ret = 0;
	}

	/* Let it go at once, whatever happened above; keep the first error. */
	saved = errno;
	if (ptrace(PTRACE_DETACH, tid, NULL, (void *)(long)detach_sig) != 0) {
		err = -errno;
		/* ESRCH here: killed while stopped (SIGKILL needs no tracer's consent). */
		reap_exited(tid);
		if (ret == 0)
			ret = err;
	}
	errno = saved;
	t1 = cp_now_ns();
	leave_stop_window(&win);
	if (ret < 0)
		goto out_buf;

	/* Registers without a readable stack are still worth unwinding (live memory). */
	stack_finish(&snap.stack, buf, got);
	buf = NULL;
	snap.stopped = true;
	snap.stopped_ns = t1 - t0;
	snap.verified = true;
	if (have_first) {
		snap.sc = sc_first;
		snap.has_syscall = true;
		snap.has_state = true;
		snap.state = first.state;
		memcpy(snap.comm, first.comm, sizeof(snap.comm));
	}
	*out = snap;
	ret = 0;

out_buf:
	free(buf);
out_maps:
	cp_maps_release(&own);
	return ret;
}

void cp_thread_snap_release(struct cp_thread_snap *snap)
{
	if (!snap)
		return;
	free(snap->stack.data);
	snap->stack.data = NULL;
	snap->stack.len = 0;
}
