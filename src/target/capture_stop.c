/* The stop backend: PTRACE_SEIZE + PTRACE_INTERRUPT, registers and stack, detach at once. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>

#include "capture_impl.h"
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

void cp_capture_regs_from_user(const struct user_regs_struct *u, struct cp_regs *r)
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

/* Every thread but one that another process traces (a seize would fail: one tracer only). */
static bool stop_applies(const struct cp_capture_req *req)
{
	return !(req->have_first && req->first.tracer);
}

/*
 * Stop the thread, copy its registers and stack, let it go. The last backend: every thread
 * can be stopped, except one in uninterruptible sleep when CP_CAPTURE_STOP asks for a stop
 * (-EAGAIN, see cp_capture_thread).
 */
static int stop_capture(struct cp_capture_req *req, struct cp_thread_snap *out)
{
	struct cp_thread_snap snap;
	struct user_regs_struct uregs;
	const struct cp_map *m;
	struct stop_window win;
	uint8_t *buf;
	uint64_t t0, t1;
	size_t span;
	long got = 0;
	int tid = req->tid, ret, err, detach_sig = 0, saved;

	/*
	 * A thread in uninterruptible sleep does not take the interrupt until the kernel wakes
	 * it, which may be never (a dead NFS server), and a stop request cannot be withdrawn
	 * without the thread stopping first. So do not try.
	 */
	if (req->st.state == 'D' && (req->flags & CP_CAPTURE_STOP))
		return -EAGAIN;
	/* Allocated before the stop: nothing but ptrace and one copy happens while stopped. */
	buf = malloc(req->max);
	if (!buf)
		return -ENOMEM;

	memset(&snap, 0, sizeof(snap));
	snap.tid = tid;
	enter_stop_window(&win);
	t0 = cp_now_ns();
	/* No PTRACE_O_* options: no syscall, exec, clone or exit events, only the interrupt
	 * stop (and whatever stop was already on its way). */
	if (ptrace(PTRACE_SEIZE, tid, NULL, NULL) != 0) {
		ret = refine_seize_error(req->pid, tid, -errno);
		leave_stop_window(&win);
		goto out;
	}
	if (ptrace(PTRACE_INTERRUPT, tid, NULL, NULL) != 0) {
		/* Fails only when the thread is already exiting: nothing to detach from, but
		 * its exit is reported to us now, and must be collected. */
		ret = -errno;
		reap_exited(tid);
		leave_stop_window(&win);
		goto out;
	}
	ret = wait_for_stop(tid, &detach_sig);
	if (ret < 0) {
		/* Exited while we waited: the kernel has already unlinked it. */
		leave_stop_window(&win);
		goto out;
	}

	if (ptrace(PTRACE_GETREGS, tid, NULL, &uregs) != 0) {
		ret = -errno;
	} else {
		cp_capture_regs_from_user(&uregs, &snap.regs);
		snap.stack.start = uregs.rsp;
		m = cp_capture_stack_map(req->pid, req->given, req->own, uregs.rsp);
		span = cp_capture_stack_span(m, uregs.rsp, req->max, &snap.stack.truncated);
		if (span) {
			got = cp_mem_read(req->mem, uregs.rsp, buf, span);
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
		goto out;

	/* Registers without a readable stack are still worth unwinding (live memory). */
	cp_capture_stack_finish(&snap.stack, buf, got);
	buf = NULL;
	snap.stopped = true;
	snap.stopped_ns = t1 - t0;
	snap.verified = true;
	if (req->have_first) {
		snap.sc = req->sc_first;
		snap.has_syscall = true;
		snap.has_state = true;
		snap.state = req->first.state;
		memcpy(snap.comm, req->first.comm, sizeof(snap.comm));
	}
	*out = snap;
out:
	free(buf);
	return ret;
}

const struct cp_capture_backend cp_capture_backend_stop = {
	.name = "stop",
	.applies = stop_applies,
	.capture = stop_capture,
};
