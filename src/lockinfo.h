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
	int owner_tid;		/* 0 = unknown or not held */
	bool owner_alive;	/* owner_tid is a live thread of the process */
	const char *type;	/* "normal", "recursive", "errorcheck", "robust", "pi", "rwlock" */
};

/*
 * Owner of the glibc pthread mutex whose futex word is at futex_addr in process pid.
 * tids: the process's threads (sorted) to validate the owner against. 0 or -errno.
 */
int cp_lock_mutex_owner(int pid, uint64_t futex_addr, const int *tids, size_t ntids,
			struct cp_lock_info *out);

/*
 * The writer holding the glibc rwlock that futex_addr belongs to (a rwlock has several futex
 * words; this finds the object). 0 or -errno.
 */
int cp_lock_rwlock_writer(int pid, uint64_t futex_addr, const int *tids, size_t ntids,
			  struct cp_lock_info *out);

#endif
