/* Wall and block sessions (threads timed off CPU from context switches) and threadcreate. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "capture.h"
#include "proc.h"
#include "session_internal.h"
#include "util.h"
#include "wait.h"

/* Innermost frames the wait kind is told from (the libc wrapper, the pthread call above it). */
#define KIND_FRAMES 16

int cp_session_node_kind(struct cp_session *s, uint32_t node)
{
	const char *names[KIND_FRAMES];
	enum cp_wait_kind kind;
	size_t n;

	if (node < s->node_kind_alloc && s->node_kind[node])
		return (enum cp_wait_kind)(s->node_kind[node] - 1);
	n = cp_profile_stack_functions(s->prof, node, names, KIND_FRAMES);
	kind = cp_wait_kind_of_stack(names, n);
	if (node >= s->node_kind_alloc) {
		size_t old = s->node_kind_alloc;

		if (cp_grow((void **)&s->node_kind, &s->node_kind_alloc, (size_t)node + 1,
			    sizeof(*s->node_kind)) < 0)
			return kind;
		memset(s->node_kind + old, 0, s->node_kind_alloc - old);
	}
	s->node_kind[node] = (uint8_t)(kind + 1);
	return kind;
}

/*
 * Add what thread t spent off CPU from t->off_since to end. block: one contention of that
 * many nanoseconds, unless it was preempted. wall: the whole sampling periods it covers (the
 * rest is carried to the thread's next time off CPU), as the samples cpu-clock would have
 * taken had the thread been running.
 */
static void charge(struct cp_session *s, struct cp_thread *t, uint64_t end)
{
	const char *kind = cp_wait_kind_name((enum cp_wait_kind)t->off_kind);
	uint64_t d = end > t->off_since ? end - t->off_since : 0;
	uint64_t period = 1000000000u / (uint64_t)s->opts.hz;
	int64_t v[2];

	t->off = false;
	if (s->opts.type == CP_SESSION_BLOCK) {
		if (t->off_kind == CP_WAIT_RUNNING)
			return;
		v[0] = 1;
		v[1] = (int64_t)d;
		if (cp_profile_add_stack_sample(s->prof, t->off_node, t->pid, t->tid, t->name, "wait",
						kind, v) == 0)
			s->stats.samples++;
		return;
	}
	t->wall_carry += d;
	if (t->wall_carry < period)
		return;
	v[0] = (int64_t)(t->wall_carry / period);
	v[1] = v[0] * (int64_t)period;
	t->wall_carry %= period;
	if (cp_profile_add_stack_sample(s->prof, t->off_node, t->pid, t->tid, t->name, "state",
					kind, v) == 0)
		s->stats.samples += (uint64_t)v[0];
}

/* The thread goes off CPU at smp's stack (the switch record that follows says whether it was
 * preempted). */
/* A thread went off CPU at since with smp's stack; its wait kind that stack's, or kind (>= 0). */
static void went_off(struct cp_session *s, const struct cp_sample *smp, bool dwarf, uint64_t since,
		     int kind)
{
	struct cp_thread *t;
	size_t n = cp_session_sample_stack(s, smp, dwarf, &t);
	uint32_t node;

	if (!t || cp_profile_stack(s->prof, s->locs, n, &node) < 0)
		return;
	t->off = true;
	t->off_node = node;
	t->off_since = since;
	t->off_kind = (uint8_t)(kind >= 0 ? kind : cp_session_node_kind(s, node));
}

/*
 * The stack of a clone/clone3 call into s->locs. glibc's wrappers are leaf assembly that end
 * their unwind information before the syscall instruction (the child's stack is not the
 * parent's), so the unwinder stops there: when it got no further than that one frame, go on
 * from the return address on top of the stack (the wrappers push nothing), as the caller
 * would have been unwound.
 */
static size_t clone_stack(struct cp_session *s, const struct cp_sample *smp, struct cp_thread **tp)
{
	size_t n = cp_session_sample_stack(s, smp, s->opts.dwarf, tp), more;
	struct cp_sample up;
	uint64_t first = s->locs[0];

	if (n != 1 || !s->opts.dwarf || !smp->user_regs || smp->stack.len < 16)
		return n;
	up = *smp;
	memcpy(&up.regs.r[CP_REG_RIP], smp->stack.data, 8);
	up.regs.r[CP_REG_RSP] += 8;
	up.stack.data += 8;
	up.stack.len -= 8;
	up.stack.start += 8;
	more = cp_session_sample_stack(s, &up, true, tp);
	if (more >= MAX_FRAMES)
		more = MAX_FRAMES - 1;
	memmove(s->locs + 1, s->locs, more * sizeof(*s->locs));
	s->locs[0] = first;
	return more + 1;
}

void cp_session_offcpu_sample(struct cp_session *s, const struct cp_sample *smp)
{
	struct cp_thread *t;
	uint32_t node;
	size_t n;
	int64_t v[2];

	if (s->opts.type == CP_SESSION_MUTEX) {
		cp_session_mutex_sample(s, smp);
		return;
	}
	if (s->opts.type == CP_SESSION_THREADCREATE) {
		/* A clone/clone3 call: one thread (or process) created at this stack. */
		n = clone_stack(s, smp, &t);
		v[0] = 1;
		if (cp_profile_stack(s->prof, s->locs, n, &node) == 0 &&
		    cp_profile_add_stack_sample(s->prof, node, smp->pid, smp->tid,
						t ? t->name : NULL, NULL, NULL, v) == 0)
			s->stats.samples++;
		return;
	}
	if (smp->period == 1) {
		went_off(s, smp, s->opts.dwarf, smp->time, -1);
		return;
	}
	if (s->opts.type != CP_SESSION_WALL)
		return;
	/* wall: a cpu-clock tick of a running thread. */
	n = cp_session_sample_stack(s, smp, s->opts.dwarf, &t);
	if (cp_profile_stack(s->prof, s->locs, n, &node) < 0)
		return;
	v[0] = 1;
	v[1] = 1000000000 / s->opts.hz;
	if (cp_profile_add_stack_sample(s->prof, node, smp->pid, smp->tid, t ? t->name : NULL,
					"state", "running", v) == 0)
		s->stats.samples++;
}

void cp_session_offcpu_switch(void *ctx, int pid, int tid, uint64_t time, bool out, bool preempt)
{
	struct cp_session *s = ctx;
	struct cp_thread *t = cp_procs_thread_find(&s->procs, tid);

	(void)pid;
	if (!t || !t->off)
		return;
	if (out) {
		/* Still runnable: waiting for a CPU, not blocked. */
		if (preempt)
			t->off_kind = CP_WAIT_RUNNING;
		return;
	}
	if (s->disabled && time > s->end_mono)
		time = s->end_mono;
	charge(s, t, time);
}

void cp_session_offcpu_close(struct cp_session *s)
{
	uint64_t end = s->disabled ? s->end_mono : cp_now_ns();

	if (s->offcpu_closed || (s->opts.type != CP_SESSION_WALL && s->opts.type != CP_SESSION_BLOCK))
		return;
	s->offcpu_closed = true;
	for (size_t i = 0; i < s->procs.nthreads; i++)
		if (s->procs.thread[i].off)
			charge(s, &s->procs.thread[i], end);
}

/*
 * Seed the threads of tids[0..n) that the live capture took (blocked now; stopped[i]: by
 * SIGSTOP or a debugger, which is their wait then, whatever call they sit in).
 */
static void seed_batch(struct cp_session *s, int pid, const int *tids, const bool *stopped,
		       size_t n)
{
	struct cp_thread_snap snap[CP_CAPTURE_MANY_MAX];
	int ret[CP_CAPTURE_MANY_MAX];
	struct cp_capture_opts co = { .stack_max = s->opts.stack_size ? s->opts.stack_size :
									 CP_SAMPLER_STACK_DEFAULT,
				      .flags = CP_CAPTURE_LIVE | CP_CAPTURE_STOPPED };

	memset(snap, 0, sizeof(snap));
	if (cp_capture_live_many(pid, tids, n, &co, snap, ret) < 0)
		return;
	for (size_t i = 0; i < n; i++) {
		struct cp_sample smp;

		if (ret[i] < 0)
			continue;
		memset(&smp, 0, sizeof(smp));
		smp.pid = pid;
		smp.tid = tids[i];
		smp.regs = snap[i].regs;
		smp.stack = snap[i].stack;
		smp.user_regs = true;
		smp.ip = snap[i].regs.r[CP_REG_RIP];
		/* Charged from the start: the seeds come before any record is read. */
		went_off(s, &smp, true, s->start_mono, stopped[i] ? CP_WAIT_STOPPED : -1);
		cp_thread_snap_release(&snap[i]);
	}
}

void cp_session_offcpu_seed(struct cp_session *s)
{
	for (size_t i = 0; i < s->opts.npids; i++) {
		int *tids = NULL, blocked[CP_CAPTURE_MANY_MAX];
		bool stopped[CP_CAPTURE_MANY_MAX];
		size_t n = 0, nb = 0;

		if (cp_proc_list_tasks(s->pids[i], &tids, &n) < 0)
			continue;
		for (size_t j = 0; j < n; j++) {
			struct cp_task_stat st;

			/* Off CPU: asleep, or stopped (SIGSTOP, a debugger) for the whole window. */
			if (cp_proc_read_stat(s->pids[i], tids[j], &st) < 0 ||
			    !strchr("SDTt", st.state))
				continue;
			stopped[nb] = st.state == 'T' || st.state == 't';
			blocked[nb++] = tids[j];
			if (nb == CP_CAPTURE_MANY_MAX) {
				seed_batch(s, s->pids[i], blocked, stopped, nb);
				nb = 0;
			}
		}
		if (nb)
			seed_batch(s, s->pids[i], blocked, stopped, nb);
		free(tids);
	}
}
