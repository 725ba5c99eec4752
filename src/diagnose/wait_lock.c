/* Futex and lock waits: which object (mutex, rwlock, condvar...), its owner, its timeout. */
#include <errno.h>
#include <linux/futex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>

#include "lockinfo.h"
#include "mem.h"
#include "pidns.h"
#include "util.h"
#include "wait_classify.h"

/* How many of the innermost frames may name the lock function. */
#define LOCK_FRAMES 16

/* Does name hold every one of the NULL-ended parts, in any order? */
static bool has_all(const char *name, const char *const *parts)
{
	for (; *parts; parts++)
		if (!strstr(name, *parts))
			return false;
	return true;
}

/*
 * Rust's std locks, which block in futex() through libc's syscall() with no pthread frame:
 * told by their std frames, whose paths changed between versions (sys::unix::locks::futex,
 * sys::sync::mutex::futex, ...) while the type and method names did not. The label names
 * the public call. CP_WAIT__COUNT when name is none of them.
 */
static enum cp_wait_kind rust_lock_kind(const char *name, const struct cp_wait_input *in,
					size_t at, char *label, size_t size)
{
	static const char *const mutex[] = { "std::", "Mutex", "::lock_contended", NULL };
	static const char *const rw_write[] = { "std::", "RwLock", "::write_contended", NULL };
	static const char *const rw_read[] = { "std::", "RwLock", "::read_contended", NULL };
	static const char *const condvar[] = { "std::", "futex", "Condvar", "::wait", NULL };
	static const char *const park[] = { "std::", "Parker", "::park", NULL };

	if (has_all(name, mutex)) {
		snprintf(label, size, "std::sync::Mutex::lock");
		return CP_WAIT_MUTEX;
	}
	if (has_all(name, rw_write) || has_all(name, rw_read)) {
		snprintf(label, size, "std::sync::RwLock::%s",
			 strstr(name, "::write_contended") ? "write" : "read");
		return CP_WAIT_RWLOCK;
	}
	if (has_all(name, condvar)) {
		snprintf(label, size, "std::sync::Condvar::wait");
		return CP_WAIT_CONDVAR;
	}
	if (!has_all(name, park))
		return CP_WAIT__COUNT;
	/* A parked thread: a channel's receive parks the receiving thread. */
	snprintf(label, size, "std::thread::park");
	for (size_t i = at + 1; i < in->nfunctions && i < at + LOCK_FRAMES; i++)
		if (in->functions[i] && strstr(in->functions[i], "::Receiver") &&
		    strstr(in->functions[i], "::recv")) {
			snprintf(label, size, "std::sync::mpsc::Receiver::recv");
			break;
		}
	return CP_WAIT_FUTEX;
}

/*
 * The innermost pthread / semaphore function on the stack decides. Innermost wins:
 * pthread_cond_wait re-taking its mutex is a mutex wait. *label receives the function
 * (normalized) for the detail; "" when none is known.
 */
enum cp_wait_kind wait_futex_kind(const struct cp_wait_input *in, char *label, size_t size)
{
	char buf[NAME_MAX_LEN];
	size_t i;

	*label = 0;
	if (!in->functions)
		return CP_WAIT__COUNT;
	for (i = 0; i < in->nfunctions && i < LOCK_FRAMES; i++) {
		const char *name = wait_base_name(in->functions[i], buf, sizeof(buf));
		enum cp_wait_kind kind = CP_WAIT__COUNT;

		if (in->functions[i] && strstr(in->functions[i], "std::")) {
			kind = rust_lock_kind(in->functions[i], in, i, label, size);
			if (kind != CP_WAIT__COUNT)
				return kind;
			continue;
		}
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
			name = wait_base_name(in->functions[i], buf, sizeof(buf));
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

/* The owner of the lock whose futex word is at addr, asked once a dump (when cache is set). */
static int lock_owner(const struct cp_wait_input *in, int kind, uint64_t addr,
		      struct cp_lock_info *li)
{
	struct cp_wait_cache *c = in->cache;
	struct lock_memo *m;
	int ret;

	for (size_t i = 0; c && i < c->nlocks; i++) {
		if (c->locks[i].futex == addr && c->locks[i].kind == kind) {
			*li = c->locks[i].li;
			return c->locks[i].ret;
		}
	}
	struct cp_mem by_pid = CP_MEM_BY_PID(in->pid);
	const struct cp_mem *mem = in->mem ? in->mem : &by_pid;

	if (kind == CP_WAIT_MUTEX)
		ret = cp_lock_mutex_owner(mem, addr, in->pidns, in->tids, in->ntids, li);
	else
		ret = cp_lock_rwlock_writer(mem, addr, in->pidns, in->tids, in->ntids, li);
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

/*
 * The word waited on and the timeout of a futex call (cmd its FUTEX_* command, -1 when the
 * arguments are unknown), into w.
 */
static void futex_wait_args(const struct cp_wait_input *in, struct call *c, struct cp_wait *w,
			    int cmd, bool realtime)
{
	if (c->args) {
		w->address = c->args[0];
		w->has_address = true;
	}
	if (c->nr == SYS_futex && c->args) {
		switch (cmd) {
		case FUTEX_WAIT:
			/* Relative even with FUTEX_CLOCK_REALTIME. */
			wait_timeout_from_ptr(in, c, w, c->args[3], false, false, 0);
			break;
		case FUTEX_LOCK_PI:
			wait_timeout_from_ptr(in, c, w, c->args[3], false, true, CLOCK_REALTIME);
			break;
		case FUTEX_WAIT_BITSET:
		case FUTEX_WAIT_REQUEUE_PI:
		case FUTEX_LOCK_PI2:
			wait_timeout_from_ptr(in, c, w, c->args[3], false, true,
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
		uint64_t first[2];

		w->has_address = false;
		if (wait_read_target(in, c->args[0], first, sizeof(first)) == 0) {
			w->address = first[1];
			w->has_address = true;
		}
		wait_timeout_from_ptr(in, c, w, c->args[3], false, true, (clockid_t)c->args[4]);
	}
#endif
	else {
		w->timeout_unknown = true;
	}
}

/*
 * The lock's owner is the waiter itself: a self-deadlock if the thread still sleeps on the
 * word now, else it took the lock after its stack was captured (the owner is read later).
 */
static bool still_waits_on(const struct cp_wait_input *in, const struct call *c)
{
	struct cp_task_syscall sc;

	if (cp_proc_read_syscall(in->pid, in->tid, &sc) < 0 || !sc.in_syscall || sc.nr != c->nr)
		return false;
	return c->nr != SYS_futex || !c->args || sc.args[0] == c->args[0];
}

int wait_classify_futex(const struct cp_wait_input *in, struct call *c, struct cp_wait *w)
{
	char label[NAME_MAX_LEN], tmo[64], owner[160];
	struct cp_lock_info li;
	enum cp_wait_kind kind;
	uint64_t addr = c->args ? c->args[0] : 0;
	int op = c->args ? (int)c->args[1] : -1;
	int cmd = c->args ? op & FUTEX_CMD_MASK : -1;

	futex_wait_args(in, c, w, cmd, c->args && (op & FUTEX_CLOCK_REALTIME));
	kind = wait_futex_kind(in, label, sizeof(label));
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
	wait_format_timeout(tmo, sizeof(tmo), w, c->remaining);

	if (!w->has_address)
		return wait_set_detail(w, "%s%s%s, %s",
				       kind == CP_WAIT_FUTEX ? "futex" : cp_wait_kind_name(kind),
				       *label ? " in " : "", label, tmo);

	/* Rust's locks keep no owner in the lock word: say so, read nothing as one. */
	if ((kind == CP_WAIT_MUTEX || kind == CP_WAIT_RWLOCK) && starts_with(label, "std::")) {
		w->owner_unrecorded = true;
		return wait_set_detail(w, "0x%llx in %s, no owner recorded (Rust's lock word "
				       "keeps none), %s", (unsigned long long)w->address, label, tmo);
	}
	if (kind == CP_WAIT_MUTEX || kind == CP_WAIT_RWLOCK) {
		int ret;

		memset(&li, 0, sizeof(li));
		ret = lock_owner(in, kind, addr, &li);
		if (ret == 0 && li.address)
			w->address = li.address;
		if (ret == 0 && li.owner_tid == in->tid && !still_waits_on(in, c)) {
			snprintf(owner, sizeof(owner), "taken by the thread as the dump looked");
		} else if (ret == 0 && li.owner_tid > 0) {
			char ns[48] = "";

			w->owner_tid = li.owner_tid;
			w->owner_in_process = li.owner_alive;
			if (li.ns_owner_tid > 0 && li.ns_owner_tid != li.owner_tid)
				snprintf(ns, sizeof(ns), " (%d in its namespace)", li.ns_owner_tid);
			snprintf(owner, sizeof(owner), "held by %sthread %d%s%s",
				 kind == CP_WAIT_RWLOCK ? "writer " : "", li.owner_tid, ns,
				 li.owner_tid == in->tid ? " (itself)" :
				 li.owner_alive ? "" : ", which has exited");
		} else if (ret == 0 && li.ns_owner_tid > 0) {
			/* No thread of the process has that number in its namespace now. */
			snprintf(owner, sizeof(owner),
				 "held by %sthread %d in its namespace, not a thread of this "
				 "process (exited, or of another process)",
				 kind == CP_WAIT_RWLOCK ? "writer " : "", li.ns_owner_tid);
		} else if (ret == 0) {
			snprintf(owner, sizeof(owner), "%s",
				 kind == CP_WAIT_RWLOCK ? "held by readers" : "owner not recorded");
		} else {
			snprintf(owner, sizeof(owner), "owner unknown");
		}
		/* docs/FORMATS.md's form for a plain lock; a time limit is added only when set. */
		if (w->timeout_ns < 0 && !w->timeout_unknown)
			return wait_set_detail(w, "0x%llx %s", (unsigned long long)w->address,
					       owner);
		return wait_set_detail(w, "0x%llx %s, %s", (unsigned long long)w->address, owner,
				       tmo);
	}
	if (kind == CP_WAIT_CONDVAR)
		return wait_set_detail(w, "%s (futex 0x%llx), %s", *label ? label : "condvar",
				       (unsigned long long)w->address, tmo);
	return wait_set_detail(w, "futex 0x%llx%s%s, %s", (unsigned long long)w->address,
			       *label ? " in " : "", label, tmo);
}

