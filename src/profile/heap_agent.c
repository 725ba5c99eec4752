/* The allocation sampler seen from cprof: find the library, start it, map its region, stop it. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent_proto.h"
#include "heap_agent.h"
#include "inject.h"
#include "maps.h"
#include "mem.h"
#include "proc.h"
#include "util.h"

#ifndef CP_AGENT_LIBDIR
#define CP_AGENT_LIBDIR "/usr/local/lib"
#endif

/* The region's size at most: a header and a ring of CP_HEAP_RING_BYTES, with room to spare. */
#define REGION_MAX (CP_HEAP_RING_BYTES * 4ull)

static bool readable_file(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int cp_heap_agent_path(char *buf, size_t len)
{
	const char *env = getenv("CPROF_AGENT_LIBRARY");
	char self[4096], *dir;
	ssize_t n;

	if (env && env[0] && readable_file(env) && strlen(env) < len) {
		snprintf(buf, len, "%s", env);
		return 0;
	}
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		self[n] = '\0';
		dir = dirname(self);
		static const char *const rel[] = { "", "../src/agent/", "../lib/cprof/", "../lib/" };

		for (size_t i = 0; i < CP_ARRAY_SIZE(rel); i++) {
			if ((size_t)snprintf(buf, len, "%s/%s%s", dir, rel[i], CP_AGENT_LIBRARY) <
				    len &&
			    readable_file(buf))
				return 0;
		}
	}
	static const char *const dirs[] = { CP_AGENT_LIBDIR "/cprof", CP_AGENT_LIBDIR };

	for (size_t i = 0; i < CP_ARRAY_SIZE(dirs); i++)
		if ((size_t)snprintf(buf, len, "%s/%s", dirs[i], CP_AGENT_LIBRARY) < len &&
		    readable_file(buf))
			return 0;
	return -ENOENT;
}

void cp_heap_agent_env(char *buf, size_t len, uint64_t rate, uint32_t stack_bytes, int sock)
{
	int n = snprintf(buf, len, "%d:%" PRIu64 ":%u:%u", (int)getpid(), rate, stack_bytes,
			 CP_HEAP_RING_BYTES);

	if (sock >= 0 && n > 0 && (size_t)n < len)
		snprintf(buf + n, len - (size_t)n, ":%d", sock);
}

/* Map the region behind fd (ours, which a then owns; closed on failure). 0 or -errno. */
static int map_fd(struct cp_heap_agent *a, int fd, int tfd)
{
	struct stat st;
	void *p;

	a->fd = fd;
	if (fstat(a->fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    st.st_size < (off_t)sizeof(struct cp_agent_header) ||
	    (uint64_t)st.st_size > REGION_MAX) {
		close(a->fd);
		a->fd = -1;
		return -EBADMSG;
	}
	p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, a->fd, 0);
	if (p == MAP_FAILED) {
		int err = -errno;

		close(a->fd);
		a->fd = -1;
		return err;
	}
	a->target_fd = tfd;
	a->region = p;
	a->region_bytes = (size_t)st.st_size;
	return 0;
}

/* Map the region behind the target's fd tfd. 0 or -errno. */
static int map_region(struct cp_heap_agent *a, int tfd)
{
	char path[64];
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/fd/%d", a->pid, tfd);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	return map_fd(a, fd, tfd);
}

static void init(struct cp_heap_agent *a, int pid, const char *path)
{
	memset(a, 0, sizeof(*a));
	a->pid = pid;
	a->fd = -1;
	a->target_fd = -1;
	snprintf(a->path, sizeof(a->path), "%s", path);
}

/* The header must be the session we started: our pid as reader. */
static int check_header(struct cp_heap_agent *a, char *why, size_t whylen)
{
	const struct cp_agent_header *h = a->region;

	if (h->magic != CP_AGENT_MAGIC || h->version != CP_AGENT_VERSION) {
		snprintf(why, whylen, "the sampler's memory is not of this cprof's version");
		return -EPROTO;
	}
	if (h->reader_pid != (int)getpid()) {
		snprintf(why, whylen, "the sampler is being read by process %d", h->reader_pid);
		return -EBUSY;
	}
	a->generation = h->generation;
	return 0;
}

int cp_heap_agent_inject(struct cp_heap_agent *a, int pid, const char *path, uint64_t rate,
			 uint32_t stack_bytes, int timeout_ms, char *why, size_t whylen)
{
	struct cp_inject_opts io = { .timeout_ms = timeout_ms };
	struct cp_inject *in = NULL;
	uint64_t start, ret, args[4];
	int err;

	init(a, pid, path);
	a->injected = true;
	err = cp_inject_open(pid, &io, &in, why, whylen);
	if (err < 0)
		return err;
	err = cp_inject_load(in, path, &a->base, why, whylen);
	if (err < 0)
		goto done;
	if (cp_inject_symbol(in, a->base, CP_AGENT_START_SYMBOL, &start) < 0 ||
	    cp_inject_symbol(in, a->base, CP_AGENT_STOP_SYMBOL, &a->stop_fn) < 0) {
		snprintf(why, whylen, "%s has no %s/%s", path, CP_AGENT_START_SYMBOL,
			 CP_AGENT_STOP_SYMBOL);
		err = -ENOENT;
		goto done;
	}
	(void)cp_inject_symbol(in, a->base, CP_AGENT_CONTROL_SYMBOL, &a->control);
	args[0] = (uint64_t)getpid();
	args[1] = rate;
	args[2] = stack_bytes;
	args[3] = CP_HEAP_RING_BYTES;
	err = cp_inject_call(in, start, args, 4, &ret, why, whylen);
	if (err < 0)
		goto done;
	if ((int)ret < 0) {
		err = (int)ret;
		snprintf(why, whylen, "the sampler did not start: %s", strerror(-err));
		goto done;
	}
	err = map_region(a, (int)ret);
	if (err < 0) {
		snprintf(why, whylen, "cannot map the sampler's memory: %s", strerror(-err));
		goto stop;
	}
	err = check_header(a, why, whylen);
	if (err == 0)
		goto done;
stop:
	/* Started but unusable: turned off again before giving up. */
	(void)cp_inject_call(in, a->stop_fn, args, 0, &ret, NULL, 0);
done:
	cp_inject_close(in);
	return err;
}

/* After mapping a preloaded sampler's region (err: how that went): its header checked. */
static int mapped(struct cp_heap_agent *a, int err, char *why, size_t whylen)
{
	if (err < 0) {
		snprintf(why, whylen, "cannot map the sampler's memory: %s", strerror(-err));
		return err;
	}
	err = check_header(a, why, whylen);
	if (err < 0)
		cp_heap_agent_release(a);
	return err;
}

/* The offset of dynamic symbol name from the load address of the ELF file path, or 0. */
static uint64_t dynsym_offset(const char *path, const char *name)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	uint64_t value = 0, low = 0;
	int err;

	if (fd < 0)
		return 0;
	err = cp_inject_elf_dynsym(fd, name, &value, &low);
	close(fd);
	return err < 0 || value < low ? 0 : value - low;
}

/* The agent's load address in pid (its mapping at file offset 0), or 0. */
static uint64_t agent_base(int pid)
{
	struct cp_maps maps = { 0 };
	uint64_t base = 0;

	if (cp_maps_read(pid, &maps) < 0)
		return 0;
	for (size_t i = 0; i < maps.n && !base; i++) {
		const char *p = maps.v[i].path, *slash = p ? strrchr(p, '/') : NULL;

		if (slash && !strcmp(slash + 1, CP_AGENT_LIBRARY) && maps.v[i].offset == 0)
			base = maps.v[i].start;
	}
	cp_maps_release(&maps);
	return base;
}

int cp_heap_agent_find(struct cp_heap_agent *a, int pid, const char *path, char *why,
		       size_t whylen)
{
	struct cp_agent_control c;
	uint64_t off = a->pid == pid ? a->control_off : 0;

	/* Looked up anew each time: an exec moves the library (a shell's exec of COMMAND). */
	init(a, pid, path);
	if (!off)
		off = dynsym_offset(path, CP_AGENT_CONTROL_SYMBOL);
	if (!off) {
		snprintf(why, whylen, "%s has no %s", path, CP_AGENT_CONTROL_SYMBOL);
		return -ENOENT;
	}
	a->control_off = off;
	a->base = agent_base(pid);
	if (!a->base)
		return -EAGAIN;
	a->control = a->base + off;
	if (cp_mem_read_pid(pid, a->control, &c, sizeof(c)) != (long)sizeof(c))
		return -EAGAIN;
	if (c.magic != CP_AGENT_MAGIC)
		return -EAGAIN;
	if (c.last_error < 0 && c.memfd < 0) {
		snprintf(why, whylen, "the sampler did not start: %s", strerror(-c.last_error));
		return c.last_error;
	}
	if (c.memfd < 0 || c.state != CP_AGENT_ON)
		return -EAGAIN;
	return mapped(a, map_region(a, c.memfd), why, whylen);
}

/*
 * One handover from sock: its fd (ours now) and message; -ENODATA for a well-formed message
 * without an fd (a start that failed: m->memfd is its -errno), -EBADMSG for anything else,
 * -EAGAIN when none is pending.
 */
static int receive_one(int sock, struct cp_agent_handover *m)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = { m, sizeof(*m) };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf),
	};
	struct cmsghdr *c;
	ssize_t n;
	int fd = -1;

	n = recvmsg(sock, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	if (n < 0)
		return -EAGAIN;
	/* One fd is expected; any other passed (a hostile sender) is closed, never kept. */
	for (c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
		size_t nfd;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS ||
		    c->cmsg_len < CMSG_LEN(0))
			continue;
		nfd = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < nfd; i++) {
			int one;

			memcpy(&one, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (fd < 0 && nfd == 1)
				fd = one;
			else
				close(one);
		}
	}
	if (n != (ssize_t)sizeof(*m) || (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) ||
	    m->magic != CP_AGENT_MAGIC) {
		if (fd >= 0)
			close(fd);
		return -EBADMSG;
	}
	return fd >= 0 ? fd : -ENODATA;
}

int cp_heap_agent_receive(struct cp_heap_agent *a, int sock, int pid, const char *path,
			  char *why, size_t whylen)
{
	struct cp_agent_handover m;
	char ignored[160];
	int fd;

	init(a, pid, path);
	for (;;) {
		fd = receive_one(sock, &m);
		if (fd == -EAGAIN)
			return -EAGAIN;
		if (fd == -ENODATA && m.pid == pid && m.memfd < 0 && m.memfd >= -4095) {
			snprintf(why, whylen, "the sampler did not start: %s", strerror(-m.memfd));
			return -ECANCELED;
		}
		if (fd < 0)
			continue;
		if (m.pid != pid) {
			close(fd);	/* not the command's own: a process it started */
			continue;
		}
		/* A region that does not map or check out is no sampler's: dropped. */
		if (mapped(a, map_fd(a, fd, m.memfd), ignored, sizeof(ignored)) == 0)
			return 0;
		init(a, pid, path);
	}
}

bool cp_heap_agent_pending(int sock)
{
	struct pollfd p = { .fd = sock, .events = POLLIN };

	return sock >= 0 && poll(&p, 1, 0) > 0 && (p.revents & POLLIN);
}

bool cp_heap_agent_replaced(const struct cp_heap_agent *a)
{
	struct stat ours, theirs;
	char path[64];

	if (a->fd < 0 || fstat(a->fd, &ours) < 0)
		return false;
	struct cp_task_stat st;
	int err;

	snprintf(path, sizeof(path), "/proc/%d/fd/%d", a->pid, a->target_fd);
	if (stat(path, &theirs) == 0)
		return theirs.st_ino != ours.st_ino || theirs.st_dev != ours.st_dev;
	err = errno;
	/* No such fd in a live process: closed at its exec (the memfd is close-on-exec). */
	return err == ENOENT && cp_proc_read_stat(a->pid, 0, &st) == 0 && st.state != 'Z' &&
	       st.state != 'X';
}

static void request_stop(struct cp_heap_agent *a)
{
	struct cp_agent_header *h = a->region;

	if (h && h->generation == a->generation)
		__atomic_store_n(&h->state, CP_AGENT_STOP, __ATOMIC_RELEASE);
}

int cp_heap_agent_stop(struct cp_heap_agent *a)
{
	struct cp_inject_opts io = { .timeout_ms = 0 };
	struct cp_inject *in = NULL;
	uint64_t ret = 0, none[1] = { 0 };
	int err;

	if (!a->region)
		return 0;
	/* Asked first through the header: a sampler that cannot be called still obeys it. */
	request_stop(a);
	if (!a->injected || !a->stop_fn)
		return 0;
	err = cp_inject_open(a->pid, &io, &in, NULL, 0);
	if (err == 0) {
		err = cp_inject_call(in, a->stop_fn, none, 0, &ret, NULL, 0);
		cp_inject_close(in);
	}
	if (err == 0 && (int)ret < 0)
		err = (int)ret;
	return err;
}

void cp_heap_agent_free_ring(struct cp_heap_agent *a)
{
	const struct cp_agent_header *h = a->region;
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);

	if (!h || h->header_bytes % page || h->ring_bytes % page ||
	    h->header_bytes + h->ring_bytes > a->region_bytes)
		return;
	madvise((uint8_t *)a->region + h->header_bytes, h->ring_bytes, MADV_REMOVE);
}

void cp_heap_agent_release(struct cp_heap_agent *a)
{
	if (a->region)
		munmap(a->region, a->region_bytes);
	if (a->fd >= 0)
		close(a->fd);
	a->region = NULL;
	a->fd = -1;
	a->control = 0;
}
