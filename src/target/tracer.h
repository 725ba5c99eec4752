/*
 * Following a command's process tree with ptrace until each process exits, for `record
 * --leaks`: every process and thread of the tree is traced (clone, fork, vfork and exec
 * events), and a seccomp filter installed before the command's exec makes exit_group() stop
 * at its entry, while every other thread of the process still runs, has its stack and waits
 * where it waited. Only the tracer's own child can be followed this way (the filter must be
 * in place before the exec), and the tree must not outlive the tracer: a process that keeps
 * the filter without its tracer has every exit_group() fail with ENOSYS, so the tree is
 * traced with PTRACE_O_EXITKILL.
 */
#ifndef CP_TRACER_H
#define CP_TRACER_H

#include <stdbool.h>
#include <stddef.h>

#include "capture.h"

/* Bytes of the creating thread's stack kept from each clone() of a thread. */
#define CP_TRACER_CREATION_STACK 16384

struct cp_tracer;

/* A file descriptor as /proc/PID/fd showed it. */
struct cp_fd_entry {
	int fd;
	char *link;		/* owned; "pipe:[77]", "socket:[88]", a path */
};

enum cp_trace_kind {
	CP_TRACE_EXITING = 1,	/* tid of process pid stopped entering exit_group(code) */
	CP_TRACE_ROOT_GONE,	/* the command (the root) was reaped: status as waitpid gives */
};

struct cp_trace_event {
	enum cp_trace_kind kind;
	int pid;
	int tid;
	int code;		/* CP_TRACE_EXITING: exit_group's argument */
	int status;		/* CP_TRACE_ROOT_GONE: the wait status */
};

/*
 * In the child, right before its exec: make exit_group() stop for the tracer (a seccomp
 * filter that traces exit_group and allows everything else). Without CAP_SYS_ADMIN the
 * filter needs no_new_privs, which is set then (a traced exec gains no privileges anyway).
 * 0 or -errno. The child must then leave by _exit through SYS_exit, never exit_group,
 * until the tracer has attached.
 */
int cp_tracer_child_prepare(void);

/*
 * Trace root (the caller's child, not yet exec'd) and, from then on, every thread and
 * process it creates. 0 or -errno.
 */
int cp_tracer_new(int root, struct cp_tracer **out);
/*
 * Handle every stop and exit pending (without blocking): new threads and processes are
 * recorded and let go, signals passed on, group stops kept. Returns 1 with *ev filled when a
 * process stopped entering exit_group (it stays stopped until cp_tracer_resume) or the root
 * was reaped; 0 when nothing is pending; -errno (-ECHILD: nothing left to trace).
 */
int cp_tracer_next(struct cp_tracer *t, struct cp_trace_event *ev);
/* Let the thread of a CP_TRACE_EXITING event go on with its exit. */
void cp_tracer_resume(struct cp_tracer *t, const struct cp_trace_event *ev);
/*
 * The registers and top of stack of the thread that created thread tid, copied when it
 * called clone(); *creator its tid. NULL when tid was not seen being created.
 */
const struct cp_thread_snap *cp_tracer_creation(const struct cp_tracer *t, int tid,
						int *creator);
/*
 * The fds process pid had when it started (its exec, or its fork). false when unknown;
 * otherwise *fds (borrowed, sorted by fd) and *n.
 */
bool cp_tracer_start_fds(const struct cp_tracer *t, int pid, const struct cp_fd_entry **fds,
			 size_t *n);
/* The processes still traced (pids), into out (room for max). Returns how many. */
size_t cp_tracer_processes(const struct cp_tracer *t, int *out, size_t max);
/*
 * Forget the tree's state. Tracees still alive stay traced by this process and, through
 * PTRACE_O_EXITKILL, are killed when it exits: the filter would break their exit otherwise.
 */
void cp_tracer_free(struct cp_tracer *t);

/* The fds of pid now, sorted by fd (caller frees with cp_fd_entries_free). 0 or -errno. */
int cp_fd_entries_read(int pid, struct cp_fd_entry **out, size_t *n);
void cp_fd_entries_free(struct cp_fd_entry *v, size_t n);

#endif
