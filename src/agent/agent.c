/* The agent's sessions: start and stop, the shared region, going OFF by itself, launch by env. */
#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <link.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "agent_int.h"

#define HEADER_BYTES 4096
#define DEFAULT_RATE 524288
#define DEFAULT_STACK_BYTES 32768
#define DEFAULT_RING_BYTES (8UL << 20)
#define MIN_RING_BYTES (64UL << 10)
#define MAX_RING_BYTES (1UL << 30)
#define MAX_STACK_BYTES (256U << 10)

AGENT_EXPORT struct cp_agent_control cprof_agent_control = {
	.magic = CP_AGENT_MAGIC,
	.version = CP_AGENT_VERSION,
	.memfd = -1,
};

struct agent_session agent_sess = { .pidfd = -1 };

/* Held by start, stop and the patching of new modules; never waited for on a sampled path. */
static pthread_mutex_t patch_lock = PTHREAD_MUTEX_INITIALIZER;
static const char *pending_why;
static int reader_pid;
static const char reader_exited[] = "reader exited";
static int atfork_done;

/* How long record's launch waits for cprof to take the region handed over (ms). */
#define HANDOVER_WAIT_MS 1000

/* The slow checks (the reader's pidfd, new modules) run at most this often. */
#define READER_CHECK_NS 10000000ULL

static uint64_t last_reader_check;

static void patch_new(void);

void agent_patch_new(void)
{
	if (__atomic_load_n(&agent_sess.on, __ATOMIC_ACQUIRE))
		patch_new();
}

int agent_poll(const char **why)
{
	struct timespec ts;
	uint64_t now, last;
	int pidfd;

	if (__atomic_load_n(&agent_sess.hdr->state, __ATOMIC_ACQUIRE) == CP_AGENT_STOP) {
		*why = NULL;
		return 1;
	}
	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
	last = __atomic_load_n(&last_reader_check, __ATOMIC_RELAXED);
	if (now - last < READER_CHECK_NS ||
	    !__atomic_compare_exchange_n(&last_reader_check, &last, now, 0, __ATOMIC_RELAXED,
					 __ATOMIC_RELAXED))
		return 0;
	patch_new();
	pidfd = __atomic_load_n(&agent_sess.pidfd, __ATOMIC_ACQUIRE);
	if (pidfd >= 0) {
		/* A pidfd polls readable once its process has exited. */
		struct pollfd p = { .fd = pidfd, .events = POLLIN };

		if (poll(&p, 1, 0) > 0) {
			*why = reader_exited;
			return 1;
		}
		return 0;
	}
	if (reader_pid > 0 && kill(reader_pid, 0) < 0 && errno == ESRCH) {
		*why = reader_exited;
		return 1;
	}
	return 0;
}

static void set_state(uint32_t state)
{
	if (agent_sess.hdr)
		__atomic_store_n(&agent_sess.hdr->state, state, __ATOMIC_RELEASE);
	__atomic_store_n(&cprof_agent_control.state, state, __ATOMIC_RELEASE);
}

/*
 * The session is over: drop the reader's pidfd and give back the memory of the sampled-block
 * tables, and (ring: the reader exited, nobody reads it) of the ring; a reader that stopped
 * us still reads the ring, then gives its memory back itself (a thread still finishing a
 * hook meanwhile only faults in a zeroed page).
 */
static void release_reader(bool ring)
{
	int fd = __atomic_exchange_n(&agent_sess.pidfd, -1, __ATOMIC_ACQ_REL);

	if (fd >= 0)
		close(fd);
	reader_pid = 0;
	agent_blocks_release();
	if (ring && agent_sess.ring)
		madvise(agent_sess.ring, agent_sess.ring_mask + 1, MADV_REMOVE);
}

/* Restore the GOTs and go OFF, with the patch lock held. */
static void off_locked(const char *why)
{
	uint64_t n, patched, skipped;

	__atomic_store_n(&agent_sess.on, 0, __ATOMIC_RELEASE);
	agent_got_restore_all();
	agent_got_counts(&n, &patched, &skipped);
	/* Only the way from ON to OFF says why: a later stop keeps the reason. */
	if (agent_sess.hdr && cprof_agent_control.state == CP_AGENT_ON) {
		size_t len = why ? strlen(why) : 0;

		if (len >= sizeof(agent_sess.hdr->error))
			len = sizeof(agent_sess.hdr->error) - 1;
		memcpy(agent_sess.hdr->error, why ? why : "", len);
		agent_sess.hdr->error[len] = 0;
		__atomic_store_n(&agent_sess.hdr->patched, n, __ATOMIC_RELAXED);
		__atomic_store_n(&agent_sess.hdr->modules, patched, __ATOMIC_RELAXED);
	}
	set_state(CP_AGENT_OFF);
	__atomic_store_n(&agent_sess.stop_pending, 0, __ATOMIC_RELEASE);
	if (why == reader_exited)
		release_reader(true);
}

/* Release the patch lock, first finishing a stop asked for while it was held. */
static void unlock_patch(void)
{
	for (;;) {
		if (__atomic_load_n(&agent_sess.stop_pending, __ATOMIC_ACQUIRE))
			off_locked(pending_why);
		pthread_mutex_unlock(&patch_lock);
		/* A stop asked for between the check and the unlock: take the lock back, if free. */
		if (!__atomic_load_n(&agent_sess.stop_pending, __ATOMIC_ACQUIRE) ||
		    pthread_mutex_trylock(&patch_lock) != 0)
			return;
	}
}

void agent_go_off(const char *why, int wait)
{
	if (!__atomic_load_n(&agent_sess.on, __ATOMIC_ACQUIRE) &&
	    !__atomic_load_n(&agent_sess.stop_pending, __ATOMIC_ACQUIRE) && !wait)
		return;
	pending_why = why;
	__atomic_store_n(&agent_sess.stop_pending, 1, __ATOMIC_RELEASE);
	__atomic_store_n(&agent_sess.on, 0, __ATOMIC_RELEASE);
	if (wait)
		pthread_mutex_lock(&patch_lock);
	else if (pthread_mutex_trylock(&patch_lock) != 0)
		return;
	unlock_patch();
}

/* dl_iterate_phdr's count of modules loaded so far (its first callback has it). */
static int adds_of(struct dl_phdr_info *info, size_t size, void *arg)
{
	(void)size;
	*(uint64_t *)arg = info->dlpi_adds;
	return 1;
}

static uint64_t seen_adds;

/* Patch the modules loaded since the last patching, unless the lock is busy or going OFF. */
static void patch_new(void)
{
	uint64_t adds = 0, n, patched, skipped;

	dl_iterate_phdr(adds_of, &adds);
	if (adds == __atomic_load_n(&seen_adds, __ATOMIC_RELAXED) ||
	    pthread_mutex_trylock(&patch_lock) != 0)
		return;
	if (__atomic_load_n(&agent_sess.on, __ATOMIC_ACQUIRE) &&
	    !__atomic_load_n(&agent_sess.stop_pending, __ATOMIC_ACQUIRE)) {
		int not_ready = agent_got_patch_all();

		agent_got_counts(&n, &patched, &skipped);
		__atomic_store_n(&agent_sess.hdr->patched, n, __ATOMIC_RELAXED);
		__atomic_store_n(&agent_sess.hdr->modules, patched, __ATOMIC_RELAXED);
		__atomic_store_n(&agent_sess.hdr->skipped_modules, skipped, __ATOMIC_RELAXED);
		/* A module still being loaded is looked at again by the next check. */
		if (!not_ready)
			__atomic_store_n(&seen_adds, adds, __ATOMIC_RELAXED);
	}
	unlock_patch();
}

/* Wait (boundedly) until no thread is inside a sampled path of an earlier session. */
static void wait_quiet(void)
{
	for (int i = 0; i < 100000 && __atomic_load_n(&agent_sess.busy, __ATOMIC_ACQUIRE); i++)
		sched_yield();
}

/* A forked child shares the region with its parent: it turns off without touching it. */
static void atfork_child(void)
{
	pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;

	__atomic_store_n(&agent_sess.on, 0, __ATOMIC_RELEASE);
	memcpy(&patch_lock, &fresh, sizeof(fresh));
	agent_thread_forked();
	agent_sess.pid = (int)getpid();
	if (cprof_agent_control.state != CP_AGENT_ON)
		return;
	agent_got_restore_all();
	agent_sess.hdr = NULL;
	cprof_agent_control.state = CP_AGENT_OFF;
	cprof_agent_control.memfd = -1;
}

static uint64_t pow2_at_least(uint64_t v)
{
	uint64_t p = MIN_RING_BYTES;

	while (p < v && p < MAX_RING_BYTES)
		p <<= 1;
	return p;
}

/* Map the region the first time; later sessions reuse it (a ring no larger than the first). */
static int map_region(uint64_t *ring_bytes)
{
	uint64_t bytes;
	void *m;
	int fd;

	if (agent_sess.hdr) {
		uint64_t have = cprof_agent_control.region_bytes - HEADER_BYTES;

		if (*ring_bytes > have)
			*ring_bytes = have;
		return 0;
	}
	fd = (int)syscall(SYS_memfd_create, "cprof-agent", 1U /* MFD_CLOEXEC */);
	if (fd < 0)
		return -errno;
	bytes = HEADER_BYTES + *ring_bytes;
	if (ftruncate(fd, (off_t)bytes) < 0)
		goto fail;
	m = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED)
		goto fail;
	agent_sess.hdr = m;
	cprof_agent_control.memfd = fd;
	cprof_agent_control.region_bytes = bytes;
	return 0;
fail:
	fd = -errno;
	close(-fd);
	return fd;
}

static void fill_header(int pid, uint64_t rate, uint32_t stack_bytes, uint64_t ring_bytes)
{
	struct cp_agent_header *h = agent_sess.hdr;

	memset(h, 0, HEADER_BYTES);
	memset((uint8_t *)h + HEADER_BYTES, 0, ring_bytes);
	h->magic = CP_AGENT_MAGIC;
	h->version = CP_AGENT_VERSION;
	h->header_bytes = HEADER_BYTES;
	h->ring_bytes = ring_bytes;
	h->rate = rate;
	h->stack_bytes = stack_bytes;
	h->reader_pid = pid;
	h->generation = cprof_agent_control.generation;
	agent_sess.ring = (uint8_t *)h + HEADER_BYTES;
	agent_sess.ring_mask = ring_bytes - 1;
	agent_sess.rate = rate;
	agent_sess.stack_bytes = stack_bytes;
}

/* Where the main thread's frames end: glibc's __libc_stack_end, the address of argc. */
static uint64_t main_stack_end(void)
{
	void *const *end = dlsym(RTLD_DEFAULT, "__libc_stack_end");

	return end ? (uint64_t)(uintptr_t)*end : 0;
}

static int start_locked(int pid, uint64_t rate, uint32_t stack_bytes, uint64_t ring_bytes)
{
	uint64_t n, patched, skipped;
	int rc, pidfd;

	if (cprof_agent_control.state == CP_AGENT_ON)
		return -EBUSY;
	if (pid <= 0)
		return -EINVAL;
	rc = agent_hooks_init();
	if (rc < 0)
		return rc;
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0U);
	if (pidfd < 0 && errno != ENOSYS)
		return -errno;
	ring_bytes = pow2_at_least(ring_bytes ? ring_bytes : DEFAULT_RING_BYTES);
	rc = map_region(&ring_bytes);
	if (rc < 0)
		goto fail;
	if (!atfork_done && pthread_atfork(NULL, NULL, atfork_child) == 0)
		atfork_done = 1;
	wait_quiet();
	rc = agent_blocks_reset();
	if (rc < 0)
		goto fail;
	if (agent_sess.pidfd >= 0)
		close(agent_sess.pidfd);
	agent_sess.pidfd = pidfd;
	reader_pid = pid;
	__atomic_store_n(&last_reader_check, 0, __ATOMIC_RELAXED);
	agent_sess.pid = (int)getpid();
	agent_sess.stack_end = main_stack_end();
	if (!stack_bytes)
		stack_bytes = DEFAULT_STACK_BYTES;
	if (stack_bytes > MAX_STACK_BYTES)
		stack_bytes = MAX_STACK_BYTES;
	if (stack_bytes > ring_bytes / 4)
		stack_bytes = (uint32_t)(ring_bytes / 4);
	cprof_agent_control.generation++;
	fill_header(pid, rate ? rate : DEFAULT_RATE, stack_bytes, ring_bytes);
	__atomic_store_n(&agent_sess.generation, cprof_agent_control.generation, __ATOMIC_RELEASE);
	__atomic_store_n(&agent_sess.on, 1, __ATOMIC_RELEASE);
	set_state(CP_AGENT_ON);
	dl_iterate_phdr(adds_of, &seen_adds);
	agent_got_patch_all();
	agent_got_counts(&n, &patched, &skipped);
	agent_sess.hdr->patched = n;
	agent_sess.hdr->modules = patched;
	agent_sess.hdr->skipped_modules = skipped;
	agent_sess.hdr->fast_paths = (uint32_t)agent_fast_paths;
	return cprof_agent_control.memfd;
fail:
	if (pidfd >= 0)
		close(pidfd);
	return rc;
}

AGENT_EXPORT int cprof_agent_start(int pid, uint64_t rate, uint32_t stack_bytes,
				   uint64_t ring_bytes)
{
	int rc;

	pthread_mutex_lock(&patch_lock);
	rc = start_locked(pid, rate, stack_bytes, ring_bytes);
	cprof_agent_control.last_error = rc < 0 ? rc : 0;
	unlock_patch();
	return rc;
}

AGENT_EXPORT int cprof_agent_stop(void)
{
	agent_go_off(NULL, 1);
	wait_quiet();
	pthread_mutex_lock(&patch_lock);
	if (cprof_agent_control.state == CP_AGENT_OFF)
		release_reader(false);
	unlock_patch();
	return 0;
}

/*
 * "PID:RATE:STACK_BYTES:RING_BYTES[:SOCKET_FD]" into v (v[4] stays as it was when absent).
 * 0 or -EINVAL.
 */
static int parse_env(const char *s, uint64_t v[5])
{
	for (int i = 0; i < 5; i++) {
		char *end;

		errno = 0;
		v[i] = strtoull(s, &end, 10);
		if (errno || end == s || (*end != ':' && *end != '\0') || (*end == ':' && i == 4))
			return -EINVAL;
		if (*end == '\0')
			return i >= 3 ? 0 : -EINVAL;
		s = end + 1;
	}
	return -EINVAL;
}

/*
 * Hand the region to the reader through the socket it left us (never blocking, never raising
 * SIGPIPE): it then reads the ring even if this process exits before it would have found the
 * region in /proc. The socket stays open for the program an exec of this one becomes.
 */
static void hand_over(int sock, int rc)
{
	struct cp_agent_handover m = {
		.magic = CP_AGENT_MAGIC,
		.pid = (int32_t)getpid(),
		.memfd = rc < 0 ? rc : cprof_agent_control.memfd,
		.generation = cprof_agent_control.generation,
	};
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = { &m, sizeof(m) };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf),
	};
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);

	memset(&u, 0, sizeof(u));
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &m.memfd, sizeof(int));
	if (rc < 0) {
		/* No region: the message alone says why. */
		msg.msg_control = NULL;
		msg.msg_controllen = 0;
	}
	if (sendmsg(sock, &msg, MSG_DONTWAIT | MSG_NOSIGNAL) < 0 || rc < 0)
		return;
	/*
	 * Wait (boundedly) for the reader's byte: it has read this program's module map by then,
	 * which a command that exits within milliseconds would otherwise take with it.
	 */
	struct pollfd p = { .fd = sock, .events = POLLIN };
	char ack;

	if (poll(&p, 1, HANDOVER_WAIT_MS) > 0)
		(void)recv(sock, &ack, 1, MSG_DONTWAIT);
}

/*
 * Whether fd is still the reader's end of the handover socketpair: an AF_UNIX datagram socket
 * whose peer is the reader (a socketpair's peer credentials are its creator's). A program may
 * have closed the inherited fd and reused its number (for a connection of its own) before it
 * exec'd: nothing is sent to, or read from, anything else.
 */
static bool readers_socket(int fd, int reader)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	int type = 0;
	socklen_t tlen = sizeof(type);

	return getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 &&
	       len == sizeof(cred) && cred.pid == reader &&
	       getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) == 0 && type == SOCK_DGRAM;
}

/*
 * record's launch path: CPROF_AGENT set, start now, in a direct child of the reader only. The
 * variable stays set, so that a COMMAND that execs (a shell script's exec, a version manager's
 * shim) starts again in its final program (a new region, handed over again); processes that
 * COMMAND starts have another parent and leave the library idle.
 */
__attribute__((constructor)) static void agent_from_env(void)
{
	const char *s = getenv(CP_AGENT_ENV);
	uint64_t v[5] = { 0, 0, 0, 0, UINT64_MAX };
	bool parsed;
	int rc;

	if (!s)
		return;
	rc = parse_env(s, v);
	parsed = rc == 0 && v[0] <= INT32_MAX && v[2] <= UINT32_MAX &&
		 (v[4] == UINT64_MAX || v[4] <= INT32_MAX);
	if (!parsed)
		rc = -EINVAL;
	if (rc == 0 && (int)v[0] != (int)getppid())
		return;
	if (rc == 0)
		rc = cprof_agent_start((int)v[0], v[1], (uint32_t)v[2], v[3]);
	cprof_agent_control.last_error = rc < 0 ? rc : 0;
	if (parsed && v[4] != UINT64_MAX && readers_socket((int)v[4], (int)v[0]))
		hand_over((int)v[4], rc);
}
