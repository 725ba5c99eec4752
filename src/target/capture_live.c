/*
 * The live backends: a thread off CPU captured without stopping it, from /proc/PID/task/TID
 * (syscall, status) and a copy of its stack taken while it sleeps.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "capture_impl.h"
#include "proc.h"

/*
 * Live capture of a thread that is off CPU. While a thread sleeps in the kernel, all its user
 * registers sit in its kernel entry frame; /proc/PID/task/TID/syscall shows two of them, sp
 * and pc (and the argument registers, which unwinding never needs), and its stack cannot
 * change except by other threads' writes (which do not touch return addresses and saved
 * registers). So: read the thread's context switch count, its sp and pc, copy the stack, read
 * both again. A thread that ran in between was switched out again (the count moved) or is
 * running now (the syscall line says so); if neither, the copy is exactly what a stop would
 * have given, minus the other registers. The count comes from status, which also names a
 * tracer: a thread someone else traces is refused (-EBUSY) unless CP_CAPTURE_TRACED allows it;
 * then it is captured the same way, and one in a ptrace or group stop ('t', 'T') too: it does
 * not run until its tracer lets it, so its copy is verified like a sleeping thread's.
 */
#define LIVE_TRIES 3

static int open_task_file_at(int taskfd, int pid, int tid, const char *name)
{
	char path[64];
	int fd;

	if (taskfd >= 0) {
		snprintf(path, sizeof(path), "%d/%s", tid, name);
		fd = openat(taskfd, path, O_RDONLY | O_CLOEXEC);
	} else {
		snprintf(path, sizeof(path), "/proc/%d/task/%d/%s", pid, tid, name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
	}
	if (fd < 0)
		return errno == ENOENT ? -ESRCH : -errno;
	return fd;
}

/* The whole file from its start; proc's seq files regenerate on a read at offset 0. */
static int pread_text(int fd, char *buf, size_t size)
{
	ssize_t n;

	do
		n = pread(fd, buf, size - 1, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == ESRCH || errno == ENOENT ? -ESRCH : -errno;
	if (n == 0)
		return -ESRCH;	/* the task is being torn down */
	buf[n] = '\0';
	return 0;
}

/* "Name:" is escaped by the kernel: a newline reads "\n", a backslash "\\". */
static void unescape_name(const char *p, char *out, size_t size)
{
	size_t n = 0;

	while (*p && *p != '\n' && n + 1 < size) {
		if (p[0] == '\\' && p[1] == 'n') {
			out[n++] = '\n';
			p += 2;
		} else if (p[0] == '\\' && p[1] == '\\') {
			out[n++] = '\\';
			p += 2;
		} else {
			out[n++] = *p++;
		}
	}
	out[n] = '\0';
}

/*
 * Parse status (ls->tracer: another process that traces the thread, or 0). Or stat
 * (lf->stat_only), cheaper for the kernel to write: state and name, but no count and no
 * tracer, for a sweep that has the CPUs' switch records to tell whether it ran (and needs no
 * tracer's leave to copy a stack).
 */
int cp_live_read_status(const struct cp_live_files *lf, struct cp_live_status *ls)
{
	struct cp_task_status st;
	char buf[16384];
	const char *p;
	int ret = pread_text(lf->status_fd, buf, lf->stat_only ? 1024 : sizeof(buf));

	if (ret < 0)
		return ret;
	if (lf->stat_only) {
		struct cp_task_stat ts;

		if (cp_proc_parse_stat(buf, &ts) < 0)
			return -EINVAL;
		ls->has_count = false;
		ls->tracer = 0;
		ls->state = ts.state;
		memcpy(ls->comm, ts.comm, sizeof(ls->comm));
		return 0;
	}
	if (cp_proc_parse_status(buf, &st) < 0)
		return -EINVAL;
	ls->tracer = st.tracer_pid;
	ls->count = st.voluntary_ctxt_switches + st.nonvoluntary_ctxt_switches;
	ls->has_count = true;
	ls->state = '?';
	p = strstr(buf, "\nState:\t");
	if (p)
		ls->state = p[8];
	ls->comm[0] = '\0';
	if (!strncmp(buf, "Name:\t", 6))
		unescape_name(buf + 6, ls->comm, sizeof(ls->comm));
	return 0;
}

int cp_live_read_syscall(const struct cp_live_files *lf, char *text, size_t size,
		   struct cp_task_syscall *sc)
{
	int ret = pread_text(lf->sc_fd, text, size);

	if (ret < 0)
		return ret;
	return cp_proc_parse_syscall(text, sc) < 0 ? -EINVAL : 0;
}

void cp_live_close(struct cp_live_files *lf)
{
	if (lf->sc_fd >= 0)
		close(lf->sc_fd);
	if (lf->status_fd >= 0)
		close(lf->status_fd);
	lf->sc_fd = lf->status_fd = -1;
}

int cp_live_open(int taskfd, int pid, int tid, bool stat_only, struct cp_live_files *lf)
{
	lf->stat_only = stat_only;
	lf->sc_fd = open_task_file_at(taskfd, pid, tid, "syscall");
	if (lf->sc_fd < 0)
		return lf->sc_fd;
	lf->status_fd = open_task_file_at(taskfd, pid, tid, stat_only ? "stat" : "status");
	if (lf->status_fd < 0) {
		int err = lf->status_fd;

		close(lf->sc_fd);
		lf->sc_fd = -1;
		return err;
	}
	return 0;
}

/*
 * The registers /proc/PID/task/TID/syscall shows: sp and pc, and for a thread in a system
 * call its argument registers as they were at entry, which the kernel leaves untouched for
 * user space (only rax, rcx and r11 change across a syscall). Unwinding seldom needs them,
 * but __vfork keeps its return address in rdi while its parent sleeps.
 */
void cp_capture_regs_from_syscall(const struct cp_task_syscall *sc, struct cp_regs *r)
{
	static const enum cp_reg args[6] = { CP_REG_RDI, CP_REG_RSI, CP_REG_RDX,
					     CP_REG_R10, CP_REG_R8,  CP_REG_R9 };

	memset(r, 0, sizeof(*r));
	r->r[CP_REG_RSP] = sc->sp;
	r->r[CP_REG_RIP] = sc->pc;
	r->valid = (1u << CP_REG_RSP) | (1u << CP_REG_RIP);
	if (!sc->in_syscall)
		return;
	for (int i = 0; i < 6; i++) {
		r->r[args[i]] = sc->args[i];
		r->valid |= 1u << args[i];
	}
}

/* Group-stopped or traced threads: the stop backend knows how to leave them as they were. */
static bool live_applies(const struct cp_capture_req *req)
{
	return req->live && req->st.state != 'T' && req->st.state != 't';
}

/*
 * Try to capture the thread live. Returns 0 with *out filled (live, maybe verified), -EAGAIN
 * when the thread has to be sampled or stopped instead (running, or it kept running during
 * every copy and a stop is harmless), or -errno. req->sc_first receives the first syscall
 * line read, which tells the later backends what the thread was doing before anyone touched
 * it.
 */
static int live_capture(struct cp_capture_req *req, struct cp_thread_snap *out)
{
	int pid = req->pid, tid = req->tid;
	bool is_d = false;
	struct cp_live_files lf = { .sc_fd = -1, .status_fd = -1 };
	char text1[256], text2[256];
	struct cp_task_syscall sc, sc2;
	uint8_t *buf = NULL;
	size_t buf_size = 0;
	bool truncated = false, verified = false, keep = false;
	long got = 0;
	int ret, tries;

	req->have_first = false;
	ret = cp_live_open(-1, pid, tid, false, &lf);
	if (ret < 0)
		return ret;
	for (tries = 0; tries < LIVE_TRIES; tries++) {
		const struct cp_map *m;
		struct cp_live_status s1, s2;
		size_t span;

		ret = cp_live_read_status(&lf, &s1);
		if (ret == 0)
			ret = cp_live_read_syscall(&lf, text1, sizeof(text1), &sc);
		if (ret < 0)
			goto out;
		if (!req->have_first) {
			req->sc_first = sc;
			req->first = s1;
			req->have_first = true;
		}
		/*
		 * Zombies have no stack; stopped ones are the stop backend's, unless someone else
		 * traces them: then nothing else can take them, and they do not run.
		 */
		if (s1.state == 'Z' || s1.state == 'X') {
			ret = -ESRCH;
			goto out;
		}
		if (s1.tracer && !(req->flags & CP_CAPTURE_TRACED)) {
			ret = -EBUSY;
			goto out;
		}
		if (!s1.tracer && (s1.state == 'T' || s1.state == 't') &&
		    !(req->flags & CP_CAPTURE_STOPPED)) {
			ret = -EAGAIN;
			goto out;
		}
		is_d = s1.state == 'D';
		if (sc.running || !sc.sp || !sc.pc) {
			ret = -EAGAIN;
			goto out;
		}
		m = cp_capture_stack_map(pid, req->given, req->own, sc.sp);
		span = cp_capture_stack_span(m, sc.sp, req->max, &truncated);
		if (span > buf_size) {
			uint8_t *nb = realloc(buf, span);

			if (!nb) {
				ret = -ENOMEM;
				goto out;
			}
			buf = nb;
			buf_size = span;
		}
		got = span ? cp_mem_read(req->mem, sc.sp, buf, span) : 0;
		if (got == -ESRCH) {
			ret = -ESRCH;
			goto out;
		}
		if (got > 0 && (size_t)got < span)
			truncated = true;
		ret = cp_live_read_syscall(&lf, text2, sizeof(text2), &sc2);
		if (ret == 0)
			ret = cp_live_read_status(&lf, &s2);
		if (ret < 0)
			goto out;
		keep = true;
		if (s1.count == s2.count && !strcmp(text1, text2)) {
			verified = true;
			break;
		}
	}
	/*
	 * It ran during every copy. Stopping it is harmless unless it sits in a call a stop
	 * would fail with EINTR, or in uninterruptible sleep (no stop until the kernel lets it
	 * go): keep the last copy for those.
	 */
	if (!verified && !is_d && !(sc.in_syscall && cp_capture_syscall_may_eintr(sc.nr))) {
		ret = -EAGAIN;
		goto out;
	}
	if (!keep) {
		ret = -EAGAIN;
		goto out;
	}
	memset(out, 0, sizeof(*out));
	out->tid = tid;
	cp_capture_regs_from_syscall(&sc, &out->regs);
	out->stack.start = sc.sp;
	out->stack.truncated = truncated;
	cp_capture_stack_finish(&out->stack, buf, got);
	buf = NULL;
	out->sc = req->sc_first;
	out->has_syscall = true;
	out->live = true;
	out->verified = verified;
	out->has_state = true;
	out->state = req->first.state;
	memcpy(out->comm, req->first.comm, sizeof(out->comm));
	out->tracer = req->first.tracer;
	ret = 0;
out:
	free(buf);
	cp_live_close(&lf);
	return ret;
}

const struct cp_capture_backend cp_capture_backend_live = {
	.name = "live",
	.applies = live_applies,
	.capture = live_capture,
};

/*
 * A thread in uninterruptible sleep, when the caller asked neither for a live capture nor for
 * a stop. It does not take a stop's interrupt until the kernel wakes it, which may be never
 * (a dead NFS server), and a stop request cannot be withdrawn without the thread stopping
 * first. So do not try: its sp and pc in /proc are exact while it sleeps, and its stack does
 * not change under us while it does.
 */
static bool blocked_applies(const struct cp_capture_req *req)
{
	return req->st.state == 'D' && !(req->flags & (CP_CAPTURE_LIVE | CP_CAPTURE_STOP));
}

/* Its sp and pc from /proc, its stack copied live; -EAGAIN when it runs again by now. */
static int blocked_capture(struct cp_capture_req *req, struct cp_thread_snap *out)
{
	struct cp_task_syscall sc;
	struct cp_thread_snap snap;
	const struct cp_map *m;
	uint8_t *buf = NULL;
	size_t span;
	long got = 0;
	int ret = cp_proc_read_syscall(req->pid, req->tid, &sc);

	/* Running again by now, or unreadable: stop it like any other thread. */
	if (ret < 0 || sc.running || !sc.sp)
		return ret == -ESRCH ? -ESRCH : -EAGAIN;
	memset(&snap, 0, sizeof(snap));
	snap.tid = req->tid;
	cp_capture_regs_from_syscall(&sc, &snap.regs);
	snap.stack.start = sc.sp;
	m = cp_capture_stack_map(req->pid, req->given, req->own, sc.sp);
	span = cp_capture_stack_span(m, sc.sp, req->max, &snap.stack.truncated);
	if (span) {
		buf = malloc(span);
		if (!buf)
			return -ENOMEM;
		got = cp_mem_read(req->mem, sc.sp, buf, span);
		if (got == -ESRCH) {
			free(buf);
			return -ESRCH;
		}
		if (got > 0 && (size_t)got < span)
			snap.stack.truncated = true;
	}
	cp_capture_stack_finish(&snap.stack, buf, got);
	snap.sc = sc;
	snap.has_syscall = true;
	*out = snap;
	return 0;
}

const struct cp_capture_backend cp_capture_backend_blocked = {
	.name = "blocked",
	.applies = blocked_applies,
	.capture = blocked_capture,
};
