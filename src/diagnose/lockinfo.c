/* Who holds a glibc pthread mutex or rwlock of another process, read from its memory. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "mem.h"
#include "lockinfo.h"
#include "pidns.h"
#include "util.h"

/*
 * glibc 2.25+ x86-64 layouts (bits/struct_mutex.h, bits/struct_rwlock.h). They have been
 * ABI-stable since glibc kept static initializers compatible; the kind bits are from
 * glibc's internal pthreadP.h.
 */
enum {
	MUTEX_OFF_LOCK = 0,
	MUTEX_OFF_COUNT = 4,
	MUTEX_OFF_OWNER = 8,
	MUTEX_OFF_NUSERS = 12,
	MUTEX_OFF_KIND = 16,
};

enum {
	RW_OFF_READERS = 0,
	RW_OFF_WRITERS = 4,
	RW_OFF_WRPHASE_FUTEX = 8,
	RW_OFF_WRITERS_FUTEX = 12,
	RW_OFF_PAD3 = 16,
	RW_OFF_PAD4 = 20,
	RW_OFF_CUR_WRITER = 24,
	RW_OFF_SHARED = 28,
	RW_OFF_PAD1 = 33,	/* 7 bytes */
	RW_OFF_PAD2 = 40,
	RW_OFF_FLAGS = 48,
};

#define KIND_MASK 0x3		/* timed/normal 0, recursive 1, errorcheck 2, adaptive 3 */
#define KIND_ROBUST 0x10
#define KIND_PRIO_INHERIT 0x20
#define KIND_PRIO_PROTECT 0x40
#define KIND_PSHARED 0x80
#define KIND_ELISION 0x100
#define KIND_NO_ELISION 0x200
#define KIND_KNOWN (KIND_MASK | KIND_ROBUST | KIND_PRIO_INHERIT | KIND_PRIO_PROTECT | \
		    KIND_PSHARED | KIND_ELISION | KIND_NO_ELISION)

#define FUTEX_WAITERS_BIT 0x80000000u
#define FUTEX_OWNER_DIED_BIT 0x40000000u
#define FUTEX_TID_BITS 0x3fffffffu

/* Robust mutexes whose owner died and were not made consistent (pthreadP.h). */
#define MUTEX_INCONSISTENT INT_MAX
#define MUTEX_NOTRECOVERABLE (INT_MAX - 1)

/* The kernel never hands out TIDs above PID_MAX_LIMIT (4M on 64-bit). */
#define TID_LIMIT (4 * 1024 * 1024)

/* PTHREAD_RWLOCK_FUTEX_USED: set in __wrphase_futex / __writers_futex once a waiter sleeps. */
#define RW_FUTEX_USED 2u

static uint32_t get_u32(const uint8_t *p, size_t off)
{
	uint32_t v;

	memcpy(&v, p + off, sizeof(v));
	return v;
}

static int cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;

	return (x > y) - (x < y);
}

static bool tid_listed(int tid, const int *tids, size_t ntids)
{
	if (!tids || !ntids || tid <= 0)
		return false;
	return bsearch(&tid, tids, ntids, sizeof(*tids), cmp_int) != NULL;
}

int cp_lock_decode_mutex(const void *raw, size_t len, uint64_t addr, const int *tids,
			 size_t ntids, struct cp_lock_info *out)
{
	const uint8_t *p = raw;
	struct cp_lock_info info = { .address = addr };
	uint32_t lock, kind_u;
	int owner_field, kind, tid = 0;

	if (!raw || len < CP_LOCK_MUTEX_SIZE || !out)
		return -EINVAL;
	lock = get_u32(p, MUTEX_OFF_LOCK);
	owner_field = (int)get_u32(p, MUTEX_OFF_OWNER);
	kind_u = get_u32(p, MUTEX_OFF_KIND);
	kind = (int)kind_u;

	/* pthread_mutex_destroy stores -1 in __kind; anything else outside the known bits is not
	 * a mutex we understand, and believing it would name a random number as the owner. */
	if (kind < 0 || (kind_u & ~(uint32_t)KIND_KNOWN))
		return -EINVAL;
	if ((kind & KIND_PRIO_INHERIT) && (kind & KIND_PRIO_PROTECT))
		return -EINVAL;

	if (kind & KIND_PRIO_INHERIT) {
		/* PI (robust or not): the kernel keeps the owner's TID in the futex word. */
		info.type = "pi";
		tid = (int)(lock & FUTEX_TID_BITS);
		info.owner_died = (lock & FUTEX_OWNER_DIED_BIT) != 0;
	} else if (kind & KIND_ROBUST) {
		info.type = "robust";
		tid = (int)(lock & FUTEX_TID_BITS);
		info.owner_died = (lock & FUTEX_OWNER_DIED_BIT) != 0;
	} else if (kind & KIND_PRIO_PROTECT) {
		/* The word holds the priority ceiling and a lock state; __owner has the TID. */
		info.type = "pp";
		tid = owner_field;
	} else {
		switch (kind & KIND_MASK) {
		case 0:
			info.type = "normal";
			break;
		case 1:
			info.type = "recursive";
			break;
		case 2:
			info.type = "errorcheck";
			break;
		default:
			info.type = "adaptive";
			break;
		}
		/* lll_lock states: 0 free, 1 locked, 2 locked with waiters. */
		if (lock > 2)
			return -EINVAL;
		tid = lock ? owner_field : 0;
	}

	if (tid == MUTEX_INCONSISTENT || tid == MUTEX_NOTRECOVERABLE) {
		info.owner_died = true;
		tid = 0;
	}
	if (tid < 0 || tid >= TID_LIMIT)
		return -EINVAL;
	info.owner_tid = tid;
	info.owner_alive = tid_listed(tid, tids, ntids);
	*out = info;
	return 0;
}

int cp_lock_decode_rwlock(const void *raw, size_t len, uint64_t base, unsigned int futex_off,
			  const int *tids, size_t ntids, struct cp_lock_info *out)
{
	const uint8_t *p = raw;
	struct cp_lock_info info = { .address = base, .type = "rwlock" };
	uint32_t readers, wrphase, wfutex, flags, shared;
	int writer;
	size_t i;

	if (!raw || len < CP_LOCK_RWLOCK_SIZE || !out)
		return -EINVAL;
	if (futex_off != RW_OFF_READERS && futex_off != RW_OFF_WRPHASE_FUTEX &&
	    futex_off != RW_OFF_WRITERS_FUTEX)
		return -EINVAL;

	readers = get_u32(p, RW_OFF_READERS);
	wrphase = get_u32(p, RW_OFF_WRPHASE_FUTEX);
	wfutex = get_u32(p, RW_OFF_WRITERS_FUTEX);
	writer = (int)get_u32(p, RW_OFF_CUR_WRITER);
	shared = get_u32(p, RW_OFF_SHARED);
	flags = get_u32(p, RW_OFF_FLAGS);

	/*
	 * A rwlock has three futex words, so the base is found by trying each and keeping the
	 * hypothesis whose bytes are consistent: both futex words only ever hold 0 or 1 plus the
	 * FUTEX_USED bit, the padding is zero (pthread_rwlock_init clears it), __shared is a
	 * bool and __flags one of the three PTHREAD_RWLOCK_PREFER_* values.
	 */
	if ((wrphase & ~(RW_FUTEX_USED | 1u)) || (wfutex & ~(RW_FUTEX_USED | 1u)))
		return -EINVAL;
	if (get_u32(p, RW_OFF_PAD3) || get_u32(p, RW_OFF_PAD4) || get_u32(p, RW_OFF_PAD2) ||
	    get_u32(p, RW_OFF_PAD2 + 4))
		return -EINVAL;
	for (i = 0; i < 7; i++)
		if (p[RW_OFF_PAD1 + i])
			return -EINVAL;
	if (shared > 1 || flags > 2)
		return -EINVAL;
	/* Reader counts live above bit 3; bit 31 set would mean 2^28 readers. */
	if (readers & 0x80000000u)
		return -EINVAL;
	if (writer < 0 || writer >= TID_LIMIT)
		return -EINVAL;

	info.owner_tid = writer;
	info.owner_alive = tid_listed(writer, tids, ntids);
	*out = info;
	return 0;
}

/*
 * An owner missing from the thread list is either a thread that started after the list was
 * taken, a thread of another process (process-shared locks), or gone. Ask /proc which.
 */
static void place_owner(int pid, struct cp_lock_info *li)
{
	char path[64], buf[2048];
	const char *tg;
	long tgid;

	if (li->owner_tid <= 0 || li->owner_alive)
		return;
	snprintf(path, sizeof(path), "/proc/%d/task/%d", pid, li->owner_tid);
	if (access(path, F_OK) == 0) {
		li->owner_alive = true;
		return;
	}
	snprintf(path, sizeof(path), "/proc/%d/status", li->owner_tid);
	if (cp_read_file(path, buf, sizeof(buf), NULL) < 0)
		return;
	tg = strstr(buf, "\nTgid:");
	if (!tg)
		return;
	tgid = strtol(tg + 6, NULL, 10);
	if (tgid > 0 && tgid != pid)
		li->owner_pid = (int)tgid;
}

/*
 * The owner the lock word names, in the target's PID namespace, as cprof numbers it: kept in
 * ns_owner_tid, mapped into owner_tid (0 when the namespace has no thread of the process by
 * that number: it exited, or belongs to another process of the namespace).
 */
static void owner_to_host(const struct cp_pidns_map *ns, const int *tids, size_t ntids,
			  struct cp_lock_info *li)
{
	int host;

	li->ns_owner_tid = li->owner_tid;
	if (!ns || ns->same_ns || li->owner_tid <= 0)
		return;
	host = cp_pidns_to_host(ns, li->owner_tid);
	li->owner_tid = host > 0 ? host : 0;
	li->owner_alive = tid_listed(li->owner_tid, tids, ntids);
}

/* Where a lock's owner lives, once mapped to cprof's numbers. */
static void settle_owner(int pid, const struct cp_pidns_map *ns, const int *tids, size_t ntids,
			 struct cp_lock_info *li)
{
	owner_to_host(ns, tids, ntids, li);
	/* An owner the namespace does not know has no number /proc could be asked about. */
	if (li->owner_tid > 0)
		place_owner(pid, li);
}

int cp_lock_mutex_owner(const struct cp_mem *mem, uint64_t futex_addr,
			const struct cp_pidns_map *ns, const int *tids, size_t ntids,
			struct cp_lock_info *out)
{
	uint8_t raw[CP_LOCK_MUTEX_SIZE];
	struct cp_lock_info info;
	long n;

	if (!out || !futex_addr || (futex_addr & 3))
		return -EINVAL;
	/* pthread_mutex_lock sleeps on __lock, the first word: the futex is the mutex. */
	n = cp_mem_read(mem, futex_addr, raw, sizeof(raw));
	if (n < 0)
		return (int)n;
	if ((size_t)n < sizeof(raw))
		return -EFAULT;
	n = cp_lock_decode_mutex(raw, sizeof(raw), futex_addr, tids, ntids, &info);
	if (n < 0)
		return (int)n;
	settle_owner(mem->pid, ns, tids, ntids, &info);
	*out = info;
	return 0;
}

int cp_lock_rwlock_writer(const struct cp_mem *mem, uint64_t futex_addr,
			  const struct cp_pidns_map *ns, const int *tids, size_t ntids,
			  struct cp_lock_info *out)
{
	static const unsigned int offs[] = { RW_OFF_WRPHASE_FUTEX, RW_OFF_WRITERS_FUTEX,
					     RW_OFF_READERS };
	struct cp_lock_info best = { 0 }, cand;
	int found = 0, pass, err = -EINVAL;
	size_t i;

	if (!out || !futex_addr || (futex_addr & 3))
		return -EINVAL;
	/*
	 * pthread_rwlock_t is 8-byte aligned (it contains a long), which alone tells the
	 * __writers_futex word (4 mod 8) from the other two; the unaligned pass is a fallback
	 * for objects placed by hand. Among consistent candidates, one whose writer is a thread
	 * of the process wins.
	 */
	for (pass = 0; pass < 2 && !found; pass++) {
		for (i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
			uint8_t raw[CP_LOCK_RWLOCK_SIZE];
			uint64_t base;
			long n;

			if (futex_addr < offs[i])
				continue;
			base = futex_addr - offs[i];
			if (((base & 7) == 0) != (pass == 0))
				continue;
			n = cp_mem_read(mem, base, raw, sizeof(raw));
			if (n < 0) {
				err = (int)n;
				continue;
			}
			if ((size_t)n < sizeof(raw))
				continue;
			if (cp_lock_decode_rwlock(raw, sizeof(raw), base, offs[i], tids, ntids,
						  &cand) < 0)
				continue;
			owner_to_host(ns, tids, ntids, &cand);
			if (!found || (cand.owner_alive && !best.owner_alive))
				best = cand;
			found = 1;
		}
	}
	if (!found)
		return err;
	if (best.owner_tid > 0)
		place_owner(mem->pid, &best);
	*out = best;
	return 0;
}
