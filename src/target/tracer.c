/* Following a command's process tree with ptrace and stopping each exit_group (record --leaks). */
#include <dirent.h>
#include <errno.h>
#include <sched.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#include "capture_impl.h"
#include "tracer.h"
#include "util.h"

#ifndef PTRACE_EVENT_STOP
#define PTRACE_EVENT_STOP 128
#endif
#ifndef __WALL
#define __WALL 0x40000000
#endif

/* A thread of the tree, and what created it. */
struct tthread {
	int tid;
	int creator;			/* 0: not seen being created */
	struct cp_thread_snap snap;	/* the creator's registers and stack at clone() */
	bool has_snap;
};

/* A process of the tree and the fds it started with. */
struct tproc {
	int pid;
	struct cp_fd_entry *fds;
	size_t nfds;
	bool has_fds;
};

struct cp_tracer {
	int root;
	struct tthread *threads;
	size_t nthreads, threads_alloc;
	struct tproc *procs;
	size_t nprocs, procs_alloc;
};

int cp_tracer_child_prepare(void)
{
	struct sock_filter code[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_exit_group, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRACE),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = CP_ARRAY_SIZE(code), .filter = code };

	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0)
		return 0;
	if (errno != EACCES)
		return -errno;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		return -errno;
	return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0 ? 0 : -errno;
}

static int cmp_fd(const void *a, const void *b)
{
	const struct cp_fd_entry *x = a, *y = b;

	return (x->fd > y->fd) - (x->fd < y->fd);
}

void cp_fd_entries_free(struct cp_fd_entry *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i].link);
	free(v);
}

int cp_fd_entries_read(int pid, struct cp_fd_entry **out, size_t *nout)
{
	struct cp_fd_entry *v = NULL;
	size_t n = 0, alloc = 0;
	struct dirent *de;
	char path[64], link[512];
	DIR *dir;

	snprintf(path, sizeof(path), "/proc/%d/fd", pid);
	dir = opendir(path);
	if (!dir)
		return -errno;
	while ((de = readdir(dir))) {
		long fd;
		ssize_t len;

		if (cp_parse_long(de->d_name, 0, 1 << 30, &fd) < 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/fd/%ld", pid, fd);
		len = readlink(path, link, sizeof(link) - 1);
		if (len < 0)
			continue;	/* closed meanwhile */
		link[len] = '\0';
		if (cp_grow((void **)&v, &alloc, n + 1, sizeof(*v)) < 0 || !(v[n].link = strdup(link))) {
			closedir(dir);
			cp_fd_entries_free(v, n);
			return -ENOMEM;
		}
		v[n++].fd = (int)fd;
	}
	closedir(dir);
	if (n)
		qsort(v, n, sizeof(*v), cmp_fd);
	*out = v;
	*nout = n;
	return 0;
}

static struct tthread *find_thread(const struct cp_tracer *t, int tid)
{
	for (size_t i = 0; i < t->nthreads; i++)
		if (t->threads[i].tid == tid)
			return &t->threads[i];
	return NULL;
}

static struct tproc *find_proc(const struct cp_tracer *t, int pid)
{
	for (size_t i = 0; i < t->nprocs; i++)
		if (t->procs[i].pid == pid)
			return &t->procs[i];
	return NULL;
}

static struct tthread *add_thread(struct cp_tracer *t, int tid)
{
	struct tthread *th = find_thread(t, tid);

	if (th)
		return th;
	if (cp_grow((void **)&t->threads, &t->threads_alloc, t->nthreads + 1,
		    sizeof(*t->threads)) < 0)
		return NULL;
	th = &t->threads[t->nthreads++];
	memset(th, 0, sizeof(*th));
	th->tid = tid;
	return th;
}

static void forget_thread(struct cp_tracer *t, int tid)
{
	struct tthread *th = find_thread(t, tid);

	if (!th)
		return;
	if (th->has_snap)
		cp_thread_snap_release(&th->snap);
	*th = t->threads[--t->nthreads];
}

static void forget_proc(struct cp_tracer *t, int pid)
{
	struct tproc *p = find_proc(t, pid);

	if (!p)
		return;
	cp_fd_entries_free(p->fds, p->nfds);
	*p = t->procs[--t->nprocs];
}

/* Record process pid and the fds it has now, as it starts. */
static void start_proc(struct cp_tracer *t, int pid)
{
	struct tproc *p = find_proc(t, pid);

	if (!p) {
		if (cp_grow((void **)&t->procs, &t->procs_alloc, t->nprocs + 1,
			    sizeof(*t->procs)) < 0)
			return;
		p = &t->procs[t->nprocs++];
		memset(p, 0, sizeof(*p));
		p->pid = pid;
	}
	cp_fd_entries_free(p->fds, p->nfds);
	p->fds = NULL;
	p->nfds = 0;
	p->has_fds = cp_fd_entries_read(pid, &p->fds, &p->nfds) == 0;
}

/* What one read of a creator stopped at its clone event brings: code, flags, stack. */
struct clone_look {
	uint8_t code[3];	/* at the pc */
	uint64_t flags;		/* clone3's clone_args.flags */
	uint8_t *stack;		/* CP_TRACER_CREATION_STACK bytes from sp */
	long got;		/* bytes of stack read */
};

/*
 * One process_vm_readv for all of it: the code at the pc, clone3's flags, and the stack from
 * sp in pieces of a page (the read stops at the first piece it cannot read).
 */
static void look_at_clone(int tid, const struct user_regs_struct *u, struct clone_look *cl)
{
	struct iovec local[3], remote[CP_TRACER_CREATION_STACK / 4096 + 3];
	size_t n = 0, left = CP_TRACER_CREATION_STACK;
	bool clone3 = u->orig_rax == SYS_clone3;
	uint64_t at;
	long got;

	local[0] = (struct iovec){ cl->code, sizeof(cl->code) };
	remote[n++] = (struct iovec){ (void *)(uintptr_t)u->rip, sizeof(cl->code) };
	/* clone(): flags in rdi; clone3(): a pointer to clone_args, flags first. */
	if (clone3) {
		local[1] = (struct iovec){ &cl->flags, sizeof(cl->flags) };
		remote[n++] = (struct iovec){ (void *)(uintptr_t)u->rdi, sizeof(cl->flags) };
	} else {
		local[1] = (struct iovec){ &cl->flags, 0 };
		cl->flags = u->rdi;
	}
	for (at = u->rsp; left && n < CP_ARRAY_SIZE(remote); n++) {
		size_t len = 4096 - (at & 4095);

		if (len > left)
			len = left;
		remote[n] = (struct iovec){ (void *)(uintptr_t)at, len };
		at += len;
		left -= len;
	}
	local[2] = (struct iovec){ cl->stack, CP_TRACER_CREATION_STACK - left };
	got = process_vm_readv(tid, local, 3, remote, n, 0);
	got -= (long)sizeof(cl->code) + (clone3 ? (long)sizeof(cl->flags) : 0);
	cl->got = got > 0 ? got : 0;
	if (got < 0)
		memset(cl->code, 0, sizeof(cl->code));
}

/*
 * glibc's clone() and clone3() end their unwind information before the system call (the
 * child's frame would be wrong), so a thread stopped right after it cannot be unwound from
 * there. Their parent path is `syscall; test %rax,%rax; jl ...; jz ...; ret` with nothing
 * pushed: when the code at the pc is that test, take the ret's step (pc from [rsp], rsp + 8),
 * which leaves the creator in the caller of clone, where unwind information exists again.
 */
static void step_out_of_clone(struct user_regs_struct *u, struct clone_look *cl)
{
	uint64_t ret;

	if (cl->code[0] != 0x48 || cl->code[1] != 0x85 || cl->code[2] != 0xc0 || cl->got < 8)
		return;
	memcpy(&ret, cl->stack, sizeof(ret));
	memmove(cl->stack, cl->stack + 8, (size_t)cl->got - 8);
	cl->got -= 8;
	u->rip = ret;
	u->rsp += 8;
	u->rax = 0;
}

/*
 * tid stopped at a clone event that made thread or process child: a thread gets its
 * creator's registers and the top of its stack (unwound only if it leaks); a process, the
 * fds it starts with.
 */
static void on_clone(struct cp_tracer *t, int tid, int child)
{
	struct user_regs_struct u;
	struct clone_look cl = { .stack = malloc(CP_TRACER_CREATION_STACK) };
	struct tthread *th;

	if (!cl.stack || ptrace(PTRACE_GETREGS, tid, NULL, &u) != 0) {
		free(cl.stack);
		add_thread(t, child);
		return;
	}
	look_at_clone(tid, &u, &cl);
	if (!(cl.flags & CLONE_THREAD)) {
		free(cl.stack);
		add_thread(t, child);
		/* Not run yet: its fds are the copy of its parent's it starts with. */
		start_proc(t, child);
		return;
	}
	step_out_of_clone(&u, &cl);
	th = add_thread(t, child);
	if (!th || th->has_snap) {
		free(cl.stack);
		return;
	}
	memset(&th->snap, 0, sizeof(th->snap));
	th->snap.tid = tid;
	cp_capture_regs_from_user(&u, &th->snap.regs);
	th->snap.stack.start = u.rsp;
	th->snap.stack.truncated = true;
	th->snap.stopped = true;
	th->snap.verified = true;
	cp_capture_stack_finish(&th->snap.stack, cl.stack, cl.got);
	th->has_snap = true;
	th->creator = tid;
}

int cp_tracer_new(int root, struct cp_tracer **out)
{
	long opts = PTRACE_O_TRACECLONE | PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK |
		    PTRACE_O_TRACEEXEC | PTRACE_O_TRACESECCOMP | PTRACE_O_EXITKILL;
	struct cp_tracer *t = calloc(1, sizeof(*t));

	if (!t)
		return -ENOMEM;
	t->root = root;
	if (ptrace(PTRACE_SEIZE, root, NULL, (void *)opts) != 0) {
		int err = -errno;

		free(t);
		return err;
	}
	if (!add_thread(t, root)) {
		cp_tracer_free(t);
		return -ENOMEM;
	}
	/* Its fds until its exec replaces them: the start of a root that never execs. */
	start_proc(t, root);
	*out = t;
	return 0;
}

/* The process tid belongs to (its Tgid), or tid itself when that cannot be read. */
static int tgid_of(int tid)
{
	char path[64], buf[1024], *p;

	snprintf(path, sizeof(path), "/proc/%d/status", tid);
	if (cp_read_file(path, buf, sizeof(buf), NULL) < 0)
		return tid;
	p = strstr(buf, "\nTgid:");
	return p ? atoi(p + 6) : tid;
}

/* A clone, fork or vfork by tid: remember the new thread's creator, or the new process. */
static void on_new_task(struct cp_tracer *t, int tid, int event)
{
	unsigned long msg = 0;

	if (ptrace(PTRACE_GETEVENTMSG, tid, NULL, &msg) != 0)
		return;
	if (event == PTRACE_EVENT_CLONE) {
		on_clone(t, tid, (int)msg);
		return;
	}
	add_thread(t, (int)msg);
	/* Not run yet: its fds are the copy of its parent's it starts with. */
	start_proc(t, (int)msg);
}

/* A thread reaped: forget it; the root's end is an event. 1 with ev, else 0. */
static int on_gone(struct cp_tracer *t, int tid, int status, struct cp_trace_event *ev)
{
	forget_thread(t, tid);
	forget_proc(t, tid);
	if (tid != t->root)
		return 0;
	*ev = (struct cp_trace_event){ .kind = CP_TRACE_ROOT_GONE, .pid = tid, .tid = tid,
				       .status = status };
	return 1;
}

/* A stop of tid: handle it and let it go, or report it (1 with ev). */
static int on_stop(struct cp_tracer *t, int tid, int status, struct cp_trace_event *ev)
{
	int sig = WSTOPSIG(status), event = (unsigned int)status >> 16;
	struct user_regs_struct u;

	switch (event) {
	case PTRACE_EVENT_SECCOMP:
		if (ptrace(PTRACE_GETREGS, tid, NULL, &u) != 0)
			break;
		*ev = (struct cp_trace_event){ .kind = CP_TRACE_EXITING, .pid = tgid_of(tid),
					       .tid = tid, .code = (int)u.rdi };
		return 1;
	case PTRACE_EVENT_CLONE:
	case PTRACE_EVENT_FORK:
	case PTRACE_EVENT_VFORK:
		on_new_task(t, tid, event);
		break;
	case PTRACE_EVENT_EXEC:
		/* The process starts anew: its other threads are gone, its fds are its start. */
		start_proc(t, tid);
		break;
	case PTRACE_EVENT_STOP:
		if (sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU) {
			/* A group stop: keep it stopped, as it would be untraced. */
			ptrace(PTRACE_LISTEN, tid, NULL, NULL);
			return 0;
		}
		/* The first stop of a new thread or process. */
		add_thread(t, tid);
		break;
	default:
		/* A signal on its way: deliver it. */
		ptrace(PTRACE_CONT, tid, NULL, (void *)(long)sig);
		return 0;
	}
	ptrace(PTRACE_CONT, tid, NULL, NULL);
	return 0;
}

int cp_tracer_next(struct cp_tracer *t, struct cp_trace_event *ev)
{
	for (;;) {
		int status, tid = waitpid(-1, &status, __WALL | WNOHANG);

		if (tid == 0)
			return 0;
		if (tid < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (WIFEXITED(status) || WIFSIGNALED(status)) {
			if (on_gone(t, tid, status, ev))
				return 1;
		} else if (WIFSTOPPED(status) && on_stop(t, tid, status, ev)) {
			return 1;
		}
	}
}

void cp_tracer_resume(struct cp_tracer *t, const struct cp_trace_event *ev)
{
	(void)t;
	if (ev->kind == CP_TRACE_EXITING)
		ptrace(PTRACE_CONT, ev->tid, NULL, NULL);
}

const struct cp_thread_snap *cp_tracer_creation(const struct cp_tracer *t, int tid,
						int *creator)
{
	const struct tthread *th = find_thread(t, tid);

	if (!th || !th->has_snap)
		return NULL;
	*creator = th->creator;
	return &th->snap;
}

bool cp_tracer_start_fds(const struct cp_tracer *t, int pid, const struct cp_fd_entry **fds,
			 size_t *n)
{
	const struct tproc *p = find_proc(t, pid);

	if (!p || !p->has_fds)
		return false;
	*fds = p->fds;
	*n = p->nfds;
	return true;
}

size_t cp_tracer_processes(const struct cp_tracer *t, int *out, size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i < t->nprocs && n < max; i++)
		out[n++] = t->procs[i].pid;
	return n;
}

void cp_tracer_free(struct cp_tracer *t)
{
	if (!t)
		return;
	while (t->nthreads)
		forget_thread(t, t->threads[0].tid);
	while (t->nprocs)
		forget_proc(t, t->procs[0].pid);
	free(t->threads);
	free(t->procs);
	free(t);
}
