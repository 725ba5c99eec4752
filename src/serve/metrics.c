/* Process and thread metrics from /proc, and their Prometheus text exposition. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "deadlock.h"
#include "dump.h"
#include "lockinfo.h"
#include "mem.h"
#include "pidns.h"
#include "metrics.h"
#include "proc.h"

static const char *const state_names[CP_STATE__COUNT] = {
	[CP_STATE_RUNNING] = "running",	    [CP_STATE_SLEEPING] = "sleeping",
	[CP_STATE_DISK_SLEEP] = "disk-sleep", [CP_STATE_STOPPED] = "stopped",
	[CP_STATE_TRACING_STOP] = "tracing-stop", [CP_STATE_ZOMBIE] = "zombie",
	[CP_STATE_DEAD] = "dead",	    [CP_STATE_IDLE] = "idle",
	[CP_STATE_OTHER] = "other",
};

const char *cp_metrics_state_name(enum cp_metrics_state s)
{
	return s < CP_STATE__COUNT ? state_names[s] : "other";
}

enum cp_metrics_state cp_metrics_state_of(char state)
{
	switch (state) {
	case 'R': return CP_STATE_RUNNING;
	case 'S': return CP_STATE_SLEEPING;
	case 'D': return CP_STATE_DISK_SLEEP;
	case 'T': return CP_STATE_STOPPED;
	case 't': return CP_STATE_TRACING_STOP;
	case 'Z': return CP_STATE_ZOMBIE;
	case 'X': return CP_STATE_DEAD;
	case 'I': return CP_STATE_IDLE;
	default: return CP_STATE_OTHER;
	}
}

static long count_fds(int pid)
{
	char path[64];
	struct dirent *de;
	long n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/fd", pid);
	d = opendir(path);
	if (!d)
		return -1;
	while ((de = readdir(d)))
		n += de->d_name[0] != '.';
	closedir(d);
	return n;
}

/* The soft limit on open files from /proc/PID/limits; -1 when unlimited or unreadable. */
static long max_fds(int pid)
{
	char path[64], buf[4096], *line;
	long v;

	snprintf(path, sizeof(path), "/proc/%d/limits", pid);
	if (cp_read_file(path, buf, sizeof(buf), NULL) < 0)
		return -1;
	line = strstr(buf, "Max open files");
	if (!line || sscanf(line + strlen("Max open files"), "%ld", &v) != 1)
		return -1;
	return v;
}

static int read_statm(int pid, uint64_t *vm, uint64_t *rss)
{
	char path[64], buf[256];
	unsigned long long size, resident;
	long page = sysconf(_SC_PAGESIZE);
	int err;

	snprintf(path, sizeof(path), "/proc/%d/statm", pid);
	err = cp_read_file(path, buf, sizeof(buf), NULL);
	if (err < 0)
		return err == -ENOENT ? -ESRCH : err;
	if (sscanf(buf, "%llu %llu", &size, &resident) != 2)
		return -EINVAL;
	*vm = size * (uint64_t)page;
	*rss = resident * (uint64_t)page;
	return 0;
}

static double boot_time(void)
{
	char buf[16384], *p;
	double v;

	if (cp_read_file("/proc/stat", buf, sizeof(buf), NULL) < 0)
		return 0;
	p = strstr(buf, "\nbtime ");
	if (!p || sscanf(p + 7, "%lf", &v) != 1)
		return 0;
	return v;
}

/*
 * A futex wait whose word belongs to a glibc mutex with a live owner becomes a mutex wait with
 * that owner: the stack is what tells a mutex from a condvar in a dump; here the lock's bytes
 * in the target's memory must look like a mutex instead.
 */
static void futex_owner(const struct cp_mem *mem, const struct cp_pidns_map *ns, const int *tids,
			size_t n, struct cp_wait *w)
{
	struct cp_lock_info li;

	if (w->kind != CP_WAIT_FUTEX || !w->has_address)
		return;
	if (cp_lock_mutex_owner(mem, w->address, ns, tids, n, &li) < 0 || li.owner_tid <= 0)
		return;
	w->kind = CP_WAIT_MUTEX;
	w->owner_tid = li.owner_tid;
	w->owner_in_process = li.owner_alive;
}

static bool is_blocked(const struct cp_wait *w, char state)
{
	if (state == 'D')
		return true;
	switch (w->kind) {
	case CP_WAIT_MUTEX:
	case CP_WAIT_RWLOCK:
		return true;
	case CP_WAIT_FUTEX:
		return w->timeout_ns == -1 && !w->timeout_unknown;
	default:
		return cp_dump_wait_unbounded(w);
	}
}

/*
 * Read /proc/PID/task/TID/NAME through the held task directory taskfd, in one read: a scrape
 * reads two such files per thread, and a path resolved from /proc and a second read for the
 * end of file were a third of its cost. -errno, or the length (the file fits in size - 1).
 */
static int read_task_at(int taskfd, int tid, const char *name, char *buf, size_t size)
{
	char path[48];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%d/%s", tid, name);
	fd = openat(taskfd, path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -ESRCH : -errno;
	do
		n = read(fd, buf, size - 1);
	while (n < 0 && errno == EINTR);
	close(fd);
	if (n < 0)
		return errno == ESRCH ? -ESRCH : -EIO;
	if ((size_t)n == size - 1)
		return -EFBIG;
	buf[n] = 0;
	return (int)n;
}

static int task_stat(int taskfd, int pid, int tid, struct cp_task_stat *st)
{
	char buf[2048];

	if (taskfd < 0)
		return cp_proc_read_stat(pid, tid, st);
	if (read_task_at(taskfd, tid, "stat", buf, sizeof(buf)) < 0)
		return -ESRCH;
	return cp_proc_parse_stat(buf, st);
}

static int task_syscall(int taskfd, int pid, int tid, struct cp_task_syscall *sc)
{
	char buf[512];

	if (taskfd < 0)
		return cp_proc_read_syscall(pid, tid, sc);
	if (read_task_at(taskfd, tid, "syscall", buf, sizeof(buf)) < 0)
		return -ESRCH;
	return cp_proc_parse_syscall(buf, sc);
}

/* The threads in lock cycles or waiting on an exited owner, from the lock waits found. */
static int count_deadlocked(int pid, const struct cp_lock_wait *waits, size_t nwaits,
			    const int *tids, size_t n, size_t *out)
{
	struct cp_wait_graph g = { .pid = pid, .waits = waits, .nwaits = nwaits, .tids = tids,
				   .ntids = n };
	struct cp_deadlock *v = NULL;
	size_t nv = 0;
	int err;

	*out = 0;
	if (nwaits == 0)
		return 0;
	err = cp_deadlock_find(&g, &v, &nv);
	if (err < 0)
		return err;
	for (size_t i = 0; i < nv; i++)
		*out += v[i].ntids;
	cp_deadlock_free(v, nv);
	return 0;
}

/*
 * Count each thread's state and, with waits, classify its wait from /proc (syscall, wchan) and
 * count the kinds; deadlocks from the lock waits whose owner the lock's memory names. One stat
 * read per thread.
 */
static int scan_threads(int pid, const int *tids, size_t n, bool waits, struct cp_metrics *m)
{
	struct cp_wait_cache *cache = waits ? cp_wait_cache_new() : NULL;
	struct cp_lock_wait *locks = waits ? calloc(n ? n : 1, sizeof(*locks)) : NULL;
	char (*names)[CP_COMM_LEN] = waits ? calloc(n ? n : 1, sizeof(*names)) : NULL;
	struct cp_mem mem = CP_MEM_BY_PID(pid);
	struct cp_pidns_map ns = { .same_ns = true };
	size_t nlocks = 0;
	char path[48];
	int err = 0, taskfd;

	if (waits && (!cache || !locks || !names)) {
		err = -ENOMEM;
		goto done;
	}
	if (waits) {
		cp_mem_open(&mem, pid);
		/* Unreadable: owners are taken as cprof numbers them, as in a dump. */
		if (cp_pidns_map_read(pid, &ns) < 0)
			ns = (struct cp_pidns_map){ .same_ns = true };
	}
	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	taskfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	for (size_t i = 0; i < n; i++) {
		struct cp_task_stat st;
		struct cp_task_syscall sc;
		struct cp_wait_input in = { .pid = pid, .tid = tids[i], .stat = &st, .tids = tids,
					    .ntids = n, .cache = cache, .mem = &mem,
					    .pidns = &ns };
		struct cp_wait w;
		char wchan[128] = "";

		if (task_stat(taskfd, pid, tids[i], &st) < 0)
			continue;
		m->by_state[cp_metrics_state_of(st.state)]++;
		if (!waits)
			continue;
		if (!strchr("RTtZX", st.state)) {
			if (task_syscall(taskfd, pid, tids[i], &sc) == 0)
				in.sc = &sc;
			if (cp_wait_needs_wchan(st.state, in.sc))
				cp_proc_read_wchan(pid, tids[i], wchan, sizeof(wchan));
		}
		in.wchan = wchan;
		if (cp_wait_classify(&in, &w) < 0)
			continue;
		futex_owner(&mem, &ns, tids, n, &w);
		m->by_wait[w.kind < CP_WAIT__COUNT ? w.kind : CP_WAIT_UNKNOWN]++;
		m->unbounded_io += cp_dump_wait_unbounded(&w);
		m->blocked += is_blocked(&w, st.state);
		if ((w.kind == CP_WAIT_MUTEX || w.kind == CP_WAIT_RWLOCK) && w.owner_tid > 0) {
			size_t k = nlocks++;

			snprintf(names[k], sizeof(names[k]), "%s", st.comm);
			locks[k] = (struct cp_lock_wait){
				.waiter_tid = tids[i], .waiter_name = names[k],
				.owner_tid = w.owner_tid, .address = w.address,
				.has_address = w.has_address, .rwlock = w.kind == CP_WAIT_RWLOCK };
		}
		cp_wait_release(&w);
	}
	if (taskfd >= 0)
		close(taskfd);
	if (waits)
		err = count_deadlocked(pid, locks, nlocks, tids, n, &m->deadlocked);
done:
	cp_pidns_map_release(&ns);
	cp_mem_close(&mem);
	cp_wait_cache_free(cache);
	free(locks);
	free(names);
	return err;
}

int cp_metrics_collect(int pid, unsigned int flags, struct cp_metrics *out)
{
	struct cp_metrics m = { .pid = pid, .open_fds = -1, .max_fds = -1 };
	struct cp_task_stat st;
	long tick = sysconf(_SC_CLK_TCK);
	int *tids = NULL, err;
	size_t n = 0;

	err = cp_proc_read_stat(pid, 0, &st);
	if (err < 0)
		return err == -ENOENT ? -ESRCH : err;
	err = read_statm(pid, &m.vm_bytes, &m.rss_bytes);
	if (err < 0)
		return err;
	m.cpu_seconds = (double)(st.utime + st.stime) / (double)tick;
	m.start_time = boot_time() + (double)st.starttime / (double)tick;
	m.threads = st.num_threads;
	m.max_fds = max_fds(pid);
	if (flags & CP_METRICS_FDS)
		m.open_fds = count_fds(pid);
	if (!(flags & (CP_METRICS_STATES | CP_METRICS_WAITS))) {
		*out = m;
		return 0;
	}
	err = cp_proc_list_tasks(pid, &tids, &n);
	if (err < 0)
		return err == -ENOENT ? -ESRCH : err;
	err = scan_threads(pid, tids, n, flags & CP_METRICS_WAITS, &m);
	m.waits = err == 0 && (flags & CP_METRICS_WAITS);
	free(tids);
	if (err < 0)
		return err;
	*out = m;
	return 0;
}

enum family_type { GAUGE, COUNTER };

struct family {
	const char *name;
	enum family_type type;
	const char *help;
};

static void header(struct cp_strbuf *sb, const struct family *f)
{
	cp_strbuf_addf(sb, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name,
		       f->type == COUNTER ? "counter" : "gauge");
}

/* One family of the per-process values: value(m) for each process that has it. */
static void process_family(struct cp_strbuf *sb, const struct family *f, const struct cp_metrics *m,
			   size_t n, int which)
{
	bool any = false;

	for (size_t i = 0; i < n; i++) {
		const struct cp_metrics *p = &m[i];
		char v[64];

		switch (which) {
		case 0: snprintf(v, sizeof(v), "%.2f", p->cpu_seconds); break;
		case 1: snprintf(v, sizeof(v), "%llu", (unsigned long long)p->rss_bytes); break;
		case 2: snprintf(v, sizeof(v), "%llu", (unsigned long long)p->vm_bytes); break;
		case 3:
			if (p->open_fds < 0)
				continue;
			snprintf(v, sizeof(v), "%ld", p->open_fds);
			break;
		case 4:
			if (p->max_fds < 0)
				continue;
			snprintf(v, sizeof(v), "%ld", p->max_fds);
			break;
		case 5: snprintf(v, sizeof(v), "%.2f", p->start_time); break;
		case 6: snprintf(v, sizeof(v), "%ld", p->threads); break;
		case 7:
			if (!p->waits)
				continue;
			snprintf(v, sizeof(v), "%zu", p->unbounded_io);
			break;
		default:
			if (!p->waits)
				continue;
			snprintf(v, sizeof(v), "%zu", p->deadlocked);
			break;
		}
		if (!any)
			header(sb, f);
		any = true;
		cp_strbuf_addf(sb, "%s{pid=\"%d\"} %s\n", f->name, p->pid, v);
	}
}

void cp_metrics_write(struct cp_strbuf *sb, const struct cp_metrics *m, size_t n)
{
	static const struct family proc[] = {
		{ "process_cpu_seconds_total", COUNTER, "Total user and system CPU time spent in seconds." },
		{ "process_resident_memory_bytes", GAUGE, "Resident memory size in bytes." },
		{ "process_virtual_memory_bytes", GAUGE, "Virtual memory size in bytes." },
		{ "process_open_fds", GAUGE, "Number of open file descriptors." },
		{ "process_max_fds", GAUGE, "Maximum number of open file descriptors." },
		{ "process_start_time_seconds", GAUGE, "Start time of the process since unix epoch in seconds." },
		{ "process_threads", GAUGE, "Number of OS threads in the process." },
		{ "cprof_unbounded_io_waits", GAUGE, "Threads waiting on a socket, pipe or child without a timeout (from /proc, no stack)." },
		{ "cprof_deadlocked_threads", GAUGE, "Threads in a lock cycle or waiting on a lock whose owner exited (from /proc and lock memory, no stack)." },
	};
	static const struct family threads = { "cprof_threads", GAUGE,
					       "Threads of the process by scheduler state." };
	static const struct family waiting = { "cprof_threads_waiting", GAUGE,
					       "Threads by wait kind, classified from /proc without stacks." };
	bool any = false;

	for (size_t i = 0; i < 7; i++)
		process_family(sb, &proc[i], m, n, (int)i);
	for (size_t i = 0; i < n; i++) {
		if (i == 0)
			header(sb, &threads);
		for (int s = 0; s < CP_STATE__COUNT; s++)
			cp_strbuf_addf(sb, "cprof_threads{pid=\"%d\",state=\"%s\"} %zu\n", m[i].pid,
				       state_names[s], m[i].by_state[s]);
	}
	for (size_t i = 0; i < n; i++) {
		if (!m[i].waits)
			continue;
		if (!any)
			header(sb, &waiting);
		any = true;
		for (int k = 0; k < CP_WAIT__COUNT; k++)
			cp_strbuf_addf(sb, "cprof_threads_waiting{pid=\"%d\",wait=\"%s\"} %zu\n",
				       m[i].pid, cp_wait_kind_name((enum cp_wait_kind)k),
				       m[i].by_wait[k]);
	}
	process_family(sb, &proc[7], m, n, 7);
	process_family(sb, &proc[8], m, n, 8);
}
