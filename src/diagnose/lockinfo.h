/*
 * Reading glibc lock state from a target's memory: who owns a pthread mutex, which writer
 * holds a rwlock. Target memory is untrusted: values are validated before they are believed.
 */
#ifndef CP_LOCKINFO_H
#define CP_LOCKINFO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cp_lock_info {
	uint64_t address;	/* the lock object (mutex or rwlock) */
	/* 0 = unknown or not held. As cprof's /proc numbers it once cp_lock_mutex_owner or
	 * cp_lock_rwlock_writer mapped it; the decoders leave the lock word's number. */
	int owner_tid;
	/*
	 * The owner as the lock word holds it: the number the target's own PID namespace gives
	 * it. Set by cp_lock_mutex_owner / cp_lock_rwlock_writer; equal to owner_tid in cprof's
	 * namespace. When the target's namespace has no thread of the process by that number,
	 * owner_tid is 0 and this alone names the owner.
	 */
	int ns_owner_tid;
	bool owner_alive;	/* owner_tid is a live thread of the process */
	/* "normal", "recursive", "errorcheck", "adaptive", "robust", "pi", "pp" (priority
	 * protect) or "rwlock"; static */
	const char *type;
	bool owner_died;	/* robust/PI: FUTEX_OWNER_DIED set, the last owner died holding it */
	/*
	 * When owner_tid is not one of tids: the process it is a live thread of (a process-
	 * shared lock held elsewhere), or 0 when no such thread exists (it exited holding the
	 * lock). Set only by cp_lock_mutex_owner / cp_lock_rwlock_writer.
	 */
	int owner_pid;
};

/* Bytes of the glibc x86-64 objects (struct __pthread_mutex_s, __pthread_rwlock_arch_t). */
#define CP_LOCK_MUTEX_SIZE 40
#define CP_LOCK_RWLOCK_SIZE 56

/*
 * Decode raw bytes of a glibc mutex (len >= CP_LOCK_MUTEX_SIZE) that lives at addr.
 * -EINVAL when the bytes do not look like a live mutex (bad kind, destroyed, impossible lock
 * word). The owner is checked against tids (sorted; may be NULL) for owner_alive.
 * Unit-testable; cp_lock_mutex_owner reads the target and calls this.
 */
int cp_lock_decode_mutex(const void *raw, size_t len, uint64_t addr, const int *tids,
			 size_t ntids, struct cp_lock_info *out);

/*
 * Decode raw bytes of a glibc rwlock (len >= CP_LOCK_RWLOCK_SIZE) at base, under the
 * hypothesis that a waiter sleeps on the futex word at byte futex_off of it (0 __readers,
 * 8 __wrphase_futex, 12 __writers_futex). -EINVAL when the bytes contradict the hypothesis.
 */
int cp_lock_decode_rwlock(const void *raw, size_t len, uint64_t base, unsigned int futex_off,
			  const int *tids, size_t ntids, struct cp_lock_info *out);

struct cp_mem;
struct cp_pidns_map;

/*
 * Owner of the glibc pthread mutex whose futex word is at futex_addr in the process mem
 * reads (borrowed). ns: how the process's PID namespace numbers its threads (NULL: as cprof
 * does); the owner is mapped through it to cprof's number. tids: the process's threads
 * (sorted, cprof's numbers) to validate the owner against. 0 or -errno.
 */
int cp_lock_mutex_owner(const struct cp_mem *mem, uint64_t futex_addr,
			const struct cp_pidns_map *ns, const int *tids, size_t ntids,
			struct cp_lock_info *out);

/*
 * The writer holding the glibc rwlock that futex_addr belongs to (a rwlock has several futex
 * words; this finds the object); ns, tids as for cp_lock_mutex_owner. 0 or -errno.
 */
int cp_lock_rwlock_writer(const struct cp_mem *mem, uint64_t futex_addr,
			  const struct cp_pidns_map *ns, const int *tids, size_t ntids,
			  struct cp_lock_info *out);

#endif
