/* Parking a thread: one blocked in a restartable call, no allocator or loader frame, stopped. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <elf.h>

#include "capture.h"
#include "inject_internal.h"
#include "maps.h"
#include "mem.h"
#include "proc.h"
#include "symbolize.h"
#include "unwind.h"
#include "util.h"

/* The kernel's restart codes, as a stopped thread's rax shows them (not in userspace headers). */
#define K_ERESTARTSYS 512
#define K_ERESTARTNOINTR 513
#define K_ERESTARTNOHAND 514
#define K_ERESTART_RESTARTBLOCK 516
#define NR_RESTART_SYSCALL 219

/* Room the called code gets below the frame, at least (dlopen runs relocations, constructors). */
#define CALL_STACK_ROOM (64u << 10)
/* How much of the stack is copied for the safe-point walk. */
#define WALK_STACK_MAX (256u << 10)
/* The largest extended state cprof saves (AVX-512 and AMX fit). */
#define XSTATE_MAX (16u << 10)

/*
 * The registers the thread resumes with, as the kernel would have made them for a thread
 * resumed after a ptrace stop without a signal: an interrupted call issued again (rip back over
 * the two-byte syscall instruction), a restart-block call continued by restart_syscall. A call
 * that failed with EINTR only because of the interruption is issued again too (see
 * inject_parkable_syscall). orig_rax is -1 so that nothing is adjusted twice. fallback is what
 * the rt_sigframe holds: rt_sigreturn resets the restart block, so there a restart-block call
 * is issued again from the start (a sleep restarts its full duration, it does not fail).
 */
static void resume_regs(struct inject_park *pk, const struct user_regs_struct *r)
{
	long ret = (long)r->rax;

	pk->exact = *r;
	pk->exact.orig_rax = (unsigned long long)-1;
	if (ret == -K_ERESTARTSYS || ret == -K_ERESTARTNOINTR || ret == -K_ERESTARTNOHAND ||
	    ret == -EINTR || ret == -K_ERESTART_RESTARTBLOCK) {
		pk->exact.rip -= 2;
		pk->exact.rax = r->orig_rax;
		pk->fallback = pk->exact;
		/* Its arguments are still in the registers: restart_syscall changed only rax. */
		pk->fallback.rax = (unsigned long long)pk->nr;
		if (ret == -K_ERESTART_RESTARTBLOCK)
			pk->exact.rax = NR_RESTART_SYSCALL;
	} else {
		pk->fallback = pk->exact;
	}
}

/* Wait for tid's next stop; the status, or -ESRCH when it is gone. */
static int wait_stop(int tid, int *status)
{
	for (;;) {
		pid_t r = waitpid(tid, status, __WALL);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno == -ECHILD ? -ESRCH : -errno;
		if (WIFEXITED(*status) || WIFSIGNALED(*status))
			return -ESRCH;
		if (WIFSTOPPED(*status))
			return 0;
	}
}

/* Detach from a thread cprof has changed nothing in, delivering sig if it was caught. */
static void detach_untouched(int tid, int sig)
{
	ptrace(PTRACE_DETACH, tid, NULL, (void *)(long)sig);
}

bool inject_frames_unsafe(struct cp_inject *in, int pid, const struct cp_maps *maps,
			  const struct cp_unwind_result *ur, bool loader_only, char *buf, size_t size)
{
	for (size_t i = 0; i < ur->n; i++) {
		uint64_t pc = i ? ur->pc[i] - 1 : ur->pc[i];
		const struct cp_map *m = cp_maps_find(maps, pc);
		struct cp_sym_result sr;

		if (!loader_only && (ur->flags[i] & (CP_FRAME_SIGNAL | CP_FRAME_SIGTRAMP))) {
			snprintf(buf, size, "in a signal handler");
			return true;
		}
		if (!m) {
			if (loader_only)
				continue;
			snprintf(buf, size, "frame %zu at %#llx is in no mapping", i,
				 (unsigned long long)pc);
			return true;
		}
		if (loader_only ? inject_loader_module(m->path) : inject_unsafe_module(m->path)) {
			snprintf(buf, size, "in %s", cp_map_basename(m));
			return true;
		}
		if (!in->sym && !(in->sym = cp_sym_new()))
			return true;
		if (cp_sym_resolve(in->sym, pid, m, pc, &sr) < 0)
			continue;
		for (size_t j = 0; j < sr.n; j++) {
			const char *f = sr.frames[j].system_name ? sr.frames[j].system_name :
				sr.frames[j].function;
			bool bad = loader_only ?
				inject_loader_function(f) ||
				inject_loader_function(sr.frames[j].function) :
				inject_unsafe_function(f) ||
				inject_unsafe_function(sr.frames[j].function);

			if (bad) {
				snprintf(buf, size, "in %s", f);
				return true;
			}
		}
	}
	return false;
}

/* Why a stack is unsafe, into buf; false when it is safe. */
static bool stack_unsafe(struct cp_inject *in, int pid, const struct user_regs_struct *r,
			 char *buf, size_t size)
{
	struct cp_unwind_result *ur = NULL;
	struct cp_unwinder *uw = NULL;
	struct cp_stack stack = { 0 };
	struct cp_maps maps = { 0 };
	struct cp_regs regs;
	struct cp_mem mem;
	const struct cp_map *sm;
	bool unsafe = true;
	long got;

	snprintf(buf, size, "its stack could not be read");
	if (!in->sym && !(in->sym = cp_sym_new()))
		return true;
	if (cp_maps_read(pid, &maps) < 0)
		return true;
	cp_mem_open(&mem, pid);
	sm = cp_maps_find(&maps, r->rsp);
	ur = malloc(sizeof(*ur));
	if (!sm || !ur)
		goto out;
	stack.start = r->rsp;
	stack.len = sm->end - r->rsp < WALK_STACK_MAX ? sm->end - r->rsp : WALK_STACK_MAX;
	stack.data = malloc(stack.len ? stack.len : 1);
	if (!stack.data)
		goto out;
	got = cp_mem_read(&mem, stack.start, stack.data, stack.len);
	if (got <= 0)
		goto out;
	stack.len = (size_t)got;
	cp_capture_regs_from_user(r, &regs);
	uw = cp_unwind_new(pid, &maps, true);
	if (!uw)
		goto out;
	cp_unwind_set_mem(uw, &mem);
	memset(ur, 0, sizeof(*ur));
	if (cp_unwind(uw, &regs, &stack, ur) < 0 || ur->stop_reason < 0 || ur->truncated ||
	    ur->n == 0) {
		snprintf(buf, size, "its stack could not be walked to the end");
		goto out;
	}
	unsafe = inject_frames_unsafe(in, pid, &maps, ur, false, buf, size);
out:
	cp_unwind_free(uw);
	free(ur);
	free(stack.data);
	cp_mem_close(&mem);
	cp_maps_release(&maps);
	return unsafe;
}

/* A hex mask field of a status file ("SigPnd:"), 0 when absent. */
static uint64_t status_mask(const char *text, const char *key)
{
	const char *p = strstr(text, key);

	return p ? strtoull(p + strlen(key), NULL, 16) : 0;
}

/*
 * Whether a signal the thread does not block is pending for it or its process: one that
 * interrupted its call must end it as the kernel would (EINTR without SA_RESTART), so such a
 * thread is left alone.
 */
static bool signal_pending(int pid, int tid)
{
	char path[64], text[4096];
	size_t len;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/status", pid, tid);
	if (cp_read_file(path, text, sizeof(text), &len) < 0)
		return true;
	return ((status_mask(text, "\nSigPnd:") | status_mask(text, "\nShdPnd:")) &
		~status_mask(text, "\nSigBlk:")) != 0;
}

/*
 * Whether sp is on a real stack with room below it for the frame and the call: the main
 * thread's [stack], or an anonymous mapping with a guard page right below (a pthread stack),
 * with CALL_STACK_ROOM to spare. Not a stack in the heap or in a file (a coroutine's, say),
 * whose end cprof cannot know: what the call pushes could land on other data.
 */
static bool stack_room(int pid, uint64_t sp, char *buf, size_t size)
{
	struct cp_maps maps;
	const struct cp_map *m;
	bool ok = false;

	if (cp_maps_read(pid, &maps) < 0)
		return false;
	m = cp_maps_find(&maps, sp);
	if (!m || m->perms[1] != 'w') {
		snprintf(buf, size, "its stack pointer is in no writable mapping");
	} else if (strcmp(m->path, "[stack]") == 0) {
		ok = true;
	} else if (m->path[0] || m == maps.v || m[-1].end != m->start ||
		   strcmp(m[-1].perms, "---p") != 0) {
		snprintf(buf, size, "its stack is not a thread stack with a guard page");
	} else if (sp - m->start <= CALL_STACK_ROOM + XSTATE_MAX + 4096) {
		snprintf(buf, size, "too little stack left");
	} else {
		ok = true;
	}
	cp_maps_release(&maps);
	return ok;
}

/* Save what the thread's registers do not hold: its extended FPU state and signal mask. */
static int save_state(struct inject_park *pk)
{
	struct iovec iov;

	pk->xstate = calloc(1, XSTATE_MAX);
	if (!pk->xstate)
		return -ENOMEM;
	iov.iov_base = pk->xstate;
	iov.iov_len = XSTATE_MAX;
	if (ptrace(PTRACE_GETREGSET, pk->tid, (void *)NT_X86_XSTATE, &iov) < 0)
		return -errno;
	pk->xlen = iov.iov_len;
	if (ptrace(PTRACE_GETSIGMASK, pk->tid, (void *)sizeof(pk->mask), &pk->mask) < 0)
		return -errno;
	return 0;
}

/*
 * Try to park tid, expected blocked in call nr: stop it, check where it stopped, walk its
 * stack. 1 when parked (pk filled), 0 when it does not qualify (left as it was; reason in
 * buf), -errno on failure.
 */
static int try_park(struct cp_inject *in, int tid, long nr, long real_nr, struct inject_park *pk,
		    char *buf, size_t size)
{
	struct user_regs_struct r;
	int status, err;

	if (ptrace(PTRACE_SEIZE, tid, NULL, (void *)(long)PTRACE_O_TRACESYSGOOD) < 0) {
		err = -errno;
		snprintf(buf, size, "cannot be traced (%s)", strerror(errno));
		return err == -ESRCH ? 0 : err;
	}
	if (ptrace(PTRACE_INTERRUPT, tid, NULL, NULL) < 0 || wait_stop(tid, &status) < 0) {
		snprintf(buf, size, "ended");
		return 0;
	}
	if (status >> 16 != PTRACE_EVENT_STOP) {
		/* A signal came first: let it through, untouched. */
		detach_untouched(tid, WSTOPSIG(status));
		snprintf(buf, size, "a signal arrived");
		return 0;
	}
	if (ptrace(PTRACE_GETREGS, tid, NULL, &r) < 0) {
		detach_untouched(tid, 0);
		snprintf(buf, size, "registers unreadable");
		return 0;
	}
	if ((long)r.orig_rax != nr) {
		detach_untouched(tid, 0);
		snprintf(buf, size, "left its %s call", cp_syscall_name(nr));
		return 0;
	}
	if (signal_pending(in->pid, tid)) {
		/* It may be what ended the call: the kernel decides, as without cprof. */
		detach_untouched(tid, 0);
		snprintf(buf, size, "has a signal pending");
		return 0;
	}
	if (!stack_room(in->pid, r.rsp, buf, size)) {
		detach_untouched(tid, 0);
		return 0;
	}
	if (stack_unsafe(in, in->pid, &r, buf, size)) {
		detach_untouched(tid, 0);
		return 0;
	}
	memset(pk, 0, sizeof(*pk));
	pk->pid = in->pid;
	pk->tid = tid;
	pk->memfd = -1;
	pk->nr = real_nr;
	resume_regs(pk, &r);
	err = save_state(pk);
	if (err == 0) {
		char path[64];

		snprintf(path, sizeof(path), "/proc/%d/mem", in->pid);
		pk->memfd = open(path, O_RDWR | O_CLOEXEC);
		if (pk->memfd < 0)
			err = -errno;
	}
	if (err < 0) {
		free(pk->xstate);
		pk->xstate = NULL;
		if (pk->memfd >= 0)
			close(pk->memfd);
		detach_untouched(tid, 0);
		snprintf(buf, size, "its state could not be saved (%s)", strerror(-err));
		return err;
	}
	return 1;
}

/* The call this session left tid continuing in restart_syscall, or -1. */
static long restarted_call(const struct cp_inject *in, int tid)
{
	for (size_t i = 0; i < in->nrestarted; i++)
		if (in->restarted[i].tid == tid)
			return in->restarted[i].nr;
	return -1;
}

/*
 * Why tid cannot be parked now (into buf), or 0 with the call it is in (*nr, as /proc shows
 * it) and the call that is (*real_nr: not restart_syscall) when it might be.
 */
static int candidate(struct cp_inject *in, int tid, long *nr, long *real_nr, char *buf,
		     size_t size)
{
	int pid = in->pid;
	struct cp_task_syscall sc;
	struct cp_task_stat st;

	if (cp_proc_read_stat(pid, tid, &st) < 0 || cp_proc_read_syscall(pid, tid, &sc) < 0) {
		snprintf(buf, size, "ended");
		return -1;
	}
	if (st.state != 'S') {
		snprintf(buf, size, "in state %c", st.state);
		return -1;
	}
	if (sc.running || !sc.in_syscall) {
		snprintf(buf, size, "not in a system call");
		return -1;
	}
	*real_nr = sc.nr == NR_RESTART_SYSCALL ? restarted_call(in, tid) : sc.nr;
	if (!inject_parkable_syscall(*real_nr)) {
		snprintf(buf, size, "in %s, which might not restart", cp_syscall_name(sc.nr));
		return -1;
	}
	*nr = sc.nr;
	return 0;
}

/* One pass over the threads; 1 parked, 0 none qualified (reasons appended), -errno. */
static int park_pass(struct cp_inject *in, struct inject_park *pk, struct cp_strbuf *reasons)
{
	int *tids = NULL;
	size_t n = 0;
	int ret = 0;

	if (in->only_tid) {
		tids = malloc(sizeof(*tids));
		if (!tids)
			return -ENOMEM;
		tids[0] = in->only_tid;
		n = 1;
	} else {
		ret = cp_proc_list_tasks(in->pid, &tids, &n);
		if (ret < 0)
			return ret;
	}
	/*
	 * First the threads in calls that continue exactly, then those in calls that cprof must
	 * issue again from the start (an epoll_wait's timeout starts over): a thread of the second
	 * kind is tried only when no thread of the first qualifies.
	 */
	for (int sweep = 0; sweep < 2 && ret == 0; sweep++) {
		for (size_t i = 0; i < n && ret == 0; i++) {
			char buf[160];
			long nr, real_nr;
			bool tried = false;

			if (tids[i] <= 0)
				continue;
			if (candidate(in, tids[i], &nr, &real_nr, buf, sizeof(buf)) == 0) {
				if (sweep == 0 && inject_syscall_reissued(real_nr))
					continue;
				ret = try_park(in, tids[i], nr, real_nr, pk, buf, sizeof(buf));
				tried = true;
			}
			if (ret == 0 && reasons->len < 400)
				cp_strbuf_addf(reasons, "%sthread %d %s", reasons->len ? ", " : "",
					       tids[i], buf);
			if (ret == 0 && (sweep == 0 || tried))
				tids[i] = 0;
		}
	}
	free(tids);
	return ret;
}

int inject_park(struct cp_inject *in, struct inject_park *pk, char *why, size_t whylen)
{
	uint64_t start = cp_now_ns();
	uint64_t deadline = start + (uint64_t)in->timeout_ms * 1000000u;
	struct cp_strbuf reasons;
	int ret;

	cp_strbuf_init(&reasons);
	for (;;) {
		reasons.len = 0;
		ret = park_pass(in, pk, &reasons);
		if (ret != 0 || cp_now_ns() >= deadline)
			break;
		nanosleep(&(struct timespec){ 0, 10 * 1000 * 1000 }, NULL);
	}
	if (ret == 0) {
		cp_strbuf_addc(&reasons, '\0');
		ret = inject_why(why, whylen, -ETIMEDOUT,
				 "no thread at a safe point within %d ms: %s", in->timeout_ms,
				 reasons.buf ? reasons.buf : "no threads");
	} else if (ret > 0) {
		in->last_park_ns = cp_now_ns() - start;
		in->last_tid = pk->tid;
		ret = 0;
	} else {
		inject_why(why, whylen, ret, "parking a thread: %s", strerror(-ret));
	}
	cp_strbuf_release(&reasons);
	return ret;
}

/* Remember that tid continues its call nr through restart_syscall (see restarted_call). */
static void note_restarted(struct cp_inject *in, const struct inject_park *pk)
{
	size_t i;

	for (i = 0; i < in->nrestarted; i++)
		if (in->restarted[i].tid == pk->tid)
			break;
	if (pk->exact.rax != NR_RESTART_SYSCALL) {
		if (i < in->nrestarted)
			in->restarted[i] = in->restarted[--in->nrestarted];
		return;
	}
	if (i == in->nrestarted) {
		if (i == sizeof(in->restarted) / sizeof(in->restarted[0]))
			return;
		in->nrestarted++;
	}
	in->restarted[i].tid = pk->tid;
	in->restarted[i].nr = pk->nr;
}

int inject_unpark(struct cp_inject *in, struct inject_park *pk)
{
	struct iovec iov = { .iov_base = pk->xstate, .iov_len = pk->xlen };
	int err = 0;

	/*
	 * Mask first, registers last: until the registers are set the thread, should cprof die,
	 * still ends what it runs through the rt_sigframe, which restores all of it.
	 */
	if (pk->dirty && ptrace(PTRACE_SETREGSET, pk->tid, (void *)NT_X86_XSTATE, &iov) < 0)
		err = -errno;
	if (pk->masked && ptrace(PTRACE_SETSIGMASK, pk->tid, (void *)sizeof(pk->mask),
				 &pk->mask) < 0 && !err)
		err = -errno;
	if (ptrace(PTRACE_SETREGS, pk->tid, NULL, &pk->exact) < 0 && !err)
		err = -errno;
	else
		note_restarted(in, pk);
	if (ptrace(PTRACE_DETACH, pk->tid, NULL, NULL) < 0 && !err)
		err = -errno;
	free(pk->xstate);
	pk->xstate = NULL;
	if (pk->memfd >= 0)
		close(pk->memfd);
	pk->memfd = -1;
	return err;
}
