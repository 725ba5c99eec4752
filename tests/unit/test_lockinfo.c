/* Unit tests for lockinfo: glibc mutex/rwlock decoding, in-process and on the locks fixture. */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "check.h"
#include "lockinfo.h"
#include "mem.h"
#include "pidns.h"
#include "proc.h"

#include "diag_fixture.h"

/* A helper thread that takes a lock, reports its tid, and holds the lock until told. */
struct holder {
	pthread_mutex_t *m;
	pthread_rwlock_t *rw;
	int relock;
	int tid;
	sem_t locked, release;
};

static void *holder_main(void *arg)
{
	struct holder *h = arg;

	h->tid = (int)syscall(SYS_gettid);
	if (h->m) {
		pthread_mutex_lock(h->m);
		if (h->relock)
			pthread_mutex_lock(h->m);
	} else {
		pthread_rwlock_wrlock(h->rw);
	}
	sem_post(&h->locked);
	sem_wait(&h->release);
	if (h->m) {
		if (h->relock)
			pthread_mutex_unlock(h->m);
		pthread_mutex_unlock(h->m);
	} else {
		pthread_rwlock_unlock(h->rw);
	}
	return NULL;
}

static void hold(struct holder *h, pthread_t *th)
{
	sem_init(&h->locked, 0, 0);
	sem_init(&h->release, 0, 0);
	pthread_create(th, NULL, holder_main, h);
	sem_wait(&h->locked);
}

static void let_go(struct holder *h, pthread_t th)
{
	sem_post(&h->release);
	pthread_join(th, NULL);
	sem_destroy(&h->locked);
	sem_destroy(&h->release);
}

/* Every mutex kind, held by a real thread of this process, decoded from its bytes. */
static void test_mutex_kinds_in_process(void)
{
	static const struct {
		int type, robust, protocol, relock;
		const char *name;
	} kinds[] = {
		{ PTHREAD_MUTEX_NORMAL, 0, 0, 0, "normal" },
		{ PTHREAD_MUTEX_RECURSIVE, 0, 0, 1, "recursive" },
		{ PTHREAD_MUTEX_ERRORCHECK, 0, 0, 0, "errorcheck" },
		{ PTHREAD_MUTEX_ADAPTIVE_NP, 0, 0, 0, "adaptive" },
		{ PTHREAD_MUTEX_NORMAL, 1, 0, 0, "robust" },
		{ PTHREAD_MUTEX_RECURSIVE, 1, 0, 1, "robust" },
		{ PTHREAD_MUTEX_NORMAL, 0, PTHREAD_PRIO_INHERIT, 0, "pi" },
		{ PTHREAD_MUTEX_NORMAL, 1, PTHREAD_PRIO_INHERIT, 0, "pi" },
	};
	size_t i;

	for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		pthread_mutexattr_t a;
		pthread_mutex_t m;
		struct holder h = { .m = &m, .relock = kinds[i].relock };
		struct cp_lock_info li;
		pthread_t th;
		int tids[1], rc;

		pthread_mutexattr_init(&a);
		pthread_mutexattr_settype(&a, kinds[i].type);
		if (kinds[i].robust)
			pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
		if (kinds[i].protocol)
			pthread_mutexattr_setprotocol(&a, kinds[i].protocol);
		if (pthread_mutex_init(&m, &a) != 0) {
			printf("note: mutex kind %zu not supported here\n", i);
			continue;
		}

		/* Free: no owner, still a valid mutex. */
		rc = cp_lock_decode_mutex(&m, sizeof(m), (uintptr_t)&m, NULL, 0, &li);
		CHECK(rc == 0 && li.owner_tid == 0, "kind %zu free: rc %d owner %d", i, rc,
		      li.owner_tid);

		hold(&h, &th);
		tids[0] = h.tid;
		memset(&li, 0, sizeof(li));
		rc = cp_lock_decode_mutex(&m, sizeof(m), (uintptr_t)&m, tids, 1, &li);
		CHECK(rc == 0, "kind %s: rc %d", kinds[i].name, rc);
		CHECK(li.owner_tid == h.tid, "kind %zu %s: owner %d want %d", i, kinds[i].name,
		      li.owner_tid, h.tid);
		CHECK(li.owner_alive, "kind %zu: owner is listed", i);
		CHECK(li.type && !strcmp(li.type, kinds[i].name), "kind %zu: type %s want %s", i,
		      li.type ? li.type : "(null)", kinds[i].name);
		CHECK(li.address == (uintptr_t)&m, "address");

		/* The same through process_vm_readv on ourselves. */
		memset(&li, 0, sizeof(li));
		rc = cp_lock_mutex_owner(&CP_MEM_BY_PID(getpid()), (uintptr_t)&m, NULL, tids, 1,
					 &li);
		CHECK(rc == 0 && li.owner_tid == h.tid, "kind %zu via memory: rc %d owner %d", i,
		      rc, li.owner_tid);
		/* A thread the caller's list missed (it started later) is found in /proc. */
		rc = cp_lock_mutex_owner(&CP_MEM_BY_PID(getpid()), (uintptr_t)&m, NULL, NULL, 0,
					 &li);
		CHECK(rc == 0 && li.owner_alive && li.owner_pid == 0, "kind %zu unlisted live", i);

		/* An owner not in the thread list is reported, but not as alive. */
		rc = cp_lock_decode_mutex(&m, sizeof(m), (uintptr_t)&m, NULL, 0, &li);
		CHECK(rc == 0 && li.owner_tid == h.tid && !li.owner_alive, "kind %zu unlisted", i);
		let_go(&h, th);
		pthread_mutex_destroy(&m);
		pthread_mutexattr_destroy(&a);
	}
}

/* Hand-made bytes: what must be refused and how the owner bits are read. */
static void test_mutex_synthetic(void)
{
	uint32_t w[10];
	struct cp_lock_info li = { 0 };
	int tids[] = { 100, 200, 300 };

	/* Destroyed (glibc stores -1 in __kind). */
	memset(w, 0, sizeof(w));
	w[0] = 1;
	w[2] = 200;
	w[4] = 0xffffffffu;
	CHECK(cp_lock_decode_mutex(w, sizeof(w), 0x1000, tids, 3, &li) == -EINVAL, "destroyed");
	/* Unknown kind bits. */
	w[4] = 0x4000;
	CHECK(cp_lock_decode_mutex(w, sizeof(w), 0x1000, tids, 3, &li) == -EINVAL, "bad kind");
	/* A normal mutex whose word is not 0/1/2 is not a normal mutex. */
	w[4] = 0;
	w[0] = 7;
	CHECK(cp_lock_decode_mutex(w, sizeof(w), 0x1000, tids, 3, &li) == -EINVAL, "bad word");
	/* Normal, locked with waiters: owner from __owner. */
	w[0] = 2;
	CHECK(cp_lock_decode_mutex(w, sizeof(w), 0x1000, tids, 3, &li) == 0 &&
		      li.owner_tid == 200 && li.owner_alive && !strcmp(li.type, "normal"),
	      "normal owner %d", li.owner_tid);
	/* Too short. */
	CHECK(cp_lock_decode_mutex(w, 39, 0x1000, tids, 3, &li) == -EINVAL, "short");
	/* Robust: owner in the word, FUTEX_WAITERS masked off; __owner ignored. */
	w[4] = 0x10;
	w[0] = 0x80000000u | 300;
	w[2] = 999;
	CHECK(cp_lock_decode_mutex(w, sizeof(w), 0x1000, tids, 3, &li) == 0 &&
		      li.owner_tid == 300 && li.owner_alive && !li.owner_died,
	      "robust owner %d", li.owner_tid);
	/* Robust, owner died: FUTEX_OWNER_DIED flagged. */
	w[0] = 0x40000000u | 0x80000000u | 555;
	CHECK(cp_lock_decode_mutex(w, sizeof(w), 0x1000, tids, 3, &li) == 0 &&
		      li.owner_tid == 555 && !li.owner_alive && li.owner_died,
	      "robust died owner %d", li.owner_tid);
	/* PI + robust. */
	w[4] = 0x30;
	w[0] = 0x80000000u | 100;
	CHECK(cp_lock_decode_mutex(w, sizeof(w), 0x1000, tids, 3, &li) == 0 &&
		      li.owner_tid == 100 && !strcmp(li.type, "pi"),
	      "pi owner %d", li.owner_tid);
	/* Robust inconsistent (owner died, recovered by no one): no owner to name. */
	w[4] = 0x10;
	w[0] = 0;
	w[2] = 0x7fffffff;
	CHECK(cp_lock_decode_mutex(w, sizeof(w), 0x1000, tids, 3, &li) == 0 &&
		      li.owner_tid == 0,
	      "robust inconsistent owner %d", li.owner_tid);
	/* Priority protect (cannot be locked without a real-time ceiling here, so only bytes):
	 * the word carries the ceiling, __owner the TID. */
	w[4] = 0x40;
	w[0] = (5u << 19) | 1;
	w[2] = 200;
	CHECK(cp_lock_decode_mutex(w, sizeof(w), 0x1000, tids, 3, &li) == 0 &&
		      li.owner_tid == 200 && !strcmp(li.type, "pp"),
	      "pp owner %d", li.owner_tid);
	/* PI and PP at once is impossible. */
	w[4] = 0x60;
	CHECK(cp_lock_decode_mutex(w, sizeof(w), 0x1000, tids, 3, &li) == -EINVAL, "pi+pp");
	/* Owner TIDs beyond PID_MAX_LIMIT are garbage. */
	w[4] = 0;
	w[0] = 1;
	w[2] = 5000000;
	CHECK(cp_lock_decode_mutex(w, sizeof(w), 0x1000, tids, 3, &li) == -EINVAL, "huge tid");
	/* Unaligned or NULL futex addresses are refused before reading. */
	CHECK(cp_lock_mutex_owner(&CP_MEM_BY_PID(getpid()), 0, NULL, tids, 3, &li) == -EINVAL,
	      "null addr");
	CHECK(cp_lock_mutex_owner(&CP_MEM_BY_PID(getpid()), 0x1002, NULL, tids, 3, &li) == -EINVAL,
	      "odd addr");
}

static void test_rwlock_in_process(void)
{
	pthread_rwlock_t rw = PTHREAD_RWLOCK_INITIALIZER;
	struct holder h = { .rw = &rw };
	struct cp_lock_info li = { 0 };
	uintptr_t base = (uintptr_t)&rw;
	pthread_t th;
	int tids[1], rc;

	/* Free: valid, no writer, under every hypothesis that fits. */
	rc = cp_lock_decode_rwlock(&rw, sizeof(rw), base, 8, NULL, 0, &li);
	CHECK(rc == 0 && li.owner_tid == 0, "free rwlock rc %d", rc);

	hold(&h, &th);
	tids[0] = h.tid;
	rc = cp_lock_decode_rwlock(&rw, sizeof(rw), base, 8, tids, 1, &li);
	CHECK(rc == 0 && li.owner_tid == h.tid && li.owner_alive && !strcmp(li.type, "rwlock"),
	      "writer rc %d owner %d want %d", rc, li.owner_tid, h.tid);
	/* Reading 8 bytes too far (the hypothesis that __wrphase_futex is __readers) must fail:
	 * __cur_writer then lands in the padding. */
	{
		uint8_t shifted[64] = { 0 };

		memcpy(shifted, (uint8_t *)&rw + 8, sizeof(rw) - 8);
		CHECK(cp_lock_decode_rwlock(shifted, CP_LOCK_RWLOCK_SIZE, base + 8, 0, tids, 1,
					    &li) == -EINVAL,
		      "shifted hypothesis accepted");
	}
	CHECK(cp_lock_decode_rwlock(&rw, sizeof(rw), base, 4, tids, 1, &li) == -EINVAL,
	      "offset 4 is no futex word");

	/* The base is found from either futex word a waiter can sleep on. */
	memset(&li, 0, sizeof(li));
	rc = cp_lock_rwlock_writer(&CP_MEM_BY_PID(getpid()), base + 8, NULL, tids, 1, &li);
	CHECK(rc == 0 && li.address == base && li.owner_tid == h.tid,
	      "from wrphase: rc %d addr %#llx owner %d", rc, (unsigned long long)li.address,
	      li.owner_tid);
	memset(&li, 0, sizeof(li));
	rc = cp_lock_rwlock_writer(&CP_MEM_BY_PID(getpid()), base + 12, NULL, tids, 1, &li);
	CHECK(rc == 0 && li.address == base && li.owner_tid == h.tid,
	      "from writers_futex: rc %d addr %#llx", rc, (unsigned long long)li.address);
	memset(&li, 0, sizeof(li));
	rc = cp_lock_rwlock_writer(&CP_MEM_BY_PID(getpid()), base, NULL, tids, 1, &li);
	CHECK(rc == 0 && li.address == base && li.owner_tid == h.tid,
	      "from readers: rc %d addr %#llx", rc, (unsigned long long)li.address);
	let_go(&h, th);
}

/*
 * A target in a PID namespace of its own stores its numbers: the owner is mapped to cprof's
 * through the namespace's map (here a made-up one: our holder thread is "ns_tid" h.tid of a
 * thread cprof calls getpid()), and one the namespace does not know is not looked up.
 */
static void test_owner_through_namespace(void)
{
	pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
	pthread_rwlock_t rw = PTHREAD_RWLOCK_INITIALIZER;
	struct holder hm = { .m = &m }, hr = { .rw = &rw };
	struct cp_pidns_tid v[2], by_tid[2];
	struct cp_pidns_map ns = { .same_ns = false, .v = v, .by_tid = by_tid, .n = 2 };
	struct cp_pidns_map same = { .same_ns = true };
	struct cp_lock_info li;
	int host = (int)getpid(), tids[1] = { host }, rc;
	pthread_t tm, tr;

	hold(&hm, &tm);
	hold(&hr, &tr);
	/* Sorted by ns_tid, and by tid: hm.tid -> host, 1 -> a number no thread has. */
	v[0] = (struct cp_pidns_tid){ .ns_tid = 1, .tid = 0x3ffffff0 };
	v[1] = (struct cp_pidns_tid){ .ns_tid = hm.tid, .tid = host };
	by_tid[0] = v[1];
	by_tid[1] = v[0];
	memset(&li, 0, sizeof(li));
	rc = cp_lock_mutex_owner(&CP_MEM_BY_PID(host), (uintptr_t)&m, &ns, tids, 1, &li);
	CHECK(rc == 0 && li.owner_tid == host && li.ns_owner_tid == hm.tid && li.owner_alive,
	      "mutex owner through the map: rc %d owner %d ns %d alive %d", rc, li.owner_tid,
	      li.ns_owner_tid, li.owner_alive);
	memset(&li, 0, sizeof(li));
	rc = cp_lock_mutex_owner(&CP_MEM_BY_PID(host), (uintptr_t)&m, &same, tids, 1, &li);
	CHECK(rc == 0 && li.owner_tid == hm.tid && li.ns_owner_tid == hm.tid,
	      "same namespace: owner as stored: rc %d owner %d ns %d", rc, li.owner_tid,
	      li.ns_owner_tid);

	/* The rwlock's writer is not in the map: no host number, and /proc is not asked. */
	memset(&li, 0, sizeof(li));
	rc = cp_lock_rwlock_writer(&CP_MEM_BY_PID(host), (uintptr_t)&rw + 8, &ns, tids, 1, &li);
	CHECK(rc == 0 && li.owner_tid == 0 && li.ns_owner_tid == hr.tid && !li.owner_alive &&
	      li.owner_pid == 0, "unmapped writer: rc %d owner %d ns %d alive %d pid %d", rc,
	      li.owner_tid, li.ns_owner_tid, li.owner_alive, li.owner_pid);
	/* Mapped, the writer is found whichever futex word is given. */
	v[1].ns_tid = hr.tid;	/* still after ns_tid 1 */
	by_tid[0] = v[1];
	memset(&li, 0, sizeof(li));
	rc = cp_lock_rwlock_writer(&CP_MEM_BY_PID(host), (uintptr_t)&rw + 12, &ns, tids, 1, &li);
	CHECK(rc == 0 && li.owner_tid == host && li.ns_owner_tid == hr.tid && li.owner_alive,
	      "mapped writer: rc %d owner %d ns %d", rc, li.owner_tid, li.ns_owner_tid);
	let_go(&hm, tm);
	let_go(&hr, tr);
}

/* A process-shared mutex held by another process: its owner is placed in that process. */
static void test_pshared_owner(void)
{
	pthread_mutex_t *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
				  -1, 0);
	pthread_mutexattr_t a;
	struct cp_lock_info li = { 0 };
	int tids[1] = { (int)getpid() };
	int p[2], rc;
	char c;
	pid_t child;

	if (m == MAP_FAILED || pipe(p) < 0) {
		FAIL("mmap/pipe");
		return;
	}
	pthread_mutexattr_init(&a);
	pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
	pthread_mutex_init(m, &a);
	child = fork();
	if (child == 0) {
		pthread_mutex_lock(m);
		if (write(p[1], "x", 1) != 1)
			_exit(1);
		pause();
		_exit(0);
	}
	CHECK(read(p[0], &c, 1) == 1, "child locked");
	rc = cp_lock_mutex_owner(&CP_MEM_BY_PID(getpid()), (uintptr_t)m, NULL, tids, 1, &li);
	CHECK(rc == 0 && li.owner_tid == child && !li.owner_alive && li.owner_pid == child,
	      "pshared: rc %d owner %d alive %d pid %d", rc, li.owner_tid, li.owner_alive,
	      li.owner_pid);
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	/* Its owner is gone now: no process to place it in. */
	memset(&li, 0, sizeof(li));
	rc = cp_lock_mutex_owner(&CP_MEM_BY_PID(getpid()), (uintptr_t)m, NULL, tids, 1, &li);
	CHECK(rc == 0 && li.owner_tid == child && !li.owner_alive && li.owner_pid == 0,
	      "dead owner: rc %d owner %d pid %d", rc, li.owner_tid, li.owner_pid);
	close(p[0]);
	close(p[1]);
	munmap(m, 4096);
}

static long futex_of(int pid, long tid)
{
	struct cp_task_syscall sc;

	if (tid <= 0 || cp_proc_read_syscall(pid, (int)tid, &sc) < 0 || !sc.in_syscall ||
	    sc.nr != SYS_futex)
		return 0;
	return (long)sc.args[0];
}

static void check_owner(const struct fixture *f, const int *tids, size_t n, const char *mutex,
			const char *owner, const char *type, bool alive)
{
	uint64_t addr = fixture_addr(f, mutex);
	long want = fixture_long(f, "TID", owner);
	struct cp_lock_info li = { 0 };
	int rc;

	CHECK(addr && want > 0, "fixture printed %s and %s", mutex, owner);
	rc = cp_lock_mutex_owner(&CP_MEM_BY_PID(f->pid), addr, NULL, tids, n, &li);
	CHECK(rc == 0, "%s: rc %d", mutex, rc);
	CHECK(li.owner_tid == want, "%s: owner %d want %ld (%s)", mutex, li.owner_tid, want, owner);
	CHECK(li.owner_alive == alive, "%s: owner_alive %d", mutex, li.owner_alive);
	CHECK(li.owner_pid == 0, "%s: owner_pid %d", mutex, li.owner_pid);
	if (type)
		CHECK(li.type && !strcmp(li.type, type), "%s: type %s want %s", mutex,
		      li.type ? li.type : "(null)", type);
}

static int test_fixture(void)
{
	struct fixture f;
	int *tids = NULL;
	size_t n = 0;
	long futex;

	if (fixture_start(&f, "locks", NULL) < 0) {
		fixture_stop(&f);
		return -1;
	}
	CHECK(cp_proc_list_tasks(f.pid, &tids, &n) == 0 && n > 10, "threads listed: %zu", n);

	check_owner(&f, tids, n, "abba-a", "abba-1", "normal", true);
	check_owner(&f, tids, n, "abba-b", "abba-2", "normal", true);
	check_owner(&f, tids, n, "cyc-m1", "cyc-1", "normal", true);
	check_owner(&f, tids, n, "cyc-m3", "cyc-3", "normal", true);
	check_owner(&f, tids, n, "self-m", "self-lock", "normal", true);
	check_owner(&f, tids, n, "leak-m", "leak-owner", "normal", false);
	check_owner(&f, tids, n, "live-m", "live-owner", "normal", true);
	check_owner(&f, tids, n, "robust-m", "rob-own", "robust", true);
	check_owner(&f, tids, n, "recursive-m", "rec-own", "recursive", true);
	check_owner(&f, tids, n, "errorcheck-m", "ec-own", "errorcheck", true);
	check_owner(&f, tids, n, "pi-m", "pi-own", "pi", true);

	/* The waiters really sleep on the mutex word itself. */
	futex = futex_of(f.pid, fixture_long(&f, "TID", "pi-wait"));
	CHECK((unsigned long long)futex == fixture_addr(&f, "pi-m"), "pi-wait futex %#lx", futex);
	futex = futex_of(f.pid, fixture_long(&f, "TID", "abba-1"));
	CHECK((unsigned long long)futex == fixture_addr(&f, "abba-b"), "abba-1 futex %#lx", futex);

	/* rwlock: from whichever word each waiter sleeps on, back to the object and writer. */
	for (int i = 0; i < 2; i++) {
		const char *who = i ? "rw-wwait" : "rw-reader";
		struct cp_lock_info li = { 0 };
		int rc;

		futex = futex_of(f.pid, fixture_long(&f, "TID", who));
		CHECK(futex != 0, "%s sleeps in futex", who);
		rc = cp_lock_rwlock_writer(&CP_MEM_BY_PID(f.pid), (uint64_t)futex, NULL, tids, n,
					   &li);
		CHECK(rc == 0, "%s: rc %d", who, rc);
		CHECK(li.address == fixture_addr(&f, "rw-lock"),
		      "%s: base %#llx want %#llx (futex %#lx)",
		      who, (unsigned long long)li.address, fixture_addr(&f, "rw-lock"), futex);
		CHECK(li.owner_tid == fixture_long(&f, "TID", "rw-writer") && li.owner_alive,
		      "%s: writer %d", who, li.owner_tid);
	}
	free(tids);
	fixture_stop(&f);
	return 0;
}

int main(void)
{
	test_mutex_kinds_in_process();
	test_mutex_synthetic();
	test_rwlock_in_process();
	test_pshared_owner();
	test_owner_through_namespace();
	if (test_fixture() < 0)
		FAIL("the locks fixture did not start");
	return check_done("lockinfo");
}
