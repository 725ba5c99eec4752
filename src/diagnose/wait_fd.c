/* Waits on fds: read, write, accept, connect, poll and epoll, with what each fd is. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>

#include "fdinfo.h"
#include "proc.h"
#include "wait_classify.h"

/*
 * What one dump learnt about the process's fds. Hundreds of threads blocked on the same
 * socket or pipe are common (worker pools); describing the fd once instead of once per thread
 * saves a walk of /proc/PID/net, a pidfd_getfd and fdinfo reads each time. Only successful
 * descriptions are kept; the cache lives as long as the dump.
 */
struct fd_memo {
	int pid;
	int fd;
	bool for_write;
	struct cp_fd_desc d;
};

struct cp_wait_cache *cp_wait_cache_new(void)
{
	struct cp_wait_cache *c = calloc(1, sizeof(*c));

	if (c && (!(c->pipes = cp_pipe_index_new()) || !(c->net = cp_net_index_new()))) {
		cp_pipe_index_free(c->pipes);
		free(c);
		return NULL;
	}
	return c;
}

void cp_wait_cache_free(struct cp_wait_cache *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n; i++)
		cp_fd_desc_release(&c->v[i].d);
	free(c->v);
	free(c->locks);
	cp_pipe_index_free(c->pipes);
	cp_net_index_free(c->net);
	free(c);
}

static const struct fd_memo *memo_find(const struct cp_wait_cache *c, int pid, int fd,
				       bool for_write)
{
	for (size_t i = 0; c && i < c->n; i++)
		if (c->v[i].fd == fd && c->v[i].pid == pid && c->v[i].for_write == for_write)
			return &c->v[i];
	return NULL;
}

/* Keep a copy of d; silently not when full or out of memory (a cache, not a record). */
static void memo_add(struct cp_wait_cache *c, int pid, int fd, bool for_write,
		     const struct cp_fd_desc *d)
{
	struct fd_memo *m;

	if (!c || c->n >= WAIT_CACHE_MAX || !d->object)
		return;
	if (c->n == c->alloc) {
		size_t na = c->alloc ? c->alloc * 2 : 16;
		struct fd_memo *v = realloc(c->v, na * sizeof(*v));

		if (!v)
			return;
		c->v = v;
		c->alloc = na;
	}
	m = &c->v[c->n];
	m->pid = pid;
	m->fd = fd;
	m->for_write = for_write;
	m->d = *d;
	m->d.object = strdup(d->object);
	m->d.detail = d->detail ? strdup(d->detail) : NULL;
	if (!m->d.object || (d->detail && !m->d.detail)) {
		cp_fd_desc_release(&m->d);
		return;
	}
	c->n++;
}

/* A copy of the description of (pid, fd), from the cache or from /proc. */
static int fd_describe_cached(const struct cp_wait_input *in, int fd, bool for_write,
			      struct cp_fd_desc *d)
{
	const struct fd_memo *m = memo_find(in->cache, in->pid, fd, for_write);
	int ret;

	if (m) {
		cp_fd_desc_init(d);
		*d = m->d;
		d->object = strdup(m->d.object);
		d->detail = m->d.detail ? strdup(m->d.detail) : NULL;
		if (!d->object || (m->d.detail && !d->detail)) {
			cp_fd_desc_release(d);
			return -ENOMEM;
		}
		return 0;
	}
	ret = cp_fd_describe(in->pid, fd, for_write, in->cache ? in->cache->pipes : NULL,
			     in->cache ? in->cache->net : NULL, d);
	if (ret == 0)
		memo_add(in->cache, in->pid, fd, for_write, d);
	return ret;
}

/*
 * Fill fd, object and (for sockets) the timeout of an fd wait; *desc receives a readable
 * description (owned) or NULL.
 */
static int describe_fd(const struct cp_wait_input *in, int fd, bool for_write,
		       struct cp_wait *w, char **desc)
{
	struct cp_fd_desc d;
	char link[256];

	*desc = NULL;
	w->fd = fd;
	cp_fd_desc_init(&d);
	if (fd_describe_cached(in, fd, for_write, &d) == 0 && d.object) {
		w->object = d.object;
		d.object = NULL;
		*desc = d.detail;
		d.detail = NULL;
		if (d.is_socket) {
			w->timeout_ns = d.timeout_ns;
			w->timeout_unknown = d.timeout_unknown;
		}
		cp_fd_desc_release(&d);
		return 0;
	}
	cp_fd_desc_release(&d);
	if (cp_proc_read_fd_link(in->pid, fd, link, sizeof(link)) < 0)
		return 0;
	w->object = strdup(link);
	if (!w->object)
		return -ENOMEM;
	/* A socket's SO_RCVTIMEO / SO_SNDTIMEO was not readable: do not claim "no timeout". */
	if (starts_with(link, "socket:"))
		w->timeout_unknown = true;
	return 0;
}

/* Detail of an fd wait: "read fd 5 pipe:[123] no timeout". */
static int fd_detail(struct cp_wait *w, const char *sys, const char *desc)
{
	char tmo[64];

	wait_format_timeout(tmo, sizeof(tmo), w, false);
	if (w->fd < 0)
		return wait_set_detail(w, "%s on an unknown fd, %s", sys, tmo);
	return wait_set_detail(w, "%s fd %d %s, %s", sys, w->fd,
			       desc && *desc ? desc : (w->object ? w->object : "(unknown)"), tmo);
}

int wait_classify_fd(const struct cp_wait_input *in, const struct call *c, struct cp_wait *w,
		     enum cp_wait_kind kind, bool for_write)
{
	char *desc = NULL;
	int ret = 0;

	w->kind = kind;
	w->timeout_ns = -1;
	if (c->args)
		ret = describe_fd(in, (int)c->args[0], for_write, w, &desc);
	else
		w->timeout_unknown = true;
	if (ret == 0)
		ret = fd_detail(w, w->syscall ? w->syscall : "io", desc);
	free(desc);
	return ret;
}

int wait_classify_poll(const struct cp_wait_input *in, struct call *c, struct cp_wait *w)
{
	const char *sys = w->syscall ? w->syscall : "poll";
	char tmo[64], *desc = NULL;
	int ret = 0;

	w->kind = CP_WAIT_POLL;
	if (!c->args) {
		w->timeout_unknown = true;
		return wait_set_detail(w, "%s, timeout unknown", sys);
	}
	switch (c->nr) {
	case SYS_poll:
	case SYS_ppoll:
		if (c->nr == SYS_poll)
			wait_timeout_from_ms(w, c->args[2]);
		else
			wait_timeout_from_ptr(in, c, w, c->args[2], false, false, 0);
		wait_format_timeout(tmo, sizeof(tmo), w, false);
		return wait_set_detail(w, "%s on %llu fds, %s", sys, (unsigned long long)c->args[1],
				       tmo);
	case SYS_select:
	case SYS_pselect6:
		wait_timeout_from_ptr(in, c, w, c->args[4], c->nr == SYS_select, false, 0);
		wait_format_timeout(tmo, sizeof(tmo), w, false);
		return wait_set_detail(w, "%s on fds below %d, %s", sys, (int)c->args[0], tmo);
	default:
		/* epoll: the epoll fd is the object waited on. */
		if (c->nr == SYS_epoll_pwait2)
			wait_timeout_from_ptr(in, c, w, c->args[3], false, false, 0);
		else
			wait_timeout_from_ms(w, c->args[3]);
		{
			int64_t t = w->timeout_ns;
			bool unknown = w->timeout_unknown;

			ret = describe_fd(in, (int)c->args[0], false, w, &desc);
			w->timeout_ns = t;
			w->timeout_unknown = unknown;
		}
		if (ret == 0) {
			wait_format_timeout(tmo, sizeof(tmo), w, false);
			const char *what = desc && *desc ? desc : w->object;

			ret = wait_set_detail(w, "%s on fd %d %s, %s", sys, w->fd,
					      what ? what : "(unknown)", tmo);
		}
		free(desc);
		return ret;
	}
}

