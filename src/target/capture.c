/*
 * Capture of one thread: the chooser over the capture backends (capture_impl.h), and what the
 * backends share.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>

#include "capture_impl.h"
#include "proc.h"
#include "util.h"

/*
 * The backends in the order they are tried. Each looks at what the ones before it learned
 * (req->have_first); the stop backend takes every thread the others leave.
 */
static const struct cp_capture_backend *const backends[] = {
	&cp_capture_backend_blocked,
	&cp_capture_backend_live,
	&cp_capture_backend_sample,
	&cp_capture_backend_stop,
};

/*
 * The mapping that holds sp. The caller's maps may predate the thread (its stack mapped
 * since); then read them again. That costs a little stop time, but only in that rare case.
 */
const struct cp_map *cp_capture_stack_map(int pid, const struct cp_maps *given,
					  struct cp_maps *own, uint64_t sp)
{
	const struct cp_map *m = NULL;

	if (given)
		m = cp_maps_find(given, sp);
	if (!m && own->v)
		m = cp_maps_find(own, sp);
	if (!m && given && !own->v && cp_maps_read(pid, own) == 0)
		m = cp_maps_find(own, sp);
	return m;
}

/* Bytes to copy from sp: to the end of its mapping, at most max. */
size_t cp_capture_stack_span(const struct cp_map *m, uint64_t sp, size_t max, bool *truncated)
{
	uint64_t avail;

	*truncated = false;
	if (!m)
		return 0;
	avail = m->end - sp;
	if (avail > max) {
		*truncated = true;
		return max;
	}
	return (size_t)avail;
}

/* Shrink the copy buffer to what was read, after the thread runs again. */
void cp_capture_stack_finish(struct cp_stack *stack, uint8_t *buf, long got)
{
	if (got <= 0) {
		free(buf);
		stack->data = NULL;
		stack->len = 0;
		return;
	}
	stack->len = (size_t)got;
	stack->data = realloc(buf, (size_t)got);
	if (!stack->data)
		stack->data = buf;
}

bool cp_capture_syscall_may_eintr(long nr)
{
	switch (nr) {
	case SYS_read:
	case SYS_write:
	case SYS_readv:
	case SYS_writev:
	case SYS_recvfrom:
	case SYS_sendto:
	case SYS_recvmsg:
	case SYS_sendmsg:
	case SYS_recvmmsg:
	case SYS_sendmmsg:
	case SYS_accept:
	case SYS_accept4:
	case SYS_connect:
	case SYS_epoll_wait:
	case SYS_epoll_pwait:
	case 441:		/* epoll_pwait2 */
	case SYS_rt_sigtimedwait:
	case SYS_io_getevents:
	case 333:		/* io_pgetevents */
	case 426:		/* io_uring_enter */
	case SYS_semop:
	case SYS_semtimedop:
	case SYS_msgrcv:
	case SYS_msgsnd:
	case SYS_mq_timedreceive:
	case SYS_mq_timedsend:
	case SYS_ioctl:		/* device-specific: some fail with EINTR */
		return true;
	default:
		return false;
	}
}

/*
 * The request of one call: the thread's state when known, the maps. Also proves tid is a
 * thread of pid when it reads stat: the task directory is per process. A live capture
 * without the caller's stat learns the state from status, its first read.
 */
static int req_init(struct cp_capture_req *req, int pid, int tid,
		    const struct cp_capture_opts *opts, struct cp_maps *own)
{
	int ret;

	memset(req, 0, sizeof(*req));
	req->pid = pid;
	req->tid = tid;
	req->flags = opts ? opts->flags : 0;
	req->live = (req->flags & CP_CAPTURE_LIVE) && !(req->flags & CP_CAPTURE_STOP);
	req->max = (opts && opts->stack_max) ? opts->stack_max : CP_STACK_COPY_MAX;
	req->given = opts ? opts->maps : NULL;
	req->own = own;
	if (opts && opts->stat && opts->stat->tid == tid) {
		req->st = *opts->stat;
	} else if (!req->live) {
		ret = cp_proc_read_stat(pid, tid, &req->st);
		if (ret < 0)
			return ret;
	}
	if (req->st.state == 'Z' || req->st.state == 'X')
		return -ESRCH;
	if (!req->given)
		return cp_maps_read(pid, own);
	return 0;
}

int cp_capture_thread(int pid, int tid, const struct cp_capture_opts *opts,
		      struct cp_thread_snap *out)
{
	struct cp_mem by_pid = CP_MEM_BY_PID(pid);
	struct cp_maps own = { 0 };
	struct cp_capture_req req;
	int ret;

	if (pid <= 0 || tid <= 0 || !out)
		return -EINVAL;
	ret = req_init(&req, pid, tid, opts, &own);
	req.mem = opts && opts->mem ? opts->mem : &by_pid;
	if (ret == 0)
		ret = -EAGAIN;
	for (size_t i = 0; ret == -EAGAIN && i < CP_ARRAY_SIZE(backends); i++)
		if (backends[i]->applies(&req))
			ret = backends[i]->capture(&req, out);
	/* Left by every backend: a traced thread that ran, which no stop may take. */
	if (ret == -EAGAIN && req.have_first && req.first.tracer)
		ret = -EBUSY;
	cp_maps_release(&own);
	return ret;
}

void cp_thread_snap_release(struct cp_thread_snap *snap)
{
	if (!snap)
		return;
	free(snap->stack.data);
	snap->stack.data = NULL;
	snap->stack.len = 0;
}
