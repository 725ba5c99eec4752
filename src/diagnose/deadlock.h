/*
 * Deadlocks in a wait-for graph: cycles of threads each waiting for a lock the next one holds,
 * and locks held by threads that have exited.
 */
#ifndef CP_DEADLOCK_H
#define CP_DEADLOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One edge of the graph: thread waiter_tid waits for a lock that thread owner_tid holds. */
struct cp_lock_wait {
	int waiter_tid;
	const char *waiter_name;	/* borrowed; the thread's name, for the descriptions */
	int owner_tid;			/* > 0 */
	uint64_t address;		/* the lock, when has_address */
	bool has_address;
	bool rwlock;			/* a rwlock; else a mutex */
	/* The lock records no owner: owner_tid is a thread whose stack refers to it. */
	bool owner_inferred;
};

/* The wait-for graph of one process. Everything borrowed. */
struct cp_wait_graph {
	int pid;
	/* Each waiter at most once (a thread waits for one lock); findings follow this order. */
	const struct cp_lock_wait *waits;
	size_t nwaits;
	const int *tids;		/* every thread the dump listed, sorted */
	size_t ntids;
	bool process_exited;		/* it exited: a dead owner proves nothing then */
};

/* One finding: a cycle, or a lock whose owner exited. */
struct cp_deadlock {
	/* owned; the cycle in order from its lowest tid (leaked_owner: the waiters, then the
	 * exited owner) */
	int *tids;
	size_t ntids;
	char *description;	/* owned; one sentence */
	bool leaked_owner;	/* a lock whose owner thread no longer exists */
};

/*
 * The cycles of g (in the order of their first waiter in g->waits), then one finding per lock
 * held by an owner that is gone for good (not listed, and no live thread of this or another
 * process). *out (free with cp_deadlock_free) and *nout are written only on success:
 * 0 or -ENOMEM.
 */
int cp_deadlock_find(const struct cp_wait_graph *g, struct cp_deadlock **out, size_t *nout);
/* Free n findings and the array; NULL is a no-op. */
void cp_deadlock_free(struct cp_deadlock *v, size_t n);

#endif
