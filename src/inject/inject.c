/* Calling into a live process: the checks that refuse a target, loading a library, calls. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "inject_internal.h"
#include "maps.h"
#include "mem.h"
#include "proc.h"
#include "symbolize.h"
#include "util.h"

#define RTLD_NOW_FLAG 0x2
#define RTLD_DLOPEN_FLAG 0x80000000u	/* __RTLD_DLOPEN: what dlopen adds for __libc_dlopen_mode */
#define MFD_CLOEXEC_FLAG 0x1u

int inject_why(char *why, size_t whylen, int err, const char *fmt, ...)
{
	va_list ap;

	if (why && whylen) {
		va_start(ap, fmt);
		vsnprintf(why, whylen, fmt, ap);
		va_end(ap);
	}
	return err;
}

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');

	return s ? s + 1 : path;
}

static bool is_glibc(const char *path)
{
	const char *b = base_name(path);

	return strcmp(b, "libc.so.6") == 0 || (strncmp(b, "libc-2.", 7) == 0 &&
					       strstr(b, ".so") != NULL);
}

/* One field of /proc/PID/status ("TracerPid:", say): its value, or NULL. */
static const char *status_field(const char *text, const char *key, char *buf, size_t size)
{
	const char *p = strstr(text, key);
	size_t n;

	if (!p)
		return NULL;
	p += strlen(key);
	p += strspn(p, " \t");
	n = strcspn(p, "\n");
	if (n >= size)
		n = size - 1;
	memcpy(buf, p, n);
	buf[n] = '\0';
	return buf;
}

/* The refusals /proc/PID/stat and status decide: zombie, kernel thread, tracer, seccomp. */
static int check_status(int pid, char *why, size_t whylen)
{
	char path[64], text[8192], v[128];
	struct cp_task_stat st;
	size_t len;
	int err;

	err = cp_proc_read_stat(pid, 0, &st);
	if (err < 0)
		return inject_why(why, whylen, err, "no process %d", pid);
	if (cp_proc_is_zombie(pid, &st))
		return inject_why(why, whylen, -ESRCH, "process %d is a zombie", pid);
	if (st.state == 'Z' || st.state == 'X')
		return inject_why(why, whylen, -ENOTSUP, "process %d's main thread has exited "
				  "(its /proc files went with it): the sampler is not loaded into "
				  "such a process", pid);
	if (cp_proc_is_kernel_thread(&st))
		return inject_why(why, whylen, -EPERM, "process %d is a kernel thread", pid);
	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	err = cp_read_file(path, text, sizeof(text), &len);
	if (err < 0)
		return inject_why(why, whylen, err, "reading %s: %s", path, strerror(-err));
	text[len < sizeof(text) ? len : sizeof(text) - 1] = '\0';
	if (status_field(text, "TracerPid:", v, sizeof(v)) && atoi(v) != 0) {
		char comm[64] = "?", cpath[64];
		size_t cl;

		snprintf(cpath, sizeof(cpath), "/proc/%d/comm", atoi(v));
		if (cp_read_file(cpath, comm, sizeof(comm) - 1, &cl) == 0) {
			comm[cl] = '\0';
			comm[strcspn(comm, "\n")] = '\0';
		}
		return inject_why(why, whylen, -EBUSY, "traced by process %d (%s)", atoi(v), comm);
	}
	if (status_field(text, "Seccomp:", v, sizeof(v)) && atoi(v) != 0)
		return inject_why(why, whylen, -EPERM, "%s",
				  atoi(v) == 1 ? "seccomp strict mode: only read, write and exit "
						 "are allowed" :
						 "seccomp filter: cprof cannot know that dlopen's "
						 "system calls are allowed");
	snprintf(path, sizeof(path), "/proc/%d/exe", pid);
	if (cp_read_file(path, v, 6, &len) == 0 && len == 5 && memcmp(v, "\177ELF", 4) == 0 &&
	    v[4] != 2)
		return inject_why(why, whylen, -ENOTSUP, "not a 64-bit process");
	if (status_field(text, "x86_Thread_features:", v, sizeof(v)) && strstr(v, "shstk"))
		return inject_why(why, whylen, -ENOTSUP,
				  "shadow stack enabled: a call's return would fault");
	return 0;
}

/* Scan memory [start, end) of the target for the two code sequences cprof returns through. */
static int scan_code(struct cp_inject *in, const struct cp_mem *mem, uint64_t start, uint64_t end)
{
	static const uint8_t restore_rt[] = { 0x48, 0xc7, 0xc0, 0x0f, 0, 0, 0, 0x0f, 0x05 };
	static const uint8_t syscall_ret[] = { 0x0f, 0x05, 0xc3 };
	size_t chunk = 1u << 20;
	uint8_t *buf = malloc(chunk + 16);

	if (!buf)
		return -ENOMEM;
	for (uint64_t a = start; a < end && (!in->restore_rt || !in->syscall_ret); a += chunk) {
		size_t want = end - a < chunk + 16 ? end - a : chunk + 16;
		long got = cp_mem_read(mem, a, buf, want);

		for (long i = 0; got > 0 && i + 9 <= got; i++) {
			if (!in->restore_rt && memcmp(buf + i, restore_rt, 9) == 0)
				in->restore_rt = a + (uint64_t)i;
			if (!in->syscall_ret && memcmp(buf + i, syscall_ret, 3) == 0)
				in->syscall_ret = a + (uint64_t)i;
		}
	}
	free(buf);
	return in->restore_rt && in->syscall_ret ? 0 : -ENOENT;
}

/* The address in the target of the dynamic symbol name of the file mapped at base (map m). */
static int map_symbol(int pid, const struct cp_map *m, uint64_t base, const char *name,
		      uint64_t *addr)
{
	char path[PATH_MAX];
	uint64_t value, low;
	int fd = cp_map_open(pid, m, path, sizeof(path));
	int err;

	if (fd < 0)
		return fd;
	err = cp_inject_elf_dynsym(fd, name, &value, &low);
	close(fd);
	if (err < 0)
		return err;
	*addr = base + value - low;
	return 0;
}

/* Find libc in the maps, refusing what is not glibc, and what cprof needs from it. */
static int find_libc(struct cp_inject *in, const struct cp_maps *maps, char *why, size_t whylen)
{
	const struct cp_map *libc = NULL;
	bool loader = false;
	struct cp_mem mem;
	int err;

	for (size_t i = 0; i < maps->n; i++) {
		const char *b = base_name(maps->v[i].path);

		if (strncmp(b, "ld-musl", 7) == 0 || strncmp(b, "libc.musl", 9) == 0 ||
		    (strncmp(b, "libc.", 5) == 0 && strstr(maps->v[i].path, "musl")))
			return inject_why(why, whylen, -ENOTSUP, "musl libc: only glibc is supported");
		if (strncmp(b, "ld-linux", 8) == 0 || strncmp(b, "ld-2.", 5) == 0)
			loader = true;
		if (!libc && is_glibc(maps->v[i].path) && maps->v[i].offset == 0)
			libc = &maps->v[i];
	}
	if (!loader || !libc)
		return inject_why(why, whylen, -ENOTSUP, "%s",
				  loader ? "no glibc mapped" : "static binary: no dynamic loader");
	in->libc_start = libc->start;
	err = map_symbol(in->pid, libc, libc->start, "dlopen", &in->dlopen);
	if (err == -ENOENT) {
		in->dlopen_mode = true;
		err = map_symbol(in->pid, libc, libc->start, "__libc_dlopen_mode", &in->dlopen);
	}
	if (err < 0)
		return inject_why(why, whylen, err, "no dlopen in %s: %s", libc->path,
				  strerror(-err));
	cp_mem_open(&mem, in->pid);
	err = -ENOENT;
	for (size_t i = 0; i < maps->n && err < 0; i++) {
		const struct cp_map *m = &maps->v[i];

		if (m->perms[2] == 'x' && m->inode == libc->inode && strcmp(m->path, libc->path) == 0)
			err = scan_code(in, &mem, m->start, m->end);
	}
	cp_mem_close(&mem);
	if (err < 0)
		return inject_why(why, whylen, err, "no rt_sigreturn trampoline found in %s",
				  libc->path);
	return 0;
}

int cp_inject_open(int pid, const struct cp_inject_opts *opts, struct cp_inject **out,
		   char *why, size_t whylen)
{
	struct cp_inject *in;
	struct cp_maps maps;
	int err;

	if (pid <= 0)
		return inject_why(why, whylen, -EINVAL, "bad pid %d", pid);
	err = check_status(pid, why, whylen);
	if (err < 0)
		return err;
	err = cp_maps_read(pid, &maps);
	if (err < 0)
		return inject_why(why, whylen, err, "reading the maps of %d: %s", pid,
				  strerror(-err));
	in = calloc(1, sizeof(*in));
	if (!in) {
		cp_maps_release(&maps);
		return inject_why(why, whylen, -ENOMEM, "out of memory");
	}
	in->pid = pid;
	in->timeout_ms = opts && opts->timeout_ms > 0 ? opts->timeout_ms : 2000;
	in->only_tid = opts ? opts->tid : 0;
	err = find_libc(in, &maps, why, whylen);
	cp_maps_release(&maps);
	if (err < 0) {
		free(in);
		return err;
	}
	*out = in;
	return 0;
}

void cp_inject_close(struct cp_inject *in)
{
	if (!in)
		return;
	cp_sym_free(in->sym);
	for (size_t i = 0; i < in->nloaded; i++)
		free(in->loaded[i].path);
	free(in);
}

int cp_inject_last_tid(const struct cp_inject *in)
{
	return in->last_tid;
}

uint64_t cp_inject_last_park_ns(const struct cp_inject *in)
{
	return in->last_park_ns;
}

/* The start of the mapping at file offset 0 of the file that is st, or of the memfd name. */
static int find_loaded(int pid, const struct stat *st, const char *memfd_name, uint64_t *base)
{
	struct cp_maps maps;
	char want[300];
	int err = -ENOENT;

	if (cp_maps_read(pid, &maps) < 0)
		return -ESRCH;
	snprintf(want, sizeof(want), "/memfd:%s", memfd_name ? memfd_name : "");
	for (size_t i = 0; i < maps.n && err < 0; i++) {
		const struct cp_map *m = &maps.v[i];
		bool same = memfd_name ? strcmp(m->path, want) == 0 :
			(m->inode == st->st_ino && makedev(m->dev_major, m->dev_minor) == st->st_dev);

		if (same && m->offset == 0) {
			*base = m->start;
			err = 0;
		}
	}
	cp_maps_release(&maps);
	return err;
}

/* The message of the target's dlerror(), read from its memory, into why. */
static void remote_dlerror(struct cp_inject *in, struct inject_park *pk, const char *path,
			   char *why, size_t whylen)
{
	struct cp_maps maps;
	uint64_t fn = 0, msg = 0;
	char text[200] = "";

	if (cp_maps_read(in->pid, &maps) == 0) {
		const struct cp_map *m = cp_maps_find(&maps, in->libc_start);

		if (m)
			map_symbol(in->pid, m, in->libc_start, "dlerror", &fn);
		cp_maps_release(&maps);
	}
	if (fn && inject_remote_call(in, pk, fn, NULL, 0, &msg, NULL, 0) == 0 && msg)
		cp_mem_read_pid(in->pid, msg, text, sizeof(text) - 1);
	inject_why(why, whylen, -ENOEXEC, "dlopen of %s failed in the target%s%s", path,
		   text[0] ? ": " : "", text);
}

/* Copy the file at path into the target's memfd number fd, through /proc/PID/fd. */
static int fill_memfd(int pid, int64_t fd, const char *path)
{
	char dst[64], buf[65536];
	int in_fd, out_fd, err = 0;
	ssize_t n;

	snprintf(dst, sizeof(dst), "/proc/%d/fd/%lld", pid, (long long)fd);
	in_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (in_fd < 0)
		return -errno;
	out_fd = open(dst, O_WRONLY | O_CLOEXEC);
	if (out_fd < 0) {
		err = -errno;
		close(in_fd);
		return err;
	}
	while ((n = read(in_fd, buf, sizeof(buf))) > 0 && !err)
		err = cp_write_all(out_fd, buf, (size_t)n);
	if (n < 0 && !err)
		err = -errno;
	close(in_fd);
	close(out_fd);
	return err;
}

/*
 * On the parked thread: dlopen(path) when the target sees cprof's file, else a memfd named
 * memfd_name filled with the file and dlopen("/proc/self/fd/N"), the memfd closed after.
 */
static int load_parked(struct cp_inject *in, struct inject_park *pk, const char *path,
		       const char *memfd_name, char *why, size_t whylen)
{
	uint64_t flags = RTLD_NOW_FLAG | (in->dlopen_mode ? RTLD_DLOPEN_FLAG : 0);
	uint64_t a[2], handle = 0;
	int64_t fd = -1, cret;
	char self[64];
	int err;

	if (memfd_name) {
		err = inject_stub_data(in, pk, 0, memfd_name, strlen(memfd_name) + 1, &a[0], why,
				       whylen);
		a[1] = MFD_CLOEXEC_FLAG;
		if (!err)
			err = inject_remote_syscall(in, pk, SYS_memfd_create, a, 2, &fd, why,
						    whylen);
		if (!err && fd < 0)
			err = inject_why(why, whylen, (int)fd, "memfd_create in the target: %s",
					 strerror((int)-fd));
		if (!err && (err = fill_memfd(in->pid, fd, path)) < 0)
			inject_why(why, whylen, err, "copying %s into the target: %s", path,
				   strerror(-err));
		snprintf(self, sizeof(self), "/proc/self/fd/%lld", (long long)fd);
		path = self;
	} else {
		err = 0;
	}
	if (!err)
		err = inject_stub_data(in, pk, 256, path, strlen(path) + 1, &a[0], why, whylen);
	a[1] = flags;
	if (!err)
		err = inject_remote_call(in, pk, in->dlopen, a, 2, &handle, why, whylen);
	if (!err && !handle) {
		remote_dlerror(in, pk, path, why, whylen);
		err = -ENOEXEC;
	}
	if (fd >= 0) {
		a[0] = (uint64_t)fd;
		inject_remote_syscall(in, pk, SYS_close, a, 1, &cret, NULL, 0);
	}
	return err;
}

/* Park, run op, drop the call page, unpark; the first error wins. */
static int parked(struct cp_inject *in, const char *path, const char *memfd_name, uint64_t fn,
		  const uint64_t *args, size_t nargs, uint64_t *ret, char *why, size_t whylen)
{
	struct inject_park pk;
	int err, err2;

	err = inject_park(in, &pk, why, whylen);
	if (err < 0)
		return err;
	if (path)
		err = load_parked(in, &pk, path, memfd_name, why, whylen);
	else
		err = inject_remote_call(in, &pk, fn, args, nargs, ret, why, whylen);
	if (err != -ESRCH) {
		err2 = inject_stub_drop(in, &pk);
		if (!err && err2 < 0)
			err = inject_why(why, whylen, err2, "unmapping the call page: %s",
					 strerror(-err2));
	}
	err2 = inject_unpark(in, &pk);
	if (!err && err2 < 0)
		err = inject_why(why, whylen, err2, "resuming thread %d: %s", pk.tid,
				 strerror(-err2));
	return err;
}

/* Keep the file behind a loaded library: a memfd copy cannot be opened from its maps line. */
static void remember(struct cp_inject *in, uint64_t base, const char *path)
{
	char *p;

	for (size_t i = 0; i < in->nloaded; i++)
		if (in->loaded[i].base == base)
			return;
	if (in->nloaded == sizeof(in->loaded) / sizeof(in->loaded[0]) || !(p = strdup(path)))
		return;
	in->loaded[in->nloaded].base = base;
	in->loaded[in->nloaded++].path = p;
}

int cp_inject_load(struct cp_inject *in, const char *path, uint64_t *base, char *why,
		   size_t whylen)
{
	char abs[PATH_MAX], theirs[PATH_MAX + 32], name[128];
	struct stat mine, seen;
	const char *memfd_name = NULL;
	int err;

	if (!realpath(path, abs) || stat(abs, &mine) < 0)
		return inject_why(why, whylen, -errno, "%s: %s", path, strerror(errno));
	snprintf(theirs, sizeof(theirs), "/proc/%d/root%s", in->pid, abs);
	if (stat(theirs, &seen) < 0 || seen.st_dev != mine.st_dev || seen.st_ino != mine.st_ino) {
		/* Named after the file's identity: the same library is found loaded again. */
		snprintf(name, sizeof(name), "cprof-%.64s-%llx-%llx", base_name(abs),
			 (unsigned long long)mine.st_ino,
			 (unsigned long long)(mine.st_mtime ^ mine.st_size));
		memfd_name = name;
	}
	if (find_loaded(in->pid, &mine, memfd_name, base) == 0) {
		remember(in, *base, abs);
		return 0;
	}
	err = inject_loader_busy(in, why, whylen);
	if (err < 0)
		return err;
	err = parked(in, abs, memfd_name, 0, NULL, 0, NULL, why, whylen);
	if (err < 0)
		return err;
	err = find_loaded(in->pid, &mine, memfd_name, base);
	if (err < 0)
		return inject_why(why, whylen, err, "%s is not mapped after dlopen", abs);
	remember(in, *base, abs);
	return 0;
}

int cp_inject_symbol(struct cp_inject *in, uint64_t base, const char *name, uint64_t *addr)
{
	struct cp_maps maps;
	const struct cp_map *m;
	int err;

	for (size_t i = 0; i < in->nloaded; i++) {
		uint64_t value, low;
		int fd;

		if (in->loaded[i].base != base)
			continue;
		fd = open(in->loaded[i].path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			break;
		err = cp_inject_elf_dynsym(fd, name, &value, &low);
		close(fd);
		if (err < 0)
			return -ENOENT;
		*addr = base + value - low;
		return 0;
	}
	err = cp_maps_read(in->pid, &maps);
	if (err < 0)
		return err;
	m = cp_maps_find(&maps, base);
	err = m && m->start == base && m->offset == 0 ? map_symbol(in->pid, m, base, name, addr) :
		-ENOENT;
	cp_maps_release(&maps);
	return err < 0 ? -ENOENT : 0;
}

int cp_inject_call(struct cp_inject *in, uint64_t fn, const uint64_t *args, size_t nargs,
		   uint64_t *ret, char *why, size_t whylen)
{
	uint64_t r = 0;
	int err;

	if (nargs > 6)
		return inject_why(why, whylen, -EINVAL, "more than 6 arguments");
	err = parked(in, NULL, NULL, fn, args, nargs, &r, why, whylen);
	if (err == 0 && ret)
		*ret = r;
	return err;
}
