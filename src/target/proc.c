/* Readers for /proc/PID and /proc/PID/task/TID: threads, their state, syscall and names. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proc.h"
#include "util.h"

#define PF_KTHREAD 0x00200000u
/* argv beyond this is cut: the dump shows a command line, it does not archive it. */
#define CMDLINE_MAX (256u << 10)

/* /proc/PID/NAME, or /proc/PID/task/TID/NAME when tid != 0. */
static int task_path(char *buf, size_t size, int pid, int tid, const char *name)
{
	int n;

	if (pid <= 0 || tid < 0)
		return -EINVAL;
	if (tid)
		n = snprintf(buf, size, "/proc/%d/task/%d/%s", pid, tid, name);
	else
		n = snprintf(buf, size, "/proc/%d/%s", pid, name);
	if (n < 0 || (size_t)n >= size)
		return -ENAMETOOLONG;
	return 0;
}

/*
 * ENOENT on a file under /proc/PID means the process (or thread) is gone; other files of a
 * live process exist, so there is no other cause worth telling apart. ESRCH is what the
 * kernel itself returns on some reads of a task that is exiting.
 */
static int gone_errno(int err)
{
	return err == -ENOENT ? -ESRCH : err;
}

/* The process-wide file NAME: under cp_proc_dir, which outlives an exited leader. */
static int process_path(char *buf, size_t size, int pid, const char *name)
{
	size_t len;
	int n, err = cp_proc_dir(pid, buf, size);

	if (err < 0)
		return gone_errno(err);
	len = strlen(buf);
	n = snprintf(buf + len, size - len, "/%s", name);
	return n < 0 || (size_t)n >= size - len ? -ENAMETOOLONG : 0;
}

static int read_task_file(int pid, int tid, const char *name, char *buf, size_t size)
{
	char path[64];
	int ret;

	ret = task_path(path, sizeof(path), pid, tid, name);
	if (ret < 0)
		return ret;
	ret = cp_read_file(path, buf, size, NULL);
	return gone_errno(ret);
}

static const char *skip_blanks(const char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	return s;
}

/*
 * A number parsed by strtoull/strtol from s up to end is a whole field: something was read,
 * it did not overflow, and a blank or the end of the line or text follows.
 */
static bool whole_field(const char *s, const char *end)
{
	if (end == s || errno == ERANGE)
		return false;
	return *end == ' ' || *end == '\t' || *end == '\n' || *end == '\0';
}

/* Unsigned field at *p in base; advances *p past the blanks before it and the number. */
static int next_u64(const char **p, uint64_t *out, int base)
{
	const char *s = skip_blanks(*p);
	unsigned long long v;
	char *end;

	/* strtoull would take a sign, and wrap a negative number around. */
	if (*s == '-' || *s == '+' || *s == '\0' || *s == '\n')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, base);
	if (!whole_field(s, end))
		return -EINVAL;
	*out = v;
	*p = end;
	return 0;
}

/* Signed decimal field at *p, as next_u64. */
static int next_long(const char **p, long *out)
{
	const char *s = skip_blanks(*p);
	long v;
	char *end;

	errno = 0;
	v = strtol(s, &end, 10);
	if (!whole_field(s, end))
		return -EINVAL;
	*out = v;
	*p = end;
	return 0;
}

/* Skip one blank-separated field. */
static int skip_field(const char **p)
{
	const char *s = *p;

	while (*s == ' ')
		s++;
	if (*s == '\0' || *s == '\n')
		return -EINVAL;
	while (*s && *s != ' ' && *s != '\n')
		s++;
	*p = s;
	return 0;
}

int cp_proc_parse_stat(const char *text, struct cp_task_stat *out)
{
	struct cp_task_stat st;
	const char *open, *close, *p;
	long v;
	uint64_t u;
	size_t clen;
	int field;

	if (!text)
		return -EINVAL;
	memset(&st, 0, sizeof(st));
	st.processor = -1;
	p = text;
	if (next_long(&p, &v) < 0 || v <= 0 || v > INT_MAX)
		return -EINVAL;
	st.tid = (int)v;
	/* comm is whatever the thread named itself: spaces and ')' included. The last ')' ends
	 * it because nothing after it can contain one. */
	open = strchr(p, '(');
	close = strrchr(text, ')');
	if (!open || !close || close < open)
		return -EINVAL;
	clen = (size_t)(close - open - 1);
	if (clen >= sizeof(st.comm))
		clen = sizeof(st.comm) - 1;
	memcpy(st.comm, open + 1, clen);
	st.comm[clen] = '\0';

	p = close + 1;
	if (*p != ' ' || p[1] == '\0' || p[1] == '\n' || p[1] == ' ')
		return -EINVAL;
	st.state = p[1];
	p += 2;
	/* Fields numbered as in proc(5): 3 is state, the rest follow. */
	for (field = 4; field <= 39; field++) {
		switch (field) {
		case 4:
			if (next_long(&p, &v) < 0 || v < 0 || v > INT_MAX)
				return -EINVAL;
			st.ppid = (int)v;
			break;
		case 9:
			if (next_u64(&p, &u, 10) < 0 || u > UINT_MAX)
				return -EINVAL;
			st.flags = (unsigned int)u;
			break;
		case 14:
			if (next_u64(&p, &st.utime, 10) < 0)
				return -EINVAL;
			break;
		case 15:
			if (next_u64(&p, &st.stime, 10) < 0)
				return -EINVAL;
			break;
		case 20:
			if (next_long(&p, &st.num_threads) < 0)
				return -EINVAL;
			break;
		case 22:
			if (next_u64(&p, &st.starttime, 10) < 0)
				return -EINVAL;
			break;
		case 39:
			/* Present since Linux 2.2.8; tolerate its absence anyway. */
			if (next_long(&p, &v) == 0 && v >= 0 && v <= INT_MAX)
				st.processor = (int)v;
			break;
		default:
			if (skip_field(&p) < 0) {
				if (field > 22)
					goto done;
				return -EINVAL;
			}
			break;
		}
	}
done:
	*out = st;
	return 0;
}

int cp_proc_parse_syscall(const char *text, struct cp_task_syscall *out)
{
	struct cp_task_syscall sc;
	const char *p = text;
	uint64_t vals[8];
	long nr;
	int i;

	if (!text)
		return -EINVAL;
	memset(&sc, 0, sizeof(sc));
	if (strncmp(text, "running", 7) == 0 && (text[7] == '\0' || text[7] == '\n')) {
		sc.running = true;
		sc.nr = -1;
		*out = sc;
		return 0;
	}
	if (next_long(&p, &nr) < 0 || nr < -1)
		return -EINVAL;
	sc.nr = nr;
	if (nr == -1) {
		/* Blocked in the kernel but not in a system call (e.g. a page fault): SP PC. */
		if (next_u64(&p, &sc.sp, 16) < 0 || next_u64(&p, &sc.pc, 16) < 0)
			return -EINVAL;
	} else {
		for (i = 0; i < 8; i++)
			if (next_u64(&p, &vals[i], 16) < 0)
				return -EINVAL;
		for (i = 0; i < 6; i++)
			sc.args[i] = vals[i];
		sc.sp = vals[6];
		sc.pc = vals[7];
		sc.in_syscall = true;
	}
	while (*p == ' ' || *p == '\n')
		p++;
	if (*p != '\0')
		return -EINVAL;
	*out = sc;
	return 0;
}

/* The value after "Key:" on the line that starts with key, or NULL. */
static const char *status_value(const char *text, const char *key)
{
	char pat[64];
	size_t klen = strlen(key);
	const char *hit;

	if (strncmp(text, key, klen) == 0 && text[klen] == ':')
		return text + klen + 1;
	/* "\nKey:" found by strstr: a dump reads two status files a thread. */
	if (klen + 3 > sizeof(pat))
		return NULL;
	pat[0] = '\n';
	memcpy(pat + 1, key, klen);
	pat[klen + 1] = ':';
	pat[klen + 2] = '\0';
	hit = strstr(text, pat);
	return hit ? hit + klen + 2 : NULL;
}

int cp_proc_parse_status(const char *text, struct cp_task_status *out)
{
	struct cp_task_status st;
	const char *v;
	long tp;

	if (!text)
		return -EINVAL;
	memset(&st, 0, sizeof(st));
	v = status_value(text, "TracerPid");
	if (!v || next_long(&v, &tp) < 0 || tp < 0 || tp > INT_MAX)
		return -EINVAL;
	st.tracer_pid = (int)tp;
	/* Context switch counts are missing on some kernels: they stay 0 then. */
	v = status_value(text, "voluntary_ctxt_switches");
	if (v && next_u64(&v, &st.voluntary_ctxt_switches, 10) < 0)
		return -EINVAL;
	v = status_value(text, "nonvoluntary_ctxt_switches");
	if (v && next_u64(&v, &st.nonvoluntary_ctxt_switches, 10) < 0)
		return -EINVAL;
	*out = st;
	return 0;
}

int cp_proc_read_stat(int pid, int tid, struct cp_task_stat *out)
{
	/* 52 fields of up to 20 digits and a 64-byte comm: 2 KiB holds the longest line. */
	char buf[2048];
	int ret;

	ret = read_task_file(pid, tid, "stat", buf, sizeof(buf));
	if (ret < 0)
		return ret;
	return cp_proc_parse_stat(buf, out);
}

int cp_proc_read_syscall(int pid, int tid, struct cp_task_syscall *out)
{
	char buf[512];
	int ret;

	ret = read_task_file(pid, tid, "syscall", buf, sizeof(buf));
	if (ret < 0)
		return ret;
	return cp_proc_parse_syscall(buf, out);
}

int cp_proc_read_status(int pid, int tid, struct cp_task_status *out)
{
	/* The context switch counts come last, after cpu and node masks that grow with the
	 * machine: room for big NUMA boxes. */
	char buf[16384];
	int ret;

	ret = read_task_file(pid, tid, "status", buf, sizeof(buf));
	if (ret < 0)
		return ret;
	return cp_proc_parse_status(buf, out);
}

int cp_proc_read_wchan(int pid, int tid, char *buf, size_t size)
{
	char tmp[256];
	size_t n;
	int ret;

	if (!buf || size == 0)
		return -EINVAL;
	ret = read_task_file(pid, tid, "wchan", tmp, sizeof(tmp));
	if (ret < 0)
		return ret;
	n = strcspn(tmp, "\n");
	tmp[n] = '\0';
	/* "0" means not waiting, or hidden by kptr_restrict: nothing to tell either way. */
	if (strcmp(tmp, "0") == 0)
		tmp[0] = '\0';
	if (strlen(tmp) >= size)
		return -ENAMETOOLONG;
	strcpy(buf, tmp);
	return 0;
}

int cp_proc_read_schedstat(int pid, int tid, uint64_t *run_ns, uint64_t *slices)
{
	char buf[256];
	const char *p = buf;
	uint64_t run, wait, n;
	int ret;

	ret = read_task_file(pid, tid, "schedstat", buf, sizeof(buf));
	if (ret < 0)
		return ret;
	if (next_u64(&p, &run, 10) < 0 || next_u64(&p, &wait, 10) < 0 ||
	    next_u64(&p, &n, 10) < 0)
		return -EINVAL;
	if (run_ns)
		*run_ns = run;
	if (slices)
		*slices = n;
	return 0;
}

static int cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;

	return (x > y) - (x < y);
}

int cp_proc_list_tasks(int pid, int **tids, size_t *n)
{
	char path[64];
	struct dirent *de;
	size_t cnt = 0, alloc = 64;
	int *v, *nv;
	DIR *d;
	int ret;

	ret = task_path(path, sizeof(path), pid, 0, "task");
	if (ret < 0)
		return ret;
	d = opendir(path);
	if (!d)
		return gone_errno(-errno);
	v = malloc(alloc * sizeof(*v));
	if (!v) {
		closedir(d);
		return -ENOMEM;
	}
	for (;;) {
		long tid;

		errno = 0;
		de = readdir(d);
		if (!de) {
			if (errno) {
				ret = gone_errno(-errno);
				goto fail;
			}
			break;
		}
		if (cp_parse_long(de->d_name, 1, INT_MAX, &tid) < 0)
			continue;
		/* A process may hold more threads than we are willing to look at; the first
		 * CP_MAX_THREADS that readdir gives are kept. */
		if (cnt >= CP_MAX_THREADS)
			break;
		if (cnt == alloc) {
			alloc *= 2;
			nv = realloc(v, alloc * sizeof(*v));
			if (!nv) {
				ret = -ENOMEM;
				goto fail;
			}
			v = nv;
		}
		v[cnt++] = (int)tid;
	}
	closedir(d);
	if (cnt == 0) {
		/* The task directory of an exited process reads empty. */
		free(v);
		return -ESRCH;
	}
	qsort(v, cnt, sizeof(*v), cmp_int);
	*tids = v;
	*n = cnt;
	return 0;

fail:
	free(v);
	closedir(d);
	return ret;
}

void cp_proc_free_argv(char **argv)
{
	size_t i;

	if (!argv)
		return;
	for (i = 0; argv[i]; i++)
		free(argv[i]);
	free(argv);
}

int cp_proc_read_cmdline(int pid, char ***argv, size_t *argc)
{
	char path[64];
	char *buf, **v;
	size_t len, cnt = 0, i, pos;
	int ret;

	ret = process_path(path, sizeof(path), pid, "cmdline");
	if (ret < 0)
		return ret;
	buf = malloc(CMDLINE_MAX);
	if (!buf)
		return -ENOMEM;
	ret = cp_read_file(path, buf, CMDLINE_MAX, &len);
	if (ret < 0) {
		free(buf);
		return gone_errno(ret);
	}
	/*
	 * A program that rewrote its argv (PostgreSQL, redis) leaves the rest of the area
	 * NUL-filled: those are not empty arguments.
	 */
	while (len > 1 && buf[len - 1] == '\0' && buf[len - 2] == '\0')
		len--;
	/* Arguments are NUL-separated, the last one NUL-terminated unless the process
	 * rewrote its argv area; cp_read_file's terminator covers that case. */
	for (i = 0; i < len; i++)
		if (buf[i] == '\0')
			cnt++;
	if (len > 0 && buf[len - 1] != '\0')
		cnt++;
	v = calloc(cnt + 1, sizeof(*v));
	if (!v) {
		free(buf);
		return -ENOMEM;
	}
	for (i = 0, pos = 0; i < cnt; i++) {
		v[i] = strdup(buf + pos);
		if (!v[i]) {
			cp_proc_free_argv(v);
			free(buf);
			return -ENOMEM;
		}
		pos += strlen(buf + pos) + 1;
	}
	free(buf);
	*argv = v;
	if (argc)
		*argc = cnt;
	return 0;
}

/* readlink into buf, NUL-terminated; -ENAMETOOLONG when it does not fit. */
static int read_link(int pid, const char *path, char *buf, size_t size)
{
	char probe[32];
	ssize_t r;

	if (!buf || size == 0)
		return -EINVAL;
	r = readlink(path, buf, size);
	if (r < 0) {
		int err = -errno;

		/* ENOENT both for a gone process and a link with no target (kernel threads'
		 * exe): tell them apart by the process directory. */
		if (err == -ENOENT) {
			snprintf(probe, sizeof(probe), "/proc/%d", pid);
			if (access(probe, F_OK) != 0)
				return -ESRCH;
		}
		return err;
	}
	if ((size_t)r >= size)
		return -ENAMETOOLONG;
	buf[r] = '\0';
	return 0;
}

int cp_proc_read_exe(int pid, char *buf, size_t size)
{
	char path[64];
	int ret;

	ret = process_path(path, sizeof(path), pid, "exe");
	if (ret < 0)
		return ret;
	return read_link(pid, path, buf, size);
}

int cp_proc_read_fd_link(int pid, int fd, char *buf, size_t size)
{
	char path[64], name[24];
	int ret;

	if (pid <= 0 || fd < 0)
		return -EINVAL;
	snprintf(name, sizeof(name), "fd/%d", fd);
	ret = process_path(path, sizeof(path), pid, name);
	if (ret < 0)
		return ret;
	return read_link(pid, path, buf, size);
}

static bool exited(const struct cp_task_stat *st)
{
	return st->state == 'Z' || st->state == 'X';
}

/* A thread of pid other than its leader still alive, or 0. */
static int live_thread(int pid)
{
	struct cp_task_stat st;
	int *tids = NULL, tid = 0;
	size_t n = 0;

	if (cp_proc_list_tasks(pid, &tids, &n) < 0)
		return 0;
	for (size_t i = 0; i < n && !tid; i++)
		if (tids[i] != pid && cp_proc_read_stat(pid, tids[i], &st) == 0 && !exited(&st))
			tid = tids[i];
	free(tids);
	return tid;
}

bool cp_proc_is_zombie(int pid, const struct cp_task_stat *st)
{
	return exited(st) && !live_thread(pid);
}

bool cp_proc_gone(int pid, uint64_t starttime)
{
	struct cp_task_stat st;

	if (cp_proc_read_stat(pid, 0, &st) < 0 || (starttime && st.starttime != starttime))
		return true;
	return cp_proc_is_zombie(pid, &st);
}

/* How long cp_proc_dir's answer for a pid is reused by the thread that asked (ns). */
#define PROC_DIR_REUSE_NS 50000000ull

int cp_proc_dir(int pid, char *buf, size_t size)
{
	/* A dump or a session asks for each fd, module and file: one stat read serves a burst. */
	static __thread struct {
		int pid, tid;
		uint64_t at;
	} last;
	struct cp_task_stat st;
	uint64_t now = cp_now_ns();
	int tid = 0, n, err;

	if (pid <= 0)
		return -EINVAL;
	if (last.pid == pid && now - last.at < PROC_DIR_REUSE_NS) {
		tid = last.tid;
	} else {
		err = cp_proc_read_stat(pid, 0, &st);
		if (err < 0)
			return err;
		if (exited(&st))
			tid = live_thread(pid);
		last.pid = pid;
		last.tid = tid;
		last.at = now;
	}
	if (tid)
		n = snprintf(buf, size, "/proc/%d/task/%d", pid, tid);
	else
		n = snprintf(buf, size, "/proc/%d", pid);
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

bool cp_proc_is_kernel_thread(const struct cp_task_stat *st)
{
	if (!st)
		return false;
	if (st->flags & PF_KTHREAD)
		return true;
	/* kthreadd is pid 2 and the parent of every other kernel thread. Only meaningful in
	 * the initial pid namespace, which is why PF_KTHREAD is checked first. */
	return st->tid == 2 || st->ppid == 2;
}

int cp_parse_cpulist(const char *text, uint8_t *bitmap, size_t ncpus)
{
	const char *p = text;

	memset(bitmap, 0, (ncpus + 7) / 8);
	while (*p && *p != '\n') {
		char *end;
		unsigned long a, b;

		errno = 0;
		a = strtoul(p, &end, 10);
		if (end == p || errno)
			return -EINVAL;
		b = a;
		p = end;
		if (*p == '-') {
			p++;
			b = strtoul(p, &end, 10);
			if (end == p || errno || b < a)
				return -EINVAL;
			p = end;
		}
		for (unsigned long c = a; c <= b && c < ncpus; c++)
			bitmap[c / 8] |= (uint8_t)(1u << (c % 8));
		if (*p == ',')
			p++;
		else if (*p && *p != '\n')
			return -EINVAL;
	}
	return 0;
}

int cp_online_cpus(int **cpus, size_t *n)
{
	uint8_t all[CP_MAX_CPUS / 8];
	char buf[4096];
	int *v;
	size_t k = 0;

	if (cp_read_file("/sys/devices/system/cpu/online", buf, sizeof(buf), NULL) < 0 ||
	    cp_parse_cpulist(buf, all, CP_MAX_CPUS) < 0) {
		long conf = sysconf(_SC_NPROCESSORS_CONF);

		memset(all, 0, sizeof(all));
		for (long c = 0; c < conf && c < CP_MAX_CPUS; c++)
			all[c / 8] |= (uint8_t)(1u << (c % 8));
	}
	v = calloc(CP_MAX_CPUS, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (int c = 0; c < CP_MAX_CPUS; c++)
		if (all[c / 8] & (1u << (c % 8)))
			v[k++] = c;
	if (!k) {
		free(v);
		return -ESRCH;
	}
	*cpus = v;
	*n = k;
	return 0;
}
