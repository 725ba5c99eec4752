/* Mutex sessions: futex lock waits, charged as Go charges them, to the stack that released. */
#include <errno.h>
#include <linux/futex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "session_internal.h"
#include "tracefs.h"
#include "util.h"
#include "wait.h"

/* Lock words remembered with their last wake: a direct-mapped table (a collision forgets). */
#define WAKES 4096u

/* The last FUTEX_WAKE on a lock word: who made it, where and when. */
struct cp_futex_wake {
	uint64_t uaddr;		/* 0 = empty */
	uint64_t time;
	uint32_t node;		/* the waker's stack */
	int pid;
	int tid;
};

/* Offsets in the tracepoints' records (their format files). */
#define RAW_TYPE 0		/* u16 common_type: the tracepoint id */
#define RAW_UADDR 16		/* sys_enter_futex: u32 *uaddr */
#define RAW_OP 24		/* sys_enter_futex: int op (8 bytes) */
#define RAW_RET 16		/* sys_exit_futex: long ret */

int cp_session_mutex_init(struct cp_session *s, struct cp_sampler_opts *so)
{
	s->futex_enter = cp_tracefs_event_id("syscalls", "sys_enter_futex");
	s->futex_exit = cp_tracefs_event_id("syscalls", "sys_exit_futex");
	if (s->futex_enter == -EACCES || s->futex_enter == -EPERM)
		return (int)s->futex_enter;	/* tracefs is root's */
	if (s->futex_enter < 0 || s->futex_exit < 0)
		return -EOPNOTSUPP;
	s->wakes = calloc(WAKES, sizeof(*s->wakes));
	if (!s->wakes)
		return -ENOMEM;
	so->tracepoints[0] = s->futex_enter;
	so->tracepoints[1] = s->futex_exit;
	so->ntracepoints = 2;
	so->raw = true;
	return 0;
}

static struct cp_futex_wake *wake_slot(struct cp_session *s, uint64_t uaddr)
{
	return &s->wakes[cp_hash_mix(uaddr, 3) & (WAKES - 1)];
}

static uint64_t raw_u64(const struct cp_sample *smp, size_t off)
{
	uint64_t v = 0;

	if (smp->raw_size >= off + 8)
		memcpy(&v, smp->raw + off, 8);
	return v;
}

/* A futex call: a wait on a lock (the thread now waits) or a wake (remembered per word). */
static void futex_enter(struct cp_session *s, const struct cp_sample *smp)
{
	uint64_t uaddr = raw_u64(smp, RAW_UADDR);
	int cmd = (int)raw_u64(smp, RAW_OP) & FUTEX_CMD_MASK;
	bool wait = cmd == FUTEX_WAIT || cmd == FUTEX_WAIT_BITSET;
	bool wake = cmd == FUTEX_WAKE || cmd == FUTEX_WAKE_BITSET;
	struct cp_thread *t;
	uint32_t node;
	size_t n;
	int kind;

	if (!wait && !wake)
		return;
	n = cp_session_sample_stack(s, smp, s->opts.dwarf, &t);
	if (!t || cp_profile_stack(s->prof, s->locs, n, &node) < 0)
		return;
	if (wake) {
		*wake_slot(s, uaddr) = (struct cp_futex_wake){ uaddr, smp->time, node, smp->pid,
							       smp->tid };
		return;
	}
	/* Only lock waits: a condvar, semaphore or join wait is not contention. */
	kind = cp_session_node_kind(s, node);
	t->off = kind == CP_WAIT_MUTEX || kind == CP_WAIT_RWLOCK;
	t->off_node = node;
	t->off_since = smp->time;
	t->off_futex = uaddr;
	t->off_kind = (uint8_t)kind;
}

/* The futex call returned: a lock wait that was woken is charged to the wake's stack. */
static void futex_exit(struct cp_session *s, const struct cp_sample *smp)
{
	struct cp_thread *t = cp_procs_thread_find(&s->procs, smp->tid), *holder;
	const struct cp_futex_wake *w;
	char waiter[CP_COMM_LEN];
	int64_t v[2];

	if (!t || !t->off)
		return;
	t->off = false;
	if ((int64_t)raw_u64(smp, RAW_RET) != 0)
		return;		/* not woken: the word had changed, a timeout, a signal */
	w = wake_slot(s, t->off_futex);
	if (w->uaddr != t->off_futex || w->time < t->off_since || w->time > smp->time) {
		s->stats.unmatched++;
		return;
	}
	v[0] = 1;
	v[1] = (int64_t)(smp->time - t->off_since);
	snprintf(waiter, sizeof(waiter), "%s", t->name);
	if (s->opts.waiters) {
		if (cp_profile_add_stack_sample(s->prof, t->off_node, t->pid, t->tid, t->name,
						"waiter", waiter, v) == 0)
			s->stats.samples++;
		return;
	}
	holder = cp_procs_thread_find(&s->procs, w->tid);
	if (cp_profile_add_stack_sample(s->prof, w->node, w->pid, w->tid,
					holder ? holder->name : NULL, "waiter", waiter, v) == 0)
		s->stats.samples++;
}

void cp_session_mutex_sample(struct cp_session *s, const struct cp_sample *smp)
{
	uint16_t type;

	if (!smp->raw || smp->raw_size < 24)
		return;
	memcpy(&type, smp->raw + RAW_TYPE, 2);
	if (type == (uint16_t)s->futex_enter)
		futex_enter(s, smp);
	else if (type == (uint16_t)s->futex_exit)
		futex_exit(s, smp);
}
