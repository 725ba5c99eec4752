/* The live capture of many threads in one sweep (cp_capture_live_many). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "capture_impl.h"
#include "proc.h"

/*
 * The live capture of many threads at once: the steps of the live backend, each over the whole
 * batch. First every thread's status (count, state, tracer) and syscall line (sp, pc); then
 * one process_vm_readv with a vector per thread for all their stacks; then every status
 * again: one call for the whole batch costs far less than one per thread, whatever their
 * sizes (each call pins the pages of another mm).
 * The second look reads status only: a thread that ran in between was switched out again
 * (its count moved) or is still on its way (its state is R now). Count and state unchanged
 * mean it never ran, so its syscall line, which the kernel takes from the registers it saved
 * on entry, is unchanged too. Anything else is left to cp_capture_thread (-EAGAIN).
 * With the CPUs' context-switch records (opts->switches), a thread that none of them names
 * since the mark taken before the first looks did not run, and needs no second look: a
 * thread is switched in, and the record written, before it runs an instruction of its own,
 * so a copy that saw the thread's writes is read before a ring head that shows the record
 * (x86's stores are seen in order). The first look then reads stat rather than status
 * (state and name, cheaper for the kernel to write, but no count), and a thread the records
 * name, or every thread of a sweep whose records are incomplete, is left to
 * cp_capture_thread.
 */
struct many_slot {
	struct cp_live_files lf;
	struct cp_live_status s1;
	struct cp_task_syscall sc;
	uint8_t *buf;
	size_t span;
	bool truncated;
	long got;
};

/* Open and take the first look at one thread; 0 when its stack is to be copied. */
static int many_first_look(int taskfd, int pid, int tid, bool stat_only,
			   const struct cp_maps *given, struct cp_maps *own, size_t max,
			   bool stopped_ok, struct many_slot *s)
{
	char text[256];
	const struct cp_map *m;
	int ret = cp_live_open(taskfd, pid, tid, stat_only, &s->lf);

	if (ret < 0)
		return ret;
	ret = cp_live_read_status(&s->lf, &s->s1);
	if (ret == 0)
		ret = cp_live_read_syscall(&s->lf, text, sizeof(text), &s->sc);
	if (ret == 0 && s->s1.tracer)
		return -EAGAIN;		/* traced by someone: cp_capture_thread decides */
	if (ret < 0)
		return ret;
	if (s->s1.state == 'Z' || s->s1.state == 'X')
		return -ESRCH;
	if (s->s1.state != 'S' && s->s1.state != 'D' &&
	    !(stopped_ok && (s->s1.state == 'T' || s->s1.state == 't')))
		return -EAGAIN;
	if (s->sc.running || !s->sc.sp || !s->sc.pc)
		return -EAGAIN;
	m = cp_capture_stack_map(pid, given, own, s->sc.sp);
	s->span = cp_capture_stack_span(m, s->sc.sp, max, &s->truncated);
	if (!s->span)
		return -EAGAIN;
	s->buf = malloc(s->span);
	return s->buf ? 0 : -ENOMEM;
}

static int cmp_fd(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;

	return (x > y) - (x < y);
}

/*
 * Close the sweep's files, up to 64: sorted, they fall in a few unbroken runs of numbers
 * (the gaps are files other code keeps open), and one close_range (Linux 5.9) closes a run.
 * A run of our own numbers holds no one else's file, since each of its numbers is ours.
 */
static void many_close(struct many_slot *slot, size_t n)
{
	int fd[2 * CP_CAPTURE_MANY_MAX];
	size_t count = 0, i = 0;

	for (size_t k = 0; k < n; k++) {
		if (slot[k].lf.sc_fd >= 0)
			fd[count++] = slot[k].lf.sc_fd;
		if (slot[k].lf.status_fd >= 0)
			fd[count++] = slot[k].lf.status_fd;
		slot[k].lf.sc_fd = slot[k].lf.status_fd = -1;
	}
	qsort(fd, count, sizeof(*fd), cmp_fd);
	while (i < count) {
		size_t j = i;

		while (j + 1 < count && fd[j + 1] == fd[j] + 1)
			j++;
		if (j == i || syscall(SYS_close_range, (unsigned int)fd[i], (unsigned int)fd[j],
				      0u) != 0) {
			for (size_t k = i; k <= j; k++)
				close(fd[k]);
		}
		i = j + 1;
	}
}

/* Copy the stacks of the slots with ret 0: one call, then one by one from a fault on. */
static void many_copy(const struct cp_mem *mem, struct many_slot *slot, const int *ret, size_t n)
{
	struct iovec local[CP_CAPTURE_MANY_MAX], remote[CP_CAPTURE_MANY_MAX];
	size_t idx[CP_CAPTURE_MANY_MAX], k = 0, done = 0;
	ssize_t got;

	for (size_t i = 0; i < n; i++) {
		if (ret[i] != 0)
			continue;
		local[k].iov_base = slot[i].buf;
		local[k].iov_len = slot[i].span;
		remote[k].iov_base = (void *)(uintptr_t)slot[i].sc.sp;
		remote[k].iov_len = slot[i].span;
		idx[k++] = i;
	}
	if (!k)
		return;
	got = process_vm_readv(mem->pid, local, k, remote, k, 0);
	/* The call stops at the first vector it cannot read in full: those before are whole. */
	for (size_t j = 0; j < k && got > 0 && (size_t)got >= slot[idx[j]].span; j++) {
		slot[idx[j]].got = (long)slot[idx[j]].span;
		got -= (ssize_t)slot[idx[j]].span;
		done++;
	}
	for (size_t j = done; j < k; j++) {
		struct many_slot *s = &slot[idx[j]];

		s->got = cp_mem_read(mem, s->sc.sp, s->buf, s->span);
		if (s->got > 0 && (size_t)s->got < s->span)
			s->truncated = true;
	}
}

int cp_capture_live_many(int pid, const int *tids, size_t n, const struct cp_capture_opts *opts,
			 struct cp_thread_snap *out, int *ret)
{
	size_t max = (opts && opts->stack_max) ? opts->stack_max : CP_STACK_COPY_MAX;
	const struct cp_maps *given = opts ? opts->maps : NULL;
	const struct cp_switch_watch *sw = opts ? opts->switches : NULL;
	struct many_slot slot[CP_CAPTURE_MANY_MAX];
	bool ran[CP_CAPTURE_MANY_MAX];
	uint64_t heads[CP_MAX_CPUS];
	bool known = false;
	struct cp_maps own = { 0 };
	char path[64];
	int taskfd;

	if (pid <= 0 || !tids || !out || !ret || n > CP_CAPTURE_MANY_MAX)
		return -EINVAL;
	if (!given) {
		int err = cp_maps_read(pid, &own);

		if (err < 0)
			return err;
	}
	/* A ring three quarters full could fill during the sweep: ask the threads instead. */
	if (sw && (sw->n > CP_MAX_CPUS || !cp_switch_watch_room(sw)))
		sw = NULL;
	if (sw)
		cp_switch_watch_mark(sw, heads);
	memset(slot, 0, n * sizeof(*slot));
	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	taskfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	for (size_t i = 0; i < n; i++) {
		slot[i].lf.sc_fd = slot[i].lf.status_fd = -1;
		ret[i] = many_first_look(taskfd, pid, tids[i], sw != NULL, given, &own, max,
					 opts && (opts->flags & CP_CAPTURE_STOPPED), &slot[i]);
	}
	if (taskfd >= 0)
		close(taskfd);
	many_copy(opts && opts->mem ? opts->mem : &CP_MEM_BY_PID(pid), slot, ret, n);
	if (sw)
		known = cp_switch_watch_ran(sw, heads, tids, n, ran) == 0;
	for (size_t i = 0; i < n; i++) {
		struct many_slot *s = &slot[i];
		struct cp_live_status s2;

		if (ret[i] == 0 && s->got == -ESRCH)
			ret[i] = -ESRCH;
		else if (ret[i] == 0 && s->got <= 0)
			ret[i] = -EAGAIN;
		if (ret[i] == 0 && !(known && !ran[i]) && !s->s1.has_count)
			ret[i] = -EAGAIN;	/* no count to compare: cp_capture_thread asks */
		if (ret[i] == 0 && !(known && !ran[i])) {
			ret[i] = cp_live_read_status(&s->lf, &s2);
			if (ret[i] == 0 && (s2.tracer || s2.count != s->s1.count ||
					    s2.state != s->s1.state))
				ret[i] = -EAGAIN;
		}
		if (ret[i] != 0) {
			free(s->buf);
			continue;
		}
		memset(&out[i], 0, sizeof(out[i]));
		out[i].tid = tids[i];
		cp_capture_regs_from_syscall(&s->sc, &out[i].regs);
		out[i].stack.start = s->sc.sp;
		out[i].stack.truncated = s->truncated;
		cp_capture_stack_finish(&out[i].stack, s->buf, s->got);
		out[i].sc = s->sc;
		out[i].has_syscall = true;
		out[i].live = true;
		out[i].verified = true;
		out[i].has_state = true;
		out[i].state = s->s1.state;
		memcpy(out[i].comm, s->s1.comm, sizeof(out[i].comm));
	}
	many_close(slot, n);
	cp_maps_release(&own);
	return 0;
}
